"""Zone storage operations used by the services: rows in, rows out, no DNS rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from dns.name import Name
from sqlalchemy import Integer, bindparam, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from zonekeeper.proto.rrwire import (
    GONE,
    NodeMap,
    decode_node,
    encode_node,
    key_of_sort_key,
    overlaid,
    pack_nodes,
    sort_key,
    unpack_nodes,
)
from zonekeeper.storage.models import (
    JournalEntry,
    Node,
    NotifyOwed,
    Peer,
    RRset,
    Zone,
    ZoneImage,
    ZonePeer,
)

# The PostgreSQL channel on which nodes sharing a database announce their changes.
CHANNEL = "zonekeeper"


def announce(session: Session, what: str, name: str = "") -> None:
    """Tell the other nodes sharing this database that ``what`` changed (``zone`` with the
    zone's name, ``access``, ``peers``, ``tokens`` with a deleted token's id): a PostgreSQL
    NOTIFY inside the writing transaction, so it is delivered by the commit and dropped by
    a rollback, never ahead of the data.
    The payload is ``NODE WHAT [NAME]``. Nothing on SQLite (one node only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    node = session.info.get("node", "-")
    session.execute(text("SELECT pg_notify(:c, :p)"),
                    {"c": CHANNEL, "p": f"{node} {what} {name}".rstrip()})


def owe_notify(session: Session, zone: Zone, serial: int) -> None:
    """Record, with the change itself, a NOTIFY of ``serial`` owed to each linked secondary
    of ``zone`` that takes NOTIFY: whichever node leads sends it, and one that takes over
    from a leader that died finds it here. (Nothing while outgoing transfers are off.)"""
    if not zone.outgoing_enabled:
        return
    names = session.scalars(
        select(Peer.name).join(ZonePeer, ZonePeer.peer_id == Peer.id).where(
            ZonePeer.zone_id == zone.id, ZonePeer.role == "secondary", Peer.notify.is_(True)))
    for name in list(names):
        row = session.get(NotifyOwed, (zone.id, name))
        if row is None:
            session.add(NotifyOwed(zone_id=zone.id, target=name, serial=serial))
        else:
            row.serial = serial


# The statements run by most API requests, built once: a statement made per call costs
# as much again as running it (its construction and its cache key, ~150 us each time).
_ZONE_BY_NAME = select(Zone).where(Zone.name == bindparam("name"))
_RRSETS_AT = select(RRset).where(RRset.zone_id == bindparam("zone_id"),
                                 RRset.name.in_(bindparam("names", expanding=True)))


def row_name(name: Name) -> str:
    """An owner as the ``rrsets`` table keys it: absolute, in lower case (names compare
    without regard to case; an owner read as ``WWW`` and edited as ``www`` is one row)."""
    return name.to_text().lower()


_INSERT_ZONE = insert(Zone.__table__).returning(*Zone.__table__.c)


def insert_zone(session: Session, **values: Any) -> Any:
    """A new zone row, given back whole (the columns' defaults filled in) as a read-only
    row with the ``Zone`` attributes: one INSERT ... RETURNING, without the ORM's unit of
    work (0.2 ms where adding a ``Zone`` and flushing took 0.6, a tenth of creating a
    small zone). For a row to change in the same transaction, add a ``Zone`` instead."""
    return session.execute(_INSERT_ZONE, values).one()


def zone_by_name(session: Session, name: str) -> Zone | None:
    return session.scalar(_ZONE_BY_NAME, {"name": name})


def zone_exists(session: Session, name: str) -> bool:
    """Whether a zone of that name exists: one indexed probe through the driver, with no
    ORM object made (the check before a create; ``zone_by_name`` costs ~0.2 ms more)."""
    with cursor(session) as (cur, ph):
        cur.execute(f"SELECT 1 FROM zones WHERE name = {ph}", (name,))
        return cur.fetchone() is not None


_APEX_SOAS = (select(RRset.zone_id, RRset.ttl, RRset.records)
              .join(Zone, (Zone.id == RRset.zone_id) & (Zone.name == RRset.name))
              .where(Zone.id.in_(bindparam("ids", expanding=True)), RRset.type == 6))


def apex_soas(session: Session, zone_ids: list[int]) -> dict[int, tuple[int, str]]:
    """The stored SOA RRset (TTL, records as JSON) of each of ``zone_ids`` that has one, in
    one statement per 500 zones (a page of the zone list), each by the (zone, name, type)
    index."""
    out: dict[int, tuple[int, str]] = {}
    for i in range(0, len(zone_ids), 500):
        for zone_id, ttl, records in session.execute(_APEX_SOAS, {"ids": zone_ids[i : i + 500]}):
            out[zone_id] = (ttl, records)
    return out


def rrsets_at(session: Session, zone_id: int, names: Iterable[str]) -> list[RRset]:
    names = sorted(set(names))
    out: list[RRset] = []
    for i in range(0, len(names), 500):
        out.extend(session.scalars(_RRSETS_AT, {"zone_id": zone_id, "names": names[i : i + 500]}))
    return out


def iter_rrsets(session: Session, zone_id: int) -> Iterator[RRset]:
    yield from session.scalars(
        select(RRset).where(RRset.zone_id == zone_id).execution_options(yield_per=5000)
    )


def rrset_rows(session: Session, zone_id: int) -> list[tuple[str, int, int, str]]:
    """A zone's ``rrsets`` rows as (name, type, TTL, records JSON) tuples, read through the
    driver (no ORM object a row: ~5 us each at a million rows)."""
    with cursor(session) as (cur, ph):
        cur.execute(f"SELECT name, type, ttl, records FROM rrsets WHERE zone_id = {ph}", (zone_id,))
        return [tuple(row) for row in cur]  # type: ignore[misc]


@contextmanager
def cursor(session: Session) -> Iterator[tuple[Any, str]]:
    """A DB-API cursor inside the session's transaction, and the driver's placeholder (qmark
    for sqlite3, %s for psycopg). The driver's errors come out as SQLAlchemy's, as from the
    ORM (OperationalError for a busy or lost database, DataError for a value PostgreSQL
    refuses), so the callers and the API treat both paths alike."""
    conn = session.connection()
    dialect = conn.dialect
    ph = "?" if dialect.paramstyle == "qmark" else "%s"
    base = dialect.loaded_dbapi.Error
    cur = conn.connection.dbapi_connection.cursor()
    try:
        yield cur, ph
    except base as exc:
        raise DBAPIError.instance(None, None, exc, base, dialect=dialect) from exc
    finally:
        cur.close()


def load_nodes(session: Session, zone_id: int,
               into: Callable[[int, Any], Mapping[bytes, bytes | tuple[bytes, ...]] | None] | None = None,
               ) -> Mapping[bytes, bytes | tuple[bytes, ...]]:
    """Every served node of a primary zone: its image with the ``nodes`` rows over it
    (``rrwire.overlaid``), or, where it has no image (stored before images), its rows. A
    plain DB-API cursor: at a million rows the ORM's per-row processing would double the
    start-up time. (psycopg gives bytea as bytes, sqlite3 BLOBs as bytes; ``bytes()`` also
    takes a driver's memoryview.) ``into`` (zones.stored.nodes_of_rows, where the C map is
    built): the table made of the rows, or None for damaged rows (then none). ValueError
    if an image cannot be read."""
    chunks = load_image_chunks(session, zone_id)
    with cursor(session) as (cur, ph):
        cur.execute(f"SELECT sortkey, data FROM nodes WHERE zone_id = {ph}", (zone_id,))
        if chunks:
            return overlaid(chunks, cur)
        if NodeMap is not None:  # the rows' bytes copied in as they are, no node object kept
            got = into(zone_id, cur) if into is not None else NodeMap.from_rows(cur, True)
            return got if got is not None else {}
        return {key_of_sort_key(bytes(sk)): decode_node(bytes(data)) for sk, data in cur}


def node_rows(session: Session, zone_id: int) -> list[tuple[bytes, bytes]]:
    """A zone's ``nodes`` rows as they are (sort key, stored node)."""
    with cursor(session) as (cur, ph):
        cur.execute(f"SELECT sortkey, data FROM nodes WHERE zone_id = {ph}", (zone_id,))
        return [(bytes(sk), bytes(d)) for sk, d in cur]


def has_image(session: Session, zone_id: int) -> bool:
    """Whether the zone's node table is stored whole (``zone_images``): its ``nodes`` rows
    are then the owners edited since, over it (GONE where one was deleted)."""
    with cursor(session) as (cur, ph):
        cur.execute(f"SELECT 1 FROM zone_images WHERE zone_id = {ph} LIMIT 1", (zone_id,))
        return cur.fetchone() is not None


def put_node(session: Session, zone_id: int, owner: bytes, node: bytes | tuple[bytes, ...]) -> None:
    """Write one owner's node: one upsert (SQLite and PostgreSQL), where the ORM's merge
    read the row first and wrote it at the next flush. A node of no RRset at all is
    refused: stored, it would read as GONE."""
    data = encode_node(node)
    if data == GONE:
        raise ValueError("an owner without RRsets is b'' (an empty non-terminal) or no node")
    _upsert_node(session, zone_id, owner, data)


def _upsert_node(session: Session, zone_id: int, owner: bytes, data: bytes) -> None:
    with cursor(session) as (cur, ph):
        cur.execute(f"INSERT INTO nodes (zone_id, sortkey, data) VALUES ({ph}, {ph}, {ph}) "
                    "ON CONFLICT (zone_id, sortkey) DO UPDATE SET data = excluded.data",
                    (zone_id, sort_key(owner), data))


def delete_node(session: Session, zone_id: int, owner: bytes, *, over_image: bool) -> None:
    """Forget one owner's node: its row deleted, or, ``over_image`` (the zone has an image,
    ``has_image``), a GONE row written over the image's."""
    if over_image:
        _upsert_node(session, zone_id, owner, GONE)
    else:
        session.execute(delete(Node).where(Node.zone_id == zone_id, Node.sortkey == sort_key(owner)))


def replace_all(
    session: Session,
    zone_id: int,
    rrset_rows: list[tuple[str, int, int, str]],
    nodes: Mapping[bytes, bytes | tuple[bytes, ...]],
    *,
    fresh: bool = False,
) -> None:
    """Swap a primary zone's whole content (create, import, promote) inside the caller's
    transaction: its ``rrsets`` rows, and its node table stored whole as an image (no row
    per owner: a million rows cost ~3 s to write; the edits after it write rows over it).
    ``fresh``: the zone row was made in this transaction, so there is nothing to delete
    (the ORM bulk deletes were an eighth of the time of creating a small zone)."""
    if not fresh:
        session.execute(delete(RRset).where(RRset.zone_id == zone_id))
        session.execute(delete(Node).where(Node.zone_id == zone_id))
    session.flush()
    patch_rrsets(session, zone_id, [], rrset_rows)
    save_image(session, zone_id, nodes, fresh=fresh)


def patch_rrsets(session: Session, zone_id: int, gone: list[tuple[str, int]],
                 rrset_rows: list[tuple[str, int, int, str]]) -> None:
    """Delete a zone's ``rrsets`` rows of keys ``gone`` (name, type), then insert
    ``rrset_rows`` (a re-import writes only the RRsets that differ)."""
    with cursor(session) as (cur, ph):
        # Straight through the driver: ~5x faster than the ORM at 1M rows.
        if gone:
            cur.executemany(f"DELETE FROM rrsets WHERE zone_id = {ph} AND name = {ph} AND type = {ph}",
                            [(zone_id, name, rdtype) for name, rdtype in gone])
        # The zone's id written into the statement (an int from our own row): the rows go
        # to the driver as they are, not copied into a tuple each with the id in front
        # (~0.35 s of a million-row insert, and a million tuples less held meanwhile).
        cur.executemany(
            f"INSERT INTO rrsets (zone_id, name, type, ttl, records) VALUES ({int(zone_id)}, {ph}, {ph}, {ph}, {ph})",
            rrset_rows,
        )


def save_image(session: Session, zone_id: int, nodes: Mapping[bytes, bytes | tuple[bytes, ...]],
               *, fresh: bool = False) -> None:
    """Replace a zone's stored node table (same transaction as the rest): a secondary's
    served form, or a primary's image under its edited rows."""
    if not fresh:
        session.execute(delete(ZoneImage).where(ZoneImage.zone_id == zone_id))
        session.flush()
    with cursor(session) as (cur, ph):
        # A generator: each chunk is marshalled as it is inserted, so the image is never
        # held whole in memory beside the node table (73 MB at a million records).
        cur.executemany(f"INSERT INTO zone_images (zone_id, chunk, data) VALUES ({ph}, {ph}, {ph})",
                        ((zone_id, i, c) for i, c in enumerate(pack_nodes(nodes))))


def drop_content(session: Session, zone_id: int) -> None:
    """Forget a primary zone's RRsets and nodes (it became a secondary zone: its image,
    written next by ``save_image``, holds the content from now on)."""
    session.execute(delete(RRset).where(RRset.zone_id == zone_id))
    session.execute(delete(Node).where(Node.zone_id == zone_id))


def load_image_chunks(session: Session, zone_id: int) -> list[bytes]:
    """A secondary zone's stored image, as its chunks in order (empty: never loaded)."""
    with cursor(session) as (cur, ph):
        cur.execute(f"SELECT data FROM zone_images WHERE zone_id = {ph} ORDER BY chunk", (zone_id,))
        return [bytes(d) for (d,) in cur]


def load_image(session: Session, zone_id: int) -> dict[bytes, bytes | tuple[bytes, ...]] | None:
    """A zone's stored image (a secondary's served form, a primary's table under its
    edited rows); None if there is none. ValueError if it cannot be read."""
    chunks = load_image_chunks(session, zone_id)
    return unpack_nodes(chunks) if chunks else None


def add_journal(
    session: Session,
    zone_id: int,
    serial_from: int,
    serial_to: int,
    removed: bytes,
    added: bytes,
    *,
    max_count: int,
    max_bytes: int | None,
    max_age_seconds: int | None,
) -> None:
    """Append one changeset and trim the zone's journal to its limits (same transaction).

    Counted from the newest entry (this one, which always stays): an entry past
    ``max_count``, past ``max_bytes`` in all, or older than ``max_age_seconds`` goes with
    every older one. Each limit's cut is found by the index of (zone, id) without reading
    the journal into Python (the bytes limit, when set, reads sizes only as far as it is
    reached): reading every entry back on each change cost ~7 ms at 1,000 entries, more
    than the rest of a one-record edit."""
    entry = JournalEntry(
        zone_id=zone_id,
        serial_from=serial_from,
        serial_to=serial_to,
        removed=removed,
        added=added,
        size_bytes=len(removed) + len(added),
    )
    session.add(entry)
    session.flush()
    newest = entry.id
    cuts = [session.scalar(_JOURNAL_PAST_COUNT, {"zone_id": zone_id, "max_count": max_count})]
    if max_age_seconds is not None:
        oldest = datetime.now(UTC) - timedelta(seconds=max_age_seconds)
        cuts.append(session.scalar(_JOURNAL_TOO_OLD, {"zone_id": zone_id, "newest": newest,
                                                      "oldest": oldest}))
    if max_bytes is not None:
        total = 0
        sizes = session.execute(_JOURNAL_SIZES, {"zone_id": zone_id})
        try:
            for entry_id, size in sizes:
                total += size
                if entry_id != newest and total > max_bytes:
                    cuts.append(entry_id)
                    break
        finally:
            sizes.close()
    cut = max((c for c in cuts if c is not None), default=None)
    if cut is not None:
        session.execute(delete(JournalEntry).where(JournalEntry.zone_id == zone_id,
                                                   JournalEntry.id <= cut))


# add_journal's cuts: the newest entry with max_count newer ones; the newest older than a
# time, but the newest of all; the zone's entries newest first, with their sizes.
_JOURNAL_PAST_COUNT = (select(JournalEntry.id)
                       .where(JournalEntry.zone_id == bindparam("zone_id"))
                       .order_by(JournalEntry.id.desc())
                       .limit(1).offset(bindparam("max_count", type_=Integer)))
_JOURNAL_TOO_OLD = (select(func.max(JournalEntry.id))
                    .where(JournalEntry.zone_id == bindparam("zone_id"),
                           JournalEntry.id < bindparam("newest"),
                           JournalEntry.created_at < bindparam("oldest",
                                                               type_=JournalEntry.created_at.type)))
_JOURNAL_SIZES = (select(JournalEntry.id, JournalEntry.size_bytes)
                  .where(JournalEntry.zone_id == bindparam("zone_id"))
                  .order_by(JournalEntry.id.desc()))


def read_journal(session: Session, zone_id: int) -> list[tuple[int, int, bytes, bytes]]:
    return [
        (a, b, c, d)
        for a, b, c, d in session.execute(
            select(JournalEntry.serial_from, JournalEntry.serial_to, JournalEntry.removed,
                   JournalEntry.added)
            .where(JournalEntry.zone_id == zone_id)
            .order_by(JournalEntry.id)
        )
    ]


def journal_sizes(session: Session) -> dict[int, tuple[int, int]]:
    """Every zone's journal: zone id -> (changes kept, bytes)."""
    rows = session.execute(
        select(JournalEntry.zone_id, func.count(), func.coalesce(func.sum(JournalEntry.size_bytes), 0))
        .group_by(JournalEntry.zone_id)
    )
    return {zone_id: (int(n), int(size)) for zone_id, n, size in rows}


def recent_journal(session: Session, zone_id: int, limit: int) -> list[tuple[int, int, bytes, bytes]]:
    """The zone's newest ``limit`` journal rows (a node catching up reads only these)."""
    rows = session.execute(
        select(JournalEntry.serial_from, JournalEntry.serial_to, JournalEntry.removed,
               JournalEntry.added)
        .where(JournalEntry.zone_id == zone_id)
        .order_by(JournalEntry.id.desc()).limit(limit)
    )
    return [(a, b, bytes(c), bytes(d)) for a, b, c, d in rows]


def nodes_at(session: Session, zone_id: int, owners: Iterable[bytes]
             ) -> dict[bytes, bytes | tuple[bytes, ...] | None]:
    """The stored ``nodes`` rows of ``owners`` (those that have one): the node, or None
    for a GONE row (an owner deleted over the zone's image)."""
    keys = sorted({sort_key(o) for o in owners})
    out: dict[bytes, bytes | tuple[bytes, ...] | None] = {}
    for i in range(0, len(keys), 500):
        with cursor(session) as (cur, ph):
            chunk = keys[i : i + 500]
            cur.execute(f"SELECT sortkey, data FROM nodes WHERE zone_id = {ph} AND sortkey IN "
                        f"({', '.join([ph] * len(chunk))})", (zone_id, *chunk))
            for sk, d in cur:
                d = bytes(d)
                out[key_of_sort_key(bytes(sk))] = None if d == GONE else decode_node(d)
    return out
