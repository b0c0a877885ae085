"""All venues of one recording: one ``VenueConnection`` task per venue (a venue that fails
never stops the others), Kalshi market discovery and rollover, the REST fetches the
pipeline needs (Bitstamp order books, Kalshi settlements: ``harness.live.fetch``), REST
polling beside the stream (``rest_poll_s``, see ``harness.live.rest_poll``), the writer,
the duration, signals and the live status line.

``run_record(cfg)`` is the whole of ``harness record`` minus argument parsing.
Ctrl-C / SIGTERM once: stop reading, close the sockets, flush, close the session row,
return normally (exit 0). Twice: exit at once (130); the file is still a valid database
(SQLite WAL, committed batches), only the session's ``ended_ns`` stays NULL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field

from harness.config import RecordConfig
from harness.errors import HarnessError
from harness.live.backoff import Backoff
from harness.live.connection import KalshiHandler, VenueConnection, VenueStats, make_handler
from harness.live.rest import KalshiRest, Rollover, SystemClock

log = logging.getLogger("harness.live")


@dataclass
class RecordResult:
    output: str
    stats: dict[str, VenueStats] = field(default_factory=dict)
    frames_written: int = 0
    stopped_by: str = ""  # duration | signal | all_failed | stop
    rollover: Rollover | None = None
    rest_poll: object | None = None  # rest_poll.PollStats when polling was on
    books: object | None = None  # fetch.BookFetcher when Bitstamp was recorded
    settlements: object | None = None  # fetch.SettlementFetcher when Kalshi was recorded

    @property
    def failed(self) -> dict[str, str]:
        return {k: v.fatal for k, v in self.stats.items() if v.fatal}


class Recorder:
    """Builds and runs the connections for a ``RecordConfig``. ``credentials``: a
    ``kalshi_auth.Credentials`` (required when Kalshi is recorded)."""

    def __init__(
        self,
        cfg: RecordConfig,
        *,
        credentials=None,
        clock=None,
        rng: random.Random | None = None,
        writer=None,
        observer=None,
    ):
        self.cfg = cfg
        self.credentials = credentials
        self.clock = clock or SystemClock()
        self.rng = rng or (random.Random(cfg.backoff.seed) if cfg.backoff.seed is not None else random.Random())
        self.stop = asyncio.Event()
        self._own_writer = writer is None
        if writer is None:
            from harness import venues
            from harness.store.writer import RecordingWriter

            os.makedirs(os.path.dirname(os.path.abspath(cfg.output)), exist_ok=True)
            writer = RecordingWriter(cfg.output, mode="live", config=cfg.to_json(),
                                     source="harness record: " + ",".join(cfg.venues), classify=venues.classify)
        if observer is not None:  # live checks / --via-server see every write as it happens
            from harness.live.observe import ObservedWriter

            writer = ObservedWriter(writer, observer)
        self.writer = writer
        self.conns: dict[str, VenueConnection] = {}
        self.rest: KalshiRest | None = None
        self.rollover: Rollover | None = None
        self.poller = None  # rest_poll.RestPoller when cfg.rest_poll_s
        self.books = None  # fetch.BookFetcher
        self.settlements = None  # fetch.SettlementFetcher
        self.stopped_by = ""
        secrets: tuple[str, ...] = ()
        if credentials is not None:
            secrets = (credentials.key_id,)
        self.secrets = secrets
        for name, vc in cfg.venues.items():
            handler = make_handler(vc)
            auth = None
            if name == "kalshi":
                if credentials is None:
                    raise HarnessError("recording Kalshi needs credentials",
                                       hint="set KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH")
                auth = self._kalshi_auth(vc.url)
            b = cfg.backoff
            self.conns[name] = VenueConnection(
                vc, writer, handler,
                backoff=Backoff(b.base, b.cap, b.reset_after, rng=random.Random(self.rng.random())),
                auth=auth, auth_failures_max=b.auth_failures_max, secrets=secrets, decode=cfg.decode,
            )

    def _kalshi_auth(self, url: str):
        from urllib.parse import urlsplit

        path = urlsplit(url).path or "/"
        creds = self.credentials

        def headers() -> dict:
            # signed fresh on every (re)connect: the timestamp must be current
            return creds.headers(time.time_ns() // 1_000_000, path, "GET")

        return headers

    def _setup_bitstamp(self) -> None:
        conn = self.conns.get("bitstamp")
        if conn is None or not hasattr(conn.handler, "on_subscribed"):
            return
        from harness.live.fetch import BookFetcher
        from harness.live.rest_poll import DEFAULT_REST

        def event(kind: str, detail: dict) -> None:
            self.writer.event(kind, time.time_ns(), time.monotonic_ns(), conn.conn_id, detail)

        rest = KalshiRest(conn.cfg.rest_url or DEFAULT_REST["bitstamp"], self.writer, venue="bitstamp")
        self.books = BookFetcher(rest, event=event)
        conn.handler.on_subscribed = self.books.on_ack

    async def _setup_kalshi(self) -> None:
        kc = self.cfg.kalshi
        conn = self.conns.get("kalshi")
        if kc is None or conn is None:
            return
        handler: KalshiHandler = conn.handler  # type: ignore[assignment]
        handler.markets = list(kc.markets)

        def event(kind: str, detail: dict) -> None:
            self.writer.event(kind, time.time_ns(), time.monotonic_ns(), conn.conn_id, detail)

        if not kc.series and not kc.settle_fetch_s:
            return
        self.rest = KalshiRest(kc.rest_url, self.writer, secrets=self.secrets)
        if kc.settle_fetch_s:
            from harness.live.fetch import SettlementFetcher

            self.settlements = SettlementFetcher(self.rest, clock=self.clock, fetch_s=kc.settle_fetch_s,
                                                 retry_s=kc.settle_retry_s, retries=kc.settle_retries, event=event)
        self._track(handler.markets)
        if not kc.series:
            return

        async def apply(markets: list[str]) -> None:
            self._track(markets)
            for frame in handler.set_markets(markets):
                await conn.send(frame)

        # waiting for `determined` only makes sense when the lifecycle channel is recorded
        lifecycle = "market_lifecycle_v2" in conn.cfg.channels
        self.rollover = Rollover(self.rest, kc.series, kc.markets, apply, clock=self.clock,
                                 lead_s=kc.rollover_lead_s, grace_s=kc.close_grace_s, poll_s=kc.poll_s, event=event,
                                 await_determined=lifecycle, determined_grace_s=kc.determined_grace_s)
        handler.on_lifecycle = self.rollover.lifecycle
        await self.rollover.refresh()
        handler.markets = self.rollover.current()
        self._track(handler.markets)
        self.rollover.history.append((self.clock.now_ns(), "add", list(handler.markets)))
        event("note", {"venue": "kalshi", "action": "discovered", "series": kc.series, "markets": handler.markets})

    def _track(self, markets: list[str]) -> None:
        """Every market recorded gets its settlement fetched after its close."""
        if self.settlements is None:
            return
        closes = self.rollover.markets if self.rollover is not None else {}
        for t in markets:
            self.settlements.track(t, closes.get(t))

    async def run(self) -> RecordResult:
        try:
            self._setup_bitstamp()
            await self._setup_kalshi()
            tasks = {name: asyncio.ensure_future(c.run(self.stop)) for name, c in self.conns.items()}
            extra = []
            if self.rollover is not None:
                extra.append(asyncio.ensure_future(self.rollover.run(self.stop)))
            if self.settlements is not None:
                extra.append(asyncio.ensure_future(self.settlements.run(self.stop)))
            if self.cfg.rest_poll_s:
                self.poller = self._make_poller()
                extra.append(asyncio.ensure_future(self.poller.run(self.stop)))
            if self.cfg.duration_s:
                extra.append(asyncio.ensure_future(self._duration(self.cfg.duration_s)))
            pending = set(tasks.values())
            stopper = asyncio.ensure_future(self.stop.wait())
            while pending and not self.stop.is_set():
                done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                done.discard(stopper)
                pending.discard(stopper)
                for t in done:
                    exc = t.exception()
                    if exc is not None:  # a bug or a recording failure in one venue
                        name = next(n for n, tt in tasks.items() if tt is t)
                        log.error("%s: stopped by %s: %s", name, type(exc).__name__, exc)
                        self.conns[name].stats.fatal = f"{type(exc).__name__}: {exc}"
                        self.conns[name].stats.state = "failed"
                        self.writer.event("error", time.time_ns(), time.monotonic_ns(), None,
                                          {"venue": name, "phase": "crashed", "error": repr(exc)[:500]})
                        if isinstance(exc, HarnessError) and "recording to" in str(exc):
                            self.stopped_by = "recording_failed"
                            self.stop.set()
            if not self.stop.is_set():
                self.stopped_by = self.stopped_by or "all_failed"
            self.stop.set()
            stopper.cancel()
            await asyncio.wait(list(tasks.values()), timeout=5)
            for t in list(tasks.values()) + extra:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks.values(), *extra, stopper, return_exceptions=True)
        finally:
            if self.settlements is not None:
                await self.settlements.close()
            if self.books is not None:
                await self.books.close()
            if self.rest is not None:
                await self.rest.close()
            if self.poller is not None:
                await self.poller.close()
        return RecordResult(self.cfg.output, {n: c.stats for n, c in self.conns.items()},
                            stopped_by=self.stopped_by or "stop", rollover=self.rollover,
                            rest_poll=self.poller.stats if self.poller is not None else None,
                            books=self.books, settlements=self.settlements)

    def _make_poller(self):
        from harness.live.rest_poll import DEFAULT_REST, RestPoller

        kc = self.cfg.kalshi
        kconn = self.conns.get("kalshi")
        exchanges = {n: (vc.rest_url or DEFAULT_REST[n], list(vc.instruments))
                     for n, vc in self.cfg.venues.items() if n != "kalshi" and n in DEFAULT_REST}
        # the handler's market list is what the stream is subscribed to, rollover included
        markets = (lambda: list(kconn.handler.markets)) if kconn is not None else None
        # an injected clock (the simulator's accelerated one) also paces the polls
        clock = None if isinstance(self.clock, SystemClock) else self.clock
        return RestPoller(self.writer, self.cfg.rest_poll_s, kalshi_url=kc.rest_url if kc and kconn else None,
                          kalshi_markets=markets, exchanges=exchanges, rates=self.cfg.rest_rates, secrets=self.secrets,
                          clock=clock)

    async def _duration(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.stopped_by = self.stopped_by or "duration"
        self.stop.set()

    def close(self, result: RecordResult | None = None) -> None:
        if self._own_writer:
            self.writer.close()
            if result is not None:
                result.frames_written = self.writer.frames_written


# --------------------------------------------------------------------------- status line


def _status_table(rec: Recorder, prev: dict, dt: float):
    from rich.table import Table

    t = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for col in ("venue", "state", "frames/s", "frames", "last msg", "reconnects", ""):
        t.add_column(col)
    now = time.monotonic_ns()
    for name, c in rec.conns.items():
        s = c.stats
        tap = c.tap
        n = s.frames_in
        rate = (n - prev.get(name, n)) / dt if dt > 0 else 0.0
        prev[name] = n
        last = tap.last_rx_mono if (tap is not None and s.connects) else None
        age = f"{(now - last) / 1e9:.1f}s" if last else "-"
        t.add_row(name, s.state, f"{rate:,.0f}", f"{n:,}", age, str(s.reconnects), (s.detail or "")[:60])
    return t


async def _status_loop(rec: Recorder, stream) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=stream)
    prev: dict = {}
    last = time.monotonic()
    with Live(_status_table(rec, prev, 0.0), console=console, refresh_per_second=4, transient=False) as live:
        while not rec.stop.is_set():
            await asyncio.sleep(1.0)
            now = time.monotonic()
            live.update(_status_table(rec, prev, now - last))
            last = now


# --------------------------------------------------------------------------- entry point


async def run_record(
    cfg: RecordConfig,
    *,
    credentials=None,
    clock=None,
    rng: random.Random | None = None,
    install_signals: bool = False,
    status: bool | None = None,
    stop: asyncio.Event | None = None,
    observer=None,
    writer=None,
) -> RecordResult:
    """Record until the duration ends, ``stop`` is set, a signal arrives or every venue
    has failed for good. Returns per-venue stats; the recording is closed on return unless
    the caller passed ``writer`` (a ``RecordingWriter`` it opened and closes itself: `record
    --pipeline` writes the rest of its session log through it after the stop).
    ``observer`` (see ``harness.live.observe``) is told of every frame, connection, event and
    HTTP exchange as it is written."""
    rec = Recorder(cfg, credentials=credentials, clock=clock, rng=rng, observer=observer, writer=writer)
    if stop is not None:
        rec.stop = stop
    loop = asyncio.get_running_loop()
    signals_installed = []
    if install_signals:
        hits = {"n": 0}

        def on_signal(signame: str) -> None:
            hits["n"] += 1
            if hits["n"] >= 2:
                os.write(2, b"\nsecond interrupt: exiting now (the recording stays a valid database)\n")
                os._exit(130)
            rec.stopped_by = f"signal {signame}"
            rec.stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
                signals_installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
    show = status if status is not None else (cfg.status if cfg.status is not None else sys.stderr.isatty())
    status_task = asyncio.ensure_future(_status_loop(rec, sys.stderr)) if show else None
    result = None
    try:
        result = await rec.run()
    finally:
        if status_task is not None:
            rec.stop.set()
            try:
                await asyncio.wait_for(status_task, timeout=2)
            except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
                status_task.cancel()
        rec.close(result)
        for sig in signals_installed:
            loop.remove_signal_handler(sig)
    return result
