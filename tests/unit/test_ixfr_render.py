"""``ixfr.render_wire`` (what the server sends) against ``ixfr.render`` (dnspython's renderer):
the same RRs in the same order, byte for byte the same message when one message holds the
answer, and no message over its limit when it takes several."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from zonekeeper.proto import ixfr

ORIGIN = dns.name.from_text("Render.Example.")
LABELS = st.sampled_from(["a", "b", "www", "Mail", "x-1", "*"])
OWNERS = st.one_of(
    st.just("@"),
    st.lists(LABELS, min_size=1, max_size=3).map(".".join),
    st.just("elsewhere.test."),  # not below the origin
)
RDATA = st.one_of(
    st.tuples(st.just("A"), st.integers(1, 254).map(lambda n: f"192.0.2.{n}")),
    st.tuples(st.just("AAAA"), st.integers(1, 9999).map(lambda n: f"2001:db8::{n:x}")),
    st.tuples(st.just("TXT"), st.text("abcXYZ 012", max_size=40).map(lambda s: f'"{s}"')),
    st.tuples(st.just("NS"), OWNERS),
    st.tuples(st.just("CNAME"), OWNERS),
    st.tuples(st.just("PTR"), OWNERS),
    st.tuples(st.just("MX"), OWNERS.map(lambda n: f"10 {n}")),
    st.tuples(st.just("SRV"), OWNERS.map(lambda n: f"0 5 5060 {n}")),  # never compressed
    st.tuples(st.just("SOA"), st.tuples(OWNERS, OWNERS).map(lambda p: f"{p[0]} {p[1]} 7 1 2 3 4")),
)
RRS = st.lists(st.tuples(OWNERS, st.sampled_from([0, 60, 300]), RDATA), max_size=40)


def rr_wire(owner: str, ttl: int, rdtype: str, text: str) -> bytes:
    name = dns.name.from_text(owner, ORIGIN)
    rd = dns.rdata.from_text("IN", rdtype, text, origin=ORIGIN, relativize=False).to_wire()
    head = name.to_wire() + dns.rdatatype.from_text(rdtype).to_bytes(2, "big") + b"\x00\x01"
    return head + ttl.to_bytes(4, "big") + len(rd).to_bytes(2, "big") + rd


def soa(serial: int) -> bytes:
    return rr_wire("@", 300, "SOA", f"ns1 hostmaster {serial} 3600 900 1209600 300")


def diff_of(removed: list, added: list) -> ixfr.Diff:
    return ixfr.Diff(soa(1), soa(2), tuple(rr_wire(o, t, *r) for o, t, r in removed),
                     tuple(rr_wire(o, t, *r) for o, t, r in added))


def reference(diff: ixfr.Diff, *, max_size: int = 65535) -> list[bytes]:
    plain = dns.message.make_query(ORIGIN, dns.rdatatype.IXFR, use_edns=False)
    plain.flags = 0
    plain.id = 0
    return [m.to_wire() for m in ixfr.render(plain, diff, tsig=True, max_size=max_size)]


def answer(wires: list[bytes]) -> list[str]:
    out = []
    for w in wires:
        m = dns.message.from_wire(w, one_rr_per_rrset=True)
        assert m.question[0].name == ORIGIN and m.question[0].rdtype == dns.rdatatype.IXFR
        out += [rrset.to_text() for rrset in m.answer]
    return out


@settings(max_examples=200, deadline=None)
@given(RRS, RRS)
def test_same_bytes_as_dnspython(removed: list, added: list) -> None:
    diff = diff_of(removed, added)
    ours = ixfr.render_wire(ORIGIN.to_wire(), diff, tsig=True)
    assert [w for w, _ in ours] == reference(diff)
    assert [n for _, n in ours] == [len(ixfr.sequence(diff))]


@settings(max_examples=30, deadline=None)
@given(RRS, RRS, st.integers(300, 2000))
def test_split_into_messages_of_at_most_the_limit(removed: list, added: list, limit: int) -> None:
    """Small limits: many messages, each under the limit less the TSIG room, each a fresh
    compression context, together the whole sequence in order."""
    diff = diff_of(removed * 3, added * 3)
    ours = ixfr.render_wire(ORIGIN.to_wire(), diff, tsig=True, max_size=limit + ixfr.TSIG_RESERVE)
    for wire, count in ours:
        assert len(wire) <= limit or count == 1
        assert dns.message.from_wire(wire).flags & 0x8400 == 0x8400  # QR, AA
    assert answer([w for w, _ in ours]) == answer(reference(diff))
    assert sum(n for _, n in ours) == len(ixfr.sequence(diff))


def test_pointers_only_below_16k() -> None:
    """Names past offset 0x3FFF cannot be pointed to: a long answer still parses."""
    big = [(f"t{i}", 60, ("TXT", "\"" + "x" * 200 + "\"")) for i in range(150)]
    cnames = [(f"c{i}", 60, ("CNAME", f"t{i}")) for i in range(150)]
    diff = diff_of([], big + cnames)
    ours = ixfr.render_wire(ORIGIN.to_wire(), diff, tsig=True)
    assert len(ours) == 1 and len(ours[0][0]) > 0x4000
    assert [ours[0][0]] == reference(diff)
