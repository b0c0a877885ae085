"""Per-venue behaviour of the impersonation server: answer client commands as the venue
does and decide which recorded inbound frames a connection receives.

A *flow* is per client connection:

- ``on_connect() -> [text]``: frames sent right after the handshake (Kraken ``status``).
- ``on_command(text) -> [text]``: replies to a client frame. Never raises: garbage,
  binary, wrong types and unknown commands get the venue's error reply.
- ``started``: True once a subscription was acknowledged (streaming starts then).
- ``match(conn_id, payload, type) -> handle | None``: whether the recorded frame goes to
  this client under its current subscriptions (None: skip it).
- ``render(handle, payload, gap=0) -> text``: the frame as this connection sends it.
  Kalshi: top-level ``sid`` rewritten to this connection's sid of the channel and ``seq``
  renumbered from 1 per sid (``gap`` skips numbers); Coinbase Advanced Trade:
  ``sequence_num`` renumbered from 0 per connection. Only those digits change: every other
  byte is the recorded one. Calling ``render`` and discarding the text consumes the
  sequence number (a dropped frame leaves a gap, as on the wire).

Routing of recorded frames
- Kalshi: by channel (message type -> channel; unknown types by the recorded sid's
  ``subscribed`` ack) and ``msg.market_ticker`` when the subscription named markets.
  Recorded ``subscribed``/``ok``/``unsubscribed``/``error`` frames are never streamed.
- Coinbase, Kraken, Bitstamp, Gemini, Crypto.com: by channel, then by instrument.
  Channel: the top-level ``channel`` (Coinbase AT ``l2_data`` -> ``level2``; Exchange feed
  ``type``; Kraken v1 arrays: the channel name before the pair, ``book-10`` -> ``book``),
  Bitstamp's full channel name, Gemini ``type`` (``l2_updates``/``trade`` -> ``l2``),
  Crypto.com ``result.subscription``. Instrument, when the subscription named some:
  Coinbase ``product_id``, Kraken v2 ``symbol`` / v1 the trailing pair, Gemini ``symbol``;
  a frame naming several is sent when any of them was asked for. Bitstamp and Crypto.com
  channel names carry the instrument (``diff_order_book_btcusd``, ``book.BTC_USD.10``), so
  the channel match already filters them. Frames whose instrument cannot be told (no such
  field) are sent: dropping a frame a client asked for is worse than an extra one.
  Heartbeats are always streamed; recorded acks/status frames never are. Frames that
  cannot be routed by channel (unknown shapes) go to every client that has subscribed.

Kalshi ``update_subscription``: ``ok`` with the sid and the full market list, without a
seq (optional in the spec; the live recorder does not count one there). ``get_snapshot``
adds one ``orderbook_snapshot`` per market (``snapshot_frame``) of the recorded book after
the last frame streamed (``KalshiBookCursor``, one per client, read on from its previous
answer; the server supplies ``books_at``), each with
the sid's next seq.

Reply timestamps (Coinbase and Kraken acks, Kraken pongs) come from ``now_ns``, which the
server sets to the recorded time the client's stream has reached.

Resumed clients (the server's ``resume_reconnects``): a venue gives a reconnecting client
the current book, so the first subscription of a resumed client to a book channel is
answered, after its ack, with a fresh snapshot per instrument of the recorded book after
the last frame its predecessor was sent (``last_fid``, which the server sets before the
client subscribes), in the venue's current format:
- Kalshi ``orderbook_delta``: ``orderbook_snapshot`` per market (``snapshot_frame``; the
  markets named, else every market with a book), with the sid's seqs;
- Coinbase Advanced Trade ``level2``: an ``l2_data`` ``snapshot`` event per product
  (``coinbase_snapshot_frame``), price/quantity text as recorded, the connection's next
  ``sequence_num``; the Exchange feed gets none;
- Kraken v2 ``book``: a ``snapshot`` per symbol with its CRC32 ``checksum``
  (``kraken_snapshot_frame``), at most the depth asked; v1 gets none;
- Gemini ``l2``: a first ``l2_updates`` (with ``trades: []``, which marks it the full book);
- Bitstamp and Crypto.com: none (Bitstamp's client fetches the REST book; Crypto.com's
  recorded ``book`` frames are whole books anyway).
The exchange books come from the venue modules' own sessions fed the recorded frames
(``ExchangeBookCursor``), never from a second copy of their protocol logic.

Adapters written here (missing from the venue modules): Kalshi replies (subscribed, ok,
unsubscribed, error, list, snapshots), the per-venue error replies, Coinbase acks via
``subscriptions_frame``, topic and instrument extraction for routing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import orjson

from harness.errors import DecodeError
from harness.venues import get as get_venue
from harness.venues._json import ns_to_rfc3339, top_level_str_value

# --------------------------------------------------------------------------- rewriting

_TOK = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_NUM_AFTER = re.compile(r"\s*:\s*(-?\d+)")


def top_level_int_spans(text: str, keys: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Spans of the integer values of the given keys of the outermost JSON object (string-
    and nesting-aware; stops once all keys are found)."""
    depth = 0
    found: dict[str, tuple[int, int]] = {}
    want = len(keys)
    for m in _TOK.finditer(text):
        c = text[m.start()]
        if c == '"':
            if depth == 1:
                k = m.group()[1:-1]
                if k in keys and k not in found:
                    n = _NUM_AFTER.match(text, m.end())
                    if n is not None:
                        found[k] = n.span(1)
                        if len(found) == want:
                            break
        elif c == "{" or c == "[":
            depth += 1
        else:
            depth -= 1
    return found


