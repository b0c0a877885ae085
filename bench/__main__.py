"""Run every benchmark module and write BENCHMARKS.md."""

from __future__ import annotations

import datetime
import importlib
import pkgutil
import sys
from pathlib import Path

import bench
from bench.common import machine

OUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def main(argv: list[str]) -> int:
    only = set(argv)
    rows, notes = [], []
    for m in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if not m.name.startswith("bench_") or (only and m.name[6:] not in only):
            continue
        mod = importlib.import_module(f"bench.{m.name}")
        print(f"== {m.name}", flush=True)
        got = mod.run()
        for r in got:
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
            status = {True: "ok", False: "MISS", None: ""}[r.ok]
            print(f"  {r.name}: {r.value:,.1f} {r.unit} (baseline {r.baseline or 0:,.1f}, {ratio}) target {r.target} {status} {r.note}", flush=True)
        rows.extend(got)
        notes.extend(getattr(mod, "NOTES", []))
    versions = []
    for pkg in ("websockets", "aiohttp", "msgspec", "orjson"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except Exception:
            pass
    import sqlite3

    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}. SQLite {sqlite3.sqlite_version}; {', '.join(versions)}.",
        "Ratios compare against a raw baseline measured in the same run on the same machine.",
        "",
        "| area | measure | value | baseline | ratio | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.area} | {r.name} | {r.value:,.1f} {r.unit} | {'' if r.baseline is None else f'{r.baseline:,.1f}'} | "
            f"{'' if r.ratio is None else f'{r.ratio:.2f}x'} | {r.target} | {'' if r.ok is None else ('yes' if r.ok else 'NO')} | {r.note} |"
        )
    if notes:
        lines += ["", "## Notes", ""] + notes
    if only and OUT.exists():
        print("(partial run: BENCHMARKS.md not rewritten)")
    else:
        OUT.write_text("\n".join(lines) + "\n")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
