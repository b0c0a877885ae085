"""Absolute pacing: frame k is due at ``t0 + (t_k - t_first) / speed``.

The schedule is fixed when the replay starts, so waiting never accumulates drift: a late
frame makes the next wait shorter, not the whole replay longer. ``speed=None`` is unpaced.
Two timers: the default sleeps until the deadline (about a millisecond of jitter under
load); ``precise=True`` sleeps until ``spin_ns`` before it and spins the rest.
"""

from __future__ import annotations

import asyncio
import time
from array import array

SPIN_NS = 1_500_000


def parse_speed(text: str | float | int | None) -> float | None:
    """'max' -> None (unpaced); '1', '10', '0.5' -> float. Raises ValueError otherwise."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        s = float(text)
    else:
        t = str(text).strip().lower()
        if t in ("max", "inf", "unpaced"):
            return None
        s = float(t.rstrip("x"))
    if not s > 0:
        raise ValueError(f"speed must be positive or 'max', got {text!r}")
    return s


class Schedule:
    """Deadlines on ``time.perf_counter_ns`` for recorded times on one timeline."""

    __slots__ = ("speed", "t_first", "t0", "precise", "lateness")

    def __init__(self, speed: float | None, *, precise: bool = False):
        self.speed = speed
        self.t_first: int | None = None
        self.t0 = 0
        self.precise = precise
        self.lateness = array("q")  # ns late per paced frame (0 when on time)

    def due_ns(self, t_ns: int) -> int:
        if self.t_first is None:
            self.t_first = t_ns
            self.t0 = time.perf_counter_ns()
        return self.t0 + int((t_ns - self.t_first) / self.speed)

    def wait(self, t_ns: int) -> None:
        """Block until the frame recorded at ``t_ns`` is due (no-op when unpaced)."""
        if self.speed is None:
            return
        due = self.due_ns(t_ns)
        now = time.perf_counter_ns()
        if due > now:
            if self.precise:
                if due - now > SPIN_NS:
                    time.sleep((due - now - SPIN_NS) / 1e9)
                while time.perf_counter_ns() < due:
                    pass
            else:
                time.sleep((due - now) / 1e9)
            now = time.perf_counter_ns()
        self.lateness.append(now - due if now > due else 0)

    async def wait_async(self, t_ns: int) -> None:
        if self.speed is None:
            return
        due = self.due_ns(t_ns)
        now = time.perf_counter_ns()
        if due > now:
            if self.precise:
                if due - now > SPIN_NS:
                    await asyncio.sleep((due - now - SPIN_NS) / 1e9)
                while time.perf_counter_ns() < due:
                    pass
            else:
                await asyncio.sleep((due - now) / 1e9)
            now = time.perf_counter_ns()
        self.lateness.append(now - due if now > due else 0)

    def lateness_summary(self) -> dict:
        return percentiles(self.lateness)


def percentiles(values, ps=(50, 90, 99)) -> dict:
    """{'n', 'p50_ms', 'p90_ms', 'p99_ms', 'max_ms'} of ns values; None fields when empty."""
    n = len(values)
    out: dict = {"n": n}
    if not n:
        out.update({f"p{p}_ms": None for p in ps})
        out["max_ms"] = None
        return out
    s = sorted(values)
    for p in ps:
        out[f"p{p}_ms"] = round(s[min(n - 1, int(p / 100 * n))] / 1e6, 4)
    out["max_ms"] = round(s[-1] / 1e6, 4)
    return out
