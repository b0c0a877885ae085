"""Run every check over a recording in one pass, or over frames as they arrive.

One ``Runner`` owns the shared decode: a venue session per connection (``new_session()``
per ``conn_id``), each inbound text frame fed to it exactly once; every check sees the same
``FrameView`` (frame, type, messages, the session's sequence findings, the decode error).
HTTP rows are interleaved by receive time (Bitstamp REST snapshots align its book).

Recording::

    report = run_checks("recordings/sample.db", only=["format"], config=None)

Live (a sink for any frame source, e.g. ``replay(rec, runner)`` or a live tap)::

    runner = Runner(config=cfg)
    runner.start(connections=[...])          # optional metadata
    for f in runner.on_frame(frame): ...     # new findings as they happen
    report = runner.finish()

Recording live (``harness record --check``): ``LiveChecks(runner, on_finding)`` is the
recorder's observer (``run_record(cfg, observer=...)``, see ``harness.live.observe``).
"""

from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass, field
from typing import Any

from harness import __version__
from harness.checks.base import BaseCheck, CheckResult, Finding, status_of
from harness.checks.config import CheckConfig
from harness.errors import ConfigError, DecodeError
from harness.frame import Frame
from harness.live.observe import QueueDrainer

CHECK_NAMES = ("endpoint", "auth", "format", "sequence", "latency", "quality", "freshness")


_CLASSES = {
    "endpoint": "EndpointCheck",
    "auth": "AuthCheck",
    "format": "FormatCheck",
    "sequence": "SequenceCheck",
    "latency": "LatencyCheck",
    "quality": "QualityCheck",
    "freshness": "FreshnessCheck",
}


def check_class(name: str) -> type:
    import importlib

    return getattr(importlib.import_module(f"harness.checks.{name}"), _CLASSES[name])


@dataclass
class Context:
    """What checks get at start. ``connections`` rows as ``Recording.connections()``."""

    path: str | None = None
    connections: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    http: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    live: bool = False
    runner: Any = None

    def connection(self, conn_id: int) -> dict | None:
        for c in self.connections:
            if c.get("id") == conn_id:
                return c
        return None


@dataclass
class FrameView:
    """One frame and its shared decode. ``error``: the DecodeError text (None if decoded
    or not decodable by design: outbound, non-text, unknown venue)."""

    frame: Frame
    type: str | None = None
    messages: list = field(default_factory=list)
    seq_findings: list = field(default_factory=list)
    error: str | None = None
    crash: str | None = None  # a venue module raised something other than DecodeError
    session: Any = None
    venue_known: bool = True
    decoded: bool = False


class Decoder:
    """Per-connection venue sessions; decodes each inbound text frame once."""

    def __init__(self):
        self.sessions: dict[int, Any] = {}
        self.session_venue: dict[int, str] = {}
        self._venues: dict[str, Any] = {}
        self._rest: dict[str, tuple[str, str]] = {}  # bitstamp instrument -> (body, key)

    def venue(self, name: str):
        v = self._venues.get(name, ...)
        if v is ...:
            from harness import venues

            try:
                v = venues.get(name)
            except (ConfigError, ImportError):
                v = None
            self._venues[name] = v
        return v

    def session(self, conn_id: int, venue: str):
        s = self.sessions.get(conn_id)
        if s is None:
            v = self.venue(venue)
            if v is None:
                return None
            s = self.sessions[conn_id] = v.new_session()
            self.session_venue[conn_id] = v.name
            if v.name == "bitstamp":
                for inst, body in self._rest.items():
                    try:
                        s.apply_rest_snapshot(inst, body)
                    except DecodeError:
                        pass
        return s

    def forget(self, conn_id: int) -> None:
        """The connection is over: drop its session (its books) so a long run with many
        reconnects does not keep every old book (the soak's memory growth)."""
        self.sessions.pop(conn_id, None)
        self.session_venue.pop(conn_id, None)

    def view(self, f: Frame) -> FrameView:
        v = self.venue(f.venue)
        view = FrameView(f, f.type, venue_known=v is not None)
        if v is None:
            return view
        if f.dir != "in":
            if f.opcode == "text":
                s = self.session(f.conn_id, f.venue)
                note = getattr(s, "note_sent", None)
                if note is not None:
                    note(f.payload)
            return view
        if f.opcode != "text":
            return view
        if view.type is None:
            view.type = v.classify(f.payload)
        s = self.session(f.conn_id, f.venue)
        view.session = s
        try:
            view.messages, view.seq_findings = s.feed(f.payload, f.id)
            view.decoded = True
        except DecodeError as e:
            view.error = e.message
        except Exception as e:  # a bug in a venue module must not stop the run
            view.crash = f"{type(e).__name__}: {e}"
        return view

    def on_http(self, row: dict) -> list:
        """Bitstamp REST order books align the Bitstamp sessions; returns seq findings."""
        venue = (row.get("venue") or "").lower()
        url = row.get("url") or ""
        body = row.get("response_body")
        if venue != "bitstamp" or "order_book" not in url or not body:
            return []
        inst = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1].lower()
        self._rest[inst] = body
        out = []
        for cid, s in self.sessions.items():
            if self.session_venue.get(cid) == "bitstamp":
                try:
                    out.extend(s.apply_rest_snapshot(inst, body))
                except DecodeError:
                    pass
        return out


