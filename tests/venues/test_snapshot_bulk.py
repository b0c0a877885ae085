"""Gemini's and Bitstamp's deep snapshots taken in bulk equal the per-level path.

A session decodes a deep Gemini ``l2_updates`` frame, a Bitstamp REST order book body or
``order_book`` frame with a strict msgspec shape into ``TextLevel``s (``text_levels``);
bytes frames and anything unusual take the general path (``decode``: Decimal ``Level``s).
Here the same books go through both, with odd but valid texts, odd shapes and occasional
invalid values: the same messages or the same ``DecodeError`` text, the same findings, the
same books (exact Decimals and wire texts).
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import DecodeError
from harness.venues import bitstamp, gemini
from harness.venues.base import BookMessage, Level, TextLevel
from tests.venues.realdata_util import records, recv_frames
from tests.venues.test_hot_paths import INVALID_TEXTS, VALID_TEXTS, book_state

GM = gemini.VENUE
BS = bitstamp.VENUE
DEEP = 64  # levels: every deep frame below is longer than BULK_CHARS
BIG = "__BIG__"  # replaced by 1e999 in the JSON text: a number the generic decoder refuses


def _text(obj) -> str:
    return json.dumps(obj, separators=(",", ":")).replace(f'"{BIG}"', "1e999")


def _books(s):
    return {k: book_state(b) for k, b in s.books.items()}


def _same(hot, general, frames, encode=True):
    """Feed str (the bulk path) to ``hot`` and bytes (the general path; str with
    ``encode=False``) to ``general``: same messages or the same error, same findings, same
    books."""
    out = []
    for i, t in enumerate(frames):
        try:
            want = general.feed(t.encode() if encode else t, i)
        except DecodeError as e:
            with pytest.raises(DecodeError) as got:
                hot.feed(t, i)
            assert str(got.value) == str(e)
            out.append(None)
            continue
        got = hot.feed(t, i)
        assert got == want, t[:120]
        out.append(got[0])
    assert _books(hot) == _books(general)
    return out


def _is_bulk(levels) -> bool:
    return bool(levels) and all(type(lv) is TextLevel for lv in levels)


@st.composite
def deep_levels(draw):
    """(side, price text, qty text) of a deep book: distinct plain prices and non-zero
    quantities, as in a real book (so ``apply_snapshot`` takes its bulk path), with up to
    four odd but valid texts put in (which may repeat a price or zero a quantity)."""
    base = draw(st.integers(0, 10**6))
    sides = draw(st.lists(st.sampled_from(["bid", "ask"]), min_size=DEEP, max_size=DEEP + 20))
    qtys = draw(st.lists(st.sampled_from(["0.5", "1.25", "3", "0.00000001"]), min_size=len(sides), max_size=len(sides)))
    levels = [[s, str(base + i) if i % 2 else f"{base + i}.50", q] for i, (s, q) in enumerate(zip(sides, qtys, strict=True))]
    for i, j, t in draw(st.lists(st.tuples(st.integers(0, DEEP - 1), st.integers(1, 2), st.sampled_from(VALID_TEXTS)),
                                 max_size=4)):
        levels[i][j] = t
    return [tuple(lv) for lv in levels]


PLAIN = [("bid", f"{100 - i}.5", "0.25") for i in range(40)] + [("ask", f"{101 + i}.5", "0.25") for i in range(40)]
FIXED_BOOKS = {  # every shape is also checked on these (hypothesis may miss a shape's rare case)
    "plain": PLAIN,
    "zero_quantity": [(s, p, "0" if i == 7 else q) for i, (s, p, q) in enumerate(PLAIN)],
    "asks_first": PLAIN[40:] + PLAIN[:40],
    "repeated_price": PLAIN[:10] + [("bid", "95.50", "1")] + PLAIN[10:],
}

bad_value = st.none() | st.tuples(st.integers(0, DEEP - 1), st.integers(0, 2),
                                  st.sampled_from([*INVALID_TEXTS, 5, None, "BUY"]))
keep = st.sampled_from([None, ("BTCUSD", "btcusd"), ("ETHUSD", "ethusd")])

# ------------------------------------------------------------------------------ Gemini

TRADE = {"type": "trade", "symbol": "BTCUSD", "event_id": 1, "tid": 2, "price": "65206.29", "quantity": "0.01",
         "side": "buy", "timestamp": 1786313161319}
GEMINI_SHAPES = {
    "snapshot": {"trades": [TRADE, dict(TRADE, side="sell", tid=3)], "auction_events": []},
    "auction_only": {"auction_events": []},
    "update": {},  # no trades: levels on top of the book
    "trades_null": {"trades": None},
    "trades_object": {"trades": {}},
    "trade_without_symbol": {"trades": [{"price": "1"}]},
    "trade_number_too_big": {"trades": [dict(TRADE, quantity=BIG)]},
    "another_field": {"trades": [], "socket_sequence": 3},
    "another_field_too_big": {"trades": [], "socket_sequence": BIG},
    "symbol_number": {"symbol": 7, "trades": []},
}
GEMINI_SIDE = {"bid": "buy", "ask": "sell"}


def _gemini(changes, shape: str, tail: str = "") -> str:
    obj = {"type": "l2_updates", "symbol": "BTCUSD", "changes": changes}
    obj.update(GEMINI_SHAPES[shape])
    t = _text(obj)
    return t[:-1] + tail + "}" if tail else t  # tail: a repeated key (the last one counts)


GEMINI_TAILS = [',"type":"heartbeat"', ',"changes":[]', ',"changes":[["buy","1","2","3"]]']


@settings(max_examples=150, deadline=None)
@given(deep_levels(), bad_value,
       st.sampled_from(["snapshot", "auction_only", "update"]) | st.sampled_from(sorted(GEMINI_SHAPES)),
       st.just("") | st.sampled_from(GEMINI_TAILS), st.booleans(), keep)
def test_gemini_deep_l2_updates_in_bulk_equal_the_per_level_path(levels, bad, shape, tail, bids_first, kept):
    if bids_first:  # as Gemini sends them
        levels.sort(key=lambda lv: lv[0] != "bid")
    _check_gemini(levels, bad, shape, tail, kept)


@pytest.mark.parametrize("book", sorted(FIXED_BOOKS))
@pytest.mark.parametrize("shape", sorted(GEMINI_SHAPES))
def test_gemini_each_shape_in_bulk_equals_the_per_level_path(shape, book):
    _check_gemini(FIXED_BOOKS[book], None, shape, "", None)


@pytest.mark.parametrize("tail", GEMINI_TAILS)
def test_gemini_repeated_keys_in_bulk_equal_the_per_level_path(tail):
    _check_gemini(PLAIN, None, "snapshot", tail, None)


def _check_gemini(levels, bad, shape, tail, kept):
    """A deep frame, a small update, a deep update and a new full book: the same through
    the bulk path (str) and the general path (bytes)."""
    changes = [[GEMINI_SIDE[s], p, q] for s, p, q in levels]
    if bad is not None:
        changes[bad[0]][bad[1]] = bad[2]
    frames = [
        _gemini(changes, shape, tail),
        _gemini(changes[:3], "update"),  # a small update: the general path on both
        _gemini(changes[::-1], "update"),  # deep, no trades: levels on top of the book
        _gemini(changes[5:], "snapshot"),  # a new full book replaces the first
    ]
    hot, general = GM.new_session(), GM.new_session()
    if kept is not None:
        hot.keep_books(kept)
        general.keep_books(kept)
    got = _same(hot, general, frames)
    clean = bad is None and tail == "" and shape in ("snapshot", "auction_only", "update", "trades_null")
    if clean and kept != ("ETHUSD", "ethusd"):  # the bulk path ran, not its fallback
        assert _is_bulk(got[0][0].levels)  # (64 changes or more: always BULK_CHARS long)
        if len(frames[3]) >= gemini.BULK_CHARS:
            b = hot.books["BTCUSD"]
            assert _is_bulk(got[3][0].levels) and all(type(lv) is TextLevel for lv in b.top_levels(True) + b.top_levels(False))
    return hot


@pytest.mark.realdata
def test_gemini_recording_in_bulk_equals_the_per_level_path(realdata):
    for name in ("GEMINI.jsonl.zst", "legacy_GEMINI.ws.36.0.txt"):
        frames = [t for _, t in recv_frames(realdata / "cryptofeed" / name)]
        hot = GM.new_session()
        got = _same(hot, GM.new_session(), frames)
        deep = [m[0] for t, m in zip(frames, got, strict=True) if len(t) >= gemini.BULK_CHARS and '"l2_updates"' in t]
        assert len(deep) >= 10 and all(_is_bulk(m.levels) for m in deep)
        b = hot.books["BTCUSD"]
        assert b.n_bids > 1000 and TextLevel in {type(lv) for lv in b.top_levels(True)}


# ---------------------------------------------------------------------------- Bitstamp

BITSTAMP_SHAPES = {  # fields set over the book's
    "plain": {},
    "microtimestamp_int": {"microtimestamp": 1000},
    "microtimestamp_null": {"microtimestamp": None},
    "microtimestamp_bad": {"microtimestamp": "10a"},
    "bids_null": {"bids": None},
    "another_field": {"foo": [1]},
    "number_too_big": {"timestamp": BIG},
    "another_field_too_big": {"foo": BIG},
    "no_microtimestamp": {},  # (these three: see _bitstamp_book)
    "no_asks": {},
    "third_entry": {},
}


def _bitstamp_book(levels, shape: str, mts: str = "1000") -> dict:
    d = {"timestamp": "1", "microtimestamp": mts,
         "bids": [[p, q] for s, p, q in levels if s == "bid"], "asks": [[p, q] for s, p, q in levels if s == "ask"]}
    if shape == "third_entry":  # a level [price, amount, order id]
        (d["bids"] or d["asks"])[0].append("12345")
    elif shape == "no_microtimestamp":
        del d["microtimestamp"]
    elif shape == "no_asks":
        del d["asks"]
    d.update(BITSTAMP_SHAPES[shape])
    return d


def _diff(mts: int, levels) -> str:
    d = {"timestamp": "1", "microtimestamp": str(mts), "bids": [[p, q] for s, p, q in levels if s == "bid"],
         "asks": [[p, q] for s, p, q in levels if s == "ask"]}
    return _text({"data": d, "channel": "diff_order_book_btcusd", "event": "data"})


def _bad_levels(levels, bad):
    levels = [list(lv) for lv in levels]
    if bad is not None:
        i, j, v = bad
        levels[i][max(j, 1)] = v  # a price or a quantity (the side is ours)
    return levels


@settings(max_examples=150, deadline=None)
@given(deep_levels(), bad_value,
       st.sampled_from(["plain", "no_asks"]) | st.sampled_from(sorted(BITSTAMP_SHAPES)), st.sampled_from([500, 1000, 1500]), keep)
def test_bitstamp_rest_snapshot_in_bulk_equals_the_per_level_path(levels, bad, shape, first_diff, kept):
    _check_bitstamp_rest(levels, bad, shape, first_diff, kept)


@pytest.mark.parametrize("book", sorted(FIXED_BOOKS))
@pytest.mark.parametrize("shape", sorted(BITSTAMP_SHAPES))
def test_bitstamp_each_shape_in_bulk_equals_the_per_level_path(shape, book):
    _check_bitstamp_rest(FIXED_BOOKS[book], None, shape, 500, None)
    _check_bitstamp_ws(FIXED_BOOKS[book], None, shape, None, "order_book_btcusd", "data")


def _check_bitstamp_rest(levels, bad, shape, first_diff, kept):
    """``apply_rest_snapshot`` (bulk) against ``decode_rest_snapshot`` +
    ``apply_snapshot_message`` (per level), with diffs buffered before it: some dropped,
    the later ones applied on top of the snapshot's TextLevels (or a stale snapshot)."""
    levels = _bad_levels(levels, bad)
    body = _text(_bitstamp_book(levels, shape))
    hot, general = BS.new_session(), BS.new_session()
    if kept is not None:
        hot.keep_books(kept)
        general.keep_books(kept)
    diffs = [_diff(first_diff, [("bid", "1", "0.5"), ("ask", "2", "0")]), _diff(first_diff + 800, levels[:4])]
    _same(hot, general, diffs, encode=False)  # small: the general path; buffered or the same error
    try:
        want = general.apply_snapshot_message(BS.decode_rest_snapshot("btcusd", body), 7)
    except DecodeError as e:
        with pytest.raises(DecodeError) as err:
            hot.apply_rest_snapshot("btcusd", body, 7)
        assert str(err.value) == str(e)
        return
    assert hot.apply_rest_snapshot("btcusd", body, 7) == want
    assert _books(hot) == _books(general)
    if (shape in ("plain", "microtimestamp_int", "no_asks") and bad is None and kept != ("ETHUSD", "ethusd")
            and len(body) >= bitstamp.BULK_CHARS):
        b = hot.books["btcusd"]  # the bulk path ran, not its fallback: what no diff touched is a TextLevel
        touched = {"1", "2"} | {p for _, p, _ in levels[:4]}
        assert all(type(lv) is TextLevel for lv in b.top_levels(True) + b.top_levels(False) if lv.price_text not in touched)


