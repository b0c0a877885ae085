"""kalshi_frames.jsonl as a recording: eras, drift, and spec validation (two specs)."""

from __future__ import annotations

import json

import pytest

from harness.checks import run_checks
from harness.venues import kalshi
from harness.venues.kalshi_spec import diff_specs

from .conftest import kalshi_recording

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def frames(realdata):
    return [json.loads(x) for x in (realdata / "kalshi_frames.jsonl").read_text().splitlines() if x.strip()]


def test_current_real_frames_pass(frames, tmp_path):
    real = [d for d in frames if d["valid_json"] and d["provenance"].startswith("real_capture") and kalshi.detect_era(d["frame"]) == "current"]
    assert len(real) >= 5
    res = run_checks(kalshi_recording(real, tmp_path, "real"), ["format"]).result("format")
    assert res.status == "pass", [f.line() for f in res.findings]
    assert res.stats["kalshi_eras"] == {"current": sum(1 for d in real if not d["type"].startswith("cmd:"))}


def test_cents_era_frames_reported_legacy(frames, tmp_path):
    rec = kalshi_recording(frames, tmp_path, "all")
    res = run_checks(rec, ["format"]).result("format")
    by_code = {}
    for f in res.findings:
        by_code.setdefault(f.code, []).append(f)
    inbound = [d for d in frames if not d["type"].startswith("cmd:")]
    legacy = {i for i, d in enumerate(inbound) if d["valid_json"] and kalshi.detect_era(d["frame"]) == "legacy"}
    assert legacy and "legacy_era" in by_code and "mixed_era" in by_code
    # frame ids are 1-based in file order over all lines (commands included)
    ids = {f.frame_id for f in by_code["legacy_era"]}
    all_ids = [i + 1 for i, d in enumerate(frames) if not d["type"].startswith("cmd:")]
    assert ids <= {all_ids[i] for i in legacy}
    # the one truncated capture is invalid JSON at its own frame
    bad = [i + 1 for i, d in enumerate(frames) if not d["valid_json"]]
    assert {f.frame_id for f in by_code["invalid_json"]} <= set(bad)
    assert res.status == "fail"


def test_two_specs_report_the_differences_they_imply(frames, tmp_path, reference):
    cur = [d for d in frames if d["valid_json"] and kalshi.detect_era(d["frame"]) == "current"]
    rec = kalshi_recording(cur, tmp_path, "cur")
    jan_spec = reference / "kalshi" / "asyncapi-2026-01-31.yaml"
    now_spec = reference / "kalshi" / "asyncapi.yaml"
    jan = run_checks(rec, ["format"], specs={"kalshi": jan_spec}).result("format")
    now = run_checks(rec, ["format"], specs={"kalshi": now_spec}).result("format")
    # spec findings are kept apart from findings against the harness's models
    assert {f.code for f in jan.findings} == {f.code for f in now.findings} <= {"legacy_type", "unknown_field"}
    assert not any(f.code.startswith("spec_") for f in jan.findings + now.findings)
    missing = lambda res: {f.subject for f in res.spec_findings if f.code == "spec_missing_required"}  # noqa: E731
    removed = {f"{t}:{p}" for t, d in diff_specs(jan_spec, now_spec).changed().items() for p in d.removed}
    jan_only = missing(jan) - missing(now)
    assert {"ticker:msg.price", "ticker:msg.yes_bid", "trade:msg.yes_price", "orderbook_delta:msg.delta"} <= jan_only
    assert jan_only & removed == {s for s in jan_only if s in removed} and len(jan_only & removed) >= 8
    # real frames decode with the harness model: the spec side is blamed
    assert all(f.blame == "spec" for f in jan.spec_findings if f.subject in {"ticker:msg.price", "trade:msg.yes_price"})
    # the shipped errata explain the ticker pattern bug (info, erratum)
    errata = [f for f in now.spec_findings if f.blame == "erratum"]
    assert errata and all(f.severity == "info" for f in errata)
    assert any("market_ticker" in (f.subject or "") for f in errata)
