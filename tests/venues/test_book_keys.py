"""L2Book keys its levels by float and stays exact: prices that share a float (more than
15 significant digits) switch the book to Decimal keys, and every answer matches a model
keyed by Decimal. The Coinbase and Kraken inline paths are held to the same."""

from __future__ import annotations

import json
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.venues import coinbase, kraken
from harness.venues.base import Level
from harness.venues.book import L2Book

# Prices in three groups: short ones, and two families of long ones that each share one
# float (0.1 and 0.3 to 17 digits), written with and without trailing zeros.
SHORT = ["0.05", "0.2", "0.25", "0.4", "0.20", "0.050"]
NEAR_01 = ["0.1", "0.10", "0.10000000000000000001", "0.10000000000000000002", "0.09999999999999999999"]
NEAR_03 = ["0.3", "0.30000000000000000001", "0.29999999999999999999"]
PRICES = SHORT + NEAR_01 + NEAR_03
QTYS = ["0", "1", "2.5", "0.000"]


def level(side, pt, qt, text=True):
    return Level(side, D(pt), D(qt), pt if text else "", qt)


class Model:
    def __init__(self):
        self.sides = {"bid": {}, "ask": {}}

    def put(self, side, pt, qt):
        if D(qt):
            self.sides[side][D(pt)] = D(qt)
        else:
            self.sides[side].pop(D(pt), None)

    def snapshot(self, levels):
        self.sides = {"bid": {}, "ask": {}}
        for side, pt, qt, _ in levels:
            self.put(side, pt, qt)


def same(b: L2Book, m: Model):
    bids, asks = m.sides["bid"], m.sides["ask"]
    assert list(b.bids_desc()) == sorted(bids.items(), reverse=True)
    assert list(b.asks_asc()) == sorted(asks.items())
    bb = max(bids) if bids else None
    ba = min(asks) if asks else None
    assert b.best_prices() == (bb, ba)
    assert b.is_crossed() == (bb is not None and ba is not None and bb >= ba)
    assert (b.n_bids, b.n_asks) == (len(bids), len(asks))
    for is_bid, items in ((True, sorted(bids.items(), reverse=True)), (False, sorted(asks.items()))):
        want = ([float(p) for p, _ in items], [float(q) for _, q in items])
        assert b.float_side(is_bid) == want
        assert b.float_side(is_bid, 2) == (want[0][:2], want[1][:2])
    for pt in PRICES:
        assert b.level(True, D(pt)) == bids.get(D(pt)), pt
        assert b.level(False, D(pt)) == asks.get(D(pt)), pt
    asked = [D(pt) for pt in PRICES]
    for is_bid, side in ((True, bids), (False, asks)):  # level, many at once, as floats
        want = [None if side.get(p) is None else float(side[p]) for p in asked]
        assert b.float_levels(is_bid, asked) == ([float(p) for p in asked], want)


step = st.tuples(st.sampled_from(["bid", "ask"]), st.sampled_from(PRICES), st.sampled_from(QTYS), st.booleans())
program = st.lists(st.tuples(st.sampled_from(["snapshot", "levels", "set"]), st.lists(step, max_size=8)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(program)
def test_book_equals_a_decimal_model_whatever_the_prices(prog):
    b, m = L2Book("X"), Model()
    for op, steps in prog:
        if op == "snapshot":
            b.apply_snapshot([level(s, p, q, t) for s, p, q, t in steps])
            m.snapshot(steps)
        elif op == "levels":
            b.apply_levels([level(s, p, q, t) for s, p, q, t in steps])
            for s, p, q, _ in steps:
                m.put(s, p, q)
        else:
            for s, p, q, t in steps:
                b.set_level(s == "bid", D(p), D(q), p if t else "", q if t else "")  # no text: read the Decimals
                m.put(s, p, q)
        same(b, m)


def test_floats_until_two_prices_share_one():
    b = L2Book("X")
    b.apply_snapshot([level("bid", "0.1", "1"), level("ask", "0.2", "1")])
    assert not b._exact
    v = b.version
    b.apply_levels([level("bid", "0.10000000000000000001", "2")])
    assert b._exact and b.version > v + 1  # re-keyed: whatever was keyed by float is stale
    assert list(b.bids_desc()) == [(D("0.10000000000000000001"), D(2)), (D("0.1"), D(1))]
    b.apply_snapshot([level("bid", "0.1", "1")])
    assert not b._exact  # a snapshot starts over


def _cb(seq, kind, levels):
    return json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.5Z", "sequence_num": seq, "events": [
        {"type": kind, "product_id": "X-USD", "updates": [
            {"side": "bid" if s == "bid" else "offer", "event_time": "2026-08-09T21:05:48.2Z", "price_level": p,
             "new_quantity": q} for s, p, q, _ in levels]}]}, separators=(",", ":"))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(step, min_size=1, max_size=6), min_size=1, max_size=15))
