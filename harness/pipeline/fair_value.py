"""Fair probability of a Kalshi BTC market settling YES, and a realised-volatility estimator.

Settlement (PROTOCOLS, KALSHI-CFB): the market settles on A, the simple average of the N = 60
published BRTI values at the seconds t_i = close - (N - i) s, i = 1..N, i.e. the window
(close - 60 s, close].

Model
    X(t) = ln S(t) is a Brownian motion with volatility sigma (per sqrt second) and, by
    default, drift -sigma^2/2 so that S is a martingale (``martingale_drift``). At time t
    (``now_ns``) with current index S0:

    - values at t_i <= ``known_through_ns`` are known; the caller passes their sum and count
      (from ``IndexSeries.settlement_known``);
    - the m remaining values are S0 * exp(X_j), X_j = sigma W(tau_j) + drift, with
      tau_j = max(0, t_j - t) in seconds (a sample already in the past but not known is
      treated as the current value).

    The average of the remaining values, U = (1/m) sum_j S(t_j), is approximated by the
    geometric average S0 * exp((1/m) sum_j X_j) (over 60 s the log moves are ~1e-3, so the
    arithmetic/geometric difference, ~sigma^2 T / 2, is ~1e-7 relative: negligible). That
    log-average is normal with variance sigma^2 * T_eff where

        T_eff = Var((1/m) sum_j W(tau_j)) = (1/m^2) sum_j sum_l min(tau_j, tau_l)
              = (1/m^2) sum_{j=1..m} (2 (m - j) + 1) tau_(j)   (tau sorted ascending).

    Continuous limit: for a window starting a seconds from now and of length L (uniform
    sampling), T_eff = a + L / 3. Before the window opens (a >= 0, L = 60 s) the average has
    the variance of the index at a + 20 s; inside the window (a = 0, L = remaining) it is
    L / 3. The discrete sum is used (N <= 60 terms).

    YES condition "A >= K" with k known values summing to Sk:
        A >= K  <=>  U >= K' = ((k + m) K - Sk) / m
        P = Phi((ln(S0 / K') + mu) / (sigma sqrt(T_eff))), mu = -sigma^2 T_eff / 2 (or 0).
    K' <= 0: certain. m = 0 (all known): deterministic. sigma^2 T_eff = 0: deterministic on
    S0 vs K'. Strike types (Kalshi ``strike_type``): ``greater`` (A > floor),
    ``greater_or_equal`` (A >= floor), ``less`` (A < cap), ``less_or_equal`` (A <= cap),
    ``between`` (floor <= A <= cap; inclusivity *unconfirmed*, it matters only in the
    deterministic cases). For ``less``/``less_or_equal`` the strike is ``cap_strike`` if given,
    else ``floor_strike``.

Volatility: ``EwmaVol`` over the published (1 s) index values; see its doc.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.pipeline.config import FairValueParams, VolParams

SECONDS_PER_YEAR = 365.0 * 86400.0
_SQRT2 = math.sqrt(2.0)


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def annual_to_per_second(sigma_annual: float) -> float:
    return sigma_annual / math.sqrt(SECONDS_PER_YEAR)


def per_second_to_annual(sigma_s: float) -> float:
    return sigma_s * math.sqrt(SECONDS_PER_YEAR)


def effective_time(taus: list[float]) -> float:
    """T_eff (seconds) of the mean of W at the times ``taus`` (seconds from now, >= 0)."""
    m = len(taus)
    if m == 0:
        return 0.0
    ts = sorted(taus)
    return math.fsum((2 * (m - j) - 1) * t for j, t in enumerate(ts)) / (m * m)


def remaining_taus(now_ns: int, close_ns: int, known_through_ns: int | None = None,
                   params: FairValueParams | None = None) -> list[float]:
    """Seconds from now to each settlement sample not yet known."""
    first, step, i0, n = _unknown_samples(now_ns, close_ns, known_through_ns, params)
    return [max(0, first + (i - 1) * step - now_ns) / 1e9 for i in range(i0, n + 1)]


def _unknown_samples(now_ns, close_ns, known_through_ns, params) -> tuple[int, int, int, int]:
    """(time of sample 1, spacing, first unknown sample i0, n): sample i (1..n) is at
    close - (n - i) * step; the unknown ones are those after ``known_through_ns``."""
    p = params or FairValueParams()
    n = p.window_ns // p.sample_interval_ns
    step = p.sample_interval_ns
    kt = now_ns if known_through_ns is None else known_through_ns
    first = close_ns - (n - 1) * step
    i0 = 1 if kt < first else max(1, min(n + 1, (kt - first) // step + 2))
    return first, step, i0, n


def remaining_effective_time(now_ns: int, close_ns: int, known_through_ns: int | None = None,
                             params: FairValueParams | None = None) -> tuple[float, int]:
    """``(effective_time(taus), len(taus))`` for ``taus = remaining_taus(...)`` in closed form.

    The samples are evenly spaced, so the weighted sum of ``effective_time`` reduces to
    sums of j and j^2 (the per-tick, per-market list was the pipeline's hottest loop).
    Samples already due (tau clamped to 0) add nothing. Equal to the list version to
    float rounding (tests/pipeline/test_fair_value.py)."""
    first, step, i0, n = _unknown_samples(now_ns, close_ns, known_through_ns, params)
    m = n - i0 + 1
    if m <= 0:
        return 0.0, 0
    a = first + (i0 - 1) * step - now_ns  # ns to the first unknown sample; sample j at a + j*step
    k = 0 if a > 0 else min(m, (-a) // step + 1)  # leading samples already due: tau 0
    if k >= m:
        return 0.0, m

    def s1(x: int) -> int:  # sum of j for j < x
        return x * (x - 1) // 2

    def s2(x: int) -> int:  # sum of j^2 for j < x
        return (x - 1) * x * (2 * x - 1) // 6

    c = 2 * m - 1  # weight of sample j is c - 2j
    S0, S1, S2 = m - k, s1(m) - s1(k), s2(m) - s2(k)
    total_ns = a * (c * S0 - 2 * S1) + step * (c * S1 - 2 * S2)  # exact integer arithmetic
    return total_ns / 1e9 / (m * m), m


@dataclass(frozen=True, slots=True)
class FairValue:
    prob: float  # probability of YES
    index: float  # S0 used
    sigma: float  # per sqrt second
    t_eff_s: float  # effective variance time of the remaining average
    n_known: int
    n_remaining: int
    known_avg: float | None  # average of the known part


class FairValueModel:
    """Evaluates ``prob`` for a market; see the module doc for the model."""

    def __init__(self, params: FairValueParams | None = None):
        self.params = params or FairValueParams()

    def evaluate(self, *, index: float, sigma: float, now_ns: int, close_ns: int,
                 strike_type: str, floor_strike: float | None = None,
                 cap_strike: float | None = None, known_sum: float = 0.0, known_count: int = 0,
                 known_through_ns: int | None = None) -> FairValue:
        t_eff, m = remaining_effective_time(now_ns, close_ns, known_through_ns, self.params)
        var = sigma * sigma * t_eff
        mu = -0.5 * var if self.params.martingale_drift else 0.0
        k = known_count

        def above(K: float, strict: bool) -> float:
            if m == 0:
                if k == 0:
                    raise ValueError("no known and no remaining settlement values")
                a = known_sum / k
                return 1.0 if (a > K if strict else a >= K) else 0.0
            kp = ((k + m) * K - known_sum) / m
            if kp <= 0:
                return 1.0
            if var <= 0:
                return 1.0 if (index > kp if strict else index >= kp) else 0.0
            return norm_cdf((math.log(index / kp) + mu) / math.sqrt(var))

        st = strike_type
        if st in ("greater", "greater_or_equal"):
            if floor_strike is None:
                raise ValueError(f"{st} needs floor_strike")
            prob = above(floor_strike, st == "greater")
        elif st in ("less", "less_or_equal"):
            K = cap_strike if cap_strike is not None else floor_strike
            if K is None:
                raise ValueError(f"{st} needs cap_strike (or floor_strike)")
            prob = 1.0 - above(K, st == "less_or_equal")
        elif st == "between":
            if floor_strike is None or cap_strike is None:
                raise ValueError("between needs floor_strike and cap_strike")
            prob = above(floor_strike, False) - above(cap_strike, True)
        else:
            raise ValueError(f"unsupported strike_type {st!r}")
        prob = min(1.0, max(0.0, prob))
        return FairValue(prob, index, sigma, t_eff, k, m, known_sum / k if k else None)


def fair_value(**kwargs) -> FairValue:
    """``FairValueModel().evaluate(**kwargs)`` with default parameters."""
    return FairValueModel().evaluate(**kwargs)


class EwmaVol:
    """EWMA of the variance *rate* of log returns, in harness time.

    On each sample (t, S) after the first: r = ln(S / S_prev), dt = t - t_prev (s);
    a = 1 - exp(-dt ln2 / halflife); rate = (1 - a) rate + a r^2 / dt. Starts at the prior.
    Returns over gaps longer than ``max_gap_s`` (or non-positive dt, non-positive prices)
    are skipped and the estimator re-anchors. Feed it the published 1 s values: the 5 Hz
    values add microstructure noise without adding information at the horizons traded.
    ``sigma`` is per sqrt second, floored at ``min_sigma_annual``.
    """

    __slots__ = ("params", "rate", "n", "_t", "_x", "_floor")

    def __init__(self, params: VolParams | None = None):
        self.params = params or VolParams()
        self.rate = annual_to_per_second(self.params.prior_sigma_annual) ** 2
        self._floor = annual_to_per_second(self.params.min_sigma_annual)
        self.n = 0
        self._t: int | None = None
        self._x: float | None = None

    def update(self, ts_ns: int, value: float) -> None:
        if value is None or value <= 0:
            return
        x = math.log(value)
        if self._t is not None:
            dt = (ts_ns - self._t) / 1e9
            if dt <= 0:
                return
            if dt <= self.params.max_gap_s:
                a = 1.0 - math.exp(-dt * math.log(2.0) / self.params.halflife_s)
                r = x - self._x
                self.rate = (1.0 - a) * self.rate + a * r * r / dt
                self.n += 1
        self._t, self._x = ts_ns, x

    @property
    def sigma(self) -> float:
        return max(math.sqrt(self.rate), self._floor)

    @property
    def sigma_annual(self) -> float:
        return per_second_to_annual(self.sigma)
