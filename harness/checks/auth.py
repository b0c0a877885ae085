"""auth: Kalshi WebSocket authentication, from what a recording can show.

Secrets are recorded redacted (``<redacted len=344>``): presence and length are checked,
not the signature itself. ``KALSHI-ACCESS-TIMESTAMP`` is not secret: it must be Unix ms
within ``auth_max_skew_ms`` of the connect time.

Codes: ``missing_headers`` (fail: a Kalshi connection whose request headers were recorded
but carry no/partial KALSHI-ACCESS-* headers; required since 2026-03-24),
``key_shape`` / ``signature_shape`` (warn: unexpected lengths: key ids are 36-char UUIDs;
RSA-PSS signatures base64 to 344 chars for 2048-bit keys, 684 for 4096),
``secret_not_redacted`` (fail: a key id or signature stored in clear),
``timestamp_format`` (fail: not digits, or seconds instead of ms), ``clock_skew`` (fail:
timestamp vs connect time beyond the budget), ``upgrade_rejected`` (fail: HTTP 401/403,
from ``response_status`` or an ``error`` event, with the likely cause),
``auth_required`` (fail: in-session error code 9), ``not_recorded`` (info: no request
headers, e.g. an import: nothing to check).
"""

from __future__ import annotations

import re

from harness.checks.base import BaseCheck

HDR_KEY = "KALSHI-ACCESS-KEY"
HDR_TS = "KALSHI-ACCESS-TIMESTAMP"
HDR_SIG = "KALSHI-ACCESS-SIGNATURE"
_MARK = re.compile(r"<redacted len=(\d+)>")
_SIG_LENS = (172, 344, 512, 684)  # base64 of 1024/2048/3072/4096-bit RSA signatures


def _get(headers: dict, name: str):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def _length(v) -> tuple[int | None, bool]:
    """(length, redacted)."""
    if v is None:
        return None, False
    m = _MARK.fullmatch(str(v).strip())
    if m:
        return int(m.group(1)), True
    return len(str(v)), False