def test_coinbase_inline_path_is_exact(frames):
    hot, general, m = coinbase.VENUE.new_session(), coinbase.VENUE.new_session(), Model()
    for i, levels in enumerate(frames):
        text = _cb(i, "snapshot" if i == 0 else "update", levels)
        assert hot.feed(text, i) == general.feed(text.encode(), i)
        if i == 0:
            m.snapshot(levels)
        else:
            for s, p, q, _ in levels:
                m.put(s, p, q)
        same(hot.books["X-USD"], m)
        same(general.books["X-USD"], m)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(step, min_size=1, max_size=4), min_size=1, max_size=15))
def test_kraken_inline_path_is_exact(frames):
    s, m = kraken.VENUE.new_session(), Model()
    snap = {"as": [["0.5", "1.0", "1618678133.1"]], "bs": [["0.01", "1.0", "1618678133.1"]]}
    s.feed(json.dumps([1, snap, "book-100", "X/Y"]))
    m.snapshot([("ask", "0.5", "1.0", True), ("bid", "0.01", "1.0", True)])
    for levels in frames:
        side = levels[0][0]
        part = {"a" if side == "ask" else "b": [[p, q, "1618678134.123456"] for _, p, q, _ in levels], "c": "0"}
        _, found = s.feed(json.dumps([1, part, "book-100", "X/Y"]))
        for _, p, q, _ in levels:
            m.put(side, p, q)
        b = s.books["X/Y"]
        same(b, m)
        # the session's cached checksum is the checksum of the book as it now is
        assert [f.got for f in found if f.kind == "checksum"] == [kraken.checksum(b)]


def test_kraken_session_takes_a_float_keyed_book_put_in_from_outside():
    s, m = kraken.VENUE.new_session(), Model()
    s.feed(json.dumps([1, {"as": [["0.5", "1.0", "1618678133.1"]], "bs": [["0.1", "1.0", "1618678133.1"]]},
                       "book-100", "X/Y"]))
    outside = L2Book("X/Y")  # float keys
    outside.apply_snapshot(s.books["X/Y"].top_levels(True) + s.books["X/Y"].top_levels(False))
    s.books["X/Y"] = outside
    m.snapshot([("ask", "0.5", "1.0", True), ("bid", "0.1", "1.0", True)])
    for p, q in (("0.10000000000000000001", "2"), ("0.2", "3"), ("0.1", "0")):
        _, found = s.feed(json.dumps([1, {"b": [[p, q, "1618678134.123456"]], "c": "0"}, "book-100", "X/Y"]))
        m.put("bid", p, q)
        same(s.books["X/Y"], m)
        assert [f.got for f in found if f.kind == "checksum"] == [kraken.checksum(s.books["X/Y"])]


def test_float_reads_take_quantities_float_refuses_from_their_decimal():
    """Decimal takes "1_" and "1__0", float() does not: such a quantity reaches the book
    through any decoder, and the float copy (the pipeline's ladder) must read its Decimal
    instead of failing (a ValueError here stopped the whole pipeline)."""
    from harness.pipeline.ladder import Ladder

    b = L2Book("X")
    b.apply_snapshot([level("bid", "0.2", "1_"), level("bid", "0.1", "2"), level("ask", "0.25", "1__0")])
    assert b.float_side(True) == ([0.2, 0.1], [1.0, 2.0])
    assert b.float_side(False) == ([0.25], [10.0])
    assert b.float_levels(True, [D("0.2"), D("0.3")]) == ([0.2, 0.3], [1.0, None])
    lad = Ladder(b)
    lad.sync()
    assert lad._bq.tolist() == [1.0, 2.0] and lad._aq.tolist() == [10.0]


def test_text_level_equality_both_ways():
    from harness.venues.base import TextLevel

    t, lv = TextLevel("bid", "1.50", "2"), level("bid", "1.50", "2")
    assert t == lv and lv == t and not (t != lv) and not (lv != t)
    assert t != level("bid", "1.50", "3") and level("bid", "1.50", "3") != t
