"""TSIG keys and access rules over the REST API and the CLI, against a real server."""

from __future__ import annotations

import base64
import json

import httpx2

from tests.conftest import ZkServer, wait_for
from tests.integration.test_api_zones import problem
from tests.integration.test_cli import zk_cli


def rule_ids(api: httpx2.Client) -> list[int]:
    return [r["id"] for r in api.get("/acls", params={"limit": 1000}).json()["items"]]


# -- rules for every address ------------------------------------------------------------------


def test_allow_rule_for_every_address_needs_force(zk: ZkServer, api: httpx2.Client,
                                                  zone_name: str) -> None:
    """An allow rule for 0.0.0.0/0 or ::/0 (or its v4-mapped form) is refused with the
    reason; a deny rule for them is fine; forced, the rule is made and a warning logged."""
    before = rule_ids(api)
    for network, family in (("0.0.0.0/0", "IPv4"), ("::/0", "IPv6"), ("::ffff:0:0/96", "IPv4")):
        body = problem(api.post("/acls", json={"action": "transfer", "network": network}), 422)
        [reason] = body["errors"]
        assert reason["loc"] == ["network"], body
        assert f"every {family} address" in reason["msg"] and "force" in reason["msg"], body
    notify_all = api.post("/acls", json={"action": "notify", "network": "::/0", "key": None,
                                    "zone": None})
    assert "anyone who can reach the server notify" in notify_all.json()["errors"][0]["msg"]
    assert rule_ids(api) == before  # nothing made
    deny = api.post("/acls", json={"action": "transfer", "network": "0.0.0.0/0", "effect": "deny"})
    assert deny.status_code == 201, deny.text
    assert api.delete(f"/acls/{deny.json()['id']}").status_code == 204
    assert not zk.events("acl.allow_all_forced")

    forced = api.post("/acls", json={"action": "transfer", "network": "0.0.0.0/0", "force": True})
    assert forced.status_code == 201, forced.text
    assert "force" not in forced.json()
    rule_id = forced.json()["id"]
    [warning] = zk.events("acl.allow_all_forced", rule=rule_id)
    assert warning["level"] == "warning" and warning["network"] == "0.0.0.0/0"
    # Changing what does not widen it needs no force; widening a narrow rule does.
    api.post("/zones", json={"name": zone_name, "nameservers": ["ns1.example.net."]})
    assert api.patch(f"/acls/{rule_id}", json={"zone": zone_name}).status_code == 200
    narrow = api.post("/acls", json={"action": "transfer", "network": "192.0.2.0/24"}).json()
    problem(api.patch(f"/acls/{narrow['id']}", json={"network": "::/0"}), 422)
    assert api.get(f"/acls/{narrow['id']}").json()["network"] == "192.0.2.0/24"
    widened = api.patch(f"/acls/{narrow['id']}", json={"network": "::/0", "force": True})
    assert widened.status_code == 200 and widened.json()["network"] == "::/0"
    assert zk.events("acl.allow_all_forced", rule=narrow["id"])
    for rid in (rule_id, narrow["id"]):
        assert api.delete(f"/acls/{rid}").status_code == 204


def test_cli_acl_create_every_address_needs_force(zk: ZkServer, api: httpx2.Client) -> None:
    before = rule_ids(api)
    r = zk_cli(zk, "acl", "create", "--action", "transfer", "--network", "0.0.0.0/0")
    assert r.returncode == 1 and "every IPv4 address" in r.stderr and "--force" in r.stderr
    assert rule_ids(api) == before
    r = zk_cli(zk, "acl", "create", "--action", "transfer", "--network", "0.0.0.0/0", "--force")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["network"] == "0.0.0.0/0" and zk.events("acl.allow_all_forced", rule=made["id"])
    assert api.delete(f"/acls/{made['id']}").status_code == 204


# -- key names ---------------------------------------------------------------------------------


def test_key_names_must_be_hostname_like(api: httpx2.Client) -> None:
    """A key name with a space (or any octet BIND, Knot, NSD and PowerDNS configs cannot
    hold) is refused, created or imported; letters, digits, '-', '_' and dots are fine."""
    names = {k["name"] for k in api.get("/tsig-keys", params={"limit": 1000}).json()["items"]}
    secret = base64.b64encode(b"0123456789abcdef0123").decode()
    for bad in ("has\\032space", "has space", "semi;colon.example", 'quo"te', "brace{"):
        body = problem(api.post("/tsig-keys", json={"name": bad}), 422)
        assert body["errors"][0]["loc"] == ["name"], body
        assert "letters, digits" in body["errors"][0]["msg"], body
    body = problem(api.post("/tsig-keys/import", content=f"hmac-sha256:bad\\032name:{secret}\n",
                            headers={"content-type": "text/plain"}), 422)
    assert "not usable as a key name" in body["errors"][0]["msg"]
    bind = f'key "ok-one" {{ algorithm hmac-sha256; secret "{secret}"; }};\n' \
           f'key "bad\\032two" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
    problem(api.post("/tsig-keys/import", content=bind, headers={"content-type": "text/plain"}), 422)
    assert {k["name"] for k in api.get("/tsig-keys", params={"limit": 1000}).json()["items"]} == names
    good = api.post("/tsig-keys", json={"name": "_xfr-Key.ns2.example"})
    assert good.status_code == 201 and good.json()["name"] == "_xfr-key.ns2.example."
    exported = api.get("/tsig-keys/_xfr-key.ns2.example/export", params={"format": "bind"}).text
    assert exported.startswith('key "_xfr-key.ns2.example" {')
    assert api.delete("/tsig-keys/_xfr-key.ns2.example").status_code == 204


