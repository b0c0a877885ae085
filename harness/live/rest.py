"""Kalshi REST over aiohttp: market discovery (cursor paging) and 15-minute rollover.
``KalshiRest`` is also the recorded GET client of ``rest_poll`` (any venue's base URL).

Every exchange is recorded in the recording's ``http`` table with secrets redacted
(URL query parameters and headers, see ``harness.live.redact``).

Rollover (``Rollover``): the set of markets recorded is the pinned ``--kalshi-market``
tickers plus the open markets of each ``--kalshi-series``. ``rollover_lead_s`` before the
soonest close, the series are rediscovered and new markets are added to the live
subscriptions (``update_subscription`` ``add_markets``); ``close_grace_s`` after a close
the series are rediscovered again (the fallback when the next market was not listed yet).
A closed market stays subscribed until its ``determined``/``settled`` lifecycle message
arrives (the result, and Kalshi's last word on the market), or ``determined_grace_s``
(default 120 s) after its close, whichever is first; then it is dropped
(``delete_markets``). Without ``await_determined`` (the lifecycle channel is not recorded,
so no such message can come) it is dropped ``close_grace_s`` after its close.
``created``/``activated`` lifecycle messages of a tracked series rediscover now. Time comes from an
injectable clock (``now_ns()``, ``async sleep(seconds)``) so tests run on an accelerated one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import aiohttp

from harness.errors import HarnessError
from harness.live import redact
from harness.live.waits import sleep_or_event

log = logging.getLogger("harness.live")
_NS = 1_000_000_000
MAX_PAGES = 100


class RestError(HarnessError):
    """A REST request failed (network, HTTP status or body)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SystemClock:
    """Wall time and sleeping, for production."""

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FastClock:
    """Wall time running ``rate`` times faster than real time from ``start_ns`` (tests and
    dry runs of rollover)."""

    def __init__(self, start_ns: int, rate: float):
        self.start_ns = start_ns
        self.rate = rate
        self._t0 = time.monotonic_ns()

    def now_ns(self) -> int:
        return self.start_ns + int((time.monotonic_ns() - self._t0) * self.rate)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.rate)


class RestResponse(NamedTuple):
    status: int
    body: str
    headers: dict  # redacted response headers (Retry-After, rate-limit counters)


