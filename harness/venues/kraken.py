"""Kraken spot WebSocket: v2 (``wss://ws.kraken.com/v2``, objects) and v1
(``wss://ws.kraken.com``, arrays; the real recording is v1). One ``VENUE`` decodes both.

classify names
- v2: ``<channel>/<type>`` for data channels: ``book/snapshot``, ``book/update``,
  ``trade/snapshot``, ``trade/update``, ``ticker/snapshot``, ``ticker/update``,
  ``ohlc/...``, ``level3/...``, ``instrument/...``; plain ``status`` and ``heartbeat``;
  method replies by method: ``subscribe``, ``unsubscribe``, ``pong``.
- v1 arrays: ``book/snapshot`` (keys ``as``/``bs``), ``book/update`` (``a``/``b``/``c``),
  ``trade``, ``ticker``, ``spread``, ``ohlc``; v1 events by ``event``: ``heartbeat``,
  ``systemStatus``, ``subscriptionStatus``, ``pong``, ``error``.

Decoding keeps every price and quantity's wire text: v1 sends strings; v2 sends JSON
numbers, which are decoded with a float hook that returns the raw text (``0.10000000``
stays ``"0.10000000"``). Instruments keep Kraken's names (``XBT/USD`` in v1, ``BTC/USD``
in v2). v1 level timestamps are seconds as decimal text, converted exactly; a book
message's ``venue_ts_ns`` is the latest level timestamp (v2: the ``timestamp`` field).

Checksum (``checksum(book)``): CRC32 over the top 10 asks ascending then the top 10 bids
descending, each level's price text then qty text with ``.`` removed and leading zeros
stripped. The session applies all levels of a message (qty 0 deletes), truncates the book
to the subscribed depth (v1: from ``book-N`` in every message; v2: from the subscribe
ack, default 10), then compares with ``c`` (v1) / ``checksum`` (v2); a mismatch is a
``checksum`` finding. v1 snapshots carry no checksum; v2 snapshots do.

Speed (the session runs this on every update of a live feed): the common v1 update
(one side, a ``c``, plain strings) is decoded by a strict msgspec shape (``_V1Update``)
into the same ``BookMessage`` ``decode`` builds; anything else takes the general path.
The session keeps, per book, the stripped text of each level and the CRC of the ask text
and the bid text with the 10th price bounding each; a message drops a side only when it
changes a level at or better than that price (most updates touch one side), and
everything is dropped when the book's ``version`` shows a change made elsewhere.
tests/venues/test_hot_paths.py holds it equal to the typed path and ``checksum()``.
The session's books keep Decimal keys (``L2Book(float_keys=False)``): they are small and
their prices come from the text -> Decimal cache, so each is hashed once anyway.

``keep_books``: a v1 book frame for another pair is told from its last two strings and
returns a level-free ``BookMessage`` (no time, no checksum) without being decoded; v2
frames are decoded and their levels dropped.
"""

from __future__ import annotations

import zlib

import msgspec
from msgspec import UNSET, UnsetType

from harness.errors import DecodeError
from harness.venues._json import (
    Command,
    DecCache,
    as_text,
    decimal_seconds_ns,
    dumps,
    excerpt,
    loads_numtext,
    ns_to_rfc3339,
    parse_object,
    rfc3339_ns,
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
    SeqFinding,
    TradeMessage,
    Venue,
)
from harness.venues.book import BookSession, L2Book

NAME = "kraken"
WS_V2 = "wss://ws.kraken.com/v2"
WS_V1 = "wss://ws.kraken.com"

ENDPOINTS = Endpoints(
    ws_prod=(WS_V2, WS_V1, "wss://ws-auth.kraken.com/v2", "wss://ws-auth.kraken.com"),
    rest_prod=("https://api.kraken.com/0",),
)

DEFAULT_DEPTH = 10
CHECKSUM_LEVELS = 10

_P = DecCache(NAME)
_Q = DecCache(NAME, 50_000)


def _strip(t: str) -> str:
    return t.replace(".", "").lstrip("0")


def checksum_text(book: L2Book, n: int = CHECKSUM_LEVELS) -> str:
    """The string Kraken's CRC32 is computed over (for debugging a mismatch)."""
    parts = []
    for lv in book.top_levels(False, n):
        parts.append(_strip(lv.price_text) + _strip(lv.qty_text))
    for lv in book.top_levels(True, n):
        parts.append(_strip(lv.price_text) + _strip(lv.qty_text))
    return "".join(parts)


