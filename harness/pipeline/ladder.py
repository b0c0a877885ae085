"""A float copy of one ``L2Book``, kept in step with it at the cost of what changed.

Copying a deep book into float arrays costs ~0.13 us a level even from ``L2Book.float_side``
(~0.3 us converting Decimals; Coinbase BTC-USD holds ~19,000 bids and ~27,000 asks, ~3,300
a side within the 5% band the dynamic cap samples), and a busy book changes between every
two 200 ms ticks, but only in a few dozen levels. ``Ladder`` keeps the levels of both sides as
sorted float64 arrays and, at a tick, re-reads only the prices the venue messages since
the previous tick touched (``book.level(side, price)``: the book stays the truth,
the messages only say where to look; ``book.float_levels`` where the book has
it: the same as floats, in one call). A side with a few such prices (at most
``SMALL_PATCH``, the usual tick) is patched price by price: sizes written in place,
inserts and deletes spliced in one pass (``_splice``); more go through whole-array masks.

It falls back to converting the whole book (``rebuilds``) whenever it cannot prove the
copy exact: a snapshot, the first use, a book whose ``updates`` counter (and ``version``
change counter, where the book has one) did not advance by exactly the number of messages
noted (a change applied elsewhere: a Bitstamp diff replayed after its REST snapshot, a
venue applying an update as a replacement, a truncation), a level count that no longer
matches ``n_bids`` / ``n_asks``, or two Decimal prices that round to the same float. A
book whose ``version`` did not move is left as it is. Only public ``L2Book`` members are
used: ``bids_desc``, ``asks_asc`` (or ``float_side`` where the book has it: the same
levels as floats, without converting Decimals), ``level`` (or ``float_levels``), ``n_bids``, ``n_asks``,
``updates`` and, when present, ``version``.

Deep books are held in part: a side with more than ``window`` levels is copied down to its
``window``-th best price (``window`` = the most levels a tick ever uses, 5,000, plus a
margin) and changes past that price are ignored. ``select`` then serves the band from the
copy when the copy provably holds it (the band ends inside the copied prices, or the copy
already has the ``max_levels`` best) and converts the side again, deeper, when it does not.
The level-count check applies to fully held sides only, so a side is held in part only
when the book has a ``version`` counter (which every change moves, a truncation
included); a book without one is always copied whole.

``select(band, min_levels, max_levels)`` cuts the same levels ``stages.convert_book``
would (the straightforward conversion, kept as the reference the tests compare with).
"""

from __future__ import annotations

import math
from itertools import chain, islice
from typing import Any

import numpy as np

_EMPTY = np.empty(0)
# more distinct prices than this since the last tick: converting the book is about as cheap
PATCH_LIMIT = 5000
# at most this many prices on a side: patched price by price (numpy calls cost more than the
# work for a handful of levels)
SMALL_PATCH = 64


