"""Stored zones to served snapshots: the rows ``zonekeeper serve`` starts from.

Plain DB-API (a cursor, SQL text) and no SQLAlchemy, so that a start on SQLite can read its
zones and answer queries before the storage layer and the web stack are imported
(``zonekeeper.start``); ``ZoneStore.load_all`` reads through the same functions with its
session's cursor, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Collection, Iterable, Mapping
from itertools import groupby
from operator import itemgetter
from typing import Any

import dns.name

from zonekeeper.logs import get_logger
from zonekeeper.proto.rrwire import (
    MULTI,
    Node,
    NodeMap,
    decode_node,
    find_cuts,
    key_of_sort_key,
    name_key,
    overlaid,
    unpack_nodes,
)
from zonekeeper.zones.snapshot import ZoneKind, ZoneSnapshot, ZoneState

log = get_logger("zonekeeper.zones")
_ZONE_ID = itemgetter(0)

# A zone row's node table and cuts kept for exactly its stored version, or None (given a
# cursor on the database the row was read from, and the row).
Saved = Callable[[Any, Any], tuple[Mapping[bytes, Node], frozenset[bytes]] | None]


def snapshot_of(z: Any, serial: int, nodes: Mapping[bytes, Node], cuts: frozenset[bytes],
                origin: dns.name.Name | None = None) -> ZoneSnapshot:
    """A snapshot of zone row ``z`` with the per-zone settings the DNS side reads."""
    return ZoneSnapshot(
        origin or dns.name.from_text(z.name), serial, nodes, cuts, kind=ZoneKind(z.kind),
        state=ZoneState(z.state), zone_id=z.id, change_id=z.change_id,
        outgoing=bool(z.outgoing_enabled), notify_ns=bool(z.notify_ns),
        notify_delay=z.notify_delay or 0.0, ixfr_max_ratio=z.ixfr_max_ratio or 1.0,
    )


def from_stored(z: Any, nodes: Mapping[bytes, Node] | None, chunks: list[bytes] | None,
                saved: tuple[Mapping[bytes, Node], frozenset[bytes]] | None = None,
                rows: list[tuple[bytes, bytes]] | None = None) -> ZoneSnapshot:
    """A zone's snapshot from its stored nodes, or its image chunks (a secondary's; a
    primary's, with the ``nodes`` ``rows`` written over it since), or from the node table
    and cuts ``saved`` for exactly this stored version."""
    origin = dns.name.from_text(z.name)
    if saved is not None:
        return snapshot_of(z, z.serial, saved[0], saved[1], origin)
    if chunks and z.kind != ZoneKind.SECONDARY.value:
        try:
            nodes = overlaid(chunks, rows or ())
        except ValueError as exc:
            log.error("zone.unreadable", zone=z.name, error=str(exc),
                      action="put the zone's text again (PUT /zones/{zone}/text), or restore the database")
            nodes = None
    if z.kind == ZoneKind.SECONDARY.value:
        nodes = None
        if chunks:
            try:
                nodes = unpack_nodes(chunks)
            except ValueError as exc:
                log.error("zone.unreadable", zone=z.name, error=str(exc),
                          action="transfer it again")
        if not nodes:
            # Never loaded (or unreadable): served, but SERVFAIL until a transfer succeeds.
            return ZoneSnapshot.unloaded(origin, zone_id=z.id, kind=ZoneKind.SECONDARY)
        # The image holds the empty non-terminals; the cuts are found again.
        return snapshot_of(z, z.serial, nodes, find_cuts(nodes, name_key(origin)), origin)
    if not nodes:
        # A primary with no stored nodes (damaged storage): SERVFAIL, not a crash.
        return ZoneSnapshot.unloaded(origin, zone_id=z.id, kind=ZoneKind(z.kind))
    return snapshot_of(z, z.serial, nodes, find_cuts(nodes, name_key(origin)), origin)


def all_nodes(cur: Any, skip: Collection[int] = (), over: Collection[int] = (),
              ) -> tuple[dict[int, Mapping[bytes, Node]], dict[int, list[tuple[bytes, bytes]]]]:
    """Every served node of every zone but those in ``skip``, by zone id: one query for
    all of them (a query per zone cost more than the rows at 10,000 small zones); the rows
    of the zones in ``over`` (those with an image under their rows) as they are, apart. A
    row costs ~1 us here, most of it the driver's objects; the loop does no more than it
    must (the drivers give bytes)."""
    out: dict[int, dict[bytes, Node]] = {}
    apart: dict[int, list[tuple[bytes, bytes]]] = {}
    nodes: dict[bytes, Node] = {}
    current = None
    cur.execute(f"SELECT zone_id, sortkey, data FROM nodes{_but(skip)} ORDER BY zone_id")
    if NodeMap is not None:  # each zone's rows copied into its map as they are
        maps = {}
        for zone_id, rows in groupby(cur, _ZONE_ID):
            if zone_id in over:
                apart[zone_id] = [(sk, data) for _, sk, data in rows]
                continue
            got = nodes_of_rows(zone_id, ((sk, data) for _, sk, data in rows))
            if got is not None:
                maps[zone_id] = got
        return maps, apart
    for zone_id, sk, data in cur:
        if zone_id in over:
            apart.setdefault(zone_id, []).append((sk, data))
            continue
        if zone_id != current:
            current = zone_id
            nodes = out.setdefault(zone_id, {})
        nodes[key_of_sort_key(sk)] = data if data[:2] != MULTI else decode_node(data)
    return out, apart


def nodes_of_rows(zone_id: int, rows: Iterable[tuple[bytes, bytes]]) -> Mapping[bytes, Node] | None:
    """A zone's NodeMap from its ``nodes`` rows (sort key, stored node), or None, logged,
    when a row is damaged (a key twice, a node cut short, not a sort key): that zone is
    then served as unloaded (SERVFAIL), not every zone's start refused."""
    try:
        return NodeMap.from_rows(rows, True)  # type: ignore[no-any-return,union-attr]
    except ValueError as exc:
        log.error("zone.unreadable", zone_id=zone_id, error=str(exc),
                  action="put the zone's text again (PUT /zones/{zone}/text), or restore the database")
        return None


