"""Secondary zones against a real zonekeeper primary: first AXFR, NOTIFY-driven IXFR,
transfer now, expiry and restart (BIND, Knot and NSD primaries: tests/interop)."""

from __future__ import annotations

import time

import dns.rcode
import pytest

from tests.conftest import ZkServer, wait_for


@pytest.fixture
def pair(zk_factory):  # type: ignore[no-untyped-def]
    env = {"ZONEKEEPER_SECONDARY__EXPIRE_MIN": "2", "ZONEKEEPER_SECONDARY__RETRY_MIN": "1",
           "ZONEKEEPER_SECONDARY__REFRESH_MIN": "1"}
    primary: ZkServer = zk_factory().start()
    secondary: ZkServer = zk_factory(demo=False, env=env).start()
    return primary, secondary


def test_secondary_follows_a_primary(pair) -> None:  # type: ignore[no-untyped-def]
    primary, secondary = pair
    with primary.client() as p, secondary.client() as s:
        assert s.post("/peers", json={"name": "up", "address": "127.0.0.1", "port": primary.dns_port}).status_code == 201
        r = s.post("/zones", json={"name": "example.test", "kind": "secondary", "primaries": ["up"]})
        assert r.status_code == 201 and r.json()["state"] == "unloaded"
        # First AXFR on its own, straight after creation.
        wait_for(lambda: secondary.query("example.test", "SOA").rcode() == dns.rcode.NOERROR)
        assert secondary.serial("example.test") == primary.serial("example.test")
        assert secondary.query("www.example.test", "A").answer
        # NOTIFY from the primary drives an IXFR.
        p.post("/peers", json={"name": "down", "address": "127.0.0.1", "port": secondary.dns_port})
        p.put("/zones/example.test/peers/down", json={"role": "secondary"})
        serial = p.put("/zones/example.test/rrsets/new/A", json={"records": [{"content": "192.0.2.77"}]}).json()["serial"]
        wait_for(lambda: secondary.serial("example.test") == serial)
        assert secondary.query("new.example.test", "A").answer[0][0].address == "192.0.2.77"
        # Served first, then stored and logged.
        wait_for(lambda: "type=IXFR" in secondary.log() or '"type": "IXFR"' in secondary.log())
        # Transfer now returns its outcome; a forced full transfer says AXFR.
        out = s.post("/zones/example.test/transfer", json={}).json()
        assert out["result"] == "UPTODATE" and out["serial_after"] == serial
        out = s.post("/zones/example.test/transfer", json={"axfr": True}).json()
        assert out["result"] == "AXFR" and out["records"] > 10
        # Edits on a secondary are refused: its content comes from the primary.
        bad = s.put("/zones/example.test/rrsets/x/A", json={"records": [{"content": "192.0.2.1"}]})
        assert bad.status_code == 409
        # Restart keeps the data: served before any new transfer.
    assert secondary.stop() == 0
    primary.stop()
    secondary.start()
    assert secondary.serial("example.test") == serial
    assert secondary.query("new.example.test", "A").answer


