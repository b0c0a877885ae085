"""``harness replay REC --via-server``: the recording through the wire, into the live
recorder, and from the recorder's writes into the pipeline and the checks.

    result = await run_via_server("rec.db", sinks=[pipe, runner], speed=None)

1. An ``ImpersonationServer`` serves REC on 127.0.0.1:0 at ``speed`` (Kalshi with an RSA
   key generated for this run, its public half as the server's ``auth_key``).
2. ``run_record`` records from it with a ``RecordConfig`` built from the recording: the
   venues it recorded, the Kalshi channels and markets of its recorded ``subscribe``
   commands, and each exchange's recorded subscribe frames sent as they were.
3. ``ArrivalMerger``, the recorder's observer, sees every frame as it is written. The
   server was asked to remember each data frame it sent (``track_sent``), so each
   arriving data frame gets back its recorded time; control frames and replies take the
   time of the last data frame of their venue. Venues arrive on separate sockets, so the
   merger holds frames until every venue still streaming has reached their time, then
   hands them to the sinks in recorded order: the pipeline sees the same frames at the
   same times as an in-process replay, at any speed.

A venue's stream is over when the server closes it with 1000 "end of recording" (the
recorder would reconnect and be served the recording again: those frames are recorded
but not delivered) or when the recorder gives the venue up. The run stops when every
venue is over.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.frame import Frame

END_REASON = "end of recording"


# --------------------------------------------------------------------------- config


def recorded_subscriptions(rec, venues: list[str]) -> tuple[dict[str, dict], list[str]]:
    """venue -> VenueConfig keyword arguments reproducing the recorded subscriptions, and
    warnings for venues that cannot be reproduced (skipped)."""
    from harness import venues as vmod
    from harness.replay.venue_flows import KALSHI_TYPE_CHANNEL

    by_venue: dict[str, list[int]] = {}
    for c in rec.connections():
        by_venue.setdefault(c["venue"].lower(), []).append(c["id"])
    out: dict[str, dict] = {}
    warnings: list[str] = []
    for v in venues:
        ids = by_venue.get(v, [])
        if not ids:
            continue
        q = ",".join("?" * len(ids))
        sent = [p for (p,) in rec.db.execute(
            f"SELECT payload FROM frames WHERE dir = 'out' AND opcode = 'text' AND conn_id IN ({q}) ORDER BY conn_id, id", ids)
            if isinstance(p, str)]
        mod = vmod.get(v)
        if v == "kalshi":
            channels: list[str] = []
            markets: list[str] = []
            for p in sent:
                try:
                    cmd = mod.parse_command(p)
                except Exception:  # noqa: BLE001 - not a command we reproduce
                    continue
                if cmd.cmd == "subscribe":
                    channels += [c for c in cmd.params.channels if c not in channels]
                    markets += [t for t in cmd.tickers if t not in markets]
                elif cmd.cmd == "update_subscription" and cmd.params.action == "add_markets":
                    markets += [t for t in cmd.tickers if t not in markets]  # rollover: asked for from the start
            if not channels:  # imported recordings carry no commands: what was received
                types = {t if t is not None else mod.classify(p) for t, p in rec.db.execute(
                    f"SELECT type, payload FROM frames WHERE dir = 'in' AND opcode = 'text' AND conn_id IN ({q}) LIMIT 5000", ids)}
                channels = sorted({KALSHI_TYPE_CHANNEL[t] for t in types if t in KALSHI_TYPE_CHANNEL})
            out[v] = {"channels": channels, "markets": markets}
            continue
        subs = []
        for p in sent:
            try:
                cmd = mod.parse_command(p)
            except Exception:  # noqa: BLE001
                continue
            if cmd.action == "subscribe" and p not in subs:
                subs.append(p)
        if not subs:
            subs = derived_subscribe(rec, v, ids)
        if not subs:
            warnings.append(f"{v}: no subscribe commands recorded and none could be derived from its frames; not served")
            continue
        out[v] = {"subscribe": subs}
    return out, warnings


def derived_subscribe(rec, venue: str, conn_ids: list[int], sample: int = 5000) -> list[str]:
    """Subscribe frames asking for the channels and instruments of a venue's recorded data
    (for recordings without client commands: imports, hand-made files)."""
    import orjson

    from harness import venues as vmod
    from harness.replay.venue_flows import _INSTRUMENTS, _TOPIC, ALWAYS, CONTROL

    topic = _TOPIC.get(venue)
    if topic is None:
        return []
    inst_of = _INSTRUMENTS.get(venue)
    q = ",".join("?" * len(conn_ids))
    topics: list[str] = []
    insts: list[str] = []
    exchange_feed = True
    for (p,) in rec.db.execute(f"SELECT payload FROM frames WHERE dir = 'in' AND opcode = 'text' AND conn_id IN ({q})"
                               f" ORDER BY id LIMIT {int(sample)}", conn_ids):
        if not isinstance(p, str) or p[:1] == "[":  # Kraken v1 arrays: not derived
            continue
        t = topic(p)
        if t is None or t is ALWAYS or t is CONTROL:
            continue
        if t not in topics:
            topics.append(t)
        if venue == "coinbase" and '"channel"' in p:
            exchange_feed = False
        for i in inst_of(p) if inst_of is not None else ():
            if i not in insts:
                insts.append(i)
    if not topics:
        return []
    mod = vmod.get(venue)
    if venue == "bitstamp":
        return [orjson.dumps({"event": "bts:subscribe", "data": {"channel": t}}).decode() for t in topics]
    if venue == "cryptocom":
        return [orjson.dumps({"id": 1, "method": "subscribe", "params": {"channels": topics}}).decode()]
    if venue == "coinbase":
        return mod.subscribe_frames(topics, insts, feed="exchange" if exchange_feed else "advanced_trade")
    if venue == "kraken":
        return mod.subscribe_frames(topics, insts, depth=10 if "book" in topics else None)
    return mod.subscribe_frames(topics, insts)


def record_config(srv, subs: dict[str, dict], output: str, speed):
    from harness.config import BackoffConfig, KalshiConfig, RecordConfig, VenueConfig

    vcs = {}
    kalshi = None
    for v, kw in subs.items():
        common = {"stale_timeout": None, "compression": False, "open_timeout": 10.0}
        if v == "kalshi":
            vcs[v] = VenueConfig(name=v, url=srv.urls[v], channels=kw["channels"], **common)
            markets = kw["markets"] or sorted(srv.tracks["kalshi"].markets)
            kalshi = KalshiConfig(markets=markets)
        else:
            vcs[v] = VenueConfig(name=v, url=srv.urls[v], subscribe=kw["subscribe"], **common)
    return RecordConfig(output=output, venues=vcs, kalshi=kalshi, status=False,
                        backoff=BackoffConfig(base=0.05, cap=0.5, reset_after=60, auth_failures_max=2, seed=0))


def _credentials():
    """A Kalshi API key made for this run: the recorder signs with it, the server verifies."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from harness.venues.kalshi_auth import Credentials

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Credentials(key_id=str(uuid.uuid4()), key_path=Path("<generated for --via-server>"), private_key=key), key.public_key()


