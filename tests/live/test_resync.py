"""With decode on, an exchange book that lost an update is repaired the only way it can
be: a reconnect, which brings a fresh snapshot. Real loopback server, real recorder."""

from __future__ import annotations

import asyncio
import json

import pytest

from harness.live.manager import run_record
from tests.live.conftest import db_rows
from tests.live.servers import WsServer, hold
from tests.live.test_connection import rcfg, vcfg


def l2(seq: int, kind: str, price: str) -> str:
    return json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-11-25T00:00:00Z", "sequence_num": seq,
                       "events": [{"type": kind, "product_id": "BTC-USD", "updates": [
                           {"side": "bid", "event_time": "2026-11-25T00:00:00Z", "price_level": price,
                            "new_quantity": "0.5"}]}]})


async def _run(tmp_path, resync: bool):
    async def script(conn):
        await conn.send(l2(0, "snapshot", "60000.00"))
        await conn.send(l2(1, "update", "60001.00"))
        if conn.index == 0:
            await conn.send(l2(3, "update", "60002.00"))  # sequence_num 2 never came
        await hold(conn)

    async with WsServer(script) as srv:
        cfg = rcfg(tmp_path, [vcfg("coinbase", srv.url, resync=resync)], decode=True)
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(srv.conns) >= 2 or (not resync and srv.conns and len(srv.conns[0].sent) == 3):
                break
        await asyncio.sleep(0.2)
        stop.set()
        result = await task
    return cfg.output, result, srv


@pytest.mark.parametrize("resync", [True, False])
async def test_a_coinbase_sequence_gap_reconnects_for_a_fresh_snapshot(tmp_path, resync):
    out, result, srv = await _run(tmp_path, resync)
    notes = [json.loads(d) for (d,) in db_rows(out, "SELECT detail FROM events WHERE kind='note'")]
    gaps = [json.loads(d) for (d,) in db_rows(out, "SELECT detail FROM events WHERE kind='finding'")]
    assert any(g["kind"] == "gap" for g in gaps)
    if resync:
        assert len(srv.conns) == 2 and result.stats["coinbase"].resyncs == 1
        causes = [n["cause"] for n in notes if n.get("action") == "reconnect"]
        assert len(causes) == 1 and causes[0].startswith("book gap on "), causes
        # the second connection's snapshot was recorded: the book is whole again
        assert db_rows(out, "SELECT count(*) FROM frames WHERE conn_id=2 AND type='l2_data/snapshot'") == [(1,)]
    else:
        assert len(srv.conns) == 1 and result.stats["coinbase"].resyncs == 0
        assert not any(n.get("action") == "reconnect" for n in notes)