def replace_spans(text: str, repl: dict[tuple[int, int], int]) -> str:
    out = text
    for (a, b), v in sorted(repl.items(), reverse=True):
        out = out[:a] + str(v) + out[b:]
    return out


def rewrite_sid_seq(text: str, sid: int, next_seq) -> tuple[str, bool]:
    """Rewrite the top-level ``sid`` to ``sid`` and ``seq`` to ``next_seq()`` (called only if
    the frame carries a ``seq``). Returns (text, had_seq)."""
    keys = ("sid", "seq") if '"seq"' in text else ("sid",)
    spans = top_level_int_spans(text, keys)
    repl = {}
    if "sid" in spans:
        repl[spans["sid"]] = sid
    had = "seq" in spans
    if had:
        repl[spans["seq"]] = next_seq()
    return (replace_spans(text, repl) if repl else text), had


def _dumps(obj) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # an echoed client value orjson refuses (an integer past 64 bits)
        import json

        return json.dumps(obj, separators=(",", ":"), default=str)


# --------------------------------------------------------------------------- static info


@dataclass
class VenueTrack:
    """What the server knows about one recorded venue (built once at start)."""

    venue: str
    path: str
    conn_ids: list[int] = field(default_factory=list)
    url: str | None = None
    markets: set[str] = field(default_factory=set)  # Kalshi market tickers seen
    sid_channel: dict[tuple[int, int], str] = field(default_factory=dict)  # (conn, sid) -> channel
    marks: list = field(default_factory=list)  # recorded disconnects, sorted by t_line
    status_frame: str | None = None  # Kraken: recorded first status frame
    frames: int = 0


# --------------------------------------------------------------------------- Kalshi

KALSHI_TYPE_CHANNEL = {
    "orderbook_snapshot": "orderbook_delta",
    "orderbook_delta": "orderbook_delta",
    "ticker": "ticker",
    "ticker_v2": "ticker",
    "trade": "trade",
    "fill": "fill",
    "market_position": "market_positions",
    "market_lifecycle_v2": "market_lifecycle_v2",
    "event_lifecycle": "market_lifecycle_v2",
    "multivariate_lookup": "multivariate_market_lifecycle",
    "multivariate_market_lifecycle": "multivariate_market_lifecycle",
    "user_order": "user_orders",
    "order_group_updates": "order_group_updates",
    "cfbenchmarks_value": "cfbenchmarks_value",
    "pyth_value": "pyth_value",
    "rfq_created": "communications",
    "rfq_deleted": "communications",
    "quote_created": "communications",
    "quote_accepted": "communications",
    "quote_executed": "communications",
}
KALSHI_CONTROL = frozenset({"subscribed", "unsubscribed", "ok", "error", "list_subscriptions"})
_MKT = re.compile(r'"market_ticker"\s*:\s*"([^"\\]*)"')
_SID = re.compile(r'"sid"\s*:\s*(\d+)')


# Fast path: ``{"type":"...","sid":N[,"seq":N]`` at the very start is top-level by construction.
_HEAD = re.compile(r'\{\s*"type"\s*:\s*"([a-z0-9_]+)"\s*,\s*"sid"\s*:\s*(\d+)\s*(?:,\s*"seq"\s*:\s*(\d+)\s*)?[,}]')


