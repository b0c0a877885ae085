"""Checks over a recording or a live feed: endpoint, auth, format, sequence, latency,
quality. See docs/checks.md.

    from harness.checks import run_checks, Runner, load_config
    report = run_checks("recordings/sample.db")          # Report
    report.status, report.exit_code, report.to_dict()
"""

from __future__ import annotations

from harness.checks.base import CheckResult, Finding
from harness.checks.config import CheckConfig
from harness.checks.config import load as load_config
from harness.checks.runner import CHECK_NAMES, Report, Runner, run_checks

__all__ = ["CHECK_NAMES", "CheckConfig", "CheckResult", "Finding", "Report", "Runner", "load_config", "run_checks"]