def all_images(cur: Any, skip: Collection[int] = ()) -> dict[int, list[bytes]]:
    """Every zone's stored image chunks but those in ``skip``, by zone id, in order."""
    out: dict[int, list[bytes]] = {}
    cur.execute(f"SELECT zone_id, data FROM zone_images{_but(skip)} ORDER BY zone_id, chunk")
    for zone_id, data in cur:
        out.setdefault(zone_id, []).append(bytes(data))
    return out


def _but(skip: Collection[int]) -> str:
    """The WHERE clause leaving out zone ids ``skip`` (integers: written as SQL numbers,
    so that the query runs unchanged on either driver's placeholder style)."""
    return f" WHERE zone_id NOT IN ({','.join(str(int(i)) for i in skip)})" if skip else ""


def read_served(cur: Any, saved: Saved | None = None) -> list[tuple[Any, ZoneSnapshot]]:
    """Every stored zone (its row: the ``zones`` columns as attributes) with the snapshot
    it is served as: three queries whatever the number of zones (the zones, every node,
    every secondary's image); the cuts are found in the nodes. ``saved`` gives a zone's
    node table and cuts kept for exactly its stored version (``ImageCache.saved_nodes``):
    those zones' rows are not read. A primary zone's table is its image with its rows
    over it, or, stored before images, its rows."""
    cur.execute("SELECT * FROM zones")
    row_type = namedtuple("ZoneRow", [d[0] for d in cur.description])  # type: ignore[misc]
    zones = [row_type(*r) for r in cur.fetchall()]
    found = {}
    if saved is not None:
        for z in zones:
            table = saved(cur, z)
            if table is not None:
                found[z.id] = table
    # With every zone's table kept, no row is read: not even a query that finds none
    # (it scans the whole table: ~15 ms at 100,000 rows).
    images = all_images(cur, found) if len(found) < len(zones) else {}
    nodes, rows = (all_nodes(cur, found, {z.id for z in zones if z.id in images
                                          and z.kind != ZoneKind.SECONDARY.value})
                   if len(found) < len(zones) else ({}, {}))
    return [(z, from_stored(z, nodes.pop(z.id, None), images.pop(z.id, None), found.get(z.id),
                            rows.pop(z.id, None)))
            for z in zones]