class KalshiSub:
    __slots__ = ("sid", "channel", "markets", "seq")

    def __init__(self, sid: int, channel: str, markets: set[str] | None):
        self.sid = sid
        self.channel = channel
        self.markets = markets  # None: all markets
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class KalshiFlow:
    venue = "kalshi"

    def __init__(self, track: VenueTrack):
        from harness.venues import kalshi

        self.k = kalshi
        self.track = track
        self.started = False
        self.next_sid = 1
        self.by_channel: dict[str, KalshiSub] = {}
        self.by_sid: dict[int, KalshiSub] = {}
        self.commands = 0
        self.errors = 0
        self._head: tuple = (None, None)
        self.last_fid: int | None = None  # the last recorded frame streamed (set by the server)
        self.last_t: int | None = None
        # (tickers, upto_fid) -> {ticker: (KalshiBook, market_id)}: the recorded books at a
        # point of the stream; set by the server, answers get_snapshot
        self.books_at = None
        # a resumed client (set by the server): its first orderbook_delta subscription is
        # answered with the recorded books at ``last_fid``, as Kalshi sends a new subscriber
        self.resume_snapshots = False

    def on_connect(self) -> list[str]:
        return []

    # -- replies ------------------------------------------------------------------------
    def error(self, cid, code: int, detail: str | None = None, **extra) -> str:
        self.errors += 1
        msg = {"code": code, "msg": self.k.ERROR_CODES.get(code, ("error",))[0]}
        if detail:
            msg["msg"] = f"{msg['msg']}: {detail}"[:300]
        msg.update(extra)
        obj = {"id": cid, "type": "error", "msg": msg} if cid else {"type": "error", "msg": msg}
        return _dumps(obj)

    def on_command(self, payload) -> list[str]:
        self.commands += 1
        if not isinstance(payload, str):
            return [self.error(None, 1, "binary frames are not commands")]
        try:
            cmd = self.k.parse_command(payload)
        except self.k.CommandError as e:
            cid = e.command.id if e.command is not None else _peek_id(payload)
            return [self.error(cid, e.code, str(e.message).split(": ", 1)[-1][:200])]
        except DecodeError as e:
            return [self.error(_peek_id(payload), 1, e.message[:200])]
        try:
            return getattr(self, "_cmd_" + cmd.cmd)(cmd)
        except Exception as e:  # noqa: BLE001 - a client frame must never crash the server
            return [self.error(cmd.id, 17, f"{type(e).__name__}")]

    def _cmd_subscribe(self, cmd) -> list[str]:
        tickers = cmd.tickers
        out = []
        if tickers:
            unknown = [t for t in tickers if t not in self.track.markets]
            for t in unknown:
                out.append(self.error(cmd.id, 16, None, market_ticker=t))
            tickers = [t for t in tickers if t in self.track.markets]
            if not tickers:
                return out
        wanted = set(tickers) if tickers else None
        for ch in cmd.params.channels:
            sub = self.by_channel.get(ch)
            if sub is None:
                sub = KalshiSub(self.next_sid, ch, wanted)
                self.next_sid += 1
                self.by_channel[ch] = sub
                self.by_sid[sub.sid] = sub
            elif sub.markets is not None:  # repeating a subscribe adds tickers (idempotent)
                if wanted is None:
                    sub.markets = None
                else:
                    sub.markets |= wanted
            obj = {"type": "subscribed", "msg": {"channel": ch, "sid": sub.sid}}
            if cmd.id:
                obj = {"id": cmd.id, **obj}
            out.append(_dumps(obj))
            if ch == "orderbook_delta" and self.resume_snapshots:
                out.extend(self._resume_snapshots(sub, tickers))
        self.started = True
        return out

    def _resume_snapshots(self, sub: KalshiSub, tickers) -> list[str]:
        """Snapshots of the recorded books at ``last_fid`` for a resumed client (once): the
        markets named (an empty book when the recording has none yet, as Kalshi answers),
        else every market that has a book there."""
        self.resume_snapshots = False
        if self.books_at is None or self.last_fid is None:
            return []
        named = list(tickers) if tickers else None
        books = self.books_at(set(named) if named else set(self.track.markets), self.last_fid)
        out = []
        for t in named if named else sorted(books):
            book, market_id = books.get(t, (None, None))
            out.append(snapshot_frame(sub.sid, sub.next_seq(), t, market_id, book))
        return out

    def _cmd_unsubscribe(self, cmd) -> list[str]:
        out = []
        for sid in cmd.target_sids:
            sub = self.by_sid.pop(sid, None)
            if sub is None:
                out.append(self.error(cmd.id, 7, f"sid {sid}"))
                continue
            self.by_channel.pop(sub.channel, None)
            obj = {"sid": sid, "seq": sub.next_seq(), "type": "unsubscribed"}
            if cmd.id:
                obj = {"id": cmd.id, **obj}
            out.append(_dumps(obj))
        return out

    def _cmd_update_subscription(self, cmd) -> list[str]:
        sid = cmd.target_sids[0]
        sub = self.by_sid.get(sid)
        if sub is None:
            return [self.error(cmd.id, 7, f"sid {sid}")]
        p = cmd.params
        tickers = cmd.tickers
        if p.action in ("add_markets", "delete_markets", "get_snapshot"):
            unknown = [t for t in tickers if t not in self.track.markets]
            if unknown:
                return [self.error(cmd.id, 16, None, market_ticker=unknown[0])]
            if p.action == "add_markets":
                if sub.markets is not None:
                    sub.markets |= set(tickers)
            elif p.action == "delete_markets":
                if sub.markets is None:
                    sub.markets = set(self.track.markets)
                sub.markets -= set(tickers)
        msg = {}
        if not p.skip_ticker_ack:
            msg["market_tickers"] = sorted(sub.markets if sub.markets is not None else self.track.markets)
        # no seq: the spec makes it optional, and the harness's live handler does not count
        # one there (a seq on ``ok`` made the next data frame look like a gap)
        obj = {"id": cmd.id, "sid": sid, "type": "ok", "msg": msg}
        if not cmd.id:
            del obj["id"]
        out = [_dumps(obj)]
        if p.action == "get_snapshot" and sub.channel == "orderbook_delta" and self.books_at is not None:
            books = self.books_at(set(tickers), self.last_fid)
            for t in tickers:
                book, market_id = books.get(t, (None, None))
                out.append(snapshot_frame(sub.sid, sub.next_seq(), t, market_id, book))
        return out

    def _cmd_list_subscriptions(self, cmd) -> list[str]:
        obj = {"id": cmd.id, "type": "ok", "msg": [{"channel": s.channel, "sid": s.sid} for s in self.by_sid.values()]}
        if not cmd.id:
            del obj["id"]
        return [_dumps(obj)]

    # -- streaming --------------------------------------------------------------------------
    def match(self, conn_id: int, payload, typ: str | None):
        if not self.by_channel or payload.__class__ is not str:
            return None
        hm = _HEAD.match(payload)
        self._head = (payload, hm)
        if hm is not None:
            typ = hm.group(1)
        elif typ is None:
            typ = self.k.classify(payload)
        ch = KALSHI_TYPE_CHANNEL.get(typ)
        if ch is None:
            if typ in KALSHI_CONTROL:
                return None
            m = _SID.search(payload)
            if m is None:
                return None
            ch = self.track.sid_channel.get((conn_id, int(m.group(1))))
            if ch is None:
                return None
        sub = self.by_channel.get(ch)
        if sub is None:
            return None
        if sub.markets is not None:
            m = _MKT.search(payload)
            if m is not None and m.group(1) not in sub.markets:
                return None
        return sub

    def render(self, sub: KalshiSub, payload: str, gap: int = 0) -> str:
        last, hm = self._head
        if last is payload and hm is not None and (hm.group(3) is not None or '"seq"' not in payload):
            a, b = hm.span(2)
            if hm.group(3) is None:
                return payload[:a] + str(sub.sid) + payload[b:]
            sub.seq += 1 + gap
            c, d = hm.span(3)
            return payload[:a] + str(sub.sid) + payload[b:c] + str(sub.seq) + payload[d:]
        if gap:
            def nxt():
                sub.seq += 1 + gap
                return sub.seq
        else:
            nxt = sub.next_seq
        return rewrite_sid_seq(payload, sub.sid, nxt)[0]

    def terminal_error(self, sub: KalshiSub, code: int) -> str:
        """An error frame for ``sub``; terminal codes end the subscription."""
        text = self.error(None, code, None, sid=sub.sid)
        if code in self.k.TERMINAL_ERROR_CODES:
            self.by_channel.pop(sub.channel, None)
            self.by_sid.pop(sub.sid, None)
        return text


