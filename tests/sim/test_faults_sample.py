"""The committed ``recordings/faults.db``: a recorder that reconnects on its own (Coinbase,
resyncing after the server's skipped sequence number) is served the session from where it
left off, with a fresh book snapshot, never the session again from its start."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from harness.sim.source import norm

FAULTS = Path(__file__).resolve().parents[2] / "recordings" / "faults.db"
pytestmark = pytest.mark.skipif(not FAULTS.exists(), reason="recordings/faults.db not built")


def rows(sql: str, *args):
    db = sqlite3.connect(f"file:{FAULTS}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_each_coinbase_connection_goes_on_from_the_previous_one():
    l2 = rows("SELECT f.conn_id, f.payload FROM frames f JOIN connections c ON c.id = f.conn_id "
              "WHERE c.venue = 'coinbase' AND f.dir = 'in' AND f.type LIKE 'l2_data/%' ORDER BY f.t_mono_ns, f.id")
    conns: dict[int, list[dict]] = {}
    for cid, payload in l2:
        try:
            conns.setdefault(cid, []).append(json.loads(payload))
        except json.JSONDecodeError:
            continue  # a frame the server cut in half on purpose
    assert len(conns) >= 3  # the resync after the seq gap and the recorded drop
    last = None
    for frames in conns.values():
        # every connection's first book frame is a snapshot ...
        assert frames[0]["events"][0]["type"] == "snapshot"
        # ... of the book where the previous connection stopped, not the session's first one
        if last is not None:
            assert frames[0]["timestamp"] >= last
        stamps = [f["timestamp"] for f in frames]
        assert stamps == sorted(stamps)
        last = stamps[-1]


def test_no_data_frame_is_served_twice():
    for venue in ("coinbase", "kalshi"):
        payloads = [norm(p) for (p,) in rows(
            "SELECT f.payload FROM frames f JOIN connections c ON c.id = f.conn_id WHERE c.venue = ? AND f.dir = 'in' "
            "AND f.type IN ('l2_data/update', 'market_trades/update', 'orderbook_delta', 'ticker')", venue)]
        assert payloads, venue
        twice = [p[:80] for p, n in Counter(payloads).items() if n > 1]
        assert twice == [], venue
