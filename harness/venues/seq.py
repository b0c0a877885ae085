"""Reusable sequencing trackers. Pure: numbers in, ``base.SeqFinding`` out.

- ``ContiguousCounter``: a counter that must go +1 per message per key (Coinbase Advanced
  Trade ``sequence_num`` per connection, Crypto.com ``u``/``pu``). Reports ``gap``,
  ``duplicate``, ``out_of_order`` and ``reset`` (a jump back to the start value).
- ``MonotonicTracker``: a value that must not go backwards per key (Bitstamp
  ``microtimestamp``, Coinbase Exchange ``sequence`` on ticker/matches, which skips numbers
  by design). Equal values are allowed by default: Bitstamp sends several messages with the
  same microtimestamp (seen in the recordings) and Coinbase sends ``ticker`` and
  ``match`` with the same ``sequence``.
- ``SnapshotAligner``: aligns a diff stream that has no sequence numbers to a REST
  snapshot by timestamp (Bitstamp): diffs at or before the snapshot are dropped, diffs
  received before the snapshot arrived are buffered and replayed, and a snapshot that is
  older than everything the stream delivered is reported as ``stale_snapshot``: nothing
  proves the diffs between the snapshot and the first diff were received.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from harness.venues.base import SeqFinding

__all__ = ["ContiguousCounter", "MonotonicTracker", "SnapshotAligner"]


class ContiguousCounter:
    """Per-key counter that must increase by exactly ``step``.

    ``check(key, n, frame_id)`` returns a finding or None and updates the state: after a
    gap the tracker resynchronises on ``n`` (one finding per gap, not one per message).
    ``reset_value``: if set, a jump back to it is reported as ``reset`` (not ``out_of_order``).
    """

    __slots__ = ("_last", "step", "reset_value", "counts")

    def __init__(self, step: int = 1, reset_value: int | None = None):
        self._last: dict[Hashable, int] = {}
        self.step = step
        self.reset_value = reset_value
        self.counts: dict[str, int] = {}

    def last(self, key: Hashable) -> int | None:
        return self._last.get(key)

    def expect(self, key: Hashable, n: int) -> None:
        """Set the last-seen value (e.g. from a snapshot's sequence)."""
        self._last[key] = n

    def forget(self, key: Hashable | None = None) -> None:
        if key is None:
            self._last.clear()
        else:
            self._last.pop(key, None)

    def check(self, key: Hashable, n: int, frame_id: int | None = None) -> SeqFinding | None:
        last = self._last.get(key)
        if last is None:
            self._last[key] = n
            return None
        expected = last + self.step
        if n == expected:
            self._last[key] = n
            return None
        if n == last:
            kind = "duplicate"
        elif n > expected:
            kind = "gap"
            self._last[key] = n
        elif self.reset_value is not None and n == self.reset_value:
            kind = "reset"
            self._last[key] = n
        else:
            kind = "out_of_order"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        detail = f"{n - expected} missing" if kind == "gap" else ""
        return SeqFinding(kind, str(key), expected, n, detail, frame_id)


class MonotonicTracker:
    """Per-key value that must not decrease (or must strictly increase if ``strict``)."""

    __slots__ = ("_last", "strict", "counts", "equal")

    def __init__(self, strict: bool = False):
        self._last: dict[Hashable, Any] = {}
        self.strict = strict
        self.counts: dict[str, int] = {}
        self.equal = 0  # how many equal consecutive values were seen (allowed unless strict)

    def last(self, key: Hashable) -> Any:
        return self._last.get(key)

    def forget(self, key: Hashable | None = None) -> None:
        if key is None:
            self._last.clear()
        else:
            self._last.pop(key, None)

    def check(self, key: Hashable, v: Any, frame_id: int | None = None, detail: str = "") -> SeqFinding | None:
        last = self._last.get(key)
        if last is None or v > last:
            self._last[key] = v
            return None
        if v == last:
            self.equal += 1
            if not self.strict:
                return None
            kind = "duplicate"
        else:
            kind = "out_of_order"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return SeqFinding(kind, str(key), last, v, detail, frame_id)


class SnapshotAligner:
    """Timestamp alignment of a diff stream to a REST snapshot, per key.

    Feed every diff with ``on_diff(key, ts, item)``: it returns ``"apply"`` (apply it to the
    book now), ``"buffer"`` (no snapshot yet: kept and returned by ``on_snapshot``) or
    ``"drop"`` (at or before the snapshot). ``on_snapshot(key, ts)`` returns
    ``(items_to_apply_now, findings)``.
    """

    __slots__ = ("_snap", "_buf", "_first", "_dropped", "max_buffer", "overflowed")

    def __init__(self, max_buffer: int = 100_000):
        self._snap: dict[Hashable, int] = {}
        self._buf: dict[Hashable, list[tuple[int, Any]]] = {}
        self._first: dict[Hashable, int] = {}  # first diff ts seen for the key
        self._dropped: dict[Hashable, int] = {}
        self.max_buffer = max_buffer
        self.overflowed: set[Hashable] = set()

    def has_snapshot(self, key: Hashable) -> bool:
        return key in self._snap

    def snapshot_ts(self, key: Hashable) -> int | None:
        return self._snap.get(key)

    def dropped(self, key: Hashable) -> int:
        return self._dropped.get(key, 0)

    def keys(self) -> set:
        """Every key with a snapshot or diffs seen."""
        return set(self._snap) | set(self._first) | set(self._buf)

    def forget(self, key: Hashable | None = None) -> None:
        for d in (self._snap, self._buf, self._first, self._dropped):
            if key is None:
                d.clear()
            else:
                d.pop(key, None)
        if key is None:
            self.overflowed.clear()
        else:
            self.overflowed.discard(key)

    def on_diff(self, key: Hashable, ts: int, item: Any = None) -> str:
        if key not in self._first:
            self._first[key] = ts
        snap = self._snap.get(key)
        if snap is None:
            buf = self._buf.setdefault(key, [])
            if len(buf) >= self.max_buffer:
                buf.pop(0)
                self.overflowed.add(key)
            buf.append((ts, item))
            return "buffer"
        if ts <= snap:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return "drop"
        return "apply"

    def on_snapshot(self, key: Hashable, ts: int, frame_id: int | None = None) -> tuple[list[Any], list[SeqFinding]]:
        findings: list[SeqFinding] = []
        self._snap[key] = ts
        buf = self._buf.pop(key, [])
        keep = [item for t, item in buf if t > ts]
        ndrop = len(buf) - len(keep)
        self._dropped[key] = self._dropped.get(key, 0) + ndrop
        first = self._first.get(key)
        if key in self.overflowed:
            findings.append(
                SeqFinding("gap", str(key), None, ts, "diff buffer overflowed before the snapshot arrived", frame_id)
            )
            self.overflowed.discard(key)
        elif first is not None and first > ts:
            findings.append(
                SeqFinding(
                    "stale_snapshot",
                    str(key),
                    first,
                    ts,
                    "snapshot is older than the first diff received: diffs in between may be missing",
                    frame_id,
                )
            )
        return keep, findings
