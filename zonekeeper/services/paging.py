"""Cursors of paged lists: each list has one cursor form, and anything else is refused.

A cursor is opaque to clients (they pass back ``next_cursor``), so a value of another form
was not made by us: it is a 400 that says so, never a 500 from the database (an integer
past 64 bits) nor a silently wrong page (``-1``).
"""

from __future__ import annotations

import re

import dns.exception
import dns.name

from zonekeeper.errors import Malformed, Reason

# Row ids are 64-bit signed integers in SQLite and PostgreSQL (BIGINT).
MAX_ID = 2**63 - 1
RULE_ID_WIDTH = 20  # rule cursors are their id, zero-padded, so they sort as text
_ID = re.compile(r"[1-9][0-9]{0,18}")
_RULE = re.compile(r"[0-9]{1,%d}" % RULE_ID_WIDTH)
_PEER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # as PeerCreate.name
_TOKEN_ID = re.compile(r"[!-^`-~]+")  # printable ASCII without '_' (zk_<id>_<secret>)
_NODE = re.compile(r"((?:[0-9a-f]{2})*)\.([0-9a-f]{1,4})")


def bad_cursor(why: str) -> Malformed:
    return Malformed(f"bad cursor: {why}",
                     [Reason(("query", "cursor"), f"not a cursor this API returned: {why}")])


def row_id_after(cursor: str | None) -> int | None:
    """A cursor that is a row id (RRsets of a primary zone): a decimal from 1 to 2^63-1."""
    if not cursor:
        return None
    if not _ID.fullmatch(cursor) or int(cursor) > MAX_ID:
        raise bad_cursor(f"expected a whole number from 1 to {MAX_ID}")
    return int(cursor)


def rule_after(cursor: str | None) -> str | None:
    """A cursor that is an access rule's id; returned in the padded form the list sorts by."""
    if not cursor:
        return None
    if not _RULE.fullmatch(cursor) or not 0 < int(cursor) <= MAX_ID:
        raise bad_cursor(f"expected a whole number from 1 to {MAX_ID}")
    return f"{int(cursor):0{RULE_ID_WIDTH}d}"


def name_after(cursor: str | None) -> str | None:
    """A cursor that is a domain name (zones, TSIG keys): absolute, in presentation form."""
    if not cursor:
        return None
    if not cursor.endswith(".") or not cursor.isprintable():
        raise bad_cursor("expected an absolute domain name")
    try:
        dns.name.from_text(cursor)
    except dns.exception.DNSException as exc:
        raise bad_cursor(f"expected an absolute domain name ({exc})") from None
    return cursor


def peer_after(cursor: str | None) -> str | None:
    if cursor and not _PEER.fullmatch(cursor):
        raise bad_cursor("expected a peer name")
    return cursor or None


def token_after(cursor: str | None) -> str | None:
    if cursor and not _TOKEN_ID.fullmatch(cursor):
        raise bad_cursor("expected a token id")
    return cursor or None


def node_after(cursor: str | None) -> tuple[bytes, int] | None:
    """A cursor into a secondary zone's served form: the owner's sort key and the type, hex."""
    if not cursor:
        return None
    m = _NODE.fullmatch(cursor)
    if m is None:
        raise bad_cursor("expected HEX.TYPE")
    return bytes.fromhex(m.group(1)), int(m.group(2), 16)
