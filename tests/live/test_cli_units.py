"""`harness record` CLI (real subprocesses), config merging, redaction, backoff."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from harness.config import build_config
from harness.errors import ConfigError
from harness.live import redact
from harness.live.backoff import Backoff
from tests.live.conftest import db_rows
from tests.live.servers import WsServer, hold

REPO = Path(__file__).resolve().parents[2]


def _env(**kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KALSHI_")}
    env.update(kw)
    env["PYTHONPATH"] = str(REPO)
    return env


async def _run(*args, env, timeout=20):
    p = await asyncio.create_subprocess_exec(sys.executable, "-m", "harness", "record", *args, env=env, cwd=REPO,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), timeout)
    return p.returncode, out.decode(), err.decode()


async def test_missing_kalshi_key_exits_2_before_connecting(tmp_path):
    async with WsServer(hold, path="/trade-api/ws/v2") as srv:
        code, _, err = await _run("--kalshi-market", "KXBTC15M-26JUL191145-45", "--exchanges", "",
                                  "--url", f"kalshi={srv.url}", "-o", str(tmp_path / "x.db"), env=_env())
        assert code == 2
        assert "KALSHI_API_KEY_ID" in err and "KALSHI_PRIVATE_KEY_PATH" in err
        code, _, err = await _run("--kalshi-market", "KXBTC15M-26JUL191145-45", "--exchanges", "",
                                  "--url", f"kalshi={srv.url}", "-o", str(tmp_path / "x.db"),
                                  env=_env(KALSHI_API_KEY_ID="abc", KALSHI_PRIVATE_KEY_PATH=str(tmp_path / "nope.pem")))
        assert code == 2 and "KALSHI_PRIVATE_KEY_PATH" in err and "does not exist" in err
        assert srv.handshakes == []  # no connection was attempted
    assert not (tmp_path / "x.db").exists()


async def test_sigint_subprocess_exits_0_with_ended_session_and_key_warning(tmp_path, key_file):
    key_file.chmod(0o644)
    sent_all = asyncio.Event()

    async def cb(conn):
        await conn.expect_json(type="subscribe", channel="level2")
        for i in range(50):
            await conn.send(json.dumps({"channel": "l2_data", "sequence_num": i, "events": []}))
        sent_all.set()
        await hold(conn)

    async def kalshi(conn):
        await hold(conn)

    out = tmp_path / "sig.db"
    async with WsServer(cb) as srv, WsServer(kalshi, path="/trade-api/ws/v2") as ks:
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harness", "record", "--exchanges", "coinbase", "--url", f"coinbase={srv.url}",
            "--kalshi-market", "KXBTC15M-26JUL191145-45", "--url", f"kalshi={ks.url}", "--no-status", "-o", str(out),
            env=_env(KALSHI_API_KEY_ID="CANARY-CLI-KEYID", KALSHI_PRIVATE_KEY_PATH=str(key_file)), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await asyncio.wait_for(sent_all.wait(), 15)
        await ks.wait_conns(1)
        await asyncio.sleep(0.2)
        p.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(p.communicate(), 15)
    err = stderr.decode()
    assert p.returncode == 0, err
    assert "chmod 600" in err  # key readable by others: a warning, not an error
    assert db_rows(out, "SELECT count(*) FROM sessions WHERE ended_ns IS NOT NULL") == [(1,)]
    got = [r[0] for r in db_rows(out, "SELECT f.payload FROM frames f JOIN connections c ON c.id=f.conn_id "
                                      "WHERE c.venue='coinbase' AND f.dir='in' AND f.opcode='text' ORDER BY f.id")]
    assert got == srv.conns[0].sent
    assert b"CANARY-CLI-KEYID" not in out.read_bytes() and "CANARY-CLI-KEYID" not in err + stdout.decode()


def test_build_config_defaults_and_overrides(tmp_path):
    cfg = build_config(output="o.db", kalshi_series=["KXBTC15M"])
    assert list(cfg.venues) == ["kalshi", "coinbase", "kraken", "bitstamp", "gemini", "cryptocom"]
    assert cfg.venues["kalshi"].url.startswith("wss://") and cfg.venues["kalshi"].url.endswith("/trade-api/ws/v2")
    assert cfg.venues["kalshi"].channels == ["orderbook_delta", "ticker", "trade", "market_lifecycle_v2"]
    assert cfg.kalshi.rest_url.startswith("https://") and cfg.venues["coinbase"].max_size >= 16 * 2**20
    demo = build_config(output="o.db", kalshi_series=["KXBTC15M"], env="demo", exchanges="")
    assert list(demo.venues) == ["kalshi"] and "demo" in demo.venues["kalshi"].url and "demo" in demo.kalshi.rest_url
    only = build_config(output="o.db", exchanges="kraken,crypto.com", urls=["kraken=ws://127.0.0.1:1/v2"])
    assert list(only.venues) == ["kraken", "cryptocom"] and only.kalshi is None
    assert only.venues["kraken"].url == "ws://127.0.0.1:1/v2"
    toml = tmp_path / "h.toml"
    toml.write_text('output = "t.db"\nduration = "2m"\nexchanges = ["gemini"]\n[backoff]\nbase = 0.1\n'
                    '[venues.gemini]\nstale_timeout = "45s"\ninstruments = ["ETHUSD"]\n')
    c = build_config(config_path=str(toml))
    assert c.output == "t.db" and c.duration_s == 120 and c.backoff.base == 0.1
    assert c.venues["gemini"].stale_timeout == 45 and c.venues["gemini"].instruments == ["ETHUSD"]
    toml.write_text("[venues.gemini]\nstale_timout = 3\n")
    with pytest.raises(ConfigError, match="stale_timout"):
        build_config(output="o.db", config_path=str(toml))
    with pytest.raises(ConfigError):
        build_config(output="o.db", exchanges="binance")
    with pytest.raises(ConfigError):
        build_config(output="o.db", exchanges="", urls=["kraken=ws://x"])
    with pytest.raises(ConfigError, match="nothing to record"):
        build_config(output="o.db", exchanges="")


def test_kalshi_settlement_and_determination_keys(tmp_path):
    d = build_config(output="o.db", kalshi_series=["KXBTC15M"], exchanges="").kalshi
    assert (d.determined_grace_s, d.settle_fetch_s, d.settle_retry_s, d.settle_retries) == (120.0, 20.0, 30.0, 5)
    toml = tmp_path / "k.toml"
    toml.write_text('[kalshi]\nseries = ["KXBTC15M"]\ndetermined_grace = "3m"\nsettle_fetch = "45s"\n'
                    'settle_retry = 10\nsettle_retries = 2\n')
    k = build_config(output="o.db", config_path=str(toml), exchanges="").kalshi
    assert (k.determined_grace_s, k.settle_fetch_s, k.settle_retry_s, k.settle_retries) == (180.0, 45.0, 10.0, 2)
    toml.write_text('[kalshi]\nseries = ["KXBTC15M"]\nsettle_retries = "many"\n')
    with pytest.raises(ConfigError, match="kalshi.settle_retries"):
        build_config(output="o.db", config_path=str(toml), exchanges="")


def test_redaction():
    h = redact.redact_headers([("KALSHI-ACCESS-KEY", "abc"), ("KALSHI-ACCESS-SIGNATURE", "x" * 344),
                               ("KALSHI-ACCESS-TIMESTAMP", "1786309548026"), ("Authorization", "Bearer t"),
                               ("CB-ACCESS-SIGN", "s"), ("Sec-WebSocket-Key", "k=="), ("Host", "h")])
    assert h == {"KALSHI-ACCESS-KEY": "<redacted len=3>", "KALSHI-ACCESS-SIGNATURE": "<redacted len=344>",
                 "KALSHI-ACCESS-TIMESTAMP": "1786309548026", "Authorization": "<redacted len=8>",
                 "CB-ACCESS-SIGN": "<redacted len=1>", "Sec-WebSocket-Key": "k==", "Host": "h"}
    u = redact.redact_url("https://h/p?series_ticker=X&api_key=SECRET1&signature=SIG&cursor=2")
    assert "SECRET1" not in u and "SIG&" not in u and "series_ticker=X" in u and "cursor=2" in u
    assert redact.redact_url("wss://h/ws") == "wss://h/ws"
    plain = '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'
    assert redact.redact_frame(plain) is plain
    f = json.loads(redact.redact_frame('{"type":"subscribe","channel":"level2","jwt":"eyJ0eXAi","key":"K",'
                                       '"signature":"SIGSIG","passphrase":"pp","timestamp":"1"}'))
    assert f["jwt"] == "<redacted len=8>" and f["key"] == "<redacted len=1>" and f["signature"] == "<redacted len=6>"
    assert f["passphrase"] == "<redacted len=2>" and f["timestamp"] == "1" and f["channel"] == "level2"
    nested = json.loads(redact.redact_frame('{"method":"subscribe","params":{"channel":"executions","token":"TKN"}}'))
    assert nested["params"]["token"] == "<redacted len=3>"


def test_backoff_full_jitter_seeded_and_reset():
    b = Backoff(base=0.5, cap=30, reset_after=10, rng=random.Random(42))
    delays = [b.next_delay() for _ in range(12)]
    for i, d in enumerate(delays):
        assert 0 <= d <= min(30, 0.5 * 2**i)
    b2 = Backoff(base=0.5, cap=30, reset_after=10, rng=random.Random(42))
    assert [b2.next_delay() for _ in range(12)] == delays
    assert b.next_delay(at_least=45) == 45  # Retry-After wins
    b.connection_ended(3)
    assert b.attempt == 13
    b.connection_ended(10)
    assert b.attempt == 0 and b.ceiling() == 0.5
