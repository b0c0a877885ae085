"""REST serving: plain HTTP GETs on recorded REST paths get the latest recorded answer at
the replay's current time; anything else gets a Kalshi-style JSON 404. Clients are aiohttp
(as the recorder's REST code) and the recorder's own ``KalshiRest``."""

from __future__ import annotations

import json

import aiohttp
import pytest

from harness.live.rest import KalshiRest
from harness.replay.rest_replay import RestTable, query_key
from harness.replay.server import ImpersonationServer
from harness.store.reader import Recording
from harness.store.writer import RecordingWriter

from .serve_util import (
    KALSHI_PATH,
    M1,
    M2,
    T0,
    collect,
    kalshi_frames,
    new_key,
    sign_headers,
    sub_cmd,
)

MONO0 = 5_000_000_000
KALSHI_REST = "https://api.elections.kalshi.com/trade-api/v2"
DISCOVERY = "/markets?series_ticker=KXBTC15M&status=open&limit=1000"


def market_body(ticker: str, yes_bid: str) -> str:
    return json.dumps({"market": {"ticker": ticker, "yes_bid_dollars": yes_bid}})


def build(path) -> None:
    """The tiny Kalshi stream (2 s) plus REST exchanges around it."""
    w = RecordingWriter(path, mode="simulate", started_ns=T0)

    def http(url, t_off, body, status=200, venue="kalshi", headers=None):
        w.http("GET", url, T0 + t_off, status=status, venue=venue, response_body=body,
               response_headers=headers, t_sent_ns=T0 + t_off - 1000, t_sent_mono_ns=MONO0 + t_off - 1000,
               t_recv_mono_ns=MONO0 + t_off)

    listing = {"markets": [{"ticker": M1, "status": "active"}, {"ticker": M2, "status": "active"}], "cursor": ""}
    http(KALSHI_REST + DISCOVERY, -100_000_000, json.dumps(listing))  # before the first frame
    http(f"{KALSHI_REST}/markets/{M1}", 500_000_000, market_body(M1, "0.47"))
    http(f"{KALSHI_REST}/markets/{M1}", 1_500_000_000, market_body(M1, "0.52"))
    http(f"{KALSHI_REST}/markets/{M2}", 700_000_000, "rate limited", status=429, headers={"Content-Type": "text/plain"})
    http(f"{KALSHI_REST}/markets/{M2}/orderbook", 800_000_000, None, status=None)  # a network error: nothing to serve
    # an exchange ticker recorded without a venue: the venue comes from the host
    http("https://api.exchange.coinbase.com/products/BTC-USD/ticker", 300_000_000, '{"price":"60000.00"}', venue=None)
    http("https://api.kraken.com/0/public/Ticker?pair=XBTUSD&x=1", 300_000_000, '{"result":{}}', venue="kraken")
    k = w.connection("kalshi", "wss://external-api-ws.kalshi.com/trade-api/ws/v2", T0)
    for t, text in kalshi_frames():
        w.frame(k, "in", T0 + t, MONO0 + t, "text", text)
    w.close()


@pytest.fixture(scope="module")
def key():
    return new_key()


@pytest.fixture
def rec(tmp_path):
    p = tmp_path / "rest.db"
    build(p)
    return p


async def get(srv, path) -> tuple[int, str, str]:
    base = f"http://127.0.0.1:{srv.port}"
    async with aiohttp.ClientSession() as s, s.get(base + path) as r:
        return r.status, await r.text(), r.headers.get("Content-Type", "")


def test_table_answers_latest_at_or_before_now(rec):
    with Recording(rec) as r:
        t = RestTable.load(r, {s: r.session_offset_ns(s) for s in r.session_ids()})
    assert len(t) == 6 and t.skipped == 1
    p = f"/trade-api/v2/markets/{M1}"
    assert t.lookup(p, "", T0 + 499_999_999) is None
    # a client asking a little early gets the first answer (lead), not much earlier
    assert json.loads(t.lookup(p, "", T0, lead_ns=500_000_000).body)["market"]["yes_bid_dollars"] == "0.47"
    assert t.lookup(p, "", T0 - 1, lead_ns=500_000_000) is None
    assert json.loads(t.lookup(p, "", T0 + 500_000_000).body)["market"]["yes_bid_dollars"] == "0.47"
    assert json.loads(t.lookup(p, "", T0 + 1_499_999_999).body)["market"]["yes_bid_dollars"] == "0.47"
    assert json.loads(t.lookup(p, "", T0 + 10**12).body)["market"]["yes_bid_dollars"] == "0.52"
    # the query is compared without regard to order; a different value is another request
    assert t.lookup("/trade-api/v2/markets", "limit=1000&status=open&series_ticker=KXBTC15M", T0) is not None
    assert t.lookup("/trade-api/v2/markets", "limit=1000&status=closed&series_ticker=KXBTC15M", T0) is None
    assert query_key("a=1&b=2&a=0") == (("a", "0"), ("a", "1"), ("b", "2"))
    assert t.resolve("/coinbase/products/BTC-USD/ticker") == ("coinbase", "/products/BTC-USD/ticker")
    assert t.resolve("/gemini/products/BTC-USD/ticker") is None


