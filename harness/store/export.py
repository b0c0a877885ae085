"""Recording -> the harness JSON Lines frame format (see
``harness.store.importers.jsonl`` and docs/formats.md).

``export_jsonl(recording, out, filters=None) -> int`` writes one line per frame in
receive order and returns the number of frames written. ``t`` is written as the exact
decimal of ``t_wall_ns`` (``1618678132358447000`` -> ``1618678132.358447``), ``conn`` is
the recording's connection id, ``url`` appears on each connection's first line, and
``opcode`` only when it is not the default for the payload (text with ``frame``, binary
with ``frame_b64``). Importing the output with ``harness import jsonl`` gives back the
same frames (venue, connection grouping, dir, wall time, opcode, payload); monotonic
times become the wall times, and the frames land in one session.
"""

from __future__ import annotations

import base64
import os
from typing import BinaryIO

import orjson

from harness.errors import RecordingError
from harness.store.importers import ns_to_seconds_text
from harness.store.reader import Filters, Recording


def _line(venue: str, cid: int, d: str, tw: int, opcode: str, payload, url: str | None) -> bytes:
    parts = [b'{"venue":', orjson.dumps(venue), b',"conn":', str(cid).encode(), b',"dir":', orjson.dumps(d),
             b',"t":', ns_to_seconds_text(tw).encode()]
    if url is not None:
        parts += [b',"url":', orjson.dumps(url)]
    if opcode == "text":
        if not isinstance(payload, str):  # NULL or bytes in a text frame: never written by harness
            payload = "" if payload is None else bytes(payload).decode("utf-8", "replace")
        parts += [b',"frame":', orjson.dumps(payload)]
    else:
        if payload is None:
            payload = b""
        elif isinstance(payload, str):
            payload = payload.encode("utf-8", "surrogatepass")
        elif not isinstance(payload, bytes):  # a damaged row's number
            payload = str(payload).encode()
        if opcode != "binary":
            parts += [b',"opcode":', orjson.dumps(opcode)]
        parts += [b',"frame_b64":"', base64.b64encode(payload), b'"']
    parts.append(b"}\n")
    return b"".join(parts)


def export_jsonl(recording: Recording, out: BinaryIO, filters: Filters | None = None) -> int:
    """Write ``recording``'s frames (optionally filtered) to the binary stream ``out``."""
    urls = {c: u for c, u in recording.db.execute("SELECT id, url FROM connections")}
    cv = recording.conn_venue
    seen: set[int] = set()
    n = 0
    write = out.write
    buf: list[bytes] = []
    size = 0
    for _fid, _sid, cid, d, tw, _tm, op, payload, _typ in recording.rows(filters):
        if tw.__class__ is not int:  # a damaged row: no time to write; reported by the command
            recording.bad_rows.append(_fid)
            continue
        url = None
        if cid not in seen:
            seen.add(cid)
            url = urls.get(cid)
        line = _line(cv.get(cid, "unknown"), cid, d, tw, op, payload, url)
        buf.append(line)
        size += len(line)
        n += 1
        if size >= 1 << 20:
            write(b"".join(buf))
            buf.clear()
            size = 0
    if buf:
        write(b"".join(buf))
    return n


def export_jsonl_file(recording: Recording, path: str, filters: Filters | None = None) -> int:
    """Export to ``path`` atomically (temp file + rename); ``.zst`` names are compressed."""
    path = os.path.abspath(path)
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        raise RecordingError(f"directory {d} does not exist", hint="create it first")
    tmp = os.path.join(d, f".{os.path.basename(path)}.exporting-{os.getpid()}")
    ok = False
    try:
        with open(tmp, "wb") as fh:
            if path.endswith(".zst"):
                import zstandard

                with zstandard.ZstdCompressor(level=9).stream_writer(fh, closefd=False) as zw:
                    n = export_jsonl(recording, zw, filters)
            else:
                n = export_jsonl(recording, fh, filters)
        os.replace(tmp, path)
        ok = True
        return n
    except OSError as e:
        raise RecordingError(f"cannot write {path}: {e.strerror or e}", hint="check free space and permissions") from None
    finally:
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass
