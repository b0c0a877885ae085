"""latency: how fresh the data is when it arrives.

- Per venue and message type: receive time (frame ``t_wall_ns``) minus the decoded
  message's venue timestamp (``venue_ts_ns``), in ms: p50/p90/p99/max. Snapshots (and
  messages riding in a snapshot frame, e.g. Gemini's recent trades) are excluded: their
  timestamps are when levels last changed, not when the message was sent. So is the first
  message per connection, type and instrument (the last trade/ticker from before we
  subscribed: Coinbase ``last_match``, the first ``ticker``). A frame carrying several
  messages of one type (batched trades) counts once, with its newest venue timestamp.
  Codes ``latency_p99`` / ``latency_max`` (severity ``latency_severity``, default warn)
  when over ``latency_p99_ms`` / ``latency_max_ms``.
- Silence: the longest time without an inbound frame per connection (monotonic clock),
  code ``silence`` (fail) over ``silence_s``; the frame ids either side are reported.
- Clock offset: per venue, min(receive - venue ts) is a lower bound of (host clock - venue
  clock) + the fastest delivery. Negative beyond ``clock_offset_ms``: the host clock is
  behind (``clock_behind``, warn); positive beyond it: the host clock is ahead or every
  message is delayed (``clock_ahead_or_delay``, warn). Percentiles are not corrected.
- REST-vs-WS freshness is its own check (``harness.checks.freshness``).
"""

from __future__ import annotations

from array import array
from collections import defaultdict

from harness.checks.base import BaseCheck


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


