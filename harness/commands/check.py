"""``harness check REC``: run the checks; exit 0 when none fails, 1 when one does, 2 on bad
input. See docs/checks.md."""

from __future__ import annotations

import os
import sys

import click

from harness.errors import ConfigError


def _specs(items) -> dict:
    out = {}
    for it in items:
        venue, sep, path = it.partition("=")
        if not sep or not venue or not path:
            raise ConfigError(f"--spec {it!r}: expected VENUE=PATH", hint="e.g. --spec kalshi=asyncapi.yaml")
        if not os.path.exists(path):
            raise ConfigError(f"--spec {it!r}: {path} does not exist")
        out[venue.lower()] = path
    return out


@click.command(name="check")
@click.argument("recording", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document instead of the table.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=str), help="Also write a self-contained HTML report.")
@click.option("--only", multiple=True, help="Run only this check (repeatable): endpoint, auth, format, sequence, latency, quality, freshness.")
@click.option("--spec", "specs", multiple=True, help="VENUE=PATH: validate that venue's frames against an AsyncAPI document.")
@click.option("--errata", type=click.Path(path_type=str), help="Errata file for the spec (default: the shipped Kalshi errata).")
@click.option("--config", "config_path", type=click.Path(path_type=str), help="TOML file with budgets/severities (default: [tool.harness.checks] in pyproject.toml).")
def command(recording, as_json, html_path, only, specs, errata, config_path):
    """Check a recording: endpoint, auth, format, sequence, latency, quality, freshness."""
    from harness.checks import config as cfgmod
    from harness.checks.report import render_html, render_terminal, to_json
    from harness.checks.runner import CHECK_NAMES, run_checks

    names = [n for o in only for n in o.split(",") if n]
    bad = [n for n in names if n not in CHECK_NAMES]
    if bad:
        raise ConfigError(f"unknown check(s) {', '.join(bad)}", hint=f"use one of: {', '.join(CHECK_NAMES)}")
    cfg = cfgmod.load(config_path)
    if errata is not None and not os.path.exists(errata):
        raise ConfigError(f"--errata {errata} does not exist")
    report = run_checks(recording, names or None, cfg, specs=_specs(specs), errata=errata)
    if as_json:
        click.echo(to_json(report))
    else:
        render_terminal(report)
    if html_path:
        tmp = html_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(render_html(report))
        os.replace(tmp, html_path)
        if not as_json:
            click.echo(f"HTML report: {html_path}")
    sys.exit(report.exit_code)
