"""The pipeline's session log: a separate SQLite file (``harness replay REC --out OUT.db``),
or, live, the recording itself (``RecordingLog``: ``harness record --pipeline``).

Never the recording being replayed: ``SessionLog`` refuses a path that is the recording
(same file), and a recording opened for replay is read-only anyway. The log is written to
``OUT.db.tmp-<pid>`` and renamed over ``OUT.db`` on ``close()``, so a crashed or
interrupted run never leaves a half-written log under the final name (an existing
``OUT.db`` is replaced).

Schema (``PRAGMA application_id = 0x4B48504C`` "KHPL", ``user_version = 2``; 1 had no ``fair_values``)::

    meta(key TEXT PRIMARY KEY, value TEXT)
        recording, harness_version, config (JSON of PipelineConfig), max_levels, band,
        written_ns (harness time of the last frame)
    index_values(ts_ns INTEGER PRIMARY KEY,   -- cadence boundary (harness time, Unix ns)
                 value REAL,                  -- BRTI proxy; NULL when invalid
                 valid INTEGER, published INTEGER,   -- 0/1; published = whole second
                 reason TEXT,                 -- why invalid (too_few_venues ...)
                 venues TEXT,                 -- admitted venues, comma-separated
                 excluded TEXT,               -- JSON {venue: stale|empty|crossed_book|erroneous}
                 baseline REAL,               -- size-weighted top-of-book mid of fresh venues
                 utilized_depth REAL, size_cap REAL, sigma REAL)
    signals(id INTEGER PRIMARY KEY, ts_ns INTEGER, ticker TEXT, side TEXT,  -- buy_yes|sell_yes
            first_ts_ns INTEGER, edge REAL, edge_first REAL, price REAL, size REAL,
            fee_per_contract REAL, fair REAL, index_value REAL, index_ts_ns INTEGER,
            sigma REAL, yes_bid REAL, yes_ask REAL, quote_ts_ns INTEGER,
            quote_age_ns INTEGER, index_at_quote REAL, index_move REAL)
    fair_values(ts_ns INTEGER, ticker TEXT,   -- one row per market per tick it was priced on
                fair REAL,                    -- model probability of YES
                yes_bid REAL, yes_ask REAL, quote_ts_ns INTEGER,   -- the quote it faced
                index_value REAL, sigma REAL, PRIMARY KEY (ts_ns, ticker))
    settlements(ticker TEXT PRIMARY KEY, close_ns INTEGER, strike_type TEXT,
                floor_strike REAL, cap_strike REAL, strike_source TEXT,
                settlement_value REAL, settlement_source TEXT, result TEXT,
                proxy_avg REAL, proxy_n INTEGER, proxy_error REAL,
                baseline_avg REAL, baseline_n INTEGER, baseline_error REAL,
                proxy_outcome TEXT, outcome_agrees INTEGER)

Rows are buffered and inserted with ``executemany`` every ``flush_rows`` rows.

``RecordingLog`` hands the same rows to the recorder's ``RecordingWriter`` (its tables
``index_values``/``signals``/``settlements``, schema version 2: the same columns plus
``session_id``), so the recording has a single writer. ``compare_recorded`` tells how the
rows a live run left in a recording compare with a replay's.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from typing import Any

from harness.errors import ConfigError, RecordingError
from harness.store import schema
from harness.store.schema import FAIR_COLS, INDEX_COLS, SETTLEMENT_COLS, SIGNAL_COLS

APPLICATION_ID = 0x4B48504C  # "KHPL"
VERSION = 2  # 2: fair_values added

DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE index_values (
    ts_ns INTEGER PRIMARY KEY, value REAL, valid INTEGER NOT NULL, published INTEGER NOT NULL,
    reason TEXT, venues TEXT, excluded TEXT, baseline REAL, utilized_depth REAL, size_cap REAL,
    sigma REAL);
CREATE TABLE signals (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, ticker TEXT NOT NULL, side TEXT NOT NULL,
    first_ts_ns INTEGER, edge REAL, edge_first REAL, price REAL, size REAL, fee_per_contract REAL,
    fair REAL, index_value REAL, index_ts_ns INTEGER, sigma REAL, yes_bid REAL, yes_ask REAL,
    quote_ts_ns INTEGER, quote_age_ns INTEGER, index_at_quote REAL, index_move REAL);
CREATE INDEX signals_by_ticker ON signals(ticker, ts_ns);
CREATE TABLE fair_values (
    ts_ns INTEGER NOT NULL, ticker TEXT NOT NULL, fair REAL, yes_bid REAL, yes_ask REAL,
    quote_ts_ns INTEGER, index_value REAL, sigma REAL, PRIMARY KEY (ts_ns, ticker));
CREATE TABLE settlements (
    ticker TEXT PRIMARY KEY, close_ns INTEGER, strike_type TEXT, floor_strike REAL,
    cap_strike REAL, strike_source TEXT, settlement_value REAL, settlement_source TEXT,
    result TEXT, proxy_avg REAL, proxy_n INTEGER, proxy_error REAL, baseline_avg REAL,
    baseline_n INTEGER, baseline_error REAL, proxy_outcome TEXT, outcome_agrees INTEGER);
"""

