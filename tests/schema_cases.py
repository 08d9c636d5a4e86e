"""What the schema tests do the same on SQLite (tests/unit/test_schema.py) and PostgreSQL
(tests/integration/test_postgres.py): a database at 0001 holding a secondary zone stored one
row per owner, as 0002 finds it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from zonekeeper.proto.rrwire import encode_node, sort_key
from zonekeeper.storage.db import SCHEMA_HEAD, Database


def insert_zone_row(conn: Any, zone_id: int, name: str, kind: str) -> None:
    """A ``zones`` row as every revision since 0001 takes it (serial 5, state ok)."""
    conn.execute(text(
        "INSERT INTO zones (id, name, kind, serial, serial_policy, state, change_id,"
        " outgoing_enabled, notify_ns, notify_delay, ixfr_max_ratio, created_at,"
        " updated_at) VALUES (:i, :n, :k, 5, 'increment', 'ok', 1, :t, :f, 0, 1.0,"
        " '2026-01-01', '2026-01-01')"),
        {"i": zone_id, "n": name, "k": kind, "t": True, "f": False})


def at_0001_with_a_secondary(db: Database, nodes: dict[bytes, object]) -> None:
    """Bring ``db`` to revision 0001 and store ``nodes`` one row per owner for zone 1
    (secondary) and zone 2 (primary)."""
    from alembic import command

    cfg = db._alembic_config()
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with db.write_engine.begin() as conn:
        for zid, kind in ((1, "secondary"), (2, "primary")):
            insert_zone_row(conn, zid, f"z{zid}.test.", kind)
            for k, v in nodes.items():
                conn.execute(text("INSERT INTO nodes (zone_id, owner, sortkey, data) "
                                  "VALUES (:z, :o, :s, :d)"),
                             {"z": zid, "o": k, "s": sort_key(k), "d": encode_node(v)})  # type: ignore[arg-type]


def at(db: Database, revision: str) -> None:
    """Bring ``db`` to ``revision`` with one primary zone (id 1, ``z1.test.``)."""
    from alembic import command

    cfg = db._alembic_config()
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    with db.write_engine.begin() as conn:
        insert_zone_row(conn, 1, "z1.test.", "primary")


def notify_owed_kept(db: Database) -> None:
    """Schema 0005 on a database at 0004: owed NOTIFYs are stored per zone and target (an NS
    target's NAME@ADDRESS can be long), with 32-bit serials, and go with their zone."""
    from sqlalchemy import delete, select

    from zonekeeper.storage.models import NotifyOwed, Zone

    at(db, "0004")
    db.prepare(migrate=True)
    target = "n" * 250 + ".@2001:db8::53"
    with db.write() as s:
        s.add(NotifyOwed(zone_id=1, target="ns2", serial=2**32 - 1))
        s.add(NotifyOwed(zone_id=1, target=target, serial=7))
    with db.read() as s:
        rows = {(r.target, r.serial) for r in s.scalars(select(NotifyOwed))}
        assert rows == {("ns2", 2**32 - 1), (target, 7)}
    with db.write() as s:
        s.execute(delete(Zone).where(Zone.id == 1))
    with db.read() as s:
        assert list(s.scalars(select(NotifyOwed))) == []


def peer_key_use_kept(db: Database) -> None:
    """Schema 0006 on a database at 0005 holding a peer with a key: the peer keeps signing
    NOTIFY and transfers ("both"); new peers may say "notify" or "transfer"."""
    from sqlalchemy import select

    from zonekeeper.storage.models import Peer

    at(db, "0005")
    with db.write_engine.begin() as conn:
        # (No explicit ids: PostgreSQL's sequences would not know of them.)
        conn.execute(text("INSERT INTO tsig_keys (name, algorithm, secret, created_at) "
                          "VALUES ('k.', 'hmac-sha256', 'c2VjcmV0', '2026-01-01')"))
        key_id = conn.execute(text("SELECT id FROM tsig_keys")).scalar_one()
        conn.execute(text("INSERT INTO peers (name, address, port, tsig_key_id, notify, ixfr,"
                          " transfer_from) VALUES ('old', '192.0.2.53', 53, :k, :t, :t, '[]')"),
                     {"t": True, "k": key_id})
    db.prepare(migrate=True)
    with db.write() as s:
        s.add(Peer(name="new", address="192.0.2.54", port=53, tsig_key_id=key_id, notify=True,
                   ixfr=True, transfer_from="[]", key_use="notify"))
    with db.read() as s:
        uses = {p.name: p.key_use for p in s.scalars(select(Peer))}
        assert uses == {"old": "both", "new": "notify"}


def ids_never_reused(db: Database) -> None:
    """Schema 0007 on a database at 0006 holding rules, a zone's rows and a peer link: rows
    and references are kept, foreign keys are enforced again afterwards, and the id of the
    newest rule or zone, once deleted, is not given out again."""
    from sqlalchemy import delete, func, select

    from zonekeeper.storage.models import AclRule, JournalEntry, RRset, Zone, ZonePeer

    at(db, "0006")
    with db.write_engine.begin() as conn:
        for net in ("192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"):
            conn.execute(text("INSERT INTO acl_rules (zone_id, action, network, effect, created_at)"
                              " VALUES (1, 'transfer', :n, 'allow', '2026-01-01')"), {"n": net})
        conn.execute(text("INSERT INTO rrsets (zone_id, name, type, ttl, records) "
                          "VALUES (1, 'z1.test.', 1, 60, '[]')"))
        conn.execute(text("INSERT INTO journal (zone_id, serial_from, serial_to, removed, added,"
                          " size_bytes, created_at) VALUES (1, 4, 5, :b, :b, 0, '2026-01-01')"),
                     {"b": b""})
        conn.execute(text("INSERT INTO peers (name, address, port, notify, ixfr, transfer_from,"
                          " key_use) VALUES ('p', '192.0.2.53', 53, :t, :t, '[]', 'both')"),
                     {"t": True})
        peer_id = conn.execute(text("SELECT id FROM peers")).scalar_one()
        conn.execute(text("INSERT INTO zone_peers (zone_id, peer_id, role, position) "
                          "VALUES (1, :p, 'secondary', 0)"), {"p": peer_id})
    db.prepare(migrate=True)
    assert db.current_revision() == SCHEMA_HEAD  # 0008 after it keeps AUTOINCREMENT
    with db.read() as s:
        rules = list(s.scalars(select(AclRule).order_by(AclRule.id)))
        assert [r.network for r in rules] == ["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"]
    # (An id deleted before the migration may still come back once: SQLite did not keep it.)
    newest = rules[-1].id
    with db.write() as s:
        s.execute(delete(AclRule).where(AclRule.id == newest))
        assert s.scalar(select(func.count()).select_from(RRset)) == 1
        assert s.scalar(select(func.count()).select_from(JournalEntry)) == 1
        assert s.scalar(select(func.count()).select_from(ZonePeer)) == 1
    with db.write() as s:
        rule = AclRule(zone_id=1, action="transfer", network="192.0.2.4/32", effect="allow")
        s.add(rule)
        s.flush()
        assert rule.id > newest, (rule.id, newest)
        s.delete(rule)
    with db.write() as s:
        again = AclRule(zone_id=None, action="notify", network="192.0.2.5/32", effect="allow")
        s.add(again)
        s.flush()
        assert again.id > rule.id
    # Deleting the zone still cascades (enforcement is back on); a deleted zone's id stays
    # taken. (Not zone 1's on PostgreSQL: ``at`` inserted it with an explicit id.)
    with db.write() as s:
        s.execute(delete(ZonePeer))
        s.execute(delete(Zone).where(Zone.id == 1))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(RRset)) == 0
        assert s.scalar(select(func.count()).select_from(JournalEntry)) == 0
        assert [r.network for r in s.scalars(select(AclRule))] == ["192.0.2.5/32"]
    with db.write() as s:
        z2 = Zone(name="z2.test.", kind="primary", serial=1, change_id=1)
        s.add(z2)
    with db.write() as s:
        s.execute(delete(Zone).where(Zone.id == z2.id))
        z3 = Zone(name="z3.test.", kind="primary", serial=1, change_id=1)
        s.add(z3)
        s.flush()
        assert z3.id > z2.id, (z3.id, z2.id)


