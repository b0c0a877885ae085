"""``harness inspect REC [--json]``: what is in a recording."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import click

from harness.store.inspect import inspect_recording
from harness.store.reader import Recording


def _t(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _s(x: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


@click.command(name="inspect")
@click.argument("recording", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (keys below) instead of tables.")
@click.option("--gap-threshold", default=5.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Seconds without an inbound frame on a connection that count as a gap.")
@click.option("--max-gaps", default=1000, show_default=True, type=click.IntRange(min=0),
              help="List at most this many gaps (all are counted).")
def command(recording: str, as_json: bool, gap_threshold: float, max_gaps: int) -> None:
    """Summarize RECORDING: sessions, connections, frame counts by venue, direction and
    type, bytes, time span, inbound message rates, gaps, events and HTTP rows, and the
    session log a live `record --pipeline` wrote (index values, signals, fair values, settlements).

    \b
    --json keys (times *_ns are Unix ns, durations *_s seconds, null when unknown):
      path, file_bytes, schema_version
      sessions[]: id, mode, source, host, harness_version, config, started_ns,
                  ended_ns, frames, connections
      connections[]: id, session_id, venue, url, opened_ns, closed_ns, close_code,
                  close_reason, frames_in, frames_out, bytes, first_frame_ns,
                  last_frame_ns, duration_s, duration_basis, in_rate_per_s
      frames: total, in, out, bytes, first_ns, last_ns, span_s
      venues[]: venue, connections, frames, frames_in, frames_out, bytes, first_ns,
                  last_ns, span_s, in_rate_per_s
      types[]: venue, dir, type, frames, bytes
      gaps: threshold_s, count, longest_s, items_truncated,
            items[]: conn_id, venue, session_id, after_frame_id, before_frame_id,
                     start_ns, end_ns, gap_s
      events: total, by_kind{kind: n}
      http: total, by_venue{venue: n}, response_bytes
      close_codes: {code: n}
      session_log: index_values, index_valid, signals, settlements, fair_values, first_ns,
                  last_ns, by_session{session_id: {index_values, signals,
                  settlements, fair_values}}  (null: a version-1 recording)
    See docs/formats.md for the exact definitions.
    """
    with Recording(recording) as rec:
        facts = inspect_recording(rec, gap_threshold_s=gap_threshold, max_gaps=max_gaps)
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=str))
        return
    _render(facts)


def _render(f: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(width=160)  # piped to a file: don't squeeze tables into 80 columns
    fr = f["frames"]
    con.print(f"[bold]{f['path']}[/bold]  schema v{f['schema_version']}, {f['file_bytes'] or 0:,} bytes; "
              f"{fr['total']:,} frames ({fr['in']:,} in, {fr['out']:,} out), {fr['bytes']:,} payload bytes; "
              f"{_t(fr['first_ns'])} .. {_t(fr['last_ns'])} UTC ({_s(fr['span_s'])} s)")

    t = Table(title="sessions", title_justify="left")
    for c in ("id", "mode", "source", "start (UTC)", "end (UTC)", "host", "version", "conns", "frames"):
        t.add_column(c, justify="right" if c in ("id", "conns", "frames") else "left")
    for s in f["sessions"]:
        t.add_row(str(s["id"]), s["mode"], s["source"] or "-", _t(s["started_ns"]), _t(s["ended_ns"]),
                  s["host"] or "-", s["harness_version"] or "-", str(s["connections"]), f"{s['frames']:,}")
    con.print(t)

    t = Table(title="connections", title_justify="left")
    for c in ("id", "session", "venue", "url", "opened (UTC)", "duration s", "close", "in", "out", "in/s"):
        t.add_column(c, justify="left" if c in ("venue", "url", "opened (UTC)", "close") else "right")
    for c in f["connections"]:
        close = "-" if c["close_code"] is None else f"{c['close_code']} {c['close_reason'] or ''}".strip()
        dur = _s(c["duration_s"]) + ("" if c["duration_basis"] != "last_frame" else " *")
        t.add_row(str(c["id"]), str(c["session_id"]), c["venue"], c["url"] or "-", _t(c["opened_ns"]), dur, close,
                  f"{c['frames_in']:,}", f"{c['frames_out']:,}", _s(c["in_rate_per_s"]))
    if not f["connections"]:
        con.print("no connections")
        t = None
    if t is not None:
        con.print(t)
    if any(c["duration_basis"] == "last_frame" for c in f["connections"]):
        con.print("  * no close recorded: duration up to the last frame")

    t = Table(title="venues", title_justify="left")
    for c in ("venue", "conns", "frames in", "frames out", "bytes", "first (UTC)", "last (UTC)", "span s", "in frames/s"):
        t.add_column(c, justify="left" if c in ("venue", "first (UTC)", "last (UTC)") else "right")
    for v in f["venues"]:
        t.add_row(v["venue"], str(v["connections"]), f"{v['frames_in']:,}", f"{v['frames_out']:,}", f"{v['bytes']:,}",
                  _t(v["first_ns"]), _t(v["last_ns"]), _s(v["span_s"]), _s(v["in_rate_per_s"]))
    if f["venues"]:
        con.print(t)

    t = Table(title="frames by type", title_justify="left")
    for c in ("venue", "dir", "type", "frames", "bytes"):
        t.add_column(c, justify="right" if c in ("frames", "bytes") else "left")
    for x in f["types"]:
        t.add_row(str(x["venue"]), str(x["dir"]), str(x["type"] or "(unclassified)"), f"{x['frames']:,}", f"{x['bytes']:,}")
    if f["types"]:
        con.print(t)

    g = f["gaps"]
    con.print(f"[bold]gaps[/bold] > {g['threshold_s']:g} s without an inbound frame: {g['count']}"
              + (f", longest {g['longest_s']:.3f} s" if g["longest_s"] is not None else ""))
    if g["items"]:
        t = Table()
        for c in ("conn", "venue", "from (UTC)", "to (UTC)", "gap s", "after frame", "before frame"):
            t.add_column(c, justify="left" if c in ("venue", "from (UTC)", "to (UTC)") else "right")
        for x in g["items"]:
            t.add_row(str(x["conn_id"]), x["venue"], _t(x["start_ns"]), _t(x["end_ns"]), f"{x['gap_s']:.3f}",
                      str(x["after_frame_id"]), str(x["before_frame_id"]))
        con.print(t)
        if g["items_truncated"]:
            con.print(f"  (first {len(g['items'])} of {g['count']} listed; --max-gaps to change)")
    ev = f["events"]
    con.print(f"[bold]events[/bold]: {ev['total']}" + (" (" + ", ".join(f"{k} {n}" for k, n in ev["by_kind"].items()) + ")" if ev["total"] else ""))
    h = f["http"]
    con.print(f"[bold]http[/bold]: {h['total']}" + (" (" + ", ".join(f"{k} {n}" for k, n in h["by_venue"].items()) + f"; {h['response_bytes']:,} body bytes)" if h["total"] else ""))
    if f["close_codes"]:
        con.print("[bold]close codes[/bold]: " + ", ".join(f"{k}: {n}" for k, n in f["close_codes"].items()))
    sl = f.get("session_log")
    if sl is not None:  # null: a version-1 recording, which cannot hold one
        if sl["index_values"] or sl["signals"] or sl["settlements"]:
            con.print(f"[bold]session log[/bold] (record --pipeline): {sl['index_values']:,} index values "
                      f"({sl['index_valid']:,} valid, {_t(sl['first_ns'])} .. {_t(sl['last_ns'])} UTC), "
                      f"{sl['signals']:,} signals, {sl['fair_values']:,} fair values, {sl['settlements']:,} settlements")
        else:
            con.print("[bold]session log[/bold]: empty (recorded without --pipeline)")
