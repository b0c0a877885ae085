"""The pipeline as a replay/live sink: frames in; index ticks, signals, settlements out.

``Pipeline.on_frame(frame)`` is the whole hot path:

1. **Harness time** is the frame's recorded wall time ``t_wall_ns`` (the receive stamp,
   identical live and in replay; ``ReplayClock.now_ns()`` returns the same number),
   clamped to never go backwards (an NTP step in a live recording must not make
   ``IndexSeries`` raise). Nothing here reads the system clock, so a replay computes the
   same values at any ``--speed``.
2. **REST rows** (``attach_http(rec.http(Pipeline.HTTP_URLS))``) due at or before that
   time are applied first, each at its own receive time: Bitstamp ``/order_book/<pair>``
   snapshots (the alignment point of its diff stream) and Kalshi ``GET /markets`` bodies
   (strikes, open/close, ``expiration_value`` of settled markets). Other REST rows are
   dropped by ``attach_http``: they would move harness time without changing anything.
3. ``IndexSeries.advance(t, books)`` runs *before* the frame's events are applied (its
   calling protocol), but only when a 200 ms cadence boundary was crossed: the book
   snapshot is built only then.
4. The frame goes to its connection's venue session (``harness.venues.get(venue)
   .new_session()``, one per ``conn_id``: a reconnect is a new session); decode errors and
   sequencing findings are counted per venue, never raised.
5. Spot venues: a decoded ``BookMessage`` for a BTC instrument (``BTC_INSTRUMENTS``; every
   other pair is ignored: its session is told ``keep_books(instruments)``, so other pairs'
   levels are not even decoded, while their frames still count for sequencing) is told to
   that venue's ladder when the frame moved the book's ``version`` (a Bitstamp diff the
   session dropped as older than its REST snapshot changes nothing). Kalshi: messages
   update ``markets.Markets``.

Venue freshness (BRTI step 1, ``staleness_ns`` = 10 s) is judged on the harness time of
the last inbound frame on the connection that holds the venue's book (heartbeats and other
pairs included: a live, in-sync connection means the book is current even when BTC did
not move), not on venue timestamps (Gemini's l2 has none, and venue clocks differ from
ours). A ``gap``/``checksum``/``reset`` finding on that connection freezes the stamp until
the instrument's next snapshot, so a broken book ages out instead of feeding the index.

**Book conversion** (``L2Book`` Decimal levels -> float arrays in a ``VenueBook``) was the
expensive step for deep books (~0.25 us a level; Coinbase BTC-USD holds ~46,000 levels).
Each venue's book has a ``ladder.Ladder``: a float copy of its levels (a deep side down to
``max_levels`` + 1,000), patched at a tick from the prices the BookMessages since the
previous tick touched, and converted again only when it cannot prove the patch exact
(snapshot, a change it was not told about, a level count mismatch) or a tick needs deeper
levels than it holds: see ``ladder.py``. A tick then cuts from it the levels the
calculator can use: within ``band`` of the best price (default = the dynamic-cap band
``cap_band``, 5%: the cap's order-size sample is drawn from there; the index itself only
reaches ~0.5%), at least ``min_levels`` (50 = ``cap_min_levels_per_side``) and at most
``max_levels`` (5,000) a side, exactly the levels ``convert_book`` (the straightforward
full conversion, kept as the tests' reference) selects. Measured on the real Coinbase
snapshot: top 200 levels moves the index by -1.6 USD and top 1,000 by -1.7 USD against the
full book (the cap sample is cut); the 5% band (~3,300 levels a side) is within 0.03 USD.

On each index tick: the naive baseline (``baseline_mid``) at the same instant; on
published (whole-second) valid ticks the EWMA volatility is updated; for every open
Kalshi market with a strike, a quote and a close time the fair probability of YES
(``FairValueModel``, with the part of the settlement average already known), then
``SignalDetector.on_tick``. KXBTC15M markets without a published strike get the proxy's
own 60 s average at their open (``markets`` module doc) when at least ``strike_min_values``
of its 60 values were seen.

Results: ``ticks`` (one row per tick, the ``index_values`` table layout of
``output.py``), ``published``/``baseline_published`` (per second), ``signals``,
``evaluations`` (after ``finish()``), ``summary()``.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from harness.errors import ConfigError, DecodeError
from harness.pipeline.brti import NEVER_NS, BrtiCalculator, IndexSeries, VenueBook, baseline_mid
from harness.pipeline.config import PipelineConfig
from harness.pipeline.evaluate import evaluate, summarize, window_average
from harness.pipeline.fair_value import EwmaVol, FairValueModel
from harness.pipeline.ladder import Ladder
from harness.pipeline.markets import KalshiMarket, Markets
from harness.pipeline.signals import Signal, SignalDetector
from harness.venues.base import BookMessage
from harness.venues.kalshi_markets import BTC_SERIES

BTC_INSTRUMENTS = frozenset({"BTC-USD", "XBT/USD", "BTC/USD", "btcusd", "BTCUSD"})
_BROKEN = ("gap", "checksum", "reset", "out_of_order")
NS = 1_000_000_000


def convert_book(venue: str, book: Any, *, band: float | None, min_levels: int,
                 max_levels: int | None, last_update_ns: int = NEVER_NS) -> VenueBook:
    """``L2Book`` -> float ``VenueBook`` keeping the levels within ``band`` of the best
    price on each side (at least ``min_levels``, at most ``max_levels``)."""
    bids: list[tuple[float, float]] = []
    asks: list[tuple[float, float]] = []
    if band is None:
        bids = [(float(p), float(q)) for p, q in islice(book.bids_desc(), max_levels)]
        asks = [(float(p), float(q)) for p, q in islice(book.asks_asc(), max_levels)]
        return VenueBook(venue, bids, asks, last_update_ns)
    it = islice(book.bids_desc(), max_levels)
    for p, q in it:
        floor = float(p) * (1.0 - band)
        bids.append((float(p), float(q)))
        break
    else:
        floor = 0.0
    add = bids.append
    for p, q in it:
        fp = float(p)
        if fp < floor and len(bids) >= min_levels:
            break
        add((fp, float(q)))
    it = islice(book.asks_asc(), max_levels)
    ceil = math.inf
    for p, q in it:
        ceil = float(p) * (1.0 + band)
        asks.append((float(p), float(q)))
        break
    add = asks.append
    for p, q in it:
        fp = float(p)
        if fp > ceil and len(asks) >= min_levels:
            break
        add((fp, float(q)))
    return VenueBook(venue, bids, asks, last_update_ns)


@dataclass(slots=True)
class _Venue:
    """One spot venue's BTC book as the pipeline tracks it."""

    name: str
    conn_id: int | None = None
    instrument: str | None = None
    book: Any = None  # L2Book
    stamp_ns: int = NEVER_NS  # harness time of the last frame on conn_id while in sync
    broken: bool = False  # a gap/checksum finding since the last snapshot
    ladder: Ladder | None = None  # float copy of book, patched from the noted messages
    vb: VenueBook | None = None
    conversions: int = 0
    ticks_used: int = 0
    excluded: Counter = field(default_factory=Counter)