async def test_rest_follows_the_stream(rec, key):
    async with ImpersonationServer(rec, speed=None, rest_lead_s=0) as srv:
        # before any stream the replay is at the recording's start: discovery is there,
        # the market's first answer (0.5 s in) is not yet
        st, body, ctype = await get(srv, "/trade-api/v2/markets?status=open&limit=1000&series_ticker=KXBTC15M")
        assert st == 200 and ctype == "application/json"
        assert [m["ticker"] for m in json.loads(body)["markets"]] == [M1, M2]
        st, body, _ = await get(srv, f"/trade-api/v2/markets/{M1}")
        assert st == 404 and json.loads(body)["error"]["code"] == "not_found"
        assert "no recorded REST response at this point" in json.loads(body)["error"]["details"]
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta"], [M1, M2])], sign_headers(key))
        assert code == 1000 and len(got) > 40
        # the stream has been played to its end (2 s): the latest answer is served
        st, body, _ = await get(srv, f"/trade-api/v2/markets/{M1}")
        assert st == 200 and json.loads(body)["market"]["yes_bid_dollars"] == "0.52"
        st, body, ctype = await get(srv, f"/trade-api/v2/markets/{M2}")
        assert (st, body, ctype) == (429, "rate limited", "text/plain")
        # recorded without a response: never served
        st, _, _ = await get(srv, f"/trade-api/v2/markets/{M2}/orderbook")
        assert st == 404
        st, body, _ = await get(srv, "/products/BTC-USD/ticker")
        assert (st, body) == (200, '{"price":"60000.00"}')
        st, _, _ = await get(srv, "/coinbase/products/BTC-USD/ticker")
        assert st == 200
        st, _, _ = await get(srv, "/0/public/Ticker?x=1&pair=XBTUSD")
        assert st == 200
        for unknown in ("/", "/trade-api/v2/exchange/status", "/0/public/Ticker?pair=ETHUSD", "/etc/passwd",
                        KALSHI_PATH, "/kalshi/products/BTC-USD/ticker"):
            st, body, ctype = await get(srv, unknown)
            assert st == 404 and ctype == "application/json", unknown
            assert json.loads(body)["error"]["code"] == "not_found"
        s = srv.stats
        assert s["rest_served"] == 6 and s["rest_not_found"] == 8


async def test_paced_rest_never_behind_the_frames_sent(rec, key):
    """At speed 1 a REST answer reflects at least the recorded time of the frames already
    received (a lower bound: the answer may be newer, never older)."""
    async with ImpersonationServer(rec, speed=1) as srv:
        got, _ = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta"], [M1, M2])], sign_headers(key), limit=15)
        last = json.loads(got[-1][1])
        assert last["type"] == "orderbook_delta" and last["msg"]["ts_ms"] >= 1786000000000 + 11  # >= 0.6 s in
        st, body, _ = await get(srv, f"/trade-api/v2/markets/{M1}")
        assert st == 200 and json.loads(body)["market"]["yes_bid_dollars"] in ("0.47", "0.52")


async def test_early_request_gets_the_first_answer_within_the_lead(rec):
    async with ImpersonationServer(rec, speed=None) as srv:  # default lead 5 s
        st, body, _ = await get(srv, f"/trade-api/v2/markets/{M1}")
        assert st == 200 and json.loads(body)["market"]["yes_bid_dollars"] == "0.47"


async def test_recorder_discovers_markets_against_the_server(rec):
    """The recorder's REST client, pointed at the server, pages /markets as it would live."""
    async with ImpersonationServer(rec, speed=1) as srv:
        async with KalshiRest(f"http://127.0.0.1:{srv.port}/trade-api/v2") as rest:
            markets = await rest.markets(series="KXBTC15M")
        assert [m.ticker for m in markets] == [M1, M2]

