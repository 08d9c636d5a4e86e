"""How names, addresses and times are written for people and APIs: one helper each.

Imports nothing of zonekeeper's, so every layer may use it.
"""

from __future__ import annotations

import ipaddress
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


def parse_hostport(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """Parse ``127.0.0.1:5300`` or ``[::1]:5300`` into (address, port).

    Raises ValueError with a readable message on anything else.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: missing ']' after IPv6 address")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']'")
    else:
        if text.count(":") > 1:
            raise ValueError(f"{text!r}: write IPv6 addresses as [ADDRESS]:PORT")
        host, _, port_text = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r}: a port is required")
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)
