"""The facts ``harness inspect`` reports, as one JSON-ready dict.

``inspect_recording(rec, gap_threshold_s=5.0, max_gaps=1000) -> dict``. Everything comes
from SQL aggregates (two grouped scans of ``frames``) and one ordered pass with ``LAG`` per
connection for gaps; no frame is loaded into a Python list.

Keys (times ``*_ns`` are Unix ns of wall time; durations ``*_s`` float seconds; absent
values are ``null``):

- ``path``, ``file_bytes``, ``schema_version``
- ``sessions``: list of ``{id, mode, source, host, harness_version, config, started_ns,
  ended_ns, frames, connections}``
- ``connections``: list of ``{id, session_id, venue, url, opened_ns, closed_ns,
  close_code, close_reason, frames_in, frames_out, bytes, first_frame_ns,
  last_frame_ns, duration_s, duration_basis, in_rate_per_s}``. ``duration_s`` is
  closed - opened when the close is known (``duration_basis`` "closed"), else last
  frame - (opened or first frame) ("last_frame"); ``null`` with no frames and no close.
- ``frames``: ``{total, in, out, bytes, first_ns, last_ns, span_s}`` (span = last - first
  frame, wall time)
- ``venues``: list of ``{venue, connections, frames, frames_in, frames_out, bytes,
  first_ns, last_ns, span_s, in_rate_per_s}``; ``in_rate_per_s`` = inbound frames /
  (last - first inbound frame time), ``null`` when that span is 0
- ``types``: list of ``{venue, dir, type, frames, bytes}`` (``type`` ``null`` =
  unclassified), by venue, dir, then most frames first
- ``gaps``: ``{threshold_s, count, longest_s, items, items_truncated}``: a gap is two
  consecutive inbound frames of one connection more than ``threshold_s`` apart
  (monotonic clock). ``items``: first ``max_gaps`` of ``{conn_id, venue, session_id,
  after_frame_id, before_frame_id, start_ns, end_ns, gap_s}`` in time order. Silence
  before a connection's first or after its last inbound frame is not counted.
- ``events``: ``{total, by_kind: {kind: n}}``
- ``http``: ``{total, by_venue: {venue: n}, response_bytes}``
- ``close_codes``: ``{code: n}`` over connections with a known close code (keys strings)
- ``session_log``: what ``harness record --pipeline`` wrote into the recording (schema
  version 2): ``{index_values, index_valid, signals, settlements, first_ns, last_ns,
  by_session: {session_id: {index_values, signals, settlements, fair_values}}}`` (first/last: the index
  rows' ``ts_ns``); ``null`` for a version-1 file, which has no such tables
"""

from __future__ import annotations

import os
from collections import defaultdict

from harness.store import schema
from harness.store.reader import Recording, _json

NS = 1_000_000_000


def _span_s(first: int | None, last: int | None) -> float | None:
    if first is None or last is None:
        return None
    return (last - first) / NS


def _rate(n: int, first: int | None, last: int | None) -> float | None:
    if not n or first is None or last is None or last <= first:
        return None
    return n / ((last - first) / NS)


