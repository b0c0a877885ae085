"""Simulated spot exchanges: Coinbase Advanced Trade, Kraken v2, Bitstamp, Gemini v2.

Each follows the shared price path (plus its own slowly wandering basis) with its own
tick, spread, depth and message rates, and writes its frames in that venue's current
wire format: Coinbase ``l2_data``/``market_trades``/``heartbeats`` with a per-connection
``sequence_num``; Kraken ``book`` (CRC32 checksums computed by ``harness.venues.kraken``
over the book as a client holds it, truncated to the subscribed depth) and ``trade``;
Bitstamp ``diff_order_book`` and ``live_trades`` with ``microtimestamp``s, plus the REST
``/api/v2/order_book/btcusd`` snapshot its diffs are aligned to; Gemini ``l2_updates``
(the first per connection is the full book plus recent trades) and ``trade``, keys
sorted as Gemini sends them, ``heartbeat`` every 5 s. Subscribe commands are built and
acknowledged with the venue modules' own builders.

A venue object is per session; ``connect(t)`` starts a (new) connection and returns what
is exchanged on it; ``step(t0, t1, mid)`` returns the data frames sent in ``(t0, t1]``
as ``(send_ns, payload)``.
"""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal

from harness.sim.books import Change, Ladder
from harness.venues import bitstamp, coinbase, gemini, kraken
from harness.venues._json import ns_to_rfc3339
from harness.venues.base import Level
from harness.venues.book import L2Book

NS = 1_000_000_000
MS = 1_000_000


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def times_in(rng: random.Random, t0: int, t1: int, rate_per_s: float) -> list[int]:
    """Poisson event times in (t0, t1], sorted."""
    n = poisson(rng, rate_per_s * (t1 - t0) / NS)
    return sorted(t0 + 1 + int(rng.random() * (t1 - t0 - 1)) for _ in range(n))


class Exchange:
    """Shared machinery: book, basis, trade ids, rates, latency."""

    venue = ""
    url = ""
    book_rate = 4.0
    trade_rate = 0.6
    latency_ms = (20.0, 8.0)  # (median, spread) of the one-way latency, lognormal
    ladder_args: dict = {}

    def __init__(self, rng: random.Random, scale: float = 1.0):
        self.rng = rng
        self.scale = scale
        self.book = Ladder(rng, **self.ladder_args)
        self.basis = 0.0
        self.trade_id = rng.randint(10_000_000, 90_000_000)
        self.frozen_from = 0  # a stale venue: the book stops changing in [from, until)
        self.frozen_until = 0
        self.mid = 0.0

    def latency_ns(self) -> int:
        med, spread = self.latency_ms
        return int(med * math.exp(self.rng.gauss(0.0, spread / med)) * MS)

    def venue_mid(self, mid: float) -> float:
        # a slowly mean-reverting basis of a couple of bp around the shared price
        self.basis += -0.02 * self.basis + self.rng.gauss(0.0, 0.00002)
        return mid * (1.0 + self.basis)

    def step(self, t0: int, t1: int, mid: float) -> list[tuple[int, str]]:
        self.mid = self.venue_mid(mid)
        # events are applied to the book in time order, so every frame shows the book as
        # it stood when it was sent
        events = [(t, 0) for t in times_in(self.rng, t0, t1, self.book_rate * self.scale)]
        events += [(t, 1) for t in times_in(self.rng, t0, t1, self.trade_rate * self.scale)]
        events.sort()
        out: list[tuple[int, str]] = []
        for t, kind in events:
            if kind == 0:
                ch = self.book.follow(self.mid)
                ch += self.book.jiggle(1 + poisson(self.rng, 0.3))
                out.append((t, self.book_frame(t, ch)))
            else:
                taker_buy = self.rng.random() < 0.5
                p, lots, ch = self.book.take(not taker_buy, self.rng.randint(1, self.book.lots[1]))
                self.trade_id += 1
                out.append((t, self.trade_frame(t, taker_buy, p, lots)))
                out.append((t + 1, self.book_frame(t + 1, ch)))
        out += self.heartbeats(t0, t1)
        out.sort(key=lambda x: x[0])
        return out

    def heartbeats(self, t0: int, t1: int) -> list[tuple[int, str]]:
        return []

    # subclasses
    def connect(self, t: int) -> list[tuple[str, str]]:
        raise NotImplementedError

    def book_frame(self, t: int, changes: list[Change]) -> str:
        raise NotImplementedError

    def trade_frame(self, t: int, taker_buy: bool, tick: int, lots: int) -> str:
        raise NotImplementedError

    def rest(self, t: int) -> list[tuple[str, str]]:
        """(url, body) of the venue's public REST ticker at ``t``."""
        return []

    def _top(self):
        (bp, bq), (ap, aq) = self.book.top(1)[0][0], self.book.top(1)[1][0]
        return self.book.price_text(bp), self.book.qty_text(bq), self.book.price_text(ap), self.book.qty_text(aq)


