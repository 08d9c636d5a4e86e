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
