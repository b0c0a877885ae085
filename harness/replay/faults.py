"""Fault injection for the impersonation server: a spec grammar and a seeded injector.

Grammar (``--faults SPEC``)::

    SPEC  := TERM ("," TERM)*            terms may repeat (drop=@5,drop=@9)
    TERM  := NAME "=" ARGS
    WHEN  := PROB | "@" AT | "every:" AT
    PROB  := float in (0, 1]             each data frame independently, seeded
    AT    := INT                         the INT-th data frame of the connection (1-based)
           | DUR                         recorded time since the connection's first data frame
    DUR   := number + unit (ms|s|m|h)    e.g. 250ms, 30s, 1.5m

    seed=N                  RNG seed (default 0); the same seed + spec + client order gives
                            the same faults on the same frames
    drop=WHEN               the frame is not sent; its Kalshi ``seq`` is still consumed, so
                            the client sees a gap
    dup=WHEN                the frame is sent twice (same text, same seq)
    reorder=K[:WHEN]        the frame is held back and sent after the next K frames
                            (WHEN defaults to 0.01); its seq is the one it would have had
    delay=MEAN[~JITTER][:WHEN]  extra wall-clock latency before the frame (uniform in
                            MEAN +- JITTER; WHEN defaults to every frame). Head-of-line:
                            later frames wait behind it.
    stall=DUR@AT            nothing is sent for DUR (wall clock) starting at AT; frames due
                            meanwhile then go out in a burst (the schedule is absolute)
    disconnect=WHEN[:CODE]  close the connection with CODE (default 1011; 1006 aborts the
                            TCP connection without a close frame). ``every:30s:1011``,
                            ``@100:1001``
    corrupt=WHEN            the frame is truncated to half its length (invalid JSON)
    seqgap=WHEN             Kalshi ``seq`` / Coinbase ``sequence_num`` skips one number
                            before this frame (the frame itself is delivered)
    kalshi_error=CODE@WHEN  Kalshi: an ``error`` frame with CODE (message from the spec's
                            table) before the frame; for the terminal codes 10, 17, 25 the
                            frame's subscription ends (the client must resubscribe)
    bts_reconnect=WHEN      Bitstamp: a ``bts:request_reconnect`` frame before the frame
    refuse=CODE[|CODE...][@N]   refuse WebSocket handshakes with HTTP CODE: without @N
                            the first handshakes, one per listed code (``refuse=401|429|503``
                            refuses attempts 1, 2, 3); with @N only the N-th handshake
                            (counted over the whole server, all venues)

"data frame" counts the recorded frames a connection would receive (after its
subscription filter), from 1 on each connection. Each injected fault is reported to the
``log`` callback as a dict naming the fault, venue, client number, frame index and the
recorded frame id it touched.

Python API: ``FaultPlan.parse(spec)`` or ``FaultPlan(terms=[Fault(...)])``;
``plan.injector(venue, client_no, log)`` -> ``FaultInjector`` (one per connection).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from harness.errors import ConfigError

KINDS = (
    "drop", "dup", "reorder", "delay", "stall", "disconnect", "corrupt", "seqgap",
    "kalshi_error", "bts_reconnect", "refuse",
)

_DUR = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_dur_ns(text: str) -> int:
    m = _DUR.match(text.strip())
    if not m:
        raise ConfigError(f"bad duration {text!r} in --faults", hint="durations need a unit: 250ms, 30s, 2m")
    return int(float(m.group(1)) * _UNIT_NS[m.group(2)])


@dataclass(frozen=True)
class When:
    """When a per-frame fault fires: ``prob`` per frame, ``at_frame``/``at_ns`` once,
    ``every_frames``/``every_ns`` periodically."""

    prob: float | None = None
    at_frame: int | None = None
    at_ns: int | None = None
    every_frames: int | None = None
    every_ns: int | None = None

    @classmethod
    def parse(cls, text: str, name: str) -> When:
        t = text.strip()
        try:
            if t.startswith("@"):
                a = t[1:]
                return cls(at_frame=int(a)) if a.isdigit() else cls(at_ns=parse_dur_ns(a))
            if t.startswith("every:"):
                a = t[6:]
                w = cls(every_frames=int(a)) if a.isdigit() else cls(every_ns=parse_dur_ns(a))
                if (w.every_frames or w.every_ns or 0) <= 0:
                    raise ValueError
                return w
            p = float(t)
        except (ValueError, ConfigError):
            raise ConfigError(f"bad WHEN {text!r} for {name}", hint="a probability (0.01), @N (frame), @30s or every:30s") from None
        if not 0 < p <= 1:
            raise ConfigError(f"probability {p} for {name} must be in (0, 1]")
        return cls(prob=p)


@dataclass(frozen=True)
class Fault:
    kind: str
    when: When | None = None
    k: int = 0  # reorder distance
    mean_ns: int = 0  # delay mean / stall duration
    jitter_ns: int = 0
    code: int | None = None  # disconnect close code / kalshi error code
    codes: tuple[int, ...] = ()  # refuse statuses
    attempt: int | None = None  # refuse@N

    def text(self) -> str:
        return self.kind


def _split_when(args: str, default: str | None, name: str) -> tuple[str, When | None]:
    head, sep, tail = args.partition(":")
    if sep:
        return head, When.parse(tail, name)
    return head, (When.parse(default, name) if default is not None else None)


def _parse_term(name: str, args: str) -> Fault:
    if name in ("drop", "dup", "corrupt", "seqgap", "bts_reconnect"):
        return Fault(name, When.parse(args, name))
    if name == "reorder":
        k, w = _split_when(args, "0.01", name)
        if not k.isdigit() or int(k) < 1:
            raise ConfigError(f"reorder needs a frame count >= 1, got {k!r}")
        return Fault(name, w, k=int(k))
    if name == "delay":
        d, w = _split_when(args, "1", name)
        mean, _, jit = d.partition("~")
        m, j = parse_dur_ns(mean), (parse_dur_ns(jit) if jit else 0)
        if j > m:
            raise ConfigError(f"delay jitter {jit} exceeds the mean {mean}")
        return Fault(name, w, mean_ns=m, jitter_ns=j)
    if name == "stall":
        dur, sep, at = args.partition("@")
        if not sep:
            raise ConfigError(f"stall needs DUR@AT, got {args!r}", hint="stall=30s@60s or stall=2s@100")
        return Fault(name, When.parse("@" + at, name), mean_ns=parse_dur_ns(dur))
    if name == "disconnect":
        # WHEN may itself contain ':' (every:30s), so the code is the last ':' part if numeric.
        parts = args.split(":")
        code = 1011
        if len(parts) > 1 and parts[-1].isdigit() and not (len(parts) == 2 and parts[0] == "every"):
            code = int(parts[-1])
            parts = parts[:-1]
        if not (code in (1006,) or 1000 <= code <= 1014 or 3000 <= code <= 4999):
            raise ConfigError(f"bad close code {code} for disconnect")
        return Fault(name, When.parse(":".join(parts), name), code=code)
    if name == "kalshi_error":
        c, sep, w = args.partition("@")
        if not sep or not c.isdigit():
            raise ConfigError(f"kalshi_error needs CODE@WHEN, got {args!r}", hint="kalshi_error=25@200")
        wtext = w if (w.startswith("every:") or _is_prob(w)) else "@" + w
        return Fault(name, When.parse(wtext, name), code=int(c))
    if name == "refuse":
        c, sep, n = args.partition("@")
        try:
            codes = tuple(int(x) for x in c.split("|"))
        except ValueError:
            raise ConfigError(f"refuse needs HTTP codes like 401|429|503, got {c!r}") from None
        if any(not 400 <= x <= 599 for x in codes):
            raise ConfigError(f"refuse codes must be 4xx/5xx, got {c!r}")
        if sep and (not n.isdigit() or int(n) < 1):
            raise ConfigError(f"refuse@N needs N >= 1, got {n!r}")
        return Fault(name, None, codes=codes, attempt=int(n) if sep else None)
    raise ConfigError(f"unknown fault {name!r}", hint=f"one of: {', '.join(KINDS)}, seed")


def _is_prob(t: str) -> bool:
    try:
        float(t)
        return "." in t
    except ValueError:
        return False


@dataclass
class FaultPlan:
    terms: list[Fault] = field(default_factory=list)
    seed: int = 0
    spec: str = ""

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        plan = cls(spec=spec or "")
        for raw in (spec or "").split(","):
            raw = raw.strip()
            if not raw:
                continue
            name, sep, args = raw.partition("=")
            name = name.strip().lower()
            if not sep or not args.strip():
                raise ConfigError(f"bad fault term {raw!r}", hint="NAME=ARGS, e.g. drop=0.01 or disconnect=every:30s:1011")
            if name == "seed":
                try:
                    plan.seed = int(args)
                except ValueError:
                    raise ConfigError(f"seed must be an integer, got {args!r}") from None
                continue
            plan.terms.append(_parse_term(name, args.strip()))
        return plan

    @classmethod
    def coerce(cls, faults) -> FaultPlan:
        if faults is None:
            return cls()
        if isinstance(faults, FaultPlan):
            return faults
        return cls.parse(str(faults))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def frame_terms(self) -> list[Fault]:
        return [t for t in self.terms if t.kind != "refuse"]

    def refuse_status(self, attempt: int) -> int | None:
        """HTTP status to refuse handshake number ``attempt`` (1-based) with, or None."""
        for t in self.terms:
            if t.kind != "refuse":
                continue
            if t.attempt is None:
                if attempt <= len(t.codes):
                    return t.codes[attempt - 1]
            elif attempt == t.attempt:
                return t.codes[0]
        return None

    def injector(self, venue: str, client_no: int, log=None) -> FaultInjector:
        return FaultInjector(self, venue, client_no, log)


class Actions:
    """What to do with one data frame. ``before`` are extra frames/actions to do first."""

    __slots__ = ("drop", "dup", "corrupt", "seqgap", "hold", "delay_ns", "stall_ns", "disconnect",
                 "kalshi_error", "bts_reconnect")

    def __init__(self):
        self.drop = self.dup = self.corrupt = self.seqgap = self.bts_reconnect = False
        self.hold = 0
        self.delay_ns = self.stall_ns = 0
        self.disconnect: int | None = None
        self.kalshi_error: int | None = None


class FaultInjector:
    """Decides, per data frame of one connection, which faults fire. Deterministic for a
    given (seed, venue, client_no) and frame sequence."""

    def __init__(self, plan: FaultPlan, venue: str, client_no: int, log=None):
        self.venue = venue
        self.client_no = client_no
        self.log = log
        self.terms = plan.frame_terms()
        self.rngs = [random.Random(f"{plan.seed}/{venue}/{client_no}/{i}") for i in range(len(self.terms))]
        self.next_ns = [t.when.every_ns if t.when and t.when.every_ns else None for t in self.terms]
        self.done = [False] * len(self.terms)
        self.active = bool(self.terms)

    def _fires(self, i: int, t: Fault, index: int, t_rel_ns: int) -> bool:
        w = t.when
        if w is None:
            return False
        if w.prob is not None:
            return self.rngs[i].random() < w.prob
        if w.at_frame is not None:
            return index == w.at_frame
        if w.at_ns is not None:
            if not self.done[i] and t_rel_ns >= w.at_ns:
                self.done[i] = True
                return True
            return False
        if w.every_frames is not None:
            return index % w.every_frames == 0
        if w.every_ns is not None and t_rel_ns >= self.next_ns[i]:
            while self.next_ns[i] <= t_rel_ns:
                self.next_ns[i] += w.every_ns
            return True
        return False

    def actions(self, index: int, t_rel_ns: int) -> Actions | None:
        """Faults for data frame ``index`` (1-based) at recorded offset ``t_rel_ns``; None if none."""
        if not self.active:
            return None
        a = None
        for i, t in enumerate(self.terms):
            if not self._fires(i, t, index, t_rel_ns):
                continue
            if a is None:
                a = Actions()
            k = t.kind
            if k == "drop":
                a.drop = True
            elif k == "dup":
                a.dup = True
            elif k == "corrupt":
                a.corrupt = True
            elif k == "seqgap":
                a.seqgap = True
            elif k == "bts_reconnect":
                a.bts_reconnect = True
            elif k == "reorder":
                a.hold = t.k
            elif k == "delay":
                a.delay_ns += t.mean_ns + (int(self.rngs[i].uniform(-t.jitter_ns, t.jitter_ns)) if t.jitter_ns else 0)
            elif k == "stall":
                a.stall_ns += t.mean_ns
            elif k == "disconnect":
                a.disconnect = t.code
            elif k == "kalshi_error":
                a.kalshi_error = t.code
        return a

    def record(self, fault: str, frame_id: int | None, index: int | None, **detail) -> dict:
        entry = {"fault": fault, "venue": self.venue, "client": self.client_no, "frame_id": frame_id, "index": index}
        entry.update(detail)
        if self.log is not None:
            self.log(entry)
        return entry
