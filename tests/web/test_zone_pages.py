"""The zone page's workflows in Chromium: RRset edit and delete per row, the SOA editor,
import with a preview, export; a secondary zone's timers and "Transfer now"; transfers out
(the switch, linked peers and their switches, access rules, the explain box, NOTIFY now);
and a viewer who sees all of it and can change none of it."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.xfr
import dns.zone
import pytest
from playwright.sync_api import expect

from tests.conftest import ZkServer, make_zone, wait_for
from tests.web.conftest import shot, sign_in
from tests.web.test_console import new_zone_name, serial_of


def query(srv: ZkServer, name: str, rdtype: str) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), srv.addr, port=srv.dns_port,
                         timeout=5)


def answers(srv: ZkServer, name: str, rdtype: str) -> list[str]:
    r = query(srv, name, rdtype)
    return sorted(rr.to_text() for rrset in r.answer for rr in rrset)


def axfr(srv: ZkServer, zone: str) -> dns.zone.Zone:
    return dns.zone.from_xfr(dns.query.xfr(srv.addr, zone, port=srv.dns_port, timeout=5,
                                           source="127.0.0.1"))


def zone_with(srv: ZkServer, zone: str, **rrsets: tuple[str, list[str]]) -> None:
    items = [{"name": "ns1", "type": "A", "records": [{"content": "192.0.2.1"}]}]
    items += [{"name": name, "type": t, "records": [{"content": c} for c in contents]}
              for name, (t, contents) in rrsets.items()]
    with srv.client() as api:
        make_zone(api, zone, rrsets=items)


def csrf_of(page: Any) -> str:
    return json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]  # type: ignore[no-any-return]


def test_edit_an_rrset_from_its_row_and_delete_another(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone, www=("A", ["192.0.2.10"]), old=("TXT", ['"bye"']))
    before = serial_of(console, zone)
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    page.get_by_role("button", name=f"Edit www.{zone} A", exact=True).click()
    # The form is filled with the RRset (an htmx fragment, no reload).
    records = page.get_by_label("Records, one per line")
    expect(records).to_have_value("192.0.2.10")
    expect(page.get_by_label("Name", exact=True)).to_have_value(f"www.{zone}")
    expect(page.get_by_label("TTL")).to_have_value("3600")
    records.fill("192.0.2.20\n192.0.2.21")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#serial")).to_have_text(str(before + 1))
    assert answers(console, f"www.{zone}", "A") == ["192.0.2.20", "192.0.2.21"]
    page.get_by_role("button", name=f"Delete old.{zone} TXT", exact=True).click()
    expect(page.locator("#serial")).to_have_text(str(before + 2))
    expect(page.locator(f'tr[data-rrset="old.{zone} TXT"]')).to_have_count(0)
    assert query(console, f"old.{zone}", "TXT").rcode() == dns.rcode.NXDOMAIN
    # The SOA row has no edit or delete of its own: the SOA editor is elsewhere.
    assert page.get_by_role("button", name=f"Delete {zone} SOA").count() == 0
    shot(page, "zone-primary")
    page.context.close()


def test_soa_edit_raises_the_serial_and_a_bad_value_shows_its_error_in_place(
        console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone)
    before = serial_of(console, zone)
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    expect(page.get_by_label("Refresh (seconds)")).to_have_value("3600")
    page.get_by_label("Refresh (seconds)").fill("7200")
    page.get_by_label("Primary nameserver (mname)").fill(f"ns2.{zone}")
    page.get_by_role("button", name="Update SOA").click()
    expect(page.locator("#serial")).to_have_text(str(before + 1))
    soa = query(console, zone, "SOA").answer[0][0]
    assert (soa.refresh, soa.mname.to_text(), soa.serial) == (7200, f"ns2.{zone}", before + 1)
    # Saving the untouched form changes nothing.
    page.get_by_role("button", name="Update SOA").click()
    expect(page.locator("#serial")).to_have_text(str(before + 1))
    # Every problem at once, each next to its field; nothing changed.
    page.get_by_label("Retry (seconds)").fill("-5")
    page.get_by_label("Responsible mailbox (rname)").fill("bad..mailbox")
    page.get_by_label("Expire (seconds)").fill("soon")
    page.get_by_role("button", name="Update SOA").click()
    expect(page.locator("#soa-expire-error")).to_contain_text("number of seconds")
    page.get_by_label("Expire (seconds)").fill("1209600")
    page.get_by_role("button", name="Update SOA").click()
    expect(page.locator("#soa-retry-error")).to_contain_text("-5 is outside")
    expect(page.locator("#soa-rname-error")).to_contain_text("not a valid name")
    expect(page.get_by_label("Retry (seconds)")).to_have_value("-5")
    assert serial_of(console, zone) == before + 1
    assert query(console, zone, "SOA").answer[0][0].retry == 900
    shot(page, "zone-soa-error")
    page.context.close()


def test_import_preview_shows_the_change_and_applying_it_changes_the_zone(
        console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone, **{f"h{i}": ("A", [f"192.0.2.1{i}"]) for i in range(10)})
    before = serial_of(console, zone)
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export the zone file").click()
    assert download.value.suggested_filename == zone.rstrip(".") + ".zone"
    exported = Path(download.value.path()).read_text()
    assert exported.startswith(f"$ORIGIN {zone}") and "192.0.2.13" in exported
    # A bad file: the parser's problems with their line numbers, nothing changed.
    page.get_by_label("Zone file text").fill(exported + "broken\t300\tIN\tA\tnot-an-address\n")
    page.get_by_role("button", name="Preview import").click()
    expect(page.locator("#import-text-error")).to_contain_text("line ")
    new = "".join(line + "\n" for line in exported.splitlines() if "192.0.2.13" not in line)
    new += "fresh\t300\tIN\tA\t192.0.2.99\n"
    page.get_by_label("Zone file text").fill(new)
    page.get_by_role("button", name="Preview import").click()
    expect(page.locator("#preview-counts")).to_contain_text("1 record(s) added, 1 removed")
    expect(page.locator('tr[data-op="add"]')).to_contain_text(f"fresh.{zone}")
    expect(page.locator('tr[data-op="add"]')).to_contain_text("192.0.2.99")
    expect(page.locator('tr[data-op="remove"]')).to_contain_text("192.0.2.13")
    assert serial_of(console, zone) == before  # a preview is a dry run
    shot(page, "zone-import-preview")
    page.get_by_role("button", name="Apply import").click()
    expect(page.locator("#serial")).to_have_text(str(before + 1))
    assert answers(console, f"fresh.{zone}", "A") == ["192.0.2.99"]
    assert query(console, f"h3.{zone}", "A").rcode() == dns.rcode.NXDOMAIN
    page.context.close()


def test_an_unsafe_import_is_applied_only_when_forced(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone)
    before = serial_of(console, zone)
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export the zone file").click()
    exported = Path(download.value.path()).read_text()
    page.get_by_label("Zone file text").fill(
        exported + f"@\t3600\tIN\tNS\tns2.{zone}\nns2\t3600\tIN\tA\t192.0.2.2\n")
    page.get_by_role("button", name="Preview import").click()
    expect(page.locator('tr[data-op="add"]')).to_have_count(2)
    expect(page.locator('tr[data-op="add"]').first).to_contain_text(f"ns2.{zone}")
    page.get_by_role("button", name="Apply import").click()
    # The service's refusal in place, the preview still there to force it; nothing changed.
    expect(page.locator("#import--error")).to_contain_text("apex NS")
    assert serial_of(console, zone) == before
    page.get_by_label("Apply even if it changes over 30% of the records or the apex NS").check()
    page.get_by_role("button", name="Apply import").click()
    expect(page.locator("#serial")).to_have_text(str(before + 1))
    assert answers(console, zone, "NS") == [f"ns1.{zone}", f"ns2.{zone}"]
    page.context.close()


def test_rules_explain_and_the_outgoing_switch_decide_transfers(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone, www=("A", ["192.0.2.10"]))
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")

    def explain(address: str) -> Any:
        page.get_by_label("Address to explain").fill(address)
        page.get_by_role("button", name="Explain").click()
        return page.locator("#explain-result")

    expect(explain("127.0.0.1")).to_have_attribute("data-allowed", "no")
    expect(page.locator("#explain-result")).to_contain_text("no rule allows transfer")
    with pytest.raises(dns.xfr.TransferError):
        axfr(console, zone)
    # A bad network: its error next to the field, no rule made.
    page.get_by_label("Rule network").fill("not-a-network")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("#rule-network-error", has_text="not a network")).to_be_visible()
    with console.client() as api:
        assert [r for r in api.get("/acls").json()["items"] if r["zone"] == zone] == []
    page.get_by_label("Rule network").fill("127.0.0.1/32")
    page.get_by_role("button", name="Add rule").click()
    with console.client() as api:
        (rule,) = [r for r in api.get("/acls").json()["items"] if r["zone"] == zone]
    expect(page.locator(f'tr[data-rule="{rule["id"]}"]')).to_contain_text("127.0.0.1/32")
    assert "www" in {n.to_text() for n in axfr(console, zone).nodes}
    result = explain("127.0.0.1")
    expect(result).to_have_attribute("data-allowed", "yes")
    expect(result.locator(".rule")).to_have_text(
        f"acl {rule['id']}: allow transfer zone {zone} from 127.0.0.1/32")
    expect(explain("192.0.2.77")).to_have_attribute("data-allowed", "no")
    explain("not-an-address")
    expect(page.locator("#explain-address-error")).to_contain_text("not an IP address")
    # Off: refused whatever the rules say; on again: allowed again.
    page.get_by_role("button", name="Switch transfers off").click()
    expect(page.locator("#outgoing-state")).to_have_text("off")
    with pytest.raises(dns.xfr.TransferError) as refused:
        axfr(console, zone)
    assert refused.value.rcode == dns.rcode.REFUSED
    shot(page, "zone-outgoing")
    page.get_by_role("button", name="Switch transfers on").click()
    expect(page.locator("#outgoing-state")).to_have_text("on")
    assert axfr(console, zone).nodes
    page.get_by_role("button", name=f"Delete rule {rule['id']}").click()
    expect(page.locator(f'tr[data-rule="{rule["id"]}"]')).to_have_count(0)
    with pytest.raises(dns.xfr.TransferError):
        axfr(console, zone)
    page.context.close()


def test_link_a_peer_switch_its_ixfr_notify_it_now_and_unlink_it(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone)
    peer = f"p{uuid.uuid4().hex[:8]}"
    with console.client() as api:
        # A peer that answers at once: this server itself (it does not take NOTIFY for a
        # zone it is primary for, and says so).
        r = api.post("/peers", json={"name": peer, "address": "127.0.0.1", "port": console.dns_port})
        assert r.status_code == 201, r.text
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    page.get_by_label("Peer to link").select_option(peer)
    page.get_by_role("button", name="Link peer").click()
    row = page.locator(f'table.links tr[data-peer="{peer}"]')
    expect(row.locator('[data-flag="ixfr"] .state')).to_have_text("on")
    page.get_by_role("button", name=f"Turn IXFR off for {peer}").click()
    expect(row.locator('[data-flag="ixfr"] .state')).to_have_text("off")
    expect(row.locator('[data-flag="notify"] .state')).to_have_text("on")
    with console.client() as api:
        assert api.get(f"/peers/{peer}").json()["ixfr"] is False
        assert [x["peer"] for x in api.get(f"/zones/{zone}/peers").json()] == [peer]
    page.get_by_role("button", name="Notify now").click()
    answer = page.locator(f'#notify-results tr[data-peer="{peer}"]')
    expect(answer).to_be_visible(timeout=30_000)
    expect(answer.locator("td").nth(2)).not_to_have_text("–")  # the peer's rcode
    page.get_by_role("button", name=f"Unlink {peer}").click()
    expect(row).to_have_count(0)
    with console.client() as api:
        assert api.get(f"/zones/{zone}/peers").json() == []
    page.context.close()


def test_deletes_ask_first_and_a_no_changes_nothing(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone, old=("TXT", ['"keep me"']))
    peer = f"p{uuid.uuid4().hex[:8]}"
    with console.client() as api:
        assert api.post("/peers", json={"name": peer, "address": "127.0.0.1",
                                        "port": console.dns_port}).status_code == 201
        assert api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"}).status_code == 200
    before = serial_of(console, zone)
    page = sign_in(browser, console, "eve", confirm=False)
    page.goto(f"/ui/zones/{zone}")
    asked: list[str] = []

    def answer(yes: bool) -> None:
        def reply(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept() if yes else dialog.dismiss()
        page.once("dialog", reply)

    # An RRset's delete: "no" sends nothing, "yes" deletes it.
    answer(False)
    page.get_by_role("button", name=f"Delete old.{zone} TXT", exact=True).click()
    assert asked[-1] == f"Delete old.{zone} TXT (1 record)?"
    page.wait_for_timeout(300)
    assert serial_of(console, zone) == before
    assert answers(console, f"old.{zone}", "TXT") == ['"keep me"']
    answer(True)
    page.get_by_role("button", name=f"Delete old.{zone} TXT", exact=True).click()
    expect(page.locator("#serial")).to_have_text(str(before + 1))
    assert query(console, f"old.{zone}", "TXT").rcode() == dns.rcode.NXDOMAIN
    # The zone's delete names the linked secondary before anything goes.
    expect(page.get_by_role("heading", name="Delete this zone")).to_be_visible()
    expect(page.locator(".danger-zone")).to_contain_text(peer)
    answer(False)
    page.get_by_role("button", name=f"Delete {zone}", exact=True).click()
    assert asked[-1] == f"Delete {zone}, served by 1 linked secondary? This cannot be undone."
    page.wait_for_timeout(300)
    with console.client() as api:
        assert api.get(f"/zones/{zone}").status_code == 200
    answer(True)
    page.get_by_role("button", name=f"Delete {zone}", exact=True).click()
    page.wait_for_url("**/ui/")
    with console.client() as api:
        assert api.get(f"/zones/{zone}").status_code == 404
    assert query(console, zone, "SOA").rcode() == dns.rcode.REFUSED
    page.context.close()
    # A viewer has no delete, and a forged one is refused.
    page = sign_in(browser, console, "vic")
    other = new_zone_name()
    zone_with(console, other)
    page.goto(f"/ui/zones/{other}")
    assert page.get_by_role("heading", name="Delete this zone").count() == 0
    r = page.request.post(f"/ui/zones/{other}/delete", headers={"X-CSRF-Token": csrf_of(page)})
    assert r.status == 403
    with console.client() as api:
        assert api.get(f"/zones/{other}").status_code == 200
    page.context.close()


def test_secondary_zone_shows_timers_and_transfer_now_outcome(
        console: ZkServer, browser: Any, zk_factory: Any) -> None:
    upstream = zk_factory(demo=False).start()
    zone = new_zone_name()
    peer = f"up{uuid.uuid4().hex[:8]}"
    with upstream.client() as api:
        make_zone(api, zone, soa={"refresh": 1800, "retry": 300, "expire": 86400})
        assert api.post("/acls", json={"zone": zone, "action": "transfer",
                                       "network": "127.0.0.1/32"}).status_code == 201
    with console.client() as api:
        assert api.post("/peers", json={"name": peer, "address": "127.0.0.1",
                                        "port": upstream.dns_port}).status_code == 201
    # Made in the console: a primary that is not a peer is named next to its field.
    page = sign_in(browser, console, "eve")
    page.get_by_label("Zone name").fill(zone)
    page.get_by_label("Kind").select_option("secondary")
    page.get_by_label("Primaries").fill(f"nosuch-{peer}")
    page.get_by_role("button", name="Create zone").click()
    expect(page.locator("#primaries-error")).to_contain_text(f"peer nosuch-{peer} does not exist")
    with console.client() as api:
        assert api.get(f"/zones/{zone}").status_code == 404
    expect(page.get_by_label("Kind")).to_have_value("secondary")
    page.get_by_label("Primaries").fill(peer)
    page.get_by_role("button", name="Create zone").click()
    page.wait_for_url(f"**/ui/zones/{zone}")
    first = serial_of(upstream, zone)
    wait_for(lambda: serial_of(console, zone) == first, 30, "the first transfer in")
    page.goto(f"/ui/zones/{zone}")
    expect(page.locator("#kind")).to_have_text("secondary")
    expect(page.locator(f'table.primaries tr[data-peer="{peer}"]')).to_contain_text(
        f"127.0.0.1:{upstream.dns_port}")
    expect(page.locator("#timer-refresh")).to_have_text("every 1800 s")
    expect(page.locator("#timer-retry")).to_contain_text("every 300 s")
    expect(page.locator("#timer-expire")).to_contain_text("after 86400 s")
    assert re.search(r"\(in (17\d\d|1800) s\)", page.locator("#next-refresh").inner_text())
    assert re.search(r"\(in 86\d\d\d s\)", page.locator("#next-expire").inner_text())
    expect(page.locator("#last-refresh [data-result]")).to_have_attribute("data-result", "AXFR")
    # Records are read-only here.
    assert page.get_by_role("button", name="Save").count() == 0
    assert page.get_by_role("button", name=re.compile("^Edit ")).count() == 0
    with upstream.client() as api:
        assert api.patch(f"/zones/{zone}/rrsets", json={"rrsets": [{
            "name": "new", "type": "A", "changetype": "REPLACE",
            "records": [{"content": "192.0.2.77"}]}]}).status_code == 200
    page.get_by_role("button", name="Transfer now").click()
    outcome = page.locator("#transfer-outcome .outcome")
    expect(outcome).to_have_attribute("data-result", "IXFR", timeout=30_000)
    expect(outcome).to_contain_text(f"serial {first} → {first + 1} from {peer}")
    assert answers(console, f"new.{zone}", "A") == ["192.0.2.77"]
    shot(page, "zone-secondary")
    page.get_by_role("button", name="Transfer now").click()
    expect(outcome).to_have_attribute("data-result", "UPTODATE", timeout=30_000)
    # A primary that refuses: the outcome says so, in place.
    with upstream.client() as api:
        (rule,) = api.get("/acls").json()["items"]
        assert api.delete(f"/acls/{rule['id']}").status_code == 204
    page.get_by_label("Full transfer (AXFR)").check()
    page.get_by_role("button", name="Transfer now").click()
    expect(outcome).to_have_attribute("data-result", "FAILED", timeout=30_000)
    expect(outcome).to_contain_text("REFUSED")
    page.context.close()


def test_viewer_sees_the_zone_without_controls_and_forged_posts_are_refused(
        console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone, www=("A", ["192.0.2.10"]))
    peer = f"v{uuid.uuid4().hex[:8]}"
    with console.client() as api:
        assert api.post("/peers", json={"name": peer, "address": "192.0.2.53"}).status_code == 201
        assert api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"}).status_code == 200
        rule = api.post("/acls", json={"zone": zone, "action": "transfer",
                                       "network": "192.0.2.53/32"}).json()
    before = serial_of(console, zone)
    page = sign_in(browser, console, "vic")
    page.goto(f"/ui/zones/{zone}")
    # Everything is shown ...
    expect(page.locator(f'table.links tr[data-peer="{peer}"]')).to_be_visible()
    expect(page.locator(f'tr[data-rule="{rule["id"]}"]')).to_contain_text("192.0.2.53/32")
    expect(page.locator("#soa")).to_contain_text("increment")
    expect(page.get_by_role("link", name="Export the zone file")).to_be_visible()
    # ... and nothing can be changed: no form control but the (read-only) explain box.
    for name in ("Edit", "Delete", "Save", "Update SOA", "Preview import", "Apply import",
                 "Switch transfers", "Link peer", "Unlink", "Turn", "Notify now", "Add rule",
                 "Transfer now"):
        assert page.get_by_role("button", name=name).count() == 0, name
    assert page.locator("main form[method=post]").count() == 0
    assert page.locator("main [hx-post]").count() == 0
    shot(page, "zone-viewer")
    result = page.get_by_label("Address to explain")
    result.fill("192.0.2.53")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#explain-result")).to_have_attribute("data-allowed", "yes")
    # A forged POST, with the session's right CSRF token, is refused and changes nothing.
    csrf = {"X-CSRF-Token": csrf_of(page)}
    forged = {
        f"/ui/zones/{zone}/soa": {"mname": "x.", "rname": "y.", "refresh": "1", "retry": "1",
                                  "expire": "1", "minimum": "1", "serial_policy": "increment"},
        f"/ui/zones/{zone}/import": {"step": "apply", "text": f"$ORIGIN {zone}\n"},
        f"/ui/zones/{zone}/outgoing": {"enabled": "off"},
        f"/ui/zones/{zone}/links": {"peer": peer},
        f"/ui/zones/{zone}/links/{peer}/unlink": {},
        f"/ui/zones/{zone}/links/{peer}/flags": {"flag": "notify", "value": "off"},
        f"/ui/zones/{zone}/notify": {},
        f"/ui/zones/{zone}/transfer": {},
        f"/ui/zones/{zone}/rules": {"action": "transfer", "network": "0.0.0.0/0"},
        f"/ui/zones/{zone}/rules/{rule['id']}/delete": {},
    }
    for path, form in forged.items():
        assert page.request.post(path, headers=csrf, form=form).status == 403, path
    assert serial_of(console, zone) == before
    with console.client() as api:
        assert api.get(f"/zones/{zone}").json()["outgoing_enabled"] is True
        assert api.get(f"/peers/{peer}").json()["notify"] is True
        assert [x["peer"] for x in api.get(f"/zones/{zone}/peers").json()] == [peer]
        assert [r["id"] for r in api.get("/acls").json()["items"] if r["zone"] == zone] == [rule["id"]]
    page.context.close()


def test_editor_posts_without_the_csrf_token_are_refused(console: ZkServer, browser: Any) -> None:
    zone = new_zone_name()
    zone_with(console, zone)
    page = sign_in(browser, console, "eve")
    for path, form in ((f"/ui/zones/{zone}/outgoing", {"enabled": "off"}),
                       (f"/ui/zones/{zone}/rules", {"action": "transfer", "network": "0.0.0.0/0"})):
        assert page.request.post(path, form=form).status == 403, path
    with console.client() as api:
        assert api.get(f"/zones/{zone}").json()["outgoing_enabled"] is True
        assert [r for r in api.get("/acls").json()["items"] if r["zone"] == zone] == []
    page.context.close()


def test_import_a_zone_from_a_running_primary(console: ZkServer, browser: Any, zk_factory: Any) -> None:
    upstream = zk_factory(demo=False).start()
    zone = new_zone_name()
    with upstream.client() as api:
        make_zone(api, zone, rrsets=[{"name": "ns1", "type": "A", "records": [{"content": "192.0.2.1"}]},
                                     {"name": "www", "type": "A", "records": [{"content": "192.0.2.80"}]}])
    page = sign_in(browser, console, "eve")
    page.get_by_label("Zone name").fill(zone)
    page.get_by_label("Kind").select_option("import")
    page.get_by_label("Import from address").fill("127.0.0.1")
    page.get_by_label("Import from port").fill(str(upstream.dns_port))
    # Nobody may transfer it yet: the refusal is shown at the address, nothing is made.
    page.get_by_role("button", name="Create zone").click()
    expect(page.locator("#address-error")).to_contain_text("REFUSED")
    with console.client() as api:
        assert api.get(f"/zones/{zone}").status_code == 404
    with upstream.client() as api:
        assert api.post("/acls", json={"zone": zone, "action": "transfer",
                                       "network": "127.0.0.1/32"}).status_code == 201
    expect(page.get_by_label("Kind")).to_have_value("import")
    page.get_by_role("button", name="Create zone").click()
    page.wait_for_url(f"**/ui/zones/{zone}")
    expect(page.locator("#kind")).to_have_text("primary")
    expect(page.locator("#serial")).to_have_text(str(serial_of(upstream, zone)))
    assert answers(console, f"www.{zone}", "A") == ["192.0.2.80"]
    page.context.close()


def test_promote_a_secondary_then_make_it_a_secondary_again(
        console: ZkServer, browser: Any, zk_factory: Any) -> None:
    upstream = zk_factory(demo=False).start()
    zone = new_zone_name()
    peer = f"up{uuid.uuid4().hex[:8]}"
    with upstream.client() as api:
        make_zone(api, zone)
        assert api.post("/acls", json={"zone": zone, "action": "transfer",
                                       "network": "127.0.0.1/32"}).status_code == 201
    with console.client() as api:
        assert api.post("/peers", json={"name": peer, "address": "127.0.0.1",
                                        "port": upstream.dns_port}).status_code == 201
        assert api.post("/zones", json={"name": zone, "kind": "secondary",
                                        "primaries": [peer]}).status_code == 201
    first = serial_of(upstream, zone)
    wait_for(lambda: serial_of(console, zone) == first, 30, "the first transfer in")
    upstream.stop()
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    assert page.get_by_role("button", name="Save").count() == 0
    page.get_by_role("button", name=f"Promote {zone} to primary").click()
    expect(page.locator("#kind")).to_have_text("primary")
    expect(page.locator("#serial")).to_have_text(str(first))
    page.get_by_label("Name", exact=True).fill("kept")
    page.get_by_label("Type", exact=True).fill("TXT")
    page.get_by_label("Records, one per line").fill('"after promotion"')
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#serial")).to_have_text(str(first + 1))
    # And back: an unknown peer is named next to the field, then the real one is followed.
    page.get_by_label("Primaries: peer names").fill("nosuch-peer")
    page.get_by_role("button", name=f"Make {zone} a secondary zone").click()
    expect(page.locator("#demote-primaries-error")).to_contain_text("peer nosuch-peer does not exist")
    expect(page.locator("#kind")).to_have_text("primary")
    page.get_by_label("Primaries: peer names").fill(peer)
    page.get_by_role("button", name=f"Make {zone} a secondary zone").click()
    expect(page.locator("#kind")).to_have_text("secondary")
    assert page.get_by_role("button", name="Save").count() == 0
    page.context.close()


def test_an_update_rule_made_on_the_page_lets_nsupdate_change_only_its_names(
        console: ZkServer, browser: Any) -> None:
    from tests.conftest import require_tool
    from tests.integration.test_dns_update import Updater

    exe = require_tool("nsupdate", "bind9-dnsutils")
    zone = new_zone_name()
    zone_with(console, zone)
    key = f"acme-{uuid.uuid4().hex[:6]}"
    with console.client() as api:
        r = api.post("/tsig-keys", json={"name": key})
        assert r.status_code == 201
        secret = r.json()["secret"]
    page = sign_in(browser, console, "eve")
    page.goto(f"/ui/zones/{zone}")
    page.get_by_label("Rule action").select_option("update")
    page.get_by_label("Rule network").fill("127.0.0.0/8")
    page.get_by_label("Rule key").select_option(f"{key}.")
    page.get_by_label("Update rules: names").fill("_acme-challenge")
    page.get_by_label("Update rules: record types").fill("TXT")
    page.get_by_role("button", name="Add rule").click()
    row = page.locator("table.rules tr", has_text=f"_acme-challenge.{zone}")
    expect(row).to_contain_text("TXT")
    up = Updater(exe, console, zone, (key, secret))
    assert up(f"update add _acme-challenge.{zone} 60 TXT \"ok\"").returncode == 0
    assert "REFUSED" in up(f"update add www.{zone} 60 TXT \"no\"").stderr
    # The explain box says the same, naming the rule.
    page.get_by_label("Address to explain").fill("127.0.0.1")
    page.get_by_label("Key to explain").select_option(f"{key}.")
    page.get_by_label("Request to explain").select_option("update")
    page.get_by_label("Name to explain").fill("_acme-challenge")
    page.get_by_label("Type to explain").fill("TXT")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#explain-result")).to_have_attribute("data-allowed", "yes")
    page.get_by_label("Type to explain").fill("A")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#explain-result")).to_have_attribute("data-allowed", "no")
    page.context.close()
