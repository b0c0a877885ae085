"""Redaction of secrets before anything touches disk.

A secret is replaced by a marker that keeps only its presence and length
(``<redacted len=344>``), so a recording still shows *that* a request was signed and
with what shape, never the key id or the signature itself.

Covered: HTTP headers (``KALSHI-ACCESS-KEY``/``-SIGNATURE``, ``Authorization``,
``Cookie``, API-key/secret/passphrase/token/signature headers of any venue), URL query
parameters with such names, and fields with such names anywhere inside a JSON text frame
the client sends (Coinbase ``jwt``/``signature``/``key``/``passphrase``, Gemini/Crypto.com
``api_key``/``sig``, Kraken ``token``). Frames without a sensitive name are returned
unchanged, byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Header names (lower case) that are always secret.
SECRET_HEADERS = frozenset(
    {
        "kalshi-access-key",
        "kalshi-access-signature",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "cb-access-key",
        "cb-access-sign",
        "cb-access-passphrase",
        "x-gemini-apikey",
        "x-gemini-signature",
        "x-gemini-payload",
        "api-sign",
    }
)
# Any header, query parameter or JSON field whose name contains one of these is secret.
_SECRET_PARTS = ("signature", "secret", "passphrase", "password", "token", "apikey", "api_key", "api-key", "jwt", "auth")
# JSON field / query parameter names that are secret on their own (too short to match by part).
SECRET_FIELDS = frozenset({"key", "sig", "sign", "jwt", "token", "passphrase", "signature", "secret", "api_key", "apikey", "access_key", "key_id"})
# Names containing a secret part that are not secrets.
_NOT_SECRET = frozenset({"kalshi-access-timestamp", "author", "authenticated", "auth_required", "auth_mode", "sec-websocket-key", "sec-websocket-accept"})

_SCREEN = re.compile(r"signature|secret|passphrase|password|token|api_?key|api-key|jwt|auth|\"key\"|\"sig|\"sign\"|access_key|key_id", re.I)


def marker(value) -> str:
    """``<redacted len=N>``: presence and length only."""
    if value is None:
        return "<redacted absent>"
    if isinstance(value, (bytes, bytearray)):
        n = len(value)
    else:
        n = len(str(value))
    return f"<redacted len={n}>"


def is_secret_name(name: str) -> bool:
    n = name.lower()
    if n in _NOT_SECRET:
        return False
    if n in SECRET_HEADERS or n in SECRET_FIELDS:
        return True
    return any(p in n for p in _SECRET_PARTS)


def redact_headers(headers) -> dict:
    """A plain dict of headers with secrets replaced. Accepts a mapping, a websockets
    ``Headers`` (repeated names become a list) or a sequence of (name, value) pairs."""
    if headers is None:
        return {}
    items: Iterable
    if hasattr(headers, "raw_items"):
        items = headers.raw_items()
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    out: dict = {}
    for k, v in items:
        val = marker(v) if is_secret_name(str(k)) else str(v)
        if k in out:
            prev = out[k]
            out[k] = [*prev, val] if isinstance(prev, list) else [prev, val]
        else:
            out[k] = val
    return out


def redact_url(url: str) -> str:
    """The URL with secret query parameters (and any userinfo password) replaced."""
    try:
        u = urlsplit(url)
    except ValueError:
        return url
    netloc = u.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{marker(userinfo)}@{host}"
    if not u.query:
        return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment)) if netloc != u.netloc else url
    pairs = parse_qsl(u.query, keep_blank_values=True)
    if not any(is_secret_name(k) for k, _ in pairs) and netloc == u.netloc:
        return url
    q = urlencode([(k, marker(v) if is_secret_name(k) else v) for k, v in pairs], safe="<>= ")
    return urlunsplit((u.scheme, netloc, u.path, q, u.fragment))


def _redact_obj(obj):
    changed = False
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and is_secret_name(k) and not isinstance(v, (dict, list)):
                out[k] = marker(v)
                changed = True
            else:
                nv, c = _redact_obj(v)
                out[k] = nv
                changed |= c
        return out, changed
    if isinstance(obj, list):
        out_l = []
        for v in obj:
            nv, c = _redact_obj(v)
            out_l.append(nv)
            changed |= c
        return out_l, changed
    return obj, False


def redact_frame(payload: str | bytes) -> str | bytes:
    """A client frame with secret JSON fields replaced; unchanged (the same object) when
    nothing secret is in it or it is not JSON."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            text = bytes(payload).decode()
        except UnicodeDecodeError:
            return payload
    else:
        text = payload
    if not _SCREEN.search(text):
        return payload
    try:
        obj = json.loads(text)
    except ValueError:
        return payload
    new, changed = _redact_obj(obj)
    if not changed:
        return payload
    out = json.dumps(new, separators=(",", ":"))
    return out if isinstance(payload, str) else out.encode()


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace known secret strings (key id, signature) in free text such as an error body."""
    for s in secrets:
        if s and s in text:
            text = text.replace(s, marker(s))
    return text
