"""TSIG checks of requests (RFC 8945 §5.2) on the three paths that take signed requests:
transfers (TCP), signed ordinary queries (UDP) and NOTIFY (UDP), against a real server.

Requests are signed here by hand (dnspython's ``dns.tsig.sign`` with a chosen time, then
the MAC altered as each case needs), so bad MACs, old times and truncated MACs can be sent."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import httpx2
import pytest

from tests.conftest import ZkServer, make_zone, wait_for

PATHS = ("transfer", "query", "notify")


@pytest.fixture(scope="module")
def setup(zk: ZkServer) -> Iterator[tuple[str, dns.tsig.Key]]:
    """A zone and a key that may transfer it and NOTIFY from 127.0.0.1 (so NOTIFYs here
    have a budget of their own)."""
    zone = f"tsig{int(time.time() * 1000) % 10**9}.test."
    with zk.client() as api:
        make_zone(api, zone)
        made = api.post("/tsig-keys", json={"name": f"k.{zone}", "algorithm": "hmac-sha256"})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        for action in ("transfer", "notify"):
            r = api.post("/acls", json={"zone": zone, "action": action,
                                        "network": "127.0.0.1/32", "key": f"k.{zone}"})
            assert r.status_code == 201, r.text
    yield zone, dns.tsig.Key(f"k.{zone}", secret, "hmac-sha256")


def request(zone: str, path: str) -> dns.message.Message:
    if path == "transfer":
        return dns.message.make_query(zone, "AXFR", use_edns=False)
    q = dns.message.make_query(zone, "SOA", use_edns=False)
    if path == "notify":
        q.set_opcode(dns.opcode.NOTIFY)
    return q


def sign(q: dns.message.Message, key: dns.tsig.Key, *, age: int = 0,
         mac: Callable[[bytes], bytes] | None = None) -> tuple[bytes, bytes]:
    """``q`` signed with ``key`` as if ``age`` seconds ago, its MAC passed through ``mac``;
    the wire and the MAC sent."""
    wire = q.to_wire()
    signed_at = int(time.time()) - age
    template = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm,
                                         signed_at, 300, b"", q.id, 0, b"")
    rd, _ctx = dns.tsig.sign(wire, key, template, signed_at)
    if mac is not None:
        rd = rd.replace(mac=mac(rd.mac))
    rdw = rd.to_wire()
    rr = key.name.to_wire() + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0,
                                          len(rdw)) + rdw
    ar = int.from_bytes(wire[10:12], "big") + 1
    return wire[:10] + ar.to_bytes(2, "big") + wire[12:] + rr, rd.mac


def exchange(zk: ZkServer, path: str, wire: bytes, source: str = "127.0.0.1") -> bytes:
    """One request, the first answer message: over TCP for a transfer, else UDP."""
    if path == "transfer":
        with socket.create_connection((zk.addr, zk.dns_port), timeout=5,
                                      source_address=(source, 0)) as s:
            s.sendall(len(wire).to_bytes(2, "big") + wire)
            size = int.from_bytes(_read(s, 2), "big")
            return _read(s, size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.bind((source, 0))
        s.sendto(wire, (zk.addr, zk.dns_port))
        return s.recv(65535)


def _read(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        assert part, "connection closed"
        buf += part
    return buf


def _skip_name(wire: bytes, pos: int) -> int:
    while wire[pos] and wire[pos] < 0xC0:
        pos += wire[pos] + 1
    return pos + (2 if wire[pos] else 1)


def tsig_offset(wire: bytes) -> int:
    """Where the last record (the TSIG) of ``wire`` starts."""
    counts = struct.unpack_from("!HHHH", wire, 4)
    pos = 12
    for _ in range(counts[0]):
        pos = _skip_name(wire, pos) + 4
    last = pos
    for _ in range(sum(counts[1:])):
        last = pos
        pos = _skip_name(wire, pos)
        pos += 10 + int.from_bytes(wire[pos + 8 : pos + 10], "big")
    return last


def unsigned_error(resp: bytes) -> int:
    """The TSIG error of an unsigned NOTAUTH answer (asserting it is that)."""
    r = dns.message.from_wire(resp, keyring=False)
    assert r.rcode() == dns.rcode.NOTAUTH, r
    assert r.tsig is not None and r.tsig[0].mac == b"", "a key or MAC error must not be signed"
    return r.tsig_error


def signed_error(resp: bytes, key: dns.tsig.Key, request_mac: bytes) -> dns.rdtypes.ANY.TSIG.TSIG:
    """The TSIG of a signed NOTAUTH answer, its MAC verified over the request's MAC."""
    r = dns.message.from_wire(resp, keyring=False)
    assert r.rcode() == dns.rcode.NOTAUTH, r
    rd = r.tsig[0]  # type: ignore[index]
    at = tsig_offset(resp)
    body = resp[:10] + (int.from_bytes(resp[10:12], "big") - 1).to_bytes(2, "big") + resp[12:at]
    expected, _ctx = dns.tsig.sign(body, key, rd, rd.time_signed, request_mac)
    assert rd.mac and expected.mac == rd.mac, "the error answer's MAC does not verify"
    return rd


