"""Schema versions: the code's idea of the head matches Alembic's; old and new databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from tests.schema_cases import (
    at_0001_with_a_secondary,
    catalog_member_peer_added,
    ids_never_reused,
    nodes_keyed_by_sort_key,
    notify_owed_kept,
    peer_key_use_kept,
    primary_images_downgraded,
    rrset_owners_lowered,
    rrsets_zone_index_dropped,
    xot_flags_added,
)
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
    from zonekeeper.proto.rrwire import make_blob
    from zonekeeper.storage import repo

    db = Database(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        nodes = {b"\x07example\x04test\x00": make_blob(6, 300, [b"\x00" * 22]),
                 b"\x03www\x07example\x04test\x00": make_blob(1, 60, [b"\xc0\x00\x02\x01"]),
                 b"\x01a\x03www\x07example\x04test\x00": (make_blob(1, 60, [b"\x01\x02\x03\x04"]),
                                                         make_blob(16, 60, [b"\x02hi"]))}
        at_0001_with_a_secondary(db, nodes)
        db.prepare(migrate=True)
        assert db.current_revision() == SCHEMA_HEAD
        with db.read() as s:
            assert repo.load_image(s, 1) == nodes
            assert repo.node_rows(s, 1) == []
            assert repo.load_image(s, 2) is None and repo.load_nodes(s, 2) == nodes
    finally:
        db.dispose()


def test_0005_keeps_owed_notifies(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        notify_owed_kept(db)
    finally:
        db.dispose()


def test_0006_peers_keep_their_key_for_both(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        peer_key_use_kept(db)
    finally:
        db.dispose()


def test_0007_ids_are_never_reused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        ids_never_reused(db)
    finally:
        db.dispose()


def test_0012_peers_and_rules_stay_cleartext(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        xot_flags_added(db)
    finally:
        db.dispose()


def test_0013_catalogs_have_no_member_peer(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        catalog_member_peer_added(db)
    finally:
        db.dispose()


def test_0014_rrsets_keep_one_index_by_zone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        rrsets_zone_index_dropped(db)
    finally:
        db.dispose()


def test_0015_nodes_keyed_by_sort_key(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        nodes_keyed_by_sort_key(db)
    finally:
        db.dispose()


def test_0016_rrset_owners_in_lower_case(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        rrset_owners_lowered(db)
    finally:
        db.dispose()


def test_0017_primary_images_downgraded(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'i.db'}")
    try:
        primary_images_downgraded(db)
    finally:
        db.dispose()
