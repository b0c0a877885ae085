"""harness import: real cryptofeed captures round-trip byte for byte; bad inputs fail
cleanly (exit 2, file and line named, no half-written recording)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import zstandard

from harness.cli import main
from harness.errors import ImportFormatError
from harness.store.importers import import_files, ns_to_seconds_text, seconds_to_ns
from harness.store.reader import Recording

REPO = Path(__file__).resolve().parent.parent
FORMAT2 = ["COINBASE.jsonl.zst", "KRAKEN.jsonl.zst", "BITSTAMP.jsonl.zst", "GEMINI.jsonl.zst", "CRYPTO.COM.jsonl.zst"]
LEGACY_WS = ["legacy_COINBASE.ws.28.0.txt", "legacy_BITSTAMP.ws.19.0.txt", "legacy_GEMINI.ws.36.0.txt"]
VENUE = {"COINBASE": "coinbase", "KRAKEN": "kraken", "BITSTAMP": "bitstamp", "GEMINI": "gemini", "CRYPTO.COM": "cryptocom"}


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


# -- independent parsers of the sources (deliberately not sharing code with the importer) ---
def ts_ns(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10**9 + int((frac + "000000000")[:9])


def parse_format2(path: Path):
    """-> (exchange, {conn: [(dir, t_ns, data)]} in file order, conn first-seen order, http list)"""
    raw = zstandard.ZstdDecompressor().decompress(path.read_bytes(), max_output_size=1 << 30)
    conns: dict = defaultdict(list)
    order: list = []
    http = []
    exchange = None
    for line in raw.decode("utf-8").split("\n"):
        if not line:
            continue
        r = json.loads(line, parse_float=str)
        if r["t"] == "header":
            exchange = r["exchange"]
            continue
        if r["t"] == "http":
            http.append((r["url"], ts_ns(r["ts"]), r["data"]))
            continue
        if r["conn"] not in order:
            order.append(r["conn"])
        if r["t"] in ("send", "recv"):
            conns[r["conn"]].append(("out" if r["t"] == "send" else "in", ts_ns(r["ts"]), r["data"]))
    return exchange, conns, order, http


def parse_legacy_ws(path: Path):
    """-> (url, [(dir, t_ns, frame)])"""
    url = None
    frames = []
    for line in path.read_text("utf-8").split("\n"):
        if not line:
            continue
        if line.startswith("ws") and " <-> " in line:
            url = line.split(" <-> ")[0]
        elif line.startswith("ws") and " <- " in line:
            rest = line.split(" <- ", 1)[1]
            t, frame = rest.split(": ", 1)
            frames.append(("out", ts_ns(t), frame))
        else:
            t, frame = line.split(": ", 1)
            frames.append(("in", ts_ns(t), frame))
    return url, frames


def frames_by_conn(rec_path: Path):
    by = defaultdict(list)
    with Recording(rec_path) as rec:
        for f in rec.frames():
            by[f.conn_id].append(f)
        conns = rec.connections()
        http = rec.http()
        sessions = rec.sessions()
    return by, conns, http, sessions


@pytest.fixture(scope="module")
def imported(realdata, tmp_path_factory):
    """Each real capture imported into its own recording."""
    d = tmp_path_factory.mktemp("imports")
    src = realdata / "cryptofeed"
    out = {}
    for name in FORMAT2 + LEGACY_WS:
        rec = d / (name + ".db")
        import_files("cryptofeed", [src / name], rec, classify=lambda v, p: None)
        out[name] = rec
    return src, out


@pytest.mark.realdata
@pytest.mark.parametrize("name", FORMAT2)
def test_format2_round_trip_byte_for_byte(imported, name):
    src, recs = imported
    exchange, want, order, want_http = parse_format2(src / name)
    got, conns, http, sessions = frames_by_conn(recs[name])
    # one connection per source conn that carried frames, in first-seen order
    ws_order = [c for c in order if want[c]]
    assert len(conns) == len(ws_order)
    assert [c["venue"] for c in conns] == [VENUE[exchange]] * len(conns)
    for c, label in zip(conns, ws_order, strict=True):
        g, w = got[c["id"]], want[label]
        assert len(g) == len(w), f"frame count differs on {label}"
        for f, (d, t, data) in zip(g, w, strict=True):
            assert f.payload.encode("utf-8") == data.encode("utf-8")
            assert (f.dir, f.t_wall_ns, f.t_mono_ns, f.opcode, f.venue) == (d, t, t, "text", VENUE[exchange])
    assert sum(len(v) for v in got.values()) == sum(len(v) for v in want.values())
    assert [(h["url"], h["t_recv_ns"], h["response_body"], h["method"]) for h in http] == \
        [(u, t, b, "GET") for u, t, b in sorted(want_http, key=lambda x: x[1])]
    assert all(h["venue"] == VENUE[exchange] for h in http)
    (s,) = sessions
    assert s["mode"] == "import" and s["source"].startswith("cryptofeed-2 ") and s["source"].endswith(name)
    assert s["config"]["exchange"] == exchange and "config" in s["config"]


@pytest.mark.realdata
def test_coinbase_5mb_snapshot_intact(imported):
    src, recs = imported
    with Recording(recs["COINBASE.jsonl.zst"]) as rec:
        fid, size = rec.db.execute("SELECT id, size FROM frames ORDER BY size DESC LIMIT 1").fetchone()
        big = rec.frame(fid)
    assert size > 5_000_000 and size == len(big.payload.encode())
    msg = json.loads(big.payload)
    assert msg["channel"] == "l2_data" and msg["events"][0]["type"] == "snapshot"


@pytest.mark.realdata
def test_kraken_connections_and_exact_time(imported):
    src, recs = imported
    with Recording(recs["KRAKEN.jsonl.zst"]) as rec:
        conns = rec.connections()
        assert [c["url"] for c in conns] == ["wss://ws.kraken.com"] * 3
        # connect ts 1618678132.3771882 -> exact ns
        assert conns[1]["opened_ns"] == 1618678132377188200
        (h,) = rec.http()
        assert h["t_recv_ns"] == 1618678132358447000
        ev = rec.events(["connect"])
        assert [e["detail"]["source_conn"] for e in ev] == ["KRAKEN.ws.48", "KRAKEN.ws.49", "KRAKEN.ws.50"]
        # the capture is grouped by connection, not time-sorted: reading merges by time
        times = [f.t_mono_ns for f in rec.frames()]
        assert times == sorted(times)


@pytest.mark.realdata
@pytest.mark.parametrize("name", LEGACY_WS)
def test_legacy_ws_round_trip(imported, name):
    src, recs = imported
    url, want = parse_legacy_ws(src / name)
    got, conns, _, sessions = frames_by_conn(recs[name])
    (c,) = conns
    assert c["url"] == url
    g = got[c["id"]]
    assert len(g) == len(want)
    for f, (d, t, data) in zip(g, want, strict=True):
        assert f.payload.encode("utf-8") == data.encode("utf-8")
        assert (f.dir, f.t_wall_ns, f.opcode) == (d, t, "text")
    assert c["venue"] == name.split("_")[1].split(".")[0].lower()
    assert sessions[0]["source"].startswith("cryptofeed-legacy-ws ")


@pytest.mark.realdata
def test_legacy_bitstamp_pair_in_one_recording(realdata, tmp_path):
    src = realdata / "cryptofeed"
    rec_path = tmp_path / "bs.db"
    ws, http_file = src / "legacy_BITSTAMP.ws.19.0.txt", src / "legacy_BITSTAMP.http.18.0.txt"
    assert run("import", "cryptofeed", str(ws), str(http_file), "-o", str(rec_path)) == 0
    want_http = []
    for line in http_file.read_text().split("\n"):
        if line:
            head, body = line.split(": ", 1)
            u, t = head.split(" -> ")
            want_http.append((u, ts_ns(t), body))
    with Recording(rec_path) as rec:
        assert [s["source"].split()[0] for s in rec.sessions()] == ["cryptofeed-legacy-ws", "cryptofeed-legacy-http"]
        http = rec.http()
        assert [(h["url"], h["t_recv_ns"], h["response_body"]) for h in http] == want_http
        assert {h["venue"] for h in http} == {"bitstamp"} and len(http) == 10
        assert all(json.loads(h["response_body"])["bids"] for h in http)
        assert rec.count() == len(parse_legacy_ws(ws)[1])


@pytest.mark.realdata
def test_several_files_append_and_ids(realdata, tmp_path):
    src = realdata / "cryptofeed"
    rec_path = tmp_path / "all.db"
    assert run("import", "cryptofeed", str(src / "BITSTAMP.jsonl.zst"), str(src / "GEMINI.jsonl.zst"), "-o", str(rec_path)) == 0
    assert run("import", "cryptofeed", str(src / "KRAKEN.jsonl.zst"), "-o", str(rec_path)) == 2  # exists: needs --append
    assert run("import", "cryptofeed", str(src / "KRAKEN.jsonl.zst"), "-o", str(rec_path), "--append") == 0
    with Recording(rec_path) as rec:
        assert len(rec.sessions()) == 3
        assert rec.venues() == ["bitstamp", "gemini", "kraken"]
        assert rec.count() == 767 + 564 + 4433
        ids = [r[0] for r in rec.db.execute("SELECT id FROM frames ORDER BY id")]
        assert ids == list(range(1, len(ids) + 1))
    assert sorted(os.listdir(tmp_path)) == ["all.db"]
    assert run("import", "cryptofeed", str(src / "KRAKEN.jsonl.zst"), "-o", str(rec_path), "--replace") == 0
    with Recording(rec_path) as rec:
        assert len(rec.sessions()) == 1 and rec.count() == 4433


# -- time conversion -------------------------------------------------------------------------
def test_seconds_to_ns_exact():
    assert seconds_to_ns("1618678132.358447") == 1618678132358447000
    assert seconds_to_ns("1786309572.8760378") == 1786309572876037800
    assert seconds_to_ns("1786309548.026294123") == 1786309548026294123
    assert seconds_to_ns("1786309548.0262941239") == 1786309548026294123  # floored
    assert seconds_to_ns("1.6e9") == 1_600_000_000 * 10**9
    assert seconds_to_ns(1618678132) == 1618678132 * 10**9
    assert seconds_to_ns("-0.5") == -500_000_000
    for ns in (0, 1, 1618678132358447000, 1786309548026294123, -500_000_000, -1):
        assert seconds_to_ns(ns_to_seconds_text(ns)) == ns
    for bad in ("abc", "", "nan", True):
        with pytest.raises(ValueError):
            seconds_to_ns(bad)


# -- bad inputs --------------------------------------------------------------------------------
def _assert_clean(tmp_path: Path, expected: list[str]):
    assert sorted(os.listdir(tmp_path)) == sorted(expected)


def test_unknown_format(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello world\nthis is not a capture\n")
    assert run("import", "cryptofeed", str(bad), "-o", str(tmp_path / "r.db")) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: unknown file format" in err and "Traceback" not in err
    _assert_clean(tmp_path, ["notes.txt"])


def test_empty_and_missing_file(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert run("import", "jsonl", str(tmp_path / "empty.jsonl"), "-o", str(tmp_path / "r.db")) == 2
    assert "file is empty" in capsys.readouterr().err
    assert run("import", "jsonl", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "r.db")) == 2
    assert "no such file" in capsys.readouterr().err
    _assert_clean(tmp_path, ["empty.jsonl"])


def test_wrong_family_hint(tmp_path, capsys):
    assert run("import", "cryptofeed", str(REPO / "fixtures" / "generic_sample.jsonl"), "-o", str(tmp_path / "r.db")) == 2
    assert "harness import jsonl" in capsys.readouterr().err


def _format2_lines(n: int = 3) -> list[str]:
    lines = ['{"t":"header","format":2,"exchange":"KRAKEN","config":{},"recorded":1618678132.358447}',
             '{"t":"connect","conn":"K.ws.1","ts":1618678132.36,"addr":"wss://ws.kraken.com"}']
    lines += [json.dumps({"t": "recv", "conn": "K.ws.1", "ts": 1618678133 + i, "data": f'{{"event":"heartbeat","i":{i}}}'})
              for i in range(n)]
    return lines


def test_truncated_zst(realdata, tmp_path, capsys):
    data = (realdata / "cryptofeed" / "KRAKEN.jsonl.zst").read_bytes()
    cut = tmp_path / "KRAKEN.jsonl.zst"
    cut.write_bytes(data[: len(data) // 2])
    assert run("import", "cryptofeed", str(cut), "-o", str(tmp_path / "r.db")) == 2
    err = capsys.readouterr().err
    assert str(cut) in err and ("truncated" in err or "not valid JSON" in err)
    _assert_clean(tmp_path, ["KRAKEN.jsonl.zst"])


def test_truncated_zst_at_line_boundary(tmp_path, capsys):
    """Cut where the decompressed text ends on a whole line: only the zstd frame check notices."""
    text = ("\n".join(_format2_lines(200)) + "\n").encode()
    comp = zstandard.ZstdCompressor().compress(text)
    whole = tmp_path / "ok.jsonl.zst"
    whole.write_bytes(comp)
    assert run("import", "cryptofeed", str(whole), "-o", str(tmp_path / "ok.db")) == 0
    # a stream of two frames, the second cut after its header: the first ends on a line boundary
    cctx = zstandard.ZstdCompressor()
    two = cctx.compress(text) + cctx.compress(text)
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(two[: len(comp) + 20])
    assert run("import", "cryptofeed", str(cut), "-o", str(tmp_path / "cut.db")) == 2
    assert "truncated" in capsys.readouterr().err
    _assert_clean(tmp_path, ["ok.db", "ok.jsonl.zst", "cut.jsonl.zst"])


def test_concatenated_zstd_frames_read_whole(tmp_path):
    lines = _format2_lines(10)
    cctx = zstandard.ZstdCompressor()
    part1 = ("\n".join(lines[:6]) + "\n").encode()
    part2 = ("\n".join(lines[6:]) + "\n").encode()
    p = tmp_path / "two.jsonl.zst"
    p.write_bytes(cctx.compress(part1) + cctx.compress(part2))
    (r,) = import_files("cryptofeed", [p], tmp_path / "r.db", classify=lambda v, x: None)
    assert r.frames_in == 10


def test_non_json_line_names_line(tmp_path, capsys):
    lines = _format2_lines(3)
    lines.insert(3, '{"t":"recv","conn":"K.ws.1","ts":1618678133.5,"data":"x"')  # cut short
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    assert run("import", "cryptofeed", str(p), "-o", str(tmp_path / "r.db")) == 2
    err = capsys.readouterr().err
    assert f"{p}:4: not valid JSON" in err
    _assert_clean(tmp_path, ["bad.jsonl"])


@pytest.mark.parametrize("record, message", [
    ('{"t":"recv","conn":"K.ws.1","ts":1618678140.1}', "recv record has no 'data'"),
    ('{"t":"recv","conn":"K.ws.1","data":"x"}', "recv record has no 'ts'"),
    ('{"t":"recv","conn":"K.ws.1","ts":"soon","data":"x"}', "'ts' must be a number"),
    ('{"t":"http","conn":"K.http","ts":1618678140.1,"data":"x"}', "http record has no 'url'"),
    ('{"t":"bogus","conn":"K.ws.1","ts":1618678140.1}', "unknown record kind"),
    ('[1, 2]', "not an object"),
])
def test_record_missing_fields(tmp_path, capsys, record, message):
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(_format2_lines(2) + [record]) + "\n")
    with pytest.raises(ImportFormatError) as e:
        import_files("cryptofeed", [p], tmp_path / "r.db")
    assert e.value.line == 5 and message in str(e.value)
    _assert_clean(tmp_path, ["bad.jsonl"])


def test_bad_legacy_line(tmp_path, capsys):
    p = tmp_path / "legacy_KRAKEN.ws.1.0.txt"
    p.write_text("wss://ws.kraken.com <-> 1618678132.5\n1618678133.0: {}\ngarbage here\n")
    assert run("import", "cryptofeed", str(p), "-o", str(tmp_path / "r.db")) == 2
    assert f"{p}:3: unrecognized line" in capsys.readouterr().err


def test_failed_append_leaves_recording_untouched(tmp_path, capsys):
    rec_path = tmp_path / "r.db"
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(_format2_lines(5)) + "\n")
    assert run("import", "cryptofeed", str(good), "-o", str(rec_path)) == 0
    before = hashlib.sha256(rec_path.read_bytes()).hexdigest()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(_format2_lines(50) + ["not json"]) + "\n")
    # the first (good) file of the batch imports fine, the second fails: nothing is kept
    assert run("import", "cryptofeed", str(good), str(bad), "-o", str(rec_path), "--append") == 2
    assert f"{bad}:53: not valid JSON" in capsys.readouterr().err
    assert hashlib.sha256(rec_path.read_bytes()).hexdigest() == before
    _assert_clean(tmp_path, ["bad.jsonl", "good.jsonl", "r.db"])
    with Recording(rec_path) as rec:
        assert rec.count() == 5 and len(rec.sessions()) == 1


def test_foreign_database_output(tmp_path, capsys):
    foreign = tmp_path / "other.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    before = foreign.read_bytes()
    assert run("import", "jsonl", str(REPO / "fixtures" / "generic_sample.jsonl"), "-o", str(foreign), "--append") == 2
    err = capsys.readouterr().err
    assert "not a harness recording" in err and "Traceback" not in err
    assert foreign.read_bytes() == before
    _assert_clean(tmp_path, ["other.db"])


# -- generic jsonl ------------------------------------------------------------------------------
def test_generic_sample(tmp_path):
    rec_path = tmp_path / "g.db"
    (r,) = import_files("jsonl", [REPO / "fixtures" / "generic_sample.jsonl"], rec_path, classify=lambda v, p: None)
    assert (r.connections, r.frames_in, r.frames_out) == (2, 6, 1)
    with Recording(rec_path) as rec:
        conns = rec.connections()
        assert [(c["venue"], c["url"]) for c in conns] == [
            ("kalshi", "wss://example.invalid/trade-api/ws/v2"), ("coinbase", "wss://example.invalid/coinbase")]
        frames = list(rec.frames())
        assert [f.t_wall_ns for f in frames] == sorted(f.t_wall_ns for f in frames)
        by_t = {f.t_wall_ns: f for f in frames}
        assert by_t[1786309548250000001].payload.startswith('{"type":"ticker"')
        assert (by_t[1786309548500000000].opcode, by_t[1786309548500000000].payload) == ("ping", b"hi")
        assert (by_t[1786309549500000000].opcode, by_t[1786309549500000000].payload) == ("binary", b"\x00\x01\x02\xff")
        assert "中" in by_t[1786309549000000000].payload


@pytest.mark.parametrize("line, message", [
    ('{"venue":"kalshi","dir":"in","t":1.5}', "missing field 'frame'"),
    ('{"venue":"kalshi","t":1.5,"frame":"x"}', "missing field 'dir'"),
    ('{"venue":"kalshi","dir":"sideways","t":1.5,"frame":"x"}', "'dir' must be"),
    ('{"venue":"kalshi","dir":"in","t":1.5,"frame":{"a":1}}', "'frame' must be a string"),
    ('{"venue":"kalshi","dir":"in","t":1.5,"frame_b64":"***"}', "bad base64"),
    ('{"venue":"kalshi","dir":"in","t":1.5,"frame":"x","conn":[1]}', "'conn' must be a JSON scalar"),
    ('{"venue":"","dir":"in","t":1.5,"frame":"x"}', "'venue' must be"),
    ('venue=kalshi', "not valid JSON"),
])
def test_generic_bad_lines(tmp_path, line, message):
    p = tmp_path / "x.jsonl"
    p.write_text('{"venue":"kalshi","dir":"in","t":1.0,"frame":"ok"}\n' + line + "\n")
    with pytest.raises(ImportFormatError) as e:
        import_files("jsonl", [p], tmp_path / "r.db")
    assert e.value.line == 2 and message in str(e.value)
    assert not (tmp_path / "r.db").exists()


def test_end_to_end_subprocess(tmp_path):
    rec_path = tmp_path / "g.db"
    py = str(REPO / ".venv" / "bin" / "python")
    if not os.path.exists(py):
        py = sys.executable
    ok = subprocess.run([py, "-m", "harness", "import", "jsonl", str(REPO / "fixtures" / "generic_sample.jsonl"),
                         "-o", str(rec_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"venue":"kalshi","dir":"in","t":1.0,"frame":"ok"}\n{oops\n')
    r = subprocess.run([py, "-m", "harness", "import", "jsonl", str(bad), "-o", str(tmp_path / "b.db")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {bad}:2: not valid JSON") and "Traceback" not in r.stderr
    assert not (tmp_path / "b.db").exists()
    out = subprocess.run([py, "-m", "harness", "export", str(rec_path)], cwd=REPO, capture_output=True, timeout=60)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 7
    json.loads(io.BytesIO(out.stdout).readline())


def test_default_classifier_is_venues_classify(tmp_path, monkeypatch):
    import harness.venues

    seen = []
    monkeypatch.setattr(harness.venues, "classify", lambda v, p: seen.append(v) or f"{v}-type")
    import_files("jsonl", [REPO / "fixtures" / "generic_sample.jsonl"], tmp_path / "r.db")
    with Recording(tmp_path / "r.db") as rec:
        types = {(f.venue, f.opcode, f.type) for f in rec.frames()}
    assert ("kalshi", "text", "kalshi-type") in types and ("kalshi", "ping", None) in types
    assert set(seen) == {"kalshi", "coinbase"}


def test_output_locked_by_another_writer(tmp_path, capsys):
    from harness.store.writer import RecordingWriter

    rec_path = tmp_path / "live.db"
    w = RecordingWriter(rec_path, mode="live")
    try:
        assert run("import", "jsonl", str(REPO / "fixtures" / "generic_sample.jsonl"), "-o", str(rec_path), "--append") == 2
        assert "being written by another process" in capsys.readouterr().err
    finally:
        w.close()


def test_legacy_crlf_and_reconnect(tmp_path):
    p = tmp_path / "legacy_GEMINI.ws.1.0.txt"
    p.write_bytes(b"wss://api.gemini.com/v2/marketdata/ <-> 1618677942.3390841\r\n"
                  b"wss://api.gemini.com/v2/marketdata/ <- 1618677942.462008: {\"type\":\"subscribe\"}\r\n"
                  b"1618677942.586266: {\"a\": \"x: y\"}\r\n"
                  b"wss://api.gemini.com/v2/marketdata/ <-> 1618677950.5\r\n"
                  b"1618677951: {}\r\n\r\n")
    (r,) = import_files("cryptofeed", [p], tmp_path / "r.db", classify=lambda v, x: None)
    assert (r.connections, r.frames_in, r.frames_out, r.venues) == (2, 2, 1, ["gemini"])
    with Recording(tmp_path / "r.db") as rec:
        got = [(f.conn_id, f.dir, f.t_wall_ns, f.payload) for f in rec.frames()]
        assert [e["kind"] for e in rec.events()] == ["connect", "reconnect", "connect"]
    assert got == [(1, "out", 1618677942462008000, '{"type":"subscribe"}'),
                   (1, "in", 1618677942586266000, '{"a": "x: y"}'),
                   (2, "in", 1618677951000000000, "{}")]


def test_seconds_text_round_trip_property():
    from hypothesis import given
    from hypothesis import strategies as st

    @given(st.integers(min_value=-(10**19), max_value=10**19))
    def check(ns):
        assert seconds_to_ns(ns_to_seconds_text(ns)) == ns

    check()
