"""The console's administration pages in Chromium: TSIG keys, peers, users and API tokens,
against a real ``zonekeeper serve`` (the ``console`` fixture of tests/web/conftest.py)."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from typing import Any

import httpx2
from playwright.sync_api import expect

from tests.conftest import ZkServer, make_zone, require_tool
from tests.web.conftest import ROLES, shot, sign_in

KEY_FORMATS = {"bind": "BIND", "knot": "Knot", "nsd": "NSD", "pdns": "PowerDNS", "dig": "dig -y"}


def new_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def csrf_of(page: Any) -> str:
    return json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]  # type: ignore[no-any-return]


def key_names(srv: ZkServer) -> set[str]:
    with srv.client() as api:
        return {k["name"] for k in api.get("/tsig-keys", params={"limit": 1000}).json()["items"]}


def test_a_generated_key_shows_its_secret_once_and_then_only_by_export(
        console: ZkServer, browser: Any) -> None:
    page = sign_in(browser, console, "ada")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="Keys").click()
    page.wait_for_url("**/ui/keys")
    name = new_name("xfr-")
    page.get_by_label("Key name").fill(name)
    page.get_by_label("Algorithm").select_option("hmac-sha512")
    page.get_by_role("button", name="Generate key").click()
    expect(page.locator(".secret-once h2")).to_have_text(f"Key {name}. created")
    secret = page.locator("#created-1-secret").text_content()
    assert secret and len(base64.b64decode(secret, validate=True)) == 64  # hmac-sha512's size
    page.locator(".secret-once").get_by_role("button", name="Copy").click()
    expect(page.locator(".secret-once").get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shot(page, "key-created")
    # Never again: not on the keys page, not in the API's reads, not in the server's log.
    page.goto("/ui/keys")
    expect(page.locator(f'tr[data-key="{name}."]')).to_contain_text("hmac-sha512")
    assert secret not in page.content()
    with console.client() as api:
        one = api.get(f"/tsig-keys/{name}")
        assert one.status_code == 200 and "secret" not in one.json()
        assert secret not in api.get("/tsig-keys", params={"limit": 1000}).text
    assert secret not in console.log()
    assert console.events("web.key_created", user="ada", key=f"{name}.")
    shot(page, "keys")
    # The explicit export, in each format: the service's own text, secret included.
    row = page.locator(f'tr[data-key="{name}."]')
    for fmt, label in KEY_FORMATS.items():
        row.get_by_label(f"Export format for {name}.").select_option(fmt)
        row.get_by_role("button", name="Export").click()
        expect(page.locator("#exported")).to_have_text(f"Key {name}. for {label}")
        text = page.locator("#export-text").text_content()
        with console.client() as api:
            assert text == api.get(f"/tsig-keys/{name}/export", params={"format": fmt}).text
        assert secret in (text or "") and name in (text or "")
        assert console.events("web.key_exported", user="ada", key=f"{name}.", format=fmt)
    page.goto("/ui/keys")
    assert secret not in page.content()
    assert secret not in console.log()
    page.context.close()


def test_import_and_delete_a_key_and_bad_input_changes_nothing(console: ZkServer, browser: Any) -> None:
    page = sign_in(browser, console, "ada")
    page.goto("/ui/keys")
    before = key_names(console)
    # A bad name: the service's complaint next to the field, no key made.
    page.get_by_label("Key name").fill("bad..name")
    page.get_by_role("button", name="Generate key").click()
    expect(page.locator("#name-error")).to_contain_text("not a valid key name")
    expect(page.get_by_label("Key name")).to_have_value("bad..name")
    # Text that is no key: its complaint next to the text box, and the text not shown back.
    page.get_by_label("Key text").fill("key \"x\" { algorithm hmac-sha256; secret \"not base64!\"; };")
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#text-error")).to_contain_text("not valid base64")
    expect(page.get_by_label("Key text")).to_have_value("")
    assert key_names(console) == before
    shot(page, "keys-error")
    # An import in BIND's form: the secret shown once.
    name = new_name("imp-")
    secret = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    page.get_by_label("Key text").fill(f'key "{name}" {{ algorithm hmac-sha256; secret "{secret}"; }};')
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#created-1-secret")).to_have_text(secret)
    # The same name again is refused, next to the field.
    page.get_by_label("Key name").fill(name)
    page.get_by_role("button", name="Generate key").click()
    expect(page.locator("#name-error")).to_contain_text("already exists")
    assert secret not in page.content()
    assert key_names(console) == before | {f"{name}."}
    # Delete.
    page.locator(f'tr[data-key="{name}."]').get_by_role("button", name=f"Delete key {name}.").click()
    page.wait_for_url("**/ui/keys")
    expect(page.locator(f'tr[data-key="{name}."]')).to_have_count(0)
    assert key_names(console) == before
    assert console.events("web.key_deleted", user="ada", key=f"{name}.")
    page.context.close()


def test_editors_and_viewers_see_keys_without_secrets_or_controls(console: ZkServer, browser: Any) -> None:
    name = new_name("ro-")
    with console.client() as api:
        secret = api.post("/tsig-keys", json={"name": name}).json()["secret"]
    for user in ("eve", "vic"):
        page = sign_in(browser, console, user)
        page.goto("/ui/keys")
        expect(page.locator(f'tr[data-key="{name}."]')).to_be_visible()
        assert secret not in page.content()
        for button in ("Generate key", "Import", "Export", f"Delete key {name}."):
            assert page.get_by_role("button", name=button).count() == 0
        csrf = csrf_of(page)
        for path, form in (("/ui/keys", {"name": new_name("forged-")}),
                           ("/ui/keys/import", {"text": f"{name}-2:{secret}"}),
                           ("/ui/keys/export", {"name": name, "format": "bind"}),
                           ("/ui/keys/delete", {"name": name})):
            r = page.request.post(path, headers={"X-CSRF-Token": csrf}, form=form)
            assert r.status == 403, (user, path)
            assert secret not in r.text()
        if user == "vic":
            shot(page, "keys-viewer")
        page.context.close()
    # An admin's POST without the CSRF token is refused too.
    page = sign_in(browser, console, "ada")
    r = page.request.post("/ui/keys/delete", form={"name": name})
    assert r.status == 403
    page.context.close()
    assert f"{name}." in key_names(console)


def peer_of(srv: ZkServer, name: str) -> dict[str, Any]:
    with srv.client() as api:
        r = api.get(f"/peers/{name}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def test_create_a_peer_with_a_key_and_paste_its_configuration(
        console: ZkServer, browser: Any, tmp_path: Any) -> None:
    key, peer, zone = new_name("p-key-"), new_name("knot-"), f"{new_name('cfg')}.test."
    with console.client() as api:
        key_secret = api.post("/tsig-keys", json={"name": key}).json()["secret"]
        make_zone(api, zone)
    page = sign_in(browser, console, "ada")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="Peers").click()
    page.wait_for_url("**/ui/peers")
    page.get_by_label("Peer name").fill(peer)
    page.get_by_label("Address").fill("127.0.0.42")
    page.get_by_label("Port").fill("5353")
    page.get_by_label("TSIG key").select_option(f"{key}.")
    page.get_by_label("Serve IXFR").uncheck()
    page.get_by_label("May transfer from (networks)").fill("127.0.0.0/24")
    shot(page, "peers")
    page.get_by_role("button", name="Create peer").click()
    page.wait_for_url(f"**/ui/peers/{peer}")
    assert peer_of(console, peer) == {
        "name": peer, "address": "127.0.0.42", "port": 5353, "key": f"{key}.", "notify": True,
        "ixfr": False, "transfer_from": ["127.0.0.0/24"], "key_use": "both",
        "tls_only": False, "tls": False, "tls_verify": None, "tls_spki": None}
    assert console.events("web.peer_created", user="ada", peer=peer)
    # Its configuration for a zone, in each tool's form: the service's own text.
    page.get_by_label("Zone").fill(zone)
    page.get_by_role("button", name="Show configuration").click()
    page.wait_for_url(f"**/ui/peers/{peer}?zone=*")
    for fmt, label in (("bind", "BIND"), ("knot", "Knot"), ("nsd", "NSD"), ("pdns", "PowerDNS")):
        expect(page.locator(f"#config-{fmt}-label")).to_have_text(label)
        text = page.locator(f"#config-{fmt}").text_content() or ""
        with console.client() as api:
            assert text == api.get(f"/peers/{peer}/config",
                                   params={"zone": zone, "format": fmt}).text
        assert zone.rstrip(".") in text and key in text and key_secret not in text
    page.locator("#config-knot + button").click()
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#config-knot").text_content()
    shot(page, "peer")
    # Knot itself accepts the snippet with the key's Knot export.
    with console.client() as api:
        knot_key = api.get(f"/tsig-keys/{key}/export", params={"format": "knot"}).text
    conf = tmp_path / "knot.conf"
    conf.write_text(knot_key + (page.locator("#config-knot").text_content() or ""))
    done = subprocess.run([require_tool("knotc", "knot"), "-c", str(conf), "conf-check"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    # An unknown zone: said next to the field.
    page.get_by_label("Zone").fill("no-such-zone.test")
    page.get_by_role("button", name="Show configuration").click()
    expect(page.locator("#zone-error")).to_contain_text("does not exist")
    page.context.close()


def test_edit_and_delete_a_peer_and_bad_input_changes_nothing(console: ZkServer, browser: Any) -> None:
    peer, zone = new_name("ed-"), f"{new_name('del')}.test."
    with console.client() as api:
        # TLS settings the form does not show: an edit on the page keeps them.
        assert api.post("/peers", json={
            "name": peer, "address": "127.0.0.43", "tls": True, "tls_verify": "ns.example",
            "tls_spki": "A" * 43 + "="}).status_code == 201
        make_zone(api, zone)
    before = peer_of(console, peer)
    assert before["tls_verify"] == "ns.example"
    page = sign_in(browser, console, "ada")
    page.goto(f"/ui/peers/{peer}")
    page.get_by_label("Address").fill("not-an-address")
    page.get_by_label("Port").fill("70000")
    page.get_by_label("May transfer from (networks)").fill("10.0.0.0/8 nonsense")
    page.get_by_role("button", name="Save peer").click()
    expect(page.locator("#port-error")).to_be_visible()
    assert peer_of(console, peer) == before
    page.get_by_label("Port").fill("5300")
    page.get_by_role("button", name="Save peer").click()
    # Every problem the service finds, each next to its field.
    expect(page.locator("#address-error")).to_contain_text("not an IP address")
    expect(page.locator("#transfer_from-error")).to_contain_text("not a network")
    expect(page.get_by_label("Address")).to_have_value("not-an-address")
    assert peer_of(console, peer) == before
    shot(page, "peer-error")
    page.get_by_label("Address").fill("127.0.0.44")
    page.get_by_label("May transfer from (networks)").fill("")
    page.get_by_label("Send NOTIFY").uncheck()
    page.get_by_role("button", name="Save peer").click()
    expect(page.locator(".facts")).to_contain_text("127.0.0.44 port 5300")
    assert peer_of(console, peer) == {**before, "address": "127.0.0.44", "port": 5300, "notify": False}
    assert console.events("web.peer_updated", user="ada", peer=peer)
    # A linked peer cannot go (the service says why); unlinked, it can.
    with console.client() as api:
        assert api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"}).status_code == 200
    page.get_by_role("button", name=f"Delete peer {peer}").click()
    expect(page.get_by_role("alert")).to_contain_text("unlink it first")
    with console.client() as api:
        assert api.delete(f"/zones/{zone}/peers/{peer}").status_code == 204
    page.goto(f"/ui/peers/{peer}")
    page.get_by_role("button", name=f"Delete peer {peer}").click()
    page.wait_for_url("**/ui/peers")
    expect(page.locator(f'tr[data-peer="{peer}"]')).to_have_count(0)
    with console.client() as api:
        assert api.get(f"/peers/{peer}").status_code == 404
    page.context.close()


def test_a_peers_tls_settings_on_the_create_and_edit_forms(console: ZkServer, browser: Any) -> None:
    """TLS only, reached over TLS, a name to verify and a key pin: set on the create form,
    shown, refused next to their fields when wrong (nothing changed), cleared on edit."""
    peer = new_name("tls-")
    pin = base64.b64encode(bytes(range(32))).decode()
    page = sign_in(browser, console, "ada")
    page.goto("/ui/peers")
    page.get_by_label("Peer name").fill(peer)
    page.get_by_label("Address").fill("127.0.0.46")
    page.get_by_label("Port").fill("853")
    page.get_by_label("As a secondary: its transfers only over TLS").check()
    # A name to verify without "reach it over TLS": refused, said next to the TLS box.
    page.get_by_label("Verify its certificate for the name").fill("ns.tls.test")
    page.get_by_role("button", name="Create peer").click()
    expect(page.locator("#tls-error")).to_contain_text("set tls: true too")
    expect(page.get_by_label("Verify its certificate for the name")).to_have_value("ns.tls.test")
    with console.client() as api:
        assert api.get(f"/peers/{peer}").status_code == 404
    page.get_by_label("As a primary: reach it over TLS").check()
    page.get_by_label("Pin its key (SPKI pin)").fill(pin)
    shot(page, "peer-tls")
    page.get_by_role("button", name="Create peer").click()
    page.wait_for_url(f"**/ui/peers/{peer}")
    made = peer_of(console, peer)
    assert (made["tls_only"], made["tls"], made["tls_verify"], made["tls_spki"]) == (
        True, True, "ns.tls.test", pin)
    expect(page.locator("#peer-tls-facts")).to_contain_text("only over TLS")
    expect(page.locator("#peer-tls-facts")).to_contain_text("verified for ns.tls.test")
    expect(page.locator("#peer-tls-facts")).to_contain_text(pin)
    assert console.events("web.peer_created", user="ada", peer=peer, tls_only=True, tls=True)
    # The edit form holds them; a pin that is not one is refused, nothing changed.
    expect(page.get_by_label("As a primary: reach it over TLS")).to_be_checked()
    expect(page.get_by_label("Pin its key (SPKI pin)")).to_have_value(pin)
    page.get_by_label("Pin its key (SPKI pin)").fill("not-a-pin")
    page.get_by_role("button", name="Save peer").click()
    expect(page.locator("#tls_spki-error")).to_contain_text("base64 SHA-256")
    assert peer_of(console, peer) == made
    # Cleared: cleartext again, nothing checked.
    page.get_by_label("Pin its key (SPKI pin)").fill("")
    page.get_by_label("Verify its certificate for the name").fill("")
    page.get_by_label("As a primary: reach it over TLS").uncheck()
    page.get_by_label("As a secondary: its transfers only over TLS").uncheck()
    page.get_by_role("button", name="Save peer").click()
    expect(page.locator("#peer-tls-facts")).to_contain_text("reached over TCP")
    assert peer_of(console, peer) == {**made, "tls_only": False, "tls": False,
                                      "tls_verify": None, "tls_spki": None}
    page.goto("/ui/peers")
    expect(page.locator(f'tr[data-peer="{peer}"]')).to_contain_text("–")
    page.context.close()


def test_editors_and_viewers_see_peers_but_change_nothing(console: ZkServer, browser: Any) -> None:
    peer, zone = new_name("ro-"), f"{new_name('ro')}.test."
    with console.client() as api:
        assert api.post("/peers", json={"name": peer, "address": "127.0.0.45"}).status_code == 201
        make_zone(api, zone)
    before = peer_of(console, peer)
    for user in ("eve", "vic"):
        page = sign_in(browser, console, user)
        page.goto("/ui/peers")
        expect(page.locator(f'tr[data-peer="{peer}"]')).to_be_visible()
        assert page.get_by_role("button", name="Create peer").count() == 0
        page.goto(f"/ui/peers/{peer}?zone={zone}")
        expect(page.locator("#config-bind")).to_contain_text(zone.rstrip("."))
        assert page.get_by_role("button", name="Save peer").count() == 0
        assert page.get_by_role("button", name=f"Delete peer {peer}").count() == 0
        csrf = csrf_of(page)
        for path, form in (("/ui/peers", {"name": new_name("forged-"), "address": "127.0.0.46",
                                          "port": "53"}),
                           (f"/ui/peers/{peer}", {"address": "127.0.0.47", "port": "53"}),
                           (f"/ui/peers/{peer}/delete", {})):
            r = page.request.post(path, headers={"X-CSRF-Token": csrf}, form=form)
            assert r.status == 403, (user, path)
        page.context.close()
    assert peer_of(console, peer) == before


def sign_in_with(browser: Any, srv: ZkServer, name: str, password: str) -> Any:
    """Like conftest's ``sign_in``, for a user made by the test itself."""
    page = browser.new_context(base_url=srv.api_url).new_page()
    page.goto("/ui/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/")
    return page


