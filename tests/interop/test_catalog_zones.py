"""Catalog zones (RFC 9432) consumed by real BIND 9.18 and Knot secondaries.

Each secondary starts with only the basics (listen address, control channel, log) and the
snippet of ``GET /peers/{peer}/config`` for the catalog pasted in (BIND's catalog-zones
clause inside ``options``, as the snippet says): it is told of no member zone. The peer is
linked to the catalog alone. Then, on zonekeeper only: a member linked to the catalog is
picked up, transferred and served; its edits follow by NOTIFY and IXFR (zonekeeper's
``xfr.out`` log says "IXFR" to that secondary); a second member comes with a ``group``
property; a member unlinked, and a member zone deleted, are dropped by the secondary.

BIND applies catalog changes at most every ``min-update-interval`` (5 s by default), so
waits are generous.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, make_zone, require_tool, wait_for
from tests.peers import DUMP_SOURCE, BindSecondary, KnotSecondary, Secondary

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("catalog-zones")]

KINDS = ("bind", "knot")
SOURCES = {"bind": "127.0.0.81", "knot": "127.0.0.82"}
WAIT = 40  # BIND: min-update-interval 5 s, then the member's first transfer
ZONE_TEXT = """$TTL 300
@ IN SOA ns1 hostmaster 1 86400 3600 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.2
"""


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    srv = ZkServer(tmp_path_factory.mktemp("zk"), demo=False).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(zk: ZkServer) -> Iterator[httpx2.Client]:
    with zk.client() as c:
        yield c


def make_secondary(kind: str, workdir: Path) -> Secondary:
    if kind == "bind":
        require_tool("named", "bind9")
        require_tool("rndc", "bind9")
        return BindSecondary(workdir, source=SOURCES[kind], port=free_port(),
                             ctl_port=free_port())
    require_tool("knotd", "knot")
    require_tool("knotc", "knot")
    return KnotSecondary(workdir, addr=SOURCES[kind], port=free_port(SOURCES[kind]))


def answer(sec: Secondary, name: str) -> list[str]:
    r = dns.query.udp(dns.message.make_query(name, "A"), sec.listen, port=sec.port, timeout=2,
                      source=DUMP_SOURCE)
    return sorted(rr.to_text() for rrset in r.answer for rr in rrset)


def wait_gone(sec: Secondary, zone: str, timeout: float = WAIT) -> None:
    wait_for(lambda: sec.serial(zone) is None and sec.serial(zone, tcp=True) is None,
             timeout, f"{sec.kind} to drop {zone}:\n{sec.diagnostics()}")


def catalog_serial(sec: Secondary, zone: str) -> int | None:
    """The catalog's serial on the secondary: BIND serves the catalog zone; Knot does not
    answer queries for a catalog it interprets (REFUSED), so its ``zone-status`` says."""
    if isinstance(sec, KnotSecondary):
        out = sec.knotc("zone-status", zone.rstrip("."))
        m = re.search(r"serial: (\d+)", out)
        return int(m.group(1)) if m else None
    return sec.serial(zone)


def wait_catalog(sec: Secondary, zone: str, serial: int) -> None:
    wait_for(lambda: catalog_serial(sec, zone) == serial, WAIT,
             f"{sec.kind} to hold catalog {zone} at {serial}:\n{sec.diagnostics()}")


def paste(sec: Secondary, snippet: str) -> None:
    """As an operator does: BIND's catalog-zones clause inside options { }, the rest at the
    top level; Knot's snippet as it is."""
    if isinstance(sec, BindSecondary):
        inside, marker, rest = snippet.partition("// At the top level")
        assert marker and "catalog-zones {" in inside, snippet
        sec.options_text += inside
        sec.add_config_text(marker + rest, reload=False)
    else:
        sec.add_config_text(snippet, reload=False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_secondary_follows_the_catalog(zk: ZkServer, api: httpx2.Client, kind: str,
                                         tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    catalog = f"cat{tag}.test."
    members = [f"m{i}{tag}.test." for i in range(3)]
    assert api.post("/zones", json={"name": catalog, "kind": "catalog"}).status_code == 201
    for m in members:
        make_zone(api, m, zone_text=ZONE_TEXT)
    sec = make_secondary(kind, tmp_path / kind)
    # BIND's transfers come from the transfer-source of its base config; Knot's, toward
    # 127.0.0.1, from 127.0.0.1 (the snippet sets no source).
    source = sec.source if kind == "bind" else "127.0.0.1"
    peer = f"cat-{kind}-{tag}"
    r = api.post("/peers", json={"name": peer, "address": sec.listen, "port": sec.port,
                                 "transfer_from": [f"{source}/32"]})
    assert r.status_code == 201, r.text
    assert api.put(f"/zones/{catalog}/peers/{peer}", json={"role": "secondary"}).status_code == 200
    r = api.get(f"/peers/{peer}/config", params={"zone": catalog, "format": kind})
    assert r.status_code == 200, r.text
    snippet = r.text
    assert ("catalog-zones" in snippet) if kind == "bind" else ("catalog-role: interpret" in snippet)
    paste(sec, snippet)
    if kind == "bind":
        (sec.workdir / "secondary").mkdir()
    try:
        sec.start()
        sec.wait_ready()
        wait_catalog(sec, catalog, zk.serial(catalog))
        assert sec.serial(members[0]) is None

        # A member linked to the catalog: picked up, transferred, served.
        r = api.put(f"/zones/{catalog}/members/{members[0]}")
        assert r.status_code == 200, r.text
        wait_catalog(sec, catalog, r.json()["serial"])
        sec.wait_serial(members[0], 1, timeout=WAIT)
        assert answer(sec, f"www.{members[0]}") == ["192.0.2.2"]

        # Its edits follow by NOTIFY (the peer is linked to the catalog only) and IXFR.
        for i in range(2):
            r = api.put(f"/zones/{members[0]}/rrsets/www/A",
                        json={"records": [{"content": f"192.0.2.{10 + i}"}]})
            assert r.status_code == 200, r.text
            serial = r.json()["serial"]
            sec.wait_serial(members[0], serial, timeout=WAIT)
            assert answer(sec, f"www.{members[0]}") == [f"192.0.2.{10 + i}"]
        ixfrs = zk.events("xfr.out", zone=members[0], client=source, type="IXFR", result="ok")
        assert ixfrs and ixfrs[-1]["serial"] == serial, zk.events("xfr.out", zone=members[0])

        # A second member with a group, a third: both served.
        r = api.put(f"/zones/{catalog}/members/{members[1]}", json={"group": "standard"})
        assert r.status_code == 200, r.text
        assert api.put(f"/zones/{catalog}/members/{members[2]}").status_code == 200
        sec.wait_serial(members[1], 1, timeout=WAIT)
        sec.wait_serial(members[2], 1, timeout=WAIT)

        # Unlinked from the catalog, then a member zone deleted: both dropped; the rest stay.
        assert api.delete(f"/zones/{catalog}/members/{members[0]}").status_code == 204
        wait_gone(sec, members[0])
        assert api.delete(f"/zones/{members[1]}").status_code == 204
        wait_gone(sec, members[1])
        wait_catalog(sec, catalog, zk.serial(catalog))
        assert sec.serial(members[2]) == 1
        # The catalog went out incrementally too.
        assert zk.events("xfr.out", zone=catalog, client=source, type="IXFR", result="ok")
    finally:
        sec.stop()
