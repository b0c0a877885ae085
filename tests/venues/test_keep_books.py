"""``VenueSession.keep_books``: books only for the instruments asked for.

On the real recordings a filtered session must build exactly the kept books the
unfiltered session builds, no others, report the same sequence findings, and return the
same messages except that book messages of the other instruments carry no levels. That
their levels are not even decoded is shown by damaging them: the filtered session accepts
a frame the unfiltered one rejects.
"""

from __future__ import annotations

import json

import pytest

from harness.errors import DecodeError
from harness.venues import get
from harness.venues.base import BookMessage, TradeMessage
from harness.venues.book import L2Book
from tests.venues.realdata_util import records

# findings that come from a book (so none for an instrument whose book is not kept)
BOOK_FINDINGS = ("crossed", "checksum", "stale_snapshot")

CASES = [
    ("coinbase", "COINBASE.jsonl.zst", {"BTC-USD"}),
    ("kraken", "KRAKEN.jsonl.zst", {"XBT/CHF", "XMR/USD"}),
    ("gemini", "GEMINI.jsonl.zst", {"BTCUSD", "ETHUSD"}),
    ("cryptocom", "CRYPTO.COM.jsonl.zst", {"HNT_USDT", "ONE_USDT"}),
    ("bitstamp", "BITSTAMP.jsonl.zst", {"ethusd", "xrpeur"}),
]


def book_state(b: L2Book):
    def side(is_bid):
        return [(lv.price, lv.qty, lv.price_text, lv.qty_text) for lv in b.top_levels(is_bid)]

    return side(True), side(False), b.updates, b.version > 0, b.last_update_ns, b.has_snapshot


def steps(path):
    """('recv', text) and, for Bitstamp, ('rest', (pair, body)) in recorded order."""
    recs = [r for r in records(path) if r[2] == "recv" or (r[2] == "http" and "/order_book/" in r[3][0])]
    recs.sort(key=lambda r: r[1])  # stable: frames keep file order
    return [("recv", d) if k == "recv" else ("rest", (d[0].rstrip("/").rsplit("/", 1)[1], d[1])) for _, _, k, d in recs]


def run(venue, stream, kept=None, *, as_bytes=False):
    """Feed a stream; per step the messages and findings (DecodeErrors as text)."""
    s = venue.new_session()
    if kept is not None:
        s.keep_books(kept)
    out = []
    for i, (kind, data) in enumerate(stream):
        try:
            if kind == "recv":
                msgs, found = s.feed(data.encode() if as_bytes else data, i)
            else:
                msgs, found = [], s.apply_rest_snapshot(data[0], data[1], frame_id=i)
        except DecodeError as e:
            out.append(("error", str(e)))
            continue
        out.append((msgs, found))
    return s, out


def expected_filtered(venue_name, msgs, kept):
    """What a filtered session returns for a frame the unfiltered one decoded as ``msgs``."""
    out = []
    dropped_book = any(m.__class__ is BookMessage and m.instrument not in kept for m in msgs)
    for m in msgs:
        if m.__class__ is BookMessage and m.instrument not in kept:
            if venue_name == "kraken":  # told from the frame's tail: no time, no checksum
                out.append(BookMessage(type=m.type, instrument=m.instrument, snapshot=m.snapshot, levels=[]))
            else:
                out.append(BookMessage(type=m.type, venue_ts_ns=m.venue_ts_ns, instrument=m.instrument,
                                       snapshot=m.snapshot, levels=[], checksum=m.checksum, sequence=m.sequence))
        elif venue_name == "gemini" and dropped_book and m.__class__ is TradeMessage:
            continue  # the trades of a filtered initial l2_updates are left out with it
        else:
            out.append(m)
    return out


