"""Recording schema: DDL, version and the checks that tell a recording from any other file.

``PRAGMA application_id`` marks the file as a harness recording; ``PRAGMA user_version``
is the schema version. Column names of ``frames`` are a public contract (scripts and
Datasette queries rely on them): add columns, never rename.

Version 2 adds the live session log: ``index_values`` (one row per index tick),
``signals`` and ``settlements``, written by ``harness record --pipeline`` through the
recorder's writer thread. Their columns are those of the separate session log
``harness replay --out`` writes (``harness.pipeline.output``) plus ``session_id`` (and an
``id``), so one query (``SELECT ts_ns, value FROM index_values``) works on both files;
they are a public contract like ``frames``.

The three tables are created in every version-2 file, pipeline or not: a query or a
Datasette facet then works on any recording (empty = no pipeline ran) instead of failing
with "no such table", the writer needs no DDL mid-recording, and they cost a few empty
pages. Appending to a version-1 file adds them and marks it version 2 (tables are only
ever added). Readers accept versions 1 and 2 and never require the new tables
(``has_session_log``), so the committed version-1 recordings read unchanged.
"""

from __future__ import annotations

import re
import sqlite3

from harness.errors import RecordingError

APPLICATION_ID = 0x4B48524E  # "KHRN": Kalshi harness recording
SCHEMA_VERSION = 2

SESSION_MODES = ("live", "import", "simulate", "replay-capture")
EVENT_KINDS = ("connect", "disconnect", "reconnect", "gap", "error", "note", "fault", "finding")

DDL = """
CREATE TABLE IF NOT EXISTS sessions (
    id              INTEGER PRIMARY KEY,
    started_ns      INTEGER NOT NULL,           -- wall time, Unix ns
    ended_ns        INTEGER,                    -- NULL while recording or after a crash
    mode            TEXT NOT NULL,              -- live | import | simulate | replay-capture
    host            TEXT,
    harness_version TEXT,
    config          TEXT,                       -- JSON
    source          TEXT                        -- what was recorded or imported
);
CREATE TABLE IF NOT EXISTS connections (
    id               INTEGER PRIMARY KEY,
    session_id       INTEGER NOT NULL REFERENCES sessions(id),
    venue            TEXT NOT NULL,
    url              TEXT,
    opened_ns        INTEGER,
    closed_ns        INTEGER,
    close_code       INTEGER,
    close_reason     TEXT,
    request_headers  TEXT,                      -- JSON, redacted
    response_status  INTEGER,
    response_headers TEXT                       -- JSON, redacted
);
CREATE TABLE IF NOT EXISTS frames (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL,
    conn_id    INTEGER NOT NULL,
    dir        TEXT NOT NULL,                   -- 'in' | 'out'
    t_wall_ns  INTEGER NOT NULL,
    t_mono_ns  INTEGER NOT NULL,
    opcode     TEXT NOT NULL,                   -- text | binary | ping | pong | close
    payload,                                    -- TEXT for text frames, BLOB otherwise
    type       TEXT,                            -- venue classifier's message type
    size       INTEGER NOT NULL                 -- payload bytes
);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames(session_id, t_mono_ns);
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL,
    conn_id    INTEGER,
    kind       TEXT NOT NULL,                   -- connect | disconnect | reconnect | gap | error | note | fault | finding
    t_wall_ns  INTEGER NOT NULL,
    t_mono_ns  INTEGER,
    detail     TEXT                             -- JSON
);
CREATE INDEX IF NOT EXISTS events_by_time ON events(session_id, t_wall_ns);
CREATE TABLE IF NOT EXISTS http (
    id               INTEGER PRIMARY KEY,
    session_id       INTEGER NOT NULL,
    conn_id          INTEGER,
    venue            TEXT,
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    status           INTEGER,
    request_headers  TEXT,                      -- JSON, redacted
    request_body     TEXT,
    response_headers TEXT,                      -- JSON
    response_body    TEXT,
    t_sent_ns        INTEGER,                   -- wall time the request left
    t_recv_ns        INTEGER NOT NULL,          -- wall time the response arrived
    t_sent_mono_ns   INTEGER,
    t_recv_mono_ns   INTEGER
);
"""

