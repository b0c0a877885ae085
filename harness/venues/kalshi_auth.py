"""Kalshi API-key request signing and verification (pure: the time is always passed in).

Signed text: ``str(timestamp_ms) + METHOD + path`` (path without host or query; for the
WebSocket ``GET /trade-api/ws/v2``), RSA-PSS with SHA-256, MGF1(SHA-256), salt length = the
digest length (32), base64. Headers ``KALSHI-ACCESS-KEY``, ``KALSHI-ACCESS-TIMESTAMP`` (Unix
ms as a string), ``KALSHI-ACCESS-SIGNATURE``.

Credentials come from the environment (``KALSHI_API_KEY_ID``, ``KALSHI_PRIVATE_KEY_PATH``) or
a config mapping, never from argv: ``credentials_from_env(os.environ, config)``.
"""

from __future__ import annotations

import base64
import binascii
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from harness.errors import AuthError

WS_PATH = "/trade-api/ws/v2"
HDR_KEY = "KALSHI-ACCESS-KEY"
HDR_TS = "KALSHI-ACCESS-TIMESTAMP"
HDR_SIG = "KALSHI-ACCESS-SIGNATURE"
ENV_KEY_ID = "KALSHI_API_KEY_ID"
ENV_KEY_PATH = "KALSHI_PRIVATE_KEY_PATH"
DEFAULT_MAX_SKEW_MS = 30_000
# paths a confused client may have signed instead of the one it requested
COMMON_PATHS = (
    "/trade-api/ws/v2",
    "/trade-api/v2",
    "/trade-api/ws/v2/",
    "/trade-api/v2/",
    "/",
    "",
    "/ws/v2",
    "/trade-api/v2/portfolio/balance",
    "/trade-api/v2/markets",
)

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def _strip_query(path: str) -> str:
    return path.split("?", 1)[0]


def message(timestamp_ms: int | str, method: str, path: str) -> bytes:
    return f"{timestamp_ms}{method.upper()}{_strip_query(path)}".encode()


def _private(key: Any) -> rsa.RSAPrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, (bytes, bytearray)):
        try:
            k = serialization.load_pem_private_key(bytes(key), password=None)
        except (ValueError, TypeError) as e:
            raise AuthError(
                f"not a PEM private key: {e}",
                hint="use the unencrypted RSA private key PEM file downloaded with your Kalshi API key",
            ) from None
        if not isinstance(k, rsa.RSAPrivateKey):
            raise AuthError(f"Kalshi keys are RSA; this is a {type(k).__name__}")
        return k
    raise AuthError(f"unsupported private key object {type(key).__name__}")


def _public(key: Any) -> rsa.RSAPublicKey | None:
    if isinstance(key, rsa.RSAPublicKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        return key.public_key()
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, (bytes, bytearray)):
        try:
            k = serialization.load_pem_public_key(bytes(key))
        except (ValueError, TypeError):
            try:
                k = serialization.load_pem_private_key(bytes(key), password=None).public_key()
            except (ValueError, TypeError):
                return None
        return k if isinstance(k, rsa.RSAPublicKey) else None
    return None


def sign(private_key: Any, timestamp_ms: int, method: str = "GET", path: str = WS_PATH) -> str:
    """Base64 RSA-PSS signature of ``timestamp_ms + METHOD + path`` (query stripped)."""
    key = _private(private_key)
    sig = key.sign(message(timestamp_ms, method, path), _PSS, hashes.SHA256())
    return base64.b64encode(sig).decode("ascii")


def auth_headers(key_id: str, private_key: Any, timestamp_ms: int, path: str = WS_PATH, method: str = "GET") -> dict[str, str]:
    return {
        HDR_KEY: key_id,
        HDR_TS: str(timestamp_ms),
        HDR_SIG: sign(private_key, timestamp_ms, method, path),
    }


