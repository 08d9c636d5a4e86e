"""What the schema tests do the same on SQLite (tests/unit/test_schema.py) and PostgreSQL
(tests/integration/test_postgres.py): a database at 0001 holding a secondary zone stored one
row per owner, as 0002 finds it."""

from __future__ import annotations

from sqlalchemy import text

from zonekeeper.proto.rrwire import encode_node, sort_key
from zonekeeper.storage.db import Database


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
            conn.execute(text(
                "INSERT INTO zones (id, name, kind, serial, serial_policy, state, change_id,"
                " outgoing_enabled, notify_ns, notify_delay, ixfr_max_ratio, created_at,"
                " updated_at) VALUES (:i, :n, :k, 5, 'increment', 'ok', 1, :t, :f, 0, 1.0,"
                " '2026-01-01', '2026-01-01')"),
                {"i": zid, "n": f"z{zid}.test.", "k": kind, "t": True, "f": False})
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
        conn.execute(text(
            "INSERT INTO zones (id, name, kind, serial, serial_policy, state, change_id,"
            " outgoing_enabled, notify_ns, notify_delay, ixfr_max_ratio, created_at,"
            " updated_at) VALUES (1, 'z1.test.', 'primary', 5, 'increment', 'ok', 1, :t, :f, 0,"
            " 1.0, '2026-01-01', '2026-01-01')"), {"t": True, "f": False})


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
