"""cryptofeed captures -> recording.

Two formats, told apart by content (``harness.store.importers.detect_format``):

**Format 2** (``*.jsonl`` or ``*.jsonl.zst``): JSON Lines, one record a line, ``t`` naming
the record kind::

    {"t":"header","format":2,"exchange":"KRAKEN","config":{...},"recorded":<unix s>, ...}
    {"t":"connect","conn":<id>,"ts":<unix s>,"addr":<ws url>}
    {"t":"send","conn":<id>,"ts":<unix s>,"addr":<ws url>,"data":"<frame sent>"}
    {"t":"recv","conn":<id>,"ts":<unix s>,"data":"<frame received>"}
    {"t":"http","conn":<id>,"ts":<unix s>,"url":<url>,"data":"<response body>"}

Mapping: one session per file (mode ``import``, source ``"cryptofeed-2 <abs path>"``,
config = the header record without ``t`` — the capture's feed config is under
``config``, plus ``exchange``, ``recorded``, ... ; started_ns = header ``recorded`` (or
the first ``ts``), ended_ns = the last ``ts``). Venue from the header ``exchange``
(COINBASE -> coinbase, KRAKEN -> kraken, BITSTAMP -> bitstamp, GEMINI -> gemini,
CRYPTO.COM -> cryptocom), else from the URL host, else from the file name. Each distinct
WebSocket ``conn`` becomes a ``connections`` row (url = ``addr``, opened_ns = the connect
``ts``) and a ``connect`` event whose detail keeps the original id
(``{"source_conn": "KRAKEN.ws.48", "url": ...}``); ``send`` -> frame dir ``out``,
``recv`` -> dir ``in``, opcode ``text``, payload = ``data`` unchanged. ``http`` -> an
``http`` row (method GET, url, response_body = ``data``, t_recv_ns = ``ts``,
venue; conn_id NULL: REST calls are not on a WebSocket connection). A ``close`` or
``disconnect`` record (not in the known captures) closes the connection with its
optional ``code``/``reason``. ``send``/``recv`` on a conn with no ``connect`` record make
a connection with unknown url/open time.

**Legacy text** (``legacy_*.ws.*.txt`` / ``*.http.*.txt``): one record a line,
``<ws url> <-> <unix s>`` (connect; each such line opens a new connection),
``<ws url> <- <unix s>: <frame sent>``, ``<unix s>: <frame received>``; the ``.http.``
files ``<url> -> <unix s>: <body>``. The frame is everything after the first ``": "``,
byte for byte (a trailing ``"\\r"`` is dropped only when the file's first line ends in
CRLF). Blank lines are skipped. Venue from the URL host, else the file name.

Times: ``ts`` is converted from its decimal text exactly (``1618678132.358447`` ->
``1618678132358447000`` ns; digits beyond ns floored) and used for both ``t_wall_ns`` and
``t_mono_ns``: the capture has one clock.
"""

from __future__ import annotations

import os
from decimal import Decimal

from harness.errors import ImportFormatError
from harness.store.importers import (
    _LEGACY_CONNECT,
    _LEGACY_HTTP,
    _LEGACY_SEND,
    FileResult,
    Pacer,
    abort_writer,
    decode_line,
    iter_json_objects,
    iter_lines,
    recordable_ns,
    venue_from_exchange,
    venue_from_filename,
    venue_from_url,
)
from harness.store.writer import RecordingWriter, payload_size

_KINDS = ("header", "connect", "send", "recv", "http", "close", "disconnect")


def _ns(path: str, lineno: int, rec: dict, key: str = "ts") -> int:
    try:
        v = rec[key]
    except KeyError:
        raise ImportFormatError(path, lineno, f"{rec.get('t', 'record')!s} record has no {key!r}") from None
    if isinstance(v, str):
        raise ImportFormatError(path, lineno, f"{key!r} must be a number of Unix seconds, not a string ({v!r})")
    try:
        return recordable_ns(v)
    except ValueError as e:
        raise ImportFormatError(path, lineno, f"bad {key!r}: {e}") from None


def _field(path: str, lineno: int, rec: dict, key: str, types=(str,)):
    try:
        v = rec[key]
    except KeyError:
        raise ImportFormatError(path, lineno, f"{rec.get('t', 'record')!s} record has no {key!r}") from None
    if not isinstance(v, types):
        raise ImportFormatError(path, lineno, f"{key!r} has the wrong type ({type(v).__name__})")
    return v


