"""Recording -> sink, in receive order, on the absolute schedule, with the replay clock.

A sink is any object with ``on_frame(frame)``; ``close()`` is called at the end if present.
The replay advances ``clock`` to each frame's recorded time before delivering it, so the
pipeline sees recorded time at every speed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.clock import ReplayClock
from harness.frame import Frame
from harness.replay.schedule import Schedule
from harness.store.reader import Filters, Recording


class CountingSink:
    """Counts frames per venue, direction and type, classifying frames stored without one."""

    def __init__(self, classify: Callable[[str, str | bytes], str | None] | None = None):
        self.classify = classify
        self.by_type: Counter = Counter()
        self.frames = 0
        self.bytes = 0

    def on_frame(self, f: Frame) -> None:
        self.frames += 1
        if f.opcode != "text":
            t = f"<{f.opcode}>"
        else:
            t = f.type
            if t is None and self.classify is not None:
                t = self.classify(f.venue, f.payload)
        self.by_type[(f.venue, f.dir, t)] += 1


class NullSink:
    def on_frame(self, f: Frame) -> None:
        pass


@dataclass
class ReplayStats:
    frames: int = 0
    first_t_ns: int | None = None
    last_t_ns: int | None = None
    wall_s: float = 0.0
    speed: float | None = None
    lateness: dict = field(default_factory=dict)
    interrupted: bool = False
    bad_rows: list = field(default_factory=list)  # ids of rows skipped as unplaceable

    def as_dict(self) -> dict:
        span = ((self.last_t_ns - self.first_t_ns) / 1e9) if self.frames else 0.0
        return {
            "frames": self.frames,
            "recorded_span_s": round(span, 6),
            "wall_s": round(self.wall_s, 6),
            "frames_per_s": round(self.frames / self.wall_s, 1) if self.wall_s > 0 else None,
            "speed": "max" if self.speed is None else self.speed,
            "lateness": self.lateness,
            "interrupted": self.interrupted,
            "bad_rows": {"count": len(self.bad_rows), "first_ids": self.bad_rows[:10]},
        }


def timeline(rec: Recording, filters: Filters | None = None, bad_rows: list | None = None):
    """(t_line_ns, Frame) in receive order; t_line is monotonic time shifted onto wall time
    per session, the clock the schedule runs on.

    A row whose times are not integers (a damaged or hand-edited recording) cannot be
    placed on the timeline: it is skipped and its id appended to ``bad_rows``."""
    offsets: dict[int, int] = {}
    cv = rec.conn_venue
    for batch in rec.row_batches(filters):
        for fid, sid, cid, d, tw, tm, op, payload, typ in batch:
            off = offsets.get(sid)
            if off is None:
                off = offsets[sid] = rec.session_offset_ns(sid)
            try:
                t_line = tm + off
                if tw.__class__ is not int:
                    raise TypeError
            except TypeError:
                if bad_rows is not None:
                    bad_rows.append(fid)
                continue
            yield t_line, Frame(cv.get(cid, "?"), cid, d, tw, tm, op, payload, typ, fid, sid)


def replay(
    rec: Recording,
    sink,
    *,
    speed: float | None = None,
    filters: Filters | None = None,
    clock: ReplayClock | None = None,
    precise: bool = False,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 5000,
) -> ReplayStats:
    sched = Schedule(speed, precise=precise)
    stats = ReplayStats(speed=speed)
    on_frame = sink.on_frame
    clock = clock or ReplayClock()
    advance = clock.advance
    wait = sched.wait
    n = 0
    start = time.perf_counter()
    try:
        for t_line, f in timeline(rec, filters, stats.bad_rows):
            if n == 0:
                stats.first_t_ns = t_line
            if speed is not None:
                wait(t_line)
            advance(f.t_wall_ns, f.t_mono_ns)
            on_frame(f)
            n += 1
            if progress is not None and n % progress_every == 0:
                progress(n)
            stats.last_t_ns = t_line
    except KeyboardInterrupt:
        stats.interrupted = True
    stats.frames = n
    stats.wall_s = time.perf_counter() - start
    stats.lateness = sched.lateness_summary()
    close = getattr(sink, "close", None)
    if close is not None:
        close()
    return stats
