"""The plugin's served-recording fixture, freezegun, and live recording for record modes
once/all, in subprocess pytest runs against real loopback servers."""

from __future__ import annotations

import sqlite3

from harness.replay.background import ServedRecording
from tests.checks.test_plugin import _pytest
from tests.replay.serve_util import build_recording


def test_harness_server_fixture_serves_sync_and_async_clients_and_survives_freezegun(tmp_path):
    rec = tmp_path / "rec.db"
    sent = build_recording(rec)
    n_l2 = sum('"l2_data"' in t for _, t in sent["coinbase"])
    (tmp_path / "test_user.py").write_text(f'''
import json, time
import pytest
from freezegun import freeze_time
from websockets.sync.client import connect as sync_connect
from websockets.asyncio.client import connect

SUB = json.dumps({{"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}})

def _l2(texts):
    return [t for t in texts if '"l2_data"' in t]

@pytest.mark.harness_recording({str(rec)!r}, speed="max")
def test_sync_client(harness_server):
    with sync_connect(harness_server.url("coinbase")) as ws:
        ws.send(SUB)
        got = []
        while len(_l2(got)) < {n_l2}:
            got.append(ws.recv(timeout=10))
    assert len(_l2(got)) == {n_l2}
    assert harness_server.urls.keys() >= {{"kalshi", "coinbase", "bitstamp"}}

@pytest.mark.asyncio
@pytest.mark.harness_recording({str(rec)!r}, speed=10)
async def test_async_client(harness_server):
    async with connect(harness_server.url("coinbase")) as ws:
        await ws.send(SUB)
        got = []
        while len(_l2(got)) < 3:
            got.append(await ws.recv())

@freeze_time("2020-01-01")
@pytest.mark.harness_recording({str(rec)!r}, speed=10)
def test_frozen_time_does_not_freeze_the_harness(harness_server, harness_replay):
    assert time.time() == 1577836800.0  # the user's code sees the frozen clock
    assert harness_replay.inbound("coinbase")
    with sync_connect(harness_server.url("coinbase")) as ws:  # paced by real time at 10x
        ws.send(SUB)
        got = []
        while len(_l2(got)) < 3:
            got.append(ws.recv(timeout=10))

@pytest.mark.harness_recording({str(rec)!r})
def test_unknown_venue_is_a_clear_error(harness_server):
    harness_server.url("gemini")
''')
    p = _pytest(tmp_path, "test_user.py", "-p", "no:randomly")
    out = p.stdout + p.stderr
    assert "3 passed, 1 failed" in out or "1 failed, 3 passed" in out, out
    assert "serves no 'gemini' stream" in out, out


def test_record_mode_once_records_live_with_the_marker_config(tmp_path):
    src = tmp_path / "venue.db"
    build_recording(src)
    target = tmp_path / "recordings" / "new.db"
    with ServedRecording(src, speed="max", loop=True) as srv:
        url = srv.url("coinbase")
        (tmp_path / "test_user.py").write_text(f'''
import pytest

@pytest.mark.harness_recording("recordings/new.db",
                               record=dict(exchanges="coinbase", urls=["coinbase={url}"], duration="1s"))
def test_it(harness_replay):
    assert harness_replay.inbound("coinbase")
''')
        p = _pytest(tmp_path, "test_user.py")
        assert "does not exist (--harness-record-mode none)" in p.stdout and "During handling" not in p.stdout
        p = _pytest(tmp_path, "test_user.py", "--harness-record-mode", "once")
        assert "1 passed" in p.stdout, p.stdout + p.stderr
        assert target.exists()
        mtime = target.stat().st_mtime_ns
        with sqlite3.connect(target) as c:
            n = c.execute("SELECT count(*) FROM frames WHERE dir='in' AND type='l2_data/update'").fetchone()[0]
        assert n > 0
        p = _pytest(tmp_path, "test_user.py", "--harness-record-mode", "once")  # exists: not re-recorded
        assert "1 passed" in p.stdout and target.stat().st_mtime_ns == mtime, p.stdout
    # the venue is gone: record mode all fails plainly and keeps the old recording
    p = _pytest(tmp_path, "test_user.py", "--harness-record-mode", "all")
    assert "1 error" in p.stdout and "recording" in p.stdout and "failed" in p.stdout, p.stdout
    assert target.stat().st_mtime_ns == mtime
