"""Full pipeline (decode, books, BRTI proxy at 5 Hz, fair value, signals) over the real
cryptofeed recordings, against plain replay into a no-op sink measured in the same run;
one BRTI computation over four 1,000-level books; a cProfile of the hot path."""

from __future__ import annotations

import cProfile
import dataclasses
import io
import os
import pstats
import random
import tempfile
import time
from pathlib import Path

from bench.common import Row, best_of
from harness.pipeline import BrtiCalculator, PipelineConfig, VenueBook
from harness.pipeline.stages import Pipeline
from harness.replay.source import NullSink, replay
from harness.store import Recording
from harness.store.importers import import_files

REALDATA = Path(__file__).resolve().parent.parent.parent / "shared" / "realdata" / "cryptofeed"
PROFILE = Path(__file__).resolve().parent / "PROFILE_pipeline.txt"
# one recording per venue: they are from different dates, so each runs its own pipeline
SOURCES = {
    "coinbase": ["COINBASE.jsonl.zst"],  # 2026, BTC-USD + ETH-USD, 5 MB BTC snapshot frame
    "kraken": ["KRAKEN.jsonl.zst"],  # 2021 v1, 10 pairs (no BTC/USD: decoded, books kept, no index input)
    "gemini": ["GEMINI.jsonl.zst"],  # 2026, 10 symbols incl. BTCUSD
    "bitstamp": ["legacy_BITSTAMP.ws.19.0.txt", "legacy_BITSTAMP.http.18.0.txt"],  # 2021, btcusd + REST snapshot
}

NOTES = [
    "- pipeline: `bench/PROFILE_pipeline.txt` holds a cProfile top-15 (by own time) of the "
    "full pipeline over the four real recordings; decoding the venue JSON into Decimal "
    "levels and the L2 book updates dominate, the index itself is a small share.",
    "- pipeline: the real recordings are short (about 6,800 frames together) and the "
    "Coinbase file carries one 5 MB BTC-USD snapshot frame (46,000 levels) whose decode "
    "alone costs about as much as thousands of ordinary frames; frames/s is therefore "
    "reported with and without that one frame.",
    "- pipeline: the frames/s target is missed on these recordings because the per-tick "
    "cost (5 Hz: re-converting a changed deep book, ~2.7 ms for Coinbase's ~3,300 levels a side in the "
    "5% band, plus one BRTI computation) is spread over few frames (40 frames/s recorded); "
    "real-time headroom is the relevant figure (the note on the first row).",
    "- pipeline: book conversion (Decimal -> float) is done only for books that changed since "
    "the previous 200 ms tick, for the levels within the 5% dynamic-cap band (50..5,000 a side).",
]


def _import(tmp: str) -> dict[str, str]:
    out = {}
    for venue, files in SOURCES.items():
        paths = [REALDATA / f for f in files]
        if not all(p.exists() for p in paths):
            continue
        db = os.path.join(tmp, f"{venue}.db")
        import_files("cryptofeed", [str(p) for p in paths], db)
        out[venue] = db
    return out


def _config() -> PipelineConfig:
    c = PipelineConfig()
    return dataclasses.replace(c, brti=dataclasses.replace(c.brti, min_venues=1))


def _pipeline(db: str, **kw) -> Pipeline:
    p = Pipeline(_config(), keep=False, **kw)
    with Recording(db) as rec:
        p.attach_http(rec.http())
        replay(rec, p)
    return p.finish()


def _raw(db: str) -> int:
    with Recording(db) as rec:
        return replay(rec, NullSink()).frames


def _frames(db: str) -> int:
    with Recording(db) as rec:
        return rec.count()


def _span_s(db: str) -> float:
    with Recording(db) as rec:
        a, b = rec.db.execute("SELECT min(t_wall_ns), max(t_wall_ns) FROM frames").fetchone()
    return (b - a) / 1e9


