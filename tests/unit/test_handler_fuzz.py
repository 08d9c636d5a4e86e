"""In-process fuzzing of QueryHandler.handle with the demo zone: it never raises, and
whatever it sends back is a well-formed response to the request."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zonekeeper.demo import DEMO_TEXT, DEMO_ZONE
from zonekeeper.server.handler import QueryHandler
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, compile_nodes
from zonekeeper.zones.zonefile import parse_zone_text

ORIGIN = dns.name.from_text(DEMO_ZONE)
BADVERS = 16
ALLOWED_RCODES = {
    dns.rcode.NOERROR,
    dns.rcode.FORMERR,
    dns.rcode.NOTIMP,
    dns.rcode.REFUSED,
    dns.rcode.NOTAUTH,  # IXFR of a name that is not a zone apex (INTERFACE §7)
    dns.rcode.NXDOMAIN,
    dns.rcode.SERVFAIL,
}
SUB = dns.name.from_text("sub", ORIGIN)


def make_handler(cache_entries: int = 100_000) -> QueryHandler:
    parsed = parse_zone_text(DEMO_TEXT, ORIGIN)
    assert not parsed.errors, parsed.errors
    content = parsed.content
    nodes, cuts = compile_nodes(ORIGIN, content.served_rrsets())
    soa = content.get(ORIGIN, dns.rdatatype.SOA)
    assert soa is not None
    serial = soa.records[0].rdata.serial  # type: ignore[attr-defined]
    snap = ZoneSnapshot(ORIGIN, serial, nodes, cuts)
    registry = Registry()
    registry.publish(snap)
    return QueryHandler(registry, udp_max_payload=1232, cache_entries=cache_entries)


# One handler for the module, as in the server (the response cache fills across examples),
# plus a small-cache one so the cache-clearing path runs too.
HANDLER = make_handler()
SMALL_CACHE_HANDLER = make_handler(cache_entries=7)
handlers = st.sampled_from([HANDLER, SMALL_CACHE_HANDLER])


def check_response(req: bytes, resp: bytes | None) -> dns.message.Message | None:
    """The invariants every (request, response) pair must satisfy."""
    if len(req) < 12 or req[2] & 0x80:
        what = "short" if len(req) < 12 else "a response"
        assert resp is None, f"answered a request that is {what}"
        return None
    assert resp is not None, f"dropped a request with a header: {req.hex()}"
    assert isinstance(resp, bytes)
    try:
        msg = dns.message.from_wire(resp, ignore_trailing=False)
    except Exception as exc:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"unparsable response {resp.hex()} to {req.hex()}: {exc!r}") from exc
    assert msg.flags & dns.flags.QR, resp.hex()
    assert resp[0:2] == req[0:2]
    assert msg.id == int.from_bytes(req[0:2], "big")
    rcode = msg.rcode()
    if rcode == BADVERS:
        assert msg.edns >= 0, "BADVERS without an OPT record"
    else:
        assert rcode in ALLOWED_RCODES, (rcode, req.hex(), resp.hex())
    return msg


def run(handler: QueryHandler, data: bytes, tcp: bool) -> dns.message.Message | None:
    try:
        resp = handler.handle(data, tcp=tcp)
    except Exception as exc:
        raise AssertionError(f"handle raised {exc!r} on {data.hex()} (tcp={tcp})") from exc
    return check_response(data, resp)


# -- strategies ----------------------------------------------------------------------

label_chars = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
labels = st.one_of(
    st.sampled_from(["www", "WWW", "mail", "ns1", "ns2", "sub", "SuB", "apps", "*", "Apps", "x"]),
    st.text(label_chars, min_size=1, max_size=12),
)

QTYPES = [
    "A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "ANY", "SRV", "PTR", "DS", "DNSKEY",
    "CAA", "HINFO", "NSEC", "RRSIG", "TYPE65534", "NULL", "AXFR", "IXFR",
]


@st.composite
def in_zone_names(draw: st.DrawFn) -> dns.name.Name:
    rel = draw(st.lists(labels, min_size=0, max_size=4))
    origin_labels = [
        "".join(c.upper() if draw(st.booleans()) else c for c in lab)
        for lab in ("example", "test")
    ]
    return dns.name.from_text(".".join([*rel, *origin_labels]) + ".")


any_names = st.one_of(
    in_zone_names(),
    st.sampled_from(["example.test.", "test.", ".", "other.example.", "xexample.test.",
                     "example.test.example.test.", "example.testx."]).map(dns.name.from_text),
)


@st.composite
def valid_queries(draw: st.DrawFn) -> bytes:
    name = draw(any_names)
    qtype = draw(st.sampled_from(QTYPES))
    qclass = draw(st.sampled_from(["IN", "IN", "IN", "CH", "ANY", "NONE", "CLASS77"]))
    edns = draw(st.sampled_from([None, 0, 0, 1]))
    kw: dict[str, object] = {}
    if edns is not None:
        kw = {
            "use_edns": edns,
            "payload": draw(st.integers(0, 65535)),
            "want_dnssec": draw(st.booleans()),
        }
        if draw(st.booleans()):
            kw["options"] = [dns.edns.GenericOption(draw(st.integers(1, 65000)),
                                                     draw(st.binary(max_size=20)))]
    q = dns.message.make_query(name, qtype, qclass, **kw)  # type: ignore[arg-type]
    q.id = draw(st.integers(0, 65535))
    if draw(st.booleans()):
        # Any header flags (AA, TC, RD, RA, Z, AD, CD), but still a QUERY with QR clear.
        q.flags = draw(st.integers(0, 0xFFFF)) & ~dns.flags.QR & ~0x7800 & ~0x000F
    return q.to_wire()  # type: ignore[no-any-return]


@st.composite
def mutated_queries(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_queries()))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.sampled_from([0, 1, 0x29, 0x3F, 0x40, 0xC0, 0xC0 | 12, 0xFF,
                                            draw(st.integers(0, 255))]))
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            i = draw(st.integers(0, len(data) - 1))
            del data[i : i + draw(st.integers(1, 4))]
        elif op == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


# -- properties ----------------------------------------------------------------------


@settings(deadline=None, max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), tcp=st.booleans(), handler=handlers)
@example(data=b"", tcp=False, handler=HANDLER)
@example(data=b"\x00" * 11, tcp=False, handler=HANDLER)
@example(data=b"\x00" * 12, tcp=False, handler=HANDLER)
@example(data=b"\x12\x34\x80" + b"\x00" * 9, tcp=True, handler=HANDLER)
@example(data=b"\x12\x34\x28\x00\x00\x01\x00\x00\x00\x00\x00\x00", tcp=False, handler=HANDLER)
@example(data=b"\xff\xff\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01", tcp=False, handler=HANDLER)
@example(data=b"\xff\xff\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", tcp=False, handler=HANDLER)
def test_arbitrary_bytes(data: bytes, tcp: bool, handler: QueryHandler) -> None:
    run(handler, data, tcp)


@settings(deadline=None, max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=12, max_size=300), tcp=st.booleans(), handler=handlers)
def test_arbitrary_bytes_with_a_query_header(data: bytes, tcp: bool, handler: QueryHandler) -> None:
    """Random bodies behind a header shaped like a query (QR=0, opcode QUERY, QDCOUNT=1)."""
    hdr = data[0:2] + bytes([data[2] & 0x07, data[3]]) + b"\x00\x01" + data[6:12]
    run(handler, hdr + data[12:], tcp)


@settings(deadline=None, max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(data=valid_queries(), tcp=st.booleans(), handler=handlers)
def test_valid_queries(data: bytes, tcp: bool, handler: QueryHandler) -> None:
    run(handler, data, tcp)


@settings(deadline=None, max_examples=2500, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_queries(), tcp=st.booleans(), handler=handlers)
def test_mutated_queries(data: bytes, tcp: bool, handler: QueryHandler) -> None:
    run(handler, data, tcp)
    # A second time: the answer may now come from the response cache.
    run(handler, data, tcp)


def _recase(name: dns.name.Name, flips: list[bool]) -> dns.name.Name:
    text = name.to_text()
    return dns.name.from_text(
        "".join(c.swapcase() if flips[i % len(flips)] else c for i, c in enumerate(text))
    )


def _under_cut(name: dns.name.Name, qtype: str) -> bool:
    """True when the zone must answer with a referral to sub.example.test. (not authoritative)."""
    if not name.is_subdomain(SUB):
        return False
    return not (name == SUB and qtype == "DS")


AUTH_QTYPES = [t for t in QTYPES if t not in ("AXFR", "IXFR")]


@settings(deadline=None, max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=in_zone_names(),
    qtype=st.sampled_from(AUTH_QTYPES),
    edns=st.sampled_from([None, 0]),
    tcp=st.booleans(),
    qid=st.integers(0, 65535),
    flips=st.lists(st.booleans(), min_size=1, max_size=8),
)
@example(name=dns.name.from_text("WwW.ExAmPlE.TeSt."), qtype="A", edns=None, tcp=False, qid=1,
         flips=[True])
@example(name=dns.name.from_text("x.Apps.example.test."), qtype="A", edns=0, tcp=False, qid=2,
         flips=[False, True])
@example(name=dns.name.from_text("NOPE.example.test."), qtype="MX", edns=None, tcp=True, qid=3,
         flips=[True, False])
@example(name=dns.name.from_text("sub.example.test."), qtype="DS", edns=None, tcp=False, qid=4,
         flips=[True])
def test_authoritative_answers_echo_the_question(
    name: dns.name.Name, qtype: str, edns: int | None, tcp: bool, qid: int, flips: list[bool]
) -> None:
    handler = HANDLER
    # The same question in two spellings: the second may be a cache hit, and must still
    # echo its own spelling.
    for i, qname in enumerate((name, _recase(name, flips))):
        q = dns.message.make_query(qname, qtype, use_edns=edns)
        q.id = (qid + i) % 65536
        wire = q.to_wire()
        resp = handler.handle(wire, tcp=tcp)
        msg = check_response(wire, resp)
        assert msg is not None and resp is not None
        assert msg.id == q.id
        assert len(msg.question) == 1
        echoed = msg.question[0]
        assert echoed.name.to_text() == qname.to_text(), "question not echoed in the same case"
        assert echoed.name.to_wire() == qname.to_wire()
        assert echoed.rdtype == dns.rdatatype.from_text(qtype)
        assert echoed.rdclass == dns.rdataclass.IN
        # The question section is copied byte for byte.
        qlen = len(qname.to_wire()) + 4
        assert resp[4:6] == b"\x00\x01"
        assert resp[12 : 12 + qlen] == wire[12 : 12 + qlen]
        rcode = msg.rcode()
        assert rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), rcode
        if _under_cut(qname, qtype):
            # A referral: not authoritative, NS of the child in the authority section.
            assert rcode == dns.rcode.NOERROR
            assert not msg.flags & dns.flags.AA
            assert not msg.answer
            assert any(r.rdtype == dns.rdatatype.NS and r.name == SUB for r in msg.authority)
        else:
            assert msg.flags & dns.flags.AA, f"AA clear on {qname} {qtype} rcode {rcode}"
        if msg.flags & dns.flags.TC:
            assert not tcp


@pytest.mark.parametrize("tcp", [False, True])
def test_demo_zone_sanity(tcp: bool) -> None:
    """The fixture zone really is the demo zone (guards the properties above)."""
    q = dns.message.make_query("example.test.", "SOA")
    msg = run(HANDLER, q.to_wire(), tcp)
    assert msg is not None
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.AA
    assert msg.answer[0].rdtype == dns.rdatatype.SOA
    q = dns.message.make_query("www.example.test.", "A")
    msg = run(HANDLER, q.to_wire(), tcp)
    assert msg is not None
    assert [r.rdtype for r in msg.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
