"""The wire-level inbound transfer reader (proto.xfrin) against dnspython as the reference:
whatever dnspython renders (with its name compression, split over messages), the reader
must build the same node table that compiling dnspython's own zone gives; IXFR sequences
must end on the same zone as applying them with dnspython; broken answers raise XfrError
and nothing else."""

from __future__ import annotations

import struct

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zonekeeper.proto import xfrin
from zonekeeper.proto.rrwire import blob_rdatas, blob_ttl, name_key, node_blobs
from zonekeeper.zones.snapshot import compile_nodes

ORIGIN = dns.name.from_text("example.test.")
OKEY = name_key(ORIGIN)
SOA_TEXT = "ns1.example.test. hostmaster.example.test. {} 3600 600 86400 300"

Zone = dict[tuple[str, str], tuple[int, frozenset[str]]]  # (owner, type) -> (ttl, rdata texts)

labels = st.sampled_from(["www", "a", "b", "mail", "x-1", "deep.sub", "MiXeD", "_srv._tcp"])
owners = st.builds(lambda l: f"{l}.example.test.", labels) | st.just("example.test.")
rdatas = st.one_of(
    st.tuples(st.just("A"), st.integers(1, 20).map(lambda i: f"192.0.2.{i}")),
    st.tuples(st.just("AAAA"), st.integers(1, 20).map(lambda i: f"2001:db8::{i:x}")),
    st.tuples(st.just("TXT"), st.text("abc xyz\"\\", max_size=12).map(
        lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"')),
    st.tuples(st.just("MX"), st.sampled_from(["10 mail.example.test.", "20 mx.other.test."])),
    st.tuples(st.just("SRV"), st.just("0 5 443 www.example.test.")),
    st.tuples(st.just("CAA"), st.just('0 issue "ca.test"')),
    st.tuples(st.just("NS"), st.sampled_from(["ns1.example.test.", "ns.elsewhere.test."])),
    st.tuples(st.just("SSHFP"), st.just("1 1 " + "0123456789abcdef0123456789abcdef01234567")),
)
records = st.lists(st.tuples(owners, rdatas, st.sampled_from([60, 300])), max_size=40)


def build(recs: list[tuple[str, tuple[str, str], int]], serial: int) -> Zone:
    zone: Zone = {("example.test.", "SOA"): (300, frozenset([SOA_TEXT.format(serial)])),
                  ("example.test.", "NS"): (300, frozenset(["ns1.example.test."]))}
    for owner, (rtype, text), ttl in recs:
        if owner == "example.test." and rtype == "NS":
            continue
        if (owner, "CNAME") in zone or rtype == "CNAME":
            continue
        old = zone.get((owner, rtype))
        zone[(owner, rtype)] = (old[0] if old else ttl, (old[1] if old else frozenset()) | {text})
    return zone


def rrset(owner: str, rtype: str, ttl: int, texts: frozenset[str] | list[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(owner, ttl, "IN", rtype, sorted(texts))


def messages(rrs: list[dns.rrset.RRset], per_message: int, qtype: str = "AXFR") -> list[bytes]:
    """dnspython's rendering (names compressed), ``per_message`` RRsets in each message."""
    q = dns.message.make_query(ORIGIN, qtype)
    out = []
    for i in range(0, len(rrs), per_message):
        r = dns.message.make_response(q)
        if i:
            r.question = []
        r.answer = rrs[i : i + per_message]
        out.append(r.to_wire())
    return out


def expected_nodes(zone: Zone) -> tuple[dict[bytes, list[object]], frozenset[bytes]]:
    compiled, cuts = compile_nodes(ORIGIN, [
        (dns.name.from_text(o), dns.rdatatype.from_text(t), ttl,
         [dns.rdata.from_text("IN", t, x) for x in texts]) for (o, t), (ttl, texts) in zone.items()])
    return {k: normal(n) for k, n in compiled.items()}, cuts


def normal(node: object) -> list[object]:
    return sorted((b[:2], blob_ttl(b), sorted(blob_rdatas(b))) for b in node_blobs(node))  # type: ignore[arg-type]


def read(wires: list[bytes], reader: xfrin.Reader, *, deep: bool = True) -> xfrin.Reader:
    """Feed the messages as the server does (with the owners that may need ENTs), or with
    ``deep`` False, without them (every owner looked at)."""
    for w in wires:
        msg = xfrin.parse(w, OKEY)
        reader.feed(msg.answers, msg.deep if deep else None)
    return reader


def axfr_rrsets(zone: Zone, serial: int) -> list[dns.rrset.RRset]:
    soa = rrset("example.test.", "SOA", 300, [SOA_TEXT.format(serial)])
    body = [rrset(o, t, ttl, x) for (o, t), (ttl, x) in zone.items() if t != "SOA"]
    return [soa, *body, soa]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.integers(1, 6))
def test_axfr_builds_what_dnspython_compiles(recs, per_message: int) -> None:  # type: ignore[no-untyped-def]
    zone = build(recs, 7)
    r = read(messages(axfr_rrsets(zone, 7), per_message), xfrin.Reader(OKEY),
             deep=per_message % 2 == 0)
    assert r.done and r.result is not None and r.result.serial == 7
    want, cuts = expected_nodes(zone)
    assert {k: normal(n) for k, n in r.result.nodes.items()} == want
    assert r.result.cuts == cuts
    assert r.result.records == sum(len(x) for _ttl, x in zone.values())


def ixfr_rrsets(versions: list[tuple[int, Zone]]) -> list[dns.rrset.RRset]:
    """An IXFR answer (RFC 1995) taking the first version to the last, one sequence each."""
    last_serial = versions[-1][0]
    out = [rrset("example.test.", "SOA", 300, [SOA_TEXT.format(last_serial)])]
    for (s0, z0), (s1, z1) in zip(versions, versions[1:], strict=False):
        gone = {(o, t, x) for (o, t), (_ttl, xs) in z0.items() for x in xs if t != "SOA"}
        new = {(o, t, x) for (o, t), (_ttl, xs) in z1.items() for x in xs if t != "SOA"}
        out.append(rrset("example.test.", "SOA", 300, [SOA_TEXT.format(s0)]))
        out += [rrset(o, t, z0[(o, t)][0], [x]) for o, t, x in sorted(gone - new)]
        out.append(rrset("example.test.", "SOA", 300, [SOA_TEXT.format(s1)]))
        out += [rrset(o, t, z1[(o, t)][0], [x]) for o, t, x in sorted(new - gone)]
    out.append(out[0])
    return out


def same_ttls(old: Zone, new: Zone) -> Zone:
    """``new`` with the TTL of each RRset ``old`` also holds (an IXFR carries no TTL change
    for records it does not touch)."""
    return {k: (old[k][0] if k in old else v[0], v[1]) for k, v in new.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.lists(records, min_size=1, max_size=3), st.integers(1, 5),
       st.sampled_from([10, 2**32 - 2]))
def test_ixfr_ends_on_the_zone_the_sequences_describe(base_recs, edits, per_message: int,
                                                      first: int) -> None:  # type: ignore[no-untyped-def]
    versions = [(first, build(base_recs, first))]
    for i, recs in enumerate(edits):
        serial = (first + i + 1) % 2**32
        versions.append((serial, same_ttls(versions[-1][1], build(recs, serial))))
    base = read(messages(axfr_rrsets(versions[0][1], first), 50), xfrin.Reader(OKEY)).result
    assert base is not None
    r = read(messages(ixfr_rrsets(versions), per_message, "IXFR"),
             xfrin.Reader(OKEY, ixfr_from=first, base=base.nodes, base_cuts=base.cuts))
    assert r.done and r.result is not None and not r.result.full
    final_serial, final = versions[-1]
    want, cuts = expected_nodes(final)
    assert {k: normal(n) for k, n in r.result.nodes.items()} == want
    assert r.result.cuts == cuts and r.result.serial == final_serial
    # The journal entry is the net difference: applying it to the base gives the end.
    full = read(messages(axfr_rrsets(final, final_serial), 50), xfrin.Reader(OKEY)).result
    assert full is not None
    removed, added = xfrin.diff_nodes(base.nodes, full.nodes)
    assert sorted(split(r.result.removed)) == sorted(split(removed))
    assert sorted(split(r.result.added)) == sorted(split(added))


def split(wire: bytes) -> list[bytes]:
    """Journal wire (owner uncompressed, TYPE CLASS TTL RDLENGTH RDATA) as one item per RR."""
    out, pos = [], 0
    while pos < len(wire):
        end = pos
        while wire[end]:
            end += wire[end] + 1
        end += 1 + 10
        end += int.from_bytes(wire[end - 2 : end], "big")
        out.append(wire[pos:end])
        pos = end
    return out


def test_one_soa_ixfr_answer_is_up_to_date() -> None:
    r = read(messages([rrset("example.test.", "SOA", 300, [SOA_TEXT.format(5)])], 1, "IXFR"),
             xfrin.Reader(OKEY, ixfr_from=5, base={}))
    assert r.done and r.result is None


def test_ixfr_answered_axfr_style_is_a_full_result() -> None:
    zone = build([("www.example.test.", ("A", "192.0.2.1"), 60)], 9)
    r = read(messages(axfr_rrsets(zone, 9), 2, "IXFR"), xfrin.Reader(OKEY, ixfr_from=5, base={}))
    assert r.result is not None and r.result.full and r.result.serial == 9


BAD = {
    "final SOA differs": lambda z: axfr_rrsets(z, 3)[:-1] + [rrset("example.test.", "SOA", 300, [SOA_TEXT.format(4)])],
    "records after the end": lambda z: axfr_rrsets(z, 3) + [rrset("late.example.test.", "A", 60, ["192.0.2.9"])],
    "out of zone": lambda z: axfr_rrsets(z, 3)[:1] + [rrset("www.other.test.", "A", 60, ["192.0.2.9"])] + axfr_rrsets(z, 3)[1:],
    "no SOA first": lambda z: axfr_rrsets(z, 3)[1:],
    "SOA below apex": lambda z: axfr_rrsets(z, 3)[:1] + [rrset("sub.example.test.", "SOA", 60, [SOA_TEXT.format(1)])] + axfr_rrsets(z, 3)[1:],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_broken_axfr_is_refused(case: str) -> None:
    zone = build([("www.example.test.", ("A", "192.0.2.1"), 60)], 3)
    with pytest.raises(xfrin.XfrError):
        r = read(messages(BAD[case](zone), 2), xfrin.Reader(OKEY))
        if not r.done:
            r.end_of_answer()


def test_ixfr_deleting_what_we_do_not_hold_is_refused() -> None:
    base = build([("www.example.test.", ("A", "192.0.2.1"), 60)], 1)
    other = build([("www.example.test.", ("A", "192.0.2.2"), 60)], 1)
    target = build([], 2)
    nodes = read(messages(axfr_rrsets(base, 1), 9), xfrin.Reader(OKEY)).result
    assert nodes is not None
    with pytest.raises(xfrin.XfrError, match="does not hold"):
        read(messages(ixfr_rrsets([(1, other), (2, target)]), 3, "IXFR"),
             xfrin.Reader(OKEY, ixfr_from=1, base=nodes.nodes))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mangled_messages_raise_xfr_error_only(data: st.DataObject) -> None:
    zone = build([("www.example.test.", ("A", "192.0.2.1"), 60), ("mail.example.test.", ("MX", "10 mail.example.test."), 60),
                  ("t.example.test.", ("TXT", '"hello"'), 60)], 3)
    wire = bytearray(messages(axfr_rrsets(zone, 3), 9)[0])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(12, len(wire)))
    try:
        read([bytes(wire[:cut])], xfrin.Reader(OKEY))
    except xfrin.XfrError:
        pass


def test_compression_loop_is_refused() -> None:
    wire = bytearray(messages(axfr_rrsets(build([], 3), 9), 9)[0])
    # Point the first answer's owner at itself.
    q_end = 12 + len(OKEY) + 4
    wire[q_end : q_end + 2] = (0xC000 | q_end).to_bytes(2, "big")
    with pytest.raises(xfrin.XfrError, match="pointer"):
        xfrin.parse(bytes(wire), OKEY)


# -- the C reader of answer sections (_xfrin.c) against the Python one -----------------------
def _c_reader():  # type: ignore[no-untyped-def]
    if xfrin._c_answers is None:
        pytest.fail("zonekeeper.proto._xfrin is not built: install the package with a C "
                    "compiler and the Python headers (apt-get install gcc python3-dev; "
                    "scripts/setup.sh --test)")
    return xfrin._c_answers


def _answers_both(wire: bytes) -> tuple[object, object] | None:
    """What each reader makes of the answer section of ``wire``: (answers, owners below,
    offset after) with the owners as a set (the Python reader may list one twice), or the
    error message; None if the header or question are already broken."""
    try:
        head = xfrin._HEAD.unpack_from(wire, 0)
        pos = 12
        for _ in range(head[2]):
            _q, pos = xfrin._name(wire, pos, {})
            pos += 4
    except (IndexError, xfrin.XfrError, struct.error):
        return None
    results = []
    for reader in ("py", "c"):
        try:
            if reader == "py":
                got = xfrin._answers_py(wire, pos, head[3], OKEY, {})
            else:
                got = _c_reader()(wire, pos, head[3], OKEY, xfrin._failure, xfrin._rdata_other)
            results.append((got[0], set(got[1]), got[2]))
        except (IndexError, struct.error):  # parse() reports these as a truncated message
            results.append(("error", "a truncated or malformed message"))
        except xfrin.XfrError as exc:
            results.append(("error", str(exc)))
    return results[0], results[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.integers(1, 6))
def test_c_reader_reads_what_the_python_one_reads(recs, per_message: int) -> None:  # type: ignore[no-untyped-def]
    for wire in messages(axfr_rrsets(build(recs, 7), 7), per_message):
        both = _answers_both(wire)
        assert both is not None
        assert both[0] == both[1]
        assert both[0][0] != "error"


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_c_reader_refuses_what_the_python_one_refuses(data: st.DataObject) -> None:
    zone = build([("www.example.test.", ("A", "192.0.2.1"), 60), ("mail.example.test.", ("MX", "10 mail.example.test."), 60),
                  ("t.example.test.", ("TXT", '"hello"'), 60), ("_s._tcp.example.test.", ("SRV", "0 5 443 www.example.test."), 60),
                  ("deep.sub.example.test.", ("SSHFP", "1 1 " + "ab" * 20), 60),
                  ("c.example.test.", ("CAA", '0 issue "ca.test"'), 60), ("h.example.test.", ("HINFO", '"a" "b"'), 2**31 + 5)], 3)
    wire = bytearray(messages(axfr_rrsets(zone, 3), 20)[0])
    for _ in range(data.draw(st.integers(0, 4))):
        pos = data.draw(st.integers(12, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(12, len(wire)))
    both = _answers_both(bytes(wire[:cut]))
    assume(both is not None)
    assert both[1] == both[0]


def test_c_reader_bounds_pointer_chains() -> None:
    """A name reached through a chain of 200 pointers, each to the one before: both readers
    refuse it (the C one counts every pointer, the Python one each pointer it follows)."""
    head = xfrin._HEAD.pack(1, 0x8400, 0, 1, 0, 0)
    wire = bytearray(head + OKEY)  # the name at 12, then 200 pointers, each to the last
    at = 12
    for _ in range(200):
        here = len(wire)
        wire += (0xC000 | at).to_bytes(2, "big")
        at = here
    first = len(wire)
    wire += (0xC000 | at).to_bytes(2, "big") + xfrin._RR.pack(1, 1, 60, 4) + bytes(4)
    with pytest.raises(xfrin.XfrError, match="compression pointers"):
        _c_reader()(bytes(wire), first, 1, OKEY, xfrin._failure, xfrin._rdata_other)
    with pytest.raises(xfrin.XfrError, match="compression pointers"):
        xfrin._answers_py(bytes(wire), first, 1, OKEY, {})
