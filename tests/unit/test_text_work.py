"""Creating or importing a zone from a large text (``ZoneStore._text_work``): the new version
is published and the call returns before the parsed objects are let go of, which the
worker does afterwards, with the garbage collector paused until it is done; a failed call
leaves the collector running; the GIL's switch interval is short meanwhile. A create for a
name that exists answers 409 before a large text is read. Real SQLite file, the service in process."""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dns.name
import pytest

from zonekeeper.errors import Conflict, NotFound
from zonekeeper.services.zones import ZoneService, ZoneSpec
from zonekeeper.storage.db import Database
from zonekeeper.zones import zonefile
from zonekeeper.zones.snapshot import Registry

ORIGIN = dns.name.from_text("big.test.")
HEAD = "$ORIGIN big.test.\n$TTL 300\n@ SOA ns1 host 1 3600 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n"


def big_text(last_octet: int = 1) -> str:
    """A zone text over ``zonefile.GC_PAUSE_OVER`` characters (the large-text path)."""
    lines = [f"host{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{last_octet}\n" for i in range(50_000)]
    text = HEAD + "".join(lines)
    assert len(text) > zonefile.GC_PAUSE_OVER
    return text


@pytest.fixture
def service() -> Iterator[ZoneService]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'z.db'}")
        db.prepare(migrate=True)
        yield ZoneService(db, Registry())
        db.dispose()


@pytest.fixture
def order(monkeypatch: pytest.MonkeyPatch, service: ZoneService) -> list[str]:
    """What happened, in order: ``published`` (a version made visible) and ``released``
    (a parsed text let go of, with whether the collector was running then)."""
    seen: list[str] = []
    publish = service._publish
    release = zonefile.ParseResult.release

    def published(snap: object) -> None:
        if snap is not None:
            seen.append("published")
        publish(snap)  # type: ignore[arg-type]

    def released(self: zonefile.ParseResult) -> None:
        quick = sys.getswitchinterval() == zonefile.QUICK_SWITCH
        seen.append(f"released gc={gc.isenabled()}" + (" quick" if quick else ""))
        release(self)

    monkeypatch.setattr(service, "_publish", published)
    monkeypatch.setattr(zonefile.ParseResult, "release", released)
    return seen


async def settled(service: ZoneService) -> None:
    """Until the workers still letting go are done."""
    await asyncio.gather(*list(service._workers))


def test_create_publishes_then_lets_go_with_the_collector_paused(
        service: ZoneService, order: list[str]) -> None:
    """...and the GIL's switch interval short meanwhile (the event loop waits less behind
    the worker), back to what it was after."""
    assert gc.isenabled()
    switch = sys.getswitchinterval()
    assert switch > zonefile.QUICK_SWITCH

    async def run() -> None:
        info = await service.create(ZoneSpec(name=ORIGIN, zone_text=big_text()))
        assert info["record_count"] == 50_003
        assert service.registry.get(ORIGIN) is not None  # served when the call returns
        await settled(service)

    asyncio.run(run())
    assert order == ["published", "released gc=False quick"]
    assert gc.isenabled()
    assert sys.getswitchinterval() == switch


def test_import_and_dry_run_let_go_after_answering(service: ZoneService, order: list[str]) -> None:
    async def run() -> None:
        await service.create(ZoneSpec(name=ORIGIN, zone_text=big_text()))
        await settled(service)
        order.clear()
        dry = await service.import_text(ORIGIN, big_text(2), dry_run=True, force=True)
        assert not dry.applied and dry.added == 50_000
        await settled(service)
        assert order == ["released gc=False quick"]  # nothing published by a dry run
        assert gc.isenabled()
        order.clear()
        done = await service.import_text(ORIGIN, big_text(2), dry_run=False, force=True)
        assert done.applied and done.serial == 2
        snap = service.registry.get(ORIGIN)
        assert snap is not None and snap.serial == 2
        await settled(service)

    asyncio.run(run())
    assert order == ["published", "released gc=False quick"]
    assert gc.isenabled()


def test_a_failed_import_raises_and_leaves_the_collector_running(service: ZoneService) -> None:
    switch = sys.getswitchinterval()
    with pytest.raises(NotFound):
        asyncio.run(service.import_text(ORIGIN, big_text(), dry_run=False, force=False))
    assert gc.isenabled() and sys.getswitchinterval() == switch
    assert service.registry.get(ORIGIN) is None


def test_creating_an_existing_zone_is_refused_before_its_large_text_is_read(
        service: ZoneService, order: list[str]) -> None:
    async def run() -> None:
        await service.create(ZoneSpec(name=ORIGIN, zone_text=big_text()))
        await settled(service)
        order.clear()
        # Read, this text would be refused for its bad line (Invalid); the name comes first.
        with pytest.raises(Conflict, match="already exists"):
            await service.create(ZoneSpec(name=ORIGIN, zone_text=big_text() + "bad A 300.1.1.1\n"))

    asyncio.run(run())
    assert order == []  # no text was read, so none was let go of
    assert gc.isenabled()


def test_a_failure_around_the_work_is_the_callers_and_one_after_it_is_logged(
        service: ZoneService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker never leaves its caller waiting: a failure before the work (here, in
    setting the switch interval) is raised to the caller; a failure while letting go after
    the answer is only logged, and the answer stands."""
    from zonekeeper.services import zone_store

    def broken(text: str | None) -> None:
        raise RuntimeError("no switch interval")

    with monkeypatch.context() as m:
        m.setattr(zone_store, "quick_switches_for", broken)
        with pytest.raises(RuntimeError, match="no switch interval"):
            asyncio.run(asyncio.wait_for(service.create(ZoneSpec(name=ORIGIN, zone_text=big_text())), 60))
    assert gc.isenabled()

    def failing_release(self: zonefile.ParseResult) -> None:
        raise RuntimeError("cannot let go")

    switch = sys.getswitchinterval()
    monkeypatch.setattr(zonefile.ParseResult, "release", failing_release)

    async def run() -> None:
        info = await asyncio.wait_for(service.create(ZoneSpec(name=ORIGIN, zone_text=big_text())), 60)
        assert info["record_count"] == 50_003
        await settled(service)

    asyncio.run(run())
    assert service.registry.get(ORIGIN) is not None
    assert gc.isenabled() and sys.getswitchinterval() == switch
