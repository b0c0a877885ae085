"""Schema version 2: the live session log's tables in the recording (index_values, signals,
settlements), written through the recorder's writer; version-1 recordings keep reading
unchanged, and appending to one upgrades it."""

from __future__ import annotations

import hashlib
import io
import shutil
import sqlite3
from pathlib import Path

import pytest

from harness.errors import RecordingError
from harness.store import Recording, RecordingWriter, schema
from harness.store.export import export_jsonl
from harness.store.inspect import inspect_recording

REPO = Path(__file__).resolve().parents[2]
V1_SAMPLE = REPO / "recordings" / "rest_poll.db"  # committed, made before version 2 (faults.db was remade as version 2)
T0 = 1_700_000_000_000_000_000


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def index_row(ts_ns: int, value: float | None = 90_000.5) -> tuple:
    return (ts_ns, value, int(value is not None), int(ts_ns % 1_000_000_000 == 0), None if value else "too_few_venues",
            "coinbase,kraken", None, 90_000.25, 1.5, 2.0, 1e-4)


SIGNAL = (T0, "KXBTC15M-26NOV250045-45", "buy_yes", T0 - 400_000_000, 0.07, 0.06, 0.41, 10.0, 0.02, 0.5,
          90_000.5, T0, 1e-4, 0.39, 0.41, T0 - 5_000_000_000, 5_000_000_000, 89_950.0, 50.5)
SETTLEMENT = ("KXBTC15M-26NOV250045-45", T0, "greater_or_equal", 90_000.0, None, "lifecycle", 90_010.0, "rest",
              "yes", 90_009.5, 60, -0.5, 90_011.0, 60, 1.0, "yes", 1)


