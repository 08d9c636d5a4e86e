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
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
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


@pytest.mark.parametrize(("kind", "keyed"), [("bind", False), ("knot", False), ("bind", True),
                                              ("knot", True)],
                         ids=["bind", "knot", "bind-tsig", "knot-tsig"])
def test_a_secondary_follows_the_catalog(zk: ZkServer, api: httpx2.Client, kind: str,
                                         keyed: bool, tmp_path: Path) -> None:
    """With ``keyed``, the peer has a TSIG key: the catalog's and every member's transfers
    and NOTIFYs are signed with it (the key export pasted first, as the snippet says), and
    an unsigned AXFR of a member from the secondary's address is refused."""
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
    body: dict[str, object] = {"name": peer, "address": sec.listen, "port": sec.port,
                               "transfer_from": [f"{source}/32"]}
    if keyed:
        made = api.post("/tsig-keys", json={"name": f"cat-{tag}"}).json()
        body["key"] = made["name"]
        exported = api.get(f"/tsig-keys/{made['name']}/export", params={"format": kind})
        assert exported.status_code == 200, exported.text
        sec.add_config_text(exported.text, reload=False)
    r = api.post("/peers", json={**body})
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
        if keyed:
            assert {e["key"] for e in zk.events("xfr.out", zone=members[0], client=source)} == {
                made["name"]}
            unsigned = dns.query.tcp(dns.message.make_query(members[0], "AXFR"), zk.addr,
                                     port=zk.dns_port, timeout=5, source=source)
            assert unsigned.rcode() == dns.rcode.REFUSED

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


@pytest.mark.parametrize("kind", KINDS)
def test_a_zone_linked_to_the_member_peer_reaches_the_secondary(
        zk: ZkServer, api: httpx2.Client, kind: str, tmp_path: Path) -> None:
    """Automatic membership: the catalog names the peer as its member peer; a zone linked to
    that peer (and nothing else: no member link) is listed, so the secondary, configured
    with the catalog only, creates and serves it; unlinked from the peer, it is dropped."""
    tag = uuid.uuid4().hex[:8]
    catalog, member = f"auto{tag}.test.", f"linked{tag}.test."
    sec = make_secondary(kind, tmp_path / kind)
    source = sec.source if kind == "bind" else "127.0.0.1"
    peer = f"auto-{kind}-{tag}"
    r = api.post("/peers", json={"name": peer, "address": sec.listen, "port": sec.port,
                                 "transfer_from": [f"{source}/32"]})
    assert r.status_code == 201, r.text
    r = api.post("/zones", json={"name": catalog, "kind": "catalog", "member_peer": peer})
    assert r.status_code == 201, r.text
    assert api.put(f"/zones/{catalog}/peers/{peer}").status_code == 200
    paste(sec, api.get(f"/peers/{peer}/config", params={"zone": catalog, "format": kind}).text)
    if kind == "bind":
        (sec.workdir / "secondary").mkdir()
    try:
        sec.start()
        sec.wait_ready()
        wait_catalog(sec, catalog, zk.serial(catalog))
        make_zone(api, member, zone_text=ZONE_TEXT)
        assert api.put(f"/zones/{member}/peers/{peer}").status_code == 200
        wait_catalog(sec, catalog, zk.serial(catalog))
        sec.wait_serial(member, 1, timeout=WAIT)
        assert answer(sec, f"www.{member}") == ["192.0.2.2"]
        assert api.delete(f"/zones/{member}/peers/{peer}").status_code == 204
        wait_gone(sec, member)
        assert api.get(f"/zones/{member}").status_code == 200
    finally:
        sec.stop()


# -- zonekeeper as the consumer of a BIND catalog ------------------------------------------------
def catalog_text(serial: int, members: dict[str, str], *, version: str = "2",
                 group: dict[str, str] | None = None) -> str:
    """A catalog zone file as a producer writes one (BIND serves it as a plain zone)."""
    lines = ["$TTL 0", f"@ IN SOA invalid. invalid. {serial} 3600 600 2147483646 0",
             "@ IN NS invalid.", f'version IN TXT "{version}"']
    lines += [f"{uid}.zones IN PTR {zone}" for zone, uid in members.items()]
    lines += [f'group.{members[zone]}.zones IN TXT "{g}"' for zone, g in (group or {}).items()]
    return "\n".join(lines) + "\n"


def member_text(serial: int) -> str:
    return ZONE_TEXT.replace("hostmaster 1 ", f"hostmaster {serial} ").replace(
        "192.0.2.2", f"192.0.2.{serial + 1}")


