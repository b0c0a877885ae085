"""Crypto.com Exchange market data: API v1 (``wss://stream.crypto.com/exchange/v1/market``)
and the legacy v2 market API (``wss://stream.crypto.com/v2/market``, the 2021 recording).
Both wrap data as ``{"method":"subscribe","result":{"channel":..,"instrument_name":..,
"subscription":..,"data":[...]}}``; one ``VENUE`` decodes both.

classify names: the ``result.channel`` for data (``book``, ``book.update``, ``trade``,
``ticker``, ``candlestick``), otherwise the ``method`` (``subscribe`` for a bare ack,
``unsubscribe``, ``public/heartbeat``, ``public/respond-heartbeat``).

Shapes
- v2 legacy: prices/quantities are JSON numbers (``[0.32810, 22689.6, 1]``); they are
  decoded with a float hook that keeps the wire text. Every ``book`` message is a full
  snapshot of the subscribed depth (150 in the recording).
- v1: strings (``["50126.000000","0.400000","2"]``); ``book`` is a snapshot carrying ``u``
  (update id) and ``cs``; with ``book_subscription_type=SNAPSHOT_AND_UPDATE`` deltas come
  on ``book.update`` as ``data[{"update":{"bids","asks"},"u","pu","t","cs"}]``, where
  ``pu`` must equal the previous message's ``u`` (from the v1 docs; not in a recording).
  ``cs`` is passed through as ``BookMessage.checksum`` but not verified (the algorithm is
  not documented well enough to check against data we have).

Session: books per instrument (snapshots replace); ``book.update`` with ``pu`` != the last
``u`` is a ``gap``. Heartbeats: the server sends ``public/heartbeat`` with an ``id`` and
drops clients that do not answer ``public/respond-heartbeat`` with the same id; build the
reply with ``VENUE.heartbeat_reply(msg)``. Instruments keep Crypto.com's names
(``ONE_USDT``, ``BTCUSD-PERP``).
"""

from __future__ import annotations

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
    loads_numtext,
    milli_ns,
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
)
from harness.venues.book import BookSession

NAME = "cryptocom"

ENDPOINTS = Endpoints(
    ws_prod=("wss://stream.crypto.com/exchange/v1/market", "wss://stream.crypto.com/v2/market"),
    rest_prod=("https://api.crypto.com/exchange/v1", "https://api.crypto.com/v2"),
    ws_demo=("wss://uat-stream.3ona.co/exchange/v1/market", "wss://uat-stream.3ona.co/v2/market"),
    rest_demo=("https://uat-api.3ona.co/exchange/v1", "https://uat-api.3ona.co/v2"),
)

DEFAULT_DEPTH = 10

_P = DecCache(NAME)
_Q = DecCache(NAME, 50_000)


def _levels(v, side: str, out: list) -> None:
    if type(v) is not list:
        raise DecodeError(NAME, "bids/asks must be lists")
    for lv in v:
        if type(lv) is not list or len(lv) < 2:
            raise DecodeError(NAME, "level must be [price, qty, count]")
        pt = text_of(NAME, lv[0])
        qt = text_of(NAME, lv[1])
        out.append(Level(side, _P(pt), _Q(qt), pt, qt))


def _opt_int(v: Any, what: str) -> int | None:
    if v is None:
        return None
    if type(v) is int:
        return v
    if type(v) is str and v.isdigit() and v.isascii():
        return int(v)
    raise DecodeError(NAME, f"bad {what} {str(v)[:30]!r}")


