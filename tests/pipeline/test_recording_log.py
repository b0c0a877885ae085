"""The live session log in the recording (``output.RecordingLog`` through the recorder's
writer) holds what the separate session log (``harness replay --out``) holds, under the same
table and column names, and ``compare_recorded`` tells a faithful one from a changed one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.pipeline.output import (
    FAIR_COLS,
    INDEX_COLS,
    SIGNAL_COLS,
    RecordingLog,
    SessionLog,
    compare_recorded,
    describe_comparison,
    settlement_row,
)
from harness.pipeline.stages import run_recording
from harness.store import Recording, RecordingWriter

SAMPLE = str(Path(__file__).resolve().parents[2] / "recordings" / "faults.db")  # has signals and a settlement


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The sample's pipeline rows written both ways: into a recording (RecordingLog) and
    into a separate session log (SessionLog); plus the pipeline that wrote them."""
    d = tmp_path_factory.mktemp("logs")
    rec, out = d / "live.db", d / "session.db"
    w = RecordingWriter(rec, mode="live")
    pipe = run_recording(SAMPLE, log=RecordingLog(w))
    w.close()
    run_recording(SAMPLE, log=SessionLog(out))
    assert w.session_log_errors == 0
    return rec, out, pipe


def rows(path, sql):
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_one_query_reads_both_files_alike(logged):
    rec, out, pipe = logged
    for sql in (f"SELECT {', '.join(INDEX_COLS)} FROM index_values ORDER BY ts_ns",
                f"SELECT {', '.join(SIGNAL_COLS)} FROM signals ORDER BY ts_ns, ticker, side",
                "SELECT ticker, settlement_value, proxy_avg, proxy_error, outcome_agrees FROM settlements ORDER BY ticker",
                f"SELECT {', '.join(FAIR_COLS)} FROM fair_values ORDER BY ts_ns, ticker"):
        assert rows(rec, sql) == rows(out, sql)
    # a fair value for every market priced at a tick: at most one row per market a tick,
    # each a probability, and the tick's index beside it
    fairs = rows(rec, "SELECT f.ts_ns, f.ticker, f.fair, f.index_value, i.value FROM fair_values f "
                      "JOIN index_values i ON i.ts_ns = f.ts_ns")
    assert len(fairs) > len(pipe.ticks) / 2 and len({(t, k) for t, k, *_ in fairs}) == len(fairs)
    assert all(0.0 <= f <= 1.0 and iv == v for _, _, f, iv, v in fairs)
    assert len(rows(rec, "SELECT * FROM index_values")) == len(pipe.ticks) > 1000
    assert len(rows(rec, "SELECT * FROM signals")) == len(pipe.signals) > 0
    assert rows(rec, "SELECT * FROM settlements")[0][2:] == settlement_row(pipe.evaluations[0])


def test_a_faithful_log_compares_identical(logged):
    rec, _, pipe = logged
    replayed = run_recording(SAMPLE)
    with Recording(rec) as r:
        c = compare_recorded(r.db, replayed)
    assert c["identical"] and c["recorded_digest"] == c["replay_digest"]
    assert c["index_rows"] == c["equal"] == len(pipe.ticks) and (c["differ"], c["missing"], c["extra"]) == (0, 0, 0)
    assert c["signals"] == c["replay_signals"] == len(pipe.signals) and c["signals_equal"]
    assert "identical to this replay's" in describe_comparison(c)


def test_a_changed_row_or_signal_is_found(logged, tmp_path):
    rec, _, pipe = logged
    changed = tmp_path / "changed.db"
    with sqlite3.connect(rec) as src, sqlite3.connect(changed) as dst:
        src.backup(dst)
    ts = pipe.ticks[500][0]
    with sqlite3.connect(changed) as db:
        db.execute("UPDATE index_values SET value = value + 0.01 WHERE ts_ns = ?", (ts,))
        db.execute("DELETE FROM signals WHERE id = (SELECT max(id) FROM signals)")
    with Recording(changed) as r:
        c = compare_recorded(r.db, pipe)
    assert not c["identical"] and (c["differ"], c["first_difference_ts_ns"], c["missing"]) == (1, ts, 0)
    assert not c["signals_equal"] and c["signals"] == c["replay_signals"] - 1
    line = describe_comparison(c)
    assert "DIFFERENT" in line and "1 differ" in line and "signals differ" in line


def test_nothing_to_compare_without_a_session_log(tmp_path):
    pipe = run_recording(SAMPLE)
    with Recording(SAMPLE) as r:  # version 1: no tables
        assert compare_recorded(r.db, pipe) is None
    empty = tmp_path / "empty.db"
    RecordingWriter(empty, mode="live").close()  # version 2, recorded without --pipeline
    with Recording(empty) as r:
        assert compare_recorded(r.db, pipe) is None
