"""A hostile primary: a small asyncio server (SOA over UDP and TCP, crafted AXFR/IXFR answers
over TCP) that zonekeeper follows as a secondary. An endless transfer, a final SOA that does
not match the first, records outside the zone, a connection dropped midway and an SOA in
the middle: nothing is installed (the zone stays SERVFAIL, or keeps its previous version),
the error is in the transfer-now outcome and in xfr-status, and memory stays bounded."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, wait_for

HOST = "127.0.0.41"
MAX_RECORDS = 20_000
PSS_LIMIT = 300 * 1024 * 1024
TRANSFER_TIMEOUT = 8
DROP = object()  # in a stream: cut the connection here; a float: pause that many seconds

# A crafted answer: lists of RRsets (one message each), DROP, or a pause in seconds; to a
# signed request, messages are signed in the RFC 8945 chain unless marked below.
Stream = Callable[[str, int], Iterator[object]]


@dataclass
class Unsigned:
    """A message sent unsigned, as RFC 8945 §5.3.1 allows: the next signed one covers it."""

    rrsets: list[dns.rrset.RRset]


@dataclass
class Stripped:
    """A message signed by the primary whose TSIG is taken off on the way (the chain of
    signatures goes on as if it had been sent)."""

    rrsets: list[dns.rrset.RRset]


def soa(zone: str, serial: int) -> dns.rrset.RRset:
    return dns.rrset.from_text(zone, 300, "IN", "SOA",
                               f"ns1.{zone} hostmaster.{zone} {serial} 3600 3600 1209600 300")


def rr(name: str, rdtype: str, *rdatas: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, 300, "IN", rdtype, *rdatas)


def good_zone(zone: str, serial: int) -> list[list[dns.rrset.RRset]]:
    """A small, correct AXFR answer, in two messages."""
    return [
        [soa(zone, serial), rr(zone, "NS", f"ns1.{zone}"), rr(f"ns1.{zone}", "A", "192.0.2.1")],
        [rr(f"www.{zone}", "A", "192.0.2.2"), rr(f"v{serial}.{zone}", "TXT", '"version"'),
         soa(zone, serial)],
    ]


def endless(zone: str, serial: int) -> Iterator[object]:
    yield [soa(zone, serial), rr(zone, "NS", f"ns1.{zone}")]
    # 400 names a message, never a closing SOA; the same 20 messages over and over (the
    # cap counts records on the wire, whatever they repeat), each rendered once.
    blocks = [[rr(f"h{i}.{zone}", "A", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
               for i in range(n, n + 400)] for n in range(0, 8000, 400)]
    while True:
        yield from blocks


def trickle(zone: str, serial: int) -> Iterator[object]:
    """A record every 0.2 s, forever: never at the record cap, so the time limit ends it."""
    first, _ = good_zone(zone, serial)
    yield first
    n = 0
    while True:
        yield 0.2
        yield [rr(f"t{n}.{zone}", "A", "192.0.2.9")]
        n += 1


def mismatched_final_soa(zone: str, serial: int) -> Iterator[object]:
    first, *_ = good_zone(zone, serial)
    yield first
    yield [rr(f"www.{zone}", "A", "192.0.2.2"), soa(zone, serial + 1)]


def out_of_zone(zone: str, serial: int) -> Iterator[object]:
    first, last = good_zone(zone, serial)
    yield first
    yield [rr("victim.example.", "A", "192.0.2.66"), rr(f"ns1.{zone}x.", "A", "192.0.2.67"), *last]


def dropped_midway(zone: str, serial: int) -> Iterator[object]:
    first, _ = good_zone(zone, serial)
    yield first
    yield [rr(f"a{i}.{zone}", "A", "192.0.2.3") for i in range(50)]
    yield DROP


def soa_in_the_middle(zone: str, serial: int) -> Iterator[object]:
    """The zone's own SOA again in the middle of a message, then more records."""
    first, last = good_zone(zone, serial)
    yield first
    yield [rr(f"a.{zone}", "A", "192.0.2.3"), soa(zone, serial), rr(f"b.{zone}", "A", "192.0.2.4"),
           *last]


def other_soa_in_the_middle(zone: str, serial: int) -> Iterator[object]:
    """A different apex SOA in the middle: a second version spliced in."""
    first, last = good_zone(zone, serial)
    yield first
    yield [soa(zone, serial + 5)]
    yield last


@dataclass
class Behaviour:
    serial: int
    stream: Stream | None = None  # None: the good zone
    queries: list[str] = field(default_factory=list)  # "AXFR", "IXFR", "SOA" as they came
    sent_records: int = 0


