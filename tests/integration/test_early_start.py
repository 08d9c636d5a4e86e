"""Answering before the rest has started (zonekeeper/start.py).

On SQLite, ``zonekeeper serve`` reads the stored zones with ``sqlite3`` and starts the C UDP
loop before SQLAlchemy, the services and the web stack are imported; the loop answers the
queries whose answers depend on nothing still missing and holds the rest until the server
has started. Shown here on a database a real server wrote: the zones read that way are the
ones ``ZoneStore.load_all`` reads, without SQLAlchemy; the early loop, run in this process
on a real socket, answers a corpus of queries (and holds the others, answered once
started) with the very bytes a fully started server answers them with; the cookie it makes
from the stored secret is the server's; and a restart answers early.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import pytest

from tests.conftest import ZkServer, free_port, make_zone
from tests.integration.test_udp_fast_path import ZONE, ZONE_TEXT, corpus, query
from zonekeeper import start
from zonekeeper.proto.edns import EXPIRE
from zonekeeper.proto.request import parse
from zonekeeper.server.udp import UdpProtocol
from zonekeeper.settings import load_settings

ENV = {"ZONEKEEPER_DNS__REQUIRE_COOKIE": "true"}  # a bad server cookie shows as BADCOOKIE


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    """A server that stored ZONE (and its cookie secret), stopped: its database is read
    here; tests start it again as they need."""
    srv = ZkServer(tmp_path_factory.mktemp("early"), demo=False, env=ENV).start()
    try:
        with srv.client() as api:
            make_zone(api, ZONE, zone_text=ZONE_TEXT)
    finally:
        assert srv.stop() == 0
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.stop()


def test_zones_are_read_as_load_all_reads_them_without_sqlalchemy(stored: ZkServer) -> None:
    script = (
        "import sys\n"
        "from zonekeeper.start import read_stored\n"
        f"zones, secrets = read_stored({str(stored.db_path)!r})\n"
        "assert 'sqlalchemy' not in sys.modules, 'read_stored imported SQLAlchemy'\n"
        "print(len(zones), len(secrets))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "1"], r.stdout  # one zone, one cookie secret

    from zonekeeper.services.zones import ZoneService  # noqa: PLC0415 - SQLAlchemy
    from zonekeeper.settings import ZoneSettings  # noqa: PLC0415
    from zonekeeper.storage.db import Database  # noqa: PLC0415
    from zonekeeper.zones.snapshot import Registry  # noqa: PLC0415

    found = start.read_stored(str(stored.db_path))
    assert found is not None
    early = [snap for _row, snap in found[0]]
    db = Database(f"sqlite:///{stored.db_path}")
    try:
        loaded = ZoneService(db, Registry(), limits=ZoneSettings()).load_all()
    finally:
        db.dispose()
    assert len(early) == len(loaded) == 1
    for a, b in zip(early, loaded, strict=True):
        for slot in ("name", "serial", "kind", "state", "nodes", "cuts", "neg_soa", "zone_id",
                     "change_id", "outgoing", "notify_ns", "notify_delay", "ixfr_max_ratio"):
            assert getattr(a, slot) == getattr(b, slot), slot


def test_a_database_to_migrate_or_missing_goes_the_long_way(tmp_path: Path) -> None:
    assert start.read_stored(str(tmp_path / "none.db")) is None
    assert not (tmp_path / "none.db").exists()  # not created by looking
    import sqlite3  # noqa: PLC0415

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")
    assert start.read_stored(str(old)) is None


@pytest.mark.parametrize("url, path", [
    ("sqlite:///zk.db", "zk.db"),
    ("sqlite:////var/lib/zonekeeper/zk.db", "/var/lib/zonekeeper/zk.db"),
    ("sqlite+pysqlite:///dir/zk.db?timeout=5", "dir/zk.db"),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("postgresql+psycopg://zk@localhost/zk", None),
])
def test_sqlite_file_reads_urls_as_sqlalchemy_does(url: str, path: str | None) -> None:
    from sqlalchemy import make_url  # noqa: PLC0415

    assert start.sqlite_file(url) == path
    if path is not None:
        assert make_url(url).database == path


def _signed(name: str) -> bytes:
    q = dns.message.make_query(name, "A")
    q.use_tsig(dns.tsigkeyring.from_text({"k.": "c2VjcmV0c2VjcmV0c2VjcmV0"}), keyname="k.",
               algorithm=dns.tsig.HMAC_SHA256)
    return q.to_wire()


def _with_option(name: str, code: int, data: bytes) -> bytes:
    q = dns.message.make_query(name, "SOA", use_edns=0,
                               options=[dns.edns.GenericOption(code, data)])
    return q.to_wire()


def test_what_may_be_answered_before_the_start_ends() -> None:
    early, no_cookies = start.answerable(True), start.answerable(False)
    plain = parse(query(f"www.{ZONE}", "A"))
    with_edns = parse(query(f"www.{ZONE}", "A", edns=(1232, 0, 1)))
    cookie = parse(_with_option(ZONE, 10, b"12345678"))
    expire = parse(_with_option(ZONE, EXPIRE, b""))
    nsid = parse(_with_option(ZONE, 3, b""))
    signed = parse(_signed(f"www.{ZONE}"))
    notify = parse(query(ZONE, "SOA", flags=0x2000))
    two = parse(query(ZONE, "SOA")[:4] + b"\x00\x02" + query(ZONE, "SOA")[6:])
    for req in (plain, with_edns, cookie, expire, nsid, signed, notify, two):
        assert req is not None
    assert early(plain) and early(with_edns) and early(cookie) and early(nsid)
    assert not no_cookies(cookie) and no_cookies(nsid)
    for held in (expire, signed, notify, two):
        assert not early(held)


def _recv_all(sock: socket.socket, until: float, want: set[bytes] | None = None) -> dict[bytes, bytes]:
    """Answers by query ID until ``until`` (monotonic), or until those of ``want`` came."""
    out = {}
    while want is None or not want <= out.keys():
        left = until - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            break
        out[data[:2]] = data
    return out


def _ask(sock: socket.socket, queries: list[bytes], port: int) -> dict[bytes, bytes]:
    """Send ``queries`` in small batches, each read back before the next (a burst would
    overflow this socket's receive buffer): answers by query ID."""
    out: dict[bytes, bytes] = {}
    for i in range(0, len(queries), 40):
        batch = queries[i : i + 40]
        for q in batch:
            sock.sendto(q, ("127.0.0.1", port))
        out.update(_recv_all(sock, time.monotonic() + 0.5, {q[:2] for q in batch}))
    return out


def test_the_early_loop_answers_as_the_started_server(stored: ZkServer) -> None:
    """Every query of the corpus: answered at once by the early loop (or held and answered
    once started), with the bytes the started server gives it."""
    queries = [(0x8000 + i).to_bytes(2, "big") + q[2:] for i, q in enumerate(corpus())
               if len(q) >= 12 and (q[2] >> 3) & 15 == 0 and not q[2] & 0x80]
    expire_q = b"\xee\x01" + _with_option(ZONE, EXPIRE, b"")[2:]
    cookie_q = b"\xee\x02" + _with_option(ZONE, 10, os.urandom(8))[2:]
    queries += [expire_q, cookie_q]
    assert len({q[:2] for q in queries}) == len(queries)  # IDs tell the answers apart
    port = free_port()
    settings = load_settings(None, dns={"listen": [f"127.0.0.1:{port}"], "require_cookie": True},
                             database={"url": f"sqlite:///{stored.db_path}"})

    async def early_answers() -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        found = start.read_stored(str(stored.db_path))
        assert found is not None
        early = start.answer_early(settings, *found, None, time.monotonic())
        try:
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with client:
                before = await asyncio.to_thread(_ask, client, queries, port)
                for fast in early.transports:
                    fast.started(UdpProtocol(early.core.handler))
                after = await asyncio.to_thread(_recv_all, client, time.monotonic() + 2)
        finally:
            start.close_early(early)
        return before, after

    before, after = asyncio.run(early_answers())
    assert expire_q[:2] in after and expire_q[:2] not in before  # held, then answered
    assert cookie_q[:2] in before  # the stored secret is known: answered at once
    held = set(after) - set(before)
    assert held and all(not start.answerable(True)(parse(q)) for q in queries  # type: ignore[arg-type]
                        if q[:2] in held)
    early = {**before, **after}

    stored.start()
    try:
        assert stored.events("dns.answering"), stored.log()  # a restart answers early too
        differ = []
        for q in queries:
            if q in (expire_q, cookie_q):
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(1)
                s.sendto(q, (stored.addr, stored.dns_port))
                try:
                    want = s.recv(65535)
                except TimeoutError:
                    want = None
            if early.get(q[:2]) != want:
                differ.append((q.hex(), want and want.hex(), early.get(q[:2], b"").hex()))
        assert not differ, f"{len(differ)} of {len(queries)} differ, the first: {differ[0]}"
        # The early loop's cookie is made with the stored secret: the server takes it back.
        answer = dns.message.from_wire(early[cookie_q[:2]])
        assert answer.rcode() == dns.rcode.BADCOOKIE  # required, and only a client cookie
        cookie = next(o for o in answer.options if o.otype == 10)
        again = dns.message.make_query(ZONE, "SOA", use_edns=0, options=[cookie])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.bind(("127.0.0.1", 0))
            s.sendto(again.to_wire(), (stored.addr, stored.dns_port))
            reply = dns.message.from_wire(s.recv(65535))
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer, reply
    finally:
        assert stored.stop() == 0


def test_requests_held_while_starting_are_bounded(stored: ZkServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound (``FastUdp.MAX_HELD``, set low here), requests that must wait for the
    start are dropped, not kept: those held are answered once started, the rest never."""
    from zonekeeper.server.udpfast import FastUdp  # noqa: PLC0415

    monkeypatch.setattr(FastUdp, "MAX_HELD", 20)
    port = free_port()
    # One loop: the requests are held in the order they came (two would share them out).
    settings = load_settings(None, dns={"listen": [f"127.0.0.1:{port}"], "udp_workers": 1},
                             database={"url": f"sqlite:///{stored.db_path}"})
    held = [(0x9000 + i).to_bytes(2, "big") + _with_option(ZONE, EXPIRE, b"")[2:]
            for i in range(30)]

    async def run() -> tuple[dict[bytes, bytes], dict[bytes, bytes], int]:
        found = start.read_stored(str(stored.db_path))
        assert found is not None
        early = start.answer_early(settings, *found, None, time.monotonic())
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                for q in held:
                    client.sendto(q, ("127.0.0.1", port))
                before = await asyncio.to_thread(_recv_all, client, time.monotonic() + 1)
                fast = early.transports[0]
                fast.started(UdpProtocol(early.core.handler))
                after = await asyncio.to_thread(_recv_all, client, time.monotonic() + 2)
                return before, after, fast._held_dropped
        finally:
            start.close_early(early)

    before, after, dropped = asyncio.run(run())
    assert before == {}
    assert sorted(after) == [q[:2] for q in held[:20]], sorted(after)
    assert dropped == 10
