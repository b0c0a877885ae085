"""Kalshi venue: classify, decode, eras, commands, sequencing, books, session, discovery."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from harness import venues
from harness.errors import DecodeError, HarnessError
from harness.venues import kalshi as k
from harness.venues import kalshi_markets as km
from harness.venues.base import BookMessage, Message, OtherMessage, TradeMessage

D = Decimal


@pytest.fixture(scope="module")
def frames(realdata):
    return [json.loads(line) for line in (realdata / "kalshi_frames.jsonl").read_text().splitlines() if line.strip()]


def _current_or_real(r) -> bool:
    p = r["provenance"]
    return p.startswith(("real_capture", "official_docs_example", "official_asyncapi_example", "test_fixture"))


# --------------------------------------------------------------------------- venue contract


def test_venue_registry_and_endpoints():
    v = venues.get("kalshi")
    assert v is k.VENUE and v.name == "kalshi" and v.ws_path == "/trade-api/ws/v2"
    e = v.endpoints
    assert "wss://external-api-ws.kalshi.com/trade-api/ws/v2" in e.ws_prod
    assert "wss://api.elections.kalshi.com/trade-api/ws/v2" in e.ws_prod
    assert e.ws_demo == ("wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2", "wss://demo-api.kalshi.co/trade-api/ws/v2")
    assert e.classify_url("https://api.elections.kalshi.com/trade-api/v2/markets") == "prod"
    assert e.classify_url("https://demo-api.kalshi.co/trade-api/v2") == "demo"
    assert e.classify_url("wss://api.kalshi.com/trade-api/ws/v2") == "dead"
    assert e.classify_url("https://trading-api.kalshi.com/v1") == "dead"
    assert e.classify_url("wss://example.com/") == "unknown"


# --------------------------------------------------------------------------- real frames


@pytest.mark.realdata
def test_every_real_and_docs_frame_classifies_and_decodes(frames):
    checked = 0
    for i, r in enumerate(frames):
        if not _current_or_real(r):
            continue
        assert k.classify(r["frame"]) == r["type"], i
        assert k.classify(r["frame"].encode()) == r["type"], i
        if not r["valid_json"]:
            with pytest.raises(DecodeError, match="truncated"):
                k.decode(r["frame"])
            continue
        msgs = k.decode(r["frame"])
        assert len(msgs) == 1 and isinstance(msgs[0], Message), i
        assert msgs[0].type == r["type"], i
        checked += 1
    assert checked > 140


@pytest.mark.realdata
def test_truncated_frame_gives_clear_error(frames):
    bad = [r for r in frames if not r["valid_json"]]
    assert len(bad) == 1
    with pytest.raises(DecodeError) as ei:
        k.decode(bad[0]["frame"])
    text = str(ei.value)
    assert "orderbook_delta" in text and "truncated" in text and "frame starts" in text
    assert k.detect_era(bad[0]["frame"]) == "legacy"  # Aug 2025 cents-era, judged from its keys


@pytest.mark.realdata
def test_cents_era_frames_are_reported_legacy(frames, reference):
    from harness.venues.kalshi_spec import diff_specs

    # fields the 2026-03-12 removal took out, straight from the two specs
    d = diff_specs(reference / "kalshi/asyncapi-2026-01-31.yaml", reference / "kalshi/asyncapi.yaml")
    removed = {t: {p.split(".", 1)[1] for p in td.removed if p.startswith("msg.") and "." not in p[4:] and "[" not in p}
               for t, td in d.types.items() if td.status == "changed"}
    assert removed["orderbook_delta"] == {"price", "delta"}
    n = 0
    for i, r in enumerate(frames):
        if not r["valid_json"]:
            continue
        obj = json.loads(r["frame"])
        msg = obj.get("msg") if isinstance(obj.get("msg"), dict) else {}
        gone = removed.get(obj.get("type"), set()) & set(msg)
        if not gone:
            continue
        n += 1
        rep = k.era_report(r["frame"])
        assert rep.era in ("legacy", "mixed"), (i, rep)
        assert set(rep.legacy_fields) == gone, (i, rep, gone)
        decoded = k.decode(r["frame"])[0]
        if hasattr(decoded, "legacy"):
            assert decoded.legacy, i
    assert n >= 40
    # the real Feb 2026 / Nov 2024 captures are cents-era, the Jul/Aug 2026 ones current
    for r in frames:
        p = r["provenance"]
        if "Feb 2026 production" in p or "2024-11-26" in p:
            assert k.is_cents_era(r["frame"]), p
        if "2026-08-27" in p or "Jul 2026" in p:
            assert k.detect_era(r["frame"]) == "current", p


@pytest.mark.realdata
def test_real_frames_decode_to_expected_values(frames):
    by_src = {r["source"]: r["frame"] for r in frames}

    def one(substr):
        (f,) = [v for s, v in by_src.items() if substr in s and "2026-08-27" not in s] or [None]
        return f

    snap = next(r["frame"] for r in frames if "VERBATIM" in r["provenance"] and r["type"] == "orderbook_snapshot" and "KXGOLDH" in r["frame"])
    m = k.decode(snap)[0]
    assert isinstance(m, BookMessage) and m.snapshot and m.seq == 1 and m.sid == 1
    assert m.yes == [(D("0.0100"), D("1410.00"))]
    assert m.no == [(D("0.0100"), D("100.00")), (D("0.0200"), D("2500.00"))]
    asks = sorted(lv.price for lv in m.levels if lv.side == "ask")
    assert asks == [D("0.9800"), D("0.9900")]
    delta = next(r["frame"] for r in frames if "VERBATIM" in r["provenance"] and r["type"] == "orderbook_delta")
    d = k.decode(delta)[0]
    assert (d.side, d.price, d.delta, d.seq) == ("yes", D("0.0100"), D("10.00"), 2)
    assert d.venue_ts_ns == 1787838983996 * 1_000_000
    empty = next(r["frame"] for r in frames if '"market_id":""' in r["frame"])
    e = k.decode(empty)[0]
    assert e.yes == [] and e.no == [] and e.market_id == ""
    # ticker with price_dollars "" -> None; legacy cents converted
    t = k.decode(one("TICKER_ZERO_PRICE") or next(r["frame"] for r in frames if '"price_dollars":""' in r["frame"]))[0]
    assert t.price is None and t.yes_bid == D("0.3700") and t.legacy and t.clock == 6598272643
    assert t.venue_ts_ns == 1732579880 * 10**9
    # trade, legacy era: side from taker_side
    tr = next(k.decode(r["frame"])[0] for r in frames if '"seq":48' in r["frame"])
    assert isinstance(tr, TradeMessage) and tr.price == D("0.5700") and tr.size == D("90.00") and tr.side == "sell"
    assert tr.no_price == D("0.4300") and tr.instrument == "KXBTCD-26FEB1217-T67749.99"
    # ok reply with sid/seq, error
    ok = next(k.decode(r["frame"])[0] for r in frames if '"type":"ok","id":2' in r["frame"])
    assert ok.sid == 1 and ok.seq == 108 and ok.market_tickers[1] == "KXGOLDH-26AUG2711-T4617.99"
    err = next(k.decode(r["frame"])[0] for r in frames if '"type":"error","id":3' in r["frame"])
    assert err.code == 8 and err.meaning == "Unknown channel name" and not err.requires_resubscribe
    # lifecycle real capture: settlement value string
    lc = next(k.decode(r["frame"])[0] for r in frames if "determination_ts" in r["frame"] and "real" in r["provenance"])
    assert lc.event_type == "determined" and lc.settlement_value == D("0") and lc.seq == 279597
    # list_subscriptions reply
    ls = next(k.decode(r["frame"])[0] for r in frames if '"msg": [' in r["frame"] and '"type": "ok"' in r["frame"])
    assert ls.subscriptions == [("orderbook_delta", 1), ("ticker", 2), ("fill", 3)]
    # pretty-printed docs cfbenchmarks frame: nested "type" inside an escaped string
    cf = next(r["frame"] for r in frames if r["type"] == "cfbenchmarks_value")
    assert k.classify(cf) == "cfbenchmarks_value"
    assert isinstance(k.decode(cf)[0], OtherMessage)


# --------------------------------------------------------------------------- classify / decode


def test_classify_shapes():
    assert k.classify('{"type":"ticker","sid":1}') == "ticker"
    assert k.classify(b'{\n  "type" :\n "orderbook_delta"}') == "orderbook_delta"
    assert k.classify('{"id":1,"msg":{"type":"inner"},"type":"error"}') == "error"
    assert k.classify('[{"type":"x"}]') is None
    assert k.classify('{"id": 3, "cmd": "list_subscriptions"}') == "cmd:list_subscriptions"
    assert k.classify("") is None
    assert k.classify("not json") is None
    assert k.classify(b"\xff\xfe") is None
    assert k.classify(None) is None  # type: ignore[arg-type]
    assert k.classify('{"type": 5}') is None


def test_decode_errors_are_clear():
    with pytest.raises(DecodeError, match="not valid JSON"):
        k.decode("{nope")
    with pytest.raises(DecodeError, match="not an object"):
        k.decode("[1,2]")
    with pytest.raises(DecodeError, match="no string 'type'"):
        k.decode('{"sid":1}')
    with pytest.raises(DecodeError, match="not a decimal"):
        k.decode('{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"market_ticker":"A","price_dollars":"x","delta_fp":"1","side":"yes"}}')
    with pytest.raises(DecodeError, match="side must be"):
        k.decode('{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"market_ticker":"A","price_dollars":"0.1","delta_fp":"1","side":"up"}}')
    with pytest.raises(DecodeError, match=r"msg\.price_dollars"):
        k.decode('{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"market_ticker":"A","price_dollars":0.1,"delta_fp":"1","side":"yes"}}')
    with pytest.raises(DecodeError, match="finite"):
        k.decode('{"type":"trade","sid":1,"msg":{"market_ticker":"A","yes_price_dollars":"NaN","count_fp":"1"}}')


def test_legacy_delta_converts_cents():
    m = k.decode('{"type":"orderbook_delta","sid":1,"seq":3,"msg":{"market_ticker":"A","price":51,"delta":-1,"side":"no","ts":"2025-08-12T21:00:32.539836022Z"}}')[0]
    assert m.price == D("0.51") and m.delta == D(-1) and m.legacy
    assert m.venue_ts_ns == 1755032432539836022
    s = k.decode('{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"A","yes":[[8,300]],"no":[[54,20]]}}')[0]
    assert s.yes == [(D("0.08"), D(300))] and s.no == [(D("0.54"), D(20))] and s.legacy
    assert k.detect_era('{"type":"orderbook_snapshot","msg":{"yes":[[8,300]]}}') == "legacy"
    assert k.detect_era({"type": "ticker", "msg": {"price": 1, "price_dollars": "0.01"}}) == "mixed"
    assert k.detect_era('{"type":"ticker","msg":{"price_dollars":"0.01"}}') == "current"
    assert k.detect_era("garbage") == "unknown"


def test_rfc3339():
    assert k.rfc3339_to_ns("1970-01-01T00:00:01Z") == 10**9
    assert k.rfc3339_to_ns("1970-01-01T01:00:00+01:00") == 0
    assert k.rfc3339_to_ns("2026-08-27T13:56:23.996443Z") == 1787838983996443000
    assert k.rfc3339_to_ns("2026-13-01T00:00:00Z") is None
    assert k.rfc3339_to_ns("yesterday") is None


# --------------------------------------------------------------------------- commands


def test_commands_ids_and_shapes():
    c = k.KalshiCommands()
    s = json.loads(c.subscribe(["orderbook_delta", "ticker"], ["KXBTC15M-26JUL191145-45"], use_yes_price=False))
    assert s == {"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta", "ticker"], "market_tickers": ["KXBTC15M-26JUL191145-45"], "use_yes_price": False}}
    assert json.loads(c.add_markets(1, ["B"])) == {"id": 2, "cmd": "update_subscription", "params": {"sids": [1], "market_tickers": ["B"], "action": "add_markets"}}
    assert json.loads(c.delete_markets(1, ["B"]))["params"]["action"] == "delete_markets"
    assert json.loads(c.get_snapshot(1, ["A"]))["params"] == {"sids": [1], "market_tickers": ["A"], "action": "get_snapshot"}
    assert json.loads(c.unsubscribe([1, 2])) == {"id": 5, "cmd": "unsubscribe", "params": {"sids": [1, 2]}}
    assert json.loads(c.list_subscriptions()) == {"id": 6, "cmd": "list_subscriptions"}
    assert sorted(c.sent) == [1, 2, 3, 4, 5, 6] and c.sent[1].tickers == ["KXBTC15M-26JUL191145-45"]
    assert k.VENUE.subscribe_frames(["ticker"], ["A"]) == ['{"id":1,"cmd":"subscribe","params":{"channels":["ticker"],"market_tickers":["A"]}}']
    for frame in [c.subscribe(["trade"])]:
        assert k.parse_command(frame).cmd == "subscribe"


@pytest.mark.realdata
def test_parse_command_on_docs_examples(frames):
    for r in frames:
        if not r["type"].startswith("cmd:"):
            continue
        obj = json.loads(r["frame"])
        c = k.parse_command(r["frame"])
        assert "cmd:" + c.cmd == r["type"]
        assert c.id == obj.get("id")
        assert k.decode(r["frame"])[0].command == c


@pytest.mark.parametrize(
    "text,code",
    [
        ("nope", 1),
        ("[]", 1),
        ('{"id":1}', 5),
        ('{"id":1,"cmd":"dance"}', 5),
        ('{"id":1,"cmd":"subscribe"}', 2),
        ('{"id":1,"cmd":"subscribe","params":{}}', 3),
        ('{"id":1,"cmd":"subscribe","params":{"channels":["nope"]}}', 8),
        ('{"id":1,"cmd":"subscribe","params":{"channels":"ticker"}}', 11),
        ('{"id":"1","cmd":"subscribe","params":{"channels":["ticker"]}}', 11),
        ('{"id":1,"cmd":"subscribe","params":{"channels":["orderbook_delta"]}}', 14),
        ('{"id":1,"cmd":"unsubscribe","params":{}}', 4),
        ('{"id":1,"cmd":"update_subscription","params":{"sids":[1]}}', 15),
        ('{"id":1,"cmd":"update_subscription","params":{"sids":[1],"action":"fly"}}', 13),
        ('{"id":1,"cmd":"update_subscription","params":{"sids":[1,2],"action":"get_snapshot"}}', 12),
        ('{"id":1,"cmd":"subscribe","params":{"channels":["communications"],"shard_key":1}}', 20),
    ],
)
def test_parse_command_rejects(text, code):
    with pytest.raises(k.CommandError) as ei:
        k.parse_command(text)
    assert ei.value.code == code
    assert isinstance(ei.value, DecodeError)


def test_error_codes_and_resubscribe():
    assert k.error_requires_resubscribe(10) and k.error_requires_resubscribe(17) and k.error_requires_resubscribe(25)
    assert not k.error_requires_resubscribe(9) and not k.error_requires_resubscribe(None)
    assert k.ERROR_CODES[9][0] == "Authentication required"
    assert set(k.ERROR_CODES) == set(range(1, 29))


@pytest.mark.realdata
def test_error_table_matches_spec(reference):
    from harness.venues.kalshi_spec import error_codes, load_spec

    assert error_codes(load_spec(reference / "kalshi/asyncapi.yaml")) == k.ERROR_CODES


# --------------------------------------------------------------------------- sequencing


def test_seq_tracker():
    s = k.SeqTracker()
    assert s.observe(1, 1) is None and s.observe(1, 2) is None
    g = s.observe(1, 5)
    assert (g.kind, g.expected, g.got, g.key) == ("gap", 3, 5, "sid=1")
    assert s.observe(1, 6) is None
    assert s.observe(1, 6).kind == "duplicate"
    assert s.observe(1, 4).kind == "out_of_order"
    r = s.observe(1, 1)
    assert (r.kind, r.expected, r.got) == ("reset", 7, 1)
    assert s.observe(2, 3).kind == "gap"  # a new sid must start at 1
    s.reset()
    assert s.observe(1, 1) is None and s.observe(2, 1) is None


# --------------------------------------------------------------------------- book


def _snap(sid=1, seq=1, market="M", yes=(("0.40", "10.00"), ("0.42", "5.00")), no=(("0.55", "7.00"), ("0.50", "3.00"))):
    msg = {"market_ticker": market, "market_id": "x"}
    if yes:
        msg["yes_dollars_fp"] = [list(x) for x in yes]
    if no:
        msg["no_dollars_fp"] = [list(x) for x in no]
    return json.dumps({"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": msg})


def _delta(seq, price, delta, side, sid=1, market="M", ts_ms=1000):
    return json.dumps({"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": {"market_ticker": market, "market_id": "x", "price_dollars": price, "delta_fp": delta, "side": side, "ts_ms": ts_ms}})


def test_book_from_snapshot_and_deltas():
    sess = k.VENUE.new_session()
    _, f = sess.feed(_snap())
    assert f == []
    b = sess.books["M"]
    assert b.best_yes_bid() == (D("0.42"), D("5.00"))
    assert b.best_no_bid() == (D("0.55"), D("7.00"))
    assert b.yes_ask() == (D("0.45"), D("7.00"))
    assert b.no_ask() == (D("0.58"), D("5.00"))
    assert b.mid() == D("0.435")
    assert b.depth(1) == {"yes_bids": [(D("0.42"), D("5.00"))], "no_bids": [(D("0.55"), D("7.00"))], "yes_asks": [(D("0.45"), D("7.00"))]}
    assert len(b.depth(10)["no_bids"]) == 2 and not b.crossed()
    sess.feed(_delta(2, "0.42", "-5.00", "yes", ts_ms=1234))
    assert b.best_yes_bid() == (D("0.40"), D("10.00")) and b.last_update_ns == 1234 * 10**6
    sess.feed(_delta(3, "0.44", "2.50", "yes"))
    assert b.best_yes_bid() == (D("0.44"), D("2.50"))
    _, f = sess.feed(_delta(4, "0.50", "-4.00", "no"))
    assert [x.kind for x in f] == ["negative_size"] and D("0.50") not in b.no
    # crossing: a NO bid at 0.60 means YES ask 0.40 < best YES bid 0.44
    _, f = sess.feed(_delta(5, "0.60", "1.00", "no"))
    assert [x.kind for x in f] == ["crossed"] and b.crossed()
    _, f = sess.feed(_delta(6, "0.61", "1.00", "no"))
    assert f == []  # reported once on entering the crossed state


def test_snapshot_side_absent_when_empty():
    sess = k.KalshiSession()
    sess.feed(_snap(no=()))
    b = sess.books["M"]
    assert b.best_no_bid() is None and b.yes_ask() is None and b.no_ask() == (D("0.58"), D("5.00"))
    assert not b.crossed()


def test_use_yes_price_subscription_stores_no_side_in_no_pricing():
    sess = k.KalshiSession()
    sess.commands.subscribe(["orderbook_delta"], ["M"], use_yes_price=True)
    sess.feed('{"type":"subscribed","id":1,"msg":{"channel":"orderbook_delta","sid":1}}')
    sess.feed(_snap(no=(("0.45", "7.00"),)))  # yes-leg pricing: YES ask 0.45
    assert sess.books["M"].yes_ask() == (D("0.45"), D("7.00"))


def test_session_gap_marks_stale_and_builds_get_snapshot():
    sess = k.KalshiSession()
    sub = sess.commands.subscribe(["orderbook_delta"], ["M", "N"])
    assert json.loads(sub)["id"] == 1
    sess.feed('{"type":"subscribed","id":1,"msg":{"channel":"orderbook_delta","sid":1}}')
    assert sess.subs[1].channel == "orderbook_delta" and sess.subs[1].markets == {"M", "N"}
    sess.feed(_snap(seq=1))
    sess.feed(_snap(seq=2, market="N"))
    _, f = sess.feed(_delta(3, "0.40", "1.00", "yes"))
    assert f == []
    _, f = sess.feed(_delta(5, "0.40", "1.00", "yes"), frame_id=77)
    assert [(x.kind, x.expected, x.got, x.frame_id) for x in f] == [("gap", 4, 5, 77)]
    assert "get_snapshot" in f[0].detail
    assert sess.books["M"].stale and sess.books["N"].stale
    assert sess.pending_resync == {1: {"M", "N"}}
    (frame,) = sess.resync_frames()
    assert json.loads(frame) == {"id": 2, "cmd": "update_subscription", "params": {"sids": [1], "market_tickers": ["M", "N"], "action": "get_snapshot"}}
    sess.feed(_snap(seq=6))
    assert not sess.books["M"].stale
    _, f = sess.feed(_delta(6, "0.40", "1.00", "yes"))
    assert [x.kind for x in f] == ["duplicate"]
    # ok reply is part of the sid's sequence and updates the market list
    _, f = sess.feed('{"type":"ok","id":2,"sid":1,"seq":7,"msg":{"market_tickers":["M","N","P"]}}')
    assert f == [] and sess.subs[1].markets == {"M", "N", "P"}
    # reconnect: sequences restart at 1
    sess.reset()
    assert sess.books["M"].stale and json.loads(sess.commands.list_subscriptions())["id"] == 1
    _, f = sess.feed(_snap(seq=1))
    assert f == [] and not sess.books["M"].stale


def test_session_reset_finding_and_errors():
    sess = k.KalshiSession()
    sess.feed(_snap(seq=1))
    sess.feed(_delta(2, "0.40", "1.00", "yes"))
    _, f = sess.feed(_snap(seq=1))
    assert [x.kind for x in f] == ["reset"]
    sess.commands.subscribe(["ticker"], ["M"])
    _, f = sess.feed('{"id":1,"type":"error","msg":{"code":17,"msg":"Internal error"}}')
    assert [x.kind for x in f] == ["terminal_error"] and "resubscribe" in f[0].detail
    _, f = sess.feed('{"id":9,"type":"error","msg":{"code":9,"msg":"Authentication required"}}')
    assert [x.kind for x in f] == ["auth_required"]
    _, f = sess.feed('{"id":1,"sid":1,"seq":3,"type":"unsubscribed"}')
    assert 1 not in sess.subs
    _, f = sess.feed(_delta(1, "0.40", "1.00", "yes", market="Z", sid=9))
    assert [x.kind for x in f] == ["delta_before_snapshot"]


@pytest.mark.realdata
def test_session_on_real_demo_capture(frames):
    real = [r["frame"] for r in frames if "VERBATIM" in r["provenance"]]
    sess = k.KalshiSession()
    sess.note_sent('{"id":1,"cmd":"subscribe","params":{"channels":["orderbook_delta"],"market_ticker":"KXGOLDH-26AUG2711-T4615.99"}}')
    allf = []
    for i, fr in enumerate(real):
        _, f = sess.feed(fr, frame_id=i)
        allf += f
    b = sess.books["KXGOLDH-26AUG2711-T4615.99"]
    # the snapshot (seq 1) + delta (seq 2): +10 at 0.01 on YES
    assert b.best_yes_bid() == (D("0.0100"), D("1420.00"))
    assert b.yes_ask() == (D("0.9800"), D("2500.00"))  # matches the real ticker's yes_ask_dollars
    kinds = [(f.kind, f.key) for f in allf]
    # the ok reply jumps from seq 2 to 108 (the excerpt skips frames), then a second snapshot restarts at 1
    assert ("gap", "sid=1") in kinds and ("reset", "sid=1") in kinds


# --------------------------------------------------------------------------- markets


def test_parse_tickers():
    t = km.parse_ticker("KXBTC15M-26JUL191145-45")
    assert (t.series, t.event_ticker, t.suffix) == ("KXBTC15M", "KXBTC15M-26JUL191145", "45")
    assert t.close_time == datetime(2026, 7, 19, 11, 45, tzinfo=km.ET)
    assert t.close_ns == int(datetime(2026, 7, 19, 15, 45, tzinfo=UTC).timestamp()) * 10**9
    d = km.parse_ticker("KXBTCD-26FEB1217-T67749.99")
    assert d.suffix == "T67749.99" and d.strike == D("67749.99") and d.strike_kind == "T"
    assert d.close_time == datetime(2026, 2, 12, 17, 0, tzinfo=km.ET)
    assert d.close_ns == int(datetime(2026, 2, 12, 22, 0, tzinfo=UTC).timestamp()) * 10**9  # EST
    f = km.parse_ticker("KXFED-27APR-T4.25")
    assert f.close_time is None and f.strike == D("4.25")
    with pytest.raises(DecodeError):
        km.parse_ticker("lower-case")


def test_15m_rollover():
    at = int(datetime(2026, 7, 19, 15, 37, 12, tzinfo=UTC).timestamp()) * 10**9
    tk, close = km.next_kxbtc15m(at)
    assert tk == "KXBTC15M-26JUL191145-45" and close == datetime(2026, 7, 19, 11, 45, tzinfo=km.ET)
    exactly = int(datetime(2026, 7, 19, 15, 45, tzinfo=UTC).timestamp()) * 10**9
    assert km.next_kxbtc15m(exactly)[0] == "KXBTC15M-26JUL191200-00"
    assert km.parse_ticker(tk).close_time == close
    # across the DST change (2026-11-01 01:45 EDT -> 01:00 EST)
    nov = int(datetime(2026, 11, 1, 5, 50, tzinfo=UTC).timestamp()) * 10**9
    assert km.next_kxbtc15m(nov)[0] == "KXBTC15M-26NOV010100-00"


def test_markets_page_and_pick_open():
    body = json.dumps({
        "markets": [
            {"ticker": "KXBTC15M-26JUL191145-45", "status": "active", "open_time": "2026-07-19T15:30:00Z", "close_time": "2026-07-19T15:45:00Z", "yes_bid_dollars": "0.4500", "floor_strike": 117000.12},
            {"ticker": "KXBTC15M-26JUL191200-00", "status": "initialized", "open_time": "2026-07-19T15:45:00Z", "close_time": "2026-07-19T16:00:00Z"},
            {"ticker": "KXBTC15M-26JUL191130-30", "status": "closed", "open_time": "2026-07-19T15:15:00Z", "close_time": "2026-07-19T15:30:00Z"},
            {"ticker": "KXBTCD-26JUL1912-T117999.99", "status": "active", "open_time": "2026-07-18T16:00:00Z", "close_time": "2026-07-19T16:00:00Z"},
        ],
        "cursor": "abc",
    })
    page = km.parse_markets_response(body)
    assert page.cursor == "abc" and len(page.markets) == 4
    at = int(datetime(2026, 7, 19, 15, 40, tzinfo=UTC).timestamp()) * 10**9
    cur = km.current_market(page.markets, "KXBTC15M", at)
    assert cur.ticker == "KXBTC15M-26JUL191145-45" and cur.dec("yes_bid_dollars") == D("0.45")
    assert cur.dec("floor_strike") == D("117000.12")
    assert [m.ticker for m in km.open_markets(page.markets, "KXBTCD", at)] == ["KXBTCD-26JUL1912-T117999.99"]
    assert km.parse_markets_response('{"markets":[],"cursor":""}').cursor is None
    with pytest.raises(DecodeError):
        km.parse_markets_response('{"markets": 5}')


@pytest.mark.realdata
def test_real_rest_market_objects(realdata):
    for line in (realdata / "kalshi_rest_examples.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "market object" not in r["type"]:
            continue
        obj = json.loads(r["frame"])
        obj = obj.get("raw_frame", obj)
        m = km.market_from_obj(obj)
        assert m.ticker and m.close_ns is not None and m.status == "active"


def test_decode_only_raises_harness_errors_on_odd_inputs():
    for bad in [b"", "{}", '{"type":"ticker"}', '{"type":"ticker","msg":[]}', '{"type":"ok","msg":5}', '{"type":"error","msg":{"code":"x"}}', '{"type":"orderbook_snapshot","msg":{"market_ticker":"A","yes_dollars_fp":[["1"]]}}']:
        with pytest.raises(HarnessError):
            k.decode(bad)
