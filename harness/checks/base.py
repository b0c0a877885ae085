"""Finding, CheckResult and the Check protocol shared by every check.

A check is an observer. The runner (``harness.checks.runner``) hands it the recording's
metadata once (``start(ctx)``: connections, events, HTTP rows, sessions, config), then
every frame in receive order together with the frame's shared decode (``on_frame(view)``:
one ``FrameView`` per frame, decoded once by the per-connection venue session), then
``finish()``. A check reports problems with ``self.emit(...)``; the runner drains new
findings after every frame (so a live run can print them as they happen) and aggregates
repeats by ``(check, code, venue, subject)``.

Severities: ``info`` (context, never changes the status), ``warn``, ``fail``. A check's
status is ``fail`` if any finding is ``fail``, else ``warn`` if any is ``warn``, else
``pass``. Severity of any ``check.code`` can be overridden (or switched ``off``) in the
config (``harness.checks.config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

SEVERITIES = ("info", "warn", "fail")
_RANK = {"info": 0, "warn": 1, "fail": 2}
STATUS = ("pass", "warn", "fail")
EXAMPLE_CHARS = 240


def excerpt(payload: Any, limit: int = EXAMPLE_CHARS) -> str | None:
    """A short printable excerpt of a payload (text as is, bytes as hex)."""
    if payload is None:
        return None
    if isinstance(payload, (bytes, bytearray, memoryview)):
        text = bytes(payload)[: limit // 2].hex(" ")
    else:
        text = str(payload)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Finding:
    """One problem (or, aggregated, a run of the same problem).

    ``frame_id`` is the first frame that showed it (``harness show REC FRAME_ID``);
    ``frame_ids`` up to ``max_examples`` of them; ``count`` how many times it was seen.
    ``subject`` refines the aggregation key (a field path for spec findings, an
    instrument for quality); ``blame`` says which side is wrong for spec findings
    (``spec`` | ``frame`` | ``erratum``)."""

    check: str
    code: str
    severity: str
    message: str
    venue: str | None = None
    frame_id: int | None = None
    conn_id: int | None = None
    example: str | None = None
    count: int = 1
    subject: str | None = None
    t_wall_ns: int | None = None
    frame_ids: list[int] = field(default_factory=list)
    last_frame_id: int | None = None
    blame: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.check, self.code, self.venue, self.subject)

    def to_dict(self) -> dict:
        d = {
            "check": self.check,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "venue": self.venue,
            "subject": self.subject,
            "count": self.count,
            "first_frame_id": self.frame_id,
            "last_frame_id": self.last_frame_id,
            "frame_ids": list(self.frame_ids),
            "conn_id": self.conn_id,
            "t_wall_ns": self.t_wall_ns,
            "example": self.example,
        }
        if self.blame is not None:
            d["blame"] = self.blame
        if self.detail:
            d["detail"] = self.detail
        return d

    def line(self) -> str:
        """One line for a terminal or a pytest failure."""
        where = f" frame {self.frame_id}" if self.frame_id is not None else ""
        more = f" (x{self.count})" if self.count > 1 else ""
        venue = f"[{self.venue}] " if self.venue else ""
        return f"{self.severity.upper():4} {self.check}.{self.code}{more}{where}: {venue}{self.message}"


class Aggregator:
    """Findings aggregated by ``Finding.key`` in first-seen order."""

    def __init__(self, max_examples: int = 5):
        self.max_examples = max_examples
        self.items: dict[tuple, Finding] = {}

    def add(self, f: Finding) -> Finding:
        cur = self.items.get(f.key)
        if cur is None:
            if f.frame_id is not None and not f.frame_ids:
                f.frame_ids = [f.frame_id]
            f.last_frame_id = f.frame_id
            self.items[f.key] = f
            return f
        cur.count += f.count
        if f.frame_id is not None:
            if cur.frame_id is None:
                cur.frame_id, cur.example, cur.message = f.frame_id, f.example, f.message
            if len(cur.frame_ids) < self.max_examples and f.frame_id not in cur.frame_ids:
                cur.frame_ids.append(f.frame_id)
            cur.last_frame_id = f.frame_id
        if _RANK[f.severity] > _RANK[cur.severity]:
            cur.severity = f.severity
        return cur

    def sorted(self) -> list[Finding]:
        return sorted(self.items.values(), key=lambda f: (-_RANK[f.severity], f.frame_id is None, f.frame_id or 0))


def status_of(findings) -> str:
    worst = max((_RANK[f.severity] for f in findings), default=0)
    return STATUS[worst] if worst else "pass"


@dataclass
class CheckResult:
    """What one check concluded. ``spec_findings`` (format only) are findings against a
    published spec, kept apart from ``findings`` against the harness's own models."""

    name: str
    status: str
    findings: list[Finding]
    stats: dict = field(default_factory=dict)
    spec_findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def worst(self) -> Finding | None:
        return self.findings[0] if self.findings else (self.spec_findings[0] if self.spec_findings else None)

    def counts(self) -> dict:
        c = {s: 0 for s in SEVERITIES}
        for f in self.findings:
            c[f.severity] += f.count
        return c

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "spec_findings": [f.to_dict() for f in self.spec_findings],
            "stats": self.stats,
            "notes": self.notes,
        }