def checksum(book: L2Book, n: int = CHECKSUM_LEVELS) -> int:
    """Kraken CRC32 of a book built from wire text (v1 ``c`` and v2 ``checksum``). Each
    level's stripped text is kept in ``book.cache`` (per side key -> (entry, fragment)), so a
    level is re-stripped only when its entry changed. (A session does not call this on
    every update: it keeps the pieces between messages, see ``_TopCache``.)"""
    cache = book.cache
    if type(cache) is not tuple or len(cache[0]) + len(cache[1]) > 2 * len(book) + 64:
        cache = book.cache = ({}, {})
    asks, bids = cache
    parts = []
    ap = book._ap._lists  # SortedList internals: the first sublist holds the best asks
    keys = ap[0][:n] if ap and len(ap[0]) >= n else book._ap[:n]
    ad = book._ad
    for k in keys:
        e = ad[k]
        hit = asks.get(k)
        if hit is None or hit[0] is not e:
            hit = asks[k] = (e, e.price_text.replace(".", "").lstrip("0") + e.qty_text.replace(".", "").lstrip("0"))
        parts.append(hit[1])
    bp = book._bp._lists
    if bp and len(bp[-1]) >= n:
        keys = bp[-1][-n:]
    else:
        m = len(book._bp)
        keys = book._bp[m - n :] if m > n else list(book._bp)
    bd = book._bd
    for k in reversed(keys):
        e = bd[k]
        hit = bids.get(k)
        if hit is None or hit[0] is not e:
            hit = bids[k] = (e, e.price_text.replace(".", "").lstrip("0") + e.qty_text.replace(".", "").lstrip("0"))
        parts.append(hit[1])
    return zlib.crc32("".join(parts).encode("ascii", "replace"))


class _Fragments(dict):
    """price -> checksum fragment (ASCII bytes) for one side of one book, filled on first
    use from the book's entry. The session drops a price's fragment whenever it changes
    that level, and clears the lot when the book changed behind its back."""

    __slots__ = ("book", "is_bid")

    def __init__(self, book: L2Book, is_bid: bool):
        super().__init__()
        self.book = book
        self.is_bid = is_bid

    def __missing__(self, p) -> bytes:
        e = (self.book._bd if self.is_bid else self.book._ad)[p]
        f = (e.price_text.replace(".", "").lstrip("0") + e.qty_text.replace(".", "").lstrip("0")).encode(
            "ascii", "replace"
        )
        self[p] = f
        return f


class _TopCache:
    """One book's checksum state kept between messages: per-level fragments, the CRC of
    the ask text and the bid text, each with the n-th best price that bounds it (``None``:
    recompute). Valid while ``version`` equals the book's; a message that changes a level
    at or better than a side's edge drops that side (most Kraken updates touch one side
    only, so the other side's text is reused)."""

    __slots__ = ("version", "ask_crc", "ask_edge", "bid_text", "bid_edge", "ask_frags", "bid_frags")

    def __init__(self, book: L2Book) -> None:
        self.version = -1
        self.ask_crc: int | None = None
        self.ask_edge = None
        self.bid_text: bytes | None = None
        self.bid_edge = None
        self.ask_frags = _Fragments(book, False)
        self.bid_frags = _Fragments(book, True)

    def forget(self) -> None:
        self.ask_crc = self.bid_text = None
        self.ask_frags.clear()
        self.bid_frags.clear()

    def checksum(self, book: L2Book, n: int = CHECKSUM_LEVELS) -> int:
        crc = self.ask_crc
        if crc is None:
            lists = book._ap._lists
            prices = lists[0][:n] if lists and len(lists[0]) >= n else book._ap[:n]
            crc = self.ask_crc = zlib.crc32(b"".join(map(self.ask_frags.__getitem__, prices)))
            self.ask_edge = prices[-1] if len(prices) == n else None
        bt = self.bid_text
        if bt is None:
            lists = book._bp._lists
            if lists and len(lists[-1]) >= n:
                prices = lists[-1][-n:]
            else:
                k = len(book._bp)
                prices = book._bp[k - n :] if k > n else list(book._bp)
            bt = self.bid_text = b"".join(map(self.bid_frags.__getitem__, reversed(prices)))
            self.bid_edge = prices[0] if len(prices) == n else None
        return zlib.crc32(bt, crc)

    def truncated(self, book: L2Book) -> None:
        """After ``book.truncate()`` dropped levels: their fragments linger (a price that
        comes back is re-stripped anyway); bound how many."""
        self.ask_crc = self.bid_text = None
        if len(self.ask_frags) > 2 * len(book._ap) + 64:
            self.ask_frags.clear()
        if len(self.bid_frags) > 2 * len(book._bp) + 64:
            self.bid_frags.clear()


