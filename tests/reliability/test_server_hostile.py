"""The impersonation server under misbehaving clients (issue #9): garbage after the
handshake, commands with wrong types, 1,000 subscribes, a client that never reads, a
non-loopback --host, unknown paths. Each time the server keeps serving a well-behaved
client and logs no traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.cli import main
from harness.replay.server import ImpersonationServer
from tests.replay.serve_util import (
    M1,
    M2,
    build_recording,
    collect,
    kalshi_frames,
    new_key,
    sign_headers,
    sub_cmd,
)

REPO = Path(__file__).resolve().parents[2]
KEY = new_key()
CB_SUB = json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"})


@pytest.fixture
def rec(tmp_path):
    p = tmp_path / "rec.db"
    build_recording(p)
    return p


@pytest.fixture
def no_tracebacks(caplog):
    """Fails the test if anything was logged with a traceback or at ERROR level."""
    caplog.set_level(logging.INFO)
    yield caplog
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def well_behaved(srv, extra: int = 0) -> None:
    """A normal Kalshi client gets the whole recorded stream (``extra`` frames more than
    the small recording's) and a clean close."""
    want = [t for _, t in kalshi_frames() if json.loads(t)["type"] != "subscribed"]
    limit = len(want) + extra + 2 if srv.loop else None  # looping: read one pass (and the 2 acks)
    got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta", "ticker"], [M1, M2])], sign_headers(KEY),
                              limit=limit)
    data = [t for _, t in got if json.loads(t)["type"] != "subscribed"]
    assert code == ("limit" if srv.loop else 1000) and len(data) == len(want) + extra


async def test_garbage_after_the_handshake(rec, no_tracebacks):
    async with ImpersonationServer(rec, speed=None) as srv:
        for url, headers in ((srv.urls["kalshi"], sign_headers(KEY)), (srv.urls["coinbase"], None), (srv.urls["bitstamp"], None)):
            async with connect(url, additional_headers=headers, max_size=None) as ws:
                replies = []
                for junk in (b"\x00\xff\xfe binary", "not json", "{", "[]", "null", "1e999", '"str"', "{}" * 5000,
                             "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"), "{" * 10_000 + "}" * 10_000):
                    await ws.send(junk)
                    replies.append(json.loads(await ws.recv()))
                assert all("error" in json.dumps(r) for r in replies), replies
            # a frame over the size limit: the server closes that client (1009) and goes on
            async with connect(url, additional_headers=headers, max_size=None) as ws:
                await ws.send("x" * (2**20 + 1))
                with pytest.raises(ConnectionClosed) as ei:
                    await ws.recv()
                assert ei.value.rcvd.code == 1009
        await well_behaved(srv)
        async with asyncio.timeout(5):  # every handler has finished: nothing leaked
            while srv.stats["clients_active"]:
                await asyncio.sleep(0.01)


KALSHI_BAD = [
    '{"id":"one","cmd":"subscribe","params":{"channels":["ticker"]}}',
    '{"id":1,"cmd":5}',
    '{"id":2,"cmd":"subscribe","params":null}',
    '{"id":3,"cmd":"subscribe","params":{"channels":"orderbook_delta"}}',
    '{"id":4,"cmd":"subscribe","params":{"channels":[1,2],"market_tickers":[1,{}]}}',
    '{"id":5,"cmd":"subscribe","params":{"channels":["orderbook_delta"],"market_tickers":"' + M1 + '"}}',
    '{"id":6,"cmd":"update_subscription","params":{"sids":"x","action":"get_snapshot"}}',
    '{"id":7,"cmd":"update_subscription","params":{"sids":[99],"action":"get_snapshot","market_tickers":["' + M1 + '"]}}',
    '{"id":8,"cmd":"unsubscribe","params":{"sids":[-1, 1e30]}}',
    '{"id":-9,"cmd":"list_subscriptions","params":[]}',
    '{"id":10,"cmd":"subscribe","params":{"channels":["orderbook_delta"],"market_tickers":["NOPE"]}}',
    '{"id":18446744073709551616,"cmd":"subscribe","params":{"channels":["ticker"],"market_tickers":["NOPE"]}}',
]
EXCHANGE_BAD = {
    "coinbase": ['{"type":5}', '{"type":"subscribe","product_ids":"BTC-USD","channel":["level2"]}',
                 '{"type":"subscribe","channels":[{"name":7}]}', '{"type":"unsubscribe"}', '{"type":"subscribe","product_ids":[null],"channel":"level2"}'],
    "bitstamp": ['{"event":1}', '{"event":"bts:subscribe","data":[]}', '{"event":"bts:subscribe","data":{"channel":{}}}'],
}


async def test_commands_with_wrong_types(rec, no_tracebacks):
    async with ImpersonationServer(rec, speed=None) as srv:
        async with connect(srv.urls["kalshi"], additional_headers=sign_headers(KEY)) as ws:
            for text in KALSHI_BAD:
                await ws.send(text)
                reply = json.loads(await ws.recv())
                assert reply["type"] == "error", (text, reply)
            # the connection still works
            await ws.send(sub_cmd(20, ["orderbook_delta"], [M1]))
            async with asyncio.timeout(10):
                while (f := json.loads(await ws.recv())).get("id") != 20:
                    assert f["type"] != "error", f
            assert f["type"] == "subscribed"
            ws.transport.abort()  # leave with the stream unread (a close handshake would wait behind it)
        for venue, bad in EXCHANGE_BAD.items():
            async with connect(srv.urls[venue]) as ws:
                for text in bad:
                    await ws.send(text)
                    reply = await asyncio.wait_for(ws.recv(), 5)
                    assert "error" in reply, (venue, text, reply)
        await well_behaved(srv)


