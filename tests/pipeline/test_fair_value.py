"""Fair value of the 60-second-average settlement, and the volatility estimator."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.pipeline.config import FairValueParams, VolParams
from harness.pipeline.fair_value import (
    EwmaVol,
    FairValueModel,
    annual_to_per_second,
    effective_time,
    fair_value,
    norm_cdf,
    remaining_effective_time,
    remaining_taus,
)

S = 1_000_000_000
CLOSE = 1_800_000_000 * S  # a whole second
SIG = 1e-4  # per sqrt second (~56% annualised)


def _brute_teff(taus):
    m = len(taus)
    return sum(min(a, b) for a in taus for b in taus) / (m * m)


def test_effective_time_formula():
    for taus in ([5.0], [1.0, 2.0, 3.0], [float(t) for t in range(541, 601)], [0.0, 0.0, 4.0]):
        assert effective_time(taus) == pytest.approx(_brute_teff(taus))
    assert effective_time([3.0, 1.0, 2.0]) == pytest.approx(_brute_teff([1.0, 2.0, 3.0]))
    # continuous limit: a + L/3 (window of length L starting a from now)
    taus = remaining_taus(CLOSE - 600 * S, CLOSE)
    assert len(taus) == 60 and taus[0] == 541.0 and taus[-1] == 600.0
    assert effective_time(taus) == pytest.approx(540 + 60 / 3, abs=1.0)
    assert effective_time([]) == 0.0


@given(ahead_ms=st.integers(-120_000, 3_600_000), known_ms=st.one_of(st.none(), st.integers(-120_000, 120_000)),
       sub_ns=st.integers(0, S - 1))
def test_closed_form_effective_time_equals_the_sample_list(ahead_ms, known_ms, sub_ns):
    now = CLOSE - ahead_ms * 1_000_000 + sub_ns
    kt = None if known_ms is None else now + known_ms * 1_000_000
    taus = remaining_taus(now, CLOSE, kt)
    t_eff, m = remaining_effective_time(now, CLOSE, kt)
    assert m == len(taus)
    assert t_eff == pytest.approx(effective_time(taus), rel=1e-12, abs=1e-9)


def test_limits_far_from_window():
    now = CLOSE - 600 * S
    kw = dict(sigma=SIG, now_ns=now, close_ns=CLOSE, strike_type="greater_or_equal")
    assert fair_value(index=110_000.0, floor_strike=100_000.0, **kw).prob > 0.999999
    assert fair_value(index=90_000.0, floor_strike=100_000.0, **kw).prob < 1e-6
    atm = fair_value(index=100_000.0, floor_strike=100_000.0, **kw)
    assert atm.prob == pytest.approx(0.5, abs=1e-3) and atm.prob < 0.5  # martingale drift
    assert atm.n_remaining == 60 and atm.n_known == 0
    no_drift = FairValueModel(FairValueParams(martingale_drift=False)).evaluate(
        index=100_000.0, floor_strike=100_000.0, **kw)
    assert no_drift.prob == pytest.approx(0.5, abs=1e-12)


def test_matches_closed_form():
    now = CLOSE - 300 * S
    fv = fair_value(index=100_100.0, sigma=SIG, now_ns=now, close_ns=CLOSE,
                    strike_type="greater", floor_strike=100_000.0)
    v = SIG ** 2 * fv.t_eff_s
    assert fv.prob == pytest.approx(norm_cdf((math.log(100_100 / 100_000) - v / 2) / math.sqrt(v)))


def test_inside_last_minute_known_part():
    now = CLOSE - 30 * S  # samples at close-59 .. close-30 are known (30 of them)
    taus = remaining_taus(now, CLOSE)
    assert taus == [float(t) for t in range(1, 31)]
    kw = dict(sigma=SIG, now_ns=now, close_ns=CLOSE, strike_type="greater_or_equal",
              floor_strike=100_000.0, known_sum=30 * 101_000.0, known_count=30)
    # the remaining 30 must average >= (60 * 100000 - 30 * 101000) / 30 = 99000
    fv = FairValueModel(FairValueParams(martingale_drift=False)).evaluate(index=99_000.0, **kw)
    assert fv.prob == pytest.approx(0.5, abs=1e-12)
    assert fv.t_eff_s == pytest.approx(_brute_teff(taus)) and fv.known_avg == 101_000.0
    # ignoring the known part the index is 1% under the strike: almost surely NO
    blind = fair_value(index=99_000.0, sigma=SIG, now_ns=now, close_ns=CLOSE,
                       strike_type="greater_or_equal", floor_strike=100_000.0)
    assert blind.prob < 1e-6
    assert fair_value(index=99_500.0, **kw).prob > 0.999
    # known part so high that nothing can undo it
    assert fair_value(index=1.0, **{**kw, "known_sum": 30 * 300_000.0}).prob == 1.0


def test_at_close_is_deterministic():
    kw = dict(index=1.0, sigma=SIG, now_ns=CLOSE, close_ns=CLOSE, floor_strike=100_000.0,
              known_count=60)
    assert fair_value(strike_type="greater_or_equal", known_sum=60 * 100_000.0, **kw).prob == 1.0
    assert fair_value(strike_type="greater", known_sum=60 * 100_000.0, **kw).prob == 0.0
    assert fair_value(strike_type="greater_or_equal", known_sum=60 * 99_999.0, **kw).prob == 0.0


def test_unknown_past_samples_count_as_current_value():
    # known only through close-40 s but it is now close-30 s: 10 samples have tau = 0
    taus = remaining_taus(CLOSE - 30 * S, CLOSE, known_through_ns=CLOSE - 40 * S)
    assert taus[:10] == [0.0] * 10 and taus[10:] == [float(t) for t in range(1, 31)]


def test_strike_types_are_consistent():
    kw = dict(index=100_050.0, sigma=SIG, now_ns=CLOSE - 120 * S, close_ns=CLOSE)
    ge = fair_value(strike_type="greater_or_equal", floor_strike=100_000.0, **kw).prob
    lt = fair_value(strike_type="less", cap_strike=100_000.0, **kw).prob
    assert ge + lt == pytest.approx(1.0)
    lo = fair_value(strike_type="greater_or_equal", floor_strike=99_900.0, **kw).prob
    hi = fair_value(strike_type="greater", floor_strike=100_100.0, **kw).prob
    btw = fair_value(strike_type="between", floor_strike=99_900.0, cap_strike=100_100.0, **kw).prob
    assert btw == pytest.approx(lo - hi) and 0 < btw < 1
    with pytest.raises(ValueError):
        fair_value(strike_type="functional", floor_strike=1.0, **kw)
    with pytest.raises(ValueError):
        fair_value(strike_type="between", floor_strike=1.0, **kw)


def test_zero_vol_is_deterministic():
    kw = dict(sigma=0.0, now_ns=CLOSE - 100 * S, close_ns=CLOSE, strike_type="greater_or_equal",
              floor_strike=100.0)
    assert fair_value(index=100.0, **kw).prob == 1.0
    assert fair_value(index=99.99, **kw).prob == 0.0


def test_ewma_vol_converges_and_skips_gaps():
    v = EwmaVol(VolParams(halflife_s=60.0, prior_sigma_annual=0.5, min_sigma_annual=0.01))
    assert v.sigma == pytest.approx(annual_to_per_second(0.5))
    x, lv = 2e-4, math.log(100_000.0)
    for i in range(1, 2001):  # +x, -x, +x ... one per second: variance rate x^2 per second
        lv += x if i % 2 else -x
        v.update(i * S, math.exp(lv))
    assert v.sigma == pytest.approx(x, rel=1e-3) and v.n == 1999
    before = v.rate
    v.update(3000 * S, 200_000.0)  # 1000 s gap: re-anchor, no update
    assert v.rate == before
    v.update(3000 * S, 100.0)  # dt = 0: ignored
    assert v.rate == before
    assert v.sigma_annual == pytest.approx(x * math.sqrt(365 * 86400), rel=1e-3)