def _v1_levels(venue_levels, side: str, out: list, ts_max: int) -> int:
    if type(venue_levels) is not list:
        raise DecodeError(NAME, "book levels must be a list")
    pget, qget = _P._c.get, _Q._c.get
    for lv in venue_levels:
        if type(lv) is not list or len(lv) < 3:
            raise DecodeError(NAME, "book level must be [price, volume, timestamp(, 'r')]")
        pt, qt, tt = lv[0], lv[1], lv[2]
        if type(pt) is not str or type(qt) is not str:
            raise DecodeError(NAME, "v1 book price/volume must be strings")
        p = pget(pt)
        if p is None:
            p = _P(pt)
        q = qget(qt)
        if q is None:
            q = _Q(qt)
        out.append(Level(side, p, q, pt, qt))
        ts = decimal_seconds_ns(NAME, tt)
        if ts > ts_max:
            ts_max = ts
    return ts_max


class _V1Update(msgspec.Struct, forbid_unknown_fields=True):
    """The object of the common v1 book update, ``{"a": [...], "c": "..."}`` (or ``"b"``).
    Anything else (snapshots, both sides, republished ``"r"`` levels, numbers where
    strings belong, null) does not fit and takes the general path, which accepts or
    rejects it as before."""

    a: list[tuple[str, str, str]] | UnsetType = UNSET
    b: list[tuple[str, str, str]] | UnsetType = UNSET
    c: str | UnsetType = UNSET


_V1_UPDATE = msgspec.json.Decoder(tuple[int, _V1Update, str, str])

_DEPTH_OF: dict[str, int | None] = {}  # v1 channel name -> depth ("book-1000" -> 1000)
_UNSEEN = object()


def _v1_depth(cname: str) -> int | None:
    """The depth a v1 book channel name carries (``book-25`` -> 25, ``book`` -> None).
    Cached: a connection uses one or two names, and this runs on every book frame."""
    if cname in _DEPTH_OF:
        return _DEPTH_OF[cname]
    depth = None
    if cname.startswith("book-"):
        d = cname[5:]
        if not d.isdigit() or not d.isascii() or len(d) > 6:
            raise DecodeError(NAME, f"bad book channel name {cname[:30]!r}")
        depth = int(d)
        if depth < 1:
            raise DecodeError(NAME, f"bad book depth in {cname[:30]!r}")
    if len(_DEPTH_OF) < 256:
        _DEPTH_OF[cname] = depth
    return depth


def _v2_levels(entries, side: str, out: list) -> None:
    if not isinstance(entries, list):
        raise DecodeError(NAME, "book side must be a list")
    for e in entries:
        if type(e) is not dict:
            raise DecodeError(NAME, "v2 book level must be an object")
        pt = text_of(NAME, e.get("price"))
        qt = text_of(NAME, e.get("qty"))
        out.append(Level(side, _P(pt), _Q(qt), pt, qt))


