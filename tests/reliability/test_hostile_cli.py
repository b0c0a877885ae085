"""Untrusted recordings through the real CLI (`python -m harness ...` subprocesses):
truncated, foreign, newer schema, corrupt pages, garbage in every column, out-of-order
rows, huge payloads. Each command either refuses with exit 2 and a message naming the
file, or goes on and reports; never a traceback, never a hang, and reading never changes
the file (bytes and mtime)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import make_recording
from tests.reliability.streamer import REPO

T0 = 1_795_000_000_000_000_000


def _kalshi(i: int) -> str:
    return json.dumps({"type": "orderbook_delta", "sid": 1, "seq": i, "msg": {
        "market_ticker": "KXBTC15M-26NOV250100-00", "price_dollars": "0.4800", "delta_fp": "1.00", "side": "yes"}})


def _coinbase(i: int) -> str:
    return json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-11-25T00:00:00Z", "sequence_num": i,
                       "events": [{"type": "update", "product_id": "BTC-USD", "updates": [
                           {"side": "bid", "event_time": "2026-11-25T00:00:00Z", "price_level": f"90000.{i % 100:02d}",
                            "new_quantity": "0.5"}]}]})


def _sql(script: str):
    def apply(p):
        con = sqlite3.connect(p)
        con.executescript(script)
        con.commit()
        con.close()
    return apply


def _truncate(frac: float):
    def apply(p):
        with open(p, "r+b") as f:
            f.truncate(int(os.path.getsize(p) * frac))
    return apply


def _corrupt_pages(p):
    b = bytearray(open(p, "rb").read())
    for off in range(4096 * 3, len(b), 4096 * 7):
        b[off:off + 200] = bytes((off + i) * 37 % 256 for i in range(200))
    open(p, "wb").write(b)


def _random_bytes(p):
    open(p, "wb").write(bytes(i * 131 % 251 for i in range(100_000)))


_GARBAGE = f"""
INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size) VALUES
 (1, 1, 'in', {T0}+1, 1, 'text', NULL, NULL, 0),
 (1, 1, 'in', {T0}+2, 2, 'text', x'ff00fe', NULL, 3),
 (1, 99, 'in', {T0}+3, 3, 'text', '{{"type":"x"}}', NULL, 12),
 (1, 1, 'in', 'noon', 'noon', 'text', '{{}}', 42, 'big'),
 (1, 1, 'in', {T0}+5, 5, 42, 42, 42, 42),
 (1, 1, 'sideways', {T0}+6, 6, 'binary', 'text in a binary frame', NULL, 3),
 (1, 1, 'in', {T0}+7, 7.5, 'text', '{{"type":"ticker"}}', 'ticker', 1),
 (1, NULL, 'in', {T0}+8, 8, 'text', '{{"type":"ticker"}}', NULL, 1),
 (1, 2, NULL, {T0}+9, 9, NULL, NULL, NULL, NULL),
 (2, 2, 'in', 'x', 'y', 'text', '{{}}', NULL, 2),
 ('s', 2, 'in', {T0}+10, 2, 'text', '{{}}', NULL, 2);
