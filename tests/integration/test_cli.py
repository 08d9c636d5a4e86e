"""The CLI against a real server: JSON output, exit codes, helpful errors; check-zone offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TOKEN, ZkServer


def zk_cli(zk: ZkServer | None, *args: str, token: str | None = TOKEN, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ZONEKEEPER_TOKEN", None)
    if zk is not None:
        env["ZONEKEEPER_API_URL"] = zk.api_url
    if token:
        env["ZONEKEEPER_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "zonekeeper", *args], capture_output=True, text=True,
                          env=env, timeout=60, input=stdin)


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
    assert r.returncode == 1 and "401" in r.stderr and "ZONEKEEPER_TOKEN" in r.stderr
    r = zk_cli(zk, "zone", "list", token=None)
    assert r.returncode == 1 and "no API token" in r.stderr
    r = zk_cli(zk, "zone", "frobnicate")
    assert r.returncode == 2
    r = zk_cli(None, "--api-url", "http://127.0.0.1:9", "zone", "list")
    assert r.returncode == 1 and "cannot reach the zonekeeper API" in r.stderr


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
    r = zk_cli(zk, "key", "delete", made["name"])
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