def _fp(q, places: int) -> str:
    """A Decimal as Kalshi fixed-point text: at least ``places`` decimals, never rounded."""
    exp = q.as_tuple().exponent
    return format(q, f".{max(places, -exp if isinstance(exp, int) else 0)}f")


def snapshot_frame(sid: int, seq: int, ticker: str, market_id: str | None, book) -> str:
    """A current-format ``orderbook_snapshot`` of a ``KalshiBook`` (None: empty). A side's
    key is absent when that side is empty, as Kalshi sends it."""
    msg: dict = {"market_ticker": ticker, "market_id": market_id or ""}
    if book is not None:
        if book.yes:
            msg["yes_dollars_fp"] = [[_fp(p, 4), _fp(q, 2)] for p, q in book.yes.items()]
        if book.no:
            msg["no_dollars_fp"] = [[_fp(p, 4), _fp(q, 2)] for p, q in book.no.items()]
    return _dumps({"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": msg})


def _apply_kalshi_row(books: dict, payload, kalshi) -> None:
    """Apply one recorded Kalshi payload (``kalshi``: the venue module) to ``books``
    {ticker: (KalshiBook, market_id)}: snapshots replace a book, deltas change it."""
    if not isinstance(payload, str) or '"orderbook_' not in payload:
        return
    try:
        msgs = kalshi.decode(payload)
    except DecodeError:
        return
    for m in msgs:
        if isinstance(m, (kalshi.OrderbookSnapshot, kalshi.OrderbookDelta)):
            book, mid = books.get(m.instrument) or (kalshi.KalshiBook(m.instrument), None)
            if isinstance(m, kalshi.OrderbookSnapshot):
                book.apply_snapshot(m.yes, m.no)
            else:
                book.apply_delta(m.side, m.price, m.delta)
            books[m.instrument] = (book, m.market_id or mid)


