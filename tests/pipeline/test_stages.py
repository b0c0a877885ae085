"""Stage wiring of the pipeline on small hand-made recordings written with the real writer:
Coinbase Advanced Trade + Gemini books, Kalshi orderbook/lifecycle frames, REST rows."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from harness.pipeline import PipelineConfig
from harness.pipeline.output import SessionLog
from harness.pipeline.stages import Pipeline, convert_book, run_recording
from harness.store import RecordingWriter
from harness.venues.book import L2Book
from harness.venues.kalshi_markets import parse_ticker

S = 1_000_000_000
# KXBTCD "above 60,000" market closing 2026-08-09 18:00 ET = 22:00:00 UTC
ABOVE = "KXBTCD-26AUG0918-T59999.99"
CLOSE_NS = parse_ticker(ABOVE).close_ns
assert CLOSE_NS == 1786312800 * S


def coinbase(mid: float, seq: int) -> str:
    """A Coinbase AT level2 snapshot: 10 levels a side, 0.5 USD apart, 1 BTC each."""
    ups = [{"side": "bid", "event_time": "2026-08-09T21:40:00Z", "price_level": f"{mid - 0.5 * (i + 1):.2f}", "new_quantity": "1.0"} for i in range(10)]
    ups += [{"side": "offer", "event_time": "2026-08-09T21:40:00Z", "price_level": f"{mid + 0.5 * (i + 1):.2f}", "new_quantity": "1.0"} for i in range(10)]
    return json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-08-09T21:40:00Z", "sequence_num": seq,
                       "events": [{"type": "snapshot", "product_id": "BTC-USD", "updates": ups}]})


def gemini(mid: float) -> str:
    """A Gemini l2_updates carrying ``trades`` (so it replaces the book): same shape."""
    ch = [["buy", f"{mid - 0.5 * (i + 1):.2f}", "1.0"] for i in range(10)]
    ch += [["sell", f"{mid + 0.5 * (i + 1):.2f}", "1.0"] for i in range(10)]
    return json.dumps({"type": "l2_updates", "symbol": "BTCUSD", "changes": ch, "trades": []})


def kalshi_snapshot(ticker: str, yes_bid: str, no_bid: str, seq: int = 1) -> str:
    return json.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": seq, "msg": {
        "market_ticker": ticker, "market_id": "m1",
        "yes_dollars_fp": [[yes_bid, "100.00"]], "no_dollars_fp": [[no_bid, "100.00"]]}})


def write(path, frames, http=()):
    """frames: (venue, t_ns, payload) inbound; http: (t_ns, url, body)."""
    w = RecordingWriter(path, mode="simulate", batch_ms=5.0)
    conns: dict[str, int] = {}
    for venue, t, payload in frames:
        if venue not in conns:
            conns[venue] = w.connection(venue, f"wss://{venue}.example/ws", t)
        w.frame(conns[venue], "in", t, t, "text", payload)
    for t, url, body in http:
        w.http("GET", url, t, status=200, venue="kalshi" if "kalshi" in url else None, response_body=body)
    w.close()


def cfg(**brti) -> PipelineConfig:
    c = PipelineConfig()
    return dataclasses.replace(c, brti=dataclasses.replace(c.brti, **brti)) if brti else c


def rows_at(p: Pipeline, t_ns: int) -> tuple:
    return next(r for r in p.ticks if r[0] == t_ns)


# --------------------------------------------------------------------------- staleness


def test_venue_goes_stale_and_comes_back(tmp_path):
    t0 = CLOSE_NS - 600 * S
    frames = []
    for i in range(41):  # coinbase every second for 40 s
        frames.append(("coinbase", t0 + i * S, coinbase(60000.0, i + 1)))
    for i in list(range(6)) + [25, 26, 27]:  # gemini: 0..5 s, silent 5..25 s, back at 25 s
        frames.append(("gemini", t0 + i * S + 100_000_000, gemini(60002.0)))
    frames.sort(key=lambda x: x[1])
    rec = tmp_path / "stale.db"
    write(rec, frames)
    p = run_recording(str(rec), cfg(min_venues=1))

    def used(sec: float) -> set[str]:
        r = rows_at(p, t0 + int(sec * S))
        return set(r[5].split(",")) if r[5] else set()

    def excluded(sec: float) -> dict:
        r = rows_at(p, t0 + int(sec * S))
        return json.loads(r[6]) if r[6] else {}

    assert used(3) == {"coinbase", "gemini"}
    # last gemini frame at 5.1 s: fresh through 15.1 s, stale after (10 s threshold)
    assert used(15.0) == {"coinbase", "gemini"}
    assert used(15.2) == {"coinbase"} and excluded(15.2) == {"gemini": "stale"}
    assert used(25.0) == {"coinbase"}
    # it comes back with the frame at 25.1 s: the tick at 25.2 uses it again
    assert used(25.2) == {"coinbase", "gemini"}
    assert excluded(30) == {}
    ix = p.summary()["index"]
    # 15.2 .. 25.0 s (50 ticks at 5 Hz), then again after its last frame: 37.2 .. 39.8 s
    assert ix["venues"]["gemini"]["excluded"]["stale"] == 50 + 14
    assert ix["venues_used"] == ["coinbase", "gemini"]
    # two symmetric books 2 USD apart with equal depth: index between them
    r = rows_at(p, t0 + 3 * S)
    assert 60000.0 < r[1] < 60002.0
    assert rows_at(p, t0 + 20 * S)[1] == pytest.approx(60000.0, abs=1e-6)


def test_default_min_venues_two_makes_single_venue_invalid(tmp_path):
    t0 = CLOSE_NS - 600 * S
    write(tmp_path / "one.db", [("coinbase", t0 + i * S, coinbase(60000.0, i + 1)) for i in range(5)])
    p = run_recording(str(tmp_path / "one.db"))
    assert p.n_ticks > 0 and p.n_valid == 0
    assert p.ticks[-1][4].startswith("too_few_venues")
    # and `harness replay` says why and what to pass
    from click.testing import CliRunner

    from harness.cli import cli

    r = CliRunner().invoke(cli, ["replay", str(tmp_path / "one.db")], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "0 valid" in r.output
    assert "1 spot venue with a BTC book, fewer than min_venues 2; pass --min-venues 1" in r.output
    r = CliRunner().invoke(cli, ["replay", str(tmp_path / "one.db"), "--min-venues", "1"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "pass --min-venues" not in r.output and " 0 valid" not in r.output


# --------------------------------------------------------------------------- signals


def test_lagging_kalshi_quote_produces_signal_with_quote_age(tmp_path):
    t0 = CLOSE_NS - 600 * S  # ten minutes before the close
    frames = [("kalshi", t0 + 500_000_000, kalshi_snapshot(ABOVE, "0.4500", "0.4500"))]  # YES 0.45 / 0.55
    for i in range(40):
        mid = 60000.0 if i < 20 else 61000.0  # the index jumps 1,000 USD at 20 s
        frames.append(("coinbase", t0 + i * S, coinbase(mid, i + 1)))
        frames.append(("gemini", t0 + i * S + 50_000_000, gemini(mid)))
    frames.sort(key=lambda x: x[1])
    write(tmp_path / "lag.db", frames)
    p = run_recording(str(tmp_path / "lag.db"))

    m = p.markets.markets[ABOVE]
    assert (m.strike_type, m.floor_strike, m.strike_source) == ("greater", 59999.99, "ticker")
    assert (m.yes_bid, m.yes_ask, m.quote_source) == (0.45, 0.55, "book")
    assert len(p.signals) == 1
    s = p.signals[0]
    assert s.ticker == ABOVE and s.side == "buy_yes"
    # the episode starts at the tick at 20.0 s (it sees the Coinbase jump stamped 20.0 s:
    # a tick reflects the events stamped at or before it) and fires once it is
    # persistence_ns (1 s) old
    assert s.first_ts_ns == t0 + 20 * S
    assert s.ts_ns == s.first_ts_ns + S
    # the quote has not moved since the snapshot at 0.5 s
    assert s.quote.last_update_ns == t0 + 500_000_000
    assert s.quote_age_ns == s.ts_ns - (t0 + 500_000_000)
    assert s.index_at_quote == pytest.approx(60000.0, abs=1e-6)
    assert s.index_move == pytest.approx(1000.0, abs=1e-6)  # both venues at 61,000 by then
    assert s.price == 0.55 and s.fair > 0.8 and s.edge > 0.2
    d = p.summary()["signals"][0]
    assert d["quote_age_ns"] == s.quote_age_ns and d["index_move"] == pytest.approx(1000.0)


def test_no_signal_when_quote_follows_the_index(tmp_path):
    t0 = CLOSE_NS - 600 * S
    frames = [("kalshi", t0 + 500_000_000, kalshi_snapshot(ABOVE, "0.4500", "0.4500"))]
    for i in range(40):
        mid = 60000.0 if i < 20 else 61000.0
        frames.append(("coinbase", t0 + i * S, coinbase(mid, i + 1)))
        frames.append(("gemini", t0 + i * S + 50_000_000, gemini(mid)))
    # Kalshi reprices within 100 ms of the jump: YES 0.97 / 0.99
    frames.append(("kalshi", t0 + 20_100_000_000, kalshi_snapshot(ABOVE, "0.9700", "0.0100", seq=2)))
    frames.sort(key=lambda x: x[1])
    write(tmp_path / "follow.db", frames)
    p = run_recording(str(tmp_path / "follow.db"))
    assert p.signals == []
    assert p.markets.markets[ABOVE].quote_ns == t0 + 20_100_000_000


# --------------------------------------------------------------------------- settlement


def test_settlement_evaluation_known_answer(tmp_path):
    ticker = "KXBTC15M-26AUG091800-00"  # closes 22:00:00 UTC too
    assert parse_ticker(ticker).close_ns == CLOSE_NS
    t0 = CLOSE_NS - 75 * S
    frames = []
    for i in range(81):
        frames.append(("coinbase", t0 + i * S, coinbase(60000.0, i + 1)))
        frames.append(("gemini", t0 + i * S + 50_000_000, gemini(60000.0)))
    frames.append(("kalshi", CLOSE_NS + 2 * S, json.dumps({"type": "market_lifecycle_v2", "sid": 2, "seq": 1, "msg": {
        "market_ticker": ticker, "event_type": "determined", "result": "no", "settlement_value": "0.0000",
        "determination_ts": 1786312802}})))
    frames.sort(key=lambda x: x[1])
    body = json.dumps({"market": {"ticker": ticker, "status": "finalized", "strike_type": "greater_or_equal",
                                  "floor_strike": 60005.0, "close_time": "2026-08-09T22:00:00Z",
                                  "open_time": "2026-08-09T21:45:00Z", "expiration_value": "60010.25",
                                  "result": "no"}})
    url = f"https://external-api.kalshi.com/trade-api/v2/markets/{ticker}"
    write(tmp_path / "settle.db", frames, http=[(CLOSE_NS + 4 * S, url, body)])
    out = tmp_path / "session.db"
    log = SessionLog(out, recording=tmp_path / "settle.db")
    p = run_recording(str(tmp_path / "settle.db"), log=log)

    (e,) = p.evaluations
    assert e.ticker == ticker and e.settlement_source == "rest expiration_value"
    assert e.proxy_n == 60 and e.complete
    assert e.proxy_avg == pytest.approx(60000.0, abs=1e-9)  # symmetric books: index = mid
    assert e.proxy_error == pytest.approx(-10.25, abs=1e-9)
    assert e.baseline_avg == pytest.approx(60000.0) and e.baseline_error == pytest.approx(-10.25)
    assert (e.strike_type, e.floor_strike, e.strike_source) == ("greater_or_equal", 60005.0, "rest")
    assert e.result == "no" and e.proxy_outcome == "no" and e.outcome_agrees is True
    m = p.markets.markets[ticker]
    assert m.payout == 0.0 and m.status == "finalized"

    db = sqlite3.connect(out)
    assert db.execute("PRAGMA application_id").fetchone()[0] == 0x4B48504C
    n, nv = db.execute("SELECT count(*), sum(valid) FROM index_values").fetchone()
    assert n == len(p.ticks) and nv == p.n_valid
    row = db.execute("SELECT settlement_value, proxy_error, proxy_n, outcome_agrees FROM settlements").fetchone()
    assert row[0] == 60010.25 and row[1] == pytest.approx(-10.25) and row[2:] == (60, 1)
    assert not (tmp_path / f"session.db.tmp-{__import__('os').getpid()}").exists()


def test_session_log_refuses_the_recording(tmp_path):
    from harness.errors import ConfigError

    rec = tmp_path / "r.db"
    write(rec, [("coinbase", CLOSE_NS, coinbase(60000.0, 1))])
    with pytest.raises(ConfigError):
        SessionLog(rec, recording=rec)


def test_proxy_strike_for_kxbtc15m_without_metadata(tmp_path):
    ticker = "KXBTC15M-26AUG091800-00"  # opens 21:45:00 UTC (close - 15 min)
    open_ns = CLOSE_NS - 900 * S
    t0 = open_ns - 62 * S
    frames = [("kalshi", open_ns + 1 * S, kalshi_snapshot(ticker, "0.4500", "0.4500"))]
    for i in range(66):
        frames.append(("coinbase", t0 + i * S, coinbase(60000.0, i + 1)))
        frames.append(("gemini", t0 + i * S + 50_000_000, gemini(60000.0)))
    frames.sort(key=lambda x: x[1])
    write(tmp_path / "open.db", frames)
    p = run_recording(str(tmp_path / "open.db"))
    m = p.markets.markets[ticker]
    assert m.strike_source == "proxy_open" and m.strike_type == "greater_or_equal"
    assert m.floor_strike == pytest.approx(60000.0)


# --------------------------------------------------------------------------- units


def test_convert_book_band_and_limits():
    from decimal import Decimal

    from harness.venues.base import Level

    b = L2Book("BTC-USD")
    lv = [Level("bid", Decimal(100 - i), Decimal(1)) for i in range(1, 20)]
    lv += [Level("ask", Decimal(100 + i), Decimal(1)) for i in range(1, 20)]
    b.apply_snapshot(lv)
    vb = convert_book("x", b, band=0.05, min_levels=2, max_levels=None)
    assert [p for p, _ in vb.bids] == [99.0, 98.0, 97.0, 96.0, 95.0]
    assert vb.bids[0] == (99.0, 1.0) and min(p for p, _ in vb.bids) >= 99 * 0.95
    assert max(p for p, _ in vb.asks) <= 101 * 1.05 and len(vb.asks) == 6
    assert len(convert_book("x", b, band=0.05, min_levels=8, max_levels=None).bids) == 8
    assert len(convert_book("x", b, band=None, min_levels=0, max_levels=3).asks) == 3
    assert len(convert_book("x", b, band=0.05, min_levels=50, max_levels=7).bids) == 7


def test_books_converted_only_when_changed(tmp_path):
    t0 = CLOSE_NS - 600 * S
    frames = [("coinbase", t0 + i * S, coinbase(60000.0, i + 1)) for i in range(3)]
    frames += [("gemini", t0 + 100_000_000 + i * 10 * S, gemini(60000.0)) for i in range(1)]
    frames.append(("coinbase", t0 + 10 * S, coinbase(60000.0, 4)))
    frames.sort(key=lambda x: x[1])
    write(tmp_path / "c.db", frames)
    p = Pipeline(cfg(min_venues=1))
    from harness.replay.source import replay
    from harness.store.reader import Recording

    with Recording(tmp_path / "c.db") as rec:
        replay(rec, p)
    p.finish()
    assert p.n_ticks == 50
    # frames at 0, 1, 2 s are used by later ticks; the one at 10 s has no tick after it
    assert p.venues["coinbase"].conversions == 3 and p.venues["gemini"].conversions == 1


def test_other_pairs_and_unknown_venues_ignored(tmp_path):
    t0 = CLOSE_NS - 600 * S
    eth = json.loads(coinbase(3000.0, 1))
    eth["events"][0]["product_id"] = "ETH-USD"
    frames = [("coinbase", t0, json.dumps(eth)), ("nosuchvenue", t0 + S, "{}"),
              ("coinbase", t0 + 2 * S, "not json")]
    write(tmp_path / "o.db", frames)
    p = run_recording(str(tmp_path / "o.db"))
    assert p.venues == {} and p.decode_errors == {"coinbase": 1}
    assert p.summary()["index"]["venues_used"] == []



def test_rest_rows_the_pipeline_cannot_use_are_not_read_and_do_not_move_time(tmp_path):
    """A product list fetched a minute before the first frame neither starts the index
    early nor is read from the recording (``Recording.http(Pipeline.HTTP_URLS)``)."""
    from harness.store import Recording

    t0 = CLOSE_NS - 600 * S
    frames = [("coinbase", t0 + i * S, coinbase(65000.0, i + 1)) for i in range(3)]
    listing = "https://api.coinbase.com/api/v3/brokerage/market/products"
    write(tmp_path / "h.db", frames, http=[(t0 - 60 * S, listing, "[]"), (t0 - 30 * S, listing, "[]")])
    with Recording(tmp_path / "h.db") as rec:
        assert len(rec.http()) == 2 and rec.http(Pipeline.HTTP_URLS) == [] and rec.http([]) == []
        assert [r["url"] for r in rec.http(["/brokerage/"])] == [listing, listing] == [r["url"] for r in rec.http("/brokerage/")]
        every = Pipeline(cfg(min_venues=1))
        every.attach_http(rec.http())  # all rows given: the unusable ones are dropped here
    p = run_recording(str(tmp_path / "h.db"), cfg(min_venues=1))
    assert p.ticks and p.ticks[0][0] >= t0  # the first tick follows the first frame
    assert not every._http
