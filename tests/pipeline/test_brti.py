"""BRTI proxy: hand-worked books, exclusion rules, cap, cadence."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from harness.pipeline.brti import (
    BrtiCalculator,
    ConsolidatedBook,
    IndexSeries,
    VenueBook,
    baseline_mid,
    dynamic_size_cap,
    venue_book_from,
)
from harness.pipeline.config import BrtiParams, SeriesParams

S = 1_000_000_000  # 1 s in ns


def vb(name, bids, asks, t=0):
    return VenueBook(name, bids, asks, t)


# Two venues whose merged book is, bids: 99.5(1) 99(1) 98(2) 96(5); asks: 100.5(1) 101(1)
# 102.5(2) 105(5). On the grid s = 1:
#   v=1: ask 100.5 bid 99.5  midPV 100     midSV 0.005
#   v=2: ask 101   bid 99    midPV 100     midSV 0.01
#   v=3: ask 102.5 bid 98    midPV 100.25  midSV 102.5/100.25-1 = 0.02244
#   v=4: same levels as v=3
#   v=5: ask 105   bid 96    midPV 100.5   midSV 0.04478
# With the spread limit at 3%: v_T = 4.
A = vb("a", [(99.5, 1.0), (98.0, 2.0)], [(100.5, 1.0), (102.5, 2.0)])
B = vb("b", [(99.0, 1.0), (96.0, 5.0)], [(101.0, 1.0), (105.0, 5.0)])
HAND = BrtiParams(size_cap=1e9, grid_spacing=1.0, max_mid_spread=0.03)


def test_hand_book_curves_depth_and_index():
    c = BrtiCalculator(HAND)
    r = c.compute([A, B], now_ns=0)
    assert r.valid and r.reason is None
    assert r.venues_used == ("a", "b")
    assert r.mids == {"a": 100.0, "b": 100.0}
    cb = c.last_consolidated
    assert [cb.mid_pv(v) for v in (1, 2, 3, 4, 5)] == [100.0, 100.0, 100.25, 100.25, 100.5]
    assert cb.mid_sv(1) == pytest.approx(0.005)
    assert cb.mid_sv(3) == pytest.approx(102.5 / 100.25 - 1)
    # marginal prices: cumulative 2 is reached exactly at the second level
    assert cb.ask_pv(2.0) == 101.0 and cb.ask_pv(2.0001) == 102.5
    assert cb.bid_pv(0.3) == 99.5 and cb.bid_pv(9.0) == 96.0 and cb.bid_pv(9.5) is None
    assert r.utilized_depth == 4.0 and r.n_grid == 4
    lam = 1.0 / (0.3 * 4.0)
    w = [lam * math.exp(-lam * v) / (1 - math.exp(-lam * 4.0)) for v in (1, 2, 3, 4)]
    w = [x / sum(w) for x in w]
    expected = sum(m * x for m, x in zip([100.0, 100.0, 100.25, 100.25], w, strict=True))
    assert r.value == pytest.approx(expected, abs=1e-9)
    # both evaluation strategies agree
    assert cb.index(4, method="grid") == pytest.approx(cb.index(4, method="levels"), abs=1e-9)


def test_tighter_spread_limit_shrinks_depth():
    r = BrtiCalculator(BrtiParams(size_cap=1e9, max_mid_spread=0.011)).compute([A, B], 0)
    assert r.n_grid == 2 and r.value == pytest.approx(100.0)
    r = BrtiCalculator(BrtiParams(size_cap=1e9, max_mid_spread=0.004)).compute([A, B], 0)
    assert not r.valid and r.reason == "spread_too_wide"


def test_grid_spacing_half():
    r = BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=0.5, max_mid_spread=0.03)).compute([A, B], 0)
    assert r.n_grid == 8 and r.utilized_depth == 4.0
    mids = [100.0] * 4 + [100.25] * 4  # v = 0.5 .. 4.0
    w = ConsolidatedBook.weights(8)
    assert r.value == pytest.approx(sum(m * x for m, x in zip(mids, w, strict=True)), abs=1e-9)


@pytest.mark.parametrize("k", [1, 2, 7, 100, 5000])
def test_weights_sum_to_one_and_decay_exponentially(k):
    w = ConsolidatedBook.weights(k)
    assert len(w) == k and math.fsum(w) == pytest.approx(1.0, abs=1e-12)
    if k > 1:
        r = math.exp(-1.0 / (0.3 * k))
        assert w[1] / w[0] == pytest.approx(r)
        assert all(a > b for a, b in zip(w, w[1:], strict=False))


def _naive_index(books, s, limit, cap):
    """Straight from the methodology text: loop over grid points."""
    bids = sorted(((p, min(q, cap)) for b in books for p, q in b.bids), key=lambda t: -t[0])
    asks = sorted(((p, min(q, cap)) for b in books for p, q in b.asks), key=lambda t: t[0])

    def pv(levels, v):
        cum = 0.0
        for p, q in levels:
            cum += q
            if cum >= v - 1e-9:
                return p
        return None

    mids, k = [], 1
    while True:
        a, b = pv(asks, k * s), pv(bids, k * s)
        if a is None or b is None or a / ((a + b) / 2) - 1 > limit:
            break
        mids.append((a + b) / 2)
        k += 1
    vt = len(mids) * s
    lam = 1 / (0.3 * vt)
    w = [lam * math.exp(-lam * (i + 1) * s) for i in range(len(mids))]
    return sum(m * x for m, x in zip(mids, w, strict=True)) / sum(w), len(mids)


def _random_book(rnd, name, mid, n, tick=1.0):
    bids = [(mid - tick * (i + 1) - rnd.random() * 0.3, rnd.expovariate(2.0)) for i in range(n)]
    asks = [(mid + tick * (i + 1) + rnd.random() * 0.3, rnd.expovariate(2.0)) for i in range(n)]
    return vb(name, bids, asks)


@pytest.mark.parametrize("seed", range(6))
def test_matches_naive_reference(seed):
    rnd = random.Random(seed)
    books = [_random_book(rnd, v, 50_000 + rnd.uniform(-20, 20), 200) for v in "abcd"]
    s = rnd.choice([0.25, 0.5, 1.0])
    cap = rnd.choice([0.5, 1e9])
    p = BrtiParams(size_cap=cap, grid_spacing=s)
    c = BrtiCalculator(p)
    r = c.compute(books, 0)
    want, k = _naive_index(books, s, 0.005, cap)
    assert r.valid and r.n_grid == k
    assert r.value == pytest.approx(want, abs=1e-6)
    cb = c.last_consolidated
    for method in ("grid", "levels"):
        assert cb.index(k, method=method) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", [0.5, 0.0005])  # 0.0005: more than GRID_AT_ONCE points
def test_curve_index_is_utilized_grid_then_index(seed, spacing):
    """The one-pass ``curve_index`` (the calculator's) against the two separate steps."""
    from harness.pipeline import brti

    rnd = random.Random(seed)
    books = [_random_book(rnd, v, 50_000 + rnd.uniform(-20, 20), 200) for v in "ab"]
    c = BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=spacing, max_mid_spread=0.0005))
    r = c.compute(books, 0)
    cb = c.last_consolidated
    hi = cb.max_grid()
    assert (hi > brti.GRID_AT_ONCE) == (spacing < 0.01)
    k = cb.utilized_grid(0.0005)
    assert r.valid and r.n_grid == k > 0
    assert k == _k_by_definition(cb, 0.0005)
    assert cb.curve_index(0.0005) == (k, r.value)
    assert r.value == cb.index(k)
    assert cb.curve_index(-1.0) == (0, None)  # no grid point within the limit


