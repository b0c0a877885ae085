"""Shared fixtures. Real data lives in ../shared/realdata: skipped when absent, but a
missing folder fails the run under CI=true so CI never skips it by mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REALDATA = SHARED / "realdata"
REFERENCE = SHARED / "reference"


def _need(path: Path) -> Path:
    if path.exists():
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{path} is missing but CI=true: real-data tests must not be skipped in CI")
    pytest.skip(f"{path} not present")


@pytest.fixture(scope="session")
def realdata() -> Path:
    return _need(REALDATA)


@pytest.fixture(scope="session")
def reference() -> Path:
    return _need(REFERENCE)
