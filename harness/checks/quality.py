"""quality: are the books believable?

- ``mid_deviation`` (fail): a venue's BTC-USD mid (from the sequence sessions' books,
  instruments BTC-USD, XBT/USD, BTC/USD, btcusd, BTCUSD) more than ``mid_deviation``
  (default 5%) from the median mid of the other venues with a fresh book in the same
  the same time (within ``stale_s``; BRTI's erroneous-data rule). Reported once per episode; the episode
  ends when the venue is back within half the threshold.
- ``stale_venue`` (warn): a venue's BTC book not updated for more than ``stale_s``
  (default 10 s) while another venue's is updating in the same recording session (BRTI's
  retrieval-lag rule; separate imported captures are separate sessions).
- ``ticker_book_mismatch`` (warn): a Kalshi ``ticker``'s yes_bid/yes_ask disagree with the
  Kalshi book of that market (best YES bid, 1 - best NO bid) and the book does not reach
  the ticker's prices within ``ticker_tolerance_s`` (the two channels are not
  synchronised, so a short disagreement is normal). Only checked while the book has a
  snapshot and is not stale after a gap.
"""

from __future__ import annotations

import statistics
from decimal import Decimal

from harness.checks.base import BaseCheck

BTC_INSTRUMENTS = frozenset({"BTC-USD", "XBT/USD", "BTC/USD", "btcusd", "BTCUSD"})


_CHART_GAP_NS = 250_000_000  # at most 4 chart points a second per venue