def _k_by_definition(cb: ConsolidatedBook, limit: float) -> int:
    """K_T read point by point with the public ``mid_sv``: the largest K with midSV(v) <=
    limit for every v = s..K s."""
    k = 0
    while True:
        sv = cb.mid_sv((k + 1) * cb.spacing)
        if sv is None or sv > limit:
            return k
        k += 1


@pytest.mark.parametrize("spacing", [0.1, 0.3, 0.07, 1 / 3, 0.001])
def test_grid_points_on_the_edge_of_a_cumulative_size(spacing):
    """Cumulative sizes a rounding away from a grid point: every lookup of grid point k
    is at (k s)(1 - eps), the grid ends where both sides still cover it, and K_T is the
    point-by-point definition (a grid rounded another way took the index past the book)."""
    rnd = random.Random(7)
    for _ in range(300):
        k = rnd.randint(1, 4000)
        for g in ((k * spacing) * (1 - 1e-12), k * (spacing * (1 - 1e-12))):
            for c in (g, math.nextafter(g, -1), math.nextafter(g, 2 * g)):
                cb = ConsolidatedBook([100.0, 99.0], [c, c + 5], [100.1, 101.0], [c, c + 5], spacing)
                kt, value = cb.curve_index(0.5)
                assert kt == cb.utilized_grid(0.5) <= cb.max_grid()
                # the definition at its edge (midSV is non-decreasing): point K within, K + 1 not
                assert kt == 0 or cb.mid_sv(kt * spacing) <= 0.5
                nxt = cb.mid_sv((kt + 1) * spacing)
                assert nxt is None or nxt > 0.5
                assert value == cb.index(kt)
    q = (1672 * 0.3) * (1 - 1e-12)  # one level a side ending exactly on grid point 1672
    r = BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=0.3, max_mid_spread=0.5, min_venues=1)).compute(
        [vb("a", [(100.0, q)], [(100.1, q)])], 0)
    assert r.valid and r.n_grid == 1672 and r.value == pytest.approx(100.05)