def xot_flags_added(db: Database) -> None:
    """Schema 0012 on a database at 0009 holding a peer and a transfer rule: both stay
    cleartext (tls_only false; the peer not reached over TLS) and keep their rows; new ones
    may be TLS only, and a primary may be reached over TLS with a name and a pin."""
    from sqlalchemy import select

    from zonekeeper.storage.models import AclRule, Peer

    at(db, "0009")
    with db.write_engine.begin() as conn:
        conn.execute(text("INSERT INTO peers (name, address, port, notify, ixfr, transfer_from,"
                          " key_use) VALUES ('old', '192.0.2.53', 53, :t, :t, '[]', 'both')"),
                     {"t": True})
        conn.execute(text("INSERT INTO acl_rules (zone_id, action, network, effect, created_at)"
                          " VALUES (1, 'transfer', '192.0.2.0/24', 'allow', '2026-01-01')"))
    db.prepare(migrate=True)
    assert db.current_revision() == SCHEMA_HEAD
    with db.write() as s:
        s.add(Peer(name="new", address="192.0.2.54", port=853, notify=True, ixfr=True,
                   transfer_from="[]", key_use="both", tls_only=True, tls=True,
                   tls_verify="ns.example", tls_spki="A" * 43 + "="))
        s.add(AclRule(zone_id=1, action="transfer", network="198.51.100.0/24",
                      effect="allow", tls_only=True))
    with db.read() as s:
        peers = {p.name: (p.tls_only, p.tls, p.tls_verify, p.tls_spki)
                 for p in s.scalars(select(Peer))}
        assert peers == {"old": (False, False, None, None),
                         "new": (True, True, "ns.example", "A" * 43 + "=")}
        rules = {r.network: r.tls_only for r in s.scalars(select(AclRule))}
        assert rules == {"192.0.2.0/24": False, "198.51.100.0/24": True}


