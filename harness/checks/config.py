"""Budgets and severities for ``harness check``.

Read from ``[tool.harness.checks]`` in ``pyproject.toml`` (the nearest one from the current
directory upwards) or from a TOML file given with ``--config FILE`` (either the same
``[tool.harness.checks]`` table, a ``[checks]`` table, or the keys at top level). Every key
is optional; unknown keys are an error so typos do not pass silently::

    [tool.harness.checks]
    latency_p99_ms = 2000       # p99 of receive time - venue timestamp, per venue and type
    latency_max_ms = 10000      # worst single message
    latency_severity = "warn"   # severity of a latency budget miss (fail to gate on it)
    silence_s = 30              # longest time without an inbound frame on one connection
    clock_offset_ms = 1000      # |host - venue clock| estimate above this is a warning
    auth_max_skew_ms = 30000    # KALSHI-ACCESS-TIMESTAMP vs connect time
    mid_deviation = 0.05        # venue BTC-USD mid vs cross-venue median
    stale_s = 10                # a venue's BTC book not updated this long while others are
    ticker_tolerance_s = 2.0    # Kalshi ticker must agree with the book within this time
    max_examples = 5            # frame ids kept per aggregated finding

    [tool.harness.checks.severity]   # "check.code" (or "check.*") -> info | warn | fail | off
    "latency.silence" = "fail"

    [tool.harness.checks.venues.kalshi]   # per-venue overrides of the budgets above
    silence_s = 15
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from harness.errors import ConfigError

_SEVS = ("info", "warn", "fail", "off")


@dataclass
class CheckConfig:
    latency_p99_ms: float = 2000.0
    latency_max_ms: float = 10000.0
    latency_severity: str = "warn"
    silence_s: float = 30.0
    clock_offset_ms: float = 1000.0
    auth_max_skew_ms: float = 30000.0
    mid_deviation: float = 0.05
    stale_s: float = 10.0
    ticker_tolerance_s: float = 2.0
    max_examples: int = 5
    severity: dict = field(default_factory=dict)
    venues: dict = field(default_factory=dict)
    source: str = "defaults"

    def severity_for(self, check: str, code: str, default: str) -> str | None:
        s = self.severity.get(f"{check}.{code}") or self.severity.get(f"{check}.*") or default
        return None if s == "off" else s

    def for_venue(self, venue: str | None, key: str):
        v = self.venues.get(venue or "", {})
        return v.get(key, getattr(self, key))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_BUDGETS = {f.name for f in fields(CheckConfig)} - {"severity", "venues", "source"}


def from_mapping(data: dict, source: str = "<mapping>") -> CheckConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the checks config must be a table")
    unknown = set(data) - _BUDGETS - {"severity", "venues"}
    if unknown:
        raise ConfigError(f"{source}: unknown check setting(s) {sorted(unknown)}", hint=f"known: {', '.join(sorted(_BUDGETS))}, severity, venues")
    cfg = CheckConfig(source=source)
    for k in _BUDGETS & set(data):
        default = getattr(cfg, k)
        v = data[k]
        if isinstance(default, str):
            if v not in _SEVS[:3]:
                raise ConfigError(f"{source}: {k} must be one of info, warn, fail")
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"{source}: {k} must be a non-negative number, not {v!r}")
        setattr(cfg, k, v)
    sev = data.get("severity", {})
    if not isinstance(sev, dict) or any(v not in _SEVS for v in sev.values()):
        raise ConfigError(f"{source}: [severity] maps 'check.code' to one of {', '.join(_SEVS)}")
    cfg.severity = dict(sev)
    venues = data.get("venues", {})
    if not isinstance(venues, dict):
        raise ConfigError(f"{source}: [venues.<name>] tables expected")
    for name, over in venues.items():
        if not isinstance(over, dict) or set(over) - _BUDGETS:
            raise ConfigError(f"{source}: [venues.{name}] may only set: {', '.join(sorted(_BUDGETS))}")
    cfg.venues = {k: dict(v) for k, v in venues.items()}
    return cfg


def load(path: str | os.PathLike | None = None, *, search_from: str | os.PathLike | None = None) -> CheckConfig:
    """``--config FILE`` if given, else the nearest pyproject.toml's ``[tool.harness.checks]``,
    else the defaults."""
    if path is not None:
        p = Path(path)
        data = _read(p)
        table = data.get("tool", {}).get("harness", {}).get("checks")
        if table is None:
            table = data.get("checks", data)
        if table is data:
            table = {k: v for k, v in data.items() if k != "tool"}
        return from_mapping(table, str(p))
    d = Path(search_from or Path.cwd()).resolve()
    for cand in (d, *d.parents):
        pp = cand / "pyproject.toml"
        if pp.is_file():
            table = _read(pp).get("tool", {}).get("harness", {}).get("checks")
            if table is not None:
                return from_mapping(table, f"{pp} [tool.harness.checks]")
            break
    return CheckConfig()


def _read(p: Path) -> dict:
    try:
        return tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {p}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None


def with_overrides(cfg: CheckConfig, **kw) -> CheckConfig:
    return replace(cfg, **kw)
