"""Live connections against loopback venue servers: auth, subscribe, heartbeats, control
frames, reconnect, stale detection, venue reconnect requests, Kalshi seq gaps."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from harness.config import BackoffConfig, KalshiConfig, RecordConfig, VenueConfig
from harness.live.manager import run_record
from harness.venues import kalshi_auth
from tests.live.conftest import db_rows
from tests.live.servers import FakeKalshi, WsServer, delta, hold, kalshi_auth_check, kalshi_frame

MARKET = "KXBTC15M-26JUL191145-45"


def vcfg(name, url, **kw) -> VenueConfig:
    d = {"stale_timeout": 5.0, "ping_interval": None, "ping_timeout": None, "open_timeout": 3.0}
    if name == "coinbase":
        d.update(channels=["level2", "heartbeats"], instruments=["BTC-USD"])
    if name == "kalshi":
        d.update(channels=["orderbook_delta", "ticker"])
    d.update(kw)
    return VenueConfig(name=name, url=url, **d)


def rcfg(tmp_path, venues: list[VenueConfig], markets=(MARKET,), **kw) -> RecordConfig:
    kalshi = KalshiConfig(markets=list(markets)) if any(v.name == "kalshi" for v in venues) else None
    return RecordConfig(output=str(tmp_path / "rec.db"), venues={v.name: v for v in venues}, kalshi=kalshi,
                        backoff=kw.pop("backoff", BackoffConfig(base=0.02, cap=0.1, reset_after=60, auth_failures_max=2)),
                        status=False, **kw)


def creds(key_file, key_id="test-key-id"):
    return kalshi_auth.credentials_from_env({"KALSHI_API_KEY_ID": key_id, "KALSHI_PRIVATE_KEY_PATH": str(key_file)})


def inbound_text(path, venue=None, conn=None):
    sql = ("SELECT f.payload FROM frames f JOIN connections c ON c.id = f.conn_id WHERE f.dir='in' AND f.opcode='text'"
           + (" AND c.venue = ?" if venue else "") + (" AND f.conn_id = ?" if conn else "") + " ORDER BY f.id")
    args = [a for a in (venue, conn) if a]
    return [r[0] for r in db_rows(path, sql, *args)]


async def stop_when(stop: asyncio.Event, cond, timeout=8.0):
    async def w():
        while not cond():
            await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(w(), timeout)
    finally:
        stop.set()


async def test_kalshi_auth_subscribe_ping_pong_and_redaction(tmp_path, rsa_key, key_file, caplog, capsys):
    done = asyncio.Event()

    async def after_sub(conn, sids):
        sid = sids["orderbook_delta"]
        await conn.ws.ping(b"heartbeat")
        for seq in (2, 3):
            await conn.send(delta(MARKET, sid, seq))
        await conn.send(kalshi_frame("ticker", sids["ticker"], None, {"market_ticker": MARKET, "price_dollars": "0.49",
                                                                      "note": "caf\u00e9 \u2713"}))
        done.set()

    fake = FakeKalshi(after_sub)

    async def script(conn):
        await fake(conn)

    canary_id = "CANARY-KEYID-5d1f0c2a"
    async with WsServer(script, auth=kalshi_auth_check(rsa_key.public_key()), path="/trade-api/ws/v2") as srv:
        cfg = rcfg(tmp_path, [vcfg("kalshi", srv.url)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds(key_file, canary_id), stop=stop))
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.1)
        stop.set()
        result = await task
    assert result.stats["kalshi"].connects == 1
    conn = srv.conns[0]
    # what the server sent, byte for byte and in order
    assert inbound_text(cfg.output) == conn.sent
    # subscribe recorded as sent
    out = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT payload FROM frames WHERE dir='out' AND opcode='text' ORDER BY id")]
    assert out[0]["cmd"] == "subscribe" and out[0]["params"]["market_tickers"] == [MARKET]
    # control frames: the server's ping and our automatic pong, in that order
    ctl = db_rows(cfg.output, "SELECT dir, opcode, payload FROM frames WHERE opcode IN ('ping','pong') ORDER BY t_mono_ns, id")
    assert ("in", "ping", b"heartbeat") in ctl and ("out", "pong", b"heartbeat") in ctl
    assert ctl.index(("in", "ping", b"heartbeat")) < ctl.index(("out", "pong", b"heartbeat"))
    # close handshake recorded both ways
    closes = db_rows(cfg.output, "SELECT dir FROM frames WHERE opcode='close'")
    assert ("out",) in closes
    # handshake headers redacted, auth present
    (req, status, resp), = db_rows(cfg.output, "SELECT request_headers, response_status, response_headers FROM connections")
    req = json.loads(req)
    assert status == 101
    assert req["KALSHI-ACCESS-KEY"] == f"<redacted len={len(canary_id)}>"
    assert req["KALSHI-ACCESS-SIGNATURE"] == "<redacted len=344>"
    assert req["KALSHI-ACCESS-TIMESTAMP"].isdigit()
    sig = srv.handshakes[0]["KALSHI-ACCESS-SIGNATURE"]
    # secrets nowhere: database bytes (incl. any WAL), logs, output
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("rec.db"))
    for secret in (canary_id, sig):
        assert secret.encode() not in blob
        assert secret not in caplog.text
        cap = capsys.readouterr()
        assert secret not in cap.out + cap.err
    sess = db_rows(cfg.output, "SELECT ended_ns, mode FROM sessions")
    assert sess[0][0] is not None and sess[0][1] == "live"


async def test_kalshi_seq_gap_and_terminal_error(tmp_path, key_file):
    fake = FakeKalshi()
    phase = {"n": 0}

    async def after_sub(conn, sids):
        phase["n"] += 1
        sid = sids["orderbook_delta"]
        if phase["n"] == 1:
            await conn.send(delta(MARKET, sid, fake.next_seq(sid)))
            fake.seq[sid] += 2  # two deltas lost
            await conn.send(delta(MARKET, sid, fake.next_seq(sid)))
            await conn.expect_json(cmd="update_subscription", params__action="get_snapshot")
            await conn.send(kalshi_frame("error", None, None, {"code": 17, "msg": "Internal error"}, id_=None) )

    fake.on_subscribed = after_sub
    async with WsServer(fake, path="/trade-api/ws/v2") as srv:
        cfg = rcfg(tmp_path, [vcfg("kalshi", srv.url)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds(key_file), stop=stop))
        await stop_when(stop, lambda: phase["n"] >= 2)
        await task
    cmds = fake.commands
    snap = [c for c in cmds if c["cmd"] == "update_subscription" and c["params"]["action"] == "get_snapshot"]
    assert snap and snap[0]["params"]["market_tickers"] == [MARKET] and snap[0]["params"]["sids"] == [1]
    # code 17: unsubscribe the old sids and subscribe again
    names = [c["cmd"] for c in cmds]
    assert names[:1] == ["subscribe"] and "unsubscribe" in names and names.count("subscribe") == 2
    notes = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='note'")]
    assert any(n.get("action") == "get_snapshot" and n["expected"] == 3 and n["got"] == 5 for n in notes)
    assert any(n.get("action") == "resubscribe" and n["code"] == 17 for n in notes)
    assert inbound_text(cfg.output) == srv.conns[0].sent


async def test_auth_rejected_stops_venue_others_continue(tmp_path, rsa_key, key_file):
    other_key = kalshi_auth.load_private_key(key_file)  # noqa: F841 - signs with the test key
    wrong_pub = __import__("cryptography.hazmat.primitives.asymmetric.rsa", fromlist=["rsa"]).generate_private_key(
        public_exponent=65537, key_size=1024).public_key()

    async def cb_script(conn):
        await conn.expect_json(type="subscribe", channel="level2")
        for i in range(5):
            await conn.send(json.dumps({"channel": "l2_data", "sequence_num": i, "events": []}))
        await hold(conn)

    async with WsServer(lambda c: hold(c), auth=kalshi_auth_check(wrong_pub), path="/trade-api/ws/v2") as ks, \
            WsServer(cb_script) as cb:
        cfg = rcfg(tmp_path, [vcfg("kalshi", ks.url), vcfg("coinbase", cb.url)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds(key_file), stop=stop, rng=random.Random(1)))
        await stop_when(stop, lambda: len(ks.rejected) >= 2 and cb.conns and len(cb.conns[0].sent) == 5)
        await asyncio.sleep(0.05)
        result = await task
    assert ks.rejected == [401, 401]  # auth_failures_max = 2, then the venue stops
    assert "KALSHI_API_KEY_ID" in result.stats["kalshi"].fatal and result.stats["kalshi"].state == "failed"
    assert result.stats["coinbase"].fatal is None
    errs = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='error'")]
    hs = [e for e in errs if e.get("phase") == "handshake"]
    assert len(hs) == 2 and all(e["status"] == 401 and "authentication_error" in e["body"] for e in hs)
    assert any(e.get("phase") == "gave_up" for e in errs)
    rows = db_rows(cfg.output, "SELECT response_status FROM connections WHERE venue='kalshi'")
    assert rows == [(401,), (401,)]
    assert inbound_text(cfg.output, "coinbase") == cb.conns[0].sent


async def test_reconnect_after_1011_and_1006_with_gap(tmp_path):
    async def script(conn):
        await conn.expect_json(type="subscribe", channel="level2")
        for i in range(3):
            await conn.send(json.dumps({"channel": "l2_data", "conn": conn.index, "i": i}))
        if conn.index == 0:
            await conn.ws.close(1011, "internal error")
        elif conn.index == 1:
            await asyncio.sleep(0.02)
            conn.ws.transport.abort()  # no close frame: the client sees 1006
        else:
            await hold(conn)

    async with WsServer(script) as srv:
        cfg = rcfg(tmp_path, [vcfg("coinbase", srv.url)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop, rng=random.Random(7)))
        await stop_when(stop, lambda: len(srv.conns) >= 3 and len(srv.conns[2].sent) == 3)
        await asyncio.sleep(0.05)
        result = await task
    s = result.stats["coinbase"]
    assert s.connects == 3 and s.reconnects == 2
    conns = db_rows(cfg.output, "SELECT id, close_code FROM connections ORDER BY id")
    assert [c[1] for c in conns[:2]] == [1011, 1006]
    for (cid, _), sconn in zip(conns, srv.conns, strict=True):
        assert inbound_text(cfg.output, conn=cid) == sconn.sent
    gaps = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='gap' ORDER BY id")]
    assert len(gaps) == 2 and all(g["to_ns"] >= g["from_ns"] for g in gaps)
    recon = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='reconnect' ORDER BY id")]
    assert [r["attempt"] for r in recon] == [1, 2]
    assert 0 <= recon[0]["delay_s"] <= 0.02 and 0 <= recon[1]["delay_s"] <= 0.04  # full jitter, base 0.02
    # each new connection subscribed again
    assert all(any('"subscribe"' in m for m in c.received) for c in srv.conns)


async def test_stale_connection_reconnects(tmp_path):
    async def script(conn):
        await conn.send(json.dumps({"event": "bts:subscription_succeeded", "channel": "x", "data": {}}))
        if conn.index == 0:
            conn.ws.transport.pause_reading()  # a dead peer: no data, no pongs
            while len(srv.conns) < 2:
                await asyncio.sleep(0.01)
            conn.ws.transport.abort()
        else:
            await hold(conn)

    async with WsServer(script) as srv:
        cfg = rcfg(tmp_path, [vcfg("bitstamp", srv.url, channels=["live_trades"], instruments=["btcusd"],
                                   stale_timeout=0.3, ping_interval=0.1, ping_timeout=10)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop))
        await stop_when(stop, lambda: len(srv.conns) >= 2 and srv.conns[1].sent)
        await task
    errs = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='error'")]
    assert any(e.get("phase") == "stale" for e in errs)
    assert db_rows(cfg.output, "SELECT count(*) FROM events WHERE kind='gap'") == [(1,)]
    # our keepalive pings were recorded even though no pong came back
    assert db_rows(cfg.output, "SELECT count(*) FROM frames WHERE dir='out' AND opcode='ping' AND conn_id=1")[0][0] >= 1


async def test_bitstamp_request_reconnect(tmp_path):
    async def script(conn):
        await conn.expect_json(event="bts:subscribe")
        await conn.send(json.dumps({"event": "trade", "channel": "live_trades_btcusd", "data": {"id": conn.index}}))
        if conn.index == 0:
            await conn.send(json.dumps({"event": "bts:request_reconnect", "channel": "", "data": ""}))
        await hold(conn)

    async with WsServer(script) as srv:
        cfg = rcfg(tmp_path, [vcfg("bitstamp", srv.url, channels=["live_trades"], instruments=["btcusd"])])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop))
        await stop_when(stop, lambda: len(srv.conns) >= 2 and srv.conns[1].sent)
        await asyncio.sleep(0.05)
        await task
    assert db_rows(cfg.output, "SELECT close_code FROM connections ORDER BY id")[0] == (1000,)
    ev = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='disconnect'")]
    assert ev[0]["cause"] == "reconnect_requested"
    assert db_rows(cfg.output, "SELECT count(*) FROM events WHERE kind='gap'") == [(1,)]
    assert inbound_text(cfg.output) == srv.conns[0].sent + srv.conns[1].sent


async def test_cryptocom_heartbeat_and_kraken_app_ping(tmp_path):
    async def cro(conn):
        await conn.expect_json(method="subscribe")
        await conn.send(json.dumps({"id": 1690000000123, "method": "public/heartbeat", "code": 0}))
        await conn.expect_json(method="public/respond-heartbeat", id=1690000000123)
        await hold(conn)

    async def kraken(conn):
        await conn.expect_json(method="subscribe", params__channel="book")
        await conn.expect_json(method="ping")
        await conn.send(json.dumps({"method": "pong", "req_id": 1, "time_in": "x", "time_out": "y"}))
        await hold(conn)

    async with WsServer(cro) as c, WsServer(kraken) as k:
        cfg = rcfg(tmp_path, [vcfg("cryptocom", c.url, channels=["book"], instruments=["BTC_USD"], depth=50),
                              vcfg("kraken", k.url, channels=["book"], instruments=["BTC/USD"], depth=10,
                                   app_ping_interval=0.05)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop))
        await stop_when(stop, lambda: any("respond-heartbeat" in m for m in (c.conns[0].received if c.conns else []))
                        and k.conns and k.conns[0].sent)
        await task
    sub = json.loads(c.conns[0].received[0])
    assert sub["params"]["channels"] == ["book.BTC_USD.50"]
    out = [r[0] for r in db_rows(cfg.output, "SELECT payload FROM frames WHERE dir='out' AND opcode='text' ORDER BY id")]
    assert any('"public/respond-heartbeat"' in o and "1690000000123" in o for o in out)
    assert any('"method":"ping"' in o for o in out)


@pytest.mark.parametrize("status", [429, 503])
async def test_handshake_errors_are_recorded_and_retried(tmp_path, status):
    def auth(headers):
        return (status, "slow down") if len(srv.rejected) < 2 else None

    async def script(conn):
        await conn.send("{}")
        await hold(conn)

    srv = WsServer(script, auth=auth)
    async with srv:
        cfg = rcfg(tmp_path, [vcfg("gemini", srv.url, channels=["l2"], instruments=["BTCUSD"])])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop))
        await stop_when(stop, lambda: srv.conns and srv.conns[0].sent)
        result = await task
    assert result.stats["gemini"].connects == 1 and result.stats["gemini"].fatal is None
    errs = [json.loads(r[0]) for r in db_rows(cfg.output, "SELECT detail FROM events WHERE kind='error'")]
    assert [e["status"] for e in errs] == [status, status] and errs[0]["body"] == "slow down"


async def test_large_compressed_snapshot_and_status_line(tmp_path, capsys):
    big = json.dumps({"channel": "l2_data", "events": [{"type": "snapshot", "updates": [
        {"side": "bid", "price_level": f"{60000 + i * 0.01:.2f}", "new_quantity": "0.12345678"} for i in range(80_000)]}]})
    assert len(big) > 5 * 2**20

    async def script(conn):
        await conn.expect_json(type="subscribe", channel="level2")
        await conn.send(big)
        await conn.send('{"channel":"heartbeats"}')
        await hold(conn)

    async with WsServer(script) as srv:
        cfg = rcfg(tmp_path, [vcfg("coinbase", srv.url)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop, status=True))
        await stop_when(stop, lambda: srv.conns and len(srv.conns[0].sent) == 2)
        await asyncio.sleep(0.05)
        await task
    assert "permessage-deflate" in srv.handshakes[0].get("Sec-WebSocket-Extensions", "")
    assert inbound_text(cfg.output) == [big, '{"channel":"heartbeats"}']
    assert "coinbase" in capsys.readouterr().err  # the status table rendered