class Ladder:
    """Both sides of ``book`` as float64 arrays: bids under negated prices so that both
    key arrays ascend (``searchsorted`` and insertion points work the same way).
    ``window``: levels a side to copy at most (None: all)."""

    __slots__ = ("book", "window", "_bk", "_bq", "_ak", "_aq", "_blim", "_alim", "_dirty", "_full",
                 "_expect", "changed", "rebuilds", "patches", "_patch_ok", "_synced_version")

    def __init__(self, book: Any, window: int | None = None):
        self.book = book
        self.window = window
        self._bk = self._bq = self._ak = self._aq = _EMPTY
        self._blim = self._alim = math.inf  # largest key held (inf: the whole side)
        self._dirty: tuple[set, set] = (set(), set())  # Decimal prices touched since the last sync: bids, asks
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
        bids, asks = self._dirty
        try:
            for lv in msg.levels:  # the side rule of L2Book.apply_levels: "bid", else ask
                (bids if lv.side == "bid" else asks).add(lv.price)
        except (AttributeError, TypeError):  # not the Level objects this relies on
            self._full = True
            return
        if len(bids) + len(asks) > PATCH_LIMIT:
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
            self._rebuild(self.window)
        self._expect = now
        self._synced_version = now[1]
        self._dirty[0].clear()
        self._dirty[1].clear()
        self._full = False
        self.changed = False

    def select(self, band: float | None, min_levels: int,
               max_levels: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid prices descending, bid sizes, ask prices ascending, ask sizes), new arrays:
        the levels within ``band`` of each side's best price, at least ``min_levels`` and
        at most ``max_levels`` a side (``band`` None: all, up to ``max_levels``)."""
        b = self.book
        nb = _cut(self._bk, self._blim, b.n_bids, band, min_levels, max_levels, -1.0)
        na = _cut(self._ak, self._alim, b.n_asks, band, min_levels, max_levels, 1.0)
        if nb is None or na is None:  # the band reaches past the copied levels: copy deeper
            self._rebuild(None if self.window is None else 4 * max(self.window, len(self._bk), len(self._ak)))
            return self.select(band, min_levels, max_levels)
        return -self._bk[:nb], self._bq[:nb].copy(), self._ak[:na].copy(), self._aq[:na].copy()

    # ------------------------------------------------------------------ internals

    def _rebuild(self, window: int | None) -> None:
        b = self.book
        if getattr(b, "version", None) is None:
            window = None  # only the level counts can reveal a silent truncation: hold it all
        fs = getattr(b, "float_side", None)
        if fs is not None:  # L2Book: floats from its keys and wire texts, no Decimal converted
            self._bk, self._bq, self._blim = _float_side(*fs(True, window), b.n_bids, window, -1.0)
            self._ak, self._aq, self._alim = _float_side(*fs(False, window), b.n_asks, window, 1.0)
        else:
            self._bk, self._bq, self._blim = _side(b.bids_desc(), b.n_bids, window, -1.0)
            self._ak, self._aq, self._alim = _side(b.asks_asc(), b.n_asks, window, 1.0)
        self._patch_ok = not (_has_ties(self._bk) or _has_ties(self._ak))
        self.rebuilds += 1

    def _patch(self) -> bool:
        """Apply the noted prices; False when the result cannot be trusted."""
        b = self.book
        read = _level_reader(b)
        for is_bid, dirty in zip((True, False), self._dirty, strict=True):
            if dirty and len(dirty) <= SMALL_PATCH:
                if not self._patch_few(is_bid, dirty, read):
                    return False
            elif dirty:
                fs, qs = read(is_bid, dirty)
                fl = np.array(fs, float)
                if _has_ties(np.sort(fl)):
                    return False
                keys = -fl if is_bid else fl
                inside = keys <= (self._blim if is_bid else self._alim)  # past the copy: not held
                if not inside.all():
                    idx = np.flatnonzero(inside)
                    keys = keys[idx]
                    qs = [qs[i] for i in idx.tolist()]
                if not qs:
                    continue
                here = np.array([q is not None for q in qs], bool)
                qty = np.array([0.0 if q is None else q for q in qs], float)
                if is_bid:
                    self._bk, self._bq = _apply(self._bk, self._bq, keys, qty, here)
                else:
                    self._ak, self._aq = _apply(self._ak, self._aq, keys, qty, here)
        self.patches += 1
        return ((self._blim != math.inf or len(self._bk) == b.n_bids)
                and (self._alim != math.inf or len(self._ak) == b.n_asks))

    def _patch_few(self, is_bid: bool, dirty: set, read) -> bool:
        """``_patch`` for one side and a few prices (the usual tick): size changes are
        written in place one by one; only inserts and deletes splice the arrays
        (``_splice``). False when two prices share a float."""
        keys, qty, lim = (self._bk, self._bq, self._blim) if is_bid else (self._ak, self._aq, self._alim)
        ks, qs = read(is_bid, dirty)
        if is_bid:
            ks = [-k for k in ks]
        if lim != math.inf and max(ks) > lim:  # past the copy: not held
            held = [(k, q) for k, q in zip(ks, qs, strict=True) if k <= lim]
            ks, qs = [k for k, _ in held], [q for _, q in held]
        if len(set(ks)) != len(ks):
            return False
        if not ks:
            return True
        pos = keys.searchsorted(ks).tolist()
        n = len(keys)
        rest = []  # inserts and deletes
        for k, q, i in zip(ks, qs, pos, strict=True):
            if i < n and keys[i] == k:
                if q is None:
                    rest.append((k, None))
                else:
                    qty[i] = q
            elif q is not None:
                rest.append((k, q))
        if rest:
            if is_bid:
                self._bk, self._bq = _splice(keys, qty, rest)
            else:
                self._ak, self._aq = _splice(keys, qty, rest)
        return True


def _level_reader(book: Any):
    """``L2Book.float_levels`` of ``book``, or the same from its ``level``."""
    fl = getattr(book, "float_levels", None)
    if fl is not None:
        return fl
    level = book.level

    def read(is_bid: bool, prices) -> tuple[list[float], list[float | None]]:
        prices = list(prices)
        qs = [level(is_bid, p) for p in prices]
        return list(map(float, prices)), [None if q is None else float(q) for q in qs]

    return read


def _splice(keys: np.ndarray, qty: np.ndarray, changes: list) -> tuple[np.ndarray, np.ndarray]:
    """New (keys, sizes) with a few levels inserted or deleted: ``changes`` are (key, qty)
    pairs, qty None for a key held in ``keys`` to delete, else a key not held to insert.
    The untouched runs are copied slice by slice into arrays of the new length (one
    searchsorted, no masks over the whole side)."""
    changes.sort(key=lambda c: c[0])
    pos = keys.searchsorted([c[0] for c in changes]).tolist()
    ins = sum(1 for c in changes if c[1] is not None)
    n = len(keys) + 2 * ins - len(changes)
    nk, nq = np.empty(n), np.empty(n)
    src = dst = 0
    for (k, q), i in zip(changes, pos, strict=True):
        m = i - src  # the untouched run before this change
        nk[dst:dst + m] = keys[src:i]
        nq[dst:dst + m] = qty[src:i]
        dst += m
        if q is None:
            src = i + 1  # skip the deleted level
        else:
            nk[dst] = k
            nq[dst] = float(q)
            dst += 1
            src = i
    nk[dst:] = keys[src:]
    nq[dst:] = qty[src:]
    return nk, nq


def _side(levels, total: int, window: int | None, sign: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(keys, sizes, largest key held) of the best ``window`` levels of one side."""
    flat = np.fromiter(map(float, chain.from_iterable(islice(levels, window))), float)
    keys, qty = flat[0::2] * sign, flat[1::2].copy()
    whole = window is None or len(keys) >= total
    return keys, qty, (math.inf if whole or not len(keys) else float(keys[-1]))


