"""inspect (exact facts on a hand-built recording), export/import round trips, show."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli, main
from harness.store.export import export_jsonl_file
from harness.store.importers import import_files
from harness.store.inspect import inspect_recording
from harness.store.reader import Recording
from harness.store.writer import RecordingWriter

REPO = Path(__file__).resolve().parent.parent
S = 1_000_000_000
T0 = 1_700_000_000 * S
MONO = 5 * S - T0  # mono = wall + MONO: a different clock, same rate
NO_CLASSIFY = lambda venue, payload: None  # noqa: E731


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


@pytest.fixture
def small(tmp_path) -> tuple[Path, dict]:
    """A recording whose inspect facts are known exactly. Returns (path, frame ids)."""
    p = tmp_path / "small.db"
    w = RecordingWriter(p, mode="live", started_ns=T0, source="hand-built test")
    a = w.connection("kalshi", "wss://a.example/ws", opened_ns=T0)
    b = w.connection("kraken", "wss://b.example/ws", opened_ns=T0 + S // 2)
    w.event("connect", T0, T0 + MONO, a)
    w.event("connect", T0 + S // 2, T0 + S // 2 + MONO, b)
    ids = {}

    def fr(name, cid, d, t, payload, typ, opcode="text"):
        ids[name] = w.frame(cid, d, t, t + MONO, opcode, payload, typ)

    fr("a_sub", a, "out", T0 + S // 10, "s" * 10, "subscribe")
    fr("a1", a, "in", T0 + 1 * S, '{"k":"' + "t" * 12 + '"}', "ticker")  # 20 bytes
    fr("a2", a, "in", T0 + 2 * S, '{"k":"' + "u" * 12 + '"}', "ticker")
    fr("b1", b, "in", T0 + 1 * S, "hb-01", "heartbeat")
    fr("b2", b, "in", T0 + 3 * S, "hb-02", "heartbeat")
    fr("b3", b, "in", T0 + 4 * S, b"\x00" * 7, None, "binary")
    fr("a3", a, "in", T0 + 8 * S + S // 2, '{"k":"' + "v" * 12 + '"}', "ticker")  # 6.5 s after a2
    fr("a4", a, "in", T0 + 9 * S, "x" * 30, "trade")
    w.close_connection(a, T0 + 10 * S, 1000, "bye")
    w.event("note", T0 + 5 * S, None, None, {"text": "hello"})
    w.http("GET", "https://b.example/book", T0 + S, venue="kraken", response_body="abc", status=200)
    w.close(ended_ns=T0 + 11 * S)
    return p, ids


def test_inspect_exact(small):
    p, ids = small
    with Recording(p) as rec:
        f = inspect_recording(rec)
    assert set(f) == {"path", "file_bytes", "schema_version", "sessions", "connections", "frames", "venues", "types",
                      "gaps", "events", "http", "close_codes", "session_log"}
    (s,) = f["sessions"]
    assert (s["mode"], s["source"], s["started_ns"], s["ended_ns"], s["frames"], s["connections"]) == \
        ("live", "hand-built test", T0, T0 + 11 * S, 8, 2)
    assert f["frames"] == {"total": 8, "in": 7, "out": 1, "bytes": 10 + 3 * 20 + 30 + 5 + 5 + 7,
                           "first_ns": T0 + S // 10, "last_ns": T0 + 9 * S, "span_s": 8.9}
    ca, cb = f["connections"]
    assert (ca["venue"], ca["frames_in"], ca["frames_out"], ca["bytes"], ca["duration_s"], ca["duration_basis"],
            ca["close_code"], ca["close_reason"], ca["in_rate_per_s"]) == \
        ("kalshi", 4, 1, 100, 10.0, "closed", 1000, "bye", 4 / 8.0)
    assert (cb["venue"], cb["frames_in"], cb["bytes"], cb["duration_s"], cb["duration_basis"], cb["in_rate_per_s"],
            cb["closed_ns"]) == ("kraken", 3, 17, 3.5, "last_frame", 1.0, None)
    assert [(v["venue"], v["connections"], v["frames"], v["frames_in"], v["frames_out"], v["bytes"], v["in_rate_per_s"])
            for v in f["venues"]] == [("kalshi", 1, 5, 4, 1, 100, 0.5), ("kraken", 1, 3, 3, 0, 17, 1.0)]
    assert f["venues"][0]["span_s"] == 8.9
    assert [(t["venue"], t["dir"], t["type"], t["frames"], t["bytes"]) for t in f["types"]] == [
        ("kalshi", "in", "ticker", 3, 60), ("kalshi", "in", "trade", 1, 30), ("kalshi", "out", "subscribe", 1, 10),
        ("kraken", "in", "heartbeat", 2, 10), ("kraken", "in", None, 1, 7)]
    g = f["gaps"]
    assert (g["threshold_s"], g["count"], g["longest_s"], g["items_truncated"]) == (5.0, 1, 6.5, False)
    assert g["items"] == [{"conn_id": ca["id"], "venue": "kalshi", "session_id": s["id"], "after_frame_id": ids["a2"],
                           "before_frame_id": ids["a3"], "start_ns": T0 + 2 * S, "end_ns": T0 + 8 * S + S // 2,
                           "gap_s": 6.5}]
    assert f["events"] == {"total": 3, "by_kind": {"connect": 2, "note": 1}}
    assert f["http"] == {"total": 1, "by_venue": {"kraken": 1}, "response_bytes": 3}
    assert f["close_codes"] == {"1000": 1}
    assert f["schema_version"] == 2 and f["file_bytes"] == p.stat().st_size
    # a version-2 file recorded without --pipeline: the session log's tables, empty
    assert f["session_log"] == {"index_values": 0, "index_valid": 0, "signals": 0, "settlements": 0, "fair_values": 0,
                                "first_ns": None, "last_ns": None, "by_session": {}}


def test_inspect_gap_threshold_and_cap(small):
    p, ids = small
    with Recording(p) as rec:
        g = inspect_recording(rec, gap_threshold_s=1.5)["gaps"]
        assert g["count"] == 2 and g["longest_s"] == 6.5
        # in time order: kraken's 1 s -> 3 s gap starts first
        assert [(x["venue"], x["after_frame_id"], x["before_frame_id"], x["gap_s"]) for x in g["items"]] == [
            ("kraken", ids["b1"], ids["b2"], 2.0), ("kalshi", ids["a2"], ids["a3"], 6.5)]
        g = inspect_recording(rec, gap_threshold_s=1.5, max_gaps=1)["gaps"]
        assert g["count"] == 2 and len(g["items"]) == 1 and g["items_truncated"]
        assert inspect_recording(rec, gap_threshold_s=7)["gaps"]["count"] == 0


def test_inspect_cli(small):
    p, _ = small
    r = CliRunner().invoke(cli, ["inspect", str(p), "--json", "--gap-threshold", "1.5"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["gaps"]["count"] == 2 and doc["frames"]["total"] == 8
    r = CliRunner().invoke(cli, ["inspect", str(p)], env={"COLUMNS": "220"})
    assert r.exit_code == 0, r.output
    for text in ("sessions", "connections", "kalshi", "kraken", "ticker", "gaps > 5 s without an inbound frame: 1",
                 "1000 bye", "connect 2"):
        assert text in r.output


def test_inspect_errors(tmp_path, capsys):
    assert run("inspect", str(tmp_path / "missing.db")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "Traceback" not in err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    assert run("inspect", str(junk)) == 2
    err = capsys.readouterr().err
    assert "not a readable SQLite database" in err and "Traceback" not in err
    assert run("show", str(junk), "1") == 2
    assert run("export", str(junk)) == 2


def _frames_by_conn(path: Path):
    """[(venue, [(dir, t_wall, opcode, payload)...]) per connection in id order], all frames in read order."""
    with Recording(path) as rec:
        allf = [(f.venue, f.dir, f.t_wall_ns, f.opcode, f.payload) for f in rec.frames()]
        by = defaultdict(list)
        for f in rec.frames():
            by[f.conn_id].append((f.dir, f.t_wall_ns, f.opcode, f.payload))
        conns = [(c["venue"], c["url"], by[c["id"]]) for c in rec.connections()]
    return conns, allf


def test_export_import_round_trip_small(small, tmp_path):
    p, _ = small
    out1 = tmp_path / "one.jsonl"
    with Recording(p) as rec:
        assert export_jsonl_file(rec, str(out1)) == 8
    r2 = tmp_path / "two.db"
    import_files("jsonl", [out1], r2, classify=NO_CLASSIFY)
    c1, a1 = _frames_by_conn(p)
    c2, a2 = _frames_by_conn(r2)
    assert a1 == a2
    assert c1 == c2
    # a second round is a fixed point, byte for byte
    out2 = tmp_path / "two.jsonl"
    assert run("export", str(r2), "--jsonl", "-o", str(out2)) == 0
    assert out2.read_bytes() == out1.read_bytes()
    line = json.loads(out1.read_text().splitlines()[5])
    assert line == {"venue": "kraken", "conn": 2, "dir": "in", "t": 1700000004.0, "frame_b64": "AAAAAAAAAA=="}


def test_export_to_stdout_and_filters(small):
    p, _ = small
    r = CliRunner().invoke(cli, ["export", str(p), "--venue", "kraken"])
    assert r.exit_code == 0
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert [x["venue"] for x in lines] == ["kraken"] * 3 and lines[0]["url"] == "wss://b.example/ws"
    r = CliRunner().invoke(cli, ["export", str(p), "--dir", "out"])
    assert [json.loads(x)["frame"] for x in r.output.splitlines()] == ["s" * 10]


@pytest.mark.realdata
def test_export_import_round_trip_real(realdata, tmp_path):
    src = realdata / "cryptofeed"
    r1 = tmp_path / "r1.db"
    import_files("cryptofeed", [src / "KRAKEN.jsonl.zst", src / "COINBASE.jsonl.zst"], r1, classify=NO_CLASSIFY)
    exported = tmp_path / "frames.jsonl.zst"
    assert run("export", str(r1), "-o", str(exported)) == 0
    r2 = tmp_path / "r2.db"
    assert run("import", "jsonl", str(exported), "-o", str(r2)) == 0
    c1, a1 = _frames_by_conn(r1)
    c2, a2 = _frames_by_conn(r2)
    assert len(a1) == 4433 + 1035
    assert a1 == a2
    # connection ids follow first appearance in the export (time order): compare as sets
    key = lambda c: (c[0], c[1] or "", c[2][:1])  # noqa: E731
    assert sorted(c1, key=key) == sorted(c2, key=key)


def test_show(small):
    p, ids = small
    r = CliRunner().invoke(cli, ["show", str(p), str(ids["a2"]), "--json", "--context", "2"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    fr = doc["frame"]
    assert (fr["id"], fr["venue"], fr["dir"], fr["type"], fr["size"], fr["t_wall_ns"], fr["url"]) == \
        (ids["a2"], "kalshi", "in", "ticker", 20, T0 + 2 * S, "wss://a.example/ws")
    # neighbours on the same connection only, in receive order
    assert [x["id"] for x in doc["before"]] == [ids["a_sub"], ids["a1"]]
    assert [x["id"] for x in doc["after"]] == [ids["a3"], ids["a4"]]
    r = CliRunner().invoke(cli, ["show", str(p), str(ids["b3"]), "--json"])
    doc = json.loads(r.output)
    assert doc["frame"]["payload_b64"] == "AAAAAAAAAA==" and [x["id"] for x in doc["before"]] == [ids["b1"], ids["b2"]]
    assert doc["after"] == []
    r = CliRunner().invoke(cli, ["show", str(p), str(ids["a1"])], env={"COLUMNS": "160"})
    assert r.exit_code == 0 and '"k": "tttttttttttt"' in r.output and "kalshi" in r.output
    assert run("show", str(p), "999") == 2


@pytest.mark.realdata
def test_show_huge_frame_truncated(realdata, tmp_path):
    rec_path = tmp_path / "cb.db"
    import_files("cryptofeed", [realdata / "cryptofeed" / "COINBASE.jsonl.zst"], rec_path, classify=NO_CLASSIFY)
    with Recording(rec_path) as rec:
        fid = rec.db.execute("SELECT id FROM frames ORDER BY size DESC LIMIT 1").fetchone()[0]
    r = CliRunner().invoke(cli, ["show", str(rec_path), str(fid), "-C", "1"], env={"COLUMNS": "160"})
    assert r.exit_code == 0
    assert "truncated: showing 4,000 of" in r.output and len(r.output) < 20_000
    r = CliRunner().invoke(cli, ["show", str(rec_path), str(fid), "--json", "-C", "0"])
    doc = json.loads(r.output)
    assert doc["frame"]["payload_truncated"] and doc["frame"]["size"] > 5_000_000
