"""Cursor pagination for lists that services return whole (keys, rules, peers, tokens).

Each list checks its cursor's form with ``zonekeeper.services.paging`` first (400 if it is
not one this API returned)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=1000, description="page size (default 100)")]
# Long enough for a name with \DDD escapes or a secondary zone's HEX.TYPE cursor.
Cursor = Annotated[str | None, Query(max_length=1100,
                                     description="next_cursor of the previous page")]


def page(items: list[dict[str, Any]], key: Callable[[dict[str, Any]], str], limit: int,
         cursor: str | None) -> dict[str, Any]:
    """``{items, next_cursor}``: the items after ``cursor`` in ``key`` order, ``limit`` of them."""
    ordered = sorted(items, key=key)
    if cursor is not None:
        ordered = [i for i in ordered if key(i) > cursor]
    chunk = ordered[:limit]
    more = len(ordered) > limit
    return {"items": chunk, "next_cursor": key(chunk[-1]) if more and chunk else None}
