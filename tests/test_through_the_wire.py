"""Record through the wire: `harness serve A` + the live recorder pointed at it yields a
recording B whose inbound data frames equal A's (same bytes but for the sid/seq/sequence
numbers the server renumbers for the new connection, same order per venue, numbers
consistent) at speed max, 10 and 1. The server and the recorder test each other."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.config import BackoffConfig, KalshiConfig, RecordConfig, VenueConfig
from harness.live.manager import run_record
from harness.replay.server import ImpersonationServer
from harness.venues import kalshi_auth
from tests.helpers import make_recording

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "recordings" / "sample.db"
TICKER = "KXBTC15M-26AUG091745-45"
DATA_TYPES = {"kalshi": ("orderbook_snapshot", "orderbook_delta"), "coinbase": ("l2_data/snapshot", "l2_data/update"),
              "kraken": ("book/snapshot", "book/update")}
_NUM = re.compile(r'"(sid|seq|sequence_num)":\s*\d+')


def norm(payload: str) -> str:
    return _NUM.sub(lambda m: f'"{m.group(1)}":N', payload)


def data_frames(path, venue, first_conn_only=False) -> list[str]:
    """Inbound data frames of a venue in receive order. ``first_conn_only``: the recorder's
    first connection (without --loop the server ends the stream with close 1000 and the
    recorder, doing its job, reconnects and is served the recording again)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        types = DATA_TYPES[venue]
        conn = " AND c.id = (SELECT min(id) FROM connections WHERE venue = c.venue)" if first_conn_only else ""
        rows = db.execute(
            "SELECT f.payload FROM frames f JOIN connections c ON c.id = f.conn_id WHERE c.venue = ? AND f.dir = 'in'"
            f" AND f.type IN ({','.join('?' * len(types))}){conn} ORDER BY f.session_id, f.t_mono_ns, f.id",
            (venue, *types)).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p = tmp_path_factory.mktemp("keys") / "k.pem"
    p.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    p.chmod(0o600)
    return p


def small_recording(path):
    """About 1.5 s of Kalshi and Coinbase traffic (for the speed-1 run)."""
    base = 1_786_309_548_000_000_000
    frames = [("kalshi", "in", base, 0, json.dumps({"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}})),
              ("kalshi", "in", base + 1_000_000, 1_000_000, json.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": {
                  "market_ticker": TICKER, "market_id": "m", "yes_dollars_fp": [["0.4500", "10.00"]], "no_dollars_fp": [["0.5000", "5.00"]]}})),
              ("coinbase", "in", base + 2_000_000, 2_000_000, json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-08-09T21:40:00.1Z",
                  "sequence_num": 0, "events": [{"type": "snapshot", "product_id": "BTC-USD", "updates": [
                      {"side": "bid", "event_time": "2026-08-09T21:40:00.1Z", "price_level": "100.00", "new_quantity": "1.0"},
                      {"side": "offer", "event_time": "2026-08-09T21:40:00.1Z", "price_level": "100.01", "new_quantity": "1.0"}]}]}))]
    for i in range(30):
        t = (i + 1) * 50_000_000
        frames.append(("kalshi", "in", base + t, t, json.dumps({"type": "orderbook_delta", "sid": 1, "seq": i + 2, "msg": {
            "market_ticker": TICKER, "market_id": "m", "price_dollars": "0.4500", "delta_fp": "1.00", "side": "yes", "ts_ms": 1}})))
        frames.append(("coinbase", "in", base + t + 1000, t + 1000, json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-08-09T21:40:01Z",
            "sequence_num": i + 1, "events": [{"type": "update", "product_id": "BTC-USD", "updates": [
                {"side": "bid", "event_time": "2026-08-09T21:40:01Z", "price_level": "100.00", "new_quantity": f"{i + 2}.0"}]}]})))
    make_recording(path, frames, venue_urls={"kalshi": "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
                                             "coinbase": "wss://advanced-trade-ws.coinbase.com"})


async def record_from(server_rec, out, speed, key_file, venues_, markets=(TICKER,)):
    async with ImpersonationServer(str(server_rec), speed=speed) as srv:
        vcs = {}
        for v in venues_:
            kw = {"stale_timeout": 30.0, "ping_interval": None, "ping_timeout": None, "open_timeout": 5.0}
            if v == "kalshi":
                kw.update(channels=["orderbook_delta"])
            elif v == "coinbase":
                kw.update(channels=["level2"], instruments=["BTC-USD"])
            elif v == "kraken":
                kw.update(channels=["book"], instruments=["BTC/USD"], depth=10)
            vcs[v] = VenueConfig(name=v, url=srv.urls[v], **kw)
        cfg = RecordConfig(output=str(out), venues=vcs, kalshi=KalshiConfig(markets=list(markets)),
                           backoff=BackoffConfig(base=0.05, cap=0.2, reset_after=60, auth_failures_max=2), status=False)
        creds = kalshi_auth.credentials_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(key_file)})
        want = {v: len(data_frames(server_rec, v)) for v in venues_}
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds, stop=stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            try:
                got = {v: len(data_frames(out, v, first_conn_only=True)) for v in venues_}
            except sqlite3.Error:
                continue
            if all(got[v] >= want[v] for v in venues_):
                break
        stop.set()
        await task


def check_equal(a, b, venues_):
    for v in venues_:
        fa, fb = data_frames(a, v), data_frames(b, v, first_conn_only=True)
        assert len(fb) == len(fa), f"{v}: {len(fb)} frames recorded, {len(fa)} served"
        assert [norm(x) for x in fb] == [norm(x) for x in fa], v
        # the renumbered counters are consistent for the new connection
        if v == "kalshi":
            seqs = [json.loads(x)["seq"] for x in fb]
            assert seqs == list(range(1, len(seqs) + 1))
        if v == "coinbase":
            nums = [json.loads(x)["sequence_num"] for x in fb]
            assert nums == sorted(nums) and len(set(nums)) == len(nums)


@pytest.fixture(scope="module")
def sim_source(tmp_path_factory):
    """30 s of simulated traffic (recordings/sample.db is 20 minutes now: too long at 10x)
    and its Kalshi markets, all pinned by the recorder."""
    from harness.sim.session import parse_start
    from harness.sim.source import write_source

    p = tmp_path_factory.mktemp("wire") / "sim.db"
    s = write_source(str(p), start_ns=parse_start(None), minutes=0.5, seed=1)
    return p, [m["ticker"] for m in s.markets if m["status"] == "active"]


@pytest.mark.parametrize("speed", ["max", 10])
async def test_sample_through_the_wire(tmp_path, key_file, speed, sim_source):
    venues_ = ["kalshi", "coinbase", "kraken"]
    out = tmp_path / "b.db"
    src, markets = sim_source
    await record_from(src, out, speed, key_file, venues_, markets=markets)
    check_equal(src, out, venues_)


async def test_small_recording_at_speed_1(tmp_path, key_file):
    a = tmp_path / "a.db"
    small_recording(a)
    out = tmp_path / "b.db"
    await record_from(a, out, 1, key_file, ["kalshi", "coinbase"])
    check_equal(a, out, ["kalshi", "coinbase"])