# --------------------------------------------------------------------------- merging


class ArrivalMerger:
    """Recorder observer: arriving frames back on the recorded timeline, delivered to
    ``sinks`` (objects with ``on_frame``) in recorded order across venues."""

    def __init__(self, srv, venues, sinks, origin: int = 0):
        self.srv = srv
        self.venues = list(venues)
        self.sinks = [s.on_frame for s in sinks]
        self.last: dict[str, int | None] = dict.fromkeys(self.venues)
        self.last_wall: int = origin
        self.origin = origin
        self.done: set[str] = set()
        self.heap: list = []
        self.n = 0
        self.delivered = 0
        self.data: Counter = Counter()  # venue -> data frames that arrived (matched to a sent frame)
        self.other: Counter = Counter()  # venue -> replies, control frames, outbound frames
        self.after_end: Counter = Counter()  # venue -> frames recorded after its stream ended
        self.first_t: int | None = None
        self.last_t: int | None = None
        self.conn_venue: dict[int, str] = {}
        self.late_conns: set[int] = set()  # opened after their venue's stream ended

    def on_connection(self, conn_id: int, venue: str, url) -> None:
        self.conn_venue[conn_id] = venue
        if venue in self.done:
            self.late_conns.add(conn_id)

    def on_frame(self, f: Frame) -> None:
        v = f.venue
        if v in self.done or v not in self.last:
            self.after_end[v] += 1
            return
        st = None
        if f.dir == "in" and f.opcode in ("text", "binary"):
            st = self.srv.sent_time(v, f.payload)
        if st is not None:
            key, wall = st
            self.last[v] = key
            self.data[v] += 1
        else:
            key = self.last[v] if self.last[v] is not None else self.origin
            wall = None
            self.other[v] += 1
        heapq.heappush(self.heap, (key, self.n, wall, f))
        self.n += 1
        self._release()

    def on_event(self, kind: str, t_wall_ns: int, conn_id, detail) -> None:
        d = detail if isinstance(detail, dict) else {}
        v = d.get("venue") or self.conn_venue.get(conn_id)
        if v not in self.last:
            return
        if (kind == "disconnect" and d.get("reason") == END_REASON) or (kind == "error" and d.get("phase") == "gave_up"):
            self.done.add(v)
            self._release()

    @property
    def finished(self) -> bool:
        return self.done.issuperset(self.venues)

    def _watermark(self) -> float:
        w = float("inf")
        for v in self.venues:
            if v in self.done:
                continue
            t = self.last[v]
            if t is None:
                return float("-inf")
            if t < w:
                w = t
        return w

    def _release(self, everything: bool = False) -> None:
        w = float("inf") if everything else self._watermark()
        heap = self.heap
        while heap and heap[0][0] <= w:
            key, _, wall, f = heapq.heappop(heap)
            if wall is None:
                wall = self.last_wall
            else:
                self.last_wall = wall
            if self.first_t is None:
                self.first_t = key
            self.last_t = key
            g = Frame(f.venue, f.conn_id, f.dir, wall, key, f.opcode, f.payload, f.type, f.id, f.session_id)
            self.delivered += 1
            for s in self.sinks:
                s(g)

    def flush(self) -> None:
        self._release(everything=True)


