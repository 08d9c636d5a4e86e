"""Zone operations as units of work: validate everything, write data, nodes and journal
in one transaction, then publish the new snapshot.

Every write runs in a worker thread under the zone's asyncio lock; the publish
happens on the event loop after the commit, so DNS serves the new serial before
the API call returns. A failure before the commit leaves no trace.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import structlog
from sqlalchemy import delete, event, select

from zonekeeper.errors import (
    Conflict,
    Invalid,
    Malformed,
    NotFound,
    Reason,
    ShuttingDown,
    Stale,
)
from zonekeeper.logs import Throttle
from zonekeeper.proto import axfr, xfrin
from zonekeeper.proto.rrwire import (
    Node,
    ancestors,
    blob_to_rdatas,
    blob_ttl,
    blob_type,
    find_blob,
    find_cuts,
    key_to_name,
    name_key,
    node_blobs,
    sort_key,
)
from zonekeeper.proto.serial import SerialPolicy, check_explicit, next_serial
from zonekeeper.services import paging
from zonekeeper.services.dnsupdate import UpdateRR, apply_updates, check_prerequisites, prescan
from zonekeeper.settings import ZoneSettings
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import Peer, RRset, Timer, Zone, ZonePeer
from zonekeeper.zones.model import Record, RRsetData, ZoneContent
from zonekeeper.zones.snapshot import (
    Registry,
    ZoneKind,
    ZoneSnapshot,
    ZoneState,
    compile_nodes,
)
from zonekeeper.zones.validate import Finding, check
from zonekeeper.zones.zonefile import ParseResult, Problem, export_text, parse_zone_text

log = structlog.get_logger("zonekeeper.zones")

_SOA = int(dns.rdatatype.SOA)
_NS = int(dns.rdatatype.NS)
_T_NS = _NS.to_bytes(2, "big")
_T_SOA = _SOA.to_bytes(2, "big")
IMPORT_SAFE_SHARE = 0.30


# -- inputs ------------------------------------------------------------------------------


def parse_zone_name(text: str) -> dns.name.Name:
    """A zone name from user input: case-insensitive, trailing dot optional, IDN allowed."""
    text = text.strip()
    if not text or text == ".":
        raise Malformed("the zone name is empty", [Reason(("name",), "a zone name is required")])
    try:
        name = dns.name.from_text(text if text.endswith(".") else text + ".")
    except Exception as exc:  # noqa: BLE001 - dnspython raises several kinds
        raise Malformed(
            f"{text!r} is not a valid domain name", [Reason(("name",), str(exc))]
        ) from None
    return name.canonicalize()  # type: ignore[no-any-return]


def owner_name(text: str, origin: dns.name.Name) -> dns.name.Name:
    """An owner from the API: absolute, or relative to the zone, '@' for the apex."""
    text = text.strip()
    if text in ("@", ""):
        return origin
    if text.endswith("."):
        return dns.name.from_text(text).canonicalize()  # type: ignore[no-any-return]
    return dns.name.from_text(text, origin).canonicalize()  # type: ignore[no-any-return]


def parse_type(text: str | int) -> int:
    try:
        return int(dns.rdatatype.RdataType.make(text))
    except Exception:  # noqa: BLE001
        raise ValueError(f"unknown record type {text!r}") from None


def parse_records(
    rdtype: int, contents: Iterable[tuple[str, bool]], origin: dns.name.Name
) -> tuple[list[Record], list[tuple[int, str]]]:
    """Parse presentation-format contents; returns records and (index, error) pairs."""
    records: list[Record] = []
    errors: list[tuple[int, str]] = []
    for i, (content, disabled) in enumerate(contents):
        try:
            rdata = dns.rdata.from_text(
                dns.rdataclass.IN, rdtype, content, origin=origin, relativize=False  # type: ignore[arg-type]
            )
        except Exception as exc:  # noqa: BLE001
            errors.append((i, f"bad {dns.rdatatype.to_text(rdtype)} rdata {content!r}: {exc}"))  # type: ignore[arg-type]
            continue
        rec = Record(rdata, disabled)
        if rec not in records:
            records.append(rec)
    return records, errors


@dataclass
class RRsetChange:
    name: dns.name.Name
    rdtype: int
    changetype: str  # REPLACE | DELETE
    ttl: int | None = None
    records: list[Record] = field(default_factory=list)


@dataclass
class SoaFields:
    mname: str | None = None
    rname: str | None = None
    refresh: int | None = None
    retry: int | None = None
    expire: int | None = None
    minimum: int | None = None
    ttl: int | None = None


MAX_TTL = 2**31 - 1


def make_change(
    name: str, rdtype: str, ttl: int | None, contents: list[tuple[str, bool]], changetype: str,
    origin: dns.name.Name, loc: tuple[str | int, ...] = (),
) -> tuple[RRsetChange | None, list[Reason]]:
    """An RRset change from what a user typed (owner relative to ``origin``, type, TTL,
    records in presentation format), or every problem with it, each at ``loc`` + where in
    the change it is. The API and the console both build changes here."""
    reasons: list[Reason] = []
    owner = t = None
    try:
        owner = owner_name(name, origin)
    except Exception as exc:  # noqa: BLE001
        reasons.append(Reason((*loc, "name"), f"{name!r} is not a valid name: {exc}"))
    try:
        t = parse_type(rdtype)
    except ValueError as exc:
        reasons.append(Reason((*loc, "type"), str(exc)))
    if ttl is not None and not 0 <= ttl <= MAX_TTL:
        reasons.append(Reason((*loc, "ttl"), f"TTL {ttl} is outside 0..{MAX_TTL}"))
    if changetype == "REPLACE" and not contents:
        reasons.append(Reason((*loc, "records"), "REPLACE needs at least one record"))
    if t is None:
        return None, reasons
    records, errors = parse_records(t, contents, origin)
    reasons.extend(Reason((*loc, "records", i, "content"), msg) for i, msg in errors)
    if owner is None:
        return None, reasons
    return RRsetChange(owner, t, changetype, ttl, records), reasons


@dataclass
class ZoneSpec:
    name: dns.name.Name
    nameservers: list[str] = field(default_factory=list)
    soa: SoaFields = field(default_factory=SoaFields)
    rrsets: list[RRsetChange] = field(default_factory=list)
    serial_policy: SerialPolicy = SerialPolicy.INCREMENT
    zone_text: str | None = None
    # The whole content, read elsewhere (an AXFR from a running primary); its SOA serial is
    # kept and it gets the same checks as a zone text.
    content: ZoneContent | None = None


@dataclass
class ZoneUpdate:
    serial_policy: SerialPolicy | None = None
    outgoing_enabled: bool | None = None
    notify_ns: bool | None = None
    notify_delay: float | None = None
    ixfr_max_ratio: float | None = None
    journal_max_count: int | None = None
    journal_max_bytes: int | None = None
    journal_max_age: int | None = None
    soa: SoaFields = field(default_factory=SoaFields)
    serial: int | None = None
    fields_set: set[str] = field(default_factory=set)


@dataclass
class ImportResult:
    serial: int
    applied: bool
    added: int
    removed: int
    changes: list[dict[str, Any]]
    warnings: list[str]


# -- outputs -----------------------------------------------------------------------------


def zone_info(zone: Zone, soa: RRsetData | None, record_count: int) -> dict[str, Any]:
    """A zone as the API shows it. ``record_count`` counts records (RRs, the SOA once), not
    RRsets: what the version served holds, as an AXFR would send it."""
    info: dict[str, Any] = {
        "name": zone.name,
        "kind": zone.kind,
        "serial": zone.serial,
        "serial_policy": zone.serial_policy,
        "state": zone.state,
        "outgoing_enabled": zone.outgoing_enabled,
        "notify_ns": zone.notify_ns,
        "notify_delay": zone.notify_delay,
        "ixfr_max_ratio": zone.ixfr_max_ratio,
        "journal_max_count": zone.journal_max_count,
        "journal_max_bytes": zone.journal_max_bytes,
        "journal_max_age": zone.journal_max_age,
        "created_at": zone.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if zone.created_at.tzinfo
        else zone.created_at.isoformat() + "Z",
        "updated_at": zone.updated_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if zone.updated_at.tzinfo
        else zone.updated_at.isoformat() + "Z",
    }
    if soa is not None and soa.records:
        rd: dns.rdtypes.ANY.SOA.SOA = soa.records[0].rdata  # type: ignore[assignment]
        info["soa"] = {
            "mname": rd.mname.to_text(),
            "rname": rd.rname.to_text(),
            "serial": rd.serial,
            "refresh": rd.refresh,
            "retry": rd.retry,
            "expire": rd.expire,
            "minimum": rd.minimum,
            "ttl": soa.ttl,
        }
    info["record_count"] = record_count
    return info


# -- the service -------------------------------------------------------------------------


class ZoneService:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        *,
        on_published: Callable[[ZoneSnapshot], None] | None = None,
        limits: ZoneSettings | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.limits = limits or ZoneSettings()
        # Set when the server stops: zone text still being parsed in a worker thread gives
        # up (ShuttingDown) instead of holding the process for minutes.
        self.stopping = threading.Event()
        self._refusals = Throttle()
        self.on_published = on_published
        self.on_removed: Callable[[dns.name.Name], None] | None = None
        self.on_secondaries_changed: Callable[[], Awaitable[None]] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def stop(self) -> None:
        """Make work in worker threads give up (called first thing on shutdown)."""
        self.stopping.set()

    def _parse(self, text: str, origin: dns.name.Name) -> ParseResult:
        """Parse zone text within ``[zones]`` limits; every problem raised (Invalid)."""
        parsed = parse_zone_text(text, origin, limits=self.limits, cancel=self.stopping)
        if parsed.limited is not None:
            held = self._refusals.due(origin)
            if held is not None:
                log.warning("zone.text_refused", zone=origin.to_text(), line=parsed.limited.line,
                            reason=parsed.limited.msg, suppressed=held)
        _raise_parse_problems(parsed)
        return parsed

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _publish(self, snap: ZoneSnapshot | None) -> None:
        if snap is None:
            return
        self.registry.publish(snap)
        if self.on_published is not None:
            self.on_published(snap)

    # -- start-up -------------------------------------------------------------------------
    def load_all(self) -> list[ZoneSnapshot]:
        """Load every zone's served form from storage (no text parsing)."""
        snaps = []
        with self.db.read() as s:
            zones = list(s.scalars(select(Zone)))
            for z in zones:
                origin = dns.name.from_text(z.name)
                if z.kind == ZoneKind.SECONDARY.value:
                    snaps.append(self._load_secondary(s, z, origin))
                    continue
                nodes = repo.load_nodes(s, z.id)
                if not nodes:
                    # A primary with no stored nodes (damaged storage): SERVFAIL, not a crash.
                    snaps.append(ZoneSnapshot.unloaded(origin, zone_id=z.id, kind=ZoneKind(z.kind)))
                    continue
                cuts = frozenset(
                    name_key(dns.name.from_text(n))
                    for n in s.scalars(
                        select(RRset.name).where(
                            RRset.zone_id == z.id, RRset.type == _NS, RRset.name != z.name
                        )
                    )
                )
                cuts = frozenset(k for k in cuts if k in nodes and find_blob(nodes[k], _T_NS))
                snaps.append(_snapshot(z, z.serial, nodes, cuts))
        for snap in snaps:
            self.registry.publish(snap)
        return snaps

    def _load_secondary(self, s: Any, z: Zone, origin: dns.name.Name) -> ZoneSnapshot:
        try:
            nodes = repo.load_image(s, z.id)
        except ValueError as exc:
            log.error("zone.unreadable", zone=z.name, error=str(exc), action="transfer it again")
            nodes = None
        if not nodes:
            # Never loaded (or unreadable): served, but SERVFAIL until a transfer succeeds.
            return ZoneSnapshot.unloaded(origin, zone_id=z.id, kind=ZoneKind.SECONDARY)
        # The image holds the empty non-terminals; the cuts are found again.
        return _snapshot(z, z.serial, nodes, find_cuts(nodes, name_key(origin)))

    # -- reads ----------------------------------------------------------------------------
    async def list(self, *, kind: str | None, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        def work() -> tuple[list[dict[str, Any]], str | None]:
            with self.db.read() as s:
                q = select(Zone).order_by(Zone.name).limit(limit + 1)
                if kind:
                    q = q.where(Zone.kind == kind)
                after = paging.name_after(cursor)
                if after is not None:
                    q = q.where(Zone.name > after)
                rows = list(s.scalars(q))
                more = len(rows) > limit
                rows = rows[:limit]
                items = [zone_info(z, self._soa(s, z), self._records(z)) for z in rows]
                return items, (rows[-1].name if more and rows else None)

        return await asyncio.to_thread(work)

    def _records(self, z: Zone, snap: ZoneSnapshot | None = None) -> int:
        """The records (RRs) of the zone's version served (``snap`` if given, else the
        registry's): counted once per version, in memory, with no SQL. Disabled records
        are not served, so not counted; a zone not loaded holds none."""
        if snap is None:
            snap = self.registry.get(dns.name.from_text(z.name))
        return snap.record_count if snap is not None else 0

    def _soa(self, s: Any, z: Zone) -> RRsetData | None:
        if z.kind == ZoneKind.SECONDARY.value:
            snap = self.registry.get(dns.name.from_text(z.name))
            if snap is None or snap.state is ZoneState.UNLOADED:
                return None
            blob = find_blob(snap.nodes[snap.origin_key], _T_SOA)
            return _rrset_of(snap.name, blob) if blob else None
        rows = repo.rrsets_at(s, z.id, [z.name])
        for r in rows:
            if r.type == _SOA:
                return RRsetData.from_row(r.name, r.type, r.ttl, r.records)
        return None

    def _zone(self, s: Any, name: dns.name.Name) -> Zone:
        z = repo.zone_by_name(s, name.to_text())
        if z is None:
            raise NotFound(f"zone {name.to_text()} does not exist")
        return z

    async def get(self, name: dns.name.Name) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            with self.db.read() as s:
                z = self._zone(s, name)
                return zone_info(z, self._soa(s, z), self._records(z))

        return await asyncio.to_thread(work)

    async def rrsets(
        self,
        name: dns.name.Name,
        *,
        owner: dns.name.Name | None = None,
        rdtype: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        def work() -> tuple[int, list[dict[str, Any]], str | None]:
            with self.db.read() as s:
                z = self._zone(s, name)
                if z.kind == ZoneKind.SECONDARY.value:
                    items, nxt = _node_page(self.registry.get(name), owner=owner,
                                            rdtype=rdtype, limit=limit, cursor=cursor)
                    return z.serial, items, nxt
                q = select(RRset).where(RRset.zone_id == z.id)
                if owner is not None:
                    q = q.where(RRset.name == owner.to_text())
                if rdtype is not None:
                    q = q.where(RRset.type == rdtype)
                after = paging.row_id_after(cursor)
                if after is not None:
                    q = q.where(RRset.id > after)
                rows = list(s.scalars(q.order_by(RRset.id).limit(limit + 1)))
                more = len(rows) > limit
                rows = rows[:limit]
                items = [RRsetData.from_row(r.name, r.type, r.ttl, r.records).as_dict() for r in rows]
                return z.serial, items, (str(rows[-1].id) if more and rows else None)

        return await asyncio.to_thread(work)

    def journal_sync(self, zone_id: int) -> list[tuple[int, int, bytes, bytes]]:
        """The zone's journal, oldest first (read by IXFR out in a worker thread)."""
        with self.db.read() as s:
            return repo.read_journal(s, zone_id)

    async def export(self, name: dns.name.Name) -> tuple[int, str]:
        def work() -> tuple[int, str]:
            with self.db.read() as s:
                z = self._zone(s, name)
                if z.kind == ZoneKind.SECONDARY.value:
                    snap = self.registry.get(name)
                    rrsets = _rrsets_of_nodes(snap.nodes if snap is not None else {})
                else:
                    rrsets = (RRsetData.from_row(r.name, r.type, r.ttl, r.records)
                              for r in repo.iter_rrsets(s, z.id))
                return z.serial, export_text(ZoneContent(name, rrsets))

        return await asyncio.to_thread(work)

    # -- create and delete ----------------------------------------------------------------
    async def absent(self, name: dns.name.Name) -> None:
        """Conflict if the zone exists (before work that would be thrown away)."""
        def work() -> bool:
            with self.db.read() as s:
                return repo.zone_by_name(s, name.to_text()) is not None

        if await asyncio.to_thread(work):
            raise Conflict(f"zone {name.to_text()} already exists")

    async def create(self, spec: ZoneSpec) -> dict[str, Any]:
        key = spec.name.to_text()
        async with self._lock(key):
            snap, info = await asyncio.to_thread(self._create, spec)
            self._publish(snap)
            log.info("zone.created", zone=key, serial=snap.serial, records=info.get("record_count"))
            return info

    def _create(self, spec: ZoneSpec) -> tuple[ZoneSnapshot, dict[str, Any]]:
        origin = spec.name
        if spec.zone_text is not None:
            parsed = self._parse(spec.zone_text, origin)  # runs the zone checks too
            content = parsed.content
        elif spec.content is not None:
            content = spec.content
            _raise_findings(check(content), lambda f: (
                "content", f.name.to_text(), dns.rdatatype.to_text(f.rdtype) if f.rdtype else ""))
        else:
            content = self._default_content(spec)
            _raise_findings(check(content), lambda f: (
                "rrsets", f.name.to_text(), dns.rdatatype.to_text(f.rdtype) if f.rdtype else ""))
        soa = content.get(origin, _SOA)
        assert soa is not None
        serial = soa.records[0].rdata.serial  # type: ignore[attr-defined]
        with self.db.write() as s:
            if repo.zone_by_name(s, origin.to_text()) is not None:
                raise Conflict(f"zone {origin.to_text()} already exists")
            z = Zone(
                name=origin.to_text(),
                kind=ZoneKind.PRIMARY.value,
                serial=serial,
                serial_policy=spec.serial_policy.value,
                state=ZoneState.OK.value,
                change_id=1,
            )
            s.add(z)
            s.flush()
            nodes, cuts = compile_nodes(origin, content.served_rrsets())
            repo.replace_all(s, z.id, _rrset_rows(content), nodes)
        snap = _snapshot(z, serial, nodes, cuts)
        return snap, zone_info(z, soa, self._records(z, snap))

    def _default_content(self, spec: ZoneSpec) -> ZoneContent:
        origin = spec.name
        content = ZoneContent(origin)
        if not spec.nameservers:
            raise Invalid(
                "a primary zone needs at least one nameserver",
                [Reason(("nameservers",), "give at least one nameserver name")],
            )
        reasons: list[Reason] = []
        ns_records = []
        for i, ns in enumerate(spec.nameservers):
            try:
                target = owner_name(ns if ns.endswith(".") else ns + ".", origin)
                ns_records.append(Record(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NS, target.to_text())))
            except Exception as exc:  # noqa: BLE001
                reasons.append(Reason(("nameservers", i), f"{ns!r} is not a valid name: {exc}"))
        soa_f = spec.soa
        mname = soa_f.mname or (spec.nameservers[0] if spec.nameservers else "ns1." + origin.to_text())
        rname = soa_f.rname or "hostmaster." + origin.to_text()
        serial = next_serial(0, spec.serial_policy)
        try:
            soa_rd = dns.rdata.from_text(
                dns.rdataclass.IN,
                dns.rdatatype.SOA,
                f"{_abs(mname)} {_abs(rname)} {serial} {soa_f.refresh or 3600} "
                f"{soa_f.retry or 900} {soa_f.expire or 1209600} "
                f"{soa_f.minimum if soa_f.minimum is not None else 300}",
            )
        except Exception as exc:  # noqa: BLE001
            reasons.append(Reason(("soa",), f"bad SOA fields: {exc}"))
        if reasons:
            raise Invalid("the zone cannot be created", reasons)
        ttl = soa_f.ttl if soa_f.ttl is not None else 3600
        content.put(RRsetData(origin, _SOA, ttl, [Record(soa_rd)]))
        content.put(RRsetData(origin, _NS, ttl, ns_records))
        _apply_changes(content, spec.rrsets)
        return content

    async def delete(self, name: dns.name.Name) -> None:
        key = name.to_text()
        async with self._lock(key):

            def work() -> None:
                with self.db.write() as s:
                    z = self._zone(s, name)
                    s.delete(z)

            await asyncio.to_thread(work)
            self.registry.remove(name)
            if self.on_removed is not None:
                await asyncio.to_thread(self.on_removed, name)
            if self.on_secondaries_changed is not None:
                await self.on_secondaries_changed()
            log.info("zone.deleted", zone=key)

    # -- secondary zones ------------------------------------------------------------------
    async def create_secondary(self, name: dns.name.Name, primaries: list[str]) -> dict[str, Any]:
        """A secondary zone following ``primaries`` (peer names, in order); no data until
        the first transfer, so it answers SERVFAIL until then."""
        if not primaries:
            raise Invalid("a secondary zone needs primaries",
                          [Reason(("primaries",), "name at least one peer to transfer from")])

        def work(s: Any) -> dict[str, Any]:
            if repo.zone_by_name(s, name.to_text()) is not None:
                raise Conflict(f"zone {name.to_text()} already exists")
            peers = []
            for i, p in enumerate(primaries):
                row = s.scalar(select(Peer).where(Peer.name == p))
                if row is None:
                    raise NotFound(f"peer {p} does not exist (primaries[{i}]); create it first")
                peers.append(row)
            z = Zone(name=name.to_text(), kind=ZoneKind.SECONDARY.value, serial=0,
                     serial_policy=SerialPolicy.INCREMENT.value, state=ZoneState.UNLOADED.value,
                     change_id=0)
            s.add(z)
            s.flush()
            for pos, peer in enumerate(peers):
                s.add(ZonePeer(zone_id=z.id, peer_id=peer.id, role="primary", position=pos))
            s.flush()
            return zone_info(z, None, 0) | {"zone_id": z.id}

        async with self._lock(name.to_text()):
            info = await self.db.run_write(work)
            self.registry.publish(ZoneSnapshot.unloaded(name, zone_id=info.pop("zone_id"),
                                                        kind=ZoneKind.SECONDARY))
        log.info("zone.created", zone=name.to_text(), kind="secondary", primaries=primaries)
        if self.on_secondaries_changed is not None:
            await self.on_secondaries_changed()
        return info

    async def promote(self, name: dns.name.Name) -> dict[str, Any]:
        """A secondary zone becomes a primary zone: it keeps the version it serves and its
        serial, stops following its primaries (links dropped, timers gone) and takes edits
        from now on. Its own secondaries and journal stay. An expired zone is served again
        (promoting is how one retires a dead primary). 409 if it is a primary zone already
        or has never been transferred (nothing to keep)."""
        key = name.to_text()
        async with self._lock(key):
            prev = self.registry.get(name)
            if prev is None:
                raise NotFound(f"zone {key} does not exist")
            if prev.kind is not ZoneKind.SECONDARY:
                raise Conflict(f"zone {key} is a primary zone already")
            if prev.state is ZoneState.UNLOADED:
                raise Conflict(f"zone {key} has never been transferred: there is nothing to "
                               "keep; delete it and create a primary zone instead")
            content = ZoneContent(name, _rrsets_of_nodes(prev.nodes))
            nodes, cuts = compile_nodes(name, content.served_rrsets())

            def work() -> tuple[ZoneSnapshot, dict[str, Any]]:
                with self.db.write() as s:
                    z = self._zone(s, name)
                    dropped = [p.name for p in s.scalars(
                        select(Peer).join(ZonePeer, ZonePeer.peer_id == Peer.id).where(
                            ZonePeer.zone_id == z.id, ZonePeer.role == "primary"))]
                    s.execute(delete(ZonePeer).where(ZonePeer.zone_id == z.id,
                                                     ZonePeer.role == "primary"))
                    s.execute(delete(Timer).where(Timer.zone_id == z.id))
                    repo.drop_image(s, z.id)
                    repo.replace_all(s, z.id, _rrset_rows(content), nodes)
                    z.kind = ZoneKind.PRIMARY.value
                    z.state = ZoneState.OK.value
                    z.change_id += 1
                    z.updated_at = datetime.now(UTC)
                    s.flush()
                    snap = _snapshot(z, prev.serial, nodes, cuts)
                    return snap, zone_info(z, content.get(name, _SOA), self._records(z, snap)) | {
                        "primaries_dropped": dropped}

            snap, info = await asyncio.to_thread(work)
            self.registry.publish(snap)
        dropped = info.pop("primaries_dropped")
        log.info("zone.promoted", zone=key, serial=snap.serial, primaries_dropped=dropped)
        if self.on_secondaries_changed is not None:
            await self.on_secondaries_changed()
        return info

    async def demote(self, name: dns.name.Name, primaries: list[str]) -> dict[str, Any]:
        """A primary zone becomes a secondary zone of ``primaries`` (peer names, in order):
        it keeps serving the version it has until the first transfer replaces it (an older
        serial there is refused, as for any refresh); its RRsets are no longer editable."""
        key = name.to_text()
        if not primaries:
            raise Invalid("a secondary zone needs primaries",
                          [Reason(("primaries",), "name at least one peer to transfer from")])
        async with self._lock(key):
            prev = self.registry.get(name)
            if prev is None:
                raise NotFound(f"zone {key} does not exist")
            if prev.kind is not ZoneKind.PRIMARY:
                raise Conflict(f"zone {key} is a secondary zone already")

            def work() -> tuple[ZoneSnapshot, dict[str, Any]]:
                with self.db.write() as s:
                    z = self._zone(s, name)
                    linked = {pid for (pid,) in s.execute(select(ZonePeer.peer_id).where(
                        ZonePeer.zone_id == z.id))}
                    peers = []
                    for i, pname in enumerate(primaries):
                        row = s.scalar(select(Peer).where(Peer.name == pname))
                        if row is None:
                            raise NotFound(f"peer {pname} does not exist (primaries[{i}]); "
                                           "create it first")
                        if row.id in linked:
                            raise Conflict(f"peer {pname} is linked to {key} as a secondary; "
                                           "unlink it first")
                        peers.append(row)
                    soa = self._soa(s, z)
                    repo.drop_content(s, z.id)
                    repo.save_image(s, z.id, prev.nodes)
                    for pos, peer in enumerate(peers):
                        s.add(ZonePeer(zone_id=z.id, peer_id=peer.id, role="primary", position=pos))
                    z.kind = ZoneKind.SECONDARY.value
                    z.change_id += 1
                    z.updated_at = datetime.now(UTC)
                    s.flush()
                    snap = _snapshot(z, prev.serial, prev.nodes, prev.cuts)
                    return snap, zone_info(z, soa, self._records(z, snap))

            snap, info = await asyncio.to_thread(work)
            self.registry.publish(snap)
        log.info("zone.demoted", zone=key, serial=snap.serial, primaries=primaries)
        if self.on_secondaries_changed is not None:
            await self.on_secondaries_changed()
        return info

    def current(self, name: dns.name.Name) -> ZoneSnapshot | None:
        """The version we serve (what an IXFR in applies to); None before the first load."""
        snap = self.registry.get(name)
        if snap is None or snap.state is ZoneState.UNLOADED:
            return None
        return snap

    async def install_transfer(self, name: dns.name.Name, got: xfrin.Result, kind: str) -> None:
        """Install a complete transferred version (AXFR or IXFR result), the primary's serial
        kept as it is: served at once, then stored with its journal entry, then announced to
        our own secondaries. A secondary's content is the primary's: like BIND and Knot, we
        serve a received version before writing it (for a million records the write is ~1.5
        s). If the write fails, the stored version is served again and the error raised;
        NOTIFY goes out only for a stored version, whose journal entry IXFR then finds."""
        async with self._lock(name.to_text()):
            prev = self.registry.get(name)
            if prev is None:
                raise NotFound(f"zone {name.to_text()} does not exist")
            base = prev if prev.state is not ZoneState.UNLOADED else None
            snap = ZoneSnapshot(prev.name, got.serial, got.nodes, got.cuts, kind=prev.kind,
                                state=ZoneState.OK, zone_id=prev.zone_id, outgoing=prev.outgoing,
                                notify_ns=prev.notify_ns, notify_delay=prev.notify_delay,
                                ixfr_max_ratio=prev.ixfr_max_ratio)
            self.registry.publish(snap)
            store = asyncio.ensure_future(asyncio.to_thread(self._install, name, got, base, kind))
            try:
                await asyncio.shield(store)
            except asyncio.CancelledError:
                # Shutting down: the write goes on in its thread; wait for it, so that what
                # was served is what a restart serves.
                await asyncio.wait({store})
                raise
            except BaseException:
                if self.registry.get(name) is snap:
                    prev.retired = False
                    self.registry.publish(prev)
                raise
            # Decisions taken before the journal entry existed ("not in the journal") go.
            snap.ixfr_cache.clear()
            if self.on_published is not None:
                self.on_published(snap)

    def _install(self, origin: dns.name.Name, got: xfrin.Result, base: ZoneSnapshot | None,
                 kind: str) -> None:
        """A secondary zone's content is its node table, what the primary sent in the served
        form, stored whole as an image (no RRset rows: nothing edits it), with the difference
        from the previous version as a journal entry (IXFR out as a middle tier)."""
        if base is None:
            removed = added = b""
        elif got.full:
            removed, added = xfrin.diff_nodes(base.nodes, got.nodes)
        else:
            removed, added = got.removed, got.added
        with self.db.write() as s:
            z = self._zone(s, origin)
            repo.save_image(s, z.id, got.nodes)
            if base is not None:
                repo.add_journal(s, z.id, z.serial, got.serial, removed, added, **_journal_limits(z))
            z.serial = got.serial
            z.state = ZoneState.OK.value
            z.change_id += 1
            z.updated_at = datetime.now(UTC)
        log.info("zone.changed", zone=origin.to_text(), serial=got.serial, via=kind,
                 records=got.records)

    def set_state(self, name: dns.name.Name, state: ZoneState) -> None:
        """Mark a served zone expired or loaded again (on the loop; stored in the background)."""
        snap = self.registry.get(name)
        if snap is not None and snap.state is not ZoneState.UNLOADED:
            snap.state = state
            snap.cache.clear()

        def work(s: Any) -> None:
            z = repo.zone_by_name(s, name.to_text())
            if z is not None and z.state != ZoneState.UNLOADED.value:
                z.state = state.value

        asyncio.get_running_loop().create_task(self.db.run_write(work))

    def secondary_rows(self) -> list[dict[str, Any]]:
        """Every secondary zone with its stored timers and primaries (for start-up)."""
        with self.db.read() as s:
            out = []
            for z in s.scalars(select(Zone).where(Zone.kind == ZoneKind.SECONDARY.value)):
                t = s.get(Timer, z.id)
                out.append({
                    "name": z.name, "serial": None if z.state == ZoneState.UNLOADED.value else z.serial,
                    "expired": bool(t.expired) if t else False,
                    "next_refresh": t.next_refresh.timestamp() if t and t.next_refresh else None,
                    "next_expire": t.next_expire.timestamp() if t and t.next_expire else None,
                    "soa": self._soa(s, z),
                })
            return out

    async def save_timers(self, name: dns.name.Name, refresh_at: float, expire_at: float | None,
                          expired: bool, primary: str | None) -> None:
        def work(s: Any) -> None:
            z = repo.zone_by_name(s, name.to_text())
            if z is None:
                return
            t = s.get(Timer, z.id)
            if t is None:
                t = Timer(zone_id=z.id)
                s.add(t)
            t.next_refresh = datetime.fromtimestamp(refresh_at, UTC)
            t.next_expire = datetime.fromtimestamp(expire_at, UTC) if expire_at else None
            t.expired = expired
            if primary:
                t.last_primary = primary

        await self.db.run_write(work)

    # -- edits ----------------------------------------------------------------------------
    async def patch_rrsets(
        self, name: dns.name.Name, changes: list[RRsetChange], *, if_match: str | None = None
    ) -> int:
        key = name.to_text()
        async with self._lock(key):
            snap, serial = await asyncio.to_thread(self._patch, name, changes, if_match)
            self._publish(snap)
            return serial

    def _patch(
        self, origin: dns.name.Name, changes: list[RRsetChange], if_match: str | None
    ) -> tuple[ZoneSnapshot | None, int]:
        reasons = []
        for i, ch in enumerate(changes):
            if ch.rdtype == _SOA:
                reasons.append(Reason(("rrsets", i), "edit the SOA through PATCH /zones/{zone}, not as an RRset"))
            if not ch.name.is_subdomain(origin):
                reasons.append(Reason(("rrsets", i, "name"), f"{ch.name.to_text()} is outside zone {origin.to_text()}"))
        if reasons:
            raise Invalid("the change set is invalid", reasons)
        with self.db.write() as s:
            z = self._zone(s, origin)
            self._check_primary(z)
            _check_if_match(z, if_match)
            names = {ch.name for ch in changes} | {origin}
            for ch in changes:
                if ch.rdtype == _NS:
                    names |= {r.rdata.target for r in ch.records if r.rdata.target.is_subdomain(origin)}  # type: ignore[attr-defined]
            content = _load(s, z, names)
            before = {(ch.name, ch.rdtype): content.get(ch.name, ch.rdtype) for ch in changes}
            before = {k: (v.ttl, list(v.records)) if v else None for k, v in before.items()}
            _apply_changes(content, changes)
            index = {(ch.name, ch.rdtype): i for i, ch in enumerate(changes)}
            _raise_findings(
                check(content, {ch.name for ch in changes}),
                lambda f: ("rrsets", index[(f.name, f.rdtype)]) if (f.name, f.rdtype) in index else ("rrsets",),
            )
            touched = {}
            for k, old in before.items():
                new = content.get(*k)
                new_state = (new.ttl, list(new.records)) if new else None
                if _state_key(old) != _state_key(new_state):
                    touched[k] = (old, new)
            if not touched:
                return None, z.serial
            return self._commit(s, z, content, touched)

    async def apply_update(self, origin: dns.name.Name, prereqs: list[UpdateRR],
                           updates: list[UpdateRR]) -> tuple[int, int | None, list[str]]:
        """An RFC 2136 UPDATE of primary zone ``origin`` (the access decision is the
        caller's): prerequisites and changes under the zone's lock, what changed committed
        as one change set (one serial bump, journal, NOTIFY), as an API edit. Returns the
        RCODE, the serial after (None if nothing was committed) and why updates were
        ignored. NotFound: no such zone; Conflict: a secondary zone."""
        rcode = prescan(origin, updates)
        if rcode != dns.rcode.NOERROR:
            return rcode, None, []
        async with self._lock(origin.to_text()):
            snap, serial, rcode, notes = await asyncio.to_thread(self._dns_update, origin,
                                                                 prereqs, updates)
            self._publish(snap)
        return rcode, serial if snap is not None else None, notes

    def _dns_update(self, origin: dns.name.Name, prereqs: list[UpdateRR], updates: list[UpdateRR],
                ) -> tuple[ZoneSnapshot | None, int, int, list[str]]:
        with self.db.write() as s:
            z = self._zone(s, origin)
            self._check_primary(z)
            names = {rr.name for rr in prereqs} | {rr.name for rr in updates} | {origin}
            content = _load(s, z, names)
            rcode = check_prerequisites(content, prereqs)
            if rcode != dns.rcode.NOERROR:
                return None, z.serial, rcode, []

            def state() -> dict[tuple[dns.name.Name, int], tuple[int, list[Record]]]:
                return {(r.name, r.rdtype): (r.ttl, list(r.records))
                        for n in names for r in content.at(n)}

            before = state()
            notes = apply_updates(content, updates)
            after = state()
            touched: dict[tuple[dns.name.Name, int], tuple[Any, RRsetData | None]] = {}
            for k in before.keys() | after.keys():
                if _state_key(before.get(k)) != _state_key(after.get(k)):
                    touched[k] = (before.get(k), content.get(*k))
            if not touched:
                return None, z.serial, dns.rcode.NOERROR, notes
            # The glue the checks look for: in-zone targets of the NS RRsets loaded.
            targets = {r.rdata.target for rrset in list(content) if rrset.rdtype == _NS  # type: ignore[attr-defined]
                       for r in rrset.records if r.rdata.target.is_subdomain(origin)}  # type: ignore[attr-defined]
            for row in repo.rrsets_at(s, z.id, [t.to_text() for t in targets - names]):
                content.put(RRsetData.from_row(row.name, row.type, row.ttl, row.records))
            findings = [f for f in check(content, {k[0] for k in touched}) if f.error]
            if findings:
                # The change would break the zone (a CNAME loop, NS without glue, ...): none
                # of it is applied.
                return None, z.serial, dns.rcode.REFUSED, notes + [f.msg for f in findings]
            snap, serial = self._commit(s, z, content, touched)
            return snap, serial, dns.rcode.NOERROR, notes

    def _commit(
        self,
        s: Any,
        z: Zone,
        content: ZoneContent,
        touched: dict[tuple[dns.name.Name, int], tuple[Any, RRsetData | None]],
        *,
        new_serial: int | None = None,
        soa_update: Callable[[dns.rdata.Rdata], dns.rdata.Rdata] | None = None,
    ) -> tuple[ZoneSnapshot, int]:
        """Bump the serial and write rows, nodes and the journal; return the new snapshot."""
        origin = content.origin
        old_serial = z.serial
        serial = new_serial if new_serial is not None else next_serial(old_serial, SerialPolicy(z.serial_policy))
        soa = content.get(origin, _SOA)
        assert soa is not None
        old_soa = RRsetData(origin, _SOA, soa.ttl, list(soa.records))
        rd = soa.records[0].rdata
        if soa_update is not None:
            rd = soa_update(rd)
        new_soa_rd = rd.replace(serial=serial)
        soa.records = [Record(new_soa_rd)]
        touched = dict(touched)
        touched[(origin, _SOA)] = ((old_soa.ttl, old_soa.records), soa)
        removed: list[bytes] = []
        added: list[bytes] = []
        for (owner, rdtype), (old, new) in touched.items():
            if old is not None:
                removed.extend(_rr_wire(owner, rdtype, old[0], old[1]))
            if new is not None:
                added.extend(_rr_wire(owner, rdtype, new.ttl, new.records))
            row = s.scalar(select(RRset).where(RRset.zone_id == z.id, RRset.name == owner.to_text(), RRset.type == rdtype))
            if new is None or not new.records:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(RRset(zone_id=z.id, name=owner.to_text(), type=rdtype, ttl=new.ttl, records=new.records_json()))
            else:
                row.ttl = new.ttl
                row.records = new.records_json()
        s.flush()
        current = self.registry.get(origin)
        current_nodes: dict[bytes, Node] = current.nodes if current is not None else {}
        node_changes = _sync_nodes(s, z.id, content, {k[0] for k in touched}, current_nodes)
        repo.add_journal(s, z.id, old_serial, serial, b"".join(removed), b"".join(added), **_journal_limits(z))
        z.serial = serial
        z.change_id += 1
        z.updated_at = datetime.now(UTC)
        s.flush()
        nodes = dict(current_nodes)
        cuts = set(current.cuts) if current is not None else set()
        origin_key = name_key(origin)
        for k, v in node_changes.items():
            if v is None:
                nodes.pop(k, None)
                cuts.discard(k)
            else:
                nodes[k] = v
                if k != origin_key and find_blob(v, _T_NS) is not None:
                    cuts.add(k)
                else:
                    cuts.discard(k)
        snap = _snapshot(z, serial, nodes, frozenset(cuts))
        if current is not None and current.axfr is not None:
            # Re-render only the changed owners' part of the AXFR image.
            snap.axfr = axfr.patch(current.axfr, nodes, origin_key, node_changes.keys())
        # Logged once the transaction commits: a change the database refused never happened.
        event.listen(s, "after_commit", lambda _s: log.info(
            "zone.changed", zone=origin.to_text(), serial_from=old_serial, serial=serial,
            rrsets=len(touched) - 1), once=True)
        return snap, serial

    def _check_primary(self, z: Zone) -> None:
        if z.kind != ZoneKind.PRIMARY.value:
            raise Conflict(f"zone {z.name} is a {z.kind} zone; its content comes from its primaries")

    async def update(self, name: dns.name.Name, upd: ZoneUpdate, *, if_match: str | None = None) -> dict[str, Any]:
        key = name.to_text()
        async with self._lock(key):
            snap, info, reopened = await asyncio.to_thread(self._update, name, upd, if_match)
            self._publish(snap)
            current = self.registry.get(name)
            if reopened and snap is None and current is not None and self.on_published:
                # Outgoing transfers switched back on: what was edited while they were off
                # is announced now, not at the secondaries' next refresh.
                self.on_published(current)
            return info

    def _update(self, origin: dns.name.Name, upd: ZoneUpdate,
                if_match: str | None) -> tuple[ZoneSnapshot | None, dict[str, Any], bool]:
        """The settings and SOA changed (a new version if the SOA did), the zone's info, and
        whether outgoing transfers were switched back on."""
        with self.db.write() as s:
            z = self._zone(s, origin)
            _check_if_match(z, if_match)
            was_outgoing = z.outgoing_enabled
            for attr in ("serial_policy", "outgoing_enabled", "notify_ns", "notify_delay", "ixfr_max_ratio",
                         "journal_max_count", "journal_max_bytes", "journal_max_age"):
                if attr in upd.fields_set:
                    value = getattr(upd, attr)
                    if value is None:
                        # null puts a setting back to its default; for the journal limits
                        # that is null itself (their columns are nullable, the others not).
                        value = _SETTING_DEFAULTS.get(attr)
                    setattr(z, attr, value.value if isinstance(value, SerialPolicy) else value)
            soa_f = upd.soa
            soa_changes = {k: v for k, v in vars(soa_f).items() if v is not None}
            snap = None
            if soa_changes or upd.serial is not None:
                self._check_primary(z)
                reasons: list[Reason] = []
                if upd.serial is not None:
                    why = check_explicit(upd.serial, z.serial)
                    if why:
                        reasons.append(Reason(("serial",), why))
                ttl = soa_changes.pop("ttl", None)
                values: dict[str, Any] = {}
                for fname in ("mname", "rname"):
                    if fname in soa_changes:
                        try:
                            values[fname] = dns.name.from_text(_abs(soa_changes[fname]))
                        except Exception as exc:  # noqa: BLE001
                            reasons.append(Reason(("soa", fname), f"not a valid name: {exc}"))
                for fname in ("refresh", "retry", "expire", "minimum"):
                    if fname in soa_changes:
                        v = soa_changes[fname]
                        if not 0 <= v < 2**31:
                            reasons.append(Reason(("soa", fname), f"{v} is outside 0..{2**31 - 1}"))
                        values[fname] = v
                if ttl is not None and not 0 <= ttl < 2**31:
                    reasons.append(Reason(("soa", "ttl"), f"{ttl} is outside 0..{2**31 - 1}"))
                if reasons:
                    raise Invalid("the zone settings are invalid", reasons)
                content = _load(s, z, {origin})
                if ttl is not None:
                    content.get(origin, _SOA).ttl = ttl  # type: ignore[union-attr]
                new_serial = upd.serial if upd.serial is not None and upd.serial != z.serial else None
                snap, _ = self._commit(s, z, content, {}, new_serial=new_serial,
                                       soa_update=lambda rd: rd.replace(**values))
            s.flush()
            info = zone_info(z, self._soa(s, z), self._records(z, snap))
            outgoing, delay, ratio = z.outgoing_enabled, z.notify_delay, z.ixfr_max_ratio
            notify_ns = z.notify_ns
        current = snap or self.registry.get(origin)
        if current is not None:
            if current.ixfr_max_ratio != ratio:
                # Answers rendered (or refused as too big) under the old ratio no longer hold.
                current.ixfr_cache.clear()
            current.outgoing, current.notify_delay, current.ixfr_max_ratio = outgoing, delay, ratio
            current.notify_ns = notify_ns
        return snap, info, outgoing and not was_outgoing

    async def import_text(
        self, name: dns.name.Name, text: str, *, dry_run: bool, force: bool, if_match: str | None = None
    ) -> ImportResult:
        key = name.to_text()
        async with self._lock(key):
            snap, result = await asyncio.to_thread(self._import, name, text, dry_run, force, if_match)
            self._publish(snap)
            return result

    def _import(self, origin: dns.name.Name, text: str, dry_run: bool, force: bool,
                if_match: str | None) -> tuple[ZoneSnapshot | None, ImportResult]:
        parsed = self._parse(text, origin)
        new = parsed.content
        warnings = [str(w) for w in parsed.warnings]
        if parsed.warnings.dropped:
            warnings.append(f"{parsed.warnings.dropped} more warning(s) not listed")
        if self.stopping.is_set():
            raise ShuttingDown("the server is stopping; nothing was changed")
        with self.db.write() as s:
            z = self._zone(s, origin)
            self._check_primary(z)
            _check_if_match(z, if_match)
            old = ZoneContent(origin, (RRsetData.from_row(r.name, r.type, r.ttl, r.records) for r in repo.iter_rrsets(s, z.id)))
            diff_added, diff_removed, changes, touched = _diff(old, new)
            old_total = max(old.record_count(), 1)
            apex_ns_changed = (origin, _NS) in touched
            # The SOA's serial is ours to set: compare everything else.
            result = ImportResult(z.serial, False, diff_added, diff_removed, changes[:1000], warnings)
            if dry_run:
                return None, result
            if not touched:
                return None, result
            share = (diff_added + diff_removed) / old_total
            if not force and (share > IMPORT_SAFE_SHARE or apex_ns_changed):
                why = []
                if share > IMPORT_SAFE_SHARE:
                    why.append(f"it changes {share:.0%} of the zone's records (over {IMPORT_SAFE_SHARE:.0%})")
                if apex_ns_changed:
                    why.append("it changes the apex NS records")
                raise Conflict(
                    "unsafe import: " + " and ".join(why) + "; check it with ?dry_run=true, then repeat with ?force=true"
                )
            new_soa = new.get(origin, _SOA)
            assert new_soa is not None
            old_serial = z.serial
            serial = next_serial(old_serial, SerialPolicy(z.serial_policy))
            new_soa.records = [Record(new_soa.records[0].rdata.replace(serial=serial))]  # type: ignore[attr-defined]
            removed = b"".join(b"".join(_rr_wire(o, t, v[0], v[1])) for (o, t), (v, _n) in touched.items() if v)
            old_soa = old.get(origin, _SOA)
            if old_soa is not None and (origin, _SOA) not in touched:
                removed += b"".join(_rr_wire(origin, _SOA, old_soa.ttl, old_soa.records))
            nodes, cuts = compile_nodes(origin, new.served_rrsets())
            repo.replace_all(s, z.id, _rrset_rows(new), nodes)
            added = b"".join(b"".join(_rr_wire(o, t, n.ttl, n.records)) for (o, t), (_v, n) in touched.items() if n and (o, t) != (origin, _SOA))
            added += b"".join(_rr_wire(origin, _SOA, new_soa.ttl, new_soa.records))
            repo.add_journal(s, z.id, old_serial, serial, removed, added, **_journal_limits(z))
            z.serial = serial
            z.change_id += 1
            z.updated_at = datetime.now(UTC)
        result.serial = serial
        result.applied = True
        log.info("zone.changed", zone=origin.to_text(), serial_from=old_serial, serial=serial,
                 added=diff_added, removed=diff_removed, via="import")
        return _snapshot(z, serial, nodes, cuts), result


# -- helpers -----------------------------------------------------------------------------


JOURNAL_MAX_COUNT = 1000
JOURNAL_MAX_AGE_SECONDS = 30 * 86400
# What PATCH /zones/{zone} with null sets (the model's defaults for its NOT NULL columns).
_SETTING_DEFAULTS: dict[str, Any] = {
    "serial_policy": SerialPolicy.INCREMENT, "outgoing_enabled": True, "notify_ns": False,
    "notify_delay": 0.0, "ixfr_max_ratio": 1.0,
}


def _journal_limits(z: Zone) -> dict[str, int | None]:
    """The zone's journal limits, with the defaults (1000 changes, 30 days, no byte cap)."""
    return {
        "max_count": z.journal_max_count or JOURNAL_MAX_COUNT,
        "max_bytes": z.journal_max_bytes,
        "max_age_seconds": z.journal_max_age or JOURNAL_MAX_AGE_SECONDS,
    }


def _snapshot(z: Zone, serial: int, nodes: dict[bytes, Node], cuts: frozenset[bytes]) -> ZoneSnapshot:
    """A snapshot of zone row ``z`` with the per-zone settings the DNS side reads."""
    return ZoneSnapshot(
        dns.name.from_text(z.name), serial, nodes, cuts, kind=ZoneKind(z.kind),
        state=ZoneState(z.state), zone_id=z.id, outgoing=z.outgoing_enabled,
        notify_ns=z.notify_ns, notify_delay=z.notify_delay or 0.0,
        ixfr_max_ratio=z.ixfr_max_ratio or 1.0,
    )


def _abs(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _state_key(state: tuple[int, list[Record]] | None) -> Any:
    if state is None or not state[1]:
        return None
    return (state[0], sorted((r.sort_key, r.disabled) for r in state[1]))


def _check_if_match(z: Zone, if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    tags = [t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")]
    if str(z.serial) not in tags:
        raise Stale(f"zone {z.name} is at serial {z.serial}, not {if_match}; re-read it and retry")


def _load(s: Any, z: Zone, names: Iterable[dns.name.Name]) -> ZoneContent:
    rows = repo.rrsets_at(s, z.id, [n.to_text() for n in names])
    return ZoneContent(dns.name.from_text(z.name), (RRsetData.from_row(r.name, r.type, r.ttl, r.records) for r in rows))


def _apply_changes(content: ZoneContent, changes: list[RRsetChange]) -> None:
    for ch in changes:
        if ch.changetype == "DELETE" or not ch.records:
            content.delete(ch.name, ch.rdtype)
        else:
            existing = content.get(ch.name, ch.rdtype)
            ttl = ch.ttl if ch.ttl is not None else (existing.ttl if existing else 3600)
            content.put(RRsetData(ch.name, ch.rdtype, ttl, list(ch.records)))


def _rrset_rows(content: ZoneContent) -> list[dict[str, object]]:
    return [
        {"name": r.name.to_text(), "type": r.rdtype, "ttl": r.ttl, "records": r.records_json()}
        for r in content
        if r.records
    ]


def _rr_wire(owner: dns.name.Name, rdtype: int, ttl: int, records: Iterable[Record]) -> list[bytes]:
    head = owner.to_wire() + rdtype.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big")  # type: ignore[operator]
    out = []
    for r in records:
        if r.disabled:
            continue
        rd = r.rdata.to_wire()
        out.append(head + len(rd).to_bytes(2, "big") + rd)
    return out


def _sync_nodes(
    s: Any, zone_id: int, content: ZoneContent, owners: set[dns.name.Name], current: dict[bytes, Node]
) -> dict[bytes, Node | None]:
    """Write the served nodes of ``owners`` and keep empty non-terminals right."""
    origin_key = name_key(content.origin)
    changes: dict[bytes, Node | None] = {}

    def value(k: bytes) -> Node | None:
        return changes[k] if k in changes else current.get(k)

    emptied = []
    for owner in owners:
        k = name_key(owner)
        node = content.node_for(owner)
        if node:
            changes[k] = node
            repo.put_node(s, zone_id, k, node)
            for anc in ancestors(k, origin_key):
                if value(anc) is not None:
                    break
                changes[anc] = b""
                repo.put_node(s, zone_id, anc, b"")
        else:
            emptied.append(k)
    for k in emptied:
        if k == origin_key:
            continue
        repo.delete_node(s, zone_id, k)
        s.flush()
        if repo.has_descendants(s, zone_id, k):
            changes[k] = b""
            repo.put_node(s, zone_id, k, b"")
            continue
        changes[k] = None
        for anc in ancestors(k, origin_key):
            if value(anc) != b"":
                break
            s.flush()
            if repo.has_descendants(s, zone_id, anc):
                break
            repo.delete_node(s, zone_id, anc)
            changes[anc] = None
    return changes


def _diff(old: ZoneContent, new: ZoneContent) -> tuple[int, int, list[dict[str, Any]], dict[Any, Any]]:
    """Records added and removed (SOA serial ignored), a change list, and touched RRsets."""
    origin = old.origin
    added = removed = 0
    changes: list[dict[str, Any]] = []
    touched: dict[Any, Any] = {}
    keys = {(r.name, r.rdtype) for r in old} | {(r.name, r.rdtype) for r in new}
    for key in sorted(keys):
        o = old.get(*key)
        n = new.get(*key)
        if key == (origin, _SOA) and o is not None and n is not None:
            same = o.ttl == n.ttl and o.records[0].rdata.replace(serial=0) == n.records[0].rdata.replace(serial=0)  # type: ignore[attr-defined]
            if same:
                continue
        ostate = {(r.rdata, r.disabled) for r in o.records} if o else set()
        nstate = {(r.rdata, r.disabled) for r in n.records} if n else set()
        if o is not None and n is not None and o.ttl != n.ttl:
            gone, new_recs = ostate, nstate
        else:
            gone, new_recs = ostate - nstate, nstate - ostate
        if not gone and not new_recs:
            continue
        touched[key] = ((o.ttl, list(o.records)) if o else None, n)
        tname = dns.rdatatype.to_text(key[1])  # type: ignore[arg-type]
        for rd, _d in sorted(gone, key=lambda x: x[0].to_digestable()):
            removed += 1
            changes.append({"op": "remove", "name": key[0].to_text(), "type": tname, "ttl": o.ttl if o else None, "content": rd.to_text()})
        for rd, _d in sorted(new_recs, key=lambda x: x[0].to_digestable()):
            added += 1
            changes.append({"op": "add", "name": key[0].to_text(), "type": tname, "ttl": n.ttl if n else None, "content": rd.to_text()})
    return added, removed, changes, touched


def _raise_parse_problems(parsed: ParseResult) -> None:
    # Content cut short by a limit is not checked: its findings would be about the cut.
    findings = check(parsed.content) if parsed.stopped_by is None else []
    reasons = [Reason(("line", p.line or 0), p.msg) for p in parsed.errors]
    for f in findings:
        if f.error:
            line = parsed.lines.get((f.name, f.rdtype)) if f.rdtype is not None else None
            reasons.append(Reason(("line", line or 0), f.msg))
    if reasons:
        reasons.sort(key=lambda r: r.loc[1] if isinstance(r.loc[1], int) else 0)
        # The parser kept the first problems and counted the rest.
        dropped = parsed.errors.dropped
        raise Invalid(f"the zone text has {len(reasons) + dropped} problem(s)", reasons,
                      more=dropped)
    parsed.warnings.extend(
        Problem(parsed.lines.get((f.name, f.rdtype)) if f.rdtype is not None else None, f.msg)
        for f in findings
        if not f.error
    )


def _raise_findings(findings: list[Finding], loc: Callable[[Finding], tuple[Any, ...]]) -> None:
    errors = [Reason(loc(f), f.msg) for f in findings if f.error]
    if errors:
        raise Invalid(f"{len(errors)} problem(s) in the change", errors)


# -- secondary zones: content read from the served form ----------------------------------------
def _rrset_of(owner: dns.name.Name, blob: bytes) -> RRsetData:
    return RRsetData(owner, blob_type(blob), blob_ttl(blob),
                     [Record(rd) for rd in blob_to_rdatas(blob)])


def content_of_nodes(origin: dns.name.Name, nodes: dict[bytes, Node]) -> ZoneContent:
    """A zone's content from served nodes (a transfer's result), to create a zone from."""
    return ZoneContent(origin, _rrsets_of_nodes(nodes))


def _rrsets_of_nodes(nodes: dict[bytes, Node]) -> Iterable[RRsetData]:
    for key, node in nodes.items():
        if node:
            owner = key_to_name(key)
            for blob in node_blobs(node):
                yield _rrset_of(owner, blob)


def _node_page(snap: ZoneSnapshot | None, *, owner: dns.name.Name | None, rdtype: int | None,
               limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a secondary zone's RRsets (from the version served) in DNSSEC name order,
    then type. The cursor is the last item's sort key and type, in hex."""
    after = paging.node_after(cursor)
    if snap is None or snap.state is ZoneState.UNLOADED:
        return [], None
    if owner is not None:
        key = name_key(owner)
        keys = [(sort_key(key), key)] if key in snap.nodes else []
        start = 0
    else:
        keys = snap.sorted_keys()
        start = bisect.bisect_left(keys, (after[0], b"")) if after else 0
    items: list[dict[str, Any]] = []
    last: tuple[bytes, int] | None = None
    for sk, key in itertools.islice(keys, start, None):
        for blob in node_blobs(snap.nodes[key]):
            t = blob_type(blob)
            if (rdtype is not None and t != rdtype) or (after is not None and (sk, t) <= after):
                continue
            if len(items) == limit:
                assert last is not None
                return items, f"{last[0].hex()}.{last[1]:x}"
            items.append(_rrset_of(key_to_name(key), blob).as_dict())
            last = (sk, t)
    return items, None
