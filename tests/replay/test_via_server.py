"""``harness replay REC --via-server``: the recording travels server -> WebSocket -> live
recorder -> observer, and the pipeline output on what arrives equals an in-process
replay's (same index values, signals, summary) for the data frames."""

from __future__ import annotations

import json
import sqlite3

import pytest

from harness.cli import main
from harness.clock import ReplayClock
from harness.pipeline.stages import Pipeline
from harness.replay.source import replay
from harness.replay.via_server import run_via_server
from harness.store.reader import Recording
from tests.pipeline.test_determinism import _recording


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    """4 s of Kalshi, Coinbase and Gemini in which the pipeline finds one signal."""
    p = tmp_path_factory.mktemp("via") / "det.db"
    _recording(p)
    return p


def in_process(path) -> Pipeline:
    p = Pipeline()
    with Recording(path) as r:
        p.attach_http(r.http())
        replay(r, p, speed=None, clock=ReplayClock())
    p.finish()
    return p


def _summary(p: Pipeline) -> str:
    """The summary but the frame count (acks, pings and commands differ on the wire)."""
    return json.dumps({k: v for k, v in p.summary().items() if k != "frames"}, sort_keys=True, default=str)


@pytest.mark.parametrize("speed", [None, 10.0])
async def test_pipeline_through_the_wire_equals_in_process(rec, speed):
    want = in_process(rec)
    assert want.n_valid > 15 and len(want.signals) == 1  # something worth comparing
    got = Pipeline()
    with Recording(rec) as r:
        got.attach_http(r.http())
    res = await run_via_server(rec, [got], speed=speed, timeout_s=60)
    got.finish()
    assert res.failed == {}
    assert res.served == {"coinbase": 40, "gemini": 40, "kalshi": 2}
    assert res.arrived == res.served
    assert got.digest() == want.digest()
    assert got.ticks == want.ticks
    assert _summary(got) == _summary(want)


def test_cli_via_server_json_and_kept_recording(rec, tmp_path, capsys):
    kept = tmp_path / "wire.db"
    with pytest.raises(SystemExit) as ei:
        main(["replay", str(rec), "--via-server", "--json", "--keep-recording", str(kept)])
    assert ei.value.code == 0
    out = json.loads(capsys.readouterr().out)
    v = out["via_server"]
    assert v["served"] == v["arrived"] == {"coinbase": 40, "gemini": 40, "kalshi": 2}
    assert out["pipeline"]["signals"] and len(out["pipeline"]["signals"]) == 1
    assert out["checks"]["status"] == "pass"
    assert v["recording"] == str(kept)
    # the kept recording holds what the recorder received, payloads as served
    db = sqlite3.connect(f"file:{kept}?mode=ro", uri=True)
    try:
        n = db.execute("SELECT count(*) FROM frames f JOIN connections c ON c.id = f.conn_id"
                       " WHERE c.venue = 'gemini' AND f.dir = 'in' AND f.payload LIKE '%l2_updates%'").fetchone()[0]
    finally:
        db.close()
    assert n >= 40


def test_cli_via_server_removes_its_temp_recording(rec, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(SystemExit):
        main(["replay", str(rec), "--via-server", "--json", "--no-pipeline", "--venue", "coinbase"])
    out = json.loads(capsys.readouterr().out)
    assert out["via_server"]["venues"] == ["coinbase"] and out["via_server"]["recording"] is None
    assert "pipeline" not in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, needle", [
    (["--type", "l2_updates"], "--type cannot be used with --via-server"),
    (["--keep-recording", "x.db"], "--keep-recording needs --via-server"),
    (["--venue", "okx"], "okx not in"),
])
def test_cli_via_server_bad_input_exit_2(rec, capsys, args, needle):
    full = ["replay", str(rec), *args] + (["--via-server"] if "--keep-recording" not in args else [])
    with pytest.raises(SystemExit) as ei:
        main(full)
    assert ei.value.code == 2
    assert needle in capsys.readouterr().err
