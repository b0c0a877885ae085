"""Bitstamp WebSocket v2 (``wss://ws.bitstamp.net``) plus the REST order book snapshot.

classify names
- data events by channel kind (the channel name without its ``_<pair>`` suffix):
  ``diff_order_book/data``, ``order_book/data``, ``detail_order_book/data``,
  ``live_trades/trade``, ``live_orders/order_created`` (``.../order_changed``,
  ``.../order_deleted``);
- protocol events by name: ``bts:subscription_succeeded``,
  ``bts:unsubscription_succeeded``, ``bts:request_reconnect``, ``bts:error``,
  ``bts:heartbeat``.

Instruments keep Bitstamp's names (``btcusd``). Timestamps: ``microtimestamp`` (µs,
string) -> ns.

Sequencing (``new_session()``): Bitstamp has no sequence numbers.
- ``microtimestamp`` must not go backwards per channel. Diffs must strictly increase
  (an equal value is reported as ``duplicate``); trades may repeat a microtimestamp (one
  taker order filling several makers: seen in both recordings).
- Diffs are aligned to a REST snapshot (``session.apply_rest_snapshot(instrument,
  body_text)``): until a snapshot arrives diffs are buffered (not applied); diffs with
  microtimestamp <= the snapshot's are dropped; buffered later ones are applied on top of
  it. A snapshot older than the first buffered diff is reported as ``stale_snapshot``.
- ``bts:request_reconnect`` is reported as a ``gap`` (the server is about to drop us).

Speed: a REST order book body (206 KB, ~8,000 levels for btcusd) or an ``order_book``
channel frame of ``BULK_CHARS`` or more is decoded in a session with a strict msgspec
shape and its levels made ``TextLevel``s in bulk (``base.text_levels``: Decimals made on
first read), ``L2Book.apply_snapshot`` told where the bids end and the price keys; the
messages, books and errors are those of the general path, which bytes frames and anything
unusual take (tests/venues/test_snapshot_bulk.py compares the two).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import msgspec

from harness.errors import DecodeError
from harness.venues._json import (
    Command,
    DecCache,
    as_text,
    dumps,
    excerpt,
    loads,
    micro_ns,
    parse_object,
    str_value,
    text_of,
)
from harness.venues.base import (
    BookMessage,
    Endpoints,
    Level,
    Message,
    OtherMessage,
    SeqFinding,
    TradeMessage,
    Venue,
    text_levels,
)
from harness.venues.book import BookSession, L2Book
from harness.venues.seq import MonotonicTracker, SnapshotAligner

NAME = "bitstamp"

ENDPOINTS = Endpoints(
    ws_prod=("wss://ws.bitstamp.net",),
    rest_prod=("https://www.bitstamp.net/api/v2",),
)

CHANNEL_KINDS = ("diff_order_book", "order_book", "detail_order_book", "live_trades", "live_orders", "full_order_book")

_P = DecCache(NAME)
_Q = DecCache(NAME, 50_000)


def split_channel(channel: str) -> tuple[str, str]:
    """``diff_order_book_btcusd`` -> (``diff_order_book``, ``btcusd``)."""
    for k in CHANNEL_KINDS:
        if channel.startswith(k + "_") and len(channel) > len(k) + 1:
            return k, channel[len(k) + 1 :]
    kind, _, inst = channel.rpartition("_")
    return (kind, inst) if kind else (channel, "")


def _levels(v, side: str, out: list) -> None:
    if type(v) is not list:
        raise DecodeError(NAME, "bids/asks must be lists")
    pget, qget = _P._c.get, _Q._c.get
    for lv in v:
        if type(lv) is not list or len(lv) < 2:
            raise DecodeError(NAME, "level must be [price, amount]")
        pt, qt = lv[0], lv[1]
        if type(pt) is not str or type(qt) is not str:
            raise DecodeError(NAME, "level price/amount must be strings")
        p = pget(pt)
        if p is None:
            p = _P(pt)
        q = qget(qt)
        if q is None:
            q = _Q(qt)
        out.append(Level(side, p, q, pt, qt))


def _book(data: dict, typ: str, instrument: str, snapshot: bool) -> BookMessage:
    levels: list = []
    _levels(data.get("bids", []), "bid", levels)
    _levels(data.get("asks", []), "ask", levels)
    mts = data.get("microtimestamp")
    return BookMessage(
        type=typ,
        venue_ts_ns=micro_ns(NAME, mts) if mts is not None else None,
        instrument=instrument,
        snapshot=snapshot,
        levels=levels,
    )


class BitstampVenue(Venue):
    def classify(self, payload: str | bytes) -> str | None:
        try:
            s = as_text(payload)
            t = s.lstrip()
            if t[:1] != "{":
                return None
            tail = max(0, len(s) - 160)
            ev = str_value(s, "event", tail) or str_value(s, "event")
            if ev is None:
                return None
            if ev.startswith("bts:"):
                return ev
            ch = str_value(s, "channel", tail) or str_value(s, "channel")
            if ch is None:
                return None
            kind, _ = split_channel(ch)
            if kind == "live_trades" and ev == "trade":
                return "live_trades/trade"
            return f"{kind}/{ev}"
        except Exception:  # noqa: BLE001 - classify never raises
            return None

    def decode(self, payload: str | bytes) -> list[Message]:
        obj = loads(NAME, payload)
        if type(obj) is not dict:
            raise DecodeError(NAME, "frame is not a JSON object", excerpt(payload))
        ev = obj.get("event")
        if type(ev) is not str:
            raise DecodeError(NAME, "frame has no 'event'", excerpt(payload))
        ch = obj.get("channel", "")
        if type(ch) is not str:
            raise DecodeError(NAME, "'channel' must be a string")
        if ev.startswith("bts:"):
            return [OtherMessage(type=ev, data=obj)]
        kind, inst = split_channel(ch)
        data = obj.get("data")
        if type(data) is not dict:
            raise DecodeError(NAME, "'data' must be an object", excerpt(payload))
        name = f"{kind}/{ev}"
        if ev == "data" and kind == "diff_order_book":
            return [_book(data, name, inst, False)]
        if ev == "data" and kind == "order_book":
            return [_book(data, name, inst, True)]
        if ev == "trade" and kind == "live_trades":
            mts = data.get("microtimestamp")
            tid = data.get("id")
            pt = data.get("price_str")
            qt = data.get("amount_str")
            # the *_str fields are exact; price/amount are floats (used only if *_str is absent)
            if pt is None:
                pt = _num_text(data.get("price"))
            if qt is None:
                qt = _num_text(data.get("amount"))
            side = data.get("type")
            return [
                TradeMessage(
                    type=name,
                    venue_ts_ns=micro_ns(NAME, mts) if mts is not None else None,
                    instrument=inst,
                    price=_P(text_of(NAME, pt)),
                    size=_Q(text_of(NAME, qt)),
                    side={0: "buy", 1: "sell"}.get(side) if type(side) is int else None,
                    trade_id=None if tid is None else str(tid),
                )
            ]
        mts = data.get("microtimestamp")
        ts = micro_ns(NAME, mts) if type(mts) is str and mts.isdigit() and mts.isascii() else None
        return [OtherMessage(type=name, data=obj, venue_ts_ns=ts)]

    def decode_rest_snapshot(self, instrument: str, body: str | bytes) -> BookMessage:
        """A REST ``/api/v2/order_book/<pair>`` body -> snapshot ``BookMessage``
        (type ``rest/order_book``)."""
        obj = loads(NAME, body)
        if type(obj) is not dict or "microtimestamp" not in obj:
            raise DecodeError(NAME, "REST order book must be an object with microtimestamp", excerpt(body))
        return _book(obj, "rest/order_book", instrument, True)

    # ------------------------------------------------------------- sessions/commands

    def new_session(self, *, align: bool = True) -> BitstampSession:
        return BitstampSession(self, align=align)

    def subscribe_frames(self, channels: list[str], instruments: list[str]) -> list[str]:
        """One frame per channel x instrument: ``bts:subscribe`` with ``<kind>_<pair>``."""
        return [dumps({"event": "bts:subscribe", "data": {"channel": f"{c}_{i}"}}) for c in channels for i in instruments]

    def unsubscribe_frames(self, channels: list[str], instruments: list[str]) -> list[str]:
        return [dumps({"event": "bts:unsubscribe", "data": {"channel": f"{c}_{i}"}}) for c in channels for i in instruments]

    def parse_command(self, text: str | bytes) -> Command:
        obj = parse_object(NAME, text)
        ev = obj.get("event")
        if not isinstance(ev, str) or not ev:
            raise DecodeError(NAME, "client frame has no 'event'", excerpt(text))
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            raise DecodeError(NAME, "'data' must be an object")
        ch = data.get("channel")
        if ch is not None and not isinstance(ch, str):
            raise DecodeError(NAME, "'data.channel' must be a string")
        action = ev[4:] if ev.startswith("bts:") else ev
        if action in ("subscribe", "unsubscribe") and not ch:
            raise DecodeError(NAME, f"{ev} without data.channel", excerpt(text))
        if ch:
            kind, inst = split_channel(ch)
            return Command(action=action, channels=[kind], instruments=[inst] if inst else [], params={"channel": ch}, raw=obj)
        return Command(action=action, raw=obj)

    def ack_frames(self, cmd: Command) -> list[str]:
        """``bts:subscription_succeeded`` / ``bts:unsubscription_succeeded`` (or
        ``bts:heartbeat`` with status success)."""
        if cmd.action == "heartbeat":
            return [dumps({"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}})]
        ch = cmd.params.get("channel", "")
        ev = "bts:subscription_succeeded" if cmd.action == "subscribe" else "bts:unsubscription_succeeded"
        return [dumps({"event": ev, "channel": ch, "data": {}})]

    def request_reconnect_frame(self) -> str:
        return dumps({"event": "bts:request_reconnect", "channel": "", "data": ""})


def _num_text(v) -> str:
    if type(v) is int:
        return str(v)
    if type(v) is float:
        return repr(v)
    raise DecodeError(NAME, "trade price/amount missing")


class _BookData(msgspec.Struct, gc=False):
    microtimestamp: Any = None  # bids and asks are skipped undecoded


class _BookHead(msgspec.Struct, gc=False):
    event: str
    channel: str
    data: _BookData


_BOOK_HEAD = msgspec.json.Decoder(_BookHead)
_BOOK_KINDS = ("diff_order_book", "order_book")


BULK_CHARS = 640  # a book this long may hold 64 levels (["1","1"],) or more: try the bulk decode


class _DeepBook(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A deep book (a REST ``/order_book`` body, an ``order_book`` frame's data) as a
    session decodes it in bulk. No field is skipped (a skipped value is checked less than
    the general path checks it: ``1e999``, bad UTF-8), so a book this shape takes is one
    ``decode`` takes too; another field, or a level of more than two entries, takes the
    general path."""

    timestamp: Any = msgspec.UNSET
    microtimestamp: Any = msgspec.UNSET
    bids: list[tuple[str, str]] = []
    asks: list[tuple[str, str]] = []


