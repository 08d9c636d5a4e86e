"""TLS for DNS: the server side of DNS over TLS and zone transfers over TLS (RFC 7858,
RFC 9103), and the client side a secondary zone uses to pull from its primary over TLS.

The one place that builds ``ssl.SSLContext`` objects: ALPN "dot" on both sides, TLS 1.3 at
least unless the configuration allows 1.2 (RFC 9103 §9: XoT needs TLS 1.3, and 1.2 only
where an operator chooses it). The server's certificate and key are files, read again on
SIGHUP (``ServerTls.reload``): connections opened after it get the new ones, a reload that
fails keeps the old. A primary's certificate may be verified by name (against the CA file
or the system's store) or pinned by the SHA-256 of its SubjectPublicKeyInfo (base64, as
BIND's and Knot's documentation write pins); without either, the transfer is encrypted but
the primary unauthenticated (RFC 9103's opportunistic TLS).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from collections.abc import Callable

ALPN_DOT = "dot"  # RFC 7858 / RFC 9103 §7.1
DOT_PORT = 853
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsConfigError(ValueError):
    """A certificate, key or CA file that cannot be used: one line naming the file."""


def server_context(cert: str, key: str, min_version: str = "1.3") -> ssl.SSLContext:
    """A server context from PEM files; TlsConfigError says which file is wrong and how."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[min_version]
    ctx.set_alpn_protocols([ALPN_DOT])
    ctx.options |= ssl.OP_NO_COMPRESSION
    for what, path in (("tls_cert", cert), ("tls_key", key)):
        if not path:
            raise TlsConfigError(f"{what} is not set (the TLS listener needs a certificate "
                                 "and its key, PEM files)")
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise TlsConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TlsConfigError(f"tls_cert {cert} / tls_key {key}: cannot be used together "
                             f"({exc.reason or exc})") from None
    except OSError as exc:
        raise TlsConfigError(f"tls_cert {cert} / tls_key {key}: {exc.strerror or exc}") from None
    return ctx


class ServerTls:
    """The listener's current context: built at start (a bad file stops start-up), built
    again from the same files on ``reload`` (a bad file then keeps the one in use)."""

    def __init__(self, cert: str, key: str, min_version: str = "1.3") -> None:
        self.cert = cert
        self.key = key
        self.min_version = min_version
        self.context = server_context(cert, key, min_version)

    def reload(self) -> None:
        """Read the files again; raises TlsConfigError (and keeps the old context)."""
        self.context = server_context(self.cert, self.key, self.min_version)

    def __call__(self) -> ssl.SSLContext:
        return self.context


# -- the client side (a secondary zone pulling over TLS) ---------------------------------------
def _der_item(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER item at ``pos``."""
    tag = der[pos]
    n = der[pos + 1]
    pos += 2
    if n & 0x80:
        count = n & 0x7F
        n = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + n


def spki_of(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo (DER) of an X.509 certificate (DER): the seventh item of
    the TBSCertificate when it has an explicit version, else the sixth (RFC 5280 §4.1)."""
    _tag, start, _end = _der_item(cert_der, 0)  # Certificate
    _tag, pos, _end = _der_item(cert_der, start)  # TBSCertificate
    items = []
    while len(items) < 7:
        tag, body, end = _der_item(cert_der, pos)
        items.append((tag, pos, end))
        pos = end
    if items[0][0] != 0xA0:  # no [0] version: v1 certificate, one item fewer before
        items.insert(0, (0xA0, 0, 0))
    tag, begin, end = items[6]
    if tag != 0x30:
        raise ValueError("not an X.509 certificate")
    return cert_der[begin:end]


def spki_pin(cert_der: bytes) -> str:
    """The base64 SHA-256 of a certificate's SubjectPublicKeyInfo (RFC 7469's pin-sha256)."""
    return base64.b64encode(hashlib.sha256(spki_of(cert_der)).digest()).decode()


def cert_pin(path: str) -> str | None:
    """The pin of the first certificate in a PEM file, or None if it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            pem = f.read()
        end = pem.index(ssl.PEM_FOOTER) + len(ssl.PEM_FOOTER)
        return spki_pin(ssl.PEM_cert_to_DER_cert(pem[pem.index(ssl.PEM_HEADER):end]))
    except (OSError, ValueError, IndexError):
        return None


def client_context(verify_name: str | None, ca_file: str | None = None,
                   min_version: str = "1.3") -> ssl.SSLContext:
    """A client context: the primary's certificate checked against ``verify_name`` (chain
    from ``ca_file``, else the system's store) when given; otherwise not checked here (an
    SPKI pin is checked after the handshake, ``connect``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _VERSIONS[min_version]
    ctx.set_alpn_protocols([ALPN_DOT])
    if verify_name:
        if ca_file:
            try:
                ctx.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TlsConfigError(f"tls_ca_file {ca_file}: {exc}") from None
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class PinMismatch(ssl.SSLError):
    """The primary's key is not the pinned one."""


def connect(sock: socket.socket, ctx: ssl.SSLContext, *, verify_name: str | None,
            pin: str | None, fail: Callable[[str], Exception],
            min_version: str = "1.3") -> ssl.SSLSocket:
    """``sock`` (connected, blocking) wrapped in TLS, the handshake done and the primary
    checked: its name (by the context) and its SPKI pin. A failed check raises
    ``fail(reason)``: the reason names what did not match."""
    try:
        tls = ctx.wrap_socket(sock, server_hostname=verify_name or None)
    except ssl.SSLCertVerificationError as exc:
        raise fail(f"TLS: the primary's certificate does not verify "
                   f"({exc.verify_message or exc.reason})") from None
    except ssl.SSLError as exc:
        why = f"TLS handshake failed: {exc.reason or exc}"
        if min_version != "1.2":
            # A primary that speaks TLS 1.2 alone often just closes (no alert to tell).
            why += (f" (we offer TLS {min_version} only; a primary speaking TLS 1.2 alone "
                    'needs [dns] tls_min_version = "1.2")')
        raise fail(why) from None
    if pin:
        der = tls.getpeercert(binary_form=True)
        got = spki_pin(der) if der else "(no certificate)"
        if got != pin:
            tls.close()
            raise fail(f"TLS: the primary's key does not match the pin (tls_spki {pin}, "
                       f"the primary's is {got})")
    return tls
