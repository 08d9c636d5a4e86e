"""A catalog zone's page in Chromium: its members listed, one added with a group, one
removed; a bad member shown next to the field with nothing changed; a viewer sees the list
and no form."""

from __future__ import annotations

import hashlib
from typing import Any

import dns.name
from playwright.sync_api import expect

from tests.conftest import ZkServer, make_zone
from tests.web.conftest import shot, sign_in
from tests.web.test_console import new_zone_name, serial_of
from tests.web.test_zone_pages import answers


def member_id(zone: str) -> str:
    return hashlib.sha256(dns.name.from_text(zone).canonicalize().to_wire()).hexdigest()[:16]


def test_catalog_members_added_and_removed(console: ZkServer, browser: Any) -> None:
    catalog, first, second = (new_zone_name() for _ in range(3))
    page = sign_in(browser, console, "eve")
    # Made from the zones list, as a catalog.
    page.get_by_label("Zone name").fill(catalog)
    page.get_by_label("Kind").select_option("catalog")
    page.get_by_role("button", name="Create zone").click()
    page.wait_for_url(f"**/ui/zones/{catalog}")
    expect(page.locator("#kind")).to_have_text("catalog")
    with console.client() as api:
        assert api.get(f"/zones/{catalog}").json()["soa"]["mname"] == "invalid."
        make_zone(api, first)
        make_zone(api, second)
        api.put(f"/zones/{catalog}/members/{first}").raise_for_status()
    before = serial_of(console, catalog)
    page.goto(f"/ui/zones/{catalog}")
    members = page.locator("table.members")
    expect(members.locator(f'tr[data-member="{first}"]')).to_contain_text(member_id(first))
    expect(page.get_by_role("button", name="Promote")).to_have_count(0)

    # Added with a group: served at once.
    page.get_by_label("Zone to add").fill(second)
    page.get_by_label("Group (optional)").fill("gold")
    page.get_by_role("button", name="Add member").click()
    row = members.locator(f'tr[data-member="{second}"]')
    expect(row).to_contain_text("gold")
    assert serial_of(console, catalog) == before + 1
    assert answers(console, f"{member_id(second)}.zones.{catalog}", "PTR") == [second]
    assert answers(console, f"group.{member_id(second)}.zones.{catalog}", "TXT") == ['"gold"']
    shot(page, "catalog-members")

    # A zone that does not exist: said next to the field; nothing changed.
    page.get_by_label("Zone to add").fill("nope-" + second)
    page.get_by_label("Group (optional)").fill("")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator("#member-member-error")).to_contain_text("does not exist")
    assert serial_of(console, catalog) == before + 1

    # Removed.
    page.goto(f"/ui/zones/{catalog}")
    page.get_by_role("button", name=f"Remove {first}").click()
    expect(members.locator(f'tr[data-member="{first}"]')).to_have_count(0)
    assert serial_of(console, catalog) == before + 2
    page.context.close()

    # A viewer sees the members, and no way to change them.
    page = sign_in(browser, console, "vic")
    page.goto(f"/ui/zones/{catalog}")
    expect(page.locator(f'table.members tr[data-member="{second}"]')).to_be_visible()
    expect(page.get_by_role("button", name="Add member")).to_have_count(0)
    expect(page.get_by_role("button", name=f"Remove {second}")).to_have_count(0)
    page.context.close()


def test_catalog_member_peer_set_and_cleared(console: ZkServer, browser: Any) -> None:
    """The member peer chosen on the catalog's page: a zone linked to it is listed as added
    by the peer; a peer gone meanwhile is said next to the field; "none" clears it."""
    catalog, linked = new_zone_name(), new_zone_name()
    peer, gone = "mp-" + linked.split(".")[0], "gone-" + linked.split(".")[0]
    with console.client() as api:
        api.post("/zones", json={"name": catalog, "kind": "catalog"}).raise_for_status()
        make_zone(api, linked)
        for p in (peer, gone):
            api.post("/peers", json={"name": p, "address": "127.0.0.1", "notify": False}
                     ).raise_for_status()
        api.put(f"/zones/{linked}/peers/{peer}").raise_for_status()
    before = serial_of(console, catalog)
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{catalog}")
    expect(page.locator("#member-peer")).to_contain_text("none")
    page.get_by_label("Member peer: its linked primary zones are members").select_option(peer)
    page.get_by_role("button", name="Set member peer").click()
    expect(page.locator("#member-peer")).to_contain_text(peer)
    row = page.locator(f'table.members tr[data-member="{linked}"]')
    expect(row).to_contain_text("by the member peer")
    assert serial_of(console, catalog) == before + 1
    assert answers(console, f"{member_id(linked)}.zones.{catalog}", "PTR") == [linked]

    # A peer deleted after the page was drawn: refused next to the field, nothing changed.
    with console.client() as api:
        assert api.delete(f"/peers/{gone}").status_code == 204
    page.get_by_label("Member peer: its linked primary zones are members").select_option(gone)
    page.get_by_role("button", name="Set member peer").click()
    expect(page.locator("#memberpeer-member_peer-error")).to_contain_text("does not exist")
    assert serial_of(console, catalog) == before + 1

    # None: the member the peer added leaves.
    page.goto(f"/ui/zones/{catalog}")
    page.get_by_label("Member peer: its linked primary zones are members").select_option("")
    page.get_by_role("button", name="Set member peer").click()
    expect(page.locator("#member-peer")).to_contain_text("none")
    expect(page.locator(f'table.members tr[data-member="{linked}"]')).to_have_count(0)
    assert serial_of(console, catalog) == before + 2
    page.context.close()

    # A viewer sees the peer, and no form.
    page = sign_in(browser, console, "vic")
    page.goto(f"/ui/zones/{catalog}")
    expect(page.locator("#member-peer")).to_be_visible()
    expect(page.get_by_role("button", name="Set member peer")).to_have_count(0)
    page.context.close()