class HostilePrimary:
    """SOA over UDP and TCP from ``zones[zone].serial``; AXFR and IXFR over TCP from its
    stream (IXFR answered AXFR-style: the same stream). Runs its own loop in a thread."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.port = free_port(host)
        self.zones: dict[str, Behaviour] = {}
        self.keyring: dict[dns.name.Name, dns.tsig.Key] = {}  # keys requests may be signed with
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.transports: list[asyncio.BaseTransport] = []

    def start(self) -> HostilePrimary:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for t in self.transports:
                t.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _serve(self) -> None:
        self.server = await asyncio.start_server(self._tcp, self.host, self.port)
        udp, _ = await self.loop.create_datagram_endpoint(lambda: _Udp(self),
                                                          local_addr=(self.host, self.port))
        self.transports.append(udp)

    def answer(self, q: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(q)
        name = q.question[0].name
        b = self.zones.get(name.to_text().lower())
        if b is None:
            r.set_rcode(dns.rcode.REFUSED)
            return r
        b.queries.append(dns.rdatatype.to_text(q.question[0].rdtype))
        r.flags |= dns.flags.AA
        if q.question[0].rdtype == dns.rdatatype.SOA:
            r.answer.append(soa(name.to_text(), b.serial))
        return r

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                q = dns.message.from_wire(await reader.readexactly(size),
                                          keyring=self.keyring or None)
                rdtype = q.question[0].rdtype
                if rdtype not in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
                    await self._send(writer, self.answer(q))
                    continue
                first = self.answer(q)
                b = self.zones.get(q.question[0].name.to_text().lower())
                if b is None:
                    await self._send(writer, first)
                    continue
                zone = q.question[0].name.to_text()
                stream = b.stream(zone, b.serial) if b.stream else iter(good_zone(zone, b.serial))
                rendered: dict[int, tuple[object, bytes]] = {}  # a part sent again goes as it was
                ctx = None  # the TSIG chain's running digest, when the request was signed
                for part in stream:
                    if isinstance(part, float):
                        await asyncio.sleep(part)
                        continue
                    if part is DROP:
                        writer.transport.abort()
                        return
                    seen = rendered.get(id(part))
                    if q.had_tsig:
                        wire, ctx = self._signed(q, part, ctx)
                        part = part.rrsets if isinstance(part, Unsigned | Stripped) else part
                    elif seen is not None:
                        wire = seen[1]
                    else:
                        r = dns.message.make_response(q)
                        r.flags |= dns.flags.AA
                        r.answer.extend(part)  # type: ignore[arg-type]
                        wire = r.to_wire()
                        rendered[id(part)] = (part, wire)  # the part kept: its id stays its own
                    b.sent_records += sum(len(x) for x in part)  # type: ignore[attr-defined]
                    writer.write(len(wire).to_bytes(2, "big") + wire)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _signed(q: dns.message.Message, part: object, ctx: object) -> tuple[bytes, object]:
        """One message of the answer to a signed request, and the chain's digest after it."""
        rrsets = part.rrsets if isinstance(part, Unsigned | Stripped) else part
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        r.answer.extend(rrsets)  # type: ignore[arg-type]
        if isinstance(part, Unsigned):
            r.tsig = None  # type: ignore[assignment]
            wire = r.to_wire()
            ctx.update(wire)  # type: ignore[attr-defined]
            return wire, ctx
        wire = r.to_wire(multi=True, tsig_ctx=ctx)
        ctx = r.tsig_ctx
        if isinstance(part, Stripped):
            r.tsig = None  # type: ignore[assignment]
            wire = r.to_wire()
        return wire, ctx

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, msg: dns.message.Message) -> None:
        wire = msg.to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: HostilePrimary) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            q = dns.message.from_wire(data, keyring=self.owner.keyring or None)
        except Exception:  # noqa: BLE001 - not ours to judge
            return
        self.transport.sendto(self.owner.answer(q).to_wire(), addr)


def pss(pid: int) -> int:
    """Proportional set size of ``pid`` in bytes (smaps_rollup)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no Pss in smaps_rollup")


class PeakPss:
    """Samples the PSS of a process every 20 ms in a thread while in use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, pss(self.pid))
            except OSError:
                return
            self._stop.wait(0.02)

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile() -> Iterator[HostilePrimary]:
    srv = HostilePrimary().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory, hostile: HostilePrimary) -> Iterator[ZkServer]:
    env = {"ZONEKEEPER_SECONDARY__MAX_RECORDS": str(MAX_RECORDS),
           # A transfer that is not cut at the cap ends here at the latest.
           "ZONEKEEPER_SECONDARY__TRANSFER_TIMEOUT": str(TRANSFER_TIMEOUT)}
    srv = ZkServer(tmp_path_factory.mktemp("zk-hostile"), demo=False, env=env).start()
    with srv.client() as c:
        r = c.post("/peers", json={"name": "hostile", "address": hostile.host,
                                   "port": hostile.port})
        assert r.status_code == 201, r.text
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(zk: ZkServer) -> Iterator[httpx2.Client]:
    with zk.client() as c:
        yield c




