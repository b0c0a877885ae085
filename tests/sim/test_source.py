"""The simulated venues' frames, straight from the source recording (no network): every
frame passes its venue model, Kraken checksums verify with the harness's verifier, Kalshi
frames validate against the AsyncAPI spec, and the same seed writes the same frames."""

from __future__ import annotations

import json
import sqlite3

import pytest

from harness import venues
from harness.sim.session import parse_start
from harness.sim.source import write_source

# 05:44:00: the 05:45 close (determined, settled) and the next market's open fall inside
START = parse_start("2026-11-25T05:44:00Z")
MINUTES = 2.0


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    p = tmp_path_factory.mktemp("sim") / "source.db"
    summary = write_source(str(p), start_ns=START, minutes=MINUTES, seed=3)
    return p, summary


def rows(path, where="1"):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT c.venue, f.conn_id, f.dir, f.t_wall_ns, f.t_mono_ns, f.payload, f.type FROM frames f "
            f"JOIN connections c ON c.id = f.conn_id WHERE {where} ORDER BY f.conn_id, f.t_mono_ns, f.id").fetchall()
    finally:
        db.close()


def test_every_frame_passes_its_venue_model(source):
    path, _ = source
    sessions: dict[int, object] = {}
    counts: dict[str, int] = {}
    last_t: dict[int, int] = {}
    for venue, cid, _d, tw, tm, payload, typ in rows(path, "f.dir = 'in'"):
        assert typ is not None, f"{venue}: unclassified frame {payload[:120]}"
        assert tw == tm and tm >= last_t.get(cid, 0), "receive times never go backwards on a connection"
        last_t[cid] = tm
        if cid not in sessions:
            v = venues.get(venue)
            sessions[cid] = v.new_session(align=False) if venue == "bitstamp" else v.new_session()
        msgs, findings = sessions[cid].feed(payload, None)
        assert not findings, f"{venue} {typ}: {findings} in {payload[:200]}"
        counts[venue] = counts.get(venue, 0) + len(msgs)
    assert set(counts) == {"kalshi", "coinbase", "kraken", "bitstamp", "gemini"}
    kraken = [s for s in sessions.values() if hasattr(s, "checksums_verified")]
    assert sum(s.checksums_verified for s in kraken) > 50
    assert sum(s.checksums_failed for s in kraken) == 0


def test_kalshi_frames_validate_against_the_asyncapi_spec(source, reference):
    from harness.venues.kalshi_spec import default_kalshi_errata, load_spec

    spec = load_spec(reference / "kalshi" / "asyncapi.yaml")
    errata = default_kalshi_errata()
    path, _ = source
    seen = set()
    for _v, _c, _d, _tw, _tm, payload, typ in rows(path, "c.venue = 'kalshi'"):
        res = spec.validate(payload, errata)
        assert res.ok, f"{typ}: {[f.to_dict() for f in res.findings]} in {payload[:300]}"
        seen.add(typ if typ != "market_lifecycle_v2" else "lifecycle:" + json.loads(payload)["msg"]["event_type"])
    for want in ("orderbook_snapshot", "orderbook_delta", "ticker", "trade", "subscribed", "cmd:subscribe",
                 "lifecycle:activated", "lifecycle:metadata_updated", "lifecycle:determined", "lifecycle:settled"):
        assert want in seen, want


def test_rest_views_tell_the_settlement(source):
    from harness.venues.kalshi_markets import parse_markets_response

    path, summary = source
    closed = [m for m in summary.markets if m["expiration_value"] is not None]
    assert [m["ticker"] for m in closed] == ["KXBTC15M-26NOV250045-45"]
    m = closed[0]
    assert m["result"] == ("yes" if m["expiration_value"] >= m["strike"] else "no")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        body = db.execute("SELECT response_body FROM http WHERE url LIKE ? ORDER BY t_recv_ns DESC LIMIT 1",
                          ("%/markets/KXBTC15M-26NOV250045-45",)).fetchone()[0]
        listing = db.execute("SELECT response_body FROM http WHERE url LIKE ? ORDER BY t_recv_ns LIMIT 1",
                             ("%/markets?series_ticker=KXBTC15M&status=open%",)).fetchone()[0]
        urls = {u.split("?")[0] for (u,) in db.execute("SELECT url FROM http")}
    finally:
        db.close()
    mk = json.loads(body)["market"]
    assert mk["status"] == "finalized" and float(mk["expiration_value"]) == m["expiration_value"]
    assert [x.ticker for x in parse_markets_response(listing).markets] == ["KXBTC15M-26NOV250045-45"]
    assert "https://www.bitstamp.net/api/v2/order_book/btcusd/" in urls
    assert {"https://api.exchange.coinbase.com/products/BTC-USD/ticker", "https://api.kraken.com/0/public/Ticker",
            "https://www.bitstamp.net/api/v2/ticker/btcusd/", "https://api.gemini.com/v1/pubticker/btcusd"} <= urls


def test_same_seed_same_frames_other_seed_other_frames(source, tmp_path):
    path, _ = source
    again = tmp_path / "again.db"
    write_source(str(again), start_ns=START, minutes=MINUTES, seed=3)
    a = [(r[0], r[2], r[3], r[5]) for r in rows(path)]
    b = [(r[0], r[2], r[3], r[5]) for r in rows(again)]
    assert a == b and len(a) > 1000
    other = tmp_path / "other.db"
    write_source(str(other), start_ns=START, minutes=0.2, seed=4)
    c = {r[5] for r in rows(other, "f.dir = 'in'")}
    assert len(c & {r[3] for r in a}) < len(c) / 2


def test_rate_scale_multiplies_message_rates(tmp_path):
    def n(scale):
        p = tmp_path / f"s{scale}.db"
        write_source(str(p), start_ns=START, minutes=0.5, seed=5, scale=scale)
        return dict(sqlite3.connect(p).execute(
            "SELECT c.venue, count(*) FROM frames f JOIN connections c ON c.id = f.conn_id WHERE f.dir = 'in' GROUP BY 1"))

    one, ten = n(1.0), n(10.0)
    for v in ("kraken", "bitstamp", "gemini"):
        assert 6 * one[v] < ten[v] < 14 * one[v], v
    assert ten["kalshi"] > 3 * one["kalshi"]
