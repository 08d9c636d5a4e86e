"""The AXFR image: what it sends equals the zone, and a patched image equals a rebuilt one."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdatatype
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
    """Render the image into messages and parse them back with dnspython."""
    q = dns.message.make_query(ORIGIN, "AXFR")
    qw = q.to_wire()
    question = qw[12:]
    out: list[str] = []
    msgs = list(axfr.messages(image, len(question), reserve=reserve))
    for data, count in msgs:
        wire = qw[:2] + b"\x84\x00\x00\x01" + count.to_bytes(2, "big") + b"\x00\x00\x00\x00" + question + data
        assert len(wire) <= 65535
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
    image = axfr.build(nodes, name_key(ORIGIN), bucket_count=3)  # ~180 kB buckets: must be split
    got = transfer(image, reserve=512)
    assert len(got) == content.record_count() + 1
    assert sorted(got[1:-1] + [got[0]]) == sorted(expected(content))


names = st.sampled_from(["www", "a", "b.a", "x.y.z", "mail", "*.w", "new"])
addrs = st.integers(1, 254).map(lambda i: f"192.0.2.{i}")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, st.one_of(st.none(), addrs)), min_size=1, max_size=8))
def test_patched_image_equals_rebuilt_image(edits: list[tuple[str, str | None]]) -> None:
    content = content_of(BASE)
    nodes, _ = compile_nodes(ORIGIN, content.served_rrsets())
    image = axfr.build(nodes, name_key(ORIGIN), bucket_count=4)
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
    rebuilt = axfr.build(new_nodes, name_key(ORIGIN), bucket_count=4)
    assert sorted(transfer(patched)) == sorted(transfer(rebuilt))
    assert patched.records == rebuilt.records and patched.size == rebuilt.size