def test_zonekeeper_consumes_a_bind_catalog(zk: ZkServer, api: httpx2.Client,
                                            tmp_path: Path) -> None:
    """BIND serves a catalog (a plain zone it NOTIFYs us of) and its members. A secondary zone
    created here with ``catalog: true`` makes its members secondary zones of the same primary;
    members added, removed or with a new unique id follow the catalog; a member's own edits
    follow by NOTIFY; a catalog of another version is not acted on; a zone made here by hand
    is left alone."""
    from tests.primaries import BindPrimary, PrimaryZone

    require_tool("named", "bind9")
    tag = uuid.uuid4().hex[:8]
    catalog = f"ccat{tag}.test."
    m = [f"c{i}{tag}.test." for i in range(4)]
    ids = {zone: f"id{i}" for i, zone in enumerate(m)}
    prim = BindPrimary(tmp_path / "bind", port=free_port(), ctl_port=free_port())
    notify = (zk.addr, zk.dns_port)
    prim.serve_zones(PrimaryZone(catalog, catalog_text(1, {m[0]: ids[m[0]], m[1]: ids[m[1]]},
                                                       group={m[0]: "g1"}), notify=notify),
                     *(PrimaryZone(z, member_text(1), notify=notify) for z in m), reload=False)
    try:
        prim.start()
        prim.wait_ready()
        peer = f"catprim-{tag}"
        assert api.post("/peers", json={"name": peer, "address": prim.listen,
                                        "port": prim.port}).status_code == 201
        r = api.post("/zones", json={"name": catalog, "kind": "secondary", "primaries": [peer],
                                     "catalog": True})
        assert r.status_code == 201, r.text
        assert r.json()["catalog_consumer"] is True

        def served(zone: str) -> int | None:
            r = zk.query(zone, "SOA")
            return int(r.answer[0][0].serial) if r.rcode() == 0 and r.answer else None

        wait_for(lambda: served(m[0]) == 1 and served(m[1]) == 1, WAIT, "members served")
        info = api.get(f"/zones/{m[0]}").json()
        assert info["kind"] == "secondary" and info["member_of"] == catalog, info
        assert [p["peer"] for p in api.get(f"/zones/{m[0]}/peers").json()] == [peer]
        listed = api.get(f"/zones/{catalog}/members").json()["items"]
        assert [(x["zone"], x["id"], x["group"], x["provisioned"]) for x in listed] == [
            (m[0], "id0", "g1", True), (m[1], "id1", None, True)]
        assert served(m[2]) is None

        # A member's edit follows by NOTIFY (BIND notifies us; the link came from the catalog).
        prim.edit_zone(m[1], member_text(2))
        wait_for(lambda: served(m[1]) == 2, WAIT, "member edit followed")

        # A zone made here by hand is not taken over by the catalog.
        make_zone(api, m[3])
        # The catalog changes: m0 removed, m2 and m3 added.
        prim.edit_zone(catalog, catalog_text(2, {m[1]: ids[m[1]], m[2]: ids[m[2]],
                                                 m[3]: ids[m[3]]}))
        wait_for(lambda: served(m[2]) == 1, WAIT, "new member served")
        wait_for(lambda: api.get(f"/zones/{m[0]}").status_code == 404, WAIT, "member removed")
        assert api.get(f"/zones/{m[3]}").json()["kind"] == "primary"
        assert zk.events("catalog.member_conflict", zone=m[3])

        # A new unique id resets the member: made again, transferred again.
        before = api.get(f"/zones/{m[1]}").json()["created_at"]
        prim.edit_zone(catalog, catalog_text(3, {m[1]: "reset1", m[2]: ids[m[2]]}))
        wait_for(lambda: api.get(f"/zones/{m[1]}").json().get("created_at", before) != before,
                 WAIT, "member reset")
        wait_for(lambda: served(m[1]) == 2, WAIT, "reset member transferred again")

        # The root and names inside the catalog are never made zones.
        prim.edit_zone(catalog, catalog_text(4, {m[1]: "reset1", m[2]: ids[m[2]],
                                                 ".": "root", f"x.{catalog}": "inner"}))
        wait_for(lambda: zk.events("catalog.member_conflict", zone=f"x.{catalog}"), WAIT,
                 "a name inside the catalog refused")
        assert zk.events("catalog.member_conflict", zone=".")
        assert api.get(f"/zones/x.{catalog}").status_code == 404
        assert served(m[1]) == 2 and served(m[2]) == 1

        # A catalog of another version is not acted on: nothing is removed.
        prim.edit_zone(catalog, catalog_text(5, {}, version="1"))
        wait_for(lambda: zk.events("catalog.refused", catalog=catalog), WAIT, "catalog refused")
        assert served(m[1]) == 2 and served(m[2]) == 1

        # After a restart the zone is still consumed as a catalog.
        zk.stop()
        zk.start()
        prim.edit_zone(catalog, catalog_text(6, {m[1]: "reset1", m[2]: ids[m[2]],
                                                 m[0]: "again0"}))
        wait_for(lambda: served(m[0]) == 1, WAIT, "a member added after a restart")
        assert served(m[1]) == 2 and served(m[2]) == 1

        # Deleting the consumed catalog keeps its members as plain secondary zones.
        assert api.delete(f"/zones/{catalog}").status_code == 204
        assert api.get(f"/zones/{m[2]}").json()["member_of"] is None
    finally:
        prim.stop()