__all__ = ["FAIR_COLS", "INDEX_COLS", "SETTLEMENT_COLS", "SIGNAL_COLS", "RecordingLog", "SessionLog", "compare_recorded",
           "describe_comparison", "pipeline_meta", "settlement_row", "signal_row"]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def signal_row(s: Any) -> tuple:
    q = s.quote
    return (s.ts_ns, s.ticker, s.side, s.first_ts_ns, s.edge, s.edge_first, s.price, s.size,
            s.fee_per_contract, s.fair, s.index_value, s.index_ts_ns, s.sigma, q.yes_bid, q.yes_ask,
            q.last_update_ns, s.quote_age_ns, s.index_at_quote, s.index_move)


def settlement_row(e: Any) -> tuple:
    return tuple(getattr(e, c) if c != "outcome_agrees" else (None if e.outcome_agrees is None else int(e.outcome_agrees))
                 for c in SETTLEMENT_COLS)


def pipeline_meta(pipe: Any) -> dict:
    """What a session log records about the pipeline that produced it."""
    return {"config": {r["section"] + "." + r["name"]: r["value"] for r in pipe.config.describe()},
            "book_levels": {"band": pipe.band, "min_levels": pipe.min_levels, "max_levels": pipe.max_levels}}


class SessionLog:
    """Writes the pipeline's results to ``path``; ``recording`` is the file being replayed
    (refused as a destination)."""

    def __init__(self, path: str | os.PathLike, *, recording: str | os.PathLike | None = None,
                 meta: dict[str, Any] | None = None, flush_rows: int = 2000):
        self.path = os.fspath(path)
        if recording is not None and _same_file(self.path, os.fspath(recording)):
            raise ConfigError(f"--out {self.path} is the recording being replayed",
                              hint="write the session log to a separate file, e.g. --out session.db")
        if os.path.isdir(self.path):
            raise ConfigError(f"--out {self.path} is a directory")
        self.tmp = f"{self.path}.tmp-{os.getpid()}"
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
        try:
            self.db = sqlite3.connect(self.tmp)
        except sqlite3.Error as e:
            raise RecordingError(f"cannot create {self.tmp} ({e})", hint="check the directory exists and is writable") from None
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self.db.execute(f"PRAGMA user_version = {VERSION}")
        self.db.executescript(DDL)
        self.flush_rows = flush_rows
        self._index: list[tuple] = []
        self._signals: list[tuple] = []
        self._fairs: list[tuple] = []
        self.closed = False
        if meta:
            self.set_meta(meta)

    def set_meta(self, meta: dict[str, Any]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(k, v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in meta.items()],
        )

    def index(self, row: tuple) -> None:
        self._index.append(row)
        if len(self._index) >= self.flush_rows:
            self.flush()

    def signal(self, sig: Any) -> None:
        self._signals.append(signal_row(sig))
        if len(self._signals) >= self.flush_rows:
            self.flush()

    def fair(self, row: tuple) -> None:
        self._fairs.append(row)
        if len(self._fairs) >= self.flush_rows:
            self.flush()

    def settlements(self, evals: list) -> None:
        self.db.executemany(
            f"INSERT OR REPLACE INTO settlements ({','.join(SETTLEMENT_COLS)}) VALUES ({','.join('?' * len(SETTLEMENT_COLS))})",
            [settlement_row(e) for e in evals],
        )

    def flush(self) -> None:
        if self._index:
            self.db.executemany(
                f"INSERT OR REPLACE INTO index_values ({','.join(INDEX_COLS)}) VALUES ({','.join('?' * len(INDEX_COLS))})",
                self._index,
            )
            self._index.clear()
        if self._signals:
            self.db.executemany(
                f"INSERT INTO signals ({','.join(SIGNAL_COLS)}) VALUES ({','.join('?' * len(SIGNAL_COLS))})",
                self._signals,
            )
            self._signals.clear()
        if self._fairs:
            self.db.executemany(
                f"INSERT OR REPLACE INTO fair_values ({','.join(FAIR_COLS)}) VALUES ({','.join('?' * len(FAIR_COLS))})",
                self._fairs,
            )
            self._fairs.clear()

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.db.commit()
        self.db.close()
        os.replace(self.tmp, self.path)
        self.closed = True

    def abort(self) -> None:
        if self.closed:
            return
        self.db.close()
        self.closed = True
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class RecordingLog:
    """The session log of a live run, written into the recording being made through its
    ``RecordingWriter`` (the one writer of the file; rows go in with the frames' batches).

    Same interface as ``SessionLog`` (the ``Pipeline.log`` object). The pipeline's meta
    (config, book levels) belongs in the session row's ``config`` (``pipeline_meta``),
    which is written when the writer opens: ``set_meta`` keeps nothing. Closing the log
    leaves the writer open: its owner closes it after the pipeline has finished.
    """

    def __init__(self, writer: Any):
        self.writer = writer
        self.closed = False

    def set_meta(self, meta: dict[str, Any]) -> None:
        pass

    def index(self, row: tuple) -> None:
        self.writer.index_value(row)

    def signal(self, sig: Any) -> None:
        self.writer.signal(signal_row(sig))

    def fair(self, row: tuple) -> None:
        self.writer.fair_value(row)

    def settlements(self, evals: list) -> None:
        for e in evals:
            self.writer.settlement(settlement_row(e))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    abort = close


