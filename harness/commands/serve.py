"""``harness serve REC``: impersonate the recorded venues over WebSocket on 127.0.0.1.

URL map, handshake rules and fault grammar: ``harness.replay.server`` and
``harness.replay.faults``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

import click

from harness.errors import ConfigError
from harness.timeparse import parse_duration_s


@click.command("serve")
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="listen address (loopback unless --allow-remote)")
@click.option("--port", default=0, show_default=True, type=int, help="0 = pick a free port")
@click.option("--speed", default="1", show_default=True, help="1 = recorded pace, N = N times faster, max = unpaced")
@click.option("--precise", is_flag=True, help="spin before each deadline for sub-millisecond pacing (uses a core per client)")
@click.option("--loop", is_flag=True, help="restart the recording when it ends instead of closing with 1000")
@click.option("--resume-reconnects", is_flag=True,
              help="a client reconnecting after it closed or dropped continues where it left off (with a fresh book snapshot)")
@click.option("--auth-key", type=click.Path(dir_okay=False, exists=True), help="Kalshi API public key (PEM): verify signatures")
@click.option("--max-skew", default="5s", show_default=True, help="max Kalshi timestamp skew with --auth-key")
@click.option("--faults", "faults", default=None, help="fault spec, e.g. 'drop=0.01,disconnect=every:30s:1011,seed=1'")
@click.option("--urls-file", type=click.Path(dir_okay=False), help="write {venue: url} as JSON here once listening")
@click.option("--allow-remote", is_flag=True, help="allow a non-loopback --host")
@click.option("--slow-client", default="2s", show_default=True, help="abort a client whose send is blocked this long")
@click.option("-v", "--verbose", is_flag=True, help="log every connection and fault")
def command(recording, host, port, speed, precise, loop, resume_reconnects, auth_key, max_skew, faults, urls_file, allow_remote, slow_client, verbose):
    """Serve RECORDING to WebSocket clients as Kalshi and the exchanges would."""
    from harness.replay.faults import FaultPlan
    from harness.replay.server import ImpersonationServer

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    plan = FaultPlan.parse(faults) if faults else None
    srv = ImpersonationServer(
        recording, host=host, port=port, speed=speed, loop=loop, auth_key=auth_key,
        max_skew_s=parse_duration_s(max_skew), faults=plan, allow_remote=allow_remote, precise=precise,
        slow_client_s=parse_duration_s(slow_client), resume_reconnects=resume_reconnects,
    )
    if not os.path.exists(recording):
        from harness.store.reader import Recording

        Recording(recording)  # raises the RecordingError with its hint
    asyncio.run(_run(srv, urls_file))


async def _run(srv, urls_file) -> None:
    await srv.start()
    for w in srv.warnings:
        click.echo(f"warning: {w}", err=True)
    if not srv.urls:
        await srv.close()
        raise ConfigError(f"{srv.path} has no recorded connections to serve")
    for venue, url in sorted(srv.urls.items()):
        click.echo(f"{venue:10s} {url}")
    if len(srv.rest):
        paths = sorted(srv.rest.path_venues)
        more = f", ... ({len(paths)} paths)" if len(paths) > 3 else ""
        click.echo(f"{'rest':10s} {srv.rest_url} ({len(srv.rest)} recorded GET answers: {', '.join(paths[:3])}{more})")
    if srv.plan:
        click.echo(f"faults: {srv.plan.spec} (seed {srv.plan.seed})")
    if urls_file:
        tmp = urls_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(srv.urls, f, indent=2, sort_keys=True)
        os.replace(tmp, urls_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await srv.close()
        s = srv.stats
        click.echo(f"served {s['clients_total']} connections, {s['faults']} faults injected", err=True)
