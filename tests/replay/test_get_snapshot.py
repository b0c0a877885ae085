"""Kalshi ``update_subscription`` ``get_snapshot``: the server answers ``ok`` and a fresh
``orderbook_snapshot`` of the recorded book at the current point of the stream, carrying
the connection's next seq. The client checks it against the book it rebuilt itself (plain
Decimal arithmetic, no harness code) from the frames it received before the snapshot."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness.replay.server import ImpersonationServer
from harness.replay.venue_flows import snapshot_frame

from .serve_util import M1, M2, build_recording, new_key, sign_headers, sub_cmd


def levels(rows) -> dict:
    return {Decimal(p): Decimal(q) for p, q in rows or ()}


class ClientBook:
    def __init__(self):
        self.books: dict[str, dict[str, dict]] = {}

    def apply(self, frame: dict) -> None:
        m = frame["msg"]
        if frame["type"] == "orderbook_snapshot":
            self.books[m["market_ticker"]] = {"yes": levels(m.get("yes_dollars_fp")), "no": levels(m.get("no_dollars_fp"))}
        else:
            side = self.books[m["market_ticker"]][m["side"]]
            p = Decimal(m["price_dollars"])
            q = side.get(p, Decimal(0)) + Decimal(m["delta_fp"])
            if q > 0:
                side[p] = q
            else:
                side.pop(p, None)


async def test_get_snapshot_equals_the_book_of_the_frames_sent(tmp_path):
    rec = tmp_path / "k.db"
    build_recording(rec)
    async with ImpersonationServer(rec, speed=2) as srv:
        async with connect(srv.urls["kalshi"], additional_headers=sign_headers(new_key())) as ws:
            await ws.send(sub_cmd(1, ["orderbook_delta"], [M1, M2]))
            ack = json.loads(await ws.recv())
            sid = ack["msg"]["sid"]
            mine = ClientBook()
            seqs = []
            frames = []
            asked = False
            snapshot = None
            try:
                async with asyncio.timeout(20):
                    async for text in ws:
                        f = json.loads(text)
                        frames.append(f)
                        if "seq" in f:
                            seqs.append(f["seq"])
                        if f["type"] == "orderbook_snapshot" and asked and f["msg"]["market_ticker"] == M1 and snapshot is None:
                            snapshot = f
                            mine_then = {k: {s: dict(v) for s, v in b.items()} for k, b in mine.books.items()}
                        if f["type"] in ("orderbook_snapshot", "orderbook_delta"):
                            mine.apply(f)
                        if not asked and sum(1 for x in frames if x["type"] == "orderbook_delta") >= 8:
                            await ws.send(json.dumps({"id": 2, "cmd": "update_subscription",
                                                      "params": {"sids": [sid], "market_tickers": [M1], "action": "get_snapshot"}}))
                            asked = True
            except ConnectionClosed:
                pass
    assert snapshot is not None, "no snapshot after get_snapshot"
    ok = [f for f in frames if f["type"] == "ok"]
    assert len(ok) == 1 and ok[0]["id"] == 2 and "seq" not in ok[0]
    assert snapshot["sid"] == sid and snapshot["msg"]["market_id"] == "x"
    # the stream before the snapshot moved the book past the recorded snapshot
    assert mine_then[M1]["yes"] != {Decimal("0.48"): Decimal("10")}
    assert levels(snapshot["msg"].get("yes_dollars_fp")) == mine_then[M1]["yes"]
    assert levels(snapshot["msg"].get("no_dollars_fp")) == mine_then[M1]["no"]
    # one seq sequence for the sid across deltas and the snapshot
    assert seqs == list(range(1, len(seqs) + 1))
    # and the stream went on after it
    assert frames[-1] is not snapshot


def test_snapshot_frame_format():
    from harness.venues.kalshi import KalshiBook, decode

    b = KalshiBook(M1)
    b.apply_snapshot([(Decimal("0.4800"), Decimal("10.00")), (Decimal("0.4700"), Decimal("2.50"))], [])
    text = snapshot_frame(3, 9, M1, "mid", b)
    assert json.loads(text) == {"type": "orderbook_snapshot", "sid": 3, "seq": 9, "msg": {
        "market_ticker": M1, "market_id": "mid", "yes_dollars_fp": [["0.4700", "2.50"], ["0.4800", "10.00"]]}}
    (m,) = decode(text)
    assert m.yes == [(Decimal("0.47"), Decimal("2.5")), (Decimal("0.48"), Decimal("10"))] and m.no == []


async def test_recorder_resyncs_after_a_seq_gap(tmp_path):
    """The live recorder, told of a gap by an injected ``seqgap`` fault, asks for a snapshot;
    the one it records equals the book of the frames it recorded before it."""
    import sqlite3
    import uuid
    from pathlib import Path

    from harness.config import BackoffConfig, KalshiConfig, RecordConfig, VenueConfig
    from harness.live.manager import run_record
    from harness.venues.kalshi_auth import Credentials

    rec = tmp_path / "k.db"
    build_recording(rec)
    out = tmp_path / "b.db"
    key = new_key()
    async with ImpersonationServer(rec, speed=2, auth_key=key.public_key(), faults="seqgap=@10") as srv:
        vc = VenueConfig(name="kalshi", url=srv.urls["kalshi"], channels=["orderbook_delta"], stale_timeout=None, compression=False)
        cfg = RecordConfig(output=str(out), venues={"kalshi": vc}, kalshi=KalshiConfig(markets=[M1, M2]), status=False,
                           backoff=BackoffConfig(base=0.05, cap=0.2, reset_after=60, auth_failures_max=2, seed=0))
        creds = Credentials(key_id=str(uuid.uuid4()), key_path=Path("-"), private_key=key)
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_record(cfg, credentials=creds, stop=stop))
        async with asyncio.timeout(30):  # until the first connection has been served to its end
            while not any(c.close_reason == "end of recording" for c in srv.clients):
                await asyncio.sleep(0.05)
        stop.set()
        await task
    db = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    try:
        first = db.execute("SELECT min(id) FROM connections").fetchone()[0]
        rows = db.execute("SELECT dir, payload FROM frames WHERE conn_id = ? AND opcode = 'text' ORDER BY id", (first,)).fetchall()
        gaps = db.execute("SELECT detail FROM events WHERE conn_id = ? AND kind = 'finding' AND detail LIKE '%kalshi_seq_gap%'",
                          (first,)).fetchall()
    finally:
        db.close()
    asks = [json.loads(p) for d, p in rows if d == "out" and '"get_snapshot"' in p]
    assert len(asks) == 1
    inbound = [json.loads(p) for d, p in rows if d == "in"]
    i = next(k for k, f in enumerate(inbound) if f["type"] == "orderbook_snapshot" and k > 2)
    ticker = asks[0]["params"]["market_tickers"][0]
    assert inbound[i]["msg"]["market_ticker"] == ticker and inbound[i - 1]["type"] == "ok"
    mine = ClientBook()
    for f in inbound[:i]:
        if f["type"] in ("orderbook_snapshot", "orderbook_delta"):
            mine.apply(f)
    snap = inbound[i]["msg"]
    assert levels(snap.get("yes_dollars_fp")) == mine.books[ticker]["yes"]
    assert levels(snap.get("no_dollars_fp")) == mine.books[ticker]["no"]
    # the snapshot continues the sid's seq: the recorder saw the one injected gap only
    assert inbound[i]["seq"] == max(f["seq"] for f in inbound[:i] if "seq" in f) + 1
    assert len(gaps) == 1
