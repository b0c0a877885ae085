"""The REST fetches the recorder makes for the pipeline (``harness.live.fetch``), against
real loopback servers: the Bitstamp order book at each ``diff_order_book`` acknowledgement
(again after a reconnect), each Kalshi market's ``/markets/{ticker}`` after its close
(retried while not determined, bounded), and a closed market kept subscribed until its
``determined`` lifecycle message (or the max grace)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from aiohttp import web

from harness.config import BackoffConfig, KalshiConfig, RecordConfig, VenueConfig
from harness.live.fetch import SettlementFetcher, determined
from harness.live.manager import run_record
from harness.live.rest import FastClock, KalshiRest
from harness.store.writer import RecordingWriter
from harness.venues import kalshi_auth
from tests.live.conftest import db_rows
from tests.live.servers import FakeKalshi, WsServer
from tests.live.test_connection import creds, rcfg, vcfg
from tests.live.test_rest_rollover import MarketsServer, Q, market

NS = 10**9
BOOK = {"timestamp": "1786309548", "microtimestamp": "1786309548000000",
        "bids": [["67000", "0.5"], ["66999", "1.0"]], "asks": [["67001", "0.25"], ["67002", "2.0"]]}


class Rest:
    """aiohttp on 127.0.0.1: ``routes`` maps a path to ``(request) -> (status, body)``;
    ``hits`` lists the paths requested."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.hits: list[str] = []

    async def _handle(self, request: web.Request):
        self.hits.append(request.path)
        fn = self.routes.get(request.path)
        if fn is None:
            return web.json_response({"error": "not found"}, status=404)
        status, body = fn(request)
        return web.Response(status=status, text=body, content_type="application/json")

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def _until(pred, timeout: float = 5.0) -> None:
    async def w():
        while not pred():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(w(), timeout)


# ----------------------------------------------------------------- Bitstamp order book


def bts_ack(channel: str) -> str:
    return json.dumps({"event": "bts:subscription_succeeded", "channel": channel, "data": {}})


async def bitstamp_script(conn):
    """Acknowledge each subscribe; the first connection then asks for a reconnect."""
    n = 0
    while True:
        try:
            await conn.wait_count(n + 1, timeout=10)
        except TimeoutError:
            return
        ch = json.loads(conn.received[n])["data"]["channel"]
        n += 1
        await conn.send(bts_ack(ch))
        if conn.index == 0 and n == 2:
            await conn.send(json.dumps({"event": "bts:request_reconnect", "channel": "", "data": ""}))


async def test_bitstamp_ack_fetches_the_rest_book_again_after_a_reconnect(tmp_path):
    routes = {"/api/v2/order_book/btcusd/": lambda r: (200, json.dumps(BOOK))}
    async with Rest(routes) as rest, WsServer(bitstamp_script) as ws:
        cfg = rcfg(tmp_path, [vcfg("bitstamp", ws.url, channels=["diff_order_book", "live_trades"],
                                   instruments=["btcusd"], rest_url=rest.base)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop))
        try:
            await _until(lambda: len(ws.conns) == 2 and rest.hits.count("/api/v2/order_book/btcusd/") == 2)
            await asyncio.sleep(0.1)  # nothing else is fetched (live_trades acks are not diffs)
        finally:
            stop.set()
        result = await task
    assert rest.hits == ["/api/v2/order_book/btcusd/"] * 2
    assert result.books.fetched == ["btcusd", "btcusd"] and result.books.failures == 0
    rows = db_rows(cfg.output, "SELECT venue, url, status, response_body, t_sent_mono_ns FROM http ORDER BY id")
    assert [(v, u, s) for v, u, s, _, _ in rows] == [("bitstamp", rest.base + "/api/v2/order_book/btcusd/", 200)] * 2
    assert json.loads(rows[0][3]) == BOOK
    # each fetch follows its connection's acknowledgement
    acks = db_rows(cfg.output, "SELECT conn_id, t_mono_ns FROM frames WHERE dir='in' AND payload LIKE "
                               "'%subscription_succeeded%diff_order_book_btcusd%' ORDER BY id")
    assert len({c for c, _ in acks}) == 2
    assert acks[0][1] <= rows[0][4] and acks[1][1] <= rows[1][4]


