"""Impersonation server: plays a recording back to real WebSocket clients as the venues.

    async with ImpersonationServer("rec.db", speed=1, faults="drop=0.01,seed=7") as srv:
        srv.urls        # {"kalshi": "ws://127.0.0.1:PORT/trade-api/ws/v2", "coinbase": ...}
        srv.fault_log   # [{"fault": "drop", "venue": ..., "client": 1, "frame_id": 42, ...}]
        srv.stats       # counters, lateness percentiles
        await srv.serve_forever()   # or just run clients against srv.urls

URL map (one listener, one path per recorded venue)
- each venue is served at the path of its recorded URL (``connections.url``), else at the
  venue's real path: Kalshi ``/trade-api/ws/v2``, Kraken v2 ``/v2`` (v1 ``/``), Gemini
  ``/v2/marketdata``, Crypto.com ``/exchange/v1/market``, Coinbase and Bitstamp ``/``;
- when several venues share a path (Coinbase and Bitstamp both at ``/``), each of them is
  served only at ``/<venue><path>`` (``/coinbase/``, ``/bitstamp/``);
- ``/<venue><path>`` is accepted for every venue as an alias; any other path gets 404.
``srv.urls`` (and ``harness serve --urls-file``) give the URL to use per venue.

Handshake: Kalshi needs ``KALSHI-ACCESS-KEY``/``-TIMESTAMP``/``-SIGNATURE``. With
``auth_key`` (an RSA public or private key, PEM path or object) the RSA-PSS signature of
``timestamp + "GET" + path`` (the path requested, or the venue's own path for a client
signing as for the real host) and the timestamp skew (``max_skew_s``) are verified; without it only presence and format (13-digit ms timestamp, base64 signature).
A refusal is HTTP 401 with ``{"error":{"code":"authentication_error","message":...,
"details":...}}`` (application/json). Refuse faults answer their status with
``{"error":{"code":"refused","message":...}}`` (429 adds ``Retry-After: 1``).

Streaming: each client has its own cursor through its venue's recorded inbound frames,
started when its first subscription is acknowledged, paced by an absolute ``Schedule``
at ``speed`` (its first frame goes out at once). Recorded disconnects (a connection of
the venue that closed before the last one, or closed with a code other than 1000, and
``disconnect`` events) close the client at their recorded time with the recorded code
(1006: the TCP connection is aborted); the next connection to that venue (same Kalshi key
id) resumes the recording after that point, as the recorder's reconnect did. With
``resume_reconnects`` a connection that ends any other way before the end of the recording
(client close, network drop, an injected fault) is resumed too: the next connection to
that venue (same key id) goes on right after the last recorded frame the previous one was
sent (frames it rendered but never wrote, a dropped or held-back one, are not repeated), and
as a venue gives a new subscriber the current book, its first subscription to a book
channel is answered with a snapshot of the recorded book at that point
(``venue_flows``: Kalshi, Coinbase Advanced Trade, Kraken v2, Gemini; Bitstamp's client
fetches REST). Without it a new connection starts at the beginning of the recording. At the end
of the recording the connection closes with 1000 "end of recording", or with ``loop``
the cursor restarts (subscriptions, sids and seq continue). Kalshi clients get a WS Ping
with body ``heartbeat`` every ``ping_interval_s / speed`` seconds. A frame is rendered
(its seq taken) only when it is due, right before it is written, so a reply sent while the
stream waits (``ok``, a ``get_snapshot`` answer) never overtakes a lower seq.

Kalshi ``update_subscription``/``get_snapshot`` is answered with ``ok`` and then, per
market, a fresh ``orderbook_snapshot`` (current fixed-point format) of the recorded book
after the last frame written to that client, rebuilt from the recording in the event loop
(so the stream cannot move meanwhile) with the connection's next seqs. It is the
recording's book: frames a fault dropped for this client are in it, as on the real venue.

``track_sent=True`` remembers the recorded time of every data frame sent, by its exact
text (``sent_time(venue, payload)`` pops it): ``replay --via-server`` uses it to put what
arrives back on the recorded timeline.

REST: a plain HTTP GET (no ``Upgrade: websocket``) is answered from the recording's
``http`` table (``rest_replay``): the latest recorded answer for the same path and query
(order-insensitive) received at or before ``now_line()``, the replay's current time on the
frames' timeline (or the first answer, when recorded at most ``rest_lead_s`` later); else 404 with ``{"error":{"code":"not_found",...}}``. The clock is at the
recording's start until the first client, then follows the streams (paced: ``speed`` times
wall time, never behind the latest frame sent; ``max``: the latest frame sent), so a REST
poller beside a stream sees the REST view of that moment.

Safety: sends go through websockets' ``write_limit``; a client whose send has been blocked
for ``slow_client_s`` (it is not reading) is aborted, with the reason in the log and in
``srv.clients`` (``buffered_peak``: the most bytes seen queued for it, about
``write_limit`` plus one batch of frames). Client frames never crash a connection: they get
the venue's error reply; a frame over 1 MiB closes that client with 1009. Non-GET requests
are dropped by websockets without an answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import itertools
import logging
import os
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from harness.errors import ConfigError
from harness.replay import rest_replay
from harness.replay.faults import FaultPlan
from harness.replay.schedule import Schedule, parse_speed, percentiles
from harness.replay.venue_flows import (
    KALSHI_CONTROL,
    ExchangeBookCursor,
    KalshiBookCursor,
    KalshiFlow,
    KalshiSub,
    VenueTrack,
    new_flow,
)
from harness.store.reader import Filters, Recording

log = logging.getLogger("harness.replay.server")

DEFAULT_PATHS = {
    "kalshi": "/trade-api/ws/v2",
    "kraken": "/v2",
    "gemini": "/v2/marketdata",
    "cryptocom": "/exchange/v1/market",
    "coinbase": "/",
    "bitstamp": "/",
}
KALSHI_HEADERS = ("KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE")
CHUNK = 1024
_ABORT_CODES = (1005, 1006, 1015)


@dataclass
class Mark:
    """A recorded disconnect on the venue's timeline."""

    t: int
    code: int
    reason: str
    conn_id: int | None


