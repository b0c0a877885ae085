"""Reconnect delays: exponential backoff with full jitter.

``delay = uniform(0, min(cap, base * 2**attempt))`` (the "full jitter" of the AWS
architecture blog), so many clients reconnecting after one outage spread out instead of
arriving together. The attempt counter resets once a connection stayed healthy for
``reset_after`` seconds. The RNG is injectable: tests pass ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    reset_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def ceiling(self) -> float:
        """Upper bound of the next delay."""
        return min(self.cap, self.base * (2 ** min(self.attempt, 62)))

    def next_delay(self, at_least: float = 0.0) -> float:
        """The next delay in seconds (and count the attempt). ``at_least``: a floor such as a
        server's ``Retry-After``."""
        d = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return max(d, at_least)

    def connection_ended(self, healthy_for_s: float) -> None:
        """Call when an established connection ends: a long healthy run resets the counter."""
        if healthy_for_s >= self.reset_after:
            self.reset()

    def reset(self) -> None:
        self.attempt = 0
