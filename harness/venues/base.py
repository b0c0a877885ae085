"""What every venue module provides. Pure protocol knowledge: no sockets, clocks or SQLite.

A venue module (``harness/venues/<name>.py``) exposes a module-level ``VENUE``, an
instance of a ``Venue`` subclass. ``harness.venues.get(name)`` returns it.

Contract (the rest of the harness relies only on this):

- ``name``: registry key ("kalshi", "coinbase", "kraken", "bitstamp", "gemini", "cryptocom").
- ``endpoints``: ``Endpoints`` (production / demo WebSocket and REST URLs, known-dead hosts).
- ``ws_path``: the path the real WebSocket lives at ("/trade-api/ws/v2" for Kalshi, "/" ...).
- ``classify(payload) -> str | None``: the message type name, cheaply (called on every
  frame at record and import time). ``None`` when the frame is not JSON of a known shape.
  Never raises.
- ``decode(payload) -> list[Message]``: typed messages with exact Decimal prices and sizes
  and venue timestamps in ns. Raises ``DecodeError`` (and only that) on bad input.
- ``new_session() -> VenueSession``: per-connection state (command ids, sequence
  tracking, books); see ``VenueSession``.
- ``VenueSession.keep_books(instruments: Iterable[str] | None)``: build books only for
  these instruments; frames for other instruments are still classified and sequenced
  (sequence gaps/resets are still reported) but their levels need not be decoded or
  applied, and ``books`` holds no entry for them. None (the default) = every instrument.
  What a filtered frame returns: its ``BookMessage``s with the usual type, instrument,
  snapshot flag and sequence but ``levels == []`` (``venue_ts_ns`` and ``checksum`` may
  be None where finding them would mean decoding the levels: Kraken v1), and nothing
  else the frame carries for that instrument (Gemini's initial trades). Every spot
  venue session implements it; the base implementation ignores it (Kalshi's session
  keeps every market it is sent).
- ``subscribe_frames(channels, instruments) -> list[str]``: the frames a client sends.

Message types are named as the venue names them; where a venue multiplexes channels in
one type (Coinbase ``l2_data`` carries snapshot and update events) the name is
``channel/event`` (``l2_data/update``, ``book/snapshot``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec


@dataclass(frozen=True)
class Endpoints:
    ws_prod: tuple[str, ...]
    rest_prod: tuple[str, ...] = ()
    ws_demo: tuple[str, ...] = ()
    rest_demo: tuple[str, ...] = ()
    dead_hosts: tuple[str, ...] = ()  # hostnames (or URL prefixes) that no longer work

    def classify_url(self, url: str) -> str:
        """'prod', 'demo', 'dead' or 'unknown' for a URL (host + path compared)."""
        from urllib.parse import urlsplit

        u = urlsplit(url)
        for dead in self.dead_hosts:
            d = urlsplit(dead) if "://" in dead else None
            host = d.hostname if d else dead
            if u.hostname == host:
                return "dead"
        for kind, urls in (("prod", self.ws_prod + self.rest_prod), ("demo", self.ws_demo + self.rest_demo)):
            for known in urls:
                k = urlsplit(known)
                if u.hostname == k.hostname and (u.path.rstrip("/") or "/").startswith(k.path.rstrip("/") or "/"):
                    return kind
        return "unknown"


class Message(msgspec.Struct, kw_only=True):
    """Base of all decoded messages. ``type`` is the classifier's name for it."""

    type: str
    venue_ts_ns: int | None = None  # the venue's own timestamp for this message, if any


class Level(msgspec.Struct, gc=False):
    """One price level change as received. ``price_text``/``qty_text`` keep the wire text
    (Kraken's checksum is computed from it); ``qty == 0`` deletes the level.

    A Struct, not a dataclass: one is built per level of every book frame and a Struct is
    half the cost (no GC tracking either: it only holds a str and Decimals)."""

    side: str  # "bid" or "ask"
    price: Decimal
    qty: Decimal
    price_text: str = ""
    qty_text: str = ""