class _DeepFrame(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    event: str
    data: _DeepBook
    channel: str = ""


_DEEP_BOOK = msgspec.json.Decoder(_DeepBook)
_DEEP_FRAME = msgspec.json.Decoder(_DeepFrame)
_L_PRICE, _L_QTY = itemgetter(0), itemgetter(1)


def _bulk_book(d: _DeepBook, typ: str, instrument: str):
    """(the snapshot ``BookMessage`` ``_book`` makes of ``d`` but with ``TextLevel``s,
    (price keys, n_bids: ``base.bids_first``)). None when anything is off:
    the general path then names the error."""
    bids, asks = d.bids, d.asks
    got = text_levels(
        ["bid"] * len(bids) + ["ask"] * len(asks),
        list(map(_L_PRICE, bids)) + list(map(_L_PRICE, asks)),
        list(map(_L_QTY, bids)) + list(map(_L_QTY, asks)),
    )
    if got is None:
        return None
    levels, keys, n_bids = got
    mts = d.microtimestamp
    try:
        ts = None if mts is None or mts is msgspec.UNSET else micro_ns(NAME, mts)
    except DecodeError:
        return None
    m = BookMessage(type=typ, venue_ts_ns=ts, instrument=instrument, snapshot=True, levels=levels)
    return m, (keys, n_bids)


def _deep_rest(instrument: str, body):
    """``_bulk_book`` of a REST order book body (None: take ``decode_rest_snapshot``)."""
    try:
        d = _DEEP_BOOK.decode(body)
    except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError):
        return None
    if d.microtimestamp is msgspec.UNSET:
        return None
    return _bulk_book(d, "rest/order_book", instrument)