def formerr(resp: bytes) -> None:
    r = dns.message.from_wire(resp, keyring=False)
    assert r.rcode() == dns.rcode.FORMERR and r.tsig is None, r


@pytest.mark.parametrize("path", PATHS)
def test_bad_mac_with_a_bad_time_is_badsig_unsigned(zk: ZkServer, setup: tuple[str, dns.tsig.Key],
                                                    path: str) -> None:
    """MAC before time (RFC 8945 §5.2): a forged request whose time is off as well gets
    BADSIG, unsigned; a signed BADTIME would sign for a request nobody authenticated."""
    zone, key = setup
    wire, _mac = sign(request(zone, path), key, age=1000,
                      mac=lambda m: bytes([m[0] ^ 1]) + m[1:])
    assert unsigned_error(exchange(zk, path, wire)) == dns.rcode.BADSIG
    # Control: the same request with its MAC intact is BADTIME, signed.
    wire, mac = sign(request(zone, path), key, age=1000)
    assert signed_error(exchange(zk, path, wire), key, mac).error == dns.rcode.BADTIME


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("size", [0, 9, 15, 33, 64])
def test_mac_size_outside_the_rfc_bounds_is_formerr(zk: ZkServer, setup: tuple[str, dns.tsig.Key],
                                                    path: str, size: int) -> None:
    """RFC 8945 §5.2.2.1: a MAC longer than the hash output (32 octets for hmac-sha256), or
    shorter than the larger of 10 and half of it (16), is FORMERR, even when the octets
    there are the start of the right MAC."""
    zone, key = setup
    wire, _mac = sign(request(zone, path), key, mac=lambda m: (m + m)[:size])
    formerr(exchange(zk, path, wire))
    # NOTIFY lines are held to one per source and outcome every 10 s: any size will do there.
    reason = "TSIG MAC of " if path == "notify" else f"TSIG MAC of {size} octets"
    event = {"transfer": "xfr.refused", "query": "dns.tsig_refused",
             "notify": "notify.received"}[path]
    # The answer goes out before the line is written.
    wait_for(lambda: any(reason in str(e.get("reason")) and "16 to 32" in str(e.get("reason"))
                         for e in zk.events(event)), timeout=5, what=f"{reason!r} logged")


