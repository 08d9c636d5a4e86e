"""The AXFR image: what it sends equals the zone, and a patched image equals a rebuilt one."""

from __future__ import annotations

import dataclasses

import dns.message
import dns.name
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zonekeeper.proto import axfr
from zonekeeper.proto.rrwire import name_key
from zonekeeper.zones.model import Record, RRsetData, ZoneContent
from zonekeeper.zones.snapshot import compile_nodes
from zonekeeper.zones.zonefile import parse_zone_text

ORIGIN = dns.name.from_text("img.test.")
BASE = """$ORIGIN img.test.
$TTL 300
@ SOA ns1 host 7 3600 900 1209600 300
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.2
www AAAA 2001:db8::2
a.b.c TXT "deep"
sub NS ns.sub
ns.sub A 192.0.2.53
"""


def content_of(text: str) -> ZoneContent:
    parsed = parse_zone_text(text, ORIGIN)
    assert not parsed.errors
    return parsed.content


def transfer(image: axfr.AxfrImage, *, reserve: int = 0) -> list[str]:
    """Render the image into messages and parse them back with dnspython (which refuses a
    compression pointer that does not point back)."""
    q = dns.message.make_query(ORIGIN, "AXFR")
    qw = q.to_wire()
    question = qw[12:]
    out: list[str] = []
    msgs = list(axfr.messages(image, len(question), reserve=reserve))
    for data, count in msgs:
        wire = qw[:2] + b"\x84\x00\x00\x01" + count.to_bytes(2, "big") + b"\x00\x00\x00\x00" + question + data
        assert len(wire) + reserve <= 65535
        m = dns.message.from_wire(wire, one_rr_per_rrset=True)
        for rrset in m.answer:
            out += rrset.to_text().splitlines()
    assert out[0].split()[3] == "SOA" and out[-1] == out[0]
    return out


def expected(content: ZoneContent) -> list[str]:
    lines = []
    for rrset in content:
        for rec in rrset.records:
            lines.append(f"{rrset.name} {rrset.ttl} IN {rrset.type_text} {rec.rdata.to_text()}")
    return lines


def test_image_carries_every_record_once_between_two_soas() -> None:
    content = content_of(BASE)
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    got = transfer(axfr.build(nodes, name_key(ORIGIN)))
    assert sorted(got[1:-1] + [got[0]]) == sorted(expected(content))


def test_large_zone_spans_many_messages_and_splits_big_buckets() -> None:
    content = content_of(BASE)
    for i in range(3000):
        content.put(RRsetData(dns.name.from_text(f"h{i}", ORIGIN), 16, 60,
                              [Record(dns.rdata.from_text("IN", "TXT", f'"{i:05d}' + "x" * 150 + '"'))]))
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    image = axfr.build(nodes, name_key(ORIGIN), bucket_owners=2000)
    assert len(image.buckets) > 3  # a bucket ends where its message's names reach 16 KiB
    got = transfer(image, reserve=512 + 11)
    assert len(got) == content.record_count() + 1
    assert sorted(got[1:-1] + [got[0]]) == sorted(expected(content))


names = st.sampled_from(["www", "a", "b.a", "x.y.z", "mail", "*.w", "new"])
addrs = st.integers(1, 254).map(lambda i: f"192.0.2.{i}")


def unpacked(image: axfr.AxfrImage) -> axfr.AxfrImage:
    """The image with every bucket's owners as a tuple, as an edit leaves the buckets it
    touched (``build`` and a read from disk leave them packed)."""
    return dataclasses.replace(image, owners=tuple(axfr.unpack_owners(g) for g in image.owners))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.binary(min_size=1, max_size=63), max_size=4), max_size=20))
def test_packed_owners_read_back_as_they_were(names: list[list[bytes]]) -> None:
    keys = tuple(b"".join(bytes([len(x)]) + x for x in labels) + b"\x00" for labels in names)
    assert axfr.unpack_owners(axfr.pack_owners(keys)) == keys
    packed = axfr.pack_owners(keys)
    if keys and keys[-1] != b"\x00":  # the last name without its root label
        with pytest.raises(ValueError):
            axfr.unpack_owners(packed[:-1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, st.one_of(st.none(), addrs)), min_size=1, max_size=8),
       st.booleans())
