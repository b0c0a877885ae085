"""freshness: a recording built by hand (WebSocket frames + REST rows) where every number is
known exactly, and REST parsing of each venue's ticker."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from harness import venues
from harness.checks.freshness import Track, distribution, norm_instrument, parse_rest, view_pieces
from harness.checks.runner import run_checks
from harness.store import RecordingWriter

S = 1_000_000_000
T0 = 1_790_000_000 * S
M = "KXBTC15M-26SEP211500-00"
REST = "https://external-api.kalshi.com/trade-api/v2"


def kalshi(type_, seq, msg):
    return json.dumps({"type": type_, "sid": 1, "seq": seq, "msg": {"market_ticker": M, "market_id": "m1", **msg}})


def snap(seq, yes, no):
    return kalshi("orderbook_snapshot", seq, {"yes_dollars_fp": [[yes, "10.00"]], "no_dollars_fp": [[no, "10.00"]]})


def delta(seq, price, d="5.00", side="yes"):
    return kalshi("orderbook_delta", seq, {"price_dollars": price, "delta_fp": d, "side": side, "ts_ms": 1})


def market_body(bid, ask, last="0.0000"):
    return json.dumps({"market": {"ticker": M, "status": "active", "yes_bid_dollars": bid, "yes_ask_dollars": ask,
                                  "last_price_dollars": last}})


def cb_l2(seq, bid, ask, kind="update"):
    ups = [{"side": "bid", "event_time": "2026-09-21T19:00:00Z", "price_level": bid, "new_quantity": "1"}]
    if ask:
        ups.append({"side": "offer", "event_time": "2026-09-21T19:00:00Z", "price_level": ask, "new_quantity": "1"})
    return json.dumps({"channel": "l2_data", "timestamp": "2026-09-21T19:00:00Z", "sequence_num": seq,
                       "events": [{"type": kind, "product_id": "BTC-USD", "updates": ups}]})


def write(path, frames, http):
    """frames: (venue, t_s, payload[, dir]); http: (venue, url, t_recv_s, body). Times from T0."""
    w = RecordingWriter(path, mode="simulate", batch_ms=5.0, classify=venues.classify)
    conns = {}
    for venue, t, payload, *d in frames:
        if venue not in conns:
            conns[venue] = w.connection(venue, f"wss://{venue}.example/ws", T0)
        tn = T0 + int(t * S)
        w.frame(conns[venue], d[0] if d else "in", tn, tn, "text", payload)
    for venue, url, t, body in http:
        tn = T0 + int(t * S)
        w.http("GET", url, tn, status=200, venue=venue, response_body=body, t_sent_ns=tn - S // 100,
               t_sent_mono_ns=tn - S // 100, t_recv_mono_ns=tn)
    w.close()
    return path


@pytest.fixture
def rec(tmp_path):
    # Kalshi best YES bid on the stream: 0.40 from 0 s, 0.41 from 3 s, 0.42 from 8 s, 0.43 from
    # 12 s; YES ask 1 - 0.50 throughout. REST polls every 5 s from 1 s: 0.40, 0.41, 0.43 (ahead
    # of the stream by 1 s), 0.43.
    frames = [
        ("kalshi", 0, snap(1, "0.4000", "0.5000")),
        ("kalshi", 3, delta(2, "0.4100")),
        ("kalshi", 8, delta(3, "0.4200")),
        ("kalshi", 12, delta(4, "0.4300")),
        # Coinbase best bid 100 -> 101 at 2 s -> 102 at 2.5 s; ask 105. Ticker polls at 1 and 4 s.
        ("coinbase", 0, cb_l2(0, "100.00", "105.00", "snapshot")),
        ("coinbase", 2, cb_l2(1, "101.00", None)),
        ("coinbase", 2.5, cb_l2(2, "102.00", None)),
        ("kalshi", 16.5, delta(5, "0.3000")),  # after the last poll: outside every measure
    ]
    url = f"{REST}/markets/{M}"
    http = [("kalshi", url, 1 + 5 * i, market_body(b, "0.5000")) for i, b in enumerate(["0.4000", "0.4100", "0.4300", "0.4300"])]
    cb = "https://api.exchange.coinbase.com/products/BTC-USD/ticker"
    http += [("coinbase", cb, 1, json.dumps({"bid": "100.00", "ask": "105.00", "price": "100.5"})),
             ("coinbase", cb, 4, json.dumps({"bid": "101.0", "ask": "105.0", "price": "100.5"}))]
    return write(str(tmp_path / "fresh.db"), frames, http)


def _row(res, venue, fld):
    return next(r for r in res.stats["by_key"] if r["venue"] == venue and r["field"] == fld)


def test_kalshi_staleness_lags_and_missed_changes_are_exact(rec):
    res = run_checks(rec, ["freshness"]).result("freshness")
    assert res.status == "pass"
    bid = _row(res, "kalshi", "yes_bid")
    assert bid["instrument"] == M and bid["polls"] == 4 and bid["span_s"] == 15.0
    # REST equal to the stream for 2+2+4 s, stale rising 0->3 s twice (3-6 s, 8-11 s), ahead 11-12 s:
    # mean 6*1.5/14, P(0) = 8/14 so p50 = 0, p90 solves (8 + 2x)/14 = 0.9.
    assert bid["staleness"] == {"time_s": 14.0, "mean_s": round(9 / 14, 3), "p50_s": 0.0, "p90_s": 2.3,
                                "max_s": 3.0, "zero_frac": round(8 / 14, 3)}
    assert bid["rest_ahead_s"] == 1.0
    assert bid["age"]["mean_s"] == 2.5 and bid["age"]["max_s"] == 5.0 and bid["age"]["p90_s"] == 4.5
    # stream changes: 0.40 (before polling, seen 1 s later), 0.41 seen 3 s later, 0.42 never seen
    assert bid["stream_to_rest"] == {"n": 2, "p50_s": 2.0, "p90_s": 2.8, "max_s": 3.0, "mean_s": 2.0}
    assert bid["stream_changes"] == 1 + 1 and bid["missed"] == 1
    # REST showed 0.43 at 11 s, the stream at 12 s
    assert bid["rest_to_stream"]["n"] == 1 and bid["rest_to_stream"]["max_s"] == 1.0
    ask = _row(res, "kalshi", "yes_ask")
    assert ask["staleness"]["mean_s"] == 0.0 and ask["staleness"]["time_s"] == 15.0
    # the market's whole view is as stale as its stalest field: the bid's pieces, but 11-12 s
    # counts as current (the bid ahead, the ask equal): 9 s at 0 among 15 s, p90 (9 + 2x)/15 = 0.9
    view = {"time_s": 15.0, "mean_s": 0.6, "p50_s": 0.0, "p90_s": 2.25, "max_s": 3.0, "zero_frac": 0.6}
    [mk] = [r for r in res.stats["by_instrument"] if r["venue"] == "kalshi"]
    assert mk["instrument"] == M and mk["staleness"] == view and mk["rest_ahead_s"] == 0.0
    kv = res.stats["venues"]["kalshi"]
    assert kv["poll_interval_s"] == 5.0 and kv["staleness"] == view
    summary = [f for f in res.findings if f.code == "summary" and f.venue == "kalshi"]
    assert summary and summary[0].severity == "info" and "polled every 5 s" in summary[0].message


def test_exchange_ticker_against_the_book(rec):
    res = run_checks(rec, ["freshness"]).result("freshness")
    bid = _row(res, "coinbase", "bid")
    assert bid["instrument"] == "BTCUSD"
    # 100 until 2 s, REST shows 100 from 1 s: equal 1-2 s, stale 0->2 s over 2-4 s (101 and 102
    # came and went; REST still says 100); the 4 s poll shows 101, which the stream left at 2.5 s.
    assert bid["staleness"] == {"time_s": 3.0, "mean_s": round(2 * 1.0 / 3, 3), "p50_s": 0.5, "p90_s": 1.7,
                                "max_s": 2.0, "zero_frac": round(1 / 3, 3)}
    assert bid["stream_to_rest"]["n"] == 2 and bid["stream_to_rest"]["max_s"] == 2.0  # 100 at 1 s, 101 at 4 s
    assert bid["missed"] == 1  # 102
    ask = _row(res, "coinbase", "ask")
    assert ask["staleness"]["mean_s"] == 0.0  # "105.0" == "105.00" as numbers
    assert res.stats["venues"]["coinbase"]["staleness"] == bid["staleness"]  # the ask never stale, no trades


def test_a_fast_stream_polled_every_5s_is_half_an_interval_stale(tmp_path):
    # the bid changes every 100 ms; each poll shows the value in force 0 s before it
    frames = [("kalshi", 0, snap(1, "0.0100", "0.0100"))]
    http = []
    seq = 2
    for k in range(1, 301):  # 0.1 .. 30.0 s
        frames.append(("kalshi", k / 10, delta(seq, f"{(k + 1) / 1000:.4f}", "1.00")))
        seq += 1
    for i in range(6):
        t = 1.0 + 5 * i + 0.05
        k = int((t - 0.0) * 10)
        http.append(("kalshi", f"{REST}/markets/{M}", t, market_body(f"{(k + 1) / 1000:.4f}", "0.9900")))
    res = run_checks(write(str(tmp_path / "fast.db"), frames, http), ["freshness"]).result("freshness")
    st = _row(res, "kalshi", "yes_bid")["staleness"]
    assert res.stats["venues"]["kalshi"]["staleness"] == st  # the constant ask does not dilute it
    # each poll's value is left 0.05 s after the poll: per 5 s, 0.05 s current, then stale
    # rising 0 -> 4.95 s: mean 4.95 * 2.475 / 5, p50 solves (0.05 + x) / 5 = 0.5
    assert st["max_s"] == 4.95 and st["mean_s"] == 2.45 and st["p50_s"] == 2.45 and st["zero_frac"] == 0.01


def test_no_rest_rows_passes_with_a_note(tmp_path):
    res = run_checks(write(str(tmp_path / "plain.db"), [("kalshi", 0, snap(1, "0.4000", "0.5000"))], []),
                     ["freshness"]).result("freshness")
    assert res.status == "pass" and not res.findings and res.stats["by_key"] == []
    assert any("--rest-poll" in n for n in res.notes)


def test_a_single_settlement_fetch_is_not_a_poller(tmp_path):
    # harness record fetches /markets/{ticker} once after the close for its settlement value
    m = "KXBTC15M-26NOV250045-45"
    res = run_checks(write(str(tmp_path / "settle.db"), [("kalshi", 0, snap(1, "0.4000", "0.5000"))],
                           [("kalshi", f"{REST}/markets/{m}", 30, market_body("0.4000", "0.5000"))]),
                     ["freshness"]).result("freshness")
    assert res.status == "pass" and not res.findings and res.stats["by_key"] == []


def test_rest_ahead_of_the_stream_is_measured_in_reverse():
    tr = Track()
    tr.stream(0, Decimal("1"))
    for i in range(5):
        tr.polled((10 * i + 1) * S, Decimal(i + 2))  # REST first ...
        tr.stream((10 * i + 5) * S, Decimal(i + 2))  # ... the stream 4 s later
    assert tr.to_stream == [4.0] * 5


def test_distribution_of_uniform_pieces():
    d = distribution([(0.0, 4.0, 4.0)], zero_s=0.0)
    assert d["mean_s"] == 2.0 and d["p50_s"] == 2.0 and d["p90_s"] == 3.6 and d["max_s"] == 4.0


@pytest.mark.parametrize("venue,url,body,want", [
    ("coinbase", "https://api.exchange.coinbase.com/products/BTC-USD/ticker",
     '{"ask":"67001.5","bid":"67001.4","volume":"1","trade_id":1,"price":"67001.45","size":"0.1","time":"2026-01-01T00:00:00Z"}',
     ("BTC-USD", {"bid": "67001.4", "ask": "67001.5", "last": "67001.45"})),
    ("kraken", "https://api.kraken.com/0/public/Ticker?pair=XBTUSD",
     '{"error":[],"result":{"XXBTZUSD":{"a":["67001.50000","1","1.000"],"b":["67001.40000","2","2.000"],"c":["67001.45000","0.1"]}}}',
     ("XBTUSD", {"bid": "67001.4", "ask": "67001.5", "last": "67001.45"})),
    ("bitstamp", "https://www.bitstamp.net/api/v2/ticker/btcusd/",
     '{"timestamp":"1","last":"67001.45","bid":"67001.4","ask":"67001.5"}',
     ("btcusd", {"bid": "67001.4", "ask": "67001.5", "last": "67001.45"})),
    ("gemini", "https://api.gemini.com/v1/pubticker/btcusd",
     '{"bid":"67001.4","ask":"67001.5","volume":{"BTC":"1","timestamp":1},"last":"67001.45"}',
     ("btcusd", {"bid": "67001.4", "ask": "67001.5", "last": "67001.45"})),
    ("cryptocom", "https://api.crypto.com/exchange/v1/public/get-tickers?instrument_name=BTC_USD",
     '{"id":-1,"method":"public/get-tickers","code":0,"result":{"data":[{"i":"BTC_USD","a":"67001.45","b":"67001.4","k":"67001.5","t":1}]}}',
     ("BTC_USD", {"bid": "67001.4", "ask": "67001.5", "last": "67001.45"})),
    ("kalshi", f"{REST}/markets/{M}/orderbook",
     '{"orderbook_fp":{"yes_dollars":[["0.3900","5.00"],["0.4100","1.00"]],"no_dollars":[["0.5500","2.00"]]}}',
     (M, {"yes_bid": "0.4100", "yes_ask": "0.4500"})),
])
def test_rest_ticker_parsing(venue, url, body, want):
    [(inst, fields)] = parse_rest(venue, url, body)
    assert inst == want[0] and (venue == "kalshi" or norm_instrument(inst) == "BTCUSD")
    assert fields == {k: Decimal(v) for k, v in want[1].items()}


def test_discovery_and_errors_are_not_polls():
    assert parse_rest("kalshi", f"{REST}/markets?series_ticker=KXBTC15M", '{"markets":[]}') == []
    assert parse_rest("coinbase", "https://api.exchange.coinbase.com/products/BTC-USD/ticker", "<html>") == []
    assert parse_rest("kraken", "https://api.kraken.com/0/public/Ticker?pair=XBTUSD", '{"error":["EGeneral"],"result":{"X":{}}}') == []


def test_check_cli_prints_the_freshness_table_json_and_html_plot(rec, tmp_path):
    import os
    import subprocess
    import sys

    html = tmp_path / "r.html"
    p = subprocess.run([sys.executable, "-m", "harness", "check", rec, "--only", "freshness", "--html", str(html)],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    assert "freshness: REST poller's view vs the stream" in p.stdout
    assert "kalshi" in p.stdout and "coinbase" in p.stdout
    page = html.read_text()
    assert f"freshness: kalshi {M} yes_bid" in page and page.count("data:image/png;base64,") == 2
    j = subprocess.run([sys.executable, "-m", "harness", "check", rec, "--only", "freshness", "--json"],
                       capture_output=True, text=True, timeout=60)
    doc = json.loads(j.stdout)
    [fr] = doc["checks"]
    assert fr["name"] == "freshness" and fr["stats"]["venues"]["kalshi"]["poll_interval_s"] == 5.0


def test_venue_from_the_url_when_the_row_has_none():
    from harness.checks.freshness import poll_venue

    assert poll_venue(None, f"{REST}/markets/{M}/orderbook") == "kalshi"
    assert poll_venue("", "http://127.0.0.1:5/0/public/Ticker?pair=XBTUSD") == "kraken"
    assert poll_venue("bitstamp", "https://www.bitstamp.net/api/v2/order_book/btcusd/") is None
    assert poll_venue(None, f"{REST}/markets?series_ticker=KXBTC15M") is None


def test_real_kalshi_rest_bodies_parse(realdata):
    """The orderbook and market bodies in the real examples give the views' values."""
    seen = {"orderbook": 0, "market": 0}
    for line in (realdata / "kalshi_rest_examples.jsonl").read_text().splitlines():
        ex = json.loads(line)
        body = json.loads(ex["frame"])
        if "orderbook_fp" in body:
            [(inst, f)] = parse_rest("kalshi", f"{REST}/markets/KXFED-27APR-T4.25/orderbook", ex["frame"])
            ob = body["orderbook_fp"]
            assert f["yes_bid"] == max(Decimal(p) for p, _ in ob["yes_dollars"])
            assert f["yes_ask"] == 1 - max(Decimal(p) for p, _ in ob["no_dollars"])
            seen["orderbook"] += 1
        else:
            mk = body.get("raw_frame", body)
            [(inst, f)] = parse_rest("kalshi", f"{REST}/markets/{mk['ticker']}", json.dumps({"market": mk}))
            assert inst == mk["ticker"]
            assert f == {"yes_bid": Decimal(mk["yes_bid_dollars"]), "yes_ask": Decimal(mk["yes_ask_dollars"]),
                         "last": Decimal(mk["last_price_dollars"])}
            seen["market"] += 1
    assert seen["orderbook"] >= 2 and seen["market"] >= 3


