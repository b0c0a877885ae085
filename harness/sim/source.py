"""Write the *source* recording of a simulated session: what each venue sends, on the
simulated timeline, as if captured at the venue's door (receive time = send time +
that venue's simulated latency).

Generation streams: the clock advances in 100 ms steps, each step's frames go straight
to the ``RecordingWriter`` (nothing accumulates but a hash per inbound payload, kept to
map the recorder's receive times back onto this timeline, see ``remap``).

Besides WebSocket frames the source holds the REST views the venues would answer at each
moment (``http`` rows, deduplicated: a row is written when the body changes): Kalshi
discovery lists per series and status, ``GET /markets/{ticker}`` and its orderbook every
second for each listed market, the Bitstamp ``order_book`` snapshot every 0.5 s, and one
public ticker per exchange every second.

Source-level faults (``SourceFaults``): a disconnect closes the venue's connection with a
code and opens a new one after an outage (the impersonation server replays it at that
time; the recorder reconnects and gets a fresh snapshot); a stale venue stops changing
its book for a while (heartbeats go on).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from harness.sim.exchanges import EXCHANGES, Exchange
from harness.sim.kalshi import REST_BASE, WS_URL, KalshiSim
from harness.sim.price import PricePath

NS = 1_000_000_000
MS = 1_000_000
STEP_NS = 100 * MS
_NUM = re.compile(r'"(sid|seq|sequence_num)":\s*\d+')


def rest_key(url: str) -> tuple:
    """A REST request's identity whatever host served it: path and sorted query."""
    from urllib.parse import parse_qsl, urlsplit

    u = urlsplit(url)
    return u.path, tuple(sorted(parse_qsl(u.query, keep_blank_values=True)))


def norm(payload: str) -> str:
    """A payload with the numbers the server renumbers per client blanked."""
    return _NUM.sub(lambda m: f'"{m.group(1)}":N', payload)


@dataclass
class SourceFaults:
    disconnects: list[tuple[str, float, int, float]] = field(default_factory=list)  # venue, at_s, code, outage_s
    stale: list[tuple[str, float, float]] = field(default_factory=list)  # venue, at_s, duration_s


@dataclass
class SourceSummary:
    path: str
    start_ns: int
    end_ns: int
    stop_ns: int
    frames: int = 0
    http_rows: int = 0
    markets: list[dict] = field(default_factory=list)
    index: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # venue -> hash(norm) -> recv times
    rest: dict[tuple, list[tuple[int, int]]] = field(default_factory=dict)  # rest_key(url) -> [(t, hash(body))]


class _Conn:
    def __init__(self, venue: str, url: str):
        self.venue = venue
        self.url = url
        self.cid: int | None = None
        self.last_recv = 0
        self.down_until: int | None = None


