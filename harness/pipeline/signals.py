"""Edge detection against the Kalshi YES book.

Per market, per index tick:
    edge_buy_yes  = fair - yes_ask - fee(yes_ask)   (take the YES offer)
    edge_sell_yes = yes_bid - fair - fee(yes_bid)   (hit the YES bid = buy NO at 1 - bid)
in dollars per contract; fee is the taker fee per contract for
C = min(size at that price, ``max_contracts``) contracts (the per-order round-up makes it
depend on C).

Persistence: an episode starts at the first tick where the edge > ``edge_threshold`` and
lasts while every following tick keeps it above; a ``Signal`` is emitted once per episode,
at the first tick at which the episode is ``persistence_ns`` old (harness time). A quote
change inside the episode does not restart it (the edge is what must persist); a missing
side, a missing fair value or an edge at or below the threshold ends it.

Each signal records its inputs, including how stale the Kalshi quote was: ``quote_age_ns``
(now - the quote's last update) and ``index_move`` (index now minus the index at the
quote's last update, looked up in the detector's own tick history): a quote that sat still
while the index moved is the lag the strategy trades on.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.pipeline.config import FeeParams, SignalParams
from harness.pipeline.fees import fee_per_contract


@dataclass(frozen=True, slots=True)
class MarketQuote:
    ticker: str
    yes_bid: float | None  # dollars; None when no bid
    yes_bid_size: float
    yes_ask: float | None
    yes_ask_size: float
    last_update_ns: int  # harness time the top of book last changed


@dataclass(frozen=True, slots=True)
class Signal:
    ticker: str
    side: str  # "buy_yes" | "sell_yes"
    ts_ns: int  # emission (tick) time
    first_ts_ns: int  # episode start
    edge: float  # at emission
    edge_first: float  # at episode start
    price: float  # yes_ask (buy) or yes_bid (sell)
    size: float  # size available at that price
    fee_per_contract: float
    fair: float
    index_value: float
    index_ts_ns: int
    sigma: float
    quote: MarketQuote
    quote_age_ns: int
    index_at_quote: float | None  # index at (or just before) the quote's last update
    index_move: float | None  # index_value - index_at_quote


@dataclass(slots=True)
class _Episode:
    start_ns: int | None = None
    edge_first: float = 0.0
    fired: bool = False

    def end(self) -> None:
        self.start_ns = None
        self.fired = False


@dataclass(slots=True)
class _Market:
    buy: _Episode = field(default_factory=_Episode)
    sell: _Episode = field(default_factory=_Episode)


def edges(quote: MarketQuote, fair: float, params: SignalParams | None = None,
          fee_params: FeeParams | None = None) -> tuple[float | None, float | None, float | None, float | None]:
    """(edge_buy_yes, edge_sell_yes, fee_buy, fee_sell); None for a missing side."""
    p = params or SignalParams()
    eb = es = fb = fs = None
    if quote.yes_ask is not None:
        c = min(quote.yes_ask_size, p.max_contracts) if quote.yes_ask_size > 0 else 1
        fb = fee_per_contract(quote.yes_ask, c, params=fee_params)
        eb = fair - quote.yes_ask - fb
    if quote.yes_bid is not None:
        c = min(quote.yes_bid_size, p.max_contracts) if quote.yes_bid_size > 0 else 1
        fs = fee_per_contract(quote.yes_bid, c, params=fee_params)
        es = quote.yes_bid - fair - fs
    return eb, es, fb, fs


class SignalDetector:
    """Per-market persistence state; ``on_tick`` once per index tick with all markets."""

    def __init__(self, params: SignalParams | None = None, fee_params: FeeParams | None = None):
        self.params = params or SignalParams()
        self.fee_params = fee_params or FeeParams()
        self.markets: dict[str, _Market] = {}
        self._hist_t: deque[int] = deque()
        self._hist_v: deque[float] = deque()

    def reset(self, ticker: str | None = None) -> None:
        if ticker is None:
            self.markets.clear()
        else:
            self.markets.pop(ticker, None)

    def index_at(self, ts_ns: int) -> float | None:
        """Index value of the last tick at or before ts_ns (None if before the history)."""
        i = bisect_right(self._hist_t, ts_ns)
        return self._hist_v[i - 1] if i else None

    def on_tick(self, now_ns: int, index_value: float, index_ts_ns: int, sigma: float,
                markets: Iterable[tuple[MarketQuote, float | None]]) -> list[Signal]:
        """``markets``: (quote, fair probability or None) for every market to check."""
        if not self._hist_t or index_ts_ns > self._hist_t[-1]:
            self._hist_t.append(index_ts_ns)
            self._hist_v.append(index_value)
        horizon = now_ns - self.params.history_ns
        while len(self._hist_t) > 1 and self._hist_t[1] <= horizon:
            self._hist_t.popleft()
            self._hist_v.popleft()

        out: list[Signal] = []
        p = self.params
        for quote, fair in markets:
            st = self.markets.setdefault(quote.ticker, _Market())
            if fair is None:
                st.buy.end()
                st.sell.end()
                continue
            eb, es, fb, fs = edges(quote, fair, p, self.fee_params)
            for side, ep, edge, fee_c, price, size in (
                ("buy_yes", st.buy, eb, fb, quote.yes_ask, quote.yes_ask_size),
                ("sell_yes", st.sell, es, fs, quote.yes_bid, quote.yes_bid_size),
            ):
                if edge is None or not edge > p.edge_threshold:
                    ep.end()
                    continue
                if ep.start_ns is None:
                    ep.start_ns, ep.edge_first, ep.fired = now_ns, edge, False
                if ep.fired or now_ns - ep.start_ns < p.persistence_ns:
                    continue
                ep.fired = True
                iq = self.index_at(quote.last_update_ns)
                out.append(Signal(
                    ticker=quote.ticker, side=side, ts_ns=now_ns, first_ts_ns=ep.start_ns,
                    edge=edge, edge_first=ep.edge_first, price=price, size=size,
                    fee_per_contract=fee_c, fair=fair, index_value=index_value,
                    index_ts_ns=index_ts_ns, sigma=sigma, quote=quote,
                    quote_age_ns=now_ns - quote.last_update_ns, index_at_quote=iq,
                    index_move=None if iq is None else index_value - iq,
                ))
        return out