@settings(max_examples=100, deadline=None)
@given(deep_levels(), bad_value,
       st.sampled_from(["plain", "no_asks"]) | st.sampled_from(sorted(BITSTAMP_SHAPES)), keep,
       st.sampled_from(["order_book_btcusd", "order_book_", "detail_order_book_btcusd", "order_book_btcusd_x"]),
       st.sampled_from(["data", "bts:x"]))
def test_bitstamp_order_book_frames_in_bulk_equal_the_per_level_path(levels, bad, shape, kept, channel, event):
    _check_bitstamp_ws(levels, bad, shape, kept, channel, event)


def _check_bitstamp_ws(levels, bad, shape, kept, channel, event):
    """Three ``order_book`` frames (a repeat, then a microtimestamp going back) and a
    diff: the same through the bulk path (str) and the general path (bytes)."""
    if channel != "order_book_btcusd" or kept == ("ETHUSD", "ethusd"):
        kept = None  # a str frame of a pair not kept skips its levels undecoded (bytes do not)
    levels = _bad_levels(levels, bad)
    frames = [_text({"data": _bitstamp_book(levels, shape, mts), "channel": channel, "event": event})
              for mts in ("1000", "1000", "900")]  # a repeat, then a microtimestamp going back
    hot, general = BS.new_session(), BS.new_session()
    if kept is not None:
        hot.keep_books(kept)
        general.keep_books(kept)
    got = _same(hot, general, frames + [_diff(2000, levels[:3])])
    if (shape in ("plain", "microtimestamp_int", "no_asks") and bad is None and kept != ("ETHUSD", "ethusd")
            and channel == "order_book_btcusd" and event == "data" and len(frames[0]) >= bitstamp.BULK_CHARS):
        assert _is_bulk(got[0][0].levels)  # the bulk path ran, not its fallback


