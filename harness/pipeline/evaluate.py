"""Judge the proxy against settled Kalshi BTC markets.

Kalshi settles its BTC markets on the simple average of the 60 one-second BRTI values in
``(close - 60 s, close]``. For every market of a recording that carries the settled value
(REST ``expiration_value`` in the ``http`` rows, or a lifecycle message whose
``settlement_value`` is an index level), the proxy's own 60 s average over the same
window is compared with it:

    proxy_error = proxy_avg - settlement_value        (USD)
    baseline_error = baseline_avg - settlement_value  (the naive size-weighted mid)

Averages use the *published* per-second values (``IndexSeries`` publishing rule: valid
values on whole seconds, rounded to the cent); ``*_n`` says how many of the 60 were there
(a recording that starts inside the window averages fewer; ``complete`` is n == 60).

When only the outcome is known (lifecycle ``settlement_value`` "1.0000"/"0.0000" is the
payout per YES contract, not the index) ``outcome_agrees`` says whether the proxy average
lands on the same side of the strike as the market resolved.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

NS = 1_000_000_000


def window_average(values: Sequence[tuple[int, float]], end_ns: int,
                   window_ns: int = 60 * NS) -> tuple[float | None, int]:
    """Mean of the values with end - window < ts <= end (``values`` sorted by ts)."""
    ts = [t for t, _ in values] if not isinstance(values, _Series) else values.ts
    lo = bisect_right(ts, end_ns - window_ns)
    hi = bisect_right(ts, end_ns)
    vs = [v for _, v in values[lo:hi]]
    return (math.fsum(vs) / len(vs) if vs else None), len(vs)


class _Series(list):
    """A (ts, value) list that keeps its ts column for bisection."""

    def __init__(self, items: Iterable[tuple[int, float]] = ()):
        super().__init__(items)
        self.ts = [t for t, _ in self]


def outcome(strike_type: str | None, floor: float | None, cap: float | None, avg: float | None) -> str | None:
    """"yes"/"no" for an average under Kalshi's strike rules (None if not decidable)."""
    if avg is None or strike_type is None:
        return None
    if strike_type in ("greater", "greater_or_equal") and floor is not None:
        return "yes" if (avg > floor if strike_type == "greater" else avg >= floor) else "no"
    if strike_type in ("less", "less_or_equal"):
        k = cap if cap is not None else floor
        if k is None:
            return None
        return "yes" if (avg < k if strike_type == "less" else avg <= k) else "no"
    if strike_type == "between" and floor is not None and cap is not None:
        return "yes" if floor <= avg <= cap else "no"
    return None


@dataclass(slots=True)
class SettlementEval:
    ticker: str
    close_ns: int | None
    strike_type: str | None
    floor_strike: float | None
    cap_strike: float | None
    strike_source: str | None
    settlement_value: float | None  # the index average Kalshi settled on, if known
    settlement_source: str | None
    result: str | None  # the market's result ("yes"/"no") if known
    proxy_avg: float | None
    proxy_n: int
    proxy_error: float | None
    baseline_avg: float | None
    baseline_n: int
    baseline_error: float | None
    proxy_outcome: str | None
    outcome_agrees: bool | None

    @property
    def complete(self) -> bool:
        return self.proxy_n == 60

    def as_dict(self) -> dict:
        d = asdict(self)
        d["complete"] = self.complete
        return d


def evaluate_market(m, proxy: Sequence[tuple[int, float]], baseline: Sequence[tuple[int, float]],
                    window_ns: int = 60 * NS) -> SettlementEval:
    """``m``: a ``markets.KalshiMarket`` (or anything with the same attributes)."""
    pa, pn = window_average(proxy, m.close_ns, window_ns) if m.close_ns is not None else (None, 0)
    ba, bn = window_average(baseline, m.close_ns, window_ns) if m.close_ns is not None else (None, 0)
    sv = m.expiration_value
    po = outcome(m.strike_type, m.floor_strike, m.cap_strike, pa)
    res = m.result if m.result in ("yes", "no") else None
    return SettlementEval(
        ticker=m.ticker, close_ns=m.close_ns, strike_type=m.strike_type,
        floor_strike=m.floor_strike, cap_strike=m.cap_strike, strike_source=m.strike_source,
        settlement_value=sv, settlement_source=m.settlement_source, result=res,
        proxy_avg=pa, proxy_n=pn, proxy_error=None if pa is None or sv is None else pa - sv,
        baseline_avg=ba, baseline_n=bn, baseline_error=None if ba is None or sv is None else ba - sv,
        proxy_outcome=po, outcome_agrees=None if po is None or res is None else po == res,
    )


def evaluate(markets: Iterable, proxy: Sequence[tuple[int, float]], baseline: Sequence[tuple[int, float]],
             window_ns: int = 60 * NS) -> list[SettlementEval]:
    """One ``SettlementEval`` per settled market (settlement value or result known)."""
    p, b = _Series(proxy), _Series(baseline)
    return [evaluate_market(m, p, b, window_ns) for m in markets]


def summarize(evals: Sequence[SettlementEval]) -> dict:
    """Mean absolute / max absolute error of proxy and baseline over the markets with a
    settlement value and a proxy average."""
    pe = [abs(e.proxy_error) for e in evals if e.proxy_error is not None]
    be = [abs(e.baseline_error) for e in evals if e.baseline_error is not None]
    agree = [e.outcome_agrees for e in evals if e.outcome_agrees is not None]
    return {
        "markets": len(evals),
        "with_error": len(pe),
        "proxy_mae": math.fsum(pe) / len(pe) if pe else None,
        "proxy_max_abs": max(pe) if pe else None,
        "baseline_mae": math.fsum(be) / len(be) if be else None,
        "baseline_max_abs": max(be) if be else None,
        "outcomes_agree": sum(agree),
        "outcomes_checked": len(agree),
    }


__all__ = ["SettlementEval", "evaluate", "evaluate_market", "outcome", "summarize", "window_average"]