def test_after_a_gap_the_ticker_stands_in_for_the_stale_book(tmp_path):
    def ticker(bid, ask):
        return json.dumps({"type": "ticker", "sid": 2, "msg": {"market_ticker": M, "market_id": "m1", "price_dollars": "0.4500",
                                                               "yes_bid_dollars": bid, "yes_ask_dollars": ask, "ts_ms": 1}})

    frames = [("kalshi", 0, snap(1, "0.4000", "0.5000")),
              ("kalshi", 1, ticker("0.3900", "0.5000")),  # ignored: the book is good
              ("kalshi", 2, delta(5, "0.4100")),  # seq 2..4 lost: the book is stale
              ("kalshi", 3, ticker("0.4200", "0.5000"))]
    http = [("kalshi", f"{REST}/markets/{M}", t, market_body(b, "0.5000")) for t, b in ((0.5, "0.4000"), (4, "0.4200"), (5, "0.4200"))]
    res = run_checks(write(str(tmp_path / "gap.db"), frames, http), ["freshness"]).result("freshness")
    bid = _row(res, "kalshi", "yes_bid")
    # 0.40 current 0.5-3 s, then stale 0 -> 1 s until the 4 s poll shows 0.42, then current
    assert bid["staleness"]["mean_s"] == round(0.5 / 4.5, 3) and bid["staleness"]["max_s"] == 1.0
    assert bid["stream_to_rest"]["n"] == 2 and bid["missed"] == 0


