"""Small helpers shared by the spot venue modules (pure functions, no I/O).

- cheap string-level probes for ``classify`` (``str_value``, ``top_level_str_value``),
- JSON decoding that turns every failure into ``DecodeError`` (``loads``, ``loads_numtext``:
  JSON numbers kept as their wire text, for venues that send prices as JSON numbers),
- exact decimal and timestamp parsing (``dec``, ``rfc3339_ns``, ``decimal_seconds_ns``,
  ``micro_ns``, ``milli_ns``), never through float.
"""

from __future__ import annotations

import calendar
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from harness.errors import DecodeError

_WS = " \t\r\n"

_generic = msgspec.json.Decoder()
_numtext = msgspec.json.Decoder(float_hook=str)


def as_text(payload: str | bytes | bytearray | memoryview) -> str:
    """The payload as str (bytes decoded as UTF-8, undecodable bytes replaced)."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload).decode("utf-8", "replace")
    raise TypeError("payload must be str or bytes")


def excerpt(payload: Any) -> str:
    if isinstance(payload, msgspec.Raw):  # a part of a frame left undecoded (Coinbase keep_books)
        payload = bytes(payload)
    try:
        return as_text(payload)[:120]
    except Exception:  # noqa: BLE001 - only used to build error messages
        return repr(payload)[:120]


def loads(venue: str, payload: str | bytes) -> Any:
    """Generic JSON decode; ``DecodeError`` on anything that is not JSON."""
    try:
        return _generic.decode(payload)
    except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError) as e:
        raise DecodeError(venue, f"not JSON: {e}", excerpt(payload)) from None


def loads_numtext(venue: str, payload: str | bytes) -> Any:
    """JSON decode keeping non-integer numbers as their exact wire text (``0.10000000``
    stays ``"0.10000000"``); integers come back as int."""
    try:
        return _numtext.decode(payload)
    except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError) as e:
        raise DecodeError(venue, f"not JSON: {e}", excerpt(payload)) from None


def typed_decoder(tp: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(tp)


def typed_loads(venue: str, decoder: msgspec.json.Decoder, payload: str | bytes) -> Any:
    try:
        return decoder.decode(payload)
    except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError) as e:
        raise DecodeError(venue, f"bad frame: {e}", excerpt(payload)) from None


# --------------------------------------------------------------------- string probes


def _value_at(s: str, j: int) -> str | None:
    """Given index just after a ``"key"`` token, return the string value that follows."""
    n = len(s)
    while j < n and s[j] in _WS:
        j += 1
    if j >= n or s[j] != ":":
        return None
    j += 1
    while j < n and s[j] in _WS:
        j += 1
    if j >= n or s[j] != '"':
        return None
    k = s.find('"', j + 1)
    if k < 0:
        return None
    return s[j + 1 : k]


def str_value(s: str, key: str, start: int = 0, end: int | None = None) -> str | None:
    """The string value of the first ``"key": "value"`` in ``s`` (no JSON parse)."""
    needle = '"' + key + '"'
    i = s.find(needle, start) if end is None else s.find(needle, start, end)
    while i >= 0:
        v = _value_at(s, i + len(needle))
        if v is not None:
            return v
        i = s.find(needle, i + 1) if end is None else s.find(needle, i + 1, end)
    return None


def _depth_at(s: str, i: int) -> int:
    return s.count("{", 0, i) + s.count("[", 0, i) - s.count("}", 0, i) - s.count("]", 0, i)


def top_level_str_value(s: str, key: str) -> str | None:
    """Like ``str_value`` but only for the key of the outermost object: tries the first and
    the last occurrence (venues put ``type`` first, or last with sorted keys) and checks
    nesting depth with C-speed counts."""
    needle = '"' + key + '"'
    i = s.find(needle)
    if i < 0:
        return None
    if i < 4 or _depth_at(s, i) == 1:
        v = _value_at(s, i + len(needle))
        if v is not None:
            return v
    r = s.rfind(needle)
    if r != i and _depth_at(s, r) == 1:
        return _value_at(s, r + len(needle))
    return None


# --------------------------------------------------------------------- numbers


def dec(venue: str, text: Any) -> Decimal:
    """Exact Decimal from wire text (str or int); rejects NaN/Infinity and garbage."""
    try:
        if isinstance(text, str):
            d = Decimal(text)
        elif isinstance(text, int) and not isinstance(text, bool):
            d = Decimal(text)
        else:
            raise DecodeError(venue, f"expected a number as text, got {type(text).__name__}")
    except (InvalidOperation, ValueError, TypeError):
        raise DecodeError(venue, f"bad decimal {str(text)[:40]!r}") from None
    if not d.is_finite():
        raise DecodeError(venue, f"non-finite decimal {str(text)[:40]!r}")
    return d


_ZERO = Decimal(0)


_CACHES: list[DecCache] = []  # every DecCache made (module-level singletons of the venues)


def clear_caches() -> None:
    """Empty every ``DecCache``: what a process sees on its first frames (the benchmarks
    measure a replay with cold caches this way)."""
    for c in _CACHES:
        c._c.clear()


class DecCache:
    """Text -> Decimal cache for prices (the same levels recur all the time). Bounded:
    cleared when it grows past ``limit``. Validates finiteness and sign once per text."""

    __slots__ = ("venue", "_c", "limit")

    def __init__(self, venue: str, limit: int = 16_384):
        self.venue = venue
        self._c: dict[str, Decimal] = {}
        self.limit = limit
        _CACHES.append(self)

    def __call__(self, text: Any) -> Decimal:
        if type(text) is not str:
            return self._checked(dec(self.venue, text), text)
        c = self._c
        d = c.get(text)
        if d is not None:
            return d
        # A miss is common (new levels, new quantities): inline ``dec`` for str.
        try:
            d = Decimal(text)
        except (InvalidOperation, ValueError):
            raise DecodeError(self.venue, f"bad decimal {text[:40]!r}") from None
        if not d.is_finite():
            raise DecodeError(self.venue, f"non-finite decimal {text[:40]!r}")
        if d < _ZERO:
            raise DecodeError(self.venue, f"negative number {text[:40]!r}")
        if len(c) >= self.limit:
            c.clear()
        c[text] = d
        return d

    def _checked(self, d: Decimal, text: Any) -> Decimal:
        if d < _ZERO:
            raise DecodeError(self.venue, f"negative number {str(text)[:40]!r}")
        return d


def text_of(venue: str, v: Any) -> str:
    """Wire text of a price/qty field that may be a JSON string or (already as text) number."""
    if type(v) is str:
        return v
    if type(v) is int:
        return str(v)
    raise DecodeError(venue, f"expected a number, got {type(v).__name__}")


# --------------------------------------------------------------------- time

_EPOCH_CACHE: dict[str, int] = {}
_POW10 = [10**i for i in range(10)]


def _epoch_s(prefix: str) -> int:
    """Seconds since the epoch for ``YYYY-MM-DDTHH:MM:SS`` (UTC)."""
    e = _EPOCH_CACHE.get(prefix)
    if e is None:
        if len(prefix) != 19 or prefix[4] != "-" or prefix[7] != "-" or prefix[10] not in "Tt ":
            raise ValueError(prefix)
        if prefix[13] != ":" or prefix[16] != ":":
            raise ValueError(prefix)
        y, mo, d = int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10])
        h, mi, se = int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19])
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and se < 61):
            raise ValueError(prefix)
        e = calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0))
        if len(_EPOCH_CACHE) > 4096:
            _EPOCH_CACHE.clear()
        _EPOCH_CACHE[prefix] = e
    return e


def rfc3339_ns(venue: str, s: Any) -> int:
    """Exact ns since the epoch for ``2026-08-09T21:05:48.228568804Z`` (any number of
    fraction digits up to 9; ``Z`` or ``+HH:MM`` offset). No float anywhere."""
    if type(s) is not str or len(s) < 20:
        raise DecodeError(venue, f"bad timestamp {str(s)[:40]!r}")
    # fast path: cached whole-second prefix, '.' digits 'Z'
    base = _EPOCH_CACHE.get(s[:19])
    if base is not None and len(s) == 30 and s[19] == "." and s[29] == "Z":  # ns digits: Coinbase
        digits = s[20:29]
        if digits.isdigit() and digits.isascii():
            return base * 1_000_000_000 + int(digits)
    if base is not None and s[19] == "." and s[-1] == "Z":
        digits = s[20:-1]
        if 0 < len(digits) <= 9 and digits.isdigit() and digits.isascii():
            return base * 1_000_000_000 + int(digits) * _POW10[9 - len(digits)]
    try:
        base = _epoch_s(s[:19])
        rest = s[19:]
        frac = 0
        if rest[:1] == ".":
            i = 1
            while i < len(rest) and rest[i].isdigit():
                i += 1
            digits = rest[1:i]
            if not digits or len(digits) > 9 or not digits.isascii():
                raise ValueError(s)
            frac = int(digits.ljust(9, "0"))
            rest = rest[i:]
        if rest in ("Z", "z", "+00:00", "-00:00"):
            off = 0
        elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
            off = int(rest[1:3]) * 3600 + int(rest[4:6]) * 60
            if rest[0] == "+":
                off = -off
        else:
            raise ValueError(s)
    except (ValueError, IndexError, OverflowError):
        raise DecodeError(venue, f"bad RFC 3339 timestamp {s[:40]!r}") from None
    return (base + off) * 1_000_000_000 + frac


def decimal_seconds_ns(venue: str, s: Any) -> int:
    """``"1618678133.365913"`` (seconds as decimal text) -> exact ns."""
    if type(s) is not str:
        raise DecodeError(venue, f"bad seconds timestamp {str(s)[:40]!r}")
    a, _, b = s.partition(".")
    if not a.isdigit() or not a.isascii() or (b and (not b.isdigit() or not b.isascii())) or len(b) > 9:
        raise DecodeError(venue, f"bad seconds timestamp {s[:40]!r}")
    return int(a) * 1_000_000_000 + (int(b.ljust(9, "0")) if b else 0)


def micro_ns(venue: str, s: Any) -> int:
    """Microseconds (string or int) -> ns."""
    if type(s) is str and s.isdigit() and s.isascii():
        return int(s) * 1000
    if type(s) is int and s >= 0:
        return s * 1000
    raise DecodeError(venue, f"bad microsecond timestamp {str(s)[:40]!r}")


def milli_ns(venue: str, s: Any) -> int:
    """Milliseconds (int or digit string) -> ns."""
    if type(s) is int and s >= 0:
        return s * 1_000_000
    if type(s) is str and s.isdigit() and s.isascii():
        return int(s) * 1_000_000
    raise DecodeError(venue, f"bad millisecond timestamp {str(s)[:40]!r}")


# --------------------------------------------------------------------- client commands


class Command(msgspec.Struct, kw_only=True):
    """A client->venue frame as an impersonation server needs it.

    action: "subscribe" | "unsubscribe" | "ping" | "heartbeat_reply" | venue-specific.
    channels / instruments: as the venue names them (Bitstamp's ``diff_order_book_btcusd``
    gives channel ``diff_order_book`` and instrument ``btcusd``). ``id``: the request id
    the venue echoes (Kraken ``req_id``, Crypto.com ``id``), if any. ``params``: the
    venue-specific rest (depth, snapshot flag, ...). ``raw``: the parsed frame.
    """

    action: str
    channels: list[str] = msgspec.field(default_factory=list)
    instruments: list[str] = msgspec.field(default_factory=list)
    id: Any = None
    params: dict = msgspec.field(default_factory=dict)
    raw: Any = None


def parse_object(venue: str, text: str | bytes) -> dict:
    """Parse a client frame that must be a JSON object."""
    obj = loads(venue, text)
    if not isinstance(obj, dict):
        raise DecodeError(venue, "client frame is not a JSON object", excerpt(text))
    return obj


def str_list(venue: str, v: Any, what: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise DecodeError(venue, f"{what} must be a string or a list of strings")


def dumps(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()


def ns_to_rfc3339(ns: int) -> str:
    """ns since the epoch -> ``2026-08-09T21:05:48.228568804Z`` (exact)."""
    import datetime as _dt

    s, frac = divmod(int(ns), 1_000_000_000)
    base = _dt.datetime.fromtimestamp(s, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"
