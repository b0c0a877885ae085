"""REST fetches the pipeline needs beside the streams, recorded in the ``http`` table.

- ``BookFetcher``: Bitstamp's ``diff_order_book`` carries no snapshot; its diffs are
  aligned to a REST order book (``GET {rest}/api/v2/order_book/{pair}/``, PROTOCOLS.md).
  Each ``bts:subscription_succeeded`` for a ``diff_order_book_{pair}`` channel (the first
  subscription and every one after a reconnect) fetches that pair's book once.
- ``SettlementFetcher``: the WebSocket never carries the index value a Kalshi market
  settled on (``expiration_value``). ``settle_fetch_s`` after each recorded market's close,
  ``GET {kalshi rest}/markets/{ticker}``; while the market is not yet determined (or the
  request failed), again every ``settle_retry_s``, at most ``settle_retries`` more times.

Both are driven by the recorder (``harness.live.manager.Recorder``) and use its clock
(``now_ns()``, ``async sleep(s)``), so the simulator's accelerated clock paces them too.
The requests go through ``KalshiRest`` (the recorded, redacted GET client).
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from harness.live.rest import KalshiRest, RestError, SystemClock
from harness.live.waits import sleep_or_event

log = logging.getLogger("harness.live")
_NS = 1_000_000_000
DETERMINED = ("determined", "settled", "finalized")


class _Tasks:
    """Fire-and-forget requests that are still cancelled and awaited at close."""

    def __init__(self):
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def cancel_all(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class BookFetcher:
    """Bitstamp REST order book per acknowledged ``diff_order_book`` subscription.
    ``on_ack(channel)`` is the ``BitstampHandler.on_subscribed`` hook."""

    PREFIX = "diff_order_book_"

    def __init__(self, rest: KalshiRest, event=None):
        self.rest = rest  # venue="bitstamp", base URL without /api/v2
        self.event = event or (lambda kind, detail: None)
        self._tasks = _Tasks()
        self.fetched: list[str] = []  # pairs, in fetch order
        self.failures = 0

    def on_ack(self, channel: str) -> None:
        if channel.startswith(self.PREFIX):
            self._tasks.spawn(self.fetch(channel[len(self.PREFIX):]))

    async def fetch(self, pair: str) -> None:
        try:
            r = await self.rest.request(f"/api/v2/order_book/{pair}/")
        except RestError as e:  # recorded as an http row with <error ...>; say it in events too
            self.failures += 1
            self.event("error", {"venue": "bitstamp", "phase": "rest", "action": "order_book", "pair": pair,
                                 "error": str(e)[:300]})
            return
        self.fetched.append(pair)
        if r.status != 200:
            self.failures += 1
            self.event("error", {"venue": "bitstamp", "phase": "rest", "action": "order_book", "pair": pair,
                                 "status": r.status, "error": r.body[:300]})

    async def close(self) -> None:
        await self._tasks.cancel_all()
        await self.rest.close()


def determined(body: str) -> bool:
    """A ``GET /markets/{ticker}`` body that carries the outcome (no need to ask again)."""
    try:
        m = orjson.loads(body).get("market") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return False
    if not isinstance(m, dict):
        return False
    return (m.get("status") in DETERMINED or m.get("result") in ("yes", "no")) \
        and m.get("expiration_value") not in (None, "")


class SettlementFetcher:
    """``GET /markets/{ticker}`` after each tracked market's close (see the module docstring).

    ``track(ticker, close_ns)`` adds a market (the recorder calls it for every market it
    subscribes; one already closed then is skipped); ``run(stop)`` makes the requests when
    they fall due."""

    def __init__(self, rest: KalshiRest, *, clock=None, fetch_s: float = 20.0, retry_s: float = 30.0,
                 retries: int = 5, event=None):
        self.rest = rest
        self.clock = clock or SystemClock()
        self.fetch_ns = int(fetch_s * _NS)
        self.retry_ns = int(retry_s * _NS)
        self.retries = retries
        self.event = event or (lambda kind, detail: None)
        self.due: dict[str, int] = {}  # ticker -> clock ns of the next request
        self.attempts: dict[str, int] = {}
        self.done: dict[str, bool] = {}  # ticker -> determined (False: gave up)
        self.requests: list[tuple[int, str]] = []  # (clock ns, ticker)
        self._wake = asyncio.Event()
        self._tasks = _Tasks()

    def track(self, ticker: str, close_ns: int | None) -> None:
        if close_ns is None:
            from harness.venues.kalshi_markets import parse_ticker

            try:
                close_ns = parse_ticker(ticker).close_ns
            except Exception:  # noqa: BLE001 - not a dated ticker: no close to wait for
                return
        if ticker in self.done or close_ns is None:
            return
        if ticker not in self.due and close_ns <= self.clock.now_ns():
            # closed before we recorded it: no pre-close index to evaluate it against
            self.done[ticker] = False
            return
        at = close_ns + self.fetch_ns
        if self.due.get(ticker) != at and ticker not in self.attempts:
            self.due[ticker] = at
            self._wake.set()

    async def _fetch(self, ticker: str) -> None:
        n = self.attempts[ticker] = self.attempts.get(ticker, 0) + 1
        self.requests.append((self.clock.now_ns(), ticker))
        try:
            r = await self.rest.request(f"/markets/{ticker}")
            ok = r.status == 200 and determined(r.body)
            status = r.status
        except RestError as e:
            ok, status = False, None
            log.warning("kalshi settlement fetch failed: %s", e)
        if ok:
            self.done[ticker] = True
        elif status == 404 or n > self.retries:
            self.done[ticker] = False
            self.event("note", {"venue": "kalshi", "action": "settlement_unknown", "market": ticker,
                                "attempts": n, "status": status})
        else:
            self.due[ticker] = self.clock.now_ns() + self.retry_ns
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self.clock.now_ns()
            for t in [t for t, at in self.due.items() if at <= now]:
                del self.due[t]
                self._tasks.spawn(self._fetch(t))
            self._wake.clear()
            wait_s = (min(self.due.values()) - now) / _NS if self.due else 3600.0
            await sleep_or_event(self.clock, wait_s, self._wake, stop)

    async def close(self) -> None:
        await self._tasks.cancel_all()