# --------------------------------------------------------------------------- Coinbase


class Coinbase(Exchange):
    venue = "coinbase"
    url = coinbase.AT_WS
    book_rate = 1.0
    trade_rate = 0.5
    latency_ms = (18.0, 6.0)
    ladder_args = dict(tick=Decimal("0.01"), lot=Decimal("0.00000001"), levels=25, spread_ticks=(1, 3),
                       gap_ticks=(20, 400), lots=(1_000_000, 150_000_000))
    channels = ("level2", "market_trades", "heartbeats")

    def __init__(self, rng, scale=1.0):
        super().__init__(rng, scale)
        self.seq = 0
        self.hb = 0
        self.last_price = ""

    def _frame(self, t: int, channel: str, events: list) -> str:
        self.seq += 1
        return dumps({"channel": channel, "client_id": "", "timestamp": ns_to_rfc3339(t), "sequence_num": self.seq,
                      "events": events})

    def connect(self, t: int) -> list[tuple[str, str]]:
        self.seq = -1
        out = []
        subs: dict[str, list[str]] = {}
        for ch in self.channels:
            for f in coinbase.VENUE.subscribe_frames([ch], ["BTC-USD"]):
                out.append(("out", f))
                subs.setdefault(ch, []).append("BTC-USD")
                self.seq += 1
                out.append(("in", coinbase.VENUE.subscriptions_frame(subs, sequence_num=self.seq, ts_ns=t)))
        ch = self.book.seed(self.mid) if not self.book.bids else []
        del ch
        ups = [self._upd(t, True, p, q) for p, q in sorted(self.book.bids.items(), reverse=True)]
        ups += [self._upd(t, False, p, q) for p, q in sorted(self.book.asks.items())]
        out.append(("in", self._frame(t, "l2_data", [{"type": "snapshot", "product_id": "BTC-USD", "updates": ups}])))
        return out

    def _upd(self, t: int, is_bid: bool, p: int, q: int) -> dict:
        return {"side": "bid" if is_bid else "offer", "event_time": ns_to_rfc3339(t - 2 * MS)[:-4] + "Z",
                "price_level": self.book.price_text(p), "new_quantity": self.book.qty_text(q) if q else "0"}

    def book_frame(self, t, changes):
        ups = [self._upd(t, b, p, q) for b, p, q in changes]
        return self._frame(t, "l2_data", [{"type": "update", "product_id": "BTC-USD", "updates": ups}])

    def trade_frame(self, t, taker_buy, tick, lots):
        self.last_price = self.book.price_text(tick)
        # Coinbase prints the maker's side: a taker buy lifts a resting SELL
        tr = {"trade_id": str(self.trade_id), "product_id": "BTC-USD", "price": self.last_price,
              "size": self.book.qty_text(lots), "side": "SELL" if taker_buy else "BUY",
              "time": ns_to_rfc3339(t - 3 * MS)[:-4] + "Z"}
        return self._frame(t, "market_trades", [{"type": "update", "trades": [tr]}])

    def heartbeats(self, t0, t1):
        out = []
        s = (t0 // NS + 1) * NS
        while s <= t1:
            self.hb += 1
            txt = ns_to_rfc3339(s)
            cur = f"{txt[:10]} {txt[11:-1]} +0000 UTC m=+{self.hb + 0.000123:.9f}"
            out.append((s, self._frame(s, "heartbeats", [{"current_time": cur, "heartbeat_counter": self.hb}])))
            s += NS
        return out

    def rest(self, t):
        bp, bq, ap, aq = self._top()
        body = dumps({"ask": ap, "bid": bp, "volume": "8123.45678901", "trade_id": self.trade_id,
                      "price": self.last_price or bp, "size": "0.01000000", "time": ns_to_rfc3339(t)[:-4] + "Z"})
        return [("https://api.exchange.coinbase.com/products/BTC-USD/ticker", body)]


# --------------------------------------------------------------------------- Kraken


def _kraken_levels(items: list[tuple[str, str]]) -> str:
    # v2 writes prices and quantities as JSON numbers with their full precision; the
    # checksum is computed from that text, so it is written by hand
    return ",".join('{"price":%s,"qty":%s}' % pq for pq in items)  # noqa: UP031


class Kraken(Exchange):
    venue = "kraken"
    url = kraken.WS_V2
    depth = 10
    book_rate = 1.0
    trade_rate = 0.4
    latency_ms = (35.0, 10.0)
    ladder_args = dict(tick=Decimal("0.1"), lot=Decimal("0.00000001"), levels=10, spread_ticks=(1, 2),
                       gap_ticks=(2, 40), lots=(2_000_000, 120_000_000), strict=True)

    def __init__(self, rng, scale=1.0):
        super().__init__(rng, scale)
        self.view = L2Book("BTC/USD", depth_limit=self.depth)
        self.last = ("", "")

    def _apply(self, changes: list[Change]) -> list[tuple[bool, str, str]]:
        out = []
        for is_bid, p, q in changes:
            pt, qt = self.book.price_text(p), self.book.qty_text(q)
            self.view.set_level(is_bid, Decimal(pt), Decimal(qt), pt, qt)
            out.append((is_bid, pt, qt))
        self.view.truncate()
        return out

    def connect(self, t):
        out = [("in", kraken.VENUE.status_frame(connection_id=self.rng.randint(10**17, 10**18)))]
        for f in kraken.VENUE.subscribe_frames(["book"], ["BTC/USD"], depth=self.depth) + \
                kraken.VENUE.subscribe_frames(["trade"], ["BTC/USD"]):
            out.append(("out", f))
            cmd = kraken.VENUE.parse_command(f)
            out += [("in", a) for a in kraken.VENUE.ack_frames(cmd, t_in_ns=t, t_out_ns=t + 60_000)]
        if not self.book.bids:
            self.book.seed(self.mid)
        self.view = L2Book("BTC/USD", depth_limit=self.depth)
        self.view.apply_snapshot([Level("bid" if b else "ask", Decimal(pt), Decimal(qt), pt, qt) for b, pt, qt in
                                  [(True, self.book.price_text(p), self.book.qty_text(q)) for p, q in self.book.bids.items()]
                                  + [(False, self.book.price_text(p), self.book.qty_text(q)) for p, q in self.book.asks.items()]])
        bids = [(self.book.price_text(p), self.book.qty_text(q)) for p, q in sorted(self.book.bids.items(), reverse=True)]
        asks = [(self.book.price_text(p), self.book.qty_text(q)) for p, q in sorted(self.book.asks.items())]
        out.append(("in", '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[%s],"asks":[%s],'  # noqa: UP031
                    '"checksum":%d,"timestamp":"%s"}]}' % (_kraken_levels(bids), _kraken_levels(asks),
                                                           kraken.checksum(self.view), ns_to_rfc3339(t)[:-3] + "Z")))
        return out

    def book_frame(self, t, changes):
        applied = self._apply(changes)
        bids = [(p, q) for b, p, q in applied if b]
        asks = [(p, q) for b, p, q in applied if not b]
        return ('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[%s],"asks":[%s],'  # noqa: UP031
                '"checksum":%d,"timestamp":"%s"}]}' % (_kraken_levels(bids), _kraken_levels(asks),
                                                       kraken.checksum(self.view), ns_to_rfc3339(t - 4 * MS)[:-3] + "Z"))

    def trade_frame(self, t, taker_buy, tick, lots):
        self.last = (self.book.price_text(tick), self.book.qty_text(lots))
        return ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"%s","price":%s,"qty":%s,'  # noqa: UP031
                '"ord_type":"market","trade_id":%d,"timestamp":"%s"}]}'
                % ("buy" if taker_buy else "sell", self.last[0], self.last[1], self.trade_id, ns_to_rfc3339(t - 4 * MS)[:-3] + "Z"))

    def rest(self, t):
        bp, bq, ap, aq = self._top()
        last = self.last if self.last[0] else (bp, "0.00100000")
        body = dumps({"error": [], "result": {"XXBTZUSD": {
            "a": [ap, "1", aq], "b": [bp, "1", bq], "c": list(last), "v": ["1234.56789012", "2345.67890123"],
            "p": [bp, bp], "t": [23456, 45678], "l": [bp, bp], "h": [ap, ap], "o": bp}}})
        return [("https://api.kraken.com/0/public/Ticker?pair=XBTUSD", body)]


