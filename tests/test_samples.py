"""The committed simulated recordings do what recordings/README.md says: the sample passes
every check and settles markets, faults.db produces exactly the expected findings, and
rest_poll.db gives the freshness check its numbers. (`make replay` runs the same.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REC = REPO / "recordings"


def _make_var(name: str) -> str:
    m = re.search(rf"^{name}\s*:=\s*(.+)$", (REPO / "Makefile").read_text(), re.M)
    assert m, f"{name} not in the Makefile"
    return m.group(1).strip()


def _harness(*args):
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_faults_recording_gives_exactly_the_expected_findings():
    r = _harness("check", REC / "faults.db", "--expect", _make_var("FAULTS_EXPECT"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "EXPECTED FINDINGS: all found, nothing else failed" in r.stdout
    # and the sample, recorded without faults, passes every check outright
    r = _harness("check", REC / "sample.db")
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout[-3000:] + r.stderr


def test_expect_fails_when_an_expected_finding_is_missing_or_another_check_fails():
    r = _harness("check", REC / "faults.db", "--expect", "format.invalid_json")
    assert r.returncode == 1 and "unexpected failure sequence.gap" in r.stdout
    r = _harness("check", REC / "sample.db", "--expect", "sequence.gap")
    assert r.returncode == 1 and "expected sequence.gap: MISSING" in r.stdout
    r = _harness("check", REC / "sample.db", "--expect", "gap")
    assert r.returncode == 2 and "CHECK.CODE" in r.stderr and "Traceback" not in r.stderr


def test_rest_poll_sample_reports_freshness_for_every_venue():
    import json

    r = _harness("check", REC / "rest_poll.db", "--only", "freshness", "--json")
    assert r.returncode == 0, r.stderr
    venues = json.loads(r.stdout)["checks"][0]["stats"]["venues"]
    assert set(venues) == {"kalshi", "coinbase", "kraken", "bitstamp", "gemini"}
    for v, s in venues.items():
        assert 4.5 <= s["poll_interval_s"] <= 5.5, (v, s["poll_interval_s"])
        # about half the interval or less on average (Kalshi's quotes rest for seconds, so
        # REST is often current), at most about the interval (+1 s of the simulator's REST refresh)
        assert 0.05 <= s["staleness"]["mean_s"] <= 3.5, (v, s["staleness"])
        assert s["staleness"]["max_s"] <= 6.5, (v, s["staleness"])
