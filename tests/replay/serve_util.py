"""Tiny recordings and plain-websockets clients for the impersonation-server tests.

The clients use only ``websockets`` and ``cryptography`` (no harness code), as a pipeline
under test would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness.store.writer import RecordingWriter

M1 = "KXBTC15M-26JUL191145-45"
M2 = "KXBTCD-26JUL1912-T67749.99"
T0 = 1_786_000_000_000_000_000  # wall ns of the first frame
SPAN_NS = 2_000_000_000
KALSHI_PATH = "/trade-api/ws/v2"


def kalshi_frames() -> list[tuple[int, str]]:
    """(t_offset_ns, text) of a recorded Kalshi session: acks, 2 snapshots, deltas, tickers
    over 2 s. Recorded sids: 7 = orderbook_delta, 9 = ticker; one delta is pretty-printed."""
    out = [
        (0, '{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":7}}'),
        (0, '{"id":1,"type":"subscribed","msg":{"channel":"ticker","sid":9}}'),
    ]
    seq = 0
    for m in (M1, M2):
        seq += 1
        out.append((1_000_000 * seq, json.dumps(
            {"type": "orderbook_snapshot", "sid": 7, "seq": seq,
             "msg": {"market_ticker": m, "market_id": "x", "yes_dollars_fp": [["0.4800", "10.00"]], "no_dollars_fp": [["0.5000", "5.00"]]}},
            separators=(",", ":"))))
    for i in range(40):
        t = 50_000_000 * (i + 1)
        m = M1 if i % 2 == 0 else M2
        seq += 1
        d = {"type": "orderbook_delta", "sid": 7, "seq": seq,
             "msg": {"market_ticker": m, "market_id": "x", "price_dollars": "0.4800", "delta_fp": f"{i + 1}.00", "side": "yes", "ts_ms": 1786000000000 + i}}
        text = json.dumps(d, indent=2) if i == 3 else json.dumps(d, separators=(",", ":"))
        out.append((t, text))
        if i % 5 == 0:
            out.append((t + 1000, json.dumps(
                {"type": "ticker", "sid": 9, "msg": {"market_ticker": m, "price_dollars": "0.48", "yes_bid_dollars": "0.47", "yes_ask_dollars": "0.49", "ts_ms": 1786000000000 + i, "Clock": i}},
                separators=(",", ":"))))
    return out


def coinbase_frames() -> list[tuple[int, str]]:
    out = [(0, json.dumps({"channel": "subscriptions", "client_id": "", "timestamp": "2026-08-09T00:00:00Z", "sequence_num": 0, "events": [{"subscriptions": {"level2": ["BTC-USD"]}}]}, separators=(",", ":")))]
    n = 0
    for i in range(30):
        n += 1
        kind = "snapshot" if i == 0 else "update"
        out.append((60_000_000 * i + 1, json.dumps(
            {"channel": "l2_data", "client_id": "", "timestamp": "2026-08-09T00:00:00Z", "sequence_num": n,
             "events": [{"type": kind, "product_id": "BTC-USD", "updates": [{"side": "bid", "event_time": "2026-08-09T00:00:00Z", "price_level": f"{60000 + i}.00", "new_quantity": "0.5"}]}]},
            separators=(",", ":"))))
        if i % 3 == 0:
            n += 1
            out.append((60_000_000 * i + 2, json.dumps(
                {"channel": "market_trades", "client_id": "", "timestamp": "2026-08-09T00:00:00Z", "sequence_num": n,
                 "events": [{"type": "update", "trades": []}]}, separators=(",", ":"))))
    return out


def bitstamp_frames() -> list[tuple[int, str]]:
    out = [(0, '{"event":"bts:subscription_succeeded","channel":"diff_order_book_btcusd","data":{}}')]
    for i in range(20):
        out.append((100_000_000 * i + 5, json.dumps(
            {"data": {"timestamp": "1786000000", "microtimestamp": str(1786000000000000 + i), "bids": [["60000", "0.1"]], "asks": []},
             "channel": "diff_order_book_btcusd", "event": "data"}, separators=(",", ":"))))
    return out


def build_recording(path, *, kalshi_disconnect: bool = False, big_frames: int = 0) -> dict:
    """Write the tiny recording; returns {venue: [(t_offset, text), ...]} as recorded."""
    w = RecordingWriter(path, mode="simulate", started_ns=T0)
    mono0 = 5_000_000_000
    rec = {}

    def put(conn, frames, shift=0):
        for t, text in frames:
            w.frame(conn, "in", T0 + t + shift, mono0 + t + shift, "text", text)

    k = w.connection("kalshi", "wss://external-api-ws.kalshi.com/trade-api/ws/v2", T0)
    w.frame(k, "out", T0, mono0, "text", json.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta", "ticker"], "market_tickers": [M1, M2]}}))
    kf = kalshi_frames()
    if big_frames:
        pad = "x" * 60_000
        kf += [(SPAN_NS + 10_000 + i, json.dumps({"type": "orderbook_delta", "sid": 7, "seq": 100 + i, "msg": {"market_ticker": M1, "pad": pad}}, separators=(",", ":"))) for i in range(big_frames)]
    if kalshi_disconnect:
        first = [f for f in kf if f[0] <= 1_000_000_000]
        put(k, first)
        w.close_connection(k, T0 + 1_000_500_000, 1011, "internal error")
        k2 = w.connection("kalshi", "wss://external-api-ws.kalshi.com/trade-api/ws/v2", T0 + 1_100_000_000)
        second = [(1_100_000_000 + t, s.replace('"sid":7', '"sid":1').replace('"sid":9', '"sid":2')) for t, s in kf[:12]]
        put(k2, second)
        rec["kalshi"] = first + second
    else:
        put(k, kf)
        rec["kalshi"] = kf
    c = w.connection("coinbase", "wss://advanced-trade-ws.coinbase.com", T0)
    put(c, coinbase_frames())
    rec["coinbase"] = coinbase_frames()
    b = w.connection("bitstamp", "wss://ws.bitstamp.net", T0)
    put(b, bitstamp_frames())
    rec["bitstamp"] = bitstamp_frames()
    w.close()
    return rec


# ----------------------------------------------------------------------------- clients


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign_headers(priv, key_id: str = "test-key", path: str = KALSHI_PATH, ts_ms: int | None = None) -> dict:
    ts = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    sig = priv.sign((ts + "GET" + path).encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    return {"KALSHI-ACCESS-KEY": key_id, "KALSHI-ACCESS-TIMESTAMP": ts, "KALSHI-ACCESS-SIGNATURE": base64.b64encode(sig).decode()}


def sub_cmd(cid: int, channels, tickers=None) -> str:
    params = {"channels": list(channels)}
    if tickers:
        params["market_tickers"] = list(tickers)
    return json.dumps({"id": cid, "cmd": "subscribe", "params": params})


async def collect(url, send=(), headers=None, *, limit: int | None = None, timeout: float = 10.0, **kw):
    """Connect, send ``send`` frames, receive until close (or ``limit`` frames).
    Returns (frames [(t_perf, text)], close_code)."""
    got = []
    code = None
    async with connect(url, additional_headers=headers or {}, max_size=None, **kw) as ws:
        for s in send:
            await ws.send(s)
        try:
            async with asyncio.timeout(timeout):
                async for m in ws:
                    got.append((time.perf_counter(), m))
                    if limit is not None and len(got) >= limit:
                        code = "limit"
                        ws.transport.abort()  # don't wait for a close handshake behind unread data
                        break
        except ConnectionClosed:
            pass
        except TimeoutError:
            code = "timeout"
        if code is None and ws.close_code is not None:
            code = ws.close_code
        if code is None:
            try:
                await asyncio.wait_for(ws.wait_closed(), 0.01)
            except TimeoutError:
                pass
            code = ws.close_code
    return got, code
