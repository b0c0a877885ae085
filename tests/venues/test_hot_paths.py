"""The venue hot paths give what the typed path gives.

Kraken's session decodes the common v1 update with a strict msgspec shape, applies it
inline and keeps checksum pieces between messages; Coinbase's session handles ``l2_data``
frames inline. Here every frame goes through the session and through a reference built
only from the typed API (``_decode``, ``L2Book.apply_snapshot``/``apply_levels``/
``truncate`` and the standalone ``kraken.checksum``), and messages, findings, checksums
and books must be equal: on the real recordings, on deliberately damaged streams, and on
random streams that also change the book behind the session's back.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DecodeError
from harness.venues import coinbase, kraken
from harness.venues.base import BookMessage, Level, OtherMessage, TextLevel
from harness.venues.book import L2Book
from tests.venues.realdata_util import mutated_frames, recv_frames

KR = kraken.VENUE
CB = coinbase.VENUE


class KrakenReference:
    """Kraken's session rules on the typed path only (no caches, no inline apply)."""

    def __init__(self) -> None:
        self.books: dict[str, L2Book] = {}
        self.depths: dict[str, int] = {}
        self.verified = 0

    def feed(self, payload, frame_id=None):
        msgs, depth = KR._decode(payload)
        found = []
        for m in msgs:
            if isinstance(m, BookMessage):
                sym = m.instrument
                if depth is not None:
                    self.depths[sym] = depth
                b = self.books.setdefault(sym, L2Book(sym))
                b.depth_limit = self.depths.get(sym, kraken.DEFAULT_DEPTH)
                (b.apply_snapshot if m.snapshot else b.apply_levels)(m.levels, m.venue_ts_ns)
                b.truncate()
                if m.checksum is not None and b.has_snapshot:
                    got = kraken.checksum(b)
                    if got == m.checksum:
                        self.verified += 1
                    else:
                        found.append(("checksum", sym, m.checksum, got, frame_id))
                bb, ba = b.best_prices()
                if bb is not None and ba is not None and bb >= ba:
                    found.append(("crossed", sym))
            elif isinstance(m, OtherMessage) and m.type == "subscriptionStatus":
                sub, pair = m.data.get("subscription"), m.data.get("pair")
                if isinstance(sub, dict) and sub.get("name") == "book" and isinstance(pair, str):
                    d = sub.get("depth", kraken.DEFAULT_DEPTH)
                    if type(d) is int and d > 0:
                        self.depths[pair] = d
        return msgs, found


def book_state(b: L2Book):
    """Everything a consumer can see of a book, wire texts included."""
    bids = [(lv.price, lv.qty, lv.price_text, lv.qty_text) for lv in b.top_levels(True)]
    asks = [(lv.price, lv.qty, lv.price_text, lv.qty_text) for lv in b.top_levels(False)]
    return bids, asks, b.updates, b.last_update_ns, b.has_snapshot


def kraken_findings(findings):
    # crossed findings are once per episode in the session, so compare checksum ones only
    return [(f.kind, f.key, f.expected, f.got, f.frame_id) for f in findings if f.kind == "checksum"]


def feed_both(frames, session, ref, *, compare_every=50):
    """Feed (conn-less) frames to both; same messages or same error, same findings."""
    for i, text in enumerate(frames):
        try:
            want = ref.feed(text, i)
        except DecodeError as e:
            with pytest.raises(DecodeError) as got_err:
                session.feed(text, i)
            assert str(got_err.value) == str(e)
            continue
        msgs, findings = session.feed(text, i)
        assert msgs == want[0], text[:120]
        assert kraken_findings(findings) == [f for f in want[1] if f[0] == "checksum"], text[:120]
        if i % compare_every == 0:
            assert {k: book_state(b) for k, b in session.books.items()} == {k: book_state(b) for k, b in ref.books.items()}
    assert {k: book_state(b) for k, b in session.books.items()} == {k: book_state(b) for k, b in ref.books.items()}


@pytest.fixture(scope="module")
def kraken_frames(realdata):
    return [t for _, t in recv_frames(realdata / "cryptofeed" / "KRAKEN.jsonl.zst")]


@pytest.mark.realdata
def test_kraken_session_equals_typed_path_on_the_recording(kraken_frames):
    s, ref = KR.new_session(), KrakenReference()
    feed_both(kraken_frames, s, ref)
    assert s.checksums_verified == ref.verified == 4269 and s.checksums_failed == 0
    for sym, top in s._top.items():  # fragments kept between messages stay bounded
        b = s.books[sym]
        assert set(top.ask_frags) - set(b._ad) == set() and set(top.bid_frags) - set(b._bd) == set()
    # the hot path did carry the recording (else this test proves little)
    assert sum(1 for t in kraken_frames if _fits_hot_path(t)) > 4000


