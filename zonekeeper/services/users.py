"""Console users and their sessions.

Passwords are kept only as argon2id hashes (argon2-cffi's defaults, RFC 9106's second
recommended set). A session is a random token in an ``HttpOnly; SameSite=Strict`` cookie;
the database keeps its SHA-256, the user, a CSRF token and when it was last used, so a
stolen database row cannot be replayed as a cookie and signing out ends it everywhere.
Roles map onto the API's scopes, so the console and the API decide rights alike.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from zonekeeper.errors import Conflict, Invalid, NotFound, Reason, Unauthenticated
from zonekeeper.services.tokens import Scope
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import User, WebSession

ROLES: dict[str, Scope] = {"viewer": Scope.READ, "editor": Scope.WRITE, "admin": Scope.ADMIN}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
# last_seen_at is written at most this often per session (not on every page view).
_TOUCH_EVERY = 60.0

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist costs what a real check costs,
    so the answer's timing does not tell which names exist. Made at the first sign-in, not
    at import (an argon2 hash is ~0.1 s of every start-up)."""
    return _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    csrf: str

    @property
    def scope(self) -> Scope:
        return ROLES[self.role]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def user_info(row: User) -> dict[str, Any]:
    return {"name": row.name, "role": row.role,
            "created_at": _aware(row.created_at).isoformat(),
            "last_login_at": _aware(row.last_login_at).isoformat() if row.last_login_at else None}


class LoginThrottle:
    """At most ``attempts`` failed sign-ins per ``window`` seconds per user name, and
    ``per_address`` per client address (several people may share one); past that, sign-in
    is refused without checking the password until the window has moved on. Bounded: at
    most ``max_keys`` names and addresses are tracked."""

    def __init__(self, attempts: int = 5, window: float = 300.0, *, per_address: int = 20,
                 max_keys: int = 10_000) -> None:
        self.attempts = attempts
        self.per_address = per_address
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def wait(self, user: str, address: str) -> float:
        """Seconds until a sign-in for ``user`` from ``address`` may be tried; 0: now."""
        now = time.monotonic()
        waits = [times[0] + self.window - now
                 for times, limit in ((self._recent("u:" + user.lower(), now), self.attempts),
                                      (self._recent("a:" + address, now), self.per_address))
                 if len(times) >= limit]
        return max(waits, default=0.0)

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        if len(self._failures) >= self.max_keys:
            for key in list(self._failures):
                self._recent(key, now)
            if len(self._failures) >= self.max_keys:
                self._failures.clear()
        for key in ("u:" + user.lower(), "a:" + address):
            self._failures.setdefault(key, []).append(now)

    def succeeded(self, user: str) -> None:
        self._failures.pop("u:" + user.lower(), None)


