"""Hostile frame contents for every venue: invalid UTF-8, deep nesting, a 50 MB frame,
binary where text is expected, overflowing numbers, NaN/Infinity, unknown types. Decoders
report them (DecodeError or findings) and go on; `harness check` on a recording holding
them reports and still sees what comes after (a sequence gap placed behind them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import venues
from harness.errors import HarnessError
from tests.helpers import make_recording
from tests.reliability.streamer import REPO

T0 = 1_795_000_000_000_000_000
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJ = '{"type":"ticker","msg":' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}"

# Payloads that are hostile to any JSON venue decoder.
GENERIC = {
    "invalid_utf8": b'{"type":"ticker","msg":{"x":"\xff\xfe"}}',
    "binary_garbage": bytes(range(256)) * 4,
    "deep_array": DEEP,
    "deep_object": DEEP_OBJ,
    "nan_infinity": '{"type":"ticker","sid":1,"seq":1,"price":NaN,"size":Infinity,"x":-Infinity}',
    "huge_exponent": '{"type":"ticker","sid":1,"seq":1e999999,"msg":{"price":1e999999}}',
    "huge_integer": '{"type":"ticker","sid":1,"seq":' + "9" * 5000 + "}",
    "unknown_type": '{"type":"no_such_type_at_all","channel":"nope","event":"nope"}',
    "not_an_object": '"just a string"',
    "empty": "",
    "truncated": '{"type":"orderbook_delta","sid":1,"seq":2,"msg":{"market_ticker":"K',
    "wrong_types": '{"type":"orderbook_delta","sid":"one","seq":[2],"msg":{"market_ticker":7,"price_dollars":{},"delta_fp":null,"side":5}}',
    "null": "null",
}

# Venue-shaped payloads with hostile numbers in the fields the books use.
SHAPED = {
    "kalshi": '{"type":"orderbook_delta","sid":1,"seq":3,"msg":{"market_ticker":"KXBTC15M-26NOV250100-00",'
              '"price_dollars":"1e999999","delta_fp":"NaN","side":"yes"}}',
    "coinbase": '{"channel":"l2_data","sequence_num":99999999999999999999999,"events":[{"type":"update",'
                '"product_id":"BTC-USD","updates":[{"side":"bid","price_level":"Infinity","new_quantity":"1e400"}]}]}',
    "kraken": '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":1e999,"qty":NaN}],'
              '"asks":[],"checksum":99999999999999999999,"timestamp":"not a time"}]}',
    "bitstamp": '{"event":"data","channel":"diff_order_book_btcusd","data":{"microtimestamp":"1e400",'
                '"bids":[["NaN","Infinity"]],"asks":[[1,2,3]]}}',
    "gemini": '{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","1e99999","NaN"],["sell"]]}',
    "cryptocom": '{"id":-1,"method":"subscribe","code":0,"result":{"channel":"book","instrument_name":"BTC_USD",'
                 '"data":[{"bids":[["Infinity","NaN","x"]],"asks":null,"u":1e999,"pu":"x"}]}}',
}

VENUES = ["kalshi", "coinbase", "kraken", "bitstamp", "gemini", "cryptocom"]


def _cases(venue):
    cases = dict(GENERIC)
    cases["shaped"] = SHAPED[venue]
    return cases


@pytest.mark.parametrize("venue", VENUES)
def test_decoders_report_hostile_frames_and_go_on(venue):
    v = venues.get(venue)
    session = v.new_session()
    for i, (name, payload) in enumerate(_cases(venue).items(), start=1):
        try:
            v.classify(payload)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{venue}.classify raised on {name}: {type(e).__name__}: {e}")
        try:
            session.feed(payload, i)
        except HarnessError:
            pass  # DecodeError: reported, the caller goes on
        except RecursionError:
            pytest.fail(f"{venue}: {name} exhausted the stack")
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{venue}.feed raised {type(e).__name__} (not a DecodeError) on {name}: {str(e)[:200]}")


def test_a_50_mb_frame_is_decoded_or_refused_cleanly():
    big = '{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"market_ticker":"' + "K" * (50 * 1024 * 1024) + '"}}'
    for venue in VENUES:
        v = venues.get(venue)
        v.classify(big)
        try:
            v.new_session().feed(big, 1)
        except HarnessError:
            pass


def _kalshi_delta(seq: int) -> str:
    return json.dumps({"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": {
        "market_ticker": "KXBTC15M-26NOV250100-00", "price_dollars": "0.4800", "delta_fp": "1.00", "side": "yes"}})


def test_check_on_a_recording_of_hostile_frames_reports_and_goes_on(tmp_path):
    rec = tmp_path / "hostile_frames.db"
    frames = []
    t = T0
    snap = json.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": {
        "market_ticker": "KXBTC15M-26NOV250100-00", "yes_dollars_fp": [["0.4800", "10.00"]],
        "no_dollars_fp": [["0.5000", "10.00"]]}})
    frames.append(("kalshi", "in", t, t - T0, snap))
    for venue in VENUES:
        for payload in _cases(venue).values():
            t += 1_000_000
            op = "binary" if isinstance(payload, bytes) else "text"
            frames.append((venue, "in", t, t - T0, payload, op))
    # Bytes in a text frame (invalid UTF-8 as the recorder stores it) for every venue.
    for venue in VENUES:
        t += 1_000_000
        frames.append((venue, "in", t, t - T0, b'{"type":"x","v":"\xc3\x28"}', "text"))
    # After all that, normal traffic with one sequence gap (seq 2, 3, then 5): the checks
    # must still be running to see it.
    for seq in (2, 3, 5, 6):
        t += 1_000_000
        frames.append(("kalshi", "in", t, t - T0, _kalshi_delta(seq)))
    make_recording(rec, frames, venue_urls={"kalshi": "wss://api.elections.kalshi.com/trade-api/ws/v2"})
    r = subprocess.run([sys.executable, "-m", "harness", "check", "--json", str(rec)], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 1, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    findings = [(c["name"], f["code"], f.get("venue"), f.get("message", "")) for c in doc["checks"] for f in c["findings"]]
    gap = [f for f in findings if f[0] == "sequence" and f[1] == "gap" and f[2] == "kalshi" and "expected 4" in f[3]]
    assert gap, f"the gap after the hostile frames was not seen: {findings}"
    assert any(f[0] == "format" for f in findings), findings  # the hostile frames themselves are reported