class AuthCheck(BaseCheck):
    name = "auth"
    description = "Kalshi auth headers present and well formed, upgrade accepted, no error 9"

    def __init__(self, config=None):
        super().__init__(config)
        self.kalshi_conns = 0
        self.checked = 0
        self.rejected: dict[int, int] = {}
        self.causes: dict[int, list[str]] = {}

    def start(self, ctx) -> None:
        super().start(ctx)
        for c in ctx.connections:
            self.on_connection(c)
        for ev in ctx.events:
            if ev.get("kind") == "error":
                d = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
                st = d.get("status")
                venue = d.get("venue")
                if venue is None and ev.get("conn_id") is not None:
                    c = ctx.connection(ev["conn_id"])
                    venue = c.get("venue") if c else None
                if st in (401, 403) and venue == "kalshi" and ev.get("conn_id") not in self.rejected:
                    c = ctx.connection(ev.get("conn_id")) or {}
                    self._rejected(c, st, source="error event")

    def on_connection(self, c: dict) -> None:
        if c.get("venue") != "kalshi":
            return
        self.kalshi_conns += 1
        cid = c.get("id")
        h = c.get("request_headers")
        causes: list[str] = []
        self.causes[cid] = causes
        if not isinstance(h, dict) or not h:
            self.emit("not_recorded", "info", f"connection {cid}: request headers not recorded: auth not checkable", venue="kalshi", conn_id=cid)
        else:
            self.checked += 1
            key, ts, sig = _get(h, HDR_KEY), _get(h, HDR_TS), _get(h, HDR_SIG)
            missing = [n for n, v in ((HDR_KEY, key), (HDR_TS, ts), (HDR_SIG, sig)) if v in (None, "", "<redacted absent>")]
            if missing:
                causes.append(f"missing {', '.join(missing)}")
                self.emit("missing_headers", "fail", f"connection {cid}: no {', '.join(missing)} (auth is required at the WebSocket handshake since 2026-03-24)", venue="kalshi", conn_id=cid)
            n, red = _length(key)
            if key is not None and n is not None:
                if not red:
                    self.emit("secret_not_redacted", "fail", f"connection {cid}: {HDR_KEY} stored in clear in the recording", venue="kalshi", conn_id=cid)
                if n != 36:
                    causes.append("wrong key id (not a 36-char UUID)")
                    self.emit("key_shape", "warn", f"connection {cid}: {HDR_KEY} is {n} chars; Kalshi key ids are 36-char UUIDs", venue="kalshi", conn_id=cid)
            n, red = _length(sig)
            if sig is not None and n is not None:
                if not red:
                    self.emit("secret_not_redacted", "fail", f"connection {cid}: {HDR_SIG} stored in clear in the recording", venue="kalshi", conn_id=cid)
                if n not in _SIG_LENS:
                    causes.append("malformed signature")
                    self.emit("signature_shape", "warn", f"connection {cid}: {HDR_SIG} is {n} chars; base64 RSA-PSS signatures are {'/'.join(map(str, _SIG_LENS))}", venue="kalshi", conn_id=cid)
            if ts is not None:
                self._timestamp(cid, str(ts).strip(), c.get("opened_ns"), causes)
        st = c.get("response_status")
        if st in (401, 403):
            self._rejected(c, st, source="response_status")

    def _timestamp(self, cid, ts: str, opened_ns, causes) -> None:
        if not ts.isdigit():
            causes.append("timestamp not Unix ms")
            self.emit("timestamp_format", "fail", f"connection {cid}: {HDR_TS} {ts!r} is not Unix ms digits", venue="kalshi", conn_id=cid)
            return
        if len(ts) <= 10:
            causes.append("timestamp in seconds, not ms")
            self.emit("timestamp_format", "fail", f"connection {cid}: {HDR_TS} {ts} looks like seconds; Kalshi wants milliseconds", venue="kalshi", conn_id=cid)
            return
        if opened_ns:
            skew = int(ts) - opened_ns // 1_000_000
            lim = float(self.config.auth_max_skew_ms)
            if abs(skew) > lim:
                causes.append(f"clock skew {skew:+d} ms")
                self.emit("clock_skew", "fail", f"connection {cid}: {HDR_TS} is {skew:+d} ms from the connect time (budget ±{lim:.0f} ms): sync the host clock (NTP)", venue="kalshi", conn_id=cid)

    def _rejected(self, c: dict, status: int, source: str) -> None:
        cid = c.get("id")
        self.rejected[cid] = status
        causes = list(self.causes.get(cid) or [])
        url = c.get("url") or ""
        if "?" in url:
            causes.append("query string in the URL: sign the path without it")
        if not causes:
            env = "demo" if ".demo." in url or "demo-api" in url else "prod"
            other = "prod" if env == "demo" else "demo"
            causes = [
                f"key for the wrong environment ({other} key on {env})",
                "wrong key id or private key",
                "wrong path signed (must be GET /trade-api/ws/v2)",
                "clock skew",
            ]
        self.emit(
            "upgrade_rejected", "fail",
            f"connection {cid}: handshake refused with HTTP {status} ({source}); likely cause: {'; '.join(causes)}",
            venue="kalshi", conn_id=cid, detail={"status": status, "likely_causes": causes},
        )

    def on_frame(self, view) -> None:
        f = view.frame
        if f.venue != "kalshi" or f.dir != "in":
            return
        for sf in view.seq_findings:
            if sf.kind == "auth_required":
                causes = self.causes.get(f.conn_id) or ["the connection was not authenticated (no KALSHI-ACCESS-* headers at the handshake) or the channel needs a key with access"]
                self.emit("auth_required", "fail", f"error code 9 (authentication required) for {sf.key}: likely cause: {'; '.join(causes)}", frame=f)

    def finish(self):
        self.stats = {"kalshi_connections": self.kalshi_conns, "headers_checked": self.checked, "rejected": {str(k): v for k, v in self.rejected.items()}}
        if self.kalshi_conns == 0:
            self.notes.append("no Kalshi connection: nothing to check")
        return super().finish()
