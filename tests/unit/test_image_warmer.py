"""server/xfr.py ImageWarmer: which versions get an image ahead, and what a stop keeps.

The image of a real zone is built by the real renderer; where a test needs a build still
under way when the stop comes, the renderer is made slower (a delay before the real
build): with the C renderer a test zone's image takes milliseconds."""

from __future__ import annotations

import asyncio
import time

import dns.name
import dns.rdata
import pytest

from zonekeeper.proto import axfr
from zonekeeper.server import xfr
from zonekeeper.server.xfr import ImageWarmer, ensure_image
from zonekeeper.zones.snapshot import ZoneSnapshot, compile_nodes

ORIGIN = dns.name.from_text("warm.test.")


def snapshot(names: int = 50) -> ZoneSnapshot:
    soa = dns.rdata.from_text("IN", "SOA", "ns1.warm.test. h.warm.test. 3 3600 900 86400 300")
    rrsets = [(ORIGIN, 6, 300, [soa])]
    rrsets += [(dns.name.from_text(f"h{i}", ORIGIN), 1, 60,
                [dns.rdata.from_text("IN", "A", f"192.0.2.{i % 250 + 1}")]) for i in range(names)]
    nodes, cuts = compile_nodes(ORIGIN, rrsets)
    return ZoneSnapshot(ORIGIN, 3, nodes, cuts, zone_id=1)


@pytest.fixture
def slow_build(monkeypatch: pytest.MonkeyPatch) -> float:
    """Every image build takes 0.4 s more than it does."""
    real = axfr.build

    def build(*args: object, **kw: object) -> axfr.AxfrImage:
        time.sleep(0.4)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(axfr, "build", build)
    return 0.4


def test_a_stop_waits_for_the_build_under_way(slow_build: float) -> None:
    async def run() -> tuple[ZoneSnapshot, float]:
        snap = snapshot()
        warmer = ImageWarmer()
        warmer.start([snap])
        await asyncio.sleep(0.05)  # the build has begun
        assert snap.axfr is None
        t0 = time.monotonic()
        await warmer.close()
        return snap, time.monotonic() - t0

    snap, waited = asyncio.run(run())
    assert snap.axfr is not None and snap.axfr.records == 50
    assert 0.2 < waited < slow_build + 1


def test_a_stop_gives_up_after_its_limit(slow_build: float) -> None:
    async def run() -> ZoneSnapshot:
        snap = snapshot()
        warmer = ImageWarmer()
        warmer.start([snap])
        await asyncio.sleep(0.05)
        await warmer.close(wait=0.05)
        assert snap.axfr is None  # not kept: still being built
        await asyncio.sleep(slow_build)  # (let the build end before the loop closes)
        return snap

    asyncio.run(run())


def test_a_version_replaced_during_the_build_has_its_image(slow_build: float) -> None:
    """A settings change while the image is built publishes a copy sharing the build: the
    stop's wait is for the original, and the copy (the version served, which the image
    cache saves) has the image too."""
    async def run() -> ZoneSnapshot:
        snap = snapshot()
        warmer = ImageWarmer()
        warmer.start([snap])
        await asyncio.sleep(0.05)
        copy = snap.replaced(notify_delay=2.0)
        await warmer.close()
        return copy

    copy = asyncio.run(run())
    assert copy.axfr is None  # nobody asked for it on the copy...
    image = copy.built_image()  # ...but the shared build is done
    assert image is not None and image.records == 50


def test_only_wanted_versions_are_warmed() -> None:
    async def run() -> tuple[ZoneSnapshot, ZoneSnapshot]:
        closed, opened = snapshot(), snapshot()
        allowed = {id(opened)}
        warmer = ImageWarmer(wanted=lambda s: id(s) in allowed)
        warmer.start([closed, opened])
        await ensure_image(opened)  # the warmer's build, or this one: the same
        for _ in range(50):
            await asyncio.sleep(0.01)
        await warmer.close()
        return closed, opened

    closed, opened = asyncio.run(run())
    assert opened.axfr is not None
    assert closed.axfr is None and closed.axfr_future is None


def test_the_module_builds_through_axfr_build() -> None:
    """(What ``slow_build`` relies on: ensure_image calls ``axfr.build`` by attribute.)"""
    assert xfr.axfr is axfr
