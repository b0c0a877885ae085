"""The BRTI proxy on real venue traffic (../shared/realdata/cryptofeed), one recording at a
time: the files are from different dates (2026-08-09 Coinbase and Gemini, 2021-04-17
Bitstamp), so they cannot be combined into one multi-venue index. With one venue,
``min_venues`` = 1.

Bound: at every valid tick the proxy is within 10 bps (0.1%) of the venue's top-of-book
mid at that instant. Why 10 bps: by construction every midPV(v) in the weighted sum lies
within half the spread at the utilised depth v_T of the mid, and v_T is where that spread
reaches D = 0.5%, so 0.5% is the hard ceiling; real BTC books on these venues are deep and
roughly symmetric near the top, so the proxy sits within a few bps of the mid (measured worst
case: Coinbase 0.25 bp, Gemini 0.06 bp, Bitstamp 2021 2.6 bp). 10 bps (about 60 USD) leaves
room for book asymmetry and still catches a broken book (a side kept from an old
snapshot, bids and asks swapped, prices in the wrong unit) which puts it far outside.

Files used: COINBASE.jsonl.zst (BTC-USD), GEMINI.jsonl.zst (BTCUSD),
legacy_BITSTAMP.ws.19.0.txt + legacy_BITSTAMP.http.18.0.txt (btcusd diffs aligned to the
REST snapshot in the http file). Not used: BITSTAMP.jsonl.zst (2022: ten pairs, no
btcusd) and KRAKEN.jsonl.zst (2021: its only BTC pair is XBT/CHF, not a USD pair the
index uses): that case is skipped with that reason.
"""

from __future__ import annotations

import dataclasses

import pytest

from harness.pipeline import PipelineConfig
from harness.pipeline.stages import Pipeline, run_recording
from harness.replay.source import replay
from harness.store.importers import import_files
from harness.store.reader import Recording

from ..conftest import _need

BOUND = 0.001  # 10 bps, see the module doc

CASES = {
    "coinbase": (["COINBASE.jsonl.zst"], "BTC-USD", 100),
    "gemini": (["GEMINI.jsonl.zst"], "BTCUSD", 30),
    "bitstamp": (["legacy_BITSTAMP.ws.19.0.txt", "legacy_BITSTAMP.http.18.0.txt"], "btcusd", 100),
    "kraken": (["KRAKEN.jsonl.zst"], None, 0),
}


def _config() -> PipelineConfig:
    c = PipelineConfig()
    return dataclasses.replace(c, brti=dataclasses.replace(c.brti, min_venues=1))


def _import(realdata, files: list[str], out):
    """Import the cryptofeed ``files`` into the recording ``out`` (each file must exist:
    missing ones skip, and fail under CI=true, as a missing folder does)."""
    paths = [_need(realdata / "cryptofeed" / f) for f in files]
    import_files("cryptofeed", [str(p) for p in paths], str(out))
    return out


@pytest.mark.parametrize("venue", sorted(CASES))
def test_proxy_tracks_venue_mid(venue, realdata, tmp_path):
    files, instrument, min_ticks = CASES[venue]
    out = _import(realdata, files, tmp_path / f"{venue}.db")

    seen: list[tuple[int, float, float]] = []

    def hook(tick, baseline):
        r = tick.result
        if tick.value is not None:
            seen.append((tick.ts_ns, tick.value, r.mids[venue]))

    p = Pipeline(_config())
    p.tick_hook = hook
    with Recording(out) as rec:
        p.attach_http(rec.http())
        replay(rec, p)
    p.finish()

    if instrument is None:
        # KRAKEN.jsonl.zst (2021) has only an XBT/CHF book: the pipeline must keep it out
        # of the USD index entirely (no venue, no tick), which is what this case checks.
        assert p.venues == {} and seen == [], "the Kraken file gained a BTC/USD pair: turn this case on"
        return
    assert p.decode_errors == {}
    assert p.venues[venue].instrument == instrument
    assert len(seen) >= min_ticks, f"only {len(seen)} valid ticks"
    worst = max(abs(v / mid - 1.0) for _, v, mid in seen)
    assert worst <= BOUND, f"{venue}: proxy {worst * 1e4:.2f} bps from the mid (bound {BOUND * 1e4:.0f})"
    # the venue really was used, and the path is a plausible BTC price for its date
    assert p.summary()["index"]["venues_used"] == [venue]
    assert 20_000 < p.index_summary()["min"] <= p.index_summary()["max"] < 200_000


def test_run_recording_helper_matches(realdata, tmp_path):
    src = realdata / "cryptofeed" / "GEMINI.jsonl.zst"
    if not src.exists():
        pytest.skip(f"{src} not present")
    out = tmp_path / "g.db"
    import_files("cryptofeed", [str(src)], str(out))
    a = run_recording(str(out), _config())
    b = run_recording(str(out), _config())
    assert a.n_valid > 0 and a.digest() == b.digest()


class _EveryBook(Pipeline):
    """The pipeline with its venue sessions keeping every instrument's book (the default
    ``keep_books`` filter off)."""

    def _new_session(self, f):
        entry = super()._new_session(f)
        if entry[1] is not None:
            entry[1].keep_books(None)
        return entry


@pytest.mark.parametrize("venue", ["coinbase", "gemini", "kraken"])
def test_books_for_the_index_only_change_nothing(venue, realdata, tmp_path):
    """The pipeline tells each spot session to build books only for the index's instruments
    (the other pairs' levels are not decoded): the ticks, signals and findings counted on
    those connections are the same as with every book built. Coinbase carries ETH-USD
    beside BTC-USD, Gemini nine other symbols, Kraken ten non-USD pairs."""
    out = _import(realdata, CASES[venue][0], tmp_path / f"{venue}.db")
    kept = run_recording(str(out), _config())
    every = _EveryBook(_config())
    with Recording(out) as rec:
        every.attach_http(rec.http())
        replay(rec, every)
    every.finish()
    assert kept.digest() == every.digest() and kept.ticks == every.ticks
    assert kept.decode_errors == every.decode_errors
    # gap/reset findings do not depend on books; crossed-book ones can only come from kept books
    assert {k: n for k, n in every.findings.items() if k[1] != "crossed"} == \
        {k: n for k, n in kept.findings.items() if k[1] != "crossed"}
    # and the filter did filter: the other pairs have no book in the pipeline's sessions
    assert all(set(s.books) <= kept.instruments for n, s in kept.sessions.values() if s is not None and n != "kalshi")
    assert any(set(s.books) - every.instruments for n, s in every.sessions.values() if s is not None and n != "kalshi")