def _deep_order_book(payload: str):
    """``_bulk_book`` of an ``order_book`` channel frame (None: take ``decode``)."""
    if '"order_book_' not in payload[-160:] and '"order_book_' not in payload[:160]:
        return None  # (a cheap guess at the channel; a miss only costs speed)
    try:
        f = _DEEP_FRAME.decode(payload)
    except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError):
        return None
    kind, inst = split_channel(f.channel)
    if f.event != "data" or kind != "order_book":
        return None
    return _bulk_book(f.data, "order_book/data", inst)


class BitstampSession(BookSession):
    """Books per pair, aligned to REST snapshots (``apply_rest_snapshot``), plus the
    microtimestamp rules of the module docstring. ``align=False`` applies diffs directly
    (for a feed whose snapshots come from elsewhere).

    With ``keep_books`` a book frame for another pair (told from its channel name) gives
    its ``BookMessage`` without levels; its microtimestamp is still checked, it is not
    buffered for alignment, and a REST snapshot for it is ignored."""

    def __init__(self, venue: BitstampVenue, *, align: bool = True):
        super().__init__(venue)
        self.align = align
        self.aligner = SnapshotAligner()
        self.ts_diff = MonotonicTracker(strict=True)
        self.ts_other = MonotonicTracker(strict=False)

    def _skipped_book(self, payload) -> list[Message] | None:
        """``keep_books``: the levels-free BookMessage of a book frame for a pair whose
        book is not kept (None for anything else)."""
        if type(payload) is not str:
            return None
        ch = str_value(payload, "channel", max(0, len(payload) - 160))
        if ch is None:
            return None
        kind, inst = split_channel(ch)
        if kind not in _BOOK_KINDS or inst in self.kept:
            return None
        try:
            h = _BOOK_HEAD.decode(payload)
        except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError):
            return None  # the general path reports it
        if h.event != "data" or h.channel != ch:
            return None
        mts = h.data.microtimestamp
        return [
            BookMessage(
                type=f"{kind}/data",
                venue_ts_ns=micro_ns(NAME, mts) if mts is not None else None,
                instrument=inst,
                snapshot=kind == "order_book",
                levels=[],
            )
        ]

    def feed(self, payload, frame_id: int | None = None):
        msgs = self._skipped_book(payload) if self.kept is not None else None
        hint = None  # (price keys, n_bids) of a bulk-decoded snapshot
        if msgs is None:
            deep = _deep_order_book(payload) if type(payload) is str and len(payload) >= BULK_CHARS else None
            if deep is not None:
                msgs, hint = [deep[0]], deep[1]
            else:
                msgs = self.venue.decode(payload)
        self.frames += 1
        findings: list = []
        for m in msgs:
            cls = m.__class__
            if cls is BookMessage:
                key = m.type.partition("/")[0] + "_" + m.instrument
                if m.venue_ts_ns is not None:
                    tr = self.ts_diff if not m.snapshot else self.ts_other
                    f = tr.check(key, m.venue_ts_ns, frame_id)
                    if f is not None:
                        findings.append(f)
                if self.kept is not None and not self._kept(m):
                    continue
                if hint is not None:  # the frame's one message, a snapshot
                    self._apply_snapshot_levels(m, hint)
                elif m.snapshot or not self.align:
                    touched: list = []
                    self._apply(m, touched)
                else:
                    if m.venue_ts_ns is None:
                        raise DecodeError(NAME, "diff without microtimestamp cannot be aligned")
                    what = self.aligner.on_diff(m.instrument, m.venue_ts_ns, m)
                    if what != "apply":
                        continue
                    self._apply(m, [])
                self._check_crossed(self.books[m.instrument], frame_id, findings)
            elif cls is TradeMessage:
                if m.venue_ts_ns is not None:
                    f = self.ts_other.check("live_trades_" + m.instrument, m.venue_ts_ns, frame_id)
                    if f is not None:
                        findings.append(f)
            elif m.type == "bts:request_reconnect":
                findings.append(SeqFinding("gap", "*", None, None, "server sent bts:request_reconnect", frame_id))
        return msgs, findings

    def apply_rest_snapshot(self, instrument: str, body: str | bytes, frame_id: int | None = None) -> list[SeqFinding]:
        """Replace ``instrument``'s book with a REST snapshot and apply the buffered diffs
        newer than it. Returns findings (``stale_snapshot``, ``gap`` on buffer overflow,
        ``crossed``)."""
        deep = _deep_rest(instrument, body) if type(body) in (str, bytes) and len(body) >= BULK_CHARS else None
        if deep is not None:
            return self._apply_rest(deep[0], frame_id, deep[1])
        snap = self.venue.decode_rest_snapshot(instrument, body)
        return self.apply_snapshot_message(snap, frame_id)

    def apply_snapshot_message(self, snap: BookMessage, frame_id: int | None = None) -> list[SeqFinding]:
        return self._apply_rest(snap, frame_id, None)

    def _apply_snapshot_levels(self, m: BookMessage, hint) -> L2Book:
        """Replace ``m.instrument``'s book by a bulk-decoded snapshot (``hint``: price keys, n_bids)."""
        b = self.book(m.instrument)
        b.apply_snapshot(m.levels, m.venue_ts_ns, n_bids=hint[1], keys=hint[0])
        return b

    def _apply_rest(self, snap: BookMessage, frame_id, hint) -> list[SeqFinding]:
        ts = snap.venue_ts_ns
        if ts is None:
            raise DecodeError(NAME, "snapshot without microtimestamp cannot be aligned")
        if self.kept is not None and snap.instrument not in self.kept:
            return []
        keep, findings = self.aligner.on_snapshot(snap.instrument, ts, frame_id)
        if hint is not None:
            b = self._apply_snapshot_levels(snap, hint)
        else:
            b = self.book(snap.instrument)
            b.apply_snapshot(snap.levels, ts)
        for m in keep:
            b.apply_levels(m.levels, m.venue_ts_ns)
        self._check_crossed(b, frame_id, findings)
        return findings

    def keep_books(self, instruments) -> None:
        super().keep_books(instruments)
        if self.kept is not None:
            for inst in [k for k in self.aligner.keys() if k not in self.kept]:
                self.aligner.forget(inst)  # buffered diffs of a book no longer kept

    def reset(self) -> None:
        super().reset()
        self.aligner.forget()
        self.ts_diff.forget()
        self.ts_other.forget()


VENUE = BitstampVenue(name=NAME, endpoints=ENDPOINTS, ws_path="/", channels=CHANNEL_KINDS)