class UserService:
    def __init__(self, db: Database, *, idle: float = 1800.0, max_age: float = 43200.0) -> None:
        self.db = db
        self.idle = idle  # seconds without a request before a session ends
        self.max_age = max_age  # seconds after sign-in when a session ends anyway
        self.throttle = LoginThrottle()
        self._touched: dict[str, float] = {}

    # -- users -------------------------------------------------------------------------------
    def create_sync(self, name: str, role: str, password: str) -> dict[str, Any]:
        reasons = []
        if not _NAME.match(name):
            reasons.append(Reason(("name",), "1-64 letters, digits and . _ @ -, starting "
                                              "with a letter or digit"))
        if role not in ROLES:
            reasons.append(Reason(("role",), f"one of {', '.join(ROLES)}"))
        if len(password) < MIN_PASSWORD:
            reasons.append(Reason(("password",), f"at least {MIN_PASSWORD} characters"))
        if reasons:
            raise Invalid("the user cannot be created", reasons)
        row = User(name=name, role=role, password_hash=_hasher.hash(password))
        with self.db.write() as s:
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise Conflict(f"user {name} exists already")
            s.add(row)
        return user_info(row)

    async def create(self, name: str, role: str, password: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.create_sync, name, role, password)

    async def list(self) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            with self.db.read() as s:
                return [user_info(u) for u in s.scalars(select(User).order_by(User.name))]

        return await asyncio.to_thread(work)

    async def delete(self, name: str) -> None:
        def work() -> None:
            with self.db.write() as s:
                row = s.scalar(select(User).where(User.name == name))
                if row is None:
                    raise NotFound(f"user {name} does not exist")
                s.execute(delete(WebSession).where(WebSession.user_id == row.id))
                s.delete(row)

        await asyncio.to_thread(work)

    async def set_role(self, name: str, role: str) -> dict[str, Any]:
        if role not in ROLES:
            raise Invalid("unknown role", [Reason(("role",), f"one of {', '.join(ROLES)}")])

        def work() -> dict[str, Any]:
            with self.db.write() as s:
                row = s.scalar(select(User).where(User.name == name))
                if row is None:
                    raise NotFound(f"user {name} does not exist")
                row.role = role
                return user_info(row)

        return await asyncio.to_thread(work)

    # -- sign-in and sessions ---------------------------------------------------------------
    def _sign_in_sync(self, name: str, password: str) -> tuple[str, Session]:
        with self.db.write() as s:
            row = s.scalar(select(User).where(User.name == name))
            try:
                _hasher.verify(row.password_hash if row is not None else _dummy_hash(), password)
            except (VerificationError, InvalidHashError):
                row = None
            if row is None:
                raise Unauthenticated("wrong user name or password")
            if _hasher.check_needs_rehash(row.password_hash):
                row.password_hash = _hasher.hash(password)
            now = datetime.now(UTC)
            row.last_login_at = now
            token = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(32)
            s.add(WebSession(id=_digest(token), user_id=row.id, csrf=csrf, created_at=now,
                             last_seen_at=now))
            return token, Session(row.name, row.role, csrf)

    async def sign_in(self, name: str, password: str, address: str) -> tuple[str, Session]:
        """A new session for ``name`` (its cookie token and the session), or Unauthenticated
        with one message whatever was wrong; throttled per name and per address."""
        wait = self.throttle.wait(name, address)
        if wait > 0:
            raise Unauthenticated(f"too many failed sign-ins; try again in {int(wait) + 1} s")
        try:
            out = await asyncio.to_thread(self._sign_in_sync, name, password)
        except Unauthenticated:
            self.throttle.failed(name, address)
            raise
        self.throttle.succeeded(name)
        return out

    def _resolve_sync(self, token: str) -> Session | None:
        key = _digest(token)
        now = datetime.now(UTC)
        with self.db.read() as s:
            row = s.get(WebSession, key)
            user = s.get(User, row.user_id) if row is not None else None
            if row is None or user is None:
                return None
            expired = (now - _aware(row.last_seen_at) > timedelta(seconds=self.idle)
                       or now - _aware(row.created_at) > timedelta(seconds=self.max_age))
            session = Session(user.name, user.role, row.csrf)
        if expired:
            self._end_sync(token)
            return None
        mono = time.monotonic()
        if mono - self._touched.get(key, 0.0) >= _TOUCH_EVERY:
            if len(self._touched) > 10_000:
                self._touched.clear()
            self._touched[key] = mono
            with self.db.write() as s:
                row = s.get(WebSession, key)
                if row is not None:
                    row.last_seen_at = now
        return session

    async def resolve(self, token: str) -> Session | None:
        """The live session behind a cookie token, or None (unknown, idle or too old)."""
        if not token or len(token) > 128:
            return None
        return await asyncio.to_thread(self._resolve_sync, token)

    def _end_sync(self, token: str) -> None:
        with self.db.write() as s:
            s.execute(delete(WebSession).where(WebSession.id == _digest(token)))

    async def sign_out(self, token: str) -> None:
        await asyncio.to_thread(self._end_sync, token)
