"""REST polling beside the WebSocket stream (``harness record --rest-poll SECONDS``).

Every ``interval`` seconds: for each Kalshi market being recorded (following rollover),
``GET /markets/{ticker}`` and ``GET /markets/{ticker}/orderbook``; for each exchange being
recorded, its public REST ticker for each of its instruments. Every exchange goes to the
``http`` table through ``KalshiRest`` (request and response times wall + monotonic,
status, redacted headers, body), so the ``freshness`` check can compare the two views.

Schedule: polls are due at ``start + k * interval`` (no drift); a poll that is still
running when the next is due makes that one skip (counted in ``skipped``), never pile up.
The schedule runs on the monotonic clock, or on the recorder's injected clock when it has
one (``clock``: ``now_ns()`` and ``async sleep(s)``; the simulator's accelerated clock, so
``interval`` is in simulated seconds). Rate limits and Retry-After are always real time.

Rate limits: one token bucket per host, shared by every poller hitting it. Defaults
(``DEFAULT_RATES``, requests per second and burst) stay well under each venue's published
public limit; override per host with ``rest_rates`` in the config file. A 429 blocks
the host for its ``Retry-After`` (seconds or an HTTP date; ``RETRY_AFTER_DEFAULT_S``
without one). A 429, any other non-200 status and a network error are recorded as
``error`` events (``phase: rest_poll``) and the polling goes on: never fatal.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from harness.live.rest import KalshiRest, RestError
from harness.live.waits import sleep_or_event

log = logging.getLogger("harness.live")

# Public REST bases (the ticker paths below are relative to these).
DEFAULT_REST = {
    "coinbase": "https://api.exchange.coinbase.com",
    "kraken": "https://api.kraken.com",
    "bitstamp": "https://www.bitstamp.net",
    "gemini": "https://api.gemini.com",
    "cryptocom": "https://api.crypto.com/exchange/v1",
}

# host -> (requests per second, burst). Published public limits: Kalshi Basic tier 20
# reads/s; Coinbase Exchange 10/s per IP; Kraken public ~1/s; Bitstamp 400/s; Gemini
# 120/min; Crypto.com 100/s per IP for public market data.
DEFAULT_RATES: dict[str, tuple[float, float]] = {
    "external-api.kalshi.com": (10.0, 10.0),
    "api.elections.kalshi.com": (10.0, 10.0),
    "external-api.demo.kalshi.co": (10.0, 10.0),
    "demo-api.kalshi.co": (10.0, 10.0),
    "api.exchange.coinbase.com": (5.0, 5.0),
    "api.kraken.com": (1.0, 1.0),
    "www.bitstamp.net": (5.0, 5.0),
    "api.gemini.com": (1.0, 5.0),
    "api.crypto.com": (5.0, 5.0),
}
OTHER_HOST_RATE = (10.0, 10.0)  # any other host (a loopback simulator, a proxy)
RETRY_AFTER_DEFAULT_S = 10.0  # a 429 without Retry-After
RETRY_AFTER_MAX_S = 600.0  # never believe a Retry-After longer than this


def ticker_request(venue: str, instrument: str) -> tuple[str, dict]:
    """(path, query) of an exchange's public ticker for one of its WebSocket instruments."""
    if venue == "coinbase":
        return f"/products/{instrument}/ticker", {}
    if venue == "kraken":  # REST wants XBTUSD for the WebSocket's BTC/USD
        pair = instrument.replace("/", "")
        return "/0/public/Ticker", {"pair": "XBT" + pair[3:] if pair.startswith("BTC") else pair}
    if venue == "bitstamp":
        return f"/api/v2/ticker/{instrument.lower()}/", {}
    if venue == "gemini":
        return f"/v1/pubticker/{instrument.lower()}", {}
    if venue == "cryptocom":
        return "/public/get-tickers", {"instrument_name": instrument}
    raise ValueError(f"no REST ticker known for {venue}")


