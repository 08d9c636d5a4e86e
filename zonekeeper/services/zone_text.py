"""Zone text in and out: import (checked, dry run, force for large changes) and export.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import structlog

from zonekeeper.errors import (
    Conflict,
    ShuttingDown,
)
from zonekeeper.proto.rrwire import consume_nodes
from zonekeeper.proto.serial import SerialPolicy, next_serial
from zonekeeper.services.zone_inputs import ImportResult
from zonekeeper.services.zone_store import (
    _NS,
    _SOA,
    IMPORT_SAFE_SHARE,
    ZoneStore,
    _check_if_match,
    _diff,
    _differing,
    _journal_limits,
    _next_snapshot,
    _rr_wire,
    _rrset_rows,
    _rrsets_of_nodes,
    _snapshot,
    _sync_nodes,
)
from zonekeeper.storage import repo
from zonekeeper.zones.model import Record, RRsetData, ZoneContent, let_go
from zonekeeper.zones.snapshot import (
    ZoneKind,
    ZoneSnapshot,
    compile_content,
)
from zonekeeper.zones.zonefile import export_text

log = structlog.get_logger("zonekeeper.zones")


class ZoneText(ZoneStore):
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

    async def import_text(
        self, name: dns.name.Name, text: str, *, dry_run: bool, force: bool, if_match: str | None = None
    ) -> ImportResult:
        key = name.to_text()
        async with self._lock(key):
            return await self._text_work(text, self._import, name, text, dry_run, force, if_match)

    def _import(self, origin: dns.name.Name, text: str, dry_run: bool, force: bool,
                if_match: str | None) -> tuple[ZoneSnapshot | None, ImportResult, Callable[[], None]]:
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
            rows = _rrset_rows(new)
            stored = repo.rrset_rows(s, z.id)
            old, changed, old_total, soa_at, same = _differing(origin, stored, new, rows)
            gone = [(name, rdtype) for name, rdtype, _ttl, _records in stored if (name, rdtype) not in same]
            let_go(stored)
            diff_added, diff_removed, changes, touched = _diff(old, changed)

            def leftovers() -> None:
                # Both versions, the rows and the diff, let go of gradually once the
                # answer is on its way (see ZoneStore._text_work).
                let_go(rows, touched, changes)
                old.release()
                parsed.release()

            old_total = max(old_total, 1)
            apex_ns_changed = (origin, _NS) in touched
            # The SOA's serial is ours to set: compare everything else.
            result = ImportResult(z.serial, False, diff_added, diff_removed, changes[:1000], warnings)
            if dry_run or not touched:
                return None, result, leftovers
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
            new_soa.records = [Record(new_soa.records[0].rdata.replace(serial=serial))]
            # (the rows were written before the serial was set: the SOA's row again)
            rows[soa_at] = (*rows[soa_at][:2], new_soa.ttl, new_soa.records_json())
            removed = b"".join(b"".join(_rr_wire(o, t, v[0], v[1])) for (o, t), (v, _n) in touched.items() if v)
            old_soa = old.get(origin, _SOA)
            if old_soa is not None and (origin, _SOA) not in touched:
                removed += b"".join(_rr_wire(origin, _SOA, old_soa.ttl, old_soa.records))
            if len(gone) * 2 < len(rows):
                # Few differ: written as an edit is, the rows that differ and the nodes of
                # their owners (of the RRsets whose row differs: a record only enabled
                # differs there, not in the diff), over the stored table.
                repo.patch_rrsets(s, z.id, gone, [r for r in rows if (r[0], r[1]) not in same])
                current = self._stored_version(s, z, origin, old_serial)
                owners = {r.name for r in old} | {r.name for r in changed}
                node_changes = _sync_nodes(s, z.id, new, owners, current.nodes)
            else:
                nodes, cuts = compile_content(new)
                nodes = consume_nodes(nodes)
                repo.replace_all(s, z.id, rows, nodes)
                current = None
            added = b"".join(b"".join(_rr_wire(o, t, n.ttl, n.records)) for (o, t), (_v, n) in touched.items() if n and (o, t) != (origin, _SOA))
            added += b"".join(_rr_wire(origin, _SOA, new_soa.ttl, new_soa.records))
            repo.add_journal(s, z.id, old_serial, serial, removed, added, **_journal_limits(z))
            z.serial = serial
            z.change_id += 1
            z.updated_at = datetime.now(UTC)
            repo.owe_notify(s, z, serial)
            repo.announce(s, "zone", z.name)
        result.serial = serial
        result.applied = True
        log.info("zone.changed", zone=origin.to_text(), serial_from=old_serial, serial=serial,
                 added=diff_added, removed=diff_removed, via="import")
        snap = (_snapshot(z, serial, nodes, cuts) if current is None
                else _next_snapshot(z, current, node_changes))
        return snap, result, leftovers
