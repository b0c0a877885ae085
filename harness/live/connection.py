"""One venue connection: connect (auth headers signed fresh on every attempt), subscribe,
heartbeats, stale detection, reconnect with backoff, and every frame recorded.

Recording every frame, control frames included
----------------------------------------------
The websockets asyncio API answers pings and closes by itself and never shows control
frames to the application. ``RecordingClientConnection`` (a ``ClientConnection``
subclass, passed to ``connect(create_connection=...)``) therefore taps the sans-I/O
``Protocol`` underneath:

- ``data_received`` takes the wall and monotonic clocks the moment bytes arrive; every
  frame parsed from those bytes carries that receipt time.
- ``protocol.recv_frame`` is wrapped: each inbound frame (after permessage-deflate) is
  handed to ``FrameTap.inbound`` *before* the protocol reacts to it, so an automatic Pong
  is recorded after the Ping that caused it. Fragmented messages are recorded once, when
  the final fragment arrives.
- ``protocol.send_frame`` is wrapped: every outbound frame (subscribe, automatic Pong,
  keepalive Ping, Close) is recorded, text payloads redacted (``harness.live.redact``).

The tap appends to the writer's queue (no I/O) and hands ``(frame_id, payload)`` to the
reader loop, which calls ``recv(decode=False)`` only for flow control and close
semantics, so a text frame is UTF-8 decoded once.

Venue behaviour (subscribe frames, app-level heartbeats, reconnect requests, Kalshi
sequence gaps and subscription bookkeeping) lives in ``Handler`` subclasses.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Frame, Opcode

from harness.config import VenueConfig
from harness.live import redact
from harness.live.backoff import Backoff

log = logging.getLogger("harness.live")

_OPNAME = {Opcode.TEXT: "text", Opcode.BINARY: "binary", Opcode.PING: "ping", Opcode.PONG: "pong", Opcode.CLOSE: "close"}
_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT

RECONNECT = object()  # a handler returns this among its frames to ask for a reconnect


# --------------------------------------------------------------------------- the tap


class FrameTap:
    """Records one connection's frames into a ``RecordingWriter``-like object (``frame``)."""

    __slots__ = (
        "write", "conn_id", "t_wall", "t_mono", "pending", "frag_op", "frags", "error",
        "rx_frames", "rx_bytes", "tx_frames", "last_rx_mono", "last_rx_wall", "request", "response",
        "transport_ns", "_clock_wall", "_clock_mono",
    )

    def __init__(self, writer, conn_id: int):
        self.write = writer.frame
        self.conn_id = conn_id
        self._clock_wall = time.time_ns
        self._clock_mono = time.monotonic_ns
        self.t_wall = self._clock_wall()
        self.t_mono = self._clock_mono()
        self.pending: deque = deque()  # (frame_id, payload) per data message, for the reader loop
        self.frag_op = None
        self.frags: list = []
        self.error: BaseException | None = None
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.last_rx_mono = self.t_mono
        self.last_rx_wall = self.t_wall
        self.request = None
        self.response = None
        self.transport_ns: int | None = None  # perf_counter_ns when the transport was up (after TLS)

    def stamp(self) -> None:
        self.t_wall = self._clock_wall()
        self.t_mono = self._clock_mono()

    def inbound(self, frame: Frame) -> None:
        try:
            op = frame.opcode
            data = frame.data
            self.rx_frames += 1
            self.rx_bytes += len(data)
            self.last_rx_mono = self.t_mono
            self.last_rx_wall = self.t_wall
            if op is _TEXT or op is _BINARY or op is _CONT:
                if not frame.fin:
                    if op is not _CONT:
                        self.frag_op = op
                    self.frags.append(bytes(data))
                    return
                if self.frags:
                    self.frags.append(bytes(data))
                    data = b"".join(self.frags)
                    op = self.frag_op
                    self.frags = []
                    self.frag_op = None
                if op is _TEXT:
                    try:
                        payload = str(data, "utf-8")
                    except UnicodeDecodeError:
                        payload = bytes(data)
                    fid = self.write(self.conn_id, "in", self.t_wall, self.t_mono, "text", payload)
                else:
                    payload = bytes(data)
                    fid = self.write(self.conn_id, "in", self.t_wall, self.t_mono, "binary", payload)
                self.pending.append((fid, payload))
            else:
                self.write(self.conn_id, "in", self.t_wall, self.t_mono, _OPNAME.get(op, str(op)), bytes(data))
        except BaseException as e:  # never break the protocol; the reader loop reports it
            self.error = e
            if frame.fin and frame.opcode in (_TEXT, _BINARY, _CONT):
                self.pending.append((None, None))

    def outbound(self, frame: Frame) -> None:
        try:
            op = frame.opcode
            self.tx_frames += 1
            if op is _TEXT:
                try:
                    payload: str | bytes = redact.redact_frame(str(frame.data, "utf-8"))
                except UnicodeDecodeError:
                    payload = bytes(frame.data)
                name = "text"
            else:
                payload = bytes(frame.data)
                name = _OPNAME.get(op, "binary" if op is _CONT else str(op))
            self.write(self.conn_id, "out", self._clock_wall(), self._clock_mono(), name, payload)
        except BaseException as e:
            self.error = e


