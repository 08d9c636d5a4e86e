"""Immutable served zone versions and the registry that publishes them.

A ``ZoneSnapshot`` is one committed version of a zone in the compact form of
``proto.rrwire``. Publishing swaps one dict entry on the event loop; a reader
keeps the snapshot it began with. Each snapshot carries its own response cache,
so a new version starts with an empty one and the old cache dies with the old
version.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from zonekeeper.proto.rrwire import (
    Node,
    add_ents,
    blob_to_rdatas,
    blob_ttl,
    find_blob,
    find_cuts,
    freeze_nodes,
    from_rdatas,
    make_node,
    name_key,
    node_owners,
    rdata_wire,
    sort_key,
    table_records,
)

if TYPE_CHECKING:
    from zonekeeper.zones.model import ZoneContent

try:  # the owners' nodes of a zone's content made in C (_axfrbuild.c); compile_nodes is the reference
    from dns.rdtypes.ANY.CNAME import CNAME as _CNAME
    from dns.rdtypes.ANY.DNAME import DNAME as _DNAME
    from dns.rdtypes.ANY.MX import MX as _MX
    from dns.rdtypes.ANY.NS import NS as _NS
    from dns.rdtypes.ANY.PTR import PTR as _PTR
    from dns.rdtypes.ANY.TXT import TXT as _TXT
    from dns.rdtypes.IN.A import A as _A
    from dns.rdtypes.IN.AAAA import AAAA as _AAAA
    from dns.rdtypes.IN.SRV import SRV as _SRV

    from zonekeeper.proto._axfrbuild import add_ents as _c_add_ents
    from zonekeeper.proto._axfrbuild import owner_nodes as _c_owner_nodes

    # the classes whose wire form owner_nodes writes itself, as rrwire.rdata_wire does
    _FAST = ((_CNAME, _DNAME, _NS, _PTR), _MX, _SRV, _TXT)
except ImportError:  # built without a C compiler
    _c_owner_nodes = None

_T_SOA = int(dns.rdatatype.SOA).to_bytes(2, "big")
_NS = int(dns.rdatatype.NS)


class ZoneKind(enum.StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    # A primary zone whose records list member zones (RFC 9432): edited through its
    # members only, served and transferred like any primary zone.
    CATALOG = "catalog"

    @property
    def local(self) -> bool:
        """Content kept here (primary or catalog), not transferred in."""
        return self is not ZoneKind.SECONDARY


class ZoneState(enum.StrEnum):
    OK = "ok"
    EXPIRED = "expired"
    UNLOADED = "unloaded"


def negative_soa(soa_blob: bytes) -> bytes:
    """The SOA RR (from TYPE on) with TTL = min(SOA TTL, MINIMUM), per RFC 2308 §5."""
    ttl = int.from_bytes(soa_blob[10:14], "big")
    minimum = int.from_bytes(soa_blob[-4:], "big")
    return soa_blob[6:10] + min(ttl, minimum).to_bytes(4, "big") + soa_blob[14:]


class ZoneSnapshot:
    """One committed version of a served zone, never changed once published (its caches
    aside: responses, the AXFR image, IXFR answers); a change of state or settings is a
    new snapshot (``replaced``)."""

    __slots__ = (
        "name",
        "origin_key",
        "serial",
        "kind",
        "state",
        "nodes",
        "cuts",
        "neg_soa",
        "cache",
        "retired",
        "zone_id",
        "change_id",
        "outgoing",
        "notify_ns",
        "notify_delay",
        "ixfr_max_ratio",
        "axfr",
        "axfr_future",
        "ixfr_cache",
        "_sorted",
        "_count",
    )

    def __init__(
        self,
        name: dns.name.Name,
        serial: int,
        nodes: Mapping[bytes, Node],
        cuts: frozenset[bytes],
        *,
        kind: ZoneKind = ZoneKind.PRIMARY,
        state: ZoneState = ZoneState.OK,
        zone_id: int = 0,
        change_id: int | None = None,
        outgoing: bool = True,
        notify_ns: bool = False,
        notify_delay: float = 0.0,
        ixfr_max_ratio: float = 1.0,
    ) -> None:
        self.name = name
        self.origin_key = name_key(name)
        self.serial = serial
        self.kind = kind
        self.state = state
        # Read only from here on (rrwire.freeze_nodes: in one buffer where that is built).
        self.nodes = freeze_nodes(nodes)
        self.cuts = cuts
        self.zone_id = zone_id
        # The stored zone's change_id this version is (None: not known, e.g. a transfer
        # served before it is stored): what an AXFR image kept on disk is matched with.
        self.change_id: int | None = change_id
        # Per-zone settings, not content: a change publishes a copy (``replaced``), the
        # same version with the new settings.
        self.outgoing = outgoing
        self.notify_ns = notify_ns  # NOTIFY the apex NS targets too (BIND's "notify yes")
        self.notify_delay = notify_delay
        self.ixfr_max_ratio = ixfr_max_ratio
        # The AXFR image (proto.axfr.AxfrImage), built on first transfer or patched per edit.
        self.axfr: Any = None
        self.axfr_future: Any = None
        # Rendered IXFR answers of this version by client serial (or why AXFR-style), and
        # whole answers to unsigned IXFR requests by the request's bytes after its ID.
        self.ixfr_cache: dict[int | bytes, Any] = {}
        apex = self.nodes.get(self.origin_key)
        soa = find_blob(apex, _T_SOA) if apex is not None else None
        if soa is None and state is not ZoneState.UNLOADED:
            raise ValueError(f"zone {name} has no SOA at its apex")
        self.neg_soa = negative_soa(soa) if soa is not None else b""
        self.cache: dict[bytes, bytes] = {}
        self.retired = False
        self._sorted: list[tuple[bytes, bytes]] | None = None
        self._count: int | None = None

    @classmethod
    def unloaded(cls, name: dns.name.Name, *, zone_id: int, kind: ZoneKind) -> ZoneSnapshot:
        """A zone we serve but hold no data for yet (a new secondary): SERVFAIL."""
        return cls(name, 0, {}, frozenset(), kind=kind, state=ZoneState.UNLOADED, zone_id=zone_id)

    def replaced(self, **changes: Any) -> ZoneSnapshot:
        """This version with some of its settings (``outgoing``, ``notify_ns``,
        ``notify_delay``, ``ixfr_max_ratio``) or its ``state`` changed: a new snapshot to
        publish, sharing the content, the AXFR image and (unless the IXFR ratio changed,
        which voids them) the IXFR answers; its response cache starts empty. Readers of
        this one keep it as it is."""
        unknown = set(changes) - {"outgoing", "notify_ns", "notify_delay", "ixfr_max_ratio",
                                  "state"}
        if unknown:
            raise TypeError(f"not a snapshot setting: {', '.join(sorted(unknown))}")
        new = ZoneSnapshot.__new__(ZoneSnapshot)
        for slot in ZoneSnapshot.__slots__:
            setattr(new, slot, getattr(self, slot))
        for name, value in changes.items():
            setattr(new, name, value)
        new.cache = {}
        new.retired = False
        if new.ixfr_max_ratio != self.ixfr_max_ratio:
            new.ixfr_cache = {}
        return new

    def built_image(self) -> Any:
        """The AXFR image if it is built: set here, or done by the build this version
        shares with the one it replaced (``replaced``: a settings change while the image
        was being built), else None."""
        if self.axfr is None:
            fut = self.axfr_future
            if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
                self.axfr = fut.result()
        return self.axfr

    def soa_rrset(self) -> dns.rrset.RRset:
        """The apex SOA as a dnspython RRset (for NOTIFY and one-SOA IXFR answers)."""
        blob = find_blob(self.nodes[self.origin_key], _T_SOA)
        assert blob is not None
        rrset = dns.rrset.RRset(self.name, dns.rdataclass.IN, dns.rdatatype.SOA)
        for rd in blob_to_rdatas(blob):
            rrset.add(rd, blob_ttl(blob))
        return rrset

    @property
    def record_count(self) -> int:
        if self._count is None:
            self._count = table_records(self.nodes)
        return self._count

    def sorted_keys(self) -> list[tuple[bytes, bytes]]:
        """(sort key, key) of every owner with data, in DNSSEC order; built once per version
        (for listing a version that has no RRset rows: a secondary zone's)."""
        if self._sorted is None:
            self._sorted = sorted((sort_key(k), k) for k in node_owners(self.nodes))
        return self._sorted


RRsetTuple = tuple[dns.name.Name, int, int, Iterable[dns.rdata.Rdata]]


def compile_nodes(
    origin: dns.name.Name, rrsets: Iterable[RRsetTuple]
) -> tuple[dict[bytes, Node], frozenset[bytes]]:
    """Compile (name, rdtype, ttl, rdatas) RRsets into the node table and its cuts.

    Adds empty non-terminals for every ancestor between an owner and the apex.
    """
    per_owner: dict[bytes, list[bytes]] = {}
    origin_key = name_key(origin)
    ns_owners = []  # the cuts among them: no walk of the whole table to find them
    for name, rdtype, ttl, rdatas in rrsets:
        key = name_key(name)
        blobs = per_owner.get(key)
        if blobs is None:
            blobs = per_owner[key] = []
        blobs.append(from_rdatas(rdtype, ttl, rdatas))
        if rdtype == _NS:
            ns_owners.append(key)
    nodes: dict[bytes, Node] = {k: make_node(v) for k, v in per_owner.items()}
    add_ents(nodes, origin_key)
    cuts = find_cuts(nodes, origin_key, ns_owners)
    return nodes, cuts


def compile_content(content: ZoneContent, *, c_loop: bool = True) -> tuple[dict[bytes, Node], frozenset[bytes]]:
    """``compile_nodes(content.origin, content.served_rrsets())``, the owners' nodes made in
    C where that is built (~4x faster at a million records; ``c_loop=False``: the Python
    way, which the tests compare)."""
    if not c_loop or _c_owner_nodes is None:
        return compile_nodes(content.origin, content.served_rrsets())
    ns_owners: list[bytes] = []
    nodes: dict[bytes, Node] = _c_owner_nodes(content.by_owner(), name_key, rdata_wire, _A, _AAAA,
                                              ns_owners, _FAST)
    origin_key = name_key(content.origin)
    _c_add_ents(nodes, origin_key)  # rrwire.add_ents in C (a Python loop over every key)
    return nodes, find_cuts(nodes, origin_key, ns_owners)


class Registry:
    """Name → current snapshot. Only the event loop publishes."""

    def __init__(self) -> None:
        self.zones: dict[bytes, ZoneSnapshot] = {}
        # Called after every change, once it is visible: caches of answers kept outside the
        # snapshots (the C UDP loop's, server/udpfast.py) forget what they hold.
        self.on_change: list[Callable[[], None]] = []

    def publish(self, snap: ZoneSnapshot) -> None:
        old = self.zones.get(snap.origin_key)
        self.zones[snap.origin_key] = snap
        if old is not None and old is not snap:
            old.retired = True
            old.cache.clear()
        for changed in self.on_change:
            changed()

    def remove(self, name: dns.name.Name) -> None:
        old = self.zones.pop(name_key(name), None)
        if old is not None:
            old.retired = True
            old.cache.clear()
        for changed in self.on_change:
            changed()

    def get(self, name: dns.name.Name) -> ZoneSnapshot | None:
        return self.zones.get(name_key(name))
