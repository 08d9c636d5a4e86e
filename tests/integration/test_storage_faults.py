"""Storage faults (issue 18): a full disk and a read-only database file under a running
``zonekeeper serve`` on SQLite.

The database lives on a small tmpfs the test mounts (as root: ``mount -t tmpfs``). A linked
"secondary" is a UDP listener of the test that acknowledges and counts NOTIFYs. While the
fault lasts, a write is answered 503 ``storage-unavailable`` problem+json that says what is
wrong, nothing of it is served, journaled, logged as a change or announced by NOTIFY, and DNS
keeps answering (queries and AXFR) from memory. Once space returns or the file is writable
again, the same write succeeds without a restart: one serial step, served, journaled (IXFR
from the serial before), and announced.

A read-only file: root ignores file modes, and a file made read-only under an open SQLite
connection stays writable through it (the kernel checks at open), so the server is started
on a database file with the immutable attribute (``chattr +i``, which binds root too): every
connection it opens is read-only, as when an operator or a restore leaves the file
read-only. Then the attribute is removed while it runs.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.opcode
import dns.rdatatype
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, require_tool, wait_for
from tests.integration.test_crash import ixfr_onto
from tests.peers import axfr_lines

pytestmark = pytest.mark.xdist_group("crash")

ZONE = "faults.test."
ZONE_TEXT = """$TTL 300
@ SOA ns1 hostmaster 1 3600 600 1209600 300
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.80
"""


class NotifyListener:
    """A UDP "secondary" that acknowledges every NOTIFY and keeps the serials announced."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.serials: list[int] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                q = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - not ours to judge
                continue
            if q.opcode() != dns.opcode.NOTIFY:
                continue
            for rrset in q.answer:
                if rrset.rdtype == dns.rdatatype.SOA:
                    self.serials.append(rrset[0].serial)
            self.sock.sendto(dns.message.make_response(q).to_wire(), addr)

    def close(self) -> None:
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of the test's own, unmounted at the end."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("this test mounts a small tmpfs for the database (mount -t tmpfs -o size=16m "
                    f"tmpfs {mnt}) and could not: {r.stderr.strip()}. Run it as root (or with "
                    "CAP_SYS_ADMIN), e.g. in the CI container as root.")
    try:
        yield mnt
    finally:
        for f in mnt.iterdir():
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    n = NotifyListener()
    yield n
    n.close()


def setup_zone(srv: ZkServer, listener: NotifyListener) -> int:
    with srv.client() as api:
        r = api.post("/zones", json={"name": ZONE, "zone_text": ZONE_TEXT})
        assert r.status_code == 201, r.text
        r = api.post("/acls", json={"zone": ZONE, "action": "transfer", "network": "127.0.0.1/32"})
        assert r.status_code == 201, r.text
        r = api.post("/peers", json={"name": "listener", "address": "127.0.0.1",
                                     "port": listener.port, "notify": True})
        assert r.status_code == 201, r.text
        r = api.put(f"/zones/{ZONE}/peers/listener", json={"role": "secondary"})
        assert r.status_code in (200, 201), r.text
        r = api.put(f"/zones/{ZONE}/rrsets/www/A", json={"records": [{"content": "192.0.2.81"}]})
        assert r.status_code == 200, r.text
        serial = r.json()["serial"]
    wait_for(lambda: serial in listener.serials, what=f"NOTIFY for {serial}")
    return serial


def big_change(tag: str) -> dict[str, object]:
    """One change set of ~1 MB written (RRset rows, served nodes, journal): more than the
    database's write-ahead log has room for already."""
    chunk = "x" * 250
    return {"rrsets": [{"name": f"{tag}{i}", "type": "TXT", "changetype": "REPLACE", "ttl": 300,
                        "records": [{"content": f'"{tag} {i}" "{chunk}" "{chunk}"'}]}
                       for i in range(600)]}


def check_refused(r: httpx2.Response, word: str) -> None:
    assert r.status_code == 503, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.headers.get("retry-after"), r.headers
    body = r.json()
    assert body["type"] == "urn:zonekeeper:problem:storage-unavailable", body
    assert word in body["detail"], body
    assert "nothing was changed" in body["detail"], body


def check_still_serving(srv: ZkServer, serial: int, base: list[str]) -> None:
    """DNS answers from memory: the committed serial and content, nothing of the refused
    write."""
    assert srv.serial(ZONE) == serial
    www = srv.query(f"www.{ZONE}", "A", tcp=True)
    assert [rr.address for rr in www.answer[0]] == ["192.0.2.81"]
    assert srv.query(f"big0.{ZONE}", "TXT").rcode() == 3  # NXDOMAIN
    assert axfr_lines(srv.addr, srv.dns_port, ZONE) == base


