"""``harness simulate -o OUT.db``: a seeded, simulated multi-venue session recorded through
the wire (impersonation server + the real recorder). See ``harness.sim``."""

from __future__ import annotations

import json
import os
import sys

import click

from harness.errors import ConfigError


@click.command("simulate")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="recording to write (replaced if it exists)")
@click.option("--minutes", default=20.0, show_default=True, type=float, help="simulated duration")
@click.option("--seed", default=0, show_default=True, type=int, help="same seed, same frames")
@click.option("--rate-scale", default=1.0, show_default=True, type=float, help="multiply every venue's message rate (load tests)")
@click.option("--faults", default=None,
              help="'default' (disconnects, a Kalshi seq gap, corrupted frames, a stale venue) or a harness serve fault spec")
@click.option("--speed", default=20.0, show_default=True, type=float,
              help="serve the session this many times faster than real time (receive times are mapped back)")
@click.option("--start", default=None, help="simulated start time, ISO UTC [default: 2026-11-25T05:41:00Z]")
@click.option("--keep-source", type=click.Path(dir_okay=False), default=None,
              help="also keep the source recording (what the venues sent, with the REST views) here")
@click.option("--rest-poll", type=float, default=None,
              help="the recorder also polls Kalshi markets and exchange tickers by REST every N simulated seconds")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def command(output, minutes, seed, rate_scale, faults, speed, start, keep_source, rest_poll, as_json):
    """Simulate Kalshi + Coinbase/Kraken/Bitstamp/Gemini for MINUTES and record it to OUTPUT."""
    from harness.sim.session import simulate

    if os.path.isdir(output):
        raise ConfigError(f"{output} is a directory", hint="-o takes a recording file name, e.g. recordings/sim.db")
    show = sys.stderr.isatty() and not as_json

    def progress(frac: float) -> None:
        if show:
            sys.stderr.write(f"\rsimulating: {min(frac, 1.0) * 100:5.1f}% of {minutes:g} simulated minutes")
            sys.stderr.flush()

    res = simulate(output, minutes=minutes, seed=seed, rate_scale=rate_scale, faults=faults, speed=speed,
                   start=start, keep_source=keep_source, rest_poll=rest_poll, progress=progress)
    if show:
        sys.stderr.write("\n")
    if as_json:
        click.echo(json.dumps(res.summary(), default=str))
        return
    size = os.path.getsize(output)
    settled = [m for m in res.markets if m["expiration_value"] is not None]
    click.echo(f"wrote {output}: {res.frames:,} frames ({res.matched:,} on their simulated receive time), "
               f"{size / 1e6:.1f} MB; {minutes:g} simulated minutes, seed {seed}")
    click.echo(f"  generated in {res.generate_s:.1f} s, captured at {speed:g}x in {res.capture_s:.1f} s, "
               f"remapped in {res.remap_s:.1f} s; {len(res.faults)} server faults injected")
    for m in settled:
        click.echo(f"  settled {m['ticker']}: strike {m['strike']:,.2f}, index {m['expiration_value']:,.2f} -> {m['result']}")
