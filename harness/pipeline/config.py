"""Every parameter of the computational core, with its default, its source and whether the
value is confirmed.

Each field carries ``metadata`` ``{"source": str, "confirmed": bool, "doc": str}``;
``PipelineConfig().describe()`` lists them (for reports and for the assertion suite, which
should treat unconfirmed values as things to measure rather than assume).

Sources referred to:

- PROTOCOLS  = ``shared/reference/PROTOCOLS.md`` (CF BRTI outline, Kalshi BTC markets).
- CF-PED-2020 = CF Benchmarks notice "Implementation change to the potentially erroneous
  data parameter" (2020): re-admission below 50% of the parameter.
- CF-CAP-2019 = CF Benchmarks notice on the dynamic order size cap (Dec 2019). The detailed
  procedure (5% band, >= 50 orders a side, 1% trim, 1st/99th percentile winsorisation,
  mean + 5 sd) is published for the CF *Spot Rates*; that the RTI uses the identical
  procedure is *unconfirmed*.
- KALSHI-CFB = ``kalshi/docs/websockets/cfbenchmarks-value.md`` (the final-minute average:
  window ``(close - 60 s, close]``, one value a second, 60 values).
- KALSHI-FEE = ``kalshi/docs/api-reference/market/get-series.md`` (``fee_type`` quadratic,
  ``fee_multiplier``, maker multiplier 0.25) plus the public Kalshi fee schedule formula
  ``ceil_to_cent(0.07 * C * P * (1 - P))``; the 0.07 coefficient and cent rounding are not
  in the stored docs: *unconfirmed*.
- HARNESS = a choice made here, tunable; no external source.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

NS = 1_000_000_000


def _p(default: Any, source: str, confirmed: bool, doc: str) -> Any:
    return field(default=default, metadata={"source": source, "confirmed": confirmed, "doc": doc})


@dataclass(frozen=True, slots=True)
class BrtiParams:
    staleness_ns: int = _p(10 * NS, "PROTOCOLS (CF retrieval-lag threshold)", True,
                           "a venue whose book is older than this at the calculation time is dropped")
    erroneous_exclude: float = _p(0.05, "PROTOCOLS / CF-PED-2020", True,
                                  "drop a venue whose mid deviates from the median mid of the others by more than this")
    erroneous_readmit: float = _p(0.025, "PROTOCOLS / CF-PED-2020", True,
                                  "an excluded venue is re-admitted only when its deviation is below this")
    max_mid_spread: float = _p(0.005, "PROTOCOLS (deviation parameter D)", True,
                               "utilised depth v_T = max grid v with midSV(v) <= this")
    lambda_depth_fraction: float = _p(0.3, "PROTOCOLS", True,
                                      "lambda = 1 / (this * v_T)")
    grid_spacing: float = _p(1.0, "HARNESS (CF spacing parameter s for BRTI not in the stored docs)", False,
                             "volume grid spacing s in BTC; the weighted sum is evaluated on v = s, 2s, ...")
    size_cap: float | None = _p(None, "HARNESS", True,
                                "fixed order size cap in BTC; None = dynamic cap (CF since Dec 2019)")
    cap_band: float = _p(0.05, "CF-CAP-2019 (Spot Rate text; RTI unconfirmed)", False,
                         "dynamic cap sample: consolidated levels within this fraction of the best bid / ask")
    cap_min_levels_per_side: int = _p(50, "CF-CAP-2019 (Spot Rate text; RTI unconfirmed)", False,
                                      "dynamic cap sample: at least this many levels a side (extending past the band)")
    cap_trim: float = _p(0.01, "CF-CAP-2019 (Spot Rate text; RTI unconfirmed)", False,
                         "dynamic cap: fraction trimmed (mean) / winsorised (sd) at each tail")
    cap_min_interval_ns: int = _p(0, "HARNESS (speed option; CF recomputes every determination)", True,
                                  "reuse the dynamic cap for this long (0 = recompute every calculation)")
    cap_num_sd: float = _p(5.0, "PROTOCOLS / CF-CAP-2019", True,
                           "dynamic cap = trimmed mean + this * winsorised sd")
    min_venues: int = _p(2, "HARNESS", False,
                         "fewer admitted venues than this makes the result invalid")
    exclude_crossed_venue: bool = _p(True, "HARNESS", False,
                                     "drop a venue whose own best bid > best ask (a broken local book)")


@dataclass(frozen=True, slots=True)
class SeriesParams:
    cadence_ns: int = _p(200_000_000, "HARNESS (CF: 'several times a second', rate unconfirmed)", False,
                         "index computed at every multiple of this in harness time (5 Hz)")
    publish_interval_ns: int = _p(NS, "PROTOCOLS (published once a second)", True,
                                  "values at multiples of this are the 'published' ones averaged for settlement")
    publish_decimals: int | None = _p(2, "PROTOCOLS (published to 0.01 USD); rounding mode unconfirmed", False,
                                      "published values are rounded (Python round, half-even) to this many decimals; None = raw")
    settlement_window_ns: int = _p(60 * NS, "PROTOCOLS / KALSHI-CFB", True,
                                   "Kalshi settles on the simple average of published values in (t - this, t]")
    retention_ns: int = _p(900 * NS, "HARNESS", True,
                           "how long published values are kept")


@dataclass(frozen=True, slots=True)
class VolParams:
    halflife_s: float = _p(600.0, "HARNESS", False,
                           "EWMA half-life (harness time) of the variance rate of log returns")
    prior_sigma_annual: float = _p(0.50, "HARNESS (typical BTC realised vol)", False,
                                   "starting volatility before any return is seen (annualised, 365 d)")
    min_sigma_annual: float = _p(0.05, "HARNESS", False, "floor on the estimate (annualised)")
    max_gap_s: float = _p(30.0, "HARNESS", False,
                          "a return over a longer gap is not used (the estimator re-anchors)")


@dataclass(frozen=True, slots=True)
class FairValueParams:
    sample_interval_ns: int = _p(NS, "KALSHI-CFB", True, "spacing of the averaged values")
    window_ns: int = _p(60 * NS, "PROTOCOLS / KALSHI-CFB", True, "length of the settlement average")
    martingale_drift: bool = _p(True, "HARNESS", True,
                                "log drift -sigma^2 T/2 so the index is a martingale in price")


@dataclass(frozen=True, slots=True)
class FeeParams:
    taker_coefficient: Decimal = _p(Decimal("0.07"), "KALSHI-FEE (public schedule, not in stored docs)", False,
                                    "fee = ceil(coef * multiplier * C * P * (1 - P))")
    maker_multiplier: Decimal = _p(Decimal("0.25"), "KALSHI-FEE (get-series: maker multiplier 0.25)", False,
                                   "maker coefficient = taker_coefficient * this (0.0175)")
    series_multiplier: Decimal = _p(Decimal("1"), "KALSHI-FEE (series fee_multiplier; read it from GET /series)", False,
                                    "the series' fee_multiplier")
    rounding_increment: Decimal = _p(Decimal("0.01"), "KALSHI-FEE (round up to the cent; sub-cent rules for fractional contracts unconfirmed)", False,
                                     "total fee of an order is rounded up to a multiple of this")


@dataclass(frozen=True, slots=True)
class SignalParams:
    edge_threshold: float = _p(0.02, "HARNESS", False, "minimum edge (dollars per contract) for a signal")
    persistence_ns: int = _p(NS, "HARNESS", False,
                             "the edge must stay above the threshold on every tick for this long")
    max_contracts: float = _p(100.0, "HARNESS", False,
                              "fee is computed for min(top-of-book size, this) contracts")
    history_ns: int = _p(900 * NS, "HARNESS", True,
                         "index history kept to look up the index at the quote's last update")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    brti: BrtiParams = field(default_factory=BrtiParams)
    series: SeriesParams = field(default_factory=SeriesParams)
    vol: VolParams = field(default_factory=VolParams)
    fair_value: FairValueParams = field(default_factory=FairValueParams)
    fees: FeeParams = field(default_factory=FeeParams)
    signals: SignalParams = field(default_factory=SignalParams)

    def describe(self) -> list[dict]:
        """One row per parameter: section, name, value, source, confirmed, doc."""
        rows = []
        for sec in fields(self):
            obj = getattr(self, sec.name)
            for f in fields(obj):
                rows.append({
                    "section": sec.name,
                    "name": f.name,
                    "value": getattr(obj, f.name),
                    "source": f.metadata.get("source", ""),
                    "confirmed": f.metadata.get("confirmed", False),
                    "doc": f.metadata.get("doc", ""),
                })
        return rows

    def unconfirmed(self) -> list[str]:
        return [f"{r['section']}.{r['name']}" for r in self.describe() if not r["confirmed"]]
