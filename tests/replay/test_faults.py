"""Fault grammar, seeded injector, and every fault kind observed by a plain client."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.errors import ConfigError
from harness.replay.faults import FaultPlan
from harness.replay.server import ImpersonationServer

sys.path.insert(0, os.path.dirname(__file__))
from serve_util import M1, M2, build_recording, collect, new_key, sign_headers, sub_cmd  # noqa: E402

pytestmark = pytest.mark.timeout(60)

EXAMPLE = ("drop=0.01,dup=0.005,reorder=5,delay=20ms~10ms,stall=30s@60s,disconnect=every:30s:1011,"
           "corrupt=0.001,seqgap=@100,kalshi_error=25@200,bts_reconnect=@50,refuse=401|429|503@2")


def test_parse_example_spec():
    plan = FaultPlan.parse(EXAMPLE + ",seed=7")
    kinds = [t.kind for t in plan.terms]
    assert kinds == ["drop", "dup", "reorder", "delay", "stall", "disconnect", "corrupt", "seqgap",
                     "kalshi_error", "bts_reconnect", "refuse"]
    assert plan.seed == 7
    t = {x.kind: x for x in plan.terms}
    assert t["drop"].when.prob == 0.01
    assert t["reorder"].k == 5 and t["reorder"].when.prob == 0.01
    assert t["delay"].mean_ns == 20_000_000 and t["delay"].jitter_ns == 10_000_000 and t["delay"].when.prob == 1
    assert t["stall"].mean_ns == 30 * 10**9 and t["stall"].when.at_ns == 60 * 10**9
    assert t["disconnect"].code == 1011 and t["disconnect"].when.every_ns == 30 * 10**9
    assert t["seqgap"].when.at_frame == 100
    assert t["kalshi_error"].code == 25 and t["kalshi_error"].when.at_frame == 200
    assert t["refuse"].codes == (401, 429, 503) and t["refuse"].attempt == 2
    assert plan.refuse_status(1) is None and plan.refuse_status(2) == 401
    p2 = FaultPlan.parse("refuse=401|429")
    assert [p2.refuse_status(i) for i in (1, 2, 3)] == [401, 429, None]
    assert FaultPlan.parse("disconnect=@10").terms[0].code == 1011
    assert FaultPlan.parse("disconnect=every:500").terms[0].when.every_frames == 500


@pytest.mark.parametrize("bad", ["drop", "drop=2", "nope=1", "delay=5", "stall=3s", "refuse=200",
                                 "disconnect=@5:99", "reorder=0", "kalshi_error=x@3", "seed=a", "delay=1ms~5ms"])
def test_parse_errors(bad):
    with pytest.raises(ConfigError):
        FaultPlan.parse(bad)


def test_injector_is_seeded():
    def run(seed, client):
        inj = FaultPlan.parse(f"drop=0.1,dup=0.05,seed={seed}").injector("kalshi", client)
        out = []
        for i in range(1, 500):
            a = inj.actions(i, i * 1000)
            if a is not None:
                out.append((i, a.drop, a.dup))
        return out

    assert run(1, 1) == run(1, 1)
    assert run(1, 1) != run(2, 1) and run(1, 1) != run(1, 2)
    assert 25 < sum(1 for _, d, _ in run(1, 1) if d) < 80


# ----------------------------------------------------------------------------- on the wire


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    p = tmp_path_factory.mktemp("faults") / "rec.db"
    build_recording(p)
    return str(p)


@pytest.fixture(scope="module")
def key():
    return new_key()


async def _kalshi(rec, key, spec, *, speed="max", channels=("orderbook_delta",)):
    async with ImpersonationServer(rec, speed=speed, faults=spec) as srv:
        got, code = await collect(srv.urls["kalshi"], [sub_cmd(1, channels, [M1, M2])], sign_headers(key))
        return [m for _, m in got], code, srv.fault_log, got


def _data(texts):
    return [t for t in texts if '"subscribed"' not in t]


async def test_drop_gives_seq_gap(rec, key):
    texts, code, flog, _ = await _kalshi(rec, key, "drop=@5,drop=@9")
    seqs = [json.loads(t)["seq"] for t in _data(texts)]
    missing = sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
    assert missing == [5, 9]
    assert [(f["fault"], f["seq"], f["index"]) for f in flog] == [("drop", 5, 5), ("drop", 9, 9)]
    assert all(isinstance(f["frame_id"], int) for f in flog)


async def test_probabilistic_drop_reproducible(rec, key):
    a = await _kalshi(rec, key, "drop=0.2,seed=3")
    b = await _kalshi(rec, key, "drop=0.2,seed=3")
    ids_a = [f["frame_id"] for f in a[2]]
    assert ids_a and ids_a == [f["frame_id"] for f in b[2]]
    seqs = {json.loads(t)["seq"] for t in _data(a[0])}
    assert {f["seq"] for f in a[2]} == set(range(1, max(seqs) + 1)) - seqs


async def test_dup_seqgap_reorder_corrupt(rec, key):
    texts, _, flog, _ = await _kalshi(rec, key, "dup=@3,seqgap=@6,reorder=2:@10,corrupt=@15")
    data = _data(texts)
    bad = []
    seqs = []
    for t in data:
        try:
            seqs.append(json.loads(t)["seq"])
        except json.JSONDecodeError:
            bad.append(t)
    assert len(bad) == 1 and len(bad[0]) < 200  # truncated JSON
    assert seqs[2] == seqs[3] == 3  # duplicate
    assert 6 not in seqs and 7 in seqs  # gap before the 6th frame
    i = seqs.index(11)  # frame 10 (seq 11 after the gap) held back 2 frames
    assert seqs[i - 2: i + 1] == [12, 13, 11]
    kinds = {f["fault"]: f for f in flog}
    assert set(kinds) == {"dup", "seqgap", "reorder", "corrupt"}
    assert kinds["corrupt"]["index"] == 15 and kinds["seqgap"]["seq"] == 7


async def test_disconnect_codes(rec, key):
    texts, code, flog, _ = await _kalshi(rec, key, "disconnect=@8:1001")
    assert code == 1001 and len(_data(texts)) == 7
    assert flog[0]["fault"] == "disconnect" and flog[0]["index"] == 8
    texts, code, flog, _ = await _kalshi(rec, key, "disconnect=@4:1006")
    assert code == 1006 and len(_data(texts)) == 3
    texts, code, flog, _ = await _kalshi(rec, key, "disconnect=every:400ms", speed=10)
    assert code == 1011 and flog[0]["fault"] == "disconnect"


async def test_kalshi_error_terminal(rec, key):
    texts, code, flog, _ = await _kalshi(rec, key, "kalshi_error=25@6", channels=("orderbook_delta", "ticker"))
    errs = [json.loads(t) for t in texts if '"error"' in t]
    assert len(errs) == 1 and errs[0]["msg"]["code"] == 25 and errs[0]["msg"]["sid"] == flog[0]["sid"]
    after = [json.loads(t) for t in texts[texts.index(next(t for t in texts if '"error"' in t)) + 1:]]
    assert after and all(d["sid"] != flog[0]["sid"] for d in after)  # that subscription ended
    texts, _, flog, _ = await _kalshi(rec, key, "kalshi_error=17@2")
    assert json.loads(texts[2])["msg"]["code"] == 17  # ack, 1 frame, then the error


async def test_stall_and_delay(rec, key):
    _, _, flog, got = await _kalshi(rec, key, "stall=300ms@5")
    gaps = [b[0] - a[0] for a, b in zip(got[1:], got[2:], strict=False)]
    assert max(gaps) > 0.28 and flog[0]["fault"] == "stall"
    t = time.perf_counter()
    texts, _, flog, _ = await _kalshi(rec, key, "delay=10ms~5ms:@3,delay=10ms")
    assert time.perf_counter() - t > 0.2  # 40 frames x 10 ms, head-of-line
    assert sum(1 for f in flog if f["fault"] == "delay") == len(_data(texts))


async def test_refuse_statuses(rec, key):
    async with ImpersonationServer(rec, speed="max", faults="refuse=401|429|503") as srv:
        seen = []
        for _ in range(3):
            with pytest.raises(InvalidStatus) as ei:
                async with connect(srv.urls["kalshi"], additional_headers=sign_headers(key)):
                    pass
            seen.append(ei.value.response.status_code)
        assert seen == [401, 429, 503]
        got, _ = await collect(srv.urls["kalshi"], [sub_cmd(1, ["ticker"])], sign_headers(key), limit=1)
        assert json.loads(got[0][1])["type"] == "subscribed"
        assert [f["status"] for f in srv.fault_log] == [401, 429, 503]
    async with ImpersonationServer(rec, speed="max", faults="refuse=503@2") as srv:
        await collect(srv.urls["coinbase"], ['{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'], limit=1)
        with pytest.raises(InvalidStatus) as ei:
            async with connect(srv.urls["coinbase"]):
                pass
        assert ei.value.response.status_code == 503


async def test_exchange_faults(rec):
    async with ImpersonationServer(rec, speed="max", faults="bts_reconnect=@3,drop=@5") as srv:
        got, _ = await collect(srv.urls["bitstamp"], ['{"event":"bts:subscribe","data":{"channel":"diff_order_book_btcusd"}}'])
        msgs = [json.loads(m) for _, m in got]
        assert msgs[3]["event"] == "bts:request_reconnect"  # ack, 2 frames, then the request
        assert sum(1 for m in msgs if m["event"] == "data") == 19
        assert {f["fault"] for f in srv.fault_log} == {"bts_reconnect", "drop"}
    async with ImpersonationServer(rec, speed="max", faults="drop=@4,seqgap=@10") as srv:
        got, _ = await collect(srv.urls["coinbase"], ['{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'])
        seqs = [json.loads(m)["sequence_num"] for _, m in got]
        assert sorted(set(range(seqs[-1] + 1)) - set(seqs)) == [4, 10]  # seqgap skips the number before frame 10
