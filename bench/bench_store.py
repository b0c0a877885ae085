"""Recording writer and reader against raw sqlite3 loops on the same schema."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time

from bench.common import Row, best_of
from harness.replay.source import NullSink, replay
from harness.store import Recording, RecordingWriter, schema

N = 300_000
PAYLOAD = '{"type":"orderbook_delta","sid":1,"seq":%d,"msg":{"market_ticker":"KXBTC15M-26JUL191145-45","price_dollars":"0.4800","delta_fp":"10.00","side":"yes","ts_ms":1786309548026}}'


def _rows():
    payloads = [PAYLOAD % i for i in range(N)]
    return payloads


def _raw_write(path, payloads):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    schema.create(db)
    sql = "INSERT INTO frames (id, session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size) VALUES (?,?,?,?,?,?,?,?,?,?)"
    batch = 2000
    for start in range(0, N, batch):
        db.execute("BEGIN")
        db.executemany(sql, [(i + 1, 1, 1, "in", 1_000 + i, i, "text", payloads[i], None, len(payloads[i])) for i in range(start, min(N, start + batch))])
        db.execute("COMMIT")
    db.close()


def _harness_write(path, payloads):
    w = RecordingWriter(path, mode="simulate")
    c = w.connection("kalshi", "ws://127.0.0.1/trade-api/ws/v2", 0)
    frame = w.frame
    for i in range(N):
        frame(c, "in", 1_000 + i, i, "text", payloads[i])
    w.close()


def run() -> list[Row]:
    rows = []
    payloads = _rows()
    with tempfile.TemporaryDirectory() as d:
        def fresh(name):
            p = os.path.join(d, name)
            for suf in ("", "-wal", "-shm"):
                if os.path.exists(p + suf):
                    os.unlink(p + suf)
            return p

        raw = best_of(lambda: _raw_write(fresh("raw.db"), payloads))
        ours = best_of(lambda: _harness_write(fresh("h.db"), payloads))
        rows.append(Row("store", "writer: frames/s (batched thread)", N / ours, "frames/s", N / raw, ">= 0.8x raw executemany"))
        rows[-1].ok = rows[-1].ratio >= 0.8

        rec = Recording(os.path.join(d, "h.db"))

        def raw_select():
            # the bare sqlite3 connection: no guard, no ordering across sessions, no Frame
            for _ in rec._raw.execute("SELECT id, session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type FROM frames ORDER BY t_mono_ns, id"):
                pass

        raw_r = best_of(raw_select)
        rep = best_of(lambda: replay(rec, NullSink(), speed=None))
        row = Row("store", "replay --speed max into no-op sink", N / rep, "frames/s", N / raw_r, ">= 700k/s and >= 0.5x raw SELECT")
        row.ok = row.value >= 700_000 and row.ratio >= 0.5
        rows.append(row)
        rec.close()

        # Memory: a 1M-frame recording replayed in a fresh process.
        big = os.path.join(d, "big.db")
        w = RecordingWriter(big, mode="simulate")
        c = w.connection("coinbase", "ws://127.0.0.1/", 0)
        for i in range(1_000_000):
            w.frame(c, "in", 1_000 + i, i, "text", payloads[i % N])
        w.close()
        code = (
            "import sys; from bench.common import max_rss_mb; from harness.store import Recording;"
            "from harness.replay.source import replay, CountingSink;"
            "r=Recording(sys.argv[1]); s=replay(r, CountingSink()); print(s.frames, max_rss_mb())"
        )
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, big], capture_output=True, text=True, check=True).stdout.split()
        el = time.perf_counter() - t
        rss = float(out[1])
        rows.append(Row("store", "replay 1M frames: peak RSS", rss, "MB", None, "< 150 MB", rss < 150, f"{int(out[0])} frames in {el:.1f}s (process total)"))
    return rows
