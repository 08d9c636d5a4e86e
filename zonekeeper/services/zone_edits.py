"""Editing primary zones as units of work: create, delete, RRset changes (API and
DNS UPDATE) and zone settings, each validated whole, committed with its journal entry,
then published.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import structlog
from sqlalchemy import event, select, update

from zonekeeper.errors import (
    Conflict,
    Invalid,
    Reason,
)
from zonekeeper.proto.rrwire import consume_nodes
from zonekeeper.proto.serial import SerialPolicy, check_explicit, next_serial
from zonekeeper.services.dnsupdate import UpdateRR, apply_updates, check_prerequisites, prescan
from zonekeeper.services.zone_inputs import RRsetChange, ZoneSpec, ZoneUpdate, owner_name
from zonekeeper.services.zone_store import (
    _NS,
    _SETTING_DEFAULTS,
    _SOA,
    ZoneStore,
    _abs,
    _apply_changes,
    _check_if_match,
    _journal_limits,
    _load,
    _next_snapshot,
    _raise_findings,
    _rr_wire,
    _rrset_rows,
    _snapshot,
    _state_key,
    _sync_nodes,
    zone_info,
)
from zonekeeper.storage import repo
from zonekeeper.storage.models import RRset, Zone
from zonekeeper.text import absolute
from zonekeeper.zones.catalog import new_catalog
from zonekeeper.zones.model import Record, RRsetData, ZoneContent, let_go
from zonekeeper.zones.snapshot import (
    Node,
    ZoneKind,
    ZoneSnapshot,
    ZoneState,
    compile_content,
)
from zonekeeper.zones.validate import check
from zonekeeper.zones.zonefile import GC_PAUSE_OVER

log = structlog.get_logger("zonekeeper.zones")


class ZoneEdits(ZoneStore):
    async def create(self, spec: ZoneSpec) -> dict[str, Any]:
        key = spec.name.to_text()
        async with self._lock(key):
            if spec.zone_text is not None and len(spec.zone_text) > GC_PAUSE_OVER:
                # 409 at once, not after reading a large text (20 s at a million records);
                # the write below checks again.
                await self.absent(spec.name)
            info = await self._text_work(spec.zone_text, self._create, spec)
            log.info("zone.created", zone=key, serial=info["serial"], records=info.get("record_count"))
            return info

    def _create(self, spec: ZoneSpec) -> tuple[ZoneSnapshot, dict[str, Any], Callable[[], None]]:
        origin = spec.name
        if spec.zone_text is not None:
            parsed = self._parse(spec.zone_text, origin)  # runs the zone checks too
            content = parsed.content
        elif spec.kind is ZoneKind.CATALOG:
            content = self._catalog_content(spec)
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
        def stored_form() -> tuple[Mapping[bytes, Node], frozenset[bytes], list[tuple[str, int, int, str]]]:
            # The table into the snapshot's map owner by owner (each dropped once copied):
            # stored as it will be served, an image made from the map.
            nodes, cuts = compile_content(content)
            return consume_nodes(nodes), cuts, _rrset_rows(content)

        # Worked out before the write lock is taken (a tenth of a million-record import),
        # so that other writers wait only for the rows to be written; a catalog's members
        # are added under the lock, its form is worked out there.
        if spec.member_peer is None:
            nodes, cuts, rows = stored_form()
        with self.db.write() as s:
            if repo.zone_exists(s, origin.to_text()):
                raise Conflict(f"zone {origin.to_text()} already exists")
            values = {"name": origin.to_text(), "kind": spec.kind.value, "serial": serial,
                      "serial_policy": spec.serial_policy.value, "state": ZoneState.OK.value,
                      "change_id": 1}
            if spec.member_peer is not None:
                z = Zone(**values)  # an ORM row: adding the members changes it
                s.add(z)
                s.flush()
                self._adopt_peer_zones(s, z, content, spec.member_peer)  # adds the members
                nodes, cuts, rows = stored_form()
            else:
                z = repo.insert_zone(s, **values)
            repo.replace_all(s, z.id, rows, nodes, fresh=True)
            repo.announce(s, "zone", z.name)
        snap = _snapshot(z, serial, nodes, cuts)

        def leftovers() -> None:
            # Let go of a slice at a time: a large zone's objects freed in one go would hold
            # the GIL for a second.
            let_go(rows)
            if spec.zone_text is not None:
                parsed.release()

        return snap, zone_info(z, soa, self._records(z, snap)), leftovers

    def _catalog_content(self, spec: ZoneSpec) -> ZoneContent:
        given = [(f, "members are linked with PUT /zones/{catalog}/members/{zone}")
                 for f, v in (("nameservers", spec.nameservers), ("rrsets", spec.rrsets),
                              ("zone_text", spec.zone_text)) if v]
        if given:
            raise Invalid("a catalog zone is made empty: its records are its members",
                          [Reason((f,), why) for f, why in given])
        soa = spec.soa
        if soa.mname or soa.rname:
            raise Invalid("a catalog zone's SOA names are invalid.",
                          [Reason(("soa",), "leave mname and rname out")])
        return new_catalog(spec.name, next_serial(0, spec.serial_policy), refresh=soa.refresh,
                           retry=soa.retry, expire=soa.expire, minimum=soa.minimum, ttl=soa.ttl)

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
                target = owner_name(absolute(ns), origin)
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
        """Delete the zone; a member of catalogs leaves them in the same transaction (each
        catalog's new version published after the commit, under its lock)."""
        key = name.to_text()
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._lock(key))
            # A catalog is never a member, so its deletion takes no other lock; a member's
            # takes its own, then the catalogs' in name order (linking takes only one).
            if not self._is_catalog(name):
                for cat in self.catalog_names():
                    if cat != key:
                        await stack.enter_async_context(self._lock(cat))

            def work() -> list[ZoneSnapshot]:
                with self.db.write() as s:
                    z = self._zone(s, name)
                    catalogs = ([] if z.kind == ZoneKind.CATALOG.value
                                else self._unlink_everywhere(s, name))
                    if z.catalog_consumer:
                        # Its members stay, as secondary zones of their own.
                        s.execute(update(Zone).where(Zone.member_of == z.name)
                                  .values(member_of=None, member_id=None))
                    s.delete(z)
                    repo.announce(s, "zone", z.name)
                return catalogs

            catalogs = await asyncio.to_thread(work)
            self.registry.remove(name)
            self.consumers.discard(key)
            if self.on_removed is not None:
                await asyncio.to_thread(self.on_removed, name)
            for snap in catalogs:
                self._publish(snap)
                log.info("catalog.member_unlinked", catalog=snap.name.to_text(), zone=key,
                         serial=snap.serial, reason="zone deleted")
            if self.on_secondaries_changed is not None:
                await self.on_secondaries_changed()
            log.info("zone.deleted", zone=key)

    # Catalog membership (services/zone_catalog.py overrides these).
    def _is_catalog(self, name: dns.name.Name) -> bool:
        snap = self.registry.get(name)
        return snap is not None and snap.kind is ZoneKind.CATALOG

    def catalog_names(self) -> list[str]:
        return []

    def _unlink_everywhere(self, s: Any, member: dns.name.Name) -> list[ZoneSnapshot]:
        return []

    def _adopt_peer_zones(self, s: Any, z: Zone, content: ZoneContent, peer: str) -> None:
        raise Invalid("member_peer is for a catalog zone",
                      [Reason(("member_peer",), 'only a zone of kind "catalog" has one')])

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
            return self._change_in(s, z, changes)

    def _change_in(self, s: Any, z: Zone, changes: list[RRsetChange]
                   ) -> tuple[ZoneSnapshot | None, int]:
        """Apply ``changes`` to zone row ``z`` in write session ``s``: load, apply, check,
        commit what changed (a new version), or nothing (None, the serial as it is)."""
        origin = dns.name.from_text(z.name)
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
            for row in repo.rrsets_at(s, z.id, [repo.row_name(t) for t in targets - names]):
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
            key = repo.row_name(owner)
            row = s.scalar(select(RRset).where(RRset.zone_id == z.id, RRset.name == key, RRset.type == rdtype))
            if new is None or not new.records:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(RRset(zone_id=z.id, name=key, type=rdtype, ttl=new.ttl, records=new.records_json()))
            else:
                row.ttl = new.ttl
                row.records = new.records_json()
        s.flush()
        current = self._stored_version(s, z, origin, old_serial)
        node_changes = _sync_nodes(s, z.id, content, {k[0] for k in touched}, current.nodes)
        repo.add_journal(s, z.id, old_serial, serial, b"".join(removed), b"".join(added), **_journal_limits(z))
        z.serial = serial
        z.change_id += 1
        z.updated_at = datetime.now(UTC)
        repo.owe_notify(s, z, serial)
        repo.announce(s, "zone", z.name)
        s.flush()
        # The nodes copied with the changed owners replaced, the AXFR image re-rendered for
        # them only.
        snap = _next_snapshot(z, current, node_changes)
        # Logged once the transaction commits: a change the database refused never happened.
        event.listen(s, "after_commit", lambda _s: log.info(
            "zone.changed", zone=origin.to_text(), serial_from=old_serial, serial=serial,
            rrsets=len(touched) - 1), once=True)
        return snap, serial

    async def update(self, name: dns.name.Name, upd: ZoneUpdate, *, if_match: str | None = None) -> dict[str, Any]:
        key = name.to_text()
        async with self._lock(key):
            snap, info, reopened, settings = await asyncio.to_thread(
                self._update, name, upd, if_match)
            current = self.registry.get(name)
            if snap is None and current is not None and any(
                    getattr(current, k) != v for k, v in settings.items()):
                # Settings alone: the same version republished with them.
                current = current.replaced(**settings)
                self.registry.publish(current)
            self._publish(snap)
            current = self.registry.get(name)
            if reopened and snap is None and current is not None and self.on_published:
                # Outgoing transfers switched back on: what was edited while they were off
                # is announced now, not at the secondaries' next refresh.
                self.on_published(current)
            return info

    def _update(self, origin: dns.name.Name, upd: ZoneUpdate,
                if_match: str | None
                ) -> tuple[ZoneSnapshot | None, dict[str, Any], bool, dict[str, Any]]:
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
                self._check_primary(z, catalog=True)
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
            repo.announce(s, "zone", z.name)
            info = zone_info(z, self._soa(s, z), self._records(z, snap))
            outgoing = z.outgoing_enabled
            settings = {"outgoing": outgoing, "notify_delay": z.notify_delay,
                        "ixfr_max_ratio": z.ixfr_max_ratio, "notify_ns": z.notify_ns}
        if snap is not None:  # a new version, not published yet: it takes them as it is built
            snap = snap.replaced(**settings)
        return snap, info, outgoing and not was_outgoing, settings