class Pipeline:
    """A sink (``on_frame``) running decode -> books -> BRTI proxy -> fair value -> signals.

    ``config``: ``PipelineConfig`` (``brti.min_venues`` = 1 for single-venue recordings).
    ``log``: an ``output.SessionLog`` to stream rows to (optional). ``keep``: keep every
    tick row in memory (``ticks``; needed by ``summary()``'s first/last/min/max only
    through the running aggregates, so False is fine for long runs).
    """

    # the REST rows ``_on_http`` can use (Kalshi markets, Bitstamp order books): what to ask
    # ``Recording.http`` for
    HTTP_URLS = ("/markets", "/order_book/")

    def __init__(self, config: PipelineConfig | None = None, *, band: float | None = -1.0,
                 min_levels: int | None = None, max_levels: int | None = 5000,
                 instruments: Iterable[str] = BTC_INSTRUMENTS,
                 kalshi_series: tuple[str, ...] | None = BTC_SERIES,
                 log: Any = None, keep: bool = True, strike_min_values: int = 50):
        self.config = cfg = config or PipelineConfig()
        self.band = cfg.brti.cap_band if band == -1.0 else band
        self.min_levels = cfg.brti.cap_min_levels_per_side if min_levels is None else min_levels
        self.max_levels = max_levels
        self.instruments = frozenset(instruments)
        self.series = IndexSeries(BrtiCalculator(cfg.brti), cfg.series)
        self.cadence_ns = cfg.series.cadence_ns
        self.vol = EwmaVol(cfg.vol)
        self.fv = FairValueModel(cfg.fair_value)
        self.detector = SignalDetector(cfg.signals, cfg.fees)
        self.markets = Markets(kalshi_series)
        self.log = log
        self.keep = keep
        self.strike_min_values = strike_min_values

        self.sessions: dict[int, tuple[str, Any]] = {}
        self.venues: dict[str, _Venue] = {}
        self._conn_venue: dict[int, _Venue] = {}  # conn_id -> the venue whose book it holds
        self._http: deque[tuple[int, dict]] = deque()
        self._pending_rest: dict[str, list[tuple[str, str | bytes]]] = {}
        self.now_ns: int | None = None
        self._next_b: int | None = None

        self.frames = 0
        self.decode_errors: Counter = Counter()
        self.findings: Counter = Counter()  # (venue, kind) -> n
        self.ticks: list[tuple] = []
        self.published: list[tuple[int, float]] = []
        self.baseline_published: list[tuple[int, float]] = []
        self.signals: list[Signal] = []
        self.evaluations: list = []
        self.n_ticks = self.n_valid = 0
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None
        self._min: float | None = None
        self._max: float | None = None
        self._venues_used: Counter = Counter()
        self.finished = False
        self.tick_hook: Any = None  # optional callable(tick, baseline) after each tick

    # ------------------------------------------------------------------ input

    def attach_http(self, rows: Iterable[dict]) -> None:
        """REST exchanges of the recording (``Recording.http(Pipeline.HTTP_URLS)`` rows),
        applied in time order as frames pass their receive time (``t_recv_ns``)."""
        # only the rows _on_http can use: others would still move harness time (and start
        # the index early), live and in replay alike
        parts = self.HTTP_URLS
        items = [(r.get("t_recv_ns") or r.get("t_sent_ns") or 0, i, r) for i, r in enumerate(rows)
                 if isinstance(r.get("url"), str) and any(u in r["url"] for u in parts)]
        items.sort(key=lambda x: (x[0], x[1]))
        merged = sorted(list(self._http) + [(t, r) for t, _, r in items], key=lambda x: x[0])
        self._http = deque(merged)

    def on_frame(self, f: Any) -> None:
        t = f.t_wall_ns
        now = self.now_ns
        if now is not None and t < now:
            t = now
        if self._http and self._http[0][0] <= t:
            self._drain_http(t)
        nb = self._next_b
        if nb is None or t > nb:
            self._advance(t)
        self.now_ns = t
        self.frames += 1
        entry = self.sessions.get(f.conn_id)
        if entry is None:
            entry = self._new_session(f)
        name, sess = entry
        if sess is None:
            return
        if f.dir != "in":
            if name == "kalshi":
                sess.note_sent(f.payload)
            return
        if f.opcode not in ("text", "binary"):
            return
        vs = self._conn_venue.get(f.conn_id)
        # the bound book's change counter before the frame: a frame that leaves it where it
        # was (a Bitstamp diff older than the REST snapshot, dropped) is not told to the
        # ladder, whose copy is then still exact (else it would convert the book again)
        v0 = getattr(vs.book, "version", None) if vs is not None else None
        try:
            msgs, findings = sess.feed(f.payload, f.id)
        except DecodeError:
            self.decode_errors[name] += 1
            return
        if name == "kalshi":
            on_message = self.markets.on_message
            for m in msgs:
                on_message(m, t, sess)
            if findings:
                for fd in findings:
                    self.findings[(name, fd.kind)] += 1
            return
        inst = self.instruments
        for m in msgs:
            if isinstance(m, BookMessage) and m.instrument in inst:
                book = sess.books.get(m.instrument)
                if book is None:
                    continue  # e.g. a Bitstamp diff buffered until its REST snapshot
                if vs is None or vs.book is not book:
                    vs = self._bind(name, f.conn_id, m.instrument, book)
                    vs.ladder.note(m)
                elif v0 is None or book.version != v0:
                    vs.ladder.note(m)
                if m.snapshot:
                    vs.broken = False
        if findings:
            for fd in findings:
                self.findings[(name, fd.kind)] += 1
                if fd.kind in _BROKEN and vs is not None and (fd.key in (vs.instrument, "*") or fd.kind == "gap"):
                    vs.broken = True
        if vs is not None and not vs.broken:
            vs.stamp_ns = t

    def advance(self, now_ns: int) -> None:
        """Drive the index on harness time without a frame (a live timer)."""
        t = max(now_ns, self.now_ns or now_ns)
        if self._next_b is None or t > self._next_b:
            self._advance(t)
        self.now_ns = t

    # ------------------------------------------------------------------ internals

    def _new_session(self, f: Any) -> tuple[str, Any]:
        from harness import venues

        try:
            v = venues.get(f.venue)
        except ConfigError:
            entry = (f.venue, None)
        else:
            sess = v.new_session()
            # books only for the index's instruments: other pairs on the connection are still
            # sequenced but their levels are not decoded (the Coinbase recording's 2.5 MB
            # ETH-USD snapshot, Kraken's other pairs); Kalshi's session keeps every market
            sess.keep_books(self.instruments)
            entry = (v.name, sess)
        self.sessions[f.conn_id] = entry
        name, sess = entry
        pend = self._pending_rest.pop(name, None) if sess is not None else None
        for inst, body in pend or ():
            self._rest_snapshot(name, f.conn_id, sess, inst, body, f.t_wall_ns)
        return entry

    def _bind(self, name: str, conn_id: int, instrument: str, book: Any) -> _Venue:
        vs = self.venues.get(name)
        if vs is None:
            vs = self.venues[name] = _Venue(name)
        if vs.conn_id is not None and self._conn_venue.get(vs.conn_id) is vs:
            del self._conn_venue[vs.conn_id]
        vs.conn_id, vs.instrument, vs.book = conn_id, instrument, book
        # the copy holds the levels a tick can use (max_levels) and a margin for deletions
        vs.broken, vs.ladder = False, Ladder(book, None if self.max_levels is None else self.max_levels + 1000)
        self._conn_venue[conn_id] = vs
        return vs

    def _drain_http(self, t: int) -> None:
        q = self._http
        while q and q[0][0] <= t:
            th, row = q.popleft()
            nb = self._next_b
            if nb is None or th > nb:
                self._advance(th)
            self.now_ns = max(self.now_ns or th, th)
            self._on_http(row, self.now_ns)

    def _on_http(self, row: dict, t: int) -> None:
        url = row.get("url") or ""
        body = row.get("response_body")
        venue = (row.get("venue") or "").lower()
        if "kalshi" in venue or "kalshi" in url:
            if "/markets" in url and body:
                self.markets.on_rest_body(body, t)
            return
        if ("bitstamp" in venue or "bitstamp" in url) and "/order_book/" in url and body:
            inst = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            if inst not in self.instruments:
                return
            conns = [cid for cid, (n, s) in self.sessions.items() if n == "bitstamp" and s is not None]
            if not conns:
                self._pending_rest.setdefault("bitstamp", []).append((inst, body))
                return
            cid = max(conns)
            self._rest_snapshot("bitstamp", cid, self.sessions[cid][1], inst, body, t)

    def _rest_snapshot(self, name: str, conn_id: int, sess: Any, inst: str, body: Any, t: int) -> None:
        try:
            fds = sess.apply_rest_snapshot(inst, body)
        except (DecodeError, AttributeError):
            self.decode_errors[name] += 1
            return
        for fd in fds:
            self.findings[(name, fd.kind)] += 1
        book = sess.books.get(inst)
        if book is not None:
            vs = self._bind(name, conn_id, inst, book)
            vs.stamp_ns = t

    def _books(self) -> list[VenueBook]:
        out = []
        for vs in self.venues.values():
            if vs.book is None:
                continue
            lad = vs.ladder
            if lad.changed or vs.vb is None:
                lad.sync()
                vs.vb = VenueBook.from_arrays(vs.name, *lad.select(self.band, self.min_levels, self.max_levels),
                                              vs.stamp_ns)
                vs.conversions += 1
            vs.vb.last_update_ns = vs.stamp_ns
            out.append(vs.vb)
        return out

    def _advance(self, t: int) -> None:
        c = self.cadence_ns
        if self.series.prev_ns is None:
            self.series.advance(t, ())
        else:
            books = self._books()
            ticks = self.series.advance(t, books)
            for tick in ticks:
                self._on_tick(tick, books)
        self._next_b = -(-t // c) * c

    def _on_tick(self, tick: Any, books: list[VenueBook]) -> None:
        b = tick.ts_ns
        r = tick.result
        base = baseline_mid(books, b, self.config.brti.staleness_ns)
        value = tick.value
        self.n_ticks += 1
        for v in r.venues_used:
            self._venues_used[v] += 1
            vs = self.venues.get(v)
            if vs is not None:
                vs.ticks_used += 1
        for v, why in r.excluded.items():
            vs = self.venues.get(v)
            if vs is not None:
                vs.excluded[why] += 1
        if tick.published:
            if value is not None:
                pv = self.series.published[-1][1] if self.series.published and self.series.published[-1][0] == b else value
                self.published.append((b, pv))
                self.vol.update(b, pv)
            if base is not None:
                self.baseline_published.append((b, round(base, 2)))
        if value is not None:
            self.n_valid += 1
            if self._first is None:
                self._first = (b, value)
            self._last = (b, value)
            self._min = value if self._min is None or value < self._min else self._min
            self._max = value if self._max is None or value > self._max else self._max
        sigma = self.vol.sigma
        row = (b, value, int(r.valid), int(tick.published), r.reason, ",".join(r.venues_used),
               _excluded_json(r.excluded), base, r.utilized_depth or None, r.size_cap, sigma)
        if self.keep:
            self.ticks.append(row)
        if self.log is not None:
            self.log.index(row)
        if self.tick_hook is not None:
            self.tick_hook(tick, base)
        if value is None:
            return
        pairs = []
        log = self.log
        for m in self.markets.open_markets(b):
            if m.close_ns is None or (m.yes_bid is None and m.yes_ask is None):
                continue
            if not m.has_strike:
                self._proxy_strike(m, b)
                if not m.has_strike:
                    continue
            q, fair = m.quote(), self._fair(m, value, sigma, b)
            pairs.append((q, fair))
            if log is not None and fair is not None:
                log.fair((b, m.ticker, fair, q.yes_bid, q.yes_ask, q.last_update_ns, value, sigma))
        # called on every valid tick, markets or not: the detector keeps the index history
        # it looks up the index at a quote's last update in
        for s in self.detector.on_tick(b, value, b, sigma, pairs):
            self.signals.append(s)
            if self.log is not None:
                self.log.signal(s)

    def _proxy_strike(self, m: KalshiMarket, b: int) -> None:
        if m.series != "KXBTC15M" or m.open_ns is None or b < m.open_ns:
            return
        avg, n = window_average(self.published, m.open_ns, self.config.series.settlement_window_ns)
        if avg is not None and n >= self.strike_min_values:
            m.set_strike("proxy_open", "greater_or_equal", round(avg, 2))

    def _fair(self, m: KalshiMarket, value: float, sigma: float, b: int) -> float | None:
        ks, kn, kt = self.series.settlement_known(m.close_ns)
        try:
            return self.fv.evaluate(index=value, sigma=sigma, now_ns=b, close_ns=m.close_ns,
                                    strike_type=m.strike_type, floor_strike=m.floor_strike,
                                    cap_strike=m.cap_strike, known_sum=ks, known_count=kn,
                                    known_through_ns=kt).prob
        except (ValueError, ZeroDivisionError):
            return None

    # ------------------------------------------------------------------ output

    def finish(self) -> Pipeline:
        """Evaluate settled markets and close the log (idempotent)."""
        if self.finished:
            return self
        self.finished = True
        self.evaluations = evaluate(self.markets.settled(), self.published, self.baseline_published,
                                    self.config.series.settlement_window_ns)
        if self.log is not None:
            self.log.settlements(self.evaluations)
            if self.now_ns is not None:
                self.log.set_meta({"written_ns": str(self.now_ns)})
            self.log.close()
        return self

    close = finish  # the replay source calls sink.close() at the end

    def index_summary(self) -> dict:
        c = self.cadence_ns
        return {
            "ticks": self.n_ticks,
            "valid": self.n_valid,
            "published": len(self.published),
            "cadence_ms": c / 1e6,
            "first": None if self._first is None else self._first[1],
            "first_ts_ns": None if self._first is None else self._first[0],
            "last": None if self._last is None else self._last[1],
            "last_ts_ns": None if self._last is None else self._last[0],
            "min": self._min,
            "max": self._max,
            "venues_used": sorted(self._venues_used),
            "venues": {
                name: {"instrument": vs.instrument, "ticks_used": vs.ticks_used,
                       "excluded": dict(sorted(vs.excluded.items())), "conversions": vs.conversions,
                       "rebuilds": vs.ladder.rebuilds if vs.ladder else 0}
                for name, vs in sorted(self.venues.items())
            },
            "baseline_last": self.baseline_published[-1][1] if self.baseline_published else None,
            "min_venues": self.config.brti.min_venues,
            "book_levels": {"band": self.band, "min_levels": self.min_levels, "max_levels": self.max_levels},
        }

    def summary(self) -> dict:
        return {
            "frames": self.frames,
            "index": self.index_summary(),
            "signals": [signal_dict(s) for s in self.signals],
            "settlements": [e.as_dict() for e in self.evaluations],
            "settlement_summary": summarize(self.evaluations),
            "markets": [market_dict(m) for _, m in sorted(self.markets.markets.items())],
            "findings": {f"{v}:{k}": n for (v, k), n in sorted(self.findings.items())},
            "decode_errors": dict(sorted(self.decode_errors.items())),
        }

    def digest(self) -> str:
        """SHA-256 over every tick row and signal: equal digests = identical results."""
        import hashlib

        h = hashlib.sha256()
        for row in self.ticks:
            h.update(repr(row).encode())
        for s in self.signals:
            h.update(repr(signal_dict(s)).encode())
        return h.hexdigest()


def _excluded_json(ex: dict) -> str | None:
    if not ex:
        return None
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in sorted(ex.items())) + "}"


