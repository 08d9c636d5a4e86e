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
        {"zone": zone_name, "id": uid, "group": 'signed "fast"', "coo": "other-" + cat}]
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
