"""Put a capture made at an accelerated speed back onto the simulated timeline.

The recorder stamps frames with the real clock while the server plays the source N times
faster, so the raw capture spans minutes / N. After the capture:

- every inbound data frame whose payload (sid/seq/sequence_num blanked) is found in the
  source gets that source frame's simulated receive time *exactly* (per venue, the
  earliest match not before the previous match: order is kept, duplicates land on the
  same time);
- everything else (handshakes, acks and replies the server generated, pings and pongs,
  our subscribe commands, frames a fault corrupted, connection/event/http times) is
  mapped through a monotone piecewise-linear function real -> simulated built from the
  matched frames (slope ``speed`` outside them), then clamped between the neighbouring
  data frames of its connection so each connection stays in receive order;
- a REST answer found in the source (same path and query, same body) is moved, with its
  request, into the span in which the server served that body: from the source row's
  time to the next row's for that request. The mapped time alone was up to a second
  early at 20x (event-loop jitter), which put REST views ahead of the stream they came
  from (a freshness check read them as ahead, or as stale since a price's last visit).

Those mapped times carry the capture's scheduling jitter multiplied by the speed (at 20x,
2 ms of event-loop delay is 40 ms of simulated time): that bounds the realism of control
frame timing, not of data. Timestamps the impersonation server wrote *inside* frames it
generated (Coinbase ``subscriptions`` ``timestamp``, Kraken ack/pong ``time_in``/
``time_out``) are real-clock values; they are rewritten to the frame's simulated time, and
so is the recorded ``KALSHI-ACCESS-TIMESTAMP`` handshake header (the recorder signs with
the real clock; the signature is redacted in the capture anyway).
"""

from __future__ import annotations

import re
import sqlite3
from bisect import bisect_left, bisect_right

from harness.sim.source import norm, rest_key
from harness.venues._json import ns_to_rfc3339

_CB_TS = re.compile(r'"timestamp":"[^"]*"')
_KR_TS = re.compile(r'"(time_in|time_out)":"[^"]*"')
_KALSHI_TS = re.compile(r'"KALSHI-ACCESS-TIMESTAMP":\s*"\d+"')


class TimeMap:
    """Monotone piecewise-linear real ns -> simulated ns through anchor points."""

    def __init__(self, anchors: list[tuple[int, int]], speed: float):
        anchors.sort()
        xs: list[int] = []
        ys: list[int] = []
        hi = None
        for x, y in anchors:
            hi = y if hi is None else max(hi, y)
            if xs and x == xs[-1]:
                ys[-1] = hi
                continue
            xs.append(x)
            ys.append(hi)
        self.xs, self.ys, self.speed = xs, ys, speed

    def __call__(self, x: int) -> int:
        xs, ys = self.xs, self.ys
        if not xs:
            raise ValueError("no anchors")
        i = bisect_right(xs, x)
        if i == 0:
            return ys[0] - int((xs[0] - x) * self.speed)
        if i == len(xs):
            return ys[-1] + int((x - xs[-1]) * self.speed)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (x - x0) // (x1 - x0)


def served_span(rows: list[tuple[int, int]], body_hash: int, t: int) -> tuple[int, int] | None:
    """``rows``: one request's source answers ``[(t, hash(body))]`` by time. The span
    ``[from, until)`` in which the answer with ``body_hash`` was served that is nearest to
    ``t``, or None when the source never gave that body."""
    best = None
    for k, (tk, h) in enumerate(rows):
        if h != body_hash:
            continue
        until = rows[k + 1][0] if k + 1 < len(rows) else None
        dist = tk - t if t < tk else (0 if until is None or t < until else t - until + 1)
        if best is None or dist < best[0]:
            best = (dist, tk, until)
    return None if best is None else (best[1], best[2])


