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
@click.option("--no-pipeline", is_flag=True, help="only deliver frames: skip the BRTI proxy / signals pipeline")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="write the pipeline's index_values/signals/settlements to this separate SQLite file")
@click.option("--min-venues", type=click.IntRange(min=1), default=None,
              help="fewer admitted venues makes the index invalid (default 2; 1 for single-venue recordings)")
@click.option("--via-server", is_flag=True,
              help="serve the recording on 127.0.0.1, record it with the live recorder, run the pipeline and checks on what arrives")
@click.option("--keep-recording", type=click.Path(dir_okay=False),
              help="with --via-server: keep the recording made through the wire here (default: a temp file, removed)")
def command(recording, speed, precise, venue, type_, dir_, t_from, t_to, as_json, no_pipeline, out, min_venues,
            via_server, keep_recording):
    """Replay RECORDING in receive order at --speed and summarise what was delivered.

    The frames also run through the pipeline (venue books -> BRTI proxy at 5 Hz ->
    fair value -> signals); its summary is printed at the end (--no-pipeline skips it).
    With --via-server the frames travel the full live path first (impersonation server ->
    WebSocket -> live recorder) and the checks run on what arrived."""
    try:
        spd = parse_speed(speed)
    except ValueError as e:
        raise ConfigError(str(e), hint="--speed 1, --speed 10 or --speed max") from None
    if keep_recording and not via_server:
        raise ConfigError("--keep-recording needs --via-server")
    if via_server:
        from harness.commands.replay_via_server import run

        return run(recording, spd, precise, venue, type_, dir_, t_from, t_to, as_json, no_pipeline, out,
                   min_venues, keep_recording)
    from harness import venues

    with Recording(recording) as rec:
        filters = build_filters(rec, venue, type_, dir_, t_from, t_to)
        sink = counter = CountingSink(classify=venues.classify)
        pipe = None
        if not no_pipeline:
            pipe = _make_pipeline(recording, out, min_venues)
            pipe.attach_http(rec.http(pipe.HTTP_URLS))
            sink = _Tee(counter, pipe)
        elif out:
            raise ConfigError("--out needs the pipeline", hint="drop --no-pipeline")
        try:
            if sys.stderr.isatty() and not as_json:
                total = rec.count(filters)  # a full scan: only the progress bar needs it
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TimeRemainingColumn,
                )

                with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                              TimeRemainingColumn(), transient=True) as prog:
                    task = prog.add_task(f"replay {recording}", total=total)
                    stats = replay(rec, sink, speed=spd, filters=filters, precise=precise,
                                   progress=lambda n: prog.update(task, completed=n))
            else:
                stats = replay(rec, sink, speed=spd, filters=filters, precise=precise)
        except BaseException:
            if pipe is not None and pipe.log is not None:
                pipe.log.abort()  # no half-written session log under the final name
            raise
        # a live `record --pipeline` left its index in the recording: same as this replay's?
        recorded = None
        if pipe is not None and filters == Filters():
            from harness.pipeline.output import compare_recorded

            recorded = compare_recorded(rec.db, pipe)
    summary = stats.as_dict()
    summary["recording"] = recording
    summary["first_frame"] = fmt_ns(stats.first_t_ns)
    summary["by_type"] = [
        {"venue": v, "dir": d, "type": t, "frames": n} for (v, d, t), n in sorted(counter.by_type.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]), str(kv[0][2])))
    ]
    if pipe is not None:
        pipe.finish()
        summary["pipeline"] = pipe.summary()
        if recorded is not None:
            summary["pipeline"]["recorded"] = recorded
        if out:
            summary["pipeline"]["out"] = out
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)
    if pipe is not None:
        _print_pipeline(summary["pipeline"])


class _Tee:
    """Deliver each frame to the frame counter and the pipeline."""

    def __init__(self, counter, pipe):
        self.counter, self.pipe = counter, pipe
        self._a, self._b = counter.on_frame, pipe.on_frame

    def on_frame(self, f) -> None:
        self._a(f)
        self._b(f)