def test_staleness_and_return():
    c = BrtiCalculator(BrtiParams(size_cap=1e9, max_mid_spread=0.03))
    a = vb("a", A.bids, A.asks, t=0)
    b = vb("b", B.bids, B.asks, t=0)
    cc = vb("c", [(99.9, 1.0)], [(100.1, 1.0)], t=0)
    r = c.compute([a, b, cc], now_ns=10 * S)  # age == threshold: still fresh
    assert r.venues_used == ("a", "b", "c")
    cc.last_update_ns = -1
    r = c.compute([a, b, cc], now_ns=10 * S)
    assert r.excluded == {"c": "stale"} and r.venues_used == ("a", "b") and r.valid
    a.last_update_ns = -5 * S
    r = c.compute([a, b, cc], now_ns=10 * S)
    assert not r.valid and r.reason.startswith("too_few_venues")
    assert r.excluded == {"a": "stale", "c": "stale"}
    cc.last_update_ns = 9 * S  # c comes back
    r = c.compute([a, b, cc], now_ns=10 * S)
    assert r.valid and r.venues_used == ("b", "c")


def _mid_book(name, mid):
    return vb(name, [(mid - 0.2, 1.0), (mid - 0.3, 3.0)], [(mid + 0.2, 1.0), (mid + 0.3, 3.0)])


def test_erroneous_hysteresis():
    c = BrtiCalculator(BrtiParams(size_cap=1e9))

    def run(x):
        books = [_mid_book("a", 100.0), _mid_book("b", 100.0), _mid_book("c", 100.0), _mid_book("x", x)]
        return c.compute(books, 0)

    r = run(104.0)  # 4%: admitted (limit is > 5%)
    assert "x" in r.venues_used and r.deviations["x"] == pytest.approx(0.04)
    r = run(106.0)  # 6%: excluded
    assert r.excluded == {"x": "erroneous"} and r.valid
    assert r.value == pytest.approx(100.0)
    r = run(104.0)  # 4%: still excluded (re-admission needs < 2.5%)
    assert r.excluded == {"x": "erroneous"}
    r = run(102.6)
    assert r.excluded == {"x": "erroneous"}
    r = run(102.4)  # 2.4%: re-admitted
    assert "x" in r.venues_used and not r.excluded
    r = run(104.9)  # admitted again, 4.9% is not enough to exclude
    assert "x" in r.venues_used