# -- ids ---------------------------------------------------------------------------------------


def test_a_deleted_rules_id_is_not_given_again(api: httpx2.Client) -> None:
    """The newest rule deleted, the next rule gets a new id: "acl N" in a log names one rule."""
    first = api.post("/acls", json={"action": "transfer", "network": "192.0.2.77/32"}).json()
    assert api.delete(f"/acls/{first['id']}").status_code == 204
    second = api.post("/acls", json={"action": "transfer", "network": "192.0.2.78/32"}).json()
    assert second["id"] > first["id"], (first, second)
    assert api.get(f"/acls/{first['id']}").status_code == 404
    assert api.delete(f"/acls/{second['id']}").status_code == 204


# -- last_used_at ------------------------------------------------------------------------------


def test_last_used_at_of_tokens_and_keys(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """A token's API use and a key's verified TSIG use (a signed AXFR) show in the lists at
    once (API and CLI), and are written to the database by the background writer, every
    interval (0.3 s here, a minute by default); an unused token or key stays null."""
    import sqlite3

    import dns.query
    import dns.tsigkeyring

    srv: ZkServer = zk_factory(env={"ZONEKEEPER_DATABASE__LAST_USED_INTERVAL": "0.3"}).start()

    def stored(table: str, column: str, value: str) -> str | None:
        with sqlite3.connect(srv.db_path) as db:
            row = db.execute(f"SELECT last_used_at FROM {table} WHERE {column} = ?", (value,)).fetchone()
        return row[0] if row else None

    with srv.client() as api:
        used = api.post("/tokens", json={"name": "used", "scopes": ["read"]}).json()
        idle = api.post("/tokens", json={"name": "idle", "scopes": ["read"]}).json()
        key = api.post("/tsig-keys", json={"name": "xfr-used"}).json()
        idle_key = api.post("/tsig-keys", json={"name": "xfr-idle"}).json()
        assert api.post("/acls", json={"zone": "example.test", "action": "transfer",
                                       "network": "127.0.0.1/32", "key": key["name"]}).status_code == 201
        tokens = {t["id"]: t for t in api.get("/tokens").json()["items"]}
        assert tokens[used["id"]]["last_used_at"] is None
        with srv.client(used["token"]) as reader:
            assert reader.get("/zones").status_code == 200
        tokens = {t["id"]: t for t in api.get("/tokens").json()["items"]}
        assert tokens[used["id"]]["last_used_at"] is not None  # shown before it is written
        assert tokens[idle["id"]]["last_used_at"] is None

        ring = dns.tsigkeyring.from_text({key["name"]: key["secret"]})
        xfr = dns.message.make_query("example.test.", "AXFR")
        xfr.use_tsig(ring, key["name"])
        answer = dns.query.tcp(xfr, "127.0.0.1", port=srv.dns_port, timeout=10)
        assert answer.rcode() == 0 and answer.answer, answer
        keys = {k["name"]: k for k in api.get("/tsig-keys").json()["items"]}
        assert keys[key["name"]]["last_used_at"] is not None
        assert keys[idle_key["name"]]["last_used_at"] is None
        assert api.get(f"/tsig-keys/{key['name']}").json()["last_used_at"] is not None

    wait_for(lambda: stored("api_tokens", "id", used["id"]), what="token last_used_at written")
    wait_for(lambda: stored("tsig_keys", "name", key["name"]), what="key last_used_at written")
    assert stored("api_tokens", "id", idle["id"]) is None
    assert stored("tsig_keys", "name", idle_key["name"]) is None
    cli_tokens = {t["id"]: t for t in json.loads(zk_cli(srv, "token", "list", "-o", "json").stdout)}
    assert cli_tokens[used["id"]]["last_used_at"] and cli_tokens[idle["id"]]["last_used_at"] is None
    cli_keys = {k["name"]: k for k in json.loads(zk_cli(srv, "key", "list", "-o", "json").stdout)}
    assert cli_keys[key["name"]]["last_used_at"]
    assert srv.stop() == 0