# --------------------------------------------------------------------------- Bitstamp


class Bitstamp(Exchange):
    venue = "bitstamp"
    url = bitstamp.ENDPOINTS.ws_prod[0] if bitstamp.ENDPOINTS.ws_prod else "wss://ws.bitstamp.net"
    book_rate = 1.5
    trade_rate = 0.3
    latency_ms = (45.0, 15.0)
    ladder_args = dict(tick=Decimal("1"), lot=Decimal("0.00000001"), levels=25, spread_ticks=(1, 4),
                       gap_ticks=(1, 5), lots=(2_000_000, 150_000_000))
    rest_levels = 50

    def __init__(self, rng, scale=1.0):
        super().__init__(rng, scale)
        self.last_us = 0
        self.last_price = ""

    def _us(self, t: int) -> int:
        # microtimestamps strictly increase per channel
        us = max(t // 1000, self.last_us + 1)
        self.last_us = us
        return us

    def connect(self, t):
        out = []
        for f in bitstamp.VENUE.subscribe_frames(["diff_order_book", "live_trades"], ["btcusd"]):
            out.append(("out", f))
            out += [("in", a) for a in bitstamp.VENUE.ack_frames(bitstamp.VENUE.parse_command(f))]
        if not self.book.bids:
            self.book.seed(self.mid)
        return out

    def book_frame(self, t, changes):
        us = self._us(t)
        bids = [[self.book.price_text(p), self.book.qty_text(q)] for b, p, q in changes if b]
        asks = [[self.book.price_text(p), self.book.qty_text(q)] for b, p, q in changes if not b]
        return dumps({"data": {"timestamp": str(us // 1_000_000), "microtimestamp": str(us), "bids": bids, "asks": asks},
                      "channel": "diff_order_book_btcusd", "event": "data"})

    def trade_frame(self, t, taker_buy, tick, lots):
        us = t // 1000
        self.last_price = self.book.price_text(tick)
        amt = self.book.qty_text(lots)
        oid = self.rng.randint(10**18, 2 * 10**18)
        return dumps({"data": {"id": self.trade_id, "timestamp": str(us // 1_000_000), "amount": float(amt), "amount_str": amt,
                               "price": int(tick), "price_str": self.last_price, "type": 0 if taker_buy else 1,
                               "microtimestamp": str(us), "buy_order_id": oid, "sell_order_id": oid + 7},
                      "channel": "live_trades_btcusd", "event": "trade"})

    def order_book_body(self) -> str:
        """REST ``/api/v2/order_book/btcusd/``: the book as of the last diff sent."""
        b, a = self.book.top(self.rest_levels)
        us = self.last_us
        return dumps({"timestamp": str(us // 1_000_000), "microtimestamp": str(us),
                      "bids": [[self.book.price_text(p), self.book.qty_text(q)] for p, q in b],
                      "asks": [[self.book.price_text(p), self.book.qty_text(q)] for p, q in a]})

    def rest(self, t):
        bp, bq, ap, aq = self._top()
        body = dumps({"timestamp": str(t // NS), "open": bp, "high": ap, "low": bp, "last": self.last_price or bp,
                      "volume": "1234.56789012", "vwap": bp, "bid": bp, "ask": ap, "side": "0", "open_24": bp,
                      "percent_change_24": "0.00"})
        return [("https://www.bitstamp.net/api/v2/ticker/btcusd/", body)]


# --------------------------------------------------------------------------- Gemini


class Gemini(Exchange):
    venue = "gemini"
    url = "wss://api.gemini.com/v2/marketdata"
    book_rate = 1.2
    trade_rate = 0.3
    latency_ms = (40.0, 12.0)
    ladder_args = dict(tick=Decimal("0.01"), lot=Decimal("0.00000001"), levels=25, spread_ticks=(2, 30),
                       gap_ticks=(20, 400), lots=(1_000_000, 100_000_000))

    def __init__(self, rng, scale=1.0):
        super().__init__(rng, scale)
        self.recent: list[dict] = []
        self.event_id = rng.randint(10**11, 9 * 10**11)

    def _trade(self, t: int, taker_buy: bool, tick: int, lots: int) -> dict:
        self.event_id += 1
        return {"event_id": self.event_id, "price": self.book.price_text(tick), "quantity": self.book.qty_text(lots),
                "side": "buy" if taker_buy else "sell", "symbol": "BTCUSD", "tid": self.trade_id,
                "timestamp": t // MS - 2, "type": "trade"}

    def connect(self, t):
        out = [("out", f) for f in gemini.VENUE.subscribe_frames(["l2"], ["BTCUSD"])]
        if not self.book.bids:
            self.book.seed(self.mid)
        changes = [["buy", self.book.price_text(p), self.book.qty_text(q)] for p, q in sorted(self.book.bids.items(), reverse=True)]
        changes += [["sell", self.book.price_text(p), self.book.qty_text(q)] for p, q in sorted(self.book.asks.items())]
        # the first l2_updates per symbol: the full book plus the recent trades
        out.append(("in", json.dumps({"changes": changes, "symbol": "BTCUSD", "trades": self.recent[-50:], "type": "l2_updates"},
                                     separators=(",", ":"), sort_keys=True)))
        return out

    def book_frame(self, t, changes):
        ch = [["buy" if b else "sell", self.book.price_text(p), self.book.qty_text(q) if q else "0"] for b, p, q in changes]
        return json.dumps({"changes": ch, "symbol": "BTCUSD", "type": "l2_updates"}, separators=(",", ":"), sort_keys=True)

    def trade_frame(self, t, taker_buy, tick, lots):
        tr = self._trade(t, taker_buy, tick, lots)
        self.recent.append(tr)
        del self.recent[:-50]
        return json.dumps(tr, separators=(",", ":"), sort_keys=True)

    def heartbeats(self, t0, t1):
        out = []
        s = (t0 // (5 * NS) + 1) * 5 * NS
        while s <= t1:
            out.append((s, json.dumps({"timestamp": s // MS, "type": "heartbeat"}, separators=(",", ":"), sort_keys=True)))
            s += 5 * NS
        return out

    def rest(self, t):
        bp, bq, ap, aq = self._top()
        last = self.recent[-1]["price"] if self.recent else bp
        body = dumps({"bid": bp, "ask": ap, "volume": {"BTC": "1234.5678", "USD": "107654321.12", "timestamp": t // MS},
                      "last": last})
        return [("https://api.gemini.com/v1/pubticker/btcusd", body)]


EXCHANGES = (Coinbase, Kraken, Bitstamp, Gemini)