class _BookCursor:
    """Recorded books at a point of the recording, kept up to date instead of rebuilt: a
    client's stream only moves forward, so each answer reads just the rows streamed since
    the previous one (rebuilding from the start made an answer cost the whole recording so
    far, in the event loop); asked again at the same point it reads nothing. ``open_rows()``
    gives a fresh iterator over the recorded inbound rows in receive order; asked for a
    point it has passed (a stream that went back), it starts again from the beginning, and
    for a frame it never meets, it answers with the books at the end, as a rebuild would.
    Subclasses say how a row changes the books (``_apply``) and what empty state is
    (``_reset``). The books handed out are the cursor's own: render them before the next
    answer."""

    def __init__(self, open_rows):
        self._open = open_rows
        self._rows = None
        self._at = None  # the frame id read last
        self.rows_read = 0  # for tests: how much of the recording the answers cost
        self._reset()

    def _move_to(self, upto_fid: int) -> None:
        if upto_fid != self._at and (self._rows is None or not self._advance(upto_fid)):
            self._rows = self._open()
            self._reset()
            self._advance(upto_fid)

    def _advance(self, upto_fid: int) -> bool:
        apply = self._apply
        for row in self._rows:
            self.rows_read += 1
            self._at = row[0]
            apply(row)
            if row[0] == upto_fid:
                return True
        self._rows = None
        return False

    def _reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self, row) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class KalshiBookCursor(_BookCursor):
    """The recorded Kalshi books ({ticker: (KalshiBook, market_id)}) at a point of one
    client's stream (``get_snapshot``, a resumed client's snapshots). Every market's book is
    kept, since a later request may name any of them."""

    def books(self, tickers: set[str], upto_fid: int | None) -> dict:
        if upto_fid is None or not tickers:
            return {}
        self._move_to(upto_fid)
        return {t: self._books[t] for t in tickers if t in self._books}

    def _reset(self) -> None:
        from harness.venues import kalshi

        self._kalshi = kalshi
        self._books: dict = {}

    def _apply(self, row) -> None:
        _apply_kalshi_row(self._books, row[7], self._kalshi)


class ExchangeBookCursor(_BookCursor):
    """The recorded books of one exchange venue at a point of the recording (a resumed
    client's snapshot), rebuilt by the venue module's own sessions
    (``harness.venues.get(venue).new_session()``), one per recorded connection. An
    instrument's book is the one of the recorded connection whose frame last touched it (a
    reconnect's new snapshot takes over from the old connection's book); the books handed
    out are the sessions' own ``L2Book`` objects."""

    def __init__(self, venue: str, open_rows):
        self.venue = venue
        self.v = get_venue(venue)
        super().__init__(open_rows)

    def books(self, upto_fid: int | None) -> dict:
        if upto_fid is None:
            return {}
        self._move_to(upto_fid)
        return {k: b for k, b in self._books.items() if len(b)}

    def _reset(self) -> None:
        self._sessions: dict = {}  # recorded conn id -> venue session
        self._books: dict = {}  # instrument -> L2Book

    def _apply(self, row) -> None:
        fid, cid, payload = row[0], row[2], row[7]
        s = self._sessions.get(cid)
        if s is None:
            s = self._sessions[cid] = self.v.new_session()
        try:
            msgs, _ = s.feed(payload, fid)
        except DecodeError:
            return
        for m in msgs:
            inst = getattr(m, "instrument", None)
            if inst is not None:
                b = s.books.get(inst)
                if b is not None:
                    self._books[inst] = b


def _levels_best_first(book, n: int | None = None):
    """(bids, asks) of an ``L2Book``: its Level entries, best first (wire text kept)."""
    return book.top_levels(True, n), book.top_levels(False, n)