def xfr_in_lines(zk: ZkServer, zone: str) -> list[dict[str, object]]:
    return zk.events("xfr.in", zone=zone)


def new_secondary(zk: ZkServer, api: httpx2.Client, hostile: HostilePrimary, b: Behaviour,
                  peer: str = "hostile") -> str:
    """A new secondary zone of the hostile primary; returns once its first refresh is over."""
    zone = f"h{uuid.uuid4().hex[:8]}.test."
    hostile.zones[zone] = b
    r = api.post("/zones", json={"name": zone, "kind": "secondary", "primaries": [peer]})
    assert r.status_code == 201, r.text
    wait_for(lambda: xfr_in_lines(zk, zone), timeout=45)  # the first refresh, whatever it did
    return zone


def primary_error(api: httpx2.Client, zone: str, peer: str = "hostile") -> dict[str, object]:
    rows = api.get(f"/zones/{zone}/xfr-status").json()
    row = next(r for r in rows if r["peer"] == peer)
    status = row["primary_status"]
    assert status and status.get("last_error"), row
    return status["last_error"]  # type: ignore[no-any-return]


def check_failed(zk: ZkServer, api: httpx2.Client, zone: str, words: tuple[str, ...],
                 previous: int | None, peer: str = "hostile") -> dict[str, object]:
    """Transfer now: FAILED naming one of ``words``; nothing installed; error in xfr-status."""
    out = api.post(f"/zones/{zone}/transfer", json={}, params={"timeout": 150},
                   timeout=160).json()
    assert out["result"] == "FAILED", out
    assert out["serial_after"] == previous, out
    assert any(w in out["error"].lower() for w in words), out
    err = primary_error(api, zone, peer)
    assert any(w in str(err["error"]).lower() for w in words), err
    r = zk.query(zone, "SOA")
    if previous is None:
        assert r.rcode() == dns.rcode.SERVFAIL
        assert api.get(f"/zones/{zone}").json()["state"] == "unloaded"
    else:
        assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].serial == previous
        txt = zk.query(f"v{previous}.{zone}", "TXT")
        assert txt.rcode() == dns.rcode.NOERROR and txt.answer, "the previous version is gone"
        # Nothing of the crafted transfer reached the zone.
        for probe in ("www", "a0", "a", "b", "h0", "h100"):
            ans = zk.query(f"{probe}.{zone}", "A")
            assert probe == "www" or ans.rcode() == dns.rcode.NXDOMAIN, (probe, ans)
    return out


def with_previous_version(zk: ZkServer, api: httpx2.Client, hostile: HostilePrimary,
                          stream: Stream, peer: str = "hostile") -> str:
    """A zone that holds a good serial 1; then the primary says 2 and sends ``stream``."""
    b = Behaviour(serial=1)
    zone = new_secondary(zk, api, hostile, b, peer)
    wait_for(lambda: zk.query(zone, "SOA").rcode() == dns.rcode.NOERROR)
    assert zk.serial(zone) == 1
    b.stream, b.serial = stream, 2
    return zone


CASES = {
    "mismatched-final-soa": (mismatched_final_soa, ("soa",)),
    "out-of-zone": (out_of_zone, ("out-of-zone", "outside")),
    "dropped-midway": (dropped_midway, ("network", "eof", "closed")),
    "soa-in-the-middle": (soa_in_the_middle, ("after final soa", "soa")),
    "other-soa-in-the-middle": (other_soa_in_the_middle, ("soa",)),
}


