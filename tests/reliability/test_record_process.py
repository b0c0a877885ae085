"""A real `harness record` process recording a fast loopback stream, hurt from outside:
kill -9, SIGTERM, SIGINT, a second recorder on the same file, the disk filling up, the
file turning read-only. The server counts what it sent; the recording is compared with it.

Measured numbers are printed (``pytest -s``) and, when RELIABILITY_NUMBERS names a file,
appended to it as JSON lines (RELIABILITY.md quotes them)."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.reliability.streamer import REPO, Streamer, committed_seqs, start_record, stop, wait_for


def note(scenario: str, **numbers) -> None:
    print(scenario, numbers)
    path = os.environ.get("RELIABILITY_NUMBERS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"scenario": scenario, **numbers}) + "\n")


def integrity(db) -> sqlite3.Connection:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return con


def assert_prefix(seqs: list[int]) -> None:
    """Every committed frame intact and in order: exactly 1..n, no hole, no repeat."""
    assert seqs == list(range(1, len(seqs) + 1)), "recorded frames are not the sent prefix 1..n"


def test_kill_9_keeps_every_committed_frame(tmp_path):
    db = tmp_path / "kill9.db"
    with Streamer() as s:
        p = start_record(db, s.url)
        try:
            wait_for(lambda: len(committed_seqs(db)) > 3000, 60, "3000 committed frames", p)
            # What a reader beside the recorder saw committed just before the kill must survive it.
            seen = len(committed_seqs(db))
            t_kill = time.time_ns()
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        finally:
            if p.poll() is None:
                p.kill()
            p.communicate()
        sent = s.sent
        sent_ns = list(s.sent_ns)
    con = integrity(db)
    seqs = committed_seqs(db)
    assert_prefix(seqs)
    assert len(seqs) >= seen
    # The crash is visible, not hidden: the session row stays open.
    assert con.execute("SELECT ended_ns FROM sessions").fetchall() == [(None,)]
    last_rx = con.execute("SELECT max(t_wall_ns) FROM frames WHERE dir='in'").fetchone()[0]
    con.close()
    # The loss is the suffix the recorder had not committed (or not yet read) at the kill.
    first_lost_sent = sent_ns[len(seqs)] if len(seqs) < len(sent_ns) else t_kill
    note("kill -9 mid-stream", sent=sent, recorded=len(seqs), lost_suffix=sent - len(seqs),
         last_committed_rx_before_kill_ms=round((t_kill - last_rx) / 1e6, 1),
         first_lost_sent_before_kill_ms=round((t_kill - first_lost_sent) / 1e6, 1), commit_window_ms=50)
    # The recording is usable as it is: inspect and replay read it without complaint.
    r = subprocess.run([sys.executable, "-m", "harness", "inspect", str(db)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_kill_9_when_quiet_loses_nothing(tmp_path):
    """Within one commit window of the last frame everything is on disk: kill -9 then
    loses nothing (the window is the only exposure)."""
    db = tmp_path / "quiet.db"
    with Streamer(limit=5000) as s:
        p = start_record(db, s.url)
        try:
            wait_for(lambda: len(committed_seqs(db)) == 5000, 60, "all 5000 frames committed", p)
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        finally:
            if p.poll() is None:
                p.kill()
            p.communicate()
    integrity(db).close()
    assert committed_seqs(db) == list(range(1, 5001))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_stream_loses_nothing(tmp_path, sig):
    db = tmp_path / "stop.db"
    with Streamer() as s:
        p = start_record(db, s.url)
        wait_for(lambda: len(committed_seqs(db)) > 3000, 60, "3000 committed frames", p)
        out, err = stop(p, sig)
        time.sleep(0.1)  # let the server's last send settle its count
        sent = s.sent
    assert p.returncode == 0, err
    assert "Traceback" not in err
    seqs = committed_seqs(db)
    con = integrity(db)
    # Every frame the server sent before it saw our Close is recorded: the recorder keeps
    # reading through the close handshake.
    assert_prefix(seqs)
    assert len(seqs) == sent
    ended, = con.execute("SELECT ended_ns FROM sessions").fetchone()
    assert ended is not None
    assert con.execute("SELECT close_code FROM connections").fetchall() == [(1000,)]
    con.close()
    assert not os.path.exists(f"{db}-wal"), "the file was not switched back to a single file"
    assert not os.path.exists(f"{db}.lock")
    note(f"{sig.name} mid-stream", sent=sent, recorded=len(seqs), lost=sent - len(seqs))


def test_second_recorder_on_the_same_file_is_refused(tmp_path):
    db = tmp_path / "shared.db"
    with Streamer() as s:
        first = start_record(db, s.url)
        try:
            wait_for(lambda: len(committed_seqs(db)) > 500, 60, "the first recorder writing", first)
            second = start_record(db, s.url)
            _, err = second.communicate(timeout=60)
            assert second.returncode == 2
            assert "being written by another process" in err
            assert "Traceback" not in err
            assert first.poll() is None, "the refused recorder must not disturb the first"
            _, err1 = stop(first)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
        sent = s.sent
    assert first.returncode == 0, err1
    assert s.conns == 1  # the second never connected to the venue
    assert committed_seqs(db) == list(range(1, sent + 1))
    con = integrity(db)
    assert con.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
    con.close()


# ------------------------------------------------------------------ disk full, read-only


def _assert_failed_cleanly(p, db, sent_before: int | None = None) -> list[int]:
    try:
        _, err = p.communicate(timeout=60)  # never a hang
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("the recorder hung after its file stopped accepting writes") from None
    assert p.returncode == 2, err
    assert "Traceback" not in err
    assert f"recording to {db} failed" in err
    assert "frames committed before the error are intact" in err
    seqs = committed_seqs(db)
    integrity(db).close()
    assert_prefix(seqs)
    assert len(seqs) > 0
    return seqs


def _fsize_limit(limit: int):
    def apply():
        # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG like a full disk.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_file_size_limit_reached_while_recording(tmp_path):
    db = tmp_path / "full.db"
    with Streamer() as s:
        p = start_record(db, s.url, preexec_fn=_fsize_limit(2_000_000))
        seqs = _assert_failed_cleanly(p, db)
        sent = s.sent
    note("file size limit (RLIMIT_FSIZE 2 MB)", sent=sent, recorded=len(seqs), exit_code=2)


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): covered by the RLIMIT_FSIZE test")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_while_recording(small_tmpfs):
    db = small_tmpfs / "full.db"
    with Streamer() as s:
        p = start_record(db, s.url)
        seqs = _assert_failed_cleanly(p, db)
        sent = s.sent
    note("disk full (2 MB tmpfs)", sent=sent, recorded=len(seqs), exit_code=2)


def _chattr(flag: str, *paths) -> bool:
    try:
        return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def test_file_made_read_only_while_recording(tmp_path):
    """``chattr +i`` makes even already-open file descriptors refuse writes (EPERM), as a
    file system remounted read-only would. (The -shm index is left alone: it is memory
    mapped, and an immutable mapping kills any process with SIGBUS, SQLite or not.)"""
    db = tmp_path / "ro.db"
    probe = tmp_path / "probe"
    probe.write_text("x")
    if not _chattr("+i", probe):
        pytest.skip("chattr +i is not available here (needs root and an ext4/xfs-like file system)")
    _chattr("-i", probe)
    with Streamer() as s:
        p = start_record(db, s.url)
        try:
            wait_for(lambda: len(committed_seqs(db)) > 2000, 60, "2000 committed frames", p)
            assert _chattr("+i", db, f"{db}-wal")
            seqs = _assert_failed_cleanly(p, db)
        finally:
            _chattr("-i", db, f"{db}-wal")
            if p.poll() is None:
                p.kill()
                p.communicate()
        sent = s.sent
    note("file made read-only (chattr +i) mid-recording", sent=sent, recorded=len(seqs), exit_code=2)


def test_read_only_file_at_start_is_a_clear_error(tmp_path):
    db = tmp_path / "ro.db"
    db.touch()
    if not _chattr("+i", db):
        pytest.skip("chattr +i is not available here")
    try:
        with Streamer() as s:
            p = start_record(db, s.url)
            _, err = p.communicate(timeout=60)
    finally:
        _chattr("-i", db)
    assert p.returncode == 2, err
    assert "Traceback" not in err
    assert str(db) in err
    assert s.conns == 0
