"""Parsing the times and durations users type on the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from harness.errors import ConfigError

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration_s(text: str) -> float:
    """'15m' -> 900.0; '30s', '1.5h', '250ms'; a bare number is seconds."""
    m = _DUR.match(str(text))
    if not m:
        raise ConfigError(f"bad duration {text!r}", hint="use e.g. 30s, 15m, 2h")
    return float(m.group(1)) * _UNITS[m.group(2)]


def unix_s_to_ns(text: str | float | int) -> int:
    """Exact conversion of a Unix-seconds number written in text (no float rounding)."""
    try:
        return int(Decimal(str(text)) * 1_000_000_000)
    except InvalidOperation:
        raise ConfigError(f"bad Unix time {text!r}") from None


def parse_time_ns(text: str, *, start_ns: int | None = None) -> int:
    """A point in time: Unix seconds, ISO 8601 (UTC if no zone), or '+30s' relative to ``start_ns``."""
    t = str(text).strip()
    if t.startswith("+"):
        if start_ns is None:
            raise ConfigError(f"relative time {text!r} needs a start")
        return start_ns + int(parse_duration_s(t[1:]) * 1e9)
    try:
        return unix_s_to_ns(t)
    except ConfigError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"bad time {text!r}", hint="use Unix seconds, ISO 8601 (2026-08-09T12:00:00Z) or +30s from the start") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def fmt_ns(ns: int | None) -> str:
    if ns is None:
        return "-"
    dt = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
