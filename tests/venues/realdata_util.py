"""Read the cryptofeed sample recordings independently of the harness's importers.

``records(path)`` yields ``(conn, t, kind, data)`` for both formats:
- ``*.jsonl.zst`` (format 2): one JSON record per line; kind is the record's ``t``
  (header/connect/send/recv/http); data is the frame text (or the URL for connect, the
  header dict for header). For ``http`` records data is ``(url, body)``.
- ``legacy_*.txt``: ``<url> <-> <ts>`` (connect), ``<url> <- <ts>: <frame>`` (send),
  ``<ts>: <frame>`` (recv), and in ``.http.`` files ``<url> -> <ts>: <body>`` (http).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import zstandard


def _lines_zst(path: Path) -> Iterator[str]:
    with open(path, "rb") as fh:
        data = zstandard.ZstdDecompressor().stream_reader(fh).read()
    yield from data.decode("utf-8").splitlines()


def records(path: Path | str) -> Iterator[tuple[str | None, float | None, str, object]]:
    path = Path(path)
    if path.name.endswith(".jsonl.zst"):
        for line in _lines_zst(path):
            if not line.strip():
                continue
            r = json.loads(line)
            kind = r["t"]
            if kind == "header":
                yield None, r.get("recorded"), kind, r
            elif kind == "connect":
                yield r["conn"], r["ts"], kind, r["addr"]
            elif kind == "http":
                yield r["conn"], r["ts"], kind, (r["url"], r["data"])
            else:
                yield r["conn"], r["ts"], kind, r["data"]
        return
    conn = path.name
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            if " <-> " in line[:300] and ": " not in line.split(" <-> ", 1)[1]:
                url, ts = line.split(" <-> ", 1)
                yield conn, float(ts), "connect", url
                continue
            head, sep, body = line.partition(": ")
            if not sep:
                raise ValueError(f"{path}: unparseable line {line[:80]!r}")
            if " <- " in head:
                url, ts = head.split(" <- ", 1)
                yield conn, float(ts), "send", body
            elif " -> " in head:
                url, ts = head.split(" -> ", 1)
                yield conn, float(ts), "http", (url, body)
            else:
                yield conn, float(head), "recv", body


def recv_frames(path: Path | str) -> list[tuple[str | None, str]]:
    """Just the received frames, in file order, as (conn, text)."""
    return [(c, d) for c, _t, k, d in records(path) if k == "recv"]  # type: ignore[misc]


# ------------------------------------------------------------------ fuzz helpers
# Hypothesis strategies that mutate real frames, and the robustness assertion every venue
# test uses: classify never raises, decode/feed raise only HarnessError subclasses.

from hypothesis import strategies as st  # noqa: E402

from harness.errors import HarnessError  # noqa: E402

_ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(
        ["0", "-1", "NaN", "sNaN", "1e999999", "Infinity", "1_0", "", "1.5", "-0.0", "snapshot", "update",
         "bid", "ask", "offer", "buy", "sell", "book-10", "book", "2026-08-09T21:05:48.1Z", "l2_updates"]
    ),
)
JSON_VALUES = st.recursive(
    _ATOMS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6
)


def _paths(obj, out):
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((obj, k))
            _paths(v, out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((obj, i))
            _paths(v, out)
    return out


@st.composite
def mutated_frames(draw, frames: list[str]):
    """A real frame mutated structurally (a node replaced/removed/typed wrong) or
    textually (bytes deleted/inserted, truncated)."""
    text = draw(st.sampled_from(frames))
    how = draw(st.sampled_from(["struct", "struct", "struct", "text", "truncate"]))
    if how == "struct":
        obj = json.loads(text)
        paths = _paths(obj, [])
        if not paths:
            return text
        container, key = draw(st.sampled_from(paths))
        if draw(st.booleans()) or isinstance(container, list):
            container[key] = draw(JSON_VALUES)
        else:
            del container[key]
        return json.dumps(obj, separators=(",", ":"))
    if how == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, min(len(text), i + 8)))
    return text[:i] + draw(st.text(max_size=4)) + text[j:]


NASTY = [
    "[" * 100_000,
    '{"a":' * 100_000,
    "\ud800",
    b"\xff\xfe{",
    "",
    " ",
    "null",
    "[]",
    "{}",
    '"text"',
    "1e999999",
    '[1,{"a":[["1e999999999","1","1.0"]],"c":"5"},"book-0","X/Y"]',
    '[1,{"as":[["\u0661.5","1","1.0"]],"bs":[]},"book-10","X/Y"]',
]
ANY_PAYLOAD = st.one_of(st.text(max_size=200), st.binary(max_size=200), st.sampled_from(NASTY))


def assert_robust(venue, session, payload) -> None:
    """classify never raises; decode and session.feed raise only HarnessError."""
    name = venue.classify(payload)
    assert name is None or isinstance(name, str)
    try:
        venue.decode(payload)
    except HarnessError:
        pass
    try:
        session.feed(payload, frame_id=0)
    except HarnessError:
        pass