class Check(Protocol):
    """What the runner needs from a check (``BaseCheck`` implements the plumbing)."""

    name: str

    def start(self, ctx) -> None: ...

    def on_frame(self, view) -> None: ...

    def on_http(self, row: dict) -> None: ...

    def finish(self) -> CheckResult: ...

    def drain(self) -> list[Finding]: ...


class BaseCheck:
    """Plumbing for checks: ``emit`` applies severity overrides, aggregates and queues."""

    name = "base"
    description = ""

    def __init__(self, config=None):
        from harness.checks.config import CheckConfig

        self.config = config or CheckConfig()
        self.agg = Aggregator(self.config.max_examples)
        self.spec_agg = Aggregator(self.config.max_examples)
        self._new: list[Finding] = []
        self.stats: dict = {}
        self.notes: list[str] = []
        self.ctx = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self, ctx) -> None:
        self.ctx = ctx

    def on_frame(self, view) -> None:
        pass

    def on_http(self, row: dict) -> None:
        pass

    def finish(self) -> CheckResult:
        findings = self.agg.sorted()
        spec = self.spec_agg.sorted()
        status = status_of(findings)
        if status == "pass" and any(f.severity == "warn" for f in spec):
            status = "warn"
        return CheckResult(self.name, status, findings, self.stats, spec, self.notes)

    def drain(self) -> list[Finding]:
        out, self._new = self._new, []
        return out

    # -- reporting -------------------------------------------------------------------
    def emit(
        self,
        code: str,
        severity: str,
        message: str,
        *,
        venue: str | None = None,
        frame=None,
        frame_id: int | None = None,
        conn_id: int | None = None,
        payload: Any = None,
        subject: str | None = None,
        blame: str | None = None,
        spec: bool = False,
        t_wall_ns: int | None = None,
        detail: dict | None = None,
    ) -> Finding | None:
        sev = self.config.severity_for(self.name, code, severity)
        if sev is None:
            return None
        if frame is not None:
            frame_id = frame.id if frame_id is None else frame_id
            conn_id = frame.conn_id if conn_id is None else conn_id
            venue = venue or frame.venue
            t_wall_ns = frame.t_wall_ns if t_wall_ns is None else t_wall_ns
            if payload is None:
                payload = frame.payload
        f = Finding(
            self.name, code, sev, message, venue=venue, frame_id=frame_id, conn_id=conn_id,
            example=excerpt(payload), subject=subject, t_wall_ns=t_wall_ns, blame=blame, detail=detail or {},
        )
        (self.spec_agg if spec else self.agg).add(f)
        self._new.append(f)
        return f
