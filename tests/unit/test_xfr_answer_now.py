"""Answers known in advance (server/xfr.py ``XfrServer.answer_now``): an unsigned IXFR that
serve() has answered before gets the same bytes (its own ID and question case) and the same
``xfr.out`` fields without a task; every request it must not answer is left to serve() with
nothing sent and nothing logged."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.edns
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import pytest

from zonekeeper.policy.acl import AclAction, Effect, Policy, Rule, parse_network
from zonekeeper.server import xfr as xfr_module
from zonekeeper.server.xfr import ANSWER_NOW_MAX_BYTES, XfrServer, _Slot
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState, compile_nodes

ORIGIN = dns.name.from_text("now.test.")
CLIENT = "127.0.0.1"
KEY = dns.tsig.Key("k.", "c2VjcmV0LWtleS1mb3ItdGVzdHM=", "hmac-sha256")


def soa(serial: int) -> str:
    return f"ns1.now.test. host.now.test. {serial} 3600 900 1209600 300"


def rr_wire(owner: str, rdtype: str, text: str, ttl: int = 300) -> bytes:
    rd = dns.rdata.from_text("IN", rdtype, text)
    data = rd.to_wire()
    rrtype = int(dns.rdatatype.from_text(rdtype))
    return (dns.name.from_text(owner).to_wire() + rrtype.to_bytes(2, "big") + b"\x00\x01"
            + ttl.to_bytes(4, "big") + len(data).to_bytes(2, "big") + data)


def snapshot(txt_records: int = 0) -> ZoneSnapshot:
    """Serial 2 of now.test.; the journal (rows()) takes serial 1 there."""
    rrsets = [
        (ORIGIN, dns.rdatatype.SOA, 300, [dns.rdata.from_text("IN", "SOA", soa(2))]),
        (ORIGIN, dns.rdatatype.NS, 300, [dns.rdata.from_text("IN", "NS", "ns1.now.test.")]),
        (dns.name.from_text("a.now.test."), dns.rdatatype.A, 300,
         [dns.rdata.from_text("IN", "A", "192.0.2.2")]),
    ]
    rrsets += [(dns.name.from_text(f"t{i}.now.test."), dns.rdatatype.TXT, 300,
                [dns.rdata.from_text("IN", "TXT", f'"{i:05d} {"x" * 200}"')])
               for i in range(txt_records)]
    nodes, cuts = compile_nodes(ORIGIN, rrsets)
    return ZoneSnapshot(ORIGIN, 2, nodes, cuts, zone_id=1)


def rows(txt_records: int = 0) -> list[tuple[int, int, bytes, bytes]]:
    removed = rr_wire("now.test.", "SOA", soa(1)) + rr_wire("a.now.test.", "A", "192.0.2.1")
    added = rr_wire("now.test.", "SOA", soa(2)) + rr_wire("a.now.test.", "A", "192.0.2.2")
    added += b"".join(rr_wire(f"t{i}.now.test.", "TXT", f'"{i:05d} {"x" * 200}"')
                      for i in range(txt_records))
    return [(1, 2, removed, added)]


class Out:
    """A connection as transfers see it: what was written, one bytes per write() call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.is_paused = False
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("connection closed")
        self.writes.append(data)

    async def drain(self) -> None:
        return None

    def paused(self) -> bool:
        return self.is_paused

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)


def server(snap: ZoneSnapshot, *, txt_records: int = 0) -> tuple[XfrServer, list[dict[str, Any]]]:
    registry = Registry()
    registry.publish(snap)
    srv = XfrServer(registry, transfers_out=2, send_timeout=5, max_time=60)
    srv.set_policy(Policy(keys={KEY.name.to_text(): KEY}, rules=(
        Rule(1, AclAction.TRANSFER, Effect.ALLOW, network=parse_network("127.0.0.0/8")),)))
    srv.journal = lambda _zone_id: rows(txt_records)
    events: list[dict[str, Any]] = []
    srv.on_transfer = events.append
    return srv, events


