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
@click.option("--expect", "expect", multiple=True, metavar="CHECK.CODE",
              help="A finding this recording must produce (repeatable, or comma-separated), e.g. sequence.gap. "
                   "Exit 0 when every expected finding appears and nothing else fails: for recordings "
                   "made with faults on purpose.")
def command(recording, as_json, html_path, only, specs, errata, config_path, expect):
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
    expected = [e.strip() for x in expect for e in x.split(",") if e.strip()]
    if not expected:
        sys.exit(report.exit_code)
    sys.exit(_judge_expected(report, expected, quiet=as_json))


def _judge_expected(report, expected: list[str], *, quiet: bool) -> int:
    """0 when every expected ``check.code`` was found (at any severity) and no other code
    failed; 1 otherwise, saying which."""
    for e in expected:
        if "." not in e:
            raise ConfigError(f"--expect {e!r}: expected CHECK.CODE", hint="e.g. --expect sequence.gap")
    found: dict[str, int] = {}
    failed: set[str] = set()
    for res in report.results:
        for f in res.findings:
            key = f"{f.check}.{f.code}"
            found[key] = found.get(key, 0) + (f.count or 1)
            if f.severity == "fail":
                failed.add(key)
    missing = [e for e in expected if e not in found]
    unexpected = sorted(failed - set(expected))
    if not quiet:
        for e in expected:
            click.echo(f"expected {e}: " + (f"found ({found[e]})" if e in found else "MISSING"))
        for u in unexpected:
            click.echo(f"unexpected failure {u} ({found[u]})")
        click.echo("EXPECTED FINDINGS: " + ("all found, nothing else failed" if not (missing or unexpected)
                                              else f"{len(missing)} missing, {len(unexpected)} unexpected"))
    return 1 if (missing or unexpected) else 0