@dataclass
class Report:
    """The result of a run. ``to_dict()`` is the JSON document (see docs/checks.md)."""

    path: str | None
    results: list[CheckResult]
    frames: int = 0
    wall_s: float = 0.0
    config: CheckConfig | None = None
    series: dict = field(default_factory=dict)  # chart data (not in the JSON)
    generated_ns: int = 0

    @property
    def status(self) -> str:
        worst = [r.status for r in self.results]
        return "fail" if "fail" in worst else ("warn" if "warn" in worst else "pass")

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "fail" else 0

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]

    def to_dict(self) -> dict:
        return {
            "recording": self.path,
            "harness_version": __version__,
            "generated_ns": self.generated_ns,
            "status": self.status,
            "exit_code": self.exit_code,
            "frames": self.frames,
            "wall_s": round(self.wall_s, 3),
            "show_hint": f"harness show {self.path or 'REC'} FRAME_ID",
            "checks": [r.to_dict() for r in self.results],
            "config": self.config.to_dict() if self.config else None,
        }


class Runner:
    """Feeds frames to the selected checks; a replay sink (``on_frame``)."""

    def __init__(
        self,
        only: list[str] | tuple[str, ...] | None = None,
        config: CheckConfig | None = None,
        *,
        specs: dict | None = None,
        errata=None,
    ):
        self.config = config or CheckConfig()
        names = list(only) if only else list(CHECK_NAMES)
        bad = [n for n in names if n not in CHECK_NAMES]
        if bad:
            raise ConfigError(f"unknown check(s) {', '.join(bad)}", hint=f"use one of: {', '.join(CHECK_NAMES)}")
        self.checks: list[BaseCheck] = []
        for n in CHECK_NAMES:
            if n in names:
                c = check_class(n)(self.config)
                if n == "format":
                    c.configure_spec(specs or {}, errata)
                self.checks.append(c)
        self.decoder = Decoder()
        self.ctx = Context(runner=self)
        self._http: list[tuple[int, int, dict]] = []
        self._http_i = 0
        self.frames = 0
        self._t0 = time.perf_counter()
        self.last_t_wall_ns: int | None = None

    def check(self, name: str) -> BaseCheck | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None

    def start(self, connections=(), events=(), http=(), sessions=(), path: str | None = None, live: bool = False) -> None:
        self.ctx.path = path
        self.ctx.connections = list(connections)
        self.ctx.events = list(events)
        self.ctx.http = list(http)
        self.ctx.sessions = list(sessions)
        self.ctx.live = live
        self._http = sorted(((r.get("t_recv_ns") or 0, i, r) for i, r in enumerate(self.ctx.http)), key=lambda x: (x[0], x[1]))
        self._http_keys = [h[0] for h in self._http]
        self._http_i = 0
        for c in self.checks:
            c.start(self.ctx)

    def add_connection(self, row: dict) -> None:
        """Live: a connection opened (or its handshake was recorded)."""
        self.ctx.connections.append(row)
        for c in self.checks:
            hook = getattr(c, "on_connection", None)
            if hook is not None:
                hook(row)

    def on_http(self, row: dict) -> list[Finding]:
        seq = self.decoder.on_http(row)
        for c in self.checks:
            c.on_http(row)
            if seq and c.name == "sequence":
                c.on_rest_findings(row, seq)
        return self._drain()

    def on_frame(self, frame: Frame) -> list[Finding]:
        if self._http_i < len(self._http):
            j = bisect.bisect_right(self._http_keys, frame.t_wall_ns)
            while self._http_i < j:
                self.on_http(self._http[self._http_i][2])
                self._http_i += 1
        view = self.decoder.view(frame)
        self.frames += 1
        self.last_t_wall_ns = frame.t_wall_ns
        for c in self.checks:
            c.on_frame(view)
        if frame.opcode == "close" and frame.dir == "in":  # the peer's close: nothing follows
            self.decoder.forget(frame.conn_id)
        return self._drain()

    feed = on_frame

    def _drain(self) -> list[Finding]:
        out: list[Finding] = []
        for c in self.checks:
            if c._new:
                out.extend(c.drain())
        return out

    def finish(self) -> Report:
        while self._http_i < len(self._http):
            self.on_http(self._http[self._http_i][2])
            self._http_i += 1
        results = [c.finish() for c in self.checks]
        series: dict = {}
        for c in self.checks:
            s = getattr(c, "series", None)
            if s:
                series[c.name] = s
        series["reconnects"] = [e["t_wall_ns"] for e in self.ctx.events if e.get("kind") == "reconnect" and e.get("t_wall_ns")]
        return Report(self.ctx.path, results, self.frames, time.perf_counter() - self._t0, self.config, series, time.time_ns())

    # the replay core calls close() at the end; finish() is explicit
    def close(self) -> None:
        pass


