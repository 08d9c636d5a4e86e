"""The console's workflows in Chromium: sign in, zones, records, rights, CSRF, live status."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import httpx2
import pytest
from playwright.sync_api import expect

from tests.conftest import ZkServer, free_port, make_zone, require_tool, wait_for
from tests.peers import KnotSecondary
from tests.web.conftest import create_user, shot, sign_in

STATIC = Path(__file__).parents[2] / "zonekeeper" / "web" / "static"


def new_zone_name() -> str:
    return f"ui{uuid.uuid4().hex[:8]}.test."


def serial_of(srv: ZkServer, zone: str) -> int:
    with srv.client() as api:
        return int(api.get(f"/zones/{zone}").json()["serial"])


def test_vendored_htmx_is_the_recorded_file() -> None:
    digest = hashlib.sha256((STATIC / "htmx.min.js").read_bytes()).hexdigest()
    assert digest in (STATIC / "VENDORED.md").read_text()


def test_pages_carry_the_security_headers(console: ZkServer) -> None:
    for path in ("/ui/login", "/ui/static/zk.css"):
        r = httpx2.get(console.api_url + path)
        assert r.status_code == 200
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_create_zone_add_record_and_see_the_serial_rise(console: ZkServer, browser: Any) -> None:
    page = sign_in(browser, console, "eve")
    shot(page, "zones")
    zone = new_zone_name()
    page.get_by_label("Zone name").fill(zone)
    page.get_by_label("Nameservers").fill("ns1.example.net. ns2.example.net.")
    page.get_by_role("button", name="Create zone").click()
    page.wait_for_url(f"**/ui/zones/{zone}")
    first = int(page.locator("#serial").inner_text())
    page.get_by_label("Name", exact=True).fill("www")
    page.get_by_label("Type", exact=True).fill("A")
    page.get_by_label("Records, one per line").fill("192.0.2.10\n192.0.2.11")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#serial")).to_have_text(str(first + 1))
    expect(page.get_by_text("192.0.2.11")).to_be_visible()
    shot(page, "zone")
    # Served at once, over DNS.
    r = dns.query.udp(dns.message.make_query(f"www.{zone}", "A"), console.addr,
                      port=console.dns_port, timeout=5)
    assert sorted(rr.to_text() for rr in r.answer[0]) == ["192.0.2.10", "192.0.2.11"]
    # The zones list shows it, and the filter finds it as one types.
    page.goto("/ui/")
    page.get_by_label("Filter by name").fill(zone[:10])
    page.wait_for_function(
        "n => document.querySelectorAll('#zone-rows tbody tr').length === n", arg=1)
    expect(page.locator("#zone-rows").get_by_role("link", name=zone)).to_be_visible()
    page.context.close()


def test_bad_record_shows_its_error_next_to_the_field_and_changes_nothing(
        console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    with console.client() as api:
        make_zone(api, zone)
    before = serial_of(console, zone)
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    page.get_by_label("Name", exact=True).fill("bad")
    page.get_by_label("Type", exact=True).fill("A")
    page.get_by_label("TTL").fill("soon")
    page.get_by_label("Records, one per line").fill("not-an-address")
    page.get_by_role("button", name="Save").click()
    # Every problem at once, each next to its field.
    expect(page.locator("#records-error")).to_contain_text("not-an-address")
    expect(page.locator("#ttl-error")).to_be_visible()
    assert page.get_by_label("Records, one per line").input_value() == "not-an-address"
    assert serial_of(console, zone) == before
    shot(page, "zone-error")
    page.context.close()


def test_viewer_sees_no_controls_and_a_forged_post_is_refused(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    with console.client() as api:
        make_zone(api, zone)
    before = serial_of(console, zone)
    page = sign_in(browser, console, "vic")
    assert page.get_by_role("button", name="Create zone").count() == 0
    page.goto(f"/ui/zones/{zone}")
    assert page.get_by_role("button", name="Save").count() == 0
    csrf = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    r = page.request.post(f"/ui/zones/{zone}/rrsets", headers={"X-CSRF-Token": csrf},
                          form={"name": "x", "type": "A", "records": "192.0.2.1"})
    assert r.status == 403
    assert serial_of(console, zone) == before
    page.context.close()


def test_a_post_without_the_csrf_token_is_refused(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    with console.client() as api:
        make_zone(api, zone)
    before = serial_of(console, zone)
    page = sign_in(browser, console, "eve")
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        r = page.request.post(f"/ui/zones/{zone}/rrsets", headers=headers,
                              form={"name": "x", "type": "A", "records": "192.0.2.1"})
        assert r.status == 403
    r = page.request.post("/ui/zones", form={"name": new_zone_name(), "nameservers": "ns1.x."})
    assert r.status == 403
    assert serial_of(console, zone) == before
    page.context.close()


def test_sign_in_failures_are_throttled_and_sign_out_ends_the_session(
        console: ZkServer, browser: Any) -> None:
    assert create_user(console, "mal", "viewer", "short").returncode != 0  # too short a password
    context = browser.new_context(base_url=console.api_url)
    page = context.new_page()
    for _ in range(5):
        page.goto("/ui/login")
        page.get_by_label("User name").fill("vic")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("wrong user name or password")).to_be_visible()
    page.get_by_label("User name").fill("vic")
    page.get_by_label("Password").fill("vic-password-1")  # right, but too many failures
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("too many failed sign-ins")).to_be_visible()
    shot(page, "login")
    context.close()
    page = sign_in(browser, console, "ada")
    cookies = page.context.cookies()
    (cookie,) = [c for c in cookies if c["name"] == "zk_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login")
    r = httpx2.get(console.api_url + "/ui/", cookies={"zk_session": cookie["value"]},
                   follow_redirects=False)
    assert r.status_code == 303 and "/ui/login" in r.headers["location"]
    page.context.close()


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_tool("knotd", "knot")
    require_tool("knotc", "knot")
    sec = KnotSecondary(tmp_path_factory.mktemp("knot"), addr="127.0.0.41",
                        port=free_port("127.0.0.41"))
    sec.start()
    sec.wait_ready()
    yield sec
    sec.stop()


def test_secondary_badge_turns_in_sync_then_behind(console: ZkServer, browser: Any, knot: Any) -> None:
    from tests.peers import SecondaryZone

    zone = new_zone_name()
    with console.client() as api:
        make_zone(api, zone)
        r = api.post("/peers", json={"name": "knot-ui", "address": knot.listen, "port": knot.port,
                                     "transfer_from": [f"{knot.source}/32"]})
        assert r.status_code == 201, r.text
        assert api.put(f"/zones/{zone}/peers/knot-ui", json={"role": "secondary"}).status_code == 200
    knot.add_zones(SecondaryZone(zone, (console.addr, console.dns_port)))
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    page.get_by_label("Name", exact=True).fill("live")
    page.get_by_label("Type", exact=True).fill("TXT")
    page.get_by_label("Records, one per line").fill('"edit one"')
    page.get_by_role("button", name="Save").click()
    badge = page.locator('tr[data-peer="knot-ui"] .badge')
    wait_for(lambda: badge.get_attribute("data-state") == "in sync", 30, "in sync badge")
    shot(page, "zone-status")
    page.goto("/ui/")
    expect(page.locator(f'tr[data-zone="{zone}"]')).to_contain_text("1 in sync")
    shot(page, "zones-status")
    page.goto(f"/ui/zones/{zone}")
    badge = page.locator('tr[data-peer="knot-ui"] .badge')
    knot.stop()
    try:
        page.get_by_label("Name", exact=True).fill("live")
        page.get_by_label("Type", exact=True).fill("TXT")
        page.get_by_label("Records, one per line").fill('"edit two"')
        page.get_by_role("button", name="Save").click()
        # The panel refreshes itself (htmx polling): no reload here.
        wait_for(lambda: badge.get_attribute("data-state") in ("behind", "unreachable"), 60,
                 "behind badge")
    finally:
        knot.start()
        knot.wait_ready()
    page.context.close()


def test_the_zones_list_pages_past_a_hundred_zones_and_filters(console: ZkServer, browser: Any) -> None:
    tag = f"pg{uuid.uuid4().hex[:6]}"
    names = sorted(f"{tag}-{i:03d}.test." for i in range(130))
    with console.client() as api:
        for name in names:
            make_zone(api, name)
    page = sign_in(browser, console, "eve")  # (vic is locked out by the throttling test)
    page.goto(f"/ui/?q={tag}")
    rows = page.locator("#zone-rows tbody tr[data-zone]")
    expect(rows).to_have_count(100)
    assert rows.first.get_attribute("data-zone") == names[0]
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(30)
    assert [rows.nth(i).get_attribute("data-zone") for i in range(30)] == names[100:]
    assert page.get_by_role("link", name="Next page").count() == 0
    # Typing in the filter narrows the list in place (htmx), without a reload.
    page.goto("/ui/")
    page.get_by_label("Filter by name").fill(f"{tag}-12")
    expect(rows).to_have_count(10)
    expect(page.locator("#zone-rows")).not_to_contain_text(f"{tag}-099")
    page.context.close()