def remap(path: str, index: dict[str, dict[int, list[int]]], *, speed: float, wall_minus_mono: int,
          rest: dict[tuple, list[tuple[int, int]]] | None = None) -> dict:
    """Rewrite the times of the capture at ``path`` in place. ``index``: venue ->
    hash(norm(payload)) -> source receive times (``SourceSummary.index``);
    ``wall_minus_mono``: the capture process's ``time_ns() - monotonic_ns()``; ``rest``:
    the source's REST answers (``SourceSummary.rest``)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        venues = dict(db.execute("SELECT id, venue FROM connections"))
        rows = db.execute("SELECT id, conn_id, dir, t_mono_ns, opcode, payload FROM frames ORDER BY conn_id, id").fetchall()
        last_match: dict[str, int] = {}
        matched: dict[int, int] = {}
        anchors: list[tuple[int, int]] = []
        for fid, cid, d, tm, op, payload in rows:
            if d != "in" or op != "text" or not isinstance(payload, str):
                continue
            v = venues.get(cid, "")
            times = index.get(v, {}).get(hash(norm(payload)))
            if not times:
                continue
            lo = last_match.get(v, -1)
            i = bisect_left(times, lo)
            if i < len(times):
                t = times[i]
                matched[fid] = t
                last_match[v] = t
                anchors.append((tm, t))
        if not anchors:
            raise ValueError("no frame of the capture matches the source: nothing to anchor the timeline on")
        f = TimeMap(anchors, speed)
        # per connection: exact times for data, mapped + clamped for the rest
        new: dict[int, int] = {}
        first_last: dict[int, tuple[int, int]] = {}
        by_conn: dict[int, list[tuple]] = {}
        for r in rows:
            by_conn.setdefault(r[1], []).append(r)
        rewrites: list[tuple[str, int]] = []
        for cid, rs in by_conn.items():
            ts = [matched.get(r[0]) for r in rs]
            prov = [t if t is not None else f(r[3]) for t, r in zip(ts, rs, strict=True)]
            nxt = [None] * len(rs)
            upcoming = None
            for k in range(len(rs) - 1, -1, -1):
                nxt[k] = upcoming
                if ts[k] is not None:
                    upcoming = ts[k]
            prev = None
            for k, r in enumerate(rs):
                t = prov[k]
                if ts[k] is None:
                    if nxt[k] is not None:
                        t = min(t, nxt[k])
                    if prev is not None:
                        t = max(t, prev)
                prev = t if prev is None else max(prev, t)
                new[r[0]] = t
                if ts[k] is None and r[2] == "in" and isinstance(r[5], str):
                    v = venues.get(cid)
                    if v == "coinbase" and '"channel":"subscriptions"' in r[5]:
                        rewrites.append((_CB_TS.sub(f'"timestamp":"{ns_to_rfc3339(t - 1_000_000)}"', r[5], count=1), r[0]))
                    elif v == "kraken" and '"time_in"' in r[5]:
                        rewrites.append((_KR_TS.sub(lambda m, t=t: f'"{m.group(1)}":"{ns_to_rfc3339(t - 2_000_000)}"', r[5]), r[0]))
            first_last[cid] = (new[rs[0][0]], new[rs[-1][0]])

        def from_wall(w: int | None) -> int | None:
            return None if w is None else f(w - wall_minus_mono)

        db.execute("BEGIN")
        db.executemany("UPDATE frames SET t_wall_ns = ?, t_mono_ns = ? WHERE id = ?", [(t, t, i) for i, t in new.items()])
        db.executemany("UPDATE frames SET payload = ?, size = length(CAST(? AS BLOB)) WHERE id = ?",
                       [(p, p, i) for p, i in rewrites])
        for cid, opened, closed, hdrs in db.execute("SELECT id, opened_ns, closed_ns, request_headers FROM connections").fetchall():
            o, c = from_wall(opened), from_wall(closed)
            fl = first_last.get(cid)
            if fl is not None:
                o = min(o, fl[0]) if o is not None else fl[0]
                c = max(c, fl[1]) if c is not None else None
            if hdrs and o is not None and "KALSHI-ACCESS-TIMESTAMP" in hdrs:
                # signed with the real clock at connect; on the simulated timeline it is
                # the (mapped) connect time (the signature itself is redacted)
                hdrs = _KALSHI_TS.sub(f'"KALSHI-ACCESS-TIMESTAMP": "{o // 1_000_000}"', hdrs)
            db.execute("UPDATE connections SET opened_ns = ?, closed_ns = ?, request_headers = ? WHERE id = ?", (o, c, hdrs, cid))
        for eid, tw, tm in db.execute("SELECT id, t_wall_ns, t_mono_ns FROM events").fetchall():
            t = f(tm) if tm is not None else from_wall(tw)
            db.execute("UPDATE events SET t_wall_ns = ?, t_mono_ns = ? WHERE id = ?", (t, t, eid))
        for hid, ts_, tr, ms, mr, url, status, body in db.execute(
                "SELECT id, t_sent_ns, t_recv_ns, t_sent_mono_ns, t_recv_mono_ns, url, status, response_body FROM http").fetchall():
            s = f(ms) if ms is not None else from_wall(ts_)
            r = f(mr) if mr is not None else from_wall(tr)
            span = served_span(rest.get(rest_key(url), []), hash(body), r) if rest and status and body is not None else None
            if span is not None and r is not None:
                lo, until = span
                moved = max(r, lo) if until is None else min(max(r, lo), until - 1)
                s = None if s is None else s + moved - r
                r = moved
            db.execute("UPDATE http SET t_sent_ns = ?, t_recv_ns = ?, t_sent_mono_ns = ?, t_recv_mono_ns = ? WHERE id = ?",
                       (s, r, s, r, hid))
        lo = min(t for t, _ in first_last.values()) if first_last else None
        hi = max(t for _, t in first_last.values()) if first_last else None
        for sid, st, en in db.execute("SELECT id, started_ns, ended_ns FROM sessions").fetchall():
            s, e = from_wall(st), from_wall(en)
            if lo is not None:
                s = min(s, lo) if s is not None else lo
                e = max(e, hi) if e is not None else None
            db.execute("UPDATE sessions SET started_ns = ?, ended_ns = ? WHERE id = ?", (s, e, sid))
        db.execute("COMMIT")
        db.execute("VACUUM")
        return {"frames": len(rows), "matched": len(matched), "mapped": len(rows) - len(matched), "rewritten": len(rewrites)}
    finally:
        db.close()
