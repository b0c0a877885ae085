"""Read-only, streaming access to a recording.

Frames come back in receive order: within a session by monotonic time (frame id breaks
ties), and sessions merged on one timeline (each session's monotonic clock shifted onto
wall time by its first frame, wall time breaking ties). Nothing is loaded whole: frames
stream from a cursor. Filters are bound parameters, never formatted into SQL.
"""

from __future__ import annotations

import heapq
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from harness.errors import RecordingError
from harness.frame import Frame
from harness.store import schema

# conn_id keys dicts and sorts everywhere: a damaged row's NULL or text conn_id reads as -1
# (an unknown connection). Free in SQLite; other columns are checked where they are used.
_BATCH = 4096  # rows fetched at a time
_COLS = "id, session_id, iif(typeof(conn_id) = 'integer', conn_id, -1), dir, t_wall_ns, t_mono_ns, opcode, payload, type"


@dataclass
class Filters:
    venues: tuple[str, ...] = ()
    dir: str | None = None
    types: tuple[str, ...] = ()
    t_from_ns: int | None = None  # wall time, inclusive
    t_to_ns: int | None = None  # wall time, exclusive
    sessions: tuple[int, ...] = ()
    conns: tuple[int, ...] = ()
    opcodes: tuple[str, ...] = ()


def open_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise RecordingError(f"recording {p} does not exist", hint="check the path; `ls recordings/`")
    if os.path.isdir(p):
        raise RecordingError(f"{p} is a directory, not a recording")
    uri = "file:" + p.replace("?", "%3f").replace("#", "%23")
    try:
        conn = sqlite3.connect(uri + "?mode=ro", uri=True, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        if "unable to open" not in str(e):
            raise RecordingError(f"{p} is not a readable SQLite database ({e})", hint="is it truncated or not a recording?") from None
        # A WAL file left by a crash in a directory we may not write: read the main file as-is.
        conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = 1")
    return conn


def _damage(e: sqlite3.DatabaseError, path: str) -> BaseException:
    """A damaged file's error (corrupt page, not a database, I/O error) as a RecordingError;
    anything else (a bug in a query) unchanged."""
    name = getattr(e, "sqlite_errorname", None) or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR")) or "malformed" in str(e):
        return RecordingError(f"{path} is damaged: {e}",
                              hint=f"frames before the damage may still be readable: sqlite3 {path} '.recover'")
    return e


class GuardedCursor:
    """A cursor whose damage errors, at execute or while fetching, are RecordingErrors."""

    __slots__ = ("_cur", "_path")

    def __init__(self, cur: sqlite3.Cursor, path: str):
        object.__setattr__(self, "_cur", cur)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name):
        return getattr(self._cur, name)

    def __setattr__(self, name, value):
        setattr(self._cur, name, value)

    def __iter__(self):
        try:
            yield from self._cur
        except sqlite3.DatabaseError as e:
            raise _damage(e, self._path) from None

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except sqlite3.DatabaseError as e:
            raise _damage(e, self._path) from None

    def fetchone(self):
        return self._guard(self._cur.fetchone)

    def fetchmany(self, *size):
        return self._guard(self._cur.fetchmany, *size)

    def fetchall(self):
        return self._guard(self._cur.fetchall)


class GuardedDB:
    """The read-only connection handed out as ``Recording.db``: commands run their own
    queries on it, and a damaged page met anywhere must be a clear error, not a traceback."""

    __slots__ = ("_db", "_path")

    def __init__(self, db: sqlite3.Connection, path: str):
        self._db = db
        self._path = path

    def __getattr__(self, name):
        return getattr(self._db, name)

    def execute(self, sql: str, params=()) -> GuardedCursor:
        try:
            return GuardedCursor(self._db.execute(sql, params), self._path)
        except sqlite3.DatabaseError as e:
            raise _damage(e, self._path) from None

    def close(self) -> None:
        self._db.close()


