"""The live observer hook: what the recorder writes is also handed, as it is written, to an
observer (live checks, replay --via-server); a failing observer never stops the recording."""

from __future__ import annotations

import asyncio
import json

from harness.live.manager import run_record
from tests.live.conftest import db_rows
from tests.live.servers import WsServer, hold
from tests.live.test_connection import rcfg, vcfg


class Collect:
    def __init__(self, explode_on: int | None = None):
        self.frames, self.events, self.conns = [], [], []
        self.explode_on = explode_on

    def on_connection(self, conn_id, venue, url):
        self.conns.append((conn_id, venue))

    def on_frame(self, f):
        self.frames.append(f)
        if self.explode_on is not None and len(self.frames) == self.explode_on:
            raise RuntimeError("observer bug")

    def on_event(self, kind, t_wall_ns, conn_id, detail):
        self.events.append(kind)


async def _record(tmp_path, observer):
    async def script(conn):
        for i in range(5):
            await conn.send(json.dumps({"channel": "l2_data", "i": i}))
        await hold(conn)

    async with WsServer(script) as srv:
        cfg = rcfg(tmp_path, [vcfg("coinbase", srv.url)])
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, stop=stop, observer=observer))
        for _ in range(300):
            if srv.conns and len(srv.conns[0].sent) == 5 and len(observer.frames) >= 6:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        stop.set()
        await task
    return cfg.output


async def test_observer_sees_every_written_frame_with_its_id_and_venue(tmp_path):
    obs = Collect()
    out = await _record(tmp_path, obs)
    stored = db_rows(out, "SELECT id, dir, payload FROM frames WHERE opcode='text' ORDER BY id")
    seen = [(f.id, f.dir, f.payload) for f in obs.frames if f.opcode == "text"]
    assert seen == stored and len(stored) >= 6  # 1 subscribe out + 5 in
    assert all(f.venue == "coinbase" for f in obs.frames)
    assert obs.conns == [(1, "coinbase")]
    assert "connect" in obs.events


async def test_a_failing_observer_does_not_stop_the_recording(tmp_path, capsys):
    obs = Collect(explode_on=2)
    out = await _record(tmp_path, obs)
    assert db_rows(out, "SELECT count(*) FROM frames WHERE dir='in' AND opcode='text'") == [(5,)]
    assert "live observer failed in on_frame" in capsys.readouterr().err


class CollectUpdates(Collect):
    def __init__(self):
        super().__init__()
        self.updates = []

    def on_connection_update(self, conn_id, cols):
        self.updates.append((conn_id, cols))


async def test_connection_updates_are_teed_handshake_then_close(tmp_path):
    obs = CollectUpdates()
    out = await _record(tmp_path, obs)
    [(cid, status, closed, code)] = db_rows(out, "SELECT id, response_status, closed_ns, close_code FROM connections")
    assert [c for c, _ in obs.updates] == [cid, cid]
    hs, close = obs.updates[0][1], obs.updates[1][1]
    assert hs["response_status"] == status == 101 and "request_headers" in hs and "closed_ns" not in hs
    assert close == {"closed_ns": closed, "close_code": code, "close_reason": close["close_reason"]}