def test_erroneous_state_survives_staleness():
    c = BrtiCalculator(BrtiParams(size_cap=1e9))
    good = [_mid_book("a", 100.0), _mid_book("b", 100.0), _mid_book("c", 100.0)]
    c.compute(good + [_mid_book("x", 110.0)], 0)
    assert c.erroneous == {"x"}
    stale_x = _mid_book("x", 103.0)
    stale_x.last_update_ns = -20 * S
    r = c.compute(good + [stale_x], 0)
    assert r.excluded == {"x": "stale"} and c.erroneous == {"x"}
    r = c.compute(good + [_mid_book("x", 103.0)], 0)  # back, 3%: still excluded
    assert r.excluded == {"x": "erroneous"}


def test_two_venues_diverging_both_excluded():
    r = BrtiCalculator(BrtiParams(size_cap=1e9)).compute([_mid_book("a", 100.0), _mid_book("b", 107.0)], 0)
    assert not r.valid and r.excluded == {"a": "erroneous", "b": "erroneous"}


def test_empty_crossed_and_too_few():
    p = BrtiParams(size_cap=1e9, max_mid_spread=0.03)
    empty = vb("e", [], [(100.0, 1.0)])
    broken = vb("x", [(101.0, 1.0)], [(100.0, 1.0)])  # own book crossed
    r = BrtiCalculator(p).compute([A, B, empty, broken], 0)
    assert r.excluded == {"e": "empty", "x": "crossed_book"} and r.valid
    r = BrtiCalculator(p).compute([A], 0)
    assert not r.valid and r.value is None and r.reason == "too_few_venues (1 < 2)"
    r = BrtiCalculator(p).compute([], 0)
    assert not r.valid


def test_crossed_consolidated_book_is_flagged_not_dropped():
    hi = vb("hi", [(100.6, 1.0), (99.0, 5.0)], [(101.0, 1.0), (102.0, 5.0)])
    lo = vb("lo", [(99.0, 1.0), (98.0, 5.0)], [(100.4, 1.0), (101.5, 5.0)])
    r = BrtiCalculator(BrtiParams(size_cap=1e9, max_mid_spread=0.03)).compute([hi, lo], 0)
    assert r.valid and r.crossed and r.best_bid == 100.6 and r.best_ask == 100.4
    assert 99.0 < r.value < 101.5


def test_insufficient_depth():
    thin = [vb("a", [(99.9, 0.1)], [(100.1, 0.1)]), vb("b", [(99.8, 0.1)], [(100.2, 0.1)])]
    r = BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=1.0)).compute(thin, 0)
    assert not r.valid and r.reason == "insufficient_depth"


def test_dynamic_cap_trims_a_whale():
    # 61 levels a side of size 1 and one 1000 BTC level: n = 122, k = 1 trims the whale,
    # the winsorised sample is all ones -> cap = 1 + 5 * 0 = 1.
    bids = [(100.0 - 0.01 * i, 1.0) for i in range(61)]
    asks = [(100.02 + 0.01 * i, 1.0) for i in range(60)] + [(100.7, 1000.0)]
    cap = dynamic_size_cap(bids, asks, BrtiParams())
    assert cap == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_dynamic_cap_matches_sorted_definition(seed):
    rnd = random.Random(seed)
    bids = [(100.0 - 0.05 * i, rnd.lognormvariate(0, 1)) for i in range(300)]
    asks = [(100.05 + 0.05 * i, rnd.lognormvariate(0, 1)) for i in range(300)]
    p = BrtiParams()
    # band: bids >= 95, asks <= 105.0525 -> 101 bids, 100 asks
    xs = sorted([q for px, q in bids if px >= 100.0 * 0.95] + [q for px, q in asks if px <= 100.05 * 1.05])
    n = len(xs)
    k = int(0.01 * n)
    mean = sum(xs[k:n - k]) / (n - 2 * k)
    wins = [xs[k]] * k + xs[k:n - k] + [xs[n - 1 - k]] * k
    sd = math.sqrt(sum((x - mean) ** 2 for x in wins) / n)
    assert dynamic_size_cap(bids, asks, p) == pytest.approx(mean + 5 * sd, rel=1e-9)