def signal_dict(s: Signal) -> dict:
    q = s.quote
    return {
        "ts_ns": s.ts_ns, "ticker": s.ticker, "side": s.side, "first_ts_ns": s.first_ts_ns,
        "edge": s.edge, "edge_first": s.edge_first, "price": s.price, "size": s.size,
        "fee_per_contract": s.fee_per_contract, "fair": s.fair, "index_value": s.index_value,
        "sigma": s.sigma, "yes_bid": q.yes_bid, "yes_ask": q.yes_ask, "quote_ts_ns": q.last_update_ns,
        "quote_age_ns": s.quote_age_ns, "index_at_quote": s.index_at_quote, "index_move": s.index_move,
    }


def market_dict(m: KalshiMarket) -> dict:
    return {k: getattr(m, k) for k in ("ticker", "status", "strike_type", "floor_strike", "cap_strike",
                                        "strike_source", "open_ns", "close_ns", "yes_bid", "yes_ask",
                                        "quote_ns", "quote_source", "last_trade_price", "result",
                                        "expiration_value")}


def run_recording(path: str, config: PipelineConfig | None = None, *, speed: float | None = None,
                  log: Any = None, **kwargs) -> Pipeline:
    """Replay a recording through a fresh ``Pipeline`` (with its REST rows) and finish it."""
    from harness.replay.source import replay
    from harness.store.reader import Recording

    p = Pipeline(config, log=log, **kwargs)
    with Recording(path) as rec:
        p.attach_http(rec.http(Pipeline.HTTP_URLS))
        replay(rec, p, speed=speed)
    return p.finish()
