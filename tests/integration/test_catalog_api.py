"""Catalog zones (RFC 9432) through the REST API and the CLI against a real server, checked
through DNS: a catalog is served like any primary zone, its members are its records, and
it changes (serial, journal, IXFR) with each link, unlink and member deletion."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.update
import httpx2

from tests.conftest import TOKEN, ZkServer, make_zone


def member_id(zone: str) -> str:
    # The id is ours to choose (RFC 9432 §4.1); the test pins the documented one.
    return hashlib.sha256(dns.name.from_text(zone).canonicalize().to_wire()).hexdigest()[:16]


def problem(r: httpx2.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


def rdata_texts(zk: ZkServer, name: str, rdtype: str) -> list[str]:
    r = zk.query(name, rdtype)
    assert r.rcode() == dns.rcode.NOERROR, r
    return sorted(rd.to_text() for rrset in r.answer for rd in rrset)


def make_catalog(api: httpx2.Client, name: str) -> dict:
    r = api.post("/zones", json={"name": name, "kind": "catalog"})
    assert r.status_code == 201, r.text
    return r.json()


def journal_count(zk: ZkServer, zone: str) -> int:
    with sqlite3.connect(zk.db_path) as db:
        return db.execute("SELECT count(*) FROM journal j JOIN zones z ON z.id = j.zone_id "
                          "WHERE z.name = ?", (zone,)).fetchone()[0]


def test_a_catalog_is_served_as_rfc_9432_version_2(zk: ZkServer, api: httpx2.Client,
                                                   zone_name: str) -> None:
    cat = "cat-" + zone_name
    info = make_catalog(api, cat)
    assert info["kind"] == "catalog"
    assert info["soa"]["mname"] == "invalid." and info["soa"]["rname"] == "invalid."
    assert rdata_texts(zk, cat, "NS") == ["invalid."]
    assert rdata_texts(zk, "version." + cat, "TXT") == ['"2"']
    assert zk.serial(cat) == info["serial"]
    kinds = {z["name"]: z["kind"] for z in api.get("/zones", params={"kind": "catalog"}).json()["items"]}
    assert kinds[cat] == "catalog"
    assert api.get(f"/zones/{cat}/members").json() == {"items": [], "next_cursor": None}


def test_link_and_unlink_change_the_catalog_with_journal_and_ixfr(
        zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    cat = "cat-" + zone_name
    serial0 = make_catalog(api, cat)["serial"]
    make_zone(api, zone_name)
    r = api.put(f"/zones/{cat}/members/{zone_name}")
    assert r.status_code == 200, r.text
    linked = r.json()
    uid = member_id(zone_name)
    assert linked == {"catalog": cat, "zone": zone_name, "id": uid, "group": None,
                      "coo": None, "serial": serial0 + 1}
    assert r.headers["ETag"] == f'"{serial0 + 1}"'
    # Served at once, and as an IXFR from the serial before.
    assert rdata_texts(zk, f"{uid}.zones.{cat}", "PTR") == [zone_name]
    assert zk.serial(cat) == serial0 + 1
    api.post("/acls", json={"action": "transfer", "zone": cat,
                            "network": "127.0.0.1/32"}).raise_for_status()
    ixfr = dns.query.tcp(_ixfr(cat, serial0), zk.addr, port=zk.dns_port, timeout=5,
                         one_rr_per_rrset=True)
    assert ixfr.rcode() == dns.rcode.NOERROR, ixfr
    texts = [rrset.to_text() for rrset in ixfr.answer]
    assert any(f"{uid}.zones.{cat}" in t and "PTR" in t for t in texts), texts
    # Incremental: SOA new, SOA old, (nothing removed), SOA new, the PTR added, SOA new.
    assert [rrset.rdtype for rrset in ixfr.answer] == [dns.rdatatype.SOA] * 3 + [
        dns.rdatatype.PTR, dns.rdatatype.SOA], texts
    # Linking again as it is changes nothing.
    assert api.put(f"/zones/{cat}/members/{zone_name}").json()["serial"] == serial0 + 1
    assert journal_count(zk, cat) == 1
    # Properties: group and coo are records beside the member's PTR; left out, removed.
    r = api.put(f"/zones/{cat}/members/{zone_name}",
                json={"group": "signed \"fast\"", "coo": "other-" + cat})
    assert r.json()["serial"] == serial0 + 2, r.text
    assert rdata_texts(zk, f"group.{uid}.zones.{cat}", "TXT") == ['"signed \\"fast\\""']
    assert rdata_texts(zk, f"coo.{uid}.zones.{cat}", "PTR") == ["other-" + cat]
    assert api.get(f"/zones/{cat}/members").json()["items"] == [
        {"zone": zone_name, "id": uid, "group": 'signed "fast"', "coo": "other-" + cat,
         "automatic": False}]
    assert api.put(f"/zones/{cat}/members/{zone_name}", json={}).json()["serial"] == serial0 + 3
    assert zk.query(f"group.{uid}.zones.{cat}", "TXT").rcode() == dns.rcode.NXDOMAIN
    # Unlinked: the PTR goes, the zone stays.
    r = api.delete(f"/zones/{cat}/members/{zone_name}")
    assert r.status_code == 204 and r.headers["ETag"] == f'"{serial0 + 4}"'
    assert zk.query(f"{uid}.zones.{cat}", "PTR").rcode() == dns.rcode.NXDOMAIN
    assert zk.query(f"zones.{cat}", "PTR").rcode() == dns.rcode.NXDOMAIN
    assert api.get(f"/zones/{zone_name}").status_code == 200
    assert journal_count(zk, cat) == 4
    problem(api.delete(f"/zones/{cat}/members/{zone_name}"), 404)


def _ixfr(zone: str, serial: int) -> dns.message.Message:
    q = dns.message.make_query(zone, "IXFR")
    q.authority.append(dns.rrset.from_text(zone, 0, "IN", "SOA",
                                           f"invalid. invalid. {serial} 0 0 0 0"))
    return q


def test_deleting_a_member_removes_it_from_every_catalog(zk: ZkServer, api: httpx2.Client,
                                                         zone_name: str) -> None:
    cats = ["a-" + zone_name, "b-" + zone_name]
    serials = [make_catalog(api, c)["serial"] for c in cats]
    make_zone(api, zone_name)
    other = "other-" + zone_name
    make_zone(api, other)
    for c in cats:
        api.put(f"/zones/{c}/members/{zone_name}").raise_for_status()
    api.put(f"/zones/{cats[0]}/members/{other}").raise_for_status()
    assert api.delete(f"/zones/{zone_name}").status_code == 204
    assert [m["zone"] for m in api.get(f"/zones/{cats[0]}/members").json()["items"]] == [other]
    assert api.get(f"/zones/{cats[1]}/members").json()["items"] == []
    assert zk.serial(cats[0]) == serials[0] + 3 and zk.serial(cats[1]) == serials[1] + 2
    uid = member_id(zone_name)
    assert zk.query(f"{uid}.zones.{cats[1]}", "PTR").rcode() == dns.rcode.NXDOMAIN
    assert zk.events("catalog.member_unlinked", zone=zone_name, reason="zone deleted")
    # A catalog with members is deleted whole; its members stay.
    assert api.delete(f"/zones/{cats[0]}").status_code == 204
    assert api.get(f"/zones/{other}").status_code == 200


def test_a_catalog_is_not_edited_by_hand(zk: ZkServer, api: httpx2.Client,
                                         zone_name: str) -> None:
    cat = "cat-" + zone_name
    serial = make_catalog(api, cat)["serial"]
    body = problem(api.patch(f"/zones/{cat}/rrsets", json={"rrsets": [
        {"name": "x.zones", "type": "PTR", "changetype": "REPLACE",
         "records": [{"content": "example.com."}]}]}), 409)
    assert "catalog" in body["detail"] and "members" in body["detail"]
    problem(api.put(f"/zones/{cat}/rrsets/version/TXT",
                    json={"records": [{"content": '"1"'}]}), 409)
    problem(api.delete(f"/zones/{cat}/rrsets/version/TXT"), 409)
    r = api.post(f"/zones/{cat}/import", content=f"$ORIGIN {cat}\n@ 0 SOA invalid. invalid. 9 1 1 1 1\n"
                 "@ 0 NS invalid.\n", headers={"Content-Type": "text/dns"})
    problem(r, 409)
    # DNS UPDATE is refused (even where the rules would allow one).
    r = api.post("/acls", json={"action": "update", "zone": cat, "network": "127.0.0.1/32"})
    assert r.status_code == 201, r.text
    upd = dns.update.UpdateMessage(cat)
    upd.add("x.zones", 0, "PTR", "example.com.")
    ans = dns.query.tcp(upd, zk.addr, port=zk.dns_port, timeout=5)
    assert ans.rcode() == dns.rcode.REFUSED
    # What can change: the SOA timers and settings, through PATCH /zones.
    r = api.patch(f"/zones/{cat}", json={"soa": {"refresh": 600}})
    assert r.status_code == 200, r.text
    assert r.json()["soa"]["refresh"] == 600 and r.json()["serial"] == serial + 1
    assert zk.serial(cat) == serial + 1


def test_bad_requests_are_refused_with_nothing_changed(zk: ZkServer, api: httpx2.Client,
                                                       zone_name: str) -> None:
    cat = "cat-" + zone_name
    serial = make_catalog(api, cat)["serial"]
    make_zone(api, zone_name)
    problem(api.put(f"/zones/{cat}/members/nope-{zone_name}"), 404)
    problem(api.put(f"/zones/{zone_name}/members/{cat}"), 409)  # not a catalog
    problem(api.get(f"/zones/{zone_name}/members"), 409)
    problem(api.put(f"/zones/{cat}/members/{cat}"), 422)  # a catalog is no member
    problem(api.put(f"/zones/{cat}/members/{zone_name}", json={"group": "a\x01b"}), 422)
    problem(api.put(f"/zones/{cat}/members/{zone_name}", json={"coo": cat}), 422)
    problem(api.put(f"/zones/{cat}/members/{zone_name}", json={"colour": "red"}), 422)
    problem(api.post("/zones", json={"name": "c2-" + zone_name, "kind": "catalog",
                                     "nameservers": ["ns1.example."]}), 422)
    problem(api.get(f"/zones/nope-{cat}/members"), 404)
    assert zk.serial(cat) == serial and journal_count(zk, cat) == 0


def test_cli_creates_a_catalog_and_manages_members(zk: ZkServer, api: httpx2.Client,
                                                   zone_name: str) -> None:
    cat = "cli-" + zone_name
    make_zone(api, zone_name)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zonekeeper", "-o", "json", *args],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, ZONEKEEPER_API_URL=zk.api_url,
                                       ZONEKEEPER_TOKEN=TOKEN))

    r = run("zone", "create", cat, "--kind", "catalog")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "catalog"
    r = run("zone", "member", "add", cat, zone_name, "--group", "g1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["group"] == "g1"
    r = run("zone", "member", "list", cat)
    assert [m["zone"] for m in json.loads(r.stdout)] == [zone_name]
    r = run("zone", "member", "remove", cat, zone_name)
    assert r.returncode == 0, r.stderr
    assert json.loads(run("zone", "member", "list", cat).stdout) == []
    r = run("zone", "create", "x-" + cat, "--kind", "catalog", "--ns", "ns1.example.")
    assert r.returncode == 2 and "not for a catalog" in r.stderr
    r = run("zone", "member", "add", cat, "nope-" + zone_name)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = run("zone", "create", "y-" + cat, "--catalog")
    assert r.returncode == 2 and "--kind secondary" in r.stderr
    # The member peer: set, followed by a link, listed as automatic, cleared.
    peer = "cli-" + zone_name.split(".")[0]
    api.post("/peers", json={"name": peer, "address": "127.0.0.1", "notify": False}
             ).raise_for_status()
    r = run("zone", "set", cat, "--member-peer", peer)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["member_peer"] == peer
    assert run("zone", "link", zone_name, peer).returncode == 0
    members = json.loads(run("zone", "member", "list", cat).stdout)
    assert [(m["zone"], m["automatic"]) for m in members] == [(zone_name, True)]
    r = run("zone", "set", cat, "--no-member-peer")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["member_peer"] is None
    assert json.loads(run("zone", "member", "list", cat).stdout) == []
    r = run("zone", "set", cat, "--member-peer", "nope-" + peer)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = run("zone", "create", "z-" + cat, "--member-peer", peer)
    assert r.returncode == 2 and "--kind catalog" in r.stderr
    r = run("zone", "create", "w-" + cat, "--kind", "catalog", "--member-peer", peer)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["member_peer"] == peer


def _axfr_members(zk: ZkServer, cat: str) -> list[str]:
    """The member zones the catalog's AXFR lists (the PTRs right under zones.<cat>)."""
    q = dns.message.make_query(cat, "AXFR")
    r = dns.query.tcp(q, zk.addr, port=zk.dns_port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR, r
    zones = dns.name.from_text("zones." + cat)
    return sorted(rd.target.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.PTR
                  and rrset.name.parent() == zones for rd in rrset)


def test_zones_linked_to_the_member_peer_are_members(zk: ZkServer, api: httpx2.Client,
                                                     zone_name: str) -> None:
    """A catalog naming a peer takes every primary zone linked to it as a secondary: the
    link adds it (one change: serial, journal, served and transferred), the unlink removes
    it, a member linked by hand stays; a secondary zone or the catalog is never added."""
    peer = "cons-" + zone_name.split(".")[0]
    api.post("/peers", json={"name": peer, "address": "127.0.0.1", "notify": False}
             ).raise_for_status()
    cat = "auto-" + zone_name
    r = api.post("/zones", json={"name": cat, "kind": "catalog", "member_peer": peer})
    assert r.status_code == 201, r.text
    assert r.json()["member_peer"] == peer
    serial0 = r.json()["serial"]
    assert api.get(f"/zones/{cat}").json()["member_peer"] == peer
    # The peer may transfer the catalog (its address is granted by the link).
    api.put(f"/zones/{cat}/peers/{peer}").raise_for_status()
    assert zk.serial(cat) == serial0 and _axfr_members(zk, cat) == []

    a, b, hand = "a-" + zone_name, "b-" + zone_name, "h-" + zone_name
    for z in (a, b, hand):
        make_zone(api, z)
    r = api.put(f"/zones/{a}/peers/{peer}")
    assert r.status_code == 200, r.text
    assert zk.serial(cat) == serial0 + 1 and journal_count(zk, cat) == 1
    assert rdata_texts(zk, f"{member_id(a)}.zones.{cat}", "PTR") == [a]
    assert _axfr_members(zk, cat) == [a]
    items = api.get(f"/zones/{cat}/members").json()["items"]
    assert items == [{"zone": a, "id": member_id(a), "group": None, "coo": None,
                      "automatic": True}]
    assert zk.events("catalog.member_linked", catalog=cat, zone=a, reason="member peer")
    # Linking again as it is: nothing changes.
    api.put(f"/zones/{a}/peers/{peer}").raise_for_status()
    assert zk.serial(cat) == serial0 + 1
    # A member linked by hand, then linked to the peer, stays a hand member.
    api.put(f"/zones/{cat}/members/{hand}").raise_for_status()
    api.put(f"/zones/{hand}/peers/{peer}").raise_for_status()
    assert zk.serial(cat) == serial0 + 2
    api.put(f"/zones/{b}/peers/{peer}").raise_for_status()
    assert zk.serial(cat) == serial0 + 3 and _axfr_members(zk, cat) == sorted([a, b, hand])
    auto = {m["zone"]: m["automatic"] for m in api.get(f"/zones/{cat}/members").json()["items"]}
    assert auto == {a: True, b: True, hand: False}
    # Unlinked: the automatic member goes (one change), the hand one stays.
    assert api.delete(f"/zones/{a}/peers/{peer}").status_code == 204
    assert zk.serial(cat) == serial0 + 4 and journal_count(zk, cat) == 4
    assert zk.query(f"{member_id(a)}.zones.{cat}", "PTR").rcode() == dns.rcode.NXDOMAIN
    assert api.delete(f"/zones/{hand}/peers/{peer}").status_code == 204
    assert zk.serial(cat) == serial0 + 4 and _axfr_members(zk, cat) == sorted([b, hand])
    # Relinked as its primary: no longer a secondary of the peer, so no longer a member.
    api.put(f"/zones/{b}/peers/{peer}", json={"role": "primary"}).raise_for_status()
    assert zk.serial(cat) == serial0 + 5 and _axfr_members(zk, cat) == [hand]
    # Only primary zones: a secondary zone linked to the peer (by its creation) is not added.
    sec = "s-" + zone_name
    r = api.post("/zones", json={"name": sec, "kind": "secondary", "primaries": [peer]})
    assert r.status_code == 201, r.text
    api.put(f"/zones/{sec}/peers/{peer}", json={"role": "secondary"}).raise_for_status()
    assert zk.serial(cat) == serial0 + 5
    # A linked zone's deletion removes it (as any member's does).
    api.put(f"/zones/{a}/peers/{peer}").raise_for_status()
    assert zk.serial(cat) == serial0 + 6
    assert api.delete(f"/zones/{a}").status_code == 204
    assert zk.serial(cat) == serial0 + 7 and _axfr_members(zk, cat) == [hand]
    # The peer cannot go while a catalog names it (even with no zone linked to it).
    for z in (cat, b, sec):
        assert api.delete(f"/zones/{z}/peers/{peer}").status_code == 204
    body = problem(api.delete(f"/peers/{peer}"), 409)
    assert "member peer" in body["detail"]


def test_setting_and_clearing_the_member_peer(zk: ZkServer, api: httpx2.Client,
                                              zone_name: str) -> None:
    """Naming a peer on an existing catalog adds the zones linked to it in one change;
    clearing it removes those in one change and keeps the hand members; a catalog created
    with a peer has the linked zones from its first version."""
    peer = "p-" + zone_name.split(".")[0]
    api.post("/peers", json={"name": peer, "address": "127.0.0.1", "notify": False}
             ).raise_for_status()
    zones = [f"{i}-{zone_name}" for i in "abc"]
    for z in zones:
        make_zone(api, z)
        api.put(f"/zones/{z}/peers/{peer}").raise_for_status()
    hand = "h-" + zone_name
    make_zone(api, hand)
    cat = "set-" + zone_name
    serial0 = make_catalog(api, cat)["serial"]
    api.put(f"/zones/{cat}/members/{hand}").raise_for_status()
    api.put(f"/zones/{cat}/peers/{peer}").raise_for_status()  # the catalog: not a member
    r = api.patch(f"/zones/{cat}", json={"member_peer": peer})
    assert r.status_code == 200, r.text
    assert r.json()["member_peer"] == peer and r.json()["serial"] == serial0 + 2
    assert r.headers["ETag"] == f'"{serial0 + 2}"'
    assert zk.serial(cat) == serial0 + 2 and journal_count(zk, cat) == 2
    assert _axfr_members(zk, cat) == sorted([*zones, hand])
    # Set again as it is: nothing.
    assert api.patch(f"/zones/{cat}", json={"member_peer": peer}).json()["serial"] == serial0 + 2
    # Cleared: the three automatic members go, in one change.
    r = api.patch(f"/zones/{cat}", json={"member_peer": None})
    assert r.status_code == 200, r.text
    assert r.json()["member_peer"] is None and r.json()["serial"] == serial0 + 3
    assert _axfr_members(zk, cat) == [hand] and journal_count(zk, cat) == 3
    # No longer followed: a new link changes nothing.
    d = "d-" + zone_name
    make_zone(api, d)
    api.put(f"/zones/{d}/peers/{peer}").raise_for_status()
    assert zk.serial(cat) == serial0 + 3
    # Created with the peer: the four linked zones in its first version.
    cat2 = "new-" + zone_name
    r = api.post("/zones", json={"name": cat2, "kind": "catalog", "member_peer": peer})
    assert r.status_code == 201, r.text
    api.put(f"/zones/{cat2}/peers/{peer}").raise_for_status()
    assert _axfr_members(zk, cat2) == sorted([*zones, d])
    assert journal_count(zk, cat2) == 0
    assert all(m["automatic"] for m in api.get(f"/zones/{cat2}/members").json()["items"])


def test_a_bad_member_peer_is_refused_with_nothing_changed(zk: ZkServer, api: httpx2.Client,
                                                           zone_name: str) -> None:
    cat = "bad-" + zone_name
    serial = make_catalog(api, cat)["serial"]
    make_zone(api, zone_name)
    body = problem(api.patch(f"/zones/{cat}", json={"member_peer": "nope-peer"}), 422)
    assert "nope-peer does not exist" in json.dumps(body)
    body = problem(api.post("/zones", json={"name": "c-" + cat, "kind": "catalog",
                                            "member_peer": "nope-peer"}), 422)
    assert "nope-peer does not exist" in json.dumps(body)
    assert api.get(f"/zones/c-{cat}").status_code == 404
    body = problem(api.patch(f"/zones/{zone_name}", json={"member_peer": "nope-peer"}), 422)
    assert "catalog" in json.dumps(body)
    problem(api.post("/zones", json={"name": "p-" + zone_name, "member_peer": "x",
                                     "nameservers": ["ns1.example."]}), 422)
    problem(api.patch(f"/zones/{cat}", json={"member_peer": ""}), 422)
    assert zk.serial(cat) == serial and journal_count(zk, cat) == 0
    assert api.get(f"/zones/{cat}").json()["member_peer"] is None


def test_catalog_on_postgresql(zk_factory, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """The same link, unlink and member deletion on PostgreSQL (schema 0011 there too)."""
    zk = zk_factory(database=pg_url, demo=False).start()
    with zk.client() as api:
        cat, member = "cat.pg.test.", "m.pg.test."
        serial = make_catalog(api, cat)["serial"]
        make_zone(api, member)
        assert api.put(f"/zones/{cat}/members/{member}", json={"group": "g"}).json()["serial"] == serial + 1
        assert rdata_texts(zk, f"group.{member_id(member)}.zones.{cat}", "TXT") == ['"g"']
        assert api.delete(f"/zones/{member}").status_code == 204
        assert api.get(f"/zones/{cat}/members").json()["items"] == []
        assert zk.serial(cat) == serial + 2
    zk.stop()


def test_zonekeeper_follows_a_zonekeeper_catalog(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """Both halves together: one zonekeeper publishes a catalog, another consumes it. The
    consumer is linked to the catalog only; members linked, edited, unlinked and deleted on
    the producer are created, followed (NOTIFY), and deleted on the consumer."""
    from tests.conftest import wait_for

    producer = zk_factory(demo=False).start()
    consumer = zk_factory(demo=False).start()
    cat, m1, m2 = "cat.both.test.", "m1.both.test.", "m2.both.test."
    with producer.client() as p, consumer.client() as c:
        make_catalog(p, cat)
        for m in (m1, m2):
            make_zone(p, m)
        # The consumer's NOTIFYs and transfers come from 127.0.0.1.
        p.post("/peers", json={"name": "consumer", "address": "127.0.0.1",
                               "port": consumer.dns_port}).raise_for_status()
        p.put(f"/zones/{cat}/peers/consumer", json={"role": "secondary"}).raise_for_status()
        c.post("/peers", json={"name": "producer", "address": "127.0.0.1",
                               "port": producer.dns_port}).raise_for_status()
        r = c.post("/zones", json={"name": cat, "kind": "secondary", "primaries": ["producer"],
                                   "catalog": True})
        assert r.status_code == 201, r.text

        def serial(zone: str) -> int | None:
            r = consumer.query(zone, "SOA")
            return int(r.answer[0][0].serial) if r.rcode() == 0 and r.answer else None

        p.put(f"/zones/{cat}/members/{m1}").raise_for_status()
        wait_for(lambda: serial(m1) == producer.serial(m1), 20, "member created and served")
        assert c.get(f"/zones/{m1}").json()["member_of"] == cat
        new = p.put(f"/zones/{m1}/rrsets/www/A",
                    json={"records": [{"content": "192.0.2.80"}]}).json()["serial"]
        wait_for(lambda: serial(m1) == new, 20, "member edit followed by NOTIFY")
        p.put(f"/zones/{cat}/members/{m2}").raise_for_status()
        wait_for(lambda: serial(m2) is not None, 20, "second member")
        p.delete(f"/zones/{cat}/members/{m1}").raise_for_status()
        wait_for(lambda: c.get(f"/zones/{m1}").status_code == 404, 20, "unlinked member gone")
        p.delete(f"/zones/{m2}").raise_for_status()
        wait_for(lambda: c.get(f"/zones/{m2}").status_code == 404, 20, "deleted member gone")
        assert c.get(f"/zones/{cat}/members").json()["items"] == []
    consumer.stop()
    producer.stop()