class KrakenVenue(Venue):
    # ------------------------------------------------------------- classify

    def classify(self, payload: str | bytes) -> str | None:
        if type(payload) is str and payload[:1] == "[" and payload[-2:] == '"]':
            # v1 arrays as sent (most of a v1 feed): what _classify_v1_array does, in one
            # split: [..., channel name, ",", pair, "]"]
            parts = payload.rsplit('"', 4)
            if len(parts) != 5 or parts[2] != ",":
                return None
            name = parts[1]
            if name[:4] == "book":
                head = payload[:64]
                return "book/snapshot" if ('"as":' in head or '"bs":' in head) else "book/update"
            return "ohlc" if name[:4] == "ohlc" else name
        try:
            s = as_text(payload)
            if s[:1] == "[":
                return self._classify_v1_array(s)
            if s[:1] != "{":
                t = s.lstrip()
                if t[:1] == "[":
                    return self._classify_v1_array(t)
                if t[:1] != "{":
                    return None
                s = t
            if s.startswith('{"channel":"'):
                j = s.find('"', 12)
                ch = s[12:j]
                if ch in ("status", "heartbeat"):
                    return ch
                if s.startswith(',"type":"', j + 1):
                    k = s.find('"', j + 10)
                    return ch + "/" + s[j + 10 : k]
            ch = top_level_str_value(s, "channel")
            if ch is not None:
                if ch in ("status", "heartbeat"):
                    return ch
                t = top_level_str_value(s, "type")
                return f"{ch}/{t}" if t else ch
            m = top_level_str_value(s, "method")
            if m is not None:
                return m
            return top_level_str_value(s, "event")
        except Exception:  # noqa: BLE001 - classify never raises
            return None

    @staticmethod
    def _classify_v1_array(s: str) -> str | None:
        t = s.rstrip()
        if not t.endswith('"]'):
            return None
        a = t.rfind('"', 0, len(t) - 2)  # opening quote of the pair
        if a < 3 or t[a - 2 : a] != '",':
            return None
        b = t.rfind('"', 0, a - 2)  # opening quote of the channel name
        if b < 0:
            return None
        name = t[b + 1 : a - 2]
        if name.startswith("book"):
            head = t[:64]
            return "book/snapshot" if ('"as":' in head or '"bs":' in head) else "book/update"
        if name.startswith("ohlc"):
            return "ohlc"
        return name

    # ------------------------------------------------------------- decode

    def decode(self, payload: str | bytes) -> list[Message]:
        return self._decode(payload)[0]

    def _decode(self, payload) -> tuple[list[Message], int | None]:
        """Messages plus, for v1 book frames, the depth named by the channel (``book-N``)."""
        obj = loads_numtext(NAME, payload)
        if type(obj) is list:
            return self._decode_v1(obj, payload)
        if type(obj) is not dict:
            raise DecodeError(NAME, "frame is neither an array (v1) nor an object", excerpt(payload))
        return self._decode_v2(obj, payload), None

    def _decode_v1(self, a: list, payload) -> tuple[list[Message], int | None]:
        if len(a) < 4 or type(a[-2]) is not str or type(a[-1]) is not str:
            raise DecodeError(NAME, "v1 array must be [channelID, data..., channelName, pair]", excerpt(payload))
        cname, pair = a[-2], a[-1]
        body = a[1:-2]
        if cname.startswith("book"):
            depth = _v1_depth(cname)
            levels: list = []
            ts = 0
            snap = False
            csum = None
            for part in body:
                if type(part) is not dict:
                    raise DecodeError(NAME, "v1 book payload must be objects")
                for k, v in part.items():
                    if k == "a":
                        ts = _v1_levels(v, "ask", levels, ts)
                    elif k == "b":
                        ts = _v1_levels(v, "bid", levels, ts)
                    elif k == "as":
                        snap = True
                        ts = _v1_levels(v, "ask", levels, ts)
                    elif k == "bs":
                        snap = True
                        ts = _v1_levels(v, "bid", levels, ts)
                    elif k == "c":
                        if type(v) is not str or not v.isdigit() or not v.isascii() or len(v) > 10:
                            raise DecodeError(NAME, f"bad checksum {str(v)[:20]!r}")
                        csum = int(v)
            m = BookMessage(
                type="book/snapshot" if snap else "book/update",
                venue_ts_ns=ts or None,
                instrument=pair,
                snapshot=snap,
                levels=levels,
                checksum=csum,
            )
            return [m], depth
        if cname == "trade":
            if len(body) != 1 or type(body[0]) is not list:
                raise DecodeError(NAME, "v1 trade payload must be one list")
            out: list[Message] = []
            for t in body[0]:
                if type(t) is not list or len(t) < 4:
                    raise DecodeError(NAME, "v1 trade must be [price, volume, time, side, ...]")
                side = {"b": "buy", "s": "sell"}.get(t[3]) if type(t[3]) is str else None
                out.append(
                    TradeMessage(
                        type="trade",
                        venue_ts_ns=decimal_seconds_ns(NAME, t[2]),
                        instrument=pair,
                        price=_P(text_of(NAME, t[0])),
                        size=_Q(text_of(NAME, t[1])),
                        side=side,
                    )
                )
            return out, None
        name = "ohlc" if cname.startswith("ohlc") else cname
        return [OtherMessage(type=name, data={"channelID": a[0], "channelName": cname, "pair": pair, "data": body})], None

    def _decode_v2(self, obj: dict, payload) -> list[Message]:
        ch = obj.get("channel")
        if ch is None:
            if "method" in obj:
                name = obj["method"]
            elif "event" in obj:
                name = obj["event"]
            else:
                raise DecodeError(NAME, "object has no channel/method/event", excerpt(payload))
            if type(name) is not str:
                raise DecodeError(NAME, "method/event must be a string")
            return [OtherMessage(type=name, data=obj)]
        if type(ch) is not str:
            raise DecodeError(NAME, "'channel' must be a string")
        typ = obj.get("type")
        if typ is not None and type(typ) is not str:
            raise DecodeError(NAME, "'type' must be a string")
        name = ch if (ch in ("status", "heartbeat") or not typ) else f"{ch}/{typ}"
        data = obj.get("data")
        if ch == "book":
            if type(data) is not list:
                raise DecodeError(NAME, "book 'data' must be a list")
            out: list[Message] = []
            for d in data:
                if type(d) is not dict or type(d.get("symbol")) is not str:
                    raise DecodeError(NAME, "book data entry needs a symbol")
                levels: list = []
                _v2_levels(d.get("bids", []), "bid", levels)
                _v2_levels(d.get("asks", []), "ask", levels)
                cs = d.get("checksum")
                if cs is not None and (type(cs) is not int or not 0 <= cs < 2**32):
                    raise DecodeError(NAME, f"bad checksum {str(cs)[:20]!r}")
                ts = d.get("timestamp")
                out.append(
                    BookMessage(
                        type=name,
                        venue_ts_ns=rfc3339_ns(NAME, ts) if ts is not None else None,
                        instrument=d["symbol"],
                        snapshot=typ == "snapshot",
                        levels=levels,
                        checksum=cs,
                    )
                )
            return out
        if ch == "trade":
            if type(data) is not list:
                raise DecodeError(NAME, "trade 'data' must be a list")
            out = []
            for t in data:
                if type(t) is not dict or type(t.get("symbol")) is not str:
                    raise DecodeError(NAME, "trade entry needs a symbol")
                ts = t.get("timestamp")
                tid = t.get("trade_id")
                side = t.get("side")
                out.append(
                    TradeMessage(
                        type=name,
                        venue_ts_ns=rfc3339_ns(NAME, ts) if ts is not None else None,
                        instrument=t["symbol"],
                        price=_P(text_of(NAME, t.get("price"))),
                        size=_Q(text_of(NAME, t.get("qty"))),
                        side=side if side in ("buy", "sell") else None,
                        trade_id=None if tid is None else str(tid),
                    )
                )
            return out
        ts = obj.get("timestamp")
        return [OtherMessage(type=name, data=obj, venue_ts_ns=rfc3339_ns(NAME, ts) if type(ts) is str else None)]

    # ------------------------------------------------------------- sessions/commands

    def new_session(self) -> KrakenSession:
        return KrakenSession(self)

    def subscribe_frames(
        self,
        channels: list[str],
        instruments: list[str],
        *,
        version: int = 2,
        depth: int | None = None,
        req_id: int | None = None,
    ) -> list[str]:
        """One frame per channel. v2: ``{"method":"subscribe","params":{...}}``; v1:
        ``{"event":"subscribe","pair":[...],"subscription":{"name":...}}``."""
        return self._sub("subscribe", channels, instruments, version, depth, req_id)

    def unsubscribe_frames(
        self, channels: list[str], instruments: list[str], *, version: int = 2, depth: int | None = None, req_id: int | None = None
    ) -> list[str]:
        return self._sub("unsubscribe", channels, instruments, version, depth, req_id)

    def _sub(self, action, channels, instruments, version, depth, req_id) -> list[str]:
        out = []
        for ch in channels:
            if version == 2:
                params: dict = {"channel": ch, "symbol": list(instruments)}
                if ch == "book" and depth is not None:
                    params["depth"] = depth
                msg: dict = {"method": action, "params": params}
                if req_id is not None:
                    msg["req_id"] = req_id
            elif version == 1:
                sub: dict = {"name": ch}
                if ch == "book" and depth is not None:
                    sub["depth"] = depth
                msg = {"event": action, "pair": list(instruments), "subscription": sub}
                if req_id is not None:
                    msg["reqid"] = req_id
            else:
                raise ValueError("version must be 1 or 2")
            out.append(dumps(msg))
        return out

    def ping_frame(self, req_id: int | None = None, *, version: int = 2) -> str:
        """Application-level ping (the server answers ``pong``)."""
        if version == 1:
            return dumps({"event": "ping"} if req_id is None else {"event": "ping", "reqid": req_id})
        return dumps({"method": "ping"} if req_id is None else {"method": "ping", "req_id": req_id})

    def parse_command(self, text: str | bytes) -> Command:
        obj = parse_object(NAME, text)
        if "method" in obj:
            action = obj["method"]
            if not isinstance(action, str):
                raise DecodeError(NAME, "'method' must be a string")
            params = obj.get("params") or {}
            if not isinstance(params, dict):
                raise DecodeError(NAME, "'params' must be an object")
            ch = params.get("channel")
            if ch is not None and not isinstance(ch, str):
                raise DecodeError(NAME, "'params.channel' must be a string")
            if action in ("subscribe", "unsubscribe") and ch is None:
                raise DecodeError(NAME, f"{action} without params.channel", excerpt(text))
            rest = {k: v for k, v in params.items() if k not in ("channel", "symbol")}
            rest["version"] = 2
            return Command(
                action=action,
                channels=[ch] if ch else [],
                instruments=str_list(NAME, params.get("symbol"), "symbol"),
                id=obj.get("req_id"),
                params=rest,
                raw=obj,
            )
        if "event" in obj:
            action = obj["event"]
            if not isinstance(action, str):
                raise DecodeError(NAME, "'event' must be a string")
            sub = obj.get("subscription") or {}
            if not isinstance(sub, dict):
                raise DecodeError(NAME, "'subscription' must be an object")
            name = sub.get("name")
            if name is not None and not isinstance(name, str):
                raise DecodeError(NAME, "'subscription.name' must be a string")
            if action in ("subscribe", "unsubscribe") and name is None:
                raise DecodeError(NAME, f"{action} without subscription.name", excerpt(text))
            rest = {k: v for k, v in sub.items() if k != "name"}
            rest["version"] = 1
            return Command(
                action=action,
                channels=[name] if name else [],
                instruments=str_list(NAME, obj.get("pair"), "pair"),
                id=obj.get("reqid"),
                params=rest,
                raw=obj,
            )
        raise DecodeError(NAME, "client frame has neither 'method' (v2) nor 'event' (v1)", excerpt(text))

    def ack_frames(self, cmd: Command, *, t_in_ns: int = 0, t_out_ns: int = 0, channel_ids: dict | None = None) -> list[str]:
        """What Kraken answers to a client command: v2 one ``{"method":..,"result":..,
        "success":true}`` per symbol (``pong`` for ping); v1 one ``subscriptionStatus`` per
        pair (``channel_ids`` maps pair -> channelID; defaults count from 1) or ``pong``."""
        v = cmd.params.get("version", 2)
        out: list[str] = []
        if cmd.action == "ping":
            if v == 1:
                return [dumps({"event": "pong"} if cmd.id is None else {"event": "pong", "reqid": cmd.id})]
            msg: dict = {"method": "pong", "time_in": ns_to_rfc3339(t_in_ns), "time_out": ns_to_rfc3339(t_out_ns)}
            if cmd.id is not None:
                msg["req_id"] = cmd.id
            return [dumps(msg)]
        ch = cmd.channels[0] if cmd.channels else ""
        for i, sym in enumerate(cmd.instruments):
            if v == 2:
                result: dict = {"channel": ch, "symbol": sym}
                if ch == "book":
                    result["depth"] = cmd.params.get("depth", DEFAULT_DEPTH)
                    result["snapshot"] = cmd.params.get("snapshot", True)
                msg = {
                    "method": cmd.action,
                    "result": result,
                    "success": True,
                    "time_in": ns_to_rfc3339(t_in_ns),
                    "time_out": ns_to_rfc3339(t_out_ns),
                }
                if cmd.id is not None:
                    msg["req_id"] = cmd.id
            else:
                sub = {"name": ch}
                cname = ch
                if ch == "book":
                    depth = cmd.params.get("depth", DEFAULT_DEPTH)
                    sub["depth"] = depth
                    cname = f"book-{depth}"
                msg = {
                    "channelID": (channel_ids or {}).get(sym, i + 1),
                    "channelName": cname,
                    "event": "subscriptionStatus",
                    "pair": sym,
                    "status": "subscribed" if cmd.action == "subscribe" else "unsubscribed",
                    "subscription": sub,
                }
                if cmd.id is not None:
                    msg["reqid"] = cmd.id
            out.append(dumps(msg))
        return out

    def status_frame(self, *, version: int = 2, connection_id: int = 0) -> str:
        """The message Kraken sends right after connect."""
        if version == 1:
            return dumps({"connectionID": connection_id, "event": "systemStatus", "status": "online", "version": "1.9.0"})
        return dumps(
            {
                "channel": "status",
                "data": [{"api_version": "v2", "connection_id": connection_id, "system": "online", "version": "2.0.0"}],
                "type": "update",
            }
        )


