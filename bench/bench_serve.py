"""Impersonation server: unpaced throughput against a bare websockets send loop, and pacing
lateness at speed 1 with the default and the precise timer.

The servers run in this process; the client (plain websockets) runs in a subprocess so
the two do not share an event loop. Throughput: N Kalshi ``orderbook_delta`` frames read
from a recording, filtered, sid/seq rewritten, sent to one client, versus the same
payloads sent from a preloaded list by a bare ``websockets`` handler. Pacing: a synthetic
recording of one frame per millisecond for PACE_S seconds replayed at speed 1.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

from bench.common import Row

N = 100_000
PACE_S = 3.0
PAYLOAD = '{"type":"orderbook_delta","sid":7,"seq":%d,"msg":{"market_ticker":"KXBTC15M-26JUL191145-45","market_id":"x","price_dollars":"0.4800","delta_fp":"10.00","side":"yes","ts_ms":1786309548026}}'
SUB = '{"id":1,"cmd":"subscribe","params":{"channels":["orderbook_delta"],"market_tickers":["KXBTC15M-26JUL191145-45"]}}'
HEADERS = {"KALSHI-ACCESS-KEY": "bench", "KALSHI-ACCESS-SIGNATURE": "c2lnbmF0dXJl"}

CLIENT = r"""
import asyncio, sys, time, json
from websockets.asyncio.client import connect
async def main(url, sub, headers):
    n = 0
    headers = dict(json.loads(headers), **{"KALSHI-ACCESS-TIMESTAMP": str(int(time.time() * 1000))})
    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        t = time.perf_counter()
        await ws.send(sub)
        try:
            async for m in ws:
                n += 1
        except Exception:
            pass
        el = time.perf_counter() - t
    print(n, el)
asyncio.run(main(*sys.argv[1:4]))
"""

NOTES = [
    f"- serve: throughput is {N:,} Kalshi deltas (~200 B) to one client in a separate process; the bare "
    "baseline sends the same payloads from a preloaded list (no recording reads, no routing, no sid/seq rewrite).",
    f"- serve: pacing is {PACE_S:.0f} s of one frame per ms at speed 1 (lateness = send time minus the absolute "
    "schedule's deadline, measured by the server's Schedule); precise mode spins the last 1.5 ms.",
]


def _recording(path: str, n: int, step_ns: int) -> None:
    from harness.store.writer import RecordingWriter

    w = RecordingWriter(path, mode="simulate")
    c = w.connection("kalshi", "wss://external-api-ws.kalshi.com/trade-api/ws/v2", 0)
    w.frame(c, "out", 1, 0, "text", SUB)
    for i in range(n):
        w.frame(c, "in", 1_000 + i * step_ns, i * step_ns, "text", PAYLOAD % (i + 1))
    w.close()


async def _client(url: str) -> tuple[int, float]:
    import json

    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, url, SUB, json.dumps(HEADERS),
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    n, el = out.split()
    return int(n), float(el)


async def _ours(path: str, **kw) -> tuple[int, float, dict]:
    from harness.replay.server import ImpersonationServer

    async with ImpersonationServer(path, **kw) as srv:
        n, el = await _client(srv.urls["kalshi"])
        return n, el, srv.stats


async def _bare(payloads: list[str]) -> tuple[int, float]:
    from websockets.asyncio.server import serve

    async def handler(ws):
        await ws.recv()
        send = ws.send
        for p in payloads:
            await send(p)
        await ws.close()

    async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None, write_limit=64 * 1024) as s:
        port = next(iter(s.sockets)).getsockname()[1]
        return await _client(f"ws://127.0.0.1:{port}/trade-api/ws/v2")


def run() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        big = os.path.join(d, "max.db")
        _recording(big, N, 1_000)
        payloads = [PAYLOAD % (i + 1) for i in range(N)]
        best_ours = best_bare = float("inf")
        for _ in range(2):
            n, el = asyncio.run(_bare(payloads))
            assert n == N, n
            best_bare = min(best_bare, el)
            n, el, _ = asyncio.run(_ours(big, speed="max"))
            assert n == N + 1, n  # + the subscribed ack
            best_ours = min(best_ours, el)
        r = Row("serve", "serve --speed max to one client", N / best_ours, "frames/s", N / best_bare, ">= 0.8x bare websockets send loop")
        r.ok = r.ratio >= 0.8
        rows.append(r)

        pace = os.path.join(d, "pace.db")
        n_pace = int(PACE_S * 1000)
        _recording(pace, n_pace, 1_000_000)
        for precise, target in ((False, 1.5), (True, 0.2)):
            t = time.perf_counter()
            n, el, st = asyncio.run(_ours(pace, speed=1, precise=precise))
            lat = st["lateness"]
            name = "serve --speed 1 send lateness p99" + (" (precise)" if precise else " (default timer)")
            rows.append(Row("serve", name, lat["p99_ms"], "ms", None, f"< {target} ms", lat["p99_ms"] < target,
                            f"{lat['n']} frames over {time.perf_counter() - t:.1f}s; p50 {lat['p50_ms']} ms, max {lat['max_ms']} ms"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