class RecordingClientConnection(ClientConnection):
    """``ClientConnection`` that feeds every frame, both ways, to a ``FrameTap``."""

    tap: FrameTap

    def __init__(self, protocol, *, tap: FrameTap, **kwargs):
        super().__init__(protocol, **kwargs)
        self.tap = tap
        recv_frame = protocol.recv_frame
        send_frame = protocol.send_frame
        inbound, outbound = tap.inbound, tap.outbound

        def tapped_recv_frame(frame: Frame) -> None:
            inbound(frame)
            recv_frame(frame)

        def tapped_send_frame(frame: Frame) -> None:
            send_frame(frame)
            outbound(frame)

        protocol.recv_frame = tapped_recv_frame
        protocol.send_frame = tapped_send_frame

    def connection_made(self, transport) -> None:
        # For wss:// asyncio calls this once the TLS handshake is done: the end of "tls".
        self.tap.transport_ns = time.perf_counter_ns()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.tap.stamp()
        super().data_received(data)

    async def handshake(self, *args, **kwargs) -> None:
        try:
            await super().handshake(*args, **kwargs)
        finally:
            self.tap.request = self.request
            self.tap.response = self.response

    async def close(self, code: int = 1000, reason: str = "") -> None:
        # Keep reading during the close handshake: the frames the server sent before it saw
        # our Close are then recorded, and a full receive queue (reading paused) cannot stall
        # the handshake into a timeout and an abort (tests/reliability/test_record_process.py).
        async def drain() -> None:
            try:
                while True:
                    await self.recv(decode=False)
            except Exception:  # noqa: BLE001 - closed (the goal) or another reader active
                pass

        drainer = asyncio.ensure_future(drain())
        try:
            await super().close(code, reason)
        finally:
            drainer.cancel()


_RESYNC_KINDS = frozenset(("gap", "checksum"))  # book findings that only a new snapshot repairs


