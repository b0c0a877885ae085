"""``harness diff A B`` where either side is an AsyncAPI spec or a recording: two recordings
of different Kalshi eras (real frames from kalshi_frames.jsonl), a recording against the
published specs, exchanges keyed by venue, --exit-code, and files that are neither."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli, main
from harness.commands.diff import spec_diff
from harness.store.writer import RecordingWriter

SAMPLE = Path(__file__).resolve().parent.parent / "recordings" / "sample.db"
T0 = 1_786_000_000_000_000_000


def _recording(path: Path, frames: dict[str, list[str]]) -> Path:
    """A recording with one connection per venue carrying ``frames`` inbound, in order."""
    w = RecordingWriter(path, mode="import", started_ns=T0)
    t = T0
    for venue, texts in frames.items():
        c = w.connection(venue, f"wss://{venue}.example/ws", t)
        for text in texts:
            t += 1_000_000
            w.frame(c, "in", t, t, "text", text)
    w.close()
    return path


def _era(realdata, *marks: str) -> list[str]:
    rows = [json.loads(x) for x in (realdata / "kalshi_frames.jsonl").read_text().splitlines() if x.strip()]
    return [r["frame"] for r in rows if any(m in r["provenance"] for m in marks)]


@pytest.mark.realdata
def test_two_recordings_of_two_kalshi_eras(realdata, tmp_path):
    """Real captures of February (cents era) and July/August 2026 (fixed point): the ticker's
    legacy integer fields are gone and the _fp / ts_ms fields are new."""
    old = _recording(tmp_path / "feb.db", {"kalshi": _era(realdata, "Feb 2026 production")})
    new = _recording(tmp_path / "aug.db", {"kalshi": _era(realdata, "2026-08-27", "Jul 2026")})
    d, stats = spec_diff(str(old), str(new))
    ticker = d.types["ticker"]
    assert {"msg.price", "msg.volume"} <= set(ticker.removed)
    assert "msg.ts_ms" in ticker.added
    assert stats["a"]["frames"] > 0 and stats["b"]["frames"] > 0
    r = CliRunner().invoke(cli, ["diff", str(old), str(new), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert "msg.ts_ms" in out["types"]["ticker"]["added"] and out["recordings"]["a"]["frames"] == stats["a"]["frames"]


def test_recording_against_the_specs(reference):
    """The sample's Kalshi frames are what the August spec documents (nothing undocumented),
    and against the January spec they show the fields added since, in either order."""
    aug, jan = str(reference / "kalshi/asyncapi.yaml"), str(reference / "kalshi/asyncapi-2026-01-31.yaml")
    d, stats = spec_diff(aug, str(SAMPLE))
    assert d.changed() == {}, d.changed()
    assert stats["unseen"]["types"] > 0  # channels the sample never subscribed: counted, not differences
    d, _ = spec_diff(jan, str(SAMPLE))
    assert "msg.ts_ms" in d.types["orderbook_delta"].added
    assert {"msg.yes_bid_size_fp", "msg.ts_ms"} <= set(d.types["ticker"].added)
    assert all(not td.removed for td in d.types.values())  # what the spec has and frames lack is not drift
    swapped, _ = spec_diff(str(SAMPLE), jan)  # shown spec first either way
    assert swapped.to_dict()["types"] == d.to_dict()["types"]
    r = CliRunner().invoke(cli, ["diff", jan, str(SAMPLE), "--exit-code"], terminal_width=200)
    assert r.exit_code == 1 and "msg.ts_ms" in r.output and "no recorded frame carried" in r.output
    r = CliRunner().invoke(cli, ["diff", aug, str(SAMPLE), "--exit-code"], terminal_width=200)
    assert r.exit_code == 0 and "no field differences" in r.output


def test_exchange_types_are_keyed_by_venue(tmp_path):
    a = _recording(tmp_path / "a.db", {
        "coinbase": ['{"channel":"heartbeats","client_id":"","timestamp":"2026-08-09T21:05:48Z","sequence_num":1,'
                     '"events":[{"current_time":"x","heartbeat_counter":1}]}'],
        "kalshi": ['{"type":"ticker","sid":1,"seq":1,"msg":{"market_ticker":"M","price":51}}']})
    b = _recording(tmp_path / "b.db", {
        "coinbase": ['{"channel":"heartbeats","timestamp":"2026-08-09T21:05:48Z","sequence_num":1,'
                     '"events":[{"current_time":"x","heartbeat_counter":"1"}]}'],
        "kalshi": ['{"type":"ticker","sid":1,"seq":1,"msg":{"market_ticker":"M","price_dollars":"0.51","ts_ms":null}}']})
    d, _ = spec_diff(str(a), str(b))
    hb = d.types["coinbase:heartbeats"]
    assert hb.removed == ["client_id"] and hb.changed_type == [("events[].heartbeat_counter", ["integer"], ["string"])]
    assert d.types["ticker"].removed == ["msg.price"] and d.types["ticker"].added == ["msg.price_dollars", "msg.ts_ms"]
    d, _ = spec_diff(str(a), str(b), ("kalshi",))
    assert set(d.types) == {"ticker"}


def test_neither_a_spec_nor_a_recording(tmp_path, capsys):
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(b"\x00\xff not yaml {")
    for bad in (foreign, junk):
        with pytest.raises(SystemExit) as e:
            main(["diff", str(bad), str(SAMPLE)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(bad) in err and "Traceback" not in err
