"""Property tests: random and mutated frames raise only DecodeError (never anything else)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DecodeError, HarnessError
from harness.venues import kalshi as k

FAST = settings(max_examples=int(__import__("os").environ.get("KALSHI_PROP_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(realdata):
    return [json.loads(x)["frame"] for x in (realdata / "kalshi_frames.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def real_frames(realdata):
    return _load(realdata)


def _exercise(payload):
    c = k.classify(payload)
    assert c is None or isinstance(c, str)
    k.detect_era(payload)
    sess = k.KalshiSession()
    try:
        msgs = k.decode(payload)
        assert msgs and all(isinstance(m.type, str) for m in msgs)
    except DecodeError:
        pass
    try:
        sess.feed(payload)
    except DecodeError:
        pass
    try:
        k.parse_command(payload)
    except DecodeError:
        pass


@FAST
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_random_text(payload):
    _exercise(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)


@pytest.mark.realdata
@FAST
@given(data=st.data())
def test_mutated_real_frames(real_frames, data):
    frame = data.draw(st.sampled_from(real_frames))
    how = data.draw(st.sampled_from(["cut", "flip", "replace_value", "drop_key", "insert"]))
    if how == "cut":
        payload = frame[: data.draw(st.integers(0, len(frame)))]
    elif how == "flip":
        i = data.draw(st.integers(0, max(0, len(frame) - 1)))
        payload = frame[:i] + data.draw(st.characters()) + frame[i + 1 :]
    elif how == "insert":
        i = data.draw(st.integers(0, len(frame)))
        payload = frame[:i] + data.draw(st.sampled_from(['"', "{", "}", "[", ",", ":", "\\", "null", "\x00"])) + frame[i:]
    else:
        try:
            obj = json.loads(frame)
        except ValueError:
            obj = {}
        target = obj.get("msg") if isinstance(obj.get("msg"), dict) and data.draw(st.booleans()) else obj
        if target:
            key = data.draw(st.sampled_from(sorted(target)))
            if how == "drop_key":
                del target[key]
            else:
                target[key] = data.draw(json_values)
        payload = json.dumps(obj)
    _exercise(payload)
    _exercise(payload.encode("utf-8", "surrogatepass"))


@FAST
@given(st.dictionaries(st.sampled_from(["type", "sid", "seq", "id", "msg", "cmd", "params"]), json_values, max_size=6))
def test_random_envelopes(obj):
    for t in ("orderbook_delta", "orderbook_snapshot", "ticker", "trade", "ok", "error", "subscribed", "market_lifecycle_v2"):
        obj2 = dict(obj, type=t)
        try:
            payload = json.dumps(obj2)
        except ValueError:
            return
        _exercise(payload)


def test_decode_error_is_a_harness_error():
    assert issubclass(DecodeError, HarnessError)
    assert issubclass(k.CommandError, DecodeError)
