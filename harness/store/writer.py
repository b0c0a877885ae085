"""Batched recording writer.

The receive path calls ``frame(...)``, which only appends a tuple to a deque and returns
the frame's id (ids are assigned here, so findings can name a frame before it is on disk).
A background thread drains the deque with one ``executemany`` per batch and commits every
``batch_frames`` frames or ``batch_ms`` milliseconds, whichever comes first: a crash loses
at most one commit window. ``close()`` flushes everything, closes the session row and
switches the file from WAL back to a single self-contained file.

A file lock refuses a second writer on the same file with a clear message.

The live pipeline's session log (``index_value``, ``signal``, ``settlement``: schema
version 2) rides the same thread and transactions: rows are queued without waking the
thread (5 Hz index rows, rare signals) and go in with the next batch, so a crash loses at
most the same commit window as frames. A derived row that SQLite refuses is counted in
``session_log_errors`` and dropped: it must never fail the transaction carrying frames.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import chain

from harness import __version__
from harness.errors import RecordingError
from harness.store import schema

_FRAME_SQL = (
    "INSERT INTO frames (id, session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)"
    " VALUES (?,?,?,?,?,?,?,?,?,?)"
)
# Rows per INSERT statement. sqlite3 releases the GIL around every statement step; one step
# per 100 rows instead of per row keeps the receive thread and the writer thread from
# convoying on the GIL, and is faster on its own too (see BENCHMARKS.md).
_ROWS_PER_STMT = 100
_FRAME_SQL_MULTI = _FRAME_SQL + ",(?,?,?,?,?,?,?,?,?,?)" * (_ROWS_PER_STMT - 1)


def _derived_sql(table: str, cols: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} (session_id, {', '.join(cols)}) VALUES (?{',?' * len(cols)})"


_INDEX_SQL = _derived_sql("index_values", schema.INDEX_COLS)
_SIGNAL_SQL = _derived_sql("signals", schema.SIGNAL_COLS)
_SETTLEMENT_SQL = _derived_sql("settlements", schema.SETTLEMENT_COLS)
_FAIR_SQL = _derived_sql("fair_values", schema.FAIR_COLS)
# what a malformed derived row raises (wrong arity, a type sqlite3 cannot bind): its own
# problem, never the recording's. Disk and file errors are OperationalError: not caught.
_BAD_ROW = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, TypeError, ValueError,
            OverflowError)


def _dumps(obj) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True, default=str)


def payload_size(payload: str | bytes | None) -> int:
    if payload is None:
        return 0
    if isinstance(payload, str):
        return len(payload) if payload.isascii() else len(payload.encode("utf-8", "surrogatepass"))
    return len(payload)


def describe_write_error(e: BaseException | None) -> str:
    """SQLite's own text ("disk I/O error") says little; its extended code names the cause."""
    name = getattr(e, "sqlite_errorname", None)
    cause = {"SQLITE_FULL": "the disk is full",
             "SQLITE_READONLY": "the file became read-only",
             "SQLITE_IOERR_WRITE": "a write failed (disk full, file size limit, or the file or file system became read-only)",
             "SQLITE_IOERR_FSYNC": "fsync failed (the disk or file system failed)",
             "SQLITE_IOERR_TRUNCATE": "a truncate failed (the file became read-only?)"}.get(name or "")
    text = f"{e}" if name is None else f"{e} ({name})"
    return f"{text}: {cause}" if cause else text


def _insert_frames(db: sqlite3.Connection, rows: list[tuple]) -> None:
    k = _ROWS_PER_STMT
    full = len(rows) - len(rows) % k
    if full:
        db.executemany(_FRAME_SQL_MULTI, [tuple(chain.from_iterable(rows[i:i + k])) for i in range(0, full, k)])
    if full < len(rows):
        db.executemany(_FRAME_SQL, rows[full:])