@dataclass
class ClientInfo:
    no: int
    venue: str
    path: str
    key_id: str | None = None
    frames_sent: int = 0
    bytes_sent: int = 0
    commands: int = 0
    errors: int = 0
    close_code: int | None = None
    close_reason: str = ""
    resumed_at: int | None = None  # timeline ns this connection resumed after (None: from the start)
    resumed_fid: int | None = None  # ... right after this recorded frame (resume_reconnects)
    resume_next: tuple | None = None  # set at a recorded disconnect: where the next connection resumes
    sending_since: float = 0.0
    buffered_peak: int = 0  # most bytes seen queued in its transport (the watchdog samples it)
    schedules: list = field(default_factory=list)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_key(key):
    if key is None:
        return None
    if isinstance(key, (str, os.PathLike)) and os.path.exists(key):
        with open(key, "rb") as f:
            data = f.read()
    elif isinstance(key, (bytes, str)):
        data = key.encode() if isinstance(key, str) else key
    else:
        return key  # a cryptography key object
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        try:
            return serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            raise ConfigError(f"cannot read an RSA key from {key!r}", hint="pass the PEM public key of the API key") from None


class ImpersonationServer:
    def __init__(
        self,
        recording,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float | str | None = 1.0,
        loop: bool = False,
        auth_key=None,
        max_skew_s: float = 5.0,
        faults: FaultPlan | str | None = None,
        allow_remote: bool = False,
        precise: bool = False,
        write_limit: int = 64 * 1024,
        slow_client_s: float = 2.0,
        ping_interval_s: float = 10.0,
        close_timeout_s: float = 2.0,
        max_fault_log: int = 1_000_000,
        track_sent: bool = False,
        rest_lead_s: float = 5.0,
        resume_reconnects: bool = False,
    ):
        self.path = os.fspath(recording)
        self.host = host
        self.port = port
        try:
            self.speed = parse_speed(speed)
        except ValueError as e:
            raise ConfigError(str(e), hint="speed 1, 10 or max") from None
        self.loop = loop
        self.auth_key = _load_key(auth_key)
        self.max_skew_ms = int(max_skew_s * 1000)
        self.plan = FaultPlan.coerce(faults)
        self.allow_remote = allow_remote
        self.precise = precise
        self.write_limit = write_limit
        self.slow_client_s = slow_client_s
        self.ping_interval_s = ping_interval_s
        self.close_timeout_s = close_timeout_s
        self.max_fault_log = max_fault_log
        self.fault_log: list[dict] = []
        self.fault_log_dropped = 0
        self.warnings: list[str] = []
        self.tracks: dict[str, VenueTrack] = {}
        self.routes: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        self.clients: list[ClientInfo] = []
        self._active: set[int] = set()
        self._client_no = itertools.count(1)
        self._attempts = 0
        self._refused = 0
        self._not_found = 0
        self._auth_refused = 0
        # (venue, key id) -> (timeline ns, frame id or None, recorded wall ns or None): where
        # the next connection resumes (after a recorded disconnect; resume_reconnects: after
        # the last frame the previous connection was sent)
        self._resume: dict[tuple, tuple] = {}
        self.resume_reconnects = resume_reconnects
        self._offsets: dict[int, int] = {}  # session id -> shift of its monotonic clock onto the timeline
        self._server = None
        self._books_rec: Recording | None = None  # read by snapshot answers, opened at the first
        self._exchange_books: dict[str, ExchangeBookCursor] = {}  # venue -> books at a resume point
        self._tasks: set[asyncio.Task] = set()
        self.rest: rest_replay.RestTable = rest_replay.RestTable()
        self.rest_served = 0
        self.rest_lead_ns = int(rest_lead_s * 1e9)
        self.rest_not_found = 0
        # the replay's current time on the recording's timeline (REST answers follow it)
        self._origin: int | None = None
        self._anchor: tuple[int, int] | None = None  # (perf_counter_ns, timeline ns)
        self._line_sent = 0
        # track_sent: venue -> {sent text: deque of recorded times}, so an in-process
        # consumer (replay --via-server) can put each data frame back on the recorded timeline
        self.sent_times: dict[str, dict] | None = {} if track_sent else None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> ImpersonationServer:
        if not _is_loopback(self.host):
            if not self.allow_remote:
                raise ConfigError(
                    f"refusing to listen on non-loopback host {self.host!r}",
                    hint="the impersonation server has no real security; pass --allow-remote if you mean it",
                )
            w = f"listening on {self.host}: the impersonation server is reachable from other machines"
            self.warnings.append(w)
            log.warning(w)
        await asyncio.to_thread(self._scan)
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            ping_interval=None,
            ping_timeout=None,
            close_timeout=self.close_timeout_s,
            write_limit=self.write_limit,
            compression=None,
            max_size=2**20,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        host = self.host if ":" not in self.host else f"[{self.host}]"
        for v, t in self.tracks.items():
            path = t.path if self.routes.get(t.path) == v else "/" + v + t.path
            self.urls[v] = f"ws://{host}:{self.port}{path}"
        return self

    @property
    def rest_url(self) -> str:
        """Base URL of the REST answers (append a recorded path, e.g. ``/trade-api/v2/markets``)."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await self._server.wait_closed()
            self._server = None
        if self._books_rec is not None:
            self._books_rec.close()
            self._books_rec = None

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()

    # -- recording scan --------------------------------------------------------------------
    def _scan(self) -> None:
        with Recording(self.path) as rec:
            conns = rec.connections()
            offsets = self._offsets = {s: rec.session_offset_ns(s) for s in rec.session_ids()}
            for c in conns:
                v = c["venue"].lower()
                tr = self.tracks.get(v)
                if tr is None:
                    path = DEFAULT_PATHS.get(v, "/")
                    if c.get("url"):
                        path = urlsplit(c["url"]).path or "/"
                    tr = self.tracks[v] = VenueTrack(venue=v, path=path, url=c.get("url"))
                tr.conn_ids.append(c["id"])
            counts = dict(rec.db.execute("SELECT conn_id, count(*) FROM frames WHERE dir = 'in' GROUP BY conn_id"))
            for tr in self.tracks.values():
                tr.frames = sum(counts.get(c, 0) for c in tr.conn_ids)
            # recorded disconnects
            by_id = {c["id"]: c for c in conns}
            events = rec.events(("disconnect",))
            for tr in self.tracks.values():
                last = max(tr.conn_ids, key=lambda i: (by_id[i].get("opened_ns") or 0, i))
                seen = set()
                for cid in tr.conn_ids:
                    c = by_id[cid]
                    if c.get("closed_ns") is None:
                        continue
                    code = c.get("close_code")
                    if cid == last and code in (None, 1000):
                        continue
                    tr.marks.append(Mark(c["closed_ns"], code or 1006, c.get("close_reason") or "", cid))
                    seen.add(cid)
                for e in events:
                    cid = e.get("conn_id")
                    if cid not in tr.conn_ids or cid in seen:
                        continue
                    d = e.get("detail") if isinstance(e.get("detail"), dict) else {}
                    t = e["t_wall_ns"]
                    if e.get("t_mono_ns") is not None:
                        t = e["t_mono_ns"] + offsets.get(e["session_id"], 0)
                    tr.marks.append(Mark(t, int(d.get("code") or d.get("close_code") or 1006), str(d.get("reason") or ""), cid))
                    seen.add(cid)
                tr.marks.sort(key=lambda m: m.t)
            self._scan_kalshi(rec)
            self._scan_kraken(rec)
            self.rest = rest_replay.RestTable.load(rec, offsets)
            firsts = [m + offsets.get(s, 0) for s, m in rec.db.execute(
                "SELECT session_id, min(t_mono_ns) FROM frames GROUP BY session_id") if isinstance(m, int)]
            if self.rest.first_t is not None:
                firsts.append(self.rest.first_t)
            self._origin = min(firsts) if firsts else 0
        # routes
        by_path = defaultdict(list)
        for v, tr in self.tracks.items():
            by_path[tr.path].append(v)
        for p, vs in by_path.items():
            if len(vs) == 1:
                self.routes[p] = vs[0]
        for v, tr in self.tracks.items():
            self.routes["/" + v + tr.path] = v

    def _scan_kalshi(self, rec: Recording) -> None:
        tr = self.tracks.get("kalshi")
        if tr is None:
            return
        import re

        from harness.venues import kalshi

        mkt = re.compile(r'"market_tickers?"\s*:\s*(\[[^\]]*\]|"[^"]*")')
        ids = ",".join(str(c) for c in tr.conn_ids)
        for (payload,) in rec.db.execute(f"SELECT payload FROM frames WHERE dir = 'out' AND opcode = 'text' AND conn_id IN ({ids})"):
            for m in mkt.finditer(payload or ""):
                try:
                    v = orjson.loads(m.group(1))
                except orjson.JSONDecodeError:
                    continue
                tr.markets.update([v] if isinstance(v, str) else [x for x in v if isinstance(x, str)])
        one = re.compile(r'"market_ticker"\s*:\s*"([^"\\]*)"')
        cur = rec.db.execute(f"SELECT conn_id, payload, type FROM frames WHERE dir = 'in' AND opcode = 'text' AND conn_id IN ({ids})")
        while True:
            rows = cur.fetchmany(4096)
            if not rows:
                break
            for cid, payload, typ in rows:
                if not isinstance(payload, str):
                    continue
                m = one.search(payload)
                if m is not None:
                    tr.markets.add(m.group(1))
                if typ is None:
                    typ = kalshi.classify(payload)
                if typ == "subscribed":
                    try:
                        msg = orjson.loads(payload).get("msg") or {}
                        tr.sid_channel[(cid, int(msg["sid"]))] = str(msg["channel"])
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                        pass

    def _scan_kraken(self, rec: Recording) -> None:
        tr = self.tracks.get("kraken")
        if tr is None:
            return
        ids = ",".join(str(c) for c in tr.conn_ids)
        for (payload,) in rec.db.execute(
            f"SELECT payload FROM frames WHERE dir = 'in' AND opcode = 'text' AND conn_id IN ({ids}) ORDER BY id LIMIT 5"
        ):
            if isinstance(payload, str) and ('"channel":"status"' in payload or '"systemStatus"' in payload):
                tr.status_frame = payload
                return

    def _kalshi_book_cursor(self) -> KalshiBookCursor:
        """The recorded Kalshi books at a point of one client's stream (get_snapshot).
        Read in the event loop on purpose: the stream cannot move while the answer is built,
        so the snapshot's seq and content match the point of the stream it is sent at. One
        cursor per client, reading on from its previous answer (venue_flows.KalshiBookCursor)."""
        rec = self._recording()
        return KalshiBookCursor(lambda: rec.rows(Filters(venues=("kalshi",), dir="in", opcodes=("text",))))

    def _recording(self) -> Recording:
        if self._books_rec is None:
            self._books_rec = Recording(self.path)
        return self._books_rec

    def _exchange_book_cursor(self, venue: str) -> ExchangeBookCursor:
        """The recorded books of an exchange at a resumed client's starting point, rebuilt
        by the venue module's sessions (venue_flows.ExchangeBookCursor). One per venue,
        shared by its clients: resumes follow each other forward along the recording. Read in
        the event loop, like ``_kalshi_book_cursor``."""
        cur = self._exchange_books.get(venue)
        if cur is None:
            rec = self._recording()
            cur = self._exchange_books[venue] = ExchangeBookCursor(
                venue, lambda: rec.rows(Filters(venues=(venue,), dir="in", opcodes=("text",))))
        return cur

    def _line_of(self, frame_id: int) -> int | None:
        """A recorded frame's time on the timeline (session offsets applied)."""
        row = self._recording().db.execute("SELECT session_id, t_mono_ns FROM frames WHERE id = ?", (frame_id,)).fetchone()
        if row is None or not isinstance(row[1], int):
            return None
        return row[1] + self._offsets.get(row[0], 0)

    def _resume_after(self, client: ClientInfo, flow) -> tuple | None:
        """Where the next connection of ``client``'s venue (and key) resumes when this one
        ended other than at a recorded disconnect: with ``resume_reconnects`` and unless the
        recording ran out, right after the last frame it was sent (a client that was sent
        nothing passes on its own starting point)."""
        if not self.resume_reconnects or client.close_reason == "end of recording":
            return None
        if flow.last_fid is None or flow.last_fid == client.resumed_fid:
            if client.resumed_at is None:
                return None
            return (client.resumed_at, client.resumed_fid, flow.last_t)
        line = self._line_of(flow.last_fid)
        return None if line is None else (line, flow.last_fid, flow.last_t)

    # -- faults log ------------------------------------------------------------------------
    def _log_fault(self, entry: dict) -> None:
        entry.setdefault("t_ns", time.time_ns())
        if len(self.fault_log) < self.max_fault_log:
            self.fault_log.append(entry)
        else:
            self.fault_log_dropped += 1
        log.info("fault %s", orjson.dumps(entry).decode())

    # -- sent frames' recorded times (track_sent) --------------------------------------------
    def _sent_log(self, venue: str):
        if self.sent_times is None:
            return None
        d = self.sent_times.setdefault(venue, {})

        def note(text, t_line: int, t_wall: int) -> None:
            q = d.get(text)
            if q is None:
                d[text] = deque(((t_line, t_wall),))
            else:
                q.append((t_line, t_wall))
        return note

    def sent_time(self, venue: str, payload) -> tuple[int, int] | None:
        """(timeline ns, recorded wall ns) of the oldest unclaimed data frame sent to a
        ``venue`` client with exactly this payload (then forgotten); None for replies and
        control frames."""
        d = (self.sent_times or {}).get(venue)
        q = d.get(payload) if d else None
        if not q:
            return None
        t = q.popleft()
        if not q:
            del d[payload]
        return t

    # -- the replay's current time ----------------------------------------------------------
    def now_line(self) -> int:
        """Where the replay is on the recording's timeline (REST answers follow it): the
        recording's start until the first client; paced, then ``speed`` times the time
        since, jumping forward to a stream's first frame when it starts later, never behind
        the latest frame sent; unpaced (``max``), the latest frame sent."""
        t = max(self._origin or 0, self._line_sent)
        if self._anchor is not None and self.speed is not None:
            p0, l0 = self._anchor
            t = max(t, l0 + int((time.perf_counter_ns() - p0) * self.speed))
        return t

    def _start_clock(self, t_line: int | None = None) -> None:
        if self.speed is None:
            return
        if t_line is None:
            if self._anchor is None:
                self._anchor = (time.perf_counter_ns(), self._origin or 0)
        elif self.now_line() < t_line:
            self._anchor = (time.perf_counter_ns(), t_line)

    def _rest_response(self, request):
        """Answer a plain HTTP GET from the recording's ``http`` table (see rest_replay)."""
        path, _, query = request.path.partition("?")
        self._start_clock()
        now = self.now_line()
        ans = self.rest.lookup(path, query, now, self.rest_lead_ns)
        if ans is None:
            self.rest_not_found += 1
            why = "no recorded REST response at this point of the replay" if self.rest.resolve(path) else "unknown path"
            return rest_replay.response(404, rest_replay.not_found_body(path, why) + "\n")
        self.rest_served += 1
        return rest_replay.response(ans.status, ans.body, ans.content_type)

    # -- handshake -------------------------------------------------------------------------
    def _json_response(self, connection, status: int, body: dict, extra_headers: dict | None = None):
        resp = connection.respond(status, orjson.dumps(body).decode() + "\n")
        del resp.headers["Content-Type"]
        resp.headers["Content-Type"] = "application/json"
        for k, v in (extra_headers or {}).items():
            resp.headers[k] = v
        return resp

    def _process_request(self, connection, request):
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._rest_response(request)
        path = request.path.split("?", 1)[0]
        venue = self.routes.get(path)
        if venue is None:
            self._not_found += 1
            known = ", ".join(sorted(self.routes))
            return connection.respond(404, f"404 Not Found: no venue at {path}; serving {known}\n")
        self._attempts += 1
        status = self.plan.refuse_status(self._attempts) if self.plan else None
        if status is not None:
            self._refused += 1
            self._log_fault({"fault": "refuse", "venue": venue, "client": None, "frame_id": None,
                             "index": None, "status": status, "attempt": self._attempts})
            extra = {"Retry-After": "1"} if status == 429 else None
            return self._json_response(connection, status, {"error": {"code": "refused", "message": f"injected fault: HTTP {status}"}}, extra)
        if venue == "kalshi":
            reason = self._kalshi_auth(request)
            if reason is not None:
                self._auth_refused += 1
                log.info("kalshi handshake refused: %s", reason)
                return self._json_response(
                    connection, 401,
                    {"error": {"code": "authentication_error", "message": "authentication failed", "details": reason}},
                )
        connection.harness_venue = venue
        return None

    def _kalshi_auth(self, request) -> str | None:
        h = request.headers
        vals = [h.get(k) for k in KALSHI_HEADERS]
        for k, v in zip(KALSHI_HEADERS, vals, strict=True):
            if v is None or not v.strip():
                return f"missing header {k}"
        key_id, ts, sig = vals
        if not (ts.isdigit() and ts.isascii() and len(ts) == 13):
            return f"{KALSHI_HEADERS[1]} must be Unix milliseconds (13 digits), got {ts[:20]!r}"
        if self.auth_key is None:
            try:
                base64.b64decode(sig, validate=True)
            except (binascii.Error, ValueError):
                return f"{KALSHI_HEADERS[2]} is not base64"
            return None
        from harness.venues import kalshi_auth

        # the signed path is the one requested; the venue's own path is accepted too (a
        # client signing as for the real host while connecting to the /kalshi/... alias)
        now_ms = time.time_ns() // 1_000_000
        for path in dict.fromkeys((request.path.split("?", 1)[0], self.tracks["kalshi"].path)):
            res = kalshi_auth.verify(self.auth_key, dict(h.raw_items()), path, now_ms=now_ms, max_skew_ms=self.max_skew_ms)
            if res.ok or res.reason not in ("bad signature", "wrong path signed"):
                break
        if not res.ok:
            return f"{res.reason}{': ' + res.detail if res.detail else ''}"
        return None

    # -- connections -----------------------------------------------------------------------
    async def _handler(self, ws) -> None:
        venue = getattr(ws, "harness_venue", None) or self.routes.get(ws.request.path.split("?", 1)[0])
        track = self.tracks[venue]
        key_id = ws.request.headers.get("KALSHI-ACCESS-KEY") if venue == "kalshi" else None
        client = ClientInfo(next(self._client_no), venue, ws.request.path, key_id)
        self.clients.append(client)
        self._active.add(client.no)
        flow = new_flow(track)
        if venue == "kalshi":
            flow.books_at = self._kalshi_book_cursor().books
        else:  # replies are stamped with the recorded time this client's stream has reached
            origin = self._origin or 0
            flow.now_ns = lambda: flow.last_t if flow.last_t is not None else origin
        go = asyncio.Event()
        resume_key = (venue, key_id)
        resume = self._resume.pop(resume_key, None)
        if resume is not None:
            client.resumed_at, client.resumed_fid, t_wall = resume
            if client.resumed_fid is not None:
                # resumed after the previous client's last frame: the books (get_snapshot,
                # and the snapshot a venue gives a new subscriber) start from there
                flow.last_fid, flow.last_t = client.resumed_fid, t_wall
                if venue == "kalshi":
                    flow.resume_snapshots = True
                elif venue in ("coinbase", "kraken", "gemini"):
                    flow.resume_books = self._exchange_book_cursor(venue).books
        tasks = [asyncio.create_task(self._stream(ws, flow, track, client, go, resume_key)),
                 asyncio.create_task(self._watchdog(ws, client))]
        if venue == "kalshi":
            tasks.append(asyncio.create_task(self._pinger(ws)))
        self._tasks.update(tasks)
        try:
            for text in flow.on_connect():
                await self._send(ws, client, text)
            async for msg in ws:
                try:
                    replies = flow.on_command(msg)
                except Exception as e:  # noqa: BLE001 - the flows answer errors themselves; this is the net under them
                    log.warning("client %d (%s): command not answered: %s: %s", client.no, venue, type(e).__name__, e)
                    replies = []
                client.commands = flow.commands
                client.errors = flow.errors
                for r in replies:
                    await self._send(ws, client, r)
                if flow.started and not go.is_set():
                    go.set()
        except ConnectionClosed:
            pass
        finally:
            for t in tasks:
                t.cancel()
            # before any await: a reconnect must find where to resume (the stream task is
            # not running now, so the last frame sent is final)
            if client.close_code is None:
                client.close_code = ws.close_code if ws.close_code is not None else 1006
                client.close_reason = client.close_reason or "closed by client"
            if client.resume_next is None:
                nxt = self._resume_after(client, flow)
                if nxt is not None:
                    self._resume[resume_key] = nxt
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
            self._active.discard(client.no)

    async def _send(self, ws, client: ClientInfo, text) -> None:
        client.sending_since = time.monotonic()
        await ws.send(text)
        client.sending_since = 0.0

    async def _close(self, ws, client: ClientInfo, code: int, reason: str) -> None:
        client.close_code, client.close_reason = code, reason
        if code in _ABORT_CODES:
            ws.transport.abort()
        else:
            try:
                await ws.close(code, reason[:120])
            except Exception:  # noqa: BLE001 - invalid code or dead transport: abort
                ws.transport.abort()

    async def _watchdog(self, ws, client: ClientInfo) -> None:
        """Abort a client whose writes stay paused (write buffer above ``write_limit``)
        without any progress for ``slow_client_s``. Costs nothing per frame."""
        tick = min(0.25, self.slow_client_s / 4)
        since = None
        sent = -1
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if ws.transport is not None:
                b = ws.transport.get_write_buffer_size()
                if b > client.buffered_peak:
                    client.buffered_peak = b
            s = client.sending_since
            blocked = getattr(ws, "paused", False) or (s and now - s > self.slow_client_s)
            if not blocked or client.frames_sent != sent:
                since = now if blocked else None
                sent = client.frames_sent
                continue
            if now - since > self.slow_client_s:
                buffered = ws.transport.get_write_buffer_size() if ws.transport else 0
                reason = f"client not reading: send blocked {now - since:.1f}s with {buffered} bytes buffered (write_limit {self.write_limit})"
                log.warning("client %d (%s): %s; disconnecting", client.no, client.venue, reason)
                client.close_code, client.close_reason = 1006, reason
                ws.transport.abort()
                return

    async def _pinger(self, ws) -> None:
        interval = self.ping_interval_s / (self.speed or 1.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await ws.ping(b"heartbeat")
            except ConnectionClosed:
                return

    # -- streaming -------------------------------------------------------------------------
    async def _chunks(self, venue: str, start_after: tuple | None):
        """Chunks of (frame_id, conn_id, t_line, payload, type, t_wall), read in the event loop,
        from after ``start_after`` = (t_line, frame id or None): after that frame (frames of
        the same time come in the same order every read), else after that time.

        Reads run in the loop (about a millisecond per CHUNK frames, off the p99). A worker
        thread reading ahead gained nothing measurable at --speed max (bench_serve) and
        contended for the GIL with the pacing timer; it also left a SQLite cursor live in
        another thread while the loop could close its connection."""
        rec = Recording(self.path)
        offsets = {s: rec.session_offset_ns(s) for s in rec.session_ids()}
        it = rec.rows(Filters(venues=(venue,), dir="in", opcodes=("text", "binary")))
        start_t, start_fid = start_after[:2] if start_after is not None else (None, None)
        passed = start_fid is None
        try:
            while True:
                rows = list(itertools.islice(it, CHUNK))
                if not rows:
                    return
                out = []
                for fid, sid, cid, _d, tw, tm, _op, payload, typ in rows:
                    t = tm + offsets[sid]
                    if start_t is not None and t <= start_t:
                        if t < start_t or start_fid is None:
                            continue
                        if not passed:  # the same time: up to the frame itself
                            passed = fid == start_fid
                            continue
                    out.append((fid, cid, t, payload, typ, tw))
                yield out
                await asyncio.sleep(0)  # let other clients and the timer run between chunks
        finally:
            rec.close()

    async def _stream(self, ws, flow, track: VenueTrack, client: ClientInfo, go: asyncio.Event, resume_key) -> None:
        try:
            await go.wait()
            await self._stream_inner(ws, flow, track, client, resume_key)
        except ConnectionClosed:
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - log, close the client, keep serving the others
            log.exception("client %d (%s): streaming failed", client.no, client.venue)
            await self._close(ws, client, 1011, f"internal error: {type(e).__name__}")

    async def _stream_inner(self, ws, flow, track: VenueTrack, client: ClientInfo, resume_key) -> None:
        speed = self.speed
        inj = self.plan.injector(track.venue, client.no, self._log_fault) if self.plan else None
        is_kalshi = isinstance(flow, KalshiFlow)
        note = self._sent_log(track.venue)
        start_after = (client.resumed_at, client.resumed_fid) if client.resumed_at is not None else None
        match, render, send = flow.match, flow.render, ws.send
        # Unpaced: frames are written in batches inside one send_context (one transport
        # write and one drain per batch instead of per frame); flow control still applies.
        batch: list = []
        batch_bytes = 0
        batch_t = 0
        protocol = ws.protocol

        async def flush():
            nonlocal batch, batch_bytes
            if batch:
                out, batch, batch_bytes = batch, [], 0
                async with ws.send_context():
                    for t in out:
                        if t.__class__ is str:
                            protocol.send_text(t.encode())
                        else:
                            protocol.send_binary(t)
                client.frames_sent += len(out)
                if batch_t > self._line_sent:
                    self._line_sent = batch_t

        while True:
            sched = Schedule(speed, precise=self.precise)
            client.schedules.append(sched)
            wait = sched.wait_async
            marks = [m for m in track.marks if start_after is None or m.t > start_after[0]]
            next_mark = marks[0].t if marks else None
            mi = 0
            first_t = None
            index = 0
            held: list[list] = []
            async for chunk in self._chunks(track.venue, start_after):
                for fid, cid, t_line, payload, typ, tw in chunk:
                    if next_mark is not None and t_line >= next_mark:
                        m = marks[mi]
                        mi += 1
                        next_mark = marks[mi].t if mi < len(marks) else None
                        if first_t is not None:
                            await flush()
                            await wait(m.t)
                            for h in held:
                                await send(h[1])
                            client.resume_next = self._resume[resume_key] = (m.t, None, None)
                            log.info("client %d (%s): recorded disconnect %d after data frame %d", client.no, track.venue, m.code, index)
                            await self._close(ws, client, m.code, m.reason or "recorded disconnect")
                            return
                    h = match(cid, payload, typ)
                    if h is None:
                        continue
                    index += 1
                    if first_t is None:
                        first_t = t_line
                        self._start_clock(t_line)
                    a = inj.actions(index, t_line - first_t) if inj is not None else None
                    # Render (which takes the next seq) only once the frame is due and nothing
                    # can yield before it is written: a reply sent meanwhile (ok, a get_snapshot
                    # answer) would otherwise go out with a later seq ahead of this frame.
                    # ``last_fid`` marks the frame written last (get_snapshot rebuilds to it).
                    if a is None:
                        if speed is None:
                            text = render(h, payload)
                            flow.last_fid, flow.last_t = fid, tw
                            if note is not None:
                                note(text, t_line, tw)
                            batch.append(text)
                            batch_bytes += len(text)
                            batch_t = t_line
                            if batch_bytes >= 65536 or len(batch) >= 256:
                                await flush()
                        else:
                            await wait(t_line)
                            text = render(h, payload)
                            flow.last_fid, flow.last_t = fid, tw
                            if note is not None:
                                note(text, t_line, tw)
                            await send(text)
                            client.frames_sent += 1
                            if t_line > self._line_sent:
                                self._line_sent = t_line
                    else:
                        await flush()
                        if await self._faulted(ws, flow, client, inj, a, h, fid, index, payload, t_line, wait, held, is_kalshi, note, tw):
                            return
                    if held:
                        await flush()
                        for item in held:
                            item[0] -= 1
                        while held and held[0][0] <= 0:
                            item = held.pop(0)
                            await send(item[1])
                            client.frames_sent += 1
                await flush()
            for item in held:
                await send(item[1])
                client.frames_sent += 1
            if not self.loop:
                break
            start_after = None
        await self._close(ws, client, 1000, "end of recording")

    async def _faulted(self, ws, flow, client, inj, a, h, fid, index, payload, t_line, wait, held, is_kalshi, note, tw) -> bool:
        """Apply fault actions to one frame. True when the connection was closed."""
        sub = h if isinstance(h, KalshiSub) else None

        def rec(kind, **kw):
            if sub is not None:
                kw.setdefault("sid", sub.sid)
            inj.record(kind, fid, index, **kw)

        if a.stall_ns:
            rec("stall", seconds=a.stall_ns / 1e9)
            await asyncio.sleep(a.stall_ns / 1e9)
        if a.disconnect is not None:
            if self.speed is not None:
                await wait(t_line)
            rec("disconnect", code=a.disconnect)
            await self._close(ws, client, a.disconnect, "injected fault")
            return True
        if a.kalshi_error is not None and is_kalshi:
            text = flow.terminal_error(sub, a.kalshi_error)
            rec("kalshi_error", code=a.kalshi_error)
            await self._send(ws, client, text)
            if a.kalshi_error in flow.k.TERMINAL_ERROR_CODES:
                return False  # the subscription ended: this frame is not sent
        if a.bts_reconnect and track_is(flow, "bitstamp"):
            rec("bts_reconnect")
            await self._send(ws, client, flow.v.request_reconnect_frame())
        if a.drop:
            render = flow.render(h, payload)
            flow.last_fid, flow.last_t = fid, tw  # the recorded book moved on even if this client missed it
            rec("drop", **({"seq": sub.seq} if sub is not None and '"seq"' in render else {}))
            return False
        if a.delay_ns and not a.hold:
            rec("delay", ms=round(a.delay_ns / 1e6, 3))
            if a.delay_ns > 0:
                await asyncio.sleep(a.delay_ns / 1e9)
        if self.speed is not None and not a.hold:
            await wait(t_line)
        gap = 0
        if a.seqgap:
            gap = 1
        text = flow.render(h, payload, gap)
        flow.last_fid, flow.last_t = fid, tw
        if a.seqgap:
            rec("seqgap", **({"seq": sub.seq} if sub is not None else {}))
        if a.corrupt and isinstance(text, str):
            text = text[: len(text) // 2]
            rec("corrupt")
        if note is not None:
            note(text, t_line, tw)
            if a.dup:
                note(text, t_line, tw)
        if a.hold:
            held.append([a.hold + 1, text, fid])
            rec("reorder", after=a.hold, **({"seq": sub.seq} if sub is not None else {}))
            return False
        await self._send(ws, client, text)
        client.frames_sent += 1
        if a.dup:
            rec("dup", **({"seq": sub.seq} if sub is not None else {}))
            await self._send(ws, client, text)
            client.frames_sent += 1
        return False

    # -- reporting -------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        per = {}
        lat = []
        for c in self.clients:
            p = per.setdefault(c.venue, {"connections": 0, "frames_sent": 0, "commands": 0, "errors": 0, "disconnects": 0})
            p["connections"] += 1
            p["frames_sent"] += c.frames_sent
            p["commands"] += c.commands
            p["errors"] += c.errors
            if c.close_code is not None and c.close_reason != "closed by client":
                p["disconnects"] += 1
            for s in c.schedules:
                lat.extend(s.lateness)
        return {
            "clients_total": len(self.clients),
            "clients_active": len(self._active),
            "handshakes": self._attempts,
            "refused": self._refused,
            "auth_refused": self._auth_refused,
            "not_found": self._not_found,
            "rest_served": self.rest_served,
            "rest_not_found": self.rest_not_found,
            "faults": len(self.fault_log) + self.fault_log_dropped,
            "venues": per,
            "lateness": percentiles(lat),
            "slow_clients": sum(1 for c in self.clients if c.close_reason.startswith("client not reading")),
        }


def track_is(flow, venue: str) -> bool:
    return getattr(flow, "venue", None) == venue


__all__ = ["ImpersonationServer", "ClientInfo", "Mark", "DEFAULT_PATHS", "KALSHI_CONTROL"]
