"""Reading zones: the list, one zone, its RRsets, and the journal IXFR reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import structlog
from sqlalchemy import select

from zonekeeper.services import paging
from zonekeeper.services.zone_store import ZoneStore, _node_page, stored_soa_fields, zone_info
from zonekeeper.storage import repo
from zonekeeper.storage.models import RRset, Zone
from zonekeeper.zones.model import RRsetData
from zonekeeper.zones.snapshot import (
    ZoneKind,
)

log = structlog.get_logger("zonekeeper.zones")


class ZoneListing(ZoneStore):
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
                soas = self._soas(s, rows)
                items = [zone_info(z, soas[z.id], self._records(z)) for z in rows]
                return items, (rows[-1].name if more and rows else None)

        return await asyncio.to_thread(work)

    async def get(self, name: dns.name.Name) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            with self.db.read() as s:
                z = self._zone(s, name)
                return zone_info(z, self._soas(s, [z])[z.id], self._records(z))

        return await asyncio.to_thread(work)

    def _soas(self, s: Any, zones: list[Zone]) -> dict[int, RRsetData | dict[str, Any] | None]:
        """Each zone's SOA for ``zone_info``: a secondary zone's from the version served, the
        others' stored ones read in one statement (not one each) and without dnspython."""
        stored = repo.apex_soas(s, [z.id for z in zones if z.kind != ZoneKind.SECONDARY.value])
        return {z.id: self._soa(s, z) if z.kind == ZoneKind.SECONDARY.value
                else stored_soa_fields(*stored[z.id]) if z.id in stored else None
                for z in zones}

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
                    q = q.where(RRset.name == repo.row_name(owner))
                if rdtype is not None:
                    q = q.where(RRset.type == rdtype)
                after = paging.row_id_after(cursor)
                if after is not None:
                    q = q.where(RRset.id > after)
                rows = list(s.scalars(q.order_by(RRset.id).limit(limit + 1)))
                more = len(rows) > limit
                rows = rows[:limit]
                items = [RRsetData.row_dict(r.name, r.type, r.ttl, r.records) for r in rows]
                return z.serial, items, (str(rows[-1].id) if more and rows else None)

        return await asyncio.to_thread(work)

    def journal_sync(self, zone_id: int) -> list[tuple[int, int, bytes, bytes]]:
        """The zone's journal, oldest first (read by IXFR out in a worker thread)."""
        with self.db.read() as s:
            return repo.read_journal(s, zone_id)