class QualityCheck(BaseCheck):
    name = "quality"
    description = "cross-venue BTC-USD mids, stale venues, Kalshi ticker vs book"

    def __init__(self, config=None):
        super().__init__(config)
        self.mids: dict[str, tuple[Decimal, int, int, int]] = {}  # venue -> (mid, t, frame, session)
        self.deviating: set[tuple[int, str]] = set()
        self.stale: set[tuple[int, str]] = set()
        self.max_dev: dict[str, float] = {}
        self.comparisons = 0
        self.pending: dict[str, tuple] = {}  # market -> (yes_bid, yes_ask, frame, deadline_ns)
        self.ticker_checks = 0
        self.ticker_confirmed = 0
        self.series: dict = {"mids": {}}

    # ---------------------------------------------------------------- frames
    def on_frame(self, view) -> None:
        f = view.frame
        if self.pending:
            self._expire(f.t_wall_ns)
        if f.dir != "in" or not view.messages:
            return
        if f.venue == "kalshi":
            self._kalshi(view)
            return
        books = getattr(view.session, "books", None)
        if not books:
            return
        touched = {getattr(m, "instrument", None) for m in view.messages}
        for inst in touched & BTC_INSTRUMENTS:
            b = books.get(inst)
            if b is None or not hasattr(b, "mid"):
                continue
            try:
                if b.is_crossed():
                    continue
            except AttributeError:
                pass
            mid = b.mid()
            if mid is None:
                continue
            self._on_mid(f, mid)

    def _on_mid(self, f, mid: Decimal) -> None:
        self.mids[f.venue] = (mid, f.t_wall_ns, f.id, f.session_id)
        pts = self.series["mids"].setdefault(f.venue, [])
        if pts and f.t_wall_ns - pts[-1][0] < _CHART_GAP_NS:  # the chart needs no more; memory stays flat
            pts[-1] = (pts[-1][0], float(mid))
        else:
            pts.append((f.t_wall_ns, float(mid)))
        stale_ns = int(float(self.config.stale_s) * 1e9)
        fresh = {}
        for v, (m, t, fid, sid) in self.mids.items():
            if v == f.venue:
                continue
            key = (sid, v)
            age = f.t_wall_ns - t
            if age > stale_ns or age < -stale_ns:
                if sid == f.session_id and age > 0 and key not in self.stale:
                    self.stale.add(key)
                    self.emit(
                        "stale_venue", "warn",
                        f"{v} BTC book not updated for {age / 1e9:.1f} s (> {self.config.stale_s:g} s) while {f.venue} updates; last {v} update at frame {fid}",
                        venue=v, frame_id=fid, t_wall_ns=f.t_wall_ns, payload=None,
                    )
                continue
            self.stale.discard(key)
            fresh[v] = m
        self.stale.discard((f.session_id, f.venue))
        if not fresh:
            return
        self.comparisons += 1
        med = Decimal(statistics.median(fresh.values()))
        dev = float(abs(mid - med) / med) if med else 0.0
        self.max_dev[f.venue] = max(self.max_dev.get(f.venue, 0.0), dev)
        key = (f.session_id, f.venue)
        thr = float(self.config.for_venue(f.venue, "mid_deviation"))
        if dev > thr and key not in self.deviating:
            self.deviating.add(key)
            note = " (only two venues: either may be wrong)" if len(fresh) == 1 else ""
            self.emit(
                "mid_deviation", "fail",
                f"{f.venue} BTC-USD mid {mid} is {dev:.1%} from the median {med:.2f} of {', '.join(sorted(fresh))} (> {thr:.0%}){note}",
                frame=f, detail={"mid": str(mid), "median": str(med), "deviation": round(dev, 6)},
            )
        elif dev <= thr / 2:
            self.deviating.discard(key)

    # ---------------------------------------------------------------- kalshi
    def _kalshi_book(self, market: str, conn_id: int):
        dec = self.ctx.runner.decoder if self.ctx is not None and self.ctx.runner is not None else None
        if dec is None:
            return None
        s = dec.sessions.get(conn_id)
        b = getattr(s, "books", {}).get(market) if s is not None else None
        if b is not None:
            return b
        for cid, s in dec.sessions.items():
            if dec.session_venue.get(cid) == "kalshi" and market in s.books:
                return s.books[market]
        return None

    @staticmethod
    def _book_prices(b):
        if not getattr(b, "has_snapshot", True) or getattr(b, "stale", False):
            return None
        bid = b.best_yes_bid()
        ask = b.yes_ask()
        return (bid[0] if bid else None, ask[0] if ask else None)

    def _kalshi(self, view) -> None:
        from harness.venues import kalshi

        f = view.frame
        for m in view.messages:
            if isinstance(m, kalshi.Ticker):
                b = self._kalshi_book(m.market_ticker, f.conn_id)
                if b is None:
                    continue
                want = (_none_if(m.yes_bid, 0), _none_if(m.yes_ask, 1))
                got = self._book_prices(b)
                if got is None:
                    continue
                self.ticker_checks += 1
                if _match(want, got):
                    self.ticker_confirmed += 1
                    self.pending.pop(m.market_ticker, None)
                else:
                    tol = int(float(self.config.ticker_tolerance_s) * 1e9)
                    self.pending[m.market_ticker] = (want, got, f, f.t_wall_ns + tol)
            elif isinstance(m, (kalshi.OrderbookSnapshot, kalshi.OrderbookDelta)):
                p = self.pending.get(m.instrument)
                if p is not None:
                    b = self._kalshi_book(m.instrument, f.conn_id)
                    got = self._book_prices(b) if b is not None else None
                    if got is not None and _match(p[0], got):
                        self.ticker_confirmed += 1
                        del self.pending[m.instrument]

    def _expire(self, now_ns: int | None) -> None:
        for market, (want, got, fr, deadline) in list(self.pending.items()):
            if now_ns is None or now_ns > deadline:
                del self.pending[market]
                self.emit(
                    "ticker_book_mismatch", "warn",
                    f"{market}: ticker yes_bid/yes_ask {_fmt(want)} but the book shows {_fmt(got)} and did not reach it within {self.config.ticker_tolerance_s:g} s",
                    frame=fr, subject=market,
                )

    def finish(self):
        self._expire(None)
        last = {}
        for v, (m, _t, fid, _sid) in sorted(self.mids.items()):
            last[v] = {"mid": str(m), "frame_id": fid}
        self.stats = {
            "btc_mid_last": last,
            "mid_comparisons": self.comparisons,
            "max_deviation": {v: round(d, 6) for v, d in sorted(self.max_dev.items())},
            "kalshi_ticker_checks": self.ticker_checks,
            "kalshi_ticker_confirmed": self.ticker_confirmed,
        }
        if not last:
            self.notes.append("no BTC-USD book in the recording: cross-venue checks not applicable")
        elif self.comparisons == 0:
            self.notes.append("fewer than two venues with a BTC-USD book at the same time: no cross-venue comparison")
        return super().finish()


def _none_if(v, edge):
    if v is None:
        return None
    return None if v == edge else v


def _match(want, got) -> bool:
    return all(w is None or g is None and w is None or (g is not None and w is not None and g == w) for w, g in zip(want, got, strict=True))


def _fmt(p) -> str:
    return "/".join("-" if x is None else str(x) for x in p)
