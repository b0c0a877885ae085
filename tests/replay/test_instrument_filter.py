"""Exchanges are filtered by instrument, not only by channel: a client subscribed to BTC
gets no ETH frames; frames whose instrument cannot be told are sent."""

from __future__ import annotations

import json

import pytest

from harness.replay.server import ImpersonationServer
from harness.replay.venue_flows import ExchangeFlow, VenueTrack
from harness.store.writer import RecordingWriter

from .serve_util import T0, collect


def _j(o) -> str:
    return json.dumps(o, separators=(",", ":"))


def cb_l2(product, i):
    return _j({"channel": "l2_data", "client_id": "", "timestamp": "2026-08-09T00:00:00Z", "sequence_num": i,
               "events": [{"type": "update", "product_id": product, "updates": [
                   {"side": "bid", "event_time": "2026-08-09T00:00:00Z", "price_level": "1.00", "new_quantity": str(i)}]}]})


def cb_trades(products, i):
    return _j({"channel": "market_trades", "client_id": "", "timestamp": "2026-08-09T00:00:00Z", "sequence_num": i,
               "events": [{"type": "update", "trades": [{"product_id": p, "trade_id": str(i), "price": "1", "size": "1"} for p in products]}]})


def kraken_v2(symbol, i):
    return _j({"channel": "book", "type": "update", "data": [{"symbol": symbol, "bids": [{"price": 1.0, "qty": float(i)}], "asks": [],
                                                              "checksum": 1, "timestamp": "2026-08-09T00:00:00.000000Z"}]})


def kraken_v1(pair, i):
    return f'[336,{{"b":[["1.00000","{i}.00000000","1786000000.000000"]]}},"book-10","{pair}"]'


def gemini(symbol, i):
    return _j({"type": "l2_updates", "symbol": symbol, "changes": [["buy", "1.00", str(i)]]})


def bitstamp(pair, i):
    return _j({"data": {"microtimestamp": str(1786000000000000 + i), "bids": [["1", str(i)]], "asks": []},
               "channel": f"diff_order_book_{pair}", "event": "data"})


def cryptocom(inst, i):
    return _j({"id": -1, "code": 0, "method": "subscribe", "result": {
        "instrument_name": inst, "subscription": f"book.{inst}.10", "channel": "book",
        "data": [{"bids": [["1", str(i), "1"]], "asks": [], "t": 1786000000000 + i}]}})


# venue -> (url, subscribe command for BTC only, frame maker, BTC name, ETH name)
CASES = {
    "coinbase": ("wss://advanced-trade-ws.coinbase.com", {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
                 cb_l2, "BTC-USD", "ETH-USD"),
    "kraken": ("wss://ws.kraken.com/v2", {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}},
               kraken_v2, "BTC/USD", "ETH/USD"),
    "gemini": ("wss://api.gemini.com/v2/marketdata", {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD"]}]},
               gemini, "BTCUSD", "ETHUSD"),
    "bitstamp": ("wss://ws.bitstamp.net", {"event": "bts:subscribe", "data": {"channel": "diff_order_book_btcusd"}},
                 bitstamp, "btcusd", "ethusd"),
    "cryptocom": ("wss://stream.crypto.com/exchange/v1/market", {"id": 1, "method": "subscribe", "params": {"channels": ["book.BTC_USD.10"]}},
                  cryptocom, "BTC_USD", "ETH_USD"),
}
N = 20


def build(path) -> dict[str, list[str]]:
    """Each venue alternates BTC and ETH frames; returns the BTC frames per venue."""
    w = RecordingWriter(path, mode="simulate", started_ns=T0)
    want = {}
    for v, (url, _sub, make, btc, eth) in CASES.items():
        c = w.connection(v, url, T0)
        want[v] = []
        for i in range(N):
            text = make(btc if i % 2 == 0 else eth, i)
            w.frame(c, "in", T0 + i * 1000, T0 + i * 1000, "text", text)
            if i % 2 == 0:
                want[v].append(text)
    # Coinbase: a trades frame naming both (sent: BTC is in it), one naming only ETH (not
    # sent) and a level2 frame without a product_id (instrument unknown: sent)
    c = w.connection("coinbase", CASES["coinbase"][0], T0)
    for i, text in enumerate([cb_trades(["ETH-USD", "BTC-USD"], 100), cb_trades(["ETH-USD"], 101),
                              _j({"channel": "l2_data", "sequence_num": 102, "events": [{"type": "update", "updates": []}]})]):
        w.frame(c, "in", T0 + 10**6 + i, T0 + 10**6 + i, "text", text)
    want["coinbase"] += [cb_trades(["ETH-USD", "BTC-USD"], 100)]
    w.close()
    return want


def _strip_seq(text: str) -> str:
    return json.dumps({k: v for k, v in json.loads(text).items() if k != "sequence_num"}, sort_keys=True)


async def test_btc_subscriber_gets_no_eth_frames(tmp_path):
    rec = tmp_path / "inst.db"
    want = build(rec)
    want["coinbase"].append(_j({"channel": "l2_data", "sequence_num": 102, "events": [{"type": "update", "updates": []}]}))
    async with ImpersonationServer(rec, speed=None) as srv:
        for v, (_url, sub, _make, _btc, eth) in CASES.items():
            subs = [_j(sub)]
            if v == "coinbase":
                subs.append(_j({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "market_trades"}))
            got, code = await collect(srv.urls[v], subs)
            assert code == 1000, v
            data = [t for _, t in got if '"bids"' in t or '"changes"' in t or '"l2_data"' in t or '"trades"' in t]
            assert not any(eth in t and "BTC-USD" not in t for t in data), v
            if v == "coinbase":  # sequence_num is renumbered for the connection
                assert [_strip_seq(t) for t in data] == [_strip_seq(t) for t in want[v]]
            else:
                assert data == want[v], v


def flow(venue, path="/"):
    return ExchangeFlow(VenueTrack(venue=venue, path=path))


def test_kraken_v1_arrays_routed_by_channel_and_pair():
    f = flow("kraken", "/")
    f.on_command(_j({"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}}))
    assert f.match(1, kraken_v1("XBT/USD", 1), None) is True
    assert f.match(1, kraken_v1("ETH/USD", 1), None) is None
    assert f.match(1, '[337,[["1.0","1.0","1786000000.0","b","l",""]],"trade","XBT/USD"]', None) is None  # not subscribed
    assert f.match(1, '{"event":"heartbeat"}', None) is True


@pytest.mark.parametrize("venue", ["coinbase", "kraken", "gemini"])
def test_unsubscribe_one_instrument_keeps_the_other(venue):
    url, sub, make, btc, eth = CASES[venue]
    f = flow(venue)
    both = json.loads(json.dumps(sub))
    if venue == "coinbase":
        both["product_ids"] = [btc, eth]
    elif venue == "kraken":
        both["params"]["symbol"] = [btc, eth]
    else:
        both["subscriptions"][0]["symbols"] = [btc, eth]
    f.on_command(_j(both))
    assert f.match(1, make(btc, 1), None) and f.match(1, make(eth, 1), None)
    off = json.loads(_j(sub).replace(btc, eth))
    if venue == "coinbase":
        off["type"] = "unsubscribe"
    elif venue == "kraken":
        off["method"] = "unsubscribe"
    else:
        off["type"] = "unsubscribe"
    f.on_command(_j(off))
    assert f.match(1, make(btc, 1), None) is True
    assert f.match(1, make(eth, 1), None) is None
    f.on_command(_j(off).replace(eth, btc))
    assert f.match(1, make(btc, 1), None) is None