@pytest.mark.realdata
@pytest.mark.parametrize(("venue_name", "fname", "kept"), CASES, ids=[c[0] for c in CASES])
def test_filtered_session_keeps_exactly_the_kept_books(realdata, venue_name, fname, kept):
    venue = get(venue_name)
    stream = steps(realdata / "cryptofeed" / fname)
    full, full_out = run(venue, stream)
    part, part_out = run(venue, stream, kept)
    assert kept <= set(full.books) and len(full.books) > len(kept)  # the recording has both kinds
    assert set(part.books) == kept
    assert {k: book_state(b) for k, b in part.books.items()} == {k: book_state(full.books[k]) for k in kept}
    skipped = 0
    for i, (want, got) in enumerate(zip(full_out, part_out, strict=True)):
        if want[0] == "error":
            assert got == want, i
            continue
        assert got[0] == expected_filtered(venue_name, want[0], kept), (i, stream[i][1][:100])
        assert got[1] == [f for f in want[1] if not (f.kind in BOOK_FINDINGS and f.key not in kept)], i
        skipped += sum(1 for m in got[0] if m.__class__ is BookMessage and m.instrument not in kept)
    assert skipped > 20


@pytest.mark.realdata
def test_coinbase_gap_in_a_filtered_product_is_still_reported(realdata):
    cb = get("coinbase")
    stream = steps(realdata / "cryptofeed" / "COINBASE.jsonl.zst")
    eth = [i for i, (_, t) in enumerate(stream) if '"product_id":"ETH-USD","updates"' in t[:300]
           and cb.classify(t) == "l2_data/update"]
    cut = eth[len(eth) // 2]
    damaged = stream[:cut] + stream[cut + 1 :]
    full, full_out = run(cb, damaged)
    part, part_out = run(cb, damaged, {"BTC-USD"})
    gaps = [f for _, found in part_out for f in found if f.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].frame_id == cut and gaps[0].got == gaps[0].expected + 1
    assert gaps == [f for _, found in full_out for f in found if f.kind == "gap"]
    assert set(part.books) == {"BTC-USD"}
    assert book_state(part.books["BTC-USD"]) == book_state(full.books["BTC-USD"])


@pytest.mark.realdata
def test_coinbase_hot_and_general_paths_filter_alike(realdata):
    stream = steps(realdata / "cryptofeed" / "COINBASE.jsonl.zst")
    cb = get("coinbase")
    hot, hot_out = run(cb, stream, {"ETH-USD"})
    general, general_out = run(cb, stream, {"ETH-USD"}, as_bytes=True)
    assert hot_out == general_out
    assert {k: book_state(b) for k, b in hot.books.items()} == {k: book_state(b) for k, b in general.books.items()}


# ------------------------------------------------------------------ levels are not decoded


def _cb_frame(product, price, seq=1, kind="update"):
    return json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.5Z", "sequence_num": seq,
                       "events": [{"type": kind, "product_id": product, "updates": [
                           {"side": "bid", "event_time": "2026-08-09T21:05:48.2Z", "price_level": price,
                            "new_quantity": "1.5"}]}]}, separators=(",", ":"))


DAMAGED = {  # venue: (a frame for "OTHER" whose levels are garbage, an instrument to keep)
    "coinbase": (_cb_frame("OTHER", "abc"), "BTC-USD"),
    "kraken": ('[1,{"a":[["abc","x","y"]],"c":"12"},"book-10","OTHER"]', "XBT/USD"),
    "gemini": ('{"changes":[["buy","abc",7]],"symbol":"OTHER","type":"l2_updates"}', "BTCUSD"),
    "bitstamp": ('{"data":{"microtimestamp":"1641343691244908","bids":[["abc"]],"asks":7},'
                 '"channel":"diff_order_book_other","event":"data"}', "btcusd"),
    "cryptocom": ('{"code":0,"method":"subscribe","result":{"instrument_name":"OTHER","subscription":"book.OTHER.150",'
                  '"channel":"book","depth":150,"data":[{"bids":[["abc"]],"asks":null,"t":1637709518355,"u":5}]}}',
                  "BTC_USDT"),
}


@pytest.mark.parametrize("venue_name", sorted(DAMAGED))
def test_levels_of_filtered_instruments_are_not_decoded(venue_name):
    frame, keep = DAMAGED[venue_name]
    venue = get(venue_name)
    with pytest.raises(DecodeError):
        venue.new_session().feed(frame)
    s = venue.new_session()
    s.keep_books([keep])
    msgs, found = s.feed(frame, 0)
    [m] = [m for m in msgs if m.__class__ is BookMessage]
    assert m.instrument.lower() == "other" and m.levels == [] and found == []
    assert s.books == {}


