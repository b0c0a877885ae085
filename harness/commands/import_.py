"""``harness import FORMAT FILE... -o REC``: captures of other tools -> a recording."""

from __future__ import annotations

import click

from harness.store.importers import FAMILIES, FileResult, import_files


@click.command(name="import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(sorted(FAMILIES)))
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="Recording to write (SQLite).")
@click.option("--append", "existing", flag_value="append", help="Add the files as new sessions of an existing recording.")
@click.option("--replace", "existing", flag_value="replace", help="Overwrite an existing OUTPUT.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def command(fmt: str, files: tuple[str, ...], output: str, existing: str | None, quiet: bool) -> None:
    """Import captures into a recording, one session per FILE.

    \b
    FORMAT cryptofeed: cryptofeed format 2 JSON Lines (.jsonl or .jsonl.zst) and the
      legacy text captures (legacy_*.ws.*.txt, legacy_*.http.*.txt); the format is
      detected from each file's content.
    FORMAT jsonl: the harness JSON Lines frame format (what `harness export` writes):
      {"venue":..,"dir":"in"|"out","t":<unix s>,"frame":"<text>"} a line, optional
      conn, url, opcode, frame_b64. See docs/formats.md.

    Imported frames keep the capture's time exactly (t_wall_ns from the decimal text) and
    use it as t_mono_ns too. The import is all-or-nothing: OUTPUT is written to a temp
    file next to it and renamed at the end; on any error it is left as it was. If OUTPUT
    exists, --append or --replace is required.
    """

    def report(r: FileResult) -> None:
        if quiet:
            return
        rate = f", {r.frames_per_s:,.0f} frames/s" if r.frames else ""
        click.echo(
            f"{r.path}: {r.format}, venue {','.join(r.venues) or '-'}, session {r.session_id}: "
            f"{r.connections} connections, {r.frames_in} in + {r.frames_out} out frames ({r.bytes:,} bytes), "
            f"{r.http} http, {r.seconds:.2f}s{rate}",
            err=True,
        )

    results = import_files(fmt, files, output, existing=existing or "error", on_file=report)
    if not quiet:
        n = sum(r.frames for r in results)
        click.echo(f"wrote {output}: {len(results)} sessions, {n} frames", err=True)