async def open_timed_socket(url: str, timeout: float | None, timings: dict) -> socket.socket:
    """Resolve and connect the TCP socket ourselves so DNS and TCP connect times can be
    measured apart (websockets' connect() does both inside one call). Fills ``timings``
    with ``dns_ms``, ``tcp_ms``, ``remote_addr``; ``finish_timings`` adds TLS and upgrade.
    Addresses are tried in resolver order; the first that connects wins."""
    loop = asyncio.get_running_loop()
    u = urlsplit(url)
    if u.scheme not in ("ws", "wss") or not u.hostname:
        raise InvalidURI(url, "expected a ws:// or wss:// URL with a host")
    port = u.port or (443 if u.scheme == "wss" else 80)
    t = time.perf_counter_ns()
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(u.hostname, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        t_dns = time.perf_counter_ns()
        timings["dns_ms"] = round((t_dns - t) / 1e6, 3)
        last: OSError | None = None
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except OSError as e:
                sock.close()
                last = e
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t_tcp = time.perf_counter_ns()
            timings["tcp_ms"] = round((t_tcp - t_dns) / 1e6, 3)
            timings["remote_addr"] = addr[0]
            timings["_t_tcp"] = t_tcp
            timings["_tls"] = u.scheme == "wss"
            return sock
        raise last or OSError(f"no address for {u.hostname}")


def finish_timings(timings: dict, tap: FrameTap) -> None:
    """Turn the stamps left by ``open_timed_socket`` and the connection into ``tls_ms``
    (wss only) and ``upgrade_ms`` (HTTP upgrade request to 101)."""
    t_tcp = timings.pop("_t_tcp", None)
    tls = timings.pop("_tls", False)
    end = time.perf_counter_ns()
    made = getattr(tap, "transport_ns", None)
    if t_tcp is None or made is None:
        return
    if tls:
        timings["tls_ms"] = round((made - t_tcp) / 1e6, 3)
    timings["upgrade_ms"] = round((end - made) / 1e6, 3)
    timings["connect_ms"] = round(sum(timings.get(k, 0.0) for k in ("dns_ms", "tcp_ms", "tls_ms", "upgrade_ms")), 3)


def _factory(tap: FrameTap) -> Callable[..., RecordingClientConnection]:
    def make(protocol, **kwargs):
        return RecordingClientConnection(protocol, tap=tap, **kwargs)

    return make  # type: ignore[return-value]


# --------------------------------------------------------------------------- handlers


class Handler:
    """Venue behaviour on one (re)connecting connection. Subclasses override what they need.

    ``emit(kind, detail)`` records an event on the current connection (set by
    ``VenueConnection``)."""

    def __init__(self, cfg: VenueConfig):
        self.cfg = cfg
        self.emit: Callable[[str, dict], None] = lambda kind, detail: None
        self._venue = None

    @property
    def venue(self):
        if self._venue is None:
            from harness import venues

            try:
                self._venue = venues.get(self.cfg.name)
            except Exception:  # noqa: BLE001 - module not written yet: fallbacks below
                self._venue = False
        return self._venue or None

    def reset(self) -> None:
        """A new connection: forget per-connection state."""

    def on_open(self) -> list[str]:
        if self.cfg.subscribe is not None:
            return list(self.cfg.subscribe)
        return self.subscribe_frames()

    def subscribe_frames(self) -> list[str]:
        v = self.venue
        if v is not None:
            try:
                return list(v.subscribe_frames(list(self.cfg.channels), list(self.cfg.instruments)))
            except NotImplementedError:
                pass
        return self.fallback_subscribe()

    def fallback_subscribe(self) -> list[str]:
        raise NotImplementedError(f"no subscribe frames for {self.cfg.name}; set [venues.{self.cfg.name}] subscribe")

    def on_message(self, payload, frame_id) -> list | None:
        return None

    def app_ping(self) -> str | None:
        return None


class CoinbaseHandler(Handler):
    """Advanced Trade: one subscribe per channel; ``heartbeats`` keeps quiet channels open."""

    def subscribe_frames(self) -> list[str]:
        frames = super().subscribe_frames()
        if "heartbeats" not in self.cfg.channels and self.venue is not None:
            frames.append(self.venue.heartbeat_subscribe_frame())
        return frames

    def fallback_subscribe(self) -> list[str]:
        return [
            orjson.dumps({"type": "subscribe", "channel": c} if c == "heartbeats" else
                         {"type": "subscribe", "product_ids": self.cfg.instruments, "channel": c}).decode()
            for c in self.cfg.channels
        ]


class KrakenHandler(Handler):
    """v2: subscribe per channel (book with depth); app-level ``ping`` every ``app_ping_interval``."""

    def __init__(self, cfg: VenueConfig):
        super().__init__(cfg)
        self.req_id = 0

    def subscribe_frames(self) -> list[str]:
        v = self.venue
        if v is not None:
            return list(v.subscribe_frames(list(self.cfg.channels), list(self.cfg.instruments), depth=self.cfg.depth))
        return self.fallback_subscribe()

    def fallback_subscribe(self) -> list[str]:
        out = []
        for c in self.cfg.channels:
            p: dict = {"channel": c, "symbol": self.cfg.instruments}
            if c == "book" and self.cfg.depth:
                p["depth"] = self.cfg.depth
            out.append(orjson.dumps({"method": "subscribe", "params": p}).decode())
        return out

    def app_ping(self) -> str | None:
        self.req_id += 1
        return orjson.dumps({"method": "ping", "req_id": self.req_id}).decode()


class BitstampHandler(Handler):
    """``bts:request_reconnect`` from the server: reconnect (recorded as a gap).
    ``on_subscribed(channel)`` is told of each ``bts:subscription_succeeded`` (the recorder
    fetches the REST order book a ``diff_order_book`` stream is aligned to)."""

    def __init__(self, cfg: VenueConfig):
        super().__init__(cfg)
        self.on_subscribed: Callable[[str], None] | None = None

    def fallback_subscribe(self) -> list[str]:
        return [orjson.dumps({"event": "bts:subscribe", "data": {"channel": f"{c}_{i}"}}).decode()
                for c in self.cfg.channels for i in self.cfg.instruments]

    def on_message(self, payload, frame_id):
        if payload.__class__ is not str or "bts:" not in payload:
            return None  # data frames: one substring scan
        if "bts:request_reconnect" in payload:
            self.emit("note", {"action": "reconnect", "cause": "bts:request_reconnect", "frame_id": frame_id})
            return [RECONNECT]
        if "bts:subscription_succeeded" in payload and self.on_subscribed is not None:
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return None
            ch = obj.get("channel") if obj.__class__ is dict else None
            if obj.__class__ is dict and obj.get("event") == "bts:subscription_succeeded" and isinstance(ch, str):
                self.on_subscribed(ch)
        return None


class GeminiHandler(Handler):
    def fallback_subscribe(self) -> list[str]:
        return [orjson.dumps({"type": "subscribe", "subscriptions": [
            {"name": c, "symbols": self.cfg.instruments} for c in self.cfg.channels]}).decode()]


class CryptocomHandler(Handler):
    """Answers ``public/heartbeat`` with ``public/respond-heartbeat`` and the same id."""

    def __init__(self, cfg: VenueConfig):
        super().__init__(cfg)
        self.next_id = 1

    def subscribe_frames(self) -> list[str]:
        return self.fallback_subscribe()  # explicit: channel naming below is what we record

    def fallback_subscribe(self) -> list[str]:
        chans = []
        for c in self.cfg.channels:
            for i in self.cfg.instruments:
                chans.append(f"{c}.{i}.{self.cfg.depth}" if c == "book" and self.cfg.depth else f"{c}.{i}")
        fid = self.next_id
        self.next_id += 1
        return [orjson.dumps({"id": fid, "method": "subscribe", "params": {"channels": chans},
                              "nonce": time.time_ns() // 1_000_000}).decode()]

    def on_message(self, payload, frame_id):
        if payload.__class__ is str and "public/heartbeat" in payload:
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return None
            if obj.get("method") == "public/heartbeat":
                return [orjson.dumps({"id": obj.get("id"), "method": "public/respond-heartbeat"}).decode()]
        return None


class KalshiHandler(Handler):
    """Kalshi subscriptions: one ``subscribe`` for all channels and markets; ``sid`` per
    channel from the ``subscribed`` replies; ``seq`` per sid checked (a gap, repeat or
    reset sends ``update_subscription``/``get_snapshot`` for that market); error codes
    10, 17, 25 resubscribe the affected channels. ``set_markets`` returns the
    ``add_markets``/``delete_markets`` frames for a new market set (rollover)."""

    def __init__(self, cfg: VenueConfig, markets: list[str] | None = None):
        super().__init__(cfg)
        self.markets: list[str] = list(markets or cfg.instruments)
        self.on_lifecycle: Callable[[str, str, dict], None] | None = None
        self.reset()

    def reset(self) -> None:
        from harness.venues.kalshi import KalshiCommands, SeqTracker

        self.cmds = KalshiCommands()
        self.seq = SeqTracker()
        self.sids: dict[str, int] = {}
        self.sid_channel: dict[int, str] = {}
        self.pending_channels: set[str] = set()  # subscribed, awaiting the ack
        self.snapshot_pending: set[tuple[int, str]] = set()
        self.resubscribes = 0
        self.snapshot_requests = 0

    def subscribe_frames(self) -> list[str]:
        return self._subscribe(list(self.cfg.channels))

    def _subscribe(self, channels: list[str]) -> list[str]:
        if not self.markets or not channels:
            return []  # nothing to subscribe yet: set_markets subscribes when markets appear
        self.pending_channels.update(channels)
        return [self.cmds.subscribe(channels, list(self.markets))]

    def set_markets(self, markets: list[str]) -> list[str]:
        """Frames that move the live subscriptions to ``markets`` (adds before deletes)."""
        new = list(dict.fromkeys(markets))
        add = [m for m in new if m not in self.markets]
        drop = [m for m in self.markets if m not in new]
        self.markets = new
        frames: list[str] = []
        if not add and not drop:
            return frames
        unsubscribed = [c for c in self.cfg.channels if c not in self.sids and c not in self.pending_channels]
        if add:
            for ch in self.cfg.channels:
                if ch in self.sids:
                    frames.append(self.cmds.add_markets(self.sids[ch], add))
        if unsubscribed and new:
            frames += self._subscribe(unsubscribed)
        if drop:
            for ch in self.cfg.channels:
                if ch in self.sids:
                    frames.append(self.cmds.delete_markets(self.sids[ch], drop))
                    for sid_m in [k for k in self.snapshot_pending if k[1] in drop]:
                        self.snapshot_pending.discard(sid_m)
        return frames

    def on_message(self, payload, frame_id):
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if obj.__class__ is not dict:
            return None
        t = obj.get("type")
        if t == "orderbook_delta" or t == "orderbook_snapshot":
            return self._book(obj, t, frame_id)
        if t == "subscribed":
            msg = obj.get("msg") or {}
            ch, sid = msg.get("channel"), msg.get("sid")
            if isinstance(sid, int) and isinstance(ch, str):
                old = self.sids.get(ch)
                if old is not None and old != sid:
                    self.sid_channel.pop(old, None)
                    self.seq.forget(old)
                self.sids[ch] = sid
                self.sid_channel[sid] = ch
                self.pending_channels.discard(ch)
            return None
        if t == "unsubscribed":
            sid = obj.get("sid") if isinstance(obj.get("sid"), int) else (obj.get("msg") or {}).get("sid")
            ch = self.sid_channel.pop(sid, None)
            if ch is not None and self.sids.get(ch) == sid:
                del self.sids[ch]
            self.seq.forget(sid)
            return None
        if t == "error":
            return self._error(obj, frame_id)
        if t in ("market_lifecycle_v2", "event_lifecycle") and self.on_lifecycle is not None:
            msg = obj.get("msg") or {}
            ticker, ev = msg.get("market_ticker"), msg.get("event_type")
            if isinstance(ticker, str) and isinstance(ev, str):
                self.on_lifecycle(ticker, ev, msg)
        return None

    def _book(self, obj: dict, t: str, frame_id):
        sid, seq = obj.get("sid"), obj.get("seq")
        if not isinstance(sid, int) or not isinstance(seq, int):
            return None
        ticker = (obj.get("msg") or {}).get("market_ticker")
        if t == "orderbook_snapshot" and ticker:
            self.snapshot_pending.discard((sid, ticker))
        f = self.seq.observe(sid, seq, frame_id)
        if f is None or f.kind == "duplicate" or not isinstance(ticker, str):
            return None
        key = (sid, ticker)
        self.emit("finding", {"kind": f"kalshi_seq_{f.kind}", "sid": sid, "expected": f.expected, "got": f.got,
                              "market": ticker, "frame_id": frame_id, "detail": f.detail})
        if t == "orderbook_snapshot" or key in self.snapshot_pending:
            return None
        self.snapshot_pending.add(key)
        self.snapshot_requests += 1
        self.emit("note", {"action": "get_snapshot", "sid": sid, "market": ticker, "cause": f"seq {f.kind}",
                           "expected": f.expected, "got": f.got, "frame_id": frame_id})
        return [self.cmds.get_snapshot(sid, [ticker])]

    def _error(self, obj: dict, frame_id):
        from harness.venues.kalshi import error_meaning, error_requires_resubscribe

        msg = obj.get("msg") or {}
        code = msg.get("code")
        if not error_requires_resubscribe(code):
            return None
        channels: list[str] = []
        sid = obj.get("sid") if isinstance(obj.get("sid"), int) else msg.get("sid")
        if isinstance(sid, int) and sid in self.sid_channel:
            channels = [self.sid_channel[sid]]
        cid = obj.get("id")
        if not channels and isinstance(cid, int) and cid in self.cmds.sent:
            c = self.cmds.sent[cid]
            chs = getattr(getattr(c, "params", None), "channels", None)
            if chs:
                channels = [ch for ch in chs if ch in self.cfg.channels]
            else:
                sids = [s for s in c.target_sids if s in self.sid_channel]
                channels = [self.sid_channel[s] for s in sids]
        if not channels:
            channels = list(self.cfg.channels)
        frames: list[str] = []
        old = [self.sids[ch] for ch in channels if ch in self.sids]
        if old:
            frames.append(self.cmds.unsubscribe(old))
        for s in old:
            self.seq.forget(s)
            ch = self.sid_channel.pop(s, None)
            if ch is not None:
                self.sids.pop(ch, None)
        self.snapshot_pending = {k for k in self.snapshot_pending if k[0] not in old}
        self.pending_channels.difference_update(channels)
        frames += self._subscribe(channels)
        self.resubscribes += 1
        self.emit("note", {"action": "resubscribe", "code": code, "meaning": error_meaning(code),
                           "channels": channels, "old_sids": old, "frame_id": frame_id})
        return frames


HANDLERS: dict[str, type[Handler]] = {
    "kalshi": KalshiHandler,
    "coinbase": CoinbaseHandler,
    "kraken": KrakenHandler,
    "bitstamp": BitstampHandler,
    "gemini": GeminiHandler,
    "cryptocom": CryptocomHandler,
}


def make_handler(cfg: VenueConfig) -> Handler:
    return HANDLERS.get(cfg.name, Handler)(cfg)


# --------------------------------------------------------------------------- the connection


@dataclass
class VenueStats:
    state: str = "idle"  # idle | connecting | subscribed | backoff | stopped | failed
    frames_in: int = 0  # over all connections
    frames_out: int = 0
    bytes_in: int = 0
    connects: int = 0
    reconnects: int = 0
    errors: int = 0
    last_rx_wall_ns: int | None = None
    last_rx_mono_ns: int | None = None
    detail: str = ""
    fatal: str | None = None  # why the venue stopped for good
    resyncs: int = 0  # reconnects asked for because a decoded book lost an update


@dataclass
class _Ended:
    reason: str
    detail: dict = field(default_factory=dict)


class VenueConnection:
    """Keeps one venue connected until ``stop`` is set, reconnecting with ``backoff``.

    auth: ``() -> dict`` of extra handshake headers, called before *every* attempt (Kalshi
    signs a fresh timestamp each time). Secrets in ``secrets`` are scrubbed from recorded
    error bodies. ``auth_failures_max`` consecutive 401/403 responses stop this venue
    (``stats.fatal``); other venues are unaffected.
    """

    def __init__(
        self,
        cfg: VenueConfig,
        writer,
        handler: Handler | None = None,
        *,
        backoff: Backoff | None = None,
        auth: Callable[[], dict] | None = None,
        auth_failures_max: int = 3,
        secrets: tuple[str, ...] = (),
        decode: bool = False,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ):
        self.cfg = cfg
        self.name = cfg.name
        self.writer = writer
        self.handler = handler or make_handler(cfg)
        self.handler.emit = self._emit
        self.backoff = backoff or Backoff()
        self.auth = auth
        self.auth_failures_max = auth_failures_max
        self.secrets = secrets
        self.stats = VenueStats()
        self.ws: RecordingClientConnection | None = None
        self.tap: FrameTap | None = None
        self.conn_id: int | None = None
        self.session = None
        if decode and self.handler.venue is not None:
            try:
                self.session = self.handler.venue.new_session()
            except Exception:  # noqa: BLE001
                self.session = None
        self._sleep = sleep
        self._reconnect_now = asyncio.Event()
        self._last_resync_ns: int | None = None
        self._send_lock = asyncio.Lock()

    # -- public ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.ws is not None and self.stats.state == "subscribed"

    async def send(self, text: str) -> bool:
        """Send on the current connection; False when not connected (the frame is dropped:
        callers keep state so the next subscribe covers it)."""
        ws = self.ws
        if ws is None:
            return False
        try:
            async with self._send_lock:
                await ws.send(text)
            return True
        except ConnectionClosed:
            return False

    def request_reconnect(self) -> None:
        self._reconnect_now.set()

    async def run(self, stop: asyncio.Event) -> VenueStats:
        auth_failures = 0
        down_since: int | None = None  # wall ns of the last frame before an outage
        down_mono: int | None = None
        prev_conn: int | None = None
        cause = ""
        retry_after = 0.0
        first = True
        while not stop.is_set():
            if not first:
                delay = self.backoff.next_delay(at_least=retry_after)
                retry_after = 0.0
                self.stats.state = "backoff"
                self.stats.detail = f"retry in {delay:.1f}s ({cause})"
                self.stats.reconnects += 1
                self.writer.event("reconnect", time.time_ns(), time.monotonic_ns(), prev_conn,
                                  {"venue": self.name, "attempt": self.backoff.attempt, "delay_s": round(delay, 4), "cause": cause})
                if await _wait(stop, delay):
                    break
            first = False
            self.stats.state = "connecting"
            url = self.cfg.url
            conn_id = self.writer.connection(self.name, redact.redact_url(url))
            self.conn_id = prev_conn = conn_id
            tap = FrameTap(self.writer, conn_id)
            headers = self.auth() if self.auth is not None else {}
            # This attempt's signature too: a venue may echo it in a refusal's body or headers.
            secrets = self.secrets + tuple(str(v) for k, v in headers.items() if redact.is_secret_name(str(k)))
            t0 = time.time_ns()
            timings: dict[str, Any] = {}
            try:
                sock = await open_timed_socket(url, self.cfg.open_timeout, timings)
                ws = await connect(
                    url,
                    sock=sock,
                    additional_headers=headers or None,
                    create_connection=_factory(tap),
                    compression="deflate" if self.cfg.compression else None,
                    max_size=self.cfg.max_size,
                    max_queue=256,
                    ping_interval=self.cfg.ping_interval,
                    ping_timeout=self.cfg.ping_timeout,
                    close_timeout=2,
                    open_timeout=self.cfg.open_timeout,
                    proxy=None,
                )
            except InvalidStatus as e:
                status = e.response.status_code
                body = _body_text(e.response.body, secrets)
                self._record_handshake(conn_id, tap, t0, status, e.response.headers, closed=True, secrets=secrets)
                retry_after = _retry_after(e.response.headers) if status == 429 else 0.0
                self.stats.errors += 1
                self._error(conn_id, {"phase": "handshake", "status": status, "body": body,
                                      "retry_after_s": retry_after or None, "url": redact.redact_url(url)})
                cause = f"HTTP {status}"
                if status in (401, 403):
                    auth_failures += 1
                    if auth_failures >= self.auth_failures_max:
                        msg = (f"{self.name}: the server rejected our credentials (HTTP {status}) "
                               f"{auth_failures} times in a row; not retrying")
                        if self.name == "kalshi":
                            msg += ("; check KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH (and that the key "
                                    "belongs to this environment: prod vs demo)")
                        return self._fail(conn_id, msg, status)
                continue
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ValueError) as e:
                self._record_handshake(conn_id, tap, t0, None, None, closed=True)
                self.stats.errors += 1
                cause = f"{type(e).__name__}: {redact.redact_text(str(e), secrets)}"
                self._error(conn_id, {"phase": "connect", "error": cause, "url": redact.redact_url(url)})
                continue
            auth_failures = 0
            opened = time.time_ns()
            opened_mono = time.monotonic_ns()
            finish_timings(timings, tap)
            self._record_handshake(conn_id, tap, t0, ws.response.status_code if ws.response else 101,
                                   ws.response.headers if ws.response else None, closed=False)
            self.stats.connects += 1
            self.writer.event("connect", opened, opened_mono, conn_id,
                              {"venue": self.name, "url": redact.redact_url(url), "timings": timings})
            if down_since is not None:
                self.writer.event("gap", opened, opened_mono, conn_id, {
                    "venue": self.name, "from_ns": down_since, "to_ns": opened,
                    "from_mono_ns": down_mono, "to_mono_ns": opened_mono,
                    "duration_s": round((opened - down_since) / 1e9, 6), "cause": cause})
            self.handler.reset()
            if self.session is not None:
                self.session.reset()  # books wait for the fresh snapshot
            self.ws, self.tap = ws, tap
            ended = await self._serve(ws, tap, stop)
            self.ws = None
            code, reason = ws.close_code, ws.close_reason
            closed = time.time_ns()
            self.writer.close_connection(conn_id, closed, code, reason)
            self.writer.event("disconnect", closed, time.monotonic_ns(), conn_id,
                              {"venue": self.name, "code": code, "reason": reason, "cause": ended.reason, **ended.detail})
            self.backoff.connection_ended((time.monotonic_ns() - opened_mono) / 1e9)
            down_since, down_mono = tap.last_rx_wall, tap.last_rx_mono
            cause = ended.reason if code is None else f"{ended.reason} (close {code})"
            if tap.error is not None and ended.reason == "recording":
                raise tap.error
        self.stats.state = "stopped"
        return self.stats

    # -- internals ---------------------------------------------------------------------------
    def _emit(self, kind: str, detail: dict) -> None:
        self.writer.event(kind, time.time_ns(), time.monotonic_ns(), self.conn_id, {"venue": self.name, **detail})

    def _error(self, conn_id, detail: dict) -> None:
        self.writer.event("error", time.time_ns(), time.monotonic_ns(), conn_id, {"venue": self.name, **detail})
        log.warning("%s: %s", self.name, {k: v for k, v in detail.items() if k != "body"})

    def _fail(self, conn_id, msg: str, status) -> VenueStats:
        self.stats.state = "failed"
        self.stats.fatal = msg
        self.stats.detail = msg
        self.writer.event("error", time.time_ns(), time.monotonic_ns(), conn_id,
                          {"venue": self.name, "phase": "gave_up", "status": status, "message": msg})
        log.error("%s", msg)
        return self.stats

    def _record_handshake(self, conn_id, tap: FrameTap, t0: int, status, resp_headers, *, closed: bool,
                          secrets: tuple[str, ...] = ()) -> None:
        req = tap.request
        cols: dict[str, Any] = {"opened_ns": t0}
        if req is not None:
            cols["request_headers"] = redact.redact_headers(req.headers)
            cols["url"] = redact.redact_url(self.cfg.url)
        if status is not None:
            cols["response_status"] = status
        if resp_headers is not None:
            hdrs = redact.redact_headers(resp_headers)
            if secrets:  # a header echoing our key id or signature, whatever its name
                hdrs = {k: [redact.redact_text(x, secrets) for x in v] if isinstance(v, list) else redact.redact_text(v, secrets)
                        for k, v in hdrs.items()}
            cols["response_headers"] = hdrs
        if closed:
            cols["closed_ns"] = time.time_ns()
        self.writer.update_connection(conn_id, **cols)

    async def _serve(self, ws: RecordingClientConnection, tap: FrameTap, stop: asyncio.Event) -> _Ended:
        self._reconnect_now.clear()
        reader = asyncio.ensure_future(self._read(ws, tap))
        aux = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._reconnect_now.wait())]
        if self.cfg.stale_timeout:
            aux.append(asyncio.ensure_future(self._watch_stale(tap)))
        if self.cfg.app_ping_interval:
            aux.append(asyncio.ensure_future(self._app_ping(ws)))
        try:
            if self.cfg.subscribe_delay:
                await asyncio.wait([reader, aux[0]], timeout=self.cfg.subscribe_delay, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done() and not stop.is_set():
                try:
                    for text in self.handler.on_open():
                        await self.send(text)
                except NotImplementedError as e:
                    self._error(self.conn_id, {"phase": "subscribe", "error": str(e)})
                self.stats.state = "subscribed"
                self.stats.detail = ""
            done, _ = await asyncio.wait([reader, *aux], return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                ended = reader.result()
            elif aux[0] in done:
                ended = _Ended("stop")
            elif aux[1] in done:
                ended = _Ended("reconnect_requested")
            else:
                ended = next(t for t in done).result()
        finally:
            for t in (reader, *aux):
                if not t.done():
                    t.cancel()
            await asyncio.gather(reader, *aux, return_exceptions=True)
        if ended.reason != "closed":
            code, why = (1000, "") if ended.reason == "stop" else (4000, ended.reason)
            if ended.reason == "reconnect_requested":
                code = 1000
            # a stale peer will not answer the close handshake: do not wait long for it
            wait = 0.25 if ended.reason == "stale" else 2.0
            try:
                await asyncio.wait_for(ws.close(code, why), timeout=wait)
            except (TimeoutError, Exception):  # noqa: BLE001 - a dead peer: drop the TCP connection
                ws.transport.abort()
            await asyncio.sleep(0)
        return ended

    async def _read(self, ws: RecordingClientConnection, tap: FrameTap) -> _Ended:
        recv = ws.recv
        pending = tap.pending
        on_message = self.handler.on_message
        session = self.session
        stats = self.stats
        try:
            while True:
                await recv(decode=False)
                stats.frames_in = stats.frames_in + 1
                if not pending:
                    continue
                fid, payload = pending.popleft()
                if fid is None:
                    return _Ended("recording", {"error": repr(tap.error)})
                if session is not None and payload.__class__ is str:
                    self._feed(session, payload, fid)
                out = on_message(payload, fid)
                if out:
                    for item in out:
                        if item is RECONNECT:
                            return _Ended("reconnect_requested", {"frame_id": fid})
                        await self.send(item)
        except ConnectionClosed as e:
            return _Ended("closed", {"error": type(e).__name__})
        finally:
            stats.last_rx_wall_ns = tap.last_rx_wall
            stats.last_rx_mono_ns = tap.last_rx_mono

    def _feed(self, session, payload: str, fid: int) -> None:
        try:
            _msgs, findings = session.feed(payload, fid)
        except Exception as e:  # noqa: BLE001 - decode problems are findings, not crashes
            self._emit("finding", {"kind": "decode_error", "error": str(e)[:300], "frame_id": fid})
            return
        for f in findings or ():
            self._emit("finding", {"kind": f.kind, "key": f.key, "expected": str(f.expected), "got": str(f.got),
                                   "detail": f.detail, "frame_id": f.frame_id})
            if f.kind in _RESYNC_KINDS and self.cfg.resync and self.name != "kalshi":
                self._resync(f, fid)

    def _resync(self, f, fid: int) -> None:
        """A spot book lost an update: reconnect for a fresh snapshot (Kalshi instead asks
        for one per market, see KalshiHandler). Rate-limited so a venue that keeps sending
        a broken stream is not reconnected in a loop."""
        now = time.monotonic_ns()
        if self._last_resync_ns is not None and now - self._last_resync_ns < self.cfg.resync_min_interval * 1e9:
            return
        self._last_resync_ns = now
        self.stats.resyncs += 1
        self._emit("note", {"action": "reconnect", "cause": f"book {f.kind} on {f.key}", "frame_id": fid})
        self._reconnect_now.set()

    async def _watch_stale(self, tap: FrameTap) -> _Ended:
        timeout_ns = int(self.cfg.stale_timeout * 1e9)
        while True:
            idle = time.monotonic_ns() - tap.last_rx_mono
            if idle >= timeout_ns:
                self.stats.errors += 1
                self._error(self.conn_id, {"phase": "stale", "idle_s": round(idle / 1e9, 3),
                                           "stale_timeout_s": self.cfg.stale_timeout})
                return _Ended("stale", {"idle_s": round(idle / 1e9, 3)})
            await asyncio.sleep(max(0.005, (timeout_ns - idle) / 1e9))

    async def _app_ping(self, ws) -> _Ended:
        while True:
            await asyncio.sleep(self.cfg.app_ping_interval)
            frame = self.handler.app_ping()
            if frame is not None and not await self.send(frame):
                return _Ended("closed")


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True if stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False


def _retry_after(headers) -> float:
    v = headers.get("Retry-After") if headers is not None else None
    if not v:
        return 0.0
    try:
        return max(0.0, float(v))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(v).timestamp() - time.time())
        except (TypeError, ValueError):
            return 0.0


def _body_text(body: bytes | None, secrets) -> str:
    if not body:
        return ""
    # redact before cutting: a secret across the cut would otherwise leak its first part
    text = redact.redact_text(body[:65536].decode("utf-8", "replace"), secrets)
    return text[:4000]