# -- a live run's rows in a recording vs a replay's --------------------------------------------

_INDEX_INT = frozenset({"ts_ns", "valid", "published"})
_INDEX_REAL = frozenset({"value", "baseline", "utilized_depth", "size_cap", "sigma"})
_SIGNAL_INT = frozenset({"ts_ns", "first_ts_ns", "index_ts_ns", "quote_ts_ns", "quote_age_ns"})
_SIGNAL_REAL = frozenset(SIGNAL_COLS) - _SIGNAL_INT - {"ticker", "side"}


def _normalizer(cols: tuple[str, ...], ints: frozenset, reals: frozenset):
    """SQLite stores 5.0 in an INTEGER column as 5 and 5 in a REAL column as 5.0: compare
    rows as the columns' types, so a value is equal to itself after the round trip."""
    kinds = [("i" if c in ints else "r" if c in reals else "") for c in cols]

    def one(k: str, v: Any) -> Any:
        if k == "r" and isinstance(v, int):
            return float(v)
        if k == "i" and isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    def norm(row) -> tuple:
        return tuple(one(k, v) for k, v in zip(kinds, row, strict=True))

    return norm


_norm_index = _normalizer(INDEX_COLS, _INDEX_INT, _INDEX_REAL)
_norm_signal = _normalizer(SIGNAL_COLS, _SIGNAL_INT, _SIGNAL_REAL)


