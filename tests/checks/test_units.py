"""Endpoint, auth, config, aggregation and live use without a recording."""

from __future__ import annotations

import pytest

from harness.checks import CheckConfig, Runner, load_config
from harness.checks.base import Aggregator, Finding
from harness.errors import ConfigError
from harness.frame import Frame

T0 = 1_786_309_200_000_000_000
KWS = "wss://external-api-ws.kalshi.com/trade-api/ws/v2"


def _run(conns, frames=(), events=(), only=None, cfg=None):
    r = Runner(only, cfg)
    r.start(conns, events)
    live = []
    for f in frames:
        live.extend(r.on_frame(f))
    return r.finish(), live


def _conn(cid=1, venue="kalshi", url=KWS, status=101, headers=None, opened=T0):
    return {"id": cid, "venue": venue, "url": url, "response_status": status, "request_headers": headers, "opened_ns": opened}


def _hdrs(ts_ms=T0 // 1_000_000, key="<redacted len=36>", sig="<redacted len=344>"):
    h = {"KALSHI-ACCESS-TIMESTAMP": str(ts_ms)}
    if key:
        h["KALSHI-ACCESS-KEY"] = key
    if sig:
        h["KALSHI-ACCESS-SIGNATURE"] = sig
    return h


def test_endpoint_codes():
    conns = [
        _conn(1, url="wss://api.kalshi.com/trade-api/ws/v2"),
        _conn(2, url="wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"),
        _conn(3, url="wss://external-api-ws.kalshi.com/ws"),
        _conn(4, url="ws://127.0.0.1:8765/trade-api/ws/v2"),
        _conn(5, venue="coinbase", url="wss://example.com/feed"),
        _conn(6, status=503),
    ]
    rep, _ = _run(conns, only=["endpoint"])
    codes = {(f.code, f.conn_id) for f in rep.result("endpoint").findings}
    assert {("dead_endpoint", 1), ("demo_endpoint", 2), ("wrong_path", 3), ("local_endpoint", 4),
            ("unknown_endpoint", 5), ("handshake_failed", 6)} <= codes
    assert rep.exit_code == 1


def test_auth_good_headers_pass():
    rep, _ = _run([_conn(headers=_hdrs())], only=["auth"])
    res = rep.result("auth")
    assert res.status == "pass" and res.stats["headers_checked"] == 1


@pytest.mark.parametrize(
    "headers,status,code,cause",
    [
        (_hdrs(ts_ms=T0 // 1_000_000 - 120_000), 401, "clock_skew", "clock skew"),
        (_hdrs(ts_ms=T0 // 1_000_000_000), 401, "timestamp_format", "seconds"),
        (_hdrs(key=None), 401, "missing_headers", "missing KALSHI-ACCESS-KEY"),
        (_hdrs(sig="<redacted len=100>"), 403, "signature_shape", "malformed signature"),
        (_hdrs(), 401, "upgrade_rejected", "demo key on prod"),
    ],
)
def test_auth_rejections_name_likely_cause(headers, status, code, cause):
    rep, _ = _run([_conn(headers=headers, status=status)], only=["auth"])
    fs = rep.result("auth").findings
    assert code in {f.code for f in fs}
    rej = [f for f in fs if f.code == "upgrade_rejected"]
    assert rej and cause in rej[0].message and str(status) in rej[0].message


def test_auth_secret_in_clear_and_error_9_frame():
    err = '{"id":1,"type":"error","msg":{"code":9,"msg":"Authentication required"}}'
    fr = Frame("kalshi", 1, "in", T0 + 1, T0 + 1, "text", err, None, 7, 1)
    rep, live = _run([_conn(headers=_hdrs(key="a" * 36))], [fr], only=["auth"])
    codes = {f.code: f for f in rep.result("auth").findings}
    assert "secret_not_redacted" in codes
    assert codes["auth_required"].frame_id == 7
    assert any(f.code == "auth_required" for f in live)  # reported as it happened


def test_auth_401_error_event():
    ev = {"kind": "error", "conn_id": 1, "t_wall_ns": T0, "detail": {"venue": "kalshi", "phase": "handshake", "status": 401}}
    rep, _ = _run([_conn(headers=None, status=None)], events=[ev], only=["auth"])
    assert "upgrade_rejected" in {f.code for f in rep.result("auth").findings}


def test_live_runner_sequence_gap_and_format():
    frames = [
        '{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"KXBTC15M-26AUG091745-45","market_id":"m","yes_dollars_fp":[["0.4400","10.00"]],"no_dollars_fp":[["0.5200","5.00"]]}}',
        '{"type":"orderbook_delta","sid":1,"seq":3,"msg":{"market_ticker":"KXBTC15M-26AUG091745-45","market_id":"m","price_dollars":"0.4400","delta_fp":"1.00","side":"yes","ts_ms":1786309200000}}',
        '{"type":"orderbook_delta","sid":1,"seq":4,',
    ]
    fs = [Frame("kalshi", 1, "in", T0 + i, T0 + i, "text", p, None, 10 + i, 1) for i, p in enumerate(frames)]
    rep, live = _run([_conn()], fs, only=["format", "sequence"])
    assert [f.code for f in rep.result("sequence").findings] == ["gap"]
    assert rep.result("sequence").findings[0].frame_id == 11
    assert rep.result("format").findings[0].code == "invalid_json"
    assert rep.result("format").findings[0].frame_id == 12
    assert {f.code for f in live} == {"gap", "invalid_json"}


def test_aggregation_by_check_code_venue():
    agg = Aggregator(max_examples=2)
    for i in range(5):
        agg.add(Finding("sequence", "gap", "fail", f"gap {i}", venue="kalshi", frame_id=100 + i))
    agg.add(Finding("sequence", "gap", "fail", "gap", venue="kraken", frame_id=1))
    items = agg.sorted()
    assert len(items) == 2
    k = next(f for f in items if f.venue == "kalshi")
    assert (k.count, k.frame_id, k.frame_ids, k.last_frame_id) == (5, 100, [100, 101], 104)


def test_config_files_and_severity_overrides(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text('[tool.harness.checks]\nsilence_s = 5\n[tool.harness.checks.severity]\n"latency.*" = "off"\n[tool.harness.checks.venues.kalshi]\nsilence_s = 1\n')
    cfg = load_config(search_from=tmp_path)
    assert cfg.silence_s == 5 and cfg.for_venue("kalshi", "silence_s") == 1 and cfg.for_venue("kraken", "silence_s") == 5
    assert cfg.severity_for("latency", "silence", "fail") is None
    assert cfg.severity_for("sequence", "gap", "fail") == "fail"
    assert load_config(search_from="/").silence_s == CheckConfig().silence_s
    bad = tmp_path / "bad.toml"
    bad.write_text('mid_deviation = "high"\n')
    with pytest.raises(ConfigError):
        load_config(bad)
    with pytest.raises(ConfigError):
        Runner(["nope"])


def test_a_closed_connections_books_are_let_go(tmp_path):
    """A long run with many reconnects must not keep every old connection's books (the
    soak's memory): the peer's close frame ends the connection's session."""
    import json as _json

    from harness.checks.runner import Runner
    from harness.store.reader import Recording
    from tests.helpers import make_recording

    def l2(seq, kind):
        return _json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-11-25T00:00:00Z",
                            "sequence_num": seq, "events": [{"type": kind, "product_id": "BTC-USD", "updates": [
                                {"side": "bid", "event_time": "2026-11-25T00:00:00Z", "price_level": "60000.00",
                                 "new_quantity": "1.0"}]}]})

    t = 1_790_000_000_000_000_000
    path = tmp_path / "r.db"
    make_recording(path, [("coinbase", "in", t, 1, l2(0, "snapshot")), ("coinbase", "in", t + 1, 2, l2(1, "update")),
                          ("coinbase", "in", t + 2, 3, b"\x03\xe8", "close")])
    r = Runner(only=["sequence"])
    with Recording(path) as rec:
        r.start(rec.connections() if hasattr(rec, "connections") else ())
        frames = list(rec.frames())
    for f in frames[:-1]:
        r.on_frame(f)
    assert r.decoder.sessions  # the open connection's book is kept
    r.on_frame(frames[-1])
    assert not r.decoder.sessions and r.finish().exit_code == 0
