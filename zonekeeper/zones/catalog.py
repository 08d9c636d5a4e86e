"""Catalog zones (RFC 9432, schema version 2): the records a catalog is made of, and a
catalog read back from its records (what the producer lists and the consumer follows).

::

    <catalog>                       SOA   invalid. invalid. <serial> ...   (TTL 0)
    <catalog>                       NS    invalid.
    version.<catalog>               TXT   "2"
    <id>.zones.<catalog>            PTR   <member>.
    group.<id>.zones.<catalog>      TXT   "<group>"          (optional, §4.4.2)
    coo.<id>.zones.<catalog>        PTR   <other catalog>.   (optional, §4.4.1)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from zonekeeper.zones.model import Record, RRsetData, ZoneContent

PTR = int(dns.rdatatype.PTR)
TXT = int(dns.rdatatype.TXT)
_SOA = int(dns.rdatatype.SOA)
_NS = int(dns.rdatatype.NS)
# The records of a catalog carry TTL 0: RFC 9432 §4 says their TTLs are not used, and 0
# keeps them out of caches should a resolver ever be sent there.
TTL = 0
MAX_GROUP = 255  # one TXT character-string
VERSION = "2"


def member_id(member: dns.name.Name) -> str:
    """The member's unique id label: 16 hex digits of the SHA-256 of its canonical wire
    name. Stable (the same on every server, found again from the name alone)."""
    return hashlib.sha256(member.canonicalize().to_wire()).hexdigest()[:16]


def member_owner(catalog: dns.name.Name, member: dns.name.Name) -> dns.name.Name:
    """``<id>.zones.<catalog>``."""
    return dns.name.Name((member_id(member).encode(), b"zones", *catalog.labels))


def property_owner(prop: str, owner: dns.name.Name) -> dns.name.Name:
    """``<prop>.<id>.zones.<catalog>`` (``group``, ``coo``)."""
    return dns.name.Name((prop.encode(), *owner.labels))


def txt(text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT,
                               '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')


def ptr(target: dns.name.Name) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.PTR, target.to_text())


def new_catalog(origin: dns.name.Name, serial: int, *, refresh: int | None = None,
                retry: int | None = None, expire: int | None = None,
                minimum: int | None = None, ttl: int | None = None) -> ZoneContent:
    """An empty catalog: SOA and NS ``invalid.``, ``version`` TXT "2", no members."""
    content = ZoneContent(origin)
    rd = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.SOA,
        f"invalid. invalid. {serial} {refresh or 3600} {retry or 600} "
        f"{expire or 2147483646} {minimum if minimum is not None else 0}")
    t = ttl if ttl is not None else TTL
    content.put(RRsetData(origin, _SOA, t, [Record(rd)]))
    content.put(RRsetData(origin, _NS, t, [Record(dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.NS, "invalid."))]))
    content.put(RRsetData(dns.name.Name((b"version", *origin.labels)), TXT, t,
                          [Record(txt(VERSION))]))
    return content


def group_problem(group: str | None) -> str | None:
    """Why ``group`` cannot be a group property, or None."""
    if group is None:
        return None
    raw = group.encode()
    if not raw or len(raw) > MAX_GROUP:
        return f"a group is 1 to {MAX_GROUP} bytes of text"
    if any(c < 0x20 or c == 0x7F for c in raw):
        return "a group holds no control characters"
    return None


@dataclass(frozen=True)
class Member:
    zone: dns.name.Name
    id: str
    group: str | None = None
    coo: dns.name.Name | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"zone": self.zone.to_text(), "id": self.id, "group": self.group,
                "coo": self.coo.to_text() if self.coo is not None else None}


@dataclass(frozen=True)
class CatalogView:
    """A catalog read from its records. ``problem`` says why a consumer must not act on
    it (RFC 9432 §5.1: a wrong or missing version, or a zone listed twice)."""

    version: str | None
    members: dict[dns.name.Name, Member]
    problem: str | None = None


def read_catalog(origin: dns.name.Name, rrsets: Iterable[RRsetData]) -> CatalogView:
    """The members a catalog lists, each with its properties. A member zone listed under
    two ids is a broken catalog (RFC 9432 §4.1): ``problem`` says so."""
    zones_apex = dns.name.Name((b"zones", *origin.labels))
    version_owner = dns.name.Name((b"version", *origin.labels))
    version = None
    by_id: dict[str, dns.name.Name] = {}
    props: dict[tuple[str, str], object] = {}
    problem = None
    for rrset in rrsets:
        recs = rrset.enabled()
        if not recs:
            continue
        if rrset.name == version_owner and rrset.rdtype == TXT:
            version = b"".join(recs[0].strings).decode(errors="replace")  # type: ignore[attr-defined]
            continue
        if not rrset.name.is_subdomain(zones_apex) or rrset.name == zones_apex:
            continue
        rel = rrset.name.relativize(zones_apex).labels
        if len(rel) == 1 and rrset.rdtype == PTR:
            if len(recs) != 1:
                problem = f"{rrset.name} holds {len(recs)} PTR records, not one"
            by_id[rel[0].decode().lower()] = recs[0].target.canonicalize()  # type: ignore[attr-defined]
        elif len(rel) == 2:
            prop, uid = rel[0].decode().lower(), rel[1].decode().lower()
            if prop == "group" and rrset.rdtype == TXT:
                props[(uid, "group")] = b"".join(recs[0].strings).decode(  # type: ignore[attr-defined]
                    errors="replace")
            elif prop == "coo" and rrset.rdtype == PTR:
                props[(uid, "coo")] = recs[0].target.canonicalize()  # type: ignore[attr-defined]
    members: dict[dns.name.Name, Member] = {}
    for uid, zone in sorted(by_id.items()):
        if zone in members:
            problem = f"{zone} is listed twice ({members[zone].id} and {uid})"
            continue
        members[zone] = Member(zone, uid, props.get((uid, "group")),  # type: ignore[arg-type]
                               props.get((uid, "coo")))  # type: ignore[arg-type]
    if version != VERSION and problem is None:
        problem = (f"catalog version {version!r}, not \"2\"" if version is not None
                   else "no version record (version TXT \"2\")")
    return CatalogView(version, members, problem)