def test_unknown_primary_peer_and_notify_from_strangers(pair) -> None:  # type: ignore[no-untyped-def]
    primary, secondary = pair
    with secondary.client() as s:
        r = s.post("/zones", json={"name": "x.test", "kind": "secondary", "primaries": ["nobody"]})
        assert r.status_code == 404 and "nobody" in r.json()["detail"]
        s.post("/peers", json={"name": "up", "address": "127.0.0.9", "port": primary.dns_port})
        s.post("/zones", json={"name": "example.test", "kind": "secondary", "primaries": ["up"]})
    import dns.message
    import dns.opcode
    import dns.query

    q = dns.message.make_query("example.test", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    r = dns.query.udp(q, "127.0.0.1", port=secondary.dns_port, timeout=5)
    assert r.rcode() == dns.rcode.REFUSED  # we are not 127.0.0.9
    q2 = dns.message.make_query("other.test", "SOA")
    q2.set_opcode(dns.opcode.NOTIFY)
    assert dns.query.udp(q2, "127.0.0.1", port=secondary.dns_port, timeout=5).rcode() == dns.rcode.NOTAUTH


def test_expiry_gives_servfail_until_a_refresh_succeeds(pair) -> None:  # type: ignore[no-untyped-def]
    primary, secondary = pair
    with primary.client() as p, secondary.client() as s:
        # Short timers on the primary's SOA (clamped by the secondary's minimums above).
        p.patch("/zones/example.test", json={"soa": {"refresh": 1, "retry": 1, "expire": 2}})
        s.post("/peers", json={"name": "up", "address": "127.0.0.1", "port": primary.dns_port})
        s.post("/zones", json={"name": "example.test", "kind": "secondary", "primaries": ["up"]})
        wait_for(lambda: secondary.query("example.test", "SOA").rcode() == dns.rcode.NOERROR)
        primary.stop()
        wait_for(lambda: secondary.query("example.test", "SOA").rcode() == dns.rcode.SERVFAIL, timeout=15)
        out = s.post("/zones/example.test/transfer", json={}).json()
        assert out["result"] == "FAILED" and "up:" in out["error"]
        status = s.get("/zones/example.test/xfr-status").json()[0]["primary_status"]
        assert status["last_error"]["error"]
        primary.start()
        out = s.post("/zones/example.test/transfer", json={}).json()
        assert out["result"] in ("UPTODATE", "IXFR", "AXFR")
        assert secondary.query("example.test", "SOA").rcode() == dns.rcode.NOERROR


def test_first_transfer_retried_soon_when_the_primary_is_not_ready(pair) -> None:  # type: ignore[no-untyped-def]
    """A new secondary whose primary does not serve the zone yet: no SOA gives it a retry
    interval, so it backs off from [secondary] retry_min (1 s here), not the 600 s default,
    and loads soon after the primary does."""
    primary, secondary = pair
    with primary.client() as p, secondary.client() as s:
        assert s.post("/peers", json={"name": "early", "address": "127.0.0.1",
                                      "port": primary.dns_port}).status_code == 201
        r = s.post("/zones", json={"name": "late.test", "kind": "secondary", "primaries": ["early"]})
        assert r.status_code == 201, r.text
        wait_for(lambda: "late.test" in secondary.log() and "failed" in secondary.log(), timeout=10)
        time.sleep(2)  # a couple of failed refreshes
        assert secondary.query("late.test", "SOA").rcode() == dns.rcode.SERVFAIL
        r = p.post("/zones", json={"name": "late.test", "nameservers": ["ns1.example.net."]})
        assert r.status_code == 201, r.text
        # Transfers allowed by a rule, not a peer: no NOTIFY comes to hurry the secondary.
        r = p.post("/acls", json={"zone": "late.test", "action": "transfer", "network": "127.0.0.0/8"})
        assert r.status_code == 201, r.text
        started = time.monotonic()
        wait_for(lambda: secondary.query("late.test", "SOA").rcode() == dns.rcode.NOERROR, timeout=30)
        assert time.monotonic() - started < 30
        assert secondary.serial("late.test") == primary.serial("late.test")


def test_a_transfer_that_cannot_be_stored_is_not_kept(pair) -> None:  # type: ignore[no-untyped-def]
    """A received version is served at once and stored next; when the write fails (here
    another process holds the database's write lock past the busy timeout), the stored
    version is served again, the outcome says why, and no NOTIFY, journal or serial moved.
    Once the lock is gone, the next refresh installs the new version by IXFR."""
    import sqlite3

    primary, secondary = pair
    with primary.client() as p, secondary.client() as s:
        assert s.post("/peers", json={"name": "up", "address": "127.0.0.1",
                                      "port": primary.dns_port}).status_code == 201
        assert s.post("/zones", json={"name": "example.test", "kind": "secondary",
                                      "primaries": ["up"]}).status_code == 201
        wait_for(lambda: secondary.query("example.test", "SOA").rcode() == dns.rcode.NOERROR)
        before = secondary.serial("example.test")
        serial = p.put("/zones/example.test/rrsets/stored/A",
                       json={"records": [{"content": "192.0.2.99"}]}).json()["serial"]
        lock = sqlite3.connect(secondary.db_path, timeout=30, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            out = s.post("/zones/example.test/transfer", json={}, timeout=60).json()
            assert out["result"] == "FAILED" and "could not be stored" in out["error"], out
            assert out["serial_after"] == before, out
            assert secondary.serial("example.test") == before
            assert secondary.query("stored.example.test", "A").rcode() == dns.rcode.NXDOMAIN
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        out = s.post("/zones/example.test/transfer", json={}, timeout=60).json()
        assert out["result"] == "IXFR" and out["serial_after"] == serial, out
        assert secondary.serial("example.test") == serial
        assert secondary.query("stored.example.test", "A").answer
        assert secondary.events("xfr.in.store_failed", zone="example.test.")


def test_a_secondary_serves_and_notifies_its_own_secondaries(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """zonekeeper as a middle tier: A (primary) -> B (secondary of A) -> C (secondary of B).
    An edit on A reaches C through B's NOTIFY, and C's IXFR is served from the journal B
    wrote for the transfer it received."""
    env = {"ZONEKEEPER_SECONDARY__RETRY_MIN": "1", "ZONEKEEPER_SECONDARY__REFRESH_MIN": "1"}
    a: ZkServer = zk_factory().start()
    b: ZkServer = zk_factory(demo=False, env=env).start()
    c: ZkServer = zk_factory(demo=False, env=env).start()
    zone = "example.test"
    with a.client() as pa, b.client() as pb, c.client() as pc:
        def link(api, name: str, srv: ZkServer, role: str | None = None) -> None:  # type: ignore[no-untyped-def]
            assert api.post("/peers", json={"name": name, "address": "127.0.0.1",
                                            "port": srv.dns_port}).status_code == 201
            if role:
                r = api.put(f"/zones/{zone}/peers/{name}", json={"role": role})
                assert r.status_code == 200, r.text

        link(pb, "a", a)
        assert pb.post("/zones", json={"name": zone, "kind": "secondary",
                                       "primaries": ["a"]}).status_code == 201
        link(pb, "c", c, "secondary")  # B notifies C and lets it transfer
        link(pc, "b", b)
        assert pc.post("/zones", json={"name": zone, "kind": "secondary",
                                       "primaries": ["b"]}).status_code == 201
        link(pa, "b", b, "secondary")
        wait_for(lambda: c.query(zone, "SOA").rcode() == dns.rcode.NOERROR, timeout=20)
        first = a.serial(zone)
        wait_for(lambda: c.serial(zone) == first, timeout=20)

        serial = pa.put(f"/zones/{zone}/rrsets/tier/A",
                        json={"records": [{"content": "192.0.2.42"}]}).json()["serial"]
        wait_for(lambda: c.serial(zone) == serial, timeout=20)
        assert c.query(f"tier.{zone}", "A").answer[0][0].address == "192.0.2.42"
        wait_for(lambda: c.events("xfr.in", result="ok", serial=serial))
        ev = c.events("xfr.in", result="ok", serial=serial)[-1]
        assert ev["type"] == "IXFR" and ev["serial_from"] == first, ev
        served = b.events("xfr.out", zone=f"{zone}.", type="IXFR")
        assert any(e.get("serial") == serial for e in served), served
        assert b.events("notify.received", zone=f"{zone}.", result="accepted")
        assert c.events("notify.received", zone=f"{zone}.", result="accepted")
        rows = pb.get(f"/zones/{zone}/xfr-status").json()
        down = next(r for r in rows if r["peer"] == "c")
        wait_for(lambda: next(r for r in pb.get(f"/zones/{zone}/xfr-status").json()
                              if r["peer"] == "c")["state"] == "in sync", timeout=20)
        assert down["notify"], down
