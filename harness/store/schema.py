"""Recording schema: DDL, version and the checks that tell a recording from any other file.

``PRAGMA application_id`` marks the file as a harness recording; ``PRAGMA user_version``
is the schema version. Column names of ``frames`` are a public contract (scripts and
Datasette queries rely on them): add columns, never rename.
"""

from __future__ import annotations

import sqlite3

from harness.errors import RecordingError

APPLICATION_ID = 0x4B48524E  # "KHRN": Kalshi harness recording
SCHEMA_VERSION = 1

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

REQUIRED_TABLES = ("sessions", "connections", "frames", "events", "http")
FRAME_COLUMNS = ("id", "session_id", "conn_id", "dir", "t_wall_ns", "t_mono_ns", "opcode", "payload", "type", "size")


def create(conn: sqlite3.Connection) -> None:
    conn.executescript(DDL)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


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
