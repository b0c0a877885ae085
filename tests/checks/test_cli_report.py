"""harness check on the committed sample: exit codes, JSON keys, HTML with PNGs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.checks import run_checks
from harness.checks.report import render_html

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "recordings" / "sample.db"


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "harness", "check", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_sample_passes_every_check():
    rep = run_checks(SAMPLE)
    assert rep.exit_code == 0
    assert [r.name for r in rep.results] == ["endpoint", "auth", "format", "sequence", "latency", "quality", "freshness"]
    for r in rep.results:
        assert r.status != "fail", [f.line() for f in r.findings]
    for name in ("endpoint", "auth", "format", "sequence", "quality"):
        assert rep.result(name).status == "pass"
    # the sample's Coinbase/Kraken venue timestamps are 40 min after their receive times
    # (the frames were re-timed when the sample was made): reported, as a warning
    assert {f.code for f in rep.result("latency").findings} <= {"clock_behind"}
    assert rep.result("quality").stats["mid_comparisons"] > 0


def test_cli_json_and_exit_codes(tmp_path):
    p = _cli(SAMPLE, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert {"recording", "harness_version", "generated_ns", "status", "exit_code", "frames", "wall_s", "show_hint", "checks", "config"} <= set(doc)
    c = doc["checks"][0]
    assert {"name", "status", "counts", "findings", "spec_findings", "stats", "notes"} <= set(c)
    assert _cli(tmp_path / "missing.db").returncode == 2
    assert _cli(SAMPLE, "--only", "nonsense").returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[checks]\nsilence_z = 3\n")
    assert _cli(SAMPLE, "--config", bad).returncode == 2
    # a budget the sample cannot meet makes latency fail: exit 1, terminal names the frame
    strict = tmp_path / "strict.toml"
    strict.write_text('[tool.harness.checks]\nsilence_s = 1\n')
    p = _cli(SAMPLE, "--config", strict, "--only", "latency")
    assert p.returncode == 1
    assert "silence" in p.stdout and "harness show" in p.stdout


def test_cli_deleted_frame_exit_1_names_frame(tmp_path):
    import sqlite3

    db = tmp_path / "s.db"
    shutil.copy(SAMPLE, db)
    with sqlite3.connect(db) as c:
        fid = c.execute("SELECT id FROM frames WHERE type='orderbook_delta' ORDER BY id LIMIT 1 OFFSET 10").fetchone()[0]
        nxt = c.execute("SELECT id FROM frames WHERE type='orderbook_delta' AND id > ? ORDER BY t_mono_ns, id LIMIT 1", (fid,)).fetchone()[0]
        c.execute("DELETE FROM frames WHERE id=?", (fid,))
    p = _cli(db, "--json", "--only", "sequence")
    assert p.returncode == 1
    f = json.loads(p.stdout)["checks"][0]["findings"][0]
    assert f["code"] == "gap" and f["first_frame_id"] == nxt and f["venue"] == "kalshi"


def test_html_report_has_png_images(tmp_path):
    out = tmp_path / "report.html"
    p = _cli(SAMPLE, "--html", out)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert text.count("data:image/png;base64,") >= 4  # 3 latency histograms + rate chart
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", "")


CHROMIUM = "/usr/bin/chromium"


def test_html_report_renders_in_headless_chromium(tmp_path):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium missing under CI=true: .ci/run installs Debian's chromium package")
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium): HTML screenshot test skipped")
    import matplotlib.image as mpimg

    html = tmp_path / "report.html"
    html.write_text(render_html(run_checks(SAMPLE)))
    shot = tmp_path / "shot.png"
    # The flags keep Chromium off the (closed) network and out of any profile of the user.
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                        "--window-size=1200,2000", f"file://{html}"], capture_output=True, timeout=120)
    assert shot.exists(), p.stderr.decode(errors="replace")[-2000:]
    img = mpimg.imread(shot)  # RGBA floats in 0..1
    assert img.shape[0] == 2000 and img.shape[1] == 1200
    rgb = img[..., :3]
    ink = (rgb.sum(axis=2) < 2.7).mean()  # anything not (near) white: text, tables, plots
    blue = ((rgb[..., 2] > 0.6) & (rgb[..., 0] < 0.4)).mean()  # matplotlib's bars and lines
    assert ink > 0.03, f"the screenshot is nearly blank ({ink:.1%} ink)"
    assert blue > 0.005, f"no plot is visible in the screenshot ({blue:.2%} plot-blue pixels)"
