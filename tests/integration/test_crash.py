"""Crash safety (issue 18): ``kill -9`` of a real ``zonekeeper serve`` at random moments.

- A primary zone under a stream of 1,000 API edits from several concurrent clients, killed
  five times at random points of the stream, on SQLite and on PostgreSQL. Each edit is one
  change set of six RRsets that all carry the client's sequence number, so after each restart
  a half-applied change set shows as RRsets of one client with different numbers. After each
  restart: every acknowledged (2xx) edit is there (each client's RRsets carry its last
  acknowledged number, or the number of the edit it had in flight when the server died), the
  serial moved by exactly the number of change sets committed, and the serial and content
  agree between the API (zone, RRsets), DNS answers, AXFR and the journal (IXFR from the
  serial at the start of every earlier segment, applied to the AXFR taken then, gives
  today's AXFR); a real Knot secondary that followed the zone by NOTIFY up to the crash
  catches up by IXFR from the serial it had, and then serves what zonekeeper serves.
- A zonekeeper secondary of a Knot primary, killed at random moments of the inbound
  transfer of a large zone (while the transfer is read, and while the new version is
  written): after each restart it serves the old or the new version whole, never a mix.

The servers, Knot and PostgreSQL are real processes on loopback; they are stopped by PID.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.xfr
import dns.zone
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, require_tool, wait_for
from tests.peers import KnotSecondary, SecondaryZone, axfr_lines, dig_axfr_lines
from tests.primaries import KnotPrimary, PrimaryZone

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("crash")]

KNOT_ADDR = "127.0.0.61"  # the Knot secondary's address (and its transfers' source)
PRIMARY_ADDR = "127.0.0.62"  # the Knot primary of the inbound-transfer test
CLIENTS = 4
EDITS = 1000
KILLS = 5


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotSecondary]:
    require_tool("knotd", "knot")
    require_tool("knotc", "knot")
    sec = KnotSecondary(tmp_path_factory.mktemp("knot"), addr=KNOT_ADDR, port=free_port(KNOT_ADDR))
    try:
        sec.start().wait_ready()
        yield sec
    finally:
        sec.stop()


# -- the edit stream --------------------------------------------------------------------------
def change_set(c: int, k: int) -> list[dict[str, object]]:
    """Client ``c``'s ``k``-th change set: six RRsets at its own names, each carrying ``k``
    (one RRset renamed each time, two deleted), so every one of them tells which change set
    it came from."""
    return [
        {"name": f"c{c}-a", "type": "A", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": f"10.{c}.{k >> 8}.{k & 255}"}]},
        {"name": f"c{c}-t", "type": "TXT", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": f'"c{c} seq {k}"'}, {"content": f'"pad {k} {"x" * 120}"'}]},
        {"name": f"c{c}-m", "type": "MX", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": f"{k % 60000} mail.c{c}-m"}]},
        {"name": f"c{c}-x{k % 3}", "type": "TXT", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": f'"seq {k}"'}]},
        {"name": f"c{c}-x{(k + 1) % 3}", "type": "TXT", "changetype": "DELETE"},
        {"name": f"c{c}-x{(k + 2) % 3}", "type": "TXT", "changetype": "DELETE"},
    ]


def client_names(zone: str, c: int) -> list[tuple[str, str]]:
    return [(f"c{c}-a.{zone}", "A"), (f"c{c}-t.{zone}", "TXT"), (f"c{c}-m.{zone}", "MX")] + [
        (f"c{c}-x{i}.{zone}", "TXT") for i in range(3)]


def seq_of(zone: str, c: int, rrsets: dict[tuple[str, str], list[str]]) -> int | None:
    """The sequence number client ``c``'s RRsets carry (None: it has none yet); fails when
    they carry different ones (a change set half applied)."""
    got = {k: v for k, v in rrsets.items() if k in set(client_names(zone, c))}
    if not got:
        return None
    seqs: dict[str, int] = {}
    a = got.get((f"c{c}-a.{zone}", "A"))
    if a:
        o = a[0].split(".")
        seqs["a"] = int(o[2]) * 256 + int(o[3])
    t = got.get((f"c{c}-t.{zone}", "TXT"))
    if t:
        seqs["t"] = int(next(x for x in t if x.startswith(f'"c{c} seq ')).split()[2].rstrip('"'))
    m = got.get((f"c{c}-m.{zone}", "MX"))
    if m:
        seqs["m"] = int(m[0].split()[0])
    xs = [(name, v) for (name, _t), v in got.items() if name.startswith(f"c{c}-x")]
    assert len(xs) == 1, f"client {c}: expected one x RRset, found {xs}"
    xk = int(xs[0][1][0].split()[1].rstrip('"'))
    assert xs[0][0] == f"c{c}-x{xk % 3}.{zone}", xs
    seqs["x"] = xk
    assert set(seqs) == {"a", "t", "m", "x"}, f"client {c}: RRsets missing: {got}"
    assert len(set(seqs.values())) == 1, f"client {c}: change set half applied: {seqs}"
    return seqs["a"]


@dataclass
class Client:
    c: int
    next_k: int = 0
    acked: int | None = None  # the last acknowledged sequence number
    acked_serials: list[int] = field(default_factory=list)
    inflight: int | None = None  # sent, no answer: the server died meanwhile
    failure: str | None = None


class Stream:
    """CLIENTS threads sending change sets until the stream's budget is used or the server
    dies under them."""

    def __init__(self, srv: ZkServer, zone: str, clients: list[Client], budget: int) -> None:
        self.srv, self.zone, self.clients = srv, zone, clients
        self.budget = budget
        self.sent = 0
        self.acked = 0
        self.cond = threading.Condition()

    def _take(self) -> bool:
        with self.cond:
            if self.sent >= self.budget:
                return False
            self.sent += 1
            return True

    def _run(self, cl: Client) -> None:
        with self.srv.client() as api:
            while self._take():
                k = cl.next_k
                cl.inflight = k
                try:
                    r = api.patch(f"/zones/{self.zone}/rrsets", json={"rrsets": change_set(cl.c, k)})
                except httpx2.HTTPError:
                    return  # the server died: k stays in flight
                cl.inflight = None
                if r.status_code != 200:
                    cl.failure = f"{r.status_code} {r.text[:300]}"
                    return
                cl.acked = k
                cl.acked_serials.append(r.json()["serial"])
                cl.next_k = k + 1
                with self.cond:
                    self.acked += 1
                    self.cond.notify_all()

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._run, args=(cl,), daemon=True) for cl in self.clients]
        for t in threads:
            t.start()
        return threads

    def wait_acked(self, n: int, timeout: float = 60) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: self.acked >= n, timeout)
        assert ok, f"only {self.acked} edits acknowledged in {timeout}s"


# -- what the server holds ----------------------------------------------------------------
def canonical(name: str, ttl: int, rdtype: str, content: str) -> str:
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, content)
    return f"{name} {ttl} in {rdtype} {rd.to_text()}".lower()


def api_lines(api: httpx2.Client, zone: str) -> list[str]:
    lines: list[str] = []
    cursor = ""
    while True:
        r = api.get(f"/zones/{zone}/rrsets", params={"limit": 1000, "cursor": cursor})
        assert r.status_code == 200, r.text
        body = r.json()
        for item in body["items"]:
            for rec in item["records"]:
                assert not rec["disabled"], item
                lines.append(canonical(item["name"], item["ttl"], item["type"], rec["content"]))
        cursor = body["next_cursor"]
        if not cursor:
            return sorted(lines)


def by_rrset(lines: list[str]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for ln in lines:
        name, _ttl, _cls, rdtype, rdata = ln.split(None, 4)
        out.setdefault((name, rdtype.upper()), []).append(rdata)
    return {k: sorted(v) for k, v in out.items()}


def zone_of(zone: str, lines: list[str]) -> dns.zone.Zone:
    return dns.zone.from_text("\n".join(lines) + "\n", origin=zone, relativize=False,
                              check_origin=False)


def lines_of(z: dns.zone.Zone) -> list[str]:
    out = []
    for name, node in z.nodes.items():
        for rds in node.rdatasets:
            out.extend(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)).to_text().lower().splitlines())
    return sorted(out)


def ixfr_onto(srv: ZkServer, zone: str, base: list[str]) -> list[str]:
    """The zone as an IXFR from ``base``'s serial, applied to ``base``, gives it."""
    z = zone_of(zone, base)
    query, serial = dns.xfr.make_query(z)
    assert serial is not None
    dns.query.inbound_xfr(srv.addr, z, query, port=srv.dns_port, timeout=10, lifetime=60)
    return lines_of(z)


