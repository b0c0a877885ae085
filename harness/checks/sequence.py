"""sequence: each connection's inbound frames fed to its own venue session
(``new_session()`` per ``conn_id``); the session's tracker findings become check findings
with the frame id that showed them.

Codes: ``gap`` (fail: messages missing), ``duplicate`` (fail), ``reset`` (fail: a
sequence restarted mid-connection), ``out_of_order`` (fail), ``checksum`` (fail: Kraken
CRC32 mismatch after applying the frame), ``crossed`` (fail: best bid >= best ask after a
whole frame), ``negative_size`` (fail, Kalshi), ``stale_snapshot`` (warn: a REST snapshot
older than the buffered diffs), ``delta_before_snapshot`` (warn), ``terminal_error``
(fail: Kalshi error 10/17/25 ended a subscription), ``reconnect`` (info: a venue connected
again; sequences restart, books await a snapshot). Kalshi ``auth_required`` is the auth
check's. A frame that does not decode is the format check's: it is skipped here.
"""

from __future__ import annotations

from collections import Counter

from harness.checks.base import BaseCheck

SEVERITY = {
    "gap": "fail",
    "duplicate": "fail",
    "reset": "fail",
    "out_of_order": "fail",
    "checksum": "fail",
    "crossed": "fail",
    "negative_size": "fail",
    "terminal_error": "fail",
    "stale_snapshot": "warn",
    "delta_before_snapshot": "warn",
}
_IGNORED = {"auth_required"}


def describe(sf) -> str:
    parts = [f"{sf.kind} on {sf.key}"]
    if sf.expected is not None or sf.got is not None:
        parts.append(f"expected {sf.expected}, got {sf.got}")
    if sf.detail:
        parts.append(sf.detail)
    return ": ".join(parts[:1]) + (" (" + "; ".join(parts[1:]) + ")" if len(parts) > 1 else "")


class SequenceCheck(BaseCheck):
    name = "sequence"
    description = "gaps, duplicates, resets, checksums and crossed books per connection"

    def __init__(self, config=None):
        super().__init__(config)
        self.kinds: Counter = Counter()
        self.frames_by_conn: Counter = Counter()

    def start(self, ctx) -> None:
        super().start(ctx)
        for ev in ctx.events:
            if ev.get("kind") == "reconnect":
                self.on_reconnect(ev)

    def on_reconnect(self, ev: dict) -> None:
        d = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
        venue = d.get("venue")
        if venue is None and ev.get("conn_id") is not None:
            c = self.ctx.connection(ev["conn_id"])
            venue = c.get("venue") if c else None
        self.emit(
            "reconnect", "info",
            f"reconnected (connection {ev.get('conn_id')}): sequences restart, books need a new snapshot",
            venue=venue, conn_id=ev.get("conn_id"), t_wall_ns=ev.get("t_wall_ns"),
        )

    def on_frame(self, view) -> None:
        if view.frame.dir == "in" and view.decoded:
            self.frames_by_conn[view.frame.conn_id] += 1
        for sf in view.seq_findings:
            self._report(sf, view.frame)

    def on_rest_findings(self, row: dict, findings) -> None:
        for sf in findings:
            if sf.kind in _IGNORED:
                continue
            self.kinds[sf.kind] += 1
            self.emit(sf.kind, SEVERITY.get(sf.kind, "warn"), describe(sf) + f" (REST {row.get('url')})",
                      venue=row.get("venue"), frame_id=sf.frame_id, subject=sf.key, t_wall_ns=row.get("t_recv_ns"))

    def _report(self, sf, frame) -> None:
        if sf.kind in _IGNORED:
            return
        self.kinds[sf.kind] += 1
        fid = sf.frame_id if sf.frame_id is not None else frame.id
        self.emit(
            sf.kind, SEVERITY.get(sf.kind, "warn"), describe(sf), frame=frame, frame_id=fid,
            detail={"key": sf.key, "expected": _j(sf.expected), "got": _j(sf.got)},
        )

    def finish(self):
        self.stats = {
            "connections": len(self.frames_by_conn),
            "frames_sequenced": sum(self.frames_by_conn.values()),
            "by_kind": dict(self.kinds),
        }
        return super().finish()


def _j(v):
    if v is None or isinstance(v, (int, float, str, bool)):
        return v
    return str(v)