def _float_side(px: list, qs: list, total: int, window: int | None,
                sign: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``_side`` from the lists of ``L2Book.float_side``."""
    keys = np.array(px, float)
    if sign < 0:
        keys = -keys
    whole = window is None or len(keys) >= total
    return keys, np.array(qs, float), (math.inf if whole or not len(keys) else float(keys[-1]))


def _cut(keys: np.ndarray, lim: float, total: int, band: float | None, min_levels: int,
         max_levels: int | None, sign: float) -> int | None:
    """How many of the best levels ``select`` keeps on one side; None when the copy does
    not hold them all. ``sign`` -1 for bids (keys are negated prices)."""
    held = len(keys)
    if band is None or not held:
        c, exact = held, lim == math.inf
    else:
        edge = float(keys[0]) * (1.0 + sign * band)  # key of the band's edge: -(best * (1 - band)) for bids
        c, exact = int(keys.searchsorted(edge, "right")), lim == math.inf or edge <= lim
    n = max(c, min(min_levels, total))
    if max_levels is not None:
        n = min(n, max_levels)
    if n > held or (not exact and n == held and (max_levels is None or held < max_levels)):
        return None
    return n


def _has_ties(sorted_keys: np.ndarray) -> bool:
    return len(sorted_keys) > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any())


def _apply(keys: np.ndarray, qty: np.ndarray, k: np.ndarray, q: np.ndarray,
           here: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Set the levels at keys ``k`` (unique) to sizes ``q`` where ``here``, delete them
    elsewhere; ``keys`` ascending. Updates in place; deletes and inserts with masks (no
    np.delete / np.insert: their Python-level overhead was most of a patch)."""
    o = np.argsort(k)  # ascending, so that inserts land in order
    k, q, here = k[o], q[o], here[o]
    pos = keys.searchsorted(k)
    found = pos < len(keys)
    found[found] = keys[pos[found]] == k[found]
    upd = found & here
    qty[pos[upd]] = q[upd]
    gone = found & ~here
    if np.count_nonzero(gone):
        keep = np.ones(len(keys), bool)
        keep[pos[gone]] = False
        keys, qty = keys[keep], qty[keep]
    new = ~found & here
    m = np.count_nonzero(new)
    if m:
        kn = k[new]
        dest = keys.searchsorted(kn) + np.arange(m)  # where each new level lands in the result
        old = np.ones(len(keys) + m, bool)
        old[dest] = False
        nk, nq = np.empty(len(old)), np.empty(len(old))
        nk[old], nq[old] = keys, qty
        nk[dest], nq[dest] = kn, q[new]
        keys, qty = nk, nq
    return keys, qty
