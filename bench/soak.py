"""Soak: simulated traffic at 10x market rates, served by the impersonation server with
faults on, recorded live by a real `harness record --check` process; then the books are
balanced. `make soak` runs ten minutes; `python -m bench.soak --minutes 2` a short one.

Faults (server side, seeded): every connection is closed with 1011 after 30 s of stream,
0.1% of data frames are dropped, and every connection stalls for 3 s once.

Pass criteria (exit 1 when one fails, each printed):
- no crash: the recorder exits 0 (or 1: a check failed, which is the point of faults) and
  never prints a traceback; its recording passes PRAGMA integrity_check;
- every disconnect is followed by a reconnect within the backoff bound (cap + 2 s for the
  handshake on a loaded machine);
- every injected gap is reported: each frame dropped from a sequenced stream (Kalshi seq,
  Coinbase sequence_num) is a sequence finding of the live checks;
- memory flat: the recorder's RSS (from /proc) grows less than 10% from the end of the
  warm-up (a fifth of the run, at least 30 s) to the end;
- frames recorded == frames sent (the server's count, which leaves out the frames dropped
  by design): lost otherwise = 0, per venue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 5.0
FAULTS = "seed={seed},disconnect=every:30s:1011,drop=0.001,stall=3s@12s"
SEQUENCED = ("kalshi", "coinbase")  # a dropped frame can be a visible sequence gap
# Answers to the recorder's commands: not part of the data stream the server counts.
REPLY_TYPES = {"subscribed", "ok", "unsubscribed", "error", "subscriptions", "bts:subscription_succeeded",
               "bts:unsubscription_succeeded", "status", "pong", "subscribe", "unsubscribe"}


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _write_key(d: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p = d / "kalshi.pem"
    p.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    p.chmod(0o600)
    return p


def _config(d: Path, urls: dict[str, str], markets: list[str], out: Path, minutes: float) -> Path:
    exchanges = sorted(v for v in urls if v != "kalshi")
    lines = [
        f'output = "{out}"',
        f"duration = {minutes * 60:.0f}",
        f"exchanges = {json.dumps(exchanges)}",
        "[kalshi]",
        f"markets = {json.dumps(markets)}",
        "series = []",
        "[backoff]",
        f"base = {BACKOFF_BASE_S}",
        f"cap = {BACKOFF_CAP_S}",
        "reset_after = 10",
    ]
    for v, url in sorted(urls.items()):
        lines += [f"[venues.{v}]", f'url = "{url}"', "compression = false"]
        if v == "kraken":
            lines.append("depth = 10")
    p = d / "record.toml"
    p.write_text("\n".join(x for x in lines if x) + "\n")
    return p


def _recorded(db: Path) -> dict:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        frames: dict[str, int] = {}
        replies: dict[str, int] = {}
        for venue, typ, n in con.execute(
                "SELECT c.venue, f.type, count(*) FROM frames f JOIN connections c ON c.id = f.conn_id"
                " WHERE f.dir = 'in' AND f.opcode = 'text' GROUP BY c.venue, f.type"):
            frames[venue] = frames.get(venue, 0) + n
            if typ in REPLY_TYPES:
                replies[venue] = replies.get(venue, 0) + n
        # Kalshi answers get_snapshot with one fresh snapshot per market: a reply too.
        for (payload,) in con.execute(
                "SELECT f.payload FROM frames f JOIN connections c ON c.id = f.conn_id"
                " WHERE c.venue = 'kalshi' AND f.dir = 'out' AND f.opcode = 'text' AND f.payload LIKE '%get_snapshot%'"):
            n = len(json.loads(payload).get("params", {}).get("market_tickers", []))
            replies["kalshi"] = replies.get("kalshi", 0) + n
        events = [(k, t, json.loads(d) if d else {}) for k, t, d in con.execute(
            "SELECT kind, t_wall_ns, detail FROM events WHERE kind IN ('connect', 'disconnect') ORDER BY t_wall_ns, id")]
        ended = con.execute("SELECT ended_ns FROM sessions ORDER BY id DESC LIMIT 1").fetchone()[0]
    finally:
        con.close()
    return {"integrity_ok": ok, "frames_in_text": frames, "replies": replies,
            "data_frames": {v: n - replies.get(v, 0) for v, n in frames.items()},
            "events": events, "session_closed": ended is not None}


def _reconnects(events: list) -> dict:
    """Per venue: disconnects and the wait until the next connect (seconds)."""
    out: dict = {}
    down: dict[str, int] = {}
    for kind, t, d in events:
        v = d.get("venue")
        r = out.setdefault(v, {"disconnects": 0, "reconnected": 0, "max_wait_s": 0.0, "waits_s": []})
        if kind == "disconnect" and d.get("cause") != "stop":
            r["disconnects"] += 1
            down[v] = t
        elif kind == "connect" and v in down:
            w = (t - down.pop(v)) / NS
            r["reconnected"] += 1
            r["waits_s"].append(round(w, 3))
            r["max_wait_s"] = max(r["max_wait_s"], round(w, 3))
    for v, t in down.items():  # a disconnect with no connect after it: only acceptable at the very end
        out[v]["unanswered_at_ns"] = t
    return out


def _sequence_findings(report: dict) -> dict[str, int]:
    n: dict[str, int] = {}
    for c in report.get("checks", []):
        if c.get("name") != "sequence":
            continue
        for f in c.get("findings", []):
            if f.get("code") in ("gap", "out_of_order"):
                n[f.get("venue") or "?"] = n.get(f.get("venue") or "?", 0) + int(f.get("count") or 1)
    return n


async def _soak(minutes: float, seed: int, workdir: Path, check: bool = True) -> dict:
    from harness.replay.server import ImpersonationServer
    from harness.sim.source import write_source

    src = workdir / "source.db"
    out = workdir / "soak.db"
    report_path = workdir / "check.json"
    # The simulated timeline starts now, so the recorder's real clock and the recording agree.
    start_ns = (time.time_ns() // NS + 2) * NS
    t0 = time.monotonic()
    summary = write_source(str(src), start_ns=start_ns, minutes=minutes + 0.5, seed=seed, scale=10.0)
    gen_s = time.monotonic() - t0
    markets = [m["ticker"] for m in summary.markets if m["close_ns"] > start_ns and m["open_ns"] < start_ns + minutes * 60 * NS]
    faults = FAULTS.format(seed=seed)
    async with ImpersonationServer(str(src), speed=1, faults=faults, slow_client_s=10.0) as srv:
        cfg = _config(workdir, srv.urls, markets, out, minutes)
        env = dict(os.environ, KALSHI_API_KEY_ID=str(uuid.uuid4()), KALSHI_PRIVATE_KEY_PATH=str(_write_key(workdir)),
                   PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "harness", "record", "--config", str(cfg), "--no-status", "--seed", str(seed)]
        if check:
            cmd += ["--check", "--json", str(report_path)]
        err_path = workdir / "record.stderr"
        with open(err_path, "w") as err_f, open(workdir / "record.stdout", "w") as out_f:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out_f, stderr=err_f)
            rss: list[tuple[float, int]] = []
            started = time.monotonic()
            deadline = started + minutes * 60 + 120  # never a hang
            while proc.poll() is None:
                kb = _rss_kb(proc.pid)
                if kb is not None:
                    rss.append((round(time.monotonic() - started, 1), kb))
                if time.monotonic() > deadline:
                    proc.send_signal(signal.SIGTERM)
                    await asyncio.sleep(10)
                    if proc.poll() is None:
                        proc.kill()
                    break
                await asyncio.sleep(2.0)
            rc = proc.wait()
        stats = srv.stats
        fault_log = list(srv.fault_log)
    stderr = err_path.read_text()
    rec = _recorded(out)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    drops: dict[str, int] = {}
    seq_drops: dict[str, int] = {}  # drops a sequence check can see
    kinds: dict[str, int] = {}
    for e in fault_log:
        kinds[e.get("fault", "?")] = kinds.get(e.get("fault", "?"), 0) + 1
        if e.get("fault") == "drop":
            v = e.get("venue", "?")
            drops[v] = drops.get(v, 0) + 1
            # Kalshi numbers only the order book channel (the server logs its seq); every
            # Coinbase Advanced Trade message carries sequence_num.
            if v == "coinbase" or (v == "kalshi" and "seq" in e):
                seq_drops[v] = seq_drops.get(v, 0) + 1
    return {"minutes": minutes, "seed": seed, "faults": faults, "generate_s": round(gen_s, 1),
            "source_frames": summary.frames, "markets": markets, "exit_code": rc, "stderr_tail": stderr[-1500:],
            "traceback": "Traceback" in stderr, "rss": rss, "server": stats, "fault_kinds": kinds, "drops": drops,
            "sequenced_drops": seq_drops,
            "recorded": {k: v for k, v in rec.items() if k != "events"}, "reconnects": _reconnects(rec["events"]),
            "sequence_findings": _sequence_findings(report), "check_status": report.get("status"),
            "check": check, "fault_log": fault_log}


def judge(r: dict) -> list[tuple[str, bool, str]]:
    out = []
    out.append(("no crash", r["exit_code"] in (0, 1) and not r["traceback"] and r["recorded"]["integrity_ok"]
                and r["recorded"]["session_closed"],
                f"exit {r['exit_code']}, traceback {r['traceback']}, integrity {r['recorded']['integrity_ok']}, "
                f"session closed {r['recorded']['session_closed']}"))
    bound = BACKOFF_CAP_S + 2.0
    worst = max((v["max_wait_s"] for v in r["reconnects"].values()), default=0.0)
    disc = sum(v["disconnects"] for v in r["reconnects"].values())
    again = sum(v["reconnected"] for v in r["reconnects"].values())
    out.append(("reconnects within the backoff bound", disc > 0 and again >= disc - len(r["reconnects"]) and worst <= bound,
                f"{disc} disconnects, {again} reconnects, slowest {worst:.2f} s (bound {bound:g} s)"))
    if r["check"]:
        sd, found = r["sequenced_drops"], r["sequence_findings"]
        missed = {v: (sd.get(v, 0), found.get(v, 0)) for v in SEQUENCED if found.get(v, 0) < sd.get(v, 0)}
        out.append(("every injected gap reported", not missed,
                    "; ".join(f"{v}: {r['drops'].get(v, 0)} dropped, {sd.get(v, 0)} of them sequenced, "
                              f"{found.get(v, 0)} sequence findings" for v in SEQUENCED)
                    + (f" MISSED {missed}" if missed else "")))
    samples = r["rss"]
    warm = max(30.0, r["minutes"] * 60 / 5)
    end = r["minutes"] * 60 - 4  # leave out the shutdown (the final checkpoint frees the page cache)
    after = [kb for t, kb in samples if warm <= t <= end]
    if len(after) >= 4:
        first = sum(after[:2]) / 2
        last = sum(after[-2:]) / 2
        growth = (last - first) / first
        out.append(("memory flat (<10% after warm-up)", growth < 0.10,
                    f"RSS {first / 1024:.1f} MB -> {last / 1024:.1f} MB ({growth:+.1%}), peak {max(after) / 1024:.1f} MB"))
    else:
        out.append(("memory flat (<10% after warm-up)", False, f"too few samples after {warm:.0f} s warm-up"))
    sent = {v: s["frames_sent"] for v, s in r["server"]["venues"].items()}
    got = r["recorded"]["data_frames"]
    lost = {v: sent[v] - got.get(v, 0) for v in sent}
    out.append(("data frames recorded == sent", all(x == 0 for x in lost.values()),
                ", ".join(f"{v}: sent {sent[v]}, dropped by design {r['drops'].get(v, 0)}, recorded {got.get(v, 0)} "
                          f"(+{r['recorded']['replies'].get(v, 0)} command replies), lost {lost[v]}" for v in sorted(sent))))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the run [10]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", metavar="DIR", help="keep the recording, check report and logs here")
    ap.add_argument("--json", metavar="FILE", help="write the raw results here")
    ap.add_argument("--no-check", action="store_true", help="record without --check (to tell the checks' memory from the recorder's)")
    a = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="harness-soak-"))
    try:
        r = asyncio.run(_soak(a.minutes, a.seed, workdir, check=not a.no_check))
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for name in ("soak.db", "check.json", "record.stderr", "record.stdout"):
                if (workdir / name).exists():
                    shutil.copy(workdir / name, Path(a.keep) / name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verdict = judge(r)
    r["verdict"] = [{"criterion": c, "ok": ok, "detail": d} for c, ok, d in verdict]
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2, default=str))
    print(f"soak: {a.minutes:g} min at 10x market rates, faults {r['faults']}; "
          f"{r['source_frames']:,} source frames, {len(r['markets'])} Kalshi markets")
    for c, ok, d in verdict:
        print(f"  {'PASS' if ok else 'FAIL'}  {c}: {d}")
    if r["traceback"] or r["exit_code"] not in (0, 1):
        print(r["stderr_tail"], file=sys.stderr)
    return 0 if all(ok for _, ok, _ in verdict) else 1


if __name__ == "__main__":
    sys.exit(main())
