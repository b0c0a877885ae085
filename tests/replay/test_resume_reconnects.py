"""``resume_reconnects``: a client whose connection ended before the end of the recording
(an injected close, its own close) is followed by the next connection of the venue (same
Kalshi key id) right after the last recorded frame the server sent it, and that client's
first book frame is a fresh snapshot of the recorded book at that point. Without the option
a new connection starts at the beginning.

The clients are plain websockets; their books are rebuilt with Decimal arithmetic here
(no harness code), from the frames the first client received."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from harness.replay.server import ImpersonationServer
from harness.store.writer import RecordingWriter

from .serve_util import M1, M2, build_recording, collect, new_key, sign_headers, sub_cmd
from .test_get_snapshot import ClientBook

T0 = 1_786_000_000_000_000_000
CB_SUB = json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"})


def _l2(n: int, kind: str, updates) -> str:
    ups = [{"side": s, "event_time": "2026-08-09T00:00:00.000000Z", "price_level": p, "new_quantity": q} for s, p, q in updates]
    return json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-08-09T00:00:00.000000000Z",
                       "sequence_num": n, "events": [{"type": kind, "product_id": "BTC-USD", "updates": ups}]},
                      separators=(",", ":"))


def coinbase_recording(path, n_updates: int = 24, step_ns: int = 50_000_000) -> list[str]:
    """A Coinbase Advanced Trade recording: a snapshot (texts with trailing zeros, kept as
    sent), then updates that add, change and delete levels on both sides, with a few
    market_trades frames between them (not subscribed by the tests: never routed). Returns
    the l2_data texts in order."""
    w = RecordingWriter(path, mode="simulate", started_ns=T0)
    c = w.connection("coinbase", "wss://advanced-trade-ws.coinbase.com", T0)
    w.frame(c, "out", T0, 1, "text", CB_SUB)
    l2 = [_l2(1, "snapshot", [("bid", "60000.10", "1.50000000"), ("bid", "59999.00", "2.0"),
                              ("offer", "60001.00", "0.25"), ("offer", "60002.50", "3.10")])]
    for i in range(n_updates):
        side = "bid" if i % 2 == 0 else "offer"
        price = f"{59990 + i}.00" if side == "bid" else f"{60003 + i}.00"
        ups = [(side, price, f"0.{i + 1:02d}")]
        if i % 5 == 4:
            ups.append(("bid", "59999.00", "0"))  # a delete (absent from the book by then half the time)
        if i % 7 == 3:
            ups.append(("offer", "60001.00", f"{i}.5"))  # a change of an existing level
        l2.append(_l2(len(l2) + 1, "update", ups))
    n = 0
    for k, text in enumerate(l2):
        t = 1_000 + k * step_ns
        w.frame(c, "in", T0 + t, 1_000_000_000 + t, "text", text)
        n += 1
        if k % 4 == 1:
            trade = json.dumps({"channel": "market_trades", "client_id": "", "timestamp": "2026-08-09T00:00:00Z",
                                "sequence_num": 0, "events": [{"type": "update", "trades": []}]}, separators=(",", ":"))
            w.frame(c, "in", T0 + t + 1, 1_000_000_000 + t + 1, "text", trade)
    w.close()
    return l2


class CoinbaseBook:
    """A client's L2 book: {side: {Decimal price: qty text}} (the text, to see it kept)."""

    def __init__(self):
        self.sides = {"bid": {}, "offer": {}}

    def apply(self, frame: dict) -> None:
        for ev in frame["events"]:
            if ev["type"] == "snapshot":
                self.sides = {"bid": {}, "offer": {}}
            for u in ev["updates"]:
                side = self.sides[u["side"]]
                p = Decimal(u["price_level"])
                if Decimal(u["new_quantity"]) == 0:
                    side.pop(p, None)
                else:
                    side[p] = u["new_quantity"]

    def copy(self) -> dict:
        return {s: dict(v) for s, v in self.sides.items()}


async def ended(srv) -> None:
    """Until the server has seen every client so far go (a reconnect then finds its point)."""
    async with asyncio.timeout(10):
        while any(c.close_code is None for c in srv.clients):
            await asyncio.sleep(0.01)


def _seq_blank(text: str) -> str:
    d = json.loads(text)
    d.pop("sequence_num", None)
    return json.dumps(d, sort_keys=True)


def _l2_frames(got) -> list[dict]:
    return [json.loads(m) for _, m in got if '"l2_data"' in m]


