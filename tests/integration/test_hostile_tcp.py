"""Hostile TCP clients (issue 14): clients with no rights, or with transfer rights they
abuse, must not lock others out of DNS over TCP nor grow the server without bound.

Each test runs its own server: the limits it checks are the ones in force by default, or
set through the environment as an operator would."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx2

from tests.conftest import ZkServer, make_zone, wait_for

MB = 1 << 20


def rss(srv: ZkServer) -> int:
    """The server's resident memory in bytes."""
    assert srv.proc is not None
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def conn(srv: ZkServer, source: str, *, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: small window
    s.settimeout(5)
    s.connect((srv.addr, srv.dns_port))
    return s


@contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for s in held:
            s.close()


def tcp_soa(srv: ZkServer, zone: str = "example.test", source: str = "127.0.0.1") -> dns.message.Message:
    q = dns.message.make_query(zone, "SOA")
    return dns.query.tcp(q, srv.addr, port=srv.dns_port, timeout=5, source=source)


def big_txt_zone(api: httpx2.Client, name: str) -> dns.message.Message:
    """A zone whose ``big`` TXT answer is ~3 KB; returns a query for it."""
    make_zone(api, name)
    records = [{"content": f'"{i:02d} ' + "x" * 240 + '"'} for i in range(12)]
    r = api.put(f"/zones/{name}/rrsets/big/TXT", json={"records": records})
    assert r.status_code == 200, r.text
    return dns.message.make_query(f"big.{name}", "TXT")


def test_client_that_sends_without_reading_is_bounded_then_reset(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """Pipelined queries with large answers, never read: the server stops reading (its
    memory does not follow what the client sends), others are still answered, and at the
    idle timeout the connection is reset, not left waiting for a flush."""
    srv: ZkServer = zk_factory(env={"ZONEKEEPER_DNS__TCP_IDLE_TIMEOUT": "2"}).start()
    with srv.client() as api:
        q = big_txt_zone(api, "pipe.test.")
    request = framed(q.to_wire())
    chunk = request * (65536 // len(request))
    before = rss(srv)
    sent = 0
    with conn(srv, "127.0.0.2", rcvbuf=4096) as s:
        s.setblocking(False)
        deadline = time.monotonic() + 20
        stalled_since = time.monotonic()
        # Send until the server stops taking (1 s without progress) or 64 MB went.
        while sent < 64 * MB and time.monotonic() < deadline:
            try:
                sent += s.send(chunk)
                stalled_since = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - stalled_since > 1.0:
                    break
                select.select([], [s], [], 0.1)
        grown = rss(srv) - before
        # Others are answered meanwhile, over TCP and UDP.
        assert tcp_soa(srv).answer
        assert srv.query("example.test", "SOA").answer
        # The kernel's socket buffers hold some megabytes; the server itself holds little.
        assert sent < 24 * MB, f"the server took {sent / MB:.0f} MB from a client that reads nothing"
        assert grown < 32 * MB, f"RSS grew {grown / MB:.0f} MB"
        # At the idle timeout (2 s) the connection is reset.
        s.setblocking(True)
        s.settimeout(10)
        started = time.monotonic()
        reset = False
        try:
            while time.monotonic() - started < 10:
                if not s.recv(65536):
                    break
                time.sleep(0.2)  # read slowly: no progress for the server
        except ConnectionResetError:
            reset = True
        assert reset, "the connection was not reset"
        assert time.monotonic() - started < 8


def test_idle_connections_from_one_address_leave_room_for_others(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """300 idle connections from one address: 16 are kept (tcp_max_clients_per_ip), the
    rest closed at once; everyone else is still answered over TCP, and the refusals are
    logged a few times, not once each."""
    srv: ZkServer = zk_factory().start()
    with sockets() as held:
        for _ in range(300):
            held.append(conn(srv, "127.0.0.2"))
        time.sleep(0.3)
        assert sum(_still_open(held)) == 16
        for _ in range(5):
            assert tcp_soa(srv).answer
    refusals = srv.events("dns.tcp_refused")
    assert refusals and refusals[0]["reason"] == "per-address limit"
    assert len(refusals) <= 3, len(refusals)


def _still_open(held: list[socket.socket]) -> list[bool]:
    out = []
    for s in held:
        s.setblocking(False)
        try:
            out.append(s.recv(10) != b"")
        except BlockingIOError:
            out.append(True)
        except ConnectionResetError:
            out.append(False)
    return out


def test_known_peer_and_newcomers_get_in_while_many_addresses_hold_every_slot(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """Connections from many addresses fill the slots for unknown clients: a newcomer takes
    the place of the one idle for longest, and a linked peer gets in without cutting anyone
    (slots are kept for it)."""
    srv: ZkServer = zk_factory(env={"ZONEKEEPER_DNS__TCP_MAX_CLIENTS": "40",
                                    "ZONEKEEPER_DNS__TCP_RESERVED_CLIENTS": "10"}).start()
    with srv.client() as api:
        make_zone(api, "known.test.")
        assert api.post("/peers", json={"name": "sec1", "address": "127.0.0.9"}).status_code == 201
        r = api.put("/zones/known.test./peers/sec1", json={"role": "secondary"})
        assert r.status_code < 300, r.text
    with sockets() as held:
        for i in range(30):  # 40 - 10: every slot for unknown clients
            held.append(conn(srv, f"127.0.{1 + i // 10}.{1 + i % 10}"))
            time.sleep(0.01)
        time.sleep(0.2)
        assert all(_still_open(held))
        assert tcp_soa(srv, source="127.0.5.1").answer
        wait_for(lambda: not _still_open(held)[0], 5, "the oldest connection reset")
        assert _still_open(held) == [False] + [True] * 29  # the oldest made room
        for _ in range(3):
            assert tcp_soa(srv, "known.test", source="127.0.0.9").answer
        assert _still_open(held)[1:] == [True] * 29
    assert srv.events("dns.tcp_evicted", client="127.0.1.1")


def _huge_zone(api: httpx2.Client, name: str) -> None:
    """~6.5 MB: more than the kernel's socket buffers, so a reader that stops stalls us."""
    text = [f"$ORIGIN {name}", "$TTL 300", "@ SOA ns1 host 10 3600 900 1209600 300", "@ NS ns1",
            "ns1 A 192.0.2.1"]
    strings = " ".join(f'"{c * 250}"' for c in "wxyz")
    text += [f"h{i} TXT \"{i:06d}\" {strings}" for i in range(6400)]
    make_zone(api, name, zone_text="\n".join(text) + "\n")


def _axfr_records(srv: ZkServer, zone: str, source: str) -> int:
    q = dns.message.make_query(zone, "AXFR")
    n = 0
    for msg in dns.query.xfr(srv.addr, zone, port=srv.dns_port, source=source, timeout=10,
                             lifetime=30):
        n += sum(len(rrset) for rrset in msg.answer)
    del q
    return n


def test_stalled_axfr_readers_cannot_hold_the_transfer_slots(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """Twelve clients allowed to transfer start an AXFR of a big zone and never read: the
    ten slots (transfers_out) do not keep a linked secondary out (two are kept for it), and
    another allowed client gets a slot within seconds, taken from a stalled reader."""
    srv: ZkServer = zk_factory().start()
    zone = "stall.test."
    with srv.client() as api:
        _huge_zone(api, zone)
        assert api.post("/acls", json={"zone": zone, "action": "transfer",
                                       "network": "127.0.0.0/16"}).status_code == 201
        assert api.post("/peers", json={"name": "sec2", "address": "127.0.0.9"}).status_code == 201
        r = api.put(f"/zones/{zone}/peers/sec2", json={"role": "secondary"})
        assert r.status_code < 300, r.text
    request = framed(dns.message.make_query(zone, "AXFR").to_wire())
    with sockets() as held:
        for i in range(12):
            s = conn(srv, f"127.0.2.{i + 1}", rcvbuf=4096)
            s.sendall(request)
            held.append(s)
        time.sleep(1.0)
        started = time.monotonic()
        assert _axfr_records(srv, zone, "127.0.0.9") == 6404  # SOA, NS, ns1 A, 6400 TXT, SOA
        peer_s = time.monotonic() - started
        started = time.monotonic()
        assert _axfr_records(srv, zone, "127.0.3.1") == 6404
        other_s = time.monotonic() - started
    assert peer_s < 5, peer_s
    assert other_s < 8, other_s
    results = [e["result"] for e in srv.events("xfr.out", zone=zone)]
    assert "preempted" in results, results
    refused = srv.events("xfr.refused", zone=zone)
    assert all("transfers_out" in str(e["reason"]) for e in refused), refused