# --------------------------------------------------------------------------- the run


def served_per_venue(clients, venues) -> dict[str, int]:
    """Data frames sent per venue up to the end of its first full pass through the
    recording (later connections were the recorder reconnecting after the end)."""
    out = dict.fromkeys(venues, 0)
    ended: set[str] = set()
    for c in clients:
        if c.venue in out and c.venue not in ended:
            out[c.venue] += c.frames_sent
            if c.close_reason == END_REASON:
                ended.add(c.venue)
    return out


@dataclass
class ViaServerResult:
    recording: str | None  # the recording made through the wire (None once removed)
    venues: list[str]
    served: dict[str, int]  # data frames the server sent per venue
    arrived: dict[str, int]  # of those, arrived at the recorder and delivered in order
    other: dict[str, int]  # replies/control/outbound frames delivered
    after_end: dict[str, int]
    late_conns: set[int]  # the recorder's reconnections after a venue's end (not delivered)
    delivered: int
    first_t_ns: int | None
    last_t_ns: int | None
    wall_s: float
    speed: float | None
    lateness: dict
    stopped_by: str
    failed: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    server: dict = field(default_factory=dict)


async def run_via_server(recording, sinks, *, speed=None, venues=None, keep: str | None = None,
                         on_recording=None, timeout_s: float | None = None, signals: bool = False,
                         precise: bool = False) -> ViaServerResult:
    """Serve ``recording``, record it through the wire, deliver what arrives to ``sinks``.
    ``keep``: write the recording made through the wire there (else a temp file, removed).
    ``on_recording(path, late_conns)`` is called with that file once it is closed, before
    removal (``late_conns``: the recorder's reconnections after the end, not delivered)."""
    from harness.live.manager import run_record
    from harness.replay.server import ImpersonationServer
    from harness.store.reader import Recording

    creds, public = _credentials()
    srv = ImpersonationServer(recording, speed=speed, auth_key=public, track_sent=True, slow_client_s=30.0, precise=precise)
    tmpdir = None
    if keep:
        out = os.fspath(keep)
        if os.path.exists(out):
            raise ConfigError(f"{out} already exists", hint="choose a new file for --keep-recording")
    else:
        tmpdir = tempfile.mkdtemp(prefix="harness-via-server-")
        out = os.path.join(tmpdir, "through-the-wire.db")
    t0 = time.perf_counter()
    try:
        async with srv:
            wanted = sorted(srv.tracks) if not venues else [v.lower() for v in venues]
            unknown = [v for v in wanted if v not in srv.tracks]
            if unknown:
                raise ConfigError(f"{', '.join(unknown)} not in {recording}", hint=f"recorded venues: {', '.join(sorted(srv.tracks))}")
            with Recording(recording) as rec:
                subs, warnings = recorded_subscriptions(rec, wanted)
            if not subs:
                raise ConfigError(f"{recording}: nothing to serve through the wire", hint="; ".join(warnings) or None)
            cfg = record_config(srv, subs, out, speed)
            merger = ArrivalMerger(srv, list(subs), sinks, origin=srv._origin or 0)
            stop = asyncio.Event()

            async def until_done():
                while not merger.finished:
                    await asyncio.sleep(0.02)
                stop.set()

            watcher = asyncio.ensure_future(until_done())
            try:
                if timeout_s is not None:
                    async with asyncio.timeout(timeout_s):
                        result = await run_record(cfg, credentials=creds, stop=stop, observer=merger, install_signals=signals, status=False)
                else:
                    result = await run_record(cfg, credentials=creds, stop=stop, observer=merger, install_signals=signals, status=False)
            finally:
                watcher.cancel()
            merger.flush()
            stats = srv.stats
        served = served_per_venue(srv.clients, list(subs))
        if on_recording is not None:
            on_recording(out, set(merger.late_conns))
        return ViaServerResult(
            recording=out if keep else None, venues=list(subs), served=served, arrived=dict(merger.data),
            other=dict(merger.other), after_end=dict(merger.after_end), late_conns=set(merger.late_conns), delivered=merger.delivered,
            first_t_ns=merger.first_t, last_t_ns=merger.last_t, wall_s=time.perf_counter() - t0, speed=speed,
            lateness=stats["lateness"], stopped_by=result.stopped_by, failed=result.failed, warnings=warnings,
            server={k: stats[k] for k in ("clients_total", "handshakes", "auth_refused", "not_found", "rest_served")},
        )
    finally:
        if tmpdir is not None:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)
