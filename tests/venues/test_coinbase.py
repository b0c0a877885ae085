"""Coinbase Advanced Trade and Exchange: real recordings, sequence gaps, commands, fuzz."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DecodeError
from harness.venues import get
from harness.venues.base import BookMessage, TradeMessage
from harness.venues.coinbase import VENUE
from tests.venues.realdata_util import ANY_PAYLOAD, assert_robust, mutated_frames, recv_frames

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def at_frames(realdata):
    return [t for _, t in recv_frames(realdata / "cryptofeed" / "COINBASE.jsonl.zst")]


@pytest.fixture(scope="module")
def ex_frames(realdata):
    return [t for _, t in recv_frames(realdata / "cryptofeed" / "legacy_COINBASE.ws.28.0.txt")]


def test_registry_and_endpoints():
    assert get("coinbase") is VENUE and get("coinbase_exchange") is VENUE
    e = VENUE.endpoints
    assert e.classify_url("wss://ws-feed.pro.coinbase.com") == "dead"
    assert e.classify_url("wss://ws-feed.exchange.coinbase.com") == "prod"
    assert e.classify_url("wss://advanced-trade-ws.coinbase.com") == "prod"
    assert e.classify_url("wss://ws-feed-public.sandbox.exchange.coinbase.com") == "demo"


def test_advanced_trade_books_never_crossed_and_no_gap(at_frames):
    assert len(at_frames) == 1030
    s = VENUE.new_session()
    seqs = []
    for i, text in enumerate(at_frames):
        msgs, findings = s.feed(text, frame_id=i)
        assert findings == []
        for b in s.books.values():
            assert not b.is_crossed(), (i, b)
        seqs.append(json.loads(text)["sequence_num"])
    assert seqs == list(range(1030))
    assert set(s.books) == {"BTC-USD", "ETH-USD"}
    btc = s.books["BTC-USD"]
    assert btc.n_bids > 10000 and btc.n_asks > 10000  # the ~5 MB snapshot
    assert btc.best_bid()[0] < btc.best_ask()[0]
    assert len(at_frames[13]) > 4_000_000


def test_deleting_a_frame_is_a_gap_at_that_position(at_frames):
    s = VENUE.new_session()
    findings = []
    for i, text in enumerate(at_frames):
        if i == 500:
            continue
        _, f = s.feed(text, frame_id=i)
        findings += f
    assert len(findings) == 1
    g = findings[0]
    assert (g.kind, g.key, g.expected, g.got, g.frame_id) == ("gap", "sequence_num", 500, 501, 501)


def test_duplicate_and_reset(at_frames):
    s = VENUE.new_session()
    s.feed(at_frames[0], 0)
    s.feed(at_frames[1], 1)
    _, f = s.feed(at_frames[1], 2)
    assert [x.kind for x in f] == ["duplicate"]
    _, f = s.feed(at_frames[0], 3)
    assert [x.kind for x in f] == ["reset"]
    s.reset()
    _, f = s.feed(at_frames[0], 4)
    assert f == []


def test_advanced_trade_classify_and_decode(at_frames):
    names = {VENUE.classify(t) for t in at_frames}
    assert names == {
        "l2_data/snapshot", "l2_data/update", "market_trades/snapshot", "market_trades/update",
        "ticker/snapshot", "ticker/update", "candles/snapshot", "candles/update", "heartbeats", "subscriptions",
    }
    for t in at_frames[:60]:
        msgs = VENUE.decode(t)
        assert all(m.type.split("/")[0] == VENUE.classify(t).split("/")[0] for m in msgs)
    m = VENUE.decode(at_frames[14])[0]
    assert isinstance(m, BookMessage) and not m.snapshot and m.sequence == 14
    assert m.venue_ts_ns == 1786309548505350477  # 2026-08-09T21:05:48.505350477Z, exact
    assert (m.levels[0].side, m.levels[0].price_text, m.levels[0].qty_text) == ("bid", "65062.5", "0.00583")
    assert m.levels[0].price == Decimal("65062.5")
    tr = [m for m in VENUE.decode(at_frames[9]) if isinstance(m, TradeMessage)][0]
    # maker side SELL at the best ask: the taker bought
    assert tr.side == "buy" and tr.price == Decimal("65083.67") and tr.trade_id == "1068572091"


def test_exchange_legacy_books_never_crossed(ex_frames):
    s = VENUE.new_session()
    kinds = set()
    for i, text in enumerate(ex_frames):
        kinds.add(VENUE.classify(text))
        _, findings = s.feed(text, frame_id=i)
        assert findings == []
        for b in s.books.values():
            assert not b.is_crossed(), (i, b)
    assert kinds == {"subscriptions", "snapshot", "l2update", "ticker", "match", "last_match"}
    assert len(s.books) == 10
    # level2 on the old feed carries no sequence; only ticker/match do
    assert not any('"sequence"' in t for t in ex_frames if VENUE.classify(t) in ("snapshot", "l2update"))


def test_exchange_sequence_going_back_is_reported(ex_frames):
    s = VENUE.new_session()
    match = json.loads([t for t in ex_frames if VENUE.classify(t) == "match"][0])
    assert s.feed(json.dumps(match), 1)[1] == []
    ticker = dict(match, type="ticker")  # ticker and match share a sequence: not a duplicate
    assert s.feed(json.dumps(ticker), 2)[1] == []
    assert [x.kind for x in s.feed(json.dumps(match), 3)[1]] == ["duplicate"]
    older = dict(match, sequence=match["sequence"] - 5, trade_id=1)
    f = s.feed(json.dumps(older), 4)[1]
    assert [(x.kind, x.frame_id) for x in f] == [("out_of_order", 4)]
    newer = dict(match, sequence=match["sequence"] + 1000)  # gaps are normal on matches
    assert s.feed(json.dumps(newer), 5)[1] == []


def test_commands_and_acks():
    frames = VENUE.subscribe_frames(["level2", "heartbeats"], ["BTC-USD"])
    assert len(frames) == 2
    cmd = VENUE.parse_command(frames[0])
    assert (cmd.action, cmd.channels, cmd.instruments) == ("subscribe", ["level2"], ["BTC-USD"])
    assert VENUE.parse_command(VENUE.heartbeat_subscribe_frame()).channels == ["heartbeats"]
    (ex,) = VENUE.subscribe_frames(["level2_batch", "matches"], ["BTC-USD"], feed="exchange")
    cmd = VENUE.parse_command(ex)
    assert cmd.channels == ["level2_batch", "matches"] and cmd.params["feed"] == "exchange"
    cmd = VENUE.parse_command('{"type":"subscribe","channels":[{"name":"ticker","product_ids":["ETH-USD"]}]}')
    assert cmd.instruments == ["ETH-USD"]
    ack = VENUE.subscriptions_frame({"level2": ["BTC-USD"]}, sequence_num=3, ts_ns=1786309548229148053)
    assert VENUE.classify(ack) == "subscriptions"
    assert json.loads(ack)["timestamp"] == "2026-08-09T21:05:48.229148053Z"
    assert VENUE.classify(VENUE.exchange_subscriptions_frame({"matches": ["BTC-USD"]})) == "subscriptions"
    for bad in ("x", "[]", "{}", '{"type":"subscribe"}', '{"type":"subscribe","product_ids":5,"channel":"x"}'):
        with pytest.raises(DecodeError):
            VENUE.parse_command(bad)


def test_timestamps_are_exact():
    f = '{"channel":"l2_data","timestamp":"%s","sequence_num":1,"events":[]}'
    for text, ns in [
        ("2026-08-09T21:05:48.1Z", 1786309548100000000),
        ("2026-08-09T21:05:48.000000001Z", 1786309548000000001),
        ("2026-08-09T21:05:48Z", 1786309548000000000),
        ("2026-08-09T23:05:48.5+02:00", 1786309548500000000),
    ]:
        assert VENUE._decode(f % text)[1] == ("at", 1)
        s = VENUE.new_session()
        msg = '{"channel":"l2_data","timestamp":"%s","sequence_num":1,"events":[{"type":"update","product_id":"X","updates":[]}]}'
        (m,), _ = s.feed(msg % text)
        assert m.venue_ts_ns == ns
    with pytest.raises(DecodeError):
        VENUE.decode(f.replace("[]", '[{"type":"update","product_id":"X","updates":[]}]') % "2026-13-09T21:05:48Z")


@pytest.fixture(scope="module")
def warm(at_frames, ex_frames):
    s = VENUE.new_session()
    for t in at_frames[:100]:
        s.feed(t)
    pool = [t for t in at_frames if len(t) < 3000][:300] + [t for t in ex_frames if len(t) < 3000][:300]
    return pool, s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_PAYLOAD)
def test_random_payloads_raise_only_decode_errors(warm, payload):
    assert_robust(VENUE, warm[1], payload)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_frames_raise_only_decode_errors(warm, data):
    assert_robust(VENUE, warm[1], data.draw(mutated_frames(warm[0])))
