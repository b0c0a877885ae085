"""Impersonation server acceptance tests: plain websockets clients against a tiny recording."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Opcode

from harness.errors import ConfigError
from harness.replay.server import ImpersonationServer
from harness.replay.venue_flows import rewrite_sid_seq

sys.path.insert(0, os.path.dirname(__file__))
from serve_util import (  # noqa: E402
    KALSHI_PATH,
    M1,
    M2,
    SPAN_NS,
    build_recording,
    collect,
    new_key,
    sign_headers,
    sub_cmd,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    p = tmp_path_factory.mktemp("serve") / "rec.db"
    frames = build_recording(p)
    return str(p), frames


@pytest.fixture(scope="module")
def key():
    return new_key()


def _strip(text: str) -> dict:
    d = json.loads(text)
    d.pop("sid", None)
    d.pop("seq", None)
    return d


def _kalshi_data(recorded):
    return [t for _, t in recorded if '"subscribed"' not in t]


def _check_kalshi_stream(got, recorded, channels=("orderbook_delta", "ticker")):
    texts = [m for _, m in got]
    acks = [json.loads(t) for t in texts if '"subscribed"' in t]
    sid_of = {a["msg"]["channel"]: a["msg"]["sid"] for a in acks}
    assert set(sid_of) == set(channels)
    data = [t for t in texts if '"subscribed"' not in t]
    want = [t for t in _kalshi_data(recorded)
            if ("orderbook" in t and "orderbook_delta" in channels) or ('"ticker"' in t and "ticker" in channels)]
    assert len(data) == len(want)
    last = {}
    for got_t, rec_t in zip(data, want, strict=True):
        d = json.loads(got_t)
        ch = "ticker" if d["type"] == "ticker" else "orderbook_delta"
        assert d["sid"] == sid_of[ch]
        if "seq" in d:
            assert d["seq"] == last.get(d["sid"], 0) + 1
            last[d["sid"]] = d["seq"]
        assert _strip(got_t) == _strip(rec_t)
        # byte-exact apart from the sid/seq digits
        back = re.sub(r'("sid"\s*:\s*)\d+', r"\g<1>X", got_t, count=1)
        back = re.sub(r'("seq"\s*:\s*)\d+', r"\g<1>X", back, count=1)
        orig = re.sub(r'("sid"\s*:\s*)\d+', r"\g<1>X", rec_t, count=1)
        orig = re.sub(r'("seq"\s*:\s*)\d+', r"\g<1>X", orig, count=1)
        assert back == orig
    return data


# ----------------------------------------------------------------------------- units


def test_rewrite_compact_and_pretty():
    compact = '{"type":"orderbook_delta","sid":17,"seq":345,"msg":{"sid":99,"seq":98,"market_ticker":"A"}}'
    c = iter([1])
    out, had = rewrite_sid_seq(compact, 3, lambda: next(c))
    assert had and out == '{"type":"orderbook_delta","sid":3,"seq":1,"msg":{"sid":99,"seq":98,"market_ticker":"A"}}'
    pretty = json.dumps({"type": "orderbook_delta", "msg": {"sid": 5, "x": "\"sid\": 4"}, "seq": 12, "sid": 17}, indent=2)
    out, had = rewrite_sid_seq(pretty, 2, lambda: 1)
    assert json.loads(out) == {"type": "orderbook_delta", "msg": {"sid": 5, "x": "\"sid\": 4"}, "seq": 1, "sid": 2}
    assert out.replace('"seq": 1', '"seq": 12').replace('"sid": 2\n', '"sid": 17\n') == pretty
    ticker = '{"type":"ticker","sid":4,"msg":{"market_ticker":"A"}}'
    out, had = rewrite_sid_seq(ticker, 1, lambda: 1 / 0)
    assert not had and out == '{"type":"ticker","sid":1,"msg":{"market_ticker":"A"}}'


# ----------------------------------------------------------------------------- kalshi


async def test_kalshi_speed_max_sids_and_seqs(rec, key):
    path, frames = rec
    async with ImpersonationServer(path, speed="max", auth_key=key.public_key()) as srv:
        assert srv.urls["kalshi"].endswith(KALSHI_PATH)
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta", "ticker"], [M1, M2])], sign_headers(key))
        assert code == 1000
        _check_kalshi_stream(got, frames["kalshi"])
        # one market, one channel
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta"], [M1])], sign_headers(key))
        data = [json.loads(m) for _, m in got if '"subscribed"' not in m]
        assert data and all(d["msg"]["market_ticker"] == M1 for d in data)
        assert [d["seq"] for d in data] == list(range(1, len(data) + 1))


@pytest.mark.parametrize("speed", [1, 10])
async def test_kalshi_paced(rec, key, speed):
    path, frames = rec
    async with ImpersonationServer(path, speed=speed, auth_key=key.public_key()) as srv:
        t_sub = time.perf_counter()
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta", "ticker"], [M1, M2])], sign_headers(key))
        assert code == 1000
        data = _check_kalshi_stream(got, frames["kalshi"])
        times = [t for t, m in got if m in data]
        assert times[0] - t_sub < 0.2  # first frame at once
        span = times[-1] - times[0]
        expect = (SPAN_NS + 1000 - 1_000_000) / 1e9 / speed
        assert expect * 0.9 < span < expect + 0.25
        lat = srv.stats["lateness"]
        assert lat["n"] == len(data) and lat["p99_ms"] < 20


async def test_kalshi_auth(rec, key):
    path, _ = rec
    other = new_key()
    async with ImpersonationServer(path, speed="max", auth_key=key.public_key(), max_skew_s=5) as srv:
        url = srv.urls["kalshi"]
        for headers in (sign_headers(other), sign_headers(key, ts_ms=int(time.time() * 1000) - 60_000),
                        sign_headers(key, path="/trade-api/v2/portfolio/balance"), {}):
            with pytest.raises(InvalidStatus) as ei:
                async with connect(url, additional_headers=headers):
                    pass
            r = ei.value.response
            assert r.status_code == 401
            body = json.loads(r.body)
            assert body["error"]["code"] == "authentication_error"
        assert srv.stats["auth_refused"] == 4
    # without --auth-key: presence and format only
    async with ImpersonationServer(path, speed="max") as srv:
        h = sign_headers(other)
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["ticker"])], h, limit=2)
        assert json.loads(got[0][1])["type"] == "subscribed"
        bad = dict(h, **{"KALSHI-ACCESS-TIMESTAMP": "1786000000"})  # seconds, not ms
        with pytest.raises(InvalidStatus) as ei:
            async with connect(srv.urls["kalshi"], additional_headers=bad):
                pass
        assert ei.value.response.status_code == 401


async def test_kalshi_command_errors(rec, key):
    path, _ = rec
    async with ImpersonationServer(path, speed=1, loop=True) as srv:
        async with connect(srv.urls["kalshi"], additional_headers=sign_headers(key)) as ws:
            async def ask(text):
                await ws.send(text)
                return json.loads(await asyncio.wait_for(ws.recv(), 5))

            r = await ask(sub_cmd(3, ["no_such_channel"]))
            assert r == {"id": 3, "type": "error", "msg": {"code": 8, "msg": r["msg"]["msg"]}}
            r = await ask(sub_cmd(4, ["orderbook_delta"], ["NOPE-26JAN01"]))
            assert r["type"] == "error" and r["msg"]["code"] == 16 and r["msg"]["market_ticker"] == "NOPE-26JAN01"
            assert (await ask("not json{"))["msg"]["code"] == 1
            assert (await ask('{"id":5,"cmd":"frobnicate","params":{}}'))["msg"]["code"] == 5
            assert (await ask('{"id":"x","cmd":{"a":1}}'))["type"] == "error"
            assert (await ask("[1,2,3]"))["type"] == "error"
            await ws.send(b"\x00\x01binary")
            assert json.loads(await ws.recv())["type"] == "error"
            r = await ask('{"id":6,"cmd":"unsubscribe","params":{"sids":[42]}}')
            assert r["msg"]["code"] == 7
            r = await ask('{"id":7,"cmd":"list_subscriptions"}')
            assert r == {"id": 7, "type": "ok", "msg": []}
        # 1000 subscribe commands on one connection: all acknowledged, one sid per channel
        async with connect(srv.urls["kalshi"], additional_headers=sign_headers(key), max_size=None) as ws:
            for i in range(1000):
                await ws.send(sub_cmd(i + 1, ["ticker"], [M1]))
            acks = 0
            sids = set()
            async with asyncio.timeout(15):
                while acks < 1000:
                    d = json.loads(await ws.recv())
                    if d["type"] == "subscribed":
                        acks += 1
                        sids.add(d["msg"]["sid"])
            assert sids == {1}
            await ws.send(json.dumps({"id": 2000, "cmd": "update_subscription", "params": {"sids": [1], "action": "add_markets", "market_tickers": [M2]}}))
            async with asyncio.timeout(5):
                while True:
                    d = json.loads(await ws.recv())
                    if d["type"] == "ok":
                        break
            assert d["id"] == 2000 and d["sid"] == 1 and sorted(d["msg"]["market_tickers"]) == sorted([M1, M2])
        assert srv.stats["clients_active"] <= 1


async def test_several_clients_at_once(rec, key):
    path, frames = rec
    async with ImpersonationServer(path, speed=10) as srv:
        url = srv.urls["kalshi"]
        results = await asyncio.gather(*[
            collect(url, [sub_cmd(1, ["orderbook_delta", "ticker"], [M1, M2])], sign_headers(key, key_id=f"k{i}"))
            for i in range(6)
        ])
        for got, code in results:
            assert code == 1000
            _check_kalshi_stream(got, frames["kalshi"])
        assert srv.stats["venues"]["kalshi"]["connections"] == 6


async def test_kalshi_heartbeat_ping(rec, key):
    path, _ = rec
    async with ImpersonationServer(path, speed=1, ping_interval_s=0.2, loop=True) as srv:
        async with connect(srv.urls["kalshi"], additional_headers=sign_headers(key)) as ws:
            pings = []
            orig = ws.process_event

            def spy(event):
                if getattr(event, "opcode", None) == Opcode.PING:
                    pings.append(bytes(event.data))
                return orig(event)

            ws.process_event = spy
            await ws.send(sub_cmd(1, ["ticker"]))
            async with asyncio.timeout(3):
                while len(pings) < 2:
                    await ws.recv()
            assert pings[0] == b"heartbeat"


# ----------------------------------------------------------------------------- exchanges / URLs


async def test_url_map_and_exchanges(rec):
    path, frames = rec
    async with ImpersonationServer(path, speed="max") as srv:
        port = srv.port
        assert srv.urls == {
            "kalshi": f"ws://127.0.0.1:{port}/trade-api/ws/v2",
            "coinbase": f"ws://127.0.0.1:{port}/coinbase/",
            "bitstamp": f"ws://127.0.0.1:{port}/bitstamp/",
        }
        with pytest.raises(InvalidStatus) as ei:
            async with connect(f"ws://127.0.0.1:{port}/nowhere"):
                pass
        assert ei.value.response.status_code == 404
        got, code = await collect(srv.urls["coinbase"], [json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"})])
        assert code == 1000
        msgs = [json.loads(m) for _, m in got]
        assert msgs[0]["channel"] == "subscriptions" and msgs[0]["events"][0]["subscriptions"] == {"level2": ["BTC-USD"]}
        assert all(m["channel"] == "l2_data" for m in msgs[1:]) and len(msgs) == 31
        assert [m["sequence_num"] for m in msgs] == list(range(31))  # renumbered per connection
        got, code = await collect(srv.urls["bitstamp"], [json.dumps({"event": "bts:subscribe", "data": {"channel": "diff_order_book_btcusd"}})])
        texts = [m for _, m in got]
        assert json.loads(texts[0])["event"] == "bts:subscription_succeeded"
        assert texts[1:] == [t for _, t in frames["bitstamp"][1:]]
        got, _ = await collect(srv.urls["bitstamp"], ['{"event":"bts:subscribe","data":{"channel":7}}', "garbage"], limit=2)
        assert all(json.loads(m)["event"] == "bts:error" for _, m in got)
        got, _ = await collect(srv.urls["coinbase"], ["[]"], limit=1)
        assert json.loads(got[0][1])["type"] == "error"


async def test_remote_host_needs_flag(rec):
    path, _ = rec
    with pytest.raises(ConfigError):
        await ImpersonationServer(path, host="0.0.0.0").start()
    srv = ImpersonationServer(path, host="0.0.0.0", allow_remote=True)
    await srv.start()
    try:
        assert srv.warnings
    finally:
        await srv.close()


# ----------------------------------------------------------------------------- disconnects / safety


async def test_recorded_disconnect_and_resume(tmp_path, key):
    p = tmp_path / "disc.db"
    build_recording(p, kalshi_disconnect=True)
    async with ImpersonationServer(p, speed=10) as srv:
        h = sign_headers(key, key_id="same")
        t = time.perf_counter()
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta"], [M1, M2])], h)
        assert code == 1011
        assert 0.08 < time.perf_counter() - t < 0.6  # recorded at +1.0 s, speed 10
        first = [json.loads(m) for _, m in got if '"subscribed"' not in m]
        assert first[-1]["msg"]["delta_fp"] == "20.00"  # the last delta before the recorded close
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["orderbook_delta"], [M1, M2])], h)
        second = [json.loads(m) for _, m in got if '"subscribed"' not in m]
        assert second[0]["type"] == "orderbook_snapshot" and second[0]["seq"] == 1  # resumed on the 2nd recorded connection
        assert code == 1000


async def test_client_that_never_reads_is_disconnected(tmp_path, key):
    p = tmp_path / "big.db"
    build_recording(p, big_frames=50)
    async with ImpersonationServer(p, speed="max", loop=True, slow_client_s=0.5, write_limit=32 * 1024) as srv:
        ws = await connect(srv.urls["kalshi"], additional_headers=sign_headers(key), max_size=None, max_queue=1)
        try:
            await ws.send(sub_cmd(1, ["orderbook_delta"], [M1, M2]))
            async with asyncio.timeout(20):
                while srv.stats["slow_clients"] == 0:
                    await asyncio.sleep(0.05)
        finally:
            ws.transport.abort()  # the client never reads: don't wait for a close handshake
        c = srv.clients[0]
        assert c.close_reason.startswith("client not reading")
        # the server goes on serving others
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, ["ticker"])], sign_headers(key), limit=5)
        assert len(got) == 5


def test_cli_serve_writes_urls(rec, tmp_path):
    path, _ = rec
    urls = tmp_path / "urls.json"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", path, "--speed", "max", "--urls-file", str(urls)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 15
        while not urls.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert urls.exists(), proc.stderr.read() if proc.poll() is not None else "no urls file"
        m = json.loads(urls.read_text())
        assert set(m) == {"kalshi", "coinbase", "bitstamp"}

        async def one():
            return await collect(m["coinbase"], [json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"})])

        got, code = asyncio.run(one())
        assert code == 1000 and len(got) == 31
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "kalshi" in out and "/trade-api/ws/v2" in out


@pytest.mark.realdata
def test_rewrite_on_real_kalshi_frames(realdata):
    from harness.replay.venue_flows import KalshiFlow, KalshiSub, VenueTrack

    flow = KalshiFlow(VenueTrack("kalshi", KALSHI_PATH))
    n = 0
    for line in (realdata / "kalshi_frames.jsonl").read_text().splitlines():
        text = json.loads(line)["frame"]
        try:
            orig = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(orig, dict) or "sid" not in orig:
            continue
        sub = KalshiSub(77, "x", None)
        flow._head = (None, None)
        slow = flow.render(sub, text)
        flow.by_channel = {"x": sub}
        sub2 = KalshiSub(77, "x", None)
        flow.match(1, text, None)  # primes the fast path
        fast = flow.render(sub2, text)
        want = dict(orig, sid=77, **({"seq": 1} if "seq" in orig else {}))
        assert json.loads(slow) == want and fast == slow
        assert len(slow) - len(text) == (len("77") - len(str(orig["sid"]))) + (len("1") - len(str(orig.get("seq", ""))) if "seq" in orig else 0)
        n += 1
    assert n > 20
