"""DNS, TCP, TLS and upgrade times of each live connection: measured by the recorder, stored
in the connect event, reported by the endpoint check. A real TLS server on loopback with a
certificate made in the test."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import serve

from harness.checks.runner import run_checks
from harness.live.manager import run_record
from tests.live.conftest import db_rows
from tests.live.test_connection import rcfg, vcfg


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert_pem, key_pem


async def _record_once(tmp_path, url):
    cfg = rcfg(tmp_path, [vcfg("coinbase", url)])
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_record(cfg, stop=stop))
    for _ in range(300):
        await asyncio.sleep(0.01)
        if db_rows(cfg.output, "SELECT count(*) FROM frames WHERE dir='in'")[0][0] if _exists(cfg.output) else 0:
            break
    stop.set()
    await task
    return cfg.output


def _exists(path) -> bool:
    import os

    return os.path.exists(path)


async def _handler(ws):
    await ws.recv()  # the subscribe command
    await ws.send(json.dumps({"channel": "subscriptions", "events": []}))
    await ws.wait_closed()


def _timings(path) -> dict:
    (detail,) = db_rows(path, "SELECT detail FROM events WHERE kind='connect'")[0]
    return json.loads(detail)["timings"]


async def test_wss_connection_records_dns_tcp_tls_and_upgrade_times(tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our test CA, nothing else changes
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with serve(_handler, "127.0.0.1", 0, ssl=ctx) as srv:
        port = srv.sockets[0].getsockname()[1]
        out = await _record_once(tmp_path, f"wss://localhost:{port}/")
    t = _timings(out)
    assert set(t) >= {"dns_ms", "tcp_ms", "tls_ms", "upgrade_ms", "connect_ms", "remote_addr"}
    assert t["remote_addr"] in ("127.0.0.1", "::1")
    assert all(t[k] >= 0 for k in ("dns_ms", "tcp_ms", "tls_ms", "upgrade_ms"))
    assert t["tls_ms"] > 0  # a real handshake happened
    assert abs(t["connect_ms"] - sum(t[k] for k in ("dns_ms", "tcp_ms", "tls_ms", "upgrade_ms"))) < 0.01

    report = run_checks(out, only=["endpoint"])
    conns = report.results[0].stats["connections"]
    assert conns[0]["timings_ms"]["tls_ms"] == t["tls_ms"]


async def test_plain_ws_has_no_tls_time(tmp_path):
    async with serve(_handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        out = await _record_once(tmp_path, f"ws://127.0.0.1:{port}/")
    t = _timings(out)
    assert "tls_ms" not in t and t["upgrade_ms"] >= 0 and t["tcp_ms"] >= 0