async def test_the_recorded_book_aligns_bitstamp_in_the_checks_and_the_pipeline(tmp_path):
    # a diff older than the snapshot is dropped, a newer one applies: the same rows the
    # recorder writes are what the checks' decoder and the pipeline align to
    from harness.checks.runner import Decoder
    from harness.frame import Frame

    routes = {"/api/v2/order_book/btcusd/": lambda r: (200, json.dumps(BOOK))}
    async with Rest(routes) as rest:
        w = RecordingWriter(tmp_path / "b.db")
        from harness.live.fetch import BookFetcher

        f = BookFetcher(KalshiRest(rest.base, w, venue="bitstamp"))
        await f.fetch("btcusd")
        await f.close()
        w.close()
    [row] = [dict(zip(("venue", "url", "response_body"), r, strict=True))
             for r in db_rows(tmp_path / "b.db", "SELECT venue, url, response_body FROM http")]
    def diff(ts: str, bid: str) -> str:
        return json.dumps({"data": {"timestamp": ts, "microtimestamp": ts + "000000", "bids": [[bid, "1.0"]], "asks": []},
                           "channel": "diff_order_book_btcusd", "event": "data"})

    older, newer = diff("1786309547", "67000.75"), diff("1786309549", "67000.5")
    dec = Decoder()
    dec.on_http(row)
    for i, payload in enumerate((older, newer), start=1):
        view = dec.view(Frame("bitstamp", 1, "in", i, i, "text", payload, None, i))
    book = view.session.books["btcusd"]
    assert str(book.best_bid()[0]) == "67000.5" and str(book.best_ask()[0]) == "67001"

    from harness.pipeline.stages import Pipeline

    p = Pipeline()
    p.attach_http([dict(row, t_recv_ns=1)])
    for i, payload in enumerate((older, newer), start=1):
        p.on_frame(Frame("bitstamp", 7, "in", 1 + i, 1 + i, "text", payload, None, i))
    bid, ask = p.venues["bitstamp"].book.best_bid(), p.venues["bitstamp"].book.best_ask()
    assert (str(bid[0]), str(ask[0])) == ("67000.5", "67001")


# ----------------------------------------------------------------- Kalshi settlement


def market_body(ticker: str, status: str, ev: str | None = None) -> str:
    m = {"ticker": ticker, "status": status, "result": "yes" if ev else ""}
    if ev:
        m["expiration_value"] = ev
    return json.dumps({"market": m})


def test_determined_needs_the_index_value():
    assert determined(market_body("T", "determined", "67001.25"))
    assert determined(market_body("T", "finalized", "67001.25"))
    assert not determined(market_body("T", "closed"))
    assert not determined(json.dumps({"market": {"status": "determined", "result": "yes"}}))
    assert not determined("not json") and not determined("[]")


async def test_settlement_fetched_after_the_close_retried_until_determined_and_bounded(tmp_path):
    start = int(datetime(2026, 7, 19, 15, 44, 50, tzinfo=UTC).timestamp()) * NS  # 10 s before a close
    clock = FastClock(start, rate=100.0)
    close = (start // Q + 1) * Q
    t_ok, t_never = market(close)["ticker"], "KXBTC15M-NEVER"
    answers = {t_ok: 0}

    def ok(r):  # not determined twice, then determined
        answers[t_ok] += 1
        return 200, market_body(t_ok, "determined", "67001.25") if answers[t_ok] >= 3 else market_body(t_ok, "closed")

    routes = {f"/trade-api/v2/markets/{t_ok}": ok,
              f"/trade-api/v2/markets/{t_never}": lambda r: (200, market_body(t_never, "closed"))}
    async with Rest(routes) as rest:
        w = RecordingWriter(tmp_path / "s.db")
        kr = KalshiRest(rest.base + "/trade-api/v2", w)
        events = []
        f = SettlementFetcher(kr, clock=clock, fetch_s=20, retry_s=10, retries=3,
                              event=lambda k, d: events.append((k, d)))
        stop = asyncio.Event()
        task = asyncio.ensure_future(f.run(stop))
        f.track(t_ok, None)  # the close from the ticker
        f.track(t_never, close)
        f.track("KXBTC15M-26JUL191130-30", None)  # closed before it was recorded: skipped
        try:
            await _until(lambda: t_ok in f.done and t_never in f.done)
            await clock.sleep(30)  # nothing more is asked
        finally:
            stop.set()
            await task
            await f.close()
            await kr.close()
            w.close()
    assert f.done == {t_ok: True, t_never: False, "KXBTC15M-26JUL191130-30": False}
    assert answers[t_ok] == 3
    times = {t: [c for c, tt in f.requests if tt == t] for t in (t_ok, t_never)}
    assert len(times[t_never]) == 4  # the first request and 3 retries
    for t, ts in times.items():
        assert ts[0] >= close + 20 * NS, t  # not before the delay
        assert all(b - a >= 10 * NS for a, b in zip(ts, ts[1:], strict=False)), t  # retries spaced by retry_s
    assert [(k, d["market"], d["attempts"]) for k, d in events] == [("note", t_never, 4)]
    rows = db_rows(tmp_path / "s.db", "SELECT venue, url, status, response_body FROM http ORDER BY id")
    assert len(rows) == 7 and {r[0] for r in rows} == {"kalshi"}
    assert json.loads([r for r in rows if r[1].endswith(t_ok)][-1][3])["market"]["expiration_value"] == "67001.25"


# ----------------------------------------------------------------- closed market kept until determined


async def _rollover_run(tmp_path, key_file, *, determined_grace_s: float, send_determined_after_s: float | None):
    """A close 5 s (simulated) after the start, on a 20x clock: returns (clock ns of the
    close, clock ns when delete_markets for that market was seen, fake)."""
    start = int(datetime(2026, 7, 19, 15, 44, 55, tzinfo=UTC).timestamp()) * NS
    clock = FastClock(start, rate=20.0)
    c1 = (start // Q + 1) * Q
    t1 = market(c1)["ticker"]
    state: dict = {}

    async def on_sub(conn, sids):
        state["conn"], state["sids"] = conn, sids

    fake = FakeKalshi(on_sub)
    async with MarketsServer(clock.now_ns, ahead_s=0) as mk, WsServer(fake, path="/trade-api/ws/v2") as ws:
        cfg = RecordConfig(
            output=str(tmp_path / "keep.db"),
            venues={"kalshi": VenueConfig(name="kalshi", url=ws.url, ping_interval=None,
                                          channels=["orderbook_delta", "market_lifecycle_v2"])},
            kalshi=KalshiConfig(series=["KXBTC15M"], rest_url=mk.url, poll_s=600, close_grace_s=5,
                                determined_grace_s=determined_grace_s, settle_fetch_s=0),
            backoff=BackoffConfig(base=0.02, cap=0.1), status=False)
        creds = kalshi_auth.credentials_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(key_file)})
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds, clock=clock, stop=stop))

        def deleted():
            return any(c["params"].get("action") == "delete_markets" and t1 in c["params"]["market_tickers"]
                       for c in fake.commands)

        try:
            if send_determined_after_s is not None:
                # past the close and the close grace: the closed market is still subscribed
                await _until(lambda: clock.now_ns() >= c1 + int(send_determined_after_s * NS) and "conn" in state)
                assert not deleted()
                await state["conn"].send(json.dumps({"type": "market_lifecycle_v2", "sid": state["sids"]["market_lifecycle_v2"],
                                                     "seq": 1, "msg": {"market_ticker": t1, "event_type": "determined",
                                                                       "result": "yes"}}))
            await _until(deleted, timeout=10)
            seen = clock.now_ns()
        finally:
            stop.set()
        result = await task
    return c1, seen, result


