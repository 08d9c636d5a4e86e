"""EDNS options a query may carry and how an answer carries ours: NSID (RFC 5001), EDNS
EXPIRE (RFC 7314), DNS COOKIE (RFC 7873, server cookies as RFC 9018 makes them) and TCP
keepalive (RFC 7828). Sans-IO: bytes in, bytes out.

Only queries that carry options pay for this: the query path looks at ``Edns.options``
(the OPT RDATA) and calls ``EdnsOptions.answer`` when it is not empty.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from siphash24 import siphash24

NSID = 3
EXPIRE = 9
COOKIE = 10
KEEPALIVE = 11
BADCOOKIE = 23  # extended RCODE (upper bits in the OPT TTL)

COOKIE_VERSION = 1  # RFC 9018: SipHash-2-4 server cookies
COOKIE_PAST = 3600  # a server cookie older than this is stale (RFC 9018 section 4.3)
COOKIE_FUTURE = 300  # ... and one from further in the future than this is bad

NSID_MAX = 512  # octets of our NSID (settings: 128 characters of UTF-8)
# The most our options take in one answer (each answered once): what an AXFR's first
# message keeps room for.
OPTIONS_MAX = (4 + NSID_MAX) + (4 + 8 + 16) + (4 + 4) + (4 + 2)


class MalformedOption(Exception):
    """An option the RFCs say to answer with FORMERR (e.g. a COOKIE of a bad length)."""


def options(rdata: bytes) -> Iterator[tuple[int, bytes]]:
    """The (code, data) pairs of an OPT RDATA; MalformedOption if they overrun it."""
    pos, end = 0, len(rdata)
    while pos < end:
        if end - pos < 4:
            raise MalformedOption("truncated EDNS option header")
        code = int.from_bytes(rdata[pos : pos + 2], "big")
        size = int.from_bytes(rdata[pos + 2 : pos + 4], "big")
        if pos + 4 + size > end:
            raise MalformedOption("EDNS option longer than the OPT record")
        yield code, rdata[pos + 4 : pos + 4 + size]
        pos += 4 + size


def option(code: int, data: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def server_cookie(secret: bytes, client: bytes, address: str, now: int) -> bytes:
    """RFC 9018 section 4: version, three reserved octets, a 32-bit timestamp, and
    SipHash-2-4 over the client cookie, those eight octets and the client's address."""
    head = bytes([COOKIE_VERSION, 0, 0, 0]) + (now & 0xFFFFFFFF).to_bytes(4, "big")
    packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    mac = siphash24(client + head + packed, key=secret).digest()
    return head + mac


def cookie_valid(secrets: tuple[bytes, ...], client: bytes, server: bytes, address: str,
                 now: int) -> bool:
    """Whether ``server`` is a cookie one of ``secrets`` made for this client and address,
    not stale (older than an hour) nor from the future (over five minutes). Timestamps are
    compared in serial-number arithmetic, as RFC 9018 says."""
    if len(server) != 16 or server[0] != COOKIE_VERSION:
        return False
    stamp = int.from_bytes(server[4:8], "big")
    age = (now - stamp) & 0xFFFFFFFF
    if age >= 0x80000000:
        age -= 0x100000000
    if age > COOKIE_PAST or age < -COOKIE_FUTURE:
        return False
    return any(server_cookie(s, client, address, stamp) == server for s in secrets)


@dataclass
class EdnsOptions:
    """What this server says in options: its NSID (None: not configured), its TCP idle
    timeout, the cookie secrets (current first, then the previous one), whether UDP
    clients must show a valid server cookie (BADCOOKIE otherwise), and how to learn a
    zone's EXPIRE value (seconds, or None when not known)."""

    nsid: bytes | None
    idle_timeout: float
    secrets: Callable[[], tuple[bytes, ...]]
    require_cookie: bool = False
    expire_of: Callable[[object], int | None] | None = None
    clock: Callable[[], float] = time.time

    def answer(self, rdata: bytes, *, tcp: bool, address: str, zone: object | None,
               apex_soa: bool) -> tuple[bytes, int]:
        """The options for the answer to a query whose OPT RDATA is ``rdata``, and its
        extended RCODE (0, or BADCOOKIE). ``apex_soa``: the query asked for a zone's SOA
        at its apex (EXPIRE is given there). MalformedOption: answer FORMERR."""
        out = b""
        rcode = 0
        seen: set[int] = set()
        for code, data in options(rdata):
            if code in seen:
                continue  # an option asked twice is answered once
            seen.add(code)
            if code == NSID:  # asked with an empty payload; a non-empty one is not refused
                if self.nsid is not None:
                    out += option(NSID, self.nsid)
            elif code == COOKIE:
                if len(data) != 8 and not 16 <= len(data) <= 40:
                    raise MalformedOption("a COOKIE option is 8 or 16 to 40 octets")
                client = data[:8]
                now = int(self.clock())
                secrets = self.secrets()
                if not secrets or not address:
                    continue
                valid = len(data) > 8 and cookie_valid(secrets, client, data[8:], address, now)
                if not valid and self.require_cookie and not tcp:
                    rcode = BADCOOKIE
                out += option(COOKIE, client + server_cookie(secrets[0], client, address, now))
            elif code == EXPIRE:
                if self.expire_of is not None and zone is not None and apex_soa:
                    left = self.expire_of(zone)
                    if left is not None:
                        out += option(EXPIRE, max(0, left).to_bytes(4, "big"))
            elif code == KEEPALIVE:
                if tcp:  # never over UDP (RFC 7828 section 3.2.1)
                    units = min(0xFFFF, int(self.idle_timeout * 10))
                    out += option(KEEPALIVE, units.to_bytes(2, "big"))
        return out, rcode
