"""TLS test helpers: a zonekeeper with a TLS listener (``TlsServer``), and self-signed
certificates made with the ``openssl`` CLI into a test's directory: a P-256 key and a
certificate for a name (subjectAltName too), which also serves as its own CA file for
clients that verify it."""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ZkServer, free_port, require_tool


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path
    name: str

    @property
    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())

    @property
    def pin(self) -> str:
        """base64 SHA-256 of the SubjectPublicKeyInfo, computed by openssl (not by the code
        under test)."""
        return spki_pin_openssl(self.cert)


def make_cert(directory: Path, name: str = "zk.test", stem: str = "server") -> Cert:
    openssl = require_tool("openssl", "openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True, timeout=30)
    key.chmod(0o600)
    return Cert(cert, key, name)


def spki_pin_openssl(cert: Path) -> str:
    openssl = require_tool("openssl", "openssl")
    pub = subprocess.run([openssl, "x509", "-in", str(cert), "-pubkey", "-noout"], check=True,
                         capture_output=True, timeout=30).stdout
    der = subprocess.run([openssl, "pkey", "-pubin", "-outform", "der"], input=pub, check=True,
                         capture_output=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class TlsServer(ZkServer):
    """A zonekeeper serving DNS over TLS too, on a port of its own."""

    def __init__(self, workdir: Path, cert: Cert, **kw: object) -> None:
        self.tls_port = free_port()
        self.cert = cert
        super().__init__(workdir, extra_args=[
            "--tls-listen", f"127.0.0.1:{self.tls_port}", "--tls-cert", str(cert.cert),
            "--tls-key", str(cert.key)], **kw)  # type: ignore[arg-type]