class KalshiRest:
    """``GET`` against the Kalshi REST base URL (``.../trade-api/v2``), each exchange recorded.

    auth: optional ``(method, path) -> headers`` (public market data needs none).
    venue: the ``http.venue`` the exchanges are recorded under (the pollers reuse this
    client for the exchanges' public REST)."""

    def __init__(
        self,
        base_url: str,
        writer=None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10.0,
        auth: Callable[[str, str], dict] | None = None,
        secrets: tuple[str, ...] = (),
        venue: str = "kalshi",
    ):
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.writer = writer
        self._session = session
        self._own_session = session is None
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.auth = auth
        self.secrets = secrets
        self.requests = 0

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None:
            # trust_env=False: never route through an environment proxy
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=False)
        return self._session

    async def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, str]:
        """(status, body text). Network errors raise ``RestError``; HTTP errors are returned."""
        r = await self.request(path, params)
        return r.status, r.body

    async def request(self, path: str, params: dict[str, Any] | None = None) -> RestResponse:
        """Like ``get`` with the (redacted) response headers too."""
        url = self.base_url + path
        params = {k: str(v) for k, v in (params or {}).items() if v is not None}
        from urllib.parse import urlsplit

        headers = {"Accept": "application/json"}
        if self.auth is not None:
            headers.update(self.auth("GET", urlsplit(url).path))
        t_sent, m_sent = time.time_ns(), time.monotonic_ns()
        status: int | None = None
        body = ""
        resp_headers: dict | None = None
        full_url = url
        self.requests += 1
        try:
            async with self._sess().get(url, params=params, headers=headers, timeout=self.timeout) as r:
                status = r.status
                full_url = str(r.url)
                resp_headers = redact.redact_headers(list(r.headers.items()))
                body = await r.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            body = ""
            err = f"{type(e).__name__}: {e}"
            self._record(full_url, params, headers, None, None, f"<error {redact.redact_text(err, self.secrets)}>", t_sent, m_sent)
            raise RestError(f"GET {redact.redact_url(url)} failed: {redact.redact_text(err, self.secrets)}") from None
        self._record(full_url, params, headers, status, resp_headers, body, t_sent, m_sent)
        return RestResponse(status, body, resp_headers or {})

    def _record(self, url, params, headers, status, resp_headers, body, t_sent, m_sent) -> None:
        if self.writer is None:
            return
        if params and "?" not in url:
            from urllib.parse import urlencode

            url = url + "?" + urlencode(params)
        self.writer.http(
            "GET", redact.redact_url(url), time.time_ns(), status=status, venue=self.venue,
            request_headers=redact.redact_headers(headers), response_headers=resp_headers,
            response_body=redact.redact_text(body, self.secrets) if self.secrets else body,
            t_sent_ns=t_sent, t_sent_mono_ns=m_sent, t_recv_mono_ns=time.monotonic_ns(),
        )

    async def markets(self, series: str | None = None, status: str | None = "open", limit: int = 1000, **extra) -> list:
        """All markets matching (cursor paging). Returns ``kalshi_markets.Market`` objects."""
        from harness.venues.kalshi_markets import parse_markets_response

        out = []
        cursor = None
        for _ in range(MAX_PAGES):
            params = {"series_ticker": series, "status": status, "limit": limit, "cursor": cursor, **extra}
            code, body = await self.get("/markets", params)
            if code != 200:
                ra = None
                raise RestError(f"GET /markets ({series}) returned HTTP {code}: {body[:300]}", status=code, retry_after=ra)
            page = parse_markets_response(body)
            out.extend(page.markets)
            if not page.cursor or page.cursor == cursor or not page.markets:
                break
            cursor = page.cursor
        return out