def log_digest(index_rows, signal_rows) -> str:
    """SHA-256 over index and signal rows (``INDEX_COLS``/``SIGNAL_COLS`` order) as stored:
    the same number for a recording's session log and for the pipeline that made it."""
    h = hashlib.sha256()
    for r in index_rows:
        h.update(repr(_norm_index(r)).encode())
    h.update(b"signals")
    for r in signal_rows:
        h.update(repr(_norm_signal(r)).encode())
    return h.hexdigest()


def compare_recorded(db: Any, pipe: Any) -> dict | None:
    """Compare the session log a live ``record --pipeline`` left in a recording (``db``: its
    read-only connection) with ``pipe``, a replay of that recording (``keep=True``).
    None when the recording holds no index rows (version 1, or recorded without the pipeline).

    The replay's rows are taken over the recorded rows' span (a live run covers its own
    session; a replay may cover more). ``identical`` when every row and signal is equal,
    which a deterministic pipeline gives on a recording of one live session; the digests are
    ``log_digest`` of each side."""
    if not schema.has_session_log(db):
        return None
    rec_ix = [tuple(r) for r in db.execute(f"SELECT {', '.join(INDEX_COLS)} FROM index_values ORDER BY ts_ns, id")]
    if not rec_ix:
        return None
    rec_sig = [tuple(r) for r in db.execute(f"SELECT {', '.join(SIGNAL_COLS)} FROM signals ORDER BY ts_ns, id")]
    lo, hi = rec_ix[0][0], rec_ix[-1][0]
    rep_ix = [r for r in pipe.ticks if lo <= r[0] <= hi]
    rep_sig = [signal_row(s) for s in pipe.signals if lo <= s.ts_ns <= hi]
    replayed = {r[0]: _norm_index(r) for r in rep_ix}
    equal = differ = missing = 0
    first_diff = None
    for r in rec_ix:
        mine = replayed.get(r[0])
        if mine is None:
            missing += 1
        elif mine == _norm_index(r):
            equal += 1
        else:
            differ += 1
            first_diff = r[0] if first_diff is None else first_diff
    recorded_ts = {r[0] for r in rec_ix}
    extra = sum(1 for r in rep_ix if r[0] not in recorded_ts)
    sig_equal = [_norm_signal(r) for r in rec_sig] == [_norm_signal(r) for r in rep_sig]
    rec_digest, rep_digest = log_digest(rec_ix, rec_sig), log_digest(rep_ix, rep_sig)
    return {
        "index_rows": len(rec_ix), "equal": equal, "differ": differ, "missing": missing, "extra": extra,
        "first_difference_ts_ns": first_diff, "first_ts_ns": lo, "last_ts_ns": hi,
        "signals": len(rec_sig), "replay_signals": len(rep_sig), "signals_equal": sig_equal,
        "recorded_digest": rec_digest, "replay_digest": rep_digest, "identical": rec_digest == rep_digest,
    }


def describe_comparison(c: dict) -> str:
    """One line for ``harness replay``'s summary."""
    from harness.timeparse import fmt_ns

    head = f"recorded session log (live): {c['index_rows']:,} index rows, {c['signals']:,} signals"
    if c["identical"]:
        return f"{head}: identical to this replay's (digest {c['recorded_digest'][:16]})"
    parts = [f"{c['equal']:,} rows equal"]
    if c["differ"]:
        parts.append(f"{c['differ']:,} differ (first at {fmt_ns(c['first_difference_ts_ns'])})")
    if c["missing"]:
        parts.append(f"{c['missing']:,} not computed by this replay")
    if c["extra"]:
        parts.append(f"{c['extra']:,} replay rows not in the recording")
    if not c["signals_equal"]:
        parts.append(f"signals differ ({c['signals']:,} recorded, {c['replay_signals']:,} replayed)")
    return f"{head}: DIFFERENT from this replay's: " + ", ".join(parts)
