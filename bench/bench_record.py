"""Live recording: receive-and-persist throughput from a loopback server (in another
process) against a bare websockets receive loop in the same run, the recording step's
added latency per frame, and frame counts."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import tempfile
import time

from bench.common import Row

N = 200_000
PAYLOAD = ('{"type":"orderbook_delta","sid":1,"seq":%d,"msg":{"market_ticker":"KXBTC15M-26JUL191145-45",'
           '"price_dollars":"0.4800","delta_fp":"10.00","side":"yes","ts_ms":1786309548026}}')


def _server(port_q, n: int) -> None:
    from websockets.asyncio.server import serve

    payloads = [PAYLOAD % i for i in range(n)]

    async def handler(ws):
        try:
            async for _ in ws:  # wait for the subscribe frame
                break
            for p in payloads:
                await ws.send(p)
            await ws.wait_closed()
        except Exception:  # noqa: BLE001
            pass

    async def main():
        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as srv:
            port_q.put(srv.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


async def _bare(url: str, n: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, max_size=64 * 2**20, ping_interval=None, proxy=None) as ws:
        await ws.send('{"type":"subscribe"}')
        t = time.perf_counter()
        got = 0
        async for _ in ws:
            got += 1
            if got == n:
                break
        return time.perf_counter() - t


async def _harness(url: str, n: int, path: str, timed: list | None = None) -> tuple[float, int]:
    from harness import venues
    from harness.config import VenueConfig
    from harness.live import connection as lc
    from harness.store.writer import RecordingWriter

    done = asyncio.Event()
    t0 = [0.0]

    class Counting(lc.Handler):
        count = 0

        def on_open(self):
            t0[0] = time.perf_counter()
            return ['{"type":"subscribe"}']

        def on_message(self, payload, fid):
            self.count += 1
            if self.count == n:
                done.set()
            return None

    cfg = VenueConfig(name="kalshi", url=url, ping_interval=None, stale_timeout=None, compression=False)
    w = RecordingWriter(path, mode="live", classify=venues.classify)
    if timed is not None:  # wrap the recording step with a timer
        orig = lc.FrameTap.inbound
        pc = time.perf_counter_ns

        def inbound(self, frame):
            t = pc()
            orig(self, frame)
            timed.append(pc() - t)

        lc.FrameTap.inbound = inbound
    try:
        conn = lc.VenueConnection(cfg, w, Counting(cfg))
        stop = asyncio.Event()
        task = asyncio.ensure_future(conn.run(stop))
        await done.wait()
        el = time.perf_counter() - t0[0]
        stop.set()
        await task
    finally:
        if timed is not None:
            lc.FrameTap.inbound = orig
        w.close()
    import sqlite3

    db = sqlite3.connect(path)
    count = db.execute("SELECT count(*) FROM frames WHERE dir='in' AND opcode='text'").fetchone()[0]
    db.close()
    return el, count


def run() -> list[Row]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_server, args=(q, N), daemon=True)
    proc.start()
    rows: list[Row] = []
    try:
        url = f"ws://127.0.0.1:{q.get(timeout=30)}"
        with tempfile.TemporaryDirectory() as d:
            bare, ours, counts = [], [], []
            for i in range(3):
                bare.append(asyncio.run(_bare(url, N)))
                el, c = asyncio.run(_harness(url, N, os.path.join(d, f"r{i}.db")))
                ours.append(el)
                counts.append(c)
            b, o = min(bare), min(ours)
            r = Row("record", "receive + persist: frames/s (loopback, 1 server process)", N / o, "frames/s", N / b,
                    ">= 0.8x bare websockets receive loop")
            r.ok = r.ratio >= 0.8
            rows.append(r)
            timed: list[int] = []
            asyncio.run(_harness(url, N, os.path.join(d, "t.db"), timed))
            timed.sort()
            p99 = timed[int(len(timed) * 0.99)] / 1000.0
            rows.append(Row("record", "recording step added latency per frame, p99", p99, "µs", None, "< 10 µs", p99 < 10.0,
                            f"median {statistics.median(timed) / 1000:.2f} µs over {len(timed):,} frames (FrameTap.inbound)"))
            rows.append(Row("record", "frames recorded / frames sent", min(counts), "frames", float(N), "== sent",
                            all(c == N for c in counts), f"{len(counts)} runs"))
    finally:
        proc.terminate()
        proc.join(5)
    return rows


NOTES = [
    "- record: the server runs in its own process and sends 200k Kalshi-sized text frames without compression;"
    " the bare baseline is `async for msg in ws` on the same server in the same run.",
]
