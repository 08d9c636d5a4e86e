"""DNS transport and protocol edges against a real server: TCP pipelining and limits,
EDNS0, truncation, bad requests, opcodes."""

from __future__ import annotations

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx2
import pytest

from tests.conftest import ZkServer, make_zone


def raw_udp(zk: ZkServer, data: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (zk.addr, zk.dns_port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def read_tcp_message(s: socket.socket) -> bytes:
    head = b""
    while len(head) < 2:
        chunk = s.recv(2 - len(head))
        assert chunk, "connection closed"
        head += chunk
    n = struct.unpack("!H", head)[0]
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        assert chunk, "connection closed"
        body += chunk
    return body


def test_tcp_pipelined_queries_answered_in_order(zk: ZkServer) -> None:
    names = ["example.test", "www.example.test", "nope.example.test", "mail.example.test"]
    queries = [dns.message.make_query(n, "A", id=1000 + i) for i, n in enumerate(names)]
    payload = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
    with socket.create_connection((zk.addr, zk.dns_port), timeout=5) as s:
        s.sendall(payload)
        replies = [dns.message.from_wire(read_tcp_message(s)) for _ in names]
    assert [r.id for r in replies] == [1000, 1001, 1002, 1003]
    assert [r.rcode() for r in replies] == [0, 0, dns.rcode.NXDOMAIN, 0]


def test_tcp_query_split_across_writes(zk: ZkServer) -> None:
    wire = dns.message.make_query("example.test", "SOA", id=77).to_wire()
    framed = struct.pack("!H", len(wire)) + wire
    with socket.create_connection((zk.addr, zk.dns_port), timeout=5) as s:
        for b in framed:
            s.sendall(bytes([b]))
        reply = dns.message.from_wire(read_tcp_message(s))
    assert reply.id == 77 and reply.answer


def test_tcp_idle_connection_is_closed(zk_factory) -> None:  # type: ignore[no-untyped-def]
    cfg_env = {"ZONEKEEPER_DNS__TCP_IDLE_TIMEOUT": "1"}
    srv: ZkServer = zk_factory(env=cfg_env).start()
    with socket.create_connection((srv.addr, srv.dns_port), timeout=5) as s:
        start = time.monotonic()
        assert s.recv(10) == b""  # closed by the server
        assert time.monotonic() - start < 4


def test_tcp_connection_cap(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """At the cap, a newcomer takes the place of the connection idle for longest (RFC 7766
    §6.2.3); the others go on."""
    srv: ZkServer = zk_factory(env={"ZONEKEEPER_DNS__TCP_MAX_CLIENTS": "2",
                                    "ZONEKEEPER_DNS__TCP_RESERVED_CLIENTS": "0"}).start()
    wire = dns.message.make_query("example.test", "SOA").to_wire()
    held = [socket.create_connection((srv.addr, srv.dns_port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)
        held[1].sendall(struct.pack("!H", len(wire)) + wire)  # progress: held[0] is the idlest
        assert dns.message.from_wire(read_tcp_message(held[1])).answer
        with socket.create_connection((srv.addr, srv.dns_port), timeout=5) as extra:
            extra.sendall(struct.pack("!H", len(wire)) + wire)
            assert dns.message.from_wire(read_tcp_message(extra)).answer
        with pytest.raises(ConnectionResetError):
            held[0].recv(10)
        held[1].sendall(struct.pack("!H", len(wire)) + wire)
        assert dns.message.from_wire(read_tcp_message(held[1])).answer
    finally:
        for s in held:
            s.close()


def test_edns_buffer_size_and_truncation(zk: ZkServer) -> None:
    with zk.client() as api:
        name = "edns.test."
        make_zone(api, name)
        big = [{"content": f'"{i:03d} ' + "x" * 200 + '"'} for i in range(12)]
        r = api.put(f"/zones/{name}/rrsets/big/TXT", json={"records": big})
        assert r.status_code == 200, r.text
    plain = zk.query("big.edns.test", "TXT")  # no EDNS: 512 bytes
    assert plain.flags & dns.flags.TC and not plain.answer
    small = zk.query("big.edns.test", "TXT", use_edns=0, payload=1232)
    assert small.flags & dns.flags.TC  # ~2.6 kB does not fit 1232
    assert small.edns == 0 and small.payload == 1232
    large = zk.query("big.edns.test", "TXT", use_edns=0, payload=4096)
    # Our udp_max_payload (1232) caps the client's offer.
    assert large.flags & dns.flags.TC
    tcp = zk.query("big.edns.test", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 12


def test_edns_version_1_gets_badvers(zk: ZkServer) -> None:
    r = zk.query("example.test", "SOA", use_edns=1)
    assert r.rcode() == dns.rcode.BADVERS and r.edns == 0


def test_do_bit_is_echoed(zk: ZkServer) -> None:
    r = zk.query("example.test", "SOA", use_edns=0, want_dnssec=True)
    assert r.ednsflags & dns.flags.DO
    r = zk.query("example.test", "SOA", use_edns=0)
    assert not r.ednsflags & dns.flags.DO


def test_unknown_opcode_is_notimp(zk: ZkServer) -> None:
    q = dns.message.make_query("example.test", "SOA")
    q.set_opcode(dns.opcode.STATUS)
    reply = dns.message.from_wire(raw_udp(zk, q.to_wire()))  # type: ignore[arg-type]
    assert reply.rcode() == dns.rcode.NOTIMP and reply.id == q.id


def test_responses_and_runts_are_dropped(zk: ZkServer) -> None:
    q = dns.message.make_query("example.test", "SOA")
    q.flags |= dns.flags.QR
    assert raw_udp(zk, q.to_wire(), timeout=0.5) is None
    assert raw_udp(zk, b"\x12\x34\x00", timeout=0.5) is None


def test_malformed_query_is_formerr(zk: ZkServer) -> None:
    wire = dns.message.make_query("example.test", "SOA", id=4242).to_wire()
    for bad in (wire[:-3], wire + b"\x00\x00junk", wire[:4] + b"\x00\x02" + wire[6:]):
        reply = raw_udp(zk, bad)
        assert reply is not None and reply[:2] == wire[:2]
        assert reply[3] & 0x0F == dns.rcode.FORMERR


def test_unusual_but_valid_query_takes_the_slow_path(zk: ZkServer) -> None:
    # A record in the answer section and an EDNS cookie: not the fast path's shape, still valid.
    q = dns.message.make_query("www.example.test", "A", id=9, use_edns=0,
                               options=[dns.edns.GenericOption(10, b"\x01" * 8)])
    q.answer.append(dns.rrset.from_text("example.test.", 60, "IN", "A", "192.0.2.1"))
    r = dns.message.from_wire(raw_udp(zk, q.to_wire()))  # type: ignore[arg-type]
    assert r.id == 9 and r.rcode() == dns.rcode.NOERROR
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]


def test_axfr_over_udp_is_formerr(zk: ZkServer) -> None:
    r = zk.query("example.test", "AXFR")
    assert r.rcode() == dns.rcode.FORMERR


def test_non_in_class_is_refused(zk: ZkServer) -> None:
    r = zk.query("version.bind", "TXT", rdclass="CH")
    assert r.rcode() == dns.rcode.REFUSED


def test_case_is_echoed_and_cache_does_not_mix_case(zk: ZkServer) -> None:
    for name in ("WWW.Example.TEST", "www.example.test", "wWw.eXaMpLe.tEsT"):
        r = zk.query(name, "A")
        assert r.question[0].name.to_text() == name + "."
        assert r.answer[0].name.to_text() == name + "."


def test_cache_is_invalidated_by_an_edit(zk: ZkServer) -> None:
    with zk.client() as api:
        make_zone(api, "cache.test.")
        api.put("/zones/cache.test./rrsets/h/A", json={"records": [{"content": "192.0.2.1"}]})
        for _ in range(3):
            assert zk.query("h.cache.test", "A").answer[0][0].address == "192.0.2.1"
        api.put("/zones/cache.test./rrsets/h/A", json={"records": [{"content": "192.0.2.2"}]})
        assert zk.query("h.cache.test", "A").answer[0][0].address == "192.0.2.2"
    assert httpx2.get(zk.api_url + "/healthz").status_code == 200
