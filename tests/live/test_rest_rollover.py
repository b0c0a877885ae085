"""Kalshi REST discovery (cursor paging, recorded and redacted; vcrpy cassettes recorded
against a local aiohttp server) and 15-minute market rollover on an accelerated clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import vcr
from aiohttp import web

from harness.config import BackoffConfig, KalshiConfig, RecordConfig, VenueConfig
from harness.live.manager import run_record
from harness.live.rest import FastClock, KalshiRest
from harness.store.writer import RecordingWriter
from harness.venues import kalshi_auth
from harness.venues.kalshi_markets import kxbtc15m_ticker
from tests.live.conftest import db_rows
from tests.live.servers import FakeKalshi, WsServer

CASSETTES = Path(__file__).resolve().parents[2] / "fixtures" / "cassettes"
Q = 15 * 60 * 10**9
CANARY_ID = "CANARY-REST-KEYID-77aa"
CANARY_SIG = "CANARYSIGNATUREVALUE0123456789abcdef=="


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def market(close_ns: int) -> dict:
    return {"ticker": kxbtc15m_ticker(datetime.fromtimestamp(close_ns / 1e9, tz=UTC)), "event_ticker": "KXBTC15M-E",
            "status": "active", "open_time": _iso(close_ns - Q), "close_time": _iso(close_ns),
            "strike_type": "greater_or_equal", "floor_strike": 67000.5}


class MarketsServer:
    """GET /trade-api/v2/markets: the markets open at ``now()`` (the window's market, plus
    the next one in the last ``ahead_s`` of the window), ``page_size`` per page."""

    def __init__(self, now, ahead_s: float = 90.0, page_size: int = 1):
        self.now = now
        self.ahead_ns = int(ahead_s * 1e9)
        self.page_size = page_size
        self.requests: list[dict] = []

    async def markets(self, request: web.Request):
        self.requests.append(dict(request.query))
        if request.query.get("series_ticker") != "KXBTC15M":
            return web.json_response({"markets": [], "cursor": ""})
        now = self.now()
        close = (now // Q + 1) * Q
        st = request.query.get("status")
        ms = []
        if st in (None, "open"):
            ms.append(market(close))
        if st in (None, "unopened") and close - now <= self.ahead_ns:
            ms.append(dict(market(close + Q), status="initialized"))
        start = int(request.query.get("cursor") or 0)
        page = ms[start:start + self.page_size]
        nxt = start + self.page_size
        return web.json_response({"markets": page, "cursor": str(nxt) if nxt < len(ms) else ""})

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/trade-api/v2/markets", self.markets)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/trade-api/v2"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


# A fixed instant for the cassette: 2026-07-19 15:44:00 UTC, 60 s before a close.
T_FIXED = int(datetime(2026, 7, 19, 15, 44, tzinfo=UTC).timestamp()) * 10**9

_vcr = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="once", match_on=["method", "path", "query"],
               filter_headers=["KALSHI-ACCESS-KEY", "KALSHI-ACCESS-SIGNATURE", "KALSHI-ACCESS-TIMESTAMP", "authorization"],
               decode_compressed_response=True)


async def test_markets_cursor_paging_recorded_and_redacted(tmp_path, caplog):
    async with MarketsServer(lambda: T_FIXED) as srv:
        w = RecordingWriter(tmp_path / "rest.db")
        auth = lambda method, path: {"KALSHI-ACCESS-KEY": CANARY_ID, "KALSHI-ACCESS-SIGNATURE": CANARY_SIG}  # noqa: E731
        with _vcr.use_cassette("kalshi_markets_paging.yaml"):
            async with KalshiRest(srv.url, w, auth=auth, secrets=(CANARY_ID,)) as rest:
                ms = await rest.markets(series="KXBTC15M", status=None)
        w.close()
    assert [m.ticker for m in ms] == ["KXBTC15M-26JUL191145-45", "KXBTC15M-26JUL191200-00"]
    rows = db_rows(tmp_path / "rest.db", "SELECT method, url, status, request_headers, response_body FROM http ORDER BY id")
    assert len(rows) == 2  # two pages
    assert all(r[0] == "GET" and r[2] == 200 and "series_ticker=KXBTC15M" in r[1] for r in rows)
    assert "cursor=1" in rows[1][1]
    assert json.loads(rows[0][4])["markets"][0]["ticker"] == ms[0].ticker
    hdr = json.loads(rows[0][3])
    assert hdr["KALSHI-ACCESS-KEY"] == f"<redacted len={len(CANARY_ID)}>"
    assert hdr["KALSHI-ACCESS-SIGNATURE"] == f"<redacted len={len(CANARY_SIG)}>"
    blobs = (tmp_path / "rest.db").read_bytes() + (CASSETTES / "kalshi_markets_paging.yaml").read_bytes()
    for secret in (CANARY_ID, CANARY_SIG):
        assert secret.encode() not in blobs
        assert secret not in caplog.text


async def test_market_rollover_two_windows_accelerated_clock(tmp_path, key_file):
    # 2026-07-19 15:41 UTC (11:41 ET); 900x: a 15-minute window lasts 1 s
    start = int(datetime(2026, 7, 19, 15, 41, tzinfo=UTC).timestamp()) * 10**9
    clock = FastClock(start, rate=900.0)
    fake = FakeKalshi()
    c1, c2, c3 = 15 * 60 * 10**9 * ((start // Q) + 1), None, None
    c2, c3 = c1 + Q, c1 + 2 * Q
    t1, t2, t3 = (market(c)["ticker"] for c in (c1, c2, c3))
    async with MarketsServer(clock.now_ns, ahead_s=90) as rest, WsServer(fake, path="/trade-api/ws/v2") as ws:
        cfg = RecordConfig(
            output=str(tmp_path / "roll.db"),
            venues={"kalshi": VenueConfig(name="kalshi", url=ws.url, channels=["orderbook_delta", "market_lifecycle_v2"],
                                          stale_timeout=10, ping_interval=None)},
            kalshi=KalshiConfig(series=["KXBTC15M"], rest_url=rest.url, rollover_lead_s=60, close_grace_s=5, poll_s=600),
            backoff=BackoffConfig(base=0.02, cap=0.1), status=False)
        creds = kalshi_auth.credentials_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(key_file)})
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds, clock=clock, stop=stop))

        def deleted(t):
            return any(c["cmd"] == "update_subscription" and c["params"]["action"] == "delete_markets"
                       and c["params"]["market_tickers"] == [t] for c in fake.commands)

        async def until():
            while not deleted(t2):
                await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(until(), 6)
        finally:
            stop.set()
        result = await task
    cmds = [(c["cmd"], c.get("params", {}).get("action"), c["params"].get("market_tickers"), c["params"].get("sids"))
            for c in fake.commands]
    assert cmds[0][0] == "subscribe" and cmds[0][2] == [t1]
    # per sid (two channels): add the next market before dropping the closed one
    assert [c for c in cmds if c[1] in ("add_markets", "delete_markets")][:8] == [
        ("update_subscription", "add_markets", [t2], [1]), ("update_subscription", "add_markets", [t2], [2]),
        ("update_subscription", "delete_markets", [t1], [1]), ("update_subscription", "delete_markets", [t1], [2]),
        ("update_subscription", "add_markets", [t3], [1]), ("update_subscription", "add_markets", [t3], [2]),
        ("update_subscription", "delete_markets", [t2], [1]), ("update_subscription", "delete_markets", [t2], [2]),
    ]
    hist = result.rollover.history
    add2 = next(t for t, kind, ts in hist if kind == "add" and t2 in ts)
    drop1 = next(t for t, kind, ts in hist if kind == "drop" and t1 in ts)
    assert add2 < c1 <= drop1  # next market subscribed before the close; the closed one dropped after it
    # the REST exchanges are in the recording; the new market's snapshot arrived
    assert db_rows(cfg.output, "SELECT count(*) FROM http WHERE status = 200 AND url LIKE '%series_ticker=KXBTC15M%'")[0][0] >= 3
    snaps = [json.loads(r[0])["msg"]["market_ticker"] for r in db_rows(
        cfg.output, "SELECT payload FROM frames WHERE type = 'orderbook_snapshot' ORDER BY id")]
    assert snaps[:3] == [t1, t2, t3]
    assert [r[0] for r in db_rows(cfg.output, "SELECT payload FROM frames WHERE dir='in' AND opcode='text' ORDER BY id")] == ws.conns[0].sent


async def test_lifecycle_message_drops_market_early(tmp_path, key_file):
    start = int(datetime(2026, 7, 19, 15, 41, tzinfo=UTC).timestamp()) * 10**9
    clock = FastClock(start, rate=1.0)  # real time: only the lifecycle message can drop t1
    c1 = Q * ((start // Q) + 1)
    t1 = market(c1)["ticker"]

    async def on_sub(conn, sids):
        await conn.send(json.dumps({"type": "market_lifecycle_v2", "sid": sids["market_lifecycle_v2"], "seq": 1,
                                    "msg": {"market_ticker": t1, "event_type": "determined", "result": "yes"}}))

    fake = FakeKalshi(on_sub)
    async with MarketsServer(clock.now_ns, ahead_s=0) as rest, WsServer(fake, path="/trade-api/ws/v2") as ws:
        cfg = RecordConfig(
            output=str(tmp_path / "lc.db"),
            venues={"kalshi": VenueConfig(name="kalshi", url=ws.url, channels=["orderbook_delta", "market_lifecycle_v2"],
                                          ping_interval=None)},
            kalshi=KalshiConfig(series=["KXBTC15M"], rest_url=rest.url, poll_s=600), status=False)
        creds = kalshi_auth.credentials_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(key_file)})
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds, clock=clock, stop=stop))

        async def until():
            while not any(c["params"].get("action") == "delete_markets" for c in fake.commands):
                await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(until(), 5)
        finally:
            stop.set()
        await task
    dels = [c["params"]["market_tickers"] for c in fake.commands if c["params"].get("action") == "delete_markets"]
    assert dels[0] == [t1]