def request(serial: int, *, qid: int = 1, edns: bool = False, qname: str = "now.test.",
            signed: bool = False) -> bytes:
    q = dns.message.make_query(qname, "IXFR", use_edns=0 if edns else False)
    q.id = qid
    q.authority.append(dns.rrset.from_text(qname, 0, "IN", "SOA", soa(serial)))
    if signed:
        q.use_tsig(KEY)
    return q.to_wire()  # type: ignore[no-any-return]


def serve(srv: XfrServer, wire: bytes) -> bytes:
    out = Out()
    asyncio.run(srv.serve(wire, (CLIENT, 5353), out))
    return out.data


def same_but_time(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "duration_ms"} == {
        k: v for k, v in b.items() if k != "duration_ms"}


def with_id(data: bytes, qid: int) -> bytes:
    """A length-prefixed stream of messages with each message's ID set to ``qid``."""
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 2], "big")
        out.append(data[pos : pos + 2] + qid.to_bytes(2, "big") + data[pos + 4 : pos + 2 + n])
        pos += 2 + n
    return b"".join(out)


@pytest.mark.parametrize("serial", [1, 2])
@pytest.mark.parametrize("edns", [False, True])
def test_same_bytes_and_log_line_as_serve(serial: int, edns: bool) -> None:
    """Incremental (from 1) and one SOA (from 2, current), with and without EDNS."""
    srv, events = server(snapshot())
    first = serve(srv, request(serial, qid=1, edns=edns))
    assert first and len(events) == 1
    for qid in (2, 3):  # the first builds what the second reuses as it is
        out = Out()
        assert srv.answer_now(request(serial, qid=qid, edns=edns), CLIENT, out)
        assert out.writes == [with_id(first, qid)]  # one write, the same bytes
        assert len(events) == qid and same_but_time(events[-1], events[0])
    msg = dns.message.from_wire(out.data[2:], one_rr_per_rrset=True)
    # Both answers echo EDNS (the OPT in the first message of the difference).
    assert msg.id == 3 and (msg.edns >= 0) is edns
    assert len(msg.answer) == (6 if serial == 1 else 1)  # SOA, SOA 1, A old, SOA, A new, SOA
    assert events[-1]["style"] == ("incremental from 1" if serial == 1 else "current")


def test_question_keeps_the_clients_case() -> None:
    srv, events = server(snapshot())
    serve(srv, request(1))
    out = Out()
    assert srv.answer_now(request(1, qid=9, qname="NoW.TeSt."), CLIENT, out)
    msg = dns.message.from_wire(out.data[2:], one_rr_per_rrset=True)
    assert msg.id == 9 and msg.question[0].name.to_text() == "NoW.TeSt."
    assert events[-1]["zone"] == "now.test." and same_but_time(events[-1], events[0])


def test_signed_request_is_left_to_serve_and_answered_signed() -> None:
    srv, events = server(snapshot())
    serve(srv, request(1))
    serve(srv, request(2))
    for serial in (1, 2):
        wire = request(serial, qid=5, signed=True)
        out = Out()
        assert not srv.answer_now(wire, CLIENT, out) and not out.writes
        signed = serve(srv, wire)
        query = dns.message.from_wire(wire, keyring={KEY.name: KEY})
        # from_wire checks the MAC against the request's.
        msg = dns.message.from_wire(signed[2:], keyring={KEY.name: KEY}, request_mac=query.mac)
        assert msg.had_tsig and msg.id == 5
    assert [e["key"] for e in events] == [None, None, "k.", "k."]


def declined(srv: XfrServer, wire: bytes, events: list[dict[str, Any]],
             out: Out | None = None) -> bool:
    out = out or Out()
    before = len(events)
    return not srv.answer_now(wire, CLIENT, out) and not out.writes and len(events) == before


