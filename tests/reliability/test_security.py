"""Secrets, key handling, SQL filters and unsafe deserialisation.

- A real `harness record` process signs into a Kalshi-like loopback server with a canary
  key id; the server's first answer is a 401 whose body echoes the key id and signature
  (a hostile or buggy venue). Neither the key id, nor any signature the server saw, nor
  the private key appear in the recording, its logs, an export, inspect/show/check (JSON
  and HTML) output or a replay session log.
- The private key is read once: the key file is deleted while recording and every later
  reconnect still signs (the server verifies each signature); it is never in argv or the
  process title; a group/world-readable key file draws a warning.
- Command-line filters reach SQLite as bound parameters: quotes and semicolons pass
  through every filter, match literally, and change nothing.
- No pickle, eval/exec, marshal or YAML full loader anywhere in the package.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from harness.venues import kalshi_auth
from tests.helpers import make_recording
from tests.reliability.streamer import REPO, stop, wait_for

MARKET = "KXBTC15M-26NOV250100-00"


class KalshiLike:
    """Kalshi-shaped loopback server on its own thread: verifies every handshake's RSA-PSS
    signature, refuses the first with a 401 echoing the credentials, answers subscribe
    with ``subscribed`` and then streams deltas; ``kick()`` closes every connection."""

    def __init__(self, public_key):
        self.public_key = public_key
        self.key_ids: list[str] = []
        self.signatures: list[str] = []
        self.verified: list[bool] = []
        self.connections = 0
        self._ws: set = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: self._loop.run_until_complete(self._main()), daemon=True)

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kick(self) -> None:
        for ws in list(self._ws):
            asyncio.run_coroutine_threadsafe(ws.close(1011, "kicked by the test"), self._loop)

    async def _main(self):
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, process_request=self._process) as srv:
            self.url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/trade-api/ws/v2"
            self._ready.set()
            await self._stop.wait()

    def _process(self, connection, request):
        h = {k: v for k, v in request.headers.raw_items()}
        key_id, sig = h.get("KALSHI-ACCESS-KEY", ""), h.get("KALSHI-ACCESS-SIGNATURE", "")
        self.key_ids.append(key_id)
        self.signatures.append(sig)
        ok = kalshi_auth.verify(self.public_key, h, "/trade-api/ws/v2").ok
        self.verified.append(ok)
        if len(self.signatures) == 1 or not ok:
            body = json.dumps({"error": {"code": "authentication_error",
                                         "message": f"bad signature {sig} for key {key_id}"}}).encode()
            return Response(401, "Unauthorized", Headers([("Content-Type", "application/json"),
                                                          ("Content-Length", str(len(body))),
                                                          ("X-Echo-Key", key_id)]), body)
        return None

    async def _handle(self, ws):
        self.connections += 1
        self._ws.add(ws)
        try:
            cmd = json.loads(await ws.recv())
            sids = {}
            for i, ch in enumerate(cmd["params"]["channels"], start=1):
                sids[ch] = i
                await ws.send(json.dumps({"id": cmd["id"], "type": "subscribed", "msg": {"channel": ch, "sid": i}}))
            sid = sids.get("orderbook_delta", 1)
            await ws.send(json.dumps({"type": "orderbook_snapshot", "sid": sid, "seq": 1, "msg": {
                "market_ticker": MARKET, "yes_dollars_fp": [["0.4800", "10.00"]], "no_dollars_fp": [["0.5000", "10.00"]]}}))
            seq = 1
            while True:
                seq += 1
                await ws.send(json.dumps({"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": {
                    "market_ticker": MARKET, "price_dollars": "0.4800", "delta_fp": "1.00", "side": "yes"}}))
                await asyncio.sleep(0.01)
        except Exception:  # noqa: BLE001 - the client left or was kicked
            pass
        finally:
            self._ws.discard(ws)


def _kalshi_frames(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return 0
    try:
        return con.execute("SELECT count(*) FROM frames WHERE dir = 'in' AND type = 'orderbook_delta'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _harness(*args, save: Path | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=REPO, capture_output=True,
                       timeout=300)
    assert b"Traceback" not in r.stderr, r.stderr.decode(errors="replace")[-3000:]
    if save is not None:
        save.write_bytes(r.stdout + r.stderr)
    return r


def test_secrets_and_the_private_key_stay_secret(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file = tmp_path / "kalshi.pem"
    key_file.write_bytes(pem)
    key_file.chmod(0o600)
    canary = f"CANARY-{uuid.uuid4().hex}"
    db = tmp_path / "rec.db"
    env = dict(os.environ, KALSHI_API_KEY_ID=canary, KALSHI_PRIVATE_KEY_PATH=str(key_file), PYTHONUNBUFFERED="1")
    with KalshiLike(key.public_key()) as srv:
        p = subprocess.Popen([sys.executable, "-m", "harness", "record", "-o", str(db), "--kalshi-market", MARKET,
                              "--exchanges", "", "--url", f"kalshi={srv.url}", "--no-status", "--seed", "1"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: _kalshi_frames(db) > 20, 60, "Kalshi frames recorded after the 401", p)
            # Not in argv nor the process title (what ps and /proc show to every user).
            cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes()
            comm = Path(f"/proc/{p.pid}/comm").read_bytes()
            for shown in (cmdline, comm):
                assert canary.encode() not in shown and b"PRIVATE KEY" not in shown
            # Read once: with the key file gone, reconnects must still sign.
            key_file.unlink()
            for n in (2, 3):
                before = srv.connections
                srv.kick()
                wait_for(lambda b=before: srv.connections > b, 60, f"reconnect {n} after the key file was deleted", p)
            wait_for(lambda: _kalshi_frames(db) > 60, 60, "frames after the reconnects", p)
            out, err = stop(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert p.returncode == 0, err
    assert srv.key_ids[0] == canary and srv.verified[1:] and all(srv.verified[1:]), srv.verified
    assert srv.connections >= 3

    # Everything the harness writes about this recording.
    art = tmp_path / "artifacts"
    art.mkdir()
    _harness("export", db, "-o", art / "export.jsonl", save=art / "export.log")
    _harness("check", db, "--html", art / "report.html", save=art / "check.txt")
    _harness("check", "--json", db, save=art / "check.json")
    _harness("inspect", "--json", db, save=art / "inspect.json")
    _harness("inspect", db, save=art / "inspect.txt")
    _harness("replay", db, "--out", art / "session.db", "--min-venues", "1", save=art / "replay.txt")
    con = sqlite3.connect(db)
    out_ids = [r[0] for r in con.execute("SELECT id FROM frames WHERE dir = 'out' AND opcode = 'text'")]
    con.close()
    for fid in out_ids[:3]:
        _harness("show", "--json", db, fid, save=art / f"show-{fid}.json")
    blobs = {"recorder stdout": out.encode(), "recorder stderr": err.encode()}
    for f in [*art.iterdir(), *tmp_path.glob("rec.db*")]:
        blobs[f.name] = f.read_bytes()
    assert len(blobs["export.jsonl"]) > 1000 and b"<html" in blobs["report.html"].lower()

    key_b64 = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    secrets = {"key id": canary.encode(), "private key": key_b64[40:100]}
    for i, sig in enumerate(srv.signatures):
        secrets[f"signature {i}"] = sig.encode()
    for where, data in blobs.items():
        for what, secret in secrets.items():
            assert secret not in data, f"{what} leaked into {where}"
    # The redaction is visible, not silent: the handshake headers say what was there.
    assert f"<redacted len={len(canary)}>".encode() in blobs["rec.db"]


def test_group_readable_key_file_draws_a_warning(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p = tmp_path / "k.pem"
    p.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    p.chmod(0o644)
    creds = kalshi_auth.credentials_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(p)})
    assert any("chmod 600" in w for w in creds.warnings)
    assert "PRIVATE" not in repr(creds) and "private_key=" not in repr(creds)
    p.chmod(0o600)
    creds = kalshi_auth.credentials_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(p)})
    assert creds.warnings == []


# ------------------------------------------------------------------------------- SQL

EVIL = "x'; DROP TABLE frames; --"
EVIL_VENUE = "evil'venue\"; DELETE FROM frames; --"


def _sha(p) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def test_cli_filters_are_bound_parameters(tmp_path):
    db = tmp_path / "f.db"
    t0 = 1_795_000_000_000_000_000
    frames = [("coinbase", "in", t0 + i, i, '{"channel":"heartbeats"}') for i in range(5)]
    frames += [(EVIL_VENUE, "in", t0 + 10 + i, 10 + i, "{}") for i in range(3)]
    make_recording(db, frames)
    con = sqlite3.connect(db)
    con.execute("UPDATE frames SET type = ? WHERE id = 1", (EVIL,))
    con.commit()
    con.close()
    before = _sha(db)
    runs = [
        ("replay", "--json", "--no-pipeline", "--venue", EVIL, db),
        ("replay", "--json", "--no-pipeline", "--type", EVIL, db),
        ("replay", "--json", "--no-pipeline", "--venue", EVIL_VENUE, db),
        ("replay", "--json", "--no-pipeline", "--from", EVIL, db),
        ("replay", "--json", "--no-pipeline", "--to", "'; DROP TABLE sessions; --", db),
        ("replay", "--json", "--no-pipeline", "--dir", EVIL, db),
        ("export", db, "--venue", EVIL, "-o", tmp_path / "e1.jsonl"),
        ("export", db, "--venue", EVIL_VENUE, "-o", tmp_path / "e2.jsonl"),
        ("export", db, "--session", "1; DROP TABLE frames", "-o", tmp_path / "e3.jsonl"),
        ("check", "--only", EVIL, db),
        ("show", db, "1; DROP TABLE frames"),
        ("inspect", "--gap-threshold", "1; DROP TABLE frames", db),
    ]
    results = {}
    for args in runs:
        r = _harness(*args)
        assert r.returncode in (0, 2), (args, r.returncode, r.stderr[-500:])
        r.stdout = r.stdout.decode()
        results[args[:-1] if args[-1] == db else args] = r
    assert _sha(db) == before
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == 8
    con.close()
    # Literal matches: the quote-laden venue and type select exactly their own rows.
    by_venue = json.loads(results[("replay", "--json", "--no-pipeline", "--venue", EVIL_VENUE)].stdout)
    assert by_venue["frames"] == 3
    by_type = json.loads(results[("replay", "--json", "--no-pipeline", "--type", EVIL)].stdout)
    assert by_type["frames"] == 1
    assert json.loads(results[("replay", "--json", "--no-pipeline", "--venue", EVIL)].stdout)["frames"] == 0
    lines = (tmp_path / "e2.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x)["venue"] == EVIL_VENUE for x in lines)


# ------------------------------------------------------------------ unsafe loading

_FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
_FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "jsonpickle"}
_UNSAFE_YAML = {"unsafe_load", "full_load", "load_all", "unsafe_load_all", "full_load_all"}
_UNSAFE_LOADERS = {"Loader", "FullLoader", "UnsafeLoader"}


def _py_files():
    for root in ("harness", "bench"):
        yield from sorted((REPO / root).rglob("*.py"))


def test_no_pickle_eval_or_yaml_full_loader_in_the_package():
    import yaml

    problems = []
    for path in _py_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in _FORBIDDEN_MODULES for n in names):
                    problems.append(f"{where}: imports {names}")
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id in _FORBIDDEN_CALLS:
                problems.append(f"{where}: {f.id}()")
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "yaml":
                if f.attr in _UNSAFE_YAML:
                    problems.append(f"{where}: yaml.{f.attr}()")
                if f.attr == "load":
                    loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
                    if loader is None and len(node.args) > 1:
                        loader = node.args[1]
                    name = getattr(loader, "id", None) or getattr(loader, "attr", None)
                    if name is None or name in _UNSAFE_LOADERS:
                        problems.append(f"{where}: yaml.load with Loader={name}")
                    else:  # a named loader: it must be a SafeLoader underneath
                        mod = sys.modules.get(_module_name(path))
                        cls = getattr(mod, name, None) if mod else None
                        if not (isinstance(cls, type) and issubclass(cls, yaml.SafeLoader)):
                            problems.append(f"{where}: yaml.load with {name}, not a SafeLoader subclass")
    assert not problems, "\n".join(problems)


def _module_name(path: Path) -> str:
    import importlib

    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - reported by the caller as not verifiable
        return ""
    return name


def test_serve_refuses_a_public_address_without_the_explicit_flag(tmp_path):
    db = tmp_path / "s.db"
    make_recording(db, [("coinbase", "in", 1, 1, '{"channel":"heartbeats"}')])
    r = subprocess.run([sys.executable, "-m", "harness", "serve", str(db), "--host", "0.0.0.0"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--allow-remote" in r.stderr

