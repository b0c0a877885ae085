"""A simulated exchange order book: integer ticks -> integer lots, per side.

``follow(mid)`` moves the inside of the book to a new mid (levels that would cross are
taken out, a new best level is added) and keeps ``levels`` levels a side; ``jiggle()``
changes sizes near the top as resting orders come and go. Both return the changes as
``(is_bid, tick, lots)`` with ``lots == 0`` meaning "level deleted": exactly what an L2
feed with absolute quantities sends. Integers throughout, so texts are exact.
"""

from __future__ import annotations

import random
from decimal import Decimal

Change = tuple[bool, int, int]


def fmt(units: int, step: Decimal) -> str:
    """``units`` steps of ``step`` as fixed-point text with the step's decimals."""
    return format(units * step, "f")


class Ladder:
    def __init__(self, rng: random.Random, *, tick: Decimal, lot: Decimal, levels: int,
                 spread_ticks: tuple[int, int], gap_ticks: tuple[int, int], lots: tuple[int, int], strict: bool = False):
        self.rng = rng
        self.strict = strict
        self.tick = tick
        self.lot = lot
        self.levels = levels
        self.spread_ticks = spread_ticks
        self.gap_ticks = gap_ticks
        self.lots = lots
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    # -- text ------------------------------------------------------------------------------
    def price_text(self, t: int) -> str:
        return fmt(t, self.tick)

    def qty_text(self, n: int) -> str:
        return fmt(n, self.lot)

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    def mid(self) -> float:
        return (self.best_bid() + self.best_ask()) / 2 * float(self.tick)

    def _size(self, depth: int) -> int:
        # independent of where the level was created: a level added at the far end ends up
        # at the top after a move, and a size that remembered its depth would make one
        # side thicker than the other (a BRTI-style index reads that as a price move)
        lo, hi = self.lots
        return self.rng.randint(lo, hi)

    def _gap(self) -> int:
        return self.rng.randint(*self.gap_ticks)

    # -- moves -----------------------------------------------------------------------------
    def seed(self, mid: float) -> list[Change]:
        self.bids.clear()
        self.asks.clear()
        strict, self.strict = self.strict, True
        try:
            return self.follow(mid)
        finally:
            self.strict = strict

    def follow(self, mid: float) -> list[Change]:
        m = mid / float(self.tick)
        if self.bids and self.asks:
            bb, ba = self.best_bid(), self.best_ask()
            if bb < m < ba and ba - bb <= self.spread_ticks[1] * 3:
                return []  # the inside still brackets the mid: resting orders stay
        half = self.rng.randint(*self.spread_ticks) / 2
        want_bid = int(m - half)
        want_ask = max(int(m + half + 0.999999), want_bid + 1)
        out: list[Change] = []
        for p in [p for p in self.bids if p >= want_ask]:
            del self.bids[p]
            out.append((True, p, 0))
        for p in [p for p in self.asks if p <= want_bid]:
            del self.asks[p]
            out.append((False, p, 0))
        if not self.bids or self.best_bid() < want_bid:
            self.bids[want_bid] = n = self._size(0)
            out.append((True, want_bid, n))
        if not self.asks or self.best_ask() > want_ask:
            self.asks[want_ask] = n = self._size(0)
            out.append((False, want_ask, n))
        out += self._close_gaps()
        out += self._fill()
        return out

    def _close_gaps(self) -> list[Change]:
        """Quoters follow the price: on the side the price moved away from, the hole left
        between the new inside and the old levels is filled (the far end is then trimmed),
        so both sides keep the same density and reach."""
        out: list[Change] = []
        top_gap = self.gap_ticks[1]
        for is_bid, side in ((True, self.bids), (False, self.asks)):
            ordered = sorted(side, reverse=is_bid)
            for a, b in zip(ordered, ordered[1:], strict=False):
                p = a
                while abs(b - p) > top_gap:
                    p = p - self._gap() if is_bid else p + self._gap()
                    if (p <= b) if is_bid else (p >= b):
                        break
                    side[p] = n = self._size(0)
                    out.append((is_bid, p, n))
                if len(out) > self.levels:
                    break
        return out

    def _fill(self) -> list[Change]:
        """Keep about ``levels`` levels a side: drop the far ones, add behind the last.
        ``strict`` (a depth-limited feed such as Kraken's): exactly ``levels``; otherwise
        only when a side is over 1.5x or under 0.5x of it (far levels cost bytes and move
        no index)."""
        out: list[Change] = []
        for is_bid, side in ((True, self.bids), (False, self.asks)):
            if not self.strict and self.levels // 2 <= len(side) <= self.levels * 3 // 2:
                continue
            ordered = sorted(side, reverse=is_bid)
            for p in ordered[self.levels:]:
                del side[p]
                out.append((is_bid, p, 0))
            ordered = ordered[: self.levels]
            last = ordered[-1]
            while len(side) < self.levels:
                last = last - self._gap() if is_bid else last + self._gap()
                if last <= 0:
                    break
                side[last] = n = self._size(len(side))
                out.append((is_bid, last, n))
        return out

    def jiggle(self, n: int = 1) -> list[Change]:
        """``n`` size changes on levels near the top (sometimes a level empties and a new
        one appears elsewhere)."""
        out: list[Change] = []
        for _ in range(n):
            is_bid = self.rng.random() < 0.5
            side = self.bids if is_bid else self.asks
            ordered = sorted(side, reverse=is_bid)
            depth = min(int(self.rng.expovariate(0.25)), len(ordered) - 1)
            p = ordered[depth]
            if depth > 0 and self.rng.random() < 0.15:
                del side[p]
                out.append((is_bid, p, 0))
                out += self._fill()
            else:
                side[p] = q = max(1, side[p] + self.rng.randint(-side[p] // 2, self.lots[1]))
                out.append((is_bid, p, q))
        return out

    def take(self, is_bid_side: bool, lots: int) -> tuple[int, int, list[Change]]:
        """A market order eating into the best level of a side: (tick, lots filled, changes)."""
        side = self.bids if is_bid_side else self.asks
        p = self.best_bid() if is_bid_side else self.best_ask()
        filled = min(lots, side[p])
        left = side[p] - filled
        out: list[Change] = []
        if left:
            side[p] = left
            out.append((is_bid_side, p, left))
        else:
            del side[p]
            out.append((is_bid_side, p, 0))
            out += self._fill()
        return p, filled, out

    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        b = sorted(self.bids.items(), reverse=True)[:n]
        a = sorted(self.asks.items())[:n]
        return b, a