def test_an_admin_creates_a_user_who_signs_in_then_changes_their_role_and_deletes_them(
        console: ZkServer, browser: Any) -> None:
    name, password = new_name("op-"), "op-password-" + uuid.uuid4().hex[:6]
    page = sign_in(browser, console, "ada")
    page.get_by_role("link", name="Users").click()
    page.wait_for_url("**/ui/users")
    form = page.locator("form[action='/ui/users']")
    # Two different passwords: said next to the second, no user made.
    form.get_by_label("User name").fill(name)
    form.get_by_label("Role").select_option("editor")
    form.get_by_label("Password", exact=True).fill(password)
    form.get_by_label("Password again").fill(password + "x")
    form.get_by_role("button", name="Create user").click()
    expect(page.locator("#password2-error")).to_contain_text("differ")
    expect(page.locator(f'tr[data-user="{name}"]')).to_have_count(0)
    expect(form.get_by_label("User name")).to_have_value(name)
    expect(form.get_by_label("Password", exact=True)).to_have_value("")  # never shown back
    # Too short (the user service's rule): said next to the password.
    form.get_by_label("Password", exact=True).fill("short")
    form.get_by_label("Password again").fill("short")
    form.get_by_role("button", name="Create user").click()
    expect(page.locator("#password-error")).to_contain_text("at least 10 characters")
    expect(page.locator(f'tr[data-user="{name}"]')).to_have_count(0)
    shot(page, "users-error")
    form.get_by_label("Password", exact=True).fill(password)
    form.get_by_label("Password again").fill(password)
    form.get_by_role("button", name="Create user").click()
    page.wait_for_url("**/ui/users")
    expect(page.locator(f'tr[data-user="{name}"]')).to_contain_text("editor")
    assert console.events("web.user_created", user="ada", name=name, role="editor")
    assert password not in console.log()
    shot(page, "users")
    # The new user signs in, as an editor.
    theirs = sign_in_with(browser, console, name, password)
    expect(theirs.locator(".who")).to_have_text(f"{name} (editor)")
    expect(theirs.get_by_role("button", name="Create zone")).to_be_visible()
    # Made a viewer: their next page has no controls.
    page.locator(f'tr[data-user="{name}"]').get_by_label(f"Role of {name}", exact=True).select_option("viewer")
    page.get_by_role("button", name=f"Change the role of {name}").click()
    expect(page.locator(f'tr[data-user="{name}"]')).to_contain_text("viewer")
    theirs.reload()
    expect(theirs.locator(".who")).to_have_text(f"{name} (viewer)")
    assert theirs.get_by_role("button", name="Create zone").count() == 0
    # One's own row has no controls, and a forged POST about oneself is refused.
    expect(page.locator('tr[data-user="ada"]')).to_contain_text("you")
    assert page.get_by_role("button", name="Delete user ada").count() == 0
    r = page.request.post("/ui/users/ada/delete", form={"csrf": csrf_of(page)})
    assert r.status == 409 and "yourself" in r.text()
    r = page.request.post("/ui/users/ada/role", form={"csrf": csrf_of(page), "role": "viewer"})
    assert r.status == 409
    # Deleted: their session ends with them.
    page.get_by_role("button", name=f"Delete user {name}").click()
    page.wait_for_url("**/ui/users")
    expect(page.locator(f'tr[data-user="{name}"]')).to_have_count(0)
    assert console.events("web.user_deleted", user="ada", name=name)
    theirs.goto("/ui/")
    assert "/ui/login" in theirs.url
    theirs.context.close()
    page.context.close()


