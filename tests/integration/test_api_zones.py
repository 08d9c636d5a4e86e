"""The zones REST API over real HTTP against a real server, checked through DNS too."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import dns.rcode
import httpx2
import pytest

from tests.conftest import TOKEN, ZkServer, make_zone, require_tool


def journal_rows(zk: ZkServer, zone: str) -> int:
    with sqlite3.connect(zk.db_path) as db:
        return db.execute(
            "SELECT count(*) FROM journal j JOIN zones z ON z.id = j.zone_id WHERE z.name = ?",
            (zone,),
        ).fetchone()[0]


def a_records(zk: ZkServer, name: str) -> list[str]:
    r = zk.query(name, "A")
    return sorted(rr.to_text() for rrset in r.answer for rr in rrset)


def problem(r: httpx2.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:zonekeeper:problem:")
    assert body["detail"]
    return body


# -- authentication --------------------------------------------------------------------------


def test_no_token_is_401(zk: ZkServer) -> None:
    with zk.client(token=None) as c:
        body = problem(c.get("/zones"), 401)
    assert "Bearer" in body["detail"]


def test_bad_token_is_401(zk: ZkServer) -> None:
    with zk.client(token="zk_nope_wrong") as c:
        problem(c.get("/zones"), 401)
    with zk.client(token=TOKEN + "x") as c:
        problem(c.get("/zones"), 401)


def test_read_token_cannot_write_403(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    r = api.post("/tokens", json={"name": "reader", "scopes": ["read"]})
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith("zk_")
    with zk.client(token=token) as c:
        assert c.get("/zones").status_code == 200
        body = problem(c.post("/zones", json={"name": zone_name, "nameservers": ["ns1.x.test."]}), 403)
        assert "write" in body["detail"]
        problem(c.get("/tokens"), 403)
    # The secret is never shown again.
    listed = api.get("/tokens").json()["items"]
    assert all("token" not in t for t in listed)
    tid = r.json()["id"]
    assert api.delete(f"/tokens/{tid}").status_code == 204
    with zk.client(token=token) as c:
        problem(c.get("/zones"), 401)


# -- create, read, delete --------------------------------------------------------------------


def test_create_serves_at_once_and_duplicates_conflict(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    info = make_zone(api, zone_name)
    assert info["name"] == zone_name and info["kind"] == "primary"
    assert info["soa"]["mname"] == f"ns1.{zone_name}"
    assert zk.serial(zone_name) == info["serial"]
    assert a_records(zk, f"ns1.{zone_name}") == ["192.0.2.1"]
    problem(api.post("/zones", json={"name": zone_name.upper(), "nameservers": ["ns1.x.test."]}), 409)
    got = api.get(f"/zones/{zone_name.rstrip('.').upper()}")
    assert got.status_code == 200 and got.headers["etag"] == f'"{info["serial"]}"'


def test_a_zone_text_in_another_case_is_one_zone_to_edit(zk: ZkServer, api: httpx2.Client,
                                                         zone_name: str) -> None:
    """Owners are one RRset whatever their case: a zone text with its $ORIGIN and owners in
    upper case shows its SOA, takes edits of its apex and of "www" (read as "WWW"), and
    keeps one row per RRset."""
    upper = zone_name.upper()
    text = (f"$ORIGIN {upper}\n$TTL 300\n@ SOA NS1 hostmaster 7 3600 900 1209600 300\n"
            "@ NS NS1\nNS1 A 192.0.2.1\nWWW A 192.0.2.7\n")
    created = api.post("/zones", json={"name": zone_name, "zone_text": text})
    assert created.status_code == 201, created.text
    got = api.get(f"/zones/{zone_name}").json()
    assert got["soa"]["serial"] == 7 and got["soa"]["mname"] == f"NS1.{upper}", got
    r = api.put(f"/zones/{zone_name}/rrsets/www/A", json={"ttl": 60, "records": [{"content": "192.0.2.8"}]})
    assert r.status_code == 200, r.text
    assert a_records(zk, f"www.{zone_name}") == ["192.0.2.8"]
    items = api.get(f"/zones/{zone_name}/rrsets").json()["items"]
    assert [(i["name"], i["type"]) for i in items].count((f"www.{zone_name}", "A")) == 1, items
    www = [i for i in items if i["name"] == f"www.{zone_name}" and i["type"] == "A"][0]
    assert [x["content"] for x in www["records"]] == ["192.0.2.8"] and www["ttl"] == 60
    listed = api.get(f"/zones/{zone_name}/rrsets", params={"name": "WWW", "type": "A"})
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1, listed.text


def test_create_needs_nameservers_and_valid_name(api: httpx2.Client, zone_name: str) -> None:
    problem(api.post("/zones", json={"name": zone_name}), 422)
    problem(api.post("/zones", json={"name": "bad..name", "nameservers": ["ns1.x.test."]}), 400)
    problem(api.get("/zones/nonexistent.test"), 404)


def test_delete_zone_then_refused(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    assert api.delete(f"/zones/{zone_name}").status_code == 204
    assert zk.query(zone_name, "SOA").rcode() == dns.rcode.REFUSED
    problem(api.delete(f"/zones/{zone_name}"), 404)


def test_list_with_pagination(api: httpx2.Client, zone_name: str) -> None:
    names = [f"p{i}{zone_name}" for i in range(3)]
    for n in names:
        make_zone(api, n)
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/zones", params=params).json()
        seen += [z["name"] for z in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(names) <= set(seen) and len(seen) == len(set(seen))
    problem(api.get("/zones", params={"limit": 0}), 400)


# -- RRset edits -----------------------------------------------------------------------------


def test_patch_is_one_bump_and_served(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    r = api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "www", "type": "A", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": "192.0.2.7"}, {"content": "192.0.2.8"}]},
        {"name": "mail", "type": "MX", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": "10 www"}]},
    ]})
    assert r.status_code == 200, r.text
    assert r.json()["serial"] == serial + 1 and r.headers["etag"] == f'"{serial + 1}"'
    assert zk.serial(zone_name) == serial + 1
    assert a_records(zk, f"www.{zone_name}") == ["192.0.2.7", "192.0.2.8"]
    mx = zk.query(f"mail.{zone_name}", "MX")
    assert mx.answer[0][0].exchange.to_text() == f"www.{zone_name}"
    rrs = api.get(f"/zones/{zone_name}/rrsets", params={"name": "www", "type": "A"}).json()["items"]
    assert rrs == [{"name": f"www.{zone_name}", "type": "A", "ttl": 300, "records": [
        {"content": "192.0.2.7", "disabled": False}, {"content": "192.0.2.8", "disabled": False}]}]


def test_failed_patch_changes_nothing(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    before = journal_rows(zk, zone_name)
    r = api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "ok", "type": "A", "changetype": "REPLACE", "records": [{"content": "192.0.2.1"}]},
        {"name": "bad", "type": "A", "changetype": "REPLACE", "records": [{"content": "300.1.1.1"}]},
        {"name": "bad2", "type": "AAAA", "changetype": "REPLACE", "records": [{"content": "nope"}]},
    ]})
    body = problem(r, 422)
    locs = [e["loc"] for e in body["errors"]]
    assert ["rrsets", 1, "records", 0, "content"] in locs
    assert ["rrsets", 2, "records", 0, "content"] in locs
    assert zk.serial(zone_name) == serial
    assert zk.query(f"ok.{zone_name}", "A").rcode() == dns.rcode.NXDOMAIN
    assert journal_rows(zk, zone_name) == before


def test_cname_conflict_and_out_of_zone_are_422(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    body = problem(api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "ns1", "type": "CNAME", "changetype": "REPLACE", "records": [{"content": "elsewhere.example."}]},
    ]}), 422)
    assert any("CNAME and other data" in e["msg"] for e in body["errors"])
    body = problem(api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "www.other.example.", "type": "A", "changetype": "REPLACE", "records": [{"content": "192.0.2.1"}]},
    ]}), 422)
    assert "outside zone" in body["errors"][0]["msg"]
    body = problem(api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "@", "type": "NS", "changetype": "DELETE"},
    ]}), 422)
    assert any("no NS records at the apex" in e["msg"] for e in body["errors"])
    assert zk.serial(zone_name) == serial


def test_if_match_stale_is_412(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    change = {"rrsets": [{"name": "a", "type": "A", "changetype": "REPLACE", "records": [{"content": "192.0.2.1"}]}]}
    ok = api.patch(f"/zones/{zone_name}/rrsets", json=change, headers={"If-Match": f'"{serial}"'})
    assert ok.status_code == 200
    problem(api.patch(f"/zones/{zone_name}/rrsets", json=change, headers={"If-Match": f'"{serial}"'}), 412)
    assert zk.serial(zone_name) == serial + 1


def test_noop_patch_keeps_serial(api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    same = {"rrsets": [{"name": "ns1", "type": "A", "changetype": "REPLACE", "ttl": 3600,
                        "records": [{"content": "192.0.2.1"}]}]}
    assert api.patch(f"/zones/{zone_name}/rrsets", json=same).json()["serial"] == serial


def test_put_get_delete_one_rrset(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    r = api.put(f"/zones/{zone_name}/rrsets/txt/TXT", json={"ttl": 60, "records": [{"content": '"hello world"'}]})
    assert r.status_code == 200 and r.json()["serial"] == serial + 1
    got = api.get(f"/zones/{zone_name}/rrsets/txt/TXT").json()
    assert got["records"] == [{"content": '"hello world"', "disabled": False}]
    assert zk.query(f"txt.{zone_name}", "TXT").answer[0][0].strings == (b"hello world",)
    assert api.delete(f"/zones/{zone_name}/rrsets/txt/TXT").status_code == 204
    assert zk.query(f"txt.{zone_name}", "TXT").rcode() == dns.rcode.NXDOMAIN
    problem(api.delete(f"/zones/{zone_name}/rrsets/txt/TXT"), 404)
    problem(api.get(f"/zones/{zone_name}/rrsets/txt/BOGUSTYPE"), 400)


def test_disabled_records_are_kept_not_served(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    api.put(f"/zones/{zone_name}/rrsets/d/A", json={"records": [
        {"content": "192.0.2.1"}, {"content": "192.0.2.2", "disabled": True}]})
    assert a_records(zk, f"d.{zone_name}") == ["192.0.2.1"]


def test_empty_non_terminal_appears_and_goes(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    api.put(f"/zones/{zone_name}/rrsets/x.y.z/A", json={"records": [{"content": "192.0.2.1"}]})
    r = zk.query(f"y.z.{zone_name}", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer  # ENT: NODATA
    api.delete(f"/zones/{zone_name}/rrsets/x.y.z/A")
    assert zk.query(f"y.z.{zone_name}", "A").rcode() == dns.rcode.NXDOMAIN
    assert zk.query(f"z.{zone_name}", "A").rcode() == dns.rcode.NXDOMAIN


# -- SOA and serial policies -----------------------------------------------------------------


def test_soa_edit_and_explicit_serial(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    r = api.patch(f"/zones/{zone_name}", json={"soa": {"rname": "admin.example.net.", "refresh": 7200}})
    assert r.status_code == 200, r.text
    assert r.json()["soa"]["rname"] == "admin.example.net." and r.json()["serial"] == serial + 1
    soa = zk.query(zone_name, "SOA").answer[0][0]
    assert soa.rname.to_text() == "admin.example.net." and soa.refresh == 7200 and soa.serial == serial + 1
    body = problem(api.patch(f"/zones/{zone_name}", json={"serial": (serial + 1 + 2**31) % 2**32}), 422)
    assert "RFC 1982" in body["errors"][0]["msg"]
    r = api.patch(f"/zones/{zone_name}", json={"serial": serial + 1000})
    assert r.status_code == 200 and zk.serial(zone_name) == serial + 1000


def test_dateserial_policy(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    import datetime

    info = make_zone(api, zone_name, serial_policy="dateserial")
    today = int(datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")) * 100
    assert today <= info["serial"] <= today + 1  # creation uses the policy too
    for _ in range(3):
        api.put(f"/zones/{zone_name}/rrsets/n/A", json={"records": [{"content": f"192.0.2.{_ + 1}"}]})
    assert zk.serial(zone_name) == info["serial"] + 3


# -- import and export -----------------------------------------------------------------------


ZONE_TEXT = """$ORIGIN {z}
$TTL 300
@ IN SOA ns1 hostmaster 5 3600 900 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.2
"""


def test_import_reports_every_problem_with_lines(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    bad = (ZONE_TEXT.format(z=zone_name) + "bad IN A 999.1.1.1\nwww IN CNAME ns1\nfar.example. IN A 192.0.2.1\n")
    body = problem(api.post(f"/zones/{zone_name}/import", content=bad, headers={"content-type": "text/dns"}), 422)
    by_line = {e["loc"][1]: e["msg"] for e in body["errors"]}
    assert set(by_line) == {7, 8, 9}, body
    assert "CNAME and other data" in by_line[8] and "outside zone" in by_line[9]
    assert zk.serial(zone_name) == serial


def test_import_dry_run_unsafe_and_force(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    text = ZONE_TEXT.format(z=zone_name)
    dry = api.post(f"/zones/{zone_name}/import", params={"dry_run": "true"}, content=text)
    assert dry.status_code == 200 and dry.json()["applied"] is False
    assert {"op": "add", "name": f"www.{zone_name}", "type": "A", "ttl": 300, "content": "192.0.2.2"} in dry.json()["changes"]
    assert zk.serial(zone_name) == serial
    body = problem(api.post(f"/zones/{zone_name}/import", content=text), 409)
    assert "force=true" in body["detail"]
    done = api.post(f"/zones/{zone_name}/import", params={"force": "true"}, content=text)
    assert done.status_code == 200 and done.json()["applied"] and done.json()["serial"] == serial + 1
    assert a_records(zk, f"www.{zone_name}") == ["192.0.2.2"]
    assert zk.query(zone_name, "SOA").answer[0].ttl == 300
    # The stored RRsets carry the serial given, not the text's (the export reads them), and
    # an import of the export changes nothing.
    exported = api.get(f"/zones/{zone_name}/export").text
    soa_line = next(line for line in exported.splitlines() if "\tSOA\t" in line)
    assert soa_line.split()[6] == str(serial + 1), soa_line
    again = api.post(f"/zones/{zone_name}/import", content=exported)
    assert again.status_code == 200 and again.json()["changes"] == [], again.json()
    assert zk.serial(zone_name) == serial + 1


def test_export_is_accepted_by_named_checkzone(zk: ZkServer, api: httpx2.Client, zone_name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    checkzone = require_tool("named-checkzone", "bind9-utils")
    make_zone(api, zone_name, zone_text=ZONE_TEXT.format(z=zone_name) + 'txt IN TXT "a b" "c"\nmx IN MX 10 www\n*.w IN A 192.0.2.9\n')
    r = api.get(f"/zones/{zone_name}/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/dns")
    lines = r.text.splitlines()
    assert lines[0] == f"$ORIGIN {zone_name}" and "SOA" in lines[2]
    path = tmp_path / "z.zone"
    path.write_text(r.text)
    out = subprocess.run([checkzone, zone_name, str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"loaded serial {zk.serial(zone_name)}" in out.stdout


def test_malformed_json_is_400_and_big_body_413(api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    problem(api.patch(f"/zones/{zone_name}/rrsets", content=b"{not json", headers={"content-type": "application/json"}), 400)
    body = problem(api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [{"name": "x", "type": "A"}]}), 422)
    assert any(e["loc"][-1] == "changetype" for e in body["errors"])
    problem(api.post(f"/zones/{zone_name}/import", content=b"x" * (10 * 1024 * 1024 + 10)), 413)


def test_openapi_document(zk: ZkServer) -> None:
    doc = httpx2.get(zk.api_url + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/zones/{zone}/rrsets" in doc["paths"]


@pytest.mark.parametrize("path", ["/zones", "/tokens"])
def test_problem_for_unknown_method(api: httpx2.Client, path: str) -> None:
    problem(api.put(path, json={}), 405)


def test_storage_busy_is_503_and_changes_nothing(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(api, zone_name)["serial"]
    blocker = sqlite3.connect(zk.db_path, timeout=1, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock past the server's busy timeout
        r = api.put(f"/zones/{zone_name}/rrsets/x/A", json={"records": [{"content": "192.0.2.1"}]})
        body = problem(r, 503)
        assert r.headers["retry-after"] == "5" and "nothing was changed" in body["detail"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert zk.serial(zone_name) == serial
    ok = api.put(f"/zones/{zone_name}/rrsets/x/A", json={"records": [{"content": "192.0.2.1"}]})
    assert ok.status_code == 200 and ok.json()["serial"] == serial + 1


def test_transfer_now_on_a_primary_zone_is_409(api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    body = problem(api.post(f"/zones/{zone_name}/transfer", json={}), 409)
    assert "primary zone" in body["detail"]
    problem(api.post("/zones/nope.test/transfer", json={}), 404)


def test_key_and_peer_lists_paginate(api: httpx2.Client, zone_name: str) -> None:
    tag = zone_name.split(".")[0]
    for i in range(3):
        assert api.post("/tsig-keys", json={"name": f"pg{i}-{tag}"}).status_code == 201
        assert api.post("/peers", json={"name": f"pg{i}-{tag}", "address": f"192.0.2.{i + 1}"}).status_code == 201
    for path in ("/tsig-keys", "/peers"):
        seen, cursor = [], None
        for _ in range(100):
            body = api.get(path, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            assert len(body["items"]) <= 2
            seen += [x["name"] for x in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) and sum(tag in n for n in seen) == 3


def test_record_count_counts_records_everywhere(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    """record_count is records (RRs), not RRsets, in create, get, list and both PATCH
    replies; a disabled record is not served, so not counted."""
    text = (f"$ORIGIN {zone_name}\n$TTL 300\n@ SOA ns1.example.net. h 1 3600 600 86400 300\n"
            "@ NS ns1.example.net.\n@ NS ns2.example.net.\n"
            "www A 192.0.2.1\nwww A 192.0.2.2\nwww A 192.0.2.3\nwww AAAA 2001:db8::1\n")
    created = api.post("/zones", json={"name": zone_name, "zone_text": text})
    assert created.status_code == 201, created.text
    assert created.json()["record_count"] == 7  # 1 SOA + 2 NS + 3 A + 1 AAAA (4 RRsets)
    assert api.get(f"/zones/{zone_name}").json()["record_count"] == 7
    listed = [z for z in api.get("/zones", params={"limit": 1000}).json()["items"]
              if z["name"] == zone_name]
    assert [z["record_count"] for z in listed] == [7]
    r = api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "mx", "type": "A", "changetype": "REPLACE", "ttl": 60,
         "records": [{"content": "192.0.2.9"}, {"content": "192.0.2.10", "disabled": True}]}]})
    assert r.status_code == 200, r.text
    settings = api.patch(f"/zones/{zone_name}", json={"notify_ns": False})
    assert settings.status_code == 200 and settings.json()["record_count"] == 8
    soa = api.patch(f"/zones/{zone_name}", json={"soa": {"minimum": 120}})
    assert soa.status_code == 200 and soa.json()["record_count"] == 8
    assert api.get(f"/zones/{zone_name}").json()["record_count"] == 8
    from tests.integration.test_cli import zk_cli

    rows = json.loads(zk_cli(zk, "-o", "json", "zone", "list").stdout)
    assert [z["record_count"] for z in rows if z["name"] == zone_name] == [8]
    set_out = zk_cli(zk, "-o", "json", "zone", "set", zone_name, "--notify-ns")
    assert set_out.returncode == 0, set_out.stderr
    assert json.loads(set_out.stdout)["record_count"] == 8


def test_bad_ttl_and_bad_records_come_back_together(api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    r = api.put(f"/zones/{zone_name}/rrsets/x/A",
                json={"ttl": -5, "records": [{"content": "10.0.0.0/33"}, {"content": "192.0.2.1"},
                                             {"content": "192.0.2.300"}]})
    assert r.status_code == 422
    assert [(e["loc"], e["msg"].split(":")[0]) for e in r.json()["errors"]] == [
        (["body", "ttl"], "TTL -5 is outside 0..2147483647"),
        (["body", "records", 0, "content"], "bad A rdata '10.0.0.0/33'"),
        (["body", "records", 2, "content"], "bad A rdata '192.0.2.300'"),
    ]
    r = api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "a", "type": "A", "changetype": "REPLACE", "ttl": 2**31, "records": [{"content": "x"}]},
        {"name": "b", "type": "BOGUS", "changetype": "REPLACE", "records": []},
    ]})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == [
        ["rrsets", 0, "ttl"], ["rrsets", 0, "records", 0, "content"], ["rrsets", 1, "type"],
        ["rrsets", 1, "records"]]
    assert api.get(f"/zones/{zone_name}/rrsets/x/A").status_code == 404
