"""Peers, links, NOTIFY out and status per secondary, against a small in-test secondary."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from functools import partial

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rrset
import dns.tsig
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, make_zone
from tests.conftest import wait_for as conftest_wait_for


class FakeSecondary:
    """Answers NOTIFY (recording it) and SOA queries with the last notified serial.

    With ``key`` it checks the NOTIFY's TSIG; with ``silent`` it never answers."""

    def __init__(self, addr: str = "127.0.0.30", *, key: dns.tsig.Key | None = None,
                 silent: bool = False, lag: int = 0, port: int | None = None) -> None:
        self.addr = addr
        self.port = port or free_port(addr)
        self.key = key
        self.silent = silent
        self.lag = lag
        self.notifies: list[tuple[int, float, bool]] = []  # serial, time, signed
        self.serial = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, self.port))
        self.sock.settimeout(0.2)
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            try:
                data, src = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            keyring = {self.key.name: self.key} if self.key else None
            try:
                q = dns.message.from_wire(data, keyring=keyring)
            except Exception:  # noqa: BLE001 - bad signature or garbage: no answer
                continue
            if q.opcode() == dns.opcode.NOTIFY:
                serial = q.answer[0][0].serial
                self.notifies.append((serial, time.monotonic(), q.had_tsig))
                self.serial = serial - self.lag
            if self.silent:
                continue
            r = dns.message.make_response(q)
            if q.opcode() != dns.opcode.NOTIFY:
                r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "SOA",
                                                    f"ns. host. {self.serial} 1 1 1 1"))
            self.sock.sendto(r.to_wire(), src)

    def close(self) -> None:
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    env = {"ZONEKEEPER_NOTIFY__RETRIES": "2", "ZONEKEEPER_NOTIFY__RETRY_INTERVAL": "0.2",
           "ZONEKEEPER_NOTIFY__TIMEOUT": "0.3"}
    srv = ZkServer(tmp_path_factory.mktemp("zk"), env=env).start()
    yield srv
    srv.stop()


# Conditions here get 5 s unless a call says otherwise.
wait_for = partial(conftest_wait_for, timeout=5.0)


def status_of(api: httpx2.Client, zone: str, peer: str) -> dict:
    rows = api.get(f"/zones/{zone}/xfr-status").json()
    return next(r for r in rows if r["peer"] == peer)


def test_edit_notifies_linked_secondary_and_status_follows(api: httpx2.Client, zone_name: str) -> None:
    sec = FakeSecondary()
    try:
        make_zone(api, zone_name)
        peer = f"fake-{zone_name.split('.')[0]}"
        assert api.post("/peers", json={"name": peer, "address": sec.addr, "port": sec.port}).status_code == 201
        assert api.put(f"/zones/{zone_name}/peers/{peer}", json={"role": "secondary"}).status_code == 200
        serials = []
        for i in range(3):
            t0 = time.monotonic()
            r = api.put(f"/zones/{zone_name}/rrsets/n/A", json={"records": [{"content": f"192.0.2.{i + 1}"}]})
            serial = r.json()["serial"]
            serials.append(serial)
            got = wait_for(lambda s=serial: [n for n in sec.notifies if n[0] == s])
            assert got[0][1] - t0 < 1.0  # well under a second from the edit
            row = wait_for(lambda s=serial: (st := status_of(api, zone_name, peer))["peer_serial"] == s and st)
            assert row["state"] == "in sync" and row["serial_lag"] == 0
            assert row["notify"]["state"] == "acked" and row["notify"]["rcode"] == "NOERROR"
        assert serials == sorted(serials)
        # NOTIFY now reports each peer's result.
        res = api.post(f"/zones/{zone_name}/notify", json={}).json()
        assert res == [{"peer": peer, "result": "acked", "rcode": "NOERROR", "attempts": 1, "serial": serials[-1]}]
    finally:
        sec.close()


def test_lagging_secondary_is_shown_behind(api: httpx2.Client, zone_name: str) -> None:
    sec = FakeSecondary(addr="127.0.0.31", lag=1)
    try:
        make_zone(api, zone_name)
        api.post("/peers", json={"name": "lagger", "address": sec.addr, "port": sec.port})
        api.put(f"/zones/{zone_name}/peers/lagger", json={"role": "secondary"})
        serial = api.put(f"/zones/{zone_name}/rrsets/n/A", json={"records": [{"content": "192.0.2.1"}]}).json()["serial"]
        row = wait_for(lambda: (st := status_of(api, zone_name, "lagger"))["peer_serial"] == serial - 1 and st)
        assert row["state"] == "behind" and row["serial_lag"] == 1
    finally:
        sec.close()