class RecordingWriter:
    """Append a session to a recording (created if absent).

    classify: optional ``(venue, payload) -> type`` used on the writer thread for text
    frames recorded without a type, so the receive path does not pay for it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        mode: str = "live",
        config: dict | None = None,
        source: str | None = None,
        batch_frames: int = 2000,
        batch_ms: float = 50.0,
        classify: Callable[[str, str | bytes], str | None] | None = None,
        started_ns: int | None = None,
    ):
        if mode not in schema.SESSION_MODES:
            raise ValueError(f"mode must be one of {schema.SESSION_MODES}")
        self.path = os.fspath(path)
        self.batch_frames = batch_frames
        self.batch_s = batch_ms / 1000.0
        self._classify = classify
        self._lock_fd = self._take_lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # 4 MB: inserts touch only the rightmost pages of the table and the time index;
            # 16 MB bought no throughput and grew a long recorder's RSS by 16 MB (bench/soak.py)
            self._db.execute("PRAGMA cache_size=-4096")
            existing = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if existing:
                schema.verify(self._db, self.path)
                schema.upgrade(self._db)
            else:
                schema.create(self._db)
            self._frame_ids = itertools.count(self._max_id("frames") + 1)
            self._conn_ids = itertools.count(self._max_id("connections") + 1)
            cur = self._db.execute(
                "INSERT INTO sessions (started_ns, mode, host, harness_version, config, source) VALUES (?,?,?,?,?,?)",
                (started_ns or time.time_ns(), mode, socket.gethostname(), __version__, _dumps(config or {}), source),
            )
            self.session_id = cur.lastrowid
        except sqlite3.Error as e:
            self._release_lock()
            raise RecordingError(f"cannot write recording {self.path}: {e}", hint="check the path, free space and permissions") from None
        except RecordingError:
            self._release_lock()
            raise
        self._conn_venue: dict[int, str] = {}
        self._frames: deque = deque()
        self._ops: deque = deque()  # (sql, params) for sessions/connections/events/http
        self._derived: deque = deque()  # (sql, params): the session log, never waking the thread
        self.session_log_rows = 0
        self.session_log_errors = 0
        self._wake = threading.Event()
        self._stop = False
        self._closed = False
        self.error: BaseException | None = None
        self.frames_written = 0
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name=f"recording-writer:{os.path.basename(self.path)}", daemon=True)
        self._thread.start()

    # -- locking ---------------------------------------------------------------------------
    def _take_lock(self) -> int:
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RecordingError(f"cannot create {lock_path}: {e.strerror}", hint="is the directory writable?") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RecordingError(
                f"{self.path} is being written by another process",
                hint="record to a different file, or stop the other `harness record`",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self.path + ".lock")
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def _max_id(self, table: str) -> int:
        return self._db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]

    # -- receive path ----------------------------------------------------------------------
    def frame(
        self,
        conn_id: int,
        dir: str,
        t_wall_ns: int,
        t_mono_ns: int,
        opcode: str,
        payload: str | bytes | None,
        type: str | None = None,
        size: int | None = None,
    ) -> int:
        """Queue one frame; returns its id. Cheap: no I/O, no parsing."""
        if self.error is not None:
            self._raise_error()
        fid = next(self._frame_ids)
        if size is None:  # payload_size() inlined: this is the per-frame path
            if payload.__class__ is str:
                size = len(payload) if payload.isascii() else len(payload.encode("utf-8", "surrogatepass"))
            else:
                size = 0 if payload is None else len(payload)
        frames = self._frames
        frames.append((fid, self.session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size))
        if len(frames) >= self.batch_frames:
            self._wake.set()
        return fid

    def write_frame(self, f) -> int:
        """Queue a ``harness.frame.Frame``."""
        return self.frame(f.conn_id, f.dir, f.t_wall_ns, f.t_mono_ns, f.opcode, f.payload, f.type)

    # -- everything else (rare) --------------------------------------------------------------
    def connection(
        self,
        venue: str,
        url: str | None,
        opened_ns: int | None = None,
        request_headers: dict | None = None,
        response_status: int | None = None,
        response_headers: dict | None = None,
    ) -> int:
        cid = next(self._conn_ids)
        self._conn_venue[cid] = venue
        self._op(
            "INSERT INTO connections (id, session_id, venue, url, opened_ns, request_headers, response_status, response_headers)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (cid, self.session_id, venue, url, opened_ns, _dumps(request_headers), response_status, _dumps(response_headers)),
        )
        return cid

    def update_connection(self, conn_id: int, **cols) -> None:
        allowed = {"url", "opened_ns", "closed_ns", "close_code", "close_reason", "request_headers", "response_status", "response_headers"}
        bad = set(cols) - allowed
        if bad:
            raise ValueError(f"unknown connection columns {bad}")
        vals = [(_dumps(v) if k.endswith("headers") else v) for k, v in cols.items()]
        sets = ", ".join(f"{k} = ?" for k in cols)
        self._op(f"UPDATE connections SET {sets} WHERE id = ?", (*vals, conn_id))

    def close_connection(self, conn_id: int, closed_ns: int, code: int | None = None, reason: str | None = None) -> None:
        self.update_connection(conn_id, closed_ns=closed_ns, close_code=code, close_reason=reason)

    def event(self, kind: str, t_wall_ns: int, t_mono_ns: int | None = None, conn_id: int | None = None, detail: dict | None = None) -> None:
        if kind not in schema.EVENT_KINDS:
            raise ValueError(f"event kind must be one of {schema.EVENT_KINDS}")
        self._op(
            "INSERT INTO events (session_id, conn_id, kind, t_wall_ns, t_mono_ns, detail) VALUES (?,?,?,?,?,?)",
            (self.session_id, conn_id, kind, t_wall_ns, t_mono_ns, _dumps(detail)),
        )

    def http(
        self,
        method: str,
        url: str,
        t_recv_ns: int,
        *,
        status: int | None = None,
        venue: str | None = None,
        conn_id: int | None = None,
        request_headers: dict | None = None,
        request_body: str | None = None,
        response_headers: dict | None = None,
        response_body: str | None = None,
        t_sent_ns: int | None = None,
        t_sent_mono_ns: int | None = None,
        t_recv_mono_ns: int | None = None,
    ) -> None:
        self._op(
            "INSERT INTO http (session_id, conn_id, venue, method, url, status, request_headers, request_body,"
            " response_headers, response_body, t_sent_ns, t_recv_ns, t_sent_mono_ns, t_recv_mono_ns)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (self.session_id, conn_id, venue, method, url, status, _dumps(request_headers), request_body,
             _dumps(response_headers), response_body, t_sent_ns, t_recv_ns, t_sent_mono_ns, t_recv_mono_ns),
        )

    # -- the live session log (schema version 2) --------------------------------------------
    def index_value(self, row: tuple) -> None:
        """One index tick, columns ``schema.INDEX_COLS`` in order."""
        self._derive(_INDEX_SQL, row)

    def signal(self, row: tuple) -> None:
        """One signal, columns ``schema.SIGNAL_COLS`` in order."""
        self._derive(_SIGNAL_SQL, row)

    def fair_value(self, row: tuple) -> None:
        """One market's fair value at an index tick, columns ``schema.FAIR_COLS`` in order."""
        self._derive(_FAIR_SQL, row)

    def settlement(self, row: tuple) -> None:
        """One settled market's evaluation, columns ``schema.SETTLEMENT_COLS`` in order."""
        self._derive(_SETTLEMENT_SQL, row)

    def _derive(self, sql: str, row: tuple) -> None:
        # No wake: the thread's batch_ms timer picks it up. After a write error the rows are
        # dropped quietly: frame()/close() already report the failure.
        if self.error is None and not self._closed:
            self._derived.append((sql, (self.session_id, *row)))

    def _op(self, sql: str, params: tuple) -> None:
        if self.error is not None:
            self._raise_error()
        self._ops.append((sql, params))
        self._wake.set()

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.batch_s)
            self._wake.clear()
            stopping = self._stop
            try:
                self._flush()
            except BaseException as e:  # disk full, read-only file, ...: surface to the producer
                self.error = e
                return
            if stopping:
                return

    def _flush(self) -> None:
        ops, frames, derived = self._ops, self._frames, self._derived
        if not ops and not frames and not derived:
            return
        db = self._db
        pop = frames.popleft
        first = True
        # Each derived row was queued after the frames it was computed from: the rows queued
        # now go in the transaction holding the last of the frames queued now, so a crash
        # never leaves an index row on disk without its frames. (Count the rows first: a row
        # queued between the two counts then has its frame counted too.)
        n_derived = len(derived)
        frames_before = len(frames)
        # One transaction per batch_frames: a single huge transaction spills SQLite's page
        # cache and is slower than several of the optimal size.
        while first or frames:
            first = False
            n = min(len(frames), self.batch_frames)
            frames_before -= n
            db.execute("BEGIN")
            try:
                while ops:
                    sql, params = ops.popleft()
                    db.execute(sql, params)
                if n_derived and frames_before <= 0:
                    self._insert_derived(db, n_derived)
                    n_derived = 0
                if n:
                    if self._classify is None:
                        rows = [pop() for _ in range(n)]
                    else:
                        rows = [self._typed(pop()) for _ in range(n)]
                    _insert_frames(db, rows)
                    self.frames_written += n
                db.execute("COMMIT")
                self.commits += 1
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _insert_derived(self, db: sqlite3.Connection, n: int) -> None:
        pop = self._derived.popleft
        for _ in range(n):
            sql, params = pop()
            try:
                db.execute(sql, params)
                self.session_log_rows += 1
            except _BAD_ROW:
                self.session_log_errors += 1

    def _typed(self, row: tuple) -> tuple:
        if row[8] is None and row[6] == "text":
            venue = self._conn_venue.get(row[2])
            if venue is not None:
                try:
                    t = self._classify(venue, row[7])
                except Exception:  # a classifier bug must never lose a frame
                    t = None
                if t is not None:
                    return (*row[:8], t, row[9])
        return row

    def _raise_error(self):
        raise RecordingError(
            f"recording to {self.path} failed: {describe_write_error(self.error)}",
            hint="free disk space or fix permissions; frames committed before the error are intact",
        )

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is committed."""
        deadline = time.monotonic() + timeout
        while (self._frames or self._ops or self._derived) and self.error is None and self._thread.is_alive():
            self._wake.set()
            if time.monotonic() > deadline:
                raise RecordingError(f"flushing {self.path} timed out")
            time.sleep(0.001)
        if self.error is not None:
            self._raise_error()

    def close(self, ended_ns: int | None = None) -> None:
        """Flush, close the session row, checkpoint the WAL into the main file."""
        if self._closed:
            return
        self._closed = True
        if self.error is None:
            self._ops.append(("UPDATE sessions SET ended_ns = ? WHERE id = ?", (ended_ns or time.time_ns(), self.session_id)))
        self._stop = True
        self._wake.set()
        self._thread.join()
        try:
            if self.error is None:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error:
            pass  # the WAL still holds the data; the next open recovers it
        finally:
            self._db.close()
            self._release_lock()
        if self.error is not None:
            self._raise_error()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