def coinbase_snapshot_frame(seq: int, ts_ns: int, product_id: str, book) -> str:
    """An Advanced Trade ``l2_data`` ``snapshot`` of an ``L2Book`` (bids best first, then
    offers), prices and quantities as the recorded text, ``event_time`` = ``timestamp``."""
    ts = ns_to_rfc3339(ts_ns)
    et = ts[:-4] + "Z"  # event_time carries microseconds
    bids, asks = _levels_best_first(book)
    ups = [{"side": "bid", "event_time": et, "price_level": lv.price_text or str(lv.price),
            "new_quantity": lv.qty_text or str(lv.qty)} for lv in bids]
    ups += [{"side": "offer", "event_time": et, "price_level": lv.price_text or str(lv.price),
             "new_quantity": lv.qty_text or str(lv.qty)} for lv in asks]
    return _dumps({"channel": "l2_data", "client_id": "", "timestamp": ts, "sequence_num": seq,
                   "events": [{"type": "snapshot", "product_id": product_id, "updates": ups}]})


def kraken_snapshot_frame(symbol: str, book, ts_ns: int, depth: int | None = None) -> str:
    """A Kraken v2 ``book`` ``snapshot`` of an ``L2Book`` (at most ``depth`` levels a side),
    prices and quantities as JSON numbers with the recorded text, and the CRC32 checksum
    ``harness.venues.kraken`` verifies (top 10 of what is sent)."""
    from harness.venues import kraken

    bids, asks = _levels_best_first(book, depth)
    if depth is not None and (book.n_bids > depth or book.n_asks > depth):
        from harness.venues.book import L2Book

        sent = L2Book(symbol, float_keys=False)
        sent.apply_snapshot(bids + asks)
        crc = kraken.checksum(sent)
    else:
        crc = kraken.checksum(book)

    def side(levels) -> str:
        return ",".join('{"price":%s,"qty":%s}' % (lv.price_text or lv.price, lv.qty_text or lv.qty) for lv in levels)  # noqa: UP031

    return ('{"channel":"book","type":"snapshot","data":[{"symbol":%s,"bids":[%s],"asks":[%s],'  # noqa: UP031
            '"checksum":%d,"timestamp":"%s"}]}' % (_dumps(symbol), side(bids), side(asks), crc, ns_to_rfc3339(ts_ns)[:-4] + "Z"))


def gemini_snapshot_frame(symbol: str, book) -> str:
    """Gemini v2's first ``l2_updates`` for a symbol: the whole book (``trades`` present,
    empty: the marker of a full book), prices and quantities as the recorded text."""
    bids, asks = _levels_best_first(book)
    changes = [["buy", lv.price_text or str(lv.price), lv.qty_text or str(lv.qty)] for lv in bids]
    changes += [["sell", lv.price_text or str(lv.price), lv.qty_text or str(lv.qty)] for lv in asks]
    return _dumps({"changes": changes, "symbol": symbol, "trades": [], "type": "l2_updates"})


def _peek_id(payload):
    m = re.search(r'"id"\s*:\s*(\d+)', payload) if isinstance(payload, str) else None
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- exchanges

ALWAYS = "\0always"
CONTROL = "\0control"

_CB_AT = {"l2_data": "level2", "subscriptions": CONTROL, "heartbeats": "heartbeats"}
_CB_EX = {"snapshot": "level2", "l2update": "level2", "match": "matches", "last_match": "matches",
          "subscriptions": CONTROL, "error": CONTROL}
_GEM = {"l2_updates": "l2", "trade": "l2", "heartbeat": ALWAYS, "error": CONTROL}


def _topic_coinbase(s: str) -> str | None:
    ch = top_level_str_value(s, "channel")
    if ch is not None:
        return _CB_AT.get(ch, ch)
    t = top_level_str_value(s, "type")
    return _CB_EX.get(t, t) if t is not None else None


_KRAKEN_V1_TAIL = re.compile(r'"([^"\\]*)"\s*,\s*"([^"\\]*)"\s*\]\s*$')


def _topic_kraken(s: str) -> str | None:
    if s[:1] == "[":  # v1: [channelID, data..., "book-10", "XBT/USD"]
        m = _KRAKEN_V1_TAIL.search(s, max(0, len(s) - 200))
        return m.group(1).split("-", 1)[0] if m is not None else None
    ch = top_level_str_value(s, "channel")
    if ch is not None:
        if ch == "heartbeat":
            return ALWAYS
        if ch == "status":
            return CONTROL
        return ch
    if top_level_str_value(s, "method") is not None:
        return CONTROL
    ev = top_level_str_value(s, "event")
    if ev == "heartbeat":
        return ALWAYS
    if ev is not None:
        return CONTROL
    return None


def _topic_bitstamp(s: str) -> str | None:
    ev = top_level_str_value(s, "event")
    if ev in ("bts:subscription_succeeded", "bts:unsubscription_succeeded", "bts:heartbeat", "bts:error"):
        return CONTROL
    if ev == "bts:request_reconnect":
        return ALWAYS
    return top_level_str_value(s, "channel")


