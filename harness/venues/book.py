"""A price-level (L2) order book for the spot venues. Pure data structure, no I/O.

Each side is a ``SortedList`` of keys plus a dict key -> entry, where the entry is the
``base.Level`` that set the level (side, Decimal price and qty, and the wire text: Kraken's
checksum is computed from it), or the ``base.TextLevel`` of a deep snapshot (the same,
Decimals made on first read). Storing the decoder's own Level costs nothing per update.

Keys are floats of the prices (``float(price_text)``): a fresh Decimal costs ~0.3 us to
hash and compares at half the speed of a float, and a 46,000-level snapshot would spend
~10 ms hashing its prices alone. A float is exact enough as a key as long as no two prices
of a side share one float (always so up to 15 significant digits); every key hit checks
the entry's Decimal price, and the first two prices that do share a float switch the book
to Decimal keys until its next snapshot (``_go_exact``). ``L2Book(float_keys=False)`` keys
by Decimal from the start (Kraken: small books whose prices come from a text -> Decimal
cache, so each price is hashed once anyway). Everything the book hands out (prices and
quantities) is the entries' Decimals; a Level's ``price_text``, when not empty, must be
its price's text (the decoders build both from the wire text).

Quantities are absolute: setting a level to 0 deletes it. Both sides are stored
ascending; ``bids_desc()`` walks the bid side from the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import compress, islice
from operator import attrgetter

from sortedcontainers import SortedList

from harness.venues.base import BookMessage, Level, SeqFinding, VenueSession

__all__ = ["L2Book", "BookSession"]

_TWO = Decimal(2)
_PRICE = attrgetter("price")
_PRICE_TEXT = attrgetter("price_text")
_QTY = attrgetter("qty")
_QTY_TEXT = attrgetter("qty_text")
_SIDE = attrgetter("side")
_IS_BID = "bid".__eq__
_NOT_BID = "bid".__ne__


def _qty_float(lv) -> float:
    """float of a level's quantity: of its text (cheap) unless float() refuses it (Decimal
    takes "1_" and "1__0", float() does not), else of its Decimal."""
    try:
        return float(lv.qty_text)
    except ValueError:
        return float(lv.qty)


def float_key(lv) -> float | None:
    """The float key of a Level's price; None when there is none (the book then keys by
    Decimal)."""
    try:
        k = float(lv.price_text or lv.price)
    except (ValueError, TypeError, ArithmeticError):
        return None
    return k if k == k else None  # NaN keys cannot be found again


class L2Book:
    """L2 book for one instrument.

    ``apply_snapshot(levels)`` replaces the book, ``apply_levels(levels)`` applies changes
    (``base.Level`` objects: side "bid"/"ask", Decimal price/qty, wire texts; the book
    keeps the objects themselves, so they must not change afterwards). ``set_level`` sets
    one level. ``depth_limit`` (if set) is enforced by ``truncate()`` (call it after a
    message; Kraken needs it, see kraken.py).

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
        "_exact",
        "_float_keys",
        "cache",
        "last_update_ns",
        "updates",
        "has_snapshot",
        "version",
    )

    def __init__(self, instrument: str = "", depth_limit: int | None = None, *, float_keys: bool = True):
        self.instrument = instrument
        self.depth_limit = depth_limit
        self._float_keys = float_keys  # False: Decimal keys always (prices from a cache hash once)
        self._bp: SortedList = SortedList()
        self._bd: dict = {}  # key -> Level
        self._ap: SortedList = SortedList()
        self._ad: dict = {}
        self._exact = not float_keys  # True: keys are the Decimal prices (see the module docstring)
        self.cache = None  # a free slot for a venue's derived data (Kraken: checksum fragments)
        self.last_update_ns: int | None = None
        self.updates = 0  # messages applied since the last snapshot
        self.has_snapshot = False
        self.version = 0

    # ------------------------------------------------------------------ keys

    def key_of(self, price: Decimal):
        """The key ``price`` is stored under (None: it cannot be in the book)."""
        if self._exact:
            return price
        try:
            k = float(price)
        except (ValueError, TypeError, ArithmeticError):
            return None
        return k if k == k else None

    def _go_exact(self) -> None:
        """Two prices of a side share a float: key both sides by Decimal from now on.
        ``version`` moves (whatever was keyed by the old keys is stale)."""
        if self._exact:
            return
        self._exact = True
        self._bd = {lv.price: lv for lv in self._bd.values()}
        self._ad = {lv.price: lv for lv in self._ad.values()}
        self._bp = SortedList(self._bd)
        self._ap = SortedList(self._ad)
        self.version += 1

    def _put(self, lv) -> None:
        """Apply one Level (qty 0 deletes), in either key mode."""
        if lv.side == "bid":
            d, sl = self._bd, self._bp
        else:
            d, sl = self._ad, self._ap
        p = lv.price
        if self._exact:
            k = p
        else:
            k = float_key(lv)
            if k is None:
                self._go_exact()
                return self._put(lv)
        e = d.get(k)
        if e is not None and not self._exact and e.price != p:  # another price, same float
            if lv.qty:
                self._go_exact()
                return self._put(lv)
            return  # deleting a price the book does not hold
        if lv.qty:
            if e is None:
                sl.add(k)
            d[k] = lv
        elif e is not None:
            del d[k]
            sl.remove(k)
        return None

    def apply_levels_raw(self, levels, start: int = 0) -> None:
        """Apply ``levels[start:]`` without touching the counters (the venues' inline
        paths hand the rest of a message here when a level needs the careful path)."""
        for i in range(start, len(levels)):
            self._put(levels[i])

    # ------------------------------------------------------------------ mutation

    def clear(self) -> None:
        self._bp = SortedList()
        self._bd = {}
        self._ap = SortedList()
        self._ad = {}
        self._exact = not self._float_keys
        self.updates = 0
        self.has_snapshot = False
        self.version += 1

    def set_level(self, is_bid: bool, price: Decimal, qty: Decimal, price_text: str = "", qty_text: str = "") -> None:
        """Set one level to an absolute quantity; ``qty == 0`` deletes it."""
        self.version += 1
        self._put(Level("bid" if is_bid else "ask", price, qty, price_text, qty_text))

    def apply_levels(self, levels: Iterable, ts_ns: int | None = None) -> None:
        """Apply ``base.Level`` objects in order (later entries win)."""
        levels = levels if type(levels) is list else list(levels)
        if self._exact:
            self.apply_levels_raw(levels)
        else:
            bd, bp, ad, ap = self._bd, self._bp, self._ad, self._ap
            for i, lv in enumerate(levels):
                t = lv.price_text
                if not t:
                    self.apply_levels_raw(levels, i)
                    break
                try:
                    k = float(t)
                except ValueError:
                    self.apply_levels_raw(levels, i)
                    break
                if lv.side == "bid":
                    d, sl = bd, bp
                else:
                    d, sl = ad, ap
                e = d.get(k)
                if e is not None and e.price is not lv.price and e.price != lv.price:
                    self.apply_levels_raw(levels, i)  # another price with this float
                    break
                if lv.qty:
                    if e is None:
                        sl.add(k)
                    d[k] = lv
                elif e is not None:
                    del d[k]
                    sl.remove(k)
        self.updates += 1
        self.version += 1
        if ts_ns is not None:
            self.last_update_ns = ts_ns

    def apply_snapshot(
        self, levels: Iterable, ts_ns: int | None = None, *, n_bids: int | None = None, keys: list | None = None
    ) -> None:
        """Replace the whole book with ``levels`` (``base.Level`` or ``TextLevel`` objects,
        kept as the entries; zero quantities are ignored, a later level at a price wins).

        Deep snapshots (Coinbase: 46,000 levels) are split and indexed by C-level
        iteration; a snapshot holding a zero quantity, a price repeated, or a price
        without text takes the level-by-level path. A decoder that already knows it may
        say so: ``n_bids`` = the first ``n_bids`` levels are the bids, the rest asks, and
        no quantity is zero; ``keys`` = ``float()`` of the levels' price texts, in order (read
        only with ``n_bids``: a decoder may pass both as it has them)."""
        levels = levels if type(levels) is list else list(levels)
        self._exact = exact = not self._float_keys
        split = None  # (bids, asks, their price keys or None)
        if n_bids is not None:
            split = (levels[:n_bids], levels[n_bids:], keys)
        elif all(map(_QTY, levels)):
            sides = list(map(_SIDE, levels))
            n_bids = sides.count("bid")
            if sides[:n_bids].count("bid") == n_bids:  # the bids first, as venues send them
                split = (levels[:n_bids], levels[n_bids:], None)
            else:
                split = (list(compress(levels, map(_IS_BID, sides))), list(compress(levels, map(_NOT_BID, sides))), None)
        done = False
        if split is not None:
            bids, asks, keys = split
            if exact:
                bd = dict(zip(map(_PRICE, bids), bids, strict=True))
                ad = dict(zip(map(_PRICE, asks), asks, strict=True))
                done = True
            else:
                try:
                    if keys is None:
                        bd = dict(zip(map(float, map(_PRICE_TEXT, bids)), bids, strict=True))
                        ad = dict(zip(map(float, map(_PRICE_TEXT, asks)), asks, strict=True))
                    else:
                        bd = dict(zip(keys[:n_bids], bids, strict=True))
                        ad = dict(zip(keys[n_bids:], asks, strict=True))
                except ValueError:  # a price without text (or text float() does not take)
                    pass
                else:
                    # a shorter dict: a repeated price or two prices sharing a float; a NaN
                    # key (the sum is NaN) cannot be sorted
                    total = sum(bd) + sum(ad)
                    done = len(bd) == len(bids) and len(ad) == len(asks) and total == total
        if done:
            self._bd, self._ad = bd, ad
            self._bp = SortedList(bd)  # a venue's sorted order is one run: sorting is linear
            self._ap = SortedList(ad)
        else:
            self._bd, self._ad = {}, {}
            self._bp, self._ap = SortedList(), SortedList()
            for lv in levels:
                self._put(lv)
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
        bl = self._bp._lists
        if not bl:
            return None
        e = self._bd[bl[-1][-1]]
        return e.price, e.qty

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        al = self._ap._lists
        if not al:
            return None
        e = self._ad[al[0][0]]
        return e.price, e.qty

    def mid(self) -> Decimal | None:
        bb, ba = self.best_prices()
        if bb is None or ba is None:
            return None
        return (bb + ba) / _TWO

    def spread(self) -> Decimal | None:
        bb, ba = self.best_prices()
        if bb is None or ba is None:
            return None
        return ba - bb

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (locked counts: one venue's
        own book can never legitimately hold a bid and an ask at the same price)."""
        # SortedList keeps its items in ``_lists`` (sublists, sorted); reading the ends
        # directly is ~10x cheaper than ``sl[-1]``, and this runs after every frame.
        bl, al = self._bp._lists, self._ap._lists
        if not bl or not al:
            return False
        kb, ka = bl[-1][-1], al[0][0]
        if kb != ka:
            return kb > ka
        return self._bd[kb].price >= self._ad[ka].price  # one float, maybe two prices

    def best_prices(self) -> tuple[Decimal | None, Decimal | None]:
        """(best bid price, best ask price), either None when that side is empty."""
        bl, al = self._bp._lists, self._ap._lists
        return (self._bd[bl[-1][-1]].price if bl else None), (self._ad[al[0][0]].price if al else None)

    def depth(self, n: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Top ``n`` levels: (bids best first, asks best first) as (price, qty)."""
        return list(islice(self.bids_desc(), n)), list(islice(self.asks_asc(), n))

    def bids_desc(self) -> Iterator[tuple[Decimal, Decimal]]:
        bd = self._bd
        for k in reversed(self._bp):
            e = bd[k]
            yield e.price, e.qty

    def asks_asc(self) -> Iterator[tuple[Decimal, Decimal]]:
        ad = self._ad
        for k in self._ap:
            e = ad[k]
            yield e.price, e.qty

    def top_levels(self, is_bid: bool, n: int | None = None) -> list[Level]:
        """The entries (``base.Level`` / ``TextLevel``: Decimal price and qty, wire texts) of the best
        ``n`` levels of one side (all when ``n`` is None), best first."""
        if is_bid:
            bp, bd = self._bp, self._bd
            k = len(bp)
            keys = bp[k - n :] if n is not None and k > n else list(bp)
            keys.reverse()
            return [bd[k] for k in keys]
        ad = self._ad
        return [ad[k] for k in (self._ap[:n] if n is not None else self._ap)]

    def float_side(self, is_bid: bool, n: int | None = None) -> tuple[list[float], list[float]]:
        """(prices, quantities) as floats of the best ``n`` levels of one side (all when
        ``n`` is None), best first: for consumers that compute in binary floating point
        (the pipeline's ladders). Each float is the correctly rounded value of the level's
        Decimal, read from the float key and the quantity's wire text where there is one
        (several times cheaper than converting the Decimals)."""
        if is_bid:
            sl, d = self._bp, self._bd
            k = len(sl)
            keys = sl[k - n:] if n is not None and k > n else list(sl)
            keys.reverse()
        else:
            sl, d = self._ap, self._ad
            keys = sl[:n] if n is not None else list(sl)
        entries = list(map(d.__getitem__, keys))
        try:
            qs = list(map(float, map(_QTY_TEXT, entries)))
        except ValueError:  # a level without quantity text, or one float() refuses ("1_")
            qs = list(map(_qty_float, entries))
        return (list(map(float, keys)) if self._exact else keys), qs

    def top_entries(self, is_bid: bool, n: int) -> list[list]:
        """``[qty, price_text, qty_text, None]`` of the best ``n`` levels of one side,
        best first (the older list form of ``top_levels``)."""
        return [[lv.qty, lv.price_text, lv.qty_text, None] for lv in self.top_levels(is_bid, n)]

    def level(self, is_bid: bool, price: Decimal) -> Decimal | None:
        """The quantity at ``price`` (None: no such level)."""
        e = (self._bd if is_bid else self._ad).get(self.key_of(price))
        if e is None or (not self._exact and e.price != price):
            return None
        return e.qty

    def float_levels(self, is_bid: bool, prices: Iterable[Decimal]) -> tuple[list[float], list[float | None]]:
        """``level`` for consumers in binary floating point (the pipeline's ladders), many
        prices in one call: (the prices as floats, the quantity at each as a float, None
        where there is no level), in the order of ``prices`` (Decimals). The quantities
        are read from their wire texts, as ``float_side`` reads them."""
        d = self._bd if is_bid else self._ad
        prices = prices if type(prices) is list else list(prices)
        fs = list(map(float, prices))
        qs: list[float | None] = []
        if self._exact:
            for e in map(d.get, prices):
                qs.append(None if e is None else _qty_float(e))
        else:
            for p, e in zip(prices, map(d.get, fs), strict=True):
                qs.append(None if e is None or (e.price is not p and e.price != p) else _qty_float(e))
        return fs, qs

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

    ``keep_books(instruments)`` (see ``base.VenueSession``): ``kept`` is the set of
    instruments whose books are built (None: all). Here a book message for another
    instrument is decoded as usual and its levels then dropped (``levels == []``);
    venue sessions skip decoding them where the instrument is cheap to find.
    """

    depth_limit: int | None = None
    kept: frozenset[str] | None = None

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

    def keep_books(self, instruments: Iterable[str] | None) -> None:
        """Build books only for ``instruments`` (None: every instrument); books already
        built for others are dropped."""
        if isinstance(instruments, str):
            raise TypeError("keep_books takes a collection of instrument names, not one string")
        self.kept = None if instruments is None else frozenset(instruments)
        if self.kept is not None:
            for k in [k for k in self.books if k not in self.kept]:
                del self.books[k]
                self._crossed.discard(k)

    def _kept(self, m) -> bool:
        """True when ``m``'s instrument has a book here; otherwise drops its levels."""
        kept = self.kept
        if kept is None or m.instrument in kept:
            return True
        if m.levels:
            m.levels = []
        return False

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

    def _apply(self, m, touched) -> L2Book | None:
        """Apply a BookMessage to its book (None, and nothing applied, when the
        instrument's book is not kept)."""
        if self.kept is not None and not self._kept(m):
            return None
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
