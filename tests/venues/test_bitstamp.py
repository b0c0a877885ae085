"""Bitstamp: diffs aligned to REST snapshots (both recordings), timestamps, commands, fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DecodeError
from harness.venues import get
from harness.venues.bitstamp import VENUE, split_channel
from tests.venues.realdata_util import ANY_PAYLOAD, assert_robust, mutated_frames, records

pytestmark = pytest.mark.realdata


def _replay(paths):
    """Feed ws frames and REST snapshots in recorded-time order; check after every step."""
    recs = [r for p in paths for r in records(p) if r[2] in ("recv", "http")]
    recs.sort(key=lambda r: r[1])
    s = VENUE.new_session()
    findings = []
    snaps = 0
    for i, (_c, _t, kind, data) in enumerate(recs):
        if kind == "recv":
            _, f = s.feed(data, frame_id=i)
        elif "/order_book/" in data[0]:
            snaps += 1
            f = s.apply_rest_snapshot(data[0].rstrip("/").rsplit("/", 1)[1], data[1], frame_id=i)
        else:
            continue
        findings += f
        for b in s.books.values():
            assert not b.is_crossed(), (i, b)
    return s, findings, snaps


def test_registry():
    assert get("bitstamp") is VENUE
    assert split_channel("diff_order_book_btcusd") == ("diff_order_book", "btcusd")
    assert split_channel("order_book_btcusd") == ("order_book", "btcusd")
    assert split_channel("live_trades_ethusd") == ("live_trades", "ethusd")


def test_recording_aligned_to_rest_snapshots(realdata):
    s, findings, snaps = _replay([realdata / "cryptofeed" / "BITSTAMP.jsonl.zst"])
    assert findings == [] and snaps == 10
    assert len(s.books) == 10 and all(b.has_snapshot for b in s.books.values())
    dropped = {k: s.aligner.dropped(k) for k in s.books}
    assert sum(dropped.values()) > 0  # diffs older than the snapshot were discarded
    assert s.ts_other.equal > 0  # trades share microtimestamps; allowed


def test_legacy_recording_aligned_to_rest_snapshots(realdata):
    cf = realdata / "cryptofeed"
    s, findings, snaps = _replay([cf / "legacy_BITSTAMP.ws.19.0.txt", cf / "legacy_BITSTAMP.http.18.0.txt"])
    assert findings == [] and snaps == 10
    assert "btcusd" in s.books and s.books["btcusd"].n_bids > 1000
    assert s.aligner.dropped("btcusd") > 0


def test_alignment_rules():
    s = VENUE.new_session()

    def diff(mts, bids=(), asks=()):
        d = {"timestamp": str(mts // 10**6), "microtimestamp": str(mts), "bids": list(bids), "asks": list(asks)}
        return json.dumps({"data": d, "channel": "diff_order_book_btcusd", "event": "data"})

    s.feed(diff(100, bids=[["10.00", "1"]]))  # before the snapshot: dropped
    s.feed(diff(300, asks=[["11.00", "0"]]))  # after: applied (deletes the ask)
    assert "btcusd" not in s.books  # nothing applied before a snapshot
    rest = json.dumps({"timestamp": "0", "microtimestamp": "200", "bids": [["9.00", "1"]], "asks": [["11.00", "2"], ["12.00", "1"]]})
    assert s.apply_rest_snapshot("btcusd", rest) == []
    b = s.books["btcusd"]
    assert b.best_bid()[0] == 9 and b.best_ask()[0] == 12 and s.aligner.dropped("btcusd") == 1
    s.feed(diff(150, bids=[["9.50", "1"]]))  # older than the snapshot: dropped...
    assert b.best_bid()[0] == 9
    _, f = s.feed(diff(400, bids=[["9.50", "1"]]))
    assert f == [] and b.best_bid()[0] == 9.5
    _, f = s.feed(diff(400))
    assert [x.kind for x in f] == ["duplicate"]
    _, f = s.feed(diff(399))
    assert [x.kind for x in f] == ["out_of_order"]
    _, f = s.feed('{"event":"bts:request_reconnect","channel":"","data":""}', frame_id=7)
    assert [(x.kind, x.frame_id) for x in f] == [("gap", 7)]
    # a snapshot older than every diff seen on a fresh connection is stale
    s.reset()
    s.feed(diff(500))
    assert [x.kind for x in s.apply_rest_snapshot("btcusd", rest)] == ["stale_snapshot"]


def test_classify_and_trades(realdata):
    recs = [d for _, _, k, d in records(realdata / "cryptofeed" / "legacy_BITSTAMP.ws.19.0.txt") if k == "recv"]
    assert {VENUE.classify(t) for t in recs} == {"bts:subscription_succeeded", "diff_order_book/data", "live_trades/trade"}
    trade = [t for t in recs if '"live_trades_btcusd"' in t and '"trade"' in t][0]
    (m,) = VENUE.decode(trade)
    assert m.instrument == "btcusd" and m.side in ("buy", "sell") and m.venue_ts_ns % 1000 == 0
    assert str(m.size) == json.loads(trade)["data"]["amount_str"]


def test_commands_and_acks():
    frames = VENUE.subscribe_frames(["diff_order_book", "live_trades"], ["btcusd"])
    cmds = [VENUE.parse_command(f) for f in frames]
    assert [(c.action, c.channels, c.instruments) for c in cmds] == [
        ("subscribe", ["diff_order_book"], ["btcusd"]),
        ("subscribe", ["live_trades"], ["btcusd"]),
    ]
    assert VENUE.classify(VENUE.ack_frames(cmds[0])[0]) == "bts:subscription_succeeded"
    assert VENUE.classify(VENUE.request_reconnect_frame()) == "bts:request_reconnect"
    for bad in ("", "{}", '{"event":"bts:subscribe"}', '{"event":"bts:subscribe","data":{"channel":3}}'):
        with pytest.raises(DecodeError):
            VENUE.parse_command(bad)
    with pytest.raises(DecodeError):
        VENUE.new_session().apply_rest_snapshot("btcusd", '{"bids": []}')


@pytest.fixture(scope="module")
def warm(realdata):
    recs = [d for _, _, k, d in records(realdata / "cryptofeed" / "BITSTAMP.jsonl.zst") if k == "recv"]
    s = VENUE.new_session(align=False)
    for t in recs[:200]:
        s.feed(t)
    aligned = VENUE.new_session()
    return [t for t in recs if len(t) < 3000], s, aligned


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_PAYLOAD)
def test_random_payloads_raise_only_decode_errors(warm, payload):
    assert_robust(VENUE, warm[1], payload)
    assert_robust(VENUE, warm[2], payload)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_frames_raise_only_decode_errors(warm, data):
    payload = data.draw(mutated_frames(warm[0]))
    assert_robust(VENUE, warm[1], payload)
    assert_robust(VENUE, warm[2], payload)
    try:
        warm[2].apply_rest_snapshot("btcusd", payload)
    except DecodeError:
        pass
