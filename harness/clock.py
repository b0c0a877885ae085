"""Time for the pipeline. The pipeline never calls ``time.time()``: it asks a clock.

Live: ``LiveClock`` reads the system clocks. Replay: ``ReplayClock`` is advanced by the
replay loop to the recorded time of the frame being delivered, so the pipeline computes
the same thing at any speed.
"""

from __future__ import annotations

import time


class LiveClock:
    def now_ns(self) -> int:
        return time.time_ns()

    def mono_ns(self) -> int:
        return time.monotonic_ns()


class ReplayClock:
    """Recorded time. ``advance`` is called by the replay source, never by the pipeline."""

    __slots__ = ("_wall", "_mono")

    def __init__(self, wall_ns: int = 0, mono_ns: int = 0):
        self._wall = wall_ns
        self._mono = mono_ns

    def advance(self, wall_ns: int, mono_ns: int) -> None:
        self._wall = wall_ns
        self._mono = mono_ns

    def now_ns(self) -> int:
        return self._wall

    def mono_ns(self) -> int:
        return self._mono
