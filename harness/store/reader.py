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

_COLS = "id, session_id, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type"


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


class Recording:
    """A recording opened read-only. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.db = open_readonly(self.path)
        schema.verify(self.db, self.path)
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
    def _dicts(self, sql: str, params: Iterable = ()) -> list[dict]:
        cur = self.db.execute(sql, tuple(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

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
        rows = self._dicts(f"SELECT * FROM events{where} ORDER BY t_wall_ns, id", kinds)
        for r in rows:
            r["detail"] = _json(r.get("detail"))
        return rows

    def http(self) -> list[dict]:
        return self._dicts("SELECT * FROM http ORDER BY t_recv_ns, id")

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
        f = f or Filters()
        sids = self.session_ids(f)
        if len(sids) == 1:
            yield from self._session_rows(f, sids[0])
            return
        streams = [self._keyed(f, sid) for sid in sids]
        for _, _, r in heapq.merge(*streams):
            yield r

    def _keyed(self, f: Filters, sid: int) -> Iterator[tuple]:
        off = self.session_offset_ns(sid)
        for r in self._session_rows(f, sid):
            yield (r[5] + off, r[4], r)

    def _session_rows(self, f: Filters, sid: int) -> Iterator[tuple]:
        where, params = self._where(f, sid)
        try:
            cur = self.db.execute(f"SELECT {_COLS} FROM frames{where} ORDER BY t_mono_ns, id", params)
            cur.arraysize = 4096
            while True:
                batch = cur.fetchmany(4096)
                if not batch:
                    return
                yield from batch
        except sqlite3.DatabaseError as e:
            raise RecordingError(f"{self.path}: error reading frames ({e})", hint="the recording is damaged; try `sqlite3 FILE 'PRAGMA integrity_check'`") from None

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
