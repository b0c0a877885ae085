"""AsyncAPI validation with and without errata on real frames, and the spec diff."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.errors import SpecError
from harness.venues import kalshi_spec as ks

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def spec(reference):
    return ks.load_spec(reference / "kalshi/asyncapi.yaml")


@pytest.fixture(scope="module")
def old_spec(reference):
    return ks.load_spec(reference / "kalshi/asyncapi-2026-01-31.yaml")


@pytest.fixture(scope="module")
def frames(realdata):
    return [json.loads(x) for x in (realdata / "kalshi_frames.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def errata():
    return ks.default_kalshi_errata()


def _real(frames, substr):
    return [r["frame"] for r in frames if substr in r["provenance"] or substr in r["frame"]]


def test_spec_maps_types(spec, old_spec):
    for t in ("orderbook_snapshot", "orderbook_delta", "ticker", "trade", "ok", "error", "subscribed", "cmd:subscribe", "cmd:update_subscription"):
        assert t in spec.messages, t
    assert {m.name for m in spec.messages["ok"]} == {"okResponse", "listSubscriptionsResponse"}
    assert "ticker_v2" in old_spec.messages and "ticker_v2" not in spec.messages
    assert spec.version.startswith("3.")


def test_market_ticker_pattern_bug_shows_without_errata_and_not_with(spec, frames, errata):
    (delta,) = [f for f in _real(frames, "VERBATIM") if '"type":"orderbook_delta"' in f]
    bare = spec.validate(delta)
    assert [(f.path, f.kind) for f in bare.findings] == [("msg.market_ticker", "pattern")]
    assert not bare.ok
    fixed = spec.validate(delta, errata)
    assert fixed.findings == [] and fixed.ok
    assert [(f.path, f.kind) for f in fixed.errata] == [("msg.market_ticker", "pattern")]
    assert "decimal point" in fixed.errata[0].erratum
    # the Feb 2026 KXBTCD trade: the ticker from the brief
    tr = next(f for f in frames if "KXBTCD-26FEB1217-T67749.99" in f["frame"] and f["type"] == "trade")["frame"]
    assert ("msg.market_ticker", "pattern") in {(f.path, f.kind) for f in spec.validate(tr).findings}
    assert ("msg.market_ticker", "pattern") not in {(f.path, f.kind) for f in spec.validate(tr, errata).findings}
    # a pattern erratum only excuses values matching the corrected pattern
    bad = delta.replace("KXGOLDH-26AUG2711-T4615.99", "kx gold")
    assert ("msg.market_ticker", "pattern") in {(f.path, f.kind) for f in spec.validate(bad, errata).findings}


def test_dollar_volume_missing_on_real_august_ticker(spec, frames, errata):
    (tick,) = [f for f in _real(frames, "2026-08-27") if '"ticker"' in f]
    assert "dollar_volume" not in tick
    bare = spec.validate(tick)
    missing = {f.path for f in bare.findings if f.kind == "missing_required"}
    assert {"msg.dollar_volume", "msg.dollar_open_interest", "msg.time"} == missing
    fixed = spec.validate(tick, errata)
    assert fixed.findings == []
    assert {f.path for f in fixed.errata} >= {"msg.dollar_volume", "msg.market_ticker"}


def test_real_current_captures_clean_with_errata(spec, frames, errata):
    n = 0
    for r in frames:
        p = r["provenance"]
        if not r["valid_json"] or not ("2026-08-27" in p or "Jul 2026" in p):
            continue
        res = spec.validate(r["frame"], errata)
        hard = {(f.path, f.kind) for f in res.findings if f.kind != "extra_field"}
        if '"market_id":""' in r["frame"]:
            # a real demo snapshot with an empty market_id: the spec says uuid
            assert hard == {("msg.market_id", "format")}
        else:
            assert hard == set(), (r["frame"], res.findings)
        n += 1
    assert n >= 9


def test_undocumented_fields_show_as_extra(spec, frames):
    feb = next(f for f in _real(frames, "Feb 2026 production") if '"ticker"' in f)
    res = spec.validate(feb)
    extra = {f.path for f in res.findings if f.kind == "extra_field"}
    assert {"msg.Clock", "msg.price", "msg.yes_bid"} <= extra
    trade = next(f for f in _real(frames, "Feb 2026 production") if '"trade"' in f)
    assert "seq" in {f.path for f in spec.validate(trade).findings if f.kind == "extra_field"}
    assert spec.validate("{bad").findings[0].kind == "invalid_json"
    assert spec.validate('{"type":"nope"}').findings[0].kind == "unknown_type"
    wt = spec.validate('{"type":"error","msg":{"code":"9","msg":"x"}}')
    assert ("msg.code", "wrong_type") in {(f.path, f.kind) for f in wt.findings}


def test_multivariate_allof_bug(spec, frames, errata):
    mv = next(r["frame"] for r in frames if r["type"] == "multivariate_market_lifecycle")
    assert ("type", "const") in {(f.path, f.kind) for f in spec.validate(mv).findings}
    assert ("type", "const") not in {(f.path, f.kind) for f in spec.validate(mv, errata).findings}


def test_errata_file_formats(tmp_path, spec, frames):
    j = tmp_path / "e.json"
    j.write_text(json.dumps({"not_required": [{"types": ["ticker"], "field": "msg.dollar_volume", "reason": "r"}]}))
    e = ks.load_errata(j)
    (tick,) = [f for f in _real(frames, "2026-08-27") if '"ticker"' in f]
    assert "msg.dollar_volume" not in {f.path for f in spec.validate(tick, e).findings}
    bad = tmp_path / "b.toml"
    bad.write_text('[[not_required]]\nfield = "x"\n')
    with pytest.raises(SpecError, match="reason"):
        ks.load_errata(bad)
    bad.write_text("= nope")
    with pytest.raises(SpecError, match="TOML"):
        ks.load_errata(bad)
    with pytest.raises(SpecError):
        ks.load_errata(tmp_path / "missing.toml")
    with pytest.raises(SpecError):
        ks.load_spec("asyncapi: 3.0.0\nnothing: here\n")
    with pytest.raises(SpecError):
        ks.load_spec("a: [\n")


def test_spec_diff_on_real_specs(reference):
    d = ks.diff_specs(reference / "kalshi/asyncapi-2026-01-31.yaml", reference / "kalshi/asyncapi.yaml")
    t = d.types
    assert {"msg.price", "msg.yes_bid", "msg.yes_ask", "msg.volume", "msg.open_interest"} <= set(t["ticker"].removed)
    assert {"msg.ts_ms", "msg.yes_bid_size_fp", "msg.yes_ask_size_fp", "msg.last_trade_size_fp"} <= set(t["ticker"].added)
    assert {"msg.price", "msg.delta"} == set(t["orderbook_delta"].removed)
    assert t["orderbook_delta"].added == ["msg.ts_ms"]
    # YAML 1.1 would read the cents-era keys yes:/no: as booleans; they must be field names
    assert {"msg.yes", "msg.no", "msg.yes_dollars", "msg.no_dollars"} <= set(t["orderbook_snapshot"].removed)
    assert {"msg.yes_price", "msg.no_price", "msg.count"} == set(t["trade"].removed)
    assert {"msg.ts_ms", "msg.taker_outcome_side", "msg.taker_book_side", "msg.is_block_trade"} <= set(t["trade"].added)
    assert {"msg.position_cost_dollars", "msg.realized_pnl_dollars"} <= set(t["market_position"].added)
    assert t["ticker_v2"].status == "removed" and t["cfbenchmarks_value"].status == "added"
    assert t["event_fee_update"].status == "added"
    # nullability appears with event_fee_update (nullable: true) - as an added type
    assert ("msg", ["array"], ["array", "object"]) in t["ok"].changed_type
    assert not t["subscribed"].changed


def test_field_map_diff_handles_observed_maps(frames):
    old = ks.observed_field_map(r["frame"] for r in frames if "Feb 2026 production" in r["provenance"])
    new = ks.observed_field_map(r["frame"] for r in frames if "2026-08-27" in r["provenance"] or "Jul 2026" in r["provenance"])
    d = ks.diff_field_maps(old, new)
    assert {"msg.Clock", "msg.price", "msg.volume"} <= set(d.types["ticker"].removed)
    assert "msg.ts_ms" in d.types["ticker"].added
    a = {"x": {"f": {"integer"}}}
    b = {"x": {"f": {"integer", "null"}, "g": {"string"}}}
    dd = ks.diff_field_maps(a, b).types["x"]
    assert dd.newly_nullable == ["f"] and dd.added == ["g"] and dd.changed_type == []
    assert ks.diff_field_maps(b, {"x": {"f": {"string"}}}).types["x"].changed_type == [("f", ["integer"], ["string"])]


def test_diff_command(reference):
    from harness.commands.diff import command

    a, b = str(reference / "kalshi/asyncapi-2026-01-31.yaml"), str(reference / "kalshi/asyncapi.yaml")
    r = CliRunner().invoke(command, [a, b, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert "msg.delta" in out["types"]["orderbook_delta"]["removed"]
    r = CliRunner().invoke(command, [a, b], terminal_width=200)
    assert r.exit_code == 0 and "orderbook_delta" in r.output and "msg.ts_ms" in r.output
    r = CliRunner().invoke(command, [a, a])
    assert r.exit_code == 0 and "no field differences" in r.output
