"""Schema versions: the code's idea of the head matches Alembic's; old and new databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from zonekeeper.storage.db import SCHEMA_HEAD, Database, SchemaError


def test_schema_head_matches_alembic(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        _current, head = db.schema_state()
        assert head == SCHEMA_HEAD
    finally:
        db.dispose()


def test_new_database_is_created_and_unknown_versions_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        db.prepare(migrate=False)
        assert db.current_revision() == SCHEMA_HEAD
        with db.write_engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="newer than this zonekeeper"):
            db.prepare(migrate=False)
    finally:
        db.dispose()


def test_foreign_tables_are_not_touched(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with db.write_engine.begin() as conn:
            conn.execute(text("CREATE TABLE other (x INTEGER)"))
        with pytest.raises(SchemaError, match="no zonekeeper schema version"):
            db.prepare(migrate=False)
    finally:
        db.dispose()


def test_0002_moves_secondary_zones_into_images(tmp_path: Path) -> None:
    """A database at 0001 whose secondary zone is stored one row per owner: upgraded, the
    zone's nodes are in its image (the same table), and its rows are gone."""
    from alembic import command

    from zonekeeper.proto.rrwire import encode_node, make_blob, sort_key
    from zonekeeper.storage import repo

    db = Database(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        cfg = db._alembic_config()
        with db.write_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
        nodes = {b"\x07example\x04test\x00": make_blob(6, 300, [b"\x00" * 22]),
                 b"\x03www\x07example\x04test\x00": make_blob(1, 60, [b"\xc0\x00\x02\x01"]),
                 b"\x01a\x03www\x07example\x04test\x00": (make_blob(1, 60, [b"\x01\x02\x03\x04"]),
                                                         make_blob(16, 60, [b"\x02hi"]))}
        with db.write_engine.begin() as conn:
            for zid, kind in ((1, "secondary"), (2, "primary")):
                conn.execute(text(
                    "INSERT INTO zones (id, name, kind, serial, serial_policy, state, change_id,"
                    " outgoing_enabled, notify_ns, notify_delay, ixfr_max_ratio, created_at, updated_at)"
                    " VALUES (:i, :n, :k, 5, 'increment', 'ok', 1, 1, 0, 0, 1.0,"
                    " '2026-01-01', '2026-01-01')"), {"i": zid, "n": f"z{zid}.test.", "k": kind})
                for k, v in nodes.items():
                    conn.execute(text("INSERT INTO nodes (zone_id, owner, sortkey, data) "
                                      "VALUES (:z, :o, :s, :d)"),
                                 {"z": zid, "o": k, "s": sort_key(k), "d": encode_node(v)})
        db.prepare(migrate=True)
        assert db.current_revision() == SCHEMA_HEAD
        with db.read() as s:
            assert repo.load_image(s, 1) == nodes
            assert repo.load_nodes(s, 1) == {}
            assert repo.load_image(s, 2) is None and repo.load_nodes(s, 2) == nodes
    finally:
        db.dispose()