class CryptoComVenue(Venue):
    def classify(self, payload: str | bytes) -> str | None:
        try:
            s = as_text(payload)
            if s.lstrip()[:1] != "{":
                return None
            r = s.find('"result"')
            if r >= 0:
                ch = str_value(s, "channel", r, r + 400)
                if ch is not None:
                    return ch
            return str_value(s[:200], "method") or str_value(s, "method")
        except Exception:  # noqa: BLE001 - classify never raises
            return None

    def decode(self, payload: str | bytes) -> list[Message]:
        obj = loads_numtext(NAME, payload)
        if type(obj) is not dict:
            raise DecodeError(NAME, "frame is not a JSON object", excerpt(payload))
        method = obj.get("method")
        res = obj.get("result")
        if type(res) is dict and "channel" in res:
            return self._data(res, payload)
        if type(method) is not str:
            raise DecodeError(NAME, "frame has neither result.channel nor method", excerpt(payload))
        return [OtherMessage(type=method, data=obj)]

    def _data(self, res: dict, payload) -> list[Message]:
        ch = res.get("channel")
        inst = res.get("instrument_name")
        data = res.get("data")
        if type(ch) is not str:
            raise DecodeError(NAME, "result.channel must be a string")
        if ch in ("book", "book.update", "trade") and (type(inst) is not str or type(data) is not list):
            raise DecodeError(NAME, f"{ch} needs instrument_name and data", excerpt(payload))
        if ch in ("book", "book.update"):
            out: list[Message] = []
            for d in data:
                if type(d) is not dict:
                    raise DecodeError(NAME, "book data entries must be objects")
                src = d
                if ch == "book.update":
                    src = d.get("update")
                    if type(src) is not dict:
                        raise DecodeError(NAME, "book.update entry needs 'update'")
                levels: list = []
                _levels(src.get("bids", []), "bid", levels)
                _levels(src.get("asks", []), "ask", levels)
                t = d.get("t")
                out.append(
                    BookMessage(
                        type=ch,
                        venue_ts_ns=milli_ns(NAME, t) if t is not None else None,
                        instrument=inst,
                        snapshot=ch == "book",
                        levels=levels,
                        sequence=_opt_int(d.get("u"), "u"),
                        checksum=_opt_int(d.get("cs"), "cs"),
                    )
                )
            return out
        if ch == "trade":
            out = []
            for t in data:
                if type(t) is not dict:
                    raise DecodeError(NAME, "trade entries must be objects")
                ts = t.get("t")
                side = t.get("s")
                tid = t.get("d")
                out.append(
                    TradeMessage(
                        type=ch,
                        venue_ts_ns=milli_ns(NAME, ts) if ts is not None else None,
                        instrument=t.get("i") if type(t.get("i")) is str else inst,
                        price=_P(text_of(NAME, t.get("p"))),
                        size=_Q(text_of(NAME, t.get("q"))),
                        side=side.lower() if type(side) is str and side.lower() in ("buy", "sell") else None,
                        trade_id=None if tid is None else str(tid),
                    )
                )
            return out
        return [OtherMessage(type=ch, data=res)]

    def pu_of(self, payload) -> list[int | None]:
        """``pu`` of each book.update entry (the session's gap rule needs it)."""
        obj = loads(NAME, payload)
        res = obj.get("result") if isinstance(obj, dict) else None
        data = res.get("data") if isinstance(res, dict) else None
        if not isinstance(data, list):
            return []
        return [_opt_int(d.get("pu"), "pu") if isinstance(d, dict) else None for d in data]

    # ------------------------------------------------------------- sessions/commands

    def new_session(self) -> CryptoComSession:
        return CryptoComSession(self)

    @staticmethod
    def channel_names(channels: list[str], instruments: list[str], *, depth: int = DEFAULT_DEPTH, interval: str = "1m") -> list[str]:
        out = []
        for c in channels:
            for i in instruments:
                if c == "book":
                    out.append(f"book.{i}.{depth}")
                elif c == "candlestick":
                    out.append(f"candlestick.{interval}.{i}")
                else:
                    out.append(f"{c}.{i}")
        return out

    def subscribe_frames(
        self,
        channels: list[str],
        instruments: list[str],
        *,
        id: int = 1,
        depth: int = DEFAULT_DEPTH,
        interval: str = "1m",
        book_subscription_type: str | None = None,
    ) -> list[str]:
        """One frame: ``{"id":..,"method":"subscribe","params":{"channels":[...]}}``
        (``book.<inst>.<depth>``, ``candlestick.<interval>.<inst>``, ``<channel>.<inst>``)."""
        params: dict = {"channels": self.channel_names(channels, instruments, depth=depth, interval=interval)}
        if book_subscription_type:
            params["book_subscription_type"] = book_subscription_type
        return [dumps({"id": id, "method": "subscribe", "params": params})]

    def unsubscribe_frames(self, channels: list[str], instruments: list[str], *, id: int = 1, depth: int = DEFAULT_DEPTH, interval: str = "1m") -> list[str]:
        params = {"channels": self.channel_names(channels, instruments, depth=depth, interval=interval)}
        return [dumps({"id": id, "method": "unsubscribe", "params": params})]

    def heartbeat_reply(self, msg: Any) -> str:
        """``public/respond-heartbeat`` with the heartbeat's id. ``msg``: the heartbeat as
        an ``OtherMessage``, a dict, or the raw frame text."""
        if isinstance(msg, OtherMessage):
            obj = msg.data
        elif isinstance(msg, dict):
            obj = msg
        else:
            obj = loads(NAME, msg)
        if not isinstance(obj, dict) or obj.get("method") != "public/heartbeat" or "id" not in obj:
            raise DecodeError(NAME, "not a public/heartbeat message with an id")
        return dumps({"id": obj["id"], "method": "public/respond-heartbeat"})

    def heartbeat_frame(self, id: int) -> str:
        """What the server sends (ids are ms timestamps in the recording)."""
        return dumps({"id": id, "method": "public/heartbeat", "code": 0})

    def parse_command(self, text: str | bytes) -> Command:
        obj = parse_object(NAME, text)
        method = obj.get("method")
        if not isinstance(method, str) or not method:
            raise DecodeError(NAME, "client frame has no 'method'", excerpt(text))
        params = obj.get("params") or {}
        if not isinstance(params, dict):
            raise DecodeError(NAME, "'params' must be an object")
        names = params.get("channels", [])
        if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
            raise DecodeError(NAME, "'params.channels' must be a list of strings")
        if method in ("subscribe", "unsubscribe") and not names:
            raise DecodeError(NAME, f"{method} without channels", excerpt(text))
        chans: list[str] = []
        insts: list[str] = []
        depths: dict[str, int] = {}
        for full in names:
            parts = full.split(".")
            if parts[0] == "book" and len(parts) >= 2:
                ch, inst = "book", parts[1]
                if len(parts) >= 3 and parts[2].isdigit():
                    depths[inst] = int(parts[2])
            elif parts[0] == "candlestick" and len(parts) >= 3:
                ch, inst = "candlestick", parts[2]
            elif len(parts) >= 2:
                ch, inst = parts[0], ".".join(parts[1:])
            else:
                ch, inst = full, ""
            if ch not in chans:
                chans.append(ch)
            if inst and inst not in insts:
                insts.append(inst)
        rest = {k: v for k, v in params.items() if k != "channels"}
        rest["channel_names"] = names
        if depths:
            rest["depths"] = depths
        return Command(action=method, channels=chans, instruments=insts, id=obj.get("id"), params=rest, raw=obj)

    def ack_frames(self, cmd: Command) -> list[str]:
        """The bare ack ``{"id":..,"code":0,"method":"subscribe"}`` (as in the recording);
        data messages follow as ``method: subscribe`` frames with ``result``."""
        msg: dict = {"id": cmd.id if cmd.id is not None else 0, "code": 0, "method": cmd.action}
        return [dumps(msg)]