def test_what_serve_must_answer_is_left_to_it() -> None:
    snap = snapshot()
    srv, events = server(snap)
    # Nothing rendered yet: serve() renders (and logs) the first answer of each kind.
    assert declined(srv, request(1), events) and declined(srv, request(2), events)
    serve(srv, request(1))
    serve(srv, request(2))
    ready = [request(1, qid=7), request(2, qid=7)]
    axfr = dns.message.make_query("now.test.", "AXFR").to_wire()
    other_zone = request(1, qname="other.test.")
    assert declined(srv, axfr, events) and declined(srv, other_zone, events)
    assert declined(srv, request(0), events)  # a serial never rendered
    assert declined(srv, request(1)[:-3], events)  # cut short
    chaos = bytearray(request(1, qid=7))
    chaos[len(b"\x03now\x04test\x00") + 12 + 3] = 3  # QCLASS CH
    assert declined(srv, bytes(chaos), events)
    paused = Out()
    paused.is_paused = True
    for wire in ready:
        assert declined(srv, wire, events, paused)
    # Access, outgoing, quota and state: serve() refuses, with its EDE and log line.
    srv.set_policy(Policy(rules=(
        Rule(1, AclAction.TRANSFER, Effect.ALLOW, network=parse_network("127.0.0.0/8")),
        Rule(2, AclAction.TRANSFER, Effect.DENY, network=parse_network("127.0.0.1/32")))))
    assert all(declined(srv, wire, events) for wire in ready)
    srv.set_policy(Policy(rules=(
        Rule(1, AclAction.TRANSFER, Effect.ALLOW, network=parse_network("127.0.0.0/8")),)))
    snap.outgoing = False
    assert all(declined(srv, wire, events) for wire in ready)
    snap.outgoing = True
    srv.slots = [_Slot(CLIENT, False, Out()) for _ in range(srv.transfers_out)]
    assert all(declined(srv, wire, events) for wire in ready)
    srv.slots = []
    snap.state = ZoneState.EXPIRED
    assert all(declined(srv, wire, events) for wire in ready)
    snap.state = ZoneState.OK
    # IXFR off for this peer: the difference is not sent, the one SOA still is.
    srv.ixfr_allowed = lambda _zone, _addr: False
    assert declined(srv, ready[0], events)
    assert srv.answer_now(ready[1], CLIENT, Out())
    srv.ixfr_allowed = lambda _zone, _addr: True
    assert all(srv.answer_now(wire, CLIENT, Out()) for wire in ready)


def test_an_answer_over_the_buffer_goes_through_serve() -> None:
    srv, events = server(snapshot(400), txt_records=400)
    first = serve(srv, request(1))
    assert len(first) > ANSWER_NOW_MAX_BYTES and events[-1]["msgs"] > 1
    assert declined(srv, request(1, qid=2), events)


def test_a_closed_connection_is_logged_as_serve_logs_it() -> None:
    srv, events = server(snapshot())
    serve(srv, request(1))
    serve(srv, request(2))
    gone = Out()
    gone.closed = True
    assert srv.answer_now(request(1, qid=3), CLIENT, gone)
    assert events[-1]["result"] == "aborted" and events[-1]["msgs"] == 0
    assert srv.answer_now(request(2, qid=3), CLIENT, gone)  # one SOA: serve() logs nothing
    assert len(events) == 3


def test_a_ratio_changed_during_rendering_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """update() clears the cache when the ratio changes; an answer rendered under the old
    ratio and finished after that must not fill it again."""
    snap = snapshot()
    srv, _events = server(snap)
    render = xfr_module._render_ixfr

    def render_while_the_ratio_changes(*args: Any) -> Any:
        snap.ixfr_max_ratio = 0.01
        snap.ixfr_cache.clear()
        return render(*args)

    monkeypatch.setattr(xfr_module, "_render_ixfr", render_while_the_ratio_changes)
    msgs, style = asyncio.run(srv._incremental(snap, 1))
    assert msgs is not None and style == "incremental from 1"  # this request: as it began
    assert 1 not in snap.ixfr_cache
    monkeypatch.setattr(xfr_module, "_render_ixfr", render)
    msgs, style = asyncio.run(srv._incremental(snap, 1))
    assert msgs is None and style.startswith("axfr-style: the difference")
    assert snap.ixfr_cache[1] == style
