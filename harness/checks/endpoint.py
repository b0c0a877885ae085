"""endpoint: is every connection pointed at the right place, and was it accepted?

Codes: ``dead_endpoint`` (fail: a host the venue no longer serves, e.g. api.kalshi.com,
ws-feed.pro.coinbase.com), ``wrong_path`` (fail: a known host with a path the venue does
not serve, e.g. Kalshi without /trade-api/ws/v2), ``unknown_endpoint`` (warn),
``demo_endpoint`` (warn: demo/sandbox; fine for tests, wrong for prices),
``local_endpoint`` (info: loopback, i.e. the impersonation server), ``insecure_scheme``
(warn: ws:// to a venue host), ``no_url`` (info: not recorded, e.g. a generic import),
``handshake_failed`` (fail: response_status other than 101; 401/403 explained by the
auth check), ``unknown_venue`` (warn), ``no_frames`` (warn: a connection that received
nothing). Live timing (DNS/TCP/TLS/upgrade ms) is reported in ``stats`` when the recorder
put ``dns_ms``/``tcp_ms``/``tls_ms``/``upgrade_ms`` (or a ``timings`` dict) in the
connect event's detail; otherwise it is skipped.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from harness.checks.base import BaseCheck

_LOCAL = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
_TIMING_KEYS = ("dns_ms", "tcp_ms", "tls_ms", "upgrade_ms", "connect_ms", "handshake_ms")


def _hosts(ep) -> set[str]:
    out = set()
    for u in ep.ws_prod + ep.rest_prod + ep.ws_demo + ep.rest_demo:
        h = urlsplit(u).hostname
        if h:
            out.add(h)
    return out


class EndpointCheck(BaseCheck):
    name = "endpoint"
    description = "URLs against known prod/demo/dead hosts and paths; handshake status"

    def __init__(self, config=None):
        super().__init__(config)
        self.frames_in: Counter = Counter()
        self.conns: list[dict] = []
        self.kinds: Counter = Counter()

    def start(self, ctx) -> None:
        super().start(ctx)
        timings = {}
        for ev in ctx.events:
            d = ev.get("detail")
            if ev.get("kind") == "connect" and isinstance(d, dict):
                t = dict(d.get("timings") or {}) if isinstance(d.get("timings"), dict) else {}
                t.update({k: d[k] for k in _TIMING_KEYS if k in d})
                if t and ev.get("conn_id") is not None:
                    timings[ev["conn_id"]] = t
        self.timings = timings
        for c in ctx.connections:
            self.on_connection(c)

    def on_connection(self, c: dict) -> None:
        from harness import venues
        from harness.errors import ConfigError

        cid, vname, url = c.get("id"), c.get("venue"), c.get("url")
        row = {"conn_id": cid, "venue": vname, "url": url, "kind": None, "status": c.get("response_status")}
        self.conns.append(row)
        try:
            v = venues.get(vname or "")
        except (ConfigError, ImportError):
            self.emit("unknown_venue", "warn", f"connection {cid}: no venue module for {vname!r}", venue=vname, conn_id=cid)
            return
        if not url:
            row["kind"] = "unrecorded"
            self.emit("no_url", "info", f"connection {cid}: URL not recorded (generic import?)", venue=vname, conn_id=cid)
        else:
            kind = v.endpoints.classify_url(url)
            u = urlsplit(url)
            host = u.hostname or ""
            if kind == "unknown" and host in _LOCAL:
                kind = "local"
            if kind == "unknown" and host in _hosts(v.endpoints):
                kind = "wrong_path"
            row["kind"] = kind
            self.kinds[kind] += 1
            if kind == "dead":
                self.emit("dead_endpoint", "fail", f"connection {cid}: {url} is a dead {vname} endpoint; use {v.endpoints.ws_prod[0]}", venue=vname, conn_id=cid, payload=url)
            elif kind == "wrong_path":
                self.emit("wrong_path", "fail", f"connection {cid}: {url}: {vname} serves its WebSocket at {v.ws_path!r} on this host (e.g. {v.endpoints.ws_prod[0]})", venue=vname, conn_id=cid, payload=url)
            elif kind == "unknown":
                self.emit("unknown_endpoint", "warn", f"connection {cid}: {url} is not a known {vname} endpoint (known: {', '.join(v.endpoints.ws_prod)})", venue=vname, conn_id=cid, payload=url)
            elif kind == "demo":
                self.emit("demo_endpoint", "warn", f"connection {cid}: {url} is {vname}'s demo/sandbox, not production", venue=vname, conn_id=cid, payload=url)
            elif kind == "local":
                self.emit("local_endpoint", "info", f"connection {cid}: {url} is a local server (impersonation/replay)", venue=vname, conn_id=cid, payload=url)
            if u.scheme == "ws" and kind in ("prod", "demo"):
                self.emit("insecure_scheme", "warn", f"connection {cid}: {url} uses ws:// to a venue host; use wss://", venue=vname, conn_id=cid, payload=url)
        st = c.get("response_status")
        if st is not None and st != 101:
            hint = " (authentication: see the auth check)" if st in (401, 403) else ""
            self.emit("handshake_failed", "fail", f"connection {cid}: upgrade answered HTTP {st}{hint}", venue=vname, conn_id=cid)

    def on_frame(self, view) -> None:
        if view.frame.dir == "in":
            self.frames_in[view.frame.conn_id] += 1

    def finish(self):
        for row in self.conns:
            row["frames_in"] = self.frames_in.get(row["conn_id"], 0)
            if row["frames_in"] == 0 and (row["status"] in (None, 101)):
                self.emit("no_frames", "warn", f"connection {row['conn_id']} ({row['venue']}) received no frames", venue=row["venue"], conn_id=row["conn_id"])
            if row["conn_id"] in self.timings:
                row["timings_ms"] = self.timings[row["conn_id"]]
        if not any("timings_ms" in r for r in self.conns):
            self.notes.append("no DNS/TCP/TLS/upgrade timings recorded: skipped")
        self.stats = {"connections": self.conns, "by_kind": dict(self.kinds)}
        return super().finish()
