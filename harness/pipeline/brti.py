"""BRTI proxy: the CF Benchmarks Real Time Index methodology applied to recorded books.

Pure computation: no I/O, no clocks. The calculation time ``now_ns`` is always passed in.

Numbers
    Prices and sizes arrive as ``Decimal`` (exact, needed for checksums) or float; the
    index math is done in binary floating point on numpy float64 arrays. The index is an
    estimate compared with CF's published value to the cent, not a checksum. The
    per-level work runs in numpy (merge, cap statistics, cumulative sizes, the weighted
    sum), so one computation over four 1,000-level books takes ~0.2 ms; the list version
    it replaced (1.7 ms) is kept in ``tests/pipeline/brti_reference.py`` and the tests
    check both give the same value up to float rounding (sums taken in another order).

Steps (``BrtiCalculator.compute``)
    1. Staleness: a venue whose ``last_update_ns`` is more than ``staleness_ns`` before
       ``now_ns`` is dropped ("stale"). A venue with an empty side is dropped ("empty"); one
       whose own best bid > best ask is dropped ("crossed_book", configurable).
    2. Potentially erroneous data: for each remaining venue, the deviation
       ``|mid / median(mids of the others) - 1|`` (mid = top-of-book mid). "The others" are
       the other remaining venues that were admitted at the previous calculation (all other
       remaining venues if none of them was). An admitted venue is excluded when the
       deviation is > ``erroneous_exclude`` (5%); an excluded venue is re-admitted only when
       it is < ``erroneous_readmit`` (2.5%). All decisions of one calculation use the state
       from before it (no order dependence). The excluded set lives in the calculator and
       survives a venue going stale (it must come back within 2.5% to be used again).
       With only two venues diverging by more than 5% both are excluded: there is no
       majority to say which is right.
    3. Consolidation: the admitted books are merged into one bid list (price descending)
       and one ask list (ascending); every level's size is capped at the order size cap.
       Dynamic cap (default; CF since Dec 2019, detailed procedure from the CF Spot Rate
       notice, *unconfirmed* for the RTI): sample = sizes of the consolidated levels within
       ``cap_band`` (5%) of the best bid / best ask, extended to at least
       ``cap_min_levels_per_side`` (50) levels a side; n sizes, k = floor(cap_trim * n)
       (1%); mean = mean of the sample without its k smallest and k largest; sd =
       population standard deviation about that mean of the winsorised sample (the k
       smallest / largest replaced by the (k+1)-th smallest / largest); cap = mean +
       ``cap_num_sd`` (5) * sd. (No sort: the tails come from one ``np.partition``.) The cap applies to price
       *levels*: L2 feeds aggregate the orders at a price, CF caps orders.
       A fixed cap (``size_cap``) replaces the dynamic one. ``cap_min_interval_ns`` > 0
       reuses a dynamic cap computed less than that long ago (harness time; a speed option,
       off by default: the sample statistics are about half of the cost).
    4. Price-volume curves on the grid v = s, 2s, ... (s = ``grid_spacing``):
       askPV(v) = price of the ask level at which the cumulative (capped) size first reaches
       v, i.e. the marginal price paid to buy v; bidPV(v) likewise for selling.
       midPV = (askPV + bidPV) / 2; midSV = askPV / midPV - 1 = (ask - bid) / (ask + bid).
    5. Utilised depth v_T = max{grid v : midSV(v) <= max_mid_spread (0.5%)}. midSV is
       non-decreasing in v (askPV rises, bidPV falls), so v_T is found by binary search.
    6. Index = sum over grid v_k in (0, v_T] of midPV(v_k) * w_k with
       w_k proportional to lambda * exp(-lambda v_k), lambda = 1 / (0.3 v_T), normalised to
       sum to one over the grid: w_k = r^(k-1) (1 - r) / (1 - r^K), r = exp(-lambda s),
       K = v_T / s. (The continuous normaliser 1 / (1 - e^(-lambda v_T)) of the published
       formula is the limit of this as s -> 0.) midPV is constant between level
       boundaries, so the sum is evaluated per level in closed form (geometric series):
       cost is O(levels within v_T), independent of s. Only the consolidated levels
       inside the spread limit are turned into curves (``last_consolidated`` holds those):
       a level past it cannot be within v_T (step 3's bound), while the cap's sample
       reaches out to the 5% band.
       Index = (sum_i askP_i (E_{i-1} - E_i) + sum_i bidP_i (...)) / (2 (1 - r^K)) with
       E_i = r^(number of grid points covered by levels 0..i).

Invalid results (``valid=False``, ``value=None``, ``reason`` set): fewer than
``min_venues`` admitted venues ("too_few_venues"), the consolidated book thinner than one
grid step ("insufficient_depth"), midSV above the limit already at v = s
("spread_too_wide"). A crossed consolidated book (best bid of one venue above best ask of
another) is computed normally and flagged ``crossed=True``: midSV is then negative near
the top and the curves are still well defined.

``IndexSeries`` drives the calculator on a fixed cadence of harness time and keeps the
published once-a-second values for the Kalshi 60-second average.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, islice, repeat
from operator import itemgetter, mul
from typing import Any

import numpy as np

from harness.pipeline.config import BrtiParams, SeriesParams

_P0 = itemgetter(0)
_P1 = itemgetter(1)
_REL_EPS = 1e-12  # relative tolerance for float accumulation of sizes against grid points
GRID_AT_ONCE = 4096  # grids up to this many points are evaluated whole, in numpy
_GRID = np.arange(1, GRID_AT_ONCE + 1, dtype=float)
_NO_LEVELS = np.empty(0)


# --------------------------------------------------------------------------- inputs


class Levels(Sequence):
    """One side of a ``VenueBook`` held as two float64 arrays (prices best first, sizes),
    read as a sequence of ``(price, qty)`` Python floats. The pipeline builds these from
    its ladders (``ladder.py``); the calculator reads the arrays directly."""

    __slots__ = ("px", "qty")

    def __init__(self, px: np.ndarray, qty: np.ndarray):
        self.px, self.qty = px, qty

    def __len__(self) -> int:
        return len(self.px)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return list(zip(self.px[i].tolist(), self.qty[i].tolist(), strict=True))
        return float(self.px[i]), float(self.qty[i])

    def __iter__(self):
        return zip(self.px.tolist(), self.qty.tolist(), strict=True)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Levels({len(self)} levels)"


@dataclass(slots=True)
class VenueBook:
    """One venue's book as the calculator sees it. ``bids`` best (highest) first, ``asks``
    best (lowest) first, each level ``(price, qty)`` as Decimal or float, or ``Levels``
    (float arrays, see ``from_arrays``). The calculator works on float64 arrays: lists are
    converted on first use and the arrays kept in ``arrays`` (valid while ``bids`` and
    ``asks`` are the same objects: a book is a snapshot, not to be edited in place)."""

    venue: str
    bids: Sequence[tuple[Any, Any]]
    asks: Sequence[tuple[Any, Any]]
    last_update_ns: int
    arrays: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, venue: str, bid_px: np.ndarray, bid_qty: np.ndarray, ask_px: np.ndarray,
                    ask_qty: np.ndarray, last_update_ns: int) -> VenueBook:
        """Bids descending, asks ascending, float64 (no copy: the caller hands them over)."""
        bids, asks = Levels(bid_px, bid_qty), Levels(ask_px, ask_qty)
        return cls(venue, bids, asks, last_update_ns, (bid_px, bid_qty, ask_px, ask_qty, bids, asks))

    def sides(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid prices, bid sizes, ask prices, ask sizes) as float64 arrays."""
        a = self.arrays
        if a is None or a[4] is not self.bids or a[5] is not self.asks:
            a = self.arrays = (*_side_arrays(self.bids), *_side_arrays(self.asks), self.bids, self.asks)
        return a[0], a[1], a[2], a[3]