def _plain(obj):
    """Decimal -> float for storing the header as session config."""
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def import_format2(path: str, recording: str, *, classify=None) -> FileResult:
    """Import one cryptofeed format 2 file as a new session of ``recording`` (written in
    place: use ``import_files`` for the atomic, checked version)."""
    path = os.fspath(path)
    res = FileResult(path=path, format="cryptofeed-2")
    writer: RecordingWriter | None = None
    pacer: Pacer | None = None
    venue: str | None = None
    conns: dict = {}  # source conn id -> recording conn id
    last_ns = None
    ok = False
    try:
        for lineno, rec in iter_json_objects(path, "record"):
            kind = rec.get("t")
            if writer is None:
                # first record: open the session
                if kind == "header":
                    exch = _field(path, lineno, rec, "exchange")
                    venue = venue_from_exchange(exch)
                    started = _ns(path, lineno, rec, "recorded") if "recorded" in rec else None
                    config = _plain({k: v for k, v in rec.items() if k != "t"})
                else:
                    venue = venue_from_url(rec.get("addr") or rec.get("url")) or venue_from_filename(path)
                    if venue is None:
                        label = str(rec.get("conn", ""))
                        venue = venue_from_exchange(label.split(".ws.")[0].split(".http.")[0]) if label else "unknown"
                    started = _ns(path, lineno, rec) if "ts" in rec else None
                    config = {}
                writer = RecordingWriter(
                    recording, mode="import", config=config, source=f"cryptofeed-2 {os.path.abspath(path)}",
                    classify=classify, started_ns=started, batch_frames=5000, batch_ms=100.0,
                )
                pacer = Pacer(writer)
                res.session_id = writer.session_id
                res.venues = [venue]
                if kind == "header":
                    continue
            if kind == "recv" or kind == "send":
                label = rec.get("conn")
                data = rec.get("data")
                if label is None or data is None:
                    missing = "conn" if label is None else "data"
                    raise ImportFormatError(path, lineno, f"{kind} record has no {missing!r}")
                if type(data) is not str:
                    raise ImportFormatError(path, lineno, f"'data' must be a string, not {type(data).__name__}")
                ns = _ns(path, lineno, rec)
                cid = conns.get(label)
                if cid is None:
                    if isinstance(label, (dict, list)):
                        raise ImportFormatError(path, lineno, "'conn' must be a string or number")
                    cid = conns[label] = writer.connection(venue, rec.get("addr"), None)
                    res.connections += 1
                size = payload_size(data)
                if kind == "recv":
                    writer.frame(cid, "in", ns, ns, "text", data, None, size)
                    res.frames_in += 1
                else:
                    writer.frame(cid, "out", ns, ns, "text", data, None, size)
                    res.frames_out += 1
                res.bytes += size
                pacer.add(size)
            elif kind == "connect":
                label = _field(path, lineno, rec, "conn", (str, int))
                ns = _ns(path, lineno, rec)
                url = rec.get("addr")
                if label in conns:
                    # a second connect on the same id: a reconnect, i.e. a new connection
                    writer.event("reconnect", ns, ns, conns[label], {"source_conn": label, "url": url})
                cid = conns[label] = writer.connection(venue, url, ns)
                res.connections += 1
                writer.event("connect", ns, ns, cid, {"source_conn": label, "url": url})
            elif kind == "http":
                ns = _ns(path, lineno, rec)
                url = _field(path, lineno, rec, "url")
                body = _field(path, lineno, rec, "data")
                writer.http("GET", url, ns, venue=venue, response_body=body, t_recv_mono_ns=ns)
                res.http += 1
            elif kind in ("close", "disconnect"):
                label = _field(path, lineno, rec, "conn", (str, int))
                ns = _ns(path, lineno, rec)
                cid = conns.get(label)
                if cid is not None:
                    code = rec.get("code")
                    writer.close_connection(cid, ns, code if isinstance(code, int) else None, rec.get("reason"))
                    writer.event("disconnect", ns, ns, cid, {"source_conn": label, "code": code, "reason": rec.get("reason")})
            elif kind == "header":
                raise ImportFormatError(path, lineno, "a second header record (are two captures concatenated?)",
                                        hint="split the file and import the parts as separate files")
            elif kind is None:
                raise ImportFormatError(path, lineno, "record has no 't' (record kind)")
            else:
                raise ImportFormatError(path, lineno, f"unknown record kind t={kind!r}", hint=f"known kinds: {', '.join(_KINDS)}")
            if last_ns is None or ns > last_ns:
                last_ns = ns
        if writer is None:
            raise ImportFormatError(path, None, "file has no records")
        writer.close(ended_ns=last_ns)
        ok = True
        return res
    finally:
        if writer is not None and not ok:
            abort_writer(writer)


def _legacy_lines(path: str):
    """(lineno, text) of non-blank lines of a legacy capture; CRLF handled."""
    crlf = None
    for lineno, line in iter_lines(path):
        if crlf is None:
            crlf = line.endswith(b"\r")
        if crlf and line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        yield lineno, decode_line(path, lineno, line)


