"""Kalshi trading fees (series ``fee_type`` "quadratic" / "quadratic_with_maker_fees").

    fee(order) = ceil_to_increment(coefficient * series_multiplier * C * P * (1 - P))

C contracts at price P dollars (0..1). Taker coefficient 0.07; maker coefficient
0.07 * 0.25 = 0.0175 (the 0.25 maker multiplier is in ``get-series``'s ``fee_type`` text).
The 0.07 coefficient and the round-up-to-the-cent rule come from Kalshi's public fee
schedule, which is *not* among the stored docs: both are configurable (``FeeParams``) and
*unconfirmed*, as is rounding for fractional contracts (the docs mention a "Fee Rounding"
page that is not stored). The fee is rounded per order, so the fee per contract depends on
C. P (1 - P) is symmetric: buying NO at 1 - P costs the same fee as YES at P.
"""

from __future__ import annotations

import functools
from decimal import ROUND_CEILING, Decimal

from harness.pipeline.config import FeeParams


def _dec(x: Decimal | float | int | str) -> Decimal:
    if isinstance(x, Decimal):
        return x
    return Decimal(str(x)) if isinstance(x, float) else Decimal(x)


def fee(price: Decimal | float | str, contracts: Decimal | float | int = 1, *, maker: bool = False,
        params: FeeParams | None = None) -> Decimal:
    """Total fee in dollars for ``contracts`` at ``price``, rounded up to the increment."""
    p = params or FeeParams()
    P, C = _dec(price), _dec(contracts)
    if not (0 <= P <= 1):
        raise ValueError(f"price {P} outside [0, 1]")
    if C < 0:
        raise ValueError(f"negative contract count {C}")
    coef = p.taker_coefficient * p.series_multiplier
    if maker:
        coef *= p.maker_multiplier
    raw = coef * C * P * (1 - P)
    inc = p.rounding_increment
    return (raw / inc).to_integral_value(rounding=ROUND_CEILING) * inc


def taker_fee(price, contracts=1, params: FeeParams | None = None) -> Decimal:
    return fee(price, contracts, maker=False, params=params)


def maker_fee(price, contracts=1, params: FeeParams | None = None) -> Decimal:
    return fee(price, contracts, maker=True, params=params)


def fee_per_contract(price, contracts=1, *, maker: bool = False,
                     params: FeeParams | None = None) -> float:
    """fee(price, contracts) / contracts as a float (for edge arithmetic). Kept per
    (price, contracts, side, params): a quote is priced at every 5 Hz tick, mostly at the
    prices and sizes it had at the previous one."""
    try:
        return _cached_fee_per_contract(price, contracts, maker, params)
    except TypeError:  # an argument that cannot be a key (a list, a signalling NaN): uncached
        return _fee_per_contract(price, contracts, maker, params)


def _fee_per_contract(price, contracts, maker: bool, params: FeeParams | None) -> float:
    C = _dec(contracts)
    if C <= 0:
        raise ValueError("contracts must be positive")
    return float(fee(price, C, maker=maker, params=params) / C)


# typed: 0.2 and Decimal(0.2) are equal keys to an untyped cache, but not the same price here
_cached_fee_per_contract = functools.lru_cache(maxsize=4096, typed=True)(_fee_per_contract)
