"""Kraken: v1 recording rebuilt with every checksum verified, the docs' v2 checksum
example, truncation, commands, and robustness against garbage."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings

from harness.errors import DecodeError
from harness.venues import get
from harness.venues.kraken import VENUE, checksum, checksum_text
from tests.venues.realdata_util import ANY_PAYLOAD, assert_robust, mutated_frames, recv_frames

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def frames(realdata):
    return recv_frames(realdata / "cryptofeed" / "KRAKEN.jsonl.zst")


@pytest.fixture(scope="module")
def doc_frames(realdata):
    rows = [json.loads(line) for line in open(realdata / "exchange_frames.jsonl", encoding="utf-8")]
    return [r for r in rows if r["exchange"] == "kraken"]


def test_registry():
    assert get("kraken") is VENUE
    assert VENUE.endpoints.classify_url("wss://ws.kraken.com/v2") == "prod"


def test_v1_recording_every_checksum_verifies(frames):
    sessions = {}
    findings = []
    with_c = 0
    for i, (conn, text) in enumerate(frames):
        raw = json.loads(text)  # independent count of book messages carrying "c"
        if isinstance(raw, list) and str(raw[-2]).startswith("book") and any(
            isinstance(p, dict) and "c" in p for p in raw[1:-2]
        ):
            with_c += 1
        s = sessions.setdefault(conn, VENUE.new_session())
        _, f = s.feed(text, frame_id=i)
        findings += f
    assert findings == []
    verified = sum(s.checksums_verified for s in sessions.values())
    assert with_c == 4269
    assert verified == with_c
    assert sum(s.checksums_failed + s.checksums_skipped for s in sessions.values()) == 0
    books = {k: b for s in sessions.values() for k, b in s.books.items()}
    assert len(books) == 10 and "XBT/CHF" in books
    assert all(b.n_bids <= 1000 and b.n_asks <= 1000 and not b.is_crossed() for b in books.values())


def test_v1_corrupted_level_gives_checksum_finding(frames):
    s = VENUE.new_session()
    book_frames = [(i, t) for i, (c, t) in enumerate(frames) if c == "KRAKEN.ws.50"]
    found = []
    for i, text in book_frames:
        if VENUE.classify(text) == "book/update" and not found and i > 500:
            # change one quantity on the wire: the venue's checksum no longer matches
            obj = json.loads(text)
            side = obj[1].get("a") or obj[1].get("b")
            side[0][1] = "%.8f" % (float(side[0][1]) + 1)
            _, f = s.feed(json.dumps(obj), frame_id=i)
            found = f
            assert [x.kind for x in f] == ["checksum"] and f[0].frame_id == i
            assert f[0].expected == int(obj[-3]["c"] if "c" in obj[-3] else obj[1]["c"])
            continue
        s.feed(text, frame_id=i)
    assert found and s.checksums_failed >= 1


def test_docs_v2_checksum_example(doc_frames):
    doc = [r for r in doc_frames if "book-checksum-v2" in r["source"]]
    assert len(doc) == 1
    s = VENUE.new_session()
    msgs, findings = s.feed(doc[0]["frame"])
    assert findings == [] and s.checksums_verified == 1
    assert msgs[0].checksum == 3310070434 == checksum(s.books["BTC/USD"])
    # wire text survives the JSON-number decoding: "0.10000000" keeps its zeros
    lv = [x for x in msgs[0].levels if x.price_text == "45283.5"][0]
    assert lv.qty_text == "0.10000000" and lv.qty == Decimal("0.1")
    assert checksum_text(s.books["BTC/USD"]).startswith("452852100000")


def test_v2_capture_ack_snapshot_update(doc_frames):
    rows = [r for r in doc_frames if "1212448082" in r["source"]]
    s = VENUE.new_session()
    for r in rows:
        _, f = s.feed(r["frame"])
        assert f == []
    assert s.checksums_verified == 2 and s.depths["ETH/USD"] == 10


def test_classify_names(frames, doc_frames):
    names = {VENUE.classify(t) for _, t in frames}
    assert names == {"book/update", "book/snapshot", "heartbeat", "subscriptionStatus", "ticker", "trade", "systemStatus"}
    v2 = {VENUE.classify(r["frame"]) for r in doc_frames if r["type"].startswith("v2")}
    assert {"book/snapshot", "book/update", "status", "heartbeat", "subscribe", "trade/update", "ticker/snapshot"} <= v2
    assert VENUE.classify('{"method":"pong","req_id":1}') == "pong"
    assert VENUE.classify("not json") is None


def test_truncation_to_subscribed_depth():
    s = VENUE.new_session()
    s.feed('{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"X/Y"},"success":true}')
    bids = [{"price": 100 - i, "qty": 1.0} for i in range(10)]
    asks = [{"price": 101 + i, "qty": 1.0} for i in range(10)]
    snap = {"channel": "book", "type": "snapshot", "data": [{"symbol": "X/Y", "bids": bids, "asks": asks}]}
    s.feed(json.dumps(snap))
    upd = {"channel": "book", "type": "update", "data": [{"symbol": "X/Y", "bids": [{"price": 99.5, "qty": 2.0}], "asks": []}]}
    s.feed(json.dumps(upd))
    b = s.books["X/Y"]
    assert b.n_bids == 10 and b.best_bid()[0] == 100 and min(p for p, _ in b.bids_desc()) == Decimal("92")


def test_v1_trade_and_timestamps(frames):
    t = [t for _, t in frames if VENUE.classify(t) == "trade"][0]
    m = VENUE.decode(t)[0]
    assert m.instrument == "XMR/USD" and m.side == "sell" and m.venue_ts_ns == 1618678142557535000
    assert str(m.price) == "354.11000000"


def test_commands_round_trip():
    for version in (1, 2):
        (frame,) = VENUE.subscribe_frames(["book"], ["BTC/USD"], version=version, depth=100, req_id=7)
        cmd = VENUE.parse_command(frame)
        assert (cmd.action, cmd.channels, cmd.instruments, cmd.id) == ("subscribe", ["book"], ["BTC/USD"], 7)
        assert cmd.params["depth"] == 100
        acks = VENUE.ack_frames(cmd)
        assert VENUE.classify(acks[0]) == ("subscribe" if version == 2 else "subscriptionStatus")
        s = VENUE.new_session()
        s.feed(acks[0])
        assert s.depths["BTC/USD"] == 100
        ping = VENUE.parse_command(VENUE.ping_frame(3, version=version))
        assert ping.action == "ping" and VENUE.classify(VENUE.ack_frames(ping)[0]) == "pong"
    for bad in ("", "[]", '{"method":"subscribe"}', '{"event":"subscribe","subscription":[]}', "{"):
        with pytest.raises(DecodeError):
            VENUE.parse_command(bad)


@pytest.fixture(scope="module")
def warm(frames):
    small = [t for _, t in frames if len(t) < 3000]
    s = VENUE.new_session()
    for _, t in frames[:600]:
        s.feed(t)
    return small, s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_PAYLOAD)
def test_random_payloads_raise_only_decode_errors(warm, payload):
    assert_robust(VENUE, warm[1], payload)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=__import__("hypothesis").strategies.data())
def test_mutated_frames_raise_only_decode_errors(warm, doc_frames, data):
    pool = warm[0][:400] + [r["frame"] for r in doc_frames if r["type"].startswith("v2")]
    assert_robust(VENUE, warm[1], data.draw(mutated_frames(pool)))
