"""``harness export REC --jsonl [-o FILE|-]``: a recording's frames as JSON Lines."""

from __future__ import annotations

import io
import os
import sys

import click

from harness.store.export import export_jsonl, export_jsonl_file
from harness.store.reader import Filters, Recording


@click.command(name="export")
@click.argument("recording", type=click.Path(path_type=str))
@click.option("--jsonl", "fmt", flag_value="jsonl", default=True, help="JSON Lines frame format (the default and only one).")
@click.option("-o", "--output", default="-", show_default=True, type=click.Path(path_type=str),
              help="File to write (`-` = stdout; a name ending .zst is zstd-compressed).")
@click.option("--venue", "venues", multiple=True, help="Only these venues (repeatable).")
@click.option("--dir", "direction", type=click.Choice(["in", "out"]), help="Only received (in) or sent (out) frames.")
@click.option("--session", "sessions", type=int, multiple=True, help="Only these session ids (repeatable).")
def command(recording: str, fmt: str, output: str, venues: tuple[str, ...], direction: str | None,
            sessions: tuple[int, ...]) -> None:
    """Write RECORDING's frames in receive order, one JSON object a line:

    \b
    {"venue":"kraken","conn":3,"dir":"in","t":1618678132.358447,"frame":"..."}

    `t` is the exact wall time in Unix seconds, `conn` the recording's connection id,
    `url` is on each connection's first line; non-text frames carry `frame_b64` (and
    `opcode` unless binary). `harness import jsonl` reads it back to the same frames.
    See docs/formats.md.
    """
    f = Filters(venues=venues, dir=direction, sessions=sessions)
    with Recording(recording) as rec:
        if output == "-":
            out = sys.stdout.buffer
            try:
                export_jsonl(rec, out, f)
                out.flush()
            except BrokenPipeError:  # `harness export REC | head`: the reader left; not an error
                try:
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                except (OSError, ValueError, io.UnsupportedOperation):
                    pass
        else:
            n = export_jsonl_file(rec, output, f)
            click.echo(f"wrote {output}: {n} frames", err=True)
        if rec.bad_rows:
            click.echo(f"warning: skipped {len(rec.bad_rows)} damaged rows whose time is not an integer "
                       f"(frame ids {', '.join(map(str, rec.bad_rows[:10]))})", err=True)