async def test_coinbase_client_resumes_after_an_injected_close_with_a_snapshot(tmp_path):
    rec = tmp_path / "cb.db"
    l2 = coinbase_recording(rec)
    # every connection is closed before its 7th data frame: each client gets 6
    async with ImpersonationServer(rec, speed="max", faults="disconnect=@7:1011", resume_reconnects=True) as srv:
        clients = []
        for _ in range(4):
            got, code = await collect(srv.urls["coinbase"], [CB_SUB])
            await ended(srv)
            assert code == 1011
            clients.append(got)
    first = _l2_frames(clients[0])
    assert len(first) == 6
    mine = CoinbaseBook()
    for f in first:
        mine.apply(f)
    streamed = [_seq_blank(json.dumps(f)) for f in first]
    for got in clients[1:]:
        texts = [m for _, m in got]
        frames = [json.loads(m) for m in texts]
        # the ack, then the snapshot, then the recording from where the previous client stopped
        assert frames[0]["channel"] == "subscriptions" and frames[1]["channel"] == "l2_data"
        snap = frames[1]
        assert [e["type"] for e in snap["events"]] == ["snapshot"] and snap["events"][0]["product_id"] == "BTC-USD"
        theirs = CoinbaseBook()
        theirs.apply(snap)
        assert theirs.copy() == mine.copy()  # prices and quantity texts as received
        assert all(f["sequence_num"] == i for i, f in enumerate(frames))  # the connection's own numbering
        assert snap["timestamp"].startswith("20")  # the recorded time reached (T0 is in 2026)
        for f in frames[2:]:
            mine.apply(f)
            streamed.append(_seq_blank(json.dumps(f)))
        assert len(frames) == 2 + 6
    # no frame twice, none skipped: the four connections together are the recording's l2_data so far
    assert streamed == [_seq_blank(t) for t in l2[: len(streamed)]]
    assert len(streamed) == 24
    assert srv.clients[1].resumed_fid is not None and srv.clients[1].resumed_at is not None


async def test_coinbase_client_that_closes_itself_is_resumed_after_the_last_frame_sent(tmp_path):
    rec = tmp_path / "cb.db"
    l2 = coinbase_recording(rec, n_updates=30, step_ns=40_000_000)
    async with ImpersonationServer(rec, speed=1, resume_reconnects=True) as srv:
        got1, code1 = await collect(srv.urls["coinbase"], [CB_SUB], limit=6)  # drops the connection after 6 frames
        await ended(srv)
        sent = srv.clients[0].frames_sent  # the frames the server wrote (some may not have been read)
        got2, code2 = await collect(srv.urls["coinbase"], [CB_SUB])
    assert code1 == "limit" and code2 == 1000
    assert 5 <= sent < len(l2)
    book = CoinbaseBook()
    for text in l2[:sent]:
        book.apply(json.loads(text))
    frames = [json.loads(m) for _, m in got2]
    assert frames[1]["events"][0]["type"] == "snapshot"
    snap = CoinbaseBook()
    snap.apply(frames[1])
    assert snap.copy() == book.copy()
    assert [_seq_blank(json.dumps(f)) for f in frames[2:]] == [_seq_blank(t) for t in l2[sent:]]
    # what the first client read is a prefix of what was sent to it
    assert [_seq_blank(json.dumps(f)) for f in _l2_frames(got1)] == [_seq_blank(t) for t in l2[: len(_l2_frames(got1))]]


async def test_without_the_option_a_new_client_starts_at_the_beginning(tmp_path):
    rec = tmp_path / "cb.db"
    l2 = coinbase_recording(rec)
    async with ImpersonationServer(rec, speed="max", faults="disconnect=@7:1011") as srv:
        await collect(srv.urls["coinbase"], [CB_SUB])
        await ended(srv)
        got, code = await collect(srv.urls["coinbase"], [CB_SUB])
    frames = _l2_frames(got)
    assert code == 1011 and len(frames) == 6
    assert [_seq_blank(json.dumps(f)) for f in frames] == [_seq_blank(t) for t in l2[:6]]
    assert srv.clients[1].resumed_at is None