@pytest.mark.parametrize("previous", [False, True], ids=["first", "update"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_transfer_installs_nothing(zk: ZkServer, api: httpx2.Client, hostile: HostilePrimary,
                                       case: str, previous: bool) -> None:
    stream, words = CASES[case]
    if previous:
        zone = with_previous_version(zk, api, hostile, stream)
        check_failed(zk, api, zone, words, previous=1)
        # We asked for IXFR first (answered AXFR-style), then AXFR unless the network failed.
        queries = hostile.zones[zone].queries
        assert "IXFR" in queries, queries
    else:
        zone = new_secondary(zk, api, hostile, Behaviour(serial=7, stream=stream))
        check_failed(zk, api, zone, words, previous=None)
    assert not any(ev.get("result") == "ok" and ev.get("serial") != 1
                   for ev in xfr_in_lines(zk, zone)), xfr_in_lines(zk, zone)


@pytest.mark.parametrize("previous", [False, True], ids=["first", "update"])
def test_endless_transfer_stops_at_the_record_cap(zk: ZkServer, api: httpx2.Client,
                                                  hostile: HostilePrimary, previous: bool) -> None:
    assert zk.proc is not None
    with PeakPss(zk.proc.pid) as mem:
        if previous:  # the IXFR is answered AXFR-style, endlessly, then the AXFR too
            zone = with_previous_version(zk, api, hostile, endless)
            b = hostile.zones[zone]
            out = check_failed(zk, api, zone, ("limit",), previous=1)
        else:
            b = Behaviour(serial=3, stream=endless)
            zone = new_secondary(zk, api, hostile, b)
            out = check_failed(zk, api, zone, ("limit",), previous=None)
    assert f"{MAX_RECORDS}" in out["error"], out
    assert mem.peak < PSS_LIMIT, f"zonekeeper's PSS reached {mem.peak / 2**20:.0f} MiB"
    # The transfer was cut near the cap, not by the time limit (socket buffers hold a little).
    assert "longer than" not in out["error"], out
    transfers = b.queries.count("AXFR") + b.queries.count("IXFR")
    # And the primary stopped soon after: what it wrote beyond the cap fits in the socket
    # buffers between us (a few MB each way on loopback; ~20 octets a record here).
    assert b.sent_records < transfers * (MAX_RECORDS + 1_000_000), (b.sent_records, b.queries)
    assert zk.proc.poll() is None


def test_a_good_primary_still_works_afterwards(zk: ZkServer, api: httpx2.Client,
                                               hostile: HostilePrimary) -> None:
    """The same server and peer, now well-behaved: AXFR, then an AXFR-style IXFR answer."""
    zone = with_previous_version(zk, api, hostile, lambda z, s: iter(good_zone(z, s)))
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "FALLBACK" and out["serial_after"] == 2, out
    assert zk.serial(zone) == 2
    assert zk.query(f"v2.{zone}", "TXT").answer
    assert zk.query(f"v1.{zone}", "TXT").rcode() == dns.rcode.NXDOMAIN
    ev = xfr_in_lines(zk, zone)[-1]
    assert ev["type"] == "FALLBACK" and ev["result"] == "ok", ev


def test_ixfr_answer_at_our_own_serial_installs_nothing(zk: ZkServer, api: httpx2.Client,
                                                        hostile: HostilePrimary) -> None:
    """The SOA answer says 2, the IXFR answer is our own serial 1 (say, another copy behind
    the same address): up to date, no new version, no empty journal entry."""
    zone = with_previous_version(zk, api, hostile, lambda z, _s: iter([[soa(z, 1)]]))
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "UPTODATE" and out["serial_after"] == 1, out
    assert hostile.zones[zone].queries.count("IXFR") == 1
    assert len(zk.events("zone.changed", zone=zone)) == 1  # the first AXFR only
    assert zk.serial(zone) == 1


def test_a_transfer_that_never_ends_stops_at_the_time_limit(zk: ZkServer, api: httpx2.Client,
                                                            hostile: HostilePrimary) -> None:
    """Records keep coming, slowly: no read ever times out and the cap is far away; the
    [secondary] transfer_timeout ends it (checked per message, not only on a silent socket)."""
    zone = new_secondary(zk, api, hostile, Behaviour(serial=4, stream=trickle))
    ev = xfr_in_lines(zk, zone)[0]
    assert ev["result"] == "failed" and f"{TRANSFER_TIMEOUT}-second limit" in str(ev["error"]), ev
    err = primary_error(api, zone)
    assert "longer than" in str(err["error"]), err
    assert zk.query(zone, "SOA").rcode() == dns.rcode.SERVFAIL
    assert hostile.zones[zone].sent_records < 20 + TRANSFER_TIMEOUT * 5 * 2


def test_an_older_version_is_refused_unless_forced(zk: ZkServer, api: httpx2.Client,
                                                   hostile: HostilePrimary) -> None:
    """The SOA answer says 2, but the transfer (answered AXFR-style, then the AXFR) holds
    serial 0, older than our 1: refused and kept; a forced full transfer installs it."""
    zone = with_previous_version(zk, api, hostile, lambda z, _s: iter(good_zone(z, 0)))
    out = check_failed(zk, api, zone, ("not newer",), previous=1)
    assert "serial 0" in str(out["error"]), out
    out = api.post(f"/zones/{zone}/transfer", json={"axfr": True}).json()
    assert out["result"] == "AXFR" and out["serial_after"] == 0, out
    assert zk.serial(zone) == 0 and zk.query(f"v0.{zone}", "TXT").answer


# -- TSIG: signatures stripped on the way (RFC 8945 §5.3.1) -------------------------------------
def three_messages(zone: str, serial: int) -> list[list[dns.rrset.RRset]]:
    first, last = good_zone(zone, serial)
    return [first, [rr(f"a{i}.{zone}", "A", "192.0.2.3") for i in range(20)], last]


def stripped_at_the_end(zone: str, serial: int) -> Iterator[object]:
    """Signed first message, then the signatures are taken off: the last one is unsigned."""
    first, middle, last = three_messages(zone, serial)
    yield from (first, Stripped(middle), Stripped(last))


def stripped_in_the_middle(zone: str, serial: int) -> Iterator[object]:
    """One signature taken off in the middle; the last message is signed, but its MAC
    covers the chain as the primary signed it."""
    first, middle, last = three_messages(zone, serial)
    yield from (first, Stripped(middle), last)


def unsigned_run(zone: str, serial: int) -> Iterator[object]:
    """100 unsigned messages in a row, each in the digest, then a signed last one: the MACs
    verify, but RFC 8945 allows at most 99 unsigned between signed ones."""
    first, _middle, last = three_messages(zone, serial)
    yield first
    for i in range(100):
        yield Unsigned([rr(f"u{i}.{zone}", "A", "192.0.2.5")])
    yield last


def unsigned_in_the_middle(zone: str, serial: int) -> Iterator[object]:
    """What RFC 8945 allows: an unsigned message that the next signature covers."""
    first, middle, last = three_messages(zone, serial)
    yield from (first, Unsigned(middle), last)


@pytest.fixture(scope="module")
def signed_peer(zk: ZkServer, api: httpx2.Client, hostile: HostilePrimary) -> str:
    """The hostile primary as a peer with a key: our requests are signed, so are its answers."""
    made = api.post("/tsig-keys", json={"name": "hostile-key", "algorithm": "hmac-sha256"})
    assert made.status_code == 201, made.text
    key = dns.tsig.Key(made.json()["name"], made.json()["secret"], "hmac-sha256")
    hostile.keyring[key.name] = key
    r = api.post("/peers", json={"name": "hostile-signed", "address": hostile.host,
                                 "port": hostile.port, "key": made.json()["name"]})
    assert r.status_code == 201, r.text
    return "hostile-signed"


TSIG_CASES = {
    "stripped-at-the-end": (stripped_at_the_end, ("last message", "not signed")),
    "stripped-in-the-middle": (stripped_in_the_middle, ("does not verify",)),
    "unsigned-run": (unsigned_run, ("99 unsigned",)),
}


@pytest.mark.parametrize("case", list(TSIG_CASES))
def test_stripped_tsig_installs_nothing(zk: ZkServer, api: httpx2.Client, hostile: HostilePrimary,
                                       signed_peer: str, case: str) -> None:
    """A signed transfer whose signatures stop or break partway: refused, the zone keeps
    serving its previous version, and the failure is logged with its reason."""
    stream, words = TSIG_CASES[case]
    zone = with_previous_version(zk, api, hostile, stream, signed_peer)
    check_failed(zk, api, zone, words, previous=1, peer=signed_peer)
    failed = [e for e in xfr_in_lines(zk, zone) if e.get("result") == "failed"]
    assert any(any(w in str(e.get("error")).lower() for w in words) for e in failed), failed
    assert not any(ev.get("result") == "ok" and ev.get("serial") != 1
                   for ev in xfr_in_lines(zk, zone)), xfr_in_lines(zk, zone)


def test_unsigned_message_covered_by_the_next_signature(zk: ZkServer, api: httpx2.Client,
                                                        hostile: HostilePrimary,
                                                        signed_peer: str) -> None:
    """Control: an unsigned message between signed ones, covered by the next MAC, is a
    valid signed transfer (RFC 8945 §5.3.1) and is installed."""
    zone = with_previous_version(zk, api, hostile, unsigned_in_the_middle, signed_peer)
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "FALLBACK" and out["serial_after"] == 2, out
    assert zk.query(f"a0.{zone}", "A").answer and zk.query(f"v2.{zone}", "TXT").answer
