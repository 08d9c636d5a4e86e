"""Several ``zonekeeper serve`` nodes on one PostgreSQL database (issue 23): real processes
on the suite's PostgreSQL server (tests/conftest.py ``pg_server``), asked with dnspython
over real sockets, a real Knot secondary.

An edit on one node is served by the others (queries, AXFR, IXFR equal); keys, rules,
settings, deletions and a deleted API token too; the leader killed with SIGKILL during a stream of edits, and
the Knot secondary linked to the zone still ends at the last acknowledged serial; a node
whose database connection is cut, or that is restarted, during edits catches up; an
API-only node edits and a DNS-only node serves; a second node on one SQLite file is refused.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, require_tool
from tests.conftest import wait_for as conftest_wait_for
from tests.integration.test_cli import zk_cli
from tests.peers import KnotSecondary, SecondaryZone, axfr_lines
from zonekeeper.services.tokens import RECHECK

pytestmark = [pytest.mark.xdist_group("multinode")]

wait_for = partial(conftest_wait_for, timeout=15.0)
KNOT_ADDR = "127.0.0.71"  # the Knot secondary's address (and its transfers' source)

ZONE_HEAD = """$TTL 300
@ SOA ns1 hostmaster 1 86400 3600 1209600 300
@ NS ns1
ns1 A 192.0.2.1
"""


def node(zk_factory, database: str, *args: str, **kw: object) -> ZkServer:  # type: ignore[no-untyped-def]
    """A node on ``database`` (its own ports and directory), not started."""
    return zk_factory(demo=False, database=database, extra_args=list(args), **kw)  # type: ignore[no-any-return]


def ready(srv: ZkServer) -> dict[str, object]:
    return httpx2.get(srv.api_url + "/readyz", timeout=10).json()  # type: ignore[no-any-return]


def served_serial(srv: ZkServer, zone: str) -> int | None:
    r = srv.query(zone, "SOA")
    return r.answer[0][0].serial if r.rcode() == dns.rcode.NOERROR and r.answer else None


def axfr(srv: ZkServer, zone: str) -> list[str]:
    return axfr_lines(srv.addr, srv.dns_port, zone)


def axfr_or_none(srv: ZkServer, zone: str) -> list[str] | None:
    """The zone by AXFR, or None while it is refused."""
    try:
        return axfr(srv, zone)
    except dns.query.TransferError:
        return None


def ixfr_lines(srv: ZkServer, zone: str, serial: int) -> list[str]:
    msgs = dns.query.xfr(srv.addr, zone, rdtype=dns.rdatatype.IXFR, serial=serial,
                         port=srv.dns_port, relativize=False, timeout=10)
    return [rr for m in msgs for rrset in m.answer for rr in rrset.to_text().splitlines()]


def new_zone(srv: ZkServer, filler: int = 50) -> str:
    zone = f"mn-{uuid.uuid4().hex[:8]}.test."
    text = ZONE_HEAD + "".join(f"h{i} TXT \"filler {i}\"\n" for i in range(filler))
    with srv.client() as api:
        r = api.post("/zones", json={"name": zone, "zone_text": text})
        assert r.status_code == 201, r.text
        r = api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.0/8"})
        assert r.status_code == 201, r.text
    return zone


def put_a(api: httpx2.Client, zone: str, name: str, address: str) -> int:
    r = api.put(f"/zones/{zone}/rrsets/{name}/A", json={"records": [{"content": address}]})
    assert r.status_code == 200, r.text
    return r.json()["serial"]  # type: ignore[no-any-return]


class EditStream:
    """One client thread editing a zone through a node's API as fast as it answers: each
    edit a new A record ``e{k}``; the serials acknowledged are kept. Failed requests (the
    node gone) are counted, not retried."""

    def __init__(self, srv: ZkServer, zone: str, count: int, prefix: str = "e") -> None:
        self.srv, self.zone, self.count, self.prefix = srv, zone, count, prefix
        self.acked: list[int] = []
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.srv.client() as api:
            for k in range(self.count):
                try:
                    self.acked.append(put_a(api, self.zone, f"{self.prefix}{k}", f"10.0.{k >> 8}.{k & 255}"))
                except (httpx2.HTTPError, AssertionError):
                    self.errors += 1
                    time.sleep(0.05)

    def start(self) -> EditStream:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(120)
        assert not self.thread.is_alive()


@pytest.fixture
def db(pg_url: str) -> str:
    return pg_url


def test_an_edit_on_one_node_is_served_by_the_others(zk_factory, db: str) -> None:  # type: ignore[no-untyped-def]
    a = node(zk_factory, db).start()
    b = node(zk_factory, db).start()
    zone = new_zone(a)
    first = a.serial(zone)
    wait_for(lambda: served_serial(b, zone) == first, what="B serves the zone created on A")
    with a.client() as api:
        for i in range(5):
            serial = put_a(api, zone, "www", f"192.0.2.{10 + i}")
            # Within a second (and long before this bound).
            wait_for(lambda s=serial: served_serial(b, zone) == s, timeout=5,
                     what=f"B serves serial {serial}")
            assert b.query(f"www.{zone}", "A").answer[0][0].address == f"192.0.2.{10 + i}"
        r = api.delete(f"/zones/{zone}/rrsets/h7/TXT")
        assert r.status_code in (200, 204), r.text
        serial = a.serial(zone)
    wait_for(lambda: served_serial(b, zone) == serial, what="B serves the deletion")
    assert b.query(f"h7.{zone}", "TXT").rcode() == dns.rcode.NXDOMAIN
    # The same zone by AXFR, and the same differences by IXFR, from either node.
    assert axfr(b, zone) == axfr(a, zone)
    for since in (first, first + 3):
        assert ixfr_lines(b, zone, since) == ixfr_lines(a, zone, since)
    # An edit on B is served by A: either node takes edits.
    with b.client() as api:
        serial = put_a(api, zone, "from-b", "192.0.2.99")
    wait_for(lambda: served_serial(a, zone) == serial, what="A serves B's edit")
    assert axfr(b, zone) == axfr(a, zone)
    # Settings and access rules: outgoing transfers off on A, refused by B too.
    with a.client() as api:
        r = api.patch(f"/zones/{zone}", json={"outgoing_enabled": False})
        assert r.status_code == 200, r.text

    def b_refuses() -> bool:
        try:
            axfr(b, zone)
        except dns.query.TransferError as exc:
            return exc.rcode == dns.rcode.REFUSED
        return False

    wait_for(b_refuses, what="B refuses AXFR once outgoing transfers are off")
    with a.client() as api:
        assert api.patch(f"/zones/{zone}", json={"outgoing_enabled": True}).status_code == 200
        wait_for(lambda: axfr_or_none(b, zone) == axfr(a, zone), what="B transfers again")
        rules = [x for x in api.get("/acls").json()["items"] if x["zone"] == zone]
        for rule in rules:
            assert api.delete(f"/acls/{rule['id']}").status_code == 204
    wait_for(b_refuses, what="B refuses AXFR once the allow rule is gone")
    # /readyz and zone status: each node's role, serial served, and who leads.
    for srv in (a, b):
        body = ready(srv)
        assert body["role"] == "all" and body["serials"][zone] == serial, body
        assert body["leader"]["held"] and body["leader"]["name"] == ready(a)["node"]["name"]
    assert ready(a)["leading"] and not ready(b)["leading"]
    with b.client() as api:
        served = api.get(f"/zones/{zone}/served").json()
    assert served["serial"] == served["stored_serial"] == serial and not served["leading"]
    out = zk_cli(b, "zone", "status", zone)
    assert out.returncode == 0, out.stderr
    name_a, name_b = ready(a)["node"]["name"], ready(b)["node"]["name"]
    assert (f"node {name_b} (role all) serves serial {serial} (stored {serial}); "
            f"leader: {name_a}") in out.stderr
    # A zone deleted on A is gone from B.
    with a.client() as api:
        assert api.delete(f"/zones/{zone}").status_code == 204
    wait_for(lambda: b.query(zone, "SOA").rcode() == dns.rcode.REFUSED,
             what="B no longer serves the deleted zone")
    assert b.events("zone.synced", zone=zone)
    # A token deleted on A is refused by B at once: B checked it against the database at
    # its first use, and would take it from memory for RECHECK seconds without A's
    # announcement.
    with a.client() as api:
        made = api.post("/tokens", json={"name": "short-lived", "scopes": ["read"]}).json()
    with b.client(token=made["token"]) as c:
        first_use = time.monotonic()
        assert c.get("/zones").status_code == 200
        with a.client() as api:
            assert api.delete(f"/tokens/{made['id']}").status_code == 204
        wait_for(lambda: c.get("/zones").status_code == 401, timeout=5,
                 what="B refuses the token deleted on A")
        assert time.monotonic() - first_use < RECHECK


def test_concurrent_edits_on_two_nodes_lose_nothing(zk_factory, db: str) -> None:  # type: ignore[no-untyped-def]
    """Both nodes edit one zone at once: each write may find its node behind the other's
    last commit; it builds on the stored version, so every edit is served by both."""
    a = node(zk_factory, db).start()
    b = node(zk_factory, db).start()
    zone = new_zone(a)
    start = a.serial(zone)
    wait_for(lambda: served_serial(b, zone) == start)
    streams = [EditStream(a, zone, 100, "a").start(), EditStream(b, zone, 100, "b").start()]
    for st in streams:
        st.join()
        assert st.errors == 0
    last = start + 200
    assert max(max(st.acked) for st in streams) == last
    wait_for(lambda: served_serial(a, zone) == served_serial(b, zone) == last)
    lines = axfr(a, zone)
    assert lines == axfr(b, zone)
    owners = {ln.split()[0] for ln in lines}
    assert {f"{p}{k}.{zone}".lower() for p in "ab" for k in range(100)} <= owners
    assert ixfr_lines(a, zone, start) == ixfr_lines(b, zone, start)


def test_secondary_zone_refreshed_by_the_leader_alone_and_served_by_all(zk_factory, db: str) -> None:  # type: ignore[no-untyped-def]
    """A secondary zone: the leader transfers it, the other node serves what was installed;
    a NOTIFY the other node receives is passed to the leader; "transfer now" there is 409."""
    primary = zk_factory().start()  # SQLite, the demo zone, transfers from loopback
    zone = "example.test."
    a = node(zk_factory, db).start()
    wait_for(lambda: ready(a)["leading"])
    b = node(zk_factory, db).start()
    with b.client() as api:
        r = api.post("/peers", json={"name": "up", "address": "127.0.0.1",
                                     "port": primary.dns_port})
        assert r.status_code == 201, r.text
        r = api.post("/zones", json={"name": zone, "kind": "secondary", "primaries": ["up"]})
        assert r.status_code == 201, r.text
    first = primary.serial(zone)
    wait_for(lambda: served_serial(b, zone) == first, what="B serves what A transferred")
    assert served_serial(a, zone) == first
    with primary.client() as p:
        r = p.post("/peers", json={"name": "follower", "address": "127.0.0.1",
                                   "port": b.dns_port})
        assert r.status_code == 201, r.text
        assert p.put(f"/zones/{zone}/peers/follower", json={"role": "secondary"}).status_code == 200
        r = p.put(f"/zones/{zone}/rrsets/fresh/A", json={"records": [{"content": "192.0.2.77"}]})
        serial = r.json()["serial"]
    # The SOA refresh is an hour: only the NOTIFY sent to B, passed to A, brings it.
    wait_for(lambda: served_serial(b, zone) == serial, what="B serves the primary's edit")
    assert b.query(f"fresh.{zone}", "A").answer[0][0].address == "192.0.2.77"
    assert a.events("cluster.refresh_asked", zone=zone)
    wait_for(lambda: a.events("xfr.in", result="ok", serial=serial), what="A logged the transfer")
    assert not b.events("xfr.in")  # never transferred twice
    with b.client() as api:
        r = api.post(f"/zones/{zone}/transfer")
        assert r.status_code == 409 and "does not lead" in r.text, r.text
        r = api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.0/8"})
        assert r.status_code == 201, r.text
    wanted = axfr(primary, zone)
    wait_for(lambda: axfr_or_none(a, zone) == wanted, what="A's copy transferred out")
    assert axfr(b, zone) == wanted


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotSecondary]:
    require_tool("knotd", "knot")
    require_tool("knotc", "knot")
    sec = KnotSecondary(tmp_path_factory.mktemp("knot"), addr=KNOT_ADDR,
                        port=free_port(KNOT_ADDR))
    try:
        sec.start().wait_ready()
        yield sec
    finally:
        sec.stop()


@pytest.mark.interop
def test_leader_killed_during_edits_secondary_ends_at_last_serial(
        zk_factory, db: str, knot: KnotSecondary) -> None:  # type: ignore[no-untyped-def]
    leader = node(zk_factory, db).start()
    wait_for(lambda: ready(leader)["leading"], what="the first node leads")
    editor = node(zk_factory, db).start()
    dns_node = node(zk_factory, db, "--role", "dns").start()
    zone = new_zone(editor)
    with editor.client() as api:
        r = api.post("/peers", json={"name": "knot", "address": KNOT_ADDR, "port": knot.port,
                                     "transfer_from": [f"{KNOT_ADDR}/32"], "notify": True})
        assert r.status_code == 201, r.text
        r = api.put(f"/zones/{zone}/peers/knot", json={"role": "secondary"})
        assert r.status_code in (200, 201), r.text
    # Knot transfers from the DNS-only node; NOTIFY comes from whichever node leads.
    wait_for(lambda: served_serial(dns_node, zone) == editor.serial(zone))
    knot.add_zones(SecondaryZone(zone, (dns_node.addr, dns_node.dns_port)))
    knot.wait_serial(zone, editor.serial(zone))
    stream = EditStream(editor, zone, 300).start()
    wait_for(lambda: len(stream.acked) >= 100, timeout=60, what="100 edits acknowledged")
    assert leader.proc is not None
    leader.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    leader.proc.wait()

    def new_leader() -> ZkServer | None:
        return next((s for s in (editor, dns_node) if ready(s)["leading"]), None)

    took_over = wait_for(new_leader, timeout=10, what="another node leads")
    failover = time.monotonic() - killed
    assert failover < 5, failover
    stream.join()
    assert stream.errors == 0 and len(stream.acked) == 300
    last = stream.acked[-1]
    assert last == max(stream.acked)
    wait_for(lambda: served_serial(dns_node, zone) == last, what="the DNS node serves the last edit")
    # No refresh by Knot's timers (a day): the new leader's NOTIFY brings it there.
    knot.wait_serial(zone, last, timeout=30)
    assert axfr(dns_node, zone) == axfr(editor, zone)
    assert took_over.events("cluster.leading")
    assert ready(editor)["leader"]["name"] == ready(took_over)["node"]["name"]
    print(f"failover {failover:.2f} s")


def test_node_cut_off_or_restarted_during_edits_catches_up(zk_factory, db: str,  # type: ignore[no-untyped-def]
                                                           pg_server) -> None:
    a = node(zk_factory, db).start()
    b = node(zk_factory, db).start()
    zone = new_zone(a)
    wait_for(lambda: served_serial(b, zone) == a.serial(zone))
    name_b = ready(b)["node"]["name"]
    stream = EditStream(a, zone, 200).start()
    wait_for(lambda: len(stream.acked) >= 50, timeout=60)
    # Cut B's own connection to the database (it listens and would lead on it).
    with pg_server.connect() as conn:
        cut = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s", (f"zonekeeper {name_b}",)).fetchone()[0]
    assert cut == 1
    wait_for(lambda: b.events("cluster.disconnected"), what="B sees its connection cut")
    wait_for(lambda: len(stream.acked) >= 100, timeout=60)
    # B killed and started again while the edits go on.
    assert b.proc is not None
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    time.sleep(0.5)
    b.start()
    stream.join()
    assert stream.errors == 0
    last = stream.acked[-1]
    wait_for(lambda: served_serial(b, zone) == last, what="B catches up with A")
    assert axfr(b, zone) == axfr(a, zone)
    assert ixfr_lines(b, zone, stream.acked[0]) == ixfr_lines(a, zone, stream.acked[0])
    resynced = b.events("cluster.resynced")
    assert len(resynced) >= 2, resynced  # after the cut, and at the restart


def test_a_deposed_leader_cannot_install_a_transfer(zk_factory, db: str, pg_server) -> None:  # type: ignore[no-untyped-def]
    """The install of a transferred zone checks the leader's term in its own transaction:
    once another term is stored, this node's refresh fails and nothing is installed."""
    primary = zk_factory().start()  # SQLite, the demo zone, transfers from loopback
    zone = "example.test."
    a = node(zk_factory, db).start()
    wait_for(lambda: ready(a)["leading"])
    with a.client() as api:
        assert api.post("/peers", json={"name": "up", "address": "127.0.0.1",
                                        "port": primary.dns_port}).status_code == 201
        r = api.post("/zones", json={"name": zone, "kind": "secondary", "primaries": ["up"]})
        assert r.status_code == 201, r.text
    first = primary.serial(zone)
    wait_for(lambda: served_serial(a, zone) == first)
    with primary.client() as p:
        put_a(p, zone, "fresh", "192.0.2.78")
    # Another term begins (as when another node takes the lead) while A still believes it
    # leads.
    with pg_server.connect(db.rsplit("/", 1)[1]) as conn:
        conn.execute("UPDATE cluster_leader SET epoch = epoch + 1")
    with a.client() as api:
        out = api.post(f"/zones/{zone}/transfer").json()
    assert out["result"] == "FAILED" and "does not lead" in out["error"], out
    assert served_serial(a, zone) == first
    with a.client() as api:
        assert api.get(f"/zones/{zone}").json()["serial"] == first