class LatencyCheck(BaseCheck):
    name = "latency"
    description = "venue timestamp to receive time, silences, clock offset"

    def __init__(self, config=None):
        super().__init__(config)
        # array('d'): 8 bytes a sample instead of a float object's 32 (live checks keep
        # every sample of a long recording)
        self.samples: dict[tuple[str, str], array] = defaultdict(lambda: array("d"))
        self.max_at: dict[tuple[str, str], tuple[float, int]] = {}
        self.min_by_venue: dict[str, tuple[float, int]] = {}
        self.last_in: dict[int, tuple[int, int, int]] = {}  # conn -> (t_mono, t_wall, frame id)
        self.silence: dict[int, tuple[float, int | None, int | None, int, int]] = {}
        self.conn_venue: dict[int, str] = {}
        self.rate: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.gaps: list[dict] = []
        self.series: dict = {}
        self.seen: set = set()

    def on_frame(self, view) -> None:
        f = view.frame
        if f.dir != "in":
            return
        cid = f.conn_id
        self.conn_venue[cid] = f.venue
        self.rate[f.venue][f.t_wall_ns // 1_000_000_000] += 1
        prev = self.last_in.get(cid)
        if prev is not None:
            gap = (f.t_mono_ns - prev[0]) / 1e9
            cur = self.silence.get(cid)
            if cur is None or gap > cur[0]:
                self.silence[cid] = (gap, prev[2], f.id, prev[1], f.t_wall_ns)
            if gap >= min(5.0, float(self.config.for_venue(f.venue, "silence_s"))):
                self.gaps.append({"venue": f.venue, "conn_id": cid, "start_ns": prev[1], "end_ns": f.t_wall_ns, "gap_s": gap})
        else:
            self.silence.setdefault(cid, (0.0, None, f.id, f.t_wall_ns, f.t_wall_ns))
        self.last_in[cid] = (f.t_mono_ns, f.t_wall_ns, f.id)
        if not view.messages:
            return
        if any(getattr(m, "snapshot", False) or "snapshot" in (m.type or "") for m in view.messages):
            return
        if view.type and "snapshot" in view.type:
            return
        newest: dict[str, int] = {}
        for m in view.messages:
            ts = m.venue_ts_ns
            if ts is None:
                continue
            typ = m.type or view.type or "?"
            first_key = (f.conn_id, typ, _instrument(m))
            if first_key not in self.seen:
                self.seen.add(first_key)  # initial state: last trade/ticker before we subscribed
                continue
            if ts > newest.get(typ, -(1 << 62)):
                newest[typ] = ts
        for typ, ts in newest.items():
            lat = (f.t_wall_ns - ts) / 1e6
            key = (f.venue, typ)
            self.samples[key].append(lat)
            mx = self.max_at.get(key)
            if mx is None or lat > mx[0]:
                self.max_at[key] = (lat, f.id)
            mn = self.min_by_venue.get(f.venue)
            if mn is None or lat < mn[0]:
                self.min_by_venue[f.venue] = (lat, f.id)

    def finish(self):
        cfg = self.config
        rows = []
        by_venue: dict[str, list[float]] = defaultdict(list)
        for (venue, typ), arr in sorted(self.samples.items()):
            vals = sorted(arr)
            by_venue[venue].extend(vals)
            p50, p90, p99, mx = (percentile(vals, 0.5), percentile(vals, 0.9), percentile(vals, 0.99), vals[-1])
            rows.append({"venue": venue, "type": typ, "n": len(vals), "p50_ms": _r(p50), "p90_ms": _r(p90),
                         "p99_ms": _r(p99), "max_ms": _r(mx), "max_frame_id": self.max_at[(venue, typ)][1]})
            b99 = float(cfg.for_venue(venue, "latency_p99_ms"))
            bmax = float(cfg.for_venue(venue, "latency_max_ms"))
            sev = cfg.for_venue(venue, "latency_severity")
            fid = self.max_at[(venue, typ)][1]
            if p99 is not None and p99 > b99:
                self.emit("latency_p99", sev, f"{typ}: p99 {p99:.0f} ms > budget {b99:.0f} ms (n={len(vals)}, p50 {p50:.0f} ms)",
                          venue=venue, frame_id=fid, subject=typ, payload=None)
            if mx > bmax:
                self.emit("latency_max", sev, f"{typ}: max {mx:.0f} ms > budget {bmax:.0f} ms", venue=venue, frame_id=fid, subject=typ)
        offsets = {}
        for venue, (mn, fid) in sorted(self.min_by_venue.items()):
            offsets[venue] = {"min_recv_minus_venue_ms": _r(mn), "frame_id": fid}
            lim = float(cfg.for_venue(venue, "clock_offset_ms"))
            if mn < -lim:
                self.emit("clock_behind", "warn",
                          f"host clock is behind the venue's by at least {-mn:.0f} ms (a message arrived {-mn:.0f} ms before its venue timestamp); sync NTP",
                          venue=venue, frame_id=fid)
            elif mn > lim:
                self.emit("clock_ahead_or_delay", "warn",
                          f"every message arrived at least {mn:.0f} ms after its venue timestamp: host clock ahead or a constant delay",
                          venue=venue, frame_id=fid)
        silences = []
        for cid, (gap, after_id, before_id, _start_ns, end_ns) in sorted(self.silence.items()):
            venue = self.conn_venue.get(cid)
            budget = float(cfg.for_venue(venue, "silence_s"))
            silences.append({"conn_id": cid, "venue": venue, "longest_s": round(gap, 3), "after_frame_id": after_id,
                             "before_frame_id": before_id, "budget_s": budget})
            if gap > budget:
                self.emit("silence", "fail",
                          f"connection {cid}: {gap:.1f} s without an inbound frame (budget {budget:g} s), after frame {after_id}",
                          venue=venue, frame_id=before_id, conn_id=cid, t_wall_ns=end_ns,
                          detail={"after_frame_id": after_id, "before_frame_id": before_id, "gap_s": round(gap, 3)})
        self.stats = {"by_type": rows, "clock_offset": offsets, "silence": silences,
                      "venues": {v: {"n": len(x), "p50_ms": _r(percentile(sorted(x), 0.5)), "p99_ms": _r(percentile(sorted(x), 0.99))}
                                 for v, x in sorted(by_venue.items())}}
        self.series = {"latency_ms": {v: x for v, x in by_venue.items()},
                       "rate": {v: dict(r) for v, r in self.rate.items()}, "gaps": self.gaps}
        return super().finish()


def _r(v):
    return None if v is None else round(v, 3)


def _instrument(m):
    inst = getattr(m, "instrument", None) or getattr(m, "market_ticker", None)
    if inst is None:
        d = getattr(m, "data", None)
        if isinstance(d, dict):
            inst = d.get("product_id") or d.get("symbol") or d.get("instrument_name") or d.get("pair")
    return inst if isinstance(inst, str) else None