@dataclass
class VerifyResult:
    ok: bool
    reason: str = ""  # "" when ok; "missing header X", "timestamp not ms", "skew", "bad signature", "wrong path signed"
    key_id: str | None = None
    timestamp_ms: int | None = None
    signed_path: str | None = None  # for "wrong path signed": the path that was signed
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _check(pub: rsa.RSAPublicKey, sig: bytes, ts: str, method: str, path: str) -> bool:
    try:
        pub.verify(sig, message(ts, method, path), _PSS, hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def verify(
    public_key: Any,
    headers_or_parts: Mapping[str, str] | tuple | list,
    path: str = WS_PATH,
    now_ms: int | None = None,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    method: str = "GET",
) -> VerifyResult:
    """Check a request's Kalshi auth (what the impersonation server does at the handshake).

    ``headers_or_parts``: a header mapping (names case-insensitive) or (key_id, timestamp,
    signature). ``now_ms``: server time for the skew check (skipped when None). Never raises."""
    try:
        if isinstance(headers_or_parts, Mapping):
            low = {str(k).lower(): v for k, v in headers_or_parts.items()}
            vals = []
            for h in (HDR_KEY, HDR_TS, HDR_SIG):
                v = low.get(h.lower())
                if v is None or (isinstance(v, str) and not v.strip()):
                    return VerifyResult(False, f"missing header {h}")
                vals.append(v)
            key_id, ts, sig_b64 = vals
        else:
            parts = list(headers_or_parts)
            if len(parts) != 3:
                return VerifyResult(False, "missing header", detail="expected (key_id, timestamp, signature)")
            key_id, ts, sig_b64 = parts
            for h, v in zip((HDR_KEY, HDR_TS, HDR_SIG), parts, strict=True):
                if v is None or v == "":
                    return VerifyResult(False, f"missing header {h}")
        key_id = str(key_id)
        ts = str(ts).strip()
        if not ts.isdigit() or not ts.isascii():
            return VerifyResult(False, "timestamp not ms", key_id, detail=f"{ts!r} is not an integer")
        ts_ms = int(ts)
        if len(ts) != 13:
            unit = "seconds" if len(ts) == 10 else ("microseconds" if len(ts) == 16 else "an unknown unit")
            return VerifyResult(False, "timestamp not ms", key_id, ts_ms, detail=f"{ts} looks like {unit}")
        if now_ms is not None and abs(now_ms - ts_ms) > max_skew_ms:
            return VerifyResult(False, "skew", key_id, ts_ms, detail=f"timestamp is {now_ms - ts_ms} ms from server time (max {max_skew_ms})")
        pub = _public(public_key)
        if pub is None:
            return VerifyResult(False, "bad signature", key_id, ts_ms, detail="no usable RSA public key")
        try:
            sig = base64.b64decode(str(sig_b64), validate=True)
        except (binascii.Error, ValueError):
            return VerifyResult(False, "bad signature", key_id, ts_ms, detail="signature is not base64")
        if _check(pub, sig, ts, method, path):
            return VerifyResult(True, "", key_id, ts_ms, _strip_query(path))
        for other in COMMON_PATHS:
            if other != _strip_query(path) and _check(pub, sig, ts, method, other):
                return VerifyResult(False, "wrong path signed", key_id, ts_ms, other, detail=f"signed {other!r}, requested {path!r}")
        for m in ("GET", "POST", "DELETE", "PUT"):
            if m != method.upper() and _check(pub, sig, ts, m, path):
                return VerifyResult(False, "bad signature", key_id, ts_ms, detail=f"signed with method {m}")
        return VerifyResult(False, "bad signature", key_id, ts_ms)
    except Exception as e:  # noqa: BLE001 - verify never raises on bad input
        return VerifyResult(False, "bad signature", detail=f"{type(e).__name__}: {e}")


def load_private_key(path: str | Path) -> rsa.RSAPrivateKey:
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise AuthError(
            f"Kalshi private key file {p} does not exist",
            hint=f"set {ENV_KEY_PATH} to the PEM file downloaded when creating the API key",
        ) from None
    except OSError as e:
        raise AuthError(
            f"cannot read Kalshi private key file {p}: {e.strerror or e}",
            hint=f"check the permissions of the file named by {ENV_KEY_PATH}",
        ) from None
    try:
        return _private(data)
    except AuthError as e:
        raise AuthError(f"{p}: {e.message}", hint=f"{ENV_KEY_PATH} must name an unencrypted RSA private key PEM") from None


@dataclass
class Credentials:
    key_id: str
    key_path: Path
    private_key: rsa.RSAPrivateKey = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    def headers(self, timestamp_ms: int, path: str = WS_PATH, method: str = "GET") -> dict[str, str]:
        return auth_headers(self.key_id, self.private_key, timestamp_ms, path, method)


def credentials_from_env(env: Mapping[str, str], config: Mapping[str, Any] | None = None) -> Credentials:
    """Key id and key file from ``env`` (``KALSHI_API_KEY_ID``, ``KALSHI_PRIVATE_KEY_PATH``),
    falling back to ``config`` (``kalshi_api_key_id``/``api_key_id``, ``kalshi_private_key_path``/
    ``private_key_path``). ``warnings`` notes a key file readable by group or others."""
    config = config or {}
    key_id = env.get(ENV_KEY_ID) or config.get("kalshi_api_key_id") or config.get("api_key_id")
    key_path = env.get(ENV_KEY_PATH) or config.get("kalshi_private_key_path") or config.get("private_key_path")
    if not key_id:
        raise AuthError("no Kalshi API key id", hint=f"set {ENV_KEY_ID} (the key id shown on kalshi.com > API keys)")
    if not key_path:
        raise AuthError("no Kalshi private key file", hint=f"set {ENV_KEY_PATH} to the PEM file of API key {key_id}")
    p = Path(str(key_path)).expanduser()
    key = load_private_key(p)
    warnings = []
    try:
        mode = p.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(f"private key {p} is accessible by group/others (mode {stat.filemode(mode)}); run: chmod 600 {p}")
    except OSError:
        pass
    return Credentials(str(key_id), p, key, warnings)