class LiveChecks(QueueDrainer):
    """The recorder's observer for ``harness record --check``: what the recorder writes goes
    through a queue to the ``Runner`` (a task drains it, so the receive path only appends),
    and each new finding goes to ``on_finding(finding)`` as it happens.

    The endpoint and auth checks judge a connection when its handshake is known (the
    recorder's ``update_connection`` with the status, or the close of a failed attempt,
    teed as ``on_connection_update``); ``finish(recording_path)`` judges any connection
    not seen that way from the recording's rows and takes the connect timings from it.
    Reconnect events reach the sequence check live.

    The queue is bounded (``max_queue`` frames): when the checks fall behind, further
    frames are counted (``dropped``) and not checked rather than held in memory; the
    report says how many (connections, events and HTTP exchanges, which are few, are
    always queued)."""

    CHUNK = 500  # queue items between yields to the event loop
    MAX_QUEUE = 100_000
    HANDSHAKE = ("endpoint", "auth")

    def __init__(self, runner: Runner, on_finding=None, *, max_queue: int = MAX_QUEUE):
        from collections import deque

        self.runner = runner
        self.on_finding = on_finding or (lambda f: None)
        self.queue: deque = deque()
        self.max_queue = max_queue
        self.frames_queued = 0  # frames in the queue now
        self.dropped = 0  # frames never checked (the queue was full)
        self.dropped_span: list[int] = []  # [first, last] t_wall_ns of the dropped frames
        self.findings: list[Finding] = []
        self.errors = 0
        self._rows: dict[int, dict] = {}  # conn_id -> its row as written so far
        self._judged: set[int] = set()  # connections the handshake checks have seen
        self._wake = None
        self._task = None
        runner.start(live=True)

    # -- observer protocol (called on the event loop thread, inside the receive path) --
    def on_connection(self, conn_id: int, venue: str, url: str | None) -> None:
        self.queue.append(("conn", {"id": conn_id, "venue": venue, "url": url}))
        self._kick()

    def on_connection_update(self, conn_id: int, cols: dict) -> None:
        self.queue.append(("update", (conn_id, cols)))
        self._kick()

    def on_frame(self, frame: Frame) -> None:
        if self.frames_queued >= self.max_queue:
            self.dropped += 1
            if not self.dropped_span:
                self.dropped_span = [frame.t_wall_ns, frame.t_wall_ns]
            self.dropped_span[1] = frame.t_wall_ns
            return
        self.frames_queued += 1
        self.queue.append(("frame", frame))
        self._kick()

    def on_event(self, kind: str, t_wall_ns: int, conn_id: int | None, detail: dict | None) -> None:
        self.queue.append(("event", {"kind": kind, "t_wall_ns": t_wall_ns, "conn_id": conn_id, "detail": detail}))
        self._kick()

    def on_http(self, exchange: dict) -> None:
        self.queue.append(("http", exchange))
        self._kick()

    # -- draining: run(stop) and _kick() come from QueueDrainer -------------------------
    def drain(self, limit: int | None = None) -> None:
        r = self.runner
        n = 0
        while self.queue and (limit is None or n < limit):
            kind, item = self.queue.popleft()
            if kind == "frame":
                self.frames_queued -= 1
            n += 1
            try:
                new = self._feed(r, kind, item)
            except Exception as e:  # noqa: BLE001 - a check bug must not stop the checking (or grow the queue)
                self.errors += 1
                if self.errors == 1:
                    import sys

                    print(f"harness: live checks failed on a {kind}: {type(e).__name__}: {e} "
                          "(checking continues; further errors are counted)", file=sys.stderr)
                continue
            for f in new:
                self.findings.append(f)
                self.on_finding(f)

    def _judge(self, r: Runner, row: dict) -> None:
        self._judged.add(row["id"])
        for c in r.checks:
            if c.name in self.HANDSHAKE:
                c.on_connection(row)

    def _feed(self, r: Runner, kind: str, item) -> list[Finding]:
        if kind == "frame":
            return r.on_frame(item)
        if kind == "http":
            return r.on_http(item)
        if kind == "conn":
            self._rows[item["id"]] = item
            r.ctx.connections.append(item)  # the same dict: updates land in it
            return []
        if kind == "update":
            cid, cols = item
            row = self._rows.setdefault(cid, {"id": cid})
            row.update(cols)
            if cols.get("closed_ns") is not None:  # also when it ended without a close frame
                r.decoder.forget(cid)
            # a handshake is known once it has a status, or once a failed attempt closed
            if cid not in self._judged and ("response_status" in cols or "closed_ns" in cols):
                self._judge(r, row)
                return r._drain()
            return []
        r.ctx.events.append(item)
        d = item.get("detail")
        ep = r.check("endpoint")
        if item["kind"] == "connect" and ep is not None and isinstance(d, dict) and isinstance(d.get("timings"), dict):
            ep.timings[item["conn_id"]] = dict(d["timings"])
        seq = r.check("sequence")
        if item["kind"] == "reconnect" and seq is not None:
            seq.on_reconnect(item)
        return r._drain()

    def finish(self, recording_path: str | None = None) -> Report:
        """Drain what is left, judge the handshakes not judged live from the recording,
        build the report."""
        self.drain()
        r = self.runner
        if recording_path is not None:
            from harness.store.reader import Recording

            rec = Recording(recording_path)
            try:
                sessions = rec.sessions()
                sid = sessions[-1]["id"] if sessions else None
                r.ctx.connections = [c for c in rec.connections() if sid is None or c.get("session_id") == sid]
                r.ctx.events = [e for e in rec.events() if sid is None or e.get("session_id") == sid]
                r.ctx.sessions = sessions[-1:]
            finally:
                rec.close()
            r.ctx.path = os.fspath(recording_path)
            for c in r.ctx.connections:
                if c.get("id") not in self._judged:
                    self._judge(r, c)
            for f in r._drain():
                self.findings.append(f)
        report = r.finish()
        if self.dropped:
            first, last = self.dropped_span
            note = (f"live checks fell behind: {self.dropped:,} frames (received between {first} and {last} ns) "
                    f"were not checked; run `harness check {report.path or 'REC'}` for a full pass")
            for res in report.results:
                res.notes.append(note)
        return report


def run_checks(
    recording,
    only=None,
    config: CheckConfig | None = None,
    *,
    specs: dict | None = None,
    errata=None,
) -> Report:
    """All (or ``only``) checks over a recording (path or open ``Recording``) in one pass
    through the replay core at max speed."""
    from harness.replay.source import replay
    from harness.store.reader import Recording

    own = not hasattr(recording, "frames")
    rec = Recording(recording) if own else recording
    try:
        runner = Runner(only, config, specs=specs, errata=errata)
        runner.start(rec.connections(), rec.events(), rec.http(), rec.sessions(), path=os.fspath(rec.path))
        replay(rec, runner, speed=None)
        return runner.finish()
    finally:
        if own:
            rec.close()


def overall_status(results: list[CheckResult]) -> str:
    return status_of([f for r in results for f in r.findings])
