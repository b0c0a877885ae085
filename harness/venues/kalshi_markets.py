"""Kalshi market tickers and ``GET /markets`` discovery, pure (time is always passed in).

- ``parse_ticker("KXBTC15M-26JUL191145-45")`` -> ``TickerInfo`` (series, close time in US
  Eastern as an aware datetime and UTC ns, suffix, strike for ``T``/``B`` suffixes).
- ``parse_markets_response(body) -> MarketsPage`` (markets + cursor; Decimal prices).
- ``open_markets(markets, series, at_ns)`` / ``current_market(...)``: the market(s) of a series
  open at a given time, soonest close first.
- ``next_15m_close(at_ns)`` / ``kxbtc15m_ticker(close)`` / ``next_kxbtc15m(at_ns)``: rollover.

Ticker stamps are ``YYMMMDD`` + ``HH`` or ``HHMM`` in America/New_York: ``26FEB1217`` is
2026-02-12 17:00 ET; ``26JUL191145`` is 2026-07-19 11:45 ET. Tickers whose second part is
not such a stamp (``KXFED-27APR-T4.25``, ``KXBTCMINMON-BTC-26FEB28-5750000``) parse with
``close_time`` None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from harness.errors import DecodeError

ET = ZoneInfo("America/New_York")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_STAMP = re.compile(r"(\d{2})(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(\d{2})(\d{2})(\d{2})?")
_TICKER = re.compile(r"[A-Z0-9][A-Z0-9.\-]*\Z")
_NS = 1_000_000_000
BTC_SERIES = ("KXBTC15M", "KXBTCD", "KXBTC")


def _dt_ns(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def ns_to_dt(ns: int, tz=UTC) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).astimezone(tz)


@dataclass(frozen=True)
class TickerInfo:
    ticker: str
    series: str
    event_ticker: str
    suffix: str | None
    close_time: datetime | None  # aware, America/New_York
    close_ns: int | None  # UTC ns since the epoch
    strike: Decimal | None = None  # from a T<strike> / B<strike> suffix
    strike_kind: str | None = None  # "T" (threshold/above) | "B" (bucket)


def parse_ticker(ticker: str) -> TickerInfo:
    """Parse ``SERIES-STAMP[-SUFFIX]``. Raises ``DecodeError`` if it is not a Kalshi ticker."""
    if not isinstance(ticker, str) or not _TICKER.match(ticker):
        raise DecodeError("kalshi", f"not a Kalshi market ticker: {ticker!r}")
    parts = ticker.split("-")
    series = parts[0]
    stamp = parts[1] if len(parts) > 1 else ""
    suffix = "-".join(parts[2:]) if len(parts) > 2 else None
    event = "-".join(parts[:2]) if len(parts) > 1 else ticker
    close = None
    m = _STAMP.match(stamp)
    if m:
        yy, mon, dd, hh, mi = m.groups()
        try:
            close = datetime(2000 + int(yy), MONTHS.index(mon) + 1, int(dd), int(hh), int(mi or 0), tzinfo=ET)
        except ValueError:
            close = None
    strike = kind = None
    if suffix and suffix[0] in "TB" and len(suffix) > 1:
        try:
            strike = Decimal(suffix[1:])
            kind = suffix[0]
            if not strike.is_finite():
                strike = kind = None
        except InvalidOperation:
            strike = kind = None
    return TickerInfo(ticker, series, event, suffix, close, _dt_ns(close) if close else None, strike, kind)


def kxbtc15m_ticker(close: datetime, series: str = "KXBTC15M") -> str:
    """``KXBTC15M-26JUL191145-45`` for a close time (any tz; rendered in US Eastern)."""
    et = close.astimezone(ET)
    return f"{series}-{et:%y}{MONTHS[et.month - 1]}{et:%d%H%M}-{et:%M}"


def next_15m_close(at_ns: int) -> datetime:
    """The first quarter hour strictly after ``at_ns`` (US Eastern aware datetime)."""
    q = 15 * 60 * _NS
    return ns_to_dt((at_ns // q + 1) * q, ET)


def next_kxbtc15m(at_ns: int) -> tuple[str, datetime]:
    """(ticker, close) of the 15-minute market open at ``at_ns`` (it closes next)."""
    close = next_15m_close(at_ns)
    return kxbtc15m_ticker(close), close


# --------------------------------------------------------------------------- GET /markets


class Market(msgspec.Struct, kw_only=True):
    ticker: str
    event_ticker: str | None = None
    status: str | None = None
    open_time: str | None = None
    close_time: str | None = None
    expiration_time: str | None = None
    yes_bid_dollars: str | None = None
    yes_ask_dollars: str | None = None
    no_bid_dollars: str | None = None
    no_ask_dollars: str | None = None
    last_price_dollars: str | None = None
    volume_fp: str | None = None
    open_interest_fp: str | None = None
    strike_type: str | None = None
    floor_strike: float | int | str | None = None
    cap_strike: float | int | str | None = None
    settlement_value_dollars: str | None = None
    expiration_value: str | None = None
    result: str | None = None

    @property
    def open_ns(self) -> int | None:
        return _iso_ns(self.open_time)

    @property
    def close_ns(self) -> int | None:
        return _iso_ns(self.close_time)

    def dec(self, name: str) -> Decimal | None:
        """A field as Decimal (``floor_strike`` via its JSON text), None when empty."""
        v = getattr(self, name)
        if v is None or v == "":
            return None
        try:
            return Decimal(str(v))
        except InvalidOperation:
            return None


class MarketsPage(msgspec.Struct):
    markets: list[Market] = msgspec.field(default_factory=list)
    cursor: str | None = None


_PAGE = msgspec.json.Decoder(MarketsPage)


def _iso_ns(text: str | None) -> int | None:
    if not text:
        return None
    from harness.venues.kalshi import rfc3339_to_ns

    return rfc3339_to_ns(text)


def parse_markets_response(body: str | bytes) -> MarketsPage:
    """``{"markets": [...], "cursor": "..."}``; an empty cursor becomes None."""
    try:
        page = _PAGE.decode(body)
    except msgspec.DecodeError as e:
        raise DecodeError("kalshi", f"bad GET /markets response: {e}") from None
    if not page.cursor:
        page.cursor = None
    return page


def market_from_obj(obj: dict[str, Any]) -> Market:
    try:
        return msgspec.convert(obj, Market)
    except msgspec.ValidationError as e:
        raise DecodeError("kalshi", f"bad market object: {e}") from None


def open_markets(markets: list[Market], series: str, at_ns: int) -> list[Market]:
    """Markets of ``series`` open at ``at_ns`` (open_time <= at < close_time and status
    active/open, or no status), soonest close first."""
    out = []
    prefix = series + "-"
    for m in markets:
        if not m.ticker.startswith(prefix):
            continue
        if m.status not in (None, "active", "open", "initialized"):
            continue
        o, c = m.open_ns, m.close_ns
        if c is None:
            c = parse_ticker(m.ticker).close_ns if _TICKER.match(m.ticker) else None
        if c is None or c <= at_ns or (o is not None and o > at_ns):
            continue
        out.append((c, m.ticker, m))
    return [m for _, _, m in sorted(out, key=lambda x: (x[0], x[1]))]


def current_market(markets: list[Market], series: str, at_ns: int) -> Market | None:
    ms = open_markets(markets, series, at_ns)
    return ms[0] if ms else None