def _fits_hot_path(text: str) -> bool:
    try:
        _, part, _, _ = kraken._V1_UPDATE.decode(text)
    except Exception:  # noqa: BLE001
        return False
    return part.c is not kraken.UNSET and (part.a is kraken.UNSET) != (part.b is kraken.UNSET)


def _damage(text: str, rng: random.Random) -> str:
    """Rewrite a v1 book update so it differs from what the venue checksummed, or so it
    no longer fits the hot path's shape (both sides, "r" flags, numbers, bad checksum)."""
    obj = json.loads(text)
    part = obj[1]
    key = "a" if "a" in part else "b"
    how = rng.randrange(6)
    if how == 0:  # a different quantity: checksum finding
        part[key][0][1] = "%.8f" % (float(part[key][0][1]) + 1)
    elif how == 1:  # republish flag: general path
        part[key][0].append("r")
    elif how == 2:  # both sides in one object: general path, level order kept
        part["b" if key == "a" else "a"] = [list(part[key][0])]
    elif how == 3:  # numbers where strings belong: general path (v1 text from numbers)
        part[key][0][0] = float(part[key][0][0])
    elif how == 4:  # a checksum that is not a number: the general path's error
        part["c"] = "12x"
    else:  # a delete of a level that may or may not exist
        part[key][0][1] = "0.00000000"
    return json.dumps(obj, separators=(",", ":"))


@pytest.mark.realdata
def test_kraken_session_equals_typed_path_on_damaged_streams(kraken_frames):
    rng = random.Random(7)
    out = []
    for t in kraken_frames:
        r = rng.random()
        if r < 0.01:
            continue  # lost frame
        out.append(_damage(t, rng) if r < 0.06 and KR.classify(t) == "book/update" else t)
        if r > 0.995:
            out.append(t)  # duplicated frame
    s, ref = KR.new_session(), KrakenReference()
    feed_both(out, s, ref, compare_every=25)
    assert s.checksums_failed > 10 and s.checksums_verified == ref.verified


# ------------------------------------------------------------------ random streams

_PRICES = [f"{p / 100:.2f}" for p in range(9900, 10100, 7)]


@st.composite
def kraken_streams(draw):
    """A v1 snapshot then updates on one pair, with depth changes and books changed
    behind the session's back in between. Every update carries checksum 0, so each one
    yields a finding carrying the checksum the session computed: all must match."""
    depth = draw(st.sampled_from([3, 10, 25]))
    mid = len(_PRICES) // 2
    snap = {
        "as": [[p, "1.00000000", "1618678133.1"] for p in _PRICES[mid : mid + draw(st.integers(0, 30))]],
        "bs": [[p, "2.00000000", "1618678133.1"] for p in _PRICES[max(0, mid - draw(st.integers(0, 30))) : mid]],
    }
    steps = [("frame", json.dumps([1, snap, f"book-{depth}", "X/Y"]))]
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["update"] * 8 + ["poke", "depth"]))
        if kind == "update":
            key = draw(st.sampled_from("ab"))
            levels = [
                [draw(st.sampled_from(_PRICES)), draw(st.sampled_from(["0.00000000", "1.5", "0.10000000", "3"])),
                 draw(st.sampled_from(["1618678134.123456", "1618678134.5", "1618678133"]))]
                for _ in range(draw(st.integers(0, 3)))
            ]
            steps.append(("frame", json.dumps([1, {key: levels, "c": "0"}, f"book-{depth}", "X/Y"])))
        elif kind == "poke":  # someone else changes the book between messages
            steps.append(("poke", (draw(st.booleans()), draw(st.sampled_from(_PRICES)), draw(st.sampled_from(["0", "7"])))))
        else:  # the subscription's depth changes (session and reference both follow it)
            depth = draw(st.sampled_from([2, 3, 10, 25]))
            status = {"channelID": 1, "channelName": f"book-{depth}", "event": "subscriptionStatus", "pair": "X/Y",
                      "status": "subscribed", "subscription": {"depth": depth, "name": "book"}}
            steps.append(("frame", json.dumps(status)))
    return steps


