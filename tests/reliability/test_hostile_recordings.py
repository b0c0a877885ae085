"""Recordings are untrusted input: damaged rows give findings or clear errors, never a
traceback, and reading never changes the file."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from harness import venues
from harness.cli import main
from harness.errors import RecordingError
from harness.replay.source import CountingSink, replay
from harness.store import Recording
from tests.helpers import make_recording


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def damaged(tmp_path):
    p = tmp_path / "damaged.db"
    make_recording(p, [("kalshi", "in", i, i, '{"type":"ticker","sid":1,"msg":{}}') for i in range(1, 50)])
    con = sqlite3.connect(p)
    con.executescript(
        """
        INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
          VALUES (1, 1, 'in', 60, 60, 'text', NULL, NULL, 0);                     -- NULL payload
        INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
          VALUES (1, 1, 'in', 61, 61, 'text', x'ff00fe', NULL, 3);                -- binary where text expected
        INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
          VALUES (1, 99, 'in', 62, 62, 'text', '{"type":"x"}', NULL, 12);         -- unknown connection
        INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
          VALUES (1, 1, 'in', 'noon', 'noon', 'text', '{}', 42, 'big');           -- wrong column types
        INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
          VALUES (1, 1, 'in', 5, 5, 'text', '{"type":"ticker"}', NULL, 17);       -- inserted out of order
        INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
          VALUES (1, 1, 'in', 70, 70, 'text', '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[', NULL, 1);
        INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
          VALUES (1, 1, 'in', 71, 71, 'text', '{"type":"ticker","msg":{"price":1e999999,"x":NaN}}', NULL, 1);
        """
    )
    con.commit()
    con.close()
    return p


def test_replay_of_damaged_rows_goes_on_and_leaves_file_unchanged(damaged):
    before = sha(damaged)
    with Recording(damaged) as rec:
        sink = CountingSink(classify=venues.classify)
        stats = replay(rec, sink, speed=None)
    # The row with text times cannot be placed on the timeline: skipped and reported.
    assert stats.frames == 49 + 6
    assert len(stats.bad_rows) == 1
    assert sha(damaged) == before


def test_decoders_report_damaged_rows_and_go_on(damaged):
    session = venues.get("kalshi").new_session()
    errors = 0
    with Recording(damaged) as rec:
        for f in rec.frames():
            try:
                session.feed(f.payload if f.payload is not None else "", f.id)
            except Exception as e:  # only the harness's own errors are acceptable
                from harness.errors import HarnessError

                assert isinstance(e, HarnessError), f"frame {f.id}: {type(e).__name__}: {e}"
                errors += 1
    assert errors >= 3


def test_cli_on_damaged_recording_never_tracebacks(damaged, capsys):
    for args in (["replay", str(damaged)], ["replay", str(damaged), "--json"], ["inspect", str(damaged)], ["inspect", str(damaged), "--json"]):
        with pytest.raises(SystemExit) as ei:
            main(args)
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert ei.value.code in (0, 1, 2)


def test_huge_payload_round_trips(tmp_path):
    p = tmp_path / "big.db"
    big = '{"type":"l2_data","x":"' + "9" * (50 * 1024 * 1024) + '"}'
    make_recording(p, [("coinbase", "in", 1, 1, big)])
    with Recording(p) as rec:
        f = next(rec.frames())
        assert len(f.payload) == len(big)
        venues.classify("coinbase", f.payload)  # must not raise on a 50 MB frame


def test_database_of_another_application_is_refused(tmp_path, capsys):
    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE frames (id INTEGER PRIMARY KEY, payload TEXT)")
    con.commit()
    con.close()
    with pytest.raises(RecordingError, match="not a harness recording"):
        Recording(p)
    with pytest.raises(SystemExit) as ei:
        main(["replay", str(p)])
    assert ei.value.code == 2


@pytest.mark.parametrize("url", ["x'2f6d61726b657473'", "x'2f6f726465725f626f6f6b2f627463757364'", "42"])
def test_rest_row_whose_url_is_not_text_is_left_out(tmp_path, url):
    """A REST row's URL stored as a blob ("/markets", "/order_book/btcusd" as bytes) or a
    number: the pipeline cannot use it and goes on without it."""
    p = tmp_path / "rest.db"
    make_recording(p, [("kalshi", "in", i, i, '{"type":"ticker","sid":1,"msg":{}}') for i in range(1, 5)])
    con = sqlite3.connect(p)
    con.execute("INSERT INTO http (session_id, venue, method, url, status, response_body, t_recv_ns)"
                f" VALUES (1, 'kalshi', 'GET', {url}, 200, '{{}}', 2)")
    con.commit()
    con.close()
    with pytest.raises(SystemExit) as ei:
        main(["replay", str(p)])
    assert ei.value.code == 0