class KrakenSession(BookSession):
    """Books per symbol, truncated to the subscribed depth, checksum-verified.

    Counters: ``checksums_verified``, ``checksums_failed`` and ``checksums_skipped`` (a
    checksum on a book that never had a snapshot).
    """

    def __init__(self, venue: KrakenVenue):
        super().__init__(venue)
        self.depths: dict[str, int] = {}
        self.checksums_verified = 0
        self.checksums_failed = 0
        self.checksums_skipped = 0
        self._top: dict[str, _TopCache] = {}  # per symbol: checksum text reused across messages

    def _skipped_v1_book(self, payload) -> list[Message] | None:
        """``keep_books``: a v1 book frame (as sent: ``[..., "book-N", "PAIR"]``) for a
        pair whose book is not kept, told from its last two strings without decoding its
        levels; None for anything else. Kraken v1 carries no sequence number (the
        checksum needs the book), so nothing else is tracked for it."""
        if type(payload) is not str or payload[:1] != "[" or payload[-2:] != '"]':
            return None
        parts = payload.rsplit('"', 4)
        if len(parts) != 5 or parts[2] != "," or parts[1][:4] != "book" or "\\" in parts[3]:
            return None
        pair = parts[3]
        if pair in self.kept:
            return None
        head = payload[:64]
        snap = '"as":' in head or '"bs":' in head
        return [
            BookMessage(type="book/snapshot" if snap else "book/update", instrument=pair, snapshot=snap, levels=[])
        ]

    def feed(self, payload, frame_id: int | None = None):
        if self.kept is not None:
            msgs = self._skipped_v1_book(payload)
            if msgs is not None:
                self.frames += 1
                return msgs, []
        # The hot path first: a v1 one-sided book update, decoded by _V1Update (types
        # checked in C) into the same BookMessage ``decode`` builds. A frame that does not
        # fit goes to ``_decode`` having changed nothing.
        msgs = None
        t = type(payload)
        if (t is str and payload[:1] == "[") or (t is bytes and payload[:1] == b"["):
            try:
                _cid, part, cname, sym = _V1_UPDATE.decode(payload)
            except (msgspec.DecodeError, ValueError, UnicodeError, RecursionError):
                part = None  # the general path reports it (a lone surrogate, bad JSON, ...)
            if part is not None:
                lvs = part.a
                side = "ask"
                if lvs is UNSET:
                    lvs = part.b
                    side = "bid"
                elif part.b is not UNSET:
                    lvs = UNSET  # both sides in one object: keep the general path's level order
                c = part.c
                if lvs is UNSET or c is UNSET or len(c) > 10 or not c.isdigit() or not c.isascii():
                    pass
                elif (depth := _DEPTH_OF.get(cname, _UNSEEN)) is not _UNSEEN or cname[:4] == "book":
                    if depth is _UNSEEN:
                        depth = _v1_depth(cname)
                    pget, qget = _P._c.get, _Q._c.get
                    levels = []
                    ts = 0
                    for pt, qt, tt in lvs:
                        p = pget(pt)
                        if p is None:
                            p = _P(pt)
                        q = qget(qt)
                        if q is None:
                            q = _Q(qt)
                        levels.append(Level(side, p, q, pt, qt))
                        whole, _, frac = tt.partition(".")
                        if len(frac) == 6 and whole.isdigit() and frac.isdigit() and tt.isascii():
                            tn = int(whole + frac) * 1000  # microseconds, as Kraken sends them
                        else:
                            tn = decimal_seconds_ns(NAME, tt)
                        if tn > ts:
                            ts = tn
                    m = BookMessage(
                        type="book/update", venue_ts_ns=ts or None, instrument=sym, snapshot=False,
                        levels=levels, checksum=int(c),
                    )
                    self.frames += 1
                    findings: list = []
                    self._apply_book(m, depth, frame_id, findings)
                    return [m], findings
        if msgs is None:
            msgs, depth = self.venue._decode(payload)
        self.frames += 1
        findings = []
        for m in msgs:
            cls = m.__class__
            if cls is BookMessage:
                self._apply_book(m, depth, frame_id, findings)
            elif cls is OtherMessage and m.type == "subscribe":
                res = m.data.get("result")
                if isinstance(res, dict) and res.get("channel") == "book":
                    d, sym = res.get("depth"), res.get("symbol")
                    if type(d) is int and d > 0 and isinstance(sym, str):
                        self.depths[sym] = d
            elif cls is OtherMessage and m.type == "subscriptionStatus":
                sub = m.data.get("subscription")
                pair = m.data.get("pair")
                if isinstance(sub, dict) and sub.get("name") == "book" and isinstance(pair, str):
                    d = sub.get("depth", DEFAULT_DEPTH)
                    if type(d) is int and d > 0:
                        self.depths[pair] = d
        return msgs, findings

    def _apply_book(self, m: BookMessage, depth: int | None, frame_id, findings: list) -> None:
        """Apply one book message, truncate to the subscribed depth, verify its checksum,
        check crossing. Updates are applied here rather than by ``L2Book.apply_levels``:
        the same loop notes which cached checksum side each level reaches into."""
        sym = m.instrument
        if depth is not None:
            self.depths[sym] = depth
        else:
            depth = self.depths.get(sym, DEFAULT_DEPTH)
        b = self.books.get(sym)
        if b is None:
            if self.kept is not None and not self._kept(m):
                return
            b = self.books[sym] = L2Book(sym, float_keys=False)
        # Truncation is needed only when levels were added, the depth changed or the book
        # changed behind our back; otherwise the book is within its depth already.
        check_depth = b.depth_limit != depth
        b.depth_limit = depth
        top = self._top.get(sym)
        if top is None or top.ask_frags.book is not b:
            top = self._top[sym] = _TopCache(b)
        if m.snapshot:
            b.apply_snapshot(m.levels, m.venue_ts_ns)
            top.forget()
            if b.truncate():
                top.truncated(b)
        else:
            if top.version != b.version:  # the book changed behind our back
                top.forget()
                check_depth = True
            # Apply the levels (as L2Book.apply_levels does) noting which cached side
            # each reaches into: a level beyond a side's edge cannot change its top-n text.
            ae, be = top.ask_edge, top.bid_edge
            if top.ask_crc is None:
                ae = None
            if top.bid_text is None:
                be = None
            bd, bp, ad, ap = b._bd, b._bp, b._ad, b._ap
            if not b._exact:  # a float-keyed book put here from outside: the careful path
                b.apply_levels_raw(m.levels)
                top.forget()
                check_depth = True
                bd, bp, ad, ap = b._bd, b._bp, b._ad, b._ap
            else:
                bfr, afr = top.bid_frags, top.ask_frags
                for lv in m.levels:
                    p = lv.price  # the key: the session's books are Decimal-keyed
                    if lv.side == "bid":
                        d, sl, frags = bd, bp, bfr
                        near = be is None or p >= be
                        if near:
                            top.bid_text = None
                    else:
                        d, sl, frags = ad, ap, afr
                        near = ae is None or p <= ae
                        if near:
                            top.ask_crc = None
                    if lv.qty:
                        if p not in d:
                            sl.add(p)
                            check_depth = True
                        d[p] = lv
                        if near:  # about to be checksummed: strip its text now
                            pt, qt = lv.price_text, lv.qty_text
                            frags[p] = (pt.replace(".", "").lstrip("0") + qt.replace(".", "").lstrip("0")).encode(
                                "ascii", "replace"
                            )
                        else:
                            frags.pop(p, None)
                    elif p in d:
                        del d[p]
                        sl.remove(p)
                        frags.pop(p, None)
            if check_depth and (bp._len > depth or ap._len > depth) and b.truncate():
                top.truncated(b)
            b.updates += 1
            b.version += 1
            if m.venue_ts_ns is not None:
                b.last_update_ns = m.venue_ts_ns
        top.version = b.version
        cs = m.checksum
        if cs is not None:
            if not b.has_snapshot:
                self.checksums_skipped += 1
            else:
                got = top.checksum(b)
                if got == cs:
                    self.checksums_verified += 1
                else:
                    self.checksums_failed += 1
                    findings.append(
                        SeqFinding(
                            "checksum",
                            sym,
                            cs,
                            got,
                            "book differs from the venue's after this message: resubscribe",
                            frame_id,
                        )
                    )
        bl, al = b._bp._lists, b._ap._lists
        if bl and al and bl[-1][-1] >= al[0][0] or sym in self._crossed:
            self._check_crossed(b, frame_id, findings)

    def keep_books(self, instruments) -> None:
        super().keep_books(instruments)
        if self.kept is not None:
            for sym in [k for k in self._top if k not in self.kept]:
                del self._top[sym]

    def reset(self) -> None:
        super().reset()
        self.depths.clear()
        self._top.clear()


VENUE = KrakenVenue(name=NAME, endpoints=ENDPOINTS, ws_path="/v2", channels=("book", "trade", "ticker", "ohlc"))
