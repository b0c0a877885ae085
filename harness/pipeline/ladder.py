"""A float copy of one ``L2Book``, kept in step with it at the cost of what changed.

Converting a deep book's Decimal levels to float is the pipeline's most expensive step
(~0.25 us a level; Coinbase BTC-USD holds ~19,000 bids and ~27,000 asks, ~3,300 a side
within the 5% band the dynamic cap samples), and a busy book changes between every two
200 ms ticks, but only in a few dozen levels. ``Ladder`` keeps every level of both sides
as sorted float64 arrays and, at a tick, re-reads only the prices the venue messages
since the previous tick touched (``book.level(side, price)``: the book stays the truth,
the messages only say where to look).

It falls back to converting the whole book (``rebuilds``) whenever it cannot prove the
copy exact: a snapshot, the first use, a book whose ``updates`` counter (and ``version``
change counter, where the book has one) did not advance by exactly the number of messages
noted (a change applied elsewhere: a Bitstamp diff replayed after its REST snapshot, a
venue applying an update as a replacement, a truncation), a level count that no longer
matches ``n_bids`` / ``n_asks``, or two Decimal prices that round to the same float. A
book whose ``version`` did not move is left as it is. Only public ``L2Book`` members are
used: ``bids_desc``, ``asks_asc``, ``level``, ``n_bids``, ``n_asks``, ``updates`` and,
when present, ``version``.

``select(band, min_levels, max_levels)`` cuts the same levels ``stages.convert_book``
would (the straightforward conversion, kept as the reference the tests compare with).
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

_PRICE = attrgetter("price")
_EMPTY = np.empty(0)
# more distinct prices than this since the last tick: converting the book is about as cheap
PATCH_LIMIT = 5000


class Ladder:
    """Both sides of ``book`` as float64 arrays: bids under negated prices so that both
    key arrays ascend (``searchsorted`` and insertion points work the same way)."""

    __slots__ = ("book", "_bk", "_bq", "_ak", "_aq", "_dirty", "_full", "_expect", "changed",
                 "rebuilds", "patches", "_patch_ok", "_synced_version")

    def __init__(self, book: Any):
        self.book = book
        self._bk = self._bq = self._ak = self._aq = _EMPTY
        self._dirty: set = set()  # Decimal prices touched since the last sync (either side)
        self._full = True  # the next sync converts the whole book
        self._expect: tuple = (None, None)  # (book.updates, book.version) the noted messages lead to
        self._synced_version = None
        self._patch_ok = True  # False once two prices shared a float: always rebuild
        self.changed = True  # something was noted since the last sync
        self.rebuilds = 0
        self.patches = 0

    def note(self, msg: Any) -> None:
        """``msg``: a ``BookMessage`` the venue session has just applied to ``book``."""
        self.changed = True
        if self._full:
            return
        if msg.snapshot:
            self._full = True
            return
        u, v = self._expect
        self._expect = (None if u is None else u + 1, None if v is None else v + 1)
        try:
            self._dirty.update(map(_PRICE, msg.levels))
        except (AttributeError, TypeError):  # not the Level objects this relies on
            self._full = True
            return
        if len(self._dirty) > PATCH_LIMIT:
            self._full = True

    def sync(self) -> None:
        """Bring the arrays up to date with the book."""
        if not self.changed:
            return
        b = self.book
        now = (getattr(b, "updates", None), getattr(b, "version", None))
        if not self._full and now[1] is not None and now[1] == self._synced_version:
            pass  # the noted messages did not change the book (e.g. buffered diffs)
        elif self._full or not self._patch_ok or now[0] is None or now != self._expect or not self._patch():
            self._rebuild()
        self._expect = now
        self._synced_version = now[1]
        self._dirty.clear()
        self._full = False
        self.changed = False

    def select(self, band: float | None, min_levels: int,
               max_levels: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid prices descending, bid sizes, ask prices ascending, ask sizes), new arrays:
        the levels within ``band`` of each side's best price, at least ``min_levels`` and
        at most ``max_levels`` a side (``band`` None: all, up to ``max_levels``)."""
        bk, ak = self._bk, self._ak
        nb, na = len(bk), len(ak)
        if band is not None:
            if nb:
                floor = -float(bk[0]) * (1.0 - band)
                nb = max(int(bk.searchsorted(-floor, "right")), min(min_levels, nb))
            if na:
                ceil = float(ak[0]) * (1.0 + band)
                na = max(int(ak.searchsorted(ceil, "right")), min(min_levels, na))
        if max_levels is not None:
            nb, na = min(nb, max_levels), min(na, max_levels)
        return -bk[:nb], self._bq[:nb].copy(), ak[:na].copy(), self._aq[:na].copy()

    # ------------------------------------------------------------------ internals

    def _rebuild(self) -> None:
        b = self.book
        bids = np.fromiter(map(float, chain.from_iterable(b.bids_desc())), float)
        asks = np.fromiter(map(float, chain.from_iterable(b.asks_asc())), float)
        self._bk, self._bq = -bids[0::2], bids[1::2].copy()
        self._ak, self._aq = asks[0::2].copy(), asks[1::2].copy()
        self._patch_ok = not (_has_ties(self._bk) or _has_ties(self._ak))
        self.rebuilds += 1

    def _patch(self) -> bool:
        """Apply the noted prices; False when the result cannot be trusted."""
        b = self.book
        dirty = self._dirty
        if dirty:
            prices = list(dirty)
            fl = np.fromiter(map(float, prices), float, len(prices))
            if _has_ties(np.sort(fl)):
                return False
            level = b.level
            for is_bid in (True, False):
                qs = [level(is_bid, p) for p in prices]
                keys = -fl if is_bid else fl
                here = np.fromiter((q is not None for q in qs), bool, len(qs))
                qty = np.fromiter((0.0 if q is None else float(q) for q in qs), float, len(qs))
                if is_bid:
                    self._bk, self._bq = _apply(self._bk, self._bq, keys, qty, here)
                else:
                    self._ak, self._aq = _apply(self._ak, self._aq, keys, qty, here)
            self.patches += 1
        return len(self._bk) == b.n_bids and len(self._ak) == b.n_asks


def _has_ties(sorted_keys: np.ndarray) -> bool:
    return len(sorted_keys) > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any())


def _apply(keys: np.ndarray, qty: np.ndarray, k: np.ndarray, q: np.ndarray,
           here: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Set the levels at keys ``k`` (unique) to sizes ``q`` where ``here``, delete them
    elsewhere; ``keys`` ascending. Updates in place, deletes and inserts in one pass each."""
    o = np.argsort(k)  # ascending, so that two inserts at one point go in in order
    k, q, here = k[o], q[o], here[o]
    pos = keys.searchsorted(k)
    found = pos < len(keys)
    found[found] = keys[pos[found]] == k[found]
    upd = found & here
    qty[pos[upd]] = q[upd]
    gone = found & ~here
    if gone.any():
        keys, qty = np.delete(keys, pos[gone]), np.delete(qty, pos[gone])
    new = ~found & here
    if new.any():
        kn = k[new]
        at = keys.searchsorted(kn)
        keys, qty = np.insert(keys, at, kn), np.insert(qty, at, q[new])
    return keys, qty