@settings(max_examples=300, deadline=None)
@given(kraken_streams())
def test_kraken_cached_checksums_equal_fresh_ones(steps):
    s, ref = KR.new_session(), KrakenReference()
    for i, (kind, x) in enumerate(steps):
        if kind == "poke":
            is_bid, p, q = x
            for b in (s.books["X/Y"], ref.books["X/Y"]):
                b.set_level(is_bid, Decimal(p), Decimal(q), p, q)
            continue
        msgs, findings = s.feed(x, i)
        want_msgs, want = ref.feed(x, i)
        assert msgs == want_msgs
        assert kraken_findings(findings) == [f for f in want if f[0] == "checksum"]
        assert book_state(s.books["X/Y"]) == book_state(ref.books["X/Y"])


# ------------------------------------------------------------------ classify


@pytest.mark.realdata
def test_kraken_classify_fast_path_equals_the_general_scan(kraken_frames):
    arrays = [t for t in kraken_frames if t.startswith("[")]
    assert len(arrays) > 4000
    for t in arrays:
        assert KR.classify(t) == KR._classify_v1_array(t)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet='[]{}",abok-/s: 1', max_size=40))
def test_kraken_classify_fast_path_equals_the_general_scan_on_odd_text(body):
    t = "[" + body + '"]'
    assert KR.classify(t) == KR._classify_v1_array(t)


# ------------------------------------------------------------------ Coinbase


@pytest.fixture(scope="module")
def coinbase_frames(realdata):
    return [t for _, t in recv_frames(realdata / "cryptofeed" / "COINBASE.jsonl.zst")]


def _coinbase_same(frames):
    """Feed str (the l2_data hot path) to one session and bytes (the general path) to
    another: same messages or errors, same findings, same books."""
    hot, general = CB.new_session(), CB.new_session()
    for i, t in enumerate(frames):
        try:
            want = general.feed(t.encode(), i)
        except DecodeError as e:
            with pytest.raises(DecodeError) as got:
                hot.feed(t, i)
            assert str(got.value) == str(e)
            continue
        got = hot.feed(t, i)
        assert got == want, t[:120]
    assert {k: book_state(b) for k, b in hot.books.items()} == {k: book_state(b) for k, b in general.books.items()}
    return hot


@pytest.mark.realdata
def test_coinbase_hot_path_equals_general_path(coinbase_frames):
    hot = _coinbase_same(coinbase_frames)
    assert sum(1 for t in coinbase_frames if t.startswith(coinbase._L2_PREFIX)) > 700
    assert hot.books["BTC-USD"].n_bids > 1000


@pytest.mark.realdata
def test_coinbase_hot_path_equals_general_path_with_gaps_and_repeats(coinbase_frames):
    rng = random.Random(3)
    out = []
    for t in coinbase_frames:
        r = rng.random()
        if r < 0.02:
            continue
        out.append(t)
        if r > 0.98:
            out.append(t)
    hot = _coinbase_same(out)
    assert hot.seq_at.counts.get("gap") and hot.seq_at.counts.get("duplicate")


@pytest.mark.realdata
def test_coinbase_classify_fast_path_equals_the_general_scan(coinbase_frames):
    for t in coinbase_frames:  # bytes skip the fast path
        assert CB.classify(t) == CB.classify(t.encode())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}",:acdeimnpstuvy_/ 1', max_size=60), st.integers(0, 130))
def test_coinbase_classify_fast_path_equals_the_general_scan_on_odd_text(body, pad):
    t = coinbase._L2_PREFIX + "," + " " * pad + body
    assert CB.classify(t) == CB.classify(t.encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_coinbase_hot_path_equals_general_path_on_mutated_frames(coinbase_frames, data):
    pool = [t for t in coinbase_frames if t.startswith(coinbase._L2_PREFIX) and len(t) < 2000][:200]
    _coinbase_same(pool[:5] + [data.draw(mutated_frames(pool)) for _ in range(3)])


# price / quantity texts for deep snapshots: plain, odd but valid (exponents, underscores,
# spaces, a sign, other digits, a float that rounds to 0 or overflows), and invalid ones
VALID_TEXTS = ["1", "2.5", "0.10", "100", "1e3", "1E2", "1_0", " 7 ", "+3", "１２", ".5", "5.", "1e999", "٣",
               "0", "0.000"]
# invalid, or (1__0, 1e-400) taken only by the per-level path
INVALID_TEXTS = ["abc", "", "1__0", "-1", "1e-400", "nan", "Infinity", "0x1", "1e", "1.2.3"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["bid", "offer"]), st.sampled_from(VALID_TEXTS), st.sampled_from(VALID_TEXTS)),
                min_size=coinbase.BULK_LEVELS, max_size=coinbase.BULK_LEVELS + 20),
       st.integers(0, 10**6),
       st.none() | st.tuples(st.integers(0, coinbase.BULK_LEVELS - 1), st.sampled_from(["price_level", "new_quantity"]),
                             st.sampled_from(INVALID_TEXTS)))