def _legacy_ts(path: str, lineno: int, text: str) -> int:
    try:
        return recordable_ns(text)
    except ValueError:
        raise ImportFormatError(path, lineno, f"bad timestamp {text[:40]!r}") from None


def import_legacy_ws(path: str, recording: str, *, classify=None) -> FileResult:
    """Import one legacy cryptofeed ``.ws.`` text capture as a new session."""
    path = os.fspath(path)
    res = FileResult(path=path, format="cryptofeed-legacy-ws")
    writer: RecordingWriter | None = None
    pacer: Pacer | None = None
    venue = None
    cid = None
    last_ns = None
    ok = False
    try:
        for lineno, text in _legacy_lines(path):
            url = None
            i = text.find(": ")
            head = text[:i] if i >= 0 else text
            if i > 0 and (head[0].isdigit() or head[0] == "-") and " " not in head:
                kind, ns, payload = "in", _legacy_ts(path, lineno, head), text[i + 2:]
            elif (m := _LEGACY_SEND.match(text)) is not None:
                url = m.group(1)
                kind, ns, payload = "out", _legacy_ts(path, lineno, m.group(2)), text[m.end():]
            elif (m := _LEGACY_CONNECT.match(text)) is not None:
                url = m.group(1)
                kind, ns, payload = "connect", _legacy_ts(path, lineno, m.group(2)), None
            else:
                raise ImportFormatError(
                    path, lineno, f"unrecognized line (starts {text[:60]!r})",
                    hint="legacy ws lines are `<url> <-> <ts>`, `<url> <- <ts>: <frame>` or `<ts>: <frame>`",
                )
            if writer is None:
                venue = venue_from_url(url) or venue_from_filename(path) or "unknown"
                writer = RecordingWriter(
                    recording, mode="import", config={"import": {"format": "cryptofeed-legacy-ws", "file": os.path.basename(path)}},
                    source=f"cryptofeed-legacy-ws {os.path.abspath(path)}", classify=classify, started_ns=ns,
                    batch_frames=5000, batch_ms=100.0,
                )
                pacer = Pacer(writer)
                res.session_id = writer.session_id
                res.venues = [venue]
            if kind == "connect":
                if cid is not None:
                    writer.event("reconnect", ns, ns, cid, {"url": url, "source_line": lineno})
                cid = writer.connection(venue, url, ns)
                res.connections += 1
                writer.event("connect", ns, ns, cid, {"url": url, "source_line": lineno})
            else:
                if cid is None:
                    cid = writer.connection(venue, url, None)
                    res.connections += 1
                size = payload_size(payload)
                writer.frame(cid, kind, ns, ns, "text", payload, None, size)
                if kind == "in":
                    res.frames_in += 1
                else:
                    res.frames_out += 1
                res.bytes += size
                pacer.add(size)
            if last_ns is None or ns > last_ns:
                last_ns = ns
        if writer is None:
            raise ImportFormatError(path, None, "file has no records")
        writer.close(ended_ns=last_ns)
        ok = True
        return res
    finally:
        if writer is not None and not ok:
            abort_writer(writer)


def import_legacy_http(path: str, recording: str, *, classify=None) -> FileResult:
    """Import one legacy cryptofeed ``.http.`` text capture (REST bodies) as a new session."""
    path = os.fspath(path)
    res = FileResult(path=path, format="cryptofeed-legacy-http")
    writer: RecordingWriter | None = None
    last_ns = None
    venues: list[str] = []
    ok = False
    try:
        for lineno, text in _legacy_lines(path):
            m = _LEGACY_HTTP.match(text)
            if m is None:
                raise ImportFormatError(path, lineno, f"unrecognized line (starts {text[:60]!r})",
                                        hint="legacy http lines are `<url> -> <ts>: <body>`")
            url, ns, body = m.group(1), _legacy_ts(path, lineno, m.group(2)), text[m.end():]
            venue = venue_from_url(url) or venue_from_filename(path) or "unknown"
            if venue not in venues:
                venues.append(venue)
            if writer is None:
                writer = RecordingWriter(
                    recording, mode="import", config={"import": {"format": "cryptofeed-legacy-http", "file": os.path.basename(path)}},
                    source=f"cryptofeed-legacy-http {os.path.abspath(path)}", classify=classify, started_ns=ns,
                )
                res.session_id = writer.session_id
            writer.http("GET", url, ns, venue=venue, response_body=body, t_recv_mono_ns=ns)
            res.http += 1
            if last_ns is None or ns > last_ns:
                last_ns = ns
        if writer is None:
            raise ImportFormatError(path, None, "file has no records")
        res.venues = venues
        writer.close(ended_ns=last_ns)
        ok = True
        return res
    finally:
        if writer is not None and not ok:
            abort_writer(writer)
