"""named-checkzone-grade checks on zone content, reporting every problem.

``check`` looks at the owners it is given (all of them by default) plus the
zone-wide rules (one SOA at the apex, apex NS present). The content passed in
must hold every RRset at those owners and at the in-zone targets of their NS
records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from zonekeeper.zones.model import RRsetData, ZoneContent

MAX_TTL = 2**31 - 1
# Room a message needs besides one RRset: header, question, a TSIG record.
_MESSAGE_ROOM = 65535 - 512
_CNAME_COMPANIONS = {int(dns.rdatatype.RRSIG), int(dns.rdatatype.NSEC)}
_ADDRESS = (int(dns.rdatatype.A), int(dns.rdatatype.AAAA))
_SOA = int(dns.rdatatype.SOA)
_NOT_STORED = frozenset(int(t) for t in (dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.ANY,
                                         dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY))


@dataclass(frozen=True)
class Finding:
    """A problem at one RRset (name, type), or zone-wide when ``rdtype`` is None."""

    name: dns.name.Name
    rdtype: int | None
    msg: str
    error: bool = True


def _fqdn(name: dns.name.Name) -> str:
    return name.to_text()


def _labels(name: dns.name.Name) -> tuple[bytes, ...]:
    return tuple(label.lower() for label in name.labels)


def _cuts(content: ZoneContent) -> dict[tuple[bytes, ...], dns.name.Name]:
    """Delegation points: owners other than the apex with NS records, by lower-case labels
    (looked up for every owner below them: tuples of bytes hash in C, Names in Python)."""
    return {
        _labels(s.name): s.name
        for s in content if int(s.rdtype) == dns.rdatatype.NS and s.name != content.origin
    }


def _below_cut(cuts: dict[tuple[bytes, ...], dns.name.Name], origin: dns.name.Name,
               name: dns.name.Name) -> dns.name.Name | None:
    if not cuts or len(name) <= len(origin) + 1:
        return None
    labels = _labels(name)
    for i in range(1, len(labels) - len(origin)):
        cut = cuts.get(labels[i:])
        if cut is not None:
            return cut
    return None


def _inside(name: dns.name.Name, origin: dns.name.Name) -> bool:
    """``name.is_subdomain(origin)``, quickly when the labels are origin's own (a relative
    name completed by the zone-file reader shares them)."""
    n = len(origin.labels)
    return len(name.labels) >= n and (name.labels[-n:] == origin.labels or name.is_subdomain(origin))


# Types whose RDATA is never longer than this: an RRset of a few of them cannot be too large.
_RDATA_MAX = {int(dns.rdatatype.A): 4, int(dns.rdatatype.AAAA): 16, int(dns.rdatatype.NS): 255,
              int(dns.rdatatype.CNAME): 255, int(dns.rdatatype.PTR): 255,
              int(dns.rdatatype.MX): 257, int(dns.rdatatype.SRV): 261}


def check(content: ZoneContent, owners: Iterable[dns.name.Name] | None = None) -> list[Finding]:
    origin = content.origin
    findings: list[Finding] = []
    soa = content.get(origin, dns.rdatatype.SOA)
    if soa is None or not soa.enabled():
        findings.append(Finding(origin, int(dns.rdatatype.SOA), f"no SOA record at {_fqdn(origin)}"))
    elif len(soa.records) > 1:
        findings.append(
            Finding(origin, int(dns.rdatatype.SOA), f"multiple SOA records at {_fqdn(origin)}")
        )
    apex_ns = content.get(origin, dns.rdatatype.NS)
    if apex_ns is None or not apex_ns.enabled():
        findings.append(
            Finding(origin, int(dns.rdatatype.NS), f"no NS records at the apex {_fqdn(origin)}")
        )
    cuts = _cuts(content)
    for name in content.owners() if owners is None else set(owners):
        findings.extend(_check_owner(content, name, cuts))
    return findings


def _check_owner(content: ZoneContent, name: dns.name.Name,
                 cuts: dict[tuple[bytes, ...], dns.name.Name]) -> list[Finding]:
    origin = content.origin
    rrsets = content.at(name)
    out: list[Finding] = []
    if not _inside(name, origin):
        for rrset in rrsets:
            out.append(
                Finding(name, rrset.rdtype, f"{_fqdn(name)} is outside zone {_fqdn(origin)}")
            )
        return out
    types = {int(s.rdtype) for s in rrsets if s.records}
    cname = content.get(name, dns.rdatatype.CNAME)
    if cname is not None and cname.records:
        if types - {int(dns.rdatatype.CNAME)} - _CNAME_COMPANIONS:
            out.append(
                Finding(name, int(dns.rdatatype.CNAME), f"CNAME and other data at {_fqdn(name)}")
            )
        if len(cname.records) > 1:
            out.append(
                Finding(
                    name, int(dns.rdatatype.CNAME), f"multiple CNAME records at {_fqdn(name)}"
                )
            )
    for rrset in rrsets:
        out.extend(_check_rrset(content, rrset))
    cut = _below_cut(cuts, origin, name)
    if cut is not None:
        for rrset in rrsets:
            if int(rrset.rdtype) not in _ADDRESS:
                out.append(
                    Finding(
                        name,
                        rrset.rdtype,
                        f"{_fqdn(name)} {rrset.type_text} is below the delegation at "
                        f"{_fqdn(cut)} and will not be served",
                        error=False,
                    )
                )
    return out


def _check_rrset(content: ZoneContent, rrset: RRsetData) -> list[Finding]:
    origin = content.origin
    name = rrset.name
    rdtype = int(rrset.rdtype)
    out: list[Finding] = []
    if rdtype == _SOA and name != origin:
        out.append(Finding(name, rrset.rdtype, f"SOA record at {_fqdn(name)}, not at the apex"))
    if not 0 <= rrset.ttl <= MAX_TTL:
        out.append(Finding(name, rrset.rdtype, f"TTL {rrset.ttl} is outside 0..{MAX_TTL}"))
    if rdtype in _NOT_STORED:
        out.append(Finding(name, rrset.rdtype, f"{rrset.type_text} records cannot be stored"))
    bound = _RDATA_MAX.get(rdtype)
    if bound is not None and len(rrset.records) * (12 + bound) + 255 <= _MESSAGE_ROOM:
        size = 0  # cannot be too large: not worth rendering
    else:
        size = sum(12 + len(r.rdata.to_wire()) for r in rrset.records) + len(name.to_wire())
    if size > _MESSAGE_ROOM:
        out.append(
            Finding(
                name,
                rrset.rdtype,
                f"{_fqdn(name)} {rrset.type_text} is {size} bytes, too large for a DNS message",
            )
        )
    if int(rrset.rdtype) == dns.rdatatype.NS:
        for rec in rrset.records:
            target: dns.name.Name = rec.rdata.target  # type: ignore[attr-defined]
            if not _inside(target, origin):
                continue
            if content.get(target, dns.rdatatype.CNAME) is not None:
                out.append(
                    Finding(name, rrset.rdtype, f"NS target {_fqdn(target)} is a CNAME (illegal)")
                )
            elif not any(content.get(target, t) is not None for t in _ADDRESS):
                out.append(
                    Finding(
                        name,
                        rrset.rdtype,
                        f"NS target {_fqdn(target)} has no address records (A or AAAA)",
                    )
                )
    elif int(rrset.rdtype) in (dns.rdatatype.MX, dns.rdatatype.SRV):
        for rec in rrset.records:
            target = getattr(rec.rdata, "exchange", None) or getattr(rec.rdata, "target", None)
            if (
                isinstance(target, dns.name.Name)
                and target.is_subdomain(origin)
                and content.get(target, dns.rdatatype.CNAME) is not None
            ):
                out.append(
                    Finding(
                        name,
                        rrset.rdtype,
                        f"{rrset.type_text} target {_fqdn(target)} is a CNAME",
                        error=False,
                    )
                )
    return out
