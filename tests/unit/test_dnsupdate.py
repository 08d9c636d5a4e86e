"""RFC 2136 on a zone's content (services/dnsupdate.py) and the update policy
(policy/acl.update_decision), without a server: each prerequisite kind, the prescan's
FORMERR and NOTZONE, and the rules of section 3.4.2 the RFC says to ignore silently."""

from __future__ import annotations

import ipaddress

import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype

from zonekeeper.policy.acl import AclAction, Effect, Policy, Rule, update_decision
from zonekeeper.services.dnsupdate import (
    ANY,
    IN,
    NONE,
    UpdateRR,
    apply_updates,
    check_prerequisites,
    prescan,
)
from zonekeeper.zones.model import Record, RRsetData, ZoneContent

Z = dns.name.from_text("z.test.")


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text, Z)


def rd(rdtype: str, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text("IN", rdtype, text, origin=Z)


def content() -> ZoneContent:
    c = ZoneContent(Z)
    c.put(RRsetData(Z, dns.rdatatype.SOA, 300, [Record(rd("SOA", "ns1 host 1 3600 600 86400 300"))]))
    c.put(RRsetData(Z, dns.rdatatype.NS, 300, [Record(rd("NS", "ns1"))]))
    c.put(RRsetData(n("ns1"), dns.rdatatype.A, 300, [Record(rd("A", "192.0.2.1"))]))
    c.put(RRsetData(n("www"), dns.rdatatype.A, 300, [Record(rd("A", "192.0.2.10")), Record(rd("A", "192.0.2.11"))]))
    c.put(RRsetData(n("alias"), dns.rdatatype.CNAME, 300, [Record(rd("CNAME", "www"))]))
    return c


def rr(name: str, rdclass: int, rdtype: str, ttl: int = 0, data: str | None = None) -> UpdateRR:
    t = dns.rdatatype.from_text(rdtype)
    return UpdateRR(n(name), rdclass, int(t), ttl, rd(rdtype, data) if data else None)


def test_each_prerequisite_kind_holds_and_fails_with_its_rcode() -> None:
    c = content()
    holds = [rr("www", ANY, "ANY"), rr("none", NONE, "ANY"), rr("www", ANY, "A"), rr("www", NONE, "TXT"),
             rr("www", IN, "A", 0, "192.0.2.11"), rr("www", IN, "A", 0, "192.0.2.10")]
    assert check_prerequisites(c, holds) == dns.rcode.NOERROR
    for prereq, rcode in ((rr("none", ANY, "ANY"), dns.rcode.NXDOMAIN),
                          (rr("www", NONE, "ANY"), dns.rcode.YXDOMAIN),
                          (rr("www", ANY, "TXT"), dns.rcode.NXRRSET),
                          (rr("www", NONE, "A"), dns.rcode.YXRRSET),
                          (rr("www", IN, "A", 0, "192.0.2.10"), dns.rcode.NXRRSET),  # not the whole set
                          (UpdateRR(dns.name.from_text("x.other."), ANY, 255, 0, None), dns.rcode.NOTZONE),
                          (rr("www", ANY, "A", ttl=5), dns.rcode.FORMERR)):
        assert check_prerequisites(c, [prereq]) == rcode, prereq


def test_prescan_refuses_malformed_updates_before_anything_changes() -> None:
    assert prescan(Z, [rr("a", IN, "A", 60, "192.0.2.5")]) == dns.rcode.NOERROR
    assert prescan(Z, [rr("a", ANY, "A", ttl=60)]) == dns.rcode.FORMERR  # delete with a TTL
    assert prescan(Z, [UpdateRR(n("a"), IN, int(dns.rdatatype.ANY), 60, None)]) == dns.rcode.FORMERR
    assert prescan(Z, [UpdateRR(n("a"), IN, int(dns.rdatatype.AXFR), 60, None)]) == dns.rcode.FORMERR
    assert prescan(Z, [UpdateRR(dns.name.from_text("a.other."), IN, 1, 60, rd("A", "192.0.2.1"))]) == dns.rcode.NOTZONE


def test_updates_follow_section_3_4_2() -> None:
    c = content()
    notes = apply_updates(c, [
        rr("new", IN, "A", 60, "192.0.2.20"),
        rr("www", IN, "A", 120, "192.0.2.10"),  # already there: the RRset takes the new TTL
        rr("alias", IN, "A", 60, "192.0.2.30"),  # beside a CNAME: ignored
        rr("www", IN, "CNAME", 60, "elsewhere.example."),  # CNAME beside data: ignored
        rr("@", IN, "SOA", 60, "ns1 host 99 1 1 1 1"),  # the SOA is the server's
        rr("@", ANY, "NS"),  # the apex NS RRset stays
        rr("@", NONE, "NS", 0, "ns1"),  # so does its last record
        rr("www", NONE, "A", 0, "192.0.2.11"),
    ])
    assert len(notes) == 5, notes
    assert [r.rdata.to_text() for r in c.get(n("new"), 1).records] == ["192.0.2.20"]  # type: ignore[union-attr]
    www = c.get(n("www"), 1)
    assert www is not None and www.ttl == 120 and [r.rdata.to_text() for r in www.records] == ["192.0.2.10"]
    assert c.get(n("alias"), 1) is None and c.get(Z, dns.rdatatype.NS) is not None
    apply_updates(c, [rr("www", ANY, "ANY"), rr("@", ANY, "ANY")])
    assert c.at(n("www")) == [] and {r.rdtype for r in c.at(Z)} == {dns.rdatatype.SOA, dns.rdatatype.NS}


def test_update_decision_needs_an_allow_rule_covering_every_change() -> None:
    net = ipaddress.ip_network("127.0.0.0/8")
    rules = (Rule(1, AclAction.UPDATE, Effect.ALLOW, "z.test.", net, "acme.",
                  names=("_acme-challenge.z.test.", "*.dyn.z.test."), types=(16,)),
             Rule(2, AclAction.UPDATE, Effect.DENY, "z.test.", None, "acme.", names=("x.dyn.z.test.",)),
             Rule(3, AclAction.TRANSFER, Effect.ALLOW, "z.test.", net, None))
    policy = Policy(rules=rules)

    def ok(changes: list[tuple[str, int]], key: str | None = "acme.", addr: str = "127.0.0.1") -> bool:
        return update_decision(policy, "z.test.", addr, key, changes).allowed

    assert ok([("_acme-challenge.z.test.", 16), ("a.dyn.z.test.", 16)])
    assert not ok([("_acme-challenge.z.test.", 1)])  # type
    assert not ok([("dyn.z.test.", 16)])  # *.dyn is below dyn only
    assert not ok([("x.dyn.z.test.", 16)])  # deny wins
    assert not ok([("_acme-challenge.z.test.", 255)])  # every type at the name
    assert not ok([("_acme-challenge.z.test.", 16)], key=None)
    assert not ok([("_acme-challenge.z.test.", 16)], addr="192.0.2.1")
    assert not ok([], key=None)  # a transfer rule grants no UPDATE
