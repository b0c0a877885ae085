"""Helpers for the checks tests: real cryptofeed captures imported once per session."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from harness.store.importers import import_files

CAPTURES = {
    "COINBASE": ["COINBASE.jsonl.zst"],
    "KRAKEN": ["KRAKEN.jsonl.zst"],
    "BITSTAMP": ["BITSTAMP.jsonl.zst"],
    "GEMINI": ["GEMINI.jsonl.zst"],
    "CRYPTO.COM": ["CRYPTO.COM.jsonl.zst"],
    "legacy_COINBASE": ["legacy_COINBASE.ws.28.0.txt"],
    "legacy_BITSTAMP": ["legacy_BITSTAMP.ws.19.0.txt", "legacy_BITSTAMP.http.18.0.txt"],
    "legacy_GEMINI": ["legacy_GEMINI.ws.36.0.txt"],
}


@pytest.fixture(scope="session")
def imported(realdata, tmp_path_factory) -> dict[str, Path]:
    out = {}
    d = tmp_path_factory.mktemp("captures")
    for name, files in CAPTURES.items():
        p = d / f"{name}.db"
        import_files("cryptofeed", [realdata / "cryptofeed" / f for f in files], p)
        out[name] = p
    return out


def copy_db(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def sql(path: Path, query: str, params=()) -> list:
    with sqlite3.connect(path) as db:
        rows = db.execute(query, params).fetchall()
        db.commit()
    return rows


def kalshi_recording(lines: list[dict], tmp: Path, name: str) -> Path:
    """kalshi_frames.jsonl entries -> generic JSONL (one connection per frame so unrelated
    frames do not share a sequence; client commands dir out) -> a recording."""
    src = tmp / f"{name}.jsonl"
    with open(src, "w") as fh:
        for i, d in enumerate(lines):
            out = d["type"].startswith("cmd:")
            fh.write(json.dumps({"venue": "kalshi", "conn": i, "dir": "out" if out else "in",
                                 "t": f"{1786309200 + i}.{i:03d}", "frame": d["frame"]}) + "\n")
    rec = tmp / f"{name}.db"
    import_files("jsonl", [src], rec)
    return rec
