"""Catalog zones (RFC 9432, schema version 2), the producer side: a zone of kind
``catalog`` whose records (``zones/catalog.py``) list member zones, kept only by linking
and unlinking members.

A catalog is a primary zone in every other way (stored RRsets, journal, IXFR, NOTIFY, TSIG,
access rules). The member's unique id is derived from its name (``member_id``): stable for
as long as the zone exists, and found again from the name alone, so there is no table beside
the catalog's own records (the catalog's RRsets are the membership). Linking, unlinking and
a member's deletion are each one change of the catalog: one transaction (the member zone's
deletion in the same one), one serial, one journal entry, NOTIFY.

Automatic membership: a catalog may name a peer (``member_peer``); every primary zone linked
to that peer as a secondary is then a member. Linking such a zone adds it, in the link's
transaction (``zone_linked``, called by the peer service); unlinking it, or relinking it as
a primary, removes it if it was added that way; naming the peer adds every zone linked to it
and clearing it removes the members it added, each one change of the catalog. How a member
was added is the one thing kept beside the records: a ``catalog_auto`` row per automatic
member; a member linked by hand has none and stays whatever happens to the links.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import dns.name
import structlog
from sqlalchemy import delete, select

from zonekeeper.errors import Conflict, Invalid, NotFound, Reason
from zonekeeper.services.zone_edits import ZoneEdits
from zonekeeper.services.zone_inputs import RRsetChange
from zonekeeper.services.zone_store import _check_if_match, content_of_nodes
from zonekeeper.storage import repo
from zonekeeper.storage.models import CatalogAuto, Peer, Zone, ZonePeer
from zonekeeper.zones.catalog import (
    PTR,
    TTL,
    TXT,
    CatalogView,
    group_problem,
    member_id,
    member_owner,
    property_owner,
    ptr,
    read_catalog,
    txt,
)
from zonekeeper.zones.model import Record, RRsetData, ZoneContent
from zonekeeper.zones.snapshot import ZoneKind, ZoneSnapshot, ZoneState

log = structlog.get_logger("zonekeeper.zones")


class CatalogZones(ZoneEdits):
    """Members of catalog zones: list, link (with properties), unlink."""

    def _catalog(self, s: Any, name: dns.name.Name) -> Zone:
        z = self._zone(s, name)
        if z.kind != ZoneKind.CATALOG.value:
            raise Conflict(f"zone {z.name} is a {z.kind} zone, not a catalog: create one with "
                           'kind "catalog"')
        return z

    async def members(self, catalog: dns.name.Name) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            with self.db.read() as s:
                z = self._zone(s, catalog)
                if z.catalog_consumer:
                    snap = self.registry.get(catalog)
                    if snap is None or snap.state is ZoneState.UNLOADED:
                        return []
                    here = {m.name for m in s.scalars(select(Zone).where(
                        Zone.member_of == z.name))}
                    consumed = read_catalog(catalog, content_of_nodes(catalog, snap.nodes))
                    return [m.as_dict() | {"provisioned": m.zone.to_text() in here}
                            for m in sorted(consumed.members.values(), key=lambda m: m.zone)]
                z = self._catalog(s, catalog)
                view = read_catalog(catalog, (RRsetData.from_row(r.name, r.type, r.ttl, r.records)
                                              for r in repo.iter_rrsets(s, z.id)))
                auto = set(s.scalars(select(Zone.name).join(
                    CatalogAuto, CatalogAuto.zone_id == Zone.id).where(
                    CatalogAuto.catalog_id == z.id)))
                return [m.as_dict() | {"automatic": m.zone.to_text() in auto}
                        for m in sorted(view.members.values(), key=lambda m: m.zone)]

        return await asyncio.to_thread(work)

    async def link_member(self, catalog: dns.name.Name, member: dns.name.Name, *,
                          group: str | None = None, coo: str | None = None) -> dict[str, Any]:
        """Add ``member`` to ``catalog`` (or set its properties: ``group``, ``coo``, each
        None for none). Returns the member as listed and the catalog's serial."""
        why = group_problem(group)
        reasons = [Reason(("group",), why)] if why else []
        coo_name = None
        if coo is not None:
            try:
                coo_name = dns.name.from_text(coo.strip().rstrip(".") + ".").canonicalize()
            except Exception as exc:  # noqa: BLE001
                reasons.append(Reason(("coo",), f"{coo!r} is not a valid name: {exc}"))
            else:
                if coo_name == catalog:
                    reasons.append(Reason(("coo",), "coo names the catalog the member would "
                                                    "move to, not this one"))
        if reasons:
            raise Invalid("the member's properties are invalid", reasons)
        async with self._lock(catalog.to_text()):
            snap, serial, item = await asyncio.to_thread(
                self._link, catalog, member, group, coo_name)
            await self._members_changed(snap)
        if snap is not None:
            log.info("catalog.member_linked", catalog=catalog.to_text(), zone=member.to_text(),
                     id=item["id"], group=group, coo=coo_name.to_text() if coo_name else None,
                     serial=serial)
        return {**item, "catalog": catalog.to_text(), "serial": serial}

    def _link(self, catalog: dns.name.Name, member: dns.name.Name, group: str | None,
              coo: dns.name.Name | None) -> tuple[ZoneSnapshot | None, int, dict[str, Any]]:
        with self.db.write() as s:
            z = self._catalog(s, catalog)
            m = repo.zone_by_name(s, member.to_text())
            if m is None:
                raise NotFound(f"zone {member.to_text()} does not exist: create it first, "
                               "then link it")
            if m.kind == ZoneKind.CATALOG.value:
                raise Invalid("a catalog cannot be a member",
                              [Reason(("zone",), f"{member.to_text()} is a catalog zone")])
            owner = member_owner(catalog, member)
            group_owner = property_owner("group", owner)
            coo_owner = property_owner("coo", owner)
            changes = [RRsetChange(owner, PTR, "REPLACE", TTL, [Record(ptr(member))])]
            changes.append(RRsetChange(group_owner, TXT, "REPLACE", TTL, [Record(txt(group))])
                           if group is not None else RRsetChange(group_owner, TXT, "DELETE"))
            changes.append(RRsetChange(coo_owner, PTR, "REPLACE", TTL, [Record(ptr(coo))])
                           if coo is not None else RRsetChange(coo_owner, PTR, "DELETE"))
            snap, serial = self._change_in(s, z, changes)
        item = {"zone": member.to_text(), "id": member_id(member), "group": group,
                "coo": coo.to_text() if coo is not None else None}
        return snap, serial, item

    async def unlink_member(self, catalog: dns.name.Name, member: dns.name.Name) -> int:
        """Remove ``member`` (and its properties) from ``catalog``; 404 if it is not listed.
        Returns the catalog's serial."""
        async with self._lock(catalog.to_text()):
            def work() -> tuple[ZoneSnapshot | None, int]:
                with self.db.write() as s:
                    z = self._catalog(s, catalog)
                    snap_serial = self._unlink_in(s, z, member)
                    if snap_serial is None:
                        raise NotFound(f"zone {member.to_text()} is not a member of catalog "
                                       f"{catalog.to_text()}")
                    return snap_serial

            snap, serial = await asyncio.to_thread(work)
            await self._members_changed(snap)
        log.info("catalog.member_unlinked", catalog=catalog.to_text(), zone=member.to_text(),
                 serial=serial)
        return serial

    async def _members_changed(self, snap: ZoneSnapshot | None) -> None:
        """After a commit that changed a catalog: its secondaries' rights over the members
        first (a consumer told of a new member must be let transfer it), then the version."""
        if snap is None:
            return
        if self.on_members_changed is not None:
            await asyncio.to_thread(self.on_members_changed)
        self._publish(snap)

    def _unlink_in(self, s: Any, z: Zone, member: dns.name.Name
                   ) -> tuple[ZoneSnapshot | None, int] | None:
        """Remove ``member`` from catalog row ``z`` in session ``s``; None if not listed."""
        catalog = dns.name.from_text(z.name)
        owner = member_owner(catalog, member)
        if not repo.rrsets_at(s, z.id, [repo.row_name(owner)]):
            return None
        m = repo.zone_by_name(s, member.to_text())
        if m is not None:
            s.execute(delete(CatalogAuto).where(CatalogAuto.catalog_id == z.id,
                                                CatalogAuto.zone_id == m.id))
        return self._change_in(s, z, _removal(catalog, member))

    def _unlink_everywhere(self, s: Any, member: dns.name.Name) -> list[ZoneSnapshot]:
        """Remove ``member`` from every catalog listing it, in session ``s`` (the member's
        deletion): the new catalog versions, to publish after the commit."""
        snaps = []
        for z in s.scalars(select(Zone).where(Zone.kind == ZoneKind.CATALOG.value)):
            done = self._unlink_in(s, z, member)
            if done is not None and done[0] is not None:
                snaps.append(done[0])
        return snaps

    # -- automatic members (the catalog's member peer) ------------------------------------
    def _member_peer(self, s: Any, peer: str) -> Peer:
        row = s.scalar(select(Peer).where(Peer.name == peer))
        if row is None:
            raise Invalid("the member peer does not exist",
                          [Reason(("member_peer",), f"peer {peer} does not exist: create it "
                                                    "first (POST /peers, zonekeeper peer create)")])
        return row  # type: ignore[no-any-return]

    @staticmethod
    def _peer_zones(s: Any, peer: str) -> list[Zone]:
        """The primary zones linked to ``peer`` as a secondary, by name."""
        return list(s.scalars(
            select(Zone).join(ZonePeer, ZonePeer.zone_id == Zone.id)
            .join(Peer, Peer.id == ZonePeer.peer_id)
            .where(Peer.name == peer, ZonePeer.role == "secondary",
                   Zone.kind == ZoneKind.PRIMARY.value).order_by(Zone.name)))

    def _adopt_peer_zones(self, s: Any, z: Zone, content: ZoneContent, peer: str) -> None:
        """A catalog being created with ``member_peer``: the zones linked to the peer are in
        its first version (each marked automatic)."""
        if z.kind != ZoneKind.CATALOG.value:
            super()._adopt_peer_zones(s, z, content, peer)
        self._member_peer(s, peer)
        z.member_peer = peer
        origin = dns.name.from_text(z.name)
        for m in self._peer_zones(s, peer):
            member = dns.name.from_text(m.name)
            content.put(RRsetData(member_owner(origin, member), PTR, TTL, [Record(ptr(member))]))
            s.add(CatalogAuto(catalog_id=z.id, zone_id=m.id))

    async def set_member_peer(self, catalog: dns.name.Name, peer: str | None, *,
                              if_match: str | None = None) -> dict[str, Any]:
        """Name the catalog's member peer (None: none): the zones linked to it now are
        added, the members a former peer added and the new one does not keep are removed,
        in one change of the catalog (none if the members stay). Returns the zone."""
        key = catalog.to_text()
        async with self._lock(key):
            snap, added, removed = await asyncio.to_thread(
                self._set_member_peer, catalog, peer, if_match)
            await self._members_changed(snap)
        log.info("catalog.member_peer_set", catalog=key, peer=peer, added=added,
                 removed=removed, serial=snap.serial if snap is not None else None)
        return await self.get(catalog)  # type: ignore[attr-defined,no-any-return]

    def _set_member_peer(self, catalog: dns.name.Name, peer: str | None,
                         if_match: str | None) -> tuple[ZoneSnapshot | None, int, int]:
        with self.db.write() as s:
            z = self._zone(s, catalog)
            if z.kind != ZoneKind.CATALOG.value:
                raise Invalid("member_peer is for a catalog zone",
                              [Reason(("member_peer",), f"zone {z.name} is a {z.kind} zone, "
                                                        'not of kind "catalog"')])
            _check_if_match(z, if_match)
            if peer is not None:
                self._member_peer(s, peer)
            if z.member_peer == peer:
                return None, 0, 0
            z.member_peer = peer
            auto = {a.zone_id: a for a in s.scalars(
                select(CatalogAuto).where(CatalogAuto.catalog_id == z.id))}
            wanted = {m.id: m for m in self._peer_zones(s, peer)} if peer is not None else {}
            changes: list[RRsetChange] = []
            removed = 0
            for zone_id, row in auto.items():
                if zone_id in wanted:
                    continue
                m = s.get(Zone, zone_id)
                if m is not None:
                    changes.extend(_removal(catalog, dns.name.from_text(m.name)))
                    removed += 1
                s.delete(row)
            added = 0
            for zone_id, m in wanted.items():
                member = dns.name.from_text(m.name)
                if zone_id in auto or self._listed(s, z, member):
                    continue
                changes.append(_addition(catalog, member))
                s.add(CatalogAuto(catalog_id=z.id, zone_id=zone_id))
                added += 1
            s.flush()
            snap = self._change_in(s, z, changes)[0] if changes else None
            return snap, added, removed

    @staticmethod
    def _listed(s: Any, z: Zone, member: dns.name.Name) -> bool:
        owner = member_owner(dns.name.from_text(z.name), member)
        return bool(repo.rrsets_at(s, z.id, [repo.row_name(owner)]))

    def _auto_catalogs(self, s: Any, peer: Peer) -> list[Zone]:
        return list(s.scalars(select(Zone).where(
            Zone.kind == ZoneKind.CATALOG.value, Zone.member_peer == peer.name)
            .order_by(Zone.name)))

    def zone_linked(self, s: Any, zone: Zone, peer: Peer, role: str) -> list[ZoneSnapshot]:
        """``zone`` was linked to ``peer`` with ``role`` in session ``s``: a primary zone
        linked as a secondary joins the catalogs naming the peer (unless listed already);
        linked as a primary, it leaves those it joined that way. The catalogs' new
        versions, to publish after the commit (``catalogs_changed``)."""
        if zone.kind != ZoneKind.PRIMARY.value:
            return []
        if role != "secondary":
            return self.zone_unlinked(s, zone, peer)
        member = dns.name.from_text(zone.name)
        snaps = []
        for cat in self._auto_catalogs(s, peer):
            if self._listed(s, cat, member):
                continue
            s.add(CatalogAuto(catalog_id=cat.id, zone_id=zone.id))
            snap, _ = self._change_in(s, cat, [_addition(dns.name.from_text(cat.name), member)])
            if snap is not None:
                snaps.append(snap)
        return snaps

    def zone_unlinked(self, s: Any, zone: Zone, peer: Peer) -> list[ZoneSnapshot]:
        """``zone`` was unlinked from ``peer`` in session ``s``: it leaves the catalogs it
        joined automatically by that peer (a member linked by hand stays)."""
        member = dns.name.from_text(zone.name)
        snaps = []
        for cat in self._auto_catalogs(s, peer):
            row = s.get(CatalogAuto, (cat.id, zone.id))
            if row is None:
                continue
            s.delete(row)
            snap, _ = self._change_in(s, cat, _removal(dns.name.from_text(cat.name), member))
            if snap is not None:
                snaps.append(snap)
        return snaps

    @contextlib.asynccontextmanager
    async def catalog_locks(self) -> AsyncIterator[None]:
        """Every catalog's lock, in name order (what a member's deletion takes after its
        own): held by a link or unlink while the catalogs it changes commit and publish."""
        async with contextlib.AsyncExitStack() as stack:
            for cat in self.catalog_names():
                await stack.enter_async_context(self._lock(cat))
            yield

    async def catalogs_changed(self, snaps: list[ZoneSnapshot], zone: str, why: str) -> None:
        """After a link's commit (the access policy already rebuilt): the catalogs' new
        versions served and announced."""
        for snap in snaps:
            self._publish(snap)
            log.info("catalog.member_" + why, catalog=snap.name.to_text(), zone=zone,
                     serial=snap.serial, reason="member peer")

    def catalog_names(self) -> list[str]:
        """The catalogs served (from the registry, no SQL): whose locks a member's deletion
        takes."""
        return sorted(snap.name.to_text() for snap in list(self.registry.zones.values())
                      if snap.kind is ZoneKind.CATALOG)

    # -- consumer -------------------------------------------------------------------------
    async def consume_catalog(self, name: dns.name.Name) -> None:
        """After a transfer of consumed catalog ``name``: its members become secondary zones
        here (transferred from the catalog's primaries), zones it no longer lists go, and a
        member whose unique id changed is reset (deleted and created again, RFC 9432 §5.4).
        A member listed here but kept by another consumed catalog moves only if that catalog
        says so with ``coo`` naming this one (§5.6); a zone made here by other means is left
        alone. A catalog with the wrong version, or listing a zone twice, is not acted on.
        One change at a time per catalog; a zone's creation or removal failing is logged and
        retried at the next transfer."""
        key = name.to_text()
        async with self._lock("catalog-consumer:" + key):
            snap = self.registry.get(name)
            if snap is None or snap.state is ZoneState.UNLOADED:
                return
            view, moves = await asyncio.to_thread(self._read_consumed, name, snap)
            if view.problem is not None:
                log.warning("catalog.refused", catalog=key, serial=snap.serial,
                            reason=view.problem, action="members left as they are")
                return
            plan = await asyncio.to_thread(self._consumer_plan, name, view, moves)
            if plan is None:
                return
            created, removed, conflicts, moved = plan
            for zone in removed:
                try:
                    await self.delete(dns.name.from_text(zone))
                except NotFound:
                    pass
            if created or moved:
                made = await asyncio.to_thread(self._create_members, name, created, moved)
                for zone_name, zone_id in made:
                    self.registry.publish(ZoneSnapshot.unloaded(
                        dns.name.from_text(zone_name), zone_id=zone_id, kind=ZoneKind.SECONDARY))
                if made and self.on_secondaries_changed is not None:
                    await self.on_secondaries_changed()
            for zone, why in conflicts:
                log.warning("catalog.member_conflict", catalog=key, zone=zone, reason=why)
            if created or removed or moved:
                log.info("catalog.consumed", catalog=key, serial=snap.serial,
                         members=len(view.members), created=len(created), removed=len(removed),
                         moved=len(moved))

    def _read_consumed(self, catalog: dns.name.Name, snap: ZoneSnapshot
                       ) -> tuple[CatalogView, dict[dns.name.Name, str]]:
        """The catalog as served, and for each zone another consumed catalog lets move to
        it (``coo`` naming it), that catalog (worker thread: no SQL, the served versions)."""
        view = read_catalog(catalog, content_of_nodes(catalog, snap.nodes))
        out: dict[dns.name.Name, str] = {}
        for other in sorted(self.consumers):
            if other == catalog.to_text():
                continue
            snap = self.registry.get(dns.name.from_text(other))
            if snap is None or snap.state is ZoneState.UNLOADED:
                continue
            view = read_catalog(snap.name, content_of_nodes(snap.name, snap.nodes))
            for zone, member in view.members.items():
                if member.coo == catalog:
                    out[zone] = other
        return view, out

    def _consumer_plan(self, catalog: dns.name.Name, view: CatalogView,
                       moves: dict[dns.name.Name, str]
                       ) -> tuple[dict[str, str], list[str], list[tuple[str, str]],
                                  dict[str, str]] | None:
        """What to create (zone → unique id), remove, leave (with why) and move here."""
        with self.db.read() as s:
            z = repo.zone_by_name(s, catalog.to_text())
            if z is None or not z.catalog_consumer:
                return None
            ours = {m.name: m.member_id for m in s.scalars(
                select(Zone).where(Zone.member_of == z.name))}
            wanted = {m.zone.to_text(): m.id for m in view.members.values()}
            created: dict[str, str] = {}
            removed = [n for n, uid in ours.items() if wanted.get(n) != uid]
            conflicts: list[tuple[str, str]] = []
            moved: dict[str, str] = {}
            for zone, uid in wanted.items():
                member = dns.name.from_text(zone)
                if member == dns.name.root or member.is_subdomain(catalog):
                    conflicts.append((zone, "the root, the catalog or a name inside it"))
                    continue
                if ours.get(zone) == uid:
                    continue
                if zone in ours:  # a new unique id: reset (removed above, made again)
                    created[zone] = uid
                    continue
                row = repo.zone_by_name(s, zone)
                if row is None:
                    created[zone] = uid
                elif row.member_of is not None and moves.get(dns.name.from_text(zone)) == row.member_of:
                    moved[zone] = uid
                elif row.member_of is not None:
                    conflicts.append((zone, f"a member of consumed catalog {row.member_of}, "
                                            "which does not let it move here (coo)"))
                else:
                    conflicts.append((zone, f"a {row.kind} zone made here, not by a catalog"))
            return created, removed, conflicts, moved

    def _create_members(self, catalog: dns.name.Name, created: dict[str, str],
                        moved: dict[str, str]) -> list[tuple[str, int]]:
        """One transaction: the new members as secondary zones of the catalog's primaries,
        the moved ones now the catalog's. Returns the zones created (name, id)."""
        made: list[tuple[Zone, str]] = []
        with self.db.write() as s:
            cat = repo.zone_by_name(s, catalog.to_text())
            if cat is None:
                return []
            primaries = list(s.scalars(select(ZonePeer).where(
                ZonePeer.zone_id == cat.id, ZonePeer.role == "primary").order_by(ZonePeer.position)))
            for zone, uid in moved.items():
                row = repo.zone_by_name(s, zone)
                if row is not None:
                    log.info("catalog.member_moved", zone=zone, catalog=cat.name,
                             previous=row.member_of)
                    row.member_of, row.member_id = cat.name, uid
            for zone, uid in created.items():
                if repo.zone_by_name(s, zone) is not None:
                    continue
                z = Zone(name=zone, kind=ZoneKind.SECONDARY.value, serial=0,
                         serial_policy="increment", state=ZoneState.UNLOADED.value,
                         change_id=0, member_of=cat.name, member_id=uid)
                s.add(z)
                s.flush()
                for link in primaries:
                    s.add(ZonePeer(zone_id=z.id, peer_id=link.peer_id, role="primary",
                                   position=link.position))
                made.append((z, zone))
            s.flush()
            return [(zone, z.id) for z, zone in made]


def _addition(catalog: dns.name.Name, member: dns.name.Name) -> RRsetChange:
    """A member listed, without properties."""
    return RRsetChange(member_owner(catalog, member), PTR, "REPLACE", TTL, [Record(ptr(member))])


def _removal(catalog: dns.name.Name, member: dns.name.Name) -> list[RRsetChange]:
    """A member and its properties removed."""
    owner = member_owner(catalog, member)
    return [RRsetChange(owner, PTR, "DELETE"),
            RRsetChange(property_owner("group", owner), TXT, "DELETE"),
            RRsetChange(property_owner("coo", owner), PTR, "DELETE")]
