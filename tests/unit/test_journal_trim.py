"""storage.repo.add_journal trims a zone's journal in SQL (a window over its entries); it
must keep exactly what the rule says, on SQLite and on PostgreSQL: counted from the newest
entry, which always stays, an entry past ``max_count``, past ``max_bytes`` in all, or older
than ``max_age_seconds`` goes with every older one. The reference here is that rule written
out in Python (the way add_journal did it before, reading every entry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import JournalEntry, Zone

NOW = datetime.now(UTC)

entries = st.lists(st.tuples(st.integers(0, 500), st.integers(0, 7200)), max_size=30)
limits = st.tuples(st.integers(1, 35), st.none() | st.integers(1, 6000),
                   st.none() | st.integers(1, 7200))


def kept_by_the_rule(rows: list[tuple[int, int, datetime]], max_count: int,
                     max_bytes: int | None, max_age: int | None) -> list[int]:
    """The ids kept, from (id, size, created_at) oldest first."""
    now = datetime.now(UTC)
    total = 0
    for i, (entry_id, size, created) in enumerate(reversed(rows)):
        total += size
        too_old = max_age is not None and i > 0 and (now - created).total_seconds() > max_age
        if i >= max_count or (max_bytes is not None and i > 0 and total > max_bytes) or too_old:
            return [r[0] for r in rows if r[0] > entry_id]
    return [r[0] for r in rows]


def _database(url: str) -> tuple[Database, int]:
    db = Database(url)
    db.prepare(migrate=False)
    with db.write() as s:
        z = Zone(name="j.test.", kind="primary", serial=1)
        s.add(z)
        s.flush()
        return db, z.id


def _rows(db: Database, zone_id: int) -> list[tuple[int, int, datetime]]:
    with db.read() as s:
        return [(i, n, c if c.tzinfo else c.replace(tzinfo=UTC)) for i, n, c in s.execute(
            select(JournalEntry.id, JournalEntry.size_bytes, JournalEntry.created_at)
            .where(JournalEntry.zone_id == zone_id).order_by(JournalEntry.id))]


def _check(db: Database, zone_id: int, old: list[tuple[int, int]],
           limit: tuple[int, int | None, int | None]) -> None:
    max_count, max_bytes, max_age = limit
    with db.write() as s:
        s.execute(delete(JournalEntry).where(JournalEntry.zone_id == zone_id))
        for size, age in old:  # oldest first (ages need not fall: any order is a case)
            s.add(JournalEntry(zone_id=zone_id, serial_from=1, serial_to=2, removed=b"",
                               added=b"x" * size, size_bytes=size,
                               created_at=NOW - timedelta(seconds=age)))
    before = _rows(db, zone_id)
    with db.write() as s:
        repo.add_journal(s, zone_id, 2, 3, b"", b"y" * 10, max_count=max_count,
                         max_bytes=max_bytes, max_age_seconds=max_age)
    after = _rows(db, zone_id)
    new = after[-1]
    assert new[0] not in {r[0] for r in before} and new[1] == 10
    assert [r[0] for r in after] == kept_by_the_rule(before + [new], max_count, max_bytes,
                                                     max_age)


@settings(max_examples=60, deadline=None)
@given(old=entries, limit=limits)
def test_sqlite_trim_keeps_what_the_rule_keeps(tmp_path_factory: pytest.TempPathFactory,
                                                old: list[tuple[int, int]],
                                                limit: tuple[int, int | None, int | None]) -> None:
    db, zone_id = _database(f"sqlite:///{tmp_path_factory.mktemp('j') / 'j.db'}")
    try:
        _check(db, zone_id, old, limit)
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def pg_journal(pg_server) -> tuple[Database, int]:  # type: ignore[no-untyped-def]
    db, zone_id = _database(pg_server.create_database())
    yield db, zone_id
    db.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=entries, limit=limits)
def test_postgres_trim_keeps_what_the_rule_keeps(pg_journal: tuple[Database, int],
                                                  old: list[tuple[int, int]],
                                                  limit: tuple[int, int | None, int | None]) -> None:
    _check(*pg_journal, old, limit)


def test_a_long_journal_is_cut_to_its_newest_entries(tmp_path: Path) -> None:
    db, zone_id = _database(f"sqlite:///{tmp_path / 'j.db'}")
    with db.write() as s:
        for _ in range(200):
            s.add(JournalEntry(zone_id=zone_id, serial_from=1, serial_to=2, removed=b"",
                               added=b"", size_bytes=0))
    ids = [r[0] for r in _rows(db, zone_id)]
    with db.write() as s:
        repo.add_journal(s, zone_id, 2, 3, b"", b"", max_count=150, max_bytes=None,
                         max_age_seconds=None)
    kept = [r[0] for r in _rows(db, zone_id)]
    assert len(kept) == 150 and kept[:-1] == ids[-149:]
    db.dispose()