def test_a_token_made_on_the_page_works_once_shown_and_stops_when_deleted(
        console: ZkServer, browser: Any) -> None:
    page = sign_in(browser, console, "ada")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="Tokens").click()
    page.wait_for_url("**/ui/tokens")
    name = new_name("ci-")
    page.get_by_label("Token name").fill(name)
    page.get_by_label("read").uncheck()
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#scopes-error")).to_be_visible()  # no scope: nothing made
    expect(page.locator("tr", has_text=name)).to_have_count(0)
    page.get_by_label("read").check()
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#created-token").text_content() or ""
    assert token.startswith("zk_")
    page.locator(".secret-once").get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == token
    shot(page, "token-created")
    row = page.locator(f'tr[data-token="{token.split("_")[1]}"]')
    expect(page.locator("table.tokens thead")).to_contain_text("Last used")
    expect(row.locator("td").nth(5)).to_have_text("never")
    url = console.api_url + "/api/v1/zones"
    assert httpx2.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # Read scope only, as chosen.
    r = httpx2.post(url, headers={"Authorization": f"Bearer {token}"},
                    json={"name": f"{new_name('t')}.test.", "nameservers": ["ns1.example.net."]})
    assert r.status_code == 403
    page.goto("/ui/tokens")
    expect(row.locator("td").nth(5)).not_to_have_text("never")  # its use above, shown at once
    assert token not in page.content() and token.split("_")[2] not in page.content()
    assert token.split("_")[2] not in console.log()
    assert console.events("web.token_created", user="ada", name=name, scopes=["read"])
    shot(page, "tokens")
    token_id = token.split("_")[1]
    page.get_by_role("button", name=f"Delete token {name} ({token_id})").click()
    page.wait_for_url("**/ui/tokens")
    expect(page.locator(f'tr[data-token="{token_id}"]')).to_have_count(0)
    assert httpx2.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert console.events("web.token_deleted", user="ada", token_id=token_id)
    page.context.close()