def table_cols(db, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def test_a_new_recording_is_version_2_with_the_session_log_tables(tmp_path):
    p = tmp_path / "r.db"
    RecordingWriter(p, mode="live").close()
    db = sqlite3.connect(p)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 2
    # the same columns as the separate session log (harness replay --out), plus id and session_id
    assert table_cols(db, "index_values") == ["id", "session_id", *schema.INDEX_COLS]
    assert table_cols(db, "signals") == ["id", "session_id", *schema.SIGNAL_COLS]
    assert table_cols(db, "settlements") == ["id", "session_id", *schema.SETTLEMENT_COLS]
    indexes = {r[0]: r[1] for r in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")}
    assert "(session_id,ts_ns)" in indexes["index_values_by_time"] and "(session_id,ts_ns)" in indexes["signals_by_time"]
    # the whole schema is on the first page: a file damaged further on still opens
    first_page = p.read_bytes()[:4096]
    assert all(name.encode() in first_page for name in (*schema.REQUIRED_TABLES, *schema.SESSION_LOG_TABLES))


def test_rows_go_in_with_the_frames_batches_and_carry_the_session(tmp_path):
    p = tmp_path / "r.db"
    w = RecordingWriter(p, mode="live", batch_ms=5)
    c = w.connection("coinbase", "wss://x")
    w.frame(c, "in", T0, 1, "text", '{"type":"x"}')
    w.index_value(index_row(T0))
    w.index_value(index_row(T0 + 200_000_000, None))
    w.signal(SIGNAL)
    w.settlement(SETTLEMENT)
    w.flush()
    # committed while the recorder is still open (a reader beside it sees them)
    ro = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    assert ro.execute("SELECT count(*) FROM index_values").fetchone()[0] == 2
    ro.close()
    w.close()
    db = sqlite3.connect(p)
    rows = db.execute(f"SELECT session_id, {', '.join(schema.INDEX_COLS)} FROM index_values ORDER BY ts_ns").fetchall()
    assert rows == [(w.session_id, *index_row(T0)), (w.session_id, *index_row(T0 + 200_000_000, None))]
    assert db.execute(f"SELECT {', '.join(schema.SIGNAL_COLS)} FROM signals").fetchall() == [SIGNAL]
    assert db.execute(f"SELECT {', '.join(schema.SETTLEMENT_COLS)} FROM settlements").fetchall() == [SETTLEMENT]
    assert (w.session_log_rows, w.session_log_errors) == (4, 0)


def test_a_row_sqlite_refuses_is_counted_and_never_fails_the_recording(tmp_path):
    p = tmp_path / "r.db"
    w = RecordingWriter(p, mode="live")
    c = w.connection("coinbase", "wss://x")
    w.frame(c, "in", T0, 1, "text", "a")
    w.index_value((T0, 1.0))  # too few columns
    w.signal((*SIGNAL[:-1], object()))  # a value sqlite3 cannot bind
    w.index_value(index_row(T0 + 200_000_000))
    w.frame(c, "in", T0 + 1, 2, "text", "b")
    w.close()
    assert w.error is None and (w.session_log_rows, w.session_log_errors) == (1, 2)
    db = sqlite3.connect(p)
    assert db.execute("SELECT count(*) FROM frames").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM index_values").fetchone()[0] == 1


def test_a_version_1_recording_reads_unchanged(tmp_path):
    before = sha(V1_SAMPLE)
    with Recording(V1_SAMPLE) as rec:
        assert rec.db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert not schema.has_session_log(rec.db)
        facts = inspect_recording(rec)
        n = export_jsonl(rec, io.BytesIO())
    assert facts["schema_version"] == 1 and facts["session_log"] is None
    assert n == facts["frames"]["total"] > 1000
    assert sha(V1_SAMPLE) == before


def test_appending_to_a_version_1_recording_upgrades_it_and_keeps_its_frames(tmp_path):
    p = tmp_path / "old.db"
    shutil.copy(V1_SAMPLE, p)
    with Recording(p) as rec:
        frames = rec.db.execute("SELECT count(*), max(id) FROM frames").fetchone()
    w = RecordingWriter(p, mode="live")
    c = w.connection("coinbase", "wss://x")
    fid = w.frame(c, "in", T0, 1, "text", "new")
    w.index_value(index_row(T0))
    w.close()
    assert fid == frames[1] + 1
    with Recording(p) as rec:
        assert rec.db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert rec.db.execute("SELECT count(*) FROM frames").fetchone()[0] == frames[0] + 1
        sl = inspect_recording(rec)["session_log"]
        assert export_jsonl(rec, io.BytesIO()) == frames[0] + 1  # export: frames only, as before
    assert sl["index_values"] == 1 and sl["by_session"] == {str(w.session_id): {"index_values": 1, "signals": 0,
                                                                                "settlements": 0, "fair_values": 0}}


@pytest.mark.parametrize("version,ok", [(1, True), (2, True), (3, False)])
def test_versions_read(tmp_path, version, ok):
    p = tmp_path / "r.db"
    RecordingWriter(p, mode="live").close()
    db = sqlite3.connect(p)
    db.execute(f"PRAGMA user_version = {version}")
    db.close()
    if ok:
        Recording(p).close()
    else:
        with pytest.raises(RecordingError, match="newer than this harness reads"):
            Recording(p)


def test_a_row_goes_in_the_transaction_of_the_last_frame_queued_before_it(tmp_path):
    """So a crash never leaves an index row on disk without the frames it came from."""
    w = RecordingWriter(tmp_path / "r.db", mode="live", batch_frames=10)
    c = w.connection("coinbase", "wss://x")
    w._stop = True  # stop the writer thread: this test runs its flush itself, deterministically
    w._wake.set()
    w._thread.join()
    for i in range(25):
        w.frame(c, "in", T0 + i, i, "text", "x")
    w.index_value(index_row(T0 + 24))
    statements: list[str] = []
    w._db.set_trace_callback(statements.append)
    w._flush()  # three transactions: 10, 10 and 5 frames
    w._db.set_trace_callback(None)
    w.close()
    kinds = [s.split()[0] if not s.startswith("INSERT INTO") else s.split()[2] for s in statements]
    at = kinds.index("index_values")
    # after two full transactions, in the third with the last 5 frames (one row per statement)
    assert kinds[:at].count("COMMIT") == 2 and kinds[at:] == ["index_values", *["frames"] * 5, "COMMIT"]
