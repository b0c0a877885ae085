"""``harness replay REC``: feed a recording through the sink at a chosen speed."""

from __future__ import annotations

import json
import sys

import click

from harness.errors import ConfigError
from harness.replay.schedule import parse_speed
from harness.replay.source import CountingSink, replay
from harness.store.reader import Filters, Recording
from harness.timeparse import fmt_ns, parse_time_ns


def build_filters(rec: Recording, venue, type_, dir_, t_from, t_to) -> Filters:
    start = None
    if (t_from or "").startswith("+") or (t_to or "").startswith("+"):
        row = rec.db.execute("SELECT min(t_wall_ns) FROM frames").fetchone()
        start = row[0]
    return Filters(
        venues=tuple(venue),
        types=tuple(type_),
        dir=dir_,
        t_from_ns=parse_time_ns(t_from, start_ns=start) if t_from else None,
        t_to_ns=parse_time_ns(t_to, start_ns=start) if t_to else None,
    )


@click.command("replay")
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("--speed", default="max", show_default=True, help="1 = recorded pace, N = N times faster, max = unpaced")
@click.option("--precise", is_flag=True, help="spin before each deadline for sub-millisecond pacing (uses a core)")
@click.option("--venue", multiple=True, help="only these venues (repeatable)")
@click.option("--type", "type_", multiple=True, help="only these message types (repeatable)")
@click.option("--dir", "dir_", type=click.Choice(["in", "out"]), help="only this direction")
@click.option("--from", "t_from", help="start: Unix s, ISO 8601, or +30s from the first frame")
@click.option("--to", "t_to", help="end (exclusive), same forms as --from")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
def command(recording, speed, precise, venue, type_, dir_, t_from, t_to, as_json):
    """Replay RECORDING in receive order at --speed and summarise what was delivered."""
    try:
        spd = parse_speed(speed)
    except ValueError as e:
        raise ConfigError(str(e), hint="--speed 1, --speed 10 or --speed max") from None
    from harness import venues

    with Recording(recording) as rec:
        filters = build_filters(rec, venue, type_, dir_, t_from, t_to)
        sink = CountingSink(classify=venues.classify)
        total = rec.count(filters)
        if sys.stderr.isatty() and not as_json:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), transient=True) as prog:
                task = prog.add_task(f"replay {recording}", total=total)
                stats = replay(rec, sink, speed=spd, filters=filters, precise=precise,
                               progress=lambda n: prog.update(task, completed=n))
        else:
            stats = replay(rec, sink, speed=spd, filters=filters, precise=precise)
    summary = stats.as_dict()
    summary["recording"] = recording
    summary["first_frame"] = fmt_ns(stats.first_t_ns)
    summary["by_type"] = [
        {"venue": v, "dir": d, "type": t, "frames": n} for (v, d, t), n in sorted(sink.by_type.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2])))
    ]
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    lat = s["lateness"]
    con.print(
        f"[bold]replayed[/bold] {s['frames']} frames spanning {s['recorded_span_s']:.3f} s "
        f"in {s['wall_s']:.3f} s ({s['frames_per_s'] or 0:,.0f} frames/s, speed {s['speed']})"
    )
    if lat.get("n"):
        con.print(f"lateness vs schedule: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms")
    t = Table("venue", "dir", "type", "frames", title="frames delivered")
    for row in s["by_type"]:
        t.add_row(row["venue"], row["dir"], str(row["type"]), str(row["frames"]))
    con.print(t)
