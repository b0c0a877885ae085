"""harness record --check: the checks run on the stream as the recorder writes it; findings
arrive while recording, the final report has them, and the recording is the same as one
made without --check."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from harness.checks.runner import LiveChecks, Runner
from harness.live.manager import run_record
from tests.live.conftest import db_rows
from tests.live.servers import WsServer, hold
from tests.live.test_connection import rcfg, vcfg

MALFORMED = '{"channel":"l2_data","sequence_num":'


def l2(seq: int, kind: str, price: str) -> str:
    return json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-09-21T19:00:00.000000Z",
                       "sequence_num": seq, "events": [{"type": kind, "product_id": "BTC-USD", "updates": [
                           {"side": "bid", "event_time": "2026-09-21T19:00:00Z", "price_level": price, "new_quantity": "1"},
                           {"side": "offer", "event_time": "2026-09-21T19:00:00Z", "price_level": "70000.00", "new_quantity": "1"}]}]})


FRAMES = [l2(0, "snapshot", "67000.00"), l2(1, "update", "67000.01"), l2(3, "update", "67000.02"), MALFORMED,
          l2(4, "update", "67000.03")]


async def script(conn):
    await conn.wait_count(1)  # the subscribe
    for f in FRAMES:
        await conn.send(f)
    await hold(conn)


async def _record(tmp_path, name, observer=None, until=None):
    async with WsServer(script) as srv:
        cfg = rcfg(tmp_path / name, [vcfg("coinbase", srv.url, channels=["level2"])])
        stop = asyncio.Event()
        drainer = asyncio.ensure_future(observer.run(stop)) if observer is not None else None
        task = asyncio.ensure_future(run_record(cfg, stop=stop, observer=observer))
        for _ in range(500):
            n = db_rows(cfg.output, "SELECT count(*) FROM frames WHERE dir='in' AND opcode='text'")[0][0] \
                if os.path.exists(cfg.output) else 0
            if n >= len(FRAMES) and (until is None or until()):
                break
            await asyncio.sleep(0.02)
        stop.set()
        await task
        if drainer is not None:
            await drainer
    return cfg.output


def _content(path):
    return {
        "frames": db_rows(path, "SELECT id, conn_id, dir, opcode, payload, type, size FROM frames ORDER BY id"),
        # the two servers listen on different ports: compare the URL up to the port
        "connections": [(i, v, url.rsplit(":", 1)[0], st, cc) for i, v, url, st, cc in
                        db_rows(path, "SELECT id, venue, url, response_status, close_code FROM connections")],
        "events": [k for (k,) in db_rows(path, "SELECT kind FROM events ORDER BY id")],
    }


async def test_findings_arrive_while_recording_and_the_recording_is_unchanged(tmp_path):
    live_seen = []
    checks = LiveChecks(Runner(), live_seen.append)
    out = await _record(tmp_path, "checked", checks, until=lambda: any(f.code == "invalid_json" for f in live_seen))
    codes_live = {(f.check, f.code) for f in live_seen}
    assert ("sequence", "gap") in codes_live and ("format", "invalid_json") in codes_live
    gap = next(f for f in live_seen if f.code == "gap")
    report = checks.finish(out)
    assert report.exit_code == 1 and report.result("sequence").status == "fail"
    fr = report.result("sequence").findings[0]
    assert fr.code == "gap" and fr.frame_id == gap.frame_id
    # the gap is at the frame with sequence_num 3
    assert db_rows(out, "SELECT payload FROM frames WHERE id=?", gap.frame_id)[0][0] == FRAMES[2]
    bad = report.result("format").findings
    assert any(f.code == "invalid_json" and f.example.startswith(MALFORMED[:20]) for f in bad)
    # endpoint/auth judge the handshake live, as soon as its status is recorded (loopback
    # server), once: the report does not judge it again from the recorded rows
    assert ("endpoint", "local_endpoint") in codes_live
    assert [f.code for f in report.result("endpoint").findings] == ["local_endpoint"]
    plain = await _record(tmp_path, "plain")
    assert _content(out) == _content(plain)


async def test_cli_record_check_prints_live_and_reports(tmp_path):
    async with WsServer(script) as srv:
        out, js = tmp_path / "c.db", tmp_path / "c.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harness", "record", "-o", str(out), "--exchanges", "coinbase",
            "--url", f"coinbase={srv.url}", "--duration", "3", "--check", "--only", "sequence,format",
            "--json", str(js), "--no-status",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    err, so = stderr.decode(), stdout.decode()
    assert proc.returncode == 1, err + so
    assert "with live checks" in err
    live_lines = [ln for ln in err.splitlines() if ln.startswith("FAIL")]
    assert any("sequence.gap" in ln for ln in live_lines) and any("format.invalid_json" in ln for ln in live_lines)
    assert "harness check" in so and "sequence" in so and "FAIL" in so
    doc = json.loads(js.read_text())
    assert [c["name"] for c in doc["checks"]] == ["format", "sequence"] and doc["exit_code"] == 1
    assert db_rows(str(out), "SELECT count(*) FROM frames WHERE dir='in' AND opcode='text'")[0][0] == len(FRAMES)


def test_check_options_need_check(tmp_path):
    import subprocess

    p = subprocess.run([sys.executable, "-m", "harness", "record", "-o", str(tmp_path / "x.db"), "--exchanges", "coinbase",
                        "--only", "format"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--check" in p.stderr
    p = subprocess.run([sys.executable, "-m", "harness", "record", "-o", str(tmp_path / "x.db"), "--exchanges", "coinbase",
                        "--check", "--only", "nosuch"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown check" in p.stderr


def test_a_check_that_raises_is_counted_and_checking_goes_on(capsys):
    from harness.frame import Frame

    runner = Runner(["format", "sequence"])
    fmt = runner.check("format")
    real, calls = fmt.on_frame, []

    def flaky(view):
        calls.append(view.frame.id)
        if len(calls) == 1:
            raise RuntimeError("check bug")
        real(view)

    fmt.on_frame = flaky
    seen = []
    live = LiveChecks(runner, seen.append)
    live.on_connection(1, "coinbase", "ws://127.0.0.1:1/")
    for i, payload in enumerate([FRAMES[0], FRAMES[1], MALFORMED], start=1):
        live.on_frame(Frame("coinbase", 1, "in", i, i, "text", payload, None, i))
    live.drain()
    assert live.errors == 1 and calls == [1, 2, 3] and "live checks failed on a frame" in capsys.readouterr().err
    assert [f.code for f in seen] == ["invalid_json"] and seen[0].frame_id == 3


def test_the_live_queue_is_bounded_and_what_was_not_checked_is_reported():
    from harness.frame import Frame

    live = LiveChecks(Runner(["format", "sequence"]), max_queue=3)
    live.on_connection(1, "coinbase", "ws://127.0.0.1:1/")
    for i, payload in enumerate(FRAMES, start=1):  # 5 frames, nothing drained yet
        live.on_frame(Frame("coinbase", 1, "in", i * 1000, i, "text", payload, None, i))
    live.on_event("note", 9000, 1, {"venue": "coinbase"})  # not frames: always queued
    assert live.frames_queued == 3 and live.dropped == 2 and len(live.queue) == 5
    live.drain()
    assert live.frames_queued == 0 and live.runner.frames == 3
    report = live.finish()
    # the two frames not checked (ids 4, 5: the malformed one among them) are reported
    assert report.result("format").findings == []
    note = "live checks fell behind: 2 frames (received between 4000 and 5000 ns) were not checked"
    assert all(any(n.startswith(note) for n in r.notes) for r in report.results)
    # the frames after a drain are queued again
    live.on_frame(Frame("coinbase", 1, "in", 6000, 6, "text", MALFORMED, None, 6))
    assert live.frames_queued == 1 and live.dropped == 2
