"""A loopback WebSocket server, on its own thread, that streams numbered Coinbase-style
frames as fast as the client reads them, for tests that kill a real `harness record`
process. It counts what it sent and when, so a test can compare with what was recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from websockets.asyncio.server import serve

REPO = Path(__file__).resolve().parents[2]


def frame_text(i: int) -> str:
    return ('{"channel":"l2_data","client_id":"","timestamp":"2026-11-25T00:00:00.000000Z","sequence_num":' + str(i)
            + ',"events":[{"type":"update","product_id":"BTC-USD","updates":[]}]}')


def seq_of(payload: str) -> int:
    return int(payload.split('"sequence_num":', 1)[1].split(",", 1)[0])


class Streamer:
    """``with Streamer() as s``: ``s.url``; ``s.sent`` (frames sent, numbered from 1 over all
    connections), ``s.sent_ns[i]`` (wall time frame i+1 was handed to the socket),
    ``s.subscribed`` (set once a client's first command arrived), ``s.limit`` (stop
    streaming after this many, then hold the connection open)."""

    def __init__(self, limit: int | None = None, burst: int = 50):
        self.limit = limit
        self.burst = burst
        self.sent = 0
        self.sent_ns: list[int] = []
        self.subscribed = threading.Event()
        self.done = threading.Event()  # the limit was reached
        self.conns = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self):
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, max_size=None) as server:
            self.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, ws):
        self.conns += 1
        try:
            await ws.recv()  # the subscribe command
            self.subscribed.set()
            while self.limit is None or self.sent < self.limit:
                n = self.burst if self.limit is None else min(self.burst, self.limit - self.sent)
                for _ in range(n):
                    i = self.sent + 1
                    await ws.send(frame_text(i))
                    self.sent = i
                    self.sent_ns.append(time.time_ns())
                await asyncio.sleep(0)
            self.done.set()
            await ws.wait_closed()
        except Exception:  # noqa: BLE001 - the client going away is the point of these tests
            pass


def start_record(db, url, *extra, env=None, **popen):
    """A real `harness record` process recording Coinbase from ``url`` into ``db``."""
    cmd = [sys.executable, "-m", "harness", "record", "-o", str(db), "--exchanges", "coinbase",
           "--url", f"coinbase={url}", "--no-status", *extra]
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    e.update(env or {})
    return subprocess.Popen(cmd, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def committed_seqs(db) -> list[int]:
    """Sequence numbers of the inbound data frames committed so far (a reader beside the
    writer sees exactly the committed transactions)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:  # not created yet
        return []
    try:
        rows = con.execute("SELECT payload FROM frames WHERE dir='in' AND opcode='text' ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()
    return [seq_of(r[0]) for r in rows if r[0] and '"sequence_num"' in r[0]]


def wait_for(pred, timeout: float, what: str, proc=None):
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the recorder exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(proc, sig=signal.SIGTERM, timeout: float = 30):
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the recorder did not exit within {timeout}s of {sig!r}: {err}") from None
    return out, err