def test_coinbase_deep_snapshot_of_text_levels_equals_the_decimal_path(levels, base, bad):
    """A deep snapshot becomes ``TextLevel``s on the session's hot path (Decimals made on
    first read, texts checked with float()) and ``Level``s on the general path: the same
    messages, errors and books, whatever the texts (``bad``: one invalid text)."""
    ups = [{"side": s, "event_time": "2026-08-09T21:05:48.2Z", "price_level": p, "new_quantity": q}
           for s, p, q in levels]
    for i, u in enumerate(ups):  # mostly distinct prices, as in a real book
        if u["price_level"] in ("1", "2.5", "100"):
            u["price_level"] = str(base + i)
    if bad is not None:
        ups[bad[0]][bad[1]] = bad[2]
    frame = json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.5Z", "sequence_num": 0,
                        "events": [{"type": "snapshot", "product_id": "BTC-USD", "updates": ups}]},
                       separators=(",", ":"))
    update = json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:49.5Z", "sequence_num": 1,
                         "events": [{"type": "update", "product_id": "BTC-USD", "updates": ups[:3]}]},
                        separators=(",", ":"))
    hot = _coinbase_same([frame, update])
    b = hot.books.get("BTC-USD")
    if bad is None and b is not None and len(b) > 3:  # the bulk path ran, not its fallback
        assert TextLevel in {type(lv) for lv in b.top_levels(True) + b.top_levels(False)}


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789._eE+ \u0663\uff12\t", max_size=10))
def test_a_text_float_takes_decimal_takes_with_the_same_value(t):
    """What ``text_levels`` relies on to check texts with ``float()`` and make the
    Decimals later: every text float() takes, Decimal takes too (Decimal is the more
    lenient one: ``1__0``; such a text goes to the per-level path)."""
    try:
        f = float(t)
    except ValueError:
        return
    assert float(Decimal(t)) == f


def test_coinbase_deep_snapshot_converts_only_what_is_read():
    ups = [{"side": "bid" if i < 50 else "offer", "event_time": "2026-08-09T21:05:48.2Z",
            "price_level": f"{(100 - i if i < 50 else 51 + i)}.5", "new_quantity": "0.25"} for i in range(100)]
    frame = json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.5Z", "sequence_num": 0,
                        "events": [{"type": "snapshot", "product_id": "BTC-USD", "updates": ups}]}, separators=(",", ":"))
    s = CB.new_session()
    (m,), _ = s.feed(frame)
    assert all(type(lv) is TextLevel for lv in m.levels)
    b = s.books["BTC-USD"]
    assert b.best_bid() == (Decimal("100.5"), Decimal("0.25")) and b.best_ask() == (Decimal("101.5"), Decimal("0.25"))
    assert b.float_side(True, 2) == ([100.5, 99.5], [0.25, 0.25])
    made = [lv for lv in m.levels if lv.dec_price is not None or lv.dec_qty is not None]
    assert len(made) == 2  # the two best levels handed out, nothing else
    assert m.levels == CB.decode(frame)[0].levels  # equal to the Levels of the general path


SURROGATES = [
    "[\ud800",
    '[1,{"a":[["1.0","2.0","1618678133.1"]],"c":"5"},"book-10","X/\ud800"]',
    '[1,{"a":[["1.0","2.0","1618678133.1"]],"c":"5"},"book-10","X/Y"]\ud800',
    '{"channel":"l2_data",\ud800',
]


@pytest.mark.parametrize("payload", SURROGATES)
def test_hot_paths_report_unencodable_text_as_decode_errors(payload):
    for venue in (KR, CB):
        with pytest.raises(DecodeError):
            venue.new_session().feed(payload)
        assert venue.classify(payload) is None or isinstance(venue.classify(payload), str)


# ------------------------------------------------------------------ L2Book.version


def test_book_version_moves_on_every_change_and_only_then():
    b = L2Book("X", depth_limit=2)
    seen = [b.version]

    def moved():
        seen.append(b.version)
        return seen[-1] != seen[-2]

    b.apply_snapshot([Level("bid", Decimal(p), Decimal(1)) for p in (1, 2, 3)])
    assert moved()
    b.apply_levels([Level("ask", Decimal(5), Decimal(1))])
    assert moved()
    b.set_level(True, Decimal(3), Decimal(0))
    assert moved()
    assert b.truncate() == 0 and not moved()
    b.set_level(True, Decimal(4), Decimal(1))
    assert b.truncate() == 1 and moved()
    assert b.best_bid() is not None and not moved()  # reading never moves it
    b.clear()
    assert moved()