def _side_arrays(levels: Sequence[tuple[Any, Any]]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(levels, Levels):
        return levels.px, levels.qty
    n = len(levels)
    if not n:
        return _NO_LEVELS, _NO_LEVELS
    p, q = levels[0]
    if type(p) is float and type(q) is float:
        return (np.fromiter(map(_P0, levels), float, n), np.fromiter(map(_P1, levels), float, n))
    return (np.fromiter((float(x) for x, _ in levels), float, n),
            np.fromiter((float(y) for _, y in levels), float, n))


NEVER_NS = -(1 << 62)  # last_update_ns of a book that was never stamped: always stale


def venue_book_from(venue: str, book: Any, max_levels: int | None = None,
                    last_update_ns: int | None = None) -> VenueBook:
    """Adapt any book with ``bids_desc()`` / ``asks_asc()`` iterators of ``(price, qty)``
    and a ``last_update_ns`` attribute (e.g. ``harness.venues.book.L2Book``). Levels are
    converted to float once here (Decimal -> float is the dominant cost for deep books:
    ~0.4 us a level; ``max_levels`` keeps only the best N a side). ``last_update_ns``
    overrides the book's own; a book stamped ``None`` counts as never updated (stale).
    The pipeline keeps its books converted incrementally instead (``ladder.Ladder``)."""
    if isinstance(book, VenueBook):
        return book
    bids = [(float(p), float(q)) for p, q in islice(book.bids_desc(), max_levels)]
    asks = [(float(p), float(q)) for p, q in islice(book.asks_asc(), max_levels)]
    ts = last_update_ns if last_update_ns is not None else getattr(book, "last_update_ns", None)
    return VenueBook(venue, bids, asks, NEVER_NS if ts is None else int(ts))


def _normalise(books: Iterable[VenueBook] | Mapping[str, Any]) -> list[VenueBook]:
    if isinstance(books, Mapping):
        return [venue_book_from(name, b) for name, b in books.items()]
    return [b if isinstance(b, VenueBook) else venue_book_from(b.venue, b) for b in books]


# --------------------------------------------------------------------------- result


@dataclass(slots=True)
class BrtiResult:
    ts_ns: int
    valid: bool
    value: float | None
    reason: str | None = None
    venues_used: tuple[str, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)  # venue -> stale|empty|crossed_book|erroneous
    mids: dict[str, float] = field(default_factory=dict)  # top-of-book mid of every non-empty venue
    deviations: dict[str, float] = field(default_factory=dict)  # |mid / median(others) - 1|
    utilized_depth: float = 0.0  # v_T in BTC
    n_grid: int = 0  # grid points in (0, v_T]
    size_cap: float | None = None
    best_bid: float | None = None  # consolidated
    best_ask: float | None = None
    crossed: bool = False  # consolidated best bid > best ask


# --------------------------------------------------------------------------- consolidated book


class ConsolidatedBook:
    """Merged, capped book with its price-volume curves. ``bid_px`` descending, ``ask_px``
    ascending, ``*_cum`` cumulative capped size; float64 arrays (lists are accepted)."""

    __slots__ = ("bid_px", "bid_cum", "ask_px", "ask_cum", "spacing")

    def __init__(self, bid_px, bid_cum, ask_px, ask_cum, spacing: float):
        self.bid_px, self.bid_cum = np.asarray(bid_px, float), np.asarray(bid_cum, float)
        self.ask_px, self.ask_cum = np.asarray(ask_px, float), np.asarray(ask_cum, float)
        self.spacing = spacing

    @classmethod
    def build(cls, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
              cap: float | None, spacing: float) -> ConsolidatedBook:
        """``bids``/``asks``: merged, sorted (bids descending, asks ascending) float levels."""
        bpx, bq = _side_arrays(bids)
        apx, aq = _side_arrays(asks)
        if cap is not None:
            bq, aq = np.minimum(bq, cap), np.minimum(aq, cap)
        return cls(bpx, np.cumsum(bq), apx, np.cumsum(aq), spacing)

    def _pv(self, px: np.ndarray, cum: np.ndarray, v: float) -> float | None:
        i = int(cum.searchsorted(v * (1.0 - _REL_EPS), "left"))
        return float(px[i]) if i < len(px) else None

    def ask_pv(self, v: float) -> float | None:
        """Marginal price to buy cumulative volume v (None past the book)."""
        return self._pv(self.ask_px, self.ask_cum, v)

    def bid_pv(self, v: float) -> float | None:
        """Marginal price to sell cumulative volume v (None past the book)."""
        return self._pv(self.bid_px, self.bid_cum, v)

    def mid_pv(self, v: float) -> float | None:
        a, b = self.ask_pv(v), self.bid_pv(v)
        return None if a is None or b is None else (a + b) / 2.0

    def mid_sv(self, v: float) -> float | None:
        a, b = self.ask_pv(v), self.bid_pv(v)
        return None if a is None or b is None else a / ((a + b) / 2.0) - 1.0

    def max_grid(self) -> int:
        """Grid points covered by both sides."""
        return _grid_points(self.bid_cum, self.ask_cum, self.spacing)

    def utilized_grid(self, max_spread: float) -> int:
        """K_T: the number of grid points v = s..K_T s with midSV(v) <= max_spread
        (midSV is non-decreasing in v: up to ``GRID_AT_ONCE`` points all at once, else a
        binary search)."""
        hi = self.max_grid()
        if 0 < hi <= GRID_AT_ONCE:
            return self._grid_curves(hi, max_spread)[0]
        return self._search_grid(hi, max_spread)

    def curve_index(self, max_spread: float, lambda_fraction: float = 0.3) -> tuple[int, float | None]:
        """(K_T, index): ``utilized_grid`` then ``index``, in one pass over the grid when
        it is at most ``GRID_AT_ONCE`` points (the prices looked up to find K_T are the
        ones the sum weights). Index None when K_T is 0."""
        hi = self.max_grid()
        if not 0 < hi <= GRID_AT_ONCE:
            k_t = self._search_grid(hi, max_spread)
            return k_t, (self.index(k_t, lambda_fraction) if k_t > 0 else None)
        k_t, mids2 = self._grid_curves(hi, max_spread)
        if k_t <= 0:
            return k_t, None
        if self._sum_method(k_t) == "levels":
            return k_t, self.index(k_t, lambda_fraction, "levels")
        pw, c = _grid_weights(k_t, lambda_fraction)
        return k_t, c * float(mids2[:k_t] @ pw) / 2.0

    def _grid_curves(self, hi: int, max_spread: float) -> tuple[int, np.ndarray]:
        """(K_T, askPV + bidPV at v = s..hi s) for 0 < hi <= ``GRID_AT_ONCE``."""
        grid = _GRID[:hi] * self.spacing * (1.0 - _REL_EPS)  # (k s)(1 - eps), as every lookup
        a = self.ask_px[self.ask_cum.searchsorted(grid, "left")]
        mids2 = a + self.bid_px[self.bid_cum.searchsorted(grid, "left")]
        over = a / (mids2 / 2.0) - 1.0 > max_spread
        k = int(over.argmax())
        return (k if over[k] else hi), mids2

    def _search_grid(self, hi: int, max_spread: float) -> int:
        s = self.spacing
        lo = 0  # invariant: midSV(lo * s) <= max_spread (vacuous for 0)
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            sv = self.mid_sv(mid * s)
            if sv is not None and sv <= max_spread:
                lo = mid
            else:
                hi = mid - 1
        return lo

    @staticmethod
    def weights(k_t: int, lambda_fraction: float = 0.3) -> list[float]:
        """The normalised grid weights w_1..w_K: proportional to lambda exp(-lambda k s),
        lambda = 1 / (lambda_fraction * k_t * s); they do not depend on s."""
        if k_t <= 0:
            return []
        r = math.exp(-1.0 / (lambda_fraction * k_t))
        c = (1.0 - r) / (1.0 - r ** k_t)
        return [c * x for x in accumulate(repeat(r, k_t - 1), mul, initial=1.0)]

    def index(self, k_t: int, lambda_fraction: float = 0.3, method: str = "auto") -> float:
        """sum_{k=1..k_t} midPV(k s) w_k. ``method``: "levels" (closed form per book level,
        O(levels within v_T)), "grid" (one lookup per grid point, O(k_t log n)) or "auto"
        (the cheaper). Both give the same number up to float rounding."""
        if k_t <= 0:
            raise ValueError("k_t must be >= 1")
        if method == "auto":
            method = self._sum_method(k_t)
        r = math.exp(-1.0 / (lambda_fraction * k_t))  # exp(-lambda s), lambda = 1/(0.3 k_t s)
        if method == "grid":
            return self._grid_index(k_t, r)
        if method != "levels":
            raise ValueError(f"unknown method {method!r}")
        norm = 1.0 - r ** k_t
        return (self._side_sum(self.ask_px, self.ask_cum, k_t, r)
                + self._side_sum(self.bid_px, self.bid_cum, k_t, r)) / (2.0 * norm)

    def _sum_method(self, k_t: int) -> str:
        """"grid" when the grid up to K_T has fewer points than half the levels serving it."""
        vt = k_t * self.spacing * (1.0 - _REL_EPS)
        n = int(self.ask_cum.searchsorted(vt)) + int(self.bid_cum.searchsorted(vt)) + 2
        return "grid" if 2 * k_t < n else "levels"

    def _grid_index(self, k_t: int, r: float) -> float:
        grid = np.arange(1, k_t + 1) * self.spacing * (1.0 - _REL_EPS)
        mids2 = (self.ask_px[self.ask_cum.searchsorted(grid, "left")]
                 + self.bid_px[self.bid_cum.searchsorted(grid, "left")])
        pw = np.power(r, np.arange(k_t, dtype=float))
        c = (1.0 - r) / (1.0 - r ** k_t)
        return c * float(mids2 @ pw) / 2.0

    def _side_sum(self, px: np.ndarray, cum: np.ndarray, k_t: int, r: float) -> float:
        """sum_i px_i (E_{i-1} - E_i), E_i = r^(grid points covered by levels 0..i)."""
        s = self.spacing
        n = int(cum.searchsorted(k_t * s * (1.0 - _REL_EPS), "left")) + 1  # levels serving points 1..k_t
        ks = np.empty(n)
        ks[:-1] = np.trunc(cum[:n - 1] * ((1.0 + _REL_EPS) / s))
        ks[-1] = k_t
        e = np.power(r, ks)
        de = np.empty(n)
        de[0] = 1.0 - e[0]
        np.subtract(e[:-1], e[1:], out=de[1:])
        return float(px[:n] @ de)


@functools.lru_cache(maxsize=256)
def _grid_weights(k_t: int, lambda_fraction: float) -> tuple[np.ndarray, float]:
    """(r^0..r^(k_t-1), (1 - r) / (1 - r^k_t)), r = exp(-1 / (lambda_fraction k_t)): the
    unnormalised weights and their normaliser (``ConsolidatedBook.weights``). K_T moves
    little from tick to tick, so they are kept (read-only)."""
    r = math.exp(-1.0 / (lambda_fraction * k_t))
    pw = np.power(r, np.arange(k_t, dtype=float))
    pw.flags.writeable = False
    return pw, (1.0 - r) / (1.0 - r ** k_t)


# --------------------------------------------------------------------------- calculator


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    n = len(ys)
    m = n >> 1
    return ys[m] if n & 1 else (ys[m - 1] + ys[m]) / 2.0


def dynamic_size_cap(bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]],
                     params: BrtiParams) -> float | None:
    """Dynamic order size cap over the consolidated (sorted) levels; see module doc."""
    return _dynamic_cap(*_side_arrays(bids), *_side_arrays(asks), params)