async def test_a_thousand_subscribes(rec, no_tracebacks):
    # looping: the stream the first subscribe starts never ends while the rest arrive
    async with ImpersonationServer(rec, speed=None, loop=True) as srv:
        async with connect(srv.urls["kalshi"], additional_headers=sign_headers(KEY), max_size=None) as ws:
            for i in range(1000):
                await ws.send(sub_cmd(i + 1, ["orderbook_delta"], [M1]))
            acks = []
            async with asyncio.timeout(30):
                while len(acks) < 1000:
                    f = json.loads(await ws.recv())
                    if f["type"] == "subscribed":
                        acks.append(f)
            # repeating a subscribe is idempotent: one sid, one subscription
            assert {a["msg"]["sid"] for a in acks} == {1}
            ws.transport.abort()
        async with connect(srv.urls["coinbase"], max_size=None) as ws:
            for i in range(1000):
                await ws.send(json.dumps({"type": "subscribe", "product_ids": [f"X{i}-USD"], "channel": "level2"}))
            n = 0
            async with asyncio.timeout(30):
                while n < 1000:
                    if '"subscriptions"' in await ws.recv():
                        n += 1
            ws.transport.abort()
        c = [x for x in srv.clients if x.venue == "kalshi"][0]
        assert c.commands == 1000
        await well_behaved(srv)


# --------------------------------------------------------------------------- a client that never reads


def _masked(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (RFC 6455), written by hand: no WebSocket library reads
    for this client, so nothing drains its socket."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _raw_client(url: str, headers: dict, first: str) -> socket.socket:
    host_port, path = url[len("ws://"):].split("/", 1)
    host, port = host_port.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: pressure builds fast
    s.connect((host, int(port)))
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    s.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += s.recv(1)  # byte by byte: leave every WebSocket frame unread
    assert resp.startswith(b"HTTP/1.1 101"), resp
    s.sendall(_masked(first.encode()))
    return s


async def test_client_that_never_reads_is_cut_off_with_bounded_memory(tmp_path, no_tracebacks):
    rec = tmp_path / "big.db"
    build_recording(rec, big_frames=150)  # ~9 MB of 60 kB Kalshi frames after the small ones
    write_limit = 64 * 1024
    async with ImpersonationServer(rec, speed=None, write_limit=write_limit, slow_client_s=0.5) as srv:
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(None, _raw_client, srv.urls["kalshi"], sign_headers(KEY),
                                          sub_cmd(1, ["orderbook_delta"], [M1, M2]))
        try:
            async with asyncio.timeout(30):
                while not srv.clients or srv.clients[0].close_code is None:
                    await asyncio.sleep(0.05)
            slow = srv.clients[0]
            assert slow.close_reason.startswith("client not reading"), slow.close_reason
            assert srv.stats["slow_clients"] == 1
            # what the server held for it never exceeded the write limit plus one batch of
            # frames (<= 64 kB + one frame) and one more frame: the rest stayed unread on disk
            assert 0 < slow.buffered_peak <= write_limit + 2 * (64 * 1024 + 61_000)
            assert slow.frames_sent < 150
            assert any("client not reading" in r.getMessage() and r.levelno == logging.WARNING for r in no_tracebacks.records)
        finally:
            sock.close()
        await well_behaved(srv, extra=150)


# --------------------------------------------------------------------------- host and paths


def test_non_loopback_host_needs_allow_remote(rec, capsys):
    with pytest.raises(SystemExit) as ei:
        main(["serve", str(rec), "--host", "0.0.0.0"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to listen on non-loopback host '0.0.0.0'" in err and "--allow-remote" in err
    assert "Traceback" not in err


def test_allow_remote_prints_a_warning(rec, tmp_path):
    urls = tmp_path / "urls.json"
    p = subprocess.Popen([sys.executable, "-m", "harness", "serve", str(rec), "--host", "0.0.0.0", "--allow-remote",
                          "--urls-file", str(urls)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not urls.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert urls.exists(), p.communicate(timeout=5)
        assert json.loads(urls.read_text())["kalshi"].startswith("ws://0.0.0.0:")
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=15)
    assert p.returncode == 0
    assert "warning: listening on 0.0.0.0: the impersonation server is reachable from other machines" in err
    assert "Traceback" not in err


async def test_unknown_paths_get_404(rec, no_tracebacks):
    import aiohttp

    async with ImpersonationServer(rec, speed=None) as srv:
        base = srv.urls["kalshi"].split("/trade-api")[0]
        for path in ("/nope", "/trade-api/ws/v3", "/../../etc/passwd", "/kalshi/../coinbase/", "/" + "a" * 4000):
            with pytest.raises(InvalidStatus) as ei:
                async with connect(base + path, additional_headers=sign_headers(KEY)):
                    pass
            assert ei.value.response.status_code == 404, path
        http = base.replace("ws://", "http://")
        async with aiohttp.ClientSession() as s:
            for path in ("/nope", "/trade-api/v2/markets", "/favicon.ico", "/%00", "/trade-api/ws/v2"):
                async with s.get(http + path) as r:
                    assert r.status == 404, path
                    assert (await r.json())["error"]["code"] == "not_found"
            # websockets parses GET only: any other method is refused by closing the
            # connection without an answer (and without a crash)
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with s.post(http + "/trade-api/v2/markets", data=b"x"):
                    pass
        await well_behaved(srv)
        s = srv.stats
        assert s["not_found"] == 5 and s["rest_not_found"] == 5
