"""The short way in for plain IXFR requests (server/xfr.py): ``plain_ixfr`` reads the
client's serial of exactly the requests it is meant for and says None for every other shape,
which then takes dnspython's full parse (TSIG, FORMERR and all)."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
from hypothesis import given
from hypothesis import strategies as st

from zonekeeper.proto.request import plain_ixfr
from zonekeeper.proto.request import skip_name as _skip_name
from zonekeeper.server.xfr import _PlainRequest

ZONE = "Plain.Example."


def request(serial: int = 7, *, edns: bool | int = False, options: list | None = None,
            soa_owner: str = ZONE) -> dns.message.Message:
    q = dns.message.make_query(ZONE, "IXFR", use_edns=edns, options=options)
    q.authority.append(dns.rrset.from_text(soa_owner, 0, "IN", "SOA",
                                           f"ns1.{ZONE} host.{ZONE} {serial} 1 2 3 4"))
    return q


@given(st.integers(0, 2**32 - 1))
def test_serial_read_as_dnspython_reads_it(serial: int) -> None:
    for edns in (False, 0):
        wire = request(serial, edns=edns).to_wire()
        full = dns.message.from_wire(wire)
        assert plain_ixfr(wire).serial == full.authority[0][0].serial == serial


def test_with_edns_options_and_an_uncompressed_owner() -> None:
    opts = [dns.edns.GenericOption(65001, b"abc"), dns.edns.GenericOption(65002, b"")]
    assert plain_ixfr(request(9, edns=0, options=opts).to_wire()) == (
        9, False, b"".join(o.otype.to_bytes(2, "big") + len(o.to_wire()).to_bytes(2, "big")
                           + o.to_wire() for o in opts))
    # An owner other than the question name is written out in full, not as a pointer.
    assert plain_ixfr(request(9, soa_owner="other.example.").to_wire()) == (9, None, b"")


def test_edns_read_as_dnspython_reads_it() -> None:
    """The DO bit comes back to be echoed; another EDNS version takes the full parse (which
    answers BADVERS)."""
    do = request(9, edns=0)
    do.want_dnssec()
    assert plain_ixfr(do.to_wire()) == (9, True, b"")
    assert plain_ixfr(request(9, edns=0).to_wire()) == (9, False, b"")
    assert plain_ixfr(request(9).to_wire()) == (9, None, b"")
    assert plain_ixfr(request(9, edns=1).to_wire()) is None


def test_plain_request_has_id_and_question() -> None:
    q = request()
    wire = q.to_wire()
    plain = _PlainRequest(wire)
    assert plain.id == q.id and not plain.had_tsig and plain.mac is None
    (question,) = plain.question
    assert question.name == dns.name.from_text(ZONE) and question.name.to_text() == ZONE
    assert question.rdtype == dns.rdatatype.IXFR and question.rdclass == dns.rdataclass.IN


def test_other_shapes_take_the_full_parse() -> None:
    base = request().to_wire()
    assert plain_ixfr(base).serial == 7
    signed = request()
    signed.use_tsig(dns.tsig.Key("k.", "c2VjcmV0LWtleS1mb3ItdGVzdHM=", "hmac-sha256"))
    axfr = dns.message.make_query(ZONE, "AXFR")
    no_soa = dns.message.make_query(ZONE, "IXFR")
    two = request()
    two.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", "a. b. 8 1 2 3 4"))
    ns_not_soa = dns.message.make_query(ZONE, "IXFR")
    ns_not_soa.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "NS", "ns1.example."))
    with_answer = request()
    with_answer.answer.append(dns.rrset.from_text(ZONE, 0, "IN", "A", "192.0.2.1"))
    for msg in (signed, axfr, no_soa, two, ns_not_soa, with_answer):
        assert plain_ixfr(msg.to_wire()) is None, msg
    rdlen_at = _skip_name(base, _skip_name(base, 12) + 4) + 8
    rdlen = int.from_bytes(base[rdlen_at : rdlen_at + 2], "big")
    longer = base[:rdlen_at] + (rdlen + 1).to_bytes(2, "big") + base[rdlen_at + 2 :] + b"\x00"
    for wire in (
        longer,  # RDLENGTH one past the SOA's fields
        base + b"\x00",  # trailing junk
        base[:-1],  # cut short
        base[:4] + b"\x00\x02" + base[6:],  # two questions claimed
    ):
        assert plain_ixfr(wire) is None, wire
    opt = request(edns=0, options=[dns.edns.GenericOption(65001, b"abc")]).to_wire()
    assert plain_ixfr(opt).serial == 7
    assert plain_ixfr(opt[:-1]) is None  # the option cut short
    assert plain_ixfr(opt[:-9] + b"\x00\x06" + opt[-7:]) is None  # OPT RDLENGTH too short
    assert plain_ixfr(opt + b"\x00") is None
