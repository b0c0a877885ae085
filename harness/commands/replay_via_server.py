"""``harness replay REC --via-server``: the CLI half of ``harness.replay.via_server``.

Prints what a normal replay prints (frames delivered, the pipeline summary) plus how many
data frames the server sent and how many arrived, and the check report on what arrived.
"""

from __future__ import annotations

import asyncio
import json
import os

import click

from harness.errors import ConfigError
from harness.timeparse import fmt_ns


def run(recording, spd, precise, venue, type_, dir_, t_from, t_to, as_json, no_pipeline, out, min_venues, keep):
    from harness import venues
    from harness.checks import config as cfgmod
    from harness.checks.report import render_terminal
    from harness.checks.runner import Runner
    from harness.commands.replay import _make_pipeline, _print_pipeline, _print_summary, _Tee
    from harness.replay.source import CountingSink
    from harness.replay.via_server import run_via_server
    from harness.store.reader import Recording

    unsupported = [name for name, v in (("--type", type_), ("--dir", dir_), ("--from", t_from), ("--to", t_to)) if v]
    if unsupported:
        raise ConfigError(f"{', '.join(unsupported)} cannot be used with --via-server",
                          hint="the server plays whole venue streams; --venue selects venues")
    if out and no_pipeline:
        raise ConfigError("--out needs the pipeline", hint="drop --no-pipeline")
    with Recording(recording) as rec:  # refuses a missing or foreign file with its hint
        http_rows = rec.http()
    counter = CountingSink(classify=venues.classify)
    runner = Runner(config=cfgmod.load(None))
    runner.start(path=f"{recording} (via server; frame ids: --keep-recording)", live=True)
    sinks = [counter, runner]
    pipe = None
    if not no_pipeline:
        pipe = _make_pipeline(recording, out, min_venues)
        pipe.attach_http(http_rows)
        sinks = [_Tee(counter, pipe), runner]

    def connections_from(path, late_conns):
        # connection rows (headers, handshake status) and events are complete once the
        # recorder closed the file: the endpoint and auth checks read them from there
        # (not the reconnections after a venue's end: their frames were not delivered)
        with Recording(path) as b:
            runner.ctx.events = [e for e in b.events() if e.get("conn_id") not in late_conns]
            for c in b.connections():
                if c["id"] not in late_conns:
                    runner.add_connection(c)

    try:
        res = asyncio.run(run_via_server(recording, sinks, speed=spd, venues=venue, keep=keep, on_recording=connections_from,
                                         signals=True, precise=precise))
    except BaseException:
        if pipe is not None and pipe.log is not None:
            pipe.log.abort()
        raise
    report = runner.finish()
    if res.recording:
        report.path = os.fspath(res.recording)  # frame ids in findings are that file's
    span = ((res.last_t_ns - res.first_t_ns) / 1e9) if res.first_t_ns is not None else 0.0
    summary = {
        "recording": recording, "frames": res.delivered, "recorded_span_s": round(span, 6),
        "wall_s": round(res.wall_s, 6), "frames_per_s": round(res.delivered / res.wall_s, 1) if res.wall_s > 0 else None,
        "speed": "max" if spd is None else spd, "lateness": res.lateness, "first_frame": fmt_ns(res.first_t_ns),
        "by_type": [{"venue": v, "dir": d, "type": t, "frames": n}
                    for (v, d, t), n in sorted(counter.by_type.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2])))],
        "via_server": {"venues": res.venues, "served": res.served, "arrived": res.arrived, "other_frames": res.other,
                       "after_end": res.after_end, "failed": res.failed, "warnings": res.warnings, "server": res.server,
                       "recording": res.recording},
    }
    if pipe is not None:
        pipe.finish()
        summary["pipeline"] = pipe.summary()
        if out:
            summary["pipeline"]["out"] = out
    summary["checks"] = report.to_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    _print_summary(summary)
    _print_via(summary["via_server"])
    if pipe is not None:
        _print_pipeline(summary["pipeline"])
    render_terminal(report)
    if res.recording:
        click.echo(f"recording made through the wire: {os.fspath(res.recording)}")


def _print_via(v: dict) -> None:
    from rich.console import Console

    con = Console()
    parts = []
    for venue in v["venues"]:
        s, a = v["served"].get(venue, 0), v["arrived"].get(venue, 0)
        mark = "" if s == a else f" [bold red](missing {s - a})[/bold red]"
        parts.append(f"{venue} {a}/{s}{mark}")
    con.print(f"[bold]through the wire[/bold]: data frames arrived/served: {', '.join(parts)}; "
              f"{sum(v['other_frames'].values())} other frames (acks, pings, commands)")
    for venue, why in v["failed"].items():
        con.print(f"[bold red]{venue} failed[/bold red]: {why}")