def write_source(path: str, *, start_ns: int, minutes: float, seed: int, scale: float = 1.0,
                 faults: SourceFaults | None = None, tail_s: float = 15.0) -> SourceSummary:
    from harness import venues
    from harness.store.writer import RecordingWriter

    faults = faults or SourceFaults()

    def rng_for(name: str) -> random.Random:
        return random.Random(f"{seed}:{name}")  # str seeds are hashed with SHA-512: stable across runs

    p0 = 80_000.0 + rng_for("level").random() * 15_000.0
    price = PricePath(rng_for("price"), start_ns - 20 * 60 * NS, p0)
    while price.t_ns < start_ns:  # history before the start: strikes of markets already open
        price.step()
    end_ns = start_ns + int(minutes * 60 * NS)
    stop_ns = end_ns + int(tail_s * NS)
    exchanges: list[Exchange] = [cls(rng_for(cls.venue), scale) for cls in EXCHANGES]
    kal = KalshiSim(rng_for("kalshi"), price, start_ns, end_ns, scale)
    lat_rng = rng_for("latency")
    summary = SourceSummary(path, start_ns, end_ns, stop_ns)
    index = summary.index
    w = RecordingWriter(path, mode="simulate", started_ns=start_ns, classify=venues.classify,
                        config={"seed": seed, "minutes": minutes, "rate_scale": scale, "start_ns": start_ns},
                        source=f"harness simulate source: seed {seed}")
    conns = {ex.venue: _Conn(ex.venue, ex.url) for ex in exchanges}
    conns["kalshi"] = _Conn("kalshi", WS_URL)
    lat = {ex.venue: ex.latency_ns for ex in exchanges}
    lat["kalshi"] = lambda: int(25 * MS * pow(2.718281828, lat_rng.gauss(0.0, 0.4)))

    def emit(venue: str, send: int, d: str, payload: str) -> None:
        c = conns[venue]
        if d == "out":
            recv = max(send, c.last_recv)
        else:
            recv = max(send + lat[venue](), c.last_recv)
            index.setdefault(venue, {}).setdefault(hash(norm(payload)), []).append(recv)
        c.last_recv = recv
        w.frame(c.cid, d, recv, recv, "text", payload)
        summary.frames += 1

    def connect(venue: str, t: int) -> None:
        c = conns[venue]
        c.cid = w.connection(venue, c.url, opened_ns=t, response_status=101)
        c.last_recv = max(c.last_recv, t)
        c.down_until = None
        frames = kal.connect(t) if venue == "kalshi" else next(e for e in exchanges if e.venue == venue).connect(t)
        for i, (d, payload) in enumerate(frames):
            emit(venue, t + (i + 1) * MS, d, payload)

    for i, ex in enumerate(exchanges):
        ex.mid = ex.venue_mid(price.value)
        connect(ex.venue, start_ns + (i + 1) * 7 * MS)
    connect("kalshi", start_ns + 3 * MS)

    drops = sorted((start_ns + int(at * NS), v, code, int(out * NS)) for v, at, code, out in faults.disconnects)
    for v, at, dur in faults.stale:
        ex = next(e for e in exchanges if e.venue == v)
        ex.frozen_from, ex.frozen_until = start_ns + int(at * NS), start_ns + int((at + dur) * NS)
    last_body: dict[str, str] = {}

    def http(venue: str, url: str, t: int, body: str) -> None:
        if last_body.get(url) == body:
            return
        last_body[url] = body
        summary.rest.setdefault(rest_key(url), []).append((t, hash(body)))
        w.http("GET", url, t, status=200, venue=venue, response_body=body, t_sent_ns=t - 40 * MS,
               response_headers={"Content-Type": "application/json"})
        summary.http_rows += 1

    def rest_views(t: int) -> None:
        for url, body in kal.rest(t):
            http("kalshi", url, t, body)
        for ex in exchanges:
            for url, body in ex.rest(t):
                http(ex.venue, url, t, body)

    rest_views(start_ns - NS)  # what a client asks before its first frame arrives
    t = start_ns
    while t < stop_ns:
        t1 = t + STEP_NS
        price.step()
        while drops and drops[0][0] <= t1:
            at, v, code, out = drops.pop(0)
            c = conns[v]
            w.close_connection(c.cid, at, code, "simulated disconnect")
            c.last_recv = max(c.last_recv, at)
            c.down_until = at + out
        for ex in exchanges:
            frozen = ex.frozen_from <= t1 < ex.frozen_until
            frames = ex.step(t, t1, price.value) if not frozen else ex.heartbeats(t, t1)
            c = conns[ex.venue]
            if c.down_until is not None:
                if t1 < c.down_until:
                    continue  # the venue goes on; nobody is listening
                connect(ex.venue, c.down_until)
            for send, payload in frames:
                emit(ex.venue, send, "in", payload)
        kframes = kal.step(t, t1)
        c = conns["kalshi"]
        if c.down_until is not None and t1 >= c.down_until:
            connect("kalshi", c.down_until)
        if c.down_until is None:
            for send, d, payload in kframes:
                emit("kalshi", send, d, payload)
        if t1 % (NS // 2) == 0:
            bs = next(e for e in exchanges if e.venue == "bitstamp")
            http("bitstamp", "https://www.bitstamp.net/api/v2/order_book/btcusd/", t1, bs.order_book_body())
        if t1 % NS == 0:
            rest_views(t1)
        t = t1
    summary.markets = [{"ticker": m.ticker, "open_ns": m.open_ns, "close_ns": m.close_ns, "strike": m.strike,
                        "strike_type": m.strike_type, "status": m.status, "result": m.result,
                        "expiration_value": m.expiration_value} for m in kal.markets]
    w.close(ended_ns=stop_ns)
    return summary


__all__ = ["write_source", "SourceFaults", "SourceSummary", "norm", "rest_key", "REST_BASE"]