def test_dynamic_cap_extends_to_min_levels():
    # every level is within 5%, but fewer than 50 a side -> all of them; then a wide book
    bids = [(100.0 - 10.0 * i, float(i + 1)) for i in range(60)]  # only 1 level within 5%
    asks = [(101.0 + 10.0 * i, float(i + 1)) for i in range(60)]
    xs = sorted([float(i + 1) for i in range(50)] * 2)  # first 50 a side
    mean = sum(xs[1:-1]) / 98
    wins = [xs[1]] + xs[1:-1] + [xs[-2]]
    sd = math.sqrt(sum((x - mean) ** 2 for x in wins) / 100)
    assert dynamic_size_cap(bids, asks, BrtiParams()) == pytest.approx(mean + 5 * sd)


def test_adapter_and_mapping_input():
    class L2:
        last_update_ns = 5

        def __init__(self, b, a):
            self.b, self.a = b, a

        def bids_desc(self):
            return iter(self.b)

        def asks_asc(self):
            return iter(self.a)

    la = L2([(Decimal("99.5"), Decimal("1")), (Decimal("98"), Decimal("2"))],
            [(Decimal("100.5"), Decimal("1")), (Decimal("102.5"), Decimal("2"))])
    got = venue_book_from("a", la)
    assert got.bids == [(99.5, 1.0), (98.0, 2.0)] and got.last_update_ns == 5
    r1 = BrtiCalculator(HAND).compute({"a": la, "b": B}, 5)
    r2 = BrtiCalculator(HAND).compute([A, B], 5)
    assert r1.value == r2.value
    # Decimal levels inside a VenueBook work too
    dec_a = vb("a", la.b, la.a)
    assert BrtiCalculator(HAND).compute([dec_a, B], 0).value == r2.value


def test_adapter_with_real_l2book():
    book_mod = pytest.importorskip("harness.venues.book")
    from harness.venues.base import Level

    def lv(side, p, q):
        return Level(side, Decimal(p), Decimal(q))

    la = book_mod.L2Book("BTC-USD")
    la.apply_snapshot([lv("bid", "99.5", "1"), lv("bid", "98", "2"),
                       lv("ask", "100.5", "1"), lv("ask", "102.5", "2")], ts_ns=3)
    got = venue_book_from("a", la)
    assert got.bids == [(99.5, 1.0), (98.0, 2.0)] and got.asks == [(100.5, 1.0), (102.5, 2.0)]
    assert got.last_update_ns == 3
    assert BrtiCalculator(HAND).compute({"a": la, "b": B}, 3).value == BrtiCalculator(HAND).compute([A, B], 3).value
    unstamped = book_mod.L2Book("BTC-USD")
    unstamped.apply_snapshot([lv("bid", "99", "1"), lv("ask", "101", "1")])
    r = BrtiCalculator(HAND).compute({"a": la, "b": B, "u": unstamped}, 3)
    assert r.excluded == {"u": "stale"}


def test_baseline_mid():
    a = vb("a", [(99.0, 1.0)], [(101.0, 1.0)])  # mid 100, weight 2
    b = vb("b", [(102.0, 3.0)], [(104.0, 3.0)])  # mid 103, weight 6
    stale = vb("c", [(1.0, 100.0)], [(2.0, 100.0)], t=-20 * S)
    assert baseline_mid([a, b, stale], 0) == pytest.approx((200 + 618) / 8)
    assert baseline_mid([stale], 0) is None


# ------------------------------------------------------------------ IndexSeries


def _events(seed=3):
    """(t_ns, venue, mid) updates at irregular times over 70 s."""
    rnd = random.Random(seed)
    t, out = 0, []
    while t < 70 * S:
        t += rnd.randrange(1, 700) * 1_000_000 + rnd.randrange(1000)
        out.append((t, rnd.choice("abc"), 100.0 + rnd.uniform(-1, 1)))
    return out


