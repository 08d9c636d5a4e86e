"""The answer engine: pure functions from (zone snapshot, question) to response sections.

No sockets, no clock, no SQL. Works on the compact served form of ``rrwire``:
every RR is already rendered, so an answer is a handful of dict look-ups and
byte joins. Minimal responses: no authority NS on positive answers and no
additional-section processing except glue on referrals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import dns.rcode
import dns.rdatatype

from zonekeeper.proto.rrwire import (
    PTR_QNAME,
    Node,
    blob_count,
    blob_rdatas,
    find_blob,
    node_blobs,
    with_owner,
)

_T_CNAME = int(dns.rdatatype.CNAME).to_bytes(2, "big")
_T_NS = int(dns.rdatatype.NS).to_bytes(2, "big")
_T_A = int(dns.rdatatype.A).to_bytes(2, "big")
_T_AAAA = int(dns.rdatatype.AAAA).to_bytes(2, "big")
_DS = int(dns.rdatatype.DS)
_ANY = int(dns.rdatatype.ANY)
_CNAME = int(dns.rdatatype.CNAME)
MAX_CHAIN = 16


class ServedZone(Protocol):
    """What the engine needs of a zone snapshot."""

    origin_key: bytes
    nodes: dict[bytes, Node]
    cuts: frozenset[bytes]
    neg_soa: bytes  # SOA RR from TYPE on, TTL already min(SOA TTL, MINIMUM)


@dataclass(slots=True)
class Answer:
    rcode: int = dns.rcode.NOERROR
    aa: bool = True
    an: list[bytes] = field(default_factory=list)
    ancount: int = 0
    ns: list[bytes] = field(default_factory=list)
    nscount: int = 0
    ar: list[bytes] = field(default_factory=list)
    arcount: int = 0


def _ptr(offset: int) -> bytes:
    return (0xC000 | (12 + offset)).to_bytes(2, "big")


class _Names:
    """Label offsets of the (lower-case) query name, for owner compression."""

    __slots__ = ("qkey", "offsets", "apex_offset", "_ptrs")

    def __init__(self, qkey: bytes, origin_key: bytes) -> None:
        self.qkey = qkey
        self.apex_offset = len(qkey) - len(origin_key)
        offsets = []
        pos = 0
        while pos < self.apex_offset:
            offsets.append(pos)
            pos += qkey[pos] + 1
        self.offsets = offsets
        self._ptrs: dict[bytes, bytes] | None = None

    def owner(self, key: bytes) -> bytes:
        """How to write owner ``key``: a pointer into the question, else in full."""
        if key == self.qkey:
            return PTR_QNAME
        if self._ptrs is None:
            self._ptrs = {self.qkey[o:]: _ptr(o) for o in [*self.offsets, self.apex_offset]}
        return self._ptrs.get(key, key)


def _in_zone(key: bytes, origin_key: bytes) -> bool:
    if not key.endswith(origin_key):
        return False
    if len(key) == len(origin_key):
        return True
    # The suffix must start on a label boundary.
    pos = 0
    limit = len(key) - len(origin_key)
    while pos < limit:
        pos += key[pos] + 1
    return pos == limit


def _label_offsets(key: bytes, stop: int) -> list[int]:
    offsets = []
    pos = 0
    while pos < stop:
        offsets.append(pos)
        pos += key[pos] + 1
    return offsets


def _add(ans_list: list[bytes], blob: bytes, owner: bytes) -> int:
    ans_list.append(with_owner(blob, owner))
    return blob_count(blob)


Z = TypeVar("Z", bound=ServedZone)


def _negative(zone: ServedZone, names: _Names, ans: Answer, rcode: int) -> Answer:
    ans.rcode = rcode
    ans.ns.append(names.owner(zone.origin_key) + zone.neg_soa)
    ans.nscount += 1
    return ans


def _referral(zone: ServedZone, names: _Names, cut: bytes, ans: Answer) -> Answer:
    """The cut's NS in authority and their glue in additional (RFC 1034 4.3.2 step 3b).

    AA is cleared unless the answer section already holds this zone's CNAMEs: AA speaks
    for the first owner of the answer (RFC 1035 4.1.1), and those are authoritative.
    """
    node = zone.nodes[cut]
    ns_blob = find_blob(node, _T_NS)
    assert ns_blob is not None
    if not ans.ancount:
        ans.aa = False
    ans.nscount += _add(ans.ns, ns_blob, names.owner(cut))
    for target in blob_rdatas(ns_blob):
        tkey = target.lower()
        if not _in_zone(tkey, zone.origin_key):
            continue
        tnode = zone.nodes.get(tkey)
        if not tnode:
            continue
        for tb in (_T_A, _T_AAAA):
            glue = find_blob(tnode, tb)
            if glue is not None:
                ans.arcount += _add(ans.ar, glue, names.owner(tkey))
    return ans


def _find_cut(zone: ServedZone, key: bytes, qtype: int) -> bytes | None:
    """The topmost delegation point at or above ``key`` (not the apex)."""
    if not zone.cuts:
        return None
    stop = len(key) - len(zone.origin_key)
    for off in reversed(_label_offsets(key, stop)):
        candidate = key[off:]
        if candidate in zone.cuts:
            if off == 0 and qtype == _DS:
                return None  # DS lives on the parent side of the cut
            return candidate
    return None


def _closest_node(zone: ServedZone, key: bytes) -> tuple[Node | None, bool]:
    """The node for ``key``, or the wildcard that covers it; and whether it was synthesized."""
    node = zone.nodes.get(key)
    if node is not None:
        return node, False
    stop = len(key) - len(zone.origin_key)
    for off in _label_offsets(key, stop)[1:] + [stop]:
        encloser = key[off:]
        if encloser in zone.nodes:
            wild = zone.nodes.get(b"\x01*" + encloser)
            return (wild, True) if wild is not None else (None, False)
    return None, False


def resolve(zone: ServedZone, qkey: bytes, qtype: int) -> Answer:
    """Answer (qkey, qtype) from ``zone``; qkey is the lower-case wire name, inside the zone."""
    names = _Names(qkey, zone.origin_key)
    ans = Answer()
    tb = qtype.to_bytes(2, "big")
    key = qkey
    seen: set[bytes] = set()
    for _ in range(MAX_CHAIN):
        cut = _find_cut(zone, key, qtype)
        if cut is not None:
            # Also after a CNAME: step 3a restarts at step 1 with the target, and a
            # target below a cut of this zone gets the referral (RFC 1034 4.3.2 step 3b).
            return _referral(zone, names, cut, ans)
        node, _synth = _closest_node(zone, key)
        if node is None:
            return _negative(zone, names, ans, dns.rcode.NXDOMAIN)
        owner = names.owner(key)
        if qtype == _ANY:
            blobs = node_blobs(node)
            if not blobs:
                return _negative(zone, names, ans, dns.rcode.NOERROR)
            ans.ancount += _add(ans.an, blobs[0], owner)
            return ans
        blob = find_blob(node, tb)
        if blob is not None:
            ans.ancount += _add(ans.an, blob, owner)
            return ans
        cname = find_blob(node, _T_CNAME) if qtype != _CNAME else None
        if cname is None:
            return _negative(zone, names, ans, dns.rcode.NOERROR)
        ans.ancount += _add(ans.an, cname, owner)
        seen.add(key)
        target = blob_rdatas(cname)[0].lower()
        if target in seen or not _in_zone(target, zone.origin_key):
            return ans
        key = target
    return ans


def zone_for(zones: dict[bytes, Z], qkey: bytes) -> Z | None:
    """The zone whose apex is the longest suffix of qkey (label-aligned)."""
    pos = 0
    while True:
        zone = zones.get(qkey[pos:])
        if zone is not None:
            return zone
        n = qkey[pos]
        if n == 0:
            return None
        pos += n + 1
