"""``harness simulate`` end to end over loopback (impersonation server + the real recorder),
and the committed sample recordings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.sim.session import DEFAULT_FAULTS, DEFAULT_SERVER_FAULTS, fault_plan, simulate
from harness.sim.source import norm

REPO = Path(__file__).resolve().parents[2]
START = "2026-11-25T05:44:20Z"  # the 05:45 close, its determination and settlement fetch fall inside
DATA = ("orderbook_snapshot", "orderbook_delta", "ticker", "trade", "market_lifecycle_v2", "l2_data/snapshot",
        "l2_data/update", "market_trades/update", "book/snapshot", "book/update", "trade/update",
        "diff_order_book/data", "live_trades/trade", "l2_updates", "trade")


def q(path, sql, *args):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def data_frames(path) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for venue, t, payload in q(path, "SELECT c.venue, f.t_wall_ns, f.payload FROM frames f JOIN connections c ON c.id = f.conn_id "
                                     f"WHERE f.dir = 'in' AND f.type IN ({','.join('?' * len(DATA))}) "
                                     "ORDER BY f.session_id, f.t_mono_ns, f.id", *DATA):
        out.setdefault(venue, []).append((t, norm(payload)))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("simrun")
    out = []
    for name in ("a", "b"):
        res = simulate(str(d / f"{name}.db"), minutes=1.0, seed=11, speed=30, start=START,
                       keep_source=str(d / f"{name}-source.db"), rest_poll=5.0)
        out.append((d / f"{name}.db", res))
    return out, d / "a-source.db"


def test_capture_is_a_simulate_session_recorded_through_the_wire(runs):
    a, res = runs[0][0]
    assert q(a, "SELECT mode FROM sessions") == [("simulate",)]
    venues = {v for (v,) in q(a, "SELECT venue FROM connections")}
    assert venues == {"kalshi", "coinbase", "kraken", "bitstamp", "gemini"}
    urls = [u for (u,) in q(a, "SELECT url FROM connections")]
    assert all(u.startswith("ws://127.0.0.1:") for u in urls)
    # handshakes, commands and pings went over the wire, as in a live recording
    types = {t for (t,) in q(a, "SELECT DISTINCT type FROM frames WHERE dir = 'out'")}
    assert {"cmd:subscribe", "subscribe", "bts:subscribe"} <= types
    assert q(a, "SELECT count(*) FROM frames WHERE opcode = 'ping' AND dir = 'in'")[0][0] >= 5  # Kalshi heartbeat pings
    hdrs = q(a, "SELECT request_headers FROM connections WHERE venue = 'kalshi'")[0][0]
    assert "KALSHI-ACCESS-SIGNATURE" in hdrs and "<redacted" in hdrs
    assert b"PRIVATE KEY" not in a.read_bytes()
    # market discovery by REST, the Bitstamp alignment snapshot and the settlement fetch
    http = [u for (u,) in q(a, "SELECT url FROM http")]
    assert any("/markets?series_ticker=KXBTC15M&status=open" in u for u in http)
    assert any(u.endswith("/api/v2/order_book/btcusd/") for u in http)
    bodies = [b for (b,) in q(a, "SELECT response_body FROM http WHERE url LIKE '%/markets/KXBTC15M-26NOV250045-45' "
                                 "ORDER BY t_recv_ns")]
    assert '"expiration_value"' in bodies[-1] and '"expiration_value"' not in bodies[0]
    # the close's determination went through the recorder (the market stays subscribed until then)
    assert q(a, "SELECT count(*) FROM frames WHERE type = 'market_lifecycle_v2' AND payload LIKE '%\"determined\"%'")[0][0] == 1
    # --rest-poll 5: the exchanges' tickers about every 5 simulated seconds
    polls = [t for (t,) in q(a, "SELECT t_recv_ns FROM http WHERE url LIKE '%/products/BTC-USD/ticker' ORDER BY t_recv_ns")]
    assert 8 <= len(polls) <= 14
    assert res.matched > 0.9 * res.frames


def test_data_frames_carry_their_simulated_receive_times(runs):
    a, source = runs[0][0][0], runs[1]
    got, want = data_frames(a), data_frames(source)
    for venue, frames in got.items():
        src = dict((p, t) for t, p in want[venue])
        exact = sum(1 for t, p in frames if src.get(p) == t)
        assert exact >= 0.99 * len(frames), venue
        ts = [t for t, _ in frames]
        assert ts == sorted(ts)
    span = q(a, "SELECT min(t_wall_ns), max(t_wall_ns) FROM frames")[0]
    assert 55e9 < span[1] - span[0] < 70e9  # one simulated minute, not 60 / 30 real seconds


def test_same_seed_same_payloads(runs):
    """Same seed: the same venue frames in the same order per venue. Frames the server
    builds itself are left out (a snapshot answering the recorder's ``get_snapshot`` lands
    wherever the request happened to arrive)."""
    (a, ra), (b, _) = runs[0]
    sent = {p for frames in data_frames(runs[1]).values() for _, p in frames}
    fa, fb = data_frames(a), data_frames(b)
    assert fa.keys() == fb.keys()
    for v in fa:
        # each stream starts when its client subscribes and the capture stops at a moment
        # of the (fast) clock: compare up to where both captures got
        end = min(fa[v][-1][0], fb[v][-1][0])
        pa = [p for t, p in fa[v] if p in sent and t <= end]
        assert pa == [p for t, p in fb[v] if p in sent and t <= end], v
        assert len(pa) > 0.9 * sum(1 for t, _ in fa[v] if t <= end)
        assert end > ra.start_ns + 50 * 10**9


def test_the_pipeline_finds_the_settlement_in_a_fresh_capture(runs):
    from harness.pipeline.stages import run_recording

    a = runs[0][0][0]
    ev = {e.ticker: e for e in run_recording(str(a)).evaluations}
    e = ev["KXBTC15M-26NOV250045-45"]
    assert e.settlement_value is not None and e.proxy_error is not None
    assert abs(e.proxy_error) < 50  # the proxy follows the simulated index


def test_fault_presets_and_bad_specs():
    assert fault_plan("default") == (DEFAULT_FAULTS, DEFAULT_SERVER_FAULTS)
    assert fault_plan(None)[1] is None
    assert fault_plan("drop=0.01,seed=3")[1] == "drop=0.01,seed=3"
    with pytest.raises(ConfigError):
        fault_plan("explode=1")


@pytest.mark.parametrize("args,word", [(["--minutes", "0"], "--minutes"), (["--faults", "explode=1"], "explode"),
                                       (["--start", "yesterday"], "--start")])
def test_cli_refuses_bad_input(tmp_path, capsys, args, word):
    from harness.cli import main

    with pytest.raises(SystemExit) as ei:
        main(["simulate", "-o", str(tmp_path / "x.db"), *args])
    err = capsys.readouterr().err
    assert ei.value.code == 2 and word in err and "Traceback" not in err
    assert not (tmp_path / "x.db").exists()


SAMPLE = REPO / "recordings" / "sample.db"
FAULTS = REPO / "recordings" / "faults.db"


@pytest.mark.skipif(not SAMPLE.exists(), reason="recordings/sample.db not built")
def test_committed_sample_replays_to_settlements_and_signals():
    from harness.pipeline.stages import run_recording

    assert SAMPLE.stat().st_size < 10_000_000
    p = run_recording(str(SAMPLE))
    fifteen = [e for e in p.evaluations if e.ticker.startswith("KXBTC15M-") and e.settlement_value is not None]
    assert fifteen and all(e.proxy_error is not None and abs(e.proxy_error) < 25 for e in fifteen)
    assert len(p.signals) > 0


@pytest.mark.skipif(not FAULTS.exists(), reason="recordings/faults.db not built")
def test_committed_faults_recording_shows_its_faults():
    from harness.checks.runner import run_checks

    rep = run_checks(str(FAULTS))
    codes = {(r.name, f.code) for r in rep.results for f in r.findings}
    assert ("format", "invalid_json") in codes
    assert ("sequence", "gap") in codes
    assert ("quality", "stale_venue") in codes
    assert q(FAULTS, "SELECT count(*) FROM connections WHERE close_code NOT IN (1000)")[0][0] >= 2
    assert q(FAULTS, "SELECT count(*) FROM events WHERE kind = 'reconnect'")[0][0] >= 2


def test_rest_answers_are_timed_within_the_span_the_server_gave_them(runs):
    # each REST answer in the capture is the source's answer in force at its receive time:
    # a REST view is never ahead of (or behind) the stream it was simulated with
    from bisect import bisect_right

    from harness.sim.source import rest_key

    (rows, src) = runs
    source: dict[tuple, list[tuple[int, str]]] = {}
    for url, t, body in q(src, "SELECT url, t_recv_ns, response_body FROM http ORDER BY t_recv_ns, id"):
        source.setdefault(rest_key(url), []).append((t, body))
    n = 0
    for url, ts, tr, body in q(rows[0][0], "SELECT url, t_sent_ns, t_recv_ns, response_body FROM http WHERE status = 200"):
        answers = source[rest_key(url)]
        i = bisect_right([t for t, _ in answers], tr) - 1
        assert i >= 0 and answers[i][1] == body, (url, tr)
        assert ts <= tr
        n += 1
    assert n >= 20  # market, orderbook and tickers polled every 5 s, the settlement fetch


def test_served_span_picks_the_nearest_span_of_that_body():
    from harness.sim.remap import served_span

    rows = [(10, 1), (20, 2), (30, 1), (40, 3)]
    assert served_span(rows, 2, 15) == (20, 30)  # early: moved to 20
    assert served_span(rows, 1, 27) == (30, 40)  # nearer the second span of body 1
    assert served_span(rows, 1, 12) == (10, 20)  # inside
    assert served_span(rows, 3, 99) == (40, None)  # the last answer stays in force
    assert served_span(rows, 4, 12) is None  # not from the source: left where it was mapped