def test_unreachable_peer_is_retried_then_failed(api: httpx2.Client, zone_name: str) -> None:
    sec = FakeSecondary(addr="127.0.0.32", silent=True)
    try:
        make_zone(api, zone_name)
        api.post("/peers", json={"name": "silent", "address": sec.addr, "port": sec.port})
        api.put(f"/zones/{zone_name}/peers/silent", json={"role": "secondary"})
        serial = api.put(f"/zones/{zone_name}/rrsets/n/A", json={"records": [{"content": "192.0.2.1"}]}).json()["serial"]
        row = wait_for(lambda: (st := status_of(api, zone_name, "silent"))["notify"]
                       and st["notify"]["state"] == "failed" and st, timeout=15)
        # 1 try + 2 retries over UDP, then one TCP try (refused: nothing listens on TCP).
        assert row["notify"]["attempts"] == 4 and row["state"] == "unreachable"
        udp = [n for n in sec.notifies if n[0] == serial]
        assert len(udp) == 3
        gaps = [b[1] - a[1] for a, b in zip(udp, udp[1:], strict=False)]
        assert gaps[1] > gaps[0]  # backoff doubles
    finally:
        sec.close()


def test_signed_notify_with_linked_key(api: httpx2.Client, zone_name: str) -> None:
    created = api.post("/tsig-keys", json={"name": f"k-{zone_name}"}).json()
    key = dns.tsig.Key(created["name"], created["secret"], "hmac-sha256")
    sec = FakeSecondary(addr="127.0.0.33", key=key)
    try:
        make_zone(api, zone_name)
        api.post("/peers", json={"name": "signed", "address": sec.addr, "port": sec.port, "key": created["name"]})
        api.put(f"/zones/{zone_name}/peers/signed", json={"role": "secondary"})
        serial = api.put(f"/zones/{zone_name}/rrsets/n/A", json={"records": [{"content": "192.0.2.1"}]}).json()["serial"]
        got = wait_for(lambda: [n for n in sec.notifies if n[0] == serial])
        assert got[0][2] is True  # signed, and the signature verified
        assert api.delete(f"/tsig-keys/{created['name']}").status_code == 409  # in use by the peer
    finally:
        sec.close()


