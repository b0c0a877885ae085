"""The one record type that flows through every path: live, recording, impersonation server."""

from __future__ import annotations

import msgspec

# Direction and opcode values as stored in the ``frames`` table.
IN = "in"
OUT = "out"
OPCODES = ("text", "binary", "ping", "pong", "close")


class Frame(msgspec.Struct, gc=False):
    """One WebSocket frame as received or sent.

    ``payload`` is ``str`` for text frames and ``bytes`` for everything else.
    ``t_wall_ns`` is Unix time in ns; ``t_mono_ns`` a monotonic clock of the recording
    process (only comparable within one session). ``id``/``session_id`` are 0 until stored.
    """

    venue: str
    conn_id: int
    dir: str
    t_wall_ns: int
    t_mono_ns: int
    opcode: str
    payload: str | bytes
    type: str | None = None
    id: int = 0
    session_id: int = 0

    @property
    def size(self) -> int:
        p = self.payload
        return len(p.encode()) if isinstance(p, str) else len(p)
