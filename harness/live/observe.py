"""Watch what the recorder writes, as it writes it: the hook for live checks
(`harness record --check`) and for `harness replay --via-server`.

``ObservedWriter`` wraps a ``RecordingWriter``: every call is passed through unchanged
(the recording stays the source of truth), and frames, connections (opened, then
``update_connection``: handshake headers and status, close), events and HTTP exchanges
are also handed to an observer. The observer runs on the event loop thread,
inside the receive path, so it must be quick and must not raise: an exception is caught,
counted and reported once on stderr rather than stopping the recording.
"""

from __future__ import annotations

import sys
from typing import Protocol

from harness.frame import Frame


class Observer(Protocol):
    """What a live consumer implements. Every method is optional."""

    def on_connection(self, conn_id: int, venue: str, url: str | None) -> None: ...

    def on_connection_update(self, conn_id: int, cols: dict) -> None:
        """Columns set on a connection row after it was opened (``request_headers``,
        ``response_status``, ``response_headers``, ``url``, ``opened_ns``, ``closed_ns``,
        ``close_code``, ``close_reason``): the handshake is known once ``response_status``
        or ``closed_ns`` is among them."""

    def on_frame(self, frame: Frame) -> None: ...

    def on_event(self, kind: str, t_wall_ns: int, conn_id: int | None, detail: dict | None) -> None: ...

    def on_http(self, exchange: dict) -> None: ...


class ObservedWriter:
    """A ``RecordingWriter`` stand-in that tees to ``observer`` after each write."""

    def __init__(self, writer, observer):
        self._w = writer
        self._obs = observer
        self._venues: dict[int, str] = {}
        self.observer_errors = 0
        self._on_frame = getattr(observer, "on_frame", None)
        self._on_event = getattr(observer, "on_event", None)
        self._on_conn = getattr(observer, "on_connection", None)
        self._on_http = getattr(observer, "on_http", None)
        self._on_update = getattr(observer, "on_connection_update", None)

    def __getattr__(self, name):  # everything not teed goes straight to the writer
        return getattr(self._w, name)

    def _fail(self, where: str, e: Exception) -> None:
        self.observer_errors += 1
        if self.observer_errors == 1:
            print(f"harness: live observer failed in {where}: {type(e).__name__}: {e} "
                  "(recording continues; further observer errors are counted, not printed)",
                  file=sys.stderr)

    def connection(self, venue: str, url: str | None, *args, **kw) -> int:
        conn_id = self._w.connection(venue, url, *args, **kw)
        self._venues[conn_id] = venue
        if self._on_conn is not None:
            try:
                self._on_conn(conn_id, venue, url)
            except Exception as e:  # noqa: BLE001 - an observer must never stop the recorder
                self._fail("on_connection", e)
        return conn_id

    def update_connection(self, conn_id: int, **cols) -> None:
        self._w.update_connection(conn_id, **cols)
        if self._on_update is not None:
            try:
                self._on_update(conn_id, dict(cols))
            except Exception as e:  # noqa: BLE001
                self._fail("on_connection_update", e)

    def close_connection(self, conn_id: int, closed_ns: int, code=None, reason=None) -> None:
        self._w.close_connection(conn_id, closed_ns, code, reason)
        if self._on_update is not None:
            try:
                self._on_update(conn_id, {"closed_ns": closed_ns, "close_code": code, "close_reason": reason})
            except Exception as e:  # noqa: BLE001
                self._fail("on_connection_update", e)

    def frame(self, conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type=None, size=None) -> int:
        fid = self._w.frame(conn_id, dir, t_wall_ns, t_mono_ns, opcode, payload, type, size)
        if self._on_frame is not None:
            try:
                self._on_frame(Frame(self._venues.get(conn_id, ""), conn_id, dir, t_wall_ns, t_mono_ns,
                                     opcode, payload, type, fid))
            except Exception as e:  # noqa: BLE001
                self._fail("on_frame", e)
        return fid

    def write_frame(self, f) -> int:
        return self.frame(f.conn_id, f.dir, f.t_wall_ns, f.t_mono_ns, f.opcode, f.payload, f.type)

    def event(self, kind, t_wall_ns, t_mono_ns=None, conn_id=None, detail=None) -> None:
        self._w.event(kind, t_wall_ns, t_mono_ns, conn_id, detail)
        if self._on_event is not None:
            try:
                self._on_event(kind, t_wall_ns, conn_id, detail)
            except Exception as e:  # noqa: BLE001
                self._fail("on_event", e)

    def http(self, method, url, t_recv_ns, **kw) -> None:
        self._w.http(method, url, t_recv_ns, **kw)
        if self._on_http is not None:
            try:
                self._on_http({"method": method, "url": url, "t_recv_ns": t_recv_ns, **kw})
            except Exception as e:  # noqa: BLE001
                self._fail("on_http", e)


class Fanout:
    """Several observers as one (``record --check --pipeline``): each call goes to every
    observer that has the method, in order."""

    def __init__(self, *observers):
        self.observers = [o for o in observers if o is not None]
        for name in ("on_connection", "on_connection_update", "on_frame", "on_event", "on_http"):
            fns = [getattr(o, name) for o in self.observers if hasattr(o, name)]
            if fns:
                setattr(self, name, _fan(fns))


def _fan(fns):
    if len(fns) == 1:
        return fns[0]

    def call(*args):
        for fn in fns:
            fn(*args)

    return call


class QueueDrainer:
    """Base of the live consumers (checks, pipeline): the observer methods append to
    ``self.queue`` and call ``_kick()``; ``run(stop)`` is the task that calls
    ``drain(CHUNK)`` until ``stop`` is set, yielding to the event loop between chunks so
    the receive path never waits on the consumer."""

    CHUNK = 500
    _wake = None

    def drain(self, limit: int | None = None) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _kick(self) -> None:
        if self._wake is not None and not self._wake.is_set():
            self._wake.set()

    async def run(self, stop) -> None:
        import asyncio

        from harness.live.waits import first_of

        self._wake = asyncio.Event()
        while not stop.is_set():
            self.drain(self.CHUNK)
            if self.queue:
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            await first_of(self._wake.wait(), stop.wait())