def _cb_events(*events, seq=1):
    """An l2_data frame with several events: (product, price text) each."""
    return json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.5Z", "sequence_num": seq,
                       "events": [{"type": "update", "product_id": pid, "updates": [
                           {"side": "bid", "event_time": "2026-08-09T21:05:48.2Z", "price_level": price,
                            "new_quantity": "1.5"}]} for pid, price in events]}, separators=(",", ":"))


@pytest.mark.parametrize("events", [
    [("BTC-USD", "100.00")],  # kept product first: decoded whole in one pass
    [("BTC-USD", "100.00"), ("OTHER", "5.00")],  # then another product: its levels dropped
    [("BTC-USD", "100.00"), ("OTHER", "abc")],  # ... even when they would not decode
    [("OTHER", "abc"), ("BTC-USD", "100.00")],
    [("BTC-USD", "abc")],  # a bad kept level is an error either way
    [("BTC-USD", "100.00"), ("ETH-USD", "7.00")],  # both kept
])
def test_coinbase_kept_frames_decode_as_the_raw_path(events):
    """A frame whose first event is a kept product's is decoded whole (one pass); any
    other product in it sends the frame back to the raw-levels path: the same messages,
    errors and books either way, the other products' levels empty."""
    import harness.venues.coinbase as cbm

    frame = _cb_events(*events)
    kept = {"BTC-USD", "ETH-USD"}
    got = []
    for whole in (True, False):
        s = get("coinbase").new_session()
        s.keep_books(kept)
        if not whole:
            s._kept_typed = lambda payload, kept: None  # always the raw-levels path
        try:
            msgs, found = s.feed(frame, 0)
        except DecodeError as e:
            got.append(("error", str(e)))
            continue
        got.append(([(m.instrument, [(lv.side, lv.price_text) for lv in m.levels]) for m in msgs], found,
                    {k: book_state(b) for k, b in s.books.items()}))
    assert got[0] == got[1]
    if got[0][0] != "error":
        assert [levels == [] for _, levels in got[0][0]] == [pid not in kept for pid, _ in events]
    whole = cbm.CoinbaseSession._kept_typed(frame, frozenset(kept))
    assert (whole is not None) == all(pid in kept for pid, _ in events)


@pytest.mark.parametrize("kept", [None, {"BTC-USD"}])
def test_coinbase_second_channel_key_is_read_as_decode_reads_it(kept):
    """A frame that starts as ``l2_data`` but names another channel later: JSON keeps the
    last key, so ``decode`` gives that channel's messages. The session's fast paths give
    the same instead of treating it as a book frame (a trade there stopped the pipeline)."""
    frame = json.loads(_cb_frame("BTC-USD", "100.00"))
    frame["events"][0]["trades"] = [{"product_id": "BTC-USD", "price": "1", "size": "1"}]
    text = json.dumps(frame, separators=(",", ":"))[:-1] + ',"channel":"market_trades"}'
    cb = get("coinbase")
    s = cb.new_session()
    if kept is not None:
        s.keep_books(kept)
    msgs, found = s.feed(text, 0)
    assert msgs == cb.decode(text) and [m.__class__ for m in msgs] == [TradeMessage]
    assert found == [] and s.books == {}


def test_keep_books_drops_built_books_and_none_keeps_all():
    cb = get("coinbase")
    s = cb.new_session()
    s.feed(_cb_frame("BTC-USD", "100.00", 1, "snapshot"))
    s.feed(_cb_frame("ETH-USD", "10.00", 2, "snapshot"))
    assert set(s.books) == {"BTC-USD", "ETH-USD"}
    s.keep_books(("ETH-USD",))
    assert set(s.books) == {"ETH-USD"}
    msgs, found = s.feed(_cb_frame("BTC-USD", "101.00", 4), 3)
    assert msgs[0].levels == [] and [f.kind for f in found] == ["gap"]  # sequence_num 3 is missing
    s.keep_books(None)
    s.feed(_cb_frame("BTC-USD", "102.00", 5, "snapshot"))
    assert set(s.books) == {"BTC-USD", "ETH-USD"}
    with pytest.raises(TypeError):
        s.keep_books("BTC-USD")


def test_every_spot_session_and_the_base_accept_keep_books():
    for name in ("coinbase", "kraken", "gemini", "bitstamp", "cryptocom", "kalshi"):
        get(name).new_session().keep_books(["X"])  # Kalshi's session keeps every market