def test_a_member_moves_between_catalogs_with_coo_on_bind(zk: ZkServer, api: httpx2.Client,
                                                          tmp_path: Path) -> None:
    """RFC 9432 §5.6 with BIND 9.18 consuming two catalogs: ``coo`` set on the member in the
    old catalog, the member added to the new one, then removed from the old; BIND serves the
    zone and names the new catalog as its owner before the old catalog drops it."""
    tag = uuid.uuid4().hex[:8]
    old, new = f"old{tag}.test.", f"new{tag}.test."
    member = f"mv{tag}.test."
    sec = make_secondary("bind", tmp_path / "bind")
    peer = f"coo-{tag}"
    assert api.post("/peers", json={"name": peer, "address": sec.listen, "port": sec.port,
                                    "transfer_from": [f"{sec.source}/32"]}).status_code == 201
    clauses = []
    for cat in (old, new):
        assert api.post("/zones", json={"name": cat, "kind": "catalog"}).status_code == 201
        assert api.put(f"/zones/{cat}/peers/{peer}", json={"role": "secondary"}).status_code == 200
        snippet = api.get(f"/peers/{peer}/config", params={"zone": cat, "format": "bind"}).text
        inside, marker, rest = snippet.partition("// At the top level")
        # One catalog-zones statement, a zone clause per catalog, as the snippet says.
        clauses += [ln for ln in inside.splitlines() if ln.strip().startswith("zone ")]
        sec.add_config_text(marker + rest, reload=False)
    sec.options_text = "catalog-zones {\n" + "\n".join(clauses) + "\n};\n"
    stay = f"st{tag}.test."  # the control: listed in both catalogs, no coo
    for zone in (member, stay):
        make_zone(api, zone, zone_text=ZONE_TEXT)
        assert api.put(f"/zones/{old}/members/{zone}").status_code == 200
    (sec.workdir / "secondary").mkdir()
    try:
        sec.start()
        sec.wait_ready()
        sec.wait_serial(member, 1, timeout=WAIT)
        sec.wait_serial(stay, 1, timeout=WAIT)

        def moved(zone: str) -> bool:
            """BIND 9.18 logs a move by coo as "deleting zone 'Z' from catalog 'old'" (while
            the old catalog still lists it), then "adding zone 'Z' from catalog 'new'"."""
            line = f"deleting zone '{zone.rstrip('.')}' from catalog '{old.rstrip('.')}'"
            return line in sec.log_path.read_text(errors="replace")

        # Without coo, a zone listed in the new catalog too stays with the old one.
        r = api.put(f"/zones/{new}/members/{stay}")
        assert r.status_code == 200, r.text
        seen = f"updating catalog zone '{new.rstrip('.')}' with serial {r.json()['serial']}"
        wait_for(lambda: seen in sec.log_path.read_text(errors="replace"), WAIT,
                 f"BIND to read {new}:\n{sec.diagnostics()}")
        refused = f"zone '{stay.rstrip('.')}' will not be added because another catalog zone"
        wait_for(lambda: refused in sec.log_path.read_text(errors="replace"), WAIT,
                 f"BIND to keep {stay} in {old}:\n{sec.diagnostics()}")
        assert not moved(stay), sec.diagnostics()

        r = api.put(f"/zones/{old}/members/{member}", json={"coo": new})
        assert r.status_code == 200 and r.json()["coo"] == new, r.text
        sec.wait_serial(old, r.json()["serial"], timeout=WAIT)
        r = api.put(f"/zones/{new}/members/{member}")
        assert r.status_code == 200, r.text
        sec.wait_serial(new, r.json()["serial"], timeout=WAIT)
        # Moved while the old catalog still lists it.
        wait_for(lambda: moved(member), WAIT, f"BIND to move {member}:\n{sec.diagnostics()}")
        # Moved, BIND transfers the member again for its new catalog: wait for it to serve it.
        sec.wait_serial(member, 1, timeout=WAIT)
        r = api.delete(f"/zones/{old}/members/{member}")
        assert r.status_code == 204
        # BIND serves the zone all along: poll through its next catalog updates.
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            assert sec.serial(member) == 1, sec.diagnostics()
            time.sleep(0.2)
    finally:
        sec.stop()