def test_bitstamp_bulk_snapshot_then_diffs_equal_the_per_level_path():
    """A REST snapshot in bulk, then random diffs changing and deleting its levels."""
    rng = random.Random(5)
    bids = [[f"{30000 - i}.{rng.randint(0, 99):02d}", f"0.{rng.randint(1, 10**8):08d}"] for i in range(200)]
    asks = [[f"{30001 + i}.{rng.randint(0, 99):02d}", f"0.{rng.randint(1, 10**8):08d}"] for i in range(200)]
    body = _text({"timestamp": "1", "microtimestamp": "1000", "bids": bids, "asks": asks})
    hot, general = BS.new_session(), BS.new_session()
    assert hot.apply_rest_snapshot("btcusd", body) == general.apply_snapshot_message(BS.decode_rest_snapshot("btcusd", body))
    for k in range(50):
        sides = [rng.choice(["bid", "ask"]) for _ in range(5)]
        lv = [(side, rng.choice(bids if side == "bid" else asks)[0], rng.choice(["0", "1.5", "0.00000001"])) for side in sides]
        _same(hot, general, [_diff(2000 + k, lv)])
    b = hot.books["btcusd"]
    assert TextLevel in {type(lv) for lv in b.top_levels(True)} and Level in {type(lv) for lv in b.top_levels(True)}
    assert len(b) < 400  # diffs deleted levels the snapshot made


@pytest.mark.realdata
def test_bitstamp_recorded_rest_bodies_in_bulk_equal_the_per_level_path(realdata):
    http = [d for _, _, k, d in records(realdata / "cryptofeed" / "legacy_BITSTAMP.http.18.0.txt") if k == "http"]
    bodies = [(url.rstrip("/").rsplit("/", 1)[1], body) for url, body in http if "/order_book/" in url]
    assert any(inst == "btcusd" for inst, _ in bodies)
    for inst, body in bodies:
        hot, general = BS.new_session(), BS.new_session()
        assert hot.apply_rest_snapshot(inst, body) == general.apply_snapshot_message(BS.decode_rest_snapshot(inst, body))
        assert _books(hot) == _books(general)
        if len(body) >= bitstamp.BULK_CHARS:
            assert all(type(lv) is TextLevel for lv in hot.books[inst].top_levels(True, 50))
    assert isinstance(BS.decode_rest_snapshot(*bodies[0]), BookMessage)
