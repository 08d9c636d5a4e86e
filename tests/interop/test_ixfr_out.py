"""IXFR out to real secondaries: after edits, BIND, Knot and NSD pull incremental transfers
(zonekeeper's transfer log says IXFR, incremental) and end with the primary's data; a
secondary older than the journal gets a full (AXFR-style) transfer; a peer with IXFR off gets
AXFR-style answers; the journal serves IXFR across a restart of zonekeeper."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import ZkServer, free_port, make_zone, require_tool
from tests.peers import BindSecondary, KnotSecondary, NsdSecondary, Secondary, SecondaryZone, axfr_lines

pytestmark = pytest.mark.interop

SOURCES = {"bind": "127.0.0.34", "knot": "127.0.0.35", "nsd": "127.0.0.36"}
ZONE_TEXT = """$TTL 300
@ IN SOA ns1 hostmaster 1 86400 3600 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.2
keep IN TXT "unchanged"
"""


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    srv = ZkServer(tmp_path_factory.mktemp("zk"), demo=False).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def secondaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Secondary]]:
    for tool, pkg in (("named", "bind9"), ("rndc", "bind9"), ("knotd", "knot"), ("knotc", "knot"),
                      ("nsd", "nsd"), ("nsd-control", "nsd")):
        require_tool(tool, pkg)
    base = tmp_path_factory.mktemp("ixfr-secondaries")
    peers: dict[str, Secondary] = {
        "bind": BindSecondary(base / "bind", source=SOURCES["bind"], port=free_port(), ctl_port=free_port()),
        "knot": KnotSecondary(base / "knot", addr=SOURCES["knot"], port=free_port(SOURCES["knot"])),
        "nsd": NsdSecondary(base / "nsd", addr=SOURCES["nsd"], port=free_port(SOURCES["nsd"])),
    }
    try:
        for p in peers.values():
            p.start()
        for p in peers.values():
            p.wait_ready()
        yield peers
    finally:
        for p in peers.values():
            p.stop()


def transfers(zk: ZkServer, zone: str) -> list[dict]:
    out = []
    for line in zk.log().splitlines():
        if '"xfr.out"' in line and zone in line:
            event = json.loads(line)
            if event.get("zone") == zone:
                out.append(event)
    return out


def setup_zone(zk: ZkServer, api: httpx2.Client, secondaries: dict[str, Secondary], *,
               ixfr: bool = True) -> str:
    zone = f"i-{uuid.uuid4().hex[:8]}.test."
    make_zone(api, zone, zone_text=ZONE_TEXT)
    # The tests dump the primary from 127.0.0.1 (the secondaries come from their own sources).
    api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.1/32"})
    tag = zone.split(".")[0]
    for kind, sec in secondaries.items():
        # notify off: the tests decide when each secondary looks (refresh).
        api.post("/peers", json={"name": f"{kind}-{tag}", "address": sec.listen, "port": sec.port,
                                 "transfer_from": [f"{sec.source}/32"], "notify": False, "ixfr": ixfr})
        api.put(f"/zones/{zone}/peers/{kind}-{tag}", json={"role": "secondary"})
        sec.add_zones(SecondaryZone(zone, ("127.0.0.1", zk.dns_port)))
    for sec in secondaries.values():
        sec.wait_serial(zone, 1, timeout=30)
    return zone


def edit(api: httpx2.Client, zone: str, n: int) -> int:
    r = api.patch(f"/zones/{zone}/rrsets", json={"rrsets": [
        {"name": "www", "type": "A", "changetype": "REPLACE", "ttl": 300, "records": [{"content": f"192.0.2.{n}"}]},
        {"name": f"new{n}", "type": "AAAA", "changetype": "REPLACE", "ttl": 60, "records": [{"content": f"2001:db8::{n}"}]},
    ]})
    assert r.status_code == 200, r.text
    return int(r.json()["serial"])


def refresh_all(secondaries: dict[str, Secondary], zone: str, serial: int) -> None:
    for sec in secondaries.values():
        sec.refresh(zone)
    for sec in secondaries.values():
        sec.wait_serial(zone, serial, timeout=30)


def test_secondaries_pull_ixfr_and_match(zk: ZkServer, api: httpx2.Client,
                                         secondaries: dict[str, Secondary]) -> None:
    zone = setup_zone(zk, api, secondaries)
    serial = 1
    for n in range(10, 13):
        serial = edit(api, zone, n)
    refresh_all(secondaries, zone, serial)
    primary = axfr_lines("127.0.0.1", zk.dns_port, zone)
    for kind, sec in secondaries.items():
        assert sec.dump(zone) == primary, kind
    ixfrs = [e for e in transfers(zk, zone) if e["type"] == "IXFR"]
    clients = {e["client"] for e in ixfrs}
    assert {SOURCES["bind"], SOURCES["knot"], SOURCES["nsd"]} <= clients, ixfrs
    assert all(e["style"] == "incremental from 1" for e in ixfrs)


def test_older_than_the_journal_gets_a_full_transfer(zk: ZkServer, api: httpx2.Client,
                                                     secondaries: dict[str, Secondary]) -> None:
    zone = setup_zone(zk, api, secondaries)
    assert api.patch(f"/zones/{zone}", json={"journal_max_count": 2}).status_code == 200
    serial = 1
    for n in range(20, 25):
        serial = edit(api, zone, n)
    refresh_all(secondaries, zone, serial)
    primary = axfr_lines("127.0.0.1", zk.dns_port, zone)
    for kind, sec in secondaries.items():
        assert sec.dump(zone) == primary, kind
    styles = {e["client"]: e.get("style", "") for e in transfers(zk, zone) if e["serial"] == serial}
    for kind in secondaries:
        style = styles.get(SOURCES[kind], "AXFR")  # a plain AXFR has no style
        assert not style.startswith("incremental"), (kind, styles)


def test_peer_with_ixfr_off_gets_axfr(zk: ZkServer, api: httpx2.Client,
                                      secondaries: dict[str, Secondary]) -> None:
    zone = setup_zone(zk, api, secondaries, ixfr=False)
    serial = edit(api, zone, 30)
    refresh_all(secondaries, zone, serial)
    final = [e for e in transfers(zk, zone) if e["serial"] == serial]
    assert final and all(e["type"] != "IXFR" for e in final), final
    primary = axfr_lines("127.0.0.1", zk.dns_port, zone)
    for kind, sec in secondaries.items():
        assert sec.dump(zone) == primary, kind


def test_journal_serves_ixfr_across_a_restart(zk_factory, secondaries: dict[str, Secondary]) -> None:  # type: ignore[no-untyped-def]
    srv: ZkServer = zk_factory(demo=False).start()
    with srv.client() as api:
        zone = setup_zone(srv, api, secondaries)
        serial = edit(api, zone, 40)
    assert srv.stop() == 0
    srv.start()
    refresh_all(secondaries, zone, serial)
    ixfrs = [e for e in transfers(srv, zone) if e["type"] == "IXFR" and e["serial"] == serial]
    assert {e["client"] for e in ixfrs} == set(SOURCES.values()), ixfrs
