"""The pipeline's session log: a separate SQLite file (``harness replay REC --out OUT.db``).

Never the recording being replayed: ``SessionLog`` refuses a path that is the recording
(same file), and a recording opened for replay is read-only anyway. The log is written to
``OUT.db.tmp-<pid>`` and renamed over ``OUT.db`` on ``close()``, so a crashed or
interrupted run never leaves a half-written log under the final name (an existing
``OUT.db`` is replaced).

Schema (``PRAGMA application_id = 0x4B48504C`` "KHPL", ``user_version = 1``)::

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
    settlements(ticker TEXT PRIMARY KEY, close_ns INTEGER, strike_type TEXT,
                floor_strike REAL, cap_strike REAL, strike_source TEXT,
                settlement_value REAL, settlement_source TEXT, result TEXT,
                proxy_avg REAL, proxy_n INTEGER, proxy_error REAL,
                baseline_avg REAL, baseline_n INTEGER, baseline_error REAL,
                proxy_outcome TEXT, outcome_agrees INTEGER)

Rows are buffered and inserted with ``executemany`` every ``flush_rows`` rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from harness.errors import ConfigError, RecordingError

APPLICATION_ID = 0x4B48504C  # "KHPL"
VERSION = 1

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
CREATE TABLE settlements (
    ticker TEXT PRIMARY KEY, close_ns INTEGER, strike_type TEXT, floor_strike REAL,
    cap_strike REAL, strike_source TEXT, settlement_value REAL, settlement_source TEXT,
    result TEXT, proxy_avg REAL, proxy_n INTEGER, proxy_error REAL, baseline_avg REAL,
    baseline_n INTEGER, baseline_error REAL, proxy_outcome TEXT, outcome_agrees INTEGER);
"""

INDEX_COLS = ("ts_ns", "value", "valid", "published", "reason", "venues", "excluded", "baseline",
              "utilized_depth", "size_cap", "sigma")
SIGNAL_COLS = ("ts_ns", "ticker", "side", "first_ts_ns", "edge", "edge_first", "price", "size",
               "fee_per_contract", "fair", "index_value", "index_ts_ns", "sigma", "yes_bid", "yes_ask",
               "quote_ts_ns", "quote_age_ns", "index_at_quote", "index_move")
SETTLEMENT_COLS = ("ticker", "close_ns", "strike_type", "floor_strike", "cap_strike", "strike_source",
                   "settlement_value", "settlement_source", "result", "proxy_avg", "proxy_n",
                   "proxy_error", "baseline_avg", "baseline_n", "baseline_error", "proxy_outcome",
                   "outcome_agrees")


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

    def settlements(self, evals: list) -> None:
        self.db.executemany(
            f"INSERT OR REPLACE INTO settlements ({','.join(SETTLEMENT_COLS)}) VALUES ({','.join('?' * len(SETTLEMENT_COLS))})",
            [tuple(getattr(e, c) if c != "outcome_agrees" else (None if e.outcome_agrees is None else int(e.outcome_agrees))
                   for c in SETTLEMENT_COLS) for e in evals],
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
