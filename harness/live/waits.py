"""Waiting for the first of several things on the event loop, leaving nothing running:
the loops of the rollover, the REST fetches and the live consumers all need it."""

from __future__ import annotations

import asyncio


async def first_of(*aws) -> None:
    """Wait until the first of ``aws`` (coroutines or futures) finishes; cancel the rest."""
    waits = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def sleep_or_event(clock, seconds: float, *events: asyncio.Event) -> None:
    """Sleep ``seconds`` on ``clock`` (a fast clock in simulations), or until one of
    ``events`` is set, whichever comes first."""
    await first_of(clock.sleep(max(seconds, 0.0)), *(e.wait() for e in events))
