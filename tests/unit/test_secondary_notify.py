"""events.secondary: a NOTIFY accepted while a refresh runs is not lost (RFC 1996 4.4): the
zone is checked again right after, not a refresh interval later."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.name

from zonekeeper.events.secondary import (
    Primary,
    RefreshOutcome,
    SecondaryManager,
    SecondaryZone,
    XfrOutcome,
    ZoneTimers,
)
from zonekeeper.settings import SecondarySettings


async def _checks_after_a_notify_during_a_refresh(notify_during: bool) -> int:
    """How many times the primary is asked within 1 s of the first refresh ending, with a
    NOTIFY accepted during that refresh or not. The refresh interval is an hour."""

    async def nothing(*_args: Any) -> None:
        return None

    manager = SecondaryManager(SecondarySettings(), install=nothing, current=lambda _zone: None,
                               save_timers=nothing, set_expired=lambda _zone, _expired: None)
    first_running, release = asyncio.Event(), asyncio.Event()
    asked = 0

    async def from_primary(state: SecondaryZone, primary: Primary, force_axfr: bool,
                           trace: dict[str, Any]) -> RefreshOutcome:
        nonlocal asked
        asked += 1
        if asked == 1:  # the first refresh is a slow transfer
            first_running.set()
            await release.wait()
        return RefreshOutcome(XfrOutcome.UPTODATE, 1, 1, primary=primary.name)

    manager._from_primary = from_primary  # type: ignore[method-assign]
    zone = dns.name.from_text("notified.test.")
    manager.add(zone, 1, ZoneTimers(refresh=3600), [Primary("p", "127.0.0.1", 53, None, True)])
    try:
        await asyncio.wait_for(first_running.wait(), 5)
        if notify_during:
            manager.notify(zone.to_text())
        release.set()
        await asyncio.sleep(1.0)
        return asked
    finally:
        manager.remove(zone)


def test_a_notify_during_a_refresh_asks_again_right_after() -> None:
    assert asyncio.run(_checks_after_a_notify_during_a_refresh(True)) == 2


def test_without_a_notify_the_next_check_waits_for_the_refresh_interval() -> None:
    assert asyncio.run(_checks_after_a_notify_during_a_refresh(False)) == 1
