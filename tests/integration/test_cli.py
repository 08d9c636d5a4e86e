"""The CLI against a real server: JSON output, exit codes, helpful errors; check-zone offline."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import TOKEN, ZkServer, free_port, wait_for


def cli_env(zk: ZkServer | None, token: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ZONEKEEPER_TOKEN", None)
    if zk is not None:
        env["ZONEKEEPER_API_URL"] = zk.api_url
    if token:
        env["ZONEKEEPER_TOKEN"] = token
    return env


def zk_cli(zk: ZkServer | None, *args: str, token: str | None = TOKEN, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with ``stdin`` as its standard input (a pipe), or /dev/null: never a terminal."""
    feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "zonekeeper", *args], capture_output=True, text=True,
                          env=cli_env(zk, token), timeout=60, **feed)


def zk_cli_tty(zk: ZkServer, *args: str, typed: str) -> subprocess.CompletedProcess[str]:
    """The CLI with a pseudo-terminal as its standard input, on which ``typed`` is typed."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "zonekeeper", *args], stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=cli_env(zk, TOKEN))
        os.close(slave)
        os.write(master, typed.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_zone_and_rrset_round_trip(zk: ZkServer, zone_name: str) -> None:
    r = zk_cli(zk, "zone", "create", zone_name, "--ns", f"ns1.{zone_name}")
    assert r.returncode == 1 and "has no address records" in r.stderr  # in-zone NS needs glue
    r = zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.")
    assert r.returncode == 0, r.stderr
    serial = json.loads(r.stdout)["serial"]
    r = zk_cli(zk, "rrset", "set", zone_name, "www", "A", "192.0.2.1", "192.0.2.2", "--ttl", "60")
    assert r.returncode == 0 and json.loads(r.stdout)["serial"] == serial + 1
    answer = sorted(rr.address for rr in zk.query(f"www.{zone_name}", "A").answer[0])
    assert answer == ["192.0.2.1", "192.0.2.2"]
    rows = json.loads(zk_cli(zk, "-o", "json", "rrset", "list", zone_name, "--type", "A").stdout)
    assert [x["name"] for x in rows] == [f"www.{zone_name}"]
    exported = zk_cli(zk, "zone", "export", zone_name).stdout
    assert f"$ORIGIN {zone_name}" in exported and "192.0.2.2" in exported


def test_zone_create_in_zone_nameservers_with_glue(zk: ZkServer, zone_name: str) -> None:
    ns1 = f"ns1.{zone_name}"
    r = zk_cli(zk, "zone", "create", zone_name, "--ns", f"{ns1}=192.0.2.53",
               "--ns", f"{ns1}=2001:db8::53", "--ns", "ns2.example.net.")
    assert r.returncode == 0, r.stderr
    assert sorted(rr.target.to_text() for rr in zk.query(zone_name, "NS").answer[0]) == \
        [ns1, "ns2.example.net."]
    assert [rr.address for rr in zk.query(ns1, "A").answer[0]] == ["192.0.2.53"]
    assert [rr.address for rr in zk.query(ns1, "AAAA").answer[0]] == ["2001:db8::53"]
    r = zk_cli(zk, "zone", "create", "x" + zone_name, "--ns", f"ns1.x{zone_name}=192.0.2")
    assert r.returncode == 2 and "'192.0.2' is not an IPv4 or IPv6 address" in r.stderr
    r = zk_cli(zk, "zone", "create", "x" + zone_name, "--ns", f"ns1.x{zone_name}")
    assert r.returncode == 1
    assert f"x{zone_name} NS: NS target ns1.x{zone_name} has no address records" in r.stderr


def test_zone_create_secondary(zk: ZkServer, zk_factory: Any) -> None:
    secondary = zk_factory(demo=False).start()
    r = zk_cli(secondary, "zone", "create", "example.test", "--kind", "secondary")
    assert r.returncode == 2 and "needs --primary PEER" in r.stderr
    r = zk_cli(secondary, "zone", "create", "example.test", "--primary", "up")
    assert r.returncode == 2 and "add --kind secondary" in r.stderr
    r = zk_cli(secondary, "zone", "create", "example.test", "--kind", "secondary",
               "--primary", "up", "--ns", "ns1.example.net.")
    assert r.returncode == 2 and "--ns: not for a secondary zone" in r.stderr
    assert zk_cli(secondary, "peer", "create", "up", "--address", "127.0.0.1",
                  "--port", str(zk.dns_port)).returncode == 0
    r = zk_cli(secondary, "zone", "create", "example.test", "--kind", "secondary",
               "--primary", "up")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "secondary"
    wait_for(lambda: secondary.query("example.test", "SOA").answer, what="the secondary loaded")
    assert secondary.serial("example.test") == zk.serial("example.test")
    r = zk_cli(secondary, "zone", "transfer", "example.test")
    assert r.returncode == 0 and json.loads(r.stdout)["result"] == "UPTODATE", r
    # Promoted, it takes edits; demoted again, it follows "up" and refuses them.
    serial = zk.serial("example.test")
    r = zk_cli(secondary, "zone", "promote", "example.test")
    assert r.returncode == 0 and json.loads(r.stdout)["kind"] == "primary", r
    r = zk_cli(secondary, "rrset", "set", "example.test", "local", "TXT", '"here"')
    assert r.returncode == 0, r.stderr
    assert secondary.serial("example.test") == serial + 1
    assert zk_cli(secondary, "zone", "promote", "example.test").returncode == 1
    r = zk_cli(secondary, "zone", "demote", "example.test", "--primary", "up")
    assert r.returncode == 0 and json.loads(r.stdout)["kind"] == "secondary", r
    r = zk_cli(secondary, "rrset", "set", "example.test", "local2", "TXT", '"no"')
    assert r.returncode == 1, r


def test_rrset_set_reads_records_as_a_zone_file_does(zk: ZkServer, zone_name: str) -> None:
    assert zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.").returncode == 0

    def contents(name: str, rdtype: str) -> list[str]:
        with zk.client() as c:
            body = c.get(f"/zones/{zone_name}/rrsets/{name}/{rdtype}").json()
        return sorted(r["content"] for r in body["records"])

    def rrset_set(*args: str) -> subprocess.CompletedProcess[str]:
        r = zk_cli(zk, "rrset", "set", zone_name, *args)
        assert r.returncode == 0, r.stderr
        return r

    rrset_set("m", "MX", "10", "mail.example.")  # one record of two words
    assert contents("m", "MX") == ["10 mail.example."]
    rrset_set("m", "MX", "10", "mx1", "20", "mx2.example.")  # fields end each record
    assert contents("m", "MX") == [f"10 mx1.{zone_name}", "20 mx2.example."]
    rrset_set("t", "TXT", '"hello world"')
    assert contents("t", "TXT") == ['"hello world"']
    rrset_set("t", "TXT", "hello world")  # as the zone-file line `t TXT hello world`
    assert contents("t", "TXT") == ['"hello" "world"']
    rrset_set("m", "MX", "--record", "5 a.example.", "--record", "15 b.example.")
    assert contents("m", "MX") == ["15 b.example.", "5 a.example."]
    rrset_set("w", "A", "192.0.2.1", "192.0.2.2")
    assert contents("w", "A") == ["192.0.2.1", "192.0.2.2"]
    r = zk_cli(zk, "rrset", "set", zone_name, "w", "A", "192.0.2.3", "--record", "192.0.2.4")
    assert r.returncode == 2 and "not both" in r.stderr
    r = zk_cli(zk, "rrset", "set", zone_name, "w", "A", "--record", "192.0.2.5 192.0.2.6")
    assert r.returncode == 1 and "bad A rdata '192.0.2.5 192.0.2.6'" in r.stderr
    assert contents("w", "A") == ["192.0.2.1", "192.0.2.2"]
    helped = " ".join(zk_cli(None, "rrset", "set", "--help", token=None).stdout.split())
    assert "'MX 10 mail.example.' is one" in helped and "TXT '\"hello world\"' is one string" in helped


def test_errors_name_what_was_sent_and_list_every_problem(zk: ZkServer, zone_name: str,
                                                          tmp_path: Path) -> None:
    assert zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.").returncode == 0
    r = zk_cli(zk, "rrset", "set", zone_name, "x", "A", "--ttl", "-5",
               "--record", "10.0.0.0/33", "--record", "192.0.2.1 192.0.2.2")
    assert r.returncode == 1
    assert f"TTL of x.{zone_name} A: TTL -5 is outside 0..2147483647" in r.stderr
    assert f"record 1 of x.{zone_name} A: bad A rdata '10.0.0.0/33'" in r.stderr
    assert f"record 2 of x.{zone_name} A: bad A rdata '192.0.2.1 192.0.2.2'" in r.stderr
    assert "body" not in r.stderr and "content" not in r.stderr
    change = tmp_path / "change.json"
    change.write_text(json.dumps({"rrsets": [{"name": "m", "type": "MX", "changetype": "REPLACE",
                                              "records": [{"content": "10"}]}]}))
    r = zk_cli(zk, "rrset", "apply", zone_name, str(change))
    assert r.returncode == 1 and f"record 1 of m.{zone_name} MX: bad MX rdata '10'" in r.stderr
    bad = tmp_path / "bad.zone"
    bad.write_text(f"$ORIGIN {zone_name}\n$TTL 300\n@ SOA ns1.example.net. h 1 1 1 1 1\n"
                   "@ NS ns1.example.net.\ny A 1.2.3\n")
    r = zk_cli(zk, "zone", "import", zone_name, str(bad))
    assert r.returncode == 1 and "line 5: bad A record: " in r.stderr
    r = zk_cli(zk, "acl", "create", "--action", "transfer", "--network", "10.0.0.0/33")
    assert r.returncode == 1
    reasons = [line for line in r.stderr.splitlines() if line.startswith("  ")]
    assert reasons == ["  --network: '10.0.0.0/33' is not a network: the prefix length /33 is "
                       "over 32, the most for IPv4"]


def test_import_dry_run_and_apply(zk: ZkServer, zone_name: str, tmp_path: Path) -> None:
    zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.")
    text = f"$ORIGIN {zone_name}\n$TTL 300\n@ SOA ns1.example.net. h 1 1 1 1 1\n@ NS ns1.example.net.\na A 192.0.2.9\n"
    f = tmp_path / "z.zone"
    f.write_text(text)
    r = zk_cli(zk, "-o", "table", "zone", "import", zone_name, str(f), "--dry-run")
    assert r.returncode == 0 and f"+ a.{zone_name} 300 A 192.0.2.9" in r.stdout and "dry run" in r.stdout
    r = zk_cli(zk, "-o", "table", "zone", "import", zone_name, str(f), "--force")
    assert r.returncode == 0 and "applied" in r.stdout
    assert zk.query(f"a.{zone_name}", "A").answer


def test_errors_and_exit_codes(zk: ZkServer) -> None:
    r = zk_cli(zk, "zone", "show", "missing.test")
    assert r.returncode == 1 and "error 404: zone missing.test. does not exist" in r.stderr
    r = zk_cli(zk, "zone", "list", token="zk_x_y")
    assert r.returncode == 3 and "401" in r.stderr and "ZONEKEEPER_TOKEN" in r.stderr
    r = zk_cli(zk, "zone", "list", token=None)
    assert r.returncode == 3 and "no API token" in r.stderr
    r = zk_cli(zk, "zone", "frobnicate")
    assert r.returncode == 2
    r = zk_cli(None, "--api-url", "http://127.0.0.1:9", "zone", "list")
    assert r.returncode == 3 and "cannot reach the zonekeeper API" in r.stderr


def test_exit_status_of_failed_outcomes_and_small_scopes(zk: ZkServer, zone_name: str) -> None:
    # A secondary zone whose primary is this server itself, where it is not loaded: SERVFAIL.
    me = f"me-{zone_name.split('.')[0]}"
    assert zk_cli(zk, "peer", "create", me, "--address", "127.0.0.1",
                  "--port", str(zk.dns_port)).returncode == 0
    with zk.client() as c:
        assert c.post("/zones", json={"name": zone_name, "kind": "secondary",
                                      "primaries": [me]}).status_code == 201
        reader = c.post("/tokens", json={"name": "reader", "scopes": ["read"]}).json()["token"]
    r = zk_cli(zk, "zone", "transfer", zone_name)
    assert r.returncode == 1, r
    assert json.loads(r.stdout)["result"] == "FAILED"
    assert "transfer failed: " in r.stderr and "SERVFAIL" in r.stderr
    r = zk_cli(zk, "zone", "transfer", zone_name, "--timeout", "0")
    assert r.returncode == 2 and "--timeout" in r.stderr  # usage
    assert zk_cli(zk, "zone", "show", zone_name, token=reader).returncode == 0
    r = zk_cli(zk, "zone", "delete", zone_name, "--yes", token=reader)
    assert r.returncode == 3 and "error 403" in r.stderr and "scope is too small" in r.stderr
    assert zk_cli(zk, "zone", "show", zone_name).returncode == 0


def test_zone_delete_needs_yes_without_a_terminal(zk: ZkServer, zone_name: str) -> None:
    assert zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.").returncode == 0
    stem = zone_name.split(".")[0]
    for peer in (f"a-{stem}", f"b-{stem}"):
        assert zk_cli(zk, "peer", "create", peer, "--address", "127.0.0.78").returncode == 0
        assert zk_cli(zk, "zone", "link", zone_name, peer).returncode == 0
    for stdin in ("n\n", "y\n", None):  # a pipe answering no or yes, and /dev/null
        r = zk_cli(zk, "zone", "delete", zone_name, stdin=stdin)
        assert r.returncode == 2, r
        assert "without a terminal, add --yes" in r.stderr
        assert (f"{zone_name} has 2 linked peers (a-{stem}, b-{stem}); they will stop "
                "receiving NOTIFY") in r.stderr
        assert zk_cli(zk, "zone", "show", zone_name).returncode == 0
    r = zk_cli(zk, "zone", "delete", zone_name, "--yes")
    assert r.returncode == 0 and f"zone {zone_name} deleted" in r.stderr
    assert "2 linked peers" in r.stderr  # said even when not asked
    assert zk_cli(zk, "zone", "show", zone_name).returncode == 1


def test_zone_delete_asks_on_a_terminal(zk: ZkServer, zone_name: str) -> None:
    assert zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.").returncode == 0
    r = zk_cli_tty(zk, "zone", "delete", zone_name, typed="n\n")
    assert f"Delete primary zone {zone_name}" in r.stderr and "[y/N]" in r.stderr
    assert r.returncode == 2 and "nothing was changed" in r.stderr
    assert zk_cli(zk, "zone", "show", zone_name).returncode == 0
    r = zk_cli_tty(zk, "zone", "delete", zone_name, typed="y\n")
    assert r.returncode == 0, r
    assert zk_cli(zk, "zone", "show", zone_name).returncode == 1


def test_every_delete_needs_yes_without_a_terminal(zk: ZkServer, zone_name: str) -> None:
    stem = zone_name.split(".")[0]
    key, peer, other = f"k-{stem}", f"p-{stem}", f"o-{stem}"
    assert zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.").returncode == 0
    assert zk_cli(zk, "rrset", "set", zone_name, "www", "A", "192.0.2.1").returncode == 0
    assert zk_cli(zk, "key", "generate", key).returncode == 0
    assert zk_cli(zk, "peer", "create", peer, "--address", "127.0.0.79").returncode == 0
    assert zk_cli(zk, "peer", "create", other, "--address", "127.0.0.80").returncode == 0
    assert zk_cli(zk, "zone", "link", zone_name, other).returncode == 0
    rule = json.loads(zk_cli(zk, "acl", "create", "--action", "transfer", "--network",
                             "127.0.0.81/32").stdout)["id"]
    with zk.client() as c:
        token_id = c.post("/tokens", json={"name": "t", "scopes": ["read"]}).json()["id"]

        def exists(what: str) -> bool:
            path = {"rrset": f"/zones/{zone_name}/rrsets/www/A", "key": f"/tsig-keys/{key}",
                    "peer": f"/peers/{peer}", "acl": f"/acls/{rule}"}.get(what)
            if what == "link":
                return other in str(c.get(f"/zones/{zone_name}/peers").json())
            if what == "token":
                return token_id in str(c.get("/tokens").json())
            return c.get(path).status_code == 200

        commands = {
            "rrset": ["rrset", "delete", zone_name, "www", "A"],
            "link": ["zone", "unlink", zone_name, other],
            "key": ["key", "delete", key],
            "peer": ["peer", "delete", peer],
            "acl": ["acl", "delete", str(rule)],
            "token": ["token", "delete", token_id],
        }
        for what, args in commands.items():
            r = zk_cli(zk, *args, stdin="y\n")
            assert r.returncode == 2 and "add --yes" in r.stderr, (what, r)
            assert exists(what), what
            r = zk_cli(zk, *args, "--yes")
            assert r.returncode == 0, (what, r)
            assert not exists(what), what


def test_keys_acls_peers(zk: ZkServer, zone_name: str) -> None:
    zk_cli(zk, "zone", "create", zone_name, "--ns", "ns1.example.net.")
    made = json.loads(zk_cli(zk, "key", "generate", f"cli-{zone_name}").stdout)
    assert len(made["secret"]) == 44
    dig = zk_cli(zk, "key", "export", made["name"], "--format", "dig").stdout.strip()
    assert dig == f"hmac-sha256:{made['name'].rstrip('.')}:{made['secret']}"
    listed = zk_cli(zk, "key", "list").stdout
    assert made["secret"] not in listed
    rule = json.loads(zk_cli(zk, "acl", "create", "--action", "transfer", "--network", "127.0.0.9/32",
                             "--key", made["name"], "--zone", zone_name).stdout)
    ok = zk_cli(zk, "acl", "check", "--zone", zone_name, "--address", "127.0.0.9", "--key", made["name"])
    assert ok.returncode == 0 and json.loads(ok.stdout)["rule"].startswith(f"acl {rule['id']}")
    no = zk_cli(zk, "acl", "check", "--zone", zone_name, "--address", "127.0.0.9")
    assert no.returncode == 1 and json.loads(no.stdout)["allowed"] is False
    r = zk_cli(zk, "key", "delete", made["name"], "--yes")
    assert r.returncode == 1 and "in use" in r.stderr
    peer = f"p-{zone_name.split('.')[0]}"
    assert zk_cli(zk, "peer", "create", peer, "--address", "127.0.0.77", "--no-notify").returncode == 0
    assert zk_cli(zk, "zone", "link", zone_name, peer).returncode == 0
    snippet = zk_cli(zk, "peer", "config", peer, "--zone", zone_name, "--format", "nsd").stdout
    assert "request-xfr" in snippet


def test_check_zone_offline(tmp_path: Path) -> None:
    good = tmp_path / "good.zone"
    good.write_text("$TTL 60\n@ SOA ns h 3 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n")
    r = zk_cli(None, "check-zone", "ex.test", str(good), token=None)
    assert r.returncode == 0 and "loaded serial 3" in r.stdout
    bad = tmp_path / "bad.zone"
    bad.write_text("$TTL 60\n@ SOA ns h 3 1 1 1 1\n@ NS ns\nns A 192.0.2.1\nx A nope\nns CNAME y\n")
    r = zk_cli(None, "check-zone", "ex.test", str(bad), token=None)
    assert r.returncode == 1
    assert f"{bad}:5:" in r.stdout and "CNAME and other data" in r.stdout


def test_zone_import_from_a_running_primary(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """Another zonekeeper (the demo allows AXFR to 127.0.0.0/8) is the running primary."""
    upstream = zk_factory(demo=True).start()
    here = zk_factory(demo=False).start()
    zone = "example.test."
    done = zk_cli(here, "-o", "json", "zone", "import-from", zone, "--address", "127.0.0.1",
                  "--port", str(upstream.dns_port))
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["kind"] == "primary" and made["serial"] == upstream.serial(zone)
    assert here.query(f"www.{zone}", "A").answer == upstream.query(f"www.{zone}", "A").answer
    again = zk_cli(here, "zone", "import-from", zone, "--address", "127.0.0.1",
                   "--port", str(upstream.dns_port))
    assert again.returncode == 1 and "already exists" in again.stderr, again
    nobody = zk_cli(here, "zone", "import-from", "other.test.", "--address", "127.0.0.1",
                    "--port", str(free_port()))
    assert nobody.returncode == 1 and "AXFR of other.test. from 127.0.0.1" in nobody.stderr, nobody