# Version 2: the pipeline's session log, live (``harness record --pipeline``). No UNIQUE or
# NOT NULL beyond the ids and times: a derived row must never be able to fail the
# transaction that also carries frames.
SESSION_LOG_DDL = """
CREATE TABLE IF NOT EXISTS index_values (
    id             INTEGER PRIMARY KEY,
    session_id     INTEGER NOT NULL,
    ts_ns          INTEGER NOT NULL,            -- cadence boundary (harness time = receive wall time, Unix ns)
    value          REAL,                        -- BRTI proxy; NULL when invalid
    valid          INTEGER,                     -- 0/1
    published      INTEGER,                     -- 0/1: a whole-second value
    reason         TEXT,                        -- why invalid (too_few_venues ...)
    venues         TEXT,                        -- admitted venues, comma-separated
    excluded       TEXT,                        -- JSON {venue: stale|empty|crossed_book|erroneous}
    baseline       REAL,                        -- size-weighted top-of-book mid of fresh venues
    utilized_depth REAL,
    size_cap       REAL,
    sigma          REAL                         -- EWMA volatility of log returns (per sqrt second)
);
CREATE INDEX IF NOT EXISTS index_values_by_time ON index_values(session_id, ts_ns);
CREATE TABLE IF NOT EXISTS signals (
    id               INTEGER PRIMARY KEY,
    session_id       INTEGER NOT NULL,
    ts_ns            INTEGER NOT NULL,          -- tick the signal fired on
    ticker           TEXT,
    side             TEXT,                      -- buy_yes | sell_yes
    first_ts_ns      INTEGER,                   -- first tick the edge was seen (persistence)
    edge             REAL,
    edge_first       REAL,
    price            REAL,
    size             REAL,
    fee_per_contract REAL,
    fair             REAL,                      -- model probability of YES
    index_value      REAL,
    index_ts_ns      INTEGER,
    sigma            REAL,
    yes_bid          REAL,
    yes_ask          REAL,
    quote_ts_ns      INTEGER,                   -- the Kalshi quote's last update
    quote_age_ns     INTEGER,
    index_at_quote   REAL,
    index_move       REAL                       -- index now - index at the quote's update
);
CREATE INDEX IF NOT EXISTS signals_by_time ON signals(session_id, ts_ns);
CREATE TABLE IF NOT EXISTS settlements (
    id                INTEGER PRIMARY KEY,
    session_id        INTEGER NOT NULL,
    ticker            TEXT,
    close_ns          INTEGER,
    strike_type       TEXT,
    floor_strike      REAL,
    cap_strike        REAL,
    strike_source     TEXT,
    settlement_value  REAL,
    settlement_source TEXT,
    result            TEXT,
    proxy_avg         REAL,                     -- the proxy's 60 s average before the close
    proxy_n           INTEGER,
    proxy_error       REAL,                     -- proxy_avg - settlement_value
    baseline_avg      REAL,
    baseline_n        INTEGER,
    baseline_error    REAL,
    proxy_outcome     TEXT,
    outcome_agrees    INTEGER
);
CREATE TABLE IF NOT EXISTS fair_values (
    id            INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL,
    ts_ns         INTEGER NOT NULL,             -- index tick
    ticker        TEXT,
    fair          REAL,                         -- model probability of YES at this tick
    yes_bid       REAL,                         -- the market's quote the fair value is set against
    yes_ask       REAL,
    quote_ts_ns   INTEGER,                      -- that quote's last update
    index_value   REAL,
    sigma         REAL
);
CREATE INDEX IF NOT EXISTS fair_values_by_time ON fair_values(session_id, ts_ns);
"""
SESSION_LOG_TABLES = ("index_values", "signals", "settlements", "fair_values")
# The columns shared with the separate session log (harness.pipeline.output), in row order:
# the pipeline hands rows in this order to either file.
INDEX_COLS = ("ts_ns", "value", "valid", "published", "reason", "venues", "excluded", "baseline",
              "utilized_depth", "size_cap", "sigma")
