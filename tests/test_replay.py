"""Replay core: order, absolute pacing, the replay clock, and the CLI summary."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.clock import ReplayClock
from harness.replay.schedule import Schedule, parse_speed, percentiles
from harness.replay.source import CountingSink, replay
from harness.store import Recording
from tests.helpers import make_recording

MS = 1_000_000


class Collect:
    def __init__(self, clock):
        self.clock = clock
        self.seen = []

    def on_frame(self, f):
        # The clock shows the frame's recorded time while it is being delivered.
        assert self.clock.now_ns() == f.t_wall_ns
        self.seen.append(f.payload)


@pytest.fixture
def synthetic(tmp_path):
    p = tmp_path / "syn.db"
    base = 1_786_309_548_000_000_000
    frames = []
    for i in range(200):  # 200 frames over 1 s recorded, two venues interleaved
        venue = "kalshi" if i % 2 else "coinbase"
        t = i * 5 * MS
        frames.append((venue, "in", base + t, t, json.dumps({"type": "ticker", "i": i})))
    make_recording(p, frames)
    return p


def test_replay_at_speed_20_keeps_order_and_reports_lateness(synthetic):
    clock = ReplayClock()
    sink = Collect(clock)
    with Recording(synthetic) as rec:
        stats = replay(rec, sink, speed=20, clock=clock)
    assert [json.loads(p)["i"] for p in sink.seen] == list(range(200))
    assert stats.frames == 200
    lat = stats.lateness
    assert lat["n"] == 200 and lat["p50_ms"] is not None and lat["max_ms"] >= lat["p99_ms"] >= lat["p50_ms"] >= 0
    # The recorded span is reported in recorded time, not wall time.
    assert stats.as_dict()["recorded_span_s"] == pytest.approx(0.995)


def test_max_speed_is_unpaced(synthetic):
    with Recording(synthetic) as rec:
        stats = replay(rec, CountingSink(), speed=None)
    assert stats.lateness["n"] == 0 and stats.frames == 200


def test_schedule_is_absolute_not_cumulative(monkeypatch):
    # A frame that is late does not push back the deadlines of the frames after it.
    now = [0]
    monkeypatch.setattr("harness.replay.schedule.time.perf_counter_ns", lambda: now[0])
    monkeypatch.setattr("harness.replay.schedule.time.sleep", lambda s: now.__setitem__(0, now[0] + int(s * 1e9)))
    s = Schedule(speed=2)
    s.wait(0)  # starts the schedule at t0 = 0
    now[0] += 700 * MS  # the sink took 700 ms on frame 0
    s.wait(1000 * MS)  # due at 500 ms: 200 ms late, no sleep
    assert now[0] == 700 * MS
    s.wait(2000 * MS)  # due at 1000 ms regardless of the late frame
    assert now[0] == 1000 * MS
    assert list(s.lateness) == [0, 200 * MS, 0]


def test_parse_speed():
    assert parse_speed("max") is None
    assert parse_speed("10") == 10.0
    assert parse_speed("2x") == 2.0
    with pytest.raises(ValueError):
        parse_speed("0")
    with pytest.raises(ValueError):
        parse_speed("fast")


def test_percentiles():
    p = percentiles(list(range(1, 101)))
    assert p["n"] == 100 and p["max_ms"] == pytest.approx(100 / 1e6)


def test_cli_replay_json(synthetic, capsys):
    with pytest.raises(SystemExit) as ei:
        main(["replay", str(synthetic), "--speed", "50", "--json", "--venue", "kalshi"])
    assert ei.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 100
    assert out["speed"] == 50.0
    assert set(out["lateness"]) >= {"p50_ms", "p99_ms", "max_ms"}
    assert all(r["venue"] == "kalshi" for r in out["by_type"])


def test_cli_replay_time_window(synthetic, capsys):
    with pytest.raises(SystemExit):
        main(["replay", str(synthetic), "--from", "+100ms", "--to", "+200ms", "--json"])
    assert json.loads(capsys.readouterr().out)["frames"] == 20


@pytest.mark.parametrize("args,needle", [
    (["replay", "/nonexistent/x.db"], "does not exist"),
    (["replay", "{rec}", "--speed", "-1"], "speed must be positive"),
    (["replay", "{rec}", "--from", "yesterday"], "bad time"),
])
def test_cli_replay_bad_input_exit_2(synthetic, capsys, args, needle):
    args = [a.replace("{rec}", str(synthetic)) for a in args]
    with pytest.raises(SystemExit) as ei:
        main(args)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
