"""What the CLI does on the server host, straight on the local database (no API): schema
upgrade, the bootstrap token, console users. A small composition root: the CLI names what
it wants, this module builds the storage and the service for it."""

from __future__ import annotations

from typing import Any

from zonekeeper.storage.db import Database, shown_url

__all__ = ["create_token", "create_user", "shown_url", "upgrade_schema"]


def upgrade_schema(url: str) -> str:
    """Create or upgrade the schema; the revision it is at now."""
    store = Database(url)
    try:
        store.prepare(migrate=True)
        current, _ = store.schema_state()
    finally:
        store.dispose()
    return str(current)


def create_token(url: str, name: str, scopes: list[str]) -> tuple[str, dict[str, Any]]:
    """An API token made in the database: its secret (shown once) and its description."""
    from zonekeeper.services.tokens import TokenService

    store = Database(url)
    try:
        store.prepare(migrate=False)
        return TokenService(store).create_sync(name, scopes)
    finally:
        store.dispose()


def create_user(url: str, name: str, role: str, password: str) -> dict[str, Any]:
    """A console user made in the database."""
    from zonekeeper.services.users import UserService

    store = Database(url)
    try:
        store.prepare(migrate=False)
        return UserService(store).create_sync(name, role, password)
    finally:
        store.dispose()