def _make_pipeline(recording: str, out: str | None, min_venues: int | None):
    import dataclasses

    from harness.pipeline import PipelineConfig
    from harness.pipeline.output import SessionLog
    from harness.pipeline.stages import Pipeline

    cfg = PipelineConfig()
    if min_venues is not None:
        cfg = dataclasses.replace(cfg, brti=dataclasses.replace(cfg.brti, min_venues=min_venues))
    log = None
    if out:
        from harness import __version__

        log = SessionLog(out, recording=recording, meta={
            "recording": recording, "harness_version": __version__,
            "config": {r["section"] + "." + r["name"]: r["value"] for r in cfg.describe()},
        })
    pipe = Pipeline(cfg, log=log)
    if log is not None:
        log.set_meta({"book_levels": {"band": pipe.band, "min_levels": pipe.min_levels, "max_levels": pipe.max_levels}})
    return pipe


def _fmt_px(v) -> str:
    return "-" if v is None else f"{v:,.2f}"


def _print_pipeline(p: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    ix = p["index"]
    con.print(
        f"[bold]index[/bold] (BRTI proxy, {ix['cadence_ms']:.0f} ms cadence): {ix['ticks']} ticks, {ix['valid']} valid, "
        f"{ix['published']} published; first {_fmt_px(ix['first'])} ({fmt_ns(ix['first_ts_ns'])}), "
        f"last {_fmt_px(ix['last'])} ({fmt_ns(ix['last_ts_ns'])}), min {_fmt_px(ix['min'])}, max {_fmt_px(ix['max'])}; "
        f"baseline last {_fmt_px(ix['baseline_last'])}"
    )
    used = ", ".join(
        f"{v} ({d['instrument']}: {d['ticks_used']} ticks" + (", excluded " + ", ".join(f"{k} {n}" for k, n in d["excluded"].items()) if d["excluded"] else "") + ")"
        for v, d in ix["venues"].items()
    )
    con.print(f"venues used: {used or 'none'} (min_venues {ix['min_venues']})")
    n_venues = len(ix["venues"])
    if ix["ticks"] and not ix["valid"] and 0 < n_venues < ix["min_venues"]:
        con.print(f"[yellow]no valid index: the recording has {n_venues} spot venue{'s' if n_venues > 1 else ''} with a BTC "
                  f"book, fewer than min_venues {ix['min_venues']}; pass --min-venues {n_venues} for a "
                  f"{'single' if n_venues == 1 else 'smaller'}-venue proxy[/yellow]")
    if p["signals"]:
        t = Table("time (UTC)", "market", "side", "price", "fair", "edge", "quote age s", "index move", title="signals")
        for s in p["signals"]:
            t.add_row(fmt_ns(s["ts_ns"]), s["ticker"], s["side"], f"{s['price']:.4f}", f"{s['fair']:.4f}",
                      f"{s['edge']:+.4f}", f"{s['quote_age_ns'] / 1e9:.1f}",
                      "-" if s["index_move"] is None else f"{s['index_move']:+.2f}")
        con.print(t)
    else:
        con.print("signals: none")
    if p["settlements"]:
        t = Table("market", "settled on", "proxy 60 s avg", "error", "baseline avg", "error", "n", "outcome", title="settlements")
        for e in p["settlements"]:
            t.add_row(e["ticker"], _fmt_px(e["settlement_value"]), _fmt_px(e["proxy_avg"]),
                      "-" if e["proxy_error"] is None else f"{e['proxy_error']:+.2f}", _fmt_px(e["baseline_avg"]),
                      "-" if e["baseline_error"] is None else f"{e['baseline_error']:+.2f}", str(e["proxy_n"]),
                      f"{e['result'] or '?'} / proxy {e['proxy_outcome'] or '?'}")
        con.print(t)
    if p.get("decode_errors"):
        con.print(f"decode errors: {p['decode_errors']}")
    if p.get("recorded"):
        from harness.pipeline.output import describe_comparison

        con.print(describe_comparison(p["recorded"]))
    if p.get("out"):
        con.print(f"session log written to {p['out']}")


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
