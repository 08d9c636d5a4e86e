"""NOTIFY out to real secondaries (issue: peers and NOTIFY).

BIND, Knot and NSD follow zones from one zonekeeper primary with an SOA refresh of a day
(retry an hour), and nothing here ever asks them to refresh: an edit that reaches them within
seconds was carried by zonekeeper's NOTIFY. A peer whose NOTIFY is turned off is the control:
it stays on the old serial until a NOTIFY is sent. Also: signed NOTIFY to secondaries that
require the key; a peer that never answers, retried on schedule and shown unreachable while
the others go on; the per-peer status (serial, lag, state) through a sequence of edits; and
the snippets of GET /peers/{peer}/config pasted verbatim into fresh servers' configs.

One zonekeeper and one process of each secondary serve the module (tests.peers); each test
adds its own zones. The secondaries take NOTIFY only from their primary's address: BIND from
its `primaries`, Knot through an `acl` with `action: notify`, NSD through `allow-notify`, all
127.0.0.1, zonekeeper's DNS listen address and so the source of its NOTIFYs.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rrset
import dns.tsig
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, make_zone
from tests.peers import (
    DUMP_SOURCE,
    Secondary,
    SecondaryZone,
    TsigKey,
    make_secondary,
    running_secondaries,
)

pytestmark = pytest.mark.interop

KINDS = ("bind", "knot", "nsd")
SOURCES = {"bind": "127.0.0.24", "knot": "127.0.0.25", "nsd": "127.0.0.26"}
SNIPPET_SOURCES = {"bind": "127.0.0.27", "knot": "127.0.0.28", "nsd": "127.0.0.29"}
BLACK_HOLE = "127.0.0.98"  # a "peer" that takes NOTIFY and never answers
# An update well inside this bound can only come from a NOTIFY: the SOA refresh is a day.
# (Secondaries pace themselves: BIND holds a refresh query up to 0.5 s after the last one,
# Knot up to 1 s after its last transfer; see bench/notify_latency.py.)
FAST = 5.0
WRONG_SECRET = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="
ZONE_TEXT = """$TTL 300
@ IN SOA ns1 hostmaster 1 86400 3600 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.2
"""


@pytest.fixture(scope="module")
def secondaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Secondary]]:
    with running_secondaries(tmp_path_factory.mktemp("notify-secondaries"),
                             {kind: SOURCES[kind] for kind in KINDS}) as peers:
        yield peers


# -- helpers ---------------------------------------------------------------------------------
def new_zone(api: httpx2.Client, prefix: str) -> tuple[str, str]:
    tag = f"{prefix}{uuid.uuid4().hex[:8]}"
    zone = f"{tag}.test."
    make_zone(api, zone, zone_text=ZONE_TEXT)
    return zone, tag


def link(api: httpx2.Client, zone: str, secs: dict[str, Secondary], tag: str,
         key: str | None = None) -> dict[str, str]:
    """Each secondary as a peer of ``zone`` (transfers from its own source); kind → peer name."""
    names = {}
    for kind, sec in secs.items():
        body: dict[str, object] = {"name": f"{kind}-{tag}", "address": sec.listen, "port": sec.port,
                                   "transfer_from": [f"{sec.source}/32"]}
        if key:
            body["key"] = key
        r = api.post("/peers", json=body)
        assert r.status_code == 201, r.text
        r = api.put(f"/zones/{zone}/peers/{kind}-{tag}", json={"role": "secondary"})
        assert r.status_code == 200, r.text
        names[kind] = f"{kind}-{tag}"
    return names


def follow(zk: ZkServer, zone: str, secs: dict[str, Secondary], key: str | None = None) -> None:
    """Configure ``zone`` on each secondary (a config reload) and wait for the first transfer."""
    for sec in secs.values():
        sec.add_zones(SecondaryZone(zone, (zk.addr, zk.dns_port), key=key))
    for sec in secs.values():
        sec.wait_serial(zone, 1, timeout=30)


def edit(api: httpx2.Client, zone: str, address: str) -> int:
    r = api.put(f"/zones/{zone}/rrsets/www/A", json={"records": [{"content": address}]})
    assert r.status_code == 200, r.text
    return int(r.json()["serial"])


def status(api: httpx2.Client, zone: str, names: dict[str, str]) -> dict[str, dict]:
    r = api.get(f"/zones/{zone}/xfr-status")
    assert r.status_code == 200, r.text
    rows = {row["peer"]: row for row in r.json()}
    return {kind: rows[name] for kind, name in names.items()}


def wait_status(api: httpx2.Client, zone: str, names: dict[str, str],
                ok: Callable[[str, dict], bool], timeout: float = 10) -> dict[str, dict]:
    """The status rows once ``ok(kind, row)`` holds for every peer."""
    deadline = time.monotonic() + timeout
    while True:
        rows = status(api, zone, names)
        if all(ok(kind, row) for kind, row in rows.items()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"xfr-status did not settle in {timeout}s: {rows}")
        time.sleep(0.1)


def notify_rcode(sec: Secondary, zone: str, serial: int, key: dns.tsig.Key | None = None) -> str:
    """Send our own NOTIFY for ``zone`` from 127.0.0.1 (where zonekeeper's come from) and
    return the answer's rcode, read from the header (a reply to a bad signature is unsigned)."""
    q = dns.message.make_query(zone, "SOA")
    q.flags = dns.flags.AA
    q.set_opcode(dns.opcode.NOTIFY)
    soa = f"ns1.{zone} hostmaster.{zone} {serial} 86400 3600 1209600 300"
    q.answer.append(dns.rrset.from_text(zone, 300, "IN", "SOA", soa))
    if key is not None:
        q.use_tsig(key)
    wire = q.to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((DUMP_SOURCE, 0))
        s.settimeout(3)
        s.sendto(wire, (sec.listen, sec.port))
        while True:
            data = s.recv(65535)
            if data[:2] == wire[:2]:
                return dns.rcode.to_text(dns.rcode.Rcode(data[3] & 0x0F))


def answer(sec: Secondary, name: str) -> list[str]:
    r = dns.query.udp(dns.message.make_query(name, "A"), sec.listen, port=sec.port, timeout=2,
                      source=DUMP_SOURCE)
    return sorted(rr.to_text() for rrset in r.answer for rr in rrset)


# -- NOTIFY carries every edit ---------------------------------------------------------------
def test_each_edit_reaches_every_secondary_by_notify(zk: ZkServer, api: httpx2.Client,
                                                     secondaries: dict[str, Secondary]) -> None:
    zone, tag = new_zone(api, "n")
    link(api, zone, secondaries, tag)
    follow(zk, zone, secondaries)
    for i in range(3):
        address = f"192.0.2.{10 + i}"
        serial = edit(api, zone, address)
        for sec in secondaries.values():
            sec.wait_serial(zone, serial, timeout=FAST)
        for kind, sec in secondaries.items():
            assert f"www.{zone} 300 in a {address}" in sec.dump(zone), kind
    # A burst, back to back: each secondary ends on the newest serial and its data.
    for i in range(5):
        serial = edit(api, zone, f"192.0.2.{20 + i}")
    for sec in secondaries.values():
        sec.wait_serial(zone, serial, timeout=FAST)
    for kind, sec in secondaries.items():
        assert answer(sec, f"www.{zone}") == ["192.0.2.24"], kind


def test_status_follows_each_peer_through_edits(zk: ZkServer, api: httpx2.Client,
                                               secondaries: dict[str, Secondary]) -> None:
    zone, tag = new_zone(api, "s")
    names = link(api, zone, secondaries, tag)
    # Linked, nothing sent or asked yet: zonekeeper cannot know what they serve.
    for row in status(api, zone, names).values():
        assert row["serial"] == 1 and row["peer_serial"] is None and row["serial_lag"] is None
        assert row["state"] == "unknown" and row["notify"] is None
    follow(zk, zone, secondaries)
    rows = wait_status(api, zone, names, lambda _k, r: r["last_transfer"] is not None)
    for kind, row in rows.items():
        last = row["last_transfer"]
        assert last["type"] == "AXFR" and last["serial"] == 1, (kind, row)

    def in_sync_at(serial: int) -> Callable[[str, dict], bool]:
        return lambda _k, r: (r["peer_serial"] == serial and r["last_transfer"] is not None
                              and r["last_transfer"]["serial"] == serial)

    for i in range(3):
        serial = edit(api, zone, f"192.0.2.{30 + i}")
        rows = wait_status(api, zone, names, in_sync_at(serial))
        for kind, row in rows.items():
            assert secondaries[kind].serial(zone) == serial, kind  # the status tells the truth
            assert row["serial"] == serial and row["serial_lag"] == 0 and row["lag_seconds"] == 0
            assert row["state"] == "in sync", (kind, row)
            sent, last = row["notify"], row["last_transfer"]
            assert sent["serial"] == serial and sent["state"] == "acked", (kind, row)
            assert sent["rcode"] == "NOERROR" and sent["attempts"] == 1, (kind, row)
            assert last["type"] == "IXFR" and last["result"] == "ok", (kind, row)
            assert last["key"] is None, (kind, row)
            assert row["checked_at"] is not None

    # NOTIFY off for NSD: BIND and Knot follow the next two edits; NSD, whose refresh timer is
    # a day, stays where it was, and the status says it is behind and by how much.
    before = serial
    r = api.patch(f"/peers/{names['nsd']}", json={"notify": False})
    assert r.status_code == 200, r.text
    for i in range(2):
        serial = edit(api, zone, f"192.0.2.{40 + i}")
        for kind in ("bind", "knot"):
            secondaries[kind].wait_serial(zone, serial, timeout=FAST)
    time.sleep(1.5)  # ample for a NOTIFY-driven refresh
    assert secondaries["nsd"].serial(zone) == before
    rows = wait_status(api, zone, names, lambda k, r: k == "nsd" or in_sync_at(serial)(k, r))
    nsd = rows["nsd"]
    assert nsd["serial"] == serial and nsd["peer_serial"] == before and nsd["serial_lag"] == 2, nsd
    assert nsd["state"] == "behind" and nsd["lag_seconds"] > 0, nsd
    assert nsd["notify"]["serial"] == before  # nothing was sent for the newer serials
    for kind in ("bind", "knot"):
        assert rows[kind]["state"] == "in sync" and rows[kind]["serial_lag"] == 0, rows[kind]

    # NOTIFY now, to NSD alone: it catches up, and so does its status.
    r = api.post(f"/zones/{zone}/notify", json={"peers": [names["nsd"]]})
    assert r.status_code == 200, r.text
    assert r.json() == [{"peer": names["nsd"], "result": "acked", "rcode": "NOERROR", "attempts": 1,
                         "serial": serial}]
    secondaries["nsd"].wait_serial(zone, serial, timeout=FAST)
    rows = wait_status(api, zone, names, in_sync_at(serial))
    assert all(row["state"] == "in sync" and row["serial_lag"] == 0 for row in rows.values()), rows
    assert api.patch(f"/peers/{names['nsd']}", json={"notify": True}).status_code == 200


# -- signed NOTIFY ---------------------------------------------------------------------------
def test_signed_notify_accepted_by_secondaries_holding_the_key(
        zk: ZkServer, api: httpx2.Client, secondaries: dict[str, Secondary]) -> None:
    zone, tag = new_zone(api, "k")
    made = api.post("/tsig-keys", json={"name": f"notify-{tag}"}).json()
    key = TsigKey(made["name"], made["algorithm"], made["secret"])
    # The peers' key is all that lets them transfer (no access rule): transfers, NOTIFYs
    # and zonekeeper's serial checks are signed with it.
    names = link(api, zone, secondaries, tag, key=made["name"])
    for kind, sec in secondaries.items():
        exported = api.get(f"/tsig-keys/{made['name']}/export", params={"format": kind})
        assert exported.status_code == 200, exported.text
        sec.add_key(key, exported.text)
    follow(zk, zone, secondaries, key=made["name"])

    serial = edit(api, zone, "192.0.2.99")
    for sec in secondaries.values():
        sec.wait_serial(zone, serial, timeout=FAST)
    rows = wait_status(api, zone, names, lambda _k, r: r["peer_serial"] == serial)
    for kind, row in rows.items():
        assert row["notify"]["state"] == "acked", (kind, row)
        assert row["notify"]["rcode"] == "NOERROR", (kind, row)
        assert row["state"] == "in sync", (kind, row)
        assert row["last_transfer"]["key"] == key.bare + ".", (kind, row)

    # They do check: from the same address, Knot and NSD refuse an unsigned NOTIFY (their
    # notify rule names the key), and all three reject one signed with a wrong secret. BIND
    # takes unsigned NOTIFY from its primary's address, so for it the log shows the key it
    # verified on zonekeeper's.
    wrong = dns.tsig.Key(key.bare + ".", WRONG_SECRET, key.algorithm)
    for kind, sec in secondaries.items():
        assert notify_rcode(sec, zone, serial + 1, wrong) == "NOTAUTH", kind
        if kind != "bind":
            assert notify_rcode(sec, zone, serial + 1) in ("REFUSED", "NOTAUTH"), kind
        assert sec.serial(zone) == serial, kind
    bind_log = secondaries["bind"].log_path.read_text(errors="replace")
    assert f"received notify for zone '{zone.rstrip('.')}': TSIG '{key.bare}'" in bind_log


# -- a peer that never answers ---------------------------------------------------------------
class BlackHole:
    """A peer that reads NOTIFYs over UDP and TCP and never answers; records each try."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.port = free_port(addr)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((addr, self.port))
        self.tcp.listen(8)
        self.tries: list[tuple[str, float, int | None]] = []  # (transport, when, serial)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _serial(wire: bytes) -> int | None:
        try:
            m = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - a try is a try, whatever it holds
            return None
        return next((rr.serial for rrset in m.answer for rr in rrset), None)

    def _run(self) -> None:
        conns: dict[socket.socket, bool] = {}  # connection → seen its message
        while not self._stop.is_set():
            ready, _, _ = select.select([self.udp, self.tcp, *conns], [], [], 0.05)
            now = time.monotonic()
            for s in ready:
                if s is self.udp:
                    self.tries.append(("udp", now, self._serial(s.recv(65535))))
                elif s is self.tcp:
                    conns[s.accept()[0]] = False
                else:
                    data = s.recv(65535)
                    if not data:
                        del conns[s]
                        s.close()
                    elif not conns[s]:
                        conns[s] = True
                        self.tries.append(("tcp", now, self._serial(data[2:])))
        for s in conns:
            s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.udp.close()
        self.tcp.close()


def test_unanswering_peer_is_retried_on_schedule_and_shown_unreachable(
        zk_factory, secondaries: dict[str, Secondary]) -> None:  # type: ignore[no-untyped-def]
    timeout, interval = 0.5, 0.8
    srv: ZkServer = zk_factory(demo=False, env={
        "ZONEKEEPER_NOTIFY__RETRIES": "2", "ZONEKEEPER_NOTIFY__RETRY_INTERVAL": str(interval),
        "ZONEKEEPER_NOTIFY__TIMEOUT": str(timeout)}).start()
    hole = BlackHole(BLACK_HOLE)
    try:
        with srv.client() as api:
            zone, tag = new_zone(api, "u")
            names = link(api, zone, secondaries, tag)
            dead = f"dead-{tag}"
            r = api.post("/peers", json={"name": dead, "address": hole.addr, "port": hole.port})
            assert r.status_code == 201, r.text
            r = api.put(f"/zones/{zone}/peers/{dead}", json={"role": "secondary"})
            assert r.status_code == 200, r.text
            names_all = {**names, "dead": dead}
            follow(srv, zone, secondaries)

            serial = edit(api, zone, "192.0.2.66")
            # The live secondaries are not held up by the dead one...
            for sec in secondaries.values():
                sec.wait_serial(zone, serial, timeout=FAST)
            row = status(api, zone, names_all)["dead"]
            # ...which is still being tried (its whole schedule takes ~4.4 s).
            assert row["notify"]["serial"] == serial, row
            assert row["notify"]["state"] in ("pending", "retrying"), row

            rows = wait_status(api, zone, names_all, lambda k, r: (
                k != "dead" or (r["notify"] or {}).get("state") == "failed"))
            row = rows["dead"]
            assert row["notify"]["attempts"] == 4 and row["notify"]["rcode"] == "TIMEOUT", row
            assert row["state"] == "unreachable" and row["peer_serial"] is None, row
            rows = wait_status(api, zone, names, lambda _k, r: r["peer_serial"] == serial)
            assert all(r["state"] == "in sync" for r in rows.values()), rows
    finally:
        hole.close()

    # The schedule: 3 UDP tries, each waiting `timeout`, `interval` then 2×`interval` apart;
    # then one TCP try. Every try carries the new serial.
    udp = [t for kind, t, s in hole.tries if kind == "udp"]
    tcp = [t for kind, t, s in hole.tries if kind == "tcp"]
    assert len(udp) == 3 and len(tcp) == 1, hole.tries
    assert {s for _k, _t, s in hole.tries} == {serial}, hole.tries
    gaps = [udp[1] - udp[0], udp[2] - udp[1], tcp[0] - udp[2]]
    expected = [timeout + interval, timeout + 2 * interval, timeout]
    for got, want in zip(gaps, expected, strict=True):
        assert want - 0.05 <= got <= want + 0.5, (gaps, expected)


# -- the generated snippets, pasted into real configs ----------------------------------------
@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "tsig"])
@pytest.mark.parametrize("kind", KINDS)
def test_generated_snippets_pasted_into_a_fresh_server_make_it_follow(
        zk: ZkServer, api: httpx2.Client, kind: str, keyed: bool, tmp_path: Path) -> None:
    """A fresh server whose config holds only the basics (listen address, control channel,
    log) gets zonekeeper's key export and the config snippets of two zones pasted in verbatim,
    one after the other, as an operator would; it must load both zones and follow their edits
    by NOTIFY."""
    zones = [new_zone(api, "c")[0] for _ in range(2)]
    tag = zones[0].split(".")[0]
    sec = make_secondary(kind, tmp_path / kind, SNIPPET_SOURCES[kind])
    peer = f"snip-{kind}-{tag}"
    # The snippet leaves the transfer source to the server. Toward 127.0.0.1 that is 127.0.0.1,
    # except for BIND, whose base config sets a server-wide transfer-source.
    source = sec.source if kind == "bind" else "127.0.0.1"
    body: dict[str, object] = {"name": peer, "address": sec.listen, "port": sec.port,
                               "transfer_from": [f"{source}/32"]}
    if keyed:
        made = api.post("/tsig-keys", json={"name": f"snip-{tag}"}).json()
        body["key"] = made["name"]
        exported = api.get(f"/tsig-keys/{made['name']}/export", params={"format": kind})
        assert exported.status_code == 200, exported.text
        sec.add_config_text(exported.text)  # "Add the key first", as the snippets say
    assert api.post("/peers", json=body).status_code == 201
    for zone in zones:
        r = api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"})
        assert r.status_code == 200, r.text
        r = api.get(f"/peers/{peer}/config", params={"zone": zone, "format": kind})
        assert r.status_code == 200, r.text
        snippet = r.text
        assert zone.rstrip(".") in snippet and "127.0.0.1" in snippet
        assert str(zk.dns_port) in snippet
        if keyed:
            assert made["name"].rstrip(".") in snippet  # by name; the secret is in the export
            assert made["secret"] not in snippet
        sec.add_config_text(snippet)
    if kind == "bind":
        # The snippets keep each zone in "secondary/<zone>.db" under BIND's directory.
        (sec.workdir / "secondary").mkdir()
    try:
        sec.start()
        sec.wait_ready()
        for zone in zones:
            sec.wait_serial(zone, 1, timeout=30)
        for i, zone in enumerate(zones):
            serial = edit(api, zone, f"192.0.2.{5 + i}")
            sec.wait_serial(zone, serial, timeout=FAST)  # by NOTIFY: the SOA refresh is a day
            assert answer(sec, f"www.{zone}") == [f"192.0.2.{5 + i}"]
            rows = wait_status(api, zone, {kind: peer},
                               lambda _k, r, s=serial: r["peer_serial"] == s)
            assert rows[kind]["state"] == "in sync", rows
            assert rows[kind]["notify"]["rcode"] == "NOERROR", rows
            if keyed:
                assert rows[kind]["last_transfer"]["key"] == made["name"], rows
    finally:
        sec.stop()


PDNS_META_KINDS = {  # PowerDNS's domain metadata kinds (its per-zone settings)
    "ALLOW-AXFR-FROM", "ALLOW-DNSUPDATE-FROM", "ALSO-NOTIFY", "AXFR-MASTER-TSIG", "AXFR-SOURCE",
    "FORWARD-DNSUPDATE", "GSS-ACCEPTOR-PRINCIPAL", "GSS-ALLOW-AXFR-PRINCIPAL", "IXFR",
    "LUA-AXFR-SCRIPT", "NOTIFY-DNSUPDATE", "NSEC3NARROW", "NSEC3PARAM", "PRESIGNED",
    "PUBLISH-CDNSKEY", "PUBLISH-CDS", "SLAVE-RENOTIFY", "SOA-EDIT", "SOA-EDIT-API",
    "SOA-EDIT-DNSUPDATE", "TSIG-ALLOW-AXFR", "TSIG-ALLOW-DNSUPDATE",
}


def test_pdns_snippet_names_the_zone_primary_and_key(zk: ZkServer, api: httpx2.Client) -> None:
    """PowerDNS is not among the servers installed for these tests (the issue's real
    secondaries are BIND, Knot and NSD), so its snippet, a list of pdnsutil commands, is
    checked for what it must say rather than run."""
    zone, tag = new_zone(api, "p")
    made = api.post("/tsig-keys", json={"name": f"pdns-{tag}"}).json()
    peer = f"pdns-{tag}"
    assert api.post("/peers", json={"name": peer, "address": "127.0.0.30", "port": 5300,
                                    "key": made["name"]}).status_code == 201
    assert api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"}).status_code == 200
    text = api.get(f"/peers/{peer}/config", params={"zone": zone, "format": "pdns"}).text
    bare, key = zone.rstrip("."), made["name"].rstrip(".")
    commands = [ln.split() for ln in text.splitlines() if ln.startswith("pdnsutil ")]
    assert ["pdnsutil", "create-secondary-zone", bare, f"127.0.0.1:{zk.dns_port}"] in commands
    assert ["pdnsutil", "set-meta", bare, "AXFR-MASTER-TSIG", key] in commands
    assert ["pdnsutil", "set-meta", bare, "IXFR", "1"] in commands  # the peer takes IXFR
    for cmd in commands:
        if cmd[1] == "set-meta":
            assert cmd[3] in PDNS_META_KINDS, cmd  # PowerDNS knows no other per-zone setting
    assert made["secret"] not in text

