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