class _BookEntry(msgspec.Struct, gc=False):
    t: Any = None  # bids, asks and update are skipped undecoded
    u: Any = None
    pu: Any = None
    cs: Any = None


class _BookResult(msgspec.Struct, gc=False):
    channel: str
    instrument_name: str
    data: list[_BookEntry]


class _BookFrame(msgspec.Struct, gc=False):
    result: _BookResult


_BOOK_FRAME = msgspec.json.Decoder(_BookFrame)


class CryptoComSession(BookSession):
    """Books per instrument; ``pu``/``u`` contiguity for ``book.update`` (v1).

    With ``keep_books`` a book frame for another instrument gives its ``BookMessage``s
    without levels (time, ``u`` and ``cs`` as usual) and is still checked for ``pu``."""

    def __init__(self, venue: CryptoComVenue):
        super().__init__(venue)
        self.last_u: dict[str, int] = {}
        self.last_heartbeat_id: Any = None

    def _skipped_book(self, payload) -> tuple[list[Message], list] | None:
        """``keep_books``: (levels-free messages, their ``pu``s) for a book frame of an
        instrument whose book is not kept; None for anything else."""
        if type(payload) is not str:
            return None
        r = payload.find('"result"')
        inst = str_value(payload, "instrument_name", r, r + 200) if r >= 0 else None
        if inst is None or inst in self.kept:
            return None
        try:
            res = _BOOK_FRAME.decode(payload).result
        except (msgspec.DecodeError, TypeError, ValueError, UnicodeError, RecursionError):
            return None  # not a book frame, or one the general path reports
        ch = res.channel
        if ch not in ("book", "book.update") or res.instrument_name != inst:
            return None
        msgs: list[Message] = []
        for d in res.data:
            msgs.append(
                BookMessage(
                    type=ch,
                    venue_ts_ns=milli_ns(NAME, d.t) if d.t is not None else None,
                    instrument=inst,
                    snapshot=ch == "book",
                    levels=[],
                    sequence=_opt_int(d.u, "u"),
                    checksum=_opt_int(d.cs, "cs"),
                )
            )
        return msgs, [_opt_int(d.pu, "pu") for d in res.data]

    def feed(self, payload, frame_id: int | None = None):
        skipped = self._skipped_book(payload) if self.kept is not None else None
        if skipped is None:
            msgs = self.venue.decode(payload)
            pus: list | None = None
        else:
            msgs, pus = skipped
        self.frames += 1
        findings: list = []
        touched: list = []
        i = 0
        for m in msgs:
            if m.__class__ is BookMessage:
                inst = m.instrument
                if m.type == "book.update":
                    if pus is None:
                        pus = self.venue.pu_of(payload)
                    pu = pus[i] if i < len(pus) else None
                    last = self.last_u.get(inst)
                    if pu is not None and last is not None and pu != last:
                        findings.append(SeqFinding("gap", inst, last, pu, "book.update pu != previous u", frame_id))
                    i += 1
                if m.sequence is not None:
                    self.last_u[inst] = m.sequence
                self._apply(m, touched)
            elif m.type == "public/heartbeat":
                self.last_heartbeat_id = m.data.get("id")
        for b in touched:
            self._check_crossed(b, frame_id, findings)
        return msgs, findings

    def reset(self) -> None:
        super().reset()
        self.last_u.clear()
        self.last_heartbeat_id = None


VENUE = CryptoComVenue(
    name=NAME, endpoints=ENDPOINTS, ws_path="/exchange/v1/market", channels=("book", "trade", "ticker", "candlestick")
)
