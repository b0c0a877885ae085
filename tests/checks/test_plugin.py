"""The pytest plugin, exercised in a subprocess pytest run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "recordings" / "sample.db"


def _pytest(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "-o", "asyncio_default_fixture_loop_scope=function", "--rootdir", str(tmp_path), *map(str, args)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_recording_items_pass_and_fail_with_frame_ids(tmp_path):
    import shutil
    import sqlite3

    bad = tmp_path / "broken.db"
    shutil.copy(SAMPLE, bad)
    with sqlite3.connect(bad) as c:
        fid = c.execute("SELECT id FROM frames WHERE type='orderbook_delta' ORDER BY id LIMIT 1 OFFSET 5").fetchone()[0]
        c.execute("DELETE FROM frames WHERE id=?", (fid,))
    (tmp_path / "test_nothing.py").write_text("def test_ok():\n    pass\n")
    p = _pytest(tmp_path, "-v", "--harness-recording", SAMPLE, "--harness-recording", bad, "--harness-only", "format,sequence")
    out = p.stdout
    assert "FAILED ::test_sequence[broken.db]" in out, out
    assert "1 failed, 4 passed" in out, out
    assert "sequence.gap" in out and "harness show" in out and "frames [" in out


def test_marker_fixture_async_and_record_modes(tmp_path):
    (tmp_path / "test_user.py").write_text(f'''
import pytest

@pytest.mark.harness_recording({str(SAMPLE)!r}, speed="max")
def test_frames(harness_replay):
    import sqlite3
    n = sqlite3.connect({str(SAMPLE)!r}).execute("SELECT count(*) FROM frames").fetchone()[0]
    assert len(harness_replay.frames) == n
    assert harness_replay.messages and not harness_replay.decode_errors
    assert {{"kalshi", "coinbase", "kraken"}} <= {{f.venue for f in harness_replay.inbound()}}
    assert harness_replay.check(["sequence"]).exit_code == 0

@pytest.mark.asyncio
@pytest.mark.harness_recording({str(SAMPLE)!r})
async def test_async(harness_replay):
    assert harness_replay.inbound("kraken")

@pytest.mark.harness_recording("recordings/missing.db")
def test_missing(harness_replay):
    pass
''')
    p = _pytest(tmp_path, "test_user.py")
    assert "2 passed, 1 error" in p.stdout, p.stdout + p.stderr
    assert "does not exist (--harness-record-mode none)" in p.stdout
    p = _pytest(tmp_path, "test_user.py", "--harness-record-mode", "once")
    assert "live recording not available in this run" in p.stdout
    (tmp_path / "conftest.py").write_text(f'''
import shutil
def harness_record(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy({str(SAMPLE)!r}, path)
''')
    p = _pytest(tmp_path, "test_user.py::test_missing", "--harness-record-mode", "once")
    assert "1 passed" in p.stdout, p.stdout
