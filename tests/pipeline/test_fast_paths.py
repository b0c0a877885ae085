"""The fast paths against the straightforward code they replaced.

- ``BrtiCalculator`` (float64 arrays: one partition for the cap's tails, a stable merge of
  the sorted books, curves cut at the spread limit) against ``brti_reference`` (the list
  version, verbatim) on random books (hypothesis) and at every tick of the real recordings.
- ``ladder.Ladder`` (a float copy of an ``L2Book`` patched from the messages) against
  ``stages.convert_book`` (a full conversion) after random sequences of book changes,
  announced or not, and at every tick of the real recordings.

"Same answers": from the ladder the same levels, bit for bit; from the calculator the same
validity, reason, venues, exclusions, mids and utilised depth, and the value and size cap
equal up to float rounding (1e-12 relative: the sums are taken in another order).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.pipeline import PipelineConfig
from harness.pipeline.brti import BrtiCalculator, VenueBook
from harness.pipeline.config import BrtiParams
from harness.pipeline.ladder import Ladder
from harness.pipeline.stages import Pipeline, convert_book
from harness.replay.source import replay
from harness.store.importers import import_files
from harness.store.reader import Recording
from harness.venues.base import BookMessage, Level
from harness.venues.book import L2Book
from tests.pipeline import brti_reference as ref

S = 1_000_000_000
REL = 1e-12
PROPS = settings(max_examples=150, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_same(fast, want) -> None:
    assert (fast.valid, fast.reason, fast.venues_used, fast.excluded) == (want.valid, want.reason, want.venues_used, want.excluded)
    assert fast.mids == want.mids and fast.deviations == want.deviations
    assert (fast.best_bid, fast.best_ask, fast.crossed) == (want.best_bid, want.best_ask, want.crossed)
    assert fast.n_grid == want.n_grid and fast.utilized_depth == want.utilized_depth
    if want.size_cap is None:
        assert fast.size_cap is None
    else:
        assert fast.size_cap == pytest.approx(want.size_cap, rel=REL)
    if want.value is None:
        assert fast.value is None
    else:
        assert type(fast.value) is float and fast.value == pytest.approx(want.value, rel=REL)


def ref_books(books: list[VenueBook]) -> list[ref.VenueBook]:
    return [ref.VenueBook(b.venue, list(b.bids), list(b.asks), b.last_update_ns) for b in books]


# --------------------------------------------------------------------------- random books

# prices on a 0.01 grid around 100 (so that venues share prices: ties in the merge), sizes
# from a small set (ties in the cap's tails) or anything up to a whale
sizes = st.one_of(st.sampled_from([0.001, 0.01, 0.5, 1.0, 2.0]), st.floats(1e-4, 5.0), st.floats(50.0, 5000.0))


@st.composite
def side(draw, sign: int) -> list[tuple[float, float]]:
    n = draw(st.integers(0, 120))
    gaps = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    start = draw(st.integers(0, 30))
    out, at = [], start
    for g, q in zip(gaps, draw(st.lists(sizes, min_size=n, max_size=n)), strict=True):
        out.append((round(100.0 + sign * at * 0.01, 2), q))
        at += g
    return out


@st.composite
def venue(draw, name: str) -> VenueBook:
    shift = draw(st.sampled_from([0.0, 0.0, 0.05, -0.07, 6.0]))  # 6%: an erroneous venue
    bids = [(round(p * (1 + shift / 100), 6), q) for p, q in draw(side(-1))]
    asks = [(round((p + 0.01) * (1 + shift / 100), 6), q) for p, q in draw(side(1))]
    if draw(st.integers(0, 9)) == 0 and bids and asks:  # a crossed own book
        bids, asks = asks[:1] + bids, asks
    age = draw(st.sampled_from([0, 0, 0, 3 * S, 11 * S]))  # 11 s: stale
    return VenueBook(name, bids, asks, -age)


params = st.builds(
    BrtiParams,
    size_cap=st.one_of(st.none(), st.none(), st.sampled_from([0.5, 3.0, 1e9])),
    grid_spacing=st.sampled_from([0.01, 0.1, 0.5, 1.0]),
    max_mid_spread=st.sampled_from([0.0005, 0.005, 0.02]),
    cap_min_levels_per_side=st.sampled_from([5, 50]),
    cap_band=st.sampled_from([0.001, 0.05]),
    min_venues=st.integers(1, 3),
)


@PROPS
@given(p=params, books=st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True).flatmap(
    lambda names: st.tuples(*[venue(n) for n in names])), again=st.booleans())
def test_fast_calculator_matches_reference(p, books, again):
    books = list(books)
    fast, slow = BrtiCalculator(p), ref.BrtiCalculator(p)
    assert_same(fast.compute(books, 0), slow.compute(ref_books(books), 0))
    if again:  # the erroneous-venue state carries over
        books = books[1:] + books[:1]
        assert_same(fast.compute(books, S), slow.compute(ref_books(books), S))
        assert fast.erroneous == slow.erroneous


def test_bench_shaped_books_match():
    """Four venues of 1,000 levels a side, as in bench_pipeline, dynamic and fixed cap."""
    import random

    rng = random.Random(7)
    books = []
    for v in range(4):
        mid = 65000.0 + rng.uniform(-5, 5)
        bids = [(round(mid - 0.5 - 0.5 * i, 2), round(rng.uniform(0.001, 2.0), 6)) for i in range(1000)]
        asks = [(round(mid + 0.5 + 0.5 * i, 2), round(rng.uniform(0.001, 2.0), 6)) for i in range(1000)]
        books.append(VenueBook(f"v{v}", bids, asks, 0))
    for p in (BrtiParams(min_venues=1), BrtiParams(size_cap=0.7), BrtiParams(grid_spacing=0.01)):
        fast, want = BrtiCalculator(p).compute(books, 0), ref.BrtiCalculator(p).compute(ref_books(books), 0)
        assert fast.valid and fast.n_grid > 100
        assert_same(fast, want)


# --------------------------------------------------------------------------- ladder


def lv(side_: str, price: int, qty: str) -> Level:
    return Level(side_, Decimal(price) / 100, Decimal(qty))


levels = st.lists(st.builds(lv, st.sampled_from(["bid", "ask"]), st.integers(9_900, 10_100),
                            st.sampled_from(["0", "0", "0.5", "1", "2.25", "0.00012345"])), max_size=30)
ops = st.lists(st.one_of(
    st.tuples(st.just("snapshot"), levels),
    st.tuples(st.just("update"), levels),
    st.tuples(st.just("unannounced"), levels),  # applied, no message noted: must be detected
    st.tuples(st.just("truncate"), st.integers(1, 20)),  # Kraken: after a noted update
    st.tuples(st.just("tick"), st.sampled_from([0, 3, 6])),  # selects to compare after it
), max_size=40)


def msg(snapshot: bool, lvls: list[Level]) -> BookMessage:
    return BookMessage(type="book", instrument="X", snapshot=snapshot, levels=lvls)


def assert_ladder_exact(lad: Ladder, book: L2Book, selects: int = 6) -> None:
    # the invariant: each side holds exactly the book's levels down to its limit price
    for keys, qty, lim, side_, sign in ((lad._bk, lad._bq, lad._blim, book.bids_desc(), -1.0),
                                        (lad._ak, lad._aq, lad._alim, book.asks_asc(), 1.0)):
        want = [(float(p), float(q)) for p, q in side_ if sign * float(p) <= lim]
        assert list(zip((keys * sign).tolist(), qty.tolist(), strict=True)) == want
    # narrow first: a wide select makes a partly held copy whole (it converts deeper)
    for band, lo, hi in ((0.0005, 2, 5000), (0.001, 0, 3), (0.005, 3, 5000), (None, 0, 4), (0.05, 50, 5000),
                         (None, 0, None))[:selects]:
        want = convert_book("x", book, band=band, min_levels=lo, max_levels=hi)
        bp, bq, ap, aq = lad.select(band, lo, hi)
        assert list(zip(bp.tolist(), bq.tolist(), strict=True)) == want.bids
        assert list(zip(ap.tolist(), aq.tolist(), strict=True)) == want.asks


class Without:
    """An ``L2Book`` seen without some members: its ``version`` counter, its float readers
    ``float_side`` and ``float_levels`` (the ladder must do without either)."""

    def __init__(self, book: L2Book, *names: str):
        self._b, self._names = book, names

    def __getattr__(self, name):
        if name in self._names:
            raise AttributeError(name)
        return getattr(self._b, name)


@PROPS
@given(ops=ops, versioned=st.booleans(), floats=st.booleans(), window=st.sampled_from([None, 2, 9, 40]),
       few=st.sampled_from([0, 3, 64]))
def test_ladder_matches_full_conversion(ops, versioned, floats, window, few):
    """``window``: deep sides held in part (changes past the copy ignored, selects that
    need more convert again). ``few``: sides with at most this many changed prices are
    patched price by price (``_patch_few``), others with whole-array masks (0: always).
    ``floats``: the copy is read with ``L2Book.float_side`` and ``float_levels`` (else
    from the Decimals)."""
    import harness.pipeline.ladder as ladder_mod

    saved, ladder_mod.SMALL_PATCH = ladder_mod.SMALL_PATCH, few
    try:
        _ladder_ops(ops, versioned, floats, window)
    finally:
        ladder_mod.SMALL_PATCH = saved


def _ladder_ops(ops, versioned, floats, window):
    book = L2Book("X")
    hidden = ([] if versioned else ["version"]) + ([] if floats else ["float_side", "float_levels"])
    lad = Ladder(Without(book, *hidden) if hidden else book, window)
    for op, arg in ops:
        if op == "snapshot":
            book.apply_snapshot(arg)
            lad.note(msg(True, arg))
        elif op == "update":
            book.apply_levels(arg)
            lad.note(msg(False, arg))
        elif op == "unannounced":
            book.apply_levels(arg)
            book.apply_levels([])  # the next announced message is what makes the pipeline look
            lad.note(msg(False, []))
        elif op == "truncate":
            book.apply_levels([lv("bid", 10_000 - arg, "1")])
            lad.note(msg(False, [lv("bid", 10_000 - arg, "1")]))
            book.truncate(arg)
        else:
            lad.sync()
            assert_ladder_exact(lad, book, arg)
    lad.sync()
    assert_ladder_exact(lad, book)


def synced_ladder(levels_a_side: int, window: int | None) -> tuple[L2Book, Ladder]:
    """A book of ``levels_a_side`` levels a side around 100.00 and its ladder, synced."""
    book = L2Book("X")
    lad = Ladder(book, window)
    snap = ([lv("bid", 10_000 - i, "1") for i in range(1, levels_a_side)]
            + [lv("ask", 10_000 + i, "1") for i in range(levels_a_side)])
    book.apply_snapshot(snap)
    lad.note(msg(True, snap))
    lad.sync()
    return book, lad


def apply_noted(book: L2Book, lad: Ladder, up: list[Level]) -> None:
    """An update applied to the book and told to the ladder, as the pipeline does."""
    book.apply_levels(up)
    lad.note(msg(False, up))


@pytest.mark.parametrize("window", [None, 600])
def test_ladder_patches_instead_of_rebuilding(window):
    book, lad = synced_ladder(500, window)
    for i in range(50):
        up = [lv("bid", 10_000 - 1 - i, "0"), lv("ask", 10_000 + 600 + i, "3"), lv("bid", 9_000 + i, "0.25")]
        apply_noted(book, lad, up)
        lad.sync()
        assert_ladder_exact(lad, book)
    assert lad.rebuilds == 1 and lad.patches == 50
    book.apply_levels([lv("ask", 10_001, "0")])  # a change nobody announced, then one that is
    book.apply_levels([])
    lad.note(msg(False, []))
    lad.sync()
    assert lad.rebuilds == 2
    assert_ladder_exact(lad, book)


# --------------------------------------------------------------------------- real recordings

REAL = {
    "coinbase": ["COINBASE.jsonl.zst"],
    "gemini": ["GEMINI.jsonl.zst"],
    "bitstamp": ["legacy_BITSTAMP.ws.19.0.txt", "legacy_BITSTAMP.http.18.0.txt"],
    "kraken": ["KRAKEN.jsonl.zst"],  # no USD pair: its XBT/CHF book (0.24% spread: s = 0.01 BTC)
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_recordings_every_tick(name, realdata, tmp_path):
    paths = [realdata / "cryptofeed" / f for f in REAL[name]]
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path} not present")
    db = tmp_path / f"{name}.db"
    import_files("cryptofeed", [str(x) for x in paths], str(db))
    c = PipelineConfig()
    spacing = 0.01 if name == "kraken" else c.brti.grid_spacing
    cfg = dataclasses.replace(c, brti=dataclasses.replace(c.brti, min_venues=1, grid_spacing=spacing))
    p = Pipeline(cfg, instruments={"BTC-USD", "BTCUSD", "btcusd", "XBT/CHF"}, keep=False)
    slow = ref.BrtiCalculator(cfg.brti)
    checked = []

    def hook(tick, _base):
        books = []
        for vs in p.venues.values():
            want = convert_book(vs.name, vs.book, band=p.band, min_levels=p.min_levels,
                                max_levels=p.max_levels, last_update_ns=vs.stamp_ns)
            assert list(vs.vb.bids) == want.bids and list(vs.vb.asks) == want.asks
            books.append(want)
        assert_same(tick.result, slow.compute(ref_books(books), tick.ts_ns))
        checked.append(tick.value is not None)

    p.tick_hook = hook
    with Recording(str(db)) as rec:
        p.attach_http(rec.http())
        replay(rec, p)
    p.finish()
    assert sum(checked) >= 30, f"only {sum(checked)} valid ticks compared"
    (vs,) = p.venues.values()
    # the point of the ladder: most ticks patch the copy instead of converting the book
    assert vs.conversions >= 20 and vs.ladder.rebuilds <= max(3, vs.conversions // 10), (vs.conversions, vs.ladder.rebuilds)
    if name == "bitstamp":
        # one conversion, after the REST snapshot: the diffs older than it, which the
        # session drops, change nothing and are not told to the ladder
        assert vs.ladder.rebuilds == 1, vs.ladder.rebuilds


def test_unchanged_books_reuse_the_previous_answer():
    a = VenueBook("a", [(99.9, 1.0), (99.8, 3.0)], [(100.1, 1.0), (100.2, 3.0)], 0)
    b = VenueBook("b", [(99.95, 1.0), (99.7, 3.0)], [(100.05, 1.0), (100.3, 3.0)], 0)
    d = VenueBook("d", [(99.9, 2.0), (99.6, 3.0)], [(100.0, 1.0), (100.4, 3.0)], 0)
    x = VenueBook("x", [(106.0, 1.0)], [(106.2, 1.0)], 0)  # 6% off: excluded, then stays out
    p = BrtiParams(size_cap=1e9, grid_spacing=0.5, max_mid_spread=0.01)
    c, want = BrtiCalculator(p), ref.BrtiCalculator(p)

    def step(books, t):
        r = c.compute(books, t)
        assert_same(r, want.compute(ref_books(books), t))
        assert r.ts_ns == t
        return r

    step([a, b, d, x], 0)  # excludes x: the state changed, nothing to reuse next time
    first = step([a, b, d, x], S)
    assert c.reused == 0
    again = step([a, b, d, x], 2 * S)
    assert c.reused == 1 and first.ts_ns == S
    assert dataclasses.replace(again, ts_ns=S) == first and again.excluded is not first.excluded
    a.last_update_ns = -9 * S  # fresh at 1 s, stale at 2 s: recomputed
    r = step([a, b, d, x], 2 * S)
    assert c.reused == 1 and r.excluded == {"a": "stale", "x": "erroneous"}
    a2 = VenueBook("a", a.bids, [(100.1, 2.0), (100.2, 3.0)], 2 * S)  # a new book object
    step([a2, b, d, x], 2 * S)
    assert c.reused == 1
    step([a2, b, d, x], 3 * S)
    step([a2, b, d], 4 * S)  # a venue fewer: recomputed
    assert c.reused == 2


def test_reuse_keeps_the_cap_interval_of_the_reference():
    """cap_min_interval_ns: a reused answer counts as a fresh cap, as the list version's
    recomputation at that tick would."""
    import random

    rng = random.Random(3)

    def book(name, t):
        bids = [(100.0 - 0.01 * (i + 1), rng.uniform(0.1, 3.0)) for i in range(120)]
        asks = [(100.0 + 0.01 * (i + 1), rng.uniform(0.1, 3.0)) for i in range(120)]
        return VenueBook(name, bids, asks, t)

    p = BrtiParams(min_venues=1, grid_spacing=0.1, cap_min_interval_ns=3 * S)
    c, want = BrtiCalculator(p), ref.BrtiCalculator(p)
    a = book("a", 0)
    for books, t in (([a], 0), ([a], 4 * S), ([book("a", 5 * S)], 5 * S), ([book("a", 8 * S)], 8 * S)):
        assert_same(c.compute(books, t), want.compute(ref_books(books), t))
        assert c._cap[0] == want._cap[0] and c._cap[1] == pytest.approx(want._cap[1], rel=REL)
    assert c.reused == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.lists(st.sampled_from([0.001, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 50.0]) | st.floats(1e-8, 1e3),
                      min_size=2, max_size=400),
       steps=st.lists(st.tuples(st.integers(0, 10**6), st.floats(1e-8, 1e4)), max_size=40),
       trim=st.sampled_from([0.01, 0.05, 0.2]))
def test_cap_tails_with_a_hint_are_exact(start, steps, trim):
    """The dynamic cap's tails found from the previous call's hint (a few candidates) give
    the very same cap, to the last bit, as a whole partition, through a run of small
    changes (ties and repeated sizes included)."""
    import numpy as np

    from harness.pipeline.brti import _dynamic_cap

    p = dataclasses.replace(BrtiParams(), cap_trim=trim, cap_min_levels_per_side=1, cap_band=1.0)
    sizes = list(start)
    hint: list = [None, None]
    for i, q in [(0, sizes[0])] + steps:
        sizes[i % len(sizes)] = q
        n = len(sizes)
        bq, aq = np.array(sizes[: n // 2]), np.array(sizes[n // 2:])
        bpx, apx = 100.0 - np.arange(len(bq)) * 0.01, 100.01 + np.arange(len(aq)) * 0.01
        assert _dynamic_cap(bpx, bq, apx, aq, p, hint) == _dynamic_cap(bpx, bq, apx, aq, p)


@pytest.mark.parametrize("window", [None, 30])
def test_ladder_patches_a_few_inserts_deletes_and_sizes_exactly(window):
    """A tick's usual handful of changes (sizes changed, levels gone, new levels at the top,
    inside and at the ends of the copy) is patched price by price, exactly."""
    book, lad = synced_ladder(60, window)
    rounds = [
        [lv("bid", 9_990, "0"), lv("ask", 10_005, "0"), lv("ask", 10_000, "0"), lv("bid", 9_999, "3")],
        [lv("bid", 10_000, "2"), lv("ask", 9_999 + 2, "0.5"), lv("bid", 9_941, "0"), lv("ask", 10_059, "0")],
        [lv("bid", 9_989, "4"), lv("bid", 9_990, "5"), lv("ask", 10_005, "6"), lv("ask", 10_004, "0")],
    ]
    for up in rounds:
        apply_noted(book, lad, up)
        lad.sync()
        assert_ladder_exact(lad, book, selects=4)
    assert lad.patches == len(rounds)  # (a select past a partial copy converts deeper: not counted here)