def _drive(extra_calls):
    series = IndexSeries(BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=0.5)))
    books = {v: _mid_book(v, 100.0) for v in "abc"}
    ticks = []
    series.advance(0, books)
    rnd = random.Random(99)
    for t, v, mid in _events():
        if extra_calls:  # extra, event-free calls must change nothing
            prev = series.prev_ns
            for _ in range(rnd.randrange(3)):
                prev = rnd.randrange(prev, t + 1)
                ticks += series.advance(prev, books)
        ticks += series.advance(t, books)
        nb = _mid_book(v, mid)
        nb.last_update_ns = t
        books[v] = nb
    return series, [(k.ts_ns, k.value, k.published) for k in ticks]


def test_series_cadence_is_deterministic():
    s1, t1 = _drive(False)
    s2, t2 = _drive(True)
    assert t1 == t2
    ts = [t for t, _, _ in t1]
    assert ts == list(range(0, ts[-1] + 1, 200_000_000))  # every 200 ms boundary, once
    assert all(p == (t % S == 0) for t, _, p in t1)
    assert list(s1.published) == list(s2.published)


def test_series_boundaries_and_average():
    series = IndexSeries(BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=0.5)))
    books = [_mid_book("a", 100.0), _mid_book("b", 100.0)]
    assert series.advance(50_000_000, books) == []  # first call only starts
    ticks = series.advance(1_050_000_000, books)
    assert [t.ts_ns for t in ticks] == [200_000_000, 400_000_000, 600_000_000, 800_000_000, 1_000_000_000]
    assert [t.published for t in ticks] == [False] * 4 + [True]
    # one published value per second, mid = 100 + second number
    for sec in range(2, 80):
        books = [_mid_book("a", 100.0 + sec), _mid_book("b", 100.0 + sec)]
        for b in books:
            b.last_update_ns = (sec - 1) * S + 1
        series.advance(sec * S + 1, books)  # publishes at sec * S with the books of sec
    avg, n = series.average(79 * S)
    assert n == 60
    # the book in force at second t (t >= 2) was set just after t-1 with mid 100 + t
    assert avg == pytest.approx(sum(100.0 + t for t in range(20, 80)) / 60)
    s, k, last = series.settlement_known(79 * S)
    assert k == 60 and last == 79 * S and s / k == pytest.approx(avg)
    with pytest.raises(ValueError):
        series.advance(5, books)


def test_series_invalid_seconds_left_out():
    series = IndexSeries(BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=0.5)),
                         SeriesParams(publish_decimals=None))
    books = [_mid_book("a", 100.0), _mid_book("b", 100.0)]
    series.advance(0, books)
    series.advance(15 * S, books)  # books go stale after 10 s
    avg, n = series.average(15 * S)
    assert n == 11 and avg == 100.0  # seconds 0..10 valid; 11..14 stale
    assert series.last.value is None and series.last_valid.ts_ns == 10 * S


def test_series_skips_the_boundaries_of_a_long_silence_when_every_book_is_stale():
    series = IndexSeries(BrtiCalculator(BrtiParams(size_cap=1e9, grid_spacing=0.5)))
    books = {v: _mid_book(v, 100.0) for v in "abc"}
    for b in books.values():
        b.last_update_ns = 0
    series.advance(0, books)
    hour = 3600 * S
    ticks = series.advance(hour, books)  # one frame an hour later (or a frame stamped in 2262)
    stale_from = BrtiParams().staleness_ns
    # every boundary while a book can still be fresh is computed, then only the last one
    assert [t.ts_ns for t in ticks[:-1]] == list(range(0, ticks[-2].ts_ns + 1, 200_000_000))
    assert stale_from < ticks[-2].ts_ns <= stale_from + 400_000_000
    assert ticks[-1].ts_ns == hour - 200_000_000 and not ticks[-1].value
    assert all(not t.result.valid for t in ticks if t.ts_ns > stale_from)
    assert series.skipped_ticks == (hour - 200_000_000 - ticks[-2].ts_ns) // 200_000_000 - 1
    assert len(ticks) < 60
