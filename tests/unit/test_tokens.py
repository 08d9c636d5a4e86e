"""services.tokens.TokenService on a real SQLite database: a token checked against the
database is then checked from memory (its secret and expiry on every request) for at most
``RECHECK`` seconds; a deletion through the service, or ``forget``, ends that at once, and
a read that raced a deletion is not kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event

from zonekeeper.errors import Unauthenticated
from zonekeeper.services.tokens import RECHECK, Scope, TokenService
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import ApiToken


def _service(tmp_path: Path) -> tuple[TokenService, list[float], list[str]]:
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    db.prepare(migrate=False)
    now = [1000.0]
    statements: list[str] = []

    @event.listens_for(db.read_engine, "before_cursor_execute")
    def _count(_conn: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    return TokenService(db, clock=lambda: now[0]), now, statements


def _drop_behind_its_back(svc: TokenService, token_id: str) -> None:
    with svc.db.write() as s:
        s.execute(delete(ApiToken).where(ApiToken.id == token_id))


def test_checked_from_memory_until_recheck(tmp_path: Path) -> None:
    svc, now, statements = _service(tmp_path)
    token, info = svc.create_sync("ci", ["write"])
    p = asyncio.run(svc.authenticate(token))
    assert p.token_id == info["id"] and p.scopes == frozenset({Scope.WRITE})
    reads = len(statements)
    assert reads > 0
    for _ in range(50):
        assert asyncio.run(svc.authenticate(token)) == p
    assert len(statements) == reads  # no database read while the check is fresh
    # The secret is compared on every request, from memory too.
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(Unauthenticated):
        asyncio.run(svc.authenticate(wrong))
    # A row deleted behind the server's back counts until RECHECK has passed, not longer.
    _drop_behind_its_back(svc, info["id"])
    now[0] += RECHECK - 0.01
    assert asyncio.run(svc.authenticate(token)) == p
    now[0] += 0.02
    with pytest.raises(Unauthenticated, match="not valid"):
        asyncio.run(svc.authenticate(token))


def test_delete_and_forget_end_it_at_once(tmp_path: Path) -> None:
    svc, _now, _statements = _service(tmp_path)
    token, info = svc.create_sync("ci", ["read"])
    asyncio.run(svc.authenticate(token))
    asyncio.run(svc.delete(info["id"]))
    with pytest.raises(Unauthenticated):
        asyncio.run(svc.authenticate(token))
    # forget() (what another node's announcement calls) after a deletion elsewhere.
    token, info = svc.create_sync("ci2", ["read"])
    asyncio.run(svc.authenticate(token))
    _drop_behind_its_back(svc, info["id"])
    svc.forget(info["id"])
    with pytest.raises(Unauthenticated):
        asyncio.run(svc.authenticate(token))


def test_expiry_is_checked_from_memory(tmp_path: Path) -> None:
    svc, _now, _statements = _service(tmp_path)
    soon = datetime.now(UTC) + timedelta(seconds=0.5)
    token, _info = svc.create_sync("short", ["read"], expires_at=soon)
    asyncio.run(svc.authenticate(token))
    while datetime.now(UTC) <= soon:
        asyncio.run(asyncio.sleep(0.05))
    with pytest.raises(Unauthenticated, match="expired"):
        asyncio.run(svc.authenticate(token))


def test_a_read_that_raced_a_deletion_is_not_kept(tmp_path: Path) -> None:
    """A read begun before a forget() (here: the row is read, then deleted and forgotten
    before the read is kept) must not be kept: the next request goes to the database."""
    svc, _now, _statements = _service(tmp_path)
    token, info = svc.create_sync("ci", ["read"])
    real_read = svc.db.read

    class Racing:
        def __init__(self) -> None:
            self.cm = real_read()

        def __enter__(self) -> Any:
            return self.cm.__enter__()

        def __exit__(self, *exc: Any) -> Any:
            out = self.cm.__exit__(*exc)
            _drop_behind_its_back(svc, info["id"])
            svc.forget(info["id"])
            return out

    svc.db.read = Racing  # type: ignore[method-assign]
    assert svc.authenticate_sync(token).token_id == info["id"]  # it was valid when read
    svc.db.read = real_read  # type: ignore[method-assign]
    with pytest.raises(Unauthenticated):
        asyncio.run(svc.authenticate(token))