def test_outgoing_off_sends_nothing_and_refuses(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    sec = FakeSecondary(addr="127.0.0.34")
    try:
        make_zone(api, zone_name)
        api.post("/peers", json={"name": "off", "address": sec.addr, "port": sec.port})
        api.put(f"/zones/{zone_name}/peers/off", json={"role": "secondary"})
        assert api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": False}).json()["outgoing_enabled"] is False
        api.put(f"/zones/{zone_name}/rrsets/n/A", json={"records": [{"content": "192.0.2.1"}]})
        time.sleep(0.5)
        assert sec.notifies == []
        r = dns.query.tcp(dns.message.make_query(zone_name, "AXFR"), "127.0.0.1", port=zk.dns_port, timeout=5)
        assert r.rcode() == dns.rcode.REFUSED
    finally:
        sec.close()


def test_linked_peer_may_transfer_from_its_networks_only(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    api.post("/peers", json={"name": "puller", "address": "127.0.0.40", "port": 53,
                             "transfer_from": ["127.0.0.41/32"], "notify": False})
    api.put(f"/zones/{zone_name}/peers/puller", json={"role": "secondary"})
    q = dns.message.make_query(zone_name, "AXFR")
    ok = dns.query.tcp(q, "127.0.0.1", port=zk.dns_port, timeout=5, source="127.0.0.41")
    assert ok.rcode() == dns.rcode.NOERROR and ok.answer
    no = dns.query.tcp(q, "127.0.0.1", port=zk.dns_port, timeout=5, source="127.0.0.40")
    assert no.rcode() == dns.rcode.REFUSED
    check = api.get("/acls/check", params={"zone": zone_name, "address": "127.0.0.41"}).json()
    assert check == {"allowed": True, "rule": "peer puller", "reason": "linked secondary peer"}
    rows = api.get(f"/zones/{zone_name}/xfr-status").json()
    assert rows[0]["last_transfer"]["type"] == "AXFR" and rows[0]["last_transfer"]["result"] == "ok"
    assert api.delete("/peers/puller").status_code == 409  # linked
    assert api.delete(f"/zones/{zone_name}/peers/puller").status_code == 204
    assert api.delete("/peers/puller").status_code == 204


@pytest.mark.parametrize("fmt,needle", [("bind", "type secondary;"), ("knot", "master: zonekeeper"),
                                        ("nsd", "request-xfr:"), ("pdns", "create-secondary-zone")])
def test_config_snippets(zk: ZkServer, api: httpx2.Client, zone_name: str, fmt: str, needle: str) -> None:
    make_zone(api, zone_name)
    name = f"snip-{fmt}-{zone_name.split('.')[0]}"
    api.post("/peers", json={"name": name, "address": "127.0.0.50"})
    r = api.get(f"/peers/{name}/config", params={"zone": zone_name, "format": fmt})
    assert r.status_code == 200 and needle in r.text and zone_name.rstrip(".") in r.text
    assert f"{zk.dns_port}" in r.text


@pytest.mark.parametrize("fmt", ["bind", "knot", "nsd", "pdns"])
def test_config_snippets_name_key_and_address(zk: ZkServer, api: httpx2.Client, zone_name: str,
                                              fmt: str) -> None:
    """Access in a snippet names the primary's address and the key together (a key alone
    would admit a replayed request from anywhere: README, Security notes); a peer without a
    key gets a note saying how to give it one, naming both."""
    make_zone(api, zone_name)
    tag = f"{fmt}-{zone_name.split('.')[0]}"
    key = api.post("/tsig-keys", json={"name": f"k-{tag}"}).json()["name"].rstrip(".")
    api.post("/peers", json={"name": f"keyed-{tag}", "address": "127.0.0.51", "key": key})
    api.post("/peers", json={"name": f"bare-{tag}", "address": "127.0.0.52"})
    keyed = api.get(f"/peers/keyed-{tag}/config", params={"zone": zone_name, "format": fmt}).text
    bare = api.get(f"/peers/bare-{tag}/config", params={"zone": zone_name, "format": fmt}).text
    lines = keyed.splitlines()
    # The lines through which the secondary admits zonekeeper, per format.
    if fmt == "bind":
        access = [line for line in lines if "primaries {" in line]
    elif fmt == "knot":
        access = [keyed.split("acl:")[1].split("zone:")[0]]
    elif fmt == "nsd":
        access = [line for line in lines
                  if line.strip().startswith(("allow-notify:", "request-xfr:"))]
    else:
        access = [line for line in lines
                  if "AXFR-MASTER-TSIG" in line or "create-secondary-zone" in line]
    assert access, keyed
    host = "127.0.0.1"  # the server's DNS address, as the snippet gives it
    if fmt == "pdns":  # the address in create-secondary-zone, the key in its meta, per zone
        assert host in access[0] and key in access[1], keyed
    else:
        assert all(host in part and key in part for part in access), access
    assert "No TSIG key" not in keyed
    note = [line for line in bare.splitlines() if "key generate" in line]
    assert "No TSIG key" in bare and note and f"peer set bare-{tag} --key" in note[0], bare


def test_acl_check_follows_the_transfer_decision(zk: ZkServer, api: httpx2.Client,
                                                 zone_name: str) -> None:
    """/acls/check answers what the transfer path does: with the zone's outgoing switch off
    the transfer is refused, and so says the check; for a zone not served here, too."""
    make_zone(api, zone_name)
    r = api.post("/acls", json={"zone": zone_name, "action": "transfer",
                                "network": "127.0.0.42/32"})
    assert r.status_code == 201, r.text
    params = {"zone": zone_name, "address": "127.0.0.42"}
    q = dns.message.make_query(zone_name, "AXFR")

    def axfr_rcode() -> int:
        return dns.query.tcp(q, "127.0.0.1", port=zk.dns_port, timeout=5,
                             source="127.0.0.42").rcode()

    check = api.get("/acls/check", params=params).json()
    assert check["allowed"] is True and axfr_rcode() == dns.rcode.NOERROR
    assert api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": False}).status_code == 200
    check = api.get("/acls/check", params=params).json()
    assert axfr_rcode() == dns.rcode.REFUSED
    assert check == {"allowed": False, "rule": None,
                     "reason": "outgoing transfers are switched off for this zone"}
    assert api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": True}).status_code == 200
    assert api.get("/acls/check", params=params).json()["allowed"] is True
    # A zone not served here: NOTAUTH on DNS, not allowed by the check (a rule for every
    # zone would match it).
    r = api.post("/acls", json={"action": "transfer", "network": "127.0.0.43/32"})
    assert r.status_code == 201, r.text
    other = "nowhere-" + zone_name
    check = api.get("/acls/check", params={"zone": other, "address": "127.0.0.43"}).json()
    assert check["allowed"] is False and "not a zone served here" in check["reason"]
    assert api.delete(f"/acls/{r.json()['id']}").status_code == 204


def test_outgoing_back_on_notifies_and_status_shows_behind_while_off(
        api: httpx2.Client, zone_name: str) -> None:
    """Edits made while outgoing transfers are off cannot reach a secondary: the status says
    it is behind, and switching them back on sends the NOTIFY at once."""
    sec = FakeSecondary(addr="127.0.0.35")
    try:
        make_zone(api, zone_name)
        assert api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": False}).status_code == 200
        api.post("/peers", json={"name": "reopened", "address": sec.addr, "port": sec.port})
        api.put(f"/zones/{zone_name}/peers/reopened", json={"role": "secondary"})
        serial = api.put(f"/zones/{zone_name}/rrsets/n/A",
                         json={"records": [{"content": "192.0.2.1"}]}).json()["serial"]
        row = wait_for(lambda: (st := status_of(api, zone_name, "reopened"))["peer_serial"] == 0
                       and st)
        assert row["state"] == "behind" and row["serial"] == serial and row["serial_lag"] == serial
        assert sec.notifies == []
        r = api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": True})
        assert r.status_code == 200 and r.json()["serial"] == serial, r.text
        wait_for(lambda: [n for n in sec.notifies if n[0] == serial])
        row = wait_for(lambda: (st := status_of(api, zone_name, "reopened"))["state"] == "in sync"
                       and st)
        assert row["notify"]["state"] == "acked" and row["notify"]["serial"] == serial
        # Setting it on again when it is on already sends nothing more.
        count = len(sec.notifies)
        assert api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": True}).status_code == 200
        time.sleep(0.5)
        assert len(sec.notifies) == count
    finally:
        sec.close()


def test_notify_ns_reaches_every_ns_target_but_the_mname(zk_factory, zone_name: str) -> None:  # type: ignore[no-untyped-def]
    """notify_ns, as BIND's "notify yes": each apex NS target but the SOA MNAME gets a NOTIFY
    at its addresses (in-zone glue, another zone served here, or looked up when sent:
    localhost from /etc/hosts), on the NS port; an address that a linked peer has gets the
    peer's NOTIFY alone; a target without an address is logged as a warning."""
    ns_port = free_port()
    srv: ZkServer = zk_factory(demo=False, env={
        "ZONEKEEPER_NOTIFY__NS_PORT": str(ns_port), "ZONEKEEPER_NOTIFY__RETRIES": "0",
        "ZONEKEEPER_NOTIFY__TIMEOUT": "0.3"}).start()
    other = "o" + zone_name
    listeners = {addr: FakeSecondary(addr, port=ns_port)
                 for addr in ("127.0.0.60", "127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.1")}
    peer = FakeSecondary("127.0.0.62")  # linked, on a port of its own
    try:
        with srv.client() as api:
            make_zone(api, other, zone_text=f"$ORIGIN {other}\n$TTL 300\n"
                      "@ SOA ns1 host 1 3600 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n"
                      "ns5 A 127.0.0.63\n")
            make_zone(api, zone_name, zone_text="\n".join([
                f"$ORIGIN {zone_name}", "$TTL 300", "@ SOA ns1 hostmaster 1 3600 900 1209600 300",
                "@ NS ns1", "@ NS ns2", "@ NS ns3", "@ NS localhost.", f"@ NS ns5.{other}",
                f"@ NS gone.{other}", "ns1 A 127.0.0.60", "ns2 A 127.0.0.61",
                "ns3 A 127.0.0.62"]) + "\n")
            assert api.post("/peers", json={"name": "ns3peer", "address": peer.addr,
                                            "port": peer.port}).status_code == 201
            assert api.put(f"/zones/{zone_name}/peers/ns3peer",
                           json={"role": "secondary"}).status_code == 200
            serial = api.put(f"/zones/{zone_name}/rrsets/n/A",
                             json={"records": [{"content": "192.0.2.1"}]}).json()["serial"]
            wait_for(lambda: peer.notifies)
            time.sleep(1.0)
            assert all(not sec.notifies for sec in listeners.values())  # notify_ns is off
            r = api.patch(f"/zones/{zone_name}", json={"notify_ns": True})
            assert r.status_code == 200 and r.json()["notify_ns"] is True, r.text
            serial = api.put(f"/zones/{zone_name}/rrsets/n/A",
                             json={"records": [{"content": "192.0.2.2"}]}).json()["serial"]
            for addr in ("127.0.0.61", "127.0.0.1", "127.0.0.63"):
                got = wait_for(lambda a=addr: listeners[a].notifies)
                assert [(n[0], n[2]) for n in got] == [(serial, False)], addr
            wait_for(lambda: [n for n in peer.notifies if n[0] == serial])
            time.sleep(1.0)
            assert listeners["127.0.0.60"].notifies == []  # the MNAME
            assert listeners["127.0.0.62"].notifies == []  # the linked peer's address
            assert [n[0] for n in peer.notifies].count(serial) == 1
            for addr in ("127.0.0.61", "127.0.0.1", "127.0.0.63"):
                assert len(listeners[addr].notifies) == 1, addr
        warned = srv.events("notify.ns_unresolvable", ns=f"gone.{other}", zone=zone_name)
        assert warned and warned[0]["level"] == "warning", warned
        sent = srv.events("notify.sent", zone=zone_name, peer=f"ns2.{zone_name}@127.0.0.61")
        assert sent and sent[-1]["result"] == "acked", sent
    finally:
        for sec in (*listeners.values(), peer):
            sec.close()


def test_owed_notify_survives_a_restart(zk_factory, zone_name: str) -> None:  # type: ignore[no-untyped-def]
    """A NOTIFY still being retried at shutdown is kept in the database and sent after the
    next start; once answered, nothing is owed any more."""
    env = {"ZONEKEEPER_NOTIFY__RETRIES": "5", "ZONEKEEPER_NOTIFY__RETRY_INTERVAL": "3",
           "ZONEKEEPER_NOTIFY__TIMEOUT": "0.3"}
    srv: ZkServer = zk_factory(demo=False, env=env).start()
    sec = FakeSecondary(addr="127.0.0.36", silent=True)
    try:
        with srv.client() as api:
            make_zone(api, zone_name)
            api.post("/peers", json={"name": "owed", "address": sec.addr, "port": sec.port})
            api.put(f"/zones/{zone_name}/peers/owed", json={"role": "secondary"})
            serial = api.put(f"/zones/{zone_name}/rrsets/n/A",
                             json={"records": [{"content": "192.0.2.1"}]}).json()["serial"]
            wait_for(lambda: (status_of(api, zone_name, "owed")["notify"] or {}).get("state")
                     == "retrying")
        assert srv.stop() == 0
        with sqlite3.connect(srv.db_path) as db:
            assert db.execute("SELECT target, serial FROM notify_owed").fetchall() == [
                ("owed", serial)]
        before = len(sec.notifies)
        sec.silent = False
        srv.start()
        with srv.client() as api:
            # In sync may come first (the stale-secondary detector asks the peer's serial);
            # the owed NOTIFY's answer follows at its next try.
            row = wait_for(lambda: (st := status_of(api, zone_name, "owed"))["state"] == "in sync"
                           and (st["notify"] or {}).get("state") == "acked" and st, timeout=20)
            assert row["notify"]["serial"] == serial
        # Sent again for that serial (a second try if the first answer came after the
        # 0.3 s try timeout on a busy machine), and for nothing else.
        assert {n[0] for n in sec.notifies[before:]} == {serial}
        assert srv.events("notify.resumed", zone=zone_name, peer="owed")
        assert srv.stop() == 0
        with sqlite3.connect(srv.db_path) as db:
            assert db.execute("SELECT count(*) FROM notify_owed").fetchone() == (0,)
    finally:
        sec.close()


def test_local_send_error_is_reported_with_its_cause(zk: ZkServer, api: httpx2.Client,
                                                     zone_name: str) -> None:
    """A NOTIFY that cannot leave (from 127.0.0.1, zonekeeper's source here, to a
    non-loopback address: the kernel refuses with EINVAL, nothing is sent) is reported with
    that cause, at warning level, not as a timeout."""
    make_zone(api, zone_name)
    api.post("/peers", json={"name": "nowhere", "address": "198.51.100.1", "port": 53})
    api.put(f"/zones/{zone_name}/peers/nowhere", json={"role": "secondary"})
    api.put(f"/zones/{zone_name}/rrsets/n/A", json={"records": [{"content": "192.0.2.1"}]})
    row = wait_for(lambda: (st := status_of(api, zone_name, "nowhere"))["notify"]
                   and st["notify"]["state"] == "failed" and st)
    assert row["notify"]["rcode"] == "EINVAL", row
    assert "Invalid argument" in row["notify"]["error"], row
    assert row["state"] == "unreachable"
    tries = zk.events("notify.sent", zone=zone_name, peer="nowhere", result="error")
    assert len(tries) == 4 and all(t["level"] == "warning" for t in tries), tries
    assert "Invalid argument" in str(tries[0]["error"])
    assert not zk.events("notify.sent", zone=zone_name, peer="nowhere", result="timeout")


@pytest.mark.parametrize("key_use", ["notify", "transfer"])
def test_peer_key_for_notify_or_transfers_only(zk: ZkServer, api: httpx2.Client, zone_name: str,
                                               key_use: str) -> None:
    """A peer's key may sign NOTIFY alone (its transfers are allowed by address, unsigned:
    NS1's secondaries) or transfers alone (NOTIFY unsigned); the snippets say the same."""
    made = api.post("/tsig-keys", json={"name": f"ku-{key_use}-{zone_name}"}).json()
    key = dns.tsig.Key(made["name"], made["secret"], "hmac-sha256")
    addr = "127.0.0.37" if key_use == "notify" else "127.0.0.38"
    sec = FakeSecondary(addr=addr, key=key)
    peer = f"ku-{key_use}-{zone_name.split('.')[0]}"
    try:
        make_zone(api, zone_name)
        r = api.post("/peers", json={"name": peer, "address": sec.addr, "port": sec.port,
                                     "key": made["name"], "key_use": key_use})
        assert r.status_code == 201 and r.json()["key_use"] == key_use, r.text
        api.put(f"/zones/{zone_name}/peers/{peer}", json={"role": "secondary"})
        serial = api.put(f"/zones/{zone_name}/rrsets/n/A",
                         json={"records": [{"content": "192.0.2.1"}]}).json()["serial"]
        got = wait_for(lambda: [n for n in sec.notifies if n[0] == serial])
        assert got[0][2] is (key_use == "notify")  # signed (and verified) or not
        unsigned = dns.message.make_query(zone_name, "AXFR")
        signed = dns.message.make_query(zone_name, "AXFR")
        signed.use_tsig(key)
        plain = dns.query.tcp(unsigned, "127.0.0.1", port=zk.dns_port, timeout=5, source=addr)
        keyed = dns.query.tcp(signed, "127.0.0.1", port=zk.dns_port, timeout=5, source=addr)
        assert keyed.rcode() == dns.rcode.NOERROR and keyed.answer
        if key_use == "notify":
            assert plain.rcode() == dns.rcode.NOERROR and plain.answer
        else:
            assert plain.rcode() == dns.rcode.REFUSED
        check = api.get("/acls/check", params={"zone": zone_name, "address": addr}).json()
        assert check["allowed"] is (key_use == "notify")
        bare = made["name"].rstrip(".")

        def snippet(fmt: str) -> str:
            r = api.get(f"/peers/{peer}/config", params={"zone": zone_name, "format": fmt})
            assert r.status_code == 200, r.text
            return r.text

        nsd = snippet("nsd")
        notify_ref, xfr_ref = (bare, "NOKEY") if key_use == "notify" else ("NOKEY", bare)
        assert f"allow-notify: 127.0.0.1 {notify_ref}\n" in nsd
        assert f"request-xfr: 127.0.0.1@{zk.dns_port} {xfr_ref}\n" in nsd
        bind = snippet("bind")
        assert (f'key "{bare}"' in bind) is (key_use == "transfer")
        knot = snippet("knot").split("acl:")
        assert (f"key: {bare}" in knot[0]) is (key_use == "transfer")  # the remote
        assert (f"key: {bare}" in knot[1]) is (key_use == "notify")  # the NOTIFY acl
        assert ("AXFR-MASTER-TSIG" in snippet("pdns")) is (key_use == "transfer")
        r = api.patch(f"/peers/{peer}", json={"key_use": "both"})
        assert r.status_code == 200 and r.json()["key_use"] == "both"
        assert api.patch(f"/peers/{peer}", json={"key_use": "neither"}).status_code == 422
    finally:
        sec.close()