def test_patched_image_equals_rebuilt_image(edits: list[tuple[str, str | None]], pack: bool) -> None:
    content = content_of(BASE)
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    image = axfr.build(nodes, name_key(ORIGIN), bucket_owners=3)
    assert all(isinstance(o, bytes) for o in image.owners)  # packed by build
    if not pack:
        image = unpacked(image)
    changed = set()
    for name, addr in edits:
        owner = dns.name.from_text(name, ORIGIN)
        if addr is None:
            content.delete(owner, dns.rdatatype.A)
        else:
            content.put(RRsetData(owner, int(dns.rdatatype.A), 60, [Record(dns.rdata.from_text("IN", "A", addr))]))
        changed.add(name_key(owner))
    new_nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    patched = axfr.patch(image, new_nodes, name_key(ORIGIN), changed)
    rebuilt = axfr.build(new_nodes, name_key(ORIGIN), bucket_owners=3)
    assert sorted(transfer(patched)) == sorted(transfer(rebuilt))
    assert patched.records == rebuilt.records
    assert patched.size == sum(len(d) for b in patched.buckets for d, _ in b.chunks)
    assert all(isinstance(o, bytes) or len(o) <= 3 for o in patched.owners)  # grown: split
    if pack and len(image.owners) > len(changed):  # a bucket no edit touched stays packed
        assert any(isinstance(o, bytes) for o in patched.owners)


def wire_size(image: axfr.AxfrImage) -> int:
    question = dns.message.make_query(ORIGIN, "AXFR").to_wire()[12:]
    return sum(12 + len(question) + len(data) for data, _ in axfr.messages(image, len(question)))


@pytest.mark.parametrize("soa", ["ns1.example.net. hostmaster.example.net.", "invalid. invalid.",
                                 "ns1 ns1"])
def test_soa_names_sharing_a_suffix_outside_the_apex(soa: str) -> None:
    """The SOA is written first and last, at offsets unknown when it is rendered: its RNAME
    must not point into its MNAME (a catalog's SOA is "invalid. invalid.")."""
    content = content_of(BASE.replace("@ SOA ns1 host", f"@ SOA {soa}"))
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    got = transfer(axfr.build(nodes, name_key(ORIGIN)), reserve=axfr.TSIG_RESERVE)
    assert sorted(got[1:-1] + [got[0]]) == sorted(expected(content))


def test_names_are_compressed_against_earlier_names_in_the_message() -> None:
    """Owners, their repeats and the names in NS/MX/CNAME RDATA point back to names written
    before them; the stream is smaller than one with owners compressed against the apex only."""
    content = content_of(BASE)
    for i in range(400):
        owner = dns.name.from_text(f"host{i:04d}.dept{i % 7}", ORIGIN)
        content.put(RRsetData(owner, 1, 60, [Record(dns.rdata.from_text("IN", "A", f"10.0.{i // 250}.{i % 250}"))]))
        content.put(RRsetData(owner, 28, 60, [Record(dns.rdata.from_text("IN", "AAAA", f"2001:db8::{i:x}"))]))
        content.put(RRsetData(owner, 15, 60, [Record(dns.rdata.from_text("IN", "MX", "10 mail.example.net."))]))
        content.put(RRsetData(dns.name.from_text(f"alias{i:04d}", ORIGIN), 5, 60,
                              [Record(dns.rdata.from_text("IN", "CNAME", f"host{i:04d}.dept{i % 7}.img.test."))]))
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    image = axfr.build(nodes, name_key(ORIGIN))
    got = transfer(image)
    assert sorted(got[1:-1] + [got[0]]) == sorted(expected(content))
    # Uncompressed beyond the apex: every owner's labels, every RDATA name in full.
    flat = sum(len(name_key(r.name)) - len(name_key(ORIGIN)) + 2 + 10 + len(rec.rdata.to_wire())
               for r in content for rec in r.records)
    assert image.size < 0.7 * flat


def test_an_owner_too_big_for_one_message_is_carried_over() -> None:
    content = content_of(BASE)
    big = dns.name.from_text("big", ORIGIN)
    content.put(RRsetData(big, 16, 60, [Record(dns.rdata.from_text("IN", "TXT", f'"{i:05d}' + "y" * 200 + '"'))
                                        for i in range(700)]))
    content.put(RRsetData(big, 1, 60, [Record(dns.rdata.from_text("IN", "A", "192.0.2.9"))]))
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    image = axfr.build(nodes, name_key(ORIGIN))
    assert sum(len(b.chunks) for b in image.buckets) >= 3
    got = transfer(image, reserve=512 + 11)
    assert sorted(got[1:-1] + [got[0]]) == sorted(expected(content))


@pytest.mark.parametrize("pack", [False, True])
def test_a_changed_soa_length_re_renders_the_first_message(pack: bool) -> None:
    content = content_of(BASE)
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    image = axfr.build(nodes, name_key(ORIGIN))
    if not pack:  # (packed, bucket 0 is re-rendered for the SOA alone: unpacked for it)
        image = unpacked(image)
    content.put(RRsetData(ORIGIN, 6, 300, [Record(dns.rdata.from_text(
        "IN", "SOA", "a-much-longer-primary.example.net. host.img.test. 8 3600 900 1209600 300"))]))
    new_nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    patched = axfr.patch(image, new_nodes, name_key(ORIGIN), [name_key(ORIGIN)])
    got = transfer(patched)
    assert "a-much-longer-primary.example.net." in got[0]
    assert sorted(got[1:-1] + [got[0]]) == sorted(expected(content))
    assert wire_size(patched) == wire_size(axfr.build(new_nodes, name_key(ORIGIN)))


