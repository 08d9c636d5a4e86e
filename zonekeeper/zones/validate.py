"""named-checkzone-grade checks on zone content, reporting every problem.

``check`` looks at the owners it is given (all of them by default) plus the
zone-wide rules (one SOA at the apex, apex NS present). The content passed in
must hold every RRset at those owners and at the in-zone targets of their NS
records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdatatype
from dns.rdtypes.txtbase import TXTBase

from zonekeeper.zones.model import RRsetData, ZoneContent

MAX_TTL = 2**31 - 1
# Room a message needs besides one RRset: header, question, a TSIG record.
_MESSAGE_ROOM = 65535 - 512
_CNAME_COMPANIONS = {int(dns.rdatatype.RRSIG), int(dns.rdatatype.NSEC)}
_ADDRESS = (int(dns.rdatatype.A), int(dns.rdatatype.AAAA))
_SOA = int(dns.rdatatype.SOA)
_NS = int(dns.rdatatype.NS)
_CNAME = int(dns.rdatatype.CNAME)
_MX = int(dns.rdatatype.MX)
_SRV = int(dns.rdatatype.SRV)
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
    origin = content.origin
    return {_labels(name): name for name, types in content.by_owner()
            if _NS in types and name != origin}


def _below_cut(cuts: dict[tuple[bytes, ...], dns.name.Name], origin: dns.name.Name,
               name: dns.name.Name) -> dns.name.Name | None:
    if not cuts or len(name.labels) <= len(origin.labels) + 1:
        return None
    labels = _labels(name)
    for i in range(1, len(labels) - len(origin.labels)):
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


# The types whose RRsets need no more than a TTL and a size check (no target to look up,
# no rule about the other types at the owner): the owners holding only these (and TXT, or
# one CNAME alone) are passed over in C.
_PLAIN = {t: n for t, n in _RDATA_MAX.items() if t not in (_NS, _MX, _SRV, _CNAME)}
_TXT = int(dns.rdatatype.TXT)
# Passed over in C too: MX and SRV RRsets whose targets are outside the zone or no CNAME
# (the rdata's target attribute, the longest RDATA), and CAA and SSHFP RRsets sized from
# their fields (fixed octets, the bytes fields) as their wire form is.
_TARGETS = {_MX: ("exchange", _RDATA_MAX[_MX]), _SRV: ("target", _RDATA_MAX[_SRV])}
_SIZED = {int(dns.rdatatype.CAA): (2, ("tag", "value")),
          int(dns.rdatatype.SSHFP): (2, ("fingerprint",))}

try:  # the owners with nothing to report, passed over in C (proto/_dnsobj.c, unplain)
    from zonekeeper.proto._dnsobj import unplain as _c_unplain
except ImportError:  # built without a C compiler: every owner is looked at here
    _c_unplain = None


def _rdata_len(rdata: dns.rdata.Rdata) -> int:
    """Length of ``rdata``'s wire form; a TXT's without rendering it (a length octet and
    the octets of each string)."""
    if isinstance(rdata, TXTBase):
        return len(rdata.strings) + sum(map(len, rdata.strings))
    return len(rdata.to_wire())


def check(content: ZoneContent, owners: Iterable[dns.name.Name] | None = None, *,
          c_loop: bool = True) -> list[Finding]:
    """Every problem of ``content`` at ``owners`` (default: the whole zone) and zone-wide.
    Of the whole zone, the owners that certainly have nothing to report are passed over in
    C where it is built (``c_loop=False``: each is looked at here, the reference)."""
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
    # The whole zone: its owners with their RRsets as the content holds them (a lookup of
    # each owner by name would hash and compare it again, a fifth of the time at 1M).
    at: Iterable[tuple[dns.name.Name, Mapping[int, RRsetData]]]
    if owners is not None:
        at = ((n, content.types_at(n)) for n in set(owners))
    elif c_loop and _c_unplain is not None:
        at = _c_unplain(content.by_owner(), origin.labels, not cuts, _PLAIN, _TXT, _CNAME,
                        _MESSAGE_ROOM, MAX_TTL, content.by_name(), _TARGETS, _SIZED)
    else:
        at = content.by_owner()
    for name, types in at:
        _check_owner(content, name, types, cuts, findings)
    return findings


def _check_owner(content: ZoneContent, name: dns.name.Name, types: Mapping[int, RRsetData],
                 cuts: dict[tuple[bytes, ...], dns.name.Name], out: list[Finding]) -> None:
    origin = content.origin
    if not _inside(name, origin):
        for rrset in types.values():
            out.append(
                Finding(name, rrset.rdtype, f"{_fqdn(name)} is outside zone {_fqdn(origin)}")
            )
        return
    cname = types.get(_CNAME)
    if cname is not None and cname.records:
        if any(s.records for t, s in types.items() if t != _CNAME and t not in _CNAME_COMPANIONS):
            out.append(
                Finding(name, int(dns.rdatatype.CNAME), f"CNAME and other data at {_fqdn(name)}")
            )
        if len(cname.records) > 1:
            out.append(
                Finding(
                    name, int(dns.rdatatype.CNAME), f"multiple CNAME records at {_fqdn(name)}"
                )
            )
    for rrset in types.values():
        _check_rrset(content, rrset, out)
    cut = _below_cut(cuts, origin, name)
    if cut is not None:
        for rrset in types.values():
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


def _check_rrset(content: ZoneContent, rrset: RRsetData, out: list[Finding]) -> None:
    origin = content.origin
    name = rrset.name
    rdtype = int(rrset.rdtype)
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
        size = sum(12 + _rdata_len(r.rdata) for r in rrset.records) + len(name.to_wire())
    if size > _MESSAGE_ROOM:
        out.append(
            Finding(
                name,
                rrset.rdtype,
                f"{_fqdn(name)} {rrset.type_text} is {size} bytes, too large for a DNS message",
            )
        )
    if rdtype == _NS:
        for rec in rrset.records:
            target: dns.name.Name = rec.rdata.target  # type: ignore[attr-defined]
            if not _inside(target, origin):
                continue
            if content.get(target, _CNAME) is not None:
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
    elif rdtype == _MX or rdtype == _SRV:
        for rec in rrset.records:
            target = rec.rdata.exchange if rdtype == _MX else rec.rdata.target  # type: ignore[attr-defined]
            if (
                _inside(target, origin)
                and content.get(target, _CNAME) is not None
            ):
                out.append(
                    Finding(
                        name,
                        rrset.rdtype,
                        f"{rrset.type_text} target {_fqdn(target)} is a CNAME",
                        error=False,
                    )
                )