def _market(bid, status="active", close_time=None):
    mk = {"ticker": M, "status": status, "yes_bid_dollars": bid, "yes_ask_dollars": "0.5000", "last_price_dollars": "0.0000"}
    if close_time:
        mk["close_time"] = close_time
    return json.dumps({"market": mk})


_CLOSE_AT_10 = "2026-09-21T14:13:30Z"  # T0 + 10 s
_LIFECYCLE = json.dumps({"type": "market_lifecycle_v2", "sid": 4, "msg": {
    "market_ticker": M, "event_type": "determined", "result": "yes", "settlement_value": "1.0000"}})
_DELETE = json.dumps({"id": 6, "cmd": "update_subscription",
                      "params": {"sids": [1], "market_tickers": [M], "action": "delete_markets"}})


@pytest.mark.parametrize("how,end_s", [
    ("close_time", 10.0),  # the REST market's close_time passes
    ("lifecycle", 10.0),  # market_lifecycle_v2 determined on the stream
    ("unsubscribe", 10.0),  # our update_subscription delete_markets
    ("status", 11.0),  # a REST response says the market is closed: not measured itself
])
def test_a_market_is_measured_until_its_stream_ends(tmp_path, how, end_s):
    # simulate: after the close the stream stops while REST answers on (an emptied book, or
    # the last quote) until the settlement; that is not a poller's view of a live book
    from datetime import datetime

    assert datetime.fromisoformat(_CLOSE_AT_10.replace("Z", "+00:00")).timestamp() == T0 / S + 10
    frames = [("kalshi", 0, snap(1, "0.4000", "0.5000")), ("kalshi", 8, delta(2, "0.4100"))]
    if how == "lifecycle":
        frames.append(("kalshi", 10, _LIFECYCLE))
    if how == "unsubscribe":
        frames.append(("kalshi", 10, _DELETE, "out"))
    close = _CLOSE_AT_10 if how == "close_time" else None
    url = f"{REST}/markets/{M}"
    http = [("kalshi", url, t, _market("0.4000", close_time=close)) for t in (1, 6)]
    http += [("kalshi", url, t, _market("0.4000" if how != "status" else "0.0000", "closed" if how == "status" else "active",
                                        close)) for t in (11, 16, 21, 26)]
    res = run_checks(write(str(tmp_path / "end.db"), frames, http), ["freshness"]).result("freshness")
    bid = _row(res, "kalshi", "yes_bid")
    # REST 0.40 current 1-8 s, then stale 0 -> (end - 8) s until the stream ended (not 18 s at 26 s)
    stale = end_s - 8
    assert bid["span_s"] == end_s - 1 and bid["staleness"]["max_s"] == stale
    assert bid["staleness"]["mean_s"] == round(stale * stale / 2 / (end_s - 1), 3)
    assert bid["age"]["max_s"] == 5.0 and bid["polls"] == 3  # 1, 6 and the end
    assert res.stats["venues"]["kalshi"]["staleness"]["max_s"] == stale