def test_a_question_of_another_length_is_refused() -> None:
    content = content_of(BASE)
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    image = axfr.build(nodes, name_key(ORIGIN))
    with pytest.raises(ValueError):
        list(axfr.messages(image, len(name_key(ORIGIN)) + 5))


def test_the_c_renderer_is_built() -> None:
    assert axfr._c_partition is not None, (
        "zonekeeper.proto._axfrbuild is not built: install with a C compiler and the Python "
        "headers (apt-get install gcc python3-dev), then pip install -e .")


labels = st.sampled_from(["a", "b", "mail", "ns1", "www", "x" * 60, "dept7", "*"])
_RDATA = {
    "A": lambda i: f"192.0.2.{i % 250 + 1}",
    "AAAA": lambda i: f"2001:db8::{i:x}",
    "TXT": lambda i: '"' + "t" * (i * 37 % 250) + '"',
    "NS": lambda i: f"ns{i % 3}.img.test.",
    "CNAME": lambda i: f"host{i % 5}.Other.example.",
    "MX": lambda i: f"{i % 20} mail{i % 2}.img.test.",
    "PTR": lambda i: f"p{i % 4}.example.net.",
    "SRV": lambda i: f"0 5 {i % 1000} srv.img.test.",
}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(labels, min_size=1, max_size=3),
                          st.sampled_from(sorted(_RDATA)), st.integers(1, 400),
                          st.integers(1, 30)), min_size=1, max_size=60),
       st.sampled_from([1, 3, 4096]), st.sampled_from([0, 300]))
def test_c_and_python_renderers_agree(rrsets: list[tuple[list[str], str, int, int]],
                                      most: int, pad: int) -> None:
    """The C renderer writes the same buckets, byte for byte, as the Python one: owners
    sharing suffixes, every type whose RDATA names are compressed, RRsets that overflow
    a message, small and large buckets."""
    content = content_of(BASE)
    for path, rdtype, seed, n in rrsets:
        owner = dns.name.from_text(".".join(path), ORIGIN)
        if rdtype == "CNAME" or (rdtype == "NS" and path == ["*"]):
            n = 1
        records = [Record(dns.rdata.from_text("IN", rdtype, _RDATA[rdtype](seed + k) if rdtype != "TXT"
                                              else '"' + "t" * ((seed + k) * 37 % 250 + pad % 50) + '"'))
                   for k in range(n)]
        content.put(RRsetData(owner, int(dns.rdatatype.from_text(rdtype)), 60, records))
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    origin = name_key(ORIGIN)
    keys = sorted((k for k, node in nodes.items() if node), key=axfr.sort_key)
    for first_base in (30, 30 + pad):
        args = (keys, nodes, origin, 30, first_base, most)
        assert axfr._partition(*args) == axfr._py_partition(*args)


def test_c_and_python_renderers_agree_on_carried_over_messages() -> None:
    """Owners whose RRs fill several messages (a head past 16 KiB, tails carried over)."""
    content = content_of(BASE)
    for j in range(3):
        big = dns.name.from_text(f"big{j}", ORIGIN)
        content.put(RRsetData(big, 16, 60, [Record(dns.rdata.from_text("IN", "TXT", f'"{i:05d}' + "y" * 200 + '"'))
                                            for i in range(400 + 150 * j)]))
        content.put(RRsetData(big, 15, 60, [Record(dns.rdata.from_text("IN", "MX", f"{i} m{i}.big{j}.img.test."))
                                            for i in range(50)]))
    for i in range(2000):
        owner = dns.name.from_text(f"host{i:04d}.dept{i % 7}", ORIGIN)
        content.put(RRsetData(owner, 1, 60, [Record(dns.rdata.from_text("IN", "A", f"10.0.{i // 250}.{i % 250}"))]))
        content.put(RRsetData(owner, 16, 60, [Record(dns.rdata.from_text("IN", "TXT", f'"{i}"')),
                                              Record(dns.rdata.from_text("IN", "TXT", f'"{i}b"'))]))
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    origin = name_key(ORIGIN)
    keys = sorted((k for k, node in nodes.items() if node), key=axfr.sort_key)
    for most in (7, 4096):
        args = (keys, nodes, origin, 30, 30 + 77, most)
        c, py = axfr._partition(*args), axfr._py_partition(*args)
        assert sum(len(b.chunks) for _, b in c) > len(c)  # some buckets span messages
        assert c == py