def _topic_gemini(s: str) -> str | None:
    t = top_level_str_value(s, "type")
    if t is None:
        return None
    return _GEM.get(t, t[: -len("_updates")] if t.endswith("_updates") else t)


def _topic_cryptocom(s: str) -> str | None:
    m = top_level_str_value(s, "method")
    if m == "public/heartbeat":
        return ALWAYS
    if m == "subscribe":
        sub = top_level_str_value(s, "subscription")
        if sub is None:
            i = s.find('"subscription"')
            if i < 0:
                return CONTROL  # a bare ack
            from harness.venues._json import str_value

            sub = str_value(s, "subscription")
        return sub
    return CONTROL if m is not None else None


# the book channel of the venues whose resumed clients get a snapshot (see the module docstring)
_BOOK_KEY = {"coinbase": "level2", "kraken": "book", "gemini": "l2"}

_PRODUCT_ID = re.compile(r'"product_id"\s*:\s*"([^"\\]*)"')
_SYMBOL = re.compile(r'"symbol"\s*:\s*"([^"\\]*)"')


def _inst_kraken(s: str) -> list[str]:
    if s[:1] == "[":
        m = _KRAKEN_V1_TAIL.search(s, max(0, len(s) - 200))
        return [m.group(2)] if m is not None else []
    return _SYMBOL.findall(s)


# venue -> instruments named in a frame; venues absent here are filtered by channel name
_INSTRUMENTS = {"coinbase": _PRODUCT_ID.findall, "kraken": _inst_kraken, "gemini": _SYMBOL.findall}

_TOPIC = {"coinbase": _topic_coinbase, "kraken": _topic_kraken, "bitstamp": _topic_bitstamp,
          "gemini": _topic_gemini, "cryptocom": _topic_cryptocom}


