"""RFC 2136 dynamic UPDATE on a zone's content: the prerequisites (section 3.2), the update
section's prescan (3.4.1) and its changes (3.4.2), as functions on a ``ZoneContent``.

They neither read nor write storage: ``ZoneService.apply_update`` loads the RRsets at the
names an UPDATE touches, runs these under the zone's lock, and commits what changed as one
change set (one serial bump, one journal entry, NOTIFY), like an API edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from zonekeeper.zones.model import Record, RRsetData, ZoneContent

IN = int(dns.rdataclass.IN)
ANY = int(dns.rdataclass.ANY)
NONE = int(dns.rdataclass.NONE)
_T_ANY = int(dns.rdatatype.ANY)
_SOA = int(dns.rdatatype.SOA)
_NS = int(dns.rdatatype.NS)
_CNAME = int(dns.rdatatype.CNAME)
# Types no update may name (meta and query-only types); ANY only in deletions.
_NOT_DATA = {int(t) for t in (dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.MAILA,
                              dns.rdatatype.MAILB, dns.rdatatype.OPT, dns.rdatatype.TSIG,
                              dns.rdatatype.TKEY)}
# Types that may stand beside a CNAME (RFC 2181 10.1, RFC 4035).
_BESIDE_CNAME = {int(t) for t in (dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.KEY)}


@dataclass(frozen=True)
class UpdateRR:
    """One record of a prerequisite or update section, as the wire carried it: its class
    is IN (the zone's), ANY or NONE; ``rdata`` is None when the RDATA was empty."""

    name: dns.name.Name
    rdclass: int
    rdtype: int
    ttl: int
    rdata: dns.rdata.Rdata | None


def _served(rrset: RRsetData | None) -> set[dns.rdata.Rdata]:
    return set(rrset.enabled()) if rrset is not None else set()


def _in_use(content: ZoneContent, name: dns.name.Name) -> bool:
    return any(r.enabled() for r in content.at(name))


def check_prerequisites(content: ZoneContent, prereqs: list[UpdateRR]) -> int:
    """NOERROR if every prerequisite holds, else the RCODE section 3.2 gives the first that
    does not (FORMERR, NOTZONE, NXDOMAIN, YXDOMAIN, NXRRSET, YXRRSET)."""
    origin = content.origin
    wanted: dict[tuple[dns.name.Name, int], set[dns.rdata.Rdata]] = {}
    for rr in prereqs:
        if rr.ttl != 0 or rr.rdtype in _NOT_DATA:
            return dns.rcode.FORMERR
        if not rr.name.is_subdomain(origin):
            return dns.rcode.NOTZONE
        if rr.rdclass == ANY:
            if rr.rdata is not None:
                return dns.rcode.FORMERR
            if rr.rdtype == _T_ANY:
                if not _in_use(content, rr.name):
                    return dns.rcode.NXDOMAIN
            elif not _served(content.get(rr.name, rr.rdtype)):
                return dns.rcode.NXRRSET
        elif rr.rdclass == NONE:
            if rr.rdata is not None:
                return dns.rcode.FORMERR
            if rr.rdtype == _T_ANY:
                if _in_use(content, rr.name):
                    return dns.rcode.YXDOMAIN
            elif _served(content.get(rr.name, rr.rdtype)):
                return dns.rcode.YXRRSET
        elif rr.rdclass == IN:
            if rr.rdata is None or rr.rdtype == _T_ANY:
                return dns.rcode.FORMERR
            wanted.setdefault((rr.name, rr.rdtype), set()).add(rr.rdata)
        else:
            return dns.rcode.FORMERR
    for (name, rdtype), rdatas in wanted.items():
        if _served(content.get(name, rdtype)) != rdatas:
            return dns.rcode.NXRRSET
    return dns.rcode.NOERROR


def prescan(origin: dns.name.Name, updates: list[UpdateRR]) -> int:
    """NOERROR if the update section is well formed (section 3.4.1), else FORMERR or
    NOTZONE; nothing has been changed yet."""
    for rr in updates:
        if not rr.name.is_subdomain(origin):
            return dns.rcode.NOTZONE
        if rr.rdtype in _NOT_DATA:
            return dns.rcode.FORMERR
        if rr.rdclass == IN:
            if rr.rdtype == _T_ANY or rr.rdata is None:
                return dns.rcode.FORMERR
        elif rr.rdclass == ANY:
            if rr.ttl != 0 or rr.rdata is not None:
                return dns.rcode.FORMERR
        elif rr.rdclass == NONE:
            if rr.ttl != 0 or rr.rdtype == _T_ANY or rr.rdata is None:
                return dns.rcode.FORMERR
        else:
            return dns.rcode.FORMERR
    return dns.rcode.NOERROR


def apply_updates(content: ZoneContent, updates: list[UpdateRR]) -> list[str]:
    """Apply the update section to ``content`` in order (section 3.4.2). Returns why each
    update that the RFC says to ignore was ignored (for the log); the SOA is the server's
    (its serial moves by the zone's policy), so SOA additions are ignored too."""
    origin = content.origin
    ignored: list[str] = []
    for rr in updates:
        what = f"{rr.name} {dns.rdatatype.to_text(rr.rdtype)}"
        if rr.rdclass == IN:
            assert rr.rdata is not None
            if rr.rdtype == _SOA:
                ignored.append(f"{what}: the SOA is kept by the server (edit it through the API)")
                continue
            others = {r.rdtype for r in content.at(rr.name) if r.records} - _BESIDE_CNAME
            if rr.rdtype == _CNAME and others - {_CNAME}:
                ignored.append(f"{what}: the name has other data")
                continue
            if rr.rdtype not in _BESIDE_CNAME and rr.rdtype != _CNAME and _CNAME in others:
                ignored.append(f"{what}: the name has a CNAME")
                continue
            existing = content.get(rr.name, rr.rdtype)
            records = list(existing.records) if existing is not None else []
            if rr.rdtype == _CNAME:
                records = []  # a name has one CNAME: a new one replaces it
            if Record(rr.rdata) not in records:
                records.append(Record(rr.rdata))
            content.put(RRsetData(rr.name, rr.rdtype, rr.ttl, records))
        elif rr.rdclass == ANY:
            if rr.rdtype == _T_ANY:
                for rrset in list(content.at(rr.name)):
                    if rr.name == origin and rrset.rdtype in (_SOA, _NS):
                        continue
                    content.delete(rr.name, rrset.rdtype)
            elif rr.name == origin and rr.rdtype in (_SOA, _NS):
                ignored.append(f"{what}: the apex SOA and NS RRsets cannot be deleted")
            else:
                content.delete(rr.name, rr.rdtype)
        else:  # NONE: one record
            assert rr.rdata is not None
            if rr.rdtype == _SOA:
                ignored.append(f"{what}: the SOA cannot be deleted")
                continue
            existing = content.get(rr.name, rr.rdtype)
            if existing is None:
                continue
            kept = [r for r in existing.records if r != Record(rr.rdata)]
            if rr.name == origin and rr.rdtype == _NS and not any(not r.disabled for r in kept):
                ignored.append(f"{what}: the zone's last NS record stays")
                continue
            if kept:
                content.put(RRsetData(rr.name, rr.rdtype, existing.ttl, kept))
            else:
                content.delete(rr.name, rr.rdtype)
    return ignored