def inspect_recording(rec: Recording, *, gap_threshold_s: float = 5.0, max_gaps: int = 1000) -> dict:
    db = rec.db
    version = db.execute("PRAGMA user_version").fetchone()[0]
    try:
        file_bytes = os.path.getsize(rec.path)
    except OSError:
        file_bytes = None

    # -- one scan: per session, connection, direction --------------------------------------
    per_conn: dict[int, dict] = defaultdict(lambda: {"in": 0, "out": 0, "bytes": 0, "first": None, "last": None,
                                                     "first_in": None, "last_in": None, "session": None})
    sess_frames: dict[int, int] = defaultdict(int)
    for sid, cid, d, n, nbytes, first, last in db.execute(
        "SELECT session_id, iif(typeof(conn_id) = 'integer', conn_id, -1), dir, count(*), coalesce(sum(size), 0),"
        # times that are not integers (a damaged recording) are left out of spans and rates
        " min(CASE WHEN typeof(t_wall_ns) = 'integer' THEN t_wall_ns END),"
        " max(CASE WHEN typeof(t_wall_ns) = 'integer' THEN t_wall_ns END)"
        " FROM frames GROUP BY session_id, conn_id, dir"
    ):
        c = per_conn[cid]
        c["session"] = sid
        c[d if d in ("in", "out") else "out"] += n
        c["bytes"] += int(nbytes) if isinstance(nbytes, (int, float)) else 0
        if first is not None:  # None: no integer time in the group (a damaged recording)
            c["first"] = first if c["first"] is None else min(c["first"], first)
            c["last"] = last if c["last"] is None else max(c["last"], last)
        if d == "in":
            c["first_in"], c["last_in"] = first, last
        sess_frames[sid] += n

    # -- connections ------------------------------------------------------------------------
    connections = []
    conn_rows = {r[0]: r for r in db.execute(
        "SELECT id, session_id, venue, url, opened_ns, closed_ns, close_code, close_reason FROM connections ORDER BY id")}
    sess_conns: dict[int, int] = defaultdict(int)
    close_codes: dict[str, int] = defaultdict(int)
    for cid in sorted(set(conn_rows) | set(per_conn)):
        row = conn_rows.get(cid)
        c = per_conn.get(cid) or {"in": 0, "out": 0, "bytes": 0, "first": None, "last": None,
                                  "first_in": None, "last_in": None, "session": None}
        if row is None:  # frames on a connection with no row: damaged, but show them
            row = (cid, c["session"], rec.conn_venue.get(cid, "?"), None, None, None, None, None)
        _, sid, venue, url, opened, closed, code, reason = row
        sess_conns[sid] += 1
        if code is not None:
            close_codes[str(code)] += 1
        start = opened if opened is not None else c["first"]
        if opened is not None and closed is not None:
            duration, basis = (closed - opened) / NS, "closed"
        elif start is not None and c["last"] is not None:
            duration, basis = (c["last"] - start) / NS, "last_frame"
        else:
            duration, basis = None, None
        connections.append({
            "id": cid, "session_id": sid, "venue": venue, "url": url, "opened_ns": opened, "closed_ns": closed,
            "close_code": code, "close_reason": reason, "frames_in": c["in"], "frames_out": c["out"],
            "bytes": c["bytes"], "first_frame_ns": c["first"], "last_frame_ns": c["last"],
            "duration_s": duration, "duration_basis": basis,
            "in_rate_per_s": _rate(c["in"], c["first_in"], c["last_in"]),
        })
    conn_venue = {c["id"]: c["venue"] for c in connections}

    # -- sessions ---------------------------------------------------------------------------
    sessions = []
    for sid, started, ended, mode, host, hv, config, source in db.execute(
        "SELECT id, iif(typeof(started_ns) = 'integer', started_ns, NULL), iif(typeof(ended_ns) = 'integer', ended_ns, NULL),"
        " mode, host, harness_version, config, source FROM sessions ORDER BY started_ns, id"
    ):
        sessions.append({
            "id": sid, "mode": mode, "source": source, "host": host, "harness_version": hv, "config": _json(config),
            "started_ns": started, "ended_ns": ended, "frames": sess_frames.get(sid, 0), "connections": sess_conns.get(sid, 0),
        })

    # -- totals and venues --------------------------------------------------------------------
    total_in = sum(c["frames_in"] for c in connections)
    total_out = sum(c["frames_out"] for c in connections)
    firsts = [c["first_frame_ns"] for c in connections if c["first_frame_ns"] is not None]
    lasts = [c["last_frame_ns"] for c in connections if c["last_frame_ns"] is not None]
    first_ns, last_ns = (min(firsts) if firsts else None), (max(lasts) if lasts else None)
    frames = {
        "total": total_in + total_out, "in": total_in, "out": total_out,
        "bytes": sum(c["bytes"] for c in connections),
        "first_ns": first_ns, "last_ns": last_ns, "span_s": _span_s(first_ns, last_ns),
    }
    by_venue: dict[str, dict] = {}
    for c in connections:
        v = by_venue.setdefault(c["venue"], {"venue": c["venue"], "connections": 0, "frames": 0, "frames_in": 0,
                                             "frames_out": 0, "bytes": 0, "first_ns": None, "last_ns": None,
                                             "_fi": None, "_li": None})
        v["connections"] += 1
        v["frames_in"] += c["frames_in"]
        v["frames_out"] += c["frames_out"]
        v["frames"] += c["frames_in"] + c["frames_out"]
        v["bytes"] += c["bytes"]
        pc = per_conn.get(c["id"])
        for key, val, pick in (("first_ns", c["first_frame_ns"], min), ("last_ns", c["last_frame_ns"], max),
                               ("_fi", pc and pc["first_in"], min), ("_li", pc and pc["last_in"], max)):
            if val is not None:
                v[key] = val if v[key] is None else pick(v[key], val)
    venues = []
    for name in sorted(by_venue):
        v = by_venue[name]
        fi, li = v.pop("_fi"), v.pop("_li")
        v["span_s"] = _span_s(v["first_ns"], v["last_ns"])
        v["in_rate_per_s"] = _rate(v["frames_in"], fi, li)
        venues.append(v)

    # -- types --------------------------------------------------------------------------------
    tmap: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for cid, d, typ, n, nbytes in db.execute(
        "SELECT conn_id, dir, type, count(*), coalesce(sum(size), 0) FROM frames GROUP BY conn_id, dir, type"
    ):
        t = tmap[(conn_venue.get(cid, "?"), d, typ)]
        t[0] += n
        t[1] += nbytes
    types = [{"venue": v, "dir": d, "type": t, "frames": n, "bytes": b}
             for (v, d, t), (n, b) in tmap.items()]
    types.sort(key=lambda x: (str(x["venue"]), str(x["dir"]), -x["frames"], str(x["type"] or "")))  # str(): damaged rows

    # -- gaps: one ordered pass per connection with LAG ------------------------------------------
    thr_ns = int(round(gap_threshold_s * NS))
    items = []
    count = 0
    longest = None
    cur = db.execute(
        "SELECT conn_id, session_id, prev_id, id, prev_wall, t_wall_ns, t_mono_ns - prev_mono FROM ("
        " SELECT conn_id, session_id, id, t_wall_ns, t_mono_ns,"
        "  LAG(id) OVER w AS prev_id, LAG(t_wall_ns) OVER w AS prev_wall, LAG(t_mono_ns) OVER w AS prev_mono"
        " FROM frames WHERE dir = 'in' AND typeof(t_mono_ns) = 'integer' AND typeof(t_wall_ns) = 'integer' WINDOW w AS (PARTITION BY conn_id ORDER BY t_mono_ns, id))"
        " WHERE prev_mono IS NOT NULL AND t_mono_ns - prev_mono > ? ORDER BY prev_wall, conn_id",
        (thr_ns,),
    )
    for cid, sid, prev_id, fid, prev_wall, wall, gap in cur:
        count += 1
        gs = gap / NS
        if longest is None or gs > longest:
            longest = gs
        if len(items) < max_gaps:
            items.append({"conn_id": cid, "venue": conn_venue.get(cid, "?"), "session_id": sid,
                          "after_frame_id": prev_id, "before_frame_id": fid, "start_ns": prev_wall,
                          "end_ns": wall, "gap_s": gs})
    gaps = {"threshold_s": gap_threshold_s, "count": count, "longest_s": longest, "items": items,
            "items_truncated": count > len(items)}

    # -- events and http ----------------------------------------------------------------------------
    by_kind = {k: n for k, n in db.execute("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")}
    http_by_venue = {}
    http_total = 0
    http_bytes = 0
    for v, n, b in db.execute(
        "SELECT coalesce(venue, '?'), count(*), coalesce(sum(length(CAST(response_body AS BLOB))), 0) FROM http GROUP BY 1 ORDER BY 1"
    ):
        http_by_venue[v] = n
        http_total += n
        http_bytes += b

    return {
        "path": rec.path,
        "file_bytes": file_bytes,
        "schema_version": version,
        "sessions": sessions,
        "connections": connections,
        "frames": frames,
        "venues": venues,
        "types": types,
        "gaps": gaps,
        "events": {"total": sum(by_kind.values()), "by_kind": by_kind},
        "http": {"total": http_total, "by_venue": http_by_venue, "response_bytes": http_bytes},
        "close_codes": dict(sorted(close_codes.items())),
        "session_log": _session_log(db),
    }


def _session_log(db) -> dict | None:
    if not schema.has_session_log(db):
        return None
    by_session: dict[str, dict] = {}
    present = schema.tables(db)
    for table in (t for t in schema.SESSION_LOG_TABLES if t in present):
        for sid, n in db.execute(f"SELECT session_id, count(*) FROM {table} GROUP BY session_id ORDER BY session_id"):
            by_session.setdefault(str(sid), dict.fromkeys(schema.SESSION_LOG_TABLES, 0))[table] = n
    n, valid, first, last = db.execute(
        "SELECT count(*), coalesce(sum(valid), 0), min(ts_ns), max(ts_ns) FROM index_values").fetchone()
    return {
        "index_values": n, "index_valid": valid,
        "signals": sum(s["signals"] for s in by_session.values()),
        "settlements": sum(s["settlements"] for s in by_session.values()),
        "fair_values": sum(s["fair_values"] for s in by_session.values()),
        "first_ns": first, "last_ns": last, "by_session": by_session,
    }
