"""zonekeeper on PostgreSQL: real ``zonekeeper serve`` processes on a real PostgreSQL server
(tests/conftest.py's ``pg_server``, one per session; every test has its own database),
asked with dnspython over real sockets.

A primary zone's edits, queries, AXFR and IXFR from the journal, before and after a
restart; a PostgreSQL-backed secondary of a SQLite-backed primary; the schema created and
migrated by Alembic; writers queued by the write lock, and a held lock answered with 503."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from functools import partial

import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest
from sqlalchemy import make_url, select, text

from tests.conftest import ZkServer, make_zone
from tests.conftest import wait_for as conftest_wait_for
from tests.schema_cases import (
    at_0001_with_a_secondary,
    catalog_member_peer_added,
    ids_never_reused,
    nodes_keyed_by_sort_key,
    notify_owed_kept,
    peer_key_use_kept,
    primary_images_downgraded,
    rrset_owners_lowered,
    rrsets_zone_index_dropped,
    xot_flags_added,
)
from zonekeeper.storage.db import SCHEMA_HEAD, WRITE_LOCK_KEY, Database, SchemaError
from zonekeeper.storage.models import Zone

# Conditions here get 15 s unless a call says otherwise.
wait_for = partial(conftest_wait_for, timeout=15.0)


def axfr(srv: ZkServer, zone: str) -> dns.zone.Zone:
    z = dns.zone.Zone(zone)
    dns.query.inbound_xfr(srv.addr, z, port=srv.dns_port, timeout=10, lifetime=30)
    return z


def ixfr_lines(srv: ZkServer, zone: str, serial: int) -> list[str]:
    """The records of an IXFR from ``serial``, one presentation line each, in order."""
    msgs = dns.query.xfr(srv.addr, zone, rdtype=dns.rdatatype.IXFR, serial=serial,
                         port=srv.dns_port, relativize=False, timeout=10)
    return [rr for m in msgs for rrset in m.answer for rr in rrset.to_text().splitlines()]


def soa_serials(lines: list[str]) -> list[int]:
    return [int(x.split()[6]) for x in lines if " SOA " in x]


def ixfr_diff(lines: list[str]) -> tuple[set[str], set[str]]:
    """(removed, added) of a one-changeset IXFR answer: SOA new, SOA old, removed, SOA new,
    added, SOA new."""
    soas = [i for i, x in enumerate(lines) if " SOA " in x]
    assert len(soas) == 4, lines
    return set(lines[soas[1] + 1 : soas[2]]), set(lines[soas[2] + 1 : soas[3]])


def test_primary_zone_edits_transfers_and_restart(zk_factory, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    zone = "pg.test."
    srv: ZkServer = zk_factory(demo=False, database=pg_url).start()
    # No quick start on PostgreSQL: nothing kept (the URL may hold a password).
    assert not list((srv.workdir / "cache").rglob("*.json"))
    # A zone big enough for a multi-message AXFR and a few hundred KB of node blobs.
    text_ = [f"$ORIGIN {zone}", "$TTL 300", "@ SOA ns1 host 10 3600 900 1209600 300", "@ NS ns1",
             "ns1 A 192.0.2.1", "www A 192.0.2.80"]
    text_ += [f"h{i} TXT \"{i:05d} {'x' * 200}\"" for i in range(1500)]
    with srv.client() as api:
        make_zone(api, zone, zone_text="\n".join(text_) + "\n")
        r = api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.1/32"})
        assert r.status_code == 201, r.text
        start = srv.serial(zone)
        serials = [start]
        for body in ({"records": [{"content": "192.0.2.81"}]},
                     {"records": [{"content": "192.0.2.82"}, {"content": "192.0.2.83"}]}):
            r = api.put(f"/zones/{zone}/rrsets/www/A", json=body)
            assert r.status_code == 200, r.text
            serials.append(r.json()["serial"])
        r = api.delete(f"/zones/{zone}/rrsets/h7/TXT")
        assert r.status_code in (200, 204), r.text
        serials.append(srv.serial(zone))
        # Each edit is one serial step, stored (read back through the API) and served.
        assert serials == [start, start + 1, start + 2, start + 3]
        assert api.get(f"/zones/{zone}").json()["serial"] == start + 3
    www = srv.query(f"www.{zone}", "A")
    assert sorted(rr.address for rr in www.answer[0]) == ["192.0.2.82", "192.0.2.83"]
    assert srv.query(f"h7.{zone}", "TXT").rcode() == dns.rcode.NXDOMAIN

    def check_transfers(server: ZkServer) -> None:
        z = axfr(server, zone)
        assert z.get_soa().serial == start + 3
        assert len(z.nodes) == 1 + 2 + 1499
        assert z.get_rdataset("h1499", "TXT") is not None and z.get_node("h7") is None
        # From the first serial: the journal's three changesets, condensed into one.
        lines = ixfr_lines(server, zone, start)
        assert soa_serials(lines) == [start + 3, start, start + 3, start + 3]
        h7 = f"h7.{zone} 300 IN TXT \"00007 {'x' * 200}\""
        assert ixfr_diff(lines) == ({f"www.{zone} 300 IN A 192.0.2.80", h7},
                                    {f"www.{zone} 300 IN A 192.0.2.82",
                                     f"www.{zone} 300 IN A 192.0.2.83"})
        # From the second: the last two.
        lines = ixfr_lines(server, zone, start + 1)
        assert soa_serials(lines) == [start + 3, start + 1, start + 3, start + 3]
        assert ixfr_diff(lines)[0] == {f"www.{zone} 300 IN A 192.0.2.81", h7}

    check_transfers(srv)
    assert srv.stop() == 0
    srv.start()
    # Loaded from PostgreSQL: the same serial, content, and journal.
    assert srv.serial(zone) == start + 3
    check_transfers(srv)
    assert srv.events("xfr.out", type="IXFR")
    with srv.client() as api:
        r = api.put(f"/zones/{zone}/rrsets/after/A", json={"records": [{"content": "192.0.2.9"}]})
        assert r.status_code == 200 and r.json()["serial"] == start + 4, r.text
    assert soa_serials(ixfr_lines(srv, zone, start))[-1] == start + 4


def test_secondary_on_postgres_follows_a_sqlite_primary(zk_factory, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    env = {"ZONEKEEPER_SECONDARY__RETRY_MIN": "1", "ZONEKEEPER_SECONDARY__REFRESH_MIN": "1"}
    primary: ZkServer = zk_factory().start()  # SQLite; the demo zone, transfers from loopback
    secondary: ZkServer = zk_factory(demo=False, env=env, database=pg_url).start()
    zone = "example.test"
    with primary.client() as p, secondary.client() as s:
        assert s.post("/peers", json={"name": "up", "address": "127.0.0.1",
                                      "port": primary.dns_port}).status_code == 201
        r = s.post("/zones", json={"name": zone, "kind": "secondary", "primaries": ["up"]})
        assert r.status_code == 201 and r.json()["state"] == "unloaded", r.text
        first = primary.serial(zone)
        wait_for(lambda: secondary.events("xfr.in", result="ok", serial=first))
        assert secondary.serial(zone) == first
        # The secondary lets its own secondaries (here: us, on loopback) transfer.
        r = s.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.1/32"})
        assert r.status_code == 201, r.text
        # A NOTIFY from the primary drives an IXFR, stored with a journal entry on PG.
        assert p.post("/peers", json={"name": "down", "address": "127.0.0.1",
                                      "port": secondary.dns_port}).status_code == 201
        assert p.put(f"/zones/{zone}/peers/down", json={"role": "secondary"}).status_code == 200
        r = p.put(f"/zones/{zone}/rrsets/fresh/A", json={"records": [{"content": "192.0.2.77"}]})
        serial = r.json()["serial"]
        ev = wait_for(lambda: secondary.events("xfr.in", result="ok", serial=serial))[-1]
        assert ev["type"] == "IXFR" and ev["serial_from"] == first, ev
        assert secondary.query(f"fresh.{zone}", "A").answer[0][0].address == "192.0.2.77"
        assert s.get(f"/zones/{zone}").json()["serial"] == serial
    wanted = axfr(primary, zone)
    assert secondary.stop() == 0
    primary.stop()
    # Served from the stored image, with the primary gone.
    secondary.start()
    assert secondary.serial(zone) == serial
    assert secondary.query(f"fresh.{zone}", "A").answer[0][0].address == "192.0.2.77"
    assert axfr(secondary, zone) == wanted
    lines = ixfr_lines(secondary, zone, first)
    assert soa_serials(lines) == [serial, first, serial, serial]
    assert ixfr_diff(lines) == (set(), {f"fresh.{zone}. 3600 IN A 192.0.2.77"})


def test_empty_database_gets_the_schema_and_a_foreign_one_is_refused(pg_url: str,
                                                                      pg_server) -> None:  # type: ignore[no-untyped-def]
    db = Database(pg_url)
    try:
        assert db.current_revision() is None
        r = subprocess.run([sys.executable, "-m", "zonekeeper", "db", "upgrade", "--database",
                            pg_url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and f"schema at {SCHEMA_HEAD}" in r.stdout, r.stderr
        assert db.current_revision() == SCHEMA_HEAD
        assert db.schema_state() == (SCHEMA_HEAD, SCHEMA_HEAD)
        db.prepare(migrate=False)  # up to date: nothing to do
        with db.write_engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="newer than this zonekeeper"):
            db.prepare(migrate=False)
    finally:
        db.dispose()
    other = Database(pg_server.create_database())
    try:
        with other.write_engine.begin() as conn:
            conn.execute(text("CREATE TABLE other (x INTEGER)"))
        with pytest.raises(SchemaError, match="no zonekeeper schema version"):
            other.prepare(migrate=False)
    finally:
        other.dispose()


def test_0002_moves_secondary_zones_into_images(pg_url: str) -> None:
    """Alembic to 0001, a secondary zone stored one row per owner, then 0002 on PostgreSQL."""
    from zonekeeper.proto.rrwire import make_blob
    from zonekeeper.storage import repo

    db = Database(pg_url)
    try:
        big = make_blob(16, 60, [bytes([255]) + bytes(range(255)) for _ in range(200)])
        nodes = {b"\x07example\x04test\x00": make_blob(6, 300, [b"\x00" * 22]),
                 b"\x03www\x07example\x04test\x00": make_blob(1, 60, [b"\xc0\x00\x02\x01"]),
                 b"\x01a\x03www\x07example\x04test\x00": (make_blob(1, 60, [b"\x01\x02\x03\x04"]),
                                                         big)}
        at_0001_with_a_secondary(db, nodes)
        assert db.current_revision() == "0001"
        with pytest.raises(SchemaError, match="older than this zonekeeper"):
            db.prepare(migrate=False)
        db.prepare(migrate=True)
        assert db.current_revision() == SCHEMA_HEAD
        with db.read() as s:
            assert repo.load_image(s, 1) == nodes
            assert repo.node_rows(s, 1) == []
            assert repo.load_image(s, 2) is None and repo.load_nodes(s, 2) == nodes
    finally:
        db.dispose()


def test_timers_store_a_primary_with_a_long_peer_name(pg_url: str) -> None:
    """Schema 0003: a secondary's timers keep the name of its primary at the length a peer's
    name may have (255; it was 64, which PostgreSQL enforces)."""
    from datetime import UTC, datetime

    from zonekeeper.storage.models import Timer

    db = Database(pg_url)
    try:
        db.prepare(migrate=False)
        with db.write_engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO zones (id, name, kind, serial, serial_policy, state, change_id,"
                " outgoing_enabled, notify_ns, notify_delay, ixfr_max_ratio, created_at,"
                " updated_at) VALUES (1, 'long.test.', 'secondary', 5, 'increment', 'ok', 1,"
                " true, false, 0, 1.0, now(), now())"))
        name = "p" * 255
        with db.write() as s:
            s.add(Timer(zone_id=1, next_refresh=datetime.now(UTC), expired=False,
                        last_primary=name))
        with db.read() as s:
            assert s.get(Timer, 1).last_primary == name  # type: ignore[union-attr]
    finally:
        db.dispose()


def test_0005_keeps_owed_notifies(pg_url: str) -> None:
    """Schema 0005 by Alembic from 0004 on PostgreSQL: owed NOTIFYs, long targets, 32-bit
    serials, removed with their zone."""
    db = Database(pg_url)
    try:
        notify_owed_kept(db)
    finally:
        db.dispose()


def test_0006_peers_keep_their_key_for_both(pg_url: str) -> None:
    """Schema 0006 by Alembic from 0005 on PostgreSQL: peers.key_use, "both" for peers
    that were there."""
    db = Database(pg_url)
    try:
        peer_key_use_kept(db)
    finally:
        db.dispose()


def test_0007_ids_are_never_reused(pg_url: str) -> None:
    """Schema 0007 by Alembic from 0006 on PostgreSQL (nothing to change there: sequences
    never hand out a value twice): the same guarantees as on SQLite."""
    db = Database(pg_url)
    try:
        ids_never_reused(db)
    finally:
        db.dispose()


def test_0012_peers_and_rules_stay_cleartext(pg_url: str) -> None:
    """Schema 0012 by Alembic from 0009 on PostgreSQL: the TLS flags, false for rows that
    were there."""
    db = Database(pg_url)
    try:
        xot_flags_added(db)
    finally:
        db.dispose()


def test_0013_catalogs_have_no_member_peer(pg_url: str) -> None:
    """Schema 0013 by Alembic from 0012 on PostgreSQL: the member peer column and the
    automatic-member rows, cascading with either zone."""
    db = Database(pg_url)
    try:
        catalog_member_peer_added(db)
    finally:
        db.dispose()


def test_0014_rrsets_keep_one_index_by_zone(pg_url: str) -> None:
    """Schema 0014 by Alembic from 0013 on PostgreSQL: the index on rrsets.zone_id alone
    dropped, the unique one kept and enforced, rows going with their zone."""
    db = Database(pg_url)
    try:
        rrsets_zone_index_dropped(db)
    finally:
        db.dispose()


def test_0015_nodes_keyed_by_sort_key(pg_url: str) -> None:
    """Schema 0015 by Alembic from 0014 on PostgreSQL: node rows keyed by (zone_id,
    sortkey) alone, read back as stored, by zone and by owner; ranges, writes, cascade."""
    db = Database(pg_url)
    try:
        nodes_keyed_by_sort_key(db)
    finally:
        db.dispose()


def test_0016_rrset_owners_in_lower_case(pg_url: str) -> None:
    """Schema 0016 by Alembic from 0015 on PostgreSQL: owners lowered, the newest of rows
    that differ only by case kept."""
    db = Database(pg_url)
    try:
        rrset_owners_lowered(db)
    finally:
        db.dispose()


def test_0017_primary_images_downgraded(pg_url: str) -> None:
    """Schema 0017 on PostgreSQL: a primary zone's image with GONE rows over it, written
    back as whole rows by a downgrade and loaded again after the upgrade."""
    db = Database(pg_url)
    try:
        primary_images_downgraded(db)
    finally:
        db.dispose()


def test_writers_queue_on_the_write_lock(pg_url: str) -> None:
    """Read-then-write transactions from many threads (what a serial bump is) lose no
    update: each waits for the one before it to commit."""
    db = Database(pg_url)
    try:
        db.prepare(migrate=False)
        with db.write() as s:
            s.add(Zone(name="count.test.", kind="primary", serial=0, change_id=0))

        def bump(times: int) -> None:
            for _ in range(times):
                with db.write() as s:
                    z = s.scalar(select(Zone).where(Zone.name == "count.test."))
                    assert z is not None
                    seen = z.serial
                    time.sleep(0.002)  # room for another writer to come in between
                    z.serial = seen + 1

        threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with db.read() as s:
            assert s.scalar(select(Zone.serial).where(Zone.name == "count.test.")) == 100
    finally:
        db.dispose()


def test_a_held_write_lock_is_503_and_changes_nothing(zk_factory, pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """Another transaction holding the write lock past the lock timeout: the edit fails with
    503 storage-unavailable (as SQLite's "database is locked" does), nothing changes, and
    the next edit after the lock goes works."""
    srv: ZkServer = zk_factory(demo=False, database=pg_url).start()
    zone = "busy.test."
    with srv.client() as api:
        make_zone(api, zone)
        before = srv.serial(zone)
        with pg_server.connect(make_url(pg_url).database) as lock:
            with lock.transaction():
                lock.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
                started = time.monotonic()
                r = api.put(f"/zones/{zone}/rrsets/x/A",
                            json={"records": [{"content": "192.0.2.5"}]})
                assert r.status_code == 503, r.text
                assert r.json()["type"] == "urn:zonekeeper:problem:storage-unavailable"
                assert r.headers["Retry-After"] == "5"
                assert time.monotonic() - started >= 4  # it waited for the lock first
                assert srv.serial(zone) == before
                assert srv.query(f"x.{zone}", "A").rcode() == dns.rcode.NXDOMAIN
        assert srv.events("api.storage_unavailable")
        r = api.put(f"/zones/{zone}/rrsets/x/A", json={"records": [{"content": "192.0.2.5"}]})
        assert r.status_code == 200 and r.json()["serial"] == before + 1, r.text
        assert api.get(f"/zones/{zone}").json()["serial"] == before + 1
    assert srv.query(f"x.{zone}", "A").answer[0][0].address == "192.0.2.5"


def test_unreachable_database_is_a_clear_startup_error(zk_factory, pg_server) -> None:  # type: ignore[no-untyped-def]
    """A database that does not exist: zonekeeper exits 1 saying so, the password masked."""
    url = pg_server.url("nosuchdb").replace("postgres@", "postgres:hunter2@")
    srv: ZkServer = zk_factory(demo=False, database=url)
    with pytest.raises(RuntimeError, match="exited 1") as exc:
        srv.start()
    assert 'database "nosuchdb" does not exist' in str(exc.value)
    assert "hunter2" not in str(exc.value) and "postgres:***@" in str(exc.value)


def test_a_value_over_its_column_size_is_a_clear_422(zk_factory, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL enforces column sizes that SQLite ignores: an owner name whose
    presentation form (\\DDD escapes) is over 255 characters is refused with 422, not 500."""
    srv: ZkServer = zk_factory(demo=False, database=pg_url).start()
    zone = "long.test."
    owner = "\\000" * 63 + "." + "\\001" * 20
    text_ = f"$ORIGIN {zone}\n@ 300 SOA ns1 host 1 3600 900 1209600 300\n@ 300 NS ns1\n" \
            f"ns1 300 A 192.0.2.1\n{owner} 300 A 192.0.2.2\n"
    with srv.client() as api:
        r = api.post("/zones", json={"name": zone, "zone_text": text_})
        assert r.status_code == 422, r.text
        assert "value too long" in r.json()["detail"], r.text
        assert api.get(f"/zones/{zone}").status_code == 404
        make_zone(api, zone)
        assert srv.query(zone, "SOA").rcode() == dns.rcode.NOERROR
