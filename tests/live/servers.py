"""Small loopback venue servers for the live tests (real websockets servers on 127.0.0.1:0)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response


class WsServer:
    """Runs ``script(conn)`` for each connection; ``conn.send`` records what was sent.

    ``auth``: optional ``(headers) -> (status, body) | None``; a status rejects the upgrade."""

    def __init__(self, script: Callable[[Conn], Awaitable[None]], *, auth=None, path: str = "/"):
        self.script = script
        self.auth = auth
        self.path = path
        self.conns: list[Conn] = []
        self.rejected: list[int] = []
        self.handshakes: list[Headers] = []
        self.new_conn = asyncio.Event()
        self._server = None

    async def __aenter__(self):
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process, max_size=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc):
        self._server.close()
        await self._server.wait_closed()

    def _process(self, connection, request):
        self.handshakes.append(request.headers)
        if self.auth is not None:
            r = self.auth(request.headers)
            if r is not None:
                status, body = r
                self.rejected.append(status)
                hdrs = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
                return Response(status, "Unauthorized" if status == 401 else "Error", hdrs, body.encode())
        return None

    async def _handle(self, ws):
        conn = Conn(ws, len(self.conns))
        self.conns.append(conn)
        self.new_conn.set()
        reader = asyncio.ensure_future(conn._read())
        try:
            await self.script(conn)
        finally:
            reader.cancel()

    async def wait_conns(self, n: int, timeout: float = 5.0) -> None:
        async def w():
            while len(self.conns) < n:
                self.new_conn.clear()
                await self.new_conn.wait()
        await asyncio.wait_for(w(), timeout)


class Conn:
    def __init__(self, ws, index: int):
        self.ws = ws
        self.index = index
        self.sent: list[str] = []
        self.received: list[str] = []
        self._got = asyncio.Condition()
        self.closed = False

    async def _read(self):
        try:
            async for m in self.ws:
                async with self._got:
                    self.received.append(m)
                    self._got.notify_all()
        except Exception:  # noqa: BLE001
            pass
        async with self._got:
            self.closed = True
            self._got.notify_all()

    async def send(self, text: str) -> None:
        self.sent.append(text)
        await self.ws.send(text)

    async def wait_count(self, n: int, timeout: float = 30.0) -> None:
        """Until at least ``n`` text frames were received."""
        async def w():
            async with self._got:
                while len(self.received) < n:
                    if self.closed:
                        raise TimeoutError("connection closed")
                    await self._got.wait()
        await asyncio.wait_for(w(), timeout)

    async def expect(self, pred, timeout: float = 5.0) -> str:
        """The first received text frame (in order, from the start) matching ``pred``."""
        async def w():
            async with self._got:
                while True:
                    for m in self.received:
                        if pred(m):
                            return m
                    await self._got.wait()
        return await asyncio.wait_for(w(), timeout)

    async def expect_json(self, **match) -> dict:
        def pred(m):
            try:
                o = json.loads(m)
            except ValueError:
                return False
            return all(_get(o, k) == v for k, v in match.items())
        return json.loads(await self.expect(pred))


def _get(o, dotted: str):
    for part in dotted.split("__"):
        if not isinstance(o, dict):
            return None
        o = o.get(part)
    return o


async def hold(conn: Conn) -> None:
    """Keep a connection open until the client goes away."""
    try:
        await conn.ws.wait_closed()
    except Exception:  # noqa: BLE001
        pass


# ----------------------------------------------------------------- Kalshi-like behaviour


def kalshi_auth_check(public_key):
    from harness.venues import kalshi_auth

    def check(headers):
        res = kalshi_auth.verify(public_key, {k: v for k, v in headers.raw_items()}, "/trade-api/ws/v2")
        if not res.ok:
            return 401, json.dumps({"error": {"code": "authentication_error", "message": res.reason}})
        return None

    return check


def kalshi_frame(type_: str, sid: int | None = None, seq: int | None = None, msg: dict | None = None, id_: int | None = None) -> str:
    o: dict = {"type": type_}
    if id_ is not None:
        o["id"] = id_
    if sid is not None:
        o["sid"] = sid
    if seq is not None:
        o["seq"] = seq
    o["msg"] = msg or {}
    return json.dumps(o, separators=(",", ":"))


def snapshot(ticker: str, sid: int, seq: int) -> str:
    return kalshi_frame("orderbook_snapshot", sid, seq, {"market_ticker": ticker, "market_id": "m-" + ticker,
                                                         "yes_dollars_fp": [["0.4800", "100.00"]],
                                                         "no_dollars_fp": [["0.5000", "50.00"]]})


def delta(ticker: str, sid: int, seq: int, price: str = "0.4800", d: str = "10.00") -> str:
    return kalshi_frame("orderbook_delta", sid, seq, {"market_ticker": ticker, "market_id": "m-" + ticker,
                                                      "price_dollars": price, "delta_fp": d, "side": "yes",
                                                      "ts_ms": 1786309548026})


class FakeKalshi:
    """Answers subscribe (one ``subscribed`` per channel, sids from 1; an orderbook
    snapshot per market), update_subscription (``ok``; ``get_snapshot`` -> a snapshot),
    unsubscribe (``unsubscribed``). ``on_subscribed(conn, sids)`` runs after a subscribe."""

    def __init__(self, on_subscribed=None):
        self.on_subscribed = on_subscribed
        self.commands: list[dict] = []
        self.next_sid = 1
        self.seq: dict[int, int] = {}

    def next_seq(self, sid: int) -> int:
        self.seq[sid] = self.seq.get(sid, 0) + 1
        return self.seq[sid]

    async def __call__(self, conn: Conn) -> None:
        self.seq.clear()
        seen = 0
        sids: dict[str, int] = {}
        markets: list[str] = []
        while True:
            try:
                await conn.wait_count(seen + 1)
            except TimeoutError:
                return
            while seen < len(conn.received):
                cmd = json.loads(conn.received[seen])
                seen += 1
                self.commands.append(cmd)
                p = cmd.get("params", {})
                if cmd["cmd"] == "subscribe":
                    markets = list(dict.fromkeys(markets + p.get("market_tickers", [])))
                    new = {}
                    for ch in p["channels"]:
                        sid = self.next_sid
                        self.next_sid += 1
                        sids[ch] = new[ch] = sid
                        await conn.send(kalshi_frame("subscribed", msg={"channel": ch, "sid": sid}, id_=cmd["id"]))
                    if "orderbook_delta" in new:
                        for t in p.get("market_tickers", []):
                            sid = new["orderbook_delta"]
                            await conn.send(snapshot(t, sid, self.next_seq(sid)))
                    if self.on_subscribed is not None:
                        await self.on_subscribed(conn, dict(sids))
                elif cmd["cmd"] == "update_subscription":
                    sid = p["sids"][0]
                    act = p["action"]
                    if act == "add_markets":
                        markets += p["market_tickers"]
                    elif act == "delete_markets":
                        markets = [m for m in markets if m not in p["market_tickers"]]
                    await conn.send(kalshi_frame("ok", sid, None, {"market_tickers": markets}, id_=cmd["id"]))
                    if act in ("get_snapshot", "add_markets") and sid == sids.get("orderbook_delta"):
                        for t in p["market_tickers"]:
                            await conn.send(snapshot(t, sid, self.next_seq(sid)))
                elif cmd["cmd"] == "unsubscribe":
                    for sid in p["sids"]:
                        await conn.send(kalshi_frame("unsubscribed", sid, self.seq.get(sid, 0), {}, id_=cmd["id"]))
