"""services.usage.LastUsed on a real SQLite database: uses cost no SQL; a flush writes
each key and token once, never moves a stored time back, and keeps what it could not
write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from zonekeeper.services.usage import LastUsed
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import ApiToken, TsigKey


def _db(tmp_path: Path) -> tuple[Database, list[str]]:
    db = Database(f"sqlite:///{tmp_path / 'u.db'}")
    db.prepare(migrate=False)
    with db.write() as s:
        s.add(TsigKey(name="k1.", algorithm="hmac-sha256", secret="c2VjcmV0"))
        s.add(TsigKey(name="k2.", algorithm="hmac-sha256", secret="c2VjcmV0"))
        s.add(ApiToken(id="t1", name="t", digest="0" * 64, scopes="read"))
    statements: list[str] = []
    for engine in (db.read_engine, db.write_engine):
        @event.listens_for(engine, "before_cursor_execute")
        def _count(_conn: Any, _cur: Any, statement: str, *_rest: Any) -> None:
            statements.append(statement)
    return db, statements


def _stored(db: Database) -> dict[str, datetime | None]:
    with db.read() as s:
        out = {k.name: k.last_used_at for k in s.scalars(select(TsigKey))}
        out |= {t.id: t.last_used_at for t in s.scalars(select(ApiToken))}
    return {k: v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v
            for k, v in out.items()}


def test_uses_are_memory_and_a_flush_is_one_update_per_table(tmp_path: Path) -> None:
    db, statements = _db(tmp_path)
    now = [1_800_000_000.0]
    usage = LastUsed(db, clock=lambda: now[0])
    try:
        for _ in range(1000):
            usage.key_used("k1.")
            usage.token_used("t1")
            now[0] += 0.01
        assert statements == []  # the hot path touched no database
        at = datetime.fromtimestamp(now[0] - 0.01, UTC)
        assert usage.key_seen("k1.", None) == at  # lists see it before it is written
        assert asyncio.run(usage.flush()) == 2
        updates = [x for x in statements if x.lstrip().upper().startswith("UPDATE")]
        assert len(updates) == 2, updates  # one executemany per table, not one per use
        stored = _stored(db)
        assert stored["k1."] == at and stored["t1"] == at and stored["k2."] is None
        statements.clear()
        assert asyncio.run(usage.flush()) == 0 and statements == []  # nothing new: no SQL
        # An older time (another node's, or a clock step) never replaces a newer one.
        now[0] -= 3600
        usage.key_used("k1.")
        asyncio.run(usage.flush())
        assert _stored(db)["k1."] == at
    finally:
        db.dispose()


def test_a_failed_write_is_kept_for_the_next(tmp_path: Path) -> None:
    db, _ = _db(tmp_path)
    usage = LastUsed(db, clock=lambda: 1_800_000_000.0)
    try:
        usage.key_used("k2.")
        with db.write_engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE tsig_keys RENAME TO tsig_keys_away")
        assert asyncio.run(usage.flush()) == 0
        with db.write_engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE tsig_keys_away RENAME TO tsig_keys")
        assert asyncio.run(usage.flush()) == 1
        assert _stored(db)["k2."] == datetime.fromtimestamp(1_800_000_000.0, UTC)
    finally:
        db.dispose()


def test_a_use_being_written_is_still_shown(tmp_path: Path) -> None:
    """While a flush's transaction is open, the uses it writes are neither pending nor in
    the database: lists must still show them."""
    import threading

    db, _statements = _db(tmp_path)
    usage = LastUsed(db, clock=lambda: 1_800_000_000.0)
    usage.token_used("t1")
    usage.key_used("k1.")
    inside, gate = threading.Event(), threading.Event()
    real = db.run_write

    async def held(fn: Any) -> Any:
        def work(s: Any) -> Any:
            inside.set()
            gate.wait(5)
            return fn(s)

        return await real(work)

    db.run_write = held  # type: ignore[method-assign]

    async def run() -> tuple[datetime | None, datetime | None]:
        flushing = asyncio.create_task(usage.flush())
        await asyncio.to_thread(inside.wait, 5)
        seen = usage.token_seen("t1", None), usage.key_seen("k1.", None)
        gate.set()
        await flushing
        return seen

    at = datetime.fromtimestamp(1_800_000_000.0, UTC)
    assert asyncio.run(run()) == (at, at)
    assert usage.token_seen("t1", None) == at  # and after the commit
