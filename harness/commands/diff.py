"""``harness diff SPEC_A SPEC_B``: field-level differences between two AsyncAPI specs.

Per message type: fields added, removed, changed JSON type, newly nullable (nested fields as
dotted paths, array items as ``[]``). The comparison itself is
``harness.venues.kalshi_spec.diff_field_maps`` on ``{type: {field_path: {json types}}}`` maps,
so field sets observed in recordings (``observed_field_map``) can be compared the same way.
"""

from __future__ import annotations

import json

import click

from harness.venues.kalshi_spec import FieldDiff, diff_specs


def spec_diff(a: str, b: str) -> FieldDiff:
    """Pure function behind the command (paths in, structured diff out)."""
    return diff_specs(a, b)


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
@click.argument("spec_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("spec_b", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list message types that did not change.")
def command(spec_a: str, spec_b: str, as_json: bool, show_all: bool) -> None:
    """Compare the message schemas of two AsyncAPI files (e.g. an old and a new Kalshi spec)."""
    diff = spec_diff(spec_a, spec_b)
    if as_json:
        click.echo(json.dumps(diff.to_dict(), indent=2))
        return
    from rich.console import Console

    console = Console()
    changed = diff.changed()
    if not changed and not show_all:
        console.print("no field differences")
        return
    console.print(render(diff, show_all))
    console.print(f"{len(changed)} of {len(diff.types)} message types differ")
