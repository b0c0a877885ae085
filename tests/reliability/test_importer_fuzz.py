"""Fuzzed import files (hypothesis): whatever the bytes, `import_files` either imports or
raises an ImportFormatError/HarnessError naming the file (and the line, when a line is at
fault), never another exception, and never leaves a half-written recording behind."""

from __future__ import annotations

import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError, ImportFormatError
from harness.store.importers import import_files

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["in", "out", "text", "binary", "ping", "close", "kalshi", "coinbase", "1786309548.026294",
                     "1e999", "-1", "", "wss://ws.kraken.com/v2", "aGVsbG8=", "not base64!"]),
)
json_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), c, max_size=3)),
                           max_leaves=8)
times = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(min_value=-(10**20), max_value=10**20),
                  st.sampled_from(["1786309548.026294123", "1e400", "NaN", "-0", "12:00", "", "1786309548."]),
                  st.text(max_size=12))


def _obj(keys: dict) -> st.SearchStrategy:
    """Objects with some of ``keys`` (each with its plausible or any value) and extras."""
    fields = {k: st.one_of(v, json_values) for k, v in keys.items()}
    return st.fixed_dictionaries({}, optional=fields).flatmap(
        lambda d: st.dictionaries(st.text(max_size=6), json_values, max_size=2).map(lambda extra: {**extra, **d}))


jsonl_records = _obj({
    "venue": st.sampled_from(["kalshi", "coinbase", "kraken", ""]), "dir": st.sampled_from(["in", "out", "up"]),
    "t": times, "frame": st.text(max_size=40), "frame_b64": st.sampled_from(["aGVsbG8=", "!!", ""]),
    "opcode": st.sampled_from(["text", "binary", "ping", "pong", "close", "cont"]), "conn": scalars,
    "url": st.sampled_from(["wss://ws.kraken.com/v2", "", "not a url"]),
})
format2_records = _obj({
    "t": st.sampled_from(["header", "connect", "send", "recv", "http", "close", "disconnect", "other"]),
    "format": st.sampled_from([2, 1, 3, "2"]), "exchange": st.sampled_from(["KRAKEN", "COINBASE", "??"]),
    "conn": scalars, "ts": times, "addr": st.sampled_from(["wss://ws.kraken.com/v2", "x"]),
    "data": st.text(max_size=30), "url": st.sampled_from(["https://api.kraken.com/0/public/Depth", ""]),
    "recorded": times, "config": json_values, "code": scalars, "reason": scalars,
})


