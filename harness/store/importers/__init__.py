"""Importing other tools' captures into a recording.

Public API::

    import_files(fmt, paths, output, *, existing="error", classify=venues.classify,
                 on_file=None) -> list[FileResult]
    detect_format(path) -> str            # "cryptofeed-2" | "cryptofeed-legacy-ws" |
                                          # "cryptofeed-legacy-http" | "jsonl"
    seconds_to_ns(text_or_number) -> int  # exact Unix seconds -> ns
    recordable_ns(text_or_number) -> int  # the same, refusing times a recording cannot hold

Formats (documented in docs/formats.md): ``cryptofeed`` (format 2 JSON Lines, plain or
zstd, and the legacy text files) in ``cryptofeed.py``; the harness's generic JSON Lines in
``jsonl.py``.

Every file becomes one session (mode ``import``). Imported frames have
``t_mono_ns == t_wall_ns``: the source only has one clock (the recorder's wall clock),
and using it for both keeps receive order and gap detection working on imports.

Safety: ``import_files`` never writes the output in place. It writes a temporary file
next to it (``.<name>.importing-<pid>``), copying the existing recording into it first
when appending (SQLite backup API, so a WAL left by a crash is included), imports every
file, and renames the temp over the output only when all files imported cleanly. On any
error the temp is removed and the output is untouched (or absent). While importing, the
output's ``.lock`` is held, so ``harness record`` cannot write the same file meanwhile.

Reading is streamed: files are read line by line as bytes (zstd through an incremental
decompressor that notices a truncated stream), so only one line is ever in memory, and
the writer queue is drained every ``FLUSH_FRAMES`` frames / ``FLUSH_BYTES`` bytes.
Lines are read as bytes and decoded one by one so an encoding error names its line.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext

from harness.errors import ImportFormatError, RecordingError
from harness.store import schema

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FLUSH_FRAMES = 50_000  # bound the writer queue: wait for a commit after this many frames
FLUSH_BYTES = 64 << 20  # ... or this many payload bytes
READ_CHUNK = 1 << 17

FORMATS = ("cryptofeed-2", "cryptofeed-legacy-ws", "cryptofeed-legacy-http", "jsonl")
# command-line format name -> detected formats it accepts
FAMILIES = {
    "cryptofeed": ("cryptofeed-2", "cryptofeed-legacy-ws", "cryptofeed-legacy-http"),
    "jsonl": ("jsonl",),
}

# exchange names (cryptofeed's) and hosts -> harness venue names
EXCHANGES = {
    "COINBASE": "coinbase",
    "KRAKEN": "kraken",
    "BITSTAMP": "bitstamp",
    "GEMINI": "gemini",
    "CRYPTO.COM": "cryptocom",
    "CRYPTO_COM": "cryptocom",
    "CRYPTOCOM": "cryptocom",
    "KALSHI": "kalshi",
}
HOST_SUFFIXES = (
    ("coinbase.com", "coinbase"),
    ("kraken.com", "kraken"),
    ("bitstamp.net", "bitstamp"),
    ("gemini.com", "gemini"),
    ("crypto.com", "cryptocom"),
    ("kalshi.com", "kalshi"),
    ("kalshi.co", "kalshi"),
)


# -- results -------------------------------------------------------------------------------
@dataclass
class FileResult:
    """What one input file contributed."""

    path: str
    format: str
    session_id: int = 0
    venues: list[str] = field(default_factory=list)
    connections: int = 0
    frames_in: int = 0
    frames_out: int = 0
    http: int = 0
    bytes: int = 0  # frame payload bytes
    seconds: float = 0.0  # wall time the import took

    @property
    def frames(self) -> int:
        return self.frames_in + self.frames_out

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# -- time ----------------------------------------------------------------------------------
_PLAIN_NUMBER = re.compile(r"(-?)(\d+)(?:\.(\d*))?")


# A recording stores times as SQLite INTEGER (signed 64-bit ns: up to the year 2262).
_MAX_NS = (1 << 63) - 1


def recordable_ns(value) -> int:
    """``seconds_to_ns`` for a time going into a recording: also ``ValueError`` when it
    does not fit the recording's signed 64-bit ns (beyond the year 2262)."""
    ns = seconds_to_ns(value)
    if not -_MAX_NS <= ns <= _MAX_NS:
        raise ValueError(f"{value!s:.40} s is out of range (a recording holds Unix times up to the year 2262)")
    return ns


