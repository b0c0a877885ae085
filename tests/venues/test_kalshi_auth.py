"""Kalshi request signing: real RSA keys generated here, sign/verify and credential loading."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from harness.errors import AuthError
from harness.venues import kalshi_auth as ka

TS = 1_787_838_983_996


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(k) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())


def _pub_pem(k) -> bytes:
    return k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_signature_is_rsa_pss_sha256_salt32(key):
    sig = base64.b64decode(ka.sign(_pem(key), TS))
    # verify independently with the documented parameters
    key.public_key().verify(
        sig,
        f"{TS}GET/trade-api/ws/v2".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    # query strings are not signed
    sig2 = base64.b64decode(ka.sign(key, TS, "get", "/trade-api/v2/markets?limit=5"))
    key.public_key().verify(sig2, f"{TS}GET/trade-api/v2/markets".encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


def test_headers_and_verify_ok(key):
    h = ka.auth_headers("key-123", key, TS)
    assert set(h) == {"KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE"}
    assert h["KALSHI-ACCESS-TIMESTAMP"] == str(TS) and h["KALSHI-ACCESS-KEY"] == "key-123"
    for pub in (key.public_key(), _pub_pem(key), _pub_pem(key).decode(), key):
        r = ka.verify(pub, h, now_ms=TS + 500)
        assert r.ok and r.reason == "" and r.key_id == "key-123" and r.timestamp_ms == TS
    lower = {k.lower(): v for k, v in h.items()}
    assert ka.verify(key.public_key(), lower).ok
    assert ka.verify(key.public_key(), ("key-123", str(TS), h["KALSHI-ACCESS-SIGNATURE"])).ok


def test_verify_failures(key, other_key):
    pub = key.public_key()
    h = ka.auth_headers("k", key, TS)
    for missing in ("KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE"):
        hh = {k: v for k, v in h.items() if k != missing}
        r = ka.verify(pub, hh)
        assert not r.ok and r.reason == f"missing header {missing}"
    secs = ka.auth_headers("k", key, TS // 1000)
    r = ka.verify(pub, secs)
    assert r.reason == "timestamp not ms" and "seconds" in r.detail
    assert ka.verify(pub, {**h, "KALSHI-ACCESS-TIMESTAMP": "12ab"}).reason == "timestamp not ms"
    r = ka.verify(pub, h, now_ms=TS + 120_000)
    assert r.reason == "skew" and not r
    assert ka.verify(pub, h, now_ms=TS - 120_000, max_skew_ms=200_000).ok
    # wrong path: signed the REST base instead of the WS path
    rest = ka.auth_headers("k", key, TS, path="/trade-api/v2")
    r = ka.verify(pub, rest, path="/trade-api/ws/v2")
    assert r.reason == "wrong path signed" and r.signed_path == "/trade-api/v2"
    # tampered signature
    raw = bytearray(base64.b64decode(h["KALSHI-ACCESS-SIGNATURE"]))
    raw[10] ^= 0x01
    r = ka.verify(pub, {**h, "KALSHI-ACCESS-SIGNATURE": base64.b64encode(bytes(raw)).decode()})
    assert r.reason == "bad signature"
    assert ka.verify(pub, {**h, "KALSHI-ACCESS-SIGNATURE": "!!notbase64"}).reason == "bad signature"
    assert ka.verify(other_key.public_key(), h).reason == "bad signature"
    # timestamp changed after signing
    assert ka.verify(pub, {**h, "KALSHI-ACCESS-TIMESTAMP": str(TS + 1)}).reason == "bad signature"
    # garbage never raises
    for junk in (None, 5, {}, ("a",), {"KALSHI-ACCESS-KEY": 1, "KALSHI-ACCESS-TIMESTAMP": None, "KALSHI-ACCESS-SIGNATURE": b"x"}):
        assert not ka.verify(b"not a key", junk).ok  # type: ignore[arg-type]


def test_load_private_key_and_credentials(tmp_path, key):
    p = tmp_path / "k.pem"
    p.write_bytes(_pem(key))
    os.chmod(p, 0o600)
    assert ka.load_private_key(p).public_key().public_numbers() == key.public_key().public_numbers()
    c = ka.credentials_from_env({"KALSHI_API_KEY_ID": "abc", "KALSHI_PRIVATE_KEY_PATH": str(p)})
    assert c.key_id == "abc" and c.warnings == []
    assert ka.verify(key, c.headers(TS)).ok
    os.chmod(p, 0o644)
    c = ka.credentials_from_env({}, {"kalshi_api_key_id": "abc", "kalshi_private_key_path": str(p)})
    assert c.warnings and "chmod 600" in c.warnings[0]
    with pytest.raises(AuthError) as ei:
        ka.credentials_from_env({"KALSHI_PRIVATE_KEY_PATH": str(p)})
    assert "KALSHI_API_KEY_ID" in str(ei.value)
    with pytest.raises(AuthError) as ei:
        ka.credentials_from_env({"KALSHI_API_KEY_ID": "abc"})
    assert "KALSHI_PRIVATE_KEY_PATH" in str(ei.value)
    with pytest.raises(AuthError) as ei:
        ka.load_private_key(tmp_path / "nope.pem")
    assert "KALSHI_PRIVATE_KEY_PATH" in str(ei.value)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(AuthError, match="PEM"):
        ka.load_private_key(junk)