class Rollover:
    """Keeps the Kalshi subscription on the open markets of ``series`` (plus ``pinned``).

    apply: ``async (markets: list[str]) -> None`` moves the live subscription (usually
    ``KalshiHandler.set_markets`` + sending the frames). ``markets`` maps ticker -> close ns.
    """

    def __init__(
        self,
        rest: KalshiRest,
        series: list[str],
        pinned: list[str],
        apply: Callable[[list[str]], Any],
        *,
        clock=None,
        lead_s: float = 60.0,
        grace_s: float = 5.0,
        poll_s: float = 60.0,
        event: Callable[[str, dict], None] | None = None,
        await_determined: bool = False,
        determined_grace_s: float = 120.0,
    ):
        self.rest = rest
        self.series = list(series)
        self.pinned = list(pinned)
        self.apply = apply
        self.clock = clock or SystemClock()
        self.lead_ns = int(lead_s * _NS)
        self.grace_ns = int(grace_s * _NS)
        self.poll_ns = int(poll_s * _NS)
        # how long a closed market stays subscribed when no determination arrives
        self.hold_ns = int(max(grace_s, determined_grace_s) * _NS) if await_determined else self.grace_ns
        self.event = event or (lambda kind, detail: None)
        self.markets: dict[str, int | None] = {}  # series markets: ticker -> close ns
        self.history: list[tuple[int, str, list[str]]] = []  # (clock ns, "add"/"drop", tickers)
        self._wake = asyncio.Event()
        self._closed_early: set[str] = set()
        self._last_refresh = -1
        self._next_poll = 0
        self.refreshes = 0
        self.failures = 0

    # -- what to record ------------------------------------------------------------------------
    def current(self) -> list[str]:
        """Pinned then series markets, soonest close first."""
        ser = sorted(self.markets, key=lambda t: (self.markets[t] or 1 << 62, t))
        return list(dict.fromkeys(self.pinned + ser))

    def lifecycle(self, ticker: str, event_type: str, msg: dict) -> None:
        """Feed ``market_lifecycle_v2`` messages (the Kalshi handler calls this)."""
        ev = event_type.lower()
        # "closed"/"deactivated" are not the end: the determination (result) comes later
        if ev in ("determined", "settled") and ticker in self.markets:
            self._closed_early.add(ticker)
            self._wake.set()
        elif ev in ("created", "activated", "close_date_updated") and any(ticker.startswith(s + "-") for s in self.series):
            if ticker not in self.markets or ev == "close_date_updated":
                self._last_refresh = -1  # rediscover now
                self._wake.set()

    async def refresh(self) -> bool:
        """Rediscover the series' open markets; False (and an ``error`` event) on failure."""
        from harness.venues.kalshi_markets import parse_ticker

        now = self.clock.now_ns()
        self._last_refresh = now
        self._next_poll = now + self.poll_ns
        self.refreshes += 1
        found: dict[str, int | None] = {}
        # Before a close, the next market is not open yet (it opens at that close, with its
        # strike): ask for the unopened ones too and take those opening within the lead.
        closing = any(c is not None and c - self.lead_ns <= now for c in self.markets.values()) or not self.markets
        try:
            for s in self.series:
                ms = list(await self.rest.markets(series=s, status="open"))
                if closing:
                    ms += await self.rest.markets(series=s, status="unopened")
                for m in ms:
                    if not m.ticker.startswith(s + "-") or m.status in ("closed", "settled", "determined", "finalized"):
                        continue
                    o, c = m.open_ns, m.close_ns
                    if c is None:
                        try:
                            c = parse_ticker(m.ticker).close_ns
                        except Exception:  # noqa: BLE001 - an unusual ticker: keep it without a close
                            c = None
                    if (c is not None and c <= now) or (o is not None and o > now + self.lead_ns):
                        continue
                    found[m.ticker] = c
        except (RestError, HarnessError) as e:
            self.failures += 1
            self.event("error", {"venue": "kalshi", "phase": "rest", "error": str(e)[:500]})
            log.warning("kalshi market discovery failed: %s", e)
            return False
        for t, c in found.items():
            if t not in self._closed_early:
                self.markets[t] = c
        return True

    def _expire(self, now: int) -> list[str]:
        gone = [t for t, c in self.markets.items()
                if t in self._closed_early or (c is not None and c + self.hold_ns <= now)]
        for t in gone:
            del self.markets[t]
        return gone

    async def _apply(self, before: list[str]) -> None:
        after = self.current()
        if after != before:
            add = [t for t in after if t not in before]
            drop = [t for t in before if t not in after]
            now = self.clock.now_ns()
            if add:
                self.history.append((now, "add", add))
            if drop:
                self.history.append((now, "drop", drop))
            self.event("note", {"venue": "kalshi", "action": "rollover", "add": add, "drop": drop,
                                "clock_ns": now, "markets": after})
            r = self.apply(after)
            if asyncio.iscoroutine(r):
                await r

    def next_deadline(self, now: int) -> int:
        nxt = self._next_poll
        last = self._last_refresh
        for c in self.markets.values():
            if c is None:
                continue
            # per market: rediscover before its close and again after it, then drop it
            pre, post = c - self.lead_ns, c + self.grace_ns
            nxt = min(nxt, pre if pre > last else (post if post > last else c + self.hold_ns))
        return max(nxt, now)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self.clock.now_ns()
            before = self.current()
            gone = self._expire(now)
            due = now >= self.next_deadline(now) or self._last_refresh < 0
            if gone or due:
                await self.refresh()
                self._expire(self.clock.now_ns())
                await self._apply(before)
            self._wake.clear()
            wait_s = (self.next_deadline(self.clock.now_ns()) - self.clock.now_ns()) / _NS
            await sleep_or_event(self.clock, wait_s, self._wake, stop)
