"""Structured logs: one JSON object per line, changes name who made them, and no secret
(token, TSIG secret, password, session cookie) ever reaches the log, over a run that makes
and uses each of them, wrong ones included."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import httpx2
import pytest

from tests.conftest import TOKEN, ZkServer, make_zone


def test_no_secret_in_the_log(zk_factory: type, zone_name: str) -> None:
    srv: ZkServer = zk_factory(extra_args=["--log-level", "debug"]).start()
    shown: list[str] = [TOKEN]
    password = "pw-" + secrets.token_urlsafe(16)
    shown.append(password)
    r = subprocess.run([sys.executable, "-m", "zonekeeper", "user", "create", "ops", "--role",
                        "admin", "--password-stdin", "--database", srv.database],
                       input=password + "\n", capture_output=True, text=True, timeout=60,
                       cwd=srv.workdir)
    assert r.returncode == 0, r.stderr
    with srv.client() as api:
        made = api.post("/tokens", json={"name": "deployer", "scopes": ["write"]})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        shown.append(token)
        generated = api.post("/tsig-keys", json={"name": "gen-key."}).json()
        shown.append(generated["secret"])
        given = base64.b64encode(secrets.token_bytes(32)).decode()
        shown.append(given)
        assert api.post("/tsig-keys", json={"name": "given-key.", "secret": given}).status_code == 201
        imported = base64.b64encode(secrets.token_bytes(32)).decode()
        shown.append(imported)
        text = f'key "imported-key." {{ algorithm hmac-sha256; secret "{imported}"; }};\n'
        r = api.post("/tsig-keys/import", content=text, headers={"Content-Type": "text/plain"})
        assert r.status_code == 201, r.text
        assert imported in api.get("/tsig-keys/imported-key./export").text

    wrong_token = "zk_" + secrets.token_urlsafe(24)
    shown.append(wrong_token)
    assert httpx2.get(srv.api_url + "/api/v1/zones",
                      headers={"Authorization": f"Bearer {wrong_token}"}).status_code == 401
    with srv.client(token) as api:
        make_zone(api, zone_name)
        r = api.put(f"/zones/{zone_name}/rrsets/www/A", json={"records": [{"content": "192.0.2.5"}]})
        assert r.status_code == 200, r.text

    key = dns.tsig.Key("given-key.", given, "hmac-sha256")
    q = dns.message.make_query("example.test.", "SOA")
    q.use_tsig(key)
    assert dns.query.udp(q, srv.addr, port=srv.dns_port, timeout=5).rcode() == dns.rcode.NOERROR
    wrong_secret = base64.b64encode(secrets.token_bytes(32)).decode()
    shown.append(wrong_secret)
    bad = dns.message.make_query("example.test.", "SOA")
    bad.use_tsig(dns.tsig.Key("given-key.", wrong_secret, "hmac-sha256"))
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.query.udp(bad, srv.addr, port=srv.dns_port, timeout=5)

    wrong_password = "pw-" + secrets.token_urlsafe(16)
    shown.append(wrong_password)
    with httpx2.Client(base_url=srv.api_url, follow_redirects=False) as web:
        assert web.post("/ui/login", data={"name": "ops", "password": wrong_password}).status_code == 401
        r = web.post("/ui/login", data={"name": "ops", "password": password})
        assert r.status_code == 303, r.text
        cookie = r.cookies.get("zk_session")
        assert cookie
        shown.append(cookie)
        web.cookies.set("zk_session", cookie)
        assert web.get("/ui/").status_code == 200
    srv.stop()

    log = srv.log()
    lines = [line for line in log.splitlines() if line.strip()]
    # Each of the runs above left its line (where a leak would be).
    for event in ("token.created", "key.created", "key.imported", "key.exported", "zone.changed",
                  "dns.tsig_refused", "web.sign_in_failed", "web.signed_in"):
        assert srv.events(event), event
    for line in lines:
        assert isinstance(json.loads(line), dict), line  # JSON lines: not a terminal
    leaked = [s for s in shown if s in log]
    assert not leaked, f"{len(leaked)} secret(s) in the log"
    # The change names the token that made it; the refusal says why.
    changed = srv.events("zone.changed", zone=zone_name)
    assert changed and changed[-1]["token_name"] == "deployer", changed
    assert srv.events("dns.tsig_refused")[-1]["reason"] == "bad TSIG signature (BADSIG)"