def catalog_member_peer_added(db: Database) -> None:
    """Schema 0013 on a database at 0012 holding a catalog: it has no member peer (its
    members stay hand ones); the automatic-member rows go with either zone."""
    from sqlalchemy import delete, select

    from zonekeeper.storage.models import CatalogAuto, Zone

    at(db, "0012")
    with db.write_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO zones (id, name, kind, serial, serial_policy, state, change_id,"
            " outgoing_enabled, notify_ns, notify_delay, ixfr_max_ratio, created_at,"
            " updated_at) VALUES (2, 'cat.test.', 'catalog', 1, 'increment', 'ok', 1, :t, :f,"
            " 0, 1.0, '2026-01-01', '2026-01-01')"), {"t": True, "f": False})
    db.prepare(migrate=True)
    assert db.current_revision() == SCHEMA_HEAD
    with db.write() as s:
        assert s.get(Zone, 2).member_peer is None  # type: ignore[union-attr]
        s.get(Zone, 2).member_peer = "consumer"  # type: ignore[union-attr]
        s.add(CatalogAuto(catalog_id=2, zone_id=1))
    with db.write() as s:
        assert [(a.catalog_id, a.zone_id) for a in s.scalars(select(CatalogAuto))] == [(2, 1)]
        s.execute(delete(Zone).where(Zone.id == 1))
    with db.read() as s:
        assert list(s.scalars(select(CatalogAuto))) == []
        assert s.get(Zone, 2).member_peer == "consumer"  # type: ignore[union-attr]


def rrsets_zone_index_dropped(db: Database) -> None:
    """Schema 0014 on a database at 0013 holding a zone's RRsets: the index on zone_id alone
    is gone, the unique (zone, name, type) one stays and still refuses a second row for the
    same RRset; the rows are read by zone as before and go with their zone."""
    import sqlalchemy as sa
    from sqlalchemy import delete, select

    from zonekeeper.storage.models import RRset, Zone

    at(db, "0013")
    with db.write_engine.begin() as conn:
        for name in ("z1.test.", "www.z1.test."):
            conn.execute(text("INSERT INTO rrsets (zone_id, name, type, ttl, records)"
                              " VALUES (1, :n, 1, 300, '[]')"), {"n": name})
    db.prepare(migrate=True)
    assert db.current_revision() == SCHEMA_HEAD
    insp = sa.inspect(db.write_engine)
    assert "ix_rrsets_zone_id" not in {i["name"] for i in insp.get_indexes("rrsets")}
    assert [u["column_names"] for u in insp.get_unique_constraints("rrsets")] == [["zone_id", "name", "type"]]
    with db.read() as s:
        assert sorted(r.name for r in s.scalars(select(RRset).where(RRset.zone_id == 1))) == [
            "www.z1.test.", "z1.test."]
    try:
        with db.write() as s:
            s.add(RRset(zone_id=1, name="www.z1.test.", type=1, ttl=60, records="[]"))
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a second row for the same RRset was accepted")
    with db.write() as s:
        s.execute(delete(Zone).where(Zone.id == 1))
    with db.read() as s:
        assert list(s.scalars(select(RRset))) == []


