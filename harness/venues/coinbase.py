"""Coinbase: Advanced Trade WebSocket (current) and Coinbase Exchange feed (legacy "Pro").

Both feeds are handled by one ``VENUE``; ``decode`` tells them apart by shape (Advanced
Trade frames carry ``"channel"``, Exchange frames a top-level ``"type"``).

Endpoints
- Advanced Trade: ``wss://advanced-trade-ws.coinbase.com`` (public market data; no sandbox).
- Exchange: ``wss://ws-feed.exchange.coinbase.com`` (a separate live feed; ``level2`` needs
  auth since 2023-08, ``level2_batch``/``ticker``/``matches``/``heartbeat`` do not);
  sandbox ``wss://ws-feed-public.sandbox.exchange.coinbase.com``.
- Dead: ``ws-feed.pro.coinbase.com`` / ``api.pro.coinbase.com`` (Coinbase Pro; the legacy
  recording was made there).

classify names
- Advanced Trade: ``<channel>/<event type>`` for channels whose events carry a type:
  ``l2_data/snapshot``, ``l2_data/update``, ``market_trades/snapshot``,
  ``market_trades/update``, ``ticker/snapshot``, ``ticker/update``, ``ticker_batch/...``,
  ``candles/snapshot``, ``candles/update``, ``status/...``; plain ``heartbeats`` and
  ``subscriptions``. ``error`` for ``{"type":"error"}``.
- Exchange: the ``type`` as sent: ``snapshot``, ``l2update``, ``ticker``, ``match``,
  ``last_match``, ``heartbeat``, ``subscriptions``, ``status``, ``error`` ...

Sequencing (``new_session()``)
- Advanced Trade: ``sequence_num`` counts every frame of the connection across all
  channels: it must go +1 per frame; a jump is a ``gap`` (lost data, the books are
  suspect), a repeat a ``duplicate``, a return to 0 a ``reset``.
- Exchange: ``sequence`` is per product and counts every order event on the venue, so
  ``ticker``/``match`` only see some numbers: gaps are normal there and only going
  backwards is reported (``out_of_order``, or ``duplicate`` for a repeated match).
  ``snapshot`` and ``l2update`` carry no sequence at all (checked on the 2021 recording):
  gaps in the level2 stream cannot be detected from the stream itself.

Speed: ``l2_data`` frames as sent (``{"channel":"l2_data",...``) take a hot path in
``classify`` and in the session (the in-order ``sequence_num`` checked inline, the
levels applied by ``L2Book.apply_levels``); the decode and every rule are the same as the general path's, which bytes
payloads and everything else take (tests/venues/test_hot_paths.py compares the two).
An event of ``BULK_LEVELS`` levels or more (a snapshot: 46,000 for BTC-USD) is converted
by C-level iteration (``_bulk_levels``) into the same Levels the per-level loop builds;
in a session, into ``TextLevel``s whose Decimals are made only when read.

``keep_books``: the session decodes ``l2_data`` frames with each event's ``updates`` left
as raw JSON and decodes only the kept products' levels; ``sequence_num`` is per
connection, so it is checked on every frame whatever its product (a 2.5 MB ETH-USD
snapshot nobody keeps costs ~1 ms instead of ~15 ms).

Trade side: both feeds send the maker's side; ``TradeMessage.side`` is the taker side
(inverted): a ``SELL`` print at the best ask was a taker buy.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Literal

import msgspec

from harness.errors import DecodeError
from harness.venues._json import (
    Command,
    DecCache,
    as_text,
    dumps,
    excerpt,
    loads,
    ns_to_rfc3339,
    parse_object,
    rfc3339_ns,
    str_list,
    str_value,
    typed_loads,
)
from harness.venues.base import (
    BookMessage,
    Endpoints,
    Level,
    Message,
    OtherMessage,
    TradeMessage,
    Venue,
    bids_first,
    text_levels,
)
from harness.venues.book import BookSession
from harness.venues.seq import ContiguousCounter, MonotonicTracker

NAME = "coinbase"

AT_WS = "wss://advanced-trade-ws.coinbase.com"
EXCHANGE_WS = "wss://ws-feed.exchange.coinbase.com"

ENDPOINTS = Endpoints(
    ws_prod=(AT_WS, EXCHANGE_WS, "wss://ws-direct.exchange.coinbase.com"),
    rest_prod=("https://api.coinbase.com/api/v3/brokerage", "https://api.exchange.coinbase.com"),
    ws_demo=("wss://ws-feed-public.sandbox.exchange.coinbase.com",),
    rest_demo=("https://api-public.sandbox.exchange.coinbase.com",),
    dead_hosts=(
        "ws-feed.pro.coinbase.com",
        "api.pro.coinbase.com",
        "ws-feed-public.sandbox.pro.coinbase.com",
        "api-public.sandbox.pro.coinbase.com",
    ),
)

AT_CHANNELS = ("level2", "market_trades", "ticker", "ticker_batch", "heartbeats", "candles", "status")
EXCHANGE_CHANNELS = ("level2", "level2_batch", "ticker", "ticker_batch", "matches", "heartbeat", "full", "status")

_BID_SIDES = {"bid": True, "buy": True, "offer": False, "ask": False, "sell": False}
_SIDE_NAME = {"bid": "bid", "buy": "bid", "offer": "ask", "ask": "ask", "sell": "ask"}
_TAKER = {"BUY": "sell", "SELL": "buy", "buy": "sell", "sell": "buy"}


# ----------------------------------------------------------------- typed wire shapes


class _ATUpdate(msgspec.Struct, gc=False):
    # event_time is left out: nothing uses it and skipping it saves a string per level;
    # side as a Literal: msgspec hands out the one interned name instead of a new string
    side: Literal["bid", "offer", "ask", "buy", "sell"]
    price_level: str
    new_quantity: str


class _ATTrade(msgspec.Struct):
    product_id: str
    price: str
    size: str
    trade_id: str = ""
    side: str = ""
    time: str = ""


class _ATEvent(msgspec.Struct, gc=False):
    type: str = ""
    product_id: str = ""
    updates: list[_ATUpdate] | None = None
    trades: list[_ATTrade] | None = None


class _ATFrame(msgspec.Struct, gc=False):
    channel: str
    timestamp: str = ""
    sequence_num: int | None = None
    events: list[_ATEvent] = []


_NO_RAW = msgspec.Raw()


class _ATEventRaw(msgspec.Struct, gc=False):
    """An ``l2_data`` event with its levels left as raw JSON (``keep_books``: the
    levels of products whose books are not kept are never decoded)."""

    type: str = ""
    product_id: str = ""
    updates: msgspec.Raw = _NO_RAW  # (msgspec takes no Raw | None)


class _ATFrameRaw(msgspec.Struct, gc=False):
    channel: str
    timestamp: str = ""
    sequence_num: int | None = None
    events: list[_ATEventRaw] = []


class _ExBook(msgspec.Struct):
    type: str
    product_id: str
    bids: list[tuple[str, str]] = []
    asks: list[tuple[str, str]] = []
    changes: list[tuple[str, str, str]] = []
    time: str = ""


class _ExMatch(msgspec.Struct):
    type: str
    product_id: str
    price: str
    size: str
    side: str = ""
    trade_id: int | str | None = None
    sequence: int | None = None
    time: str = ""


_P = DecCache(NAME)
_Q = DecCache(NAME, 50_000)

_AT_DEC = msgspec.json.Decoder(_ATFrame)
_AT_RAW_DEC = msgspec.json.Decoder(_ATFrameRaw)
_UPDATES_DEC = msgspec.json.Decoder(list[_ATUpdate])
_U_SIDE = attrgetter("side")
_U_PRICE = attrgetter("price_level")
_U_QTY = attrgetter("new_quantity")
BULK_LEVELS = 64  # an event with at least this many levels is converted in bulk


def _levels(updates: list[_ATUpdate], hints: dict | None = None) -> list[Level]:
    """``Level``s of one ``l2_data`` event, in wire order. With ``hints`` (a session's
    feed) a deep event's levels are ``TextLevel``s and a bulk conversion leaves
    ``hints[id(levels)] = (float keys of the prices, n_bids)`` for
    ``L2Book.apply_snapshot`` (n_bids None unless the bids come first and no quantity is
    zero)."""
    if len(updates) >= BULK_LEVELS:
        bulk = _bulk_levels(updates, hints is not None)
        if bulk is not None:
            levels, keys, n_bids = bulk
            if hints is not None:
                hints[id(levels)] = (keys, n_bids)
            return levels
    levels = []
    P, Q = _P, _Q
    pget, qget = _P._c.get, _Q._c.get
    for u in updates:
        side = _SIDE_NAME.get(u.side)
        if side is None:
            raise DecodeError(NAME, f"unknown side {u.side[:20]!r}")
        pt, qt = u.price_level, u.new_quantity
        p = pget(pt)
        if p is None:
            p = P(pt)
        q = qget(qt)
        if q is None:
            q = Q(qt)
        levels.append(Level(side, p, q, pt, qt))
    return levels


def _bulk_levels(updates: list[_ATUpdate], lazy: bool = False) -> tuple[list, list[float] | None, int | None] | None:
    """The same levels as the loop in ``_levels`` by C-level iteration (a 46,000-level
    snapshot: ~18 ms instead of ~60 ms); the price caches are bypassed (a snapshot's
    texts would only flush them). ``lazy``: ``TextLevel``s (``base.text_levels``: every
    text checked with ``float()`` instead of made a Decimal, ~12 ms less) and the prices'
    floats returned as the book's keys. None when anything is off: the loop then raises
    the error it names."""
    pts = list(map(_U_PRICE, updates))
    qts = list(map(_U_QTY, updates))
    try:
        names = list(map(_SIDE_NAME.__getitem__, map(_U_SIDE, updates)))
    except KeyError:
        return None
    if lazy:
        return text_levels(names, pts, qts)
    # What DecCache rejects after parsing, told from the text: every NaN and infinity
    # spelling has an n, a negative number a minus (an exponent's minus is only sent
    # to the loop).
    text = "".join(pts) + "".join(qts)
    if "-" in text or "n" in text or "N" in text:
        return None
    try:
        ps = list(map(Decimal, pts))
        qs = list(map(Decimal, qts))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return list(map(Level, names, ps, qs, pts, qts)), None, bids_first(names, all(qs))


_L2_PREFIX = '{"channel":"l2_data"'  # an Advanced Trade book frame as Coinbase sends it
_EX_BOOK_DEC = msgspec.json.Decoder(_ExBook)
_EX_MATCH_DEC = msgspec.json.Decoder(_ExMatch)


def _head(payload) -> str:
    h = payload[:96]
    return h if isinstance(h, str) else bytes(h).decode("utf-8", "replace")


class CoinbaseVenue(Venue):
    # ------------------------------------------------------------- classify

    def classify(self, payload: str | bytes) -> str | None:
        if type(payload) is str and payload.startswith(_L2_PREFIX):
            # the bulk of a feed; the general scan below with the channel name known
            ev = payload.find('"events":[{"type":"', 19, 139)
            if ev > 0:
                return "l2_data/" + payload[ev + 19 : payload.find('"', ev + 19)]
        try:
            s = as_text(payload)
        except Exception:  # noqa: BLE001 - classify never raises
            return None
        try:
            if s.startswith('{"channel":"'):  # fast path: Advanced Trade as sent
                j = s.find('"', 12)
                ch = s[12:j]
                if ch in ("heartbeats", "subscriptions"):
                    return ch
                ev = s.find('"events":[{"type":"', j, j + 120)
                if ev > 0:
                    k = s.find('"', ev + 19)
                    return ch + "/" + s[ev + 19 : k]
            elif s.startswith('{"type":"'):  # fast path: Exchange as sent
                j = s.find('"', 9)
                if j > 0:
                    return s[9:j]
            if not s.lstrip()[:1] == "{":
                return None
            head = s[:96]
            ch = str_value(head, "channel") if '"channel"' in head else None
            if ch is None and '"type"' not in head:
                ch = str_value(s, "channel")
            if ch is not None:
                if ch in ("heartbeats", "subscriptions"):
                    return ch
                ev = s.find('"events"')
                if ev >= 0:
                    t = str_value(s, "type", ev, ev + 200)
                    if t:
                        return f"{ch}/{t}"
                return ch
            return str_value(head, "type") or str_value(s, "type")
        except Exception:  # noqa: BLE001
            return None

    # ------------------------------------------------------------- decode

    def decode(self, payload: str | bytes) -> list[Message]:
        return self._decode(payload)[0]

    def _decode(self, payload) -> tuple[list[Message], tuple | None]:
        """Messages plus the frame's sequence info: ('at', sequence_num) or
        ('ex', product_id, group, sequence) or None."""
        try:
            head = _head(payload)
        except TypeError:
            raise DecodeError(NAME, "payload must be str or bytes") from None
        if head.startswith('{"channel":"'):
            ch = head[12 : head.find('"', 12)]
        else:
            ch = str_value(head, "channel") if '"channel"' in head else None
        if ch in ("l2_data", "market_trades"):
            return self._at_typed(typed_loads(NAME, _AT_DEC, payload))
        ty = str_value(head, "type") if ch is None and head.startswith('{"type"') else None
        if ty in ("snapshot", "l2update"):
            return self._ex_book(typed_loads(NAME, _EX_BOOK_DEC, payload)), None
        if ty in ("match", "last_match"):
            return self._ex_match(typed_loads(NAME, _EX_MATCH_DEC, payload))
        obj = loads(NAME, payload)
        return self._decode_obj(obj, payload)

    def _decode_obj(self, obj, payload) -> tuple[list[Message], tuple | None]:
        if not isinstance(obj, dict):
            raise DecodeError(NAME, "frame is not a JSON object", excerpt(payload))
        try:
            if "channel" in obj:
                ch = obj["channel"]
                if ch in ("l2_data", "market_trades"):
                    return self._at_typed(msgspec.convert(obj, _ATFrame))
                return self._at_other(obj)
            ty = obj.get("type")
            if not isinstance(ty, str):
                raise DecodeError(NAME, "frame has neither 'channel' nor 'type'", excerpt(payload))
            if ty in ("snapshot", "l2update"):
                return self._ex_book(msgspec.convert(obj, _ExBook)), None
            if ty in ("match", "last_match"):
                return self._ex_match(msgspec.convert(obj, _ExMatch))
        except msgspec.ValidationError as e:
            raise DecodeError(NAME, f"bad frame: {e}", excerpt(payload)) from None
        ts = obj.get("time")
        m = OtherMessage(type=ty, data=obj, venue_ts_ns=rfc3339_ns(NAME, ts) if isinstance(ts, str) else None)
        seq = obj.get("sequence")
        pid = obj.get("product_id")
        if type(seq) is int and isinstance(pid, str) and ty in ("ticker", "heartbeat"):
            return [m], ("ex", pid, ty, seq)
        return [m], None

    # Advanced Trade -------------------------------------------------------------

    def _at_typed(self, f: _ATFrame, hints: dict | None = None) -> tuple[list[Message], tuple | None]:
        ts = rfc3339_ns(NAME, f.timestamp) if f.timestamp else None
        out: list[Message] = []
        seq = f.sequence_num
        if f.channel == "l2_data":
            for ev in f.events:
                ups = ev.updates
                if ups is None or not ev.product_id:
                    raise DecodeError(NAME, "l2_data event without product_id/updates")
                levels = _levels(ups, hints)
                out.append(
                    BookMessage(
                        type="l2_data/" + ev.type,
                        venue_ts_ns=ts,
                        instrument=ev.product_id,
                        snapshot=ev.type == "snapshot",
                        levels=levels,
                        sequence=seq,
                    )
                )
        else:
            for ev in f.events:
                name = "market_trades/" + ev.type
                for t in ev.trades or ():
                    out.append(
                        TradeMessage(
                            type=name,
                            venue_ts_ns=rfc3339_ns(NAME, t.time) if t.time else ts,
                            instrument=t.product_id,
                            price=_P(t.price),
                            size=_Q(t.size),
                            side=_TAKER.get(t.side),
                            trade_id=t.trade_id or None,
                        )
                    )
        return out, (("at", seq) if seq is not None else None)

    def _at_kept(self, f: _ATFrameRaw, kept: frozenset, hints: dict) -> tuple[list[Message], tuple | None]:
        """``_at_typed`` for an ``l2_data`` frame decoded with raw levels: only the kept
        products' levels are decoded; the others' messages carry ``levels == []``."""
        ts = rfc3339_ns(NAME, f.timestamp) if f.timestamp else None
        out: list[Message] = []
        seq = f.sequence_num
        for ev in f.events:
            if ev.updates is _NO_RAW or not ev.product_id or memoryview(ev.updates)[:4] == b"null":
                raise DecodeError(NAME, "l2_data event without product_id/updates")
            levels = _levels(typed_loads(NAME, _UPDATES_DEC, ev.updates), hints) if ev.product_id in kept else []
            out.append(
                BookMessage(
                    type="l2_data/" + ev.type,
                    venue_ts_ns=ts,
                    instrument=ev.product_id,
                    snapshot=ev.type == "snapshot",
                    levels=levels,
                    sequence=seq,
                )
            )
        return out, (("at", seq) if seq is not None else None)

    def _at_other(self, obj: dict) -> tuple[list[Message], tuple | None]:
        ch = obj.get("channel")
        if not isinstance(ch, str):
            raise DecodeError(NAME, "'channel' is not a string")
        name = ch
        evs = obj.get("events")
        if ch not in ("heartbeats", "subscriptions") and isinstance(evs, list) and evs and isinstance(evs[0], dict):
            t = evs[0].get("type")
            if isinstance(t, str):
                name = f"{ch}/{t}"
        ts = obj.get("timestamp")
        seq = obj.get("sequence_num")
        m = OtherMessage(type=name, data=obj, venue_ts_ns=rfc3339_ns(NAME, ts) if isinstance(ts, str) else None)
        return [m], (("at", seq) if type(seq) is int else None)

    # Exchange -------------------------------------------------------------------

    def _ex_book(self, f: _ExBook) -> list[Message]:
        P, Q = _P, _Q
        levels = []
        if f.type == "snapshot":
            for pt, qt in f.bids:
                levels.append(Level("bid", P(pt), Q(qt), pt, qt))
            for pt, qt in f.asks:
                levels.append(Level("ask", P(pt), Q(qt), pt, qt))
        else:
            for side, pt, qt in f.changes:
                isb = _BID_SIDES.get(side)
                if isb is None:
                    raise DecodeError(NAME, f"unknown side {side[:20]!r}")
                levels.append(Level("bid" if isb else "ask", P(pt), Q(qt), pt, qt))
        ts = rfc3339_ns(NAME, f.time) if f.time else None
        return [
            BookMessage(type=f.type, venue_ts_ns=ts, instrument=f.product_id, snapshot=f.type == "snapshot", levels=levels)
        ]

    def _ex_match(self, f: _ExMatch) -> tuple[list[Message], tuple | None]:
        m = TradeMessage(
            type=f.type,
            venue_ts_ns=rfc3339_ns(NAME, f.time) if f.time else None,
            instrument=f.product_id,
            price=_P(f.price),
            size=_Q(f.size),
            side=_TAKER.get(f.side),
            trade_id=None if f.trade_id is None else str(f.trade_id),
        )
        return [m], (("ex", f.product_id, "match", f.sequence) if f.sequence is not None else None)

    # ------------------------------------------------------------- sessions/commands

    def new_session(self) -> CoinbaseSession:
        return CoinbaseSession(self)

    def subscribe_frames(self, channels: list[str], instruments: list[str], *, feed: str = "advanced_trade") -> list[str]:
        """Advanced Trade: one frame per channel (``heartbeats`` without products);
        ``feed="exchange"``: one frame with all channels."""
        return self._sub("subscribe", channels, instruments, feed)

    def unsubscribe_frames(self, channels: list[str], instruments: list[str], *, feed: str = "advanced_trade") -> list[str]:
        return self._sub("unsubscribe", channels, instruments, feed)

    def _sub(self, action: str, channels, instruments, feed: str) -> list[str]:
        if feed == "exchange":
            return [dumps({"type": action, "product_ids": list(instruments), "channels": list(channels)})]
        if feed != "advanced_trade":
            raise ValueError(f"feed must be 'advanced_trade' or 'exchange', not {feed!r}")
        out = []
        for ch in channels:
            if ch == "heartbeats":
                out.append(dumps({"type": action, "channel": ch}))
            else:
                out.append(dumps({"type": action, "product_ids": list(instruments), "channel": ch}))
        return out

    def heartbeat_subscribe_frame(self) -> str:
        """Advanced Trade: subscribe to ``heartbeats`` or idle channels close after 60-90 s."""
        return dumps({"type": "subscribe", "channel": "heartbeats"})

    def parse_command(self, text: str | bytes) -> Command:
        obj = parse_object(NAME, text)
        action = obj.get("type")
        if not isinstance(action, str) or not action:
            raise DecodeError(NAME, "client frame has no 'type'", excerpt(text))
        instruments = str_list(NAME, obj.get("product_ids"), "product_ids")
        if "channel" in obj:
            ch = obj["channel"]
            if not isinstance(ch, str):
                raise DecodeError(NAME, "'channel' must be a string")
            return Command(action=action, channels=[ch], instruments=instruments, params={"feed": "advanced_trade"}, raw=obj)
        chans = obj.get("channels")
        names: list[str] = []
        if chans is not None:
            if not isinstance(chans, list):
                raise DecodeError(NAME, "'channels' must be a list")
            for c in chans:
                if isinstance(c, str):
                    names.append(c)
                elif isinstance(c, dict) and isinstance(c.get("name"), str):
                    names.append(c["name"])
                    for p in str_list(NAME, c.get("product_ids"), "product_ids"):
                        if p not in instruments:
                            instruments.append(p)
                else:
                    raise DecodeError(NAME, "bad entry in 'channels'")
        if action in ("subscribe", "unsubscribe") and not names:
            raise DecodeError(NAME, f"{action} without channel(s)", excerpt(text))
        return Command(action=action, channels=names, instruments=instruments, params={"feed": "exchange"}, raw=obj)

    def subscriptions_frame(self, subs: dict[str, list[str]], *, sequence_num: int, ts_ns: int) -> str:
        """Advanced Trade ``subscriptions`` ack: the full current subscription map."""
        return dumps(
            {
                "channel": "subscriptions",
                "client_id": "",
                "timestamp": ns_to_rfc3339(ts_ns),
                "sequence_num": sequence_num,
                "events": [{"subscriptions": {k: list(v) for k, v in subs.items()}}],
            }
        )

    def exchange_subscriptions_frame(self, subs: dict[str, list[str]]) -> str:
        """Exchange ``subscriptions`` ack."""
        return dumps({"type": "subscriptions", "channels": [{"name": k, "product_ids": list(v)} for k, v in subs.items()]})


class CoinbaseSession(BookSession):
    """Books per product plus the sequencing rules in the module docstring.

    ``seq_at`` (``ContiguousCounter``, key ``sequence_num``) and ``seq_ex``
    (``MonotonicTracker`` per ``product/group``) are exposed for inspection.
    """

    def __init__(self, venue: CoinbaseVenue):
        super().__init__(venue)
        self.seq_at = ContiguousCounter(reset_value=0)
        self.seq_ex = MonotonicTracker(strict=False)
        self._ex_match = MonotonicTracker(strict=True)

    def _feed_general(self, payload, frame_id: int | None = None):
        """``feed`` for everything but ``l2_data`` frames as sent."""
        msgs, seqinfo = self.venue._decode(payload)
        self.frames += 1
        findings: list = []
        if seqinfo is not None:
            if seqinfo[0] == "at":
                f = self.seq_at.check("sequence_num", seqinfo[1], frame_id)
                if f is not None:
                    findings.append(f)
            else:
                _, pid, group, n = seqinfo
                tr = self._ex_match if group == "match" else self.seq_ex
                f = tr.check(f"{pid}/{group}", n, frame_id)
                if f is not None:
                    findings.append(f)
        touched: list = []
        for m in msgs:
            if m.__class__ is BookMessage:
                self._apply(m, touched)
        for b in touched:
            self._check_crossed(b, frame_id, findings)
        return msgs, findings

    def feed(self, payload, frame_id: int | None = None):
        """The hot path first: an Advanced Trade ``l2_data`` frame as sent. The same decode
        as ``_decode`` (so the same messages and errors) and the same rules as
        ``_feed_general``, with the in-order sequence number and the book updates handled
        inline. With ``keep_books`` the levels of the other products are skipped
        undecoded."""
        if type(payload) is not str or not payload.startswith(_L2_PREFIX):
            return self._feed_general(payload, frame_id)
        kept = self.kept
        hints: dict = {}
        if kept is None:
            try:  # typed_loads, inline
                f = _AT_DEC.decode(payload)
            except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError) as e:
                raise DecodeError(NAME, f"bad frame: {e}", excerpt(payload)) from None
            if f.channel != "l2_data":  # a second "channel" key later in the frame: decode() reads that one
                return self._feed_general(payload, frame_id)
            msgs, seqinfo = self.venue._at_typed(f, hints)
        else:
            f = self._kept_typed(payload, kept)
            if f is not None:
                msgs, seqinfo = self.venue._at_typed(f, hints)
            else:
                raw = typed_loads(NAME, _AT_RAW_DEC, payload)
                if raw.channel != "l2_data":
                    return self._feed_general(payload, frame_id)
                msgs, seqinfo = self.venue._at_kept(raw, kept, hints)
        self.frames += 1
        findings: list = []
        if seqinfo is not None:
            n = seqinfo[1]
            seen = self.seq_at._last
            last = seen.get("sequence_num")
            if last is not None and n == last + 1:
                seen["sequence_num"] = n  # in order: all ContiguousCounter.check would do
            else:
                f = self.seq_at.check("sequence_num", n, frame_id)
                if f is not None:
                    findings.append(f)
        books = self.books
        touched: list = []
        for m in msgs:
            b = books.get(m.instrument)
            if b is None:
                if kept is not None and m.instrument not in kept:
                    continue
                b = self.book(m.instrument)
            if m.snapshot:
                keys, n_bids = hints.get(id(m.levels), (None, None))
                b.apply_snapshot(m.levels, m.venue_ts_ns, n_bids=n_bids, keys=keys)
            else:
                b.apply_levels(m.levels, m.venue_ts_ns)
            if not touched or touched[-1] is not b:
                touched.append(b)
        for b in touched:
            bl, al = b._bp._lists, b._ap._lists
            if (bl and al and bl[-1][-1] >= al[0][0]) or b.instrument in self._crossed:
                self._check_crossed(b, frame_id, findings)
        return msgs, findings

    @staticmethod
    def _kept_typed(payload: str, kept: frozenset) -> _ATFrame | None:
        """The frame decoded whole when all its events are for kept products (the usual
        frame: one event, its product named at the start), else None: ``_at_kept`` then
        decodes it with the other products' levels left raw, and names any error. This
        spares a kept product's snapshot a second pass (the raw one) over its 5 MB."""
        i = payload.find('"product_id":"', 40, 240)
        if i < 0 or payload[i + 14 : payload.find('"', i + 14)] not in kept:
            return None
        try:
            f = _AT_DEC.decode(payload)
        except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError):
            return None
        return f if f.channel == "l2_data" and all(ev.product_id in kept for ev in f.events) else None

    def reset(self) -> None:
        super().reset()
        self.seq_at.forget()
        self.seq_ex.forget()
        self._ex_match.forget()


VENUE = CoinbaseVenue(name=NAME, endpoints=ENDPOINTS, ws_path="/", channels=AT_CHANNELS)
