"""NOTIFY out to real secondaries: an edit through zonekeeper's API makes BIND, Knot and NSD
serve the new serial without any manual refresh (their SOA refresh timer is a day), signed
NOTIFY to a secondary that holds the key, and zonekeeper's status per secondary."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import ZkServer, free_port, make_zone, require_tool
from tests.peers import BindSecondary, KnotSecondary, NsdSecondary, Secondary, SecondaryZone, TsigKey

pytestmark = pytest.mark.interop

SOURCES = {"bind": "127.0.0.24", "knot": "127.0.0.25", "nsd": "127.0.0.26"}
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


@pytest.fixture(scope="module")
def api(zk: ZkServer) -> Iterator[httpx2.Client]:
    with zk.client() as c:
        yield c


@pytest.fixture(scope="module")
def secondaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Secondary]]:
    for tool, pkg in (("named", "bind9"), ("rndc", "bind9"), ("knotd", "knot"), ("knotc", "knot"),
                      ("nsd", "nsd"), ("nsd-control", "nsd")):
        require_tool(tool, pkg)
    base = tmp_path_factory.mktemp("notify-secondaries")
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


def link_all(api: httpx2.Client, zone: str, secondaries: dict[str, Secondary], *, key: str | None = None) -> None:
    tag = zone.split(".")[0]
    for kind, sec in secondaries.items():
        body = {"name": f"{kind}-{tag}", "address": sec.listen, "port": sec.port,
                "transfer_from": [f"{sec.source}/32"]}
        if key:
            body["key"] = key
        assert api.post("/peers", json=body).status_code == 201
        assert api.put(f"/zones/{zone}/peers/{kind}-{tag}", json={"role": "secondary"}).status_code == 200


def status_rows(api: httpx2.Client, zone: str) -> dict[str, dict]:
    return {r["peer"].split("-")[0]: r for r in api.get(f"/zones/{zone}/xfr-status").json()}


def test_edits_reach_every_secondary_by_notify(zk: ZkServer, api: httpx2.Client,
                                               secondaries: dict[str, Secondary]) -> None:
    zone = f"n-{uuid.uuid4().hex[:8]}.test."
    make_zone(api, zone, zone_text=ZONE_TEXT)
    link_all(api, zone, secondaries)
    for kind, sec in secondaries.items():
        sec.add_zones(SecondaryZone(zone, ("127.0.0.1", zk.dns_port)))
    for sec in secondaries.values():
        sec.wait_serial(zone, 1, timeout=30)
    serial = 1
    for i in range(3):
        r = api.put(f"/zones/{zone}/rrsets/www/A", json={"records": [{"content": f"192.0.2.{10 + i}"}]})
        serial = r.json()["serial"]
        started = time.monotonic()
        for sec in secondaries.values():
            sec.wait_serial(zone, serial, timeout=15)  # the SOA refresh is a day: only NOTIFY explains it
        assert time.monotonic() - started < 10
        for kind, sec in secondaries.items():
            assert f"www.{zone} 300 in a 192.0.2.{10 + i}" in sec.dump(zone), kind
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = status_rows(api, zone)
        if all(r["peer_serial"] == serial for r in rows.values()):
            break
        time.sleep(0.2)
    for kind, row in rows.items():
        assert row["state"] == "in sync" and row["serial_lag"] == 0, (kind, row)
        assert row["notify"]["state"] == "acked" and row["notify"]["serial"] == serial
        assert row["last_transfer"] and row["last_transfer"]["result"] == "ok", (kind, row)


def test_signed_notify_accepted_by_keyed_secondaries(zk: ZkServer, api: httpx2.Client,
                                                      secondaries: dict[str, Secondary]) -> None:
    zone = f"s-{uuid.uuid4().hex[:8]}.test."
    make_zone(api, zone, zone_text=ZONE_TEXT)
    made = api.post("/tsig-keys", json={"name": f"notify-{zone}"}).json()
    key = TsigKey(made["name"], made["algorithm"], made["secret"])
    assert api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.0/8",
                                   "key": made["name"]}).status_code == 201
    link_all(api, zone, secondaries, key=made["name"])
    for kind, sec in secondaries.items():
        fmt = {"bind": "bind", "knot": "knot", "nsd": "nsd"}[kind]
        sec.add_key(key, api.get(f"/tsig-keys/{made['name']}/export", params={"format": fmt}).text)
        sec.add_zones(SecondaryZone(zone, ("127.0.0.1", zk.dns_port), key=made["name"]))
    for sec in secondaries.values():
        sec.wait_serial(zone, 1, timeout=30)
    serial = api.put(f"/zones/{zone}/rrsets/www/A", json={"records": [{"content": "192.0.2.99"}]}).json()["serial"]
    for sec in secondaries.values():
        sec.wait_serial(zone, serial, timeout=15)
    rows = status_rows(api, zone)
    assert all(r["notify"]["state"] == "acked" for r in rows.values()), rows
    log = zk.log()
    assert f'"key": "{made["name"]}"' in log  # the NOTIFYs and transfers were signed


def test_unanswering_peer_is_retried_and_shown_unreachable(zk_factory) -> None:  # type: ignore[no-untyped-def]
    env = {"ZONEKEEPER_NOTIFY__RETRIES": "2", "ZONEKEEPER_NOTIFY__RETRY_INTERVAL": "0.3",
           "ZONEKEEPER_NOTIFY__TIMEOUT": "0.3"}
    srv: ZkServer = zk_factory(env=env).start()
    with srv.client() as api:
        # Nothing listens on this address and port: every try times out.
        api.post("/peers", json={"name": "gone", "address": "127.0.0.98", "port": free_port("127.0.0.98")})
        api.put("/zones/example.test/peers/gone", json={"role": "secondary"})
        api.put("/zones/example.test/rrsets/x/A", json={"records": [{"content": "192.0.2.1"}]})
        deadline = time.monotonic() + 15
        row = {}
        while time.monotonic() < deadline:
            row = api.get("/zones/example.test/xfr-status").json()[0]
            if row["notify"] and row["notify"]["state"] == "failed":
                break
            time.sleep(0.1)
        assert row["notify"]["attempts"] == 4 and row["state"] == "unreachable", row
    log = srv.log()
    assert log.count('"result": "timeout"') >= 3  # each UDP try logged, on schedule


@pytest.mark.parametrize("kind", ["bind", "knot", "nsd"])
def test_generated_snippet_makes_the_server_follow(zk: ZkServer, api: httpx2.Client, kind: str,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    """The config snippet from GET /peers/{peer}/config, pasted into a fresh server's config."""
    zone = f"c-{uuid.uuid4().hex[:8]}.test."
    make_zone(api, zone, zone_text=ZONE_TEXT)
    source = {"bind": "127.0.0.27", "knot": "127.0.0.28", "nsd": "127.0.0.29"}[kind]
    base = tmp_path_factory.mktemp(f"snippet-{kind}")
    sec: Secondary
    if kind == "bind":
        sec = BindSecondary(base, source=source, port=free_port(), ctl_port=free_port())
    elif kind == "knot":
        sec = KnotSecondary(base, addr=source, port=free_port(source))
    else:
        sec = NsdSecondary(base, addr=source, port=free_port(source))
    peer = f"snip-{kind}-{zone.split('.')[0]}"
    # The snippet leaves the transfer source to the server (no via / transfer-source), and
    # here that is 127.0.0.1: allow the loopback network for this peer.
    api.post("/peers", json={"name": peer, "address": sec.listen, "port": sec.port,
                             "transfer_from": ["127.0.0.0/8"]})
    api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"})
    snippet = api.get(f"/peers/{peer}/config", params={"zone": zone, "format": kind}).text
    sec.extra_config = snippet.replace('file "secondary/', f'file "{base}/').replace(
        f'zonefile: "{zone.rstrip(".")}.zone"', f'zonefile: "{base}/{zone.rstrip(".")}.zone"')
    try:
        sec.start()
        sec.wait_ready()
        sec.wait_serial(zone, 1, timeout=30)
        serial = api.put(f"/zones/{zone}/rrsets/www/A", json={"records": [{"content": "192.0.2.5"}]}).json()["serial"]
        sec.wait_serial(zone, serial, timeout=15)
    finally:
        sec.stop()
