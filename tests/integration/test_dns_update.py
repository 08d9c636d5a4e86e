"""RFC 2136 dynamic UPDATE through clients nobody here wrote: BIND's ``nsupdate`` (every
prerequisite kind, over UDP and TCP, keys and update rules allowing and refusing),
certbot's rfc2136 plugin client adding and removing its challenge with a key limited to
``_acme-challenge`` TXT, octoDNS syncing a YAML zone in with ``Rfc2136Provider`` and
reading it back with ``AxfrSource``; and a real Knot secondary following every UPDATE by
IXFR. A refused or failed UPDATE changes nothing: serial, records and journal stay."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, make_zone, require_tool, wait_for

KNOT_ADDR = "127.0.0.67"


@pytest.fixture(scope="module")
def nsupdate_bin() -> str:
    return require_tool("nsupdate", "bind9-dnsutils")


def new_zone() -> str:
    return f"u{uuid.uuid4().hex[:10]}.test."


def make_key(api: httpx2.Client, name: str) -> str:
    r = api.post("/tsig-keys", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["secret"]  # type: ignore[no-any-return]


def rule(api: httpx2.Client, **body: object) -> dict[str, Any]:
    r = api.post("/acls", json={"action": "update", **body})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


class Updater:
    """nsupdate against one server and zone, signed with ``key`` (name, secret) or not."""

    def __init__(self, exe: str, zk: ZkServer, zone: str, key: tuple[str, str] | None,
                 tcp: bool = False) -> None:
        self.exe, self.zk, self.zone, self.key, self.tcp = exe, zk, zone, key, tcp

    def __call__(self, *lines: str) -> subprocess.CompletedProcess[str]:
        script = "\n".join(["check-names no", f"server {self.zk.addr} {self.zk.dns_port}", f"zone {self.zone}",
                            *lines, "send", ""])
        args = [self.exe, "-t", "10"] + (["-v"] if self.tcp else [])
        if self.key is not None:
            args += ["-y", f"hmac-sha256:{self.key[0]}:{self.key[1]}"]
        return subprocess.run(args, input=script, capture_output=True, text=True, timeout=60)


def state(zk: ZkServer, zone: str) -> tuple[int, list[str]]:
    """Serial and a sorted AXFR dump (the closing SOA dropped)."""
    lines = []
    for msg in dns.query.xfr(zk.addr, zone, port=zk.dns_port, timeout=10, relativize=False):
        for rrset in msg.answer:
            lines.extend(rrset.to_text().lower().splitlines())
    return zk.serial(zone), sorted(lines[:-1])


@pytest.fixture(scope="module")
def updated(zk: ZkServer) -> Iterator[tuple[ZkServer, httpx2.Client]]:
    with zk.client() as api:
        # AXFR to 127.0.0.1 for the comparisons (the demo's rule is for its own zone).
        assert api.post("/acls", json={"action": "transfer", "network": "127.0.0.1/32"}).status_code == 201
        yield zk, api


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_every_prerequisite_kind_and_refusals_change_nothing(
        updated: tuple[ZkServer, httpx2.Client], nsupdate_bin: str, tcp: bool) -> None:
    zk, api = updated
    zone = new_zone()
    make_zone(api, zone, rrsets=[
        {"name": "ns1", "type": "A", "records": [{"content": "192.0.2.1"}]},
        {"name": "www", "type": "A", "records": [{"content": "192.0.2.10"}, {"content": "192.0.2.11"}]}])
    key = f"ops-{uuid.uuid4().hex[:6]}"
    secret = make_key(api, key)
    rule(api, zone=zone, key=key, network="127.0.0.0/8")
    up = Updater(nsupdate_bin, zk, zone, (key, secret), tcp=tcp)

    # Each prerequisite kind, holding: the update goes through, one serial bump for it all.
    serial = zk.serial(zone)
    done = up(f"prereq yxdomain www.{zone}", f"prereq nxdomain none.{zone}",
              f"prereq yxrrset www.{zone} A", f"prereq nxrrset www.{zone} TXT",
              f"prereq yxrrset www.{zone} A 192.0.2.11", f"prereq yxrrset www.{zone} A 192.0.2.10",
              f"update add new.{zone} 300 A 192.0.2.20", f"update add new.{zone} 300 A 192.0.2.21",
              f"update delete www.{zone} A 192.0.2.11")
    assert done.returncode == 0, done.stderr
    assert zk.serial(zone) == serial + 1
    assert sorted(rr.address for rr in zk.query(f"new.{zone}", "A").answer[0]) == ["192.0.2.20", "192.0.2.21"]
    assert [rr.address for rr in zk.query(f"www.{zone}", "A").answer[0]] == ["192.0.2.10"]

    # Each kind failing, with its own RCODE; nothing changes.
    before = state(zk, zone)
    for prereq, rcode in ((f"prereq nxdomain www.{zone}", "YXDOMAIN"),
                          (f"prereq yxdomain none.{zone}", "NXDOMAIN"),
                          (f"prereq yxrrset www.{zone} TXT", "NXRRSET"),
                          (f"prereq nxrrset www.{zone} A", "YXRRSET"),
                          (f"prereq yxrrset www.{zone} A 192.0.2.99", "NXRRSET"),
                          ("prereq yxdomain www.other.test.", "NOTZONE")):
        failed = up(prereq, f"update add bad.{zone} 300 A 192.0.2.66")
        assert failed.returncode != 0 and f"update failed: {rcode}" in failed.stderr, (prereq, failed.stderr)
    # Refused by policy: no key, a key nobody allowed; a wrong secret is NOTAUTH.
    other = f"nobody-{uuid.uuid4().hex[:6]}"
    other_secret = make_key(api, other)
    for who in (None, (other, other_secret)):
        failed = Updater(nsupdate_bin, zk, zone, who, tcp=tcp)(f"update add bad.{zone} 300 A 192.0.2.66")
        assert "update failed: REFUSED" in failed.stderr, failed.stderr
    wrong = base64.b64encode(os.urandom(32)).decode()
    failed = Updater(nsupdate_bin, zk, zone, (key, wrong), tcp=tcp)(f"update add bad.{zone} 300 A 192.0.2.66")
    assert failed.returncode != 0, failed.stderr
    assert state(zk, zone) == before
    with zk.client() as c:
        assert c.get(f"/zones/{zone}/rrsets/bad/A").status_code == 404
    # The journal still leads from the last good serial: IXFR from it is empty.
    msgs = list(dns.query.xfr(zk.addr, zone, port=zk.dns_port, rdtype="IXFR", serial=before[0],
                              timeout=10))
    assert sum(len(m.answer) for m in msgs) == 1  # just the current SOA

    # The apex: its SOA and NS RRsets cannot be deleted by UPDATE; the rest of the apex can.
    done = up(f"update delete {zone} ANY", f"update add {zone} 300 TXT \"apex\"")
    assert done.returncode == 0, done.stderr
    assert zk.query(zone, "NS").answer and zk.query(zone, "SOA").answer
    assert zk.query(zone, "TXT").answer[0][0].strings == (b"apex",)


def test_update_rules_limit_names_and_types(updated: tuple[ZkServer, httpx2.Client],
                                            nsupdate_bin: str) -> None:
    zk, api = updated
    zone = new_zone()
    make_zone(api, zone)
    acme = f"acme-{uuid.uuid4().hex[:6]}"
    secret = make_key(api, acme)
    from tests.integration.test_cli import zk_cli

    done = zk_cli(zk, "-o", "json", "acl", "create", "--action", "update", "--zone", zone,
                  "--key", acme, "--network", "127.0.0.0/8", "--name", "_acme-challenge",
                  "--name", "*.dyn", "--type", "TXT")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["names"] == [f"_acme-challenge.{zone}", f"*.dyn.{zone}"] and made["types"] == ["TXT"]
    rule(api, zone=zone, key=acme, effect="deny", names=[f"blocked.dyn.{zone}"])
    up = Updater(nsupdate_bin, zk, zone, (acme, secret))
    assert up(f"update add _acme-challenge.{zone} 60 TXT \"t1\"").returncode == 0
    assert up(f"update add host.dyn.{zone} 60 TXT \"t2\"").returncode == 0
    serial = zk.serial(zone)
    for line in (f"update add _acme-challenge.{zone} 60 A 192.0.2.1",  # not a TXT
                 f"update add www.{zone} 60 TXT \"no\"",  # not a name it covers
                 f"update add dyn.{zone} 60 TXT \"no\"",  # *.dyn is below dyn, not dyn
                 f"update add blocked.dyn.{zone} 60 TXT \"no\"",  # denied
                 f"update delete _acme-challenge.{zone} ANY"):  # every type: not only TXT
        failed = up(f"update add _acme-challenge.{zone} 60 TXT \"t3\"", line)
        assert "update failed: REFUSED" in failed.stderr, (line, failed.stderr)
    assert zk.serial(zone) == serial
    assert [r.strings for r in zk.query(f"_acme-challenge.{zone}", "TXT").answer[0]] == [(b"t1",)]
    # The API explains the same decisions.
    check = api.get("/acls/check", params={"zone": zone, "address": "127.0.0.1", "key": acme,
                                           "action": "update", "name": "_acme-challenge", "type": "TXT"})
    assert check.status_code == 200 and check.json()["allowed"] is True, check.text
    check = api.get("/acls/check", params={"zone": zone, "address": "127.0.0.1", "key": acme,
                                           "action": "update", "name": "www", "type": "TXT"})
    assert check.json()["allowed"] is False and f"www.{zone} TXT" in check.json()["reason"]
    denied = zk_cli(zk, "acl", "check", "--zone", zone, "--address", "127.0.0.1", "--key", acme,
                    "--action", "update", "--name", "blocked.dyn", "--type", "TXT")
    assert denied.returncode == 1 and "denied by rule" in denied.stdout, denied


def test_update_rules_are_checked(updated: tuple[ZkServer, httpx2.Client]) -> None:
    _zk, api = updated
    zone = new_zone()
    make_zone(api, zone)
    for body, where in (({"action": "transfer", "network": "10.0.0.0/8", "names": ["www"], "zone": zone}, "names"),
                        ({"action": "update", "network": "10.0.0.0/8", "names": ["www"]}, "names"),
                        ({"action": "update", "network": "10.0.0.0/8", "zone": zone, "types": ["BOGUS"]}, "types"),
                        ({"action": "update", "network": "10.0.0.0/8", "zone": zone, "names": ["www.elsewhere.test."]}, "names")):
        r = api.post("/acls", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["loc"][0] == where, r.text


def test_update_for_a_zone_not_here_or_a_secondary_zone(
        updated: tuple[ZkServer, httpx2.Client], nsupdate_bin: str) -> None:
    zk, api = updated
    key = f"any-{uuid.uuid4().hex[:6]}"
    secret = make_key(api, key)
    rule(api, key=key, network="127.0.0.0/8")  # every zone
    failed = Updater(nsupdate_bin, zk, "nothere.test.", (key, secret))("update add a.nothere.test. 60 A 192.0.2.1")
    assert "update failed: NOTAUTH" in failed.stderr, failed.stderr
    zone = new_zone()
    peer = f"p{uuid.uuid4().hex[:6]}"
    assert api.post("/peers", json={"name": peer, "address": "192.0.2.53"}).status_code == 201
    assert api.post("/zones", json={"name": zone, "kind": "secondary", "primaries": [peer]}).status_code == 201
    failed = Updater(nsupdate_bin, zk, zone, (key, secret))(f"update add a.{zone} 60 A 192.0.2.1")
    assert "update failed: NOTIMP" in failed.stderr, failed.stderr


def test_certbot_rfc2136_client_adds_and_removes_its_challenge(
        updated: tuple[ZkServer, httpx2.Client]) -> None:
    """The client the certbot-dns-rfc2136 authenticator's perform/cleanup call (a full
    ACME run needs a CA on the network)."""
    from certbot_dns_rfc2136._internal.dns_rfc2136 import _RFC2136Client

    zk, api = updated
    zone = new_zone()
    make_zone(api, zone)
    acme = f"certbot-{uuid.uuid4().hex[:6]}"
    secret = make_key(api, acme)
    rule(api, zone=zone, key=acme, network="127.0.0.1/32", names=["_acme-challenge"], types=["TXT"])
    for sign_query in (False, True):
        client = _RFC2136Client(zk.addr, zk.dns_port, acme, secret, dns.tsig.HMAC_SHA256,
                                sign_query, timeout=10)
        name = f"_acme-challenge.{zone}"
        client.add_txt_record(name, "challenge-token-1", 60)
        client.add_txt_record(name, "challenge-token-2", 60)
        got = sorted(r.strings[0] for r in zk.query(name, "TXT").answer[0])
        assert got == [b"challenge-token-1", b"challenge-token-2"]
        client.del_txt_record(name, "challenge-token-1")
        client.del_txt_record(name, "challenge-token-2")
        assert zk.query(name, "TXT").rcode() == dns.rcode.NXDOMAIN


def test_octodns_syncs_a_yaml_zone_in_and_reads_it_back(
        updated: tuple[ZkServer, httpx2.Client], tmp_path: Path) -> None:
    zk, api = updated
    zone = new_zone()
    make_zone(api, zone, nameservers=["ns1.example.net.", "ns2.example.net."], rrsets=[])
    key = f"octo-{uuid.uuid4().hex[:6]}"
    secret = make_key(api, key)
    rule(api, zone=zone, key=key, network="127.0.0.1/32")
    assert api.post("/acls", json={"action": "transfer", "zone": zone, "key": key,
                                   "network": "127.0.0.1/32"}).status_code == 201
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / f"{zone}yaml").write_text(textwrap.dedent("""\
        ---
        '':
          - ttl: 3600
            type: NS
            values: [ns1.example.net., ns2.example.net.]
          - type: MX
            values:
              - exchange: mail.example.net.
                preference: 10
        alias:
          type: CNAME
          value: www.{zone}
        txt:
          type: TXT
          value: managed by octodns
        www:
          type: A
          values: [192.0.2.80, 192.0.2.81]
        """).replace("{zone}", zone))
    provider = textwrap.dedent(f"""\
        class: octodns_bind.Rfc2136Provider
        host: {zk.addr}
        port: {zk.dns_port}
        key_name: {key}
        key_secret: {secret}
        key_algorithm: hmac-sha256
        """)
    (tmp_path / "config.yaml").write_text(
        "providers:\n  config:\n    class: octodns.provider.yaml.YamlProvider\n"
        f"    directory: {tmp_path / 'zones'}\n    default_ttl: 300\n"
        "  zk:\n" + textwrap.indent(provider, "    ") +
        f"zones:\n  {zone}:\n    sources: [config]\n    targets: [zk]\n")
    sync = Path(sys.executable).parent / "octodns-sync"
    if not sync.exists():
        pytest.fail("octodns-sync is not in the venv: scripts/setup.sh --test installs octodns")
    done = subprocess.run([str(sync), "--config-file", str(tmp_path / "config.yaml"), "--doit"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(r.address for r in zk.query(f"www.{zone}", "A").answer[0]) == ["192.0.2.80", "192.0.2.81"]
    # A second plan finds nothing to change: what AxfrSource reads back equals the YAML.
    again = subprocess.run([str(sync), "--config-file", str(tmp_path / "config.yaml")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "No changes were planned" in again.stdout + again.stderr, again.stdout + again.stderr


def test_a_knot_secondary_follows_every_update_by_ixfr(
        updated: tuple[ZkServer, httpx2.Client], nsupdate_bin: str, tmp_path: Path) -> None:
    from tests.peers import KnotSecondary, SecondaryZone

    require_tool("knotd", "knot")
    zk, api = updated
    zone = new_zone()
    make_zone(api, zone)
    knot = KnotSecondary(tmp_path / "knot", addr=KNOT_ADDR, port=free_port(KNOT_ADDR))
    knot.start().wait_ready()
    try:
        peer = f"knot-{uuid.uuid4().hex[:6]}"
        assert api.post("/peers", json={"name": peer, "address": knot.listen, "port": knot.port,
                                        "transfer_from": [f"{knot.source}/32"]}).status_code == 201
        assert api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"}).status_code == 200
        knot.add_zones(SecondaryZone(zone, (zk.addr, zk.dns_port)))
        knot.wait_serial(zone, zk.serial(zone))
        key = f"dyn-{uuid.uuid4().hex[:6]}"
        secret = make_key(api, key)
        rule(api, zone=zone, key=key, network="127.0.0.0/8")
        up = Updater(nsupdate_bin, zk, zone, (key, secret))
        for i in range(3):
            assert up(f"update add h{i}.{zone} 300 A 192.0.2.{i + 1}").returncode == 0
            knot.wait_serial(zone, zk.serial(zone))
        wait_for(lambda: len([e for e in zk.events("xfr.out", zone=zone)
                              if e.get("type") == "IXFR" and e.get("result") == "ok"]) >= 3,
                 what="three IXFRs to Knot")
        r = dns.query.udp(dns.message.make_query(f"h2.{zone}", "A"), knot.listen, port=knot.port,
                          timeout=5)
        assert [rr.address for rr in r.answer[0]] == ["192.0.2.3"]
    finally:
        knot.stop()


def test_an_update_for_a_secondary_zone_is_forwarded_when_asked(
        zk_factory: Any, nsupdate_bin: str) -> None:
    """With [dns] update_forward, an UPDATE that an update rule here allows goes to the
    zone's primary as it came (signed for the primary too) and its answer comes back."""
    primary = zk_factory(demo=False).start()
    secondary = zk_factory(demo=False, env={"ZONEKEEPER_DNS__UPDATE_FORWARD": "true"}).start()
    zone = new_zone()
    key = f"fwd-{uuid.uuid4().hex[:6]}"
    with primary.client() as api:
        make_zone(api, zone)
        secret = make_key(api, key)
        rule(api, zone=zone, key=key, network="127.0.0.0/8")
        assert api.post("/acls", json={"action": "transfer", "zone": zone,
                                       "network": "127.0.0.1/32"}).status_code == 201
    with secondary.client() as api:
        assert api.post("/tsig-keys", json={"name": key, "secret": secret}).status_code == 201
        assert api.post("/peers", json={"name": "up", "address": "127.0.0.1",
                                        "port": primary.dns_port}).status_code == 201
        assert api.post("/zones", json={"name": zone, "kind": "secondary",
                                        "primaries": ["up"]}).status_code == 201
    wait_for(lambda: secondary.query(zone, "SOA").answer, what="the secondary loaded")
    up = Updater(nsupdate_bin, secondary, zone, (key, secret))
    # Not allowed here: refused, not passed on.
    assert "update failed: REFUSED" in up(f"update add fwd.{zone} 60 A 192.0.2.7").stderr
    with secondary.client() as api:
        rule(api, zone=zone, key=key, network="127.0.0.0/8")
    serial = primary.serial(zone)
    done = up(f"update add fwd.{zone} 60 A 192.0.2.7")
    assert done.returncode == 0, done.stderr
    assert primary.serial(zone) == serial + 1
    assert primary.query(f"fwd.{zone}", "A").answer[0][0].address == "192.0.2.7"
    assert secondary.events("dns.update", zone=zone, result="forwarded")
    # A prerequisite that fails at the primary comes back as its answer.
    failed = up(f"prereq nxdomain fwd.{zone}", f"update add other.{zone} 60 A 192.0.2.8")
    assert "update failed: YXDOMAIN" in failed.stderr, failed.stderr