def test_only_admins_reach_users_and_tokens(console: ZkServer, browser: Any) -> None:
    with console.client() as api:
        before = [t["id"] for t in api.get("/tokens", params={"limit": 1000}).json()["items"]]
    for user in ("eve", "vic"):
        page = sign_in(browser, console, user)
        assert page.get_by_role("link", name="Users").count() == 0
        assert page.get_by_role("link", name="Tokens").count() == 0
        csrf = csrf_of(page)
        for path in ("/ui/users", "/ui/tokens"):
            assert page.goto(path).status == 403
            # A page in the console's frame that says why, not a JSON problem.
            assert page.get_by_role("heading", name="Not allowed").is_visible()
            assert f"your role ({ROLES[user]}) may not do this" in page.locator("main").inner_text()
            assert page.get_by_role("link", name="Zones").count() >= 1
        for path, form in (("/ui/users", {"name": new_name("forged-"), "role": "admin",
                                          "password": "x" * 12, "password2": "x" * 12}),
                           ("/ui/users/ada/role", {"role": "viewer"}),
                           ("/ui/users/ada/delete", {}),
                           ("/ui/tokens", {"name": "forged", "scopes": "admin"}),
                           (f"/ui/tokens/{before[0]}/delete", {})):
            r = page.request.post(path, headers={"X-CSRF-Token": csrf}, form=form)
            assert r.status == 403, (user, path)
            assert "zk_" not in r.text()
        page.context.close()
    with console.client() as api:
        assert [t["id"] for t in api.get("/tokens", params={"limit": 1000}).json()["items"]] == before
    page = sign_in(browser, console, "ada")  # ada is still an admin
    page.goto("/ui/users")
    expect(page.locator('tr[data-user="ada"]')).to_contain_text("admin")
    page.context.close()