def nodes_keyed_by_sort_key(db: Database) -> None:
    """Schema 0015 on a database at 0014 holding a zone's node rows: the table is keyed by
    (zone_id, sortkey) alone, with no owner column and no other index; the nodes read back
    as they were stored, by zone and by owner; writes and the cascade work."""
    import sqlalchemy as sa
    from sqlalchemy import delete

    from zonekeeper.proto.rrwire import encode_node, make_blob, sort_key
    from zonekeeper.storage import repo
    from zonekeeper.storage.models import Zone

    apex, www, deep = b"\x02z1\x04test\x00", b"\x03www\x02z1\x04test\x00", b"\x01a\x01b\x02z1\x04test\x00"
    nodes = {apex: make_blob(6, 300, [b"\x00" * 22]), www: (make_blob(1, 60, [b"\x01\x02\x03\x04"]),
                                                            make_blob(16, 60, [b"\x02hi"])),
             b"\x01b\x02z1\x04test\x00": b"", deep: make_blob(1, 60, [b"\x05\x06\x07\x08"])}
    at(db, "0014")
    with db.write_engine.begin() as conn:
        for k, v in nodes.items():
            conn.execute(text("INSERT INTO nodes (zone_id, owner, sortkey, data) VALUES (1, :o, :s, :d)"),
                         {"o": k, "s": sort_key(k), "d": encode_node(v)})  # type: ignore[arg-type]
    db.prepare(migrate=True)
    assert db.current_revision() == SCHEMA_HEAD
    insp = sa.inspect(db.write_engine)
    assert [c["name"] for c in insp.get_columns("nodes")] == ["zone_id", "sortkey", "data"]
    assert insp.get_pk_constraint("nodes")["constrained_columns"] == ["zone_id", "sortkey"]
    assert insp.get_indexes("nodes") == []
    with db.read() as s:
        assert repo.load_nodes(s, 1) == nodes
        assert repo.nodes_at(s, 1, [www, deep, b"\x04gone\x02z1\x04test\x00"]) == {www: nodes[www], deep: nodes[deep]}
    with db.write() as s:
        repo.delete_node(s, 1, deep, over_image=False)
        repo.put_node(s, 1, www, b"")
    with db.read() as s:
        assert repo.load_nodes(s, 1) == {**{k: v for k, v in nodes.items() if k != deep}, www: b""}
    with db.write() as s:
        s.execute(delete(Zone).where(Zone.id == 1))
    with db.read() as s:
        assert repo.load_nodes(s, 1) == {}


