"""The one BTC price path every simulated venue follows.

A geometric random walk on a fixed step (100 ms) with occasional jumps: log returns are
normal with ``sigma_annual`` volatility, plus Poisson jumps (``jump_rate`` per second,
normal size ``jump_sd`` of the price) so the Kalshi quoters, which follow the index with
a delay, are sometimes caught out. Seeded; nothing here reads a clock.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right

NS = 1_000_000_000
SECONDS_PER_YEAR = 365.25 * 24 * 3600


class PricePath:
    """``value`` is the "true" BTC-USD index at ``t_ns``; ``step()`` advances by ``dt_ns``.
    ``seconds`` keeps the value at every whole second (the settlement averages)."""

    def __init__(self, rng: random.Random, start_ns: int, price: float = 87_250.0, *, dt_ns: int = 100_000_000,
                 sigma_annual: float = 0.35, jump_rate: float = 1 / 240, jump_sd: float = 0.0015):
        self.rng = rng
        self.t_ns = start_ns
        self.value = price
        self.dt_ns = dt_ns
        dt_s = dt_ns / NS
        self.step_sd = sigma_annual / math.sqrt(SECONDS_PER_YEAR) * math.sqrt(dt_s)
        self.sigma_per_s = sigma_annual / math.sqrt(SECONDS_PER_YEAR)
        self.jump_p = jump_rate * dt_s
        self.jump_sd = jump_sd
        self.jumps: list[tuple[int, float]] = []  # (t_ns, relative size)
        self.sec_t: list[int] = []
        self.sec_v: list[float] = []
        self._record_second()

    def _record_second(self) -> None:
        if self.t_ns % NS == 0:
            self.sec_t.append(self.t_ns)
            self.sec_v.append(self.value)

    def step(self) -> float:
        r = self.rng.gauss(0.0, self.step_sd) - self.step_sd ** 2 / 2
        if self.rng.random() < self.jump_p:
            j = self.rng.gauss(0.0, self.jump_sd)
            r += j
            self.jumps.append((self.t_ns + self.dt_ns, j))
        self.value *= math.exp(r)
        self.t_ns += self.dt_ns
        self._record_second()
        return self.value

    def at(self, t_ns: int) -> float:
        """The value at the last whole second at or before ``t_ns`` (the delayed view a
        quoter has)."""
        i = bisect_right(self.sec_t, t_ns)
        return self.sec_v[i - 1] if i else self.sec_v[0]

    def average(self, end_ns: int, window_s: int = 60) -> float:
        """Simple average of the per-second values in ``(end - window, end]``: how Kalshi
        settles (and how KXBTC15M strikes are set at the open)."""
        lo = bisect_right(self.sec_t, end_ns - window_s * NS)
        hi = bisect_right(self.sec_t, end_ns)
        vs = self.sec_v[lo:hi]
        return sum(vs) / len(vs)
