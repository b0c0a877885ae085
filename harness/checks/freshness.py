"""freshness: how stale a REST poller's view is next to the WebSocket stream's.

The seed system moved from REST polling to WebSocket claiming Kalshi data went from
20-30 s stale to under a second; this check measures it on any recording that holds both
(``harness record --rest-poll SECONDS``, or a simulated recording with REST responses).

Views, per venue, instrument and field (a *key*):

- Kalshi market (``GET /markets/{ticker}`` and ``/markets/{ticker}/orderbook``):
  ``yes_bid``, ``yes_ask``, ``last``. The stream's bid/ask come from the market's book
  (``orderbook_snapshot``/``_delta``; best YES bid, 1 - best NO bid) or, for a market
  without a usable book (none, or stale after a sequence gap), from ``ticker``; ``last``
  from ``ticker`` and ``trade`` (a ``ticker`` with ``price_dollars`` "" means no trade yet:
  None, as REST's ``last_price`` 0).
- Exchange REST ticker (Coinbase ``/products/P/ticker``, Kraken ``/0/public/Ticker``,
  Bitstamp ``/api/v2/ticker/P/``, Gemini ``/v1/pubticker/P``, Crypto.com
  ``public/get-tickers``): ``bid``, ``ask``, ``last``, against the venue's book and trades.

No bid (Kalshi 0) and no ask (Kalshi 1) are a value too (``None``). Values compare as
Decimals. A REST view changes when its response is received (``t_recv_ns``); the stream's
when its frame is received.

Measures per key:

- ``stream_to_rest``: for each change on the stream (an *episode*: the stream holding a
  value), the time until a REST response first showed that value. Changes the polls never
  saw (superseded between polls) are counted as ``missed``.
- ``rest_to_stream`` (the reverse): a REST response showing a value the stream has not
  had yet; the time until the stream shows it. Large values mean the stream lags.
- ``staleness`` of the REST view at each moment: 0 while it equals the stream's, else the
  time since the stream moved away from the value REST still shows. Time-weighted (the
  exact distribution of a piecewise-linear function, not samples), over the span between
  a key's first and last REST response. Moments where REST shows a value the stream has
  not had are ``rest_ahead_s`` and not part of the distribution.
- A REST response showing a value the stream left *before the previous response* (which
  showed another value) is either an old view (stale since then) or ahead of the stream on
  a recurring price (Kraken's bid back at 83811.4 after 100 s, 0.2 s before the stream):
  it counts as ahead if the stream shows that value before the next response, else stale.
- A Kalshi market is measured until its stream stops describing it: the REST market's
  ``close_time``, a REST ``status`` past trading (closed, determined, settled, ...),
  ``market_lifecycle_v2`` closed/determined/settled, or our ``update_subscription``
  ``delete_markets``. After that REST answers an emptied book or the last quote while the
  stream is silent, which is not a poller's view of a live market.
- ``age``: time since the last REST response (mean is half the poll interval whatever
  the stream does; staleness can only be lower).
- The *view* of an instrument (``by_instrument``, and the venue line, pooled over its
  instruments' time): at each moment its stalest field (a field REST shows ahead of the
  stream counts as current), so a field that never changes does not dilute a busy one.

Codes: ``summary`` (info, one per venue with the headline numbers), ``stream_behind_rest``
(warn: p90 of ``rest_to_stream`` over ``STREAM_BEHIND_S``), ``no_rest`` is a note, not a
finding (a recording without REST polls passes).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

from harness.checks.base import BaseCheck
from harness.checks.latency import percentile

STREAM_BEHIND_S = 2.0  # p90 of the stream showing a value after REST did: warn above this
_NS = 1_000_000_000
_UNKNOWN = object()  # no value yet on that side
_ONE = Decimal(1)
_KALSHI_MARKET = re.compile(r"/markets/([^/?#]+)(/orderbook)?/?$")
_NO_TRADE_YET = re.compile(r'"price_dollars"\s*:\s*""')  # a Kalshi ticker before the market's first trade
PLOT_POINTS_MIN_GAP_NS = 100_000_000  # thin stream points for the plot (busy exchange books)
# a Kalshi market in these states has no live book: REST answers an empty one (0/1, no
# levels) while the stream just stops, so neither view is a poller's view any more
_KALSHI_OVER = frozenset({"closed", "determined", "settled", "finalized", "disputed", "amended"})
_KALSHI_OVER_EVENTS = frozenset({"closed", "determined", "settled"})


def norm_instrument(name: str) -> str:
    """One spelling per pair across venues and REST: ``BTC-USD``, ``XBT/USD``, ``btcusd``,
    ``BTC_USD`` -> ``BTCUSD``."""
    s = re.sub(r"[^A-Za-z0-9]", "", name).upper()
    if s == "XXBTZUSD":  # Kraken REST's own name for XBT/USD
        return "BTCUSD"
    return "BTC" + s[3:] if s.startswith("XBT") else s


def _dec(v) -> Decimal | None:
    if v is None or v == "":
        return None
    try:
        return Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None


def _kalshi_bid(v):
    return None if v is None or v == 0 else v


def _kalshi_ask(v):
    return None if v is None or v == _ONE else v


# ----------------------------------------------------------------------------- REST parsing


def poll_venue(venue: str | None, url: str) -> str | None:
    """The venue whose polled endpoint ``url`` is (``venue`` when the row names it), or None
    when the URL is not a market/ticker poll (discovery, order-book snapshots, ...)."""
    path = urlsplit(url).path
    guess = None
    if _KALSHI_MARKET.search(path):
        guess = "kalshi"
    elif "/products/" in path and path.rstrip("/").endswith("/ticker"):
        guess = "coinbase"
    elif path.lower().endswith("/0/public/ticker"):
        guess = "kraken"
    elif "/api/v2/ticker/" in path:
        guess = "bitstamp"
    elif "/v1/pubticker/" in path:
        guess = "gemini"
    elif path.endswith("public/get-tickers"):
        guess = "cryptocom"
    if guess is None:
        return None
    return venue.lower() if venue else guess


def parse_rest(venue: str, url: str, body: str) -> list[tuple[str, dict]]:
    """``[(instrument, {field: value})]`` read from one REST response; [] when the URL is not
    a polled ticker/market endpoint or the body is not what it should be."""
    try:
        obj = json.loads(body)
    except (TypeError, ValueError):
        return []
    if not isinstance(obj, dict):
        return []
    u = urlsplit(url)
    path, q = u.path, parse_qs(u.query)
    try:
        if venue == "kalshi":
            return _kalshi_rest(path, obj)
        if venue == "coinbase" and path.rstrip("/").endswith("/ticker"):
            parts = path.rstrip("/").split("/")
            inst = parts[-2]
            if "trades" in obj:  # Advanced Trade public ticker
                tr = obj.get("trades") or []
                return [(inst, {"bid": _dec(obj.get("best_bid")), "ask": _dec(obj.get("best_ask")),
                                "last": _dec(tr[0].get("price")) if tr else None})]
            return [(inst, {"bid": _dec(obj.get("bid")), "ask": _dec(obj.get("ask")), "last": _dec(obj.get("price"))})]
        if venue == "kraken" and path.lower().endswith("/ticker"):
            res = obj.get("result") or {}
            out = []
            for _k, t in res.items():
                inst = (q.get("pair") or [_k])[0]
                out.append((inst, {"bid": _dec(t["b"][0]), "ask": _dec(t["a"][0]), "last": _dec(t["c"][0])}))
            return out[:1]
        if venue == "bitstamp" and "/ticker/" in path:
            inst = path.rstrip("/").rsplit("/", 1)[-1]
            return [(inst, {"bid": _dec(obj.get("bid")), "ask": _dec(obj.get("ask")), "last": _dec(obj.get("last"))})]
        if venue == "gemini" and "/pubticker/" in path:
            inst = path.rstrip("/").rsplit("/", 1)[-1]
            return [(inst, {"bid": _dec(obj.get("bid")), "ask": _dec(obj.get("ask")), "last": _dec(obj.get("last"))})]
        if venue == "cryptocom" and path.endswith("get-tickers"):
            data = (obj.get("result") or {}).get("data") or []
            return [(d["i"], {"bid": _dec(d.get("b")), "ask": _dec(d.get("k")), "last": _dec(d.get("a"))}) for d in data[:1]]
    except (KeyError, IndexError, TypeError, AttributeError):
        return []
    return []


def kalshi_market_state(url: str, body: str) -> tuple[str | None, int | None]:
    """``(status, close_ns)`` of a Kalshi ``GET /markets/{ticker}`` response, else (None, None)."""
    from datetime import datetime

    m = _KALSHI_MARKET.search(urlsplit(url).path)
    if m is None or m.group(2):
        return None, None
    try:
        mk = json.loads(body).get("market") or {}
        status = mk.get("status")
        close = mk.get("close_time")
        close_ns = int(datetime.fromisoformat(close.replace("Z", "+00:00")).timestamp()) * _NS if close else None
    except (TypeError, ValueError, AttributeError):
        return None, None
    return (status if isinstance(status, str) else None), close_ns


def _kalshi_rest(path: str, obj: dict) -> list[tuple[str, dict]]:
    m = _KALSHI_MARKET.search(path)
    if m is None:
        return []
    ticker = m.group(1)
    if m.group(2):  # /orderbook
        ob = obj.get("orderbook_fp") or obj.get("orderbook") or {}
        yes = ob.get("yes_dollars") or [(Decimal(p) / 100, c) for p, c in (ob.get("yes") or [])]
        no = ob.get("no_dollars") or [(Decimal(p) / 100, c) for p, c in (ob.get("no") or [])]
        bid = max((Decimal(str(p)) for p, _c in yes), default=None)
        best_no = max((Decimal(str(p)) for p, _c in no), default=None)
        return [(ticker, {"yes_bid": bid, "yes_ask": None if best_no is None else _ONE - best_no})]
    mk = obj.get("market")
    if not isinstance(mk, dict):
        return []

    def price(name: str):
        if name + "_dollars" in mk:
            return _dec(mk[name + "_dollars"])
        v = mk.get(name)
        return None if v is None else Decimal(v) / 100  # cents era

    return [(mk.get("ticker") or ticker, {"yes_bid": _kalshi_bid(price("yes_bid")), "yes_ask": _kalshi_ask(price("yes_ask")),
                                          "last": _kalshi_bid(price("last_price"))})]


# ----------------------------------------------------------------------------- one key


class Track:
    """Both views of one (venue, instrument, field) and the measures between them."""

    __slots__ = ("ws", "rest", "rest_t", "rest_first", "latest", "pending_rest", "mode", "t_seg",
                 "segs", "pend_segs", "ahead", "pend_ahead", "zero", "pend_zero", "ages",
                 "to_rest", "to_stream", "eps", "pend_eps", "hits", "ws_pts", "rest_pts", "modes",
                 "recur", "recur_idx", "pend_recur", "ended")

    def __init__(self):
        self.ws = _UNKNOWN
        self.rest = _UNKNOWN
        self.rest_t: int | None = None
        self.rest_first: int | None = None
        self.latest: dict = {}  # value -> [start_ns, end_ns | None, matched]
        self.pending_rest: dict = {}  # value -> first REST ns while the stream had not shown it
        self.mode: tuple = ("none",)
        self.t_seg = 0
        self.segs: list[tuple[float, float, float]] = []  # linear staleness pieces (lo, hi, dur), s
        self.pend_segs: list[tuple[float, float, float]] = []  # since the last REST response
        self.zero = self.pend_zero = 0.0  # seconds the REST view equalled the stream's
        self.ahead = self.pend_ahead = 0.0  # seconds REST showed a value the stream had not
        self.ages: list[float] = []  # REST intervals, s
        self.to_rest: list[float] = []
        self.to_stream: list[float] = []
        self.eps = self.pend_eps = 0  # stream changes REST could have seen
        self.hits = 0  # of those, seen by a REST response
        self.ws_pts: list[tuple[int, object]] = []
        self.rest_pts: list[tuple[int, object]] = []
        self.modes: list[tuple[int, tuple]] = []  # (t, mode) each time it changes: for the view
        # REST went back to a value the stream left before the previous response: stale, or
        # ahead of the stream on a recurring price? Decided by the stream before the next poll
        self.recur = False
        self.recur_idx = 0  # index in modes from which the question is open
        self.pend_recur: list[tuple[float, float, float]] = []  # its pieces while open
        self.ended = False  # the stream stopped describing this key (market closed, unsubscribed)

    def _mode(self) -> tuple:
        if self.ws is _UNKNOWN or self.rest is _UNKNOWN:
            return ("none",)
        if self.rest == self.ws:
            return ("zero",)
        ep = self.latest.get(self.rest)
        if ep is not None and ep[1] is not None:
            return ("recur" if self.recur else "lin", ep[1])
        return ("ahead",)

    def _close(self, t: int) -> None:
        dur = (t - self.t_seg) / _NS
        if dur > 0:
            kind = self.mode[0]
            if kind == "zero":
                self.pend_zero += dur
            elif kind in ("lin", "recur"):
                e = self.mode[1]
                (self.pend_segs if kind == "lin" else self.pend_recur).append(((self.t_seg - e) / _NS, (t - e) / _NS, dur))
            elif kind == "ahead":
                self.pend_ahead += dur
        self.t_seg = t

    def _remode(self, t: int) -> None:
        new = self._mode()
        if new != self.mode:
            self._close(t)
            self.mode = new
            self.modes.append((t, new))

    def stream(self, t: int, v) -> None:
        if self.ended or (v == self.ws and self.ws is not _UNKNOWN):
            return
        if self.ws is not _UNKNOWN:
            self.latest[self.ws][1] = t
        self.ws = v
        ep = self.latest[v] = [t, None, False, False]  # start, end, seen by REST, counted
        first = self.pending_rest.pop(v, None)
        if first is not None:
            self.to_stream.append((t - first) / _NS)
            ep[2] = True  # REST showed it first: not a stream-to-REST sample
        elif self.rest is not _UNKNOWN:
            self.pend_eps += 1
            ep[3] = True
        if not self.ws_pts or t - self.ws_pts[-1][0] >= PLOT_POINTS_MIN_GAP_NS:
            self.ws_pts.append((t, v))
        else:
            self.ws_pts[-1] = (self.ws_pts[-1][0], v)
        self._remode(t)
        if self.recur and v == self.rest:  # the stream caught up: REST was ahead, not stale
            self.pend_ahead += sum(d for _lo, _hi, d in self.pend_recur)
            self.pend_recur = []
            self.modes[self.recur_idx:] = [(tm, ("ahead",) if m[0] == "recur" else m) for tm, m in self.modes[self.recur_idx:]]
            self.recur = False

    def _commit(self, t: int) -> None:
        self.ages.append((t - self.rest_t) / _NS)
        self.segs.extend(self.pend_segs)
        self.zero += self.pend_zero
        self.ahead += self.pend_ahead
        self.eps += self.pend_eps
        self.pend_segs, self.pend_zero, self.pend_ahead, self.pend_eps = [], 0.0, 0.0, 0

    def _settle_recur(self) -> None:
        """The open question had no answer from the stream: REST was stale."""
        self.segs.extend(self.pend_recur)
        self.pend_recur = []
        self.pending_rest.pop(self.rest, None)
        self.recur = False

    def polled(self, t: int, v) -> None:
        if self.ended:
            return
        self._close(t)
        ep = self.latest.get(v)
        # a value the stream left before the previous response, which showed another one
        recur = (ep is not None and ep[1] is not None and self.rest_t is not None and ep[1] < self.rest_t
                 and v != self.rest and v != self.ws)
        still = self.recur and v == self.rest  # the same open question (Kalshi: market, then orderbook)
        if self.rest_t is not None:  # commit everything up to this response
            self._commit(t)
            if self.recur and not still:
                self._settle_recur()
        else:
            self.rest_first = t
        self.rest, self.rest_t = v, t
        if recur:
            self.recur, self.recur_idx = True, len(self.modes)
            self.pending_rest.setdefault(v, t)  # the stream showing it soon: rest_to_stream
        elif ep is not None and not still:
            if not ep[2] and ep[0] <= t:
                self.to_rest.append((t - ep[0]) / _NS)
                ep[2] = True
                self.hits += ep[3]
        elif self.ws is not _UNKNOWN:
            self.pending_rest.setdefault(v, t)
        self.rest_pts.append((t, v))
        self.mode = self._mode()
        self.modes.append((t, self.mode))

    def end(self, t: int) -> None:
        """The stream stopped describing this key at ``t`` (the market closed, was
        unsubscribed, was determined): measure up to ``t``, ignore everything after."""
        if self.ended:
            return
        self.ended = True
        if self.rest_t is None or t <= self.rest_t:
            return
        self._close(t)
        self._commit(t)
        if self.recur:
            self._settle_recur()
        self.rest_t = t
        self.mode = ("none",)
        self.modes.append((t, self.mode))

    @property
    def span_s(self) -> float:
        return sum(self.ages)


def view_pieces(tracks: list[Track]) -> tuple[list, float, float]:
    """The staleness of an instrument's whole REST view: at each moment the stalest of its
    fields (a field REST shows ahead of the stream counts as current). Over the span from
    the first to the last REST response of any field. Returns (pieces, zero_s, ahead_s)."""
    lo = min(tr.rest_first for tr in tracks)
    hi = max(tr.rest_t for tr in tracks)
    changes = sorted((t, i, m) for i, tr in enumerate(tracks) for t, m in tr.modes)
    cur: list[tuple] = [("none",)] * len(tracks)
    segs: list[tuple[float, float, float]] = []
    zero = ahead = 0.0
    prev = None
    for t, i, m in changes:
        if prev is not None and t > prev:
            a, b = max(prev, lo), min(t, hi)
            if b > a:
                lins = [c[1] for c in cur if c[0] in ("lin", "recur")]  # recur: not resolved ahead
                dur = (b - a) / _NS
                if lins:
                    e = min(lins)
                    segs.append(((a - e) / _NS, (b - e) / _NS, dur))
                elif any(c[0] == "zero" for c in cur):
                    zero += dur
                elif any(c[0] == "ahead" for c in cur):
                    ahead += dur
        cur[i] = m
        prev = t
    return segs, zero, ahead


# ----------------------------------------------------------------------------- distributions


def distribution(segs, zero_s: float = 0.0) -> dict | None:
    """Exact p50/p90/max/mean of a time-weighted mix of uniform pieces ``(lo, hi, dur)``
    (a value rising linearly from lo to hi over dur seconds) and an atom at 0 of ``zero_s``."""
    import numpy as np

    if not segs and zero_s <= 0:
        return None
    a = np.array(segs, dtype=float).reshape(-1, 3)
    lo, hi, w = a[:, 0], a[:, 1], a[:, 2]
    total = float(w.sum()) + zero_s
    if total <= 0:
        return None
    mean = float((w * (lo + hi) / 2).sum()) / total
    mx = float(hi.max()) if len(hi) else 0.0

    def cdf(x: float) -> float:
        frac = np.clip((x - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
        return (zero_s + float((w * frac).sum())) / total

    def quantile(q: float) -> float:
        if cdf(0.0) >= q:
            return 0.0
        a_, b_ = 0.0, mx
        for _ in range(60):
            m = (a_ + b_) / 2
            if cdf(m) >= q:
                b_ = m
            else:
                a_ = m
        return b_

    return {"time_s": round(total, 3), "mean_s": _r(mean), "p50_s": _r(quantile(0.5)), "p90_s": _r(quantile(0.9)),
            "max_s": _r(mx), "zero_frac": _r(zero_s / total)}


def _lags(vals: list[float]) -> dict:
    s = sorted(vals)
    return {"n": len(s), "p50_s": _r(percentile(s, 0.5)), "p90_s": _r(percentile(s, 0.9)),
            "max_s": _r(s[-1]) if s else None, "mean_s": _r(sum(s) / len(s)) if s else None}


def _r(v):
    return None if v is None else round(v, 3)


# ----------------------------------------------------------------------------- the check


class FreshnessCheck(BaseCheck):
    name = "freshness"
    description = "REST poller's view vs the WebSocket stream's: staleness, lags both ways"

    def __init__(self, config=None):
        super().__init__(config)
        self.tracks: dict[tuple[str, str, str], Track] = {}
        self.kalshi_books: set[str] = set()  # markets whose bid/ask come from the book
        self.kalshi_close: dict[str, int] = {}  # market -> close_time (REST), while not ended
        self.next_close: int | None = None
        self.kalshi_over: dict[str, int] = {}  # market -> when its stream stopped describing it
        self.active = True
        self.rest_rows = 0
        # venue -> gaps between answers to the same request: the poll interval (a key fed by
        # two requests, Kalshi's market and orderbook, sees gaps of ms and of the interval)
        self.url_last: dict[tuple[str, str], int] = {}
        self.url_gaps: dict[str, list[float]] = {}
        self.series: dict = {}

    def start(self, ctx) -> None:
        super().start(ctx)
        # a finished recording without REST polls: nothing to compare, skip the work
        self.active = ctx.live or any(poll_venue(r.get("venue"), r.get("url") or "") for r in ctx.http)

    def _track(self, venue: str, inst: str, fld: str) -> Track:
        k = (venue, inst, fld)
        t = self.tracks.get(k)
        if t is None:
            t = self.tracks[k] = Track()
        return t

    def _end_market(self, ticker: str, t: int) -> None:
        """The market's stream stopped at ``t`` (closed, determined, unsubscribed)."""
        if ticker in self.kalshi_over:
            return
        self.kalshi_over[ticker] = t
        for fld in ("yes_bid", "yes_ask", "last"):
            tr = self.tracks.get(("kalshi", ticker, fld))
            if tr is not None:
                tr.end(t)
        if self.kalshi_close.pop(ticker, None) is not None:
            self.next_close = min(self.kalshi_close.values(), default=None)

    def _closes_due(self, t: int) -> None:
        while self.next_close is not None and self.next_close <= t:
            due = [k for k, c in self.kalshi_close.items() if c <= t]
            for k in due:
                self._end_market(k, self.kalshi_close[k])

    def on_http(self, row: dict) -> None:
        if row.get("status") != 200 or not row.get("response_body") or not row.get("t_recv_ns"):
            return
        venue = poll_venue(row.get("venue"), row.get("url") or "")  # rows without a venue: by URL
        if venue is None:
            return
        got = parse_rest(venue, row.get("url") or "", row["response_body"])
        if not got:
            return
        self.active = True
        self.rest_rows += 1
        t = int(row["t_recv_ns"])
        self._closes_due(t)
        prev = self.url_last.get((venue, row.get("url") or ""))
        if prev is not None:
            self.url_gaps.setdefault(venue, []).append((t - prev) / _NS)
        self.url_last[(venue, row.get("url") or "")] = t
        if venue == "kalshi":
            status, close_ns = kalshi_market_state(row.get("url") or "", row["response_body"])
            ticker = got[0][0]
            if status in _KALSHI_OVER:
                self._end_market(ticker, t)
            elif close_ns is not None and ticker not in self.kalshi_over:
                self.kalshi_close[ticker] = close_ns
                self.next_close = min(self.kalshi_close.values())
                self._closes_due(t)
        for inst, fields in got:
            if venue == "kalshi" and inst in self.kalshi_over:
                continue
            name = inst if venue == "kalshi" else norm_instrument(inst)
            for fld, v in fields.items():
                self._track(venue, name, fld).polled(t, v)

    def on_frame(self, view) -> None:
        if not self.active:
            return
        f = view.frame
        self._closes_due(f.t_wall_ns)
        if f.dir == "out":
            if f.venue == "kalshi":
                self._kalshi_command(f)
            return
        if not view.messages:
            return
        if f.venue == "kalshi":
            self._kalshi(view)
        else:
            self._exchange(view)

    def _kalshi(self, view) -> None:
        from harness.venues import kalshi

        t = view.frame.t_wall_ns
        books = getattr(view.session, "books", {})
        for m in view.messages:
            if isinstance(m, kalshi.Lifecycle):
                if m.market_ticker and m.event_type in _KALSHI_OVER_EVENTS:
                    self._end_market(m.market_ticker, t)
            elif isinstance(m, (kalshi.OrderbookSnapshot, kalshi.OrderbookDelta)):
                b = books.get(m.instrument)
                if b is None or not b.has_snapshot or b.stale:
                    self.kalshi_books.discard(m.instrument)  # after a gap: the ticker's bid/ask until a snapshot
                    continue
                self.kalshi_books.add(m.instrument)
                bid, ask = b.best_yes_bid(), b.yes_ask()
                self._track("kalshi", m.instrument, "yes_bid").stream(t, bid[0] if bid else None)
                self._track("kalshi", m.instrument, "yes_ask").stream(t, ask[0] if ask else None)
            elif isinstance(m, kalshi.Ticker):
                if m.market_ticker not in self.kalshi_books:
                    self._track("kalshi", m.market_ticker, "yes_bid").stream(t, _kalshi_bid(m.yes_bid))
                    self._track("kalshi", m.market_ticker, "yes_ask").stream(t, _kalshi_ask(m.yes_ask))
                if m.price is not None:
                    self._track("kalshi", m.market_ticker, "last").stream(t, _kalshi_bid(m.price))
                elif isinstance(view.frame.payload, str) and _NO_TRADE_YET.search(view.frame.payload):
                    # no trade yet: what REST's last_price 0 says too (else REST's "none" reads as ahead)
                    self._track("kalshi", m.market_ticker, "last").stream(t, None)
            elif isinstance(m, kalshi.Trade):
                self._track("kalshi", m.instrument, "last").stream(t, m.price)

    def _kalshi_command(self, f) -> None:
        """``update_subscription`` with ``delete_markets``: those markets' streams stop here."""
        p = f.payload
        if not isinstance(p, str) or "delete_markets" not in p:
            return
        try:
            params = json.loads(p).get("params") or {}
        except (TypeError, ValueError, AttributeError):
            return
        if params.get("action") == "delete_markets":
            for ticker in params.get("market_tickers") or []:
                if isinstance(ticker, str):
                    self._end_market(ticker, f.t_wall_ns)

    def _exchange(self, view) -> None:
        t = view.frame.t_wall_ns
        venue = view.frame.venue
        books = getattr(view.session, "books", None) or {}
        touched = set()
        for m in view.messages:
            inst = getattr(m, "instrument", None)
            if not isinstance(inst, str):
                continue
            if getattr(m, "levels", None) is not None:
                touched.add(inst)
            elif getattr(m, "size", None) is not None and getattr(m, "price", None) is not None:
                self._track(venue, norm_instrument(inst), "last").stream(t, m.price)
        for inst in touched:
            b = books.get(inst)
            if b is None or not hasattr(b, "best_bid"):
                continue
            bid, ask = b.best_bid(), b.best_ask()
            name = norm_instrument(inst)
            self._track(venue, name, "bid").stream(t, bid[0] if bid else None)
            self._track(venue, name, "ask").stream(t, ask[0] if ask else None)

    def finish(self):
        rows = []
        by_venue: dict[str, dict] = {}
        views: dict[tuple[str, str], list[Track]] = {}
        for (venue, inst, fld), tr in sorted(self.tracks.items()):
            if tr.rest_first is None or not tr.ages:
                continue  # one answer is a fetch (a settlement, a book to align to), not a poller's view
            views.setdefault((venue, inst), []).append(tr)
            st = distribution(tr.segs, tr.zero)
            age = distribution([(0.0, a, a) for a in tr.ages])
            rows.append({
                "venue": venue, "instrument": inst, "field": fld, "polls": len(tr.ages) + 1,
                "span_s": _r(tr.span_s), "staleness": st, "age": age, "rest_ahead_s": _r(tr.ahead),
                "stream_changes": tr.eps, "stream_to_rest": _lags(tr.to_rest),
                "missed": tr.eps - tr.hits, "rest_to_stream": _lags(tr.to_stream),
            })
            v = by_venue.setdefault(venue, {"segs": [], "zero": 0.0, "ages": [], "to_rest": [], "to_stream": [],
                                            "instruments": set(), "ahead": 0.0})
            v["ages"].extend(tr.ages)
            v["to_rest"].extend(tr.to_rest)
            v["to_stream"].extend(tr.to_stream)
            v["instruments"].add(inst)
        instruments = []
        for (venue, inst), trs in sorted(views.items()):
            segs, zero, ahead = view_pieces(trs)
            instruments.append({"venue": venue, "instrument": inst, "staleness": distribution(segs, zero),
                                "rest_ahead_s": _r(ahead)})
            v = by_venue[venue]
            v["segs"].extend(segs)
            v["zero"] += zero
            v["ahead"] += ahead
        venues = {}
        for venue, v in sorted(by_venue.items()):
            st = distribution(v["segs"], v["zero"])
            ages = sorted(v["ages"])
            interval = percentile(sorted(self.url_gaps.get(venue) or ages), 0.5)
            venues[venue] = {
                "instruments": len(v["instruments"]), "poll_interval_s": _r(interval),
                "staleness": st, "age": distribution([(0.0, a, a) for a in v["ages"]]),
                "stream_to_rest": _lags(v["to_rest"]), "rest_to_stream": _lags(v["to_stream"]),
                "rest_ahead_s": _r(v["ahead"]),
            }
            s = st or {}
            fwd, back = venues[venue]["stream_to_rest"], venues[venue]["rest_to_stream"]
            msg = (f"REST view (polled every {interval or 0:g} s) stale by mean {s.get('mean_s')} s, "
                   f"p50 {s.get('p50_s')} s, p90 {s.get('p90_s')} s, max {s.get('max_s')} s versus the stream; "
                   f"a stream change reached REST after p50 {fwd['p50_s']} s ({fwd['n']} changes seen by REST)")
            if back["n"]:
                msg += f"; REST showed {back['n']} value(s) before the stream (p50 {back['p50_s']} s)"
            self.emit("summary", "info", msg, venue=venue, detail={"staleness": st, "poll_interval_s": _r(interval)})
            if back["n"] and back["p90_s"] is not None and back["p90_s"] > STREAM_BEHIND_S:
                self.emit("stream_behind_rest", "warn",
                          f"the stream showed values {back['p90_s']} s (p90 of {back['n']}) after a REST poll had them "
                          f"(> {STREAM_BEHIND_S:g} s): the WebSocket view lags",
                          venue=venue)
        self.stats = {"rest_rows": self.rest_rows, "venues": venues, "by_instrument": instruments, "by_key": rows}
        if not rows:
            self.notes.append("no REST polls matching a recorded stream (record with --rest-poll SECONDS)")
        self.series = {"views": self._plot_series()}
        return super().finish()

    def _plot_series(self) -> dict:
        """Per venue, the instruments with the most polls (Kalshi: up to 3 markets): the
        bid field of both views as (t_ns, float|None) steps."""
        out: dict = {}
        cands: dict[str, list] = {}
        for (venue, inst, fld), tr in self.tracks.items():
            if tr.rest_first is not None and tr.ages and fld in ("yes_bid", "bid"):
                cands.setdefault(venue, []).append((len(tr.rest_pts), inst, fld, tr))
        for venue, cs in sorted(cands.items()):
            cs.sort(key=lambda c: (-c[0], c[1]))
            for _n, inst, fld, tr in cs[: 3 if venue == "kalshi" else 1]:
                lo, hi = tr.rest_first, tr.rest_t
                ws = [(t, _f(v)) for t, v in tr.ws_pts if v is not _UNKNOWN and t <= hi]
                # the stream value in force when polling started
                before = [p for p in ws if p[0] <= lo]
                ws = ([(lo, before[-1][1])] if before else []) + [p for p in ws if p[0] > lo]
                out[f"{venue} {inst} {fld}"] = {"stream": ws, "rest": [(t, _f(v)) for t, v in tr.rest_pts]}
        return out


def _f(v):
    return None if v is None or v is _UNKNOWN else float(v)
