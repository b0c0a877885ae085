"""Kalshi BTC market state for the pipeline: one ``KalshiMarket`` per market ticker.

Fed decoded Kalshi messages (``harness.venues.kalshi``) and REST market objects with the
harness time they were received. Pure: no I/O, no clocks.

Where each field comes from (first source that has it wins for the strike; later
messages of the same or a better source overwrite):

- **strike** (``strike_type``, ``floor_strike``, ``cap_strike``), ranked
  ``lifecycle`` (market_lifecycle_v2 ``metadata_updated``/``created``) = ``rest`` (a
  ``GET /markets`` element in the recording's ``http`` rows) > ``ticker`` > ``proxy_open``:
  * ``ticker``: a ``T<x>`` suffix (KXBTCD "above" markets) is read as ``greater`` with
    floor ``x`` (Kalshi's KXBTCD floors are written ``...99``, i.e. "above x"). ``B<x>``
    buckets (KXBTC) are *not* inferred: the bucket width is not in the ticker.
  * ``proxy_open``: KXBTC15M markets have a ``-MM`` suffix (minutes, not a strike); their
    strike is the 60 s BRTI average at the window's open (PROTOCOLS, *unconfirmed*), so
    when nothing better arrived the pipeline sets it from its own proxy's published
    values at ``open`` (``set_proxy_strike``), ``strike_type`` ``greater_or_equal``.
- **open/close**: lifecycle ``open_ts``/``close_ts`` or REST ``open_time``/``close_time``;
  fallback close from the ticker stamp (``parse_ticker``), open = close - 15 min for
  KXBTC15M.
- **quote** (best YES bid/ask and sizes): from the session's ``KalshiBook`` when it holds a
  snapshot and is not stale (a gap), else from ``ticker`` messages. ``quote_ns`` is the
  harness time the *prices* (bid or ask) last changed; size-only changes do not reset
  it: the quote age measures how long Kalshi's price has sat still.
- **last trade**: ``trade`` messages (and ``ticker`` ``price``).
- **status**: lifecycle ``event_type`` (created, activated, deactivated, determined,
  settled ...) or REST ``status``.
- **settlement**: lifecycle ``settlement_value`` / ``result``; REST
  ``expiration_value`` (the index value the market settled on) and ``result``. Per the
  spec, lifecycle ``settlement_value`` is the payout per YES contract ("1.0000"/"0.0000"),
  not the index: a value <= 1 is kept as ``payout``, a larger one (some simulators put the
  index there) as ``expiration_value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from harness.pipeline.signals import MarketQuote
from harness.venues.kalshi_markets import BTC_SERIES, parse_ticker

NS = 1_000_000_000
_RANK = {"lifecycle": 3, "rest": 3, "ticker": 1, "proxy_open": 0, None: -1}
_CLOSED = ("closed", "determined", "settled", "finalized", "deactivated")


def _f(x: Any) -> float | None:
    if x is None or x == "":
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class KalshiMarket:
    ticker: str
    series: str = ""
    event_ticker: str | None = None
    strike_type: str | None = None
    floor_strike: float | None = None
    cap_strike: float | None = None
    strike_source: str | None = None  # lifecycle | rest | ticker | proxy_open
    open_ns: int | None = None
    close_ns: int | None = None
    status: str | None = None
    yes_bid: float | None = None
    yes_bid_size: float = 0.0
    yes_ask: float | None = None
    yes_ask_size: float = 0.0
    quote_ns: int | None = None  # harness time the bid/ask prices last changed
    quote_source: str | None = None  # book | ticker | rest
    last_trade_price: float | None = None
    last_trade_size: float | None = None
    last_trade_ns: int | None = None
    payout: float | None = None  # lifecycle settlement_value (dollars per YES contract)
    result: str | None = None  # "yes" | "no" | ...
    expiration_value: float | None = None  # the index value settled on (REST)
    settlement_source: str | None = None
    settled_ns: int | None = None

    @property
    def has_strike(self) -> bool:
        st = self.strike_type
        if st in ("greater", "greater_or_equal"):
            return self.floor_strike is not None
        if st in ("less", "less_or_equal"):
            return self.cap_strike is not None or self.floor_strike is not None
        if st == "between":
            return self.floor_strike is not None and self.cap_strike is not None
        return False

    def is_open(self, now_ns: int) -> bool:
        if self.status in _CLOSED:
            return False
        if self.close_ns is not None and now_ns >= self.close_ns:
            return False
        return self.open_ns is None or now_ns >= self.open_ns

    def quote(self) -> MarketQuote:
        return MarketQuote(self.ticker, self.yes_bid, self.yes_bid_size, self.yes_ask,
                           self.yes_ask_size, self.quote_ns if self.quote_ns is not None else 0)

    def set_strike(self, source: str, strike_type: str | None, floor: Any = None, cap: Any = None) -> None:
        if _RANK[source] < _RANK[self.strike_source] and self.has_strike:
            return
        if strike_type:
            self.strike_type = strike_type
        fl, cp = _f(floor), _f(cap)
        if fl is not None:
            self.floor_strike = fl
        if cp is not None:
            self.cap_strike = cp
        if strike_type or fl is not None or cp is not None:
            self.strike_source = source

    def set_quote(self, bid, bid_size, ask, ask_size, now_ns: int, source: str) -> None:
        b, a = _f(bid), _f(ask)
        if b != self.yes_bid or a != self.yes_ask or self.quote_ns is None:
            self.quote_ns = now_ns
        self.yes_bid, self.yes_ask = b, a
        self.yes_bid_size = _f(bid_size) or 0.0
        self.yes_ask_size = _f(ask_size) or 0.0
        self.quote_source = source

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class Markets:
    """All Kalshi markets seen, keyed by ticker. ``series`` limits them (default: the BTC
    series KXBTC15M, KXBTCD, KXBTC); ``None`` keeps every market."""

    def __init__(self, series: tuple[str, ...] | None = BTC_SERIES):
        self.series = series
        self.markets: dict[str, KalshiMarket] = {}

    def wanted(self, ticker: str | None) -> bool:
        if not ticker:
            return False
        return self.series is None or ticker.partition("-")[0] in self.series

    def get(self, ticker: str) -> KalshiMarket | None:
        """The market, created on first sight (with the ticker fallbacks) if wanted."""
        m = self.markets.get(ticker)
        if m is None:
            if not self.wanted(ticker):
                return None
            m = self.markets[ticker] = KalshiMarket(ticker)
            try:
                info = parse_ticker(ticker)
            except Exception:  # noqa: BLE001 - a malformed ticker only loses the fallbacks
                return m
            m.series, m.event_ticker, m.close_ns = info.series, info.event_ticker, info.close_ns
            if info.close_ns is not None and info.series == "KXBTC15M":
                m.open_ns = info.close_ns - 15 * 60 * NS
            if info.strike_kind == "T" and info.strike is not None:
                m.set_strike("ticker", "greater", info.strike)
        return m

    # ------------------------------------------------------------------ websocket

    def on_message(self, msg: Any, now_ns: int, session: Any = None) -> KalshiMarket | None:
        """Apply one decoded Kalshi message received at ``now_ns``; ``session`` is the
        KalshiSession that decoded it (for its books). Returns the market touched."""
        t = msg.type
        if t in ("orderbook_snapshot", "orderbook_delta"):
            m = self.get(msg.instrument)
            if m is not None and session is not None:
                self.refresh_from_book(m, session.books.get(msg.instrument), now_ns)
            return m
        if t == "ticker":
            m = self.get(msg.market_ticker)
            if m is None:
                return None
            if msg.price is not None:
                m.last_trade_price = float(msg.price)
            book = session.books.get(msg.market_ticker) if session is not None else None
            if book is None or not book.has_snapshot or book.stale:
                m.set_quote(msg.yes_bid, msg.yes_bid_size, msg.yes_ask, msg.yes_ask_size, now_ns, "ticker")
            return m
        if t == "trade":
            m = self.get(msg.instrument)
            if m is not None:
                m.last_trade_price, m.last_trade_size, m.last_trade_ns = float(msg.price), float(msg.size), now_ns
            return m
        if t == "market_lifecycle_v2":
            return self._lifecycle(msg, now_ns)
        return None

    @staticmethod
    def refresh_from_book(m: KalshiMarket, book: Any, now_ns: int) -> None:
        if book is None:
            return
        if not book.has_snapshot or book.stale:
            if m.quote_source == "book" and (m.yes_bid is not None or m.yes_ask is not None):
                m.set_quote(None, 0, None, 0, now_ns, "book")  # a broken book quotes nothing
            return
        b, a = book.best_yes_bid(), book.yes_ask()
        m.set_quote(b[0] if b else None, b[1] if b else 0, a[0] if a else None, a[1] if a else 0, now_ns, "book")

    def _lifecycle(self, msg: Any, now_ns: int) -> KalshiMarket | None:
        m = self.get(msg.market_ticker)
        if m is None:
            return None
        d = msg.data or {}
        ev = msg.event_type
        if ev:
            m.status = ev
        if msg.open_ts is not None:
            m.open_ns = msg.open_ts * NS
        if msg.close_ts is not None:
            m.close_ns = msg.close_ts * NS
        if d.get("strike_type") or d.get("floor_strike") is not None or d.get("cap_strike") is not None:
            m.set_strike("lifecycle", d.get("strike_type"), d.get("floor_strike"), d.get("cap_strike"))
        if msg.result:
            m.result = msg.result
        if msg.settlement_value is not None:
            self._settlement_value(m, msg.settlement_value, "lifecycle settlement_value")
        ev_val = _f(d.get("expiration_value"))
        if ev_val is not None:
            m.expiration_value, m.settlement_source = ev_val, "lifecycle expiration_value"
        if ev in ("settled", "determined") and m.settled_ns is None:
            m.settled_ns = now_ns
        return m

    @staticmethod
    def _settlement_value(m: KalshiMarket, v: Decimal | float, source: str) -> None:
        x = float(v)
        if x <= 1.0:
            m.payout = x
            if m.result is None:
                m.result = "yes" if x >= 1.0 else ("no" if x <= 0.0 else None)
        else:
            m.expiration_value, m.settlement_source = x, source

    # ------------------------------------------------------------------ REST

    def on_rest_market(self, obj: dict, now_ns: int) -> KalshiMarket | None:
        """One ``GET /markets`` element (or ``GET /markets/{ticker}`` ``market``)."""
        from harness.venues.kalshi import rfc3339_to_ns

        m = self.get(obj.get("ticker"))
        if m is None:
            return None
        if obj.get("strike_type") or obj.get("floor_strike") is not None or obj.get("cap_strike") is not None:
            m.set_strike("rest", obj.get("strike_type"), obj.get("floor_strike"), obj.get("cap_strike"))
        for key, attr in (("open_time", "open_ns"), ("close_time", "close_ns")):
            v = obj.get(key)
            if isinstance(v, str) and v:
                ns = rfc3339_to_ns(v)
                if ns is not None:
                    setattr(m, attr, ns)
        if obj.get("event_ticker"):
            m.event_ticker = obj["event_ticker"]
        if obj.get("status"):
            m.status = obj["status"]
        if obj.get("result"):
            m.result = obj["result"]
        ev = _f(obj.get("expiration_value"))
        if ev is not None:
            m.expiration_value, m.settlement_source = ev, "rest expiration_value"
            if m.settled_ns is None:
                m.settled_ns = now_ns
        sv = _f(obj.get("settlement_value_dollars"))
        if sv is not None and m.payout is None:
            m.payout = sv
        if m.quote_source in (None, "rest") and (obj.get("yes_bid_dollars") or obj.get("yes_ask_dollars")):
            m.set_quote(obj.get("yes_bid_dollars"), obj.get("yes_bid_size_fp"), obj.get("yes_ask_dollars"),
                        obj.get("yes_ask_size_fp"), now_ns, "rest")
        if obj.get("last_price_dollars") and m.last_trade_price is None:
            m.last_trade_price = _f(obj["last_price_dollars"])
        return m

    def on_rest_body(self, body: str | bytes | None, now_ns: int) -> int:
        """A REST response body: ``{"markets": [...]}`` or ``{"market": {...}}``. Returns
        how many markets it updated; anything else is ignored."""
        import json

        if not body:
            return 0
        try:
            obj = json.loads(body)
        except (TypeError, ValueError):
            return 0
        if not isinstance(obj, dict):
            return 0
        items = obj.get("markets") if isinstance(obj.get("markets"), list) else (
            [obj["market"]] if isinstance(obj.get("market"), dict) else [])
        n = 0
        for it in items:
            if isinstance(it, dict) and self.on_rest_market(it, now_ns) is not None:
                n += 1
        return n

    # ------------------------------------------------------------------ queries

    def open_markets(self, now_ns: int) -> list[KalshiMarket]:
        return [m for _, m in sorted(self.markets.items()) if m.is_open(now_ns)]

    def settled(self) -> list[KalshiMarket]:
        return [m for _, m in sorted(self.markets.items())
                if m.expiration_value is not None or m.payout is not None or m.result in ("yes", "no")]