def seconds_to_ns(value) -> int:
    """Unix seconds -> integer ns, exactly (no binary float in between).

    Accepts the number's text (``"1618678132.358447"``), a ``Decimal`` (what the JSON
    decoders here produce for float literals) or an ``int``. Digits beyond ns are
    truncated toward minus infinity (floor). A Python ``float`` is converted through its
    shortest repr, i.e. the text it was parsed from. Raises ``ValueError`` on anything
    that is not a finite number, or beyond 1e12 s (a billion-digit exponent must not
    become a billion-digit int).
    """
    return _seconds_to_ns(value)


def _seconds_to_ns(value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value * 1_000_000_000
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, str):
        m = _PLAIN_NUMBER.fullmatch(value)
        if m is not None:
            sign, whole, frac = m.groups()
            frac = frac or ""
            ns = int(whole) * 1_000_000_000 + int((frac[:9]).ljust(9, "0"))
            if sign:
                ns = -ns
                if frac[9:].strip("0"):
                    ns -= 1  # floor for negative numbers with sub-ns digits
            return ns
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value}")
        if value.adjusted() >= 12:  # checked before int(): 1e999999999 would take minutes
            raise ValueError(f"{value!s:.40} s is out of range (a recording holds Unix times up to the year 2262)")
        with localcontext() as ctx:
            ctx.prec = 80
            return int((value.scaleb(9)).to_integral_value(rounding=ROUND_FLOOR))
    raise ValueError(f"not a number: {value!r}")


def ns_to_seconds_text(ns: int) -> str:
    """Integer ns -> shortest exact decimal seconds text (``1618678132358447000`` ->
    ``"1618678132.358447"``); the inverse of ``seconds_to_ns``."""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(ns), 1_000_000_000)
    text = f"{frac:09d}".rstrip("0") or "0"
    return f"{sign}{whole}.{text}"


# -- venues --------------------------------------------------------------------------------
def venue_from_exchange(name: str) -> str:
    """cryptofeed exchange id -> harness venue (unknown ones lower-cased, dots dropped)."""
    key = name.strip().upper()
    return EXCHANGES.get(key) or re.sub(r"[^a-z0-9_]", "", key.lower()) or "unknown"


def venue_from_url(url: str | None) -> str | None:
    from urllib.parse import urlsplit

    if not url:
        return None
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    for suffix, venue in HOST_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return venue
    return None


def venue_from_filename(path: str) -> str | None:
    """``legacy_BITSTAMP.ws.19.0.txt`` / ``KRAKEN.jsonl.zst`` -> venue, else None."""
    name = os.path.basename(path)
    if name.lower().startswith("legacy_"):
        name = name[7:]
    m = re.match(r"(.+?)\.(?:ws|http|jsonl)\b", name, re.IGNORECASE)
    if not m:
        return None
    key = m.group(1).upper()
    return EXCHANGES.get(key)


# -- reading -------------------------------------------------------------------------------
class _ZstdRaw(io.RawIOBase):
    """Incremental zstd decompression that raises on a truncated stream (the stock
    ``stream_reader`` silently stops) and follows concatenated frames."""

    def __init__(self, fh, path: str):
        import zstandard

        self._zstd = zstandard
        self._fh = fh
        self._path = path
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False
        self._buf = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while self._pos >= len(self._buf) and not self._eof:
            data = self._fh.read(READ_CHUNK)
            if not data:
                self._eof = True
                if self._in_frame:
                    raise _Truncated()
                return
            out = []
            try:
                while data:
                    self._in_frame = True
                    out.append(self._obj.decompress(data))
                    if self._obj.eof:
                        data = self._obj.unused_data
                        self._obj = self._dctx.decompressobj()
                        self._in_frame = False
                    else:
                        data = b""
            except self._zstd.ZstdError as e:
                raise _Corrupt(str(e)) from None
            self._buf = b"".join(out)
            self._pos = 0

    def readinto(self, b) -> int:
        self._fill()
        n = min(len(b), len(self._buf) - self._pos)
        if n <= 0:
            return 0
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