class ExchangeFlow:
    """Coinbase, Kraken, Bitstamp, Gemini, Crypto.com (see the module docstring)."""

    def __init__(self, track: VenueTrack):
        self.venue = track.venue
        self.track = track
        self.v = get_venue(track.venue)
        self.topic = _TOPIC.get(self.venue, lambda s: None)
        self.keys: dict[str, set[str] | None] = {}  # channel key -> instruments (None: all)
        self.instruments_of = _INSTRUMENTS.get(self.venue)
        self.subs: dict[str, list[str]] = {}  # channel -> instruments (for Coinbase acks)
        self.started = False
        self.seq = -1  # Coinbase AT sequence_num, from 0 per connection
        # timestamps in replies (Coinbase acks, Kraken acks and pongs); the server sets the
        # recorded time the client's stream has reached, so replies agree with the frames
        # around them
        self.now_ns = time.time_ns
        self.last_fid: int | None = None
        self.last_t: int | None = None  # recorded wall time of the last frame streamed
        self.commands = 0
        self.errors = 0
        # a resumed client (set by the server): upto_fid -> {instrument: L2Book}; its first
        # book subscription per instrument gets a snapshot of the recorded book at last_fid
        self.resume_books = None
        self._snapshotted: set[str] = set()

    def on_connect(self) -> list[str]:
        if self.venue == "kraken":
            if self.track.status_frame is not None:
                return [self.track.status_frame]
            return [self.v.status_frame(version=1 if self.track.path != "/v2" else 2)]
        return []

    def error(self, message: str, cmd=None) -> str:
        self.errors += 1
        v = self.venue
        message = message[:200]
        if v == "coinbase":
            return _dumps({"type": "error", "message": message})
        if v == "kraken":
            obj = {"error": message, "success": False}
            if cmd is not None:
                obj["method"] = cmd.action
                if cmd.id is not None:
                    obj["req_id"] = cmd.id
            return _dumps(obj)
        if v == "bitstamp":
            return _dumps({"event": "bts:error", "channel": "", "data": {"code": None, "message": message}})
        if v == "cryptocom":
            return _dumps({"id": cmd.id if cmd is not None and cmd.id is not None else -1, "code": 10004,
                           "method": cmd.action if cmd is not None else "", "message": message})
        return _dumps({"type": "error", "reason": "InvalidRequest", "message": message})

    def _keys(self, cmd) -> set[str]:
        if self.venue == "bitstamp":
            ch = cmd.params.get("channel")
            return {ch} if ch else set()
        if self.venue == "cryptocom":
            return set(cmd.params.get("channel_names") or cmd.channels)
        if self.venue == "coinbase":
            return {"level2" if c == "level2_batch" else c for c in cmd.channels}
        return set(cmd.channels)

    def on_command(self, payload) -> list[str]:
        self.commands += 1
        if not isinstance(payload, str):
            return [self.error("binary frames are not commands")]
        try:
            cmd = self.v.parse_command(payload)
        except DecodeError as e:
            return [self.error(e.message)]
        except Exception as e:  # noqa: BLE001 - a client frame must never crash the server
            return [self.error(f"{type(e).__name__}: {e}")]
        try:
            return self._answer(cmd)
        except Exception as e:  # noqa: BLE001
            return [self.error(f"{type(e).__name__}: {e}", cmd)]

    def _answer(self, cmd) -> list[str]:
        a = cmd.action
        if a in ("subscribe", "unsubscribe"):
            keys = self._keys(cmd)
            for ch in cmd.channels:
                cur = self.subs.setdefault(ch, [])
                if a == "subscribe":
                    cur.extend(i for i in cmd.instruments if i not in cur)
                else:
                    self.subs[ch] = [i for i in cur if i not in cmd.instruments]
                    if not self.subs[ch] or not cmd.instruments:
                        self.subs.pop(ch, None)
            wanted = {i.upper() for i in cmd.instruments} if self.instruments_of is not None else set()
            for k in keys:
                if a == "subscribe":
                    if not wanted:
                        self.keys[k] = None
                    elif k not in self.keys:
                        self.keys[k] = set(wanted)
                    elif self.keys[k] is not None:
                        self.keys[k] |= wanted
                elif k in self.keys:
                    cur = self.keys[k]
                    if not wanted:
                        self.keys.pop(k)
                    elif cur is not None:
                        cur -= wanted
                        if not cur:
                            self.keys.pop(k)
                    # all instruments minus some cannot be told apart here: all keep flowing
            if a == "subscribe":
                self.started = True
                if self.resume_books is not None and _BOOK_KEY.get(self.venue) in keys:
                    return self._acks(cmd) + self._resume_snapshots(cmd)
            return self._acks(cmd)
        if self.venue == "cryptocom" and a == "public/respond-heartbeat":
            return []
        if self.venue == "kraken" and a == "ping":
            now = self.now_ns()
            return self.v.ack_frames(cmd, t_in_ns=now, t_out_ns=now)
        if self.venue == "bitstamp" and a == "heartbeat":
            return self.v.ack_frames(cmd)
        return [self.error(f"unknown or unsupported command {a!r}", cmd)]

    def _resume_snapshots(self, cmd) -> list[str]:
        """Snapshots of the recorded books at ``last_fid`` for the instruments this
        subscription names (all when none), once per instrument (module docstring)."""
        v = self.venue
        if (v == "coinbase" and cmd.params.get("feed") == "exchange") or (v == "kraken" and cmd.params.get("version") != 2):
            return []
        wanted = {i.upper() for i in cmd.instruments}
        out = []
        for inst, book in sorted(self.resume_books(self.last_fid).items()):
            if (wanted and inst.upper() not in wanted) or inst in self._snapshotted:
                continue
            self._snapshotted.add(inst)
            if v == "coinbase":
                self.seq += 1
                out.append(coinbase_snapshot_frame(self.seq, self.now_ns(), inst, book))
            elif v == "kraken":
                from harness.venues.kraken import DEFAULT_DEPTH

                out.append(kraken_snapshot_frame(inst, book, self.now_ns(), cmd.params.get("depth", DEFAULT_DEPTH)))
            else:
                out.append(gemini_snapshot_frame(inst, book))
        return out

    def _acks(self, cmd) -> list[str]:
        if self.venue == "coinbase":
            if cmd.params.get("feed") == "exchange":
                return [self.v.exchange_subscriptions_frame(self.subs)]
            self.seq += 1
            return [self.v.subscriptions_frame(self.subs, sequence_num=self.seq, ts_ns=self.now_ns())]
        if self.venue == "kraken":
            now = self.now_ns()
            return self.v.ack_frames(cmd, t_in_ns=now, t_out_ns=now)
        return self.v.ack_frames(cmd)

    def match(self, conn_id: int, payload, typ: str | None):
        if not self.started:
            return None
        if payload.__class__ is not str:
            return True
        t = self.topic(payload)
        if t is None or t is ALWAYS:
            return True
        if t is CONTROL:
            return None
        if t not in self.keys:
            return None
        want = self.keys[t]
        if want is None:
            return True
        named = self.instruments_of(payload)
        if not named:
            return True  # instrument cannot be told: send
        for i in named:
            if i.upper() in want:
                return True
        return None

    def render(self, handle, payload, gap: int = 0):
        if self.venue == "coinbase" and payload.__class__ is str and '"sequence_num"' in payload:
            spans = top_level_int_spans(payload, ("sequence_num",))
            if spans:
                self.seq += 1 + gap
                return replace_spans(payload, {spans["sequence_num"]: self.seq})
        return payload


def new_flow(track: VenueTrack):
    return KalshiFlow(track) if track.venue == "kalshi" else ExchangeFlow(track)