@pytest.mark.parametrize("path", PATHS)
def test_truncated_mac_within_the_bounds(zk: ZkServer, setup: tuple[str, dns.tsig.Key],
                                         path: str) -> None:
    """A MAC truncated within the bounds (16 of 32 octets): checked as truncated, then time
    (BADTIME), then our policy, which takes whole MACs only (BADTRUNC, §5.2.4): both signed
    over the truncated request MAC. Truncated and wrong is BADSIG, unsigned."""
    zone, key = setup
    wire, mac = sign(request(zone, path), key, mac=lambda m: m[:16])
    assert signed_error(exchange(zk, path, wire), key, mac).error == dns.rcode.BADTRUNC
    wire, mac = sign(request(zone, path), key, age=1000, mac=lambda m: m[:16])
    assert signed_error(exchange(zk, path, wire), key, mac).error == dns.rcode.BADTIME
    wire, _mac = sign(request(zone, path), key, mac=lambda m: bytes([m[0] ^ 1]) + m[1:16])
    assert unsigned_error(exchange(zk, path, wire)) == dns.rcode.BADSIG


@pytest.mark.parametrize("path", PATHS)
def test_whole_mac_in_time_is_answered(zk: ZkServer, setup: tuple[str, dns.tsig.Key],
                                       path: str) -> None:
    """Control for the cases above: the same request, signed properly, is answered signed."""
    zone, key = setup
    wire, mac = sign(request(zone, path), key)
    r = dns.message.from_wire(exchange(zk, path, wire), keyring=key, request_mac=mac,
                              multi=path == "transfer")
    expected = dns.rcode.NOTAUTH if path == "notify" else dns.rcode.NOERROR  # not a secondary
    assert r.rcode() == expected and r.had_tsig, r


def test_replay_outside_the_fudge_is_badtime(zk: ZkServer, setup: tuple[str, dns.tsig.Key]) -> None:
    """A signed AXFR request captured 400 s ago and sent again (from another address) gets
    a signed BADTIME whose Other Data carries our clock; nothing is transferred."""
    zone, key = setup
    wire, mac = sign(request(zone, "transfer"), key, age=400)
    before = time.time()
    rd = signed_error(exchange(zk, "transfer", wire, source="127.0.0.2"), key, mac)
    assert rd.error == dns.rcode.BADTIME
    server_time = int.from_bytes(rd.other, "big")
    assert len(rd.other) == 6 and before - 5 <= server_time <= time.time() + 5
    wait_for(lambda: any(e.get("reason") == "TSIG time outside fudge (BADTIME)"
                         and e.get("key") == key.name.to_text()
                         for e in zk.events("xfr.refused", client="127.0.0.2")),
             timeout=5, what="the BADTIME logged with its key")


def test_replay_within_the_fudge_needs_the_address_too(zk: ZkServer, api: httpx2.Client,
                                                       setup: tuple[str, dns.tsig.Key]) -> None:
    """What RFC 8945 does not protect (README, Security notes): a captured request replayed
    within the fudge verifies. A rule naming the key alone lets it transfer from anywhere;
    the rule here names key and address, so the replay from another address is refused."""
    zone, key = setup
    wire, mac = sign(request(zone, "transfer"), key, age=60)
    ok = dns.message.from_wire(exchange(zk, "transfer", wire), keyring=key, request_mac=mac,
                               multi=True)
    assert ok.rcode() == dns.rcode.NOERROR and ok.answer  # the key's own address
    replay = dns.message.from_wire(exchange(zk, "transfer", wire, source="127.0.0.3"),
                                   keyring=key, request_mac=mac)
    assert replay.rcode() == dns.rcode.REFUSED
    # With a rule naming the key alone, the same replay would transfer the zone.
    r = api.post("/acls", json={"zone": zone, "action": "transfer", "key": key.name.to_text()})
    assert r.status_code == 201, r.text
    try:
        taken = dns.message.from_wire(exchange(zk, "transfer", wire, source="127.0.0.3"),
                                      keyring=key, request_mac=mac, multi=True)
        assert taken.rcode() == dns.rcode.NOERROR and taken.answer
    finally:
        assert api.delete(f"/acls/{r.json()['id']}").status_code == 204