def parse_retry_after(value: str | None, now_wall_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_wall_s is None else now_wall_s
    return max(0.0, dt.timestamp() - now)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``block(s)`` holds every taker for s
    seconds (a 429). ``now``: a monotonic clock in seconds (injectable for tests)."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float] = time.monotonic):
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self.now = now
        self.tokens = self.burst
        self.t = now()
        self.blocked_until = 0.0
        self.waited_s = 0.0
        self.blocks = 0

    def _refill(self) -> None:
        t = self.now()
        self.tokens = min(self.burst, self.tokens + (t - self.t) * self.rate)
        self.t = t

    def delay(self) -> float:
        """Seconds until a token may be taken (0: now)."""
        self._refill()
        wait = max(0.0, self.blocked_until - self.t)
        if self.tokens < 1.0:
            wait = max(wait, (1.0 - self.tokens) / self.rate)
        return wait

    async def acquire(self) -> None:
        while True:
            d = self.delay()
            if d <= 0:
                self.tokens -= 1.0
                return
            self.waited_s += d
            await asyncio.sleep(d)

    def block(self, seconds: float) -> None:
        self.blocks += 1
        self.blocked_until = max(self.blocked_until, self.now() + seconds)


@dataclass
class PollStats:
    requests: int = 0
    ok: int = 0
    errors: int = 0
    throttled: int = 0  # 429s
    skipped: int = 0  # polls not started because the previous one was still running
    by_venue: dict = field(default_factory=dict)


class RestPoller:
    """Polls every ``interval_s``; ``kalshi_markets()`` returns the Kalshi markets being
    recorded now (called at every poll, so rollover is followed). ``exchanges``: venue ->
    (REST base URL, instruments)."""

    def __init__(
        self,
        writer,
        interval_s: float,
        *,
        kalshi_url: str | None = None,
        kalshi_markets: Callable[[], list[str]] | None = None,
        exchanges: dict[str, tuple[str, list[str]]] | None = None,
        rates: dict[str, float | tuple[float, float]] | None = None,
        secrets: tuple[str, ...] = (),
        timeout_s: float | None = None,
        clock=None,
    ):
        if interval_s <= 0:
            raise ValueError("interval must be positive")
        self.writer = writer
        self.interval = float(interval_s)
        self.clock = clock
        self.kalshi_markets = kalshi_markets or (lambda: [])
        self.rates = dict(rates or {})
        self.buckets: dict[str, TokenBucket] = {}
        self.stats = PollStats()
        timeout = timeout_s if timeout_s is not None else max(1.0, min(10.0, self.interval * 2))
        self.clients: dict[str, KalshiRest] = {}
        self.targets: dict[str, list[str]] = {}
        if kalshi_url:
            self.clients["kalshi"] = KalshiRest(kalshi_url, writer, timeout_s=timeout, secrets=secrets)
        for venue, (base, instruments) in (exchanges or {}).items():
            self.clients[venue] = KalshiRest(base, writer, timeout_s=timeout, secrets=secrets, venue=venue)
            self.targets[venue] = list(instruments)

    def bucket(self, url: str) -> TokenBucket:
        host = urlsplit(url).hostname or ""
        b = self.buckets.get(host)
        if b is None:
            r = self.rates.get(host) or DEFAULT_RATES.get(host) or OTHER_HOST_RATE
            rate, burst = (r, max(1.0, r)) if isinstance(r, (int, float)) else r
            b = self.buckets[host] = TokenBucket(rate, burst)
        return b

    def _requests(self, venue: str) -> list[tuple[str, dict]]:
        if venue == "kalshi":
            out = []
            for m in self.kalshi_markets():
                out += [(f"/markets/{m}", {}), (f"/markets/{m}/orderbook", {})]
            return out
        return [ticker_request(venue, inst) for inst in self.targets.get(venue, [])]

    def _event(self, kind: str, detail: dict) -> None:
        self.writer.event(kind, time.time_ns(), time.monotonic_ns(), None, detail)

    async def poll_once(self, venue: str) -> None:
        """One round of a venue's requests, each through its host's bucket."""
        client = self.clients[venue]
        bucket = self.bucket(client.base_url)
        vs = self.stats.by_venue.setdefault(venue, {"requests": 0, "ok": 0, "errors": 0, "throttled": 0})
        for path, params in self._requests(venue):
            await bucket.acquire()
            self.stats.requests += 1
            vs["requests"] += 1
            try:
                r = await client.request(path, params)
            except RestError as e:  # network: recorded in http by the client, and as an event
                self.stats.errors += 1
                vs["errors"] += 1
                self._event("error", {"venue": venue, "phase": "rest_poll", "path": path, "error": str(e)[:300]})
                continue
            if r.status == 200:
                self.stats.ok += 1
                vs["ok"] += 1
                continue
            self.stats.errors += 1
            vs["errors"] += 1
            detail = {"venue": venue, "phase": "rest_poll", "path": path, "status": r.status}
            if r.status == 429:
                self.stats.throttled += 1
                vs["throttled"] += 1
                ra = parse_retry_after(_header(r.headers, "retry-after"))
                wait = min(RETRY_AFTER_MAX_S, RETRY_AFTER_DEFAULT_S if ra is None else ra)
                bucket.block(wait)
                detail.update(retry_after_s=wait, retry_after_header=ra is not None)
                log.warning("%s REST poll throttled (429): waiting %.1f s", venue, wait)
            self._event("error", detail)

    def _now(self) -> float:
        return self.clock.now_ns() / 1e9 if self.clock is not None else time.monotonic()

    async def _sleep_or_stop(self, seconds: float, stop: asyncio.Event) -> bool:
        """True when ``stop`` was set first."""
        if self.clock is None:
            try:
                await asyncio.wait_for(stop.wait(), seconds)
                return True
            except TimeoutError:
                return False
        await sleep_or_event(self.clock, seconds, stop)
        return stop.is_set()

    async def _venue_loop(self, venue: str, stop: asyncio.Event, t0: float) -> None:
        k = 0
        running: asyncio.Task | None = None
        try:
            while not stop.is_set():
                due = t0 + k * self.interval
                d = due - self._now()
                if d > 0 and await self._sleep_or_stop(d, stop):
                    return
                k += 1
                if running is not None and not running.done():
                    self.stats.skipped += 1
                    continue
                running = asyncio.ensure_future(self._guarded(venue))
        finally:
            if running is not None and not running.done():
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    async def _guarded(self, venue: str) -> None:
        try:
            await self.poll_once(venue)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a poller bug must never stop the recording
            self.stats.errors += 1
            log.error("%s REST poll failed: %s: %s", venue, type(e).__name__, e)
            self._event("error", {"venue": venue, "phase": "rest_poll", "error": f"{type(e).__name__}: {e}"[:300]})

    async def run(self, stop: asyncio.Event) -> None:
        self._event("note", {"action": "rest_poll", "interval_s": self.interval, "venues": sorted(self.clients),
                             "rates": {h: list(r) if isinstance(r, tuple) else r for h, r in self.rates.items()}})
        t0 = self._now()
        try:
            await asyncio.gather(*(self._venue_loop(v, stop, t0) for v in self.clients))
        finally:
            await self.close()

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()


def _header(headers: dict, name: str) -> str | None:
    for k, v in (headers or {}).items():
        if k.lower() == name:
            return v[0] if isinstance(v, list) else v
    return None