def _dynamic_cap(bpx: np.ndarray, bq: np.ndarray, apx: np.ndarray, aq: np.ndarray,
                 params: BrtiParams, hint: list | None = None) -> float | None:
    """``dynamic_size_cap`` on arrays (bids descending, asks ascending). ``hint``: a
    two-item list the caller keeps between calls (see ``_tails``); the answer does not
    depend on it."""
    if not len(bpx) or not len(apx):
        return None
    m = params.cap_min_levels_per_side
    nb = max(_n_at_or_above(bpx, float(bpx[0]) * (1.0 - params.cap_band)), min(m, len(bpx)))
    na = max(_n_at_or_below(apx, float(apx[0]) * (1.0 + params.cap_band)), min(m, len(apx)))
    xs = np.concatenate((bq[:nb], aq[:na]))
    n = len(xs)
    k = int(params.cap_trim * n)
    s1 = float(xs.sum())
    s2 = float(xs @ xs)
    if k:
        # trimmed mean / winsorised sd from the k extremes of each tail; lo / hi are the
        # (k+1)-th smallest / largest (the winsorising values)
        bot, top, lo, hi = _tails(xs, k, hint)
        # fsum: exact, so the same whatever order the partition left the tails in (the hint
        # never changes the answer) and the same as every earlier build (session logs
        # compare exactly); of lists, ~2x faster than of arrays, whose items become numpy scalars
        s1 -= math.fsum(top.tolist()) + math.fsum(bot.tolist())
        s2 -= math.fsum((top * top).tolist()) + math.fsum((bot * bot).tolist())
    nc = n - 2 * k
    mean = s1 / nc
    ss = max(0.0, s2 - 2.0 * mean * s1 + nc * mean * mean)  # sum over the core of (x - mean)^2
    if k:
        ss += k * ((lo - mean) ** 2 + (hi - mean) ** 2)
    return mean + params.cap_num_sd * math.sqrt(ss / n)


