"""Gemini v2 marketdata: both recordings never crossed, snapshot replacement, fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DecodeError
from harness.venues import get
from harness.venues.base import BookMessage, TradeMessage
from harness.venues.gemini import VENUE
from tests.venues.realdata_util import ANY_PAYLOAD, assert_robust, mutated_frames, recv_frames

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module", params=["GEMINI.jsonl.zst", "legacy_GEMINI.ws.36.0.txt"])
def frames(request, realdata):
    return [t for _, t in recv_frames(realdata / "cryptofeed" / request.param)]


def test_registry():
    assert get("gemini") is VENUE
    assert VENUE.endpoints.classify_url("wss://api.gemini.com/v2/marketdata/") == "prod"
    assert VENUE.endpoints.classify_url("wss://api.sandbox.gemini.com/v2/marketdata") == "demo"


def test_books_never_crossed(frames):
    s = VENUE.new_session()
    first = {}
    for i, text in enumerate(frames):
        msgs, findings = s.feed(text, frame_id=i)
        assert findings == []
        for m in msgs:
            if isinstance(m, BookMessage):
                first.setdefault(m.instrument, m.snapshot)
        for b in s.books.values():
            assert not b.is_crossed(), (i, b)
    assert len(s.books) == 10 and "BTCUSD" in s.books
    assert all(first.values())  # the first l2_updates per symbol is the full book
    assert s.books["BTCUSD"].n_bids > 1000


def test_classify_top_level_type_with_nested_trades(frames):
    names = {VENUE.classify(t) for t in frames}
    assert names == {"l2_updates", "trade", "heartbeat"}
    initial = [t for t in frames if '"trades"' in t][0]
    msgs = VENUE.decode(initial)
    assert VENUE.classify(initial) == "l2_updates"
    assert isinstance(msgs[0], BookMessage) and msgs[0].snapshot
    assert all(isinstance(m, TradeMessage) and m.venue_ts_ns for m in msgs[1:])


def test_new_snapshot_replaces_the_book():
    s = VENUE.new_session()
    snap = {"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "10", "1"], ["buy", "9", "1"], ["sell", "11", "1"]], "trades": []}
    s.feed(json.dumps(snap))
    s.feed(json.dumps({"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "8", "1"]]}))
    assert s.books["BTCUSD"].n_bids == 3
    s.reset()  # reconnect: the next l2_updates is the full book, stale levels must go
    s.feed(json.dumps(dict(snap, changes=[["buy", "10", "2"], ["sell", "12", "1"]])))
    b = s.books["BTCUSD"]
    assert b.n_bids == 1 and b.best_bid()[1] == 2 and b.best_ask()[0] == 12
    _, f = s.feed(json.dumps({"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "12.5", "1"]]}), frame_id=3)
    assert [(x.kind, x.frame_id) for x in f] == [("crossed", 3)]
    _, f = s.feed(json.dumps({"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "12.5", "0"]]}))
    assert f == [] and not b.is_crossed()


def test_commands():
    (frame,) = VENUE.subscribe_frames(["l2"], ["BTCUSD", "ETHUSD"])
    cmd = VENUE.parse_command(frame)
    assert (cmd.action, cmd.channels, cmd.instruments) == ("subscribe", ["l2"], ["BTCUSD", "ETHUSD"])
    assert VENUE.ack_frames(cmd) == []
    assert VENUE.classify(VENUE.heartbeat_frame(1)) == "heartbeat"
    for bad in ("", "{}", '{"type":"subscribe"}', '{"type":"subscribe","subscriptions":[{"symbols":[]}]}'):
        with pytest.raises(DecodeError):
            VENUE.parse_command(bad)


@pytest.fixture(scope="module")
def warm(realdata):
    recs = [t for _, t in recv_frames(realdata / "cryptofeed" / "legacy_GEMINI.ws.36.0.txt")]
    s = VENUE.new_session()
    for t in recs[:100]:
        s.feed(t)
    return [t for t in recs if len(t) < 3000], s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_PAYLOAD)
def test_random_payloads_raise_only_decode_errors(warm, payload):
    assert_robust(VENUE, warm[1], payload)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_frames_raise_only_decode_errors(warm, data):
    assert_robust(VENUE, warm[1], data.draw(mutated_frames(warm[0])))
