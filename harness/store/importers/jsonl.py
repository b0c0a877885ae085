"""The harness's generic JSON Lines frame format (import side; ``harness.store.export``
writes it).

One WebSocket frame a line, UTF-8, lines separated by ``\\n`` (a file may be
zstd-compressed; detected by its magic bytes). Blank lines are skipped. Example::

    {"venue":"kalshi","conn":1,"dir":"in","t":1786309548.026294,"frame":"{\\"type\\":\\"ticker\\"}"}

Fields:

- ``venue`` (string, required): venue name, e.g. ``kalshi``, ``coinbase``, ``kraken``,
  ``bitstamp``, ``gemini``, ``cryptocom`` (any non-empty string is accepted and stored
  as given).
- ``dir`` (required): ``"in"`` (received) or ``"out"`` (sent by the client).
- ``t`` (required): Unix time in seconds, a JSON number (``1786309548.026294``) or a
  string holding one (``"1786309548.026294123"``), converted to ns exactly (no binary
  float; digits beyond ns floored). Stored as both ``t_wall_ns`` and ``t_mono_ns``.
- ``frame`` (string): the payload of a text frame, exactly as sent/received; or
- ``frame_b64`` (string): the payload of a non-text frame, base64 (standard alphabet,
  padded). Exactly one of ``frame`` / ``frame_b64`` is required.
- ``opcode`` (optional): ``text`` (default with ``frame``, the only one allowed with it),
  or ``binary`` (default with ``frame_b64``), ``ping``, ``pong``, ``close``.
- ``conn`` (optional, any JSON scalar): tells connections of one venue apart. Lines with
  the same ``venue`` and ``conn`` (compared as JSON values: ``1`` and ``"1"`` differ;
  missing equals ``null``) are one connection, opened at its first line's ``t``.
- ``url`` (optional string): the connection's URL; the first line of a connection that
  has one sets it.

Any other key is ignored (so ``type``, say, can be carried along for readers). Lines need
not be in time order: a recording reads frames back ordered by time (ties by line order).
One file is one session (mode ``import``, source ``"jsonl <abs path>"``). Not carried:
monotonic times of the original recording, close codes, events and HTTP rows.
"""

from __future__ import annotations

import base64
import binascii
import os
from decimal import Decimal

from harness.errors import ImportFormatError
from harness.frame import OPCODES
from harness.store.importers import (
    FileResult,
    Pacer,
    abort_writer,
    iter_json_objects,
    recordable_ns,
)
from harness.store.writer import RecordingWriter, payload_size

_SCALARS = (str, int, Decimal, bool, type(None))


def _t_ns(path: str, lineno: int, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
        raise ImportFormatError(path, lineno, f"'t' must be Unix seconds (a number), not {type(v).__name__}")
    try:
        return recordable_ns(v)
    except ValueError as e:
        raise ImportFormatError(path, lineno, f"bad 't': {e}") from None


def import_jsonl(path: str, recording: str, *, classify=None) -> FileResult:
    """Import one harness JSON Lines file as a new session of ``recording`` (written in
    place: use ``harness.store.importers.import_files`` for the atomic version)."""
    path = os.fspath(path)
    res = FileResult(path=path, format="jsonl")
    writer: RecordingWriter | None = None
    pacer: Pacer | None = None
    conns: dict[tuple, int] = {}
    no_url: set[int] = set()
    venues: list[str] = []
    last_ns = None
    ok = False
    try:
        for lineno, rec in iter_json_objects(path, "line"):
            try:
                venue = rec["venue"]
                d = rec["dir"]
                t = rec["t"]
            except KeyError as e:
                raise ImportFormatError(path, lineno, f"missing field {e.args[0]!r}",
                                        hint="every line needs venue, dir, t and frame (or frame_b64); see docs/formats.md") from None
            if type(venue) is not str or not venue:
                raise ImportFormatError(path, lineno, "'venue' must be a non-empty string")
            if d != "in" and d != "out":
                raise ImportFormatError(path, lineno, f"'dir' must be \"in\" or \"out\", not {d!r}")
            ns = _t_ns(path, lineno, t)
            frame = rec.get("frame")
            opcode = rec.get("opcode")
            if frame is not None:
                if "frame_b64" in rec:
                    raise ImportFormatError(path, lineno, "both 'frame' and 'frame_b64' given")
                if type(frame) is not str:
                    raise ImportFormatError(path, lineno, f"'frame' must be a string, not {type(frame).__name__}",
                                            hint="put the frame's text in a JSON string (a JSON frame is escaped, not nested)")
                if opcode is None:
                    opcode = "text"
                elif opcode != "text":
                    raise ImportFormatError(path, lineno, f"opcode {opcode!r} needs 'frame_b64', not 'frame'")
                payload = frame
            else:
                b64 = rec.get("frame_b64")
                if b64 is None:
                    raise ImportFormatError(path, lineno, "missing field 'frame' (or 'frame_b64')")
                if type(b64) is not str:
                    raise ImportFormatError(path, lineno, "'frame_b64' must be a base64 string")
                try:
                    payload = base64.b64decode(b64, validate=True)
                except (binascii.Error, ValueError) as e:
                    raise ImportFormatError(path, lineno, f"bad base64 in 'frame_b64' ({e})") from None
                if opcode is None:
                    opcode = "binary"
                elif opcode not in OPCODES or opcode == "text":
                    raise ImportFormatError(path, lineno, f"bad opcode {opcode!r} for 'frame_b64'",
                                            hint="binary, ping, pong or close")
            conn = rec.get("conn")
            if not isinstance(conn, _SCALARS):
                raise ImportFormatError(path, lineno, "'conn' must be a JSON scalar (string, number, true/false, null)")
            if writer is None:
                writer = RecordingWriter(
                    recording, mode="import", config={"import": {"format": "jsonl", "file": os.path.basename(path)}},
                    source=f"jsonl {os.path.abspath(path)}", classify=classify, started_ns=ns,
                    batch_frames=5000, batch_ms=100.0,
                )
                pacer = Pacer(writer)
                res.session_id = writer.session_id
            key = (venue, type(conn).__name__ if not isinstance(conn, Decimal) else "float", str(conn))
            cid = conns.get(key)
            url = rec.get("url")
            if type(url) is not str:
                url = None
            if cid is None:
                cid = conns[key] = writer.connection(venue, url, ns)
                writer.event("connect", ns, ns, cid, {"source_conn": None if conn is None else str(conn), "url": url})
                res.connections += 1
                if url is None:
                    no_url.add(cid)
                if venue not in venues:
                    venues.append(venue)
            elif url is not None and cid in no_url:
                writer.update_connection(cid, url=url)
                no_url.discard(cid)
            size = payload_size(payload)
            writer.frame(cid, d, ns, ns, opcode, payload, None, size)
            if d == "in":
                res.frames_in += 1
            else:
                res.frames_out += 1
            res.bytes += size
            pacer.add(size)
            if last_ns is None or ns > last_ns:
                last_ns = ns
        if writer is None:
            raise ImportFormatError(path, None, "file has no frames")
        res.venues = venues
        writer.close(ended_ns=last_ns)
        ok = True
        return res
    finally:
        if writer is not None and not ok:
            abort_writer(writer)
