"""Venue layer on real recordings: classify + decode + apply to book, and Kraken checksums.

Baseline: a bare ``orjson.loads`` of the same frames in the same run (the least any
decoder must do). Real data comes from ../shared/realdata/cryptofeed; absent, the bench
says so and measures nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import Row
from harness import venues
from harness.store import Recording
from harness.store.importers import import_files

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "cryptofeed"
NOTES: list[str] = []


def _frames(path: Path, d: str) -> list[tuple[str, int, str]]:
    out = os.path.join(d, path.name + ".db")
    import_files("cryptofeed", [str(path)], out)
    with Recording(out) as rec:
        return [(f.venue, f.conn_id, f.payload) for f in rec.frames() if f.dir == "in" and f.opcode == "text"]


def _feed_all(frames) -> float:
    sessions = {}
    t = time.perf_counter()
    for venue, conn, payload in frames:
        s = sessions.get(conn)
        if s is None:
            s = sessions[conn] = venues.get(venue).new_session()
        venues.get(venue).classify(payload)
        s.feed(payload)
    return time.perf_counter() - t


def run() -> list[Row]:
    rows: list[Row] = []
    if not REAL.exists():
        NOTES.append("- venue benches skipped: ../shared/realdata not present")
        return rows
    with tempfile.TemporaryDirectory() as d:
        for name, small_types in (("COINBASE.jsonl.zst", ("l2_data/update",)), ("KRAKEN.jsonl.zst", ("book/update",))):
            frames = _frames(REAL / name, d)
            venue = frames[0][0]
            v = venues.get(venue)
            small = [f for f in frames if v.classify(f[2]) in small_types and len(f[2]) < 400]
            # Whole recording, cold books, as a replay meets it.
            el = min(_feed_all(frames) for _ in range(3))
            raw = min(_time_loads(frames) for _ in range(3))
            rows.append(Row("venues", f"{venue}: classify+decode+apply, whole recording ({len(frames)} frames)",
                            len(frames) / el, "frames/s", len(frames) / raw, "", None, "baseline: orjson.loads only"))
            # Small update frames on a warmed book: the steady state of a live feed.
            sessions = {}
            for vname, conn, payload in frames:  # warm: build books from the whole recording once
                sessions.setdefault(conn, venues.get(vname).new_session()).feed(payload)
            t = time.perf_counter()
            reps = 3
            for _ in range(reps):
                for _venue, conn, payload in small:
                    v.classify(payload)
                    sessions[conn].feed(payload)
            el_small = (time.perf_counter() - t) / reps
            raw_small = _time_loads(small)
            r = Row("venues", f"{venue}: small update frames (< 400 B, {len(small)}), warm books",
                    len(small) / el_small, "frames/s", len(small) / raw_small, ">= 200k frames/s")
            r.ok = r.value >= 200_000
            rows.append(r)
            if venue == "kraken":
                from harness.venues import kraken

                books = [b for s in sessions.values() for b in s.books.values()]
                n = 20000
                t = time.perf_counter()
                for i in range(n):
                    kraken.checksum(books[i % len(books)])
                us = (time.perf_counter() - t) / n * 1e6
                verified = sum(getattr(s, "checksums_verified", 0) for s in sessions.values())
                rows.append(Row("venues", "Kraken CRC32 checksum per update", us, "us", None, "< 10 us", us < 10,
                                f"{verified} checksums verified while warming"))
    return rows


def _time_loads(frames) -> float:
    t = time.perf_counter()
    for f in frames:
        orjson.loads(f[2])
    return time.perf_counter() - t