async def test_kalshi_client_resumes_with_snapshots_of_its_markets(tmp_path):
    rec = tmp_path / "k.db"
    build_recording(rec)
    key = new_key()
    cmd = sub_cmd(1, ["orderbook_delta"], [M1, M2])
    async with ImpersonationServer(rec, speed="max", faults="disconnect=@12:1011", resume_reconnects=True) as srv:
        got1, code1 = await collect(srv.urls["kalshi"], [cmd], sign_headers(key, key_id="k1"))
        await ended(srv)
        got2, code2 = await collect(srv.urls["kalshi"], [cmd], sign_headers(key, key_id="k1"))
        await ended(srv)
        # another key id is another client: it starts at the beginning
        got3, _ = await collect(srv.urls["kalshi"], [cmd], sign_headers(key, key_id="k2"))
    assert code1 == code2 == 1011
    f1 = [json.loads(m) for _, m in got1]
    f2 = [json.loads(m) for _, m in got2]
    mine = ClientBook()
    for f in f1[1:]:
        mine.apply(f)
    deltas1 = [f for f in f1 if f["type"] == "orderbook_delta"]
    assert len(f1) == 1 + 11 and len(deltas1) == 9  # subscribed, 2 recorded snapshots, 9 deltas
    # subscribed, then one fresh snapshot per market named, seq 1 and 2, then the deltas after the last one sent
    assert f2[0]["type"] == "subscribed"
    snaps = f2[1:3]
    assert [s["type"] for s in snaps] == ["orderbook_snapshot"] * 2
    assert [s["msg"]["market_ticker"] for s in snaps] == [M1, M2] and [s["seq"] for s in snaps] == [1, 2]
    theirs = ClientBook()
    for s in snaps:
        theirs.apply(s)
    assert theirs.books == mine.books
    deltas2 = [f for f in f2[3:] if f["type"] == "orderbook_delta"]
    assert [f["seq"] for f in f2[3:]] == list(range(3, 3 + len(f2) - 3))
    recorded = [json.loads(t) for _, t in sorted(build_recording(tmp_path / "again.db")["kalshi"], key=lambda x: x[0])]
    recorded_deltas = [r["msg"]["delta_fp"] for r in recorded if r.get("type") == "orderbook_delta"]
    got_deltas = [f["msg"]["delta_fp"] for f in deltas1 + deltas2]
    assert got_deltas == recorded_deltas[: len(got_deltas)] and len(deltas2) == 11
    f3 = [json.loads(m) for _, m in got3]
    assert f3[1]["type"] == "orderbook_snapshot" and f3[1]["msg"]["yes_dollars_fp"] == [["0.4800", "10.00"]]


async def test_a_resumed_client_that_got_nothing_passes_its_starting_point_on(tmp_path):
    rec = tmp_path / "cb.db"
    l2 = coinbase_recording(rec)
    async with ImpersonationServer(rec, speed="max", faults="disconnect=@7:1011", resume_reconnects=True) as srv:
        await collect(srv.urls["coinbase"], [CB_SUB])
        await ended(srv)
        await collect(srv.urls["coinbase"], [], timeout=0.3)  # connects, never subscribes
        await ended(srv)
        got, _ = await collect(srv.urls["coinbase"], [CB_SUB])
    frames = _l2_frames(got)
    assert frames[0]["events"][0]["type"] == "snapshot"
    assert [_seq_blank(json.dumps(f)) for f in frames[1:]] == [_seq_blank(t) for t in l2[6:12]]


def test_snapshot_frames_round_trip_through_the_venue_sessions():
    """The Kraken v2 and Gemini snapshots the server writes are read back by the venue
    modules into the same book (Kraken: its checksum verifies)."""
    from harness.replay.venue_flows import gemini_snapshot_frame, kraken_snapshot_frame
    from harness.venues import get

    kr = get("kraken").new_session()
    recorded = ('{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":85927.7,"qty":0.26848873},'
                '{"price":85925.2,"qty":0.70000000}],"asks":[{"price":85930.1,"qty":1.5},{"price":85931.0,"qty":0.00100000}],'
                '"checksum":0,"timestamp":"2026-11-25T05:41:00.000000Z"}]}')
    kr.feed(recorded)
    book = kr.books["BTC/USD"]
    text = kraken_snapshot_frame("BTC/USD", book, T0)
    again = get("kraken").new_session()
    _, findings = again.feed(text)
    assert findings == []  # the checksum verifies
    b2 = again.books["BTC/USD"]
    assert [(lv.price_text, lv.qty_text) for lv in b2.top_levels(True)] == [("85927.7", "0.26848873"), ("85925.2", "0.70000000")]
    assert [(lv.price_text, lv.qty_text) for lv in b2.top_levels(False)] == [("85930.1", "1.5"), ("85931.0", "0.00100000")]
    bad = get("kraken").new_session()
    crc = json.loads(text)["data"][0]["checksum"]
    _, findings = bad.feed(text.replace(f'"checksum":{crc}', f'"checksum":{crc ^ 1}'))
    assert findings  # a wrong checksum would have been noticed

    gm = get("gemini").new_session()
    gm.feed('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","85931.28","0.42"],["sell","85940.00","1.10"]],"trades":[]}')
    gm.feed('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","85931.28","0"],["buy","85930.00","2.50"]]}')
    text = gemini_snapshot_frame("BTCUSD", gm.books["BTCUSD"])
    g2 = get("gemini").new_session()
    g2.feed('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","1.00","1"]],"trades":[]}')  # an older book: replaced
    g2.feed(text)
    assert list(g2.books["BTCUSD"].bids_desc()) == [(Decimal("85930.00"), Decimal("2.50"))]
    assert list(g2.books["BTCUSD"].asks_asc()) == [(Decimal("85940.00"), Decimal("1.10"))]
