"""Venue protocol modules. ``get(name)`` returns a venue's ``VENUE`` object."""

from __future__ import annotations

import importlib

from harness.errors import ConfigError

NAMES = ("kalshi", "coinbase", "kraken", "bitstamp", "gemini", "cryptocom")
_ALIASES = {"crypto.com": "cryptocom", "crypto_com": "cryptocom", "coinbase_exchange": "coinbase"}


def get(name: str):
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in NAMES:
        raise ConfigError(f"unknown venue {name!r}", hint=f"use one of: {', '.join(NAMES)}")
    return importlib.import_module(f"harness.venues.{key}").VENUE


def classify(venue: str, payload: str | bytes) -> str | None:
    """Message type for a frame, or None when the venue is unknown or the frame unclassifiable."""
    try:
        v = get(venue)
    except (ConfigError, ImportError):
        return None
    return v.classify(payload)