def test_leader_cut_off_hands_over_and_follows(zk_factory, db: str, pg_server) -> None:  # type: ignore[no-untyped-def]
    """The leader's own connection cut (pg_terminate_backend): another node leads within
    seconds; the cut node reconnects, resynchronises and follows."""
    a = node(zk_factory, db).start()
    wait_for(lambda: ready(a)["leading"])
    b = node(zk_factory, db).start()
    zone = new_zone(b)
    with pg_server.connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = %s", (f"zonekeeper {ready(a)['node']['name']}",))
    cut = time.monotonic()
    wait_for(lambda: ready(b)["leading"], timeout=5, what="B leads")
    assert time.monotonic() - cut < 5
    with b.client() as api:
        serial = put_a(api, zone, "after-cut", "192.0.2.5")
    wait_for(lambda: served_serial(a, zone) == serial, what="A follows again")
    body = ready(a)
    assert not body["leading"] and body["leader"]["name"] == ready(b)["node"]["name"]
    assert a.events("cluster.not_leading") and len(a.events("cluster.resynced")) >= 2


def test_api_only_node_edits_and_dns_only_node_serves(zk_factory, db: str) -> None:  # type: ignore[no-untyped-def]
    api_node = node(zk_factory, db, "--role", "api").start()
    dns_node = node(zk_factory, db, "--role", "dns").start()
    zone = new_zone(api_node)
    with api_node.client() as api:
        serial = put_a(api, zone, "www", "192.0.2.44")
    wait_for(lambda: served_serial(dns_node, zone) == serial, what="the DNS node serves the edit")
    assert dns_node.query(f"www.{zone}", "A").answer[0][0].address == "192.0.2.44"
    # The API node answers no DNS; the DNS node has no API but its health checks.
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(dns.message.make_query(zone, "SOA"), api_node.addr,
                      port=api_node.dns_port, timeout=1)
    with dns_node.client() as api:
        assert api.get("/zones").status_code == 404
    body = ready(dns_node)
    assert body["role"] == "dns" and body["serials"][zone] == serial
    # An API-only node never leads: the DNS node does.
    assert body["leading"] and not ready(api_node)["leading"]
    assert ready(api_node)["leader"]["name"] == body["node"]["name"]