async def test_closed_market_kept_until_its_determined_message_then_deleted(tmp_path, key_file):
    c1, seen, result = await _rollover_run(tmp_path, key_file, determined_grace_s=120, send_determined_after_s=12)
    assert c1 + 12 * NS <= seen < c1 + 120 * NS
    drop = next(t for t, kind, ts in result.rollover.history if kind == "drop")
    assert drop >= c1 + 12 * NS


async def test_closed_market_dropped_at_the_max_grace_without_a_determination(tmp_path, key_file):
    c1, seen, result = await _rollover_run(tmp_path, key_file, determined_grace_s=15, send_determined_after_s=None)
    drop = next(t for t, kind, ts in result.rollover.history if kind == "drop")
    assert c1 + 15 * NS <= drop <= seen


# ----------------------------------------------------------------- settlement through the recorder


async def test_recorder_fetches_the_settlement_of_each_recorded_market(tmp_path, key_file):
    start = int(datetime(2026, 7, 19, 15, 44, 55, tzinfo=UTC).timestamp()) * NS
    clock = FastClock(start, rate=20.0)
    c1 = (start // Q + 1) * Q
    t1 = market(c1)["ticker"]
    routes = {
        "/trade-api/v2/markets": lambda r: (200, json.dumps({"markets": [market(c1)] if clock.now_ns() < c1 else [],
                                                              "cursor": ""})),
        f"/trade-api/v2/markets/{t1}": lambda r: (200, market_body(t1, "determined", "67001.25")),
    }
    async with Rest(routes) as rest, WsServer(FakeKalshi(), path="/trade-api/ws/v2") as ws:
        cfg = rcfg(tmp_path, [vcfg("kalshi", ws.url)], markets=())
        cfg.kalshi = KalshiConfig(series=["KXBTC15M"], rest_url=rest.base + "/trade-api/v2", poll_s=600)
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds(key_file), clock=clock, stop=stop))
        try:
            await _until(lambda: f"/trade-api/v2/markets/{t1}" in rest.hits)
            await asyncio.sleep(0.05)
        finally:
            stop.set()
        result = await task
    assert result.settlements.done == {t1: True}
    [(at, t)] = result.settlements.requests  # the default delay (20 s), once: it was determined
    assert t == t1 and at >= c1 + 20 * NS
    rows = db_rows(cfg.output, "SELECT venue, status, response_body FROM http WHERE url LIKE ?", f"%/markets/{t1}")
    assert rows == [("kalshi", 200, market_body(t1, "determined", "67001.25"))]
