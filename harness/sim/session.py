"""One simulated session, end to end: source recording -> impersonation server -> real
recorder -> capture on the simulated timeline.

1. ``source.write_source`` writes what the venues send (a temporary recording).
2. ``ImpersonationServer`` serves it over loopback at ``speed`` (default 20: 20 minutes
   in about a minute), with the server-side part of the fault plan, and answers the REST
   paths from the source's ``http`` rows at the replay's current time; a reconnecting
   client resumes where it left off (``resume_reconnects``).
3. The real recorder (``harness.live.manager.Recorder``) records every venue from the
   server: handshakes (Kalshi signed with an RSA key generated for this run and never
   written anywhere), subscribe commands, pings, Kalshi market discovery and 15-minute
   rollover by REST on a clock running ``speed`` times faster (``FastClock``), and the
   REST fetches the pipeline needs (``harness.live.fetch``: the Bitstamp order book at each
   ``diff_order_book`` acknowledgement, each Kalshi market's ``/markets/{ticker}`` after its
   close). It is stopped when the simulated clock passes the end, or, when a market
   closes within the session, once its settlement has been fetched (the source runs on
   for ``settle_tail_s`` so the streams last until then).
4. ``remap`` moves the capture's times onto the simulated timeline; the session row
   says ``simulate``. The file is written under a temporary name and renamed at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.sim.source import SourceFaults, write_source

NS = 1_000_000_000
DEFAULT_START = "2026-11-25T05:41:00Z"  # 00:41 US Eastern: crosses the 00:45 and 01:00 closes

# ``--faults default``: disconnects, a Kalshi seq gap, a corrupted frame, a stale venue.
DEFAULT_FAULTS = SourceFaults(
    disconnects=[("coinbase", 70.0, 1006, 4.0), ("kalshi", 150.0, 1011, 3.0)],
    stale=[("gemini", 100.0, 25.0)],
)
DEFAULT_SERVER_FAULTS = "seed=7,seqgap=@40s,corrupt=@55s"
SOURCE_TAIL_S = 15.0  # the streams outlive the capture by this much
QUARTER_NS = 15 * 60 * NS  # every Kalshi BTC market (15-minute, hourly) closes on a quarter hour


def settle_tail_s(start_ns: int, end_ns: int) -> float:
    """Simulated seconds the capture runs past the end so that the settlement of a market
    closing within the session is fetched (``KalshiConfig.settle_fetch_s`` after its
    close, plus room for a retry); 0 when no market closes in (start, end]."""
    from harness.config import KalshiConfig

    if end_ns // QUARTER_NS == start_ns // QUARTER_NS:
        return 0.0
    kc = KalshiConfig()
    return kc.settle_fetch_s + kc.settle_retry_s + 5.0


@dataclass
class SimResult:
    output: str
    seed: int
    minutes: float
    speed: float
    start_ns: int
    source_frames: int = 0
    source_http: int = 0
    frames: int = 0
    matched: int = 0
    generate_s: float = 0.0
    capture_s: float = 0.0
    remap_s: float = 0.0
    markets: list[dict] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)
    server: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("faults",)} | {"faults_injected": len(self.faults)}


def parse_start(text: str | None) -> int:
    from harness.timeparse import parse_time_ns

    text = text or DEFAULT_START
    try:
        ns = parse_time_ns(text)
    except ConfigError:
        raise ConfigError(f"--start {text!r} is not a time", hint="e.g. 2026-11-25T05:41:00Z") from None
    return ns // NS * NS  # whole seconds: the simulated clocks tick on them


def fault_plan(spec: str | None) -> tuple[SourceFaults, str | None]:
    """``default`` -> the preset; anything else is a server fault spec (``harness serve``
    grammar), checked here so a typo fails before anything runs."""
    if not spec:
        return SourceFaults(), None
    if spec.strip() == "default":
        return DEFAULT_FAULTS, DEFAULT_SERVER_FAULTS
    from harness.replay.faults import FaultPlan

    FaultPlan.parse(spec)  # raises ConfigError naming the bad term
    return SourceFaults(), spec


def _venue_configs(urls: dict[str, str], rest_base: str):
    from harness.config import VENUE_DEFAULTS, VenueConfig

    out = {}
    for v, url in urls.items():
        d = dict(VENUE_DEFAULTS.get(v, {}))
        if v == "kraken":
            d["depth"] = 10
        out[v] = VenueConfig(name=v, url=url, open_timeout=5.0, compression=False,
                             rest_url=rest_base if v != "kalshi" else None, **d)
    return out


async def capture(source: str, out: str, summary, *, speed: float, seed: int, server_faults: str | None,
                  rest_poll: float | None = None, progress=None) -> tuple[dict, list[dict], int]:
    """Serve ``source`` and record it into ``out``. Returns (server stats, fault log,
    wall-minus-mono of this process)."""
    import random
    import uuid

    from cryptography.hazmat.primitives.asymmetric import rsa

    from harness import venues
    from harness.config import BackoffConfig, KalshiConfig, RecordConfig
    from harness.live.manager import Recorder
    from harness.live.rest import FastClock
    from harness.replay.server import ImpersonationServer
    from harness.store.writer import RecordingWriter
    from harness.venues.kalshi_auth import Credentials

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_id = str(uuid.UUID(int=random.Random(f"{seed}:key-id").getrandbits(128), version=4))  # shaped like Kalshi's
    creds = Credentials(key_id, Path("<generated in memory>"), key)
    wall_minus_mono = time.time_ns() - time.monotonic_ns()
    # resume_reconnects: a recorder reconnecting on its own (a resync after a book gap)
    # goes on where it left off with a fresh snapshot, as from a venue, instead of being
    # served the session again from its start
    async with ImpersonationServer(source, speed=speed, faults=server_faults, slow_client_s=10.0,
                                   resume_reconnects=True) as srv:
        clock = FastClock(summary.start_ns, speed)
        rest_base = "http://" + srv.urls["kalshi"].split("/")[2]  # REST is served on the same port
        host = rest_base.split("//", 1)[1].split(":")[0]
        cfg = RecordConfig(
            output=out, venues=_venue_configs(srv.urls, rest_base),
            # --rest-poll is in simulated seconds (the recorder's clock is the fast one);
            # the polls of every venue share one loopback host, whose limit is raised to match
            rest_poll_s=rest_poll, rest_rates={host: 50.0 * speed} if rest_poll else {},
            # defaults otherwise: a closed market stays subscribed until its ``determined``
            # lifecycle message, its settlement is fetched 20 (simulated) seconds after the close
            kalshi=KalshiConfig(series=sorted({m["ticker"].split("-")[0] for m in summary.markets}),
                                rest_url=rest_base + "/trade-api/v2"),
            backoff=BackoffConfig(base=0.02, cap=0.1, reset_after=5.0, auth_failures_max=3, seed=seed), status=False,
            # books kept while recording: a lost exchange update reconnects for a fresh snapshot,
            # as a careful live client does (faults.db shows the recovery)
            decode=True)
        writer = RecordingWriter(out, mode="simulate", classify=venues.classify,
                                 config={"simulate": {"seed": seed, "speed": speed, "faults": server_faults}, **cfg.to_json()},
                                 source=f"harness simulate: seed {seed}, served at {speed}x and recorded by harness record")
        rec = Recorder(cfg, credentials=creds, clock=clock, writer=writer)
        stop = rec.stop
        bg = []

        async def stopper():
            # Stop a second (simulated) after the end, before the source's tail runs out:
            # a venue whose stream ends is closed by the server ("end of recording") and
            # the recorder, doing its job, would reconnect and be served it all again.
            # Checked every 0.2 simulated seconds (a coarse real-time poll at 20x would
            # overshoot the tail), and a stream that ended anyway stops everything.
            # Markets closing within the session keep it going until their settlement is
            # fetched (at most ``settle_tail_s`` past the end).
            tick = min(0.25, 0.2 / speed)
            n = 0
            closing = [m["ticker"] for m in summary.markets if summary.start_ns < m["close_ns"] <= summary.end_ns]
            last_ns = summary.end_ns + NS + int(settle_tail_s(summary.start_ns, summary.end_ns) * NS)

            def settled() -> bool:
                s = rec.settlements
                return s is None or all(t in s.done for t in closing)

            while not stop.is_set():
                now = clock.now_ns()
                if now >= last_ns or (now >= summary.end_ns + NS and settled()):
                    break
                if any(c.close_reason == "end of recording" for c in srv.clients):
                    break
                n += 1
                if progress is not None and n % max(1, int(0.25 / tick)) == 0:
                    progress((clock.now_ns() - summary.start_ns) / (summary.end_ns - summary.start_ns))
                await asyncio.sleep(tick)
            stop.set()

        bg.append(asyncio.ensure_future(stopper()))
        try:
            await rec.run()
        finally:
            stop.set()
            await asyncio.gather(*bg, return_exceptions=True)
            for e in srv.fault_log:
                t = e.get("t_ns") or time.time_ns()
                writer.event("fault", t, t - wall_minus_mono, None, {k: v for k, v in e.items() if k != "t_ns"})
            writer.close()
        return srv.stats, list(srv.fault_log), wall_minus_mono


def simulate(out: str, *, minutes: float = 20.0, seed: int = 0, rate_scale: float = 1.0, faults: str | None = None,
             speed: float = 20.0, start: str | None = None, keep_source: str | None = None, rest_poll: float | None = None,
             progress=None) -> SimResult:
    from harness.sim.remap import remap

    if minutes <= 0:
        raise ConfigError(f"--minutes must be positive, not {minutes}", hint="e.g. --minutes 20")
    if rate_scale <= 0:
        raise ConfigError(f"--rate-scale must be positive, not {rate_scale}", hint="1 = realistic rates, 10 = ten times")
    if speed <= 0:
        raise ConfigError(f"--speed must be positive, not {speed}", hint="e.g. --speed 20")
    if rest_poll is not None and rest_poll <= 0:
        raise ConfigError(f"--rest-poll must be positive, not {rest_poll}", hint="seconds between polls, e.g. 5")
    start_ns = parse_start(start)
    src_faults, server_faults = fault_plan(faults)
    out_path = Path(out)
    if out_path.parent and not out_path.parent.exists():
        raise ConfigError(f"directory {out_path.parent} does not exist", hint="create it or choose another -o path")
    res = SimResult(str(out_path), seed, minutes, speed, start_ns)
    tmpdir = tempfile.mkdtemp(prefix="harness-sim-")
    try:
        src = os.path.join(tmpdir, "source.db")
        t0 = time.monotonic()
        end_ns = start_ns + int(minutes * 60 * NS)
        summary = write_source(src, start_ns=start_ns, minutes=minutes, seed=seed, scale=rate_scale, faults=src_faults,
                               tail_s=SOURCE_TAIL_S + settle_tail_s(start_ns, end_ns))
        res.generate_s = time.monotonic() - t0
        res.source_frames, res.source_http, res.markets = summary.frames, summary.http_rows, summary.markets
        if keep_source:
            shutil.copyfile(src, keep_source)
        part = str(out_path) + ".part"
        for p in (part, part + ".lock", part + "-wal", part + "-shm"):
            if os.path.exists(p):
                os.unlink(p)
        try:
            t0 = time.monotonic()
            res.server, res.faults, wmm = asyncio.run(
                capture(src, part, summary, speed=speed, seed=seed, server_faults=server_faults, rest_poll=rest_poll,
                        progress=progress))
            res.capture_s = time.monotonic() - t0
            t0 = time.monotonic()
            st = remap(part, summary.index, speed=speed, wall_minus_mono=wmm, rest=summary.rest)
            res.remap_s = time.monotonic() - t0
            res.frames, res.matched = st["frames"], st["matched"]
            os.replace(part, out_path)
        except BaseException:  # interrupted or failed: leave no half-made file behind
            for p in (part, part + ".lock", part + "-wal", part + "-shm"):
                if os.path.exists(p):
                    os.unlink(p)
            raise
        return res
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