def test_rest_ahead_on_a_recurring_value_is_not_stale_since_its_last_visit():
    # Kraken in rest_poll.db: a poll showed bid 83811.4, which the stream had left 100 s
    # before and showed again 0.2 s after the poll: REST was ahead, not 100 s stale
    one, two, three = Decimal(1), Decimal(2), Decimal(3)
    tr = Track()
    tr.stream(0, one)
    tr.polled(1 * S, one)
    tr.stream(2 * S, two)
    tr.polled(6 * S, two)  # REST stale 0 -> 4 s over 2-6 s
    tr.stream(7 * S, three)
    tr.polled(11 * S, one)  # stale 0 -> 4 s over 7-11 s; 1 left at 2 s, before the 6 s poll: ahead or stale? ...
    tr.stream(11 * S + S // 2, one)  # ... ahead: the stream shows it 0.5 s later
    tr.polled(16 * S, one)
    assert tr.segs == [(0.0, 4.0, 4.0)] * 2 and tr.ahead == 0.5 and tr.to_stream == [0.5]
    assert tr.zero == 1.0 + 1.0 + 4.5 and tr.to_rest == [1.0, 4.0]
    segs, zero, ahead = view_pieces([tr])  # the instrument's view agrees
    assert segs == tr.segs and zero == tr.zero and ahead == tr.ahead


def test_rest_going_back_to_an_old_value_the_stream_never_shows_again_is_stale():
    one, two, three = Decimal(1), Decimal(2), Decimal(3)
    tr = Track()
    tr.stream(0, one)
    tr.polled(1 * S, one)
    tr.stream(2 * S, two)
    tr.polled(6 * S, two)
    tr.polled(11 * S, one)  # left at 2 s: an old view (a lagging cache)
    tr.stream(12 * S, three)
    tr.polled(16 * S, three)
    assert tr.segs == [(0.0, 4.0, 4.0), (9.0, 14.0, 5.0)] and tr.ahead == 0.0
    assert view_pieces([tr])[0] == tr.segs
    tr.stream(30 * S, one)  # much later: not a REST-to-stream lag of 19 s
    assert tr.to_stream == []


def test_no_trade_yet_on_the_ticker_is_rests_last_price_zero(tmp_path):
    # the ticker says "price_dollars": "" before the first trade, REST last_price 0: both
    # "no last"; a trade at 3 s that REST shows at 11 s makes the 6 s poll 3 s stale
    ticker = json.dumps({"type": "ticker", "sid": 2, "msg": {"market_ticker": M, "market_id": "m1", "price_dollars": "",
                                                             "yes_bid_dollars": "0.4000", "yes_ask_dollars": "0.5000"}})
    trade = json.dumps({"type": "trade", "sid": 3, "msg": {"trade_id": "x", "market_ticker": M, "yes_price_dollars": "0.4500",
                                                           "no_price_dollars": "0.5500", "count_fp": "1.00", "taker_side": "yes"}})
    frames = [("kalshi", 0, ticker), ("kalshi", 3, trade)]
    http = [("kalshi", f"{REST}/markets/{M}", t, market_body("0.4000", "0.5000", last)) for t, last in
            ((1, "0.0000"), (6, "0.0000"), (11, "0.4500"))]
    res = run_checks(write(str(tmp_path / "notrade.db"), frames, http), ["freshness"]).result("freshness")
    last = _row(res, "kalshi", "last")
    assert last["rest_ahead_s"] == 0.0 and last["staleness"]["max_s"] == 8.0
    assert last["staleness"]["zero_frac"] == 0.2 and last["stream_to_rest"]["max_s"] == 8.0


def test_the_rest_poll_sample_is_stale_by_at_most_about_one_interval():
    # recordings/rest_poll.db: polls every 5 s of REST views the simulator refreshes every
    # second. Issue 10's acceptance: about half the interval on average, up to the interval
    # (+ the 1 s of the simulated REST view). It read 182 s (a closed market's emptied REST
    # book, a recurring price REST showed first) before the check ended markets with their
    # stream and the simulator timed REST answers within the span it served them.
    from pathlib import Path

    rec = Path(__file__).resolve().parents[2] / "recordings" / "rest_poll.db"
    venues_ = run_checks(str(rec), ["freshness"]).result("freshness").stats["venues"]
    assert set(venues_) == {"kalshi", "coinbase", "kraken", "bitstamp", "gemini"}
    for v, s in venues_.items():
        assert s["staleness"]["max_s"] <= 6.5, (v, s["staleness"])
        if v != "kalshi":  # Kalshi quotes sit still for seconds: often current, mean lower
            assert 1.0 <= s["staleness"]["mean_s"] <= 3.5, (v, s["staleness"])


def test_poll_interval_is_per_request_when_two_requests_feed_one_key(tmp_path):
    # Kalshi's yes_bid comes from /markets/{t} and, 10 ms later, /markets/{t}/orderbook: the
    # key's answers are 0.01 s and 4.99 s apart, the poller's interval is 5 s
    ob = json.dumps({"orderbook_fp": {"yes_dollars": [["0.4000", "10.00"]], "no_dollars": [["0.5000", "10.00"]]}})
    http = []
    for i in range(5):
        http += [("kalshi", f"{REST}/markets/{M}", 1 + 5 * i, market_body("0.4000", "0.5000")),
                 ("kalshi", f"{REST}/markets/{M}/orderbook", 1.01 + 5 * i, ob)]
    res = run_checks(write(str(tmp_path / "two.db"), [("kalshi", 0, snap(1, "0.4000", "0.5000"))], http),
                     ["freshness"]).result("freshness")
    assert res.stats["venues"]["kalshi"]["poll_interval_s"] == 5.0
    assert _row(res, "kalshi", "yes_bid")["polls"] == 10