def is_zstd(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == ZSTD_MAGIC


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """``(line_number, line_bytes_without_newline)`` for every line, streamed. Handles zstd
    (detected by magic bytes). Raises ImportFormatError for a missing, truncated or
    corrupt file, naming the line where reading stopped."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise ImportFormatError(path, None, "no such file", hint="check the path") from None
    except IsADirectoryError:
        raise ImportFormatError(path, None, "is a directory, not a capture file") from None
    except OSError as e:
        raise ImportFormatError(path, None, f"cannot read: {e.strerror}") from None
    lineno = 0
    with fh:
        compressed = fh.read(4) == ZSTD_MAGIC
        fh.seek(0)
        stream = io.BufferedReader(_ZstdRaw(fh, path), 1 << 20) if compressed else fh
        try:
            for line in stream:
                lineno += 1
                if line.endswith(b"\n"):
                    line = line[:-1]
                if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]  # a UTF-8 byte order mark is not content
                yield lineno, line
        except _Truncated:
            raise ImportFormatError(
                path, lineno + 1, "zstd stream is truncated (the file ends in the middle of a compressed frame)",
                hint="the file was cut short (interrupted download or copy); fetch it again",
            ) from None
        except _Corrupt as e:
            raise ImportFormatError(path, lineno + 1, f"corrupt zstd data ({e})", hint="the file is damaged") from None


def decode_line(path: str, lineno: int, line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ImportFormatError(path, lineno, f"not UTF-8 text (byte {e.start}: {line[e.start:e.start + 1]!r})") from None


# -- format detection ------------------------------------------------------------------------
_LEGACY_CONNECT = re.compile(r"^(wss?://\S+) <-> (\S+)$")
_LEGACY_SEND = re.compile(r"^(wss?://\S+) <- ([-0-9.eE+]+): ")
_LEGACY_RECV = re.compile(r"^([0-9]+(?:\.[0-9]*)?): ")
_LEGACY_HTTP = re.compile(r"^(https?://\S+) -> ([-0-9.eE+]+): ")


def sniff(path: str, first: str) -> str | None:
    """Format of a file from its first non-blank line, or None."""
    s = first.lstrip("\ufeff").removesuffix("\r")
    if s.startswith("{"):
        import json

        try:
            obj = json.loads(s)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        if obj.get("t") == "header" and "exchange" in obj:
            return "cryptofeed-2"
        if obj.get("t") in ("connect", "send", "recv", "http") and "conn" in obj:
            return "cryptofeed-2"
        if "venue" in obj and "dir" in obj and ("frame" in obj or "frame_b64" in obj):
            return "jsonl"
        return None
    if _LEGACY_CONNECT.match(s) or _LEGACY_SEND.match(s) or _LEGACY_RECV.match(s):
        return "cryptofeed-legacy-ws"
    if _LEGACY_HTTP.match(s):
        return "cryptofeed-legacy-http"
    return None


def detect_format(path: str | os.PathLike) -> str:
    """Detect a capture's format from its content (first non-blank line). Raises
    ImportFormatError when the file is empty or of no known format."""
    path = os.fspath(path)
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        text = decode_line(path, lineno, line)
        fmt = sniff(path, text)
        if fmt is None:
            raise ImportFormatError(
                path, lineno, f"unknown file format (line starts {text[:60]!r})",
                hint="`harness import cryptofeed` reads cryptofeed format 2 (.jsonl[.zst]) and legacy .txt captures;"
                " `harness import jsonl` reads the harness JSON Lines format (docs/formats.md)",
            )
        return fmt
    raise ImportFormatError(path, None, "file is empty", hint="nothing to import")


# -- output safety -----------------------------------------------------------------------------
class _OutputLock:
    """flock on ``<output>.lock``: the same lock ``RecordingWriter`` takes."""

    def __init__(self, output: str):
        self.path = output + ".lock"
        self.fd: int | None = None

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RecordingError(f"cannot create {self.path}: {e.strerror}", hint="is the directory writable?") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RecordingError(
                f"{self.path[:-5]} is being written by another process",
                hint="import into a different file, or wait for the other writer to finish",
            ) from None
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


def _remove(*paths: str) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError:
            pass


def _sidecars(p: str) -> tuple[str, ...]:
    return (p + "-wal", p + "-shm", p + "-journal")


def _copy_recording(src: str, dst: str) -> None:
    """Copy an existing recording (verified first) into ``dst`` with the backup API."""
    try:
        s = sqlite3.connect(src)
    except sqlite3.Error as e:
        raise RecordingError(f"cannot open {src}: {e}") from None
    try:
        schema.verify(s, src)
        d = sqlite3.connect(dst)
        try:
            s.backup(d)
        finally:
            d.close()
    except sqlite3.DatabaseError as e:
        raise RecordingError(f"{src} is not a readable SQLite database ({e})", hint="is it truncated or not a recording?") from None
    finally:
        s.close()


def import_files(
    fmt: str,
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    existing: str = "error",
    classify: Callable[[str, str | bytes], str | None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Import ``paths`` (format family ``fmt``: "cryptofeed" or "jsonl") into the
    recording ``output``, one session per file, atomically (see the module docstring).

    existing: what to do when ``output`` exists: "error" (raise RecordingError),
    "append" (add sessions to it) or "replace" (start a new file).
    classify: the venue classifier run on the writer thread; default
    ``harness.venues.classify``.
    """
    if fmt not in FAMILIES:
        raise ImportFormatError(str(fmt), None, f"unknown import format {fmt!r}", hint=f"use one of: {', '.join(FAMILIES)}")
    if existing not in ("error", "append", "replace"):
        raise ValueError("existing must be 'error', 'append' or 'replace'")
    if classify is None:
        from harness.venues import classify as venue_classify

        classify = venue_classify
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ImportFormatError("-", None, "no input files given")
    output = os.path.abspath(os.fspath(output))

    # Check every input before touching the output: fail fast on a wrong file.
    formats = []
    for p in paths:
        f = detect_format(p)
        if f not in FAMILIES[fmt]:
            other = next(k for k, v in FAMILIES.items() if f in v)
            raise ImportFormatError(p, None, f"is in {f} format, not {fmt}", hint=f"use `harness import {other} {p}`")
        formats.append(f)

    if os.path.isdir(output):
        raise RecordingError(f"{output} is a directory", hint="give a file name for the recording")
    out_dir = os.path.dirname(output)
    if not os.path.isdir(out_dir):
        raise RecordingError(f"directory {out_dir} does not exist", hint="create it first")

    from harness.store.importers import cryptofeed, jsonl

    importers = {
        "cryptofeed-2": cryptofeed.import_format2,
        "cryptofeed-legacy-ws": cryptofeed.import_legacy_ws,
        "cryptofeed-legacy-http": cryptofeed.import_legacy_http,
        "jsonl": jsonl.import_jsonl,
    }
    results: list[FileResult] = []
    with _OutputLock(output):
        exists = os.path.exists(output)
        if exists and existing == "error":
            raise RecordingError(
                f"{output} already exists",
                hint="add --append to add these files as new sessions, or --replace to overwrite it",
            )
        tmp = os.path.join(out_dir, f".{os.path.basename(output)}.importing-{os.getpid()}")
        _remove(tmp, *_sidecars(tmp))
        ok = False
        try:
            if exists and existing == "append":
                _copy_recording(output, tmp)
            for p, f in zip(paths, formats, strict=True):
                t0 = time.perf_counter()
                r = importers[f](p, tmp, classify=classify)
                r.seconds = time.perf_counter() - t0
                results.append(r)
                if on_file is not None:
                    on_file(r)
            if exists:
                try:
                    os.chmod(tmp, os.stat(output).st_mode & 0o777)
                except OSError:
                    pass
            # a stale WAL next to the old file must not be replayed onto the new one
            _remove(*_sidecars(output))
            os.replace(tmp, output)
            ok = True
        finally:
            if not ok:
                _remove(tmp, *_sidecars(tmp), tmp + ".lock")
    return results


class Pacer:
    """Bounds the writer's queue: every FLUSH_FRAMES frames / FLUSH_BYTES bytes, wait for
    the writer thread to commit what is queued."""

    __slots__ = ("writer", "frames", "bytes")

    def __init__(self, writer):
        self.writer = writer
        self.frames = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        self.frames += 1
        self.bytes += size
        if self.frames >= FLUSH_FRAMES or self.bytes >= FLUSH_BYTES:
            self.writer.flush(timeout=600.0)
            self.frames = 0
            self.bytes = 0


def abort_writer(writer) -> None:
    """Close a writer after a failed import (the temp file is discarded anyway)."""
    try:
        writer.close()
    except Exception:
        pass


_RECORD_DECODER = None


def json_error(path: str, lineno: int, line: bytes) -> ImportFormatError:
    """The error for a line msgspec could not decode, with the stdlib's column number (and
    a proper message for lone surrogates, which msgspec reports as 'truncated')."""
    import json

    try:
        json.loads(line)
    except ValueError as e:
        msg = getattr(e, "msg", str(e))
        pos = getattr(e, "pos", None)
        where = f" at column {pos + 1}" if pos is not None else ""
        return ImportFormatError(path, lineno, f"not valid JSON: {msg}{where} (line starts {line[:60]!r})")
    return ImportFormatError(path, lineno, "string is not valid Unicode (lone surrogate escape)")


def iter_json_objects(path: str, noun: str = "record") -> Iterator[tuple[int, dict]]:
    """``(line_number, object)`` for every non-blank JSON Lines line, floats as Decimal.
    A line that is not JSON, or JSON but not an object, raises ImportFormatError naming it."""
    global _RECORD_DECODER
    import msgspec

    if _RECORD_DECODER is None:
        _RECORD_DECODER = msgspec.json.Decoder(float_hook=Decimal)
    decode = _RECORD_DECODER.decode
    for lineno, line in iter_lines(path):
        if not line or line.isspace():
            continue
        try:
            rec = decode(line)
        except msgspec.DecodeError:
            raise json_error(path, lineno, line) from None
        if type(rec) is not dict:
            raise ImportFormatError(path, lineno, f"{noun} is a JSON {type(rec).__name__}, not an object")
        yield lineno, rec
