"""Catalog zone records (RFC 9432) read back: members, properties, and what a consumer must
refuse. The parsing side of the consumer, apart from transfers."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.zone

from zonekeeper.zones.catalog import (
    group_problem,
    member_id,
    member_owner,
    new_catalog,
    read_catalog,
)
from zonekeeper.zones.model import Record, RRsetData

CAT = dns.name.from_text("cat.example.")


def rrsets(text: str) -> list[RRsetData]:
    zone = dns.zone.from_text(text, origin=CAT, relativize=False, check_origin=False)
    return [RRsetData(name, rds.rdtype, rds.ttl, [Record(rd) for rd in rds])
            for name, rds in zone.iterate_rdatasets()]


BASE = """$TTL 0
@ SOA invalid. invalid. 1 3600 600 2147483646 0
@ NS invalid.
version TXT "2"
"""


def test_members_with_their_properties() -> None:
    view = read_catalog(CAT, rrsets(BASE + """
a1.zones PTR one.example.
group.a1.zones TXT "gold"
B2.zones PTR Two.Example.
coo.b2.zones PTR other.example.
ext.b2.zones TXT "custom property, ignored"
zones TXT "not a member"
x.y.z.zones PTR deep.example.
"""))
    assert view.problem is None and view.version == "2"
    one, two = (dns.name.from_text(n) for n in ("one.example.", "two.example."))
    assert sorted(view.members) == [one, two]
    assert view.members[one].group == "gold" and view.members[one].coo is None
    assert view.members[two].id == "b2" and view.members[two].coo == dns.name.from_text("other.example.")


def test_what_a_consumer_refuses() -> None:
    twice = read_catalog(CAT, rrsets(BASE + "a.zones PTR one.example.\nb.zones PTR one.example.\n"))
    assert twice.problem is not None and "twice" in twice.problem
    old = read_catalog(CAT, rrsets(BASE.replace('"2"', '"1"')))
    assert old.problem is not None and "'1'" in old.problem
    none = read_catalog(CAT, rrsets(BASE.replace('version TXT "2"\n', "")))
    assert none.problem is not None and "no version" in none.problem


def test_a_new_catalog_reads_back_empty_and_ids_are_stable() -> None:
    content = new_catalog(CAT, 7)
    view = read_catalog(CAT, content)
    assert view.problem is None and view.members == {}
    a = dns.name.from_text("Member.Example.")
    assert member_id(a) == member_id(dns.name.from_text("member.example.")) != member_id(CAT)
    assert len(member_id(a)) == 16
    assert member_owner(CAT, a).to_text() == f"{member_id(a)}.zones.cat.example."


def test_group_limits() -> None:
    assert group_problem(None) is None and group_problem("x" * 255) is None
    assert group_problem("") and group_problem("x" * 256) and group_problem("a\nb")
