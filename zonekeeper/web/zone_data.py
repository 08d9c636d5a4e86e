"""What the zone page shows besides its records and the secondaries panel: transfers in (a
secondary zone's primaries, timers and last refresh) and transfers out (linked peers,
access rules, the peers and keys one may pick). Read from the services only; the zone
page (``routes._zone_view``) merges it in, so every render of the page has it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from zonekeeper.context import AppContext


def _when(ts: float | None, now: float) -> dict[str, Any] | None:
    """A moment as UTC text and seconds from now (negative: past)."""
    if ts is None:
        return None
    at = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {"at": at, "in": round(ts - now)}


def transfers_in(ctx: AppContext, zone: str, links: list[dict[str, Any]]) -> dict[str, Any]:
    """A secondary zone's primaries (in order, each with its last check), its refresh,
    retry and expire timers with when the next refresh (or retry) and expiry fire, and the
    last refresh's outcome, from the refresh engine (``ctx.secondaries``)."""
    state = ctx.secondaries.zones.get(zone)
    now = time.time()
    primaries = [{**x, "status": state.status.get(x["peer"], {}) if state else {}}
                 for x in links if x["role"] == "primary"]
    if state is None:
        return {"primaries": primaries, "timers": None, "last": None}
    t = state.timers
    return {
        "primaries": primaries,
        "timers": {"refresh": t.refresh, "retry": t.retry, "expire": t.expire,
                   "expired": t.expired, "retrying": state.failures > 0,
                   "next_refresh": _when(t.next_refresh, now),
                   "next_expire": _when(t.next_expire, now)},
        "last": state.last.as_dict() if state.last is not None else None,
    }


async def panels(ctx: AppContext, info: dict[str, Any], links: list[dict[str, Any]]) -> dict[str, Any]:
    zone = info["name"]
    rules = [r for r in await ctx.access.list_rules() if r["zone"] in (zone, None)]
    linked = {x["peer"] for x in links}
    return {
        "links": [x for x in links if x["role"] == "secondary"],
        "rules": rules,
        "keys": [k["name"] for k in await ctx.access.list_keys()],
        "unlinked": [p["name"] for p in await ctx.peers.list() if p["name"] not in linked],
        "xfr_in": transfers_in(ctx, zone, links) if info["kind"] == "secondary" else None,
    }