def check_recovered(srv: ZkServer, listener: NotifyListener, serial: int, base: list[str],
                    api: httpx2.Client) -> None:
    """The refused write goes through now, without a restart: one serial step, served,
    journaled, announced."""
    r = api.patch(f"/zones/{ZONE}/rrsets", json=big_change("big"))
    assert r.status_code == 200, r.text
    assert r.json()["serial"] == serial + 1
    assert srv.serial(ZONE) == serial + 1
    assert srv.query(f"big599.{ZONE}", "TXT", tcp=True).answer
    wait_for(lambda: serial + 1 in listener.serials, what=f"NOTIFY for {serial + 1}")
    assert ixfr_onto(srv, ZONE, base) == axfr_lines(srv.addr, srv.dns_port, ZONE)
    assert api.get(f"/zones/{ZONE}").json()["serial"] == serial + 1


def no_trace(srv: ZkServer, listener: NotifyListener, serial: int, notified: int) -> None:
    """A refused write left no trace: no NOTIFY (given time to go out), no change logged."""
    time.sleep(1.5)
    assert len(listener.serials) == notified, listener.serials
    assert not srv.events("zone.changed", zone=ZONE, serial=serial + 1), "a change that did not commit was logged"


def test_full_disk_refuses_writes_serves_dns_and_recovers(zk_factory, disk: Path,  # type: ignore[no-untyped-def]
                                                          listener: NotifyListener) -> None:
    srv: ZkServer = zk_factory(demo=False, database=f"sqlite:///{disk}/zk.db").start()
    serial = setup_zone(srv, listener)
    base = axfr_lines(srv.addr, srv.dns_port, ZONE)
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    try:
        notified = len(listener.serials)
        with srv.client() as api:
            for _ in range(2):  # and again: the first failure left nothing half done
                check_refused(api.patch(f"/zones/{ZONE}/rrsets", json=big_change("big")), "full")
            r = api.post("/zones/" + ZONE + "/import", content=ZONE_TEXT + "".join(
                f'imp{i} TXT "{"y" * 250}" "{"y" * 250}"\n' for i in range(2000)),
                params={"force": "true"}, headers={"content-type": "text/dns"})
            check_refused(r, "full")
            # Reads still work, and say what is stored.
            assert api.get(f"/zones/{ZONE}").json()["serial"] == serial
        check_still_serving(srv, serial, base)
        no_trace(srv, listener, serial, notified)
    finally:
        filler.unlink()
    with srv.client() as api:
        check_recovered(srv, listener, serial, base, api)
    assert srv.stop() == 0


def test_read_only_database_refuses_writes_serves_dns_and_recovers(zk_factory, disk: Path,  # type: ignore[no-untyped-def]
                                                                   listener: NotifyListener) -> None:
    chattr = require_tool("chattr", "e2fsprogs")
    db = disk / "zk.db"
    srv: ZkServer = zk_factory(demo=False, database=f"sqlite:///{db}").start()
    serial = setup_zone(srv, listener)
    base = axfr_lines(srv.addr, srv.dns_port, ZONE)
    assert srv.stop() == 0
    r = subprocess.run([chattr, "+i", str(db)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"chattr +i {db} failed ({r.stderr.strip()}): this test needs root "
                    "(CAP_LINUX_IMMUTABLE) and a file system with the immutable attribute")
    try:
        with pytest.raises(PermissionError):
            os.open(db, os.O_RDWR)  # read-only, for root too
        srv.start()
        assert srv.serial(ZONE) == serial
        notified = len(listener.serials)
        with srv.client() as api:
            for _ in range(2):
                check_refused(api.patch(f"/zones/{ZONE}/rrsets", json=big_change("big")), "read-only")
            check_refused(api.put(f"/zones/{ZONE}/rrsets/www/A",
                                  json={"records": [{"content": "192.0.2.99"}]}), "read-only")
            assert api.get(f"/zones/{ZONE}").json()["serial"] == serial
        check_still_serving(srv, serial, base)
        no_trace(srv, listener, serial, notified)
    finally:
        subprocess.run([chattr, "-i", str(db)], check=True)
    with srv.client() as api:
        check_recovered(srv, listener, serial, base, api)
    assert srv.stop() == 0
