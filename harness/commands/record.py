"""``harness record``: record Kalshi and BTC spot exchange WebSockets into a recording."""

from __future__ import annotations

import asyncio
import os
import sys

import click

from harness.errors import AuthError, ConfigError, HarnessError
from harness.live.observe import Fanout


def load_kalshi_credentials(env=None):
    """Credentials from KALSHI_API_KEY_ID / KALSHI_PRIVATE_KEY_PATH; ``AuthError`` (exit 2)
    with both names when missing or unreadable; warnings printed (key readable by others)."""
    from harness.venues import kalshi_auth

    env = os.environ if env is None else env
    try:
        creds = kalshi_auth.credentials_from_env(env)
    except AuthError as e:
        raise AuthError(
            f"cannot record Kalshi: {e.message}",
            hint="set KALSHI_API_KEY_ID to your API key id and KALSHI_PRIVATE_KEY_PATH to its RSA private key "
                 "PEM file (or record only exchanges: drop --kalshi-series/--kalshi-market)",
        ) from None
    for w in creds.warnings:
        click.echo(f"warning: {w}", err=True)
    return creds


@click.command("record")
@click.option("-o", "--output", help="recording file to write (created or appended)")
@click.option("--kalshi-series", multiple=True, help="Kalshi series to follow, e.g. KXBTC15M (repeatable or comma-separated)")
@click.option("--kalshi-market", multiple=True, help="a Kalshi market ticker to record for the whole run (repeatable)")
@click.option("--kalshi-channels", default=None, help="Kalshi channels [orderbook_delta,ticker,trade,market_lifecycle_v2]")
@click.option("--exchanges", default=None, help="spot exchanges, comma-separated ('' for none) [coinbase,kraken,bitstamp,gemini,cryptocom]")
@click.option("--duration", default=None, help="stop after this long (15m, 30s, 2h); default: until Ctrl-C")
@click.option("--env", type=click.Choice(["prod", "demo"]), default=None, help="Kalshi environment [prod]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file (see harness/config.py)")
@click.option("--url", "urls", multiple=True, metavar="VENUE=URL", help="WebSocket URL override (repeatable)")
@click.option("--rest-url", "rest_urls", multiple=True, metavar="VENUE=URL",
              help="REST base URL override (kalshi: discovery and polls; exchanges: --rest-poll tickers)")
@click.option("--rest-poll", "rest_poll", default=None, metavar="SECONDS",
              help="also poll the Kalshi markets and each exchange's REST ticker this often (off by default)")
@click.option("--decode/--no-decode", default=None, help="keep venue books while recording (findings become events)")
@click.option("--status/--no-status", default=None, help="live status line [on when stderr is a terminal]")
@click.option("--seed", type=int, default=None, help="seed the backoff jitter (reproducible reconnect timing)")
@click.option("--check", "check", is_flag=True, help="run the checks (as `harness check`) live on the stream; exit 1 if one fails")
@click.option("--only", multiple=True, help="with --check: only this check (repeatable or comma-separated)")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="with --check: also write the HTML report here")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="with --check: also write the JSON report here")
@click.option("--pipeline", "pipeline", is_flag=True,
              help="run the pipeline (books, BRTI proxy, Kalshi markets, signals) live; signals printed as found, "
                   "index values, signals and settlements written into the recording")
