"""The recording store: schema contract, writer batching and locking, ordered read-only reads."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from harness.errors import RecordingError
from harness.store import Recording, RecordingWriter, schema
from harness.store.reader import Filters
from tests.helpers import make_recording


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_schema_contract_columns_and_version(tmp_path):
    p = tmp_path / "r.db"
    make_recording(p, [("kalshi", "in", 1, 1, "x")])
    db = sqlite3.connect(p)
    cols = [r[1] for r in db.execute("PRAGMA table_info(frames)")]
    assert cols == list(schema.FRAME_COLUMNS)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert db.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    # A finished recording is one self-contained file (no WAL needed to read it).
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not os.path.exists(str(p) + "-wal")


def test_text_as_text_binary_as_blob_and_sizes(tmp_path):
    p = tmp_path / "r.db"
    w = RecordingWriter(p, mode="live")
    c = w.connection("kalshi", "wss://x/trade-api/ws/v2", 1, request_headers={"KALSHI-ACCESS-KEY": "<redacted len=36>"})
    w.frame(c, "in", 10, 10, "text", '{"a":"é"}')
    w.frame(c, "in", 11, 11, "ping", b"heartbeat")
    w.frame(c, "out", 12, 12, "pong", b"heartbeat")
    w.close()
    db = sqlite3.connect(p)
    rows = db.execute("SELECT opcode, typeof(payload), size FROM frames ORDER BY id").fetchall()
    assert rows == [("text", "text", 10), ("ping", "blob", 9), ("pong", "blob", 9)]
    with Recording(p) as rec:
        s = rec.sessions()[0]
        assert s["mode"] == "live" and s["ended_ns"] is not None
        assert rec.connections()[0]["request_headers"] == {"KALSHI-ACCESS-KEY": "<redacted len=36>"}


def test_frames_merge_connections_by_monotonic_time(tmp_path):
    p = tmp_path / "r.db"
    # Written out of time order across two connections; wall clock jumps back (NTP step)
    # but the monotonic clock orders them.
    make_recording(p, [
        ("kalshi", "in", 100, 5, "k5"),
        ("coinbase", "in", 90, 3, "c3"),
        ("kalshi", "in", 50, 9, "k9"),
        ("coinbase", "in", 95, 7, "c7"),
    ])
    with Recording(p) as rec:
        assert [f.payload for f in rec.frames()] == ["c3", "k5", "c7", "k9"]
        assert [f.payload for f in rec.frames(Filters(venues=("kalshi",)))] == ["k5", "k9"]


def test_sessions_merged_on_wall_timeline(tmp_path):
    p = tmp_path / "r.db"
    # Two sessions with unrelated monotonic clocks, interleaved in wall time.
    make_recording(p, [("kalshi", "in", 1_000, 10, "a1"), ("kalshi", "in", 3_000, 2_010, "a3")])
    make_recording(p, [("coinbase", "in", 2_000, 900_000, "b2"), ("coinbase", "in", 4_000, 902_000, "b4")])
    with Recording(p) as rec:
        assert len(rec.sessions()) == 2
        assert [f.payload for f in rec.frames()] == ["a1", "b2", "a3", "b4"]
        assert [f.payload for f in rec.frames(Filters(sessions=(2,)))] == ["b2", "b4"]


def test_filters_are_bound_parameters(tmp_path):
    p = tmp_path / "r.db"
    make_recording(p, [("kalshi", "in", 1, 1, '{"type":"ticker"}')])
    evil = "x'); DROP TABLE frames; --"
    with Recording(p) as rec:
        assert list(rec.frames(Filters(venues=(evil,), types=(evil,), dir=evil))) == []
        assert list(rec.frames(Filters(types=("a' OR '1'='1",)))) == []
        assert rec.count() == 1


def test_filters_dir_time_window(tmp_path):
    p = tmp_path / "r.db"
    make_recording(p, [("kalshi", d, t, t, f"{d}{t}") for t in range(10) for d in ("in", "out")])
    with Recording(p) as rec:
        got = [f.payload for f in rec.frames(Filters(dir="out", t_from_ns=3, t_to_ns=6))]
        assert got == ["out3", "out4", "out5"]


def test_reader_is_read_only_and_leaves_file_unchanged(tmp_path):
    p = tmp_path / "r.db"
    make_recording(p, [("kalshi", "in", i, i, f"f{i}") for i in range(100)])
    before = sha(p)
    os.chmod(p, 0o444)
    with Recording(p) as rec:
        assert sum(1 for _ in rec.frames()) == 100
        with pytest.raises(sqlite3.OperationalError):
            rec.db.execute("DELETE FROM frames")
    assert sha(p) == before


@pytest.mark.parametrize("kind", ["missing", "text", "foreign", "newer", "truncated", "empty"])
def test_bad_recordings_give_clear_errors(tmp_path, kind):
    p = tmp_path / "bad.db"
    if kind == "text":
        p.write_text("hello, not a database\n" * 100)
    elif kind == "foreign":
        db = sqlite3.connect(p)
        db.execute("CREATE TABLE notes(x)")
        db.commit()
        db.close()
    elif kind == "newer":
        make_recording(p, [("kalshi", "in", 1, 1, "x")])
        db = sqlite3.connect(p)
        db.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
        db.commit()
        db.close()
    elif kind == "truncated":
        make_recording(p, [("kalshi", "in", i, i, "x" * 500) for i in range(2000)])
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 3])
    elif kind == "empty":
        p.write_bytes(b"")
    with pytest.raises(RecordingError) as ei:
        with Recording(p) as rec:
            list(rec.frames())
    msg = str(ei.value)
    assert str(p) in msg
    expected = {"missing": "does not exist", "text": "not a readable SQLite", "foreign": "not a harness recording",
                "newer": "newer than this harness", "truncated": "", "empty": "not a harness recording"}[kind]
    assert expected in msg


def test_second_writer_is_refused(tmp_path):
    p = tmp_path / "r.db"
    w = RecordingWriter(p)
    try:
        with pytest.raises(RecordingError, match="being written by another process"):
            RecordingWriter(p)
    finally:
        w.close()
    RecordingWriter(p).close()  # free again once the first is closed


def test_writer_commits_by_count_and_by_time(tmp_path):
    p = tmp_path / "r.db"
    w = RecordingWriter(p, batch_frames=10, batch_ms=30)
    c = w.connection("kalshi", "u")
    for i in range(25):
        w.frame(c, "in", i, i, "text", "x")
    w.flush()
    ro = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    assert ro.execute("SELECT count(*) FROM frames").fetchone()[0] == 25  # visible before close
    w.frame(c, "in", 99, 99, "text", "late")
    import time
    deadline = time.monotonic() + 5
    while ro.execute("SELECT count(*) FROM frames").fetchone()[0] < 26:
        assert time.monotonic() < deadline, "time-based commit did not happen"
        time.sleep(0.01)
    w.close()
    assert w.commits >= 3


def test_writer_error_surfaces_and_keeps_committed_frames(tmp_path):
    p = tmp_path / "r.db"
    w = RecordingWriter(p, batch_frames=5, batch_ms=5)
    c = w.connection("kalshi", "u")
    for i in range(10):
        w.frame(c, "in", i, i, "text", f"f{i}")
    w.flush()
    # Break the database under the writer: a trigger that fails every insert.
    other = sqlite3.connect(p)
    other.execute("CREATE TRIGGER boom BEFORE INSERT ON frames BEGIN SELECT RAISE(FAIL, 'disk says no'); END")
    other.commit()
    other.close()
    with pytest.raises(RecordingError, match="disk says no"):
        for i in range(10, 10_000):
            w.frame(c, "in", i, i, "text", f"f{i}")
            if i % 100 == 0:
                import time
                time.sleep(0.01)
    with pytest.raises(RecordingError):
        w.close()
    db = sqlite3.connect(p)
    assert [r[0] for r in db.execute("SELECT payload FROM frames ORDER BY id")] == [f"f{i}" for i in range(10)]


def test_events_http_and_frame_ids(tmp_path):
    p = tmp_path / "r.db"
    w = RecordingWriter(p)
    c = w.connection("bitstamp", "wss://ws.bitstamp.net")
    fid = w.frame(c, "in", 5, 5, "text", "{}")
    w.event("gap", 6, 6, c, {"from_ns": 1, "to_ns": 6})
    w.http("GET", "https://www.bitstamp.net/api/v2/order_book/btcusd", 7, status=200, venue="bitstamp", response_body="{}")
    w.close_connection(c, 8, 1006, "abnormal")
    w.close()
    with Recording(p) as rec:
        assert rec.frame(fid).payload == "{}"
        assert rec.events()[0]["detail"] == {"from_ns": 1, "to_ns": 6}
        assert rec.http()[0]["status"] == 200
        conn = rec.connections()[0]
        assert (conn["closed_ns"], conn["close_code"], conn["close_reason"]) == (8, 1006, "abnormal")


def test_merged_sessions_deliver_every_row_read_before_damage(tmp_path, monkeypatch):
    """Rows of several sessions are merged and handed out a batch at a time: when one
    session's rows stop at a damaged page, the rows merged before it still come out,
    then the error."""
    p = tmp_path / "two.db"
    make_recording(p, [("kalshi", "in", t, t, "{}") for t in (1, 2, 3)])
    con = sqlite3.connect(p)  # a second session: the same connection's rows, later
    con.execute("INSERT INTO sessions (id, started_ns, mode) SELECT 2, started_ns, mode FROM sessions")
    con.executemany("INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, size)"
                    " VALUES (2, 1, 'in', ?, ?, 'text', '{}', 2)", [(t, t) for t in (10, 11, 12)])
    con.commit()
    con.close()
    real = Recording._session_batches

    def first_session_breaks(self, f, sid):
        for batch in real(self, f, sid):
            if sid == 1:
                yield batch[:2]
                raise RecordingError("page 7 is damaged")
            yield batch

    monkeypatch.setattr(Recording, "_session_batches", first_session_breaks)
    got = []
    with Recording(p) as rec:
        with pytest.raises(RecordingError, match="damaged"):
            for row in rec.rows():
                got.append(row[4])
    assert got == [1, 2]