def check_agreement(srv: ZkServer, zone: str, bases: list[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """Serial and content agree between the API, DNS answers, AXFR and the journal. Returns
    (serial, AXFR lines)."""
    with srv.client() as api:
        api_serial = api.get(f"/zones/{zone}").json()["serial"]
        api_content = api_lines(api, zone)
    served = axfr_lines(srv.addr, srv.dns_port, zone)
    soa_serial = srv.serial(zone)
    assert api_serial == soa_serial, (api_serial, soa_serial)
    assert sum(" soa " in x for x in served) == 1, "one SOA in the AXFR"
    assert api_content == served, "the API's RRsets and the AXFR differ"
    # DNS answers for every client's names are the RRsets the API lists.
    rrsets = by_rrset(served)
    for c in range(CLIENTS):
        for name, rdtype in client_names(zone, c):
            r = srv.query(name, rdtype)
            got = sorted(rd.to_text().lower() for rrset in r.answer for rd in rrset
                         if rrset.rdtype == dns.rdatatype.from_text(rdtype))
            assert got == rrsets.get((name, rdtype), []), (name, rdtype, got)
    # The journal: from every earlier segment's start, IXFR onto that AXFR is today's AXFR.
    for serial, base in bases:
        if serial != soa_serial:
            assert ixfr_onto(srv, zone, base) == served, f"IXFR from {serial} differs"
            ev = [e for e in srv.events("xfr.out", zone=zone, serial=soa_serial, type="IXFR")
                  if e.get("style") == f"incremental from {serial}"]
            assert ev, f"no incremental IXFR from {serial} to {soa_serial} in the log"
    return soa_serial, served


def knot_transfers(knot: KnotSecondary, zone: str, since: int) -> list[str]:
    with open(knot.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return [ln for ln in text.splitlines() if f"[{zone}]" in ln and ", incoming, " in ln]


ZONE_HEAD = """$TTL 300
@ SOA ns1 hostmaster 1 86400 3600 1209600 300
@ NS ns1
ns1 A 192.0.2.1
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_during_edits_loses_no_acknowledged_edit(backend: str, zk_factory, knot: KnotSecondary,  # type: ignore[no-untyped-def]
                                                        request: pytest.FixtureRequest) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    print(f"seed {seed}")
    database = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    srv: ZkServer = zk_factory(demo=False, database=database).start()
    zone = f"crash-{uuid.uuid4().hex[:6]}.test."
    filler = "".join(f"h{i} TXT \"filler {i}\"\n" for i in range(300))
    with srv.client() as api:
        r = api.post("/zones", json={"name": zone, "zone_text": ZONE_HEAD + filler})
        assert r.status_code == 201, r.text
        r = api.patch(f"/zones/{zone}", json={"journal_max_count": 5000})
        assert r.status_code == 200, r.text
        r = api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.1/32"})
        assert r.status_code == 201, r.text
        r = api.post("/peers", json={"name": f"knot-{backend}", "address": KNOT_ADDR, "port": knot.port,
                                     "transfer_from": [f"{KNOT_ADDR}/32"], "notify": True})
        assert r.status_code == 201, r.text
        r = api.put(f"/zones/{zone}/peers/knot-{backend}", json={"role": "secondary"})
        assert r.status_code in (200, 201), r.text
    knot.add_zones(SecondaryZone(zone, (srv.addr, srv.dns_port)))
    serial, base = check_agreement(srv, zone, [])
    knot.wait_serial(zone, serial)
    bases = [(serial, base)]
    clients = [Client(c) for c in range(CLIENTS)]
    # Five kill points at random places of the stream, one in each fifth.
    kill_at = [i * EDITS // KILLS + rng.randrange(EDITS // KILLS // 5, EDITS // KILLS - 10)
               for i in range(KILLS)]
    done = 0
    t0 = time.monotonic()
    for round_, at in enumerate(kill_at + [EDITS]):
        start_serial = serial
        stream = Stream(srv, zone, clients, EDITS - done)
        threads = stream.start()
        crashed = round_ < KILLS
        if crashed:
            stream.wait_acked(at - done)
            time.sleep(rng.uniform(0, 0.02))
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
        for t in threads:
            t.join(60)
        assert not any(cl.failure for cl in clients), [cl.failure for cl in clients]
        done += stream.sent
        inflight = {cl.c: cl.inflight for cl in clients if cl.inflight is not None}
        knot_mark = knot.log_path.stat().st_size
        if crashed:
            time.sleep(0.3)  # a transfer Knot had under way has failed by now
            knot_pre = knot.serial(zone)
            srv.start()
        else:
            knot_pre = None
        serial, served = check_agreement(srv, zone, bases)
        rrsets = by_rrset(served)
        committed = 0
        for cl in clients:
            k = seq_of(zone, cl.c, rrsets)
            allowed = {cl.acked} | ({cl.inflight} if cl.inflight is not None else set())
            assert k in allowed, (f"round {round_}: client {cl.c} holds change set {k}, "
                                  f"acknowledged {cl.acked}, in flight {cl.inflight}")
            if cl.inflight is not None:
                if k == cl.inflight:
                    committed += 1
                    cl.acked = k
                cl.next_k = cl.inflight + 1
                cl.inflight = None
        # Every commit is one serial step: the acknowledged edits and the in-flight edits
        # found committed, no more, no less.
        assert serial - start_serial == stream.acked + committed, (
            f"round {round_}: serial {start_serial} -> {serial}, {stream.acked} acknowledged, "
            f"{committed} of {len(inflight)} in flight committed")
        assert max(s for cl in clients for s in cl.acked_serials) <= serial
        # The Knot secondary catches up by IXFR from the serial it had when the server died.
        if knot_pre is not None and knot_pre != serial:
            knot.refresh(zone)
        knot.wait_serial(zone, serial, timeout=30)
        if knot_pre is not None and knot_pre != serial:
            ev = [e for e in srv.events("xfr.out", zone=zone, client=KNOT_ADDR, serial=serial)
                  if e.get("result") == "ok"]
            assert ev and ev[-1]["type"] == "IXFR", ev
            assert ev[-1]["style"] == f"incremental from {knot_pre}", ev[-1]
            lines = wait_for(lambda: [ln for ln in knot_transfers(knot, zone, knot_mark)
                                      if "finished" in ln], what="Knot's transfer log line")
            assert lines[-1].split("]", 1)[1].strip().startswith("IXFR"), lines
        assert knot.dump(zone) == served
        bases.append((serial, served))
        print(f"round {round_}: {stream.acked} acked, {len(inflight)} in flight "
              f"({committed} committed), serial {serial}, knot from {knot_pre}, "
              f"{time.monotonic() - t0:.1f}s")
    assert done == EDITS
    assert srv.stop() == 0


# -- a secondary zone killed during its inbound transfer --------------------------------------
BIG = 50_000  # records of the large zone: its transfer in takes a while


def big_zone(version: int) -> str:
    """Version ``version`` of the large zone: serial ``version``; every record says which
    version it belongs to, and one name exists in this version only."""
    head = (f"$TTL 300\n@ SOA ns1 hostmaster {version} 3600 600 1209600 300\n@ NS ns1\n"
            f"ns1 A 192.0.2.1\nonly{version} A 192.0.2.{version % 250 + 1}\n")
    return head + "".join(f'h{i} TXT "v{version} {i}"\n' for i in range(BIG))


def served_serial(srv: ZkServer, zone: str) -> int | None:
    """The serial served, or None (SERVFAIL before the first transfer)."""
    r = srv.query(zone, "SOA")
    return r.answer[0][0].serial if r.answer else None  # type: ignore[no-any-return]


def whole_version(zone: str, lines: list[str]) -> int:
    """The version an AXFR dump holds; fails unless every record is of that one version."""
    soa = [ln for ln in lines if ln.split()[3] == "soa"]
    assert len(soa) == 1, soa[:3]
    v = int(soa[0].split()[6])
    txt = [ln for ln in lines if ln.split()[3] == "txt"]
    versions = {ln.split(None, 4)[4].split()[0].strip('"') for ln in txt}
    assert versions == {f"v{v}"}, f"records of versions {sorted(versions)[:5]} under serial {v}"
    assert len(txt) == BIG, (len(txt), BIG)
    only = sorted(ln.split()[0] for ln in lines if ln.split()[0].startswith("only"))
    assert only == [f"only{v}.{zone}"], only
    return v


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_during_transfer_in_serves_old_or_new_whole(backend: str, zk_factory,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    require_tool("knotd", "knot")
    require_tool("dig", "bind9-dnsutils")
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    print(f"seed {seed}")
    zone = f"big-{uuid.uuid4().hex[:6]}.test."
    primary = KnotPrimary(tmp_path / "knot-primary", addr=PRIMARY_ADDR, port=free_port(PRIMARY_ADDR))
    primary.serve_zones(PrimaryZone(zone, big_zone(1), ixfr=False), reload=False)
    primary.start().wait_ready()
    database = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    srv: ZkServer = zk_factory(demo=False, database=database).start()

    def dump() -> list[str]:
        return dig_axfr_lines(srv.addr, srv.dns_port, zone, canonical=False)

    def edit(version: int) -> None:
        primary.edit_zone(zone, big_zone(version))
        wait_for(lambda: primary.serial(zone) == version, timeout=60, what="the primary reloaded")

    def transfer(api: httpx2.Client, version: int) -> dict[str, object]:
        r = api.post(f"/zones/{zone}/transfer", params={"timeout": 120})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["serial_after"] == version, out
        return out  # type: ignore[no-any-return]

    try:
        with srv.client() as api:
            r = api.post("/peers", json={"name": "up", "address": PRIMARY_ADDR, "port": primary.port})
            assert r.status_code == 201, r.text
            r = api.post("/zones", json={"name": zone, "kind": "secondary", "primaries": ["up"]})
            assert r.status_code == 201, r.text
            r = api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.1/32"})
            assert r.status_code == 201, r.text
            wait_for(lambda: served_serial(srv, zone) == 1, timeout=120, what="version 1 transferred")
        assert whole_version(zone, dump()) == 1
        # How long a transfer takes: until the new version is served (read), and until it
        # is stored (the outcome).
        edit(2)
        with srv.client() as api:
            t0 = time.monotonic()
            r = api.post(f"/zones/{zone}/transfer", params={"timeout": 0.05})
            assert r.status_code == 202, r.text
            wait_for(lambda: served_serial(srv, zone) == 2, timeout=120, what="version 2 served")
            t_read = time.monotonic() - t0
            wait_for(lambda: srv.events("zone.changed", zone=zone, serial=2), timeout=120,
                     what="version 2 stored")
            t_stored = time.monotonic() - t0
        print(f"transfer: read {t_read:.2f}s, stored {t_stored:.2f}s")
        old = 2
        outcomes: list[tuple[str, str, float]] = []
        t0 = time.monotonic()
        for round_ in range(4):
            new = old + 1
            edit(new)
            with srv.client() as api:
                r = api.post(f"/zones/{zone}/transfer", params={"timeout": 0.01})
                assert r.status_code == 202, r.text
            if round_ % 2 == 0:  # while the transfer is read
                time.sleep(rng.uniform(0.05, 0.95) * t_read)
                phase = "read"
            else:  # while the new version, served already, is written
                wait_for(lambda: served_serial(srv, zone) == new, timeout=120, what="new version served")
                time.sleep(rng.uniform(0, 1.6) * max(t_stored - t_read, 0.05))
                phase = "write"
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            # The primary is stopped while the secondary comes back, so what it serves is
            # what it had stored, not a transfer made since.
            assert primary.proc is not None
            primary.proc.send_signal(signal.SIGSTOP)
            try:
                srv.start()
                got = whole_version(zone, dump())
                assert got in (old, new), (got, old, new)
                with srv.client() as api:
                    assert api.get(f"/zones/{zone}").json()["serial"] == got
                assert srv.serial(zone) == got
            finally:
                primary.proc.send_signal(signal.SIGCONT)
            outcomes.append((phase, "new" if got == new else "old", round(time.monotonic() - t0, 1)))
            if got == old:
                with srv.client() as api:
                    transfer(api, new)
                assert served_serial(srv, zone) == new
            old = new
        print(f"outcomes: {outcomes}")
        assert srv.stop() == 0
    finally:
        primary.stop()
