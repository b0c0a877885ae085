"""A price-level (L2) order book for the spot venues. Pure data structure, no I/O.

Each side is a ``SortedList`` of Decimal prices plus a dict price -> entry, where an entry
is a small list ``[qty: Decimal, price_text: str, qty_text: str, cache]``: the wire text
is kept per level (Kraken's checksum is computed from it) and ``cache`` is a free slot a
venue may fill with something derived from the texts (Kraken stores the checksum
fragment there, so only changed levels are re-stripped).

Quantities are absolute: setting a level to 0 deletes it. Prices are Decimal keys built
once per level by the decoder; the book itself never parses text.

Both sides are stored ascending; ``bids_desc()`` walks the bid side from the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import islice

from sortedcontainers import SortedList

from harness.venues.base import BookMessage, SeqFinding, VenueSession

__all__ = ["L2Book", "BookSession"]

_TWO = Decimal(2)


class L2Book:
    """L2 book for one instrument.

    ``apply_snapshot(levels)`` replaces the book, ``apply_levels(levels)`` applies changes
    (``base.Level`` objects: side "bid"/"ask", Decimal price/qty, wire texts). ``set_level``
    is the allocation-light primitive both use. ``depth_limit`` (if set) is enforced by
    ``truncate()`` (call it after a message; Kraken needs it, see kraken.py).

    ``version`` is a change counter: every mutating call (``set_level``, ``apply_levels``,
    ``apply_snapshot``, ``clear``, a ``truncate`` that dropped levels) adds at least 1, so
    an unchanged ``version`` means unchanged content. A consumer that derives something
    from the book (a float copy, a checksum) can keep the version it derived it at and
    skip the work while it is equal. It only grows; compare with ``!=``.
    """

    __slots__ = (
        "instrument",
        "depth_limit",
        "_bp",
        "_bd",
        "_ap",
        "_ad",
        "last_update_ns",
        "updates",
        "has_snapshot",
        "version",
    )

    def __init__(self, instrument: str = "", depth_limit: int | None = None):
        self.instrument = instrument
        self.depth_limit = depth_limit
        self._bp: SortedList = SortedList()
        self._bd: dict[Decimal, list] = {}
        self._ap: SortedList = SortedList()
        self._ad: dict[Decimal, list] = {}
        self.last_update_ns: int | None = None
        self.updates = 0  # messages applied since the last snapshot
        self.has_snapshot = False
        self.version = 0

    # ------------------------------------------------------------------ mutation

    def clear(self) -> None:
        self._bp = SortedList()
        self._bd = {}
        self._ap = SortedList()
        self._ad = {}
        self.updates = 0
        self.has_snapshot = False
        self.version += 1

    def set_level(self, is_bid: bool, price: Decimal, qty: Decimal, price_text: str = "", qty_text: str = "") -> None:
        """Set one level to an absolute quantity; ``qty == 0`` deletes it."""
        self.version += 1
        if is_bid:
            d, sl = self._bd, self._bp
        else:
            d, sl = self._ad, self._ap
        if qty:
            if price not in d:
                sl.add(price)
            d[price] = [qty, price_text, qty_text, None]
        elif price in d:
            del d[price]
            sl.remove(price)

    def apply_levels(self, levels: Iterable, ts_ns: int | None = None) -> None:
        """Apply ``base.Level``-like objects in order (later entries win)."""
        bd, bp, ad, ap = self._bd, self._bp, self._ad, self._ap
        for lv in levels:
            p = lv.price
            if lv.side == "bid":
                d, sl = bd, bp
            else:
                d, sl = ad, ap
            q = lv.qty
            if q:
                if p not in d:
                    sl.add(p)
                d[p] = [q, lv.price_text, lv.qty_text, None]
            elif p in d:
                del d[p]
                sl.remove(p)
        self.updates += 1
        self.version += 1
        if ts_ns is not None:
            self.last_update_ns = ts_ns

    def apply_snapshot(self, levels: Iterable, ts_ns: int | None = None) -> None:
        """Replace the whole book with ``levels`` (zero quantities are ignored)."""
        bd: dict[Decimal, list] = {}
        ad: dict[Decimal, list] = {}
        for lv in levels:
            q = lv.qty
            if q:
                (bd if lv.side == "bid" else ad)[lv.price] = [q, lv.price_text, lv.qty_text, None]
            else:
                (bd if lv.side == "bid" else ad).pop(lv.price, None)
        self._bd, self._ad = bd, ad
        self._bp = SortedList(bd)
        self._ap = SortedList(ad)
        self.updates = 0
        self.has_snapshot = True
        self.version += 1
        if ts_ns is not None:
            self.last_update_ns = ts_ns

    def truncate(self, depth: int | None = None) -> int:
        """Drop levels beyond ``depth`` (default ``depth_limit``) on each side: the worst
        bids (lowest) and the worst asks (highest). Returns how many were dropped."""
        n = self.depth_limit if depth is None else depth
        if n is None:
            return 0
        dropped = 0
        bp, bd = self._bp, self._bd
        extra = len(bp) - n
        if extra > 0:
            for p in bp[:extra]:
                del bd[p]
            del bp[:extra]
            dropped += extra
        ap, ad = self._ap, self._ad
        extra = len(ap) - n
        if extra > 0:
            for p in ap[n:]:
                del ad[p]
            del ap[n:]
            dropped += extra
        if dropped:
            self.version += 1
        return dropped

    # ------------------------------------------------------------------ queries

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        bp = self._bp
        if not bp:
            return None
        p = bp[-1]
        return p, self._bd[p][0]

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        ap = self._ap
        if not ap:
            return None
        p = ap[0]
        return p, self._ad[p][0]

    def mid(self) -> Decimal | None:
        if not self._bp or not self._ap:
            return None
        return (self._bp[-1] + self._ap[0]) / _TWO

    def spread(self) -> Decimal | None:
        if not self._bp or not self._ap:
            return None
        return self._ap[0] - self._bp[-1]

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (locked counts: one venue's
        own book can never legitimately hold a bid and an ask at the same price)."""
        # SortedList keeps its items in ``_lists`` (sublists, sorted); reading the ends
        # directly is ~10x cheaper than ``sl[-1]``, and this runs after every frame.
        bl, al = self._bp._lists, self._ap._lists
        return bool(bl) and bool(al) and bl[-1][-1] >= al[0][0]

    def best_prices(self) -> tuple[Decimal | None, Decimal | None]:
        """(best bid price, best ask price), either None when that side is empty."""
        bl, al = self._bp._lists, self._ap._lists
        return (bl[-1][-1] if bl else None), (al[0][0] if al else None)

    def depth(self, n: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Top ``n`` levels: (bids best first, asks best first) as (price, qty)."""
        return list(islice(self.bids_desc(), n)), list(islice(self.asks_asc(), n))

    def bids_desc(self) -> Iterator[tuple[Decimal, Decimal]]:
        bd = self._bd
        for p in reversed(self._bp):
            yield p, bd[p][0]

    def asks_asc(self) -> Iterator[tuple[Decimal, Decimal]]:
        ad = self._ad
        for p in self._ap:
            yield p, ad[p][0]

    def top_entries(self, is_bid: bool, n: int) -> list[list]:
        """Entries ``[qty, price_text, qty_text, cache]`` of the best ``n`` levels of one
        side, best first (for checksums)."""
        if is_bid:
            bp, bd = self._bp, self._bd
            k = len(bp)
            prices = bp[k - n :] if k > n else list(bp)
            prices.reverse()
            return [bd[p] for p in prices]
        ad = self._ad
        return [ad[p] for p in self._ap[:n]]

    def level(self, is_bid: bool, price: Decimal) -> Decimal | None:
        e = (self._bd if is_bid else self._ad).get(price)
        return None if e is None else e[0]

    @property
    def n_bids(self) -> int:
        return len(self._bp)

    @property
    def n_asks(self) -> int:
        return len(self._ap)

    def __len__(self) -> int:
        return len(self._bp) + len(self._ap)

    def __repr__(self) -> str:
        return f"L2Book({self.instrument!r}, bids={len(self._bp)}, asks={len(self._ap)}, bb={self.best_bid()}, ba={self.best_ask()})"


class BookSession(VenueSession):
    """Shared per-connection state for the spot venues: decode, books per instrument,
    'crossed' findings. Venue sessions subclass it and add their sequencing rule in
    ``_on_message`` (called for every decoded message, in order).

    A 'crossed' finding is emitted when an instrument's book becomes crossed (best bid >=
    best ask) after a whole frame was applied, once per episode: not again until it has
    been uncrossed.
    """

    depth_limit: int | None = None

    def __init__(self, venue):
        self.venue = venue
        self.books: dict[str, L2Book] = {}
        self._crossed: set[str] = set()
        self.frames = 0

    def book(self, instrument: str) -> L2Book:
        b = self.books.get(instrument)
        if b is None:
            b = self.books[instrument] = L2Book(instrument, self.depth_limit)
        return b

    def feed(self, payload, frame_id: int | None = None):
        msgs = self.venue.decode(payload)
        self.frames += 1
        findings: list = []
        touched: list[L2Book] = []
        for m in msgs:
            self._on_message(m, frame_id, findings, touched)
        for b in touched:
            self._check_crossed(b, frame_id, findings)
        return msgs, findings

    def _on_message(self, m, frame_id, findings, touched) -> None:
        if m.__class__ is BookMessage:
            self._apply(m, touched)

    def _apply(self, m, touched) -> L2Book:
        b = self.book(m.instrument)
        if m.snapshot:
            b.apply_snapshot(m.levels, m.venue_ts_ns)
        else:
            b.apply_levels(m.levels, m.venue_ts_ns)
        if not touched or touched[-1] is not b:
            touched.append(b)
        return b

    def _check_crossed(self, b: L2Book, frame_id, findings) -> None:
        key = b.instrument
        if b.is_crossed():
            if key not in self._crossed:
                self._crossed.add(key)
                bb, ba = b.best_bid(), b.best_ask()
                findings.append(
                    SeqFinding("crossed", key, None, None, f"best bid {bb[0]} >= best ask {ba[0]}", frame_id)
                )
        elif key in self._crossed:
            self._crossed.discard(key)

    def reset(self) -> None:
        self.books.clear()
        self._crossed.clear()