INSERT INTO sessions (started_ns, mode) VALUES ('yesterday', 'alien');
INSERT INTO connections (session_id, venue, url) VALUES (1, 'nosuchvenue', 'ws://x');
INSERT INTO connections (session_id, venue, url, request_headers) VALUES (1, 'kraken', NULL, '{{not json');
INSERT INTO events (session_id, kind, t_wall_ns, detail) VALUES (1, 'gap', 'soon', '{{"from_ns": "x"}}');
INSERT INTO events (session_id, kind, t_wall_ns, detail) VALUES (1, 'nonsense', 1, 'not json');
INSERT INTO http (session_id, method, url, t_recv_ns, response_body) VALUES (1, 'GET', 'http://x', 'when', x'ff');
UPDATE sessions SET config = '{{broken' WHERE id = 1;
"""


def _garbage_everywhere(p):
    """A frames table rebuilt without types or NOT NULL (another tool wrote it), then
    garbage in every column and in every other table."""
    _sql("""
        CREATE TABLE f2 (id INTEGER PRIMARY KEY, session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size);
        INSERT INTO f2 SELECT * FROM frames; DROP TABLE frames; ALTER TABLE f2 RENAME TO frames;
        CREATE INDEX frames_by_time ON frames(session_id, t_mono_ns);""")(p)
    _sql(_GARBAGE)(p)


def _out_of_order(p):
    con = sqlite3.connect(p)
    con.execute(f"UPDATE frames SET t_mono_ns = 300000000 - t_mono_ns, t_wall_ns = {T0} + 300000000 - (t_wall_ns - {T0})"
                " WHERE id % 3 = 0")
    con.commit()
    con.close()


def _huge(p):
    con = sqlite3.connect(p)
    big = '{"type":"orderbook_delta","sid":1,"seq":5,"msg":{"x":"' + "9" * (50 * 1024 * 1024) + '"}}'
    con.execute("INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)"
                " VALUES (1,1,'in',?,?,'text',?,NULL,?)", (T0 + 10, 10, big, len(big)))
    con.execute("INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)"
                " VALUES (1,2,'in',?,?,'binary',?,NULL,?)", (T0 + 11, 11, bytes(10 * 1024 * 1024), 10 * 1024 * 1024))
    con.commit()
    con.close()


# name -> (damage, refused?: exit 2 at open with this text in the message)
VARIANTS = {
    "truncated_half": (_truncate(0.5), "not a readable SQLite database"),
    "truncated_header": (_truncate(0.001), "not a readable SQLite database"),
    "empty": (_truncate(0), "not a harness recording"),
    "random_bytes": (_random_bytes, "not a readable SQLite database"),
    "corrupt_pages": (_corrupt_pages, "damaged"),
    "newer_schema": (_sql("PRAGMA user_version = 99;"), "newer than this harness reads"),
    "foreign_application": (_sql("PRAGMA application_id = 1234;"), "not a harness recording"),
    "no_frames_table": (_sql("DROP TABLE frames;"), "missing tables frames"),
    "frames_missing_column": (_sql("ALTER TABLE frames DROP COLUMN type;"), "lacks columns type"),
    "garbage_everywhere": (_garbage_everywhere, None),
    "out_of_order": (_out_of_order, None),
    "huge_payloads": (_huge, None),
}

COMMANDS = {
    "inspect": ["inspect", "{rec}"],
    "inspect --json": ["inspect", "--json", "{rec}"],
    "replay": ["replay", "{rec}"],
    "replay --speed 1000 --json": ["replay", "--speed", "1000", "--json", "{rec}"],
    "check": ["check", "{rec}"],
    "export": ["export", "{rec}", "-o", "{out}"],
    "show": ["show", "{rec}", "{probe}"],
    "show --json": ["show", "--json", "{rec}", "{probe}"],
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    base = d / "base.db"
    frames = []
    for i in range(1, 300):
        frames.append(("kalshi", "in", T0 + i * 1_000_000, i * 1_000_000, _kalshi(i)))
        frames.append(("coinbase", "in", T0 + i * 1_000_000 + 5, i * 1_000_000 + 5, _coinbase(i)))
    make_recording(base, frames, venue_urls={"kalshi": "wss://api.elections.kalshi.com/trade-api/ws/v2",
                                             "coinbase": "wss://advanced-trade-ws.coinbase.com"})
    paths = {}
    for name, (damage, _) in VARIANTS.items():
        p = d / f"{name}.db"
        shutil.copy(base, p)
        damage(p)
        paths[name] = p
    return paths


def _fingerprint(p) -> tuple[str, int]:
    return hashlib.sha256(p.read_bytes()).hexdigest(), os.stat(p).st_mtime_ns


def _run(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`harness {' '.join(args)}` hung") from None


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_command_on_a_hostile_recording(hostile, variant, tmp_path):
    rec = hostile[variant]
    refused = VARIANTS[variant][1]
    before = _fingerprint(rec)
    probe = 603 if variant == "garbage_everywhere" else 598  # a garbage row; the last frame
    jobs = {name: [a.format(rec=rec, out=tmp_path / f"{i}.jsonl", probe=probe) for a in args]
            for i, (name, args) in enumerate(COMMANDS.items())}
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(jobs, pool.map(_run, jobs.values()), strict=True))
    for name, r in results.items():
        where = f"`harness {name}` on {variant}: exit {r.returncode}\n{r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr, where
        if refused:
            assert r.returncode == 2, where
            assert refused in r.stderr and str(rec) in r.stderr, where
        else:
            # 0: nothing to report; 1: `check` findings
            assert r.returncode in ((0, 1) if name.startswith("check") else (0,)), where
    assert _fingerprint(rec) == before, f"reading {variant} changed the file"


def test_garbage_rows_are_reported_not_hidden(hostile, tmp_path):
    rec = hostile["garbage_everywhere"]
    r = _run(["replay", "--json", "--no-pipeline", str(rec)])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["bad_rows"]["count"] >= 2  # the rows whose times are text
    out = tmp_path / "x.jsonl"
    r = _run(["export", str(rec), "-o", str(out)])
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stderr and "damaged rows" in r.stderr
    # Importing it back refuses the garbage that was exported as it was (opcode 42) by
    # file and line, without a traceback.
    r = _run(["import", "jsonl", str(out), "-o", str(tmp_path / "back.db"), "-q"])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{out}:" in r.stderr and "bad opcode 42" in r.stderr


def test_check_reports_out_of_order_rows(hostile):
    r = _run(["check", "--json", str(hostile["out_of_order"])])
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    found = {(c["name"], f["code"]) for c in doc["checks"] for f in c["findings"]}
    assert ("sequence", "out_of_order") in found, found


@pytest.mark.parametrize("t", [(1 << 63) - 1, -5], ids=["year_2262", "before_1970"])
def test_replay_of_a_frame_with_an_absurd_time_finishes(hostile, tmp_path, t):
    rec = tmp_path / "absurd.db"
    shutil.copy(hostile["out_of_order"].parent / "base.db", rec)
    _sql("INSERT INTO frames (session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)"
         f" VALUES (1, 1, 'in', {t}, {t}, 'text', '{{\"type\":\"ticker\"}}', NULL, 1);")(rec)
    for cmd in (["replay", str(rec)], ["check", str(rec)]):
        try:
            r = subprocess.run([sys.executable, "-m", "harness", *cmd], cwd=REPO, capture_output=True, text=True,
                               timeout=60)  # a hang guard: the run takes about a second
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{cmd[0]} still running after 60 s on a 600-frame recording") from None
        assert r.returncode in ((0,) if cmd[0] == "replay" else (0, 1)) and "Traceback" not in r.stderr, r.stderr
