"""Gemini market data v2 (``wss://api.gemini.com/v2/marketdata``).

classify names: the top-level ``type``: ``l2_updates``, ``trade``, ``heartbeat``,
``candles_<interval>_updates``, ``auction_open``, ``auction_indicative``,
``auction_result``, ``subscription_ack`` (if sent), ``error``. The current feed sorts
keys, so ``type`` is the last key and nested trades carry their own ``"type":"trade"``
before it; classify picks the top-level one by nesting depth, not by position.

decode: ``l2_updates`` -> one ``BookMessage`` (``changes`` = ``[side, price, qty]`` with
absolute qty; side ``buy``/``sell`` -> bid/ask) plus a ``TradeMessage`` for each entry of
``trades`` (present on the initial message only). ``snapshot`` is True when the message
carries ``trades`` or ``auction_events`` (the initial full book). No timestamp and no
sequence on l2. ``trade`` -> ``TradeMessage`` (``side`` is the taker side, ``timestamp``
ms). Instruments keep Gemini's names (``BTCUSD``).

Session: the first ``l2_updates`` per symbol is the full book (replaces whatever was
there: after a reconnect merging would keep stale levels); a book that is crossed after an
update is a ``crossed`` finding. Gemini has no sequence numbers, so gaps are undetectable.

Speed: a session decodes an ``l2_updates`` frame of ``BULK_CHARS`` or more (the full book:
~5,000 levels, 170 KB for BTCUSD) with a strict msgspec shape and makes its levels
``TextLevel``s in bulk (``base.text_levels``: Decimals made on first read), telling
``L2Book.apply_snapshot`` where the bids end and the price keys; the messages, books and
errors are those of the general path, which bytes payloads and anything unusual take
(tests/venues/test_snapshot_bulk.py compares the two).
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
    milli_ns,
    parse_object,
    str_list,
    text_of,
    top_level_str_value,
)
from harness.venues.base import (
    BookMessage,
    Endpoints,
    Level,
    Message,
    OtherMessage,
    TradeMessage,
    Venue,
    text_levels,
)
from harness.venues.book import BookSession

NAME = "gemini"

ENDPOINTS = Endpoints(
    ws_prod=("wss://api.gemini.com/v2/marketdata", "wss://api.gemini.com/v1/marketdata"),
    rest_prod=("https://api.gemini.com/v1", "https://api.gemini.com/v2"),
    ws_demo=("wss://api.sandbox.gemini.com/v2/marketdata",),
    rest_demo=("https://api.sandbox.gemini.com/v1",),
)

_P = DecCache(NAME)
_Q = DecCache(NAME, 50_000)
_SIDE = {"buy": "bid", "sell": "ask", "bid": "bid", "ask": "ask"}


def _trade(t, name: str = "trade") -> TradeMessage:
    if type(t) is not dict or type(t.get("symbol")) is not str:
        raise DecodeError(NAME, "trade needs a symbol")
    ts = t.get("timestamp")
    tid = t.get("tid", t.get("event_id"))
    side = t.get("side")
    return TradeMessage(
        type=name,
        venue_ts_ns=milli_ns(NAME, ts) if ts is not None else None,
        instrument=t["symbol"],
        price=_P(text_of(NAME, t.get("price"))),
        size=_Q(text_of(NAME, t.get("quantity"))),
        side=side if side in ("buy", "sell") else None,
        trade_id=None if tid is None else str(tid),
    )


class GeminiVenue(Venue):
    def classify(self, payload: str | bytes) -> str | None:
        try:
            s = as_text(payload)
            if s.startswith('{"type":"'):
                j = s.find('"', 9)
                return s[9:j] if j > 0 else None
            t = s.lstrip()
            if t[:1] != "{":
                return None
            if t.endswith('"}'):  # sorted keys: "type" is last
                k = t.rfind('"type":"')
                if k > 0 and t.find('"', k + 8) == len(t) - 2:
                    return t[k + 8 : -2]
            return top_level_str_value(t, "type") or (
                "error" if top_level_str_value(t, "result") == "error" else None
            )
        except Exception:  # noqa: BLE001 - classify never raises
            return None

    def decode(self, payload: str | bytes) -> list[Message]:
        obj = loads(NAME, payload)
        if type(obj) is not dict:
            raise DecodeError(NAME, "frame is not a JSON object", excerpt(payload))
        typ = obj.get("type")
        if typ is None and obj.get("result") == "error":
            typ = "error"
        if type(typ) is not str:
            raise DecodeError(NAME, "frame has no 'type'", excerpt(payload))
        if typ == "l2_updates":
            sym = obj.get("symbol")
            changes = obj.get("changes")
            if type(sym) is not str or type(changes) is not list:
                raise DecodeError(NAME, "l2_updates needs symbol and changes", excerpt(payload))
            levels = []
            pget, qget = _P._c.get, _Q._c.get
            for c in changes:
                if type(c) is not list or len(c) != 3:
                    raise DecodeError(NAME, "change must be [side, price, qty]")
                side = _SIDE.get(c[0]) if type(c[0]) is str else None
                if side is None:
                    raise DecodeError(NAME, f"bad side {str(c[0])[:20]!r}")
                pt, qt = c[1], c[2]
                if type(pt) is not str or type(qt) is not str:
                    raise DecodeError(NAME, "price/qty must be strings")
                p = pget(pt)
                if p is None:
                    p = _P(pt)
                q = qget(qt)
                if q is None:
                    q = _Q(qt)
                levels.append(Level(side, p, q, pt, qt))
            snap = "trades" in obj or "auction_events" in obj
            out: list[Message] = [BookMessage(type=typ, instrument=sym, snapshot=snap, levels=levels)]
            trades = obj.get("trades")
            if trades is not None:
                if type(trades) is not list:
                    raise DecodeError(NAME, "'trades' must be a list")
                out.extend(_trade(t) for t in trades)
            return out
        if typ == "trade":
            return [_trade(obj)]
        ts = obj.get("timestamp")
        if ts is None:
            ts = obj.get("time_ms")
        return [OtherMessage(type=typ, data=obj, venue_ts_ns=milli_ns(NAME, ts) if type(ts) is int and ts >= 0 else None)]

    # ------------------------------------------------------------- sessions/commands

    def new_session(self) -> GeminiSession:
        return GeminiSession(self)

    def subscribe_frames(self, channels: list[str], instruments: list[str]) -> list[str]:
        """One frame: ``{"type":"subscribe","subscriptions":[{"name":"l2","symbols":[...]}]}``."""
        return [dumps({"type": "subscribe", "subscriptions": [{"name": c, "symbols": list(instruments)} for c in channels]})]

    def unsubscribe_frames(self, channels: list[str], instruments: list[str]) -> list[str]:
        return [dumps({"type": "unsubscribe", "subscriptions": [{"name": c, "symbols": list(instruments)} for c in channels]})]

    def parse_command(self, text: str | bytes) -> Command:
        obj = parse_object(NAME, text)
        action = obj.get("type")
        if not isinstance(action, str) or not action:
            raise DecodeError(NAME, "client frame has no 'type'", excerpt(text))
        subs = obj.get("subscriptions", [])
        if not isinstance(subs, list):
            raise DecodeError(NAME, "'subscriptions' must be a list")
        chans: list[str] = []
        insts: list[str] = []
        for s in subs:
            if not isinstance(s, dict) or not isinstance(s.get("name"), str):
                raise DecodeError(NAME, "subscription entries need a name")
            chans.append(s["name"])
            for i in str_list(NAME, s.get("symbols"), "symbols"):
                if i not in insts:
                    insts.append(i)
        if action in ("subscribe", "unsubscribe") and not chans:
            raise DecodeError(NAME, f"{action} without subscriptions", excerpt(text))
        return Command(action=action, channels=chans, instruments=insts, raw=obj)

    def ack_frames(self, cmd: Command) -> list[str]:
        """Gemini v2 sends no subscribe acknowledgement: the initial ``l2_updates`` per
        symbol is the first thing a subscriber sees."""
        return []

    def heartbeat_frame(self, ts_ms: int) -> str:
        return dumps({"type": "heartbeat", "timestamp": ts_ms})


_ABSENT = msgspec.Raw()


class _L2Head(msgspec.Struct, gc=False):
    """What ``keep_books`` needs of an ``l2_updates`` frame: its symbol and whether it is
    the full book; the changes and trades are skipped undecoded."""

    type: str
    symbol: str = ""
    trades: msgspec.Raw = _ABSENT  # (msgspec takes no Raw | None)
    auction_events: msgspec.Raw = _ABSENT


_L2_HEAD = msgspec.json.Decoder(_L2Head)


def _names_l2(payload) -> bool:
    """Whether the frame's type, first or last key, is ``l2_updates`` (cheap, may err)."""
    if type(payload) is str:
        return '"l2_updates"' in payload[:40] or '"l2_updates"' in payload[-40:]
    if isinstance(payload, (bytes, bytearray)):
        return b'"l2_updates"' in payload[:40] or b'"l2_updates"' in payload[-40:]
    return False