class TextLevel(msgspec.Struct, gc=False):
    """A ``Level`` of a deep snapshot as a venue session receives it: the wire texts, with
    ``price`` and ``qty`` made into Decimals on first read (and kept).

    A 46,000-level Coinbase snapshot spends more on its 92,000 Decimals than on decoding
    its JSON, and a book reads few of them again: its keys are floats of the price text,
    the pipeline copies levels from the texts (``L2Book.float_side``), and only levels an
    update touches or a query hands out are converted. ``text_levels`` checks every text
    with ``float()`` first: every text float() takes, Decimal takes too, with the same
    value, so a later conversion cannot fail (Decimal is the more lenient: ``1__0``; a
    snapshot holding such a text takes the per-level path). Compares equal to the
    ``Level`` with the same fields. Not for encoding or ``structs.replace``: the cache
    fields are part of the Struct (encoded as they stand, kept by a replace of a text)."""

    side: str  # "bid" or "ask"
    price_text: str
    qty_text: str
    dec_price: Decimal | None = None  # the conversion cache: read ``price`` / ``qty``
    dec_qty: Decimal | None = None

    @property
    def price(self) -> Decimal:
        p = self.dec_price
        if p is None:
            p = self.dec_price = Decimal(self.price_text)
        return p

    @property
    def qty(self) -> Decimal:
        q = self.dec_qty
        if q is None:
            q = self.dec_qty = Decimal(self.qty_text)
        return q

    def __eq__(self, other):
        if isinstance(other, (Level, TextLevel)):
            return (self.side == other.side and self.price == other.price and self.qty == other.qty
                    and self.price_text == other.price_text and self.qty_text == other.qty_text)
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __repr__(self) -> str:
        return f"TextLevel({self.side!r}, {self.price_text!r}, {self.qty_text!r})"


def bids_first(sides: list[str], nonzero: bool) -> int | None:
    """``L2Book.apply_snapshot``'s ``n_bids`` hint for levels with these sides: how many
    bids lead, when the bids all come first and no quantity is zero (else None)."""
    n = sides.count("bid")
    return n if nonzero and sides[:n].count("bid") == n else None


def text_levels(sides: list[str], pts: list, qts: list) -> tuple[list[TextLevel], list[float], int | None] | None:
    """Deep-snapshot levels from the wire texts in bulk (C-level iteration): ``sides``
    ("bid"/"ask"), price and quantity texts, in wire order. Returns (``TextLevel``s, the
    prices' floats: ``L2Book`` keys, the ``n_bids`` hint: ``bids_first``), or None when a
    text is not a plain non-negative number (not a str, not taken by ``float()``, or
    holding a minus sign or an n: NaN, infinity): the caller then takes its per-level path,
    which names the error."""
    try:
        text = "".join(pts) + "".join(qts)
    except TypeError:  # not all str
        return None
    if "-" in text or "n" in text or "N" in text:
        return None
    try:
        keys = list(map(float, pts))
        nonzero = all(list(map(float, qts)))  # every text checked (all() would stop at a 0)
    except ValueError:
        return None
    return list(map(TextLevel, sides, pts, qts)), keys, bids_first(sides, nonzero)


class BookMessage(Message, kw_only=True):
    """Snapshot or incremental L2 update for one instrument (absolute quantities)."""

    instrument: str
    snapshot: bool
    levels: list[Any]  # list[Level]
    checksum: int | None = None  # venue-sent checksum to verify after applying, if any
    sequence: int | None = None  # venue sequence number relevant to this instrument, if any


class TradeMessage(Message, kw_only=True):
    instrument: str
    price: Decimal
    size: Decimal
    side: str | None = None  # taker side, "buy"/"sell" if known
    trade_id: str | None = None


class OtherMessage(Message, kw_only=True):
    """Anything decoded but not book/trade (acks, heartbeats, tickers, status, errors)."""

    data: dict = msgspec.field(default_factory=dict)


@dataclass
class SeqFinding:
    """A sequencing problem found by a venue's tracker.

    kind: 'gap' | 'duplicate' | 'reset' | 'out_of_order' | 'checksum' | 'crossed' | 'stale_snapshot'
    key: what the rule is per (sid, product, connection ...). expected/got: the numbers.
    """

    kind: str
    key: str
    expected: Any = None
    got: Any = None
    detail: str = ""
    frame_id: int | None = None


@dataclass
class Venue:
    name: str
    endpoints: Endpoints
    ws_path: str = "/"
    channels: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def classify(self, payload: str | bytes) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, payload: str | bytes) -> list[Message]:  # pragma: no cover - abstract
        raise NotImplementedError

    def new_session(self) -> VenueSession:  # pragma: no cover - abstract
        raise NotImplementedError

    def subscribe_frames(self, channels: list[str], instruments: list[str]) -> list[str]:  # pragma: no cover
        raise NotImplementedError


class VenueSession:
    """Per-connection protocol state, fed inbound messages in order.

    ``feed(payload, frame_id=None) -> tuple[list[Message], list[SeqFinding]]`` decodes a
    frame, updates sequence trackers and books, and returns what it found. ``books``
    maps instrument -> book (``harness.venues.book.L2Book`` or the Kalshi YES/NO book).
    ``reset()`` is called on reconnect (sequences restart, books await a new snapshot).
    """

    books: dict

    def feed(self, payload: str | bytes, frame_id: int | None = None):  # pragma: no cover
        raise NotImplementedError

    def keep_books(self, instruments: Iterable[str] | None) -> None:
        """Build books only for ``instruments`` (None: all); see the module docstring.
        This default keeps every book."""

    def reset(self) -> None:  # pragma: no cover
        raise NotImplementedError
