"""Simulated Kalshi BTC markets: KXBTC15M windows and a few KXBTCD strikes.

Markets
- KXBTC15M: one market per quarter hour, ticker ``KXBTC15M-26NOV250045-45`` (close time
  in US Eastern, ``kalshi_markets.kxbtc15m_ticker``), strike ``greater_or_equal`` the
  60 s average of the index before the open (rounded to the cent). Listed (REST status
  ``initialized``) 10 minutes before its open.
- KXBTCD: the hourly event closing at the next top of the hour, three strikes ``T<k-0.01>``
  (``greater``) on a 250 USD grid around the price at the start.
- Life: ``activated`` + ``metadata_updated`` (strike) lifecycle messages and an
  ``orderbook_snapshot`` at the open; quoting until the close; ``determined`` (result,
  ``settlement_value`` = the payout per YES contract, ``"1.0000"``/``"0.0000"``) a few
  seconds after the close, ``settled`` later. The settlement index value (the 60 s
  average before the close) is in the REST market's ``expiration_value``.

Quotes follow fair value *with a delay*: each market's quoter prices the probability of
YES from the index as it stood ``lag`` seconds ago (3-9 s, redrawn now and then) and only
requotes on some steps, so after a move the book sits stale for a few seconds: the lag
the pipeline's signals look for. Prices are whole cents in fixed-point dollars
(``"0.4500"``), counts ``"12.00"``; current fixed-point fields only.

Sids on the simulator's own connection: 1 orderbook_delta, 2 ticker, 3 trade,
4 market_lifecycle_v2 (the impersonation server renumbers sid/seq per client anyway).
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from harness.sim.exchanges import dumps, times_in
from harness.sim.price import PricePath
from harness.venues.kalshi_markets import ET, MONTHS, kxbtc15m_ticker, ns_to_dt

NS = 1_000_000_000
MS = 1_000_000
Q15 = 15 * 60 * NS
HOUR = 3600 * NS
CHANNELS = ("orderbook_delta", "ticker", "trade", "market_lifecycle_v2")
SID = {c: i + 1 for i, c in enumerate(CHANNELS)}
WS_URL = "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
REST_BASE = "https://external-api.kalshi.com/trade-api/v2"
LEVELS = 4


def dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}00"


def fp(n: int) -> str:
    return f"{n}.00"


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@dataclass
class Market:
    ticker: str
    series: str
    event_ticker: str
    market_id: str
    open_ns: int
    close_ns: int
    strike_type: str
    strike: float | None = None
    listed_ns: int = 0
    status: str = "initialized"  # initialized | active | closed | determined | finalized
    yes: dict[int, int] = field(default_factory=dict)  # YES bids: cents -> contracts
    no: dict[int, int] = field(default_factory=dict)  # NO bids
    lag_ns: int = 5 * NS
    half_spread: float = 1.5
    activity: float = 1.0  # relative rate of requotes, size changes and trades
    last_price: int | None = None
    last_size: int = 0
    volume: int = 0
    open_interest: int = 0
    ticker_due: bool = False
    last_ticker_ns: int = 0
    result: str = ""
    expiration_value: float | None = None
    determined_ns: int | None = None
    settled_ns: int | None = None

    def best_yes(self) -> tuple[int, int] | None:
        return (max(self.yes), self.yes[max(self.yes)]) if self.yes else None

    def best_no(self) -> tuple[int, int] | None:
        return (max(self.no), self.no[max(self.no)]) if self.no else None


def _kxbtcd_ticker(close_ns: int, floor: float) -> tuple[str, str]:
    et = ns_to_dt(close_ns, ET)
    event = f"KXBTCD-{et:%y}{MONTHS[et.month - 1]}{et:%d%H}"
    return f"{event}-T{floor:.2f}", event


class KalshiSim:
    def __init__(self, rng: random.Random, price: PricePath, start_ns: int, end_ns: int, scale: float = 1.0):
        self.rng = rng
        self.price = price
        self.scale = scale
        self.seq = 0
        self.cmd_id = 0
        self.markets: list[Market] = []
        first_close = (start_ns // Q15 + 1) * Q15
        c = first_close
        while c - Q15 <= end_ns + 120 * NS:
            t = kxbtc15m_ticker(ns_to_dt(c, ET))
            self.markets.append(Market(t, "KXBTC15M", t.rsplit("-", 1)[0], self._uuid(), c - Q15, c, "greater_or_equal",
                                       listed_ns=c - Q15 - 10 * 60 * NS))
            c += Q15
        hour_close = (start_ns // HOUR + 1) * HOUR
        p0 = price.value
        base = round(p0 / 250.0) * 250
        for k in (base - 250, base, base + 250):
            t, ev = _kxbtcd_ticker(hour_close, k - 0.01)
            self.markets.append(Market(t, "KXBTCD", ev, self._uuid(), hour_close - HOUR, hour_close, "greater",
                                       strike=k - 0.01, listed_ns=hour_close - 2 * HOUR, activity=0.5))
        for m in self.markets:
            m.lag_ns = self.rng.randint(3000, 9000) * MS
            m.half_spread = self.rng.choice((1.0, 1.5, 2.0))
            if m.open_ns <= start_ns:  # already trading when the session starts
                if m.strike is None:
                    m.strike = round(price.average(m.open_ns), 2)
                m.status = "active"
                bid, ask = self._target(m, start_ns)
                for book, top in ((m.yes, bid), (m.no, 100 - ask)):
                    for c in range(top, max(0, top - LEVELS), -1):
                        book[c] = self.rng.randint(10, 400)
        self.subscribed: set[str] = set()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def series(self) -> list[str]:
        return sorted({m.series for m in self.markets})

    # -- frames ------------------------------------------------------------------------------
    def _book_frame(self, typ: str, msg: dict) -> str:
        # seq is numbered when the frames are in send order (``_number``)
        return dumps({"type": typ, "sid": SID["orderbook_delta"], "seq": 0, "msg": msg})

    def _number(self, frames: list) -> list:
        """Give the orderbook sid's frames their seq in send order."""
        out = []
        for item in frames:
            payload = item[-1]
            if '"seq":0,' in payload[:60]:
                self.seq += 1
                payload = payload.replace('"seq":0,', f'"seq":{self.seq},', 1)
                item = (*item[:-1], payload)
            out.append(item)
        return out

    def snapshot(self, m: Market) -> str:
        msg: dict = {"market_ticker": m.ticker, "market_id": m.market_id}
        if m.yes:
            msg["yes_dollars_fp"] = [[dollars(p), fp(n)] for p, n in sorted(m.yes.items())]
        if m.no:
            msg["no_dollars_fp"] = [[dollars(p), fp(n)] for p, n in sorted(m.no.items())]
        return self._book_frame("orderbook_snapshot", msg)

    def _delta(self, t: int, m: Market, side: str, cents: int, delta: int) -> str:
        return self._book_frame("orderbook_delta", {"market_ticker": m.ticker, "market_id": m.market_id,
                                                    "price_dollars": dollars(cents), "delta_fp": fp(delta), "side": side,
                                                    "ts_ms": t // MS})

    def _ticker(self, t: int, m: Market) -> str:
        by, bn = m.best_yes(), m.best_no()
        return dumps({"type": "ticker", "sid": SID["ticker"], "msg": {
            "market_ticker": m.ticker, "market_id": m.market_id,
            "price_dollars": dollars(m.last_price) if m.last_price is not None else "",
            "yes_bid_dollars": dollars(by[0]) if by else "0.0000", "yes_ask_dollars": dollars(100 - bn[0]) if bn else "1.0000",
            "yes_bid_size_fp": fp(by[1] if by else 0), "yes_ask_size_fp": fp(bn[1] if bn else 0),
            "last_trade_size_fp": fp(m.last_size), "volume_fp": fp(m.volume), "open_interest_fp": fp(m.open_interest),
            "dollar_volume": m.volume // 2, "dollar_open_interest": m.open_interest // 2,
            "ts": t // NS, "ts_ms": t // MS, "time": iso(t)}})

    def _lifecycle(self, m: Market, event: str, **extra) -> str:
        return dumps({"type": "market_lifecycle_v2", "sid": SID["market_lifecycle_v2"],
                      "msg": {"market_ticker": m.ticker, "event_type": event, **extra}})

    def connect(self, t: int) -> list[tuple[str, str]]:
        """Subscribe (the markets listed now) and the snapshots of the open ones."""
        self.seq = 0
        self.cmd_id = 1
        listed = [m.ticker for m in self.markets if m.listed_ns <= t and m.status in ("initialized", "active")]
        out = [("out", dumps({"id": 1, "cmd": "subscribe", "params": {"channels": list(CHANNELS), "market_tickers": listed}}))]
        for ch in CHANNELS:
            out.append(("in", dumps({"id": 1, "type": "subscribed", "msg": {"channel": ch, "sid": SID[ch]}})))
        self.subscribed = set(listed)
        for m in self.markets:
            if m.status == "active":
                out.append(("in", self.snapshot(m)))
        return self._number(out)

    # -- fair value and quoting ----------------------------------------------------------------
    def fair(self, m: Market, index: float, now: int) -> float:
        """P(YES): the 60 s settlement average vs the strike, the index a random walk."""
        rem = max((m.close_ns - now) / NS, 0.0)
        t_eff = max(rem - 60.0, 0.0) + min(rem, 60.0) / 3.0
        sd = self.price.sigma_per_s * math.sqrt(t_eff)
        x = math.log(index / m.strike)
        if sd < 1e-9:
            return 1.0 if (x > 0 or (x == 0 and m.strike_type == "greater_or_equal")) else 0.0
        return norm_cdf(x / sd)

    def _target(self, m: Market, now: int) -> tuple[int, int]:
        p = self.fair(m, self.price.at(now - m.lag_ns), now) * 100
        bid = max(1, min(98, math.floor(p - m.half_spread)))
        ask = min(99, max(bid + 1, math.ceil(p + m.half_spread)))
        return bid, ask

    def _requote(self, t: int, m: Market, bid: int, ask: int) -> list[tuple[int, str, str]]:
        """Move both ladders to the new quote: cancels first, then the new orders, so the
        book is never crossed in between."""
        cancels, places = [], []
        for side, book, top in (("yes", m.yes, bid), ("no", m.no, 100 - ask)):
            want = {c: book.get(c) or self.rng.randint(10, 400) for c in range(top, max(0, top - LEVELS), -1)}
            for c in sorted(set(book) | set(want)):
                old, new = book.get(c, 0), want.get(c, 0)
                if old != new:
                    (cancels if new < old else places).append((side, c, new - old))
            book.clear()
            book.update(want)
        m.ticker_due = True
        return [(t, "in", self._delta(t, m, side, c, d)) for side, c, d in cancels + places]

    def _open(self, t: int, m: Market) -> list[tuple[int, str, str]]:
        out = []
        if m.strike is None:
            m.strike = round(self.price.average(m.open_ns), 2)
        m.status = "active"
        if m.ticker not in self.subscribed:
            # what a client does before a market opens: add it to the subscription
            self.cmd_id += 1
            self.subscribed.add(m.ticker)
            out.append((t - 1000 * MS, "out", dumps({"id": self.cmd_id, "cmd": "update_subscription", "params": {
                "sid": SID["orderbook_delta"], "action": "add_markets", "market_tickers": [m.ticker]}})))
            out.append((t - 960 * MS, "in", dumps({"id": self.cmd_id, "sid": SID["orderbook_delta"], "seq": 0, "type": "ok",
                                                   "msg": {"market_tickers": sorted(self.subscribed)}})))
        bid, ask = self._target(m, t)
        for book, top in ((m.yes, bid), (m.no, 100 - ask)):
            for c in range(top, max(0, top - LEVELS), -1):
                book[c] = self.rng.randint(10, 400)
        if m.series == "KXBTC15M":
            out.append((t, "in", self._lifecycle(m, "activated")))
            out.append((t + 400 * MS, "in", self._lifecycle(m, "metadata_updated", strike_type=m.strike_type, floor_strike=m.strike)))
        out.append((t + 500 * MS, "in", self.snapshot(m)))
        m.ticker_due = True
        return out

    def step(self, t0: int, t1: int) -> list[tuple[int, str, str]]:
        """(send_ns, dir, payload) in (t0, t1]."""
        out: list[tuple[int, str, str]] = []
        for m in self.markets:
            if m.status == "initialized" and t1 >= m.open_ns:
                out += self._open(max(m.open_ns, t0 + 1), m)
                continue
            if m.status == "active":
                if t1 >= m.close_ns:
                    m.status = "closed"
                    m.expiration_value = round(self.price.average(m.close_ns), 2)
                    m.result = "yes" if (m.expiration_value > m.strike or (m.expiration_value == m.strike and
                                                                           m.strike_type == "greater_or_equal")) else "no"
                    m.determined_ns = m.close_ns + self.rng.randint(2000, 8000) * MS
                    m.settled_ns = m.determined_ns + self.rng.randint(20_000, 60_000) * MS
                    continue
                out += self._quote(t0, t1, m)
            elif m.status == "closed" and t1 >= m.determined_ns:
                m.status = "determined"
                out.append((m.determined_ns, "in", self._lifecycle(
                    m, "determined", result=m.result, determination_ts=m.determined_ns // NS,
                    settlement_value="1.0000" if m.result == "yes" else "0.0000")))
            elif m.status == "determined" and t1 >= m.settled_ns:
                m.status = "finalized"
                out.append((m.settled_ns, "in", self._lifecycle(m, "settled", settled_ts=m.settled_ns // NS)))
        out.sort(key=lambda x: x[0])
        return self._number(out)

    def _quote(self, t0: int, t1: int, m: Market) -> list[tuple[int, str, str]]:
        out: list[tuple[int, str, str]] = []
        rng = self.rng
        if rng.random() < 0.01:
            m.lag_ns = rng.randint(3000, 9000) * MS
        events = []
        act = m.activity * self.scale
        if rng.random() < 0.25 * min(act, 4.0):
            events.append((t0 + 1 + rng.randrange(t1 - t0 - 1), 0))
        events += [(t, 1) for t in times_in(rng, t0, t1, 0.25 * act)]
        events += [(t, 2) for t in times_in(rng, t0, t1, 0.12 * act)]
        events.sort()
        for t, kind in events:  # applied in time order: each frame shows the book as sent
            if kind == 0:
                by, bn = m.best_yes(), m.best_no()
                p = self.fair(m, self.price.at(t - m.lag_ns), t) * 100
                # requote only once the (delayed) fair value has left the quoted spread
                if not by or not bn or not by[0] - 0.5 <= p <= 100 - bn[0] + 0.5:
                    bid, ask = self._target(m, t)
                    out += self._requote(t, m, bid, ask)
            elif kind == 1:
                side, book = ("yes", m.yes) if rng.random() < 0.5 else ("no", m.no)
                if book:
                    c = rng.choice(sorted(book))
                    d = rng.randint(-book[c] // 2, 150)
                    if d:
                        book[c] += d
                        out.append((t, "in", self._delta(t, m, side, c, d)))
                        m.ticker_due = m.ticker_due or c == max(book)
            else:
                out += self._trade(t, m)
        if m.ticker_due and t1 - m.last_ticker_ns >= 2 * NS:
            m.ticker_due = False
            m.last_ticker_ns = t1
            out.append((t1, "in", self._ticker(t1, m)))
        return out

    def _trade(self, t: int, m: Market) -> list[tuple[int, str, str]]:
        buy_yes = self.rng.random() < 0.5
        side, book = ("no", m.no) if buy_yes else ("yes", m.yes)
        if not book:
            return []
        c = max(book)
        n = min(book[c], self.rng.randint(1, 60))
        yes_price = 100 - c if buy_yes else c
        out = [(t, "in", dumps({"type": "trade", "sid": SID["trade"], "msg": {
            "trade_id": self._uuid(), "market_ticker": m.ticker, "yes_price_dollars": dollars(yes_price),
            "no_price_dollars": dollars(100 - yes_price), "count_fp": fp(n), "taker_side": "yes" if buy_yes else "no",
            "taker_outcome_side": "yes" if buy_yes else "no", "taker_book_side": "bid" if buy_yes else "ask",
            "is_block_trade": False, "ts": t // NS, "ts_ms": t // MS}}))]
        book[c] -= n
        if not book[c]:
            del book[c]
        out.append((t + 1, "in", self._delta(t + 1, m, side, c, -n)))
        m.last_price, m.last_size = yes_price, n
        m.volume += n
        m.open_interest += n // 2
        m.ticker_due = True
        return out

    # -- REST ----------------------------------------------------------------------------------
    def market_obj(self, m: Market) -> dict:
        by, bn = m.best_yes(), m.best_no()
        live = m.status == "active"
        status = {"initialized": "initialized", "active": "active", "closed": "closed",
                  "determined": "determined", "finalized": "finalized"}[m.status]
        o = {"ticker": m.ticker, "event_ticker": m.event_ticker, "market_type": "binary", "status": status,
             "open_time": iso(m.open_ns), "close_time": iso(m.close_ns), "expiration_time": iso(m.close_ns),
             "yes_bid_dollars": dollars(by[0]) if by and live else "0.0000",
             "yes_ask_dollars": dollars(100 - bn[0]) if bn and live else "1.0000",
             "no_bid_dollars": dollars(bn[0]) if bn and live else "0.0000",
             "no_ask_dollars": dollars(100 - by[0]) if by and live else "1.0000",
             "last_price_dollars": dollars(m.last_price) if m.last_price is not None else "0.0000",
             "volume_fp": fp(m.volume), "open_interest_fp": fp(m.open_interest), "result": m.result,
             "strike_type": m.strike_type}
        if m.strike is not None:
            o["floor_strike"] = m.strike
        if m.status in ("determined", "finalized"):
            o["expiration_value"] = f"{m.expiration_value:.2f}"
            o["settlement_value_dollars"] = "1.0000" if m.result == "yes" else "0.0000"
        return o

    def rest(self, t: int) -> list[tuple[str, str]]:
        """(url, body) of every REST view at ``t``: discovery lists per series and status,
        and per market ``GET /markets/{ticker}`` and its orderbook."""
        out = []
        for s in self.series():
            for status, want in (("open", ("active",)), ("unopened", ("initialized",))):
                ms = [self.market_obj(m) for m in self.markets
                      if m.series == s and m.status in want and m.listed_ns <= t]
                out.append((f"{REST_BASE}/markets?series_ticker={s}&status={status}&limit=1000",
                            dumps({"markets": ms, "cursor": ""})))
        for m in self.markets:
            if m.listed_ns > t or (m.settled_ns is not None and t > m.settled_ns + 300 * NS):
                continue
            out.append((f"{REST_BASE}/markets/{m.ticker}", dumps({"market": self.market_obj(m)})))
            live = m.status == "active"
            out.append((f"{REST_BASE}/markets/{m.ticker}/orderbook", dumps({"orderbook_fp": {
                "yes_dollars": [[dollars(p), fp(n)] for p, n in sorted(m.yes.items())] if live else [],
                "no_dollars": [[dollars(p), fp(n)] for p, n in sorted(m.no.items())] if live else []}})))
        return out