def _line_bytes(obj_strategy):
    return st.one_of(
        obj_strategy.map(lambda o: json.dumps(o).encode()),
        obj_strategy.map(lambda o: json.dumps(o).encode()[: max(1, len(json.dumps(o)) // 2)]),  # cut short
        st.binary(max_size=40),  # garbage, invalid UTF-8 included
        st.just(b""), st.just(b"   "), st.just(b"\xef\xbb\xbf{}"), st.just(b'{"t":"recv"}\r'),
    )


def _legacy_line():
    url = st.sampled_from(["wss://ws.bitstamp.net", "wss://api.gemini.com/v2/marketdata", "nope", ""])
    ts = times.map(str)
    return st.one_of(
        st.tuples(url, ts).map(lambda x: f"{x[0]} <-> {x[1]}".encode()),
        st.tuples(url, ts, st.text(max_size=20)).map(lambda x: f"{x[0]} <- {x[1]}: {x[2]}".encode()),
        st.tuples(ts, st.text(max_size=20)).map(lambda x: f"{x[0]}: {x[1]}".encode()),
        st.tuples(url, ts, st.text(max_size=20)).map(lambda x: f"{x[0]} -> {x[1]}: {x[2]}".encode()),
        st.binary(max_size=30),
        st.just(b""),
    )


def _import(fmt: str, name: str, lines: list[bytes], sep: bytes = b"\n") -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-import-") as d:
        src = os.path.join(d, name)
        out = os.path.join(d, "out.db")
        with open(src, "wb") as f:
            f.write(sep.join(lines))
        try:
            import_files(fmt, [src], out)
        except ImportFormatError as e:
            msg = str(e)
            assert src in msg, msg
            if e.line is not None:
                assert f"{src}:{e.line}" in msg, msg
                assert 1 <= e.line <= len(lines) + 1, (e.line, len(lines))
            assert not os.path.exists(out), "a failed import left a recording behind"
        except HarnessError as e:
            assert src in str(e), str(e)
            assert not os.path.exists(out), "a failed import left a recording behind"


valid_t = st.one_of(st.floats(min_value=1e9, max_value=2e9), st.decimals(min_value=10**9, max_value=2 * 10**9, places=9)
                   .map(str))
valid_jsonl = st.fixed_dictionaries({
    "venue": st.sampled_from(["kalshi", "coinbase", "kraken"]), "dir": st.sampled_from(["in", "out"]),
    "t": valid_t, "frame": st.text(max_size=40)}, optional={"conn": st.integers(0, 3), "url": st.just("wss://x/ws")})
valid_format2 = st.one_of(
    st.fixed_dictionaries({"t": st.sampled_from(["recv", "send"]), "conn": st.just("KRAKEN.ws.1"), "ts": valid_t,
                           "data": st.text(max_size=30)}),
    st.fixed_dictionaries({"t": st.just("connect"), "conn": st.just("KRAKEN.ws.1"), "ts": valid_t,
                           "addr": st.just("wss://ws.kraken.com/v2")}),
    st.fixed_dictionaries({"t": st.just("http"), "conn": st.just("KRAKEN.http.1"), "ts": valid_t,
                           "url": st.just("https://api.kraken.com/0/public/Depth"), "data": st.text(max_size=30)}))
valid_legacy = st.one_of(
    st.tuples(valid_t, st.text(max_size=20).filter(lambda x: "\n" not in x and "\r" not in x))
    .map(lambda x: f"{x[0]}: {x[1]}".encode()),
    valid_t.map(lambda t: f"wss://ws.bitstamp.net <-> {t}".encode()))


def _dumps(o) -> bytes:
    return json.dumps(o, default=str).encode()


def _mutated(valid: st.SearchStrategy, bad: st.SearchStrategy, head: list[bytes] = ()):
    """Mostly valid files with up to three lines replaced by hostile ones: the importer gets
    past its format sniffing and meets the damage deep in the file."""
    return st.tuples(st.lists(valid, min_size=2, max_size=15),
                     st.lists(st.tuples(st.integers(0, 20), bad), max_size=3)).map(
        lambda x: _splice([*head, *x[0]], x[1]))


def _splice(lines: list[bytes], bad: list) -> list[bytes]:
    lines = list(lines)
    for i, b in bad:
        lines[min(max(1, i), len(lines) - 1)] = b
    return lines


@FUZZ
@given(st.one_of(st.lists(_line_bytes(jsonl_records), min_size=1, max_size=12),
                 _mutated(valid_jsonl.map(_dumps), _line_bytes(jsonl_records))),
       st.sampled_from([b"\n", b"\r\n"]))
def test_fuzzed_jsonl_import(lines, sep):
    _import("jsonl", "frames.jsonl", lines, sep)


HEADER = _dumps({"t": "header", "format": 2, "exchange": "KRAKEN", "recorded": 1700000000.5})


@FUZZ
@given(st.one_of(
    st.tuples(format2_records, st.lists(_line_bytes(format2_records), max_size=12)).map(
        lambda x: [_dumps({**x[0], "t": "header", "format": 2}), *x[1]]),
    _mutated(valid_format2.map(_dumps), _line_bytes(format2_records), head=[HEADER])))
def test_fuzzed_cryptofeed_format2_import(lines):
    _import("cryptofeed", "KRAKEN.jsonl", lines)


@FUZZ
@given(st.one_of(st.lists(_legacy_line(), min_size=1, max_size=12),
                 _mutated(valid_legacy, _legacy_line(), head=[b"wss://ws.bitstamp.net <-> 1700000000.25"])),
       st.sampled_from(["ws", "http"]))
def test_fuzzed_cryptofeed_legacy_import(lines, kind):
    _import("cryptofeed", f"legacy_BITSTAMP.{kind}.19.0.txt", lines)


@FUZZ
@given(st.binary(min_size=0, max_size=300), st.sampled_from(["x.jsonl", "KRAKEN.jsonl.zst", "legacy_GEMINI.ws.1.0.txt"]))
def test_fuzzed_raw_bytes_import(data, name):
    fmt = "jsonl" if name == "x.jsonl" else "cryptofeed"
    if name.endswith(".zst"):
        data = b"\x28\xb5\x2f\xfd" + data  # zstd magic, then garbage: a corrupt compressed file
    _import(fmt, name, [data])
