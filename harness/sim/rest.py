"""The REST requests a simulated client makes beside the recorder (the impersonation
server answers them from the source recording's ``http`` rows at the replay's time).

``RestCompanion`` writes every exchange to the capture's ``http`` table (real requests over
loopback, real receive times, mapped onto the simulated timeline like everything else):
- the Bitstamp ``/api/v2/order_book/btcusd/`` snapshot when a ``diff_order_book``
  subscription is acknowledged (the alignment point of the diff stream);
- ``GET /markets/{ticker}`` of each Kalshi market ``settle_fetch_s`` after its close, for
  the settlement index value (``expiration_value``) the WebSocket never carries.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

NS = 1_000_000_000


class RestCompanion:
    """See the module docstring. ``writer`` is the capture's writer."""

    def __init__(self, writer, base_url: str, clock, *, markets: list[dict], settle_fetch_s: float = 20.0):
        self.writer = writer
        self.base_url = base_url
        self.clock = clock
        self.markets = markets
        self.settle_fetch_ns = int(settle_fetch_s * NS)
        self.tasks: set[asyncio.Task] = set()
        self.session: aiohttp.ClientSession | None = None
        self.fetches = 0
        self.failures = 0

    # observer hook (harness.live.observe): a Bitstamp diff subscription acknowledged
    def on_frame(self, frame) -> None:
        if frame.venue == "bitstamp" and frame.dir == "in" and isinstance(frame.payload, str) \
                and "bts:subscription_succeeded" in frame.payload and "diff_order_book" in frame.payload:
            self._spawn(self.fetch("bitstamp", "/api/v2/order_book/btcusd/"))

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def fetch(self, venue: str, path: str) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=10))
        url = self.base_url + path
        t_sent, m_sent = time.time_ns(), time.monotonic_ns()
        try:
            async with self.session.get(url, headers={"Accept": "application/json"}) as r:
                body = await r.text()
                status = r.status
                headers = {"Content-Type": r.headers.get("Content-Type", "")}
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self.failures += 1
            self.writer.event("error", time.time_ns(), time.monotonic_ns(), None,
                              {"venue": venue, "phase": "rest", "error": f"{type(e).__name__}: {e}"[:300]})
            return
        self.fetches += 1
        self.writer.http("GET", url, time.time_ns(), status=status, venue=venue, request_headers={"Accept": "application/json"},
                         response_headers=headers, response_body=body, t_sent_ns=t_sent, t_sent_mono_ns=m_sent,
                         t_recv_mono_ns=time.monotonic_ns())

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch each market's settlement after its close (until ``stop``)."""
        due = sorted((m["close_ns"] + self.settle_fetch_ns, m["ticker"]) for m in self.markets)
        for at, ticker in due:
            while not stop.is_set() and self.clock.now_ns() < at:
                wait = (at - self.clock.now_ns()) / NS
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.001, wait / self.clock.rate))
                except TimeoutError:
                    pass
            if stop.is_set():
                break
            self._spawn(self.fetch("kalshi", f"/trade-api/v2/markets/{ticker}"))

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
