"""The pipeline live on what the recorder writes gives exactly what a replay of the same
recording gives afterwards (same harness time: each frame's receive time), and
`harness record --pipeline` prints it and writes its session log (index_values, signals,
settlements) into the recording through the recorder's writer; `harness replay` of that
recording leaves it untouched and says the log is identical to what it computes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from harness.config import RecordConfig, VenueConfig
from harness.live.manager import run_record
from harness.live.observe import Fanout
from harness.pipeline.live import LivePipeline
from harness.pipeline.output import INDEX_COLS, RecordingLog, compare_recorded
from harness.pipeline.stages import Pipeline, run_recording
from harness.replay.background import ServedRecording
from harness.store import Recording, RecordingWriter
from tests.reliability.streamer import wait_for
from tests.replay.serve_util import build_recording

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "recordings" / "faults.db"  # 4 min of Coinbase, Kraken, Gemini (and more): a valid index
EXCHANGES = ("coinbase", "kraken", "gemini")
INDEX_SQL = f"SELECT {', '.join(INDEX_COLS)} FROM index_values ORDER BY ts_ns"


class Count:
    def __init__(self):
        self.frames = 0

    def on_frame(self, f):
        self.frames += 1


async def test_live_pipeline_equals_a_replay_of_the_recording_it_made(tmp_path):
    src = tmp_path / "venues.db"
    build_recording(src)
    out = tmp_path / "live.db"
    with ServedRecording(src, speed=5) as srv:
        cfg = RecordConfig(output=str(out), status=False, duration_s=1.5, venues={
            "coinbase": VenueConfig(name="coinbase", url=srv.url("coinbase"), channels=["level2"],
                                    instruments=["BTC-USD"], stale_timeout=None, ping_interval=None),
            "bitstamp": VenueConfig(name="bitstamp", url=srv.url("bitstamp"), channels=["diff_order_book"],
                                    instruments=["btcusd"], stale_timeout=None, ping_interval=None,
                                    # REST on the server's port: no book recorded there, so a 404 event
                                    rest_url="http://" + srv.url("bitstamp").split("/")[2])})
        signals = []
        writer = RecordingWriter(out, mode="live")
        live = LivePipeline(Pipeline(log=RecordingLog(writer)), signals.append)
        count = Count()
        stop = asyncio.Event()
        drain = asyncio.ensure_future(live.run(stop))
        await run_record(cfg, stop=stop, observer=Fanout(live, count), writer=writer)
        stop.set()
        await drain
    summary = live.finish()
    writer.close()  # the caller's writer outlives the recorder: the log's tail goes in first
    replayed = run_recording(str(out))
    assert count.frames > 20 and live.pipe.frames == count.frames
    assert live.pipe.digest() == replayed.digest()
    assert summary["index"]["ticks"] == replayed.summary()["index"]["ticks"] > 0
    assert summary["live_frames_not_computed"] == 0
    # what the live run left in the recording is the replay's, row for row
    with Recording(out) as rec:
        c = compare_recorded(rec.db, replayed)
    assert c["identical"] and c["index_rows"] == c["equal"] == len(replayed.ticks) == writer.session_log_rows


def served_args(srv) -> list[str]:
    return ["--exchanges", ",".join(EXCHANGES), *[a for v in EXCHANGES for a in ("--url", f"{v}={srv.url(v)}")],
            "--no-status"]


def harness(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, COLUMNS="300"), **kw)  # lines unwrapped


def fingerprint(p: Path) -> tuple[str, int]:
    return hashlib.sha256(p.read_bytes()).hexdigest(), os.stat(p).st_mtime_ns


def test_record_pipeline_writes_the_session_log_into_the_recording_and_replay_agrees(tmp_path):
    out = tmp_path / "rec.db"
    with ServedRecording(SAMPLE, speed=20) as srv:
        p = harness("record", "-o", out, *served_args(srv), "--duration", "2s", "--pipeline")
    assert p.returncode == 0, p.stderr
    assert "index" in p.stdout and f"rows in {out}" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["rec.db"]  # no separate file, no WAL or lock left
    recorded = sqlite3.connect(out).execute(INDEX_SQL).fetchall()
    assert sum(r[2] for r in recorded) > 5  # valid ticks: three venues
    facts = json.loads(harness("inspect", "--json", out).stdout)
    assert facts["schema_version"] == 2 and facts["session_log"]["index_values"] == len(recorded)
    assert "session log (record --pipeline): " in harness("inspect", out).stdout
    # the pipeline's config is in the session row
    assert "signals.edge_threshold" in json.dumps(facts["sessions"][0]["config"]["pipeline"]["config"])

    before = fingerprint(out)
    session = tmp_path / "session.db"
    p = harness("replay", out, "--out", session)
    assert p.returncode == 0, p.stderr
    assert "recorded session log (live)" in p.stdout and "identical to this replay's" in p.stdout
    assert fingerprint(out) == before  # replay opened it read-only and wrote nothing into it
    assert sqlite3.connect(session).execute(INDEX_SQL).fetchall() == recorded
    p = harness("replay", out, "--json")
    assert json.loads(p.stdout)["pipeline"]["recorded"]["identical"] is True

    p = harness("record", "-o", out, "--exchanges", "coinbase", "--pipeline-out", tmp_path / "x.db")
    assert p.returncode == 2 and "--pipeline-out" in p.stderr  # gone: the log is in the recording


def test_kill_9_keeps_the_session_log_with_its_frames(tmp_path):
    """The index rows ride the frames' transactions: after kill -9 every committed index
    row's frames are committed too, and a replay of the crash-left file computes them again."""
    out = tmp_path / "rec.db"
    with ServedRecording(SAMPLE, speed=2) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "harness", "record", "-o", str(out), *served_args(srv),
                                 "--pipeline"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: _committed_index_rows(out) >= 10, 60, "10 committed index rows", proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    db = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT ended_ns FROM sessions").fetchall() == [(None,)]  # the crash shows
    last_frame, last_tick = db.execute("SELECT (SELECT max(t_wall_ns) FROM frames), max(ts_ns) FROM index_values").fetchone()
    db.close()
    assert last_tick <= last_frame
    with Recording(out) as rec:
        replayed = run_recording(str(out))
        c = compare_recorded(rec.db, replayed)
    assert c["index_rows"] >= 10 and (c["differ"], c["missing"]) == (0, 0) and c["signals_equal"]


def _committed_index_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM index_values").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
