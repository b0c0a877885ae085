"""The pipeline live on what the recorder writes gives exactly what a replay of the same
recording gives afterwards (same harness time: each frame's receive time), and
`harness record --pipeline` prints it and writes its own session log."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from harness.config import RecordConfig, VenueConfig
from harness.live.manager import run_record
from harness.live.observe import Fanout
from harness.pipeline.live import LivePipeline
from harness.pipeline.stages import Pipeline, run_recording
from harness.replay.background import ServedRecording
from tests.replay.serve_util import build_recording

REPO = Path(__file__).resolve().parents[2]


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
        live = LivePipeline(Pipeline(), signals.append)
        count = Count()
        stop = asyncio.Event()
        drain = asyncio.ensure_future(live.run(stop))
        await run_record(cfg, stop=stop, observer=Fanout(live, count))
        stop.set()
        await drain
    summary = live.finish()
    replayed = run_recording(str(out))
    assert count.frames > 20 and live.pipe.frames == count.frames
    assert live.pipe.digest() == replayed.digest()
    assert summary["index"]["ticks"] == replayed.summary()["index"]["ticks"] > 0
    assert summary["live_frames_not_computed"] == 0


def test_record_pipeline_cli_prints_the_summary_and_writes_a_session_log(tmp_path):
    src = tmp_path / "venues.db"
    build_recording(src)
    out = tmp_path / "rec.db"
    with ServedRecording(src, speed=5) as srv:
        p = subprocess.run([sys.executable, "-m", "harness", "record", "-o", str(out), "--exchanges", "coinbase",
                            "--url", f"coinbase={srv.url('coinbase')}", "--duration", "1s", "--pipeline"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "index" in p.stdout and "pipeline session log:" in p.stderr
    log = tmp_path / "rec.pipeline.db"
    with sqlite3.connect(log) as c:
        assert c.execute("PRAGMA application_id").fetchone()[0] == 0x4B48504C
        assert c.execute("SELECT count(*) FROM index_values").fetchone()[0] > 0
    p = subprocess.run([sys.executable, "-m", "harness", "record", "-o", str(out), "--exchanges", "coinbase",
                        "--pipeline-out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--pipeline-out goes with --pipeline" in p.stderr
