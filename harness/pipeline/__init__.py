"""The pipeline's pure computational core: BRTI proxy, fair value, fees, signals.

No I/O and no clocks: every function takes harness time in ns. Parameters with their
sources and confirmation status: ``harness.pipeline.config``.
"""

from harness.pipeline.brti import (
    BrtiCalculator,
    BrtiResult,
    ConsolidatedBook,
    IndexSeries,
    IndexTick,
    VenueBook,
    baseline_mid,
    dynamic_size_cap,
    venue_book_from,
)
from harness.pipeline.config import (
    BrtiParams,
    FairValueParams,
    FeeParams,
    PipelineConfig,
    SeriesParams,
    SignalParams,
    VolParams,
)
from harness.pipeline.fair_value import (
    EwmaVol,
    FairValue,
    FairValueModel,
    effective_time,
    fair_value,
)
from harness.pipeline.fees import fee, fee_per_contract, maker_fee, taker_fee
from harness.pipeline.signals import MarketQuote, Signal, SignalDetector, edges

__all__ = [
    "BrtiCalculator", "BrtiResult", "ConsolidatedBook", "IndexSeries", "IndexTick", "VenueBook",
    "baseline_mid", "dynamic_size_cap", "venue_book_from",
    "BrtiParams", "FairValueParams", "FeeParams", "PipelineConfig", "SeriesParams",
    "SignalParams", "VolParams",
    "EwmaVol", "FairValue", "FairValueModel", "effective_time", "fair_value",
    "fee", "fee_per_contract", "maker_fee", "taker_fee",
    "MarketQuote", "Signal", "SignalDetector", "edges",
]
