"""API tokens: ``zk_<id>_<secret>``; only the secret's SHA-256 is stored, shown once."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select

from zonekeeper.errors import Invalid, NotFound, Reason, Unauthenticated
from zonekeeper.services.usage import LastUsed
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import ApiToken
from zonekeeper.text import utc_text

log = structlog.get_logger("zonekeeper.tokens")


class Scope(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


def covers(granted: set[Scope], needed: Scope) -> bool:
    """Scopes nest: admin ⊃ write ⊃ read."""
    return any(_RANK[g] >= _RANK[needed] for g in granted)


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    scopes: frozenset[Scope]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != "zk" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else utc_text(dt)


def token_info(row: ApiToken, usage: LastUsed | None = None) -> dict[str, Any]:
    last = usage.token_seen(row.id, row.last_used_at) if usage is not None else row.last_used_at
    return {
        "id": row.id,
        "name": row.name,
        "scopes": row.scopes.split(),
        "created_at": _iso(row.created_at),
        "expires_at": _iso(row.expires_at),
        "last_used_at": _iso(last),
    }


# Seconds a token checked against the database is then checked from memory: its digest
# and expiry on every request, without a database read or a worker thread. A deletion
# through the API forgets it at once, here and (by announcement) on the other nodes; this
# bounds how long a row changed behind the server's back (by hand, in SQL) still counts.
RECHECK = 2.0
# Tokens kept at most (only valid tokens are kept, so this is only a bound).
KEPT = 1024


@dataclass(frozen=True)
class _Checked:
    digest: str
    expires: datetime | None
    principal: Principal
    at: float  # the clock (time.monotonic) at the database read


def _check_expiry(expires: datetime | None) -> None:
    if expires is not None and expires <= datetime.now(UTC):
        raise Unauthenticated("the bearer token has expired")


class TokenService:
    def __init__(self, db: Database, usage: LastUsed | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.usage = usage  # notes each authenticated use (written later, off this path)
        self.clock = clock
        self._checked: dict[str, _Checked] = {}
        # Moved on by each forget(): a read that began before it is not kept, as it may
        # have seen a token deleted since (checked and kept under the lock, against a
        # forget() between the two).
        self._generation = 0
        self._lock = threading.Lock()

    def forget(self, token_id: str | None = None) -> None:
        """Check ``token_id`` (every token if None) against the database at its next use."""
        with self._lock:
            self._generation += 1
            if token_id is None:
                self._checked.clear()
            else:
                self._checked.pop(token_id, None)

    def _from_memory(self, token_id: str, secret: str) -> Principal | None:
        """The principal of a token checked within ``RECHECK`` seconds whose secret matches;
        None sends the request to the database (which gives the error, if any)."""
        seen = self._checked.get(token_id)
        if seen is None or self.clock() - seen.at >= RECHECK:
            return None
        if not hmac.compare_digest(seen.digest, _digest(secret)):
            return None
        _check_expiry(seen.expires)
        return seen.principal

    def create_sync(
        self, name: str, scopes: list[str], expires_at: datetime | None = None
    ) -> tuple[str, dict[str, Any]]:
        bad = [s for s in scopes if s not in Scope.__members__.values()]
        if not scopes or bad:
            raise Invalid(
                "unknown or missing scopes",
                [Reason(("scopes",), f"scopes must be among read, write, admin; got {scopes}")],
            )
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32).replace("_", "-")
        row = ApiToken(
            id=token_id,
            name=name,
            digest=_digest(secret),
            scopes=" ".join(sorted(set(scopes))),
            expires_at=expires_at,
        )
        with self.db.write() as s:
            s.add(row)
        log.info("token.created", id=token_id, name=name, scopes=row.scopes)
        return f"zk_{token_id}_{secret}", token_info(row)

    def ensure_bootstrap(self, token: str) -> bool:
        """Store ``ZONEKEEPER_API__BOOTSTRAP_TOKEN`` as an admin token if its id is new."""
        parts = split_token(token)
        if parts is None:
            raise ValueError("the bootstrap token must look like zk_<id>_<secret>")
        token_id, secret = parts
        with self.db.write() as s:
            if s.get(ApiToken, token_id) is not None:
                return False
            s.add(ApiToken(id=token_id, name="bootstrap", digest=_digest(secret), scopes="admin"))
        return True

    def authenticate_sync(self, token: str) -> Principal:
        parts = split_token(token)
        if parts is None:
            raise Unauthenticated("the bearer token is malformed")
        token_id, secret = parts
        at, generation = self.clock(), self._generation
        with self.db.read() as s:
            row = s.get(ApiToken, token_id)
            if row is None or not hmac.compare_digest(row.digest, _digest(secret)):
                raise Unauthenticated("the bearer token is not valid")
            expires = row.expires_at
            if expires is not None and expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            principal = Principal(row.id, row.name, frozenset(Scope(x) for x in row.scopes.split()))
            digest = row.digest
        _check_expiry(expires)
        with self._lock:
            if generation == self._generation:
                if len(self._checked) >= KEPT:
                    self._checked.clear()
                self._checked[token_id] = _Checked(digest, expires, principal, at)
        return principal

    async def authenticate(self, token: str) -> Principal:
        parts = split_token(token)
        principal = None if parts is None else self._from_memory(*parts)
        if principal is None:
            principal = await asyncio.to_thread(self.authenticate_sync, token)
        if self.usage is not None:
            self.usage.token_used(principal.token_id)
        return principal

    async def create(
        self, name: str, scopes: list[str], expires_at: datetime | None = None
    ) -> tuple[str, dict[str, Any]]:
        return await asyncio.to_thread(self.create_sync, name, scopes, expires_at)

    async def list(self) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            with self.db.read() as s:
                return [token_info(r, self.usage)
                        for r in s.scalars(select(ApiToken).order_by(ApiToken.id))]

        return await asyncio.to_thread(work)

    async def delete(self, token_id: str) -> None:
        def work() -> None:
            with self.db.write() as s:
                row = s.get(ApiToken, token_id)
                if row is None:
                    raise NotFound(f"token {token_id} does not exist")
                s.delete(row)
                repo.announce(s, "tokens", token_id)

        try:
            await asyncio.to_thread(work)
        finally:
            self.forget(token_id)
