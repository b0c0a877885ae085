"""REST polling beside the stream (--rest-poll): a loopback aiohttp server answers the Kalshi
market/orderbook and exchange ticker paths; polls land in the http table on the schedule;
a 429 blocks the host for its Retry-After and the polling goes on."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from harness.config import build_config
from harness.errors import ConfigError
from harness.live.manager import run_record
from harness.live.rest_poll import TokenBucket, parse_retry_after, ticker_request
from tests.live.conftest import db_rows
from tests.live.servers import FakeKalshi, WsServer, hold
from tests.live.test_connection import MARKET, creds, rcfg, vcfg

INTERVAL = 0.2


class RestServer:
    """Kalshi ``/trade-api/v2/markets/{t}[/orderbook]``, Coinbase ``/products/P/ticker``,
    Kraken ``/0/public/Ticker``. ``throttle``: path -> number of 429s to answer first."""

    def __init__(self, throttle: dict[str, int] | None = None, retry_after: str | None = "1"):
        self.throttle = dict(throttle or {})
        self.retry_after = retry_after
        self.hits: list[str] = []

    async def handle(self, request: web.Request):
        path = request.path
        self.hits.append(path)
        if self.throttle.get(path, 0) > 0:
            self.throttle[path] -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response({"error": "too many requests"}, status=429, headers=headers)
        if path.endswith("/orderbook"):
            return web.json_response({"orderbook_fp": {"yes_dollars": [["0.4800", "100.00"]], "no_dollars": [["0.5000", "50.00"]]}})
        if "/markets/" in path:
            t = path.rsplit("/", 1)[-1]
            return web.json_response({"market": {"ticker": t, "yes_bid_dollars": "0.4800", "yes_ask_dollars": "0.5000",
                                                 "last_price_dollars": "0.4900"}})
        if path.endswith("/ticker"):
            return web.json_response({"bid": "67000.01", "ask": "67000.02", "price": "67000.01"})
        if path == "/0/public/Ticker":
            assert request.query["pair"] == "XBTUSD"
            return web.json_response({"error": [], "result": {"XXBTZUSD": {"a": ["67000.02", "1", "1"], "b": ["67000.01", "1", "1"],
                                                                            "c": ["67000.01", "0.1"]}}})
        return web.json_response({}, status=404)

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def _record(cfg, stop_after, credentials=None):
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_record(cfg, credentials=credentials, stop=stop))
    for _ in range(1000):
        if stop_after():
            break
        await asyncio.sleep(0.02)
    stop.set()
    return await task


def _http(path, where=""):
    return db_rows(path, "SELECT venue, url, status, t_sent_mono_ns, t_recv_mono_ns, response_body FROM http "
                         f"{where} ORDER BY t_sent_mono_ns")


async def test_polls_kalshi_market_orderbook_and_exchange_tickers_on_the_schedule(tmp_path, key_file):
    fake = FakeKalshi()
    async with RestServer() as rest, WsServer(fake, path="/trade-api/ws/v2") as ks, WsServer(hold) as cb:
        cfg = rcfg(tmp_path, [vcfg("kalshi", ks.url), vcfg("coinbase", cb.url, rest_url=rest.base),
                              vcfg("kraken", cb.url, instruments=["BTC/USD"], rest_url=rest.base)],
                   rest_poll_s=INTERVAL, rest_rates={"127.0.0.1": 100.0})
        cfg.kalshi.rest_url = rest.base + "/trade-api/v2"
        result = await _record(cfg, lambda: rest.hits.count(f"/trade-api/v2/markets/{MARKET}/orderbook") >= 4,
                               credentials=creds(key_file))
    out = cfg.output
    rows = _http(out)
    urls = {r[1] for r in rows}
    assert {f"{rest.base}/trade-api/v2/markets/{MARKET}", f"{rest.base}/trade-api/v2/markets/{MARKET}/orderbook",
            f"{rest.base}/products/BTC-USD/ticker", f"{rest.base}/0/public/Ticker?pair=XBTUSD"} <= urls
    assert {r[0] for r in rows} == {"kalshi", "coinbase", "kraken"}
    assert all(r[2] == 200 and r[3] < r[4] and r[5] for r in rows)
    # polls are due at start + k * interval: the k-th poll of a URL is never sent before that
    [(start,)] = db_rows(out, "SELECT t_mono_ns FROM events WHERE kind='note' AND detail LIKE '%rest_poll%'")
    for url in urls:
        sends = [r[3] for r in rows if r[1] == url]
        assert len(sends) >= 2
        for k, t in enumerate(sends):
            assert t >= start + k * INTERVAL * 1e9 - 1e6, (url, k)
    assert result.rest_poll.requests == len(rows) and result.rest_poll.errors == 0
    # the freshness check reads these rows against the stream
    from harness.checks.runner import run_checks

    fr = run_checks(out, ["freshness"]).result("freshness")
    assert fr.stats["rest_rows"] == len(rows)
    keys = {(r["venue"], r["field"]) for r in fr.stats["by_key"]}
    assert ("kalshi", "yes_bid") in keys and ("coinbase", "bid") in keys and ("kraken", "ask") in keys


async def test_429_blocks_the_host_for_retry_after_and_polling_goes_on(tmp_path):
    async with RestServer(throttle={"/products/BTC-USD/ticker": 1}, retry_after="1") as rest, WsServer(hold) as cb:
        cfg = rcfg(tmp_path, [vcfg("coinbase", cb.url, rest_url=rest.base)], rest_poll_s=INTERVAL)
        result = await _record(cfg, lambda: rest.hits.count("/products/BTC-USD/ticker") >= 3)
    rows = _http(cfg.output)
    assert [r[2] for r in rows[:2]] == [429, 200] and all(r[2] == 200 for r in rows[1:])
    # the next request to that host went out no sooner than Retry-After after the 429 came back
    assert rows[1][3] - rows[0][4] >= 1.0e9
    ev = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='error'")]
    assert ev == [{"venue": "coinbase", "phase": "rest_poll", "path": "/products/BTC-USD/ticker", "status": 429,
                   "retry_after_s": 1.0, "retry_after_header": True}]
    assert result.rest_poll.throttled == 1 and result.rest_poll.skipped >= 1  # polls due while blocked


async def test_unreachable_rest_is_recorded_never_fatal(tmp_path):
    async with WsServer(hold) as cb:
        cfg = rcfg(tmp_path, [vcfg("coinbase", cb.url, rest_url="http://127.0.0.1:9")], rest_poll_s=INTERVAL)
        seen = []

        def two_errors():
            if cfg.output and len(seen) < 1:
                try:
                    seen.extend(db_rows(cfg.output, "SELECT 1 FROM events WHERE kind='error' LIMIT 2"))
                except Exception:  # noqa: BLE001 - not created yet
                    pass
            return bool(seen)

        result = await _record(cfg, two_errors)
    assert result.stats["coinbase"].fatal is None
    rows = _http(cfg.output)
    assert rows and rows[0][2] is None and rows[0][5].startswith("<error")
    ev = json.loads(db_rows(cfg.output, "SELECT detail FROM events WHERE kind='error'")[0][0])
    assert ev["phase"] == "rest_poll" and "failed" in ev["error"]


def test_token_bucket_rate_burst_and_block():
    now = [100.0]
    b = TokenBucket(2.0, 3.0, now=lambda: now[0])
    for _ in range(3):
        assert b.delay() == 0
        b.tokens -= 1
    assert b.delay() == pytest.approx(0.5)
    now[0] += 0.5
    assert b.delay() == 0
    b.block(10)
    assert b.delay() == pytest.approx(10.0)


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_wall_s=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_ticker_paths():
    assert ticker_request("kraken", "BTC/USD") == ("/0/public/Ticker", {"pair": "XBTUSD"})
    assert ticker_request("bitstamp", "btcusd") == ("/api/v2/ticker/btcusd/", {})
    assert ticker_request("gemini", "BTCUSD") == ("/v1/pubticker/btcusd", {})
    assert ticker_request("cryptocom", "BTC_USD") == ("/public/get-tickers", {"instrument_name": "BTC_USD"})


def test_config_keys_and_errors(tmp_path):
    f = tmp_path / "h.toml"
    f.write_text('output = "x.db"\nexchanges = ["kraken"]\nrest_poll = "5s"\n[rest_rates]\n"api.kraken.com" = 0.5\n'
                 '[venues.kraken]\nrest_url = "http://127.0.0.1:1"\n')
    c = build_config(config_path=str(f))
    assert c.rest_poll_s == 5.0 and c.rest_rates == {"api.kraken.com": 0.5} and c.venues["kraken"].rest_url == "http://127.0.0.1:1"
    assert build_config(config_path=str(f), rest_poll="2").rest_poll_s == 2.0
    assert build_config(output="y.db", exchanges="kraken").rest_poll_s is None
    with pytest.raises(ConfigError, match="not being recorded"):
        build_config(output="y.db", exchanges="kraken", rest_urls=["gemini=http://127.0.0.1:1"])
    with pytest.raises(ConfigError, match="bad URL"):
        build_config(output="y.db", exchanges="kraken", rest_urls=["kraken=ftp://x"])
    with pytest.raises(ConfigError):
        build_config(output="y.db", exchanges="kraken", rest_poll="-1")


async def test_polls_follow_the_15_minute_rollover(tmp_path, key_file):
    from datetime import UTC, datetime

    from harness.config import KalshiConfig, RecordConfig, VenueConfig
    from harness.live.rest import FastClock
    from tests.live.test_rest_rollover import MarketsServer, Q, market

    start = int(datetime(2026, 7, 19, 15, 41, tzinfo=UTC).timestamp()) * 10**9
    clock = FastClock(start, rate=900.0)  # a 15-minute window lasts 1 s
    c1 = Q * ((start // Q) + 1)
    t1, t2, t3 = (market(c)["ticker"] for c in (c1, c1 + Q, c1 + 2 * Q))
    fake = FakeKalshi()
    async with MarketsServer(clock.now_ns, ahead_s=90) as rest, WsServer(fake, path="/trade-api/ws/v2") as ws:
        cfg = RecordConfig(
            output=str(tmp_path / "roll.db"),
            venues={"kalshi": VenueConfig(name="kalshi", url=ws.url, channels=["orderbook_delta"], ping_interval=None)},
            kalshi=KalshiConfig(series=["KXBTC15M"], rest_url=rest.url, rollover_lead_s=60, close_grace_s=5, poll_s=600),
            status=False, rest_poll_s=60.0)  # simulated seconds: the recorder's clock paces the polls
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds(key_file), clock=clock, stop=stop))

        def polled():
            try:
                return [u for (u,) in db_rows(cfg.output, "SELECT url FROM http WHERE url LIKE '%/orderbook' ORDER BY id")]
            except Exception:  # noqa: BLE001 - not written yet
                return []

        for _ in range(300):
            if any(t3 in u for u in polled()):
                break
            await asyncio.sleep(0.02)
        stop.set()
        await task
    order = []
    for u in polled():  # the loopback server has no market endpoint (404): the URLs are what counts
        t = u.rsplit("/", 2)[-2]
        if t not in order:
            order.append(t)
    assert order[:3] == [t1, t2, t3]
    urls = polled()
    last_t1 = max(i for i, u in enumerate(urls) if f"/{t1}/" in u)
    first_t3 = min(i for i, u in enumerate(urls) if f"/{t3}/" in u)
    assert last_t1 < first_t3  # the closed market is no longer polled
