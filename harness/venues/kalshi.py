"""Kalshi Trade API WebSocket v2: pure protocol knowledge (no sockets, clocks or globals).

Public API (see the module's names below for signatures):

- ``VENUE``: the ``Venue``; ``VENUE.classify``/``decode``/``new_session``/``subscribe_frames``.
- ``classify(payload) -> str | None``: the ``type`` (``cmd:<name>`` for client commands).
- ``decode(payload) -> list[Message]``: typed messages (``OrderbookSnapshot``,
  ``OrderbookDelta``, ``Trade``, ``Ticker``, ``Lifecycle``, ``Subscribed``, ``Unsubscribed``,
  ``Ok``, ``Error``, ``KalshiOther``, ``ClientCommand``); Decimal prices/sizes from the
  fixed-point strings (cents-era integer fields converted, message marked ``legacy=True``);
  ``venue_ts_ns`` from ``ts_ms`` (fallback ``ts`` seconds, or the RFC3339 ``ts``/``time``).
  Raises only ``DecodeError``.
- ``detect_era(frame) -> "current" | "legacy" | "mixed" | "unknown"``, ``legacy_fields(frame)``.
- ``KalshiCommands``: command frames with per-connection ids; ``parse_command(text)``.
- ``SeqTracker``, ``KalshiBook``, ``KalshiSession`` (``VENUE.new_session()``).
- ``ERROR_CODES``, ``error_requires_resubscribe(code)``, ``AUTH_REQUIRED``.

Auth lives in ``kalshi_auth``, market discovery and tickers in ``kalshi_markets``, the
AsyncAPI validator in ``kalshi_spec``.

Kalshi book model: both sides of ``orderbook_snapshot``/``orderbook_delta`` are resting
*bids*: YES bids and NO bids (NO prices in no-leg pricing unless the subscription set
``use_yes_price``). YES ask = 1 - best NO bid; NO ask = 1 - best YES bid. ``orderbook_delta``
carries a *relative* size change, so it is not a ``BookMessage`` (whose levels are absolute);
``OrderbookSnapshot`` is, with ``levels`` in YES terms (YES bids as ``bid``, NO bids as
``ask`` at 1 - price).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import orjson
from sortedcontainers import SortedDict

from harness.errors import DecodeError
from harness.venues.base import (
    BookMessage,
    Endpoints,
    Level,
    Message,
    OtherMessage,
    SeqFinding,
    TradeMessage,
    Venue,
    VenueSession,
)

VENUE_NAME = "kalshi"
WS_PATH = "/trade-api/ws/v2"
REST_PATH = "/trade-api/v2"

ENDPOINTS = Endpoints(
    ws_prod=(
        "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
        "wss://api.elections.kalshi.com/trade-api/ws/v2",
    ),
    rest_prod=(
        "https://external-api.kalshi.com/trade-api/v2",
        "https://api.elections.kalshi.com/trade-api/v2",
    ),
    ws_demo=(
        "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
        "wss://demo-api.kalshi.co/trade-api/ws/v2",
    ),
    rest_demo=(
        "https://external-api.demo.kalshi.co/trade-api/v2",
        "https://demo-api.kalshi.co/trade-api/v2",
    ),
    dead_hosts=("trading-api.kalshi.com", "api.kalshi.com"),
)

CHANNELS = (
    "orderbook_delta",
    "ticker",
    "trade",
    "fill",
    "market_positions",
    "market_lifecycle_v2",
    "multivariate_market_lifecycle",
    "communications",
    "order_group_updates",
    "user_orders",
    "cfbenchmarks_value",
    "pyth_value",
)
COMMANDS = ("subscribe", "unsubscribe", "update_subscription", "list_subscriptions")
UPDATE_ACTIONS = (
    "add_markets",
    "delete_markets",
    "get_snapshot",
    "subscribe_indices",
    "unsubscribe_indices",
    "indexlist",
    "subscribe_underlyings",
    "unsubscribe_underlyings",
    "underlying_list",
)
BOOK_TYPES = ("orderbook_snapshot", "orderbook_delta")

# x-error-codes of asyncapi.yaml (2026-08-22); tests check this table against the spec.
ERROR_CODES: dict[int, tuple[str, str]] = {
    1: ("Unable to process message", "General processing error"),
    2: ("Params required", "Missing params object in command"),
    3: ("Channels required", "Missing channels array in subscribe"),
    4: ("Subscription IDs required", "Missing sids in unsubscribe"),
    5: ("Unknown command", "Invalid command name"),
    6: ("Already subscribed", "Duplicate subscription attempt"),
    7: ("Unknown subscription ID", "Subscription ID not found"),
    8: ("Unknown channel name", "Invalid channel in subscribe"),
    9: ("Authentication required", "Channel requires authenticated connection"),
    10: ("Channel error", "Channel-specific error"),
    11: ("Invalid parameter", "Malformed parameter value"),
    12: ("Exactly one subscription ID is required", "For update_subscription command"),
    13: ("Unsupported action", "Invalid action for update_subscription"),
    14: ("Market Ticker required", "Missing market specification (market_ticker or market_id)"),
    15: ("Action required", "Missing action in update_subscription"),
    16: ("Market not found", "Invalid market_ticker or market_id"),
    17: ("Internal error", "Server-side processing error"),
    18: ("Command timeout", "Server timed out while processing command"),
    19: ("shard_factor must be > 0", "Invalid shard_factor"),
    20: ("shard_factor is required when shard_key is set", "Missing shard_factor when shard_key is set"),
    21: ("shard_key must be >= 0 and < shard_factor", "Invalid shard_key"),
    22: ("shard_factor must be <= 100", "shard_factor too large"),
    23: ("Match IDs required", "Missing match_ids for the channel/action"),
    24: (
        "Index IDs required",
        "Missing index_ids for subscribe_indices/unsubscribe_indices on cfbenchmarks_value",
    ),
    25: ("Subscription buffer overflow", "The subscription's outbound buffer was exceeded"),
    26: (
        "Subscription market limit exceeded",
        "Adding markets would exceed the per-subscription market limit",
    ),
    27: ("Too many requests", "The subscription exceeded its command rate limit"),
    28: (
        "Underlying tickers required",
        "Missing underlying_tickers for subscribe_underlyings/unsubscribe_underlyings on pyth_value",
    ),
}
AUTH_REQUIRED = 9
TERMINAL_ERROR_CODES = frozenset({10, 17, 25})


def error_requires_resubscribe(code: int | None) -> bool:
    """Codes 10 (channel error), 17 (internal error), 25 (buffer overflow) end the subscription."""
    return code in TERMINAL_ERROR_CODES


def error_meaning(code: int | None) -> str:
    name = ERROR_CODES.get(code or -1)
    return name[0] if name else f"unknown error code {code}"


# Fields removed on 2026-03-12 (cents-era integers; from diffing asyncapi-2026-01-31.yaml
# against the current spec), with the fixed-point fields that replaced them.
LEGACY_FIELDS: dict[str, tuple[str, ...]] = {
    "ticker": ("price", "yes_bid", "yes_ask", "volume", "open_interest"),
    "ticker_v2": ("price", "yes_bid", "yes_ask", "volume_delta", "open_interest_delta"),
    "orderbook_delta": ("price", "delta"),
    "orderbook_snapshot": ("yes", "no", "yes_dollars", "no_dollars"),
    "trade": ("yes_price", "no_price", "count"),
    "fill": ("yes_price", "count", "post_position"),
    "market_position": ("position", "position_cost", "realized_pnl", "fees_paid", "position_fee_cost", "volume"),
    "quote_created": ("yes_bid", "no_bid", "yes_contracts_offered", "no_contracts_offered", "rfq_target_cost"),
    "quote_accepted": (
        "yes_bid",
        "no_bid",
        "yes_contracts_offered",
        "no_contracts_offered",
        "rfq_target_cost",
        "contracts_accepted",
    ),
    "rfq_created": ("contracts", "target_cost"),
    "rfq_deleted": ("contracts", "target_cost"),
}
CURRENT_FIELDS: dict[str, tuple[str, ...]] = {
    "ticker": ("price_dollars", "yes_bid_dollars", "yes_ask_dollars", "volume_fp", "open_interest_fp"),
    "ticker_v2": ("price_dollars", "yes_bid_dollars", "yes_ask_dollars", "volume_delta_fp", "open_interest_delta_fp"),
    "orderbook_delta": ("price_dollars", "delta_fp"),
    "orderbook_snapshot": ("yes_dollars_fp", "no_dollars_fp"),
    "trade": ("yes_price_dollars", "no_price_dollars", "count_fp"),
    "fill": ("yes_price_dollars", "count_fp", "post_position_fp"),
    "market_position": (
        "position_fp",
        "position_cost_dollars",
        "realized_pnl_dollars",
        "fees_paid_dollars",
        "position_fee_cost_dollars",
        "volume_fp",
    ),
    "quote_created": (
        "yes_bid_dollars",
        "no_bid_dollars",
        "yes_contracts_offered_fp",
        "no_contracts_offered_fp",
        "rfq_target_cost_dollars",
    ),
    "quote_accepted": (
        "yes_bid_dollars",
        "no_bid_dollars",
        "yes_contracts_offered_fp",
        "no_contracts_offered_fp",
        "rfq_target_cost_dollars",
        "contracts_accepted_fp",
    ),
    "rfq_created": ("contracts_fp", "target_cost_dollars"),
    "rfq_deleted": ("contracts_fp", "target_cost_dollars"),
}

ONE = Decimal(1)
_CENT = Decimal("0.01")


def _excerpt(payload: Any) -> str | None:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload[:120]).decode("utf-8", "replace")
    if isinstance(payload, str):
        return payload[:120]
    return None


def _err(message: str, payload: Any = None) -> DecodeError:
    return DecodeError(VENUE_NAME, message, _excerpt(payload))


# --------------------------------------------------------------------------- classify

_WS = " \t\r\n"


def _fast_type(p: str | bytes) -> str | None:
    """The value of a top-level ``"type"`` key found by scanning, or None if unsure."""
    if isinstance(p, str):
        i = p.find('"type"')
        if i < 0 or p.count("{", 0, i) != 1 or "[" in p[:i]:
            return None
        j = i + 6
        n = len(p)
        while j < n and p[j] in _WS:
            j += 1
        if j >= n or p[j] != ":":
            return None
        j += 1
        while j < n and p[j] in _WS:
            j += 1
        if j >= n or p[j] != '"':
            return None
        k = p.find('"', j + 1)
        if k < 0:
            return None
        v = p[j + 1 : k]
    else:
        i = p.find(b'"type"')
        if i < 0 or p.count(b"{", 0, i) != 1 or b"[" in p[:i]:
            return None
        j = i + 6
        n = len(p)
        while j < n and p[j] in b" \t\r\n":
            j += 1
        if j >= n or p[j] != 58:  # ':'
            return None
        j += 1
        while j < n and p[j] in b" \t\r\n":
            j += 1
        if j >= n or p[j] != 34:  # '"'
            return None
        k = p.find(b'"', j + 1)
        if k < 0:
            return None
        try:
            v = p[j + 1 : k].decode("ascii")
        except UnicodeDecodeError:
            return None
    if not v or not _TYPE_OK(v):
        return None
    return v


_TYPE_OK = re.compile(r"[a-z0-9_]{1,64}\Z").match


def classify(payload: str | bytes) -> str | None:
    """The frame's ``type`` ("orderbook_delta", "subscribed", ...), ``cmd:<name>`` for a client
    command, or None. Cheap: a string scan for ``"type"`` (pretty-printed frames included),
    orjson only when the scan is unsure. Does not validate the rest of the frame (a
    truncated frame whose type is readable still classifies; ``decode`` rejects it). Never raises."""
    try:
        if isinstance(payload, (bytearray, memoryview)):
            payload = bytes(payload)
        elif not isinstance(payload, (str, bytes)):
            return None
        t = _fast_type(payload)
        if t is not None:
            return t
        obj = orjson.loads(payload)
    except Exception:  # noqa: BLE001 - classify never raises
        return None
    if isinstance(obj, dict):
        t = obj.get("type")
        if isinstance(t, str):
            return t
        c = obj.get("cmd")
        if isinstance(c, str):
            return "cmd:" + c
    return None


# --------------------------------------------------------------------------- messages


class OrderbookSnapshot(BookMessage, kw_only=True):
    """``levels``: YES bids as ``bid``; NO bids as ``ask`` at 1 - price (YES terms, assuming
    default no-leg pricing). ``yes``/``no``: (price, size) resting bids as sent."""

    market_id: str | None = None
    yes: list = msgspec.field(default_factory=list)
    no: list = msgspec.field(default_factory=list)
    sid: int | None = None
    seq: int | None = None
    legacy: bool = False

    @property
    def market_ticker(self) -> str:
        return self.instrument


class OrderbookDelta(Message, kw_only=True):
    """A relative size change of one resting bid level (``side`` "yes" or "no")."""

    instrument: str
    side: str
    price: Decimal
    delta: Decimal
    price_text: str = ""
    delta_text: str = ""
    market_id: str | None = None
    client_order_id: str | None = None
    subaccount: int | None = None
    sid: int | None = None
    seq: int | None = None
    legacy: bool = False

    @property
    def market_ticker(self) -> str:
        return self.instrument


class Trade(TradeMessage, kw_only=True):
    """``price`` is the YES price, ``size`` the contract count; ``side`` "buy" when the taker
    bought YES (taker outcome side "yes"), "sell" when the taker is positioned for NO."""

    no_price: Decimal | None = None
    taker_side: str | None = None
    taker_outcome_side: str | None = None
    taker_book_side: str | None = None
    is_block_trade: bool | None = None
    sid: int | None = None
    seq: int | None = None
    legacy: bool = False

    @property
    def market_ticker(self) -> str:
        return self.instrument


class Ticker(OtherMessage, kw_only=True):
    market_ticker: str
    market_id: str | None = None
    price: Decimal | None = None  # last trade price; None when "" (no trade yet)
    yes_bid: Decimal | None = None
    yes_ask: Decimal | None = None
    yes_bid_size: Decimal | None = None
    yes_ask_size: Decimal | None = None
    last_trade_size: Decimal | None = None
    volume: Decimal | None = None
    open_interest: Decimal | None = None
    dollar_volume: int | None = None
    dollar_open_interest: int | None = None
    clock: int | None = None  # undocumented integer "Clock" seen on real frames
    sid: int | None = None
    seq: int | None = None
    legacy: bool = False


class Lifecycle(OtherMessage, kw_only=True):
    """``market_lifecycle_v2``/``multivariate_market_lifecycle``/``event_lifecycle``; ``data``
    holds the whole ``msg``."""

    market_ticker: str | None = None
    event_ticker: str | None = None
    event_type: str | None = None
    open_ts: int | None = None
    close_ts: int | None = None
    settlement_value: Decimal | None = None
    result: str | None = None
    sid: int | None = None
    seq: int | None = None
    legacy: bool = False


class Subscribed(OtherMessage, kw_only=True):
    id: int | None = None
    channel: str | None = None
    sid: int | None = None


class Unsubscribed(OtherMessage, kw_only=True):
    id: int | None = None
    sid: int | None = None
    seq: int | None = None


class Ok(OtherMessage, kw_only=True):
    """Reply to update_subscription (``market_tickers``: full list after the update) or to
    list_subscriptions (``subscriptions``: [(channel, sid)])."""

    id: int | None = None
    sid: int | None = None
    seq: int | None = None
    market_tickers: list[str] | None = None
    market_ids: list[str] | None = None
    subscriptions: list[tuple[str, int]] | None = None


class Error(OtherMessage, kw_only=True):
    id: int | None = None
    code: int
    text: str = ""
    market_ticker: str | None = None
    market_id: str | None = None

    @property
    def meaning(self) -> str:
        return error_meaning(self.code)

    @property
    def requires_resubscribe(self) -> bool:
        return error_requires_resubscribe(self.code)

    @property
    def auth_required(self) -> bool:
        return self.code == AUTH_REQUIRED


class KalshiOther(OtherMessage, kw_only=True):
    """Any other server message (fill, user_order, cfbenchmarks_value, ...); ``data`` = msg."""

    id: int | None = None
    sid: int | None = None
    seq: int | None = None
    legacy: bool = False


class ClientCommand(OtherMessage, kw_only=True):
    """A client command frame (type ``cmd:<name>``) seen in a recording."""

    command: Any = None  # Command


# --------------------------------------------------------------------------- wire structs


class _DeltaMsg(msgspec.Struct):
    market_ticker: str
    market_id: str | None = None
    price_dollars: str | None = None
    delta_fp: str | None = None
    side: str | None = None
    ts: int | str | None = None
    ts_ms: int | None = None
    client_order_id: str | None = None
    subaccount: int | None = None
    price: int | None = None  # legacy cents
    delta: int | None = None  # legacy count


class _DeltaFrame(msgspec.Struct):
    type: str
    msg: _DeltaMsg
    sid: int | None = None
    seq: int | None = None


class _SnapMsg(msgspec.Struct):
    market_ticker: str
    market_id: str | None = None
    yes_dollars_fp: list[tuple[str, str]] | None = None
    no_dollars_fp: list[tuple[str, str]] | None = None
    yes: list[tuple[int, int]] | None = None  # legacy [cents, count]
    no: list[tuple[int, int]] | None = None
    yes_dollars: list[tuple[str, int | str]] | None = None  # legacy [dollars, count]
    no_dollars: list[tuple[str, int | str]] | None = None


class _SnapFrame(msgspec.Struct):
    type: str
    msg: _SnapMsg
    sid: int | None = None
    seq: int | None = None


class _TickerMsg(msgspec.Struct):
    market_ticker: str
    market_id: str | None = None
    price_dollars: str | None = None
    yes_bid_dollars: str | None = None
    yes_ask_dollars: str | None = None
    yes_bid_size_fp: str | None = None
    yes_ask_size_fp: str | None = None
    last_trade_size_fp: str | None = None
    volume_fp: str | None = None
    open_interest_fp: str | None = None
    dollar_volume: int | None = None
    dollar_open_interest: int | None = None
    ts: int | str | None = None
    ts_ms: int | None = None
    time: str | None = None
    Clock: int | None = None
    price: int | None = None
    yes_bid: int | None = None
    yes_ask: int | None = None
    volume: int | None = None
    open_interest: int | None = None


class _TickerFrame(msgspec.Struct):
    type: str
    msg: _TickerMsg
    sid: int | None = None
    seq: int | None = None


class _TradeMsg(msgspec.Struct):
    market_ticker: str
    trade_id: str | None = None
    yes_price_dollars: str | None = None
    no_price_dollars: str | None = None
    count_fp: str | None = None
    taker_side: str | None = None
    taker_outcome_side: str | None = None
    taker_book_side: str | None = None
    is_block_trade: bool | None = None
    ts: int | str | None = None
    ts_ms: int | None = None
    yes_price: int | None = None
    no_price: int | None = None
    count: int | None = None


class _TradeFrame(msgspec.Struct):
    type: str
    msg: _TradeMsg
    sid: int | None = None
    seq: int | None = None


class _SubMsg(msgspec.Struct):
    channel: str | None = None
    sid: int | None = None


class _SubscribedFrame(msgspec.Struct):
    type: str
    id: int | None = None
    msg: _SubMsg | None = None


class _UnsubFrame(msgspec.Struct):
    type: str
    id: int | None = None
    sid: int | None = None
    seq: int | None = None


class _OkMsg(msgspec.Struct):
    market_tickers: list[str] | None = None
    market_ids: list[str] | None = None


class _OkFrame(msgspec.Struct):
    type: str
    id: int | None = None
    sid: int | None = None
    seq: int | None = None
    msg: _OkMsg | list[_SubMsg] | None = None
    market_tickers: list[str] | None = None  # spec-example variant without msg
    market_ids: list[str] | None = None
    subscriptions: list[_SubMsg] | None = None


class _ErrMsg(msgspec.Struct):
    code: int
    msg: str = ""
    market_ticker: str | None = None
    market_id: str | None = None


class _ErrorFrame(msgspec.Struct):
    type: str
    msg: _ErrMsg
    id: int | None = None


class _AnyFrame(msgspec.Struct):
    type: str
    msg: Any = None
    id: int | None = None
    sid: int | None = None
    seq: int | None = None


_DECODERS = {
    "orderbook_delta": msgspec.json.Decoder(_DeltaFrame),
    "orderbook_snapshot": msgspec.json.Decoder(_SnapFrame),
    "ticker": msgspec.json.Decoder(_TickerFrame),
    "trade": msgspec.json.Decoder(_TradeFrame),
    "subscribed": msgspec.json.Decoder(_SubscribedFrame),
    "unsubscribed": msgspec.json.Decoder(_UnsubFrame),
    "ok": msgspec.json.Decoder(_OkFrame),
    "error": msgspec.json.Decoder(_ErrorFrame),
}
_ANY = msgspec.json.Decoder(_AnyFrame)
_LIFECYCLE = ("market_lifecycle_v2", "multivariate_market_lifecycle", "event_lifecycle")


# --------------------------------------------------------------------------- helpers


def _dec(text: str, what: str, t: str) -> Decimal:
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        raise _err(f"{t}: {what} {text!r} is not a decimal number") from None
    if not d.is_finite():
        raise _err(f"{t}: {what} {text!r} is not a finite number")
    return d


def _opt_dec(text: str | None, what: str, t: str) -> Decimal | None:
    if text is None or text == "":
        return None
    return _dec(text, what, t)


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d{2}:?\d{2})\Z"
)


def rfc3339_to_ns(text: str) -> int | None:
    """Nanoseconds since the epoch for an RFC3339 timestamp (ns precision kept), or None."""
    m = _RFC3339.match(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        secs = calendar.timegm((int(y), int(mo), int(d), int(hh), int(mi), int(ss), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(hh) < 24 and int(mi) < 60 and int(ss) < 61):
        return None
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    ns = secs * 1_000_000_000
    if frac:
        ns += int(frac.ljust(9, "0"))
    return ns


def _ts_ns(ts_ms: int | None, ts: int | str | None, time: str | None = None) -> int | None:
    if ts_ms is not None:
        return ts_ms * 1_000_000
    if isinstance(ts, int):
        return ts * 1_000_000_000
    if isinstance(ts, str):
        v = rfc3339_to_ns(ts)
        if v is not None:
            return v
    if time:
        return rfc3339_to_ns(time)
    return None


def _cents(v: int) -> Decimal:
    return Decimal(v) * _CENT


# --------------------------------------------------------------------------- decode


def decode(payload: str | bytes) -> list[Message]:
    """Decode one server (or client command) frame. Raises only ``DecodeError``."""
    if isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    if not isinstance(payload, (str, bytes)):
        raise _err(f"frame must be text or bytes, not {type(payload).__name__}")
    t = classify(payload)
    if t is None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            raise _err(f"frame is not valid JSON ({e})", payload) from None
        if not isinstance(obj, dict):
            raise _err(f"frame is JSON {type(obj).__name__}, not an object", payload)
        raise _err("frame has no string 'type' (nor 'cmd') field", payload)
    if t.startswith("cmd:"):
        cmd = parse_command(payload)
        return [ClientCommand(type="cmd:" + cmd.cmd, command=cmd)]
    try:
        return [_decode_typed(t, payload)]
    except msgspec.DecodeError as e:
        raise _err(f"malformed {t} frame: {e}", payload) from None
    except UnicodeError as e:  # a str holding a lone surrogate: no wire frame can (UTF-8)
        raise _err(f"malformed {t} frame: not valid Unicode text ({e.reason})", payload) from None
    except RecursionError:  # msgspec recurses into a hostile, deeply nested extra field
        raise _err(f"malformed {t} frame: nested too deeply to decode", payload) from None


def _decode_typed(t: str, payload: str | bytes) -> Message:
    dec = _DECODERS.get(t)
    if dec is None:
        f = _ANY.decode(payload)
        if f.type != t:
            return _decode_typed(f.type, payload)
        return _other(f)
    f = dec.decode(payload)
    if f.type != t:  # the scan found a nested "type"; trust the decoded top level
        return _decode_typed(f.type, payload)
    if t == "orderbook_delta":
        return _delta(f, payload)
    if t == "orderbook_snapshot":
        return _snapshot(f)
    if t == "ticker":
        return _ticker(f)
    if t == "trade":
        return _trade(f)
    if t == "subscribed":
        m = f.msg
        return Subscribed(type=t, id=f.id, channel=m.channel if m else None, sid=m.sid if m else None)
    if t == "unsubscribed":
        return Unsubscribed(type=t, id=f.id, sid=f.sid, seq=f.seq)
    if t == "ok":
        return _ok(f)
    # error
    m = f.msg
    return Error(type=t, id=f.id, code=m.code, text=m.msg, market_ticker=m.market_ticker, market_id=m.market_id)


def _delta(f: _DeltaFrame, payload: Any) -> OrderbookDelta:
    m = f.msg
    t = "orderbook_delta"
    legacy = m.price is not None or m.delta is not None
    if m.price_dollars is not None:
        price_text = m.price_dollars
        price = _dec(price_text, "price_dollars", t)
    elif m.price is not None:
        price = _cents(m.price)
        price_text = ""
    else:
        raise _err("orderbook_delta: msg has neither price_dollars nor (legacy) price", payload)
    if m.delta_fp is not None:
        delta_text = m.delta_fp
        delta = _dec(delta_text, "delta_fp", t)
    elif m.delta is not None:
        delta = Decimal(m.delta)
        delta_text = ""
    else:
        raise _err("orderbook_delta: msg has neither delta_fp nor (legacy) delta", payload)
    if m.side not in ("yes", "no"):
        raise _err(f"orderbook_delta: side must be 'yes' or 'no', got {m.side!r}", payload)
    return OrderbookDelta(
        type=t,
        venue_ts_ns=_ts_ns(m.ts_ms, m.ts),
        instrument=m.market_ticker,
        side=m.side,
        price=price,
        delta=delta,
        price_text=price_text,
        delta_text=delta_text,
        market_id=m.market_id,
        client_order_id=m.client_order_id,
        subaccount=m.subaccount,
        sid=f.sid,
        seq=f.seq,
        legacy=legacy,
    )


def _levels_fp(rows: list[tuple[str, str]], side: str) -> list[tuple[Decimal, Decimal, str, str]]:
    t = "orderbook_snapshot"
    return [(_dec(p, f"{side} price", t), _dec(q, f"{side} size", t), p, q) for p, q in rows]


def _snapshot(f: _SnapFrame) -> OrderbookSnapshot:
    m = f.msg
    legacy = m.yes is not None or m.no is not None or m.yes_dollars is not None or m.no_dollars is not None
    sides = {}
    for side in ("yes", "no"):
        fp = getattr(m, f"{side}_dollars_fp")
        if fp is not None:
            rows = _levels_fp(fp, side)
        elif getattr(m, f"{side}_dollars") is not None:
            rows = [
                (_dec(p, f"{side} price", "orderbook_snapshot"), _dec(str(q), f"{side} size", "orderbook_snapshot"), p, str(q))
                for p, q in getattr(m, f"{side}_dollars")
            ]
        elif getattr(m, side) is not None:
            rows = [(_cents(p), Decimal(q), "", str(q)) for p, q in getattr(m, side)]
        else:
            rows = []
        sides[side] = rows
    levels = [Level("bid", p, q, pt, qt) for p, q, pt, qt in sides["yes"]]
    levels += [Level("ask", ONE - p, q, "", qt) for p, q, pt, qt in sides["no"]]
    return OrderbookSnapshot(
        type="orderbook_snapshot",
        instrument=m.market_ticker,
        snapshot=True,
        levels=levels,
        sequence=f.seq,
        market_id=m.market_id,
        yes=[(p, q) for p, q, _, _ in sides["yes"]],
        no=[(p, q) for p, q, _, _ in sides["no"]],
        sid=f.sid,
        seq=f.seq,
        legacy=legacy,
    )


def _ticker(f: _TickerFrame) -> Ticker:
    m = f.msg
    t = "ticker"
    legacy = any(v is not None for v in (m.price, m.yes_bid, m.yes_ask, m.volume, m.open_interest))

    def pick(fp: str | None, name: str, legacy_val: int | None, cents: bool) -> Decimal | None:
        if fp is not None and fp != "":
            return _dec(fp, name, t)
        if legacy_val is not None:
            return _cents(legacy_val) if cents else Decimal(legacy_val)
        return None

    price = _opt_dec(m.price_dollars, "price_dollars", t)
    if price is None and m.price_dollars is None and m.price is not None:
        price = _cents(m.price)
    return Ticker(
        type=t,
        venue_ts_ns=_ts_ns(m.ts_ms, m.ts, m.time),
        market_ticker=m.market_ticker,
        market_id=m.market_id,
        price=price,
        yes_bid=pick(m.yes_bid_dollars, "yes_bid_dollars", m.yes_bid, True),
        yes_ask=pick(m.yes_ask_dollars, "yes_ask_dollars", m.yes_ask, True),
        yes_bid_size=_opt_dec(m.yes_bid_size_fp, "yes_bid_size_fp", t),
        yes_ask_size=_opt_dec(m.yes_ask_size_fp, "yes_ask_size_fp", t),
        last_trade_size=_opt_dec(m.last_trade_size_fp, "last_trade_size_fp", t),
        volume=pick(m.volume_fp, "volume_fp", m.volume, False),
        open_interest=pick(m.open_interest_fp, "open_interest_fp", m.open_interest, False),
        dollar_volume=m.dollar_volume,
        dollar_open_interest=m.dollar_open_interest,
        clock=m.Clock,
        sid=f.sid,
        seq=f.seq,
        legacy=legacy,
    )


def _trade(f: _TradeFrame) -> Trade:
    m = f.msg
    t = "trade"
    legacy = m.yes_price is not None or m.no_price is not None or m.count is not None
    if m.yes_price_dollars is not None:
        price = _dec(m.yes_price_dollars, "yes_price_dollars", t)
    elif m.yes_price is not None:
        price = _cents(m.yes_price)
    else:
        raise _err("trade: msg has neither yes_price_dollars nor (legacy) yes_price")
    if m.count_fp is not None:
        size = _dec(m.count_fp, "count_fp", t)
    elif m.count is not None:
        size = Decimal(m.count)
    else:
        raise _err("trade: msg has neither count_fp nor (legacy) count")
    no_price = _opt_dec(m.no_price_dollars, "no_price_dollars", t)
    if no_price is None and m.no_price is not None:
        no_price = _cents(m.no_price)
    outcome = m.taker_outcome_side or m.taker_side
    side = {"yes": "buy", "no": "sell"}.get(outcome or "")
    if side is None and m.taker_book_side:
        side = {"bid": "buy", "ask": "sell"}.get(m.taker_book_side)
    return Trade(
        type=t,
        venue_ts_ns=_ts_ns(m.ts_ms, m.ts),
        instrument=m.market_ticker,
        price=price,
        size=size,
        side=side,
        trade_id=m.trade_id,
        no_price=no_price,
        taker_side=m.taker_side,
        taker_outcome_side=m.taker_outcome_side,
        taker_book_side=m.taker_book_side,
        is_block_trade=m.is_block_trade,
        sid=f.sid,
        seq=f.seq,
        legacy=legacy,
    )


def _ok(f: _OkFrame) -> Ok:
    tickers, ids, subs = f.market_tickers, f.market_ids, None
    if isinstance(f.msg, _OkMsg):
        tickers = f.msg.market_tickers if f.msg.market_tickers is not None else tickers
        ids = f.msg.market_ids if f.msg.market_ids is not None else ids
    elif isinstance(f.msg, list):
        subs = [(s.channel or "", s.sid or 0) for s in f.msg]
    if f.subscriptions is not None:
        subs = [(s.channel or "", s.sid or 0) for s in f.subscriptions]
    return Ok(type="ok", id=f.id, sid=f.sid, seq=f.seq, market_tickers=tickers, market_ids=ids, subscriptions=subs)


def _other(f: _AnyFrame) -> Message:
    data = f.msg if isinstance(f.msg, dict) else ({} if f.msg is None else {"msg": f.msg})
    legacy = bool(LEGACY_FIELDS.get(f.type) and any(k in data for k in LEGACY_FIELDS[f.type]))
    ts_ms = data.get("ts_ms")
    ts = data.get("ts")
    ts_ns = _ts_ns(
        ts_ms if isinstance(ts_ms, int) and not isinstance(ts_ms, bool) else None,
        ts if isinstance(ts, (int, str)) and not isinstance(ts, bool) else None,
    )
    if f.type in _LIFECYCLE:

        def _int(k: str) -> int | None:
            v = data.get(k)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        def _str(k: str) -> str | None:
            v = data.get(k)
            return v if isinstance(v, str) else None

        sv = data.get("settlement_value")
        settlement = None
        if isinstance(sv, str) and sv:
            settlement = _dec(sv, "settlement_value", f.type)
        elif isinstance(sv, (int, float)) and not isinstance(sv, bool):
            settlement = _dec(str(sv), "settlement_value", f.type)
        return Lifecycle(
            type=f.type,
            venue_ts_ns=ts_ns,
            data=data,
            market_ticker=_str("market_ticker"),
            event_ticker=_str("event_ticker"),
            event_type=_str("event_type"),
            open_ts=_int("open_ts"),
            close_ts=_int("close_ts"),
            settlement_value=settlement,
            result=_str("result"),
            sid=f.sid,
            seq=f.seq,
            legacy=legacy,
        )
    return KalshiOther(type=f.type, venue_ts_ns=ts_ns, data=data, id=f.id, sid=f.sid, seq=f.seq, legacy=legacy)


# --------------------------------------------------------------------------- eras

_KEY_SCAN = re.compile(r'"([A-Za-z0-9_]+)"\s*:')


@dataclass(frozen=True)
class EraReport:
    era: str  # current | legacy | mixed | unknown
    type: str | None
    legacy_fields: tuple[str, ...] = ()
    current_fields: tuple[str, ...] = ()


def era_report(frame: Any) -> EraReport:
    """Which format era a frame (text, bytes or parsed dict) belongs to.

    ``legacy``: only cents-era fields (removed 2026-03-12); ``mixed``: cents-era fields next to
    their fixed-point replacements (the Jan-Mar 2026 transition); ``current``: no cents-era
    field; ``unknown``: not a JSON object with a type. Unparseable text (e.g. a truncated
    frame) is judged from the keys it contains."""
    keys: set[str]
    t: str | None
    if isinstance(frame, dict):
        obj: Any = frame
    else:
        try:
            obj = orjson.loads(frame)
        except (orjson.JSONDecodeError, TypeError):
            obj = None
        if obj is None:
            if not isinstance(frame, (str, bytes, bytearray, memoryview)):
                return EraReport("unknown", None)
            text = bytes(frame).decode("utf-8", "replace") if not isinstance(frame, str) else frame
            t = classify(text)
            if t is None:
                return EraReport("unknown", None)
            keys = set(_KEY_SCAN.findall(text))
            return _era_from_keys(t, keys)
    if not isinstance(obj, dict):
        return EraReport("unknown", None)
    t = obj.get("type") if isinstance(obj.get("type"), str) else None
    if t is None:
        if isinstance(obj.get("cmd"), str):
            return EraReport("current", "cmd:" + obj["cmd"])
        return EraReport("unknown", None)
    msg = obj.get("msg")
    keys = set(msg) if isinstance(msg, dict) else set()
    return _era_from_keys(t, keys)


def _era_from_keys(t: str, keys: set[str]) -> EraReport:
    legacy = tuple(k for k in LEGACY_FIELDS.get(t, ()) if k in keys)
    current = tuple(k for k in CURRENT_FIELDS.get(t, ()) if k in keys)
    if not legacy:
        return EraReport("current", t, (), current)
    return EraReport("mixed" if current else "legacy", t, legacy, current)


def detect_era(frame: Any) -> str:
    """``"current" | "legacy" | "mixed" | "unknown"`` (see ``era_report``)."""
    return era_report(frame).era


def legacy_fields(frame: Any) -> list[str]:
    """The cents-era fields (removed 2026-03-12) a frame carries."""
    return list(era_report(frame).legacy_fields)


def is_cents_era(frame: Any) -> bool:
    return era_report(frame).era in ("legacy", "mixed")


# --------------------------------------------------------------------------- commands


class CommandParams(msgspec.Struct, omit_defaults=True):
    channels: list[str] | None = None
    market_ticker: str | None = None
    market_tickers: list[str] | None = None
    market_id: str | None = None
    market_ids: list[str] | None = None
    sid: int | None = None
    sids: list[int] | None = None
    action: str | None = None
    send_initial_snapshot: bool | None = None
    skip_ticker_ack: bool | None = None
    use_yes_price: bool | None = None
    shard_factor: int | None = None
    shard_key: int | None = None
    index_ids: list[str] | None = None
    underlying_tickers: list[str] | None = None


class Command(msgspec.Struct, omit_defaults=True):
    """``{"id": N, "cmd": ..., "params": {...}}``. ``id`` 0 or absent means no id."""

    cmd: str
    id: int | None = None
    params: CommandParams | None = None

    @property
    def tickers(self) -> list[str]:
        p = self.params
        if p is None:
            return []
        if p.market_tickers is not None:
            return list(p.market_tickers)
        return [p.market_ticker] if p.market_ticker is not None else []

    @property
    def target_sids(self) -> list[int]:
        p = self.params
        if p is None:
            return []
        if p.sids is not None:
            return list(p.sids)
        return [p.sid] if p.sid is not None else []


class CommandError(DecodeError):
    """A client command Kalshi would refuse; ``code`` is the error code it would answer."""

    def __init__(self, code: int, message: str, frame: Any = None, command: Command | None = None):
        super().__init__(VENUE_NAME, f"command rejected (code {code}, {error_meaning(code)}): {message}", _excerpt(frame))
        self.code = code
        self.command = command


_CMD_DECODER = msgspec.json.Decoder(Command)


def parse_command(text: str | bytes) -> Command:
    """Parse and check a client command. ``DecodeError`` for non-JSON/garbage, ``CommandError``
    (a ``DecodeError`` with Kalshi's ``code``) for wrong types or a command the server refuses."""
    if isinstance(text, (bytearray, memoryview)):
        text = bytes(text)
    if not isinstance(text, (str, bytes)):
        raise _err(f"command must be text or bytes, not {type(text).__name__}")
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise CommandError(1, f"not valid JSON ({e})", text) from None
    if not isinstance(obj, dict):
        raise CommandError(1, f"a command is a JSON object, got {type(obj).__name__}", text)
    if "cmd" not in obj:
        raise CommandError(5, "no 'cmd' field", text)
    try:
        cmd = _CMD_DECODER.decode(text)
    except msgspec.DecodeError as e:
        code = 2 if "params" in str(e) and not isinstance(obj.get("params"), dict) else 11
        raise CommandError(code, str(e), text) from None
    if cmd.id is not None and cmd.id < 0:
        raise CommandError(11, f"id must be >= 0, got {cmd.id}", text, cmd)
    _check_command(cmd, text)
    return cmd


def _check_command(c: Command, text: Any) -> None:
    if c.cmd not in COMMANDS:
        raise CommandError(5, f"unknown command {c.cmd!r}", text, c)
    if c.cmd == "list_subscriptions":
        return
    p = c.params
    if p is None:
        raise CommandError(2, f"{c.cmd} needs params", text, c)
    if c.cmd == "subscribe":
        if not p.channels:
            raise CommandError(3, "subscribe needs a non-empty channels list", text, c)
        bad = [ch for ch in p.channels if ch not in CHANNELS]
        if bad:
            raise CommandError(8, f"unknown channel(s) {bad}", text, c)
        if p.market_ticker is not None and p.market_tickers is not None:
            raise CommandError(11, "market_ticker and market_tickers are mutually exclusive", text, c)
        if "orderbook_delta" in p.channels and not (p.market_ticker or p.market_tickers or p.market_id or p.market_ids):
            raise CommandError(14, "orderbook_delta needs market_ticker(s)", text, c)
        if p.shard_factor is not None and not 0 < p.shard_factor <= 100:
            raise CommandError(19 if p.shard_factor <= 0 else 22, f"bad shard_factor {p.shard_factor}", text, c)
        if p.shard_key is not None:
            if p.shard_factor is None:
                raise CommandError(20, "shard_key needs shard_factor", text, c)
            if not 0 <= p.shard_key < p.shard_factor:
                raise CommandError(21, f"bad shard_key {p.shard_key}", text, c)
    elif c.cmd == "unsubscribe":
        if not p.sids:
            raise CommandError(4, "unsubscribe needs a non-empty sids list", text, c)
    else:  # update_subscription
        if p.action is None:
            raise CommandError(15, "update_subscription needs an action", text, c)
        if p.action not in UPDATE_ACTIONS:
            raise CommandError(13, f"unsupported action {p.action!r}", text, c)
        if len(c.target_sids) != 1 or (p.sid is not None and p.sids is not None):
            raise CommandError(12, "update_subscription needs exactly one of sid / sids:[one]", text, c)
        if p.action in ("add_markets", "delete_markets") and not (
            p.market_ticker or p.market_tickers or p.market_id or p.market_ids
        ):
            raise CommandError(14, f"{p.action} needs market_ticker(s)", text, c)
        if p.action in ("subscribe_indices", "unsubscribe_indices") and not p.index_ids:
            raise CommandError(24, f"{p.action} needs index_ids", text, c)
        if p.action in ("subscribe_underlyings", "unsubscribe_underlyings") and not p.underlying_tickers:
            raise CommandError(28, f"{p.action} needs underlying_tickers", text, c)


def _dumps(obj: dict) -> str:
    return orjson.dumps(obj).decode()


class KalshiCommands:
    """Builds command frames with ids unique per connection (1, 2, 3 ...). ``sent`` keeps every
    built command by id so replies (``subscribed``/``ok``/``error``) can be matched."""

    def __init__(self, first_id: int = 1):
        self.next_id = first_id
        self.sent: dict[int, Command] = {}

    def _frame(self, cmd: str, params: dict | None) -> str:
        cid = self.next_id
        self.next_id += 1
        obj: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            obj["params"] = {k: v for k, v in params.items() if v is not None}
        text = _dumps(obj)
        self.sent[cid] = msgspec.json.decode(text, type=Command)
        return text

    def subscribe(
        self,
        channels: Iterable[str],
        market_tickers: Iterable[str] | None = None,
        *,
        market_ticker: str | None = None,
        send_initial_snapshot: bool | None = None,
        skip_ticker_ack: bool | None = None,
        use_yes_price: bool | None = None,
        **extra: Any,
    ) -> str:
        return self._frame(
            "subscribe",
            {
                "channels": list(channels),
                "market_ticker": market_ticker,
                "market_tickers": list(market_tickers) if market_tickers is not None else None,
                "send_initial_snapshot": send_initial_snapshot,
                "skip_ticker_ack": skip_ticker_ack,
                "use_yes_price": use_yes_price,
                **extra,
            },
        )

    def unsubscribe(self, sids: Iterable[int]) -> str:
        return self._frame("unsubscribe", {"sids": list(sids)})

    def update_subscription(
        self, sid: int, action: str, market_tickers: Iterable[str] | None = None, **extra: Any
    ) -> str:
        return self._frame(
            "update_subscription",
            {
                "sids": [sid],
                "market_tickers": list(market_tickers) if market_tickers is not None else None,
                "action": action,
                **extra,
            },
        )

    def add_markets(self, sid: int, market_tickers: Iterable[str]) -> str:
        return self.update_subscription(sid, "add_markets", market_tickers)

    def delete_markets(self, sid: int, market_tickers: Iterable[str]) -> str:
        return self.update_subscription(sid, "delete_markets", market_tickers)

    def get_snapshot(self, sid: int, market_tickers: Iterable[str]) -> str:
        return self.update_subscription(sid, "get_snapshot", market_tickers)

    def list_subscriptions(self) -> str:
        return self._frame("list_subscriptions", None)


def subscribe_frames(channels: list[str], instruments: list[str]) -> list[str]:
    """One subscribe command for all channels and markets (id 1, a fresh connection)."""
    cmds = KalshiCommands()
    return [cmds.subscribe(channels, instruments if instruments else None)]


# --------------------------------------------------------------------------- sequencing


class SeqTracker:
    """``seq`` per ``sid``: contiguous from 1 on each connection.

    ``observe(sid, seq)`` returns a ``SeqFinding`` or None: ``gap`` (expected, got; the tracker
    continues from ``got``), ``duplicate`` (seq == last), ``reset`` (seq restarts at 1
    mid-connection), ``out_of_order`` (seq < last, not 1). ``reset()`` on reconnect."""

    def __init__(self) -> None:
        self.last: dict[int, int] = {}

    def reset(self) -> None:
        self.last.clear()

    def forget(self, sid: int) -> None:
        self.last.pop(sid, None)

    def observe(self, sid: int, seq: int, frame_id: int | None = None, detail: str = "") -> SeqFinding | None:
        key = f"sid={sid}"
        last = self.last.get(sid)
        if last is None:
            self.last[sid] = seq
            if seq != 1:
                return SeqFinding("gap", key, 1, seq, _join("first seq of this sid on the connection is not 1", detail), frame_id)
            return None
        if seq == last + 1:
            self.last[sid] = seq
            return None
        if seq == last:
            return SeqFinding("duplicate", key, last + 1, seq, _join("seq repeated", detail), frame_id)
        if seq > last + 1:
            self.last[sid] = seq
            return SeqFinding("gap", key, last + 1, seq, _join(f"{seq - last - 1} message(s) missing", detail), frame_id)
        if seq == 1:
            self.last[sid] = 1
            return SeqFinding("reset", key, last + 1, seq, _join("seq restarted at 1", detail), frame_id)
        return SeqFinding("out_of_order", key, last + 1, seq, _join(f"seq went back from {last}", detail), frame_id)


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if b else a


# --------------------------------------------------------------------------- book


class KalshiBook:
    """Resting YES and NO bids of one market (Decimal price -> Decimal size).

    NO prices are kept in no-leg pricing; with ``no_in_yes_price`` (a ``use_yes_price``
    subscription) incoming NO prices p are stored as 1 - p."""

    def __init__(self, market_ticker: str, no_in_yes_price: bool = False):
        self.market_ticker = market_ticker
        self.no_in_yes_price = no_in_yes_price
        self.yes: SortedDict = SortedDict()
        self.no: SortedDict = SortedDict()
        self.has_snapshot = False
        self.stale = False  # a gap made this book untrustworthy until the next snapshot
        self.last_update_ns: int | None = None
        self.updates = 0

    def _no_price(self, p: Decimal) -> Decimal:
        return ONE - p if self.no_in_yes_price else p

    def apply_snapshot(self, yes: Iterable[tuple[Decimal, Decimal]], no: Iterable[tuple[Decimal, Decimal]], ts_ns: int | None = None) -> list[SeqFinding]:
        findings = []
        self.yes = SortedDict()
        self.no = SortedDict()
        for side, rows, book in (("yes", yes, self.yes), ("no", no, self.no)):
            for p, q in rows:
                if side == "no":
                    p = self._no_price(p)
                if q < 0:
                    findings.append(SeqFinding("negative_size", self.market_ticker, None, q, f"snapshot {side} level {p} has size {q}"))
                    continue
                if q > 0:
                    book[p] = book.get(p, Decimal(0)) + q
        self.has_snapshot = True
        self.stale = False
        self.last_update_ns = ts_ns
        self.updates += 1
        return findings

    def apply_delta(self, side: str, price: Decimal, delta: Decimal, ts_ns: int | None = None) -> list[SeqFinding]:
        book = self.yes if side == "yes" else self.no
        if side == "no":
            price = self._no_price(price)
        new = book.get(price, Decimal(0)) + delta
        findings = []
        if new < 0:
            findings.append(
                SeqFinding(
                    "negative_size",
                    self.market_ticker,
                    None,
                    new,
                    f"{side} level {price} would go to {new} (delta {delta}); level removed",
                )
            )
        if new > 0:
            book[price] = new
        else:
            book.pop(price, None)
        if ts_ns is not None:
            self.last_update_ns = ts_ns
        self.updates += 1
        return findings

    @staticmethod
    def _best(book: SortedDict) -> tuple[Decimal, Decimal] | None:
        if not book:
            return None
        return book.peekitem(-1)

    def best_yes_bid(self) -> tuple[Decimal, Decimal] | None:
        return self._best(self.yes)

    def best_no_bid(self) -> tuple[Decimal, Decimal] | None:
        return self._best(self.no)

    def yes_ask(self) -> tuple[Decimal, Decimal] | None:
        """(1 - best NO bid, its size): the cheapest YES one can buy."""
        b = self._best(self.no)
        return (ONE - b[0], b[1]) if b else None

    def no_ask(self) -> tuple[Decimal, Decimal] | None:
        b = self._best(self.yes)
        return (ONE - b[0], b[1]) if b else None

    def mid(self) -> Decimal | None:
        b, a = self.best_yes_bid(), self.yes_ask()
        return (b[0] + a[0]) / 2 if b and a else None

    def depth(self, n: int = 10) -> dict[str, list[tuple[Decimal, Decimal]]]:
        """Best-first levels: ``yes_bids``, ``no_bids``, and ``yes_asks`` (= 1 - NO bids)."""
        yb = [self.yes.peekitem(-1 - i) for i in range(min(n, len(self.yes)))]
        nb = [self.no.peekitem(-1 - i) for i in range(min(n, len(self.no)))]
        return {"yes_bids": yb, "no_bids": nb, "yes_asks": [(ONE - p, q) for p, q in nb]}

    def crossed(self) -> bool:
        """Best YES bid >= YES ask (i.e. best YES bid + best NO bid >= 1)."""
        b, a = self.best_yes_bid(), self.yes_ask()
        return bool(b and a and b[0] >= a[0])

    def __repr__(self) -> str:
        return f"KalshiBook({self.market_ticker}, bid={self.best_yes_bid()}, ask={self.yes_ask()})"


# --------------------------------------------------------------------------- session


@dataclass
class Subscription:
    sid: int
    channel: str | None = None
    markets: set[str] = field(default_factory=set)
    use_yes_price: bool = False
    command_id: int | None = None


class KalshiSession(VenueSession):
    """Per-connection state: command ids, sid -> channel/markets, seq per sid, books.

    ``feed(payload, frame_id=None) -> (messages, findings)``. Finding kinds beyond the
    sequence ones: ``negative_size``, ``crossed`` (on entering a crossed state),
    ``delta_before_snapshot``, ``terminal_error`` (codes 10/17/25: resubscribe),
    ``auth_required`` (code 9). After a ``gap`` on a book sid the affected books are marked
    ``stale`` and ``pending_resync`` holds sid -> markets; ``resync_frames()`` builds the
    ``update_subscription`` ``get_snapshot`` commands for them."""

    def __init__(self) -> None:
        self.commands = KalshiCommands()
        self.books: dict[str, KalshiBook] = {}
        self.subs: dict[int, Subscription] = {}
        self.seq = SeqTracker()
        self.pending_resync: dict[int, set[str]] = {}
        self.errors: list[Error] = []

    def reset(self) -> None:
        """Reconnect: ids restart at 1, sids and seqs are forgotten, books await a snapshot."""
        self.commands = KalshiCommands()
        self.subs.clear()
        self.seq.reset()
        self.pending_resync.clear()
        for b in self.books.values():
            b.has_snapshot = False
            b.stale = True

    # -- outbound

    def note_sent(self, text: str | bytes) -> Command | None:
        """Register a command sent by other means (e.g. read from a recording)."""
        try:
            c = parse_command(text)
        except DecodeError:
            return None
        if c.id:
            self.commands.sent[c.id] = c
            self.commands.next_id = max(self.commands.next_id, c.id + 1)
        return c

    def get_snapshot_frame(self, sid: int, markets: Iterable[str]) -> str:
        return self.commands.get_snapshot(sid, sorted(markets))

    def resync_frames(self) -> list[str]:
        """``get_snapshot`` commands for every sid with a pending resync (then cleared)."""
        out = [self.get_snapshot_frame(sid, m) for sid, m in sorted(self.pending_resync.items()) if m]
        self.pending_resync.clear()
        return out

    # -- inbound

    def book(self, market: str, sid: int | None = None) -> KalshiBook:
        b = self.books.get(market)
        if b is None:
            sub = self.subs.get(sid) if sid is not None else None
            b = self.books[market] = KalshiBook(market, bool(sub and sub.use_yes_price))
        return b

    def feed(self, payload: str | bytes, frame_id: int | None = None) -> tuple[list[Message], list[SeqFinding]]:
        msgs = decode(payload)
        findings: list[SeqFinding] = []
        for m in msgs:
            self._apply(m, frame_id, findings)
        return msgs, findings

    def _sub(self, sid: int) -> Subscription:
        s = self.subs.get(sid)
        if s is None:
            s = self.subs[sid] = Subscription(sid)
        return s

    def _apply(self, m: Message, frame_id: int | None, findings: list[SeqFinding]) -> None:
        t = m.type
        if isinstance(m, (OrderbookSnapshot, OrderbookDelta)):
            sid = m.sid
            if sid is not None:
                s = self._sub(sid)
                if s.channel is None:
                    s.channel = "orderbook_delta"
                s.markets.add(m.instrument)
            if sid is not None and m.seq is not None:
                f = self.seq.observe(sid, m.seq, frame_id, f"{t} {m.instrument}")
                if f is not None:
                    findings.append(f)
                    if f.kind in ("gap", "out_of_order", "reset"):
                        self._invalidate(sid, m.instrument, f)
            book = self.book(m.instrument, sid)
            was_crossed = book.crossed()
            if isinstance(m, OrderbookSnapshot):
                fs = book.apply_snapshot(m.yes, m.no, m.venue_ts_ns)
                pend = self.pending_resync.get(sid) if sid is not None else None
                if pend is not None:
                    pend.discard(m.instrument)
                    if not pend:
                        del self.pending_resync[sid]
            else:
                if not book.has_snapshot and not book.stale:
                    findings.append(
                        SeqFinding("delta_before_snapshot", m.instrument, None, m.seq, "orderbook_delta before any snapshot", frame_id)
                    )
                fs = book.apply_delta(m.side, m.price, m.delta, m.venue_ts_ns)
            for f in fs:
                f.frame_id = frame_id
            findings.extend(fs)
            if book.crossed() and not was_crossed:
                b, a = book.best_yes_bid(), book.yes_ask()
                findings.append(
                    SeqFinding("crossed", m.instrument, a[0] if a else None, b[0] if b else None, f"best yes bid {b} >= yes ask {a}", frame_id)
                )
            return
        if isinstance(m, Subscribed):
            if m.sid is not None:
                s = self._sub(m.sid)
                s.channel = m.channel
                s.command_id = m.id
                c = self.commands.sent.get(m.id) if m.id else None
                if c is not None:
                    s.markets.update(c.tickers)
                    s.use_yes_price = bool(c.params and c.params.use_yes_price)
                self.seq.forget(m.sid)
            return
        if isinstance(m, Ok):
            if m.sid is not None and m.seq is not None:
                f = self.seq.observe(m.sid, m.seq, frame_id, "ok reply")
                if f is not None:
                    findings.append(f)
            if m.sid is not None and m.market_tickers is not None:
                self._sub(m.sid).markets = set(m.market_tickers)
            elif m.sid is None and m.id and m.market_tickers is not None:
                c = self.commands.sent.get(m.id)
                for sid in c.target_sids if c else ():
                    self._sub(sid).markets = set(m.market_tickers)
            if m.subscriptions is not None:
                for ch, sid in m.subscriptions:
                    self._sub(sid).channel = ch
            return
        if isinstance(m, Unsubscribed):
            if m.sid is not None:
                self.subs.pop(m.sid, None)
                self.seq.forget(m.sid)
                self.pending_resync.pop(m.sid, None)
            return
        if isinstance(m, Error):
            self.errors.append(m)
            c = self.commands.sent.get(m.id) if m.id else None
            what = f"{c.cmd} (id {m.id})" if c else f"command id {m.id}"
            if m.requires_resubscribe:
                findings.append(
                    SeqFinding("terminal_error", what, None, m.code, f"{m.meaning}: {m.text}; the subscription ended, resubscribe", frame_id)
                )
            elif m.auth_required:
                findings.append(
                    SeqFinding("auth_required", what, None, m.code, f"{m.text}; connect with KALSHI-ACCESS-* headers", frame_id)
                )
            return
        sid = getattr(m, "sid", None)
        seq = getattr(m, "seq", None)
        if sid is not None and seq is not None:
            f = self.seq.observe(sid, seq, frame_id, t)
            if f is not None:
                findings.append(f)

    def _invalidate(self, sid: int, market: str, f: SeqFinding) -> None:
        markets = set(self.subs[sid].markets) if sid in self.subs else set()
        markets.add(market)
        for mk in markets:
            b = self.books.get(mk)
            if b is not None:
                b.stale = True
        self.pending_resync.setdefault(sid, set()).update(markets)
        f.detail = _join(
            f.detail,
            f"book(s) {sorted(markets)} are now stale: send update_subscription action get_snapshot "
            f"(session.resync_frames()) or resubscribe",
        )


# --------------------------------------------------------------------------- venue


class KalshiVenue(Venue):
    def classify(self, payload: str | bytes) -> str | None:
        return classify(payload)

    def decode(self, payload: str | bytes) -> list[Message]:
        return decode(payload)

    def new_session(self) -> KalshiSession:
        return KalshiSession()

    def subscribe_frames(self, channels: list[str], instruments: list[str]) -> list[str]:
        return subscribe_frames(channels, instruments)


VENUE = KalshiVenue(
    name=VENUE_NAME,
    endpoints=ENDPOINTS,
    ws_path=WS_PATH,
    channels=CHANNELS,
    extra={"rest_path": REST_PATH, "error_codes": ERROR_CODES, "terminal_error_codes": TERMINAL_ERROR_CODES},
)


def error_table() -> list[tuple[int, str, str, bool]]:
    """(code, name, description, terminal) rows for display."""
    return [(c, n, d, c in TERMINAL_ERROR_CODES) for c, (n, d) in sorted(ERROR_CODES.items())]

