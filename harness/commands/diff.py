"""``harness diff A B``: field-level differences between two message schemas, where each
side is an AsyncAPI spec (YAML/JSON) or a recording (what the frames actually carried).

Per message type: fields added, removed, changed JSON type, newly nullable (nested fields as
dotted paths, array items as ``[]``). The comparison itself is
``harness.venues.kalshi_spec.diff_field_maps`` on ``{type: {field_path: {json types}}}`` maps:
a spec gives ``spec_field_map``, a recording ``recording_field_map`` (every recorded text
frame parsed and walked, both directions). In a recording, Kalshi frames are keyed by their
bare type (``orderbook_delta``, ``cmd:subscribe``: the names of Kalshi's spec, so a recording
compares with the spec) and other venues' as ``venue:type`` (``coinbase:l2_data/update``).
Comparing a recording with a spec (in either order; shown spec first) keeps only the Kalshi
types and reports drift: fields the
frames carried that the spec does not list, other JSON types, nulls the spec does not allow.
Types and fields the spec lists but no recorded frame carried (channels not subscribed,
optional fields a session never saw) are only counted as "unseen".
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.venues.kalshi_spec import (
    FieldDiff,
    FieldMap,
    diff_field_maps,
    load_spec,
    spec_field_map,
)

_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_recording(path: str | Path) -> bool:
    """A SQLite file (a recording, or a foreign database the reader then refuses)."""
    with open(path, "rb") as fh:
        return fh.read(16) == _SQLITE_MAGIC


def recording_field_map(path: str | Path, venues: tuple[str, ...] = ()) -> tuple[FieldMap, dict]:
    """(field map, stats) of a recording's text frames (``venues``: only these). Frames
    that are not JSON, or that no classifier names, are counted in stats and skipped."""
    import orjson

    from harness import venues as venue_registry
    from harness.store.reader import Filters, Recording
    from harness.venues.kalshi_spec import frame_fields

    out: FieldMap = {}
    stats = {"frames": 0, "not_json": 0, "unclassified": 0}
    with Recording(path) as rec:
        conn_venue = rec.conn_venue
        for row in rec.rows(Filters(venues=venues, opcodes=("text",))):
            payload, typ = row[7], row[8]
            venue = (conn_venue.get(row[2]) or "unknown").lower()
            stats["frames"] += 1
            try:
                obj = orjson.loads(payload)
            except (orjson.JSONDecodeError, TypeError):
                stats["not_json"] += 1
                continue
            if typ is None:
                typ = venue_registry.classify(venue, payload)
            if typ is None:
                stats["unclassified"] += 1
                continue
            key = typ if venue == "kalshi" else f"{venue}:{typ}"
            frame_fields(obj, out.setdefault(key, {}))
    return out, stats


def field_map(path: str, venues: tuple[str, ...] = ()) -> tuple[FieldMap, str, dict | None]:
    """(field map, display name, recording stats or None for a spec) of either kind of file."""
    if is_recording(path):
        fm, stats = recording_field_map(path, venues)
        return fm, f"{path} (recording)", stats
    spec = load_spec(path)
    return spec_field_map(spec), spec.source, None


def _kalshi_only(fm: FieldMap) -> FieldMap:
    """The Kalshi types of a recording's map (bare names; other venues' are ``venue:type``)."""
    return {t: f for t, f in fm.items() if ":" not in t or t.startswith("cmd:")}


def spec_diff(a: str, b: str, venues: tuple[str, ...] = ()) -> tuple[FieldDiff, dict]:
    """Pure function behind the command (paths in; the structured diff and, per side that
    is a recording, how many frames were read out)."""
    fa, na, sa = field_map(a, venues)
    fb, nb, sb = field_map(b, venues)
    stats = {k: v for k, v in (("a", sa), ("b", sb)) if v is not None}
    if (sa is None) == (sb is None):
        return diff_field_maps(fa, fb, na, nb), stats
    # a recording against a spec (Kalshi's), spec first: what the frames carried that the spec
    # does not say (fields it does not list, JSON types or nulls it does not allow) is drift;
    # what the spec lists and no frame carried (types never subscribed, optional fields) is
    # only counted, as "unseen"
    if sa is not None:
        (fa, na, sa), (fb, nb, sb) = (fb, nb, sb), (fa, na, sa)
        stats = {"b": sb}
    d = diff_field_maps(fa, _kalshi_only(fb), na, nb)
    unseen_types = unseen_fields = 0
    for t, td in list(d.types.items()):
        if td.status == "removed":
            unseen_types += 1
            del d.types[t]
            continue
        unseen_fields += len(td.removed)
        td.removed, td.no_longer_nullable = [], []
        td.changed_type = [(p, x, y) for p, x, y in td.changed_type if not set(y) <= set(x)]
        if td.status == "changed" and not (td.added or td.changed_type or td.newly_nullable):
            td.status = "same"
    stats["unseen"] = {"types": unseen_types, "fields": unseen_fields}
    return d, stats


def render(diff: FieldDiff, show_all: bool = False):
    """One row per changed field: type | change | field | detail (readable when narrow)."""
    from rich.table import Table

    table = Table(title=f"{diff.a} -> {diff.b}")
    table.add_column("type", style="bold", no_wrap=True)
    table.add_column("change", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("detail", overflow="fold")
    styles = {"removed": "red", "added": "green", "type": "yellow", "nullable": "cyan"}
    for t, d in sorted(diff.types.items()):
        if not d.changed:
            if show_all:
                table.add_row(t, "same", "", "")
            continue
        if d.status in ("added", "removed"):
            fields = d.added or d.removed
            table.add_row(t, f"[{styles[d.status]}]type {d.status}[/]", f"{len(fields)} fields", "")
            continue
        for p in d.removed:
            table.add_row(t, "[red]removed[/]", p, "")
        for p in d.added:
            table.add_row(t, "[green]added[/]", p, "")
        for p, x, y in d.changed_type:
            table.add_row(t, "[yellow]type[/]", p, f"{'|'.join(x)} -> {'|'.join(y)}")
        for p in d.newly_nullable:
            table.add_row(t, "[cyan]nullable[/]", p, "now may be null")
        for p in d.no_longer_nullable:
            table.add_row(t, "[cyan]not nullable[/]", p, "no longer null")
    return table


@click.command("diff")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@click.option("--venue", "venues", multiple=True, help="Recordings: only this venue's frames (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list message types that did not change.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when any message type differs (for CI).")
def command(a: str, b: str, venues: tuple[str, ...], as_json: bool, show_all: bool, exit_code: bool) -> None:
    """Compare the message schemas of A and B: each an AsyncAPI file (e.g. an old and a new
    Kalshi spec) or a recording (the fields its frames carried), in any combination."""
    diff, stats = spec_diff(a, b, tuple(v.lower() for v in venues))
    changed = diff.changed()
    if as_json:
        out = diff.to_dict()
        out["recordings"] = stats
        click.echo(json.dumps(out, indent=2))
    else:
        from rich.console import Console

        console = Console()
        for side, st in stats.items():
            if side == "unseen":
                console.print(f"the spec's types and fields no recorded frame carried (not differences): "
                              f"{st['types']} types, {st['fields']} fields of the types seen")
                continue
            console.print(f"{side}: {st['frames']:,} text frames read"
                          + (f", {st['not_json']:,} not JSON" if st["not_json"] else "")
                          + (f", {st['unclassified']:,} of no known type" if st["unclassified"] else ""))
        if not changed and not show_all:
            console.print("no field differences")
        else:
            console.print(render(diff, show_all))
            console.print(f"{len(changed)} of {len(diff.types)} message types differ")
    if exit_code and changed:
        raise click.exceptions.Exit(1)