class Recording:
    """A recording opened read-only. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._raw = open_readonly(self.path)
        self.bad_rows: list[int] = []  # ids of damaged frame rows a consumer skipped (export)
        self.bad_meta_rows = 0  # events/http rows left out: their time is damaged
        self.db = GuardedDB(self._raw, self.path)
        schema.verify(self._raw, self.path)
        try:
            self.conn_venue: dict[int, str] = dict(self.db.execute("SELECT id, venue FROM connections"))
        except sqlite3.DatabaseError as e:
            raise RecordingError(f"{self.path}: cannot read connections ({e})", hint="the recording is damaged") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- metadata --------------------------------------------------------------------------
    def _dicts(self, sql: str, params: Iterable = (), placed_by: str | None = None) -> list[dict]:
        """Rows as dicts. A damaged row's time ('noon', 1.5, a blob) becomes None (unknown)
        rather than a crash later; a row whose ``placed_by`` time is damaged cannot be put
        on the timeline at all and is left out (counted in ``bad_meta_rows``)."""
        cur = self.db.execute(sql, tuple(params))
        names = [d[0] for d in cur.description]
        times = [i for i, n in enumerate(names) if n.endswith("_ns")]
        key = names.index(placed_by) if placed_by else None
        out = []
        for row in cur:
            if any(row[i] is not None and row[i].__class__ is not int for i in times):
                if key is not None and row[key].__class__ is not int:
                    self.bad_meta_rows += 1
                    continue
                row = tuple(None if (i in times and v is not None and v.__class__ is not int) else v
                            for i, v in enumerate(row))
            out.append(dict(zip(names, row, strict=True)))
        return out

    def sessions(self) -> list[dict]:
        rows = self._dicts("SELECT * FROM sessions ORDER BY started_ns, id")
        for r in rows:
            r["config"] = _json(r.get("config"))
        return rows

    def connections(self) -> list[dict]:
        rows = self._dicts("SELECT * FROM connections ORDER BY id")
        for r in rows:
            r["request_headers"] = _json(r.get("request_headers"))
            r["response_headers"] = _json(r.get("response_headers"))
        return rows

    def events(self, kinds: Iterable[str] = ()) -> list[dict]:
        kinds = tuple(kinds)
        where = f" WHERE kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        rows = self._dicts(f"SELECT * FROM events{where} ORDER BY t_wall_ns, id", kinds, placed_by="t_wall_ns")
        for r in rows:
            r["detail"] = _json(r.get("detail"))
        return rows

    def http(self, url_contains: Iterable[str] | None = None) -> list[dict]:
        """REST exchanges in time order; ``url_contains``: only those whose URL holds one of
        these strings (a consumer that uses a few endpoints skips reading the others'
        bodies: a recorded product list is megabytes)."""
        if isinstance(url_contains, str):
            url_contains = (url_contains,)  # one string, not its characters
        parts = list(url_contains) if url_contains is not None else []
        where = (" WHERE " + " OR ".join(["instr(url, ?) > 0"] * len(parts))) if parts else ""
        if url_contains is not None and not parts:
            where = " WHERE 0"
        return self._dicts(f"SELECT * FROM http{where} ORDER BY t_recv_ns, id", parts, placed_by="t_recv_ns")

    def venues(self) -> list[str]:
        return sorted(set(self.conn_venue.values()))

    # -- frames ----------------------------------------------------------------------------
    def _where(self, f: Filters, session_id: int | None) -> tuple[str, list]:
        clauses, params = [], []
        if session_id is not None:
            clauses.append("session_id = ?")
            params.append(session_id)
        conns = set(f.conns)
        if f.venues:
            wanted = {v.lower() for v in f.venues}
            by_venue = {cid for cid, v in self.conn_venue.items() if v.lower() in wanted}
            conns = (conns & by_venue) if conns else by_venue
            if not conns:
                conns = {-1}  # no connection of that venue: match nothing
        if conns:
            clauses.append(f"conn_id IN ({','.join('?' * len(conns))})")
            params.extend(sorted(conns))
        if f.dir:
            clauses.append("dir = ?")
            params.append(f.dir)
        if f.types:
            clauses.append(f"type IN ({','.join('?' * len(f.types))})")
            params.extend(f.types)
        if f.opcodes:
            clauses.append(f"opcode IN ({','.join('?' * len(f.opcodes))})")
            params.extend(f.opcodes)
        if f.t_from_ns is not None:
            clauses.append("t_wall_ns >= ?")
            params.append(f.t_from_ns)
        if f.t_to_ns is not None:
            clauses.append("t_wall_ns < ?")
            params.append(f.t_to_ns)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def session_ids(self, f: Filters | None = None) -> list[int]:
        ids = [r[0] for r in self.db.execute("SELECT DISTINCT session_id FROM frames ORDER BY session_id")]
        if f is not None and f.sessions:
            ids = [i for i in ids if i in set(f.sessions)]
        return ids

    def session_offset_ns(self, session_id: int) -> int:
        """wall - mono of the session's first frame: maps its monotonic clock onto wall time."""
        row = self.db.execute(
            "SELECT t_wall_ns - t_mono_ns FROM frames WHERE session_id = ? AND typeof(t_wall_ns) = 'integer'"
            " AND typeof(t_mono_ns) = 'integer' ORDER BY t_mono_ns, id LIMIT 1",
            (session_id,),
        ).fetchone()
        return row[0] if row else 0

    def rows(self, f: Filters | None = None) -> Iterator[tuple]:
        """Raw rows ``(id, session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type)``
        in receive order. The fastest way through a recording."""
        for batch in self.row_batches(f):
            yield from batch

    def row_batches(self, f: Filters | None = None) -> Iterator[list[tuple]]:
        """``rows`` a list at a time (up to ``_BATCH`` rows): a consumer that loops over
        every row of a long recording (the replay) saves a generator step per row."""
        f = f or Filters()
        sids = self.session_ids(f)
        if len(sids) == 1:
            yield from self._session_batches(f, sids[0])
            return
        streams = [self._keyed(f, sid) for sid in sids]
        batch: list[tuple] = []
        try:
            for _, _, _, r in heapq.merge(*streams):
                batch.append(r)
                if len(batch) == _BATCH:
                    yield batch
                    batch = []
        except Exception:  # a damaged page: the rows read before it first, then the error
            if batch:
                yield batch
            raise
        if batch:
            yield batch

    def _keyed(self, f: Filters, sid: int) -> Iterator[tuple]:
        off = self.session_offset_ns(sid)
        key = -(1 << 62)
        for batch in self._session_batches(f, sid):
            for r in batch:
                tm, tw = r[5], r[4]
                # A row with non-numeric times (a damaged recording) keeps its place in its
                # session: it takes the previous row's key and the consumer reports it.
                if tm.__class__ is int or tm.__class__ is float:
                    key = tm + off
                yield (key, tw if tw.__class__ is int else 0, r[0], r)

    def _session_batches(self, f: Filters, sid: int) -> Iterator[list[tuple]]:
        where, params = self._where(f, sid)
        try:
            cur = self._raw.execute(f"SELECT {_COLS} FROM frames{where} ORDER BY t_mono_ns, id", params)
            cur.arraysize = _BATCH
            while True:
                batch = cur.fetchmany(_BATCH)
                if not batch:
                    return
                yield batch
        except sqlite3.DatabaseError as e:
            err = _damage(e, self.path)
            if err is e:
                raise RecordingError(f"{self.path}: error reading frames ({e})",
                                     hint="the recording is damaged; try `sqlite3 FILE 'PRAGMA integrity_check'`") from None
            raise err from None

    def frames(self, f: Filters | None = None) -> Iterator[Frame]:
        """``Frame`` objects in receive order."""
        cv = self.conn_venue
        for fid, sid, cid, d, tw, tm, op, payload, typ in self.rows(f):
            yield Frame(cv.get(cid, "?"), cid, d, tw, tm, op, payload, typ, fid, sid)

    def frame(self, frame_id: int) -> Frame | None:
        row = self.db.execute(f"SELECT {_COLS} FROM frames WHERE id = ?", (frame_id,)).fetchone()
        if row is None:
            return None
        fid, sid, cid, d, tw, tm, op, payload, typ = row
        return Frame(self.conn_venue.get(cid, "?"), cid, d, tw, tm, op, payload, typ, fid, sid)

    def count(self, f: Filters | None = None) -> int:
        where, params = self._where(f or Filters(), None)
        return self.db.execute(f"SELECT count(*) FROM frames{where}", params).fetchone()[0]


def _json(text):
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