def _biggest_frame_cost(db: str) -> float:
    """Seconds to decode the largest frame of a recording in a fresh venue session."""
    from harness import venues

    with Recording(db) as rec:
        row = rec.db.execute("SELECT id FROM frames ORDER BY length(payload) DESC LIMIT 1").fetchone()
        f = rec.frame(row[0])
    sess = venues.get(f.venue).new_session()
    t = time.perf_counter()
    sess.feed(f.payload)
    return time.perf_counter() - t


def _books(n_venues: int = 4, levels: int = 1000, seed: int = 1) -> list[VenueBook]:
    rng = random.Random(seed)
    out = []
    for v in range(n_venues):
        mid = 65000.0 + rng.uniform(-5, 5)
        bids = [(round(mid - 0.5 - 0.5 * i, 2), round(rng.uniform(0.001, 2.0), 6)) for i in range(levels)]
        asks = [(round(mid + 0.5 + 0.5 * i, 2), round(rng.uniform(0.001, 2.0), 6)) for i in range(levels)]
        out.append(VenueBook(f"v{v}", bids, asks, 0))
    return out


def _profile(dbs: dict[str, str]) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for db in dbs.values():
        _pipeline(db)
    prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.strip_dirs().sort_stats("tottime").print_stats(15)
    PROFILE.write_text(
        "cProfile of the full pipeline (decode, books, BRTI proxy at 5 Hz, signals) over the\n"
        f"real recordings {', '.join(dbs)} (bench/bench_pipeline.py); top 15 by own time.\n\n"
        + s.getvalue()
    )


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        dbs = _import(tmp)
        if dbs:
            n = sum(_frames(db) for db in dbs.values())
            raw = sum(best_of(lambda db=db: _raw(db)) for db in dbs.values())
            full = sum(best_of(lambda db=db: _pipeline(db)) for db in dbs.values())
            big = _biggest_frame_cost(dbs["coinbase"]) if "coinbase" in dbs else 0.0
            per = ", ".join(f"{v} {_frames(db):,}" for v, db in dbs.items())
            rows.append(Row("pipeline", "full pipeline --speed max: frames/s", n / full, "frames/s", n / raw,
                            ">= 100k/s", n / full >= 100_000,
                            f"{n:,} frames ({per}); {sum(_span_s(db) for db in dbs.values()) / full:,.0f}x real time; "
                            "baseline = replay into a no-op sink"))
            rows.append(Row("pipeline", "full pipeline without the 5 MB Coinbase snapshot frame", (n - 1) / max(full - big, 1e-9),
                            "frames/s", n / raw, ">= 100k/s", (n - 1) / max(full - big, 1e-9) >= 100_000,
                            f"that one frame decodes in {big * 1e3:.0f} ms"))
            narrow = sum(best_of(lambda db=db: _pipeline(db, band=0.01)) for db in dbs.values())
            rows.append(Row("pipeline", "full pipeline, book levels within 1% (not 5%) of the top", n / narrow, "frames/s",
                            n / raw, ">= 100k/s", n / narrow >= 100_000,
                            "the index then moves by up to ~2 USD on Coinbase (cap sample cut)"))
            _profile(dbs)
        calc = BrtiCalculator()
        books = _books()
        calc.compute(books, 0)
        reps = 200
        t = best_of(lambda: [calc.compute(books, 0) for _ in range(reps)])
        ms = t / reps * 1e3
        fixed = BrtiCalculator(dataclasses.replace(_config().brti, size_cap=5.0))
        tf = best_of(lambda: [fixed.compute(books, 0) for _ in range(reps)]) / reps * 1e3
        rows.append(Row("pipeline", "BRTI compute, 4 books x 1,000 levels a side", ms, "ms", None, "< 1 ms", ms < 1.0,
                        f"float levels, 0.5 USD apart, dynamic cap; {tf:.2f} ms with a fixed cap"))
    return rows
