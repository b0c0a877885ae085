"""Kalshi fees, edges and signal persistence."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest

from harness.pipeline.config import FeeParams, PipelineConfig, SignalParams
from harness.pipeline.fees import fee, fee_per_contract, maker_fee, taker_fee
from harness.pipeline.signals import MarketQuote, SignalDetector, edges

MS = 1_000_000
S = 1_000_000_000


# ------------------------------------------------------------------ fees


@pytest.mark.parametrize("price,count,want", [
    ("0.50", 1, "0.02"),     # 0.07 * 0.25 = 0.0175 -> 0.02
    ("0.50", 100, "1.75"),   # exactly 1.75
    ("0.10", 10, "0.07"),    # 0.07 * 10 * 0.09 = 0.063
    ("0.99", 1, "0.01"),     # 0.000693
    ("0.30", 3, "0.05"),     # 0.0441
    ("0.4800", 7, "0.13"),   # 0.07 * 7 * 0.2496 = 0.122304
    ("0", 10, "0.00"),
    ("1", 10, "0.00"),
])
def test_taker_fee_worked_values(price, count, want):
    assert taker_fee(price, count) == Decimal(want)


def test_maker_fee_multiplier_and_options():
    assert maker_fee("0.50", 100) == Decimal("0.44")  # 0.0175 * 25 = 0.4375
    assert maker_fee("0.50", 1) == Decimal("0.01")  # 0.004375
    half = FeeParams(series_multiplier=Decimal("0.5"))
    assert taker_fee("0.50", 100, params=half) == Decimal("0.88")  # 0.875
    centicent = FeeParams(rounding_increment=Decimal("0.0001"))
    assert taker_fee("0.50", 1, params=centicent) == Decimal("0.0175")
    assert fee(0.3, 3) == fee("0.70", 3)  # P(1-P) symmetric; floats accepted
    assert fee_per_contract("0.50", 100) == pytest.approx(0.0175)
    assert fee_per_contract("0.50", 1) == pytest.approx(0.02)
    with pytest.raises(ValueError):
        fee("1.5", 1)
    with pytest.raises(ValueError):
        fee_per_contract("0.5", 0)
    with pytest.raises(ValueError):  # an error is not kept as an answer
        fee_per_contract("0.5", 0)
    # kept per price, count, side and parameters: none answers for another
    assert fee_per_contract(0.5, 100, params=half) == pytest.approx(0.0088)
    assert fee_per_contract(0.5, 100) == pytest.approx(0.0175)
    assert fee_per_contract(0.5, 100, maker=True) == pytest.approx(0.0044)
    assert fee_per_contract(Decimal("0.5"), 100) == fee_per_contract(0.5, 100)
    # 0.2 is "0.2" to the fee, Decimal(0.2) its exact binary value: equal as keys, not as prices
    assert fee_per_contract(Decimal(0.2), 25) == pytest.approx(0.0116)
    assert fee_per_contract(0.2, 25) == pytest.approx(0.0112)
    assert fee_per_contract(Decimal(0.2), 25) == pytest.approx(0.0116)
    with pytest.raises(InvalidOperation):  # not hashable as a key: computed, and refused, as before
        fee_per_contract(Decimal("sNaN"), 1)


def test_config_lists_unconfirmed_parameters():
    cfg = PipelineConfig()
    un = cfg.unconfirmed()
    assert "fees.taker_coefficient" in un and "brti.grid_spacing" in un
    assert "brti.staleness_ns" not in un
    rows = {f"{r['section']}.{r['name']}": r for r in cfg.describe()}
    assert rows["brti.erroneous_readmit"]["value"] == 0.025 and rows["brti.erroneous_readmit"]["source"]


# ------------------------------------------------------------------ edges


def q(bid=0.40, ask=0.50, bid_size=10.0, ask_size=10.0, t=0, ticker="KXBTC15M-X"):
    return MarketQuote(ticker, bid, bid_size, ask, ask_size, t)


def test_edges():
    eb, es, fb, fs = edges(q(), 0.60)
    # 10 contracts at 0.50: 0.175 -> 0.18 total, 0.018 a contract
    assert fb == pytest.approx(0.018) and eb == pytest.approx(0.60 - 0.50 - 0.018)
    # 10 at 0.40: 0.07 * 10 * 0.24 = 0.168 -> 0.17
    assert fs == pytest.approx(0.017) and es == pytest.approx(0.40 - 0.60 - 0.017)
    eb, es, _, _ = edges(q(bid=None, ask=None), 0.5)
    assert eb is None and es is None
    # size is capped at max_contracts for the fee
    _, _, fb, _ = edges(q(ask_size=1e6), 0.6, SignalParams(max_contracts=100))
    assert fb == pytest.approx(0.0175)


# ------------------------------------------------------------------ persistence


def run(detector, fairs, quote=q(), start=0, step=200 * MS, index=100_000.0):
    out = []
    for i, f in enumerate(fairs):
        t = start + i * step
        out += [(t, s) for s in detector.on_tick(t, index + i, t, 1e-4, [(quote, f)])]
    return out


def test_signal_needs_persistence():
    d = SignalDetector(SignalParams(edge_threshold=0.02, persistence_ns=1 * S))
    # ticks every 200 ms; edge (fair 0.60 vs ask 0.50) from the 3rd tick (t = 0.4 s)
    fairs = [0.5, 0.5] + [0.6] * 10
    got = run(d, fairs)
    assert len(got) == 1
    t, sig = got[0]
    assert t == 1400 * MS and sig.first_ts_ns == 400 * MS and sig.side == "buy_yes"
    assert sig.edge == pytest.approx(0.082) and sig.fair == 0.6 and sig.price == 0.5


def test_interrupted_edge_restarts_and_new_episode_fires_again():
    d = SignalDetector(SignalParams(edge_threshold=0.02, persistence_ns=1 * S))
    fairs = [0.6] * 4 + [0.5] + [0.6] * 6 + [0.5] + [0.6] * 6
    got = run(d, fairs)
    # first run (t = 0..0.6 s) is too short; second starts at 1.0 s, fires at 2.0 s;
    # the dip at 2.2 s ends it; the third starts at 2.4 s and fires at 3.4 s
    assert [t for t, _ in got] == [2000 * MS, 3400 * MS]


def test_zero_persistence_fires_on_first_tick_and_fair_none_resets():
    d = SignalDetector(SignalParams(edge_threshold=0.02, persistence_ns=0))
    got = run(d, [0.6, 0.6, None, 0.6])
    assert [t for t, _ in got] == [0, 600 * MS]


def test_sell_side_and_quote_staleness_record():
    d = SignalDetector(SignalParams(edge_threshold=0.02, persistence_ns=400 * MS))
    quote = q(bid=0.70, ask=0.80, t=100 * MS)  # quote last changed at 0.1 s
    # index ticks at 0, 0.2, ... with values 100000, 100001, ...
    got = run(d, [0.60] * 5, quote=quote)
    assert len(got) == 1
    t, sig = got[0]
    assert sig.side == "sell_yes" and t == 400 * MS
    assert sig.edge == pytest.approx(0.70 - 0.60 - 0.015)  # 0.07*10*0.21 = 0.147 -> 0.15 total
    assert sig.quote_age_ns == 300 * MS
    assert sig.index_at_quote == 100_000.0  # tick at 0 s, the last at or before 0.1 s
    assert sig.index_value == 100_002.0 and sig.index_move == pytest.approx(2.0)
    assert sig.quote is quote and sig.sigma == 1e-4 and sig.index_ts_ns == t


def test_markets_are_independent():
    d = SignalDetector(SignalParams(edge_threshold=0.02, persistence_ns=0))
    a, b = q(ticker="A"), q(ticker="B")
    sigs = d.on_tick(0, 100.0, 0, 1e-4, [(a, 0.6), (b, 0.5)])
    assert [s.ticker for s in sigs] == ["A"]
    sigs = d.on_tick(200 * MS, 100.0, 200 * MS, 1e-4, [(a, 0.6), (b, 0.6)])
    assert [s.ticker for s in sigs] == ["B"]  # A already fired in this episode
    assert d.index_at(-1) is None