SIGNAL_COLS = ("ts_ns", "ticker", "side", "first_ts_ns", "edge", "edge_first", "price", "size",
               "fee_per_contract", "fair", "index_value", "index_ts_ns", "sigma", "yes_bid", "yes_ask",
               "quote_ts_ns", "quote_age_ns", "index_at_quote", "index_move")
FAIR_COLS = ("ts_ns", "ticker", "fair", "yes_bid", "yes_ask", "quote_ts_ns", "index_value", "sigma")
SETTLEMENT_COLS = ("ticker", "close_ns", "strike_type", "floor_strike", "cap_strike", "strike_source",
                   "settlement_value", "settlement_source", "result", "proxy_avg", "proxy_n",
                   "proxy_error", "baseline_avg", "baseline_n", "baseline_error", "proxy_outcome",
                   "outcome_agrees")

REQUIRED_TABLES = ("sessions", "connections", "frames", "events", "http")
FRAME_COLUMNS = ("id", "session_id", "conn_id", "dir", "t_wall_ns", "t_mono_ns", "opcode", "payload", "type", "size")


def compact(ddl: str) -> str:
    """The DDL without its comments and spare blanks, as stored in ``sqlite_master``: the
    whole schema then fits the file's first page, so a file damaged further on still opens
    (and its frames before the damage can be read). The comments above are the docs."""
    ddl = re.sub(r"--[^\n]*", "", ddl)
    return re.sub(r"\s*([(),;])\s*", r"\1", re.sub(r"\s+", " ", ddl)).strip()


def create(conn: sqlite3.Connection) -> None:
    conn.executescript(compact(DDL + SESSION_LOG_DDL))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring a verified older recording up to this version before appending to it (only
    adds tables: a version-1 file, or a version-2 file made before ``fair_values`` was
    added to it, gets what it lacks). The caller holds the writer's lock."""
    if not set(SESSION_LOG_TABLES) <= tables(conn):
        conn.executescript(compact(SESSION_LOG_DDL))
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def has_session_log(conn) -> bool:
    """True when the file has the version-2 session-log tables (a version-1 file has not;
    readers count only those present: ``fair_values`` came later in version 2)."""
    return {"index_values", "signals", "settlements"} <= tables(conn)


def verify(conn: sqlite3.Connection, path: str) -> None:
    """Raise RecordingError unless ``conn`` is a harness recording this version can read."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise RecordingError(
            f"{path} is not a readable SQLite database ({e})",
            hint="is it truncated or not a recording? `harness inspect` only reads files made by `harness record/import/simulate`",
        ) from None
    if app_id != APPLICATION_ID:
        raise RecordingError(
            f"{path} is a SQLite database but not a harness recording (application_id={app_id:#x})",
            hint="make a recording with `harness record`, `harness import` or `harness simulate`",
        )
    if version > SCHEMA_VERSION:
        raise RecordingError(
            f"{path} has recording schema version {version}, newer than this harness reads ({SCHEMA_VERSION})",
            hint="upgrade harness (pip install -U harness) to read it",
        )
    if version < 1:
        raise RecordingError(f"{path} has no recording schema version", hint="the file is incomplete or foreign")
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise RecordingError(f"{path} is missing tables {', '.join(missing)}", hint="the recording is damaged")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(frames)")]
    absent = [c for c in FRAME_COLUMNS if c not in cols]
    if absent:
        raise RecordingError(f"{path}: frames table lacks columns {', '.join(absent)}", hint="the recording is damaged")
