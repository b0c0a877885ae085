"""Crypto.com: the legacy v2 recording decodes, v1 shapes, heartbeat reply, fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DecodeError
from harness.venues import get
from harness.venues.base import BookMessage, OtherMessage, TradeMessage
from harness.venues.cryptocom import VENUE
from tests.venues.realdata_util import ANY_PAYLOAD, assert_robust, mutated_frames, recv_frames

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def frames(realdata):
    return [t for _, t in recv_frames(realdata / "cryptofeed" / "CRYPTO.COM.jsonl.zst")]


def test_registry():
    assert get("crypto.com") is VENUE and get("cryptocom") is VENUE
    assert VENUE.endpoints.classify_url("wss://stream.crypto.com/exchange/v1/market") == "prod"
    assert VENUE.ws_path == "/exchange/v1/market"


def test_recording_decodes_without_errors(frames):
    s = VENUE.new_session()
    kinds = {}
    for i, text in enumerate(frames):
        msgs, findings = s.feed(text, frame_id=i)
        assert findings == []
        for m in msgs:
            kinds[type(m).__name__] = kinds.get(type(m).__name__, 0) + 1
        for b in s.books.values():
            assert not b.is_crossed(), (i, b)
    assert kinds["BookMessage"] == 1525 and kinds["TradeMessage"] > 1000
    assert len(s.books) == 10
    assert all(b.n_bids <= 150 and b.n_asks <= 150 for b in s.books.values())
    assert {VENUE.classify(t) for t in frames} == {"book", "ticker", "trade", "candlestick", "subscribe", "public/heartbeat"}
    assert s.last_heartbeat_id == 1637709519420


def test_numbers_keep_wire_text(frames):
    book = [t for t in frames if VENUE.classify(t) == "book"][0]
    (m,) = VENUE.decode(book)
    assert isinstance(m, BookMessage) and m.snapshot and m.venue_ts_ns
    lv = m.levels[0]
    assert lv.price_text in book and str(lv.price) == lv.price_text
    trade = [t for t in frames if VENUE.classify(t) == "trade"][0]
    tm = VENUE.decode(trade)[0]
    assert isinstance(tm, TradeMessage) and tm.side in ("buy", "sell") and tm.trade_id


def test_heartbeat_reply(frames):
    hb = [t for t in frames if VENUE.classify(t) == "public/heartbeat"][0]
    reply = VENUE.heartbeat_reply(hb)
    assert json.loads(reply) == {"id": 1637709519420, "method": "public/respond-heartbeat"}
    (m,) = VENUE.decode(hb)
    assert isinstance(m, OtherMessage) and VENUE.heartbeat_reply(m) == reply
    with pytest.raises(DecodeError):
        VENUE.heartbeat_reply('{"method":"subscribe"}')


def test_v1_snapshot_and_update_sequence():
    s = VENUE.new_session()

    def frame(ch, u, pu=None, bids=(), asks=()):
        d = {"t": 1, "u": u}
        side = {"bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}
        if ch == "book":
            d.update(side)
        else:
            d.update(update=side, pu=pu)
        res = {"instrument_name": "BTCUSD-PERP", "subscription": "x", "channel": ch, "data": [d]}
        return json.dumps({"id": -1, "method": "subscribe", "code": 0, "result": res})

    s.feed(frame("book", 10, bids=[["100.0", "1", "1"]], asks=[["101.0", "1", "1"]]))
    _, f = s.feed(frame("book.update", 11, pu=10, bids=[["100.0", "0", "0"], ["99.5", "2", "1"]]))
    assert f == [] and s.books["BTCUSD-PERP"].best_bid()[0] == 99.5
    _, f = s.feed(frame("book.update", 15, pu=13), frame_id=4)
    assert [(x.kind, x.expected, x.got, x.frame_id) for x in f] == [("gap", 11, 13, 4)]


def test_commands():
    (frame,) = VENUE.subscribe_frames(["book", "trade", "candlestick"], ["BTC_USDT"], id=5, depth=50)
    cmd = VENUE.parse_command(frame)
    assert cmd.channels == ["book", "trade", "candlestick"] and cmd.instruments == ["BTC_USDT"] and cmd.id == 5
    assert cmd.params["depths"] == {"BTC_USDT": 50}
    assert json.loads(VENUE.ack_frames(cmd)[0]) == {"id": 5, "code": 0, "method": "subscribe"}
    assert VENUE.parse_command('{"id":1,"method":"public/respond-heartbeat"}').action == "public/respond-heartbeat"
    for bad in ("", "{}", '{"method":"subscribe"}', '{"method":"subscribe","params":{"channels":[1]}}'):
        with pytest.raises(DecodeError):
            VENUE.parse_command(bad)


@pytest.fixture(scope="module")
def warm(frames):
    s = VENUE.new_session()
    for t in frames[:300]:
        s.feed(t)
    return [t for t in frames if len(t) < 3000], s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_PAYLOAD)
def test_random_payloads_raise_only_decode_errors(warm, payload):
    assert_robust(VENUE, warm[1], payload)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_frames_raise_only_decode_errors(warm, data):
    assert_robust(VENUE, warm[1], data.draw(mutated_frames(warm[0])))
