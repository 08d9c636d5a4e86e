"""Secondary zones: creating them, installing what a transfer in brought, timers and
state, and turning a secondary into a primary and back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import structlog
from sqlalchemy import delete, select

from zonekeeper.errors import (
    Conflict,
    Invalid,
    NotFound,
    Reason,
)
from zonekeeper.proto import xfrin
from zonekeeper.proto.rrwire import consume_nodes
from zonekeeper.proto.serial import SerialPolicy
from zonekeeper.services.zone_store import (
    _SOA,
    ZoneStore,
    _journal_limits,
    _rrset_rows,
    _rrsets_of_nodes,
    _snapshot,
    zone_info,
)
from zonekeeper.storage import repo
from zonekeeper.storage.models import Peer, Timer, Zone, ZonePeer
from zonekeeper.zones.model import ZoneContent
from zonekeeper.zones.snapshot import (
    ZoneKind,
    ZoneSnapshot,
    ZoneState,
    compile_content,
)

log = structlog.get_logger("zonekeeper.zones")


class SecondaryZones(ZoneStore):
    # -- secondary zones ------------------------------------------------------------------
    async def create_secondary(self, name: dns.name.Name, primaries: list[str], *,
                               catalog: bool = False) -> dict[str, Any]:
        """A secondary zone following ``primaries`` (peer names, in order); no data until
        the first transfer, so it answers SERVFAIL until then. With ``catalog``, a catalog
        consumer: after each transfer its members become secondary zones here."""
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
                     change_id=0, catalog_consumer=catalog)
            s.add(z)
            s.flush()
            for pos, peer in enumerate(peers):
                s.add(ZonePeer(zone_id=z.id, peer_id=peer.id, role="primary", position=pos))
            s.flush()
            repo.announce(s, "zone", z.name)
            return zone_info(z, None, 0) | {"zone_id": z.id}

        async with self._lock(name.to_text()):
            info = await self.db.run_write(work)
            self.registry.publish(ZoneSnapshot.unloaded(name, zone_id=info.pop("zone_id"),
                                                        kind=ZoneKind.SECONDARY))
            if catalog:
                self.consumers.add(name.to_text())
        log.info("zone.created", zone=name.to_text(), kind="secondary", primaries=primaries,
                 catalog_consumer=catalog or None)
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
                raise Conflict(f"zone {key} is a {prev.kind.value} zone already")
            if prev.state is ZoneState.UNLOADED:
                raise Conflict(f"zone {key} has never been transferred: there is nothing to "
                               "keep; delete it and create a primary zone instead")
            content = ZoneContent(name, _rrsets_of_nodes(prev.nodes))
            nodes, cuts = compile_content(content)
            nodes = consume_nodes(nodes)

            def work() -> tuple[ZoneSnapshot, dict[str, Any]]:
                with self.db.write() as s:
                    z = self._zone(s, name)
                    dropped = [p.name for p in s.scalars(
                        select(Peer).join(ZonePeer, ZonePeer.peer_id == Peer.id).where(
                            ZonePeer.zone_id == z.id, ZonePeer.role == "primary"))]
                    s.execute(delete(ZonePeer).where(ZonePeer.zone_id == z.id,
                                                     ZonePeer.role == "primary"))
                    s.execute(delete(Timer).where(Timer.zone_id == z.id))
                    repo.replace_all(s, z.id, _rrset_rows(content), nodes)
                    z.kind = ZoneKind.PRIMARY.value
                    z.state = ZoneState.OK.value
                    z.change_id += 1
                    z.updated_at = datetime.now(UTC)
                    repo.announce(s, "zone", z.name)
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
                raise Conflict(f"zone {key} is a {prev.kind.value} zone: only a primary zone "
                               "can become a secondary")

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
                    repo.announce(s, "zone", z.name)
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
            # Stored now: the version an AXFR image kept on disk may be matched with.
            snap.change_id = store.result()
            # Decisions taken before the journal entry existed ("not in the journal") go.
            snap.ixfr_cache.clear()
            if self.on_published is not None:
                self.on_published(snap)
        if name.to_text() in self.consumers:
            try:
                await self.consume_catalog(name)
            except Exception as exc:  # noqa: BLE001 - the transfer itself succeeded
                # Storage failing, say: the members are compared again at the next transfer
                # (or start); the catalog's refresh is not reported as failed.
                log.error("catalog.consume_failed", catalog=name.to_text(), error=str(exc),
                          action="retried at the catalog's next transfer or at start")

    async def consume_catalog(self, name: dns.name.Name) -> None:
        """A consumed catalog was transferred (services/zone_catalog.py acts on it)."""

    def _install(self, origin: dns.name.Name, got: xfrin.Result, base: ZoneSnapshot | None,
                 kind: str) -> int:
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
            if self.fence is not None:
                self.fence(s)  # only the leader installs (a deposed one is refused here)
            z = self._zone(s, origin)
            repo.save_image(s, z.id, got.nodes)
            if base is not None:
                repo.add_journal(s, z.id, z.serial, got.serial, removed, added, **_journal_limits(z))
            z.serial = got.serial
            z.state = ZoneState.OK.value
            z.change_id += 1
            change_id = z.change_id
            z.updated_at = datetime.now(UTC)
            repo.owe_notify(s, z, got.serial)
            repo.announce(s, "zone", z.name)
        log.info("zone.changed", zone=origin.to_text(), serial=got.serial, via=kind,
                 records=got.records)
        return change_id

    def set_state(self, name: dns.name.Name, state: ZoneState) -> None:
        """Mark a served zone expired or loaded again (on the loop; stored in the background)."""
        snap = self.registry.get(name)
        if snap is not None and snap.state is not ZoneState.UNLOADED and snap.state is not state:
            self.registry.publish(snap.replaced(state=state))

        def work(s: Any) -> None:
            z = repo.zone_by_name(s, name.to_text())
            if z is not None and z.state != ZoneState.UNLOADED.value:
                z.state = state.value
                repo.announce(s, "zone", z.name)

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