def _tails(xs: np.ndarray, k: int, hint: list | None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(k smallest, k largest, (k+1)-th smallest, (k+1)-th largest) of ``xs`` (n > 2k).

    One partition of the whole sample costs ~60 us on a 6,500-level Coinbase band, and
    between two 200 ms ticks only a few sizes change, so the tails barely move: ``hint``
    keeps a value a little inside each tail from the previous call ([low, high]). When at
    least k+1 sizes are <= low (>= high) the tail lies among them, so only those few are
    partitioned; otherwise the whole sample is. The sums the caller takes are ``fsum``s
    (exact whatever the order), so the answer is the same either way."""
    n = len(xs)
    if hint is not None and hint[0] is not None:
        low, high = hint
        b = xs[xs <= low]
        t = xs[xs >= high]
        nb, nt = len(b), len(t)
        if k < nb <= 8 * (k + 1) and k < nt <= 8 * (k + 1):
            # ranks kept for the next hint: about 2k into each tail (b and t are copies:
            # partitioned in place)
            b.partition((k, min(nb - 1, 2 * k + 1)))
            t.partition((max(0, nt - 2 * k - 2), nt - k - 1))
            pb, pt = b, t
            hint[0], hint[1] = float(pb[min(nb - 1, 2 * k + 1)]), float(pt[max(0, nt - 2 * k - 2)])
            return pb[:k], pt[nt - k:], float(pb[k]), float(pt[nt - k - 1])
    r = min(2 * k + 1, (n - 1) // 2)  # the hint's ranks: ~2k into each tail, never crossing
    part = np.partition(xs, sorted({k, r, n - r - 1, n - k - 1}))
    if hint is not None:
        hint[0], hint[1] = float(part[r]), float(part[n - r - 1])
    return part[:k], part[n - k:], float(part[k]), float(part[n - k - 1])


def _n_at_or_above(desc: np.ndarray, px: float) -> int:
    """Levels of a descending price array at or above ``px``."""
    return len(desc) - int(desc[::-1].searchsorted(px, "left"))


def _n_at_or_below(asc: np.ndarray, px: float) -> int:
    """Levels of an ascending price array at or below ``px``."""
    return int(asc.searchsorted(px, "right"))


def _same(a: tuple, b: tuple) -> bool:
    """Same books (identity), same sides, same staleness."""
    return len(a) == len(b) and all(
        x[0] is y[0] and x[1] is y[1] and x[2] is y[2] and x[3] == y[3] for x, y in zip(a, b, strict=True))


def _capped_cum(q: np.ndarray, cap: float | None) -> np.ndarray:
    """Cumulative capped sizes; np.cumsum adds in order: the same sums as accumulate()."""
    return (q if cap is None else np.minimum(q, cap)).cumsum()


def _grid_points(bcum: np.ndarray, acum: np.ndarray, s: float) -> int:
    """Grid points both sides cover: the largest n whose lookup, at (n s)(1 - eps), is
    within both cumulative sizes."""
    if not len(bcum) or not len(acum):
        return 0
    top = min(float(bcum[-1]), float(acum[-1]))
    n = int(top / s * (1.0 + _REL_EPS))
    while n > 0 and n * s * (1.0 - _REL_EPS) > top:  # the quotient rounded up past the book
        n -= 1
    return n


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Merge sorted (prices, sizes) runs into one sorted run; equal prices keep the venue
    order (a stable sort, as the list version's ``sort``). Timsort finds the runs, so
    this is a k-way merge in C."""
    if len(parts) == 1:
        return parts[0]
    px = np.concatenate([p for p, _ in parts])
    q = np.concatenate([q for _, q in parts])
    order = np.argsort(-px if descending else px, kind="stable")
    return px[order], q[order]


class BrtiCalculator:
    """Stateful (erroneous-venue hysteresis) BRTI proxy. ``compute(books, now_ns)``."""

    def __init__(self, params: BrtiParams | None = None):
        self.params = params or BrtiParams()
        self.erroneous: set[str] = set()
        self.last_consolidated: ConsolidatedBook | None = None
        self._cap: tuple[int, float | None] | None = None  # (computed at, dynamic cap)
        self._cap_hint: list = [None, None]  # _tails' guesses, carried from tick to tick
        self._memo: tuple | None = None  # (inputs, erroneous before, result) of the last compute
        self.reused = 0

    def reset(self) -> None:
        self.erroneous.clear()
        self.last_consolidated = None
        self._cap = None
        self._cap_hint = [None, None]
        self._memo = None

    # -- step 2
    def _screen(self, mids: dict[str, float]) -> dict[str, float]:
        p = self.params
        prev = self.erroneous
        if len(mids) < 2:  # no other venue to compare with: every state is kept
            return {}
        new = {v for v in prev if v not in mids}  # not evaluated now: state kept
        devs: dict[str, float] = {}
        names = sorted(mids)
        for n in names:
            others = [mids[o] for o in names if o != n and o not in prev]
            if not others:
                others = [mids[o] for o in names if o != n]
            if not others:
                if n in prev:
                    new.add(n)
                continue
            med = _median(others)
            d = abs(mids[n] / med - 1.0) if med > 0 else math.inf
            devs[n] = d
            if n in prev:
                if not d < p.erroneous_readmit:
                    new.add(n)
            elif d > p.erroneous_exclude:
                new.add(n)
        self.erroneous = new
        return devs

    def compute(self, books: Iterable[VenueBook] | Mapping[str, Any], now_ns: int) -> BrtiResult:
        """The index at ``now_ns`` from ``books`` (snapshots: not edited after being passed).

        When the books are the very same objects as at the previous call, each venue is
        fresh or stale as it was then, and that call left the erroneous-venue state as it
        found it, the answer is the previous one (at the new time): most 200 ms ticks of a
        quiet venue change nothing but the time."""
        vbs = _normalise(books)
        key = tuple((vb, vb.bids, vb.asks, now_ns - vb.last_update_ns > self.params.staleness_ns) for vb in vbs)
        memo = self._memo
        if memo is not None and memo[1] == self.erroneous and _same(memo[0], key):
            self.reused += 1
            r = memo[2]
            self.last_consolidated = memo[3]
            p = self.params
            if (p.size_cap is None and p.cap_min_interval_ns > 0 and self._cap is not None
                    and not 0 <= now_ns - self._cap[0] < p.cap_min_interval_ns):
                self._cap = (now_ns, r.size_cap)  # as if recomputed: same books, same cap
            return dataclasses.replace(r, ts_ns=now_ns, excluded=dict(r.excluded), mids=dict(r.mids),
                                       deviations=dict(r.deviations))
        before = set(self.erroneous)
        res = self._compute(vbs, now_ns)
        self._memo = (key, before, res, self.last_consolidated) if before == self.erroneous else None
        return res

    def _compute(self, vbs: list[VenueBook], now_ns: int) -> BrtiResult:
        p = self.params
        res = BrtiResult(ts_ns=now_ns, valid=False, value=None)
        self.last_consolidated = None
        fresh: list[tuple[VenueBook, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for vb in vbs:
            bpx, bq, apx, aq = vb.sides()
            if not len(bpx) or not len(apx):
                res.excluded[vb.venue] = "empty"
                continue
            bb, ba = float(bpx[0]), float(apx[0])
            mid = (bb + ba) / 2.0
            res.mids[vb.venue] = mid
            if now_ns - vb.last_update_ns > p.staleness_ns:
                res.excluded[vb.venue] = "stale"
                continue
            if bb > ba and p.exclude_crossed_venue:
                res.excluded[vb.venue] = "crossed_book"
                continue
            fresh.append((vb, bpx, bq, apx, aq))

        res.deviations = self._screen({f[0].venue: res.mids[f[0].venue] for f in fresh})
        admitted = []
        for f in fresh:
            if f[0].venue in self.erroneous:
                res.excluded[f[0].venue] = "erroneous"
            else:
                admitted.append(f)
        res.venues_used = tuple(f[0].venue for f in admitted)
        if len(admitted) < max(1, p.min_venues):
            res.reason = f"too_few_venues ({len(admitted)} < {p.min_venues})"
            return res

        # -- step 3: consolidate (only the levels that can matter)
        bb = max(float(f[1][0]) for f in admitted)
        ba = min(float(f[3][0]) for f in admitted)
        res.best_bid, res.best_ask, res.crossed = bb, ba, bb > ba
        L = p.max_mid_spread
        # bids below curve_floor / asks above curve_ceil can never be within v_T (midSV at
        # v is >= (askPV - bidPV) / (askPV + bidPV) with askPV >= ba, bidPV <= bb); widened
        # by 1e-9 so that float rounding never cuts a level sitting exactly on the limit
        curve_floor = ba * (1.0 - L) / (1.0 + L) * (1.0 - 1e-9)
        curve_ceil = bb * (1.0 + L) / (1.0 - L) * (1.0 + 1e-9)
        bid_floor, ask_ceil, keep = curve_floor, curve_ceil, 0
        if p.size_cap is None:  # the cap's sample reaches further: cap_band, >= 50 levels
            bid_floor = min(bid_floor, bb * (1.0 - p.cap_band))
            ask_ceil = max(ask_ceil, ba * (1.0 + p.cap_band))
            keep = p.cap_min_levels_per_side
        cut_b, cut_a = [], []
        truncated = False
        for _, bpx, bq, apx, aq in admitted:
            nb = max(_n_at_or_above(bpx, bid_floor), keep)
            na = max(_n_at_or_below(apx, ask_ceil), keep)
            truncated = truncated or nb < len(bpx) or na < len(apx)
            cut_b.append((bpx[:nb], bq[:nb]))
            cut_a.append((apx[:na], aq[:na]))
        cbp, cbq = _merge(cut_b, True)
        cap_, caq = _merge(cut_a, False)
        if p.size_cap is not None:
            cap = p.size_cap
        elif (self._cap is not None and p.cap_min_interval_ns > 0
              and 0 <= now_ns - self._cap[0] < p.cap_min_interval_ns):
            cap = self._cap[1]
        else:
            cap = _dynamic_cap(cbp, cbq, cap_, caq, p, self._cap_hint)
            self._cap = (now_ns, cap)
        res.size_cap = cap
        s = p.grid_spacing
        # the curves need only the levels inside the spread limit: the cap sample's band is
        # ten times wider and its levels past the limit cannot be within v_T
        nb, na = _n_at_or_above(cbp, curve_floor), _n_at_or_below(cap_, curve_ceil)
        cb = ConsolidatedBook(cbp[:nb], _capped_cum(cbq[:nb], cap), cap_[:na], _capped_cum(caq[:na], cap), s)
        self.last_consolidated = cb

        # -- steps 4-6
        if cb.max_grid() < 1 and _grid_points(_capped_cum(cbq, cap), _capped_cum(caq, cap), s) < 1:
            # (the whole cut book, as the list version: only then does its depth matter)
            # levels were cut only where midSV must exceed the limit
            res.reason = "spread_too_wide" if truncated else "insufficient_depth"
            return res
        k_t, value = cb.curve_index(L, p.lambda_depth_fraction)
        if k_t < 1:
            res.reason = "spread_too_wide"
            return res
        res.n_grid = k_t
        res.utilized_depth = k_t * s
        res.value = value
        res.valid = True
        return res


# --------------------------------------------------------------------------- baseline


def baseline_mid(books: Iterable[VenueBook] | Mapping[str, Any], now_ns: int,
                 staleness_ns: int = BrtiParams().staleness_ns) -> float | None:
    """Naive proxy: mids of fresh venues weighted by their top-of-book size (bid + ask)."""
    num = den = 0.0
    for vb in _normalise(books):
        if not vb.bids or not vb.asks or now_ns - vb.last_update_ns > staleness_ns:
            continue
        (bp, bq), (ap, aq) = vb.bids[0], vb.asks[0]
        w = float(bq) + float(aq)
        num += w * (float(bp) + float(ap)) / 2.0
        den += w
    return num / den if den > 0 else None


# --------------------------------------------------------------------------- cadence


@dataclass(slots=True)
class IndexTick:
    ts_ns: int  # the cadence boundary the value is for
    value: float | None  # None when the computation was invalid
    published: bool  # on a publish (whole-second) boundary
    result: BrtiResult


class IndexSeries:
    """Computes the index at every multiple of ``cadence_ns`` of harness time.

    Calling protocol (deterministic at any replay speed): call ``advance(t, books)``
    *before* applying the events stamped ``t``. ``books`` then hold the state of the
    interval [previous t, t), and a tick is computed for every cadence boundary b with
    previous t <= b < t, at calculation time b (staleness judged at b). So the value at b
    reflects exactly the events stamped <= b. The first call only sets the start.

    Publication: ticks on multiples of ``publish_interval_ns`` (1 s) are the "published"
    values (rounded to ``publish_decimals``), kept for ``retention_ns``. The Kalshi
    settlement average at time t is the simple mean of the published values at the
    seconds in (t - 60 s, t] (CF's final-minute average: 60 values for a full window).
    The 5 Hz intermediate values are not averaged. Invalid seconds are left out (the
    count says how many were averaged).
    """

    def __init__(self, calculator: BrtiCalculator | None = None, params: SeriesParams | None = None):
        self.calc = calculator or BrtiCalculator()
        self.params = params or SeriesParams()
        if self.params.publish_interval_ns % self.params.cadence_ns:
            raise ValueError("publish_interval_ns must be a multiple of cadence_ns")
        self.prev_ns: int | None = None
        self.last: IndexTick | None = None
        self.last_valid: IndexTick | None = None
        self.published: deque[tuple[int, float]] = deque()
        self.skipped_ticks = 0  # boundaries not computed because every book was stale

    def advance(self, now_ns: int, books: Iterable[VenueBook] | Mapping[str, Any]) -> list[IndexTick]:
        prev = self.prev_ns
        if prev is not None and now_ns < prev:
            raise ValueError(f"harness time went backwards: {now_ns} < {prev}")
        self.prev_ns = now_ns
        if prev is None:
            return []
        c = self.params.cadence_ns
        b = -(-prev // c) * c  # first boundary >= prev
        if b >= now_ns:
            return []
        if not isinstance(books, Mapping):
            books = list(books)
        snapshot = _normalise(books)  # adapt (and convert) once for all boundaries
        out = []
        pub = self.params.publish_interval_ns
        nd = self.params.publish_decimals
        # Past this boundary every book is stale (nothing is applied between prev and now),
        # so every tick would be the same invalid result: over a long silence (or a frame
        # stamped years away) compute only the last boundary instead of one per 200 ms.
        fresh_until = max((vb.last_update_ns for vb in snapshot if vb.last_update_ns is not None),
                          default=prev) + self.calc.params.staleness_ns
        while b < now_ns:
            if b > fresh_until + c:
                last_b = (now_ns - 1) // c * c
                if last_b > b:
                    self.skipped_ticks += (last_b - b) // c
                    b = last_b
            r = self.calc.compute(snapshot, b)
            is_pub = b % pub == 0
            tick = IndexTick(b, r.value, is_pub, r)
            out.append(tick)
            self.last = tick
            if r.valid:
                self.last_valid = tick
                if is_pub:
                    v = r.value if nd is None else round(r.value, nd)
                    self.published.append((b, v))
            b += c
        horizon = now_ns - self.params.retention_ns
        while self.published and self.published[0][0] <= horizon:
            self.published.popleft()
        return out

    def window(self, end_ns: int, length_ns: int | None = None) -> list[tuple[int, float]]:
        """Published values with end_ns - length < ts <= end_ns."""
        length = self.params.settlement_window_ns if length_ns is None else length_ns
        start = end_ns - length
        pub = self.published  # times strictly increase: bisect instead of a scan per market per tick
        i = bisect.bisect_right(pub, start, key=_P0)
        j = bisect.bisect_right(pub, end_ns, key=_P0)
        return [pub[k] for k in range(i, j)]

    def average(self, end_ns: int, length_ns: int | None = None) -> tuple[float | None, int]:
        """Simple average of the published values in (end_ns - 60 s, end_ns] and their count."""
        vals = [v for _, v in self.window(end_ns, length_ns)]
        return (math.fsum(vals) / len(vals) if vals else None), len(vals)

    def settlement_known(self, close_ns: int) -> tuple[float, int, int | None]:
        """Part of the settlement average of a market closing at ``close_ns`` already known:
        (sum, count, time of the last known value). Feed to ``fair_value``."""
        w = self.window(close_ns)
        return math.fsum(v for _, v in w), len(w), (w[-1][0] if w else None)