def rrset_owners_lowered(db: Database) -> None:
    """Schema 0016 on a database at 0015 holding owners as zone text spelled them: every
    owner in lower case; of rows that differ only by case, the one whose records the
    zone's node serves stays (an older row an edit rewrote in place), else the newest
    (highest id), whichever spelling it had; other rows are untouched."""
    from sqlalchemy import select

    from zonekeeper.proto.rrwire import make_blob
    from zonekeeper.storage.models import RRset

    at(db, "0015")
    rows = [("Z1.Test.", 6, "soa"), ("WWW.z1.test.", 1, "old-a"), ("www.z1.test.", 1, "new-a"),
            ("www.z1.test.", 28, "old-aaaa"), ("Www.Z1.test.", 28, "new-aaaa"),
            ("WWW.Z1.TEST.", 28, "newest-aaaa"), ("mail.z1.test.", 15, "mx"),
            ("Mail.z1.test.", 16, "txt"), ("ftp.z1.test.", 1, "192.0.2.1"),
            ("FTP.z1.test.", 1, "192.0.2.2")]
    ftp = b"\x03ftp\x02z1\x04test\x00"
    with db.write_engine.begin() as conn:  # ftp serves the older row's address
        conn.execute(text("INSERT INTO nodes (zone_id, sortkey, data) VALUES (1, :s, :d)"),
                     {"s": sort_key(ftp), "d": encode_node(make_blob(1, 300, [bytes([192, 0, 2, 1])]))})
    with db.write_engine.begin() as conn:
        for name, rdtype, content in rows:  # ids in this order
            conn.execute(text("INSERT INTO rrsets (zone_id, name, type, ttl, records)"
                              " VALUES (1, :n, :t, 300, :r)"),
                         {"n": name, "t": rdtype, "r": f'[{{"content":"{content}","disabled":false}}]'})
    db.prepare(migrate=True)
    assert db.current_revision() == SCHEMA_HEAD
    with db.read() as s:
        got = sorted((r.name, r.type, r.records.split('"')[3])
                     for r in s.scalars(select(RRset).where(RRset.zone_id == 1)))
    assert got == [("ftp.z1.test.", 1, "192.0.2.1"),
                   ("mail.z1.test.", 15, "mx"), ("mail.z1.test.", 16, "txt"),
                   ("www.z1.test.", 1, "new-a"), ("www.z1.test.", 28, "newest-aaaa"),
                   ("z1.test.", 6, "soa")]


def primary_images_downgraded(db: Database) -> None:
    """Schema 0017 stores a primary zone's table as an image with its edits as rows over it
    (GONE for an owner deleted); downgraded to 0016, each primary zone's whole table is
    rows again (what an older zonekeeper reads) and its image gone, a secondary's image
    kept; upgraded again, the zone loads as it was served."""
    import asyncio

    import dns.name
    import dns.rdata
    from alembic import command

    from zonekeeper.proto.rrwire import GONE, make_blob
    from zonekeeper.services.zones import RRsetChange, ZoneService, ZoneSpec
    from zonekeeper.storage import repo
    from zonekeeper.zones.model import Record
    from zonekeeper.zones.snapshot import Registry

    origin = dns.name.from_text("img.test.")
    db.prepare(migrate=True)
    assert db.current_revision() == SCHEMA_HEAD == "0017"
    service = ZoneService(db, Registry())

    async def make() -> None:
        await service.create(ZoneSpec(name=origin, zone_text=(
            "$TTL 300\n@ SOA ns1 h 1 3600 900 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n"
            "a.b A 192.0.2.2\nc.b A 192.0.2.3\nwww A 192.0.2.4\n")))
        await service.patch_rrsets(origin, [
            RRsetChange(dns.name.from_text("a.b", origin), 1, "DELETE"),
            RRsetChange(dns.name.from_text("www", origin), 1, "DELETE"),
            RRsetChange(dns.name.from_text("new", origin), 1, "REPLACE", 60,
                        [Record(dns.rdata.from_text("IN", "A", "192.0.2.9"))])])

    asyncio.run(make())
    snap = service.registry.get(origin)
    assert snap is not None
    served = dict(snap.nodes.items())
    secondary = {b"\x02s2\x04test\x00": make_blob(6, 300, [b"\x00" * 22])}
    with db.write_engine.begin() as conn:
        insert_zone_row(conn, 99, "s2.test.", "secondary")
    with db.write() as s:
        repo.save_image(s, 99, secondary)
        assert repo.has_image(s, snap.zone_id)
        assert any(d == GONE for _sk, d in repo.node_rows(s, snap.zone_id))
    cfg = db._alembic_config()
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0016")
    with db.read() as s:
        assert not repo.has_image(s, snap.zone_id)
        assert all(d != GONE for _sk, d in repo.node_rows(s, snap.zone_id))
        assert dict(repo.load_nodes(s, snap.zone_id).items()) == served
        assert repo.load_image(s, 99) == secondary
    db.prepare(migrate=True)
    again = ZoneService(db, Registry())
    again.load_all()
    loaded = again.registry.get(origin)
    assert loaded is not None and dict(loaded.nodes.items()) == served