def test_a_link_to_a_catalogs_member_peer_is_served_by_every_node(zk_factory, db: str) -> None:  # type: ignore[no-untyped-def]
    """A zone linked on one node to a catalog's member peer: the catalog's new version (the
    member's PTR, one serial more) is served by the other node too, and so is its removal."""
    a = node(zk_factory, db).start()
    b = node(zk_factory, db).start()
    zone = new_zone(a)
    tag = zone.split(".")[0]
    catalog = f"cat-{tag}.test."
    with a.client() as api:
        api.post("/peers", json={"name": "mp-" + tag, "address": "127.0.0.1",
                                 "notify": False}).raise_for_status()
        r = api.post("/zones", json={"name": catalog, "kind": "catalog", "member_peer": "mp-" + tag})
        assert r.status_code == 201, r.text
        serial = r.json()["serial"]
    wait_for(lambda: served_serial(b, catalog) == serial, what="node b serves the catalog")
    with b.client() as api:
        api.put(f"/zones/{zone}/peers/mp-{tag}").raise_for_status()
        member = [m["id"] for m in api.get(f"/zones/{catalog}/members").json()["items"]]
    assert len(member) == 1
    owner = f"{member[0]}.zones.{catalog}"
    for srv in (a, b):
        wait_for(lambda srv=srv: served_serial(srv, catalog) == serial + 1,  # type: ignore[misc]
                 what=f"{srv.workdir.name} serves the catalog with the member")
        assert [rd.to_text() for rd in srv.query(owner, "PTR").answer[0]] == [zone]
    with a.client() as api:
        assert api.delete(f"/zones/{zone}/peers/mp-{tag}").status_code == 204
    for srv in (a, b):
        wait_for(lambda srv=srv: served_serial(srv, catalog) == serial + 2,  # type: ignore[misc]
                 what=f"{srv.workdir.name} serves the catalog without the member")
        assert srv.query(owner, "PTR").rcode() == dns.rcode.NXDOMAIN


def test_a_second_node_on_one_sqlite_file_is_refused(zk_factory) -> None:  # type: ignore[no-untyped-def]
    first = zk_factory(demo=False).start()
    second = zk_factory(demo=False, database=first.database)
    with pytest.raises(RuntimeError, match="in use by another zonekeeper serve"):
        second.start()
    assert second.proc is not None and second.proc.returncode == 1
    assert "SQLite serves one node" in second.log()
    assert first.stop() == 0
    second.start()  # the file is free again
    assert second.stop() == 0
