"""How names and times are written for people and APIs: one helper each.

Imports nothing of zonekeeper's, so every layer may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def absolute(name: str) -> str:
    """``name`` with its trailing dot (a zone or key name as typed: dot optional). The case
    is kept; callers that compare lower it."""
    return name if name.endswith(".") else name + "."


def utc_text(when: datetime | float | None = None) -> str:
    """An instant as ISO 8601 UTC with ``Z``: a datetime (naive ones are UTC, as stored), a
    Unix time, or now when nothing is given."""
    if when is None:
        dt = datetime.now(UTC)
    elif isinstance(when, datetime):
        dt = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    else:
        dt = datetime.fromtimestamp(when, UTC)
    return dt.isoformat().replace("+00:00", "Z")