BULK_CHARS = 1024  # a frame this long may hold 64 changes or more: try the bulk decode


class _L2Deep(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A deep ``l2_updates`` frame as the session decodes it in bulk. No field is skipped
    (a skipped value is checked less than the general path checks it: ``1e999``, bad
    UTF-8), so a frame this shape takes is one ``decode`` takes too; a frame with another
    field takes the general path."""

    type: str
    symbol: str
    changes: list[tuple[str, str, str]]
    trades: Any = msgspec.UNSET
    auction_events: Any = msgspec.UNSET


_L2_DEEP = msgspec.json.Decoder(_L2Deep)
_C_SIDE, _C_PRICE, _C_QTY = itemgetter(0), itemgetter(1), itemgetter(2)


def _deep_l2(payload: str):
    """(messages, (price keys, n_bids)) of a deep ``l2_updates`` frame: the messages
    ``decode`` gives but with ``TextLevel``s; n_bids None unless the bids come first and no
    quantity is zero. None when anything is off: the general path then names the error."""
    try:
        d = _L2_DEEP.decode(payload)
    except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError):
        return None
    if d.type != "l2_updates":
        return None
    ch = d.changes
    try:
        sides = list(map(_SIDE.__getitem__, map(_C_SIDE, ch)))
    except KeyError:
        return None
    got = text_levels(sides, list(map(_C_PRICE, ch)), list(map(_C_QTY, ch)))
    if got is None:
        return None
    levels, keys, n_bids = got
    snap = d.trades is not msgspec.UNSET or d.auction_events is not msgspec.UNSET
    out: list[Message] = [BookMessage(type=d.type, instrument=d.symbol, snapshot=snap, levels=levels)]
    trades = d.trades
    if trades is not msgspec.UNSET and trades is not None:
        if type(trades) is not list:
            return None
        try:
            out.extend(_trade(t) for t in trades)
        except DecodeError:
            return None
    return out, (keys, n_bids)


class GeminiSession(BookSession):
    """Books per symbol; the first ``l2_updates`` for a symbol (and any later one that
    carries ``trades``/``auction_events``) replaces the book. With ``keep_books`` an
    ``l2_updates`` frame for another symbol gives its ``BookMessage`` without levels (and
    without the trades it carries)."""

    def feed(self, payload, frame_id: int | None = None):
        if _names_l2(payload):
            if self.kept is not None:
                try:
                    h = _L2_HEAD.decode(payload)
                except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError):
                    h = None  # the general path reports it
                if h is not None and h.type == "l2_updates" and h.symbol and h.symbol not in self.kept:
                    self.frames += 1
                    snap = h.trades is not _ABSENT or h.auction_events is not _ABSENT
                    return [BookMessage(type=h.type, instrument=h.symbol, snapshot=snap, levels=[])], []
            if type(payload) is str and len(payload) >= BULK_CHARS:
                deep = _deep_l2(payload)
                if deep is not None:
                    msgs, hint = deep
                    m = msgs[0]
                    if self.kept is None or m.instrument in self.kept:
                        self.frames += 1
                        findings: list = []
                        self._check_crossed(self._apply(m, [], hint), frame_id, findings)
                        return msgs, findings
        return super().feed(payload, frame_id)

    def _apply(self, m, touched, hint=None):
        """``hint``: (price keys, n_bids) of a bulk decode, for ``apply_snapshot``."""
        if self.kept is not None and not self._kept(m):
            return None
        b = self.book(m.instrument)
        if m.snapshot or not b.has_snapshot:
            if hint is not None:
                b.apply_snapshot(m.levels, m.venue_ts_ns, n_bids=hint[1], keys=hint[0])
            else:
                b.apply_snapshot(m.levels, m.venue_ts_ns)
        else:
            b.apply_levels(m.levels, m.venue_ts_ns)
        if not touched or touched[-1] is not b:
            touched.append(b)
        return b


VENUE = GeminiVenue(name=NAME, endpoints=ENDPOINTS, ws_path="/v2/marketdata", channels=("l2", "candles_1m"))
