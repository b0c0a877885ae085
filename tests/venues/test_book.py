"""L2Book and the sequencing trackers (no real data needed)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.venues.base import Level
from harness.venues.book import L2Book
from harness.venues.seq import ContiguousCounter, MonotonicTracker, SnapshotAligner


def lv(side, p, q):
    return Level(side, D(p), D(q), p, q)


def test_snapshot_replaces_and_levels_apply():
    b = L2Book("X")
    b.apply_snapshot([lv("bid", "10", "1"), lv("bid", "9", "2"), lv("ask", "11", "3"), lv("ask", "12", "0")], 5)
    assert b.best_bid() == (D("10"), D("1"))
    assert b.best_ask() == (D("11"), D("3"))
    assert b.n_asks == 1  # qty 0 in a snapshot is not a level
    assert b.last_update_ns == 5 and b.has_snapshot
    b.apply_levels([lv("bid", "10", "0"), lv("bid", "10.5", "4"), lv("ask", "11", "0.000")], 7)
    assert b.best_bid() == (D("10.5"), D("4"))
    assert b.best_ask() is None
    assert b.mid() is None
    b.apply_levels([lv("ask", "13", "1")])
    assert b.mid() == D("11.75")
    assert b.depth(2) == ([(D("10.5"), D("4")), (D("9"), D("2"))], [(D("13"), D("1"))])
    assert list(b.bids_desc()) == [(D("10.5"), D("4")), (D("9"), D("2"))]
    b.apply_snapshot([lv("ask", "20", "1")])
    assert b.best_bid() is None and b.n_asks == 1 and b.updates == 0


def test_crossed_and_locked():
    b = L2Book("X")
    b.apply_snapshot([lv("bid", "10", "1"), lv("ask", "11", "1")])
    assert not b.is_crossed()
    b.apply_levels([lv("bid", "11", "1")])
    assert b.is_crossed()  # locked counts as crossed
    b.apply_levels([lv("bid", "11", "0")])
    assert not b.is_crossed()
    assert b.best_prices() == (D("10"), D("11"))


def test_truncate_drops_worst_levels():
    b = L2Book("X", depth_limit=3)
    b.apply_snapshot([lv("bid", str(p), "1") for p in range(1, 6)] + [lv("ask", str(p), "1") for p in range(10, 15)])
    assert b.truncate() == 4
    assert [p for p, _ in b.bids_desc()] == [D(5), D(4), D(3)]
    assert [p for p, _ in b.asks_asc()] == [D(10), D(11), D(12)]
    assert b.truncate(10) == 0


def test_top_entries_keep_wire_text():
    b = L2Book("X")
    b.apply_snapshot([lv("bid", "1.50", "2.000"), lv("bid", "1.4", "1"), lv("ask", "1.60", "0.10")])
    assert [e[1:3] for e in b.top_entries(True, 5)] == [["1.50", "2.000"], ["1.4", "1"]]
    assert [e[1:3] for e in b.top_entries(False, 1)] == [["1.60", "0.10"]]


ops = st.lists(
    st.tuples(st.booleans(), st.integers(1, 60), st.sampled_from(["0", "1", "2.5", "0.000"])), max_size=300
)


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(1, 8))
def test_book_matches_a_dict_model(changes, depth):
    b = L2Book("X")
    model = {True: {}, False: {}}
    for is_bid, p, q in changes:
        b.set_level(is_bid, D(p), D(q), str(p), q)
        if D(q):
            model[is_bid][D(p)] = D(q)
        else:
            model[is_bid].pop(D(p), None)
    assert list(b.bids_desc()) == sorted(model[True].items(), reverse=True)
    assert list(b.asks_asc()) == sorted(model[False].items())
    bb = max(model[True]) if model[True] else None
    ba = min(model[False]) if model[False] else None
    assert b.best_prices() == (bb, ba)
    assert b.is_crossed() == (bb is not None and ba is not None and bb >= ba)
    b.truncate(depth)
    assert list(b.bids_desc()) == sorted(model[True].items(), reverse=True)[:depth]
    assert list(b.asks_asc()) == sorted(model[False].items())[:depth]


def test_contiguous_counter():
    c = ContiguousCounter(reset_value=0)
    assert c.check("k", 0) is None
    assert c.check("k", 1) is None
    f = c.check("k", 4, frame_id=9)
    assert (f.kind, f.expected, f.got, f.frame_id) == ("gap", 2, 4, 9)
    assert c.check("k", 5) is None  # resynchronised after the gap
    assert c.check("k", 5).kind == "duplicate"
    assert c.check("k", 3).kind == "out_of_order"
    assert c.check("k", 0).kind == "reset"
    assert c.check("k", 1) is None
    assert c.counts == {"gap": 1, "duplicate": 1, "out_of_order": 1, "reset": 1}


def test_monotonic_tracker():
    t = MonotonicTracker()
    assert t.check("a", 1) is None
    assert t.check("a", 1) is None and t.equal == 1
    assert t.check("a", 0).kind == "out_of_order"
    s = MonotonicTracker(strict=True)
    s.check("a", 1)
    assert s.check("a", 1).kind == "duplicate"


def test_snapshot_aligner():
    a = SnapshotAligner()
    assert a.on_diff("x", 10, "d10") == "buffer"
    assert a.on_diff("x", 20, "d20") == "buffer"
    keep, findings = a.on_snapshot("x", 15)
    assert keep == ["d20"] and findings == [] and a.dropped("x") == 1
    assert a.on_diff("x", 15, "d15") == "drop"
    assert a.on_diff("x", 16, "d16") == "apply"
    # a snapshot older than everything the stream delivered cannot be proven complete
    b = SnapshotAligner()
    b.on_diff("y", 30, "d30")
    keep, findings = b.on_snapshot("y", 25)
    assert keep == ["d30"] and [f.kind for f in findings] == ["stale_snapshot"]


def test_clear_caches_empties_every_venue_price_cache():
    """``_json.clear_caches`` (the pipeline benchmark's cold run) reaches the caches the
    venues decode through, and decoding after it gives the same Decimals."""
    from harness.venues import _json, gemini

    frame = '{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","65000.5","0.25"]]}'
    first = gemini.VENUE.decode(frame)
    assert "65000.5" in gemini._P._c and "0.25" in gemini._Q._c
    assert gemini._P in _json._CACHES
    _json.clear_caches()
    assert not any(c._c for c in _json._CACHES)
    assert gemini.VENUE.decode(frame) == first