def command(output, kalshi_series, kalshi_market, kalshi_channels, exchanges, duration, env, config_path,
            urls, rest_urls, rest_poll, decode, status, seed, check, only, html_path, json_path, pipeline):
    """Record every WebSocket frame (both directions, control frames too) from Kalshi and the
    BTC spot exchanges into a recording, reconnecting through errors, until --duration
    or Ctrl-C (once: finish cleanly; twice: exit at once).

    Kalshi credentials come from KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH.

    With --check, the checks of `harness check` run on the frames as they are written: a
    finding is printed (stderr) as it happens, the report at the end (stdout), exit 1 when
    a check fails (unless the recording itself failed).

    With --pipeline, the pipeline runs on the frames as they are written and its session
    log (tables index_values, signals, fair_values, settlements) goes into the recording itself, through
    the recorder's writer; `harness replay REC` later says whether it computes the same."""
    from harness.config import build_config
    from harness.live.manager import run_record

    cfg = build_config(
        output=output, config_path=config_path, kalshi_series=list(kalshi_series), kalshi_markets=list(kalshi_market),
        kalshi_channels=[kalshi_channels] if kalshi_channels else None, exchanges=exchanges, duration=duration,
        env=env, urls=list(urls), rest_urls=list(rest_urls), decode=decode, rest_poll=rest_poll,
    )
    if seed is not None:
        cfg.backoff.seed = seed
    if (only or html_path or json_path) and not check:
        raise ConfigError("--only, --html and --json go with --check", hint="add --check")
    live = _live_checks(only) if check else None
    creds = load_kalshi_credentials() if "kalshi" in cfg.venues else None
    live_pipe = writer = None
    if pipeline:
        live_pipe, writer = _live_pipeline(cfg)
    observer = Fanout(live, live_pipe) if (live is not None or live_pipe is not None) else None
    click.echo(f"recording {', '.join(cfg.venues)} to {cfg.output}"
               + (f" for {cfg.duration_s:g}s" if cfg.duration_s else " until Ctrl-C")
               + (" with live checks" if live else "") + (" and the pipeline" if live_pipe else ""), err=True)

    async def main():
        stop = asyncio.Event()
        drainers = [asyncio.ensure_future(o.run(stop)) for o in (live, live_pipe) if o is not None]
        try:
            return await run_record(cfg, credentials=creds, install_signals=True, status=status, stop=stop,
                                    observer=observer, writer=writer)
        finally:
            stop.set()
            if drainers:
                await asyncio.gather(*drainers)

    summary = None
    try:
        try:
            result = asyncio.run(main())
        except KeyboardInterrupt:  # signal handlers not installable: still a clean exit
            click.echo("interrupted", err=True)
            return
        if live_pipe is not None:
            # the rest of the session log (the queue's tail, settlements) goes in before the close
            summary = live_pipe.finish()
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        result.frames_written = writer.frames_written
    for name, s in result.stats.items():
        line = f"  {name}: {s.frames_in:,} messages, {s.connects} connection(s), {s.reconnects} reconnect(s)"
        if s.fatal:
            line += f"  FAILED: {s.fatal}"
        click.echo(line, err=True)
    rp = result.rest_poll
    if rp is not None:
        click.echo(f"  REST polls: {rp.requests:,} requests, {rp.ok:,} ok, {rp.errors:,} failed "
                   f"({rp.throttled:,} throttled with 429), {rp.skipped:,} skipped", err=True)
    if result.books is not None and (result.books.fetched or result.books.failures):
        click.echo(f"  Bitstamp REST books (diff alignment): {len(result.books.fetched):,} fetched, "
                   f"{result.books.failures:,} failed", err=True)
    st = result.settlements
    if st is not None and (st.requests or st.due):
        ok = sum(1 for v in st.done.values() if v)
        click.echo(f"  Kalshi settlements: {ok:,} determined ({len(st.requests):,} requests), "
                   f"{len(st.due):,} not yet due at the stop", err=True)
    click.echo(f"wrote {result.frames_written:,} frames to {cfg.output} (stopped: {result.stopped_by})", err=True)
    if result.stats and all(s.fatal for s in result.stats.values()):
        raise HarnessError("every venue failed; see the messages above")
    if result.stopped_by == "recording_failed":
        raise HarnessError(f"recording to {cfg.output} failed; see the messages above")
    if summary is not None:
        from harness.commands.replay import _print_pipeline

        _print_pipeline(summary)
        if summary["live_frames_not_computed"]:
            click.echo(f"  the pipeline fell behind: {summary['live_frames_not_computed']:,} frames not computed "
                       f"(replay the recording for the full run)", err=True)
        bad = f", {writer.session_log_errors:,} refused" if writer.session_log_errors else ""
        click.echo(f"pipeline session log: {writer.session_log_rows:,} rows in {cfg.output} "
                   f"(index_values, signals, fair_values, settlements{bad})", err=True)
    if live is not None:
        _report(live, cfg.output, html_path, json_path)
    sys.stdout.flush()


def _live_pipeline(cfg):
    """The pipeline as a recorder observer, each signal printed (stderr) as it is found, and
    the recording's writer (opened here so the session log can be written through it until
    the pipeline has finished; the session row's config carries the pipeline's)."""
    from rich.console import Console

    from harness import venues
    from harness.commands.replay import _make_pipeline
    from harness.pipeline.live import LivePipeline
    from harness.pipeline.output import RecordingLog, pipeline_meta
    from harness.store.writer import RecordingWriter
    from harness.timeparse import fmt_ns

    err = Console(stderr=True, highlight=False)

    def on_signal(s) -> None:
        q = s.quote
        err.print(f"[bold]signal[/bold] {fmt_ns(s.ts_ns)} {s.ticker} {s.side} at {s.price:.4f} fair {s.fair:.4f} "
                  f"edge {s.edge:+.4f} (YES {q.yes_bid}/{q.yes_ask}, quote {s.quote_age_ns / 1e9:.1f} s old)")

    pipe = _make_pipeline(cfg.output, None, None)
    pipe.keep = False  # the tick rows are in the recording: memory stays flat over a long run
    os.makedirs(os.path.dirname(os.path.abspath(cfg.output)), exist_ok=True)
    writer = RecordingWriter(cfg.output, mode="live", config={**cfg.to_json(), "pipeline": pipeline_meta(pipe)},
                             source="harness record: " + ",".join(cfg.venues), classify=venues.classify)
    pipe.log = RecordingLog(writer)
    return LivePipeline(pipe, on_signal), writer


def _live_checks(only):
    """The recorder observer running the checks; findings printed to stderr as they happen
    (the first ``_LIVE_REPEATS`` of each kind; the report counts them all)."""
    from rich.console import Console
    from rich.markup import escape

    from harness.checks import config as cfgmod
    from harness.checks.report import _STYLE
    from harness.checks.runner import CHECK_NAMES, LiveChecks, Runner

    names = [n.strip() for o in only for n in o.split(",") if n.strip()]
    bad = [n for n in names if n not in CHECK_NAMES]
    if bad:
        raise ConfigError(f"unknown check(s) {', '.join(bad)}", hint=f"use one of: {', '.join(CHECK_NAMES)}")
    console = Console(stderr=True, highlight=False)
    seen: dict = {}

    def show(f) -> None:
        n = seen[f.key] = seen.get(f.key, 0) + 1
        if n <= _LIVE_REPEATS:
            more = " (further ones counted in the report)" if n == _LIVE_REPEATS else ""
            console.print(f"[{_STYLE[f.severity]}]{f.severity.upper():4}[/] {escape(f.line()[5:])}{more}", soft_wrap=True)

    return LiveChecks(Runner(names or None, cfgmod.load(None)), show)


_LIVE_REPEATS = 3


def _report(live, output: str, html_path: str | None, json_path: str | None) -> None:
    from harness.checks.report import render_html, render_terminal, to_json

    report = live.finish(output)
    render_terminal(report)
    for path, text in ((json_path, to_json), (html_path, render_html)):
        if path:
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text(report))
            os.replace(tmp, path)
            click.echo(f"report: {path}", err=True)
    sys.stdout.flush()
    if report.exit_code:
        sys.exit(report.exit_code)
