"""AXFR and IXFR out against a real server, checked with dnspython's own transfer reader
(which verifies every TSIG in the multi-message chain) and with dig/kdig."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.zone
import httpx2

from tests.conftest import ZkServer, make_zone, require_tool, wait_for


def big_zone(api: httpx2.Client, name: str, records: int = 3000) -> None:
    text = [f"$ORIGIN {name}", "$TTL 300", "@ SOA ns1 host 10 3600 900 1209600 300", "@ NS ns1",
            "ns1 A 192.0.2.1"]
    text += [f"h{i} TXT \"{i:06d} {'x' * 80}\"" for i in range(records)]
    make_zone(api, name, zone_text="\n".join(text) + "\n")


def keyed_rule(api: httpx2.Client, zone: str, key: str, algorithm: str = "hmac-sha256") -> dns.tsig.Key:
    made = api.post("/tsig-keys", json={"name": key, "algorithm": algorithm}).json()
    api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.0/8", "key": made["name"]})
    return dns.tsig.Key(made["name"], made["secret"], algorithm)


def test_signed_multi_message_axfr_verifies(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    big_zone(api, zone_name)
    for alg in ("hmac-sha256", "hmac-sha512"):
        key = keyed_rule(api, zone_name, f"{alg}-{zone_name}", alg)
        zone = dns.zone.Zone(zone_name)
        # dnspython raises on any bad MAC in the chain (and on an unsigned message).
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30,
                              query=_signed_query(zone_name, key))
        assert len(zone.nodes) == 3002 and zone.get_soa().serial == zk.serial(zone_name)


def _signed_query(zone: str, key: dns.tsig.Key) -> dns.message.QueryMessage:
    # With the options dig and BIND send (COOKIE, EXPIRE, keepalive, NSID), answered in
    # the first message beside the TSIG.
    opts = [dns.edns.GenericOption(10, b"clientck"), dns.edns.GenericOption(9, b""),
            dns.edns.GenericOption(11, b""), dns.edns.GenericOption(3, b"")]
    q = dns.message.make_query(zone, "AXFR", use_edns=0, options=opts)
    q.use_tsig(key)
    return q


def test_dig_and_kdig_with_the_exported_key(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    dig = require_tool("dig", "bind9-dnsutils")
    kdig = require_tool("kdig", "knot-dnsutils")
    big_zone(api, zone_name, 2000)
    keyed_rule(api, zone_name, f"k-{zone_name}")
    spec = api.get(f"/tsig-keys/k-{zone_name}/export", params={"format": "dig"}).text.strip()
    for cmd in ([dig, "-y", spec, "+noall", "+answer"], [kdig, "-y", spec, "+noall", "+answer"]):
        out = subprocess.run([*cmd, "@127.0.0.1", "-p", str(zk.dns_port), zone_name, "AXFR"],
                             capture_output=True, text=True, timeout=60)
        lines = [x for x in out.stdout.splitlines() if x and not x.startswith(";")]
        assert out.returncode == 0, out.stderr
        rrs = [x for x in lines if x.split()[3] != "TSIG"]
        assert len(rrs) == 2004, (cmd[0], len(rrs), out.stderr[-500:])


def test_ixfr_condensed_and_signed(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    key = keyed_rule(api, zone_name, f"ix-{zone_name}")
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.1"}]})
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.2"}]})
    api.put(f"/zones/{zone_name}/rrsets/t/TXT", json={"records": [{"content": '"x"'}]})
    now = zk.serial(zone_name)
    msgs = list(dns.query.xfr("127.0.0.1", zone_name, rdtype=dns.rdatatype.IXFR, serial=start,
                              port=zk.dns_port, keyring={key.name: key}, keyname=key.name,
                              keyalgorithm=key.algorithm, relativize=False, timeout=10))
    rrs = [rr for m in msgs for rrset in m.answer for rr in rrset.to_text().splitlines()]
    soas = [x for x in rrs if " SOA " in x]
    assert [int(x.split()[6]) for x in soas] == [now, start, now, now]
    body = [x for x in rrs if " SOA " not in x]
    assert body == [f"a.{zone_name} 3600 IN A 192.0.2.2", f"t.{zone_name} 3600 IN TXT \"x\""]
    # Current client: one SOA. A serial never served: AXFR-style (the whole zone).
    cur = list(dns.query.xfr("127.0.0.1", zone_name, rdtype=dns.rdatatype.IXFR, serial=now,
                             port=zk.dns_port, keyring={key.name: key}, keyname=key.name,
                             relativize=False, timeout=10))
    assert sum(len(r) for m in cur for r in m.answer) == 1
    # Authoritative, as the incremental answers are (and the UDP one).
    assert all(m.flags & dns.flags.AA for m in cur) and all(m.flags & dns.flags.AA for m in msgs)
    log = zk.log()
    assert "incremental from" in log


def test_ixfr_over_udp_is_the_current_soa_alone(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.1"}]})
    now = zk.serial(zone_name)
    for client_serial in (now - 1, now):
        q = dns.message.make_query(zone_name, "IXFR")
        q.authority.append(dns.rrset.from_text(zone_name, 0, "IN", "SOA", f". . {client_serial} 0 0 0 0"))
        r = dns.query.udp(q, "127.0.0.1", port=zk.dns_port, timeout=5)
        assert r.rcode() == 0 and len(r.answer) == 1 and r.answer[0].rdtype == dns.rdatatype.SOA
        assert r.answer[0][0].serial == now
        assert r.flags & dns.flags.AA
    q = dns.message.make_query(f"www.{zone_name}", "IXFR")
    assert dns.query.udp(q, "127.0.0.1", port=zk.dns_port, timeout=5).rcode() == dns.rcode.NOTAUTH


def test_plain_ixfr_answers_as_the_full_parse_would(zk: ZkServer, api: httpx2.Client,
                                                    zone_name: str) -> None:
    """Unsigned IXFR requests of the usual shape skip dnspython's parse when answered from
    the journal; refusals and one-SOA answers still echo EDNS and carry EDE."""
    make_zone(api, zone_name)
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.7"}]})
    now = zk.serial(zone_name)

    def ixfr(serial: int, *, edns: bool, source: str = "127.0.0.1") -> dns.message.Message:
        q = dns.message.make_query(zone_name, "IXFR", use_edns=0 if edns else False)
        q.authority.append(dns.rrset.from_text(zone_name, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
        return dns.query.tcp(q, "127.0.0.1", port=zk.dns_port, timeout=5, source=source,
                             one_rr_per_rrset=True)

    for edns in (True, False):
        r = ixfr(start, edns=edns)
        rrs = [rr.to_text() for rrset in r.answer for rr in rrset]
        assert r.rcode() == dns.rcode.NOERROR and len(rrs) == 5 and "192.0.2.7" in rrs[-2], rrs
        current = ixfr(now, edns=edns)
        assert [rrset.rdtype for rrset in current.answer] == [dns.rdatatype.SOA]
        assert (current.edns >= 0) is edns
        refused = ixfr(start, edns=edns, source="127.0.0.2")
        assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
        assert [o.code for o in refused.options if isinstance(o, dns.edns.EDEOption)] == (
            [18] if edns else [])
    events = [json.loads(line) for line in zk.log().splitlines() if '"xfr.out"' in line]
    # The one-SOA answers are IXFR answers too, not AXFR-style ones.
    assert {(e["type"], e["style"]) for e in events if e["zone"] == zone_name} == {
        ("IXFR", f"incremental from {start}"), ("IXFR", "current")}


def test_ixfr_max_ratio_change_applies_to_the_current_version(zk: ZkServer, api: httpx2.Client,
                                                              zone_name: str) -> None:
    """A new ratio takes effect at once, even for a client serial already answered under the
    old one; null puts it back to the default (1.0)."""
    make_zone(api, zone_name, rrsets=[{"name": f"h{i}" if i else "ns1", "type": "A",
                                       "records": [{"content": f"192.0.2.{i + 1}"}]} for i in range(6)])
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.8"}]})

    def ixfr_records() -> int:
        msgs = dns.query.xfr("127.0.0.1", zone_name, rdtype=dns.rdatatype.IXFR, serial=start,
                             port=zk.dns_port, relativize=False, timeout=10)
        return sum(len(rrset) for m in msgs for rrset in m.answer)

    r = api.patch(f"/zones/{zone_name}", json={"ixfr_max_ratio": 0.01})
    assert r.status_code == 200 and r.json()["ixfr_max_ratio"] == 0.01, r.text
    whole = ixfr_records()  # AXFR-style: the one-RR difference is over 0.01 x owners
    assert whole == 10  # SOA, NS, ns1, h1..h5, a, SOA
    r = api.patch(f"/zones/{zone_name}", json={"ixfr_max_ratio": None})
    assert r.status_code == 200 and r.json()["ixfr_max_ratio"] == 1.0, r.text
    assert ixfr_records() == 5 < whole  # SOA new, SOA old, SOA new, a A, SOA new
    styles = [e["style"] for e in _xfr_events(zk, zone_name, 2)]  # (logged after the answer)
    assert styles[-2].startswith("axfr-style: the difference") and styles[-1] == f"incremental from {start}"


def _framed(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


def _read_framed(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` length-prefixed messages from ``sock``."""
    buf = b""
    out: list[bytes] = []
    while len(out) < count:
        while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(out)} of {count} messages"
            buf += chunk
        n = int.from_bytes(buf[:2], "big")
        out.append(buf[2 : 2 + n])
        buf = buf[2 + n :]
    return out


def _ixfr_query(zone: str, serial: int, qid: int, *, edns: bool = False,
                key: dns.tsig.Key | None = None) -> dns.message.Message:
    q = dns.message.make_query(zone, "IXFR", use_edns=0 if edns else False)
    q.id = qid
    q.authority.append(dns.rrset.from_text(zone, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    if key is not None:
        q.use_tsig(key)
    return q


def _xfr_events(zk: ZkServer, zone: str, count: int) -> list[dict[str, object]]:
    """The zone's ``xfr.out`` lines once there are ``count`` (a transfer logs after its
    last write, so the line may follow the answer by a moment)."""
    deadline = time.monotonic() + 10
    while True:
        events = zk.events("xfr.out", zone=zone)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_pipelined_ixfr_requests_on_one_connection(zk: ZkServer, api: httpx2.Client,
                                                   zone_name: str) -> None:
    """Requests sent together on one connection are answered in order: the first of each
    kind from the journal, the same again (other ID, other case) from the answer already
    made, signed requests signed, and every transfer logged with the same fields."""
    make_zone(api, zone_name)
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    key = keyed_rule(api, zone_name, f"pipe-{zone_name}")
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.9"}]})
    now = zk.serial(zone_name)
    queries = [
        _ixfr_query(zone_name, start, 1),
        _ixfr_query(zone_name, now, 2, edns=True),
        _ixfr_query(zone_name.upper(), start, 3),
        _ixfr_query(zone_name, start, 4, key=key),
        _ixfr_query(zone_name, now, 5, edns=True),
        _ixfr_query(zone_name, start, 6),
        _ixfr_query(zone_name, now, 7, key=key),
        _ixfr_query(zone_name, start, 8),
    ]
    with socket.create_connection(("127.0.0.1", zk.dns_port), timeout=10) as s:
        s.sendall(b"".join(_framed(q.to_wire()) for q in queries))
        answers = _read_framed(s, len(queries))
        # The connection still serves what comes after, answered already or not.
        s.sendall(_framed(_ixfr_query(zone_name, start, 9).to_wire()))
        (later,) = _read_framed(s, 1)
    assert [int.from_bytes(a[:2], "big") for a in answers] == list(range(1, 9))
    assert later[2:] == answers[0][2:] and later[:2] == b"\x00\x09"
    texts = []
    for q, wire in zip(queries, answers, strict=True):
        signed = q.had_tsig
        msg = dns.message.from_wire(wire, keyring={key.name: key} if signed else None,
                                    request_mac=q.mac if signed else b"", one_rr_per_rrset=True)
        assert msg.rcode() == dns.rcode.NOERROR and msg.had_tsig is signed
        assert msg.question[0].name.to_text() == q.question[0].name.to_text()
        texts.append([rr.to_text().lower() for rrset in msg.answer for rr in rrset])
    incremental = texts[0]
    assert len(incremental) == 5 and "192.0.2.9" in incremental[-2], incremental
    assert texts[2] == texts[3] == texts[5] == texts[7] == incremental
    assert texts[1] == texts[4] == texts[6] == [incremental[0]]  # current: one SOA
    # The same request, ID aside, gets the same bytes.
    assert answers[5][2:] == answers[7][2:] == answers[0][2:] and answers[4][2:] == answers[1][2:]
    events = _xfr_events(zk, zone_name, len(queries) + 1)
    assert len(events) == len(queries) + 1

    def fields(e: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in e.items() if k not in ("duration_ms", "timestamp")}

    assert fields(events[5]) == fields(events[7]) == fields(events[8]) == fields(events[0])
    assert fields(events[4]) == fields(events[1])
    assert [(e["key"], e["style"]) for e in events[:8]] == [
        (None, f"incremental from {start}"), (None, "current"), (None, f"incremental from {start}"),
        (key.name.to_text(), f"incremental from {start}"), (None, "current"),
        (None, f"incremental from {start}"), (key.name.to_text(), "current"),
        (None, f"incremental from {start}")]
    assert all(e["type"] == "IXFR" and e["result"] == "ok" for e in events)


def test_answers_kept_follow_access_changes(zk: ZkServer, api: httpx2.Client,
                                            zone_name: str) -> None:
    """An answer kept for a request is sent again only while access allows it: a deny rule,
    outgoing transfers off or a linked peer with IXFR off apply from the next request."""
    make_zone(api, zone_name)
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.9"}]})
    now = zk.serial(zone_name)

    def ask(serial: int) -> dns.message.Message:
        q = _ixfr_query(zone_name, serial, 77, edns=True)
        return dns.query.tcp(q, "127.0.0.1", port=zk.dns_port, timeout=5, one_rr_per_rrset=True)

    def ok(serial: int, records: int) -> None:
        for _ in range(2):  # the second from the answer kept
            r = ask(serial)
            assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == records, r

    def refused(serial: int) -> None:
        r = ask(serial)
        assert r.rcode() == dns.rcode.REFUSED and not r.answer, r
        assert [o.code for o in r.options if isinstance(o, dns.edns.EDEOption)] == [18]

    ok(start, 5)
    ok(now, 1)
    deny = api.post("/acls", json={"zone": zone_name, "action": "transfer",
                                   "network": "127.0.0.1/32", "effect": "deny"})
    assert deny.status_code == 201, deny.text
    refused(start)
    refused(now)
    assert api.delete(f"/acls/{deny.json()['id']}").status_code == 204
    ok(start, 5)
    assert api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": False}).status_code == 200
    refused(start)
    refused(now)
    assert api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": True}).status_code == 200
    ok(start, 5)
    # A linked secondary at this address that takes no IXFR: the whole zone instead.
    peer = f"p-{zone_name.split('.')[0]}"
    r = api.post("/peers", json={"name": peer, "address": "127.0.0.1", "port": 53,
                                 "notify": False, "ixfr": False})
    assert r.status_code == 201, r.text
    assert api.put(f"/zones/{zone_name}/peers/{peer}", json={"role": "secondary"}).status_code < 300
    whole = ask(start)  # SOA, NS, ns1 A, a A, SOA: the zone, not SOA, SOA, SOA, a A, SOA
    assert whole.rcode() == dns.rcode.NOERROR and whole.answer[1].rdtype == dns.rdatatype.NS
    ok(now, 1)  # one SOA is the answer to a current client whatever it takes
    refusals = zk.events("xfr.refused", zone=zone_name)
    assert len(refusals) == 4
    # (logged once the answer is sent, so maybe just after the client has read it)
    wait_for(lambda: zk.events("xfr.out", zone=zone_name, type="AXFR-style IXFR"), 5,
             "the AXFR-style answer logged")


def _read_transfer(sock: socket.socket, records: int, *, pause_s: float = 0.0) -> int:
    """Read ``records`` records of a transfer (counted from the headers, as rawxfr.py does)
    and return the count; ``pause_s`` after each of the first 20 reads (a slow reader: the
    server's buffers fill and it waits). Nothing may follow the last message."""
    buf = b""
    got = reads = 0
    while got < records:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {got} of {records} records"
        buf += chunk
        reads += 1
        while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
            n = int.from_bytes(buf[:2], "big")
            assert buf[5] & 0x0F == dns.rcode.NOERROR
            got += int.from_bytes(buf[8:10], "big")
            buf = buf[2 + n :]
        if reads <= 20:
            time.sleep(pause_s)
    assert not buf
    return got


def _huge_zone(api: httpx2.Client, name: str) -> int:
    """A zone of ~6.5 MB: more than the kernel's socket buffers hold (4 MB for sending), so a
    reader that lags makes the server wait for room. Returns its AXFR record count."""
    text = [f"$ORIGIN {name}", "$TTL 300", "@ SOA ns1 host 10 3600 900 1209600 300", "@ NS ns1",
            "ns1 A 192.0.2.1"]
    strings = " ".join(f'"{c * 250}"' for c in "wxyz")
    text += [f"h{i} TXT \"{i:06d}\" {strings}" for i in range(6400)]
    make_zone(api, name, zone_text="\n".join(text) + "\n")
    api.post("/acls", json={"zone": name, "action": "transfer", "network": "127.0.0.1/32"})
    return 6404  # SOA, NS, ns1 A, the TXT records, SOA


def test_slow_reader_gets_the_whole_axfr(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    records = _huge_zone(api, zone_name)
    q = dns.message.make_query(zone_name, "AXFR")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        s.settimeout(30)
        s.connect(("127.0.0.1", zk.dns_port))
        s.sendall(_framed(q.to_wire()))
        time.sleep(0.5)  # the server fills the buffers and waits for room
        assert _read_transfer(s, records, pause_s=0.02) == records
        # The connection then serves the next request.
        s.sendall(_framed(dns.message.make_query(zone_name, "SOA").to_wire()))
        (soa,) = _read_framed(s, 1)
        assert dns.message.from_wire(soa).answer
    (event,) = _xfr_events(zk, zone_name, 1)
    assert event["result"] == "ok" and event["records"] == records


def test_stalled_reader_is_cut_at_the_send_timeout(zk_factory) -> None:  # type: ignore[no-untyped-def]
    srv: ZkServer = zk_factory(env={"ZONEKEEPER_DNS__XFR_SEND_TIMEOUT": "1"}).start()
    zone = "stalled.test."
    with srv.client() as api:
        _huge_zone(api, zone)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", srv.dns_port))
        s.sendall(_framed(dns.message.make_query(zone, "AXFR").to_wire()))
        events = _xfr_events(srv, zone, 1)  # nothing read meanwhile
    assert [(e["type"], e["result"]) for e in events] == [("AXFR", "timeout")]


def _transfer(port: int, q: dns.message.Message, soas: int) -> list[tuple[bytes, dns.message.Message]]:
    """The messages of one transfer (wire and parsed), read raw until ``soas`` SOA records
    have come (TSIG left unchecked here)."""
    out: list[tuple[bytes, dns.message.Message]] = []
    seen = 0
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_framed(q.to_wire()))
        while seen < soas:
            while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                chunk = s.recv(65536)
                assert chunk, f"closed after {len(out)} messages"
                buf += chunk
            n = int.from_bytes(buf[:2], "big")
            wire = buf[2 : 2 + n]
            msg = dns.message.from_wire(wire, keyring=False, one_rr_per_rrset=True)
            buf = buf[2 + n :]
            seen += sum(1 for rrset in msg.answer if rrset.rdtype == dns.rdatatype.SOA)
            out.append((wire, msg))
    assert not buf
    return out


def test_transfer_answers_echo_edns(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    """A transfer request with EDNS gets an OPT (version 0, our payload size, its DO bit) in
    the first message of the answer (RFC 6891 §7, RFC 5936 §2.2.5), signed or not, AXFR or
    IXFR, from the journal or from the answer kept; without EDNS, no OPT anywhere. Another
    EDNS version is answered BADVERS."""
    big_zone(api, zone_name)
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    key = keyed_rule(api, zone_name, f"edns-{zone_name}")
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.5"}]})
    now = zk.serial(zone_name)

    def request(rdtype: str, *, edns: int | bool, do: bool = False,
                signed: bool = False) -> dns.message.Message:
        q = dns.message.make_query(zone_name, rdtype, use_edns=edns, want_dnssec=do)
        if rdtype == "IXFR":
            q.authority.append(dns.rrset.from_text(zone_name, 0, "IN", "SOA", f". . {start} 0 0 0 0"))
        if signed:
            q.use_tsig(key)
        return q

    for rdtype, soas in (("AXFR", 2), ("IXFR", 4), ("IXFR", 4)):  # the 2nd IXFR: answer kept
        for edns, do, signed in ((False, False, False), (0, False, False), (0, True, False),
                                 (0, True, True)):
            q = request(rdtype, edns=edns, do=do, signed=signed)
            wires = _transfer(zk.dns_port, q, soas)
            msgs = [m for _w, m in wires]
            assert msgs[0].rcode() == dns.rcode.NOERROR and msgs[0].flags & dns.flags.AA
            assert (len(msgs) > 1) is (rdtype == "AXFR")
            if edns is False:
                assert all(m.edns == -1 for m in msgs)
            else:
                first = msgs[0]
                assert first.edns == 0 and first.payload == 1232 and not first.options
                assert bool(first.ednsflags & dns.flags.DO) is do
                assert all(m.edns == -1 for m in msgs[1:])
            assert all(m.had_tsig is signed for m in msgs)
            if signed and rdtype == "IXFR":
                # One message: its MAC covers the OPT.
                (wire, _m), = wires
                dns.message.from_wire(wire, keyring={key.name: key}, request_mac=q.mac)
            elif signed:
                # dnspython's reader checks every MAC of the chain (the first covers the OPT).
                zone = dns.zone.Zone(zone_name)
                dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10,
                                      query=request(rdtype, edns=0, do=True, signed=True))
                assert zone.get_soa().serial == now
    for rdtype in ("AXFR", "IXFR"):
        q = request(rdtype, edns=1)
        r = dns.query.tcp(q, "127.0.0.1", port=zk.dns_port, timeout=5)
        assert r.rcode() == dns.rcode.BADVERS and r.edns == 0 and not r.answer
    events = _xfr_events(zk, zone_name, 13)
    assert [e["type"] for e in events] == ["AXFR"] * 5 + ["IXFR"] * 8
    assert all(e["result"] == "ok" for e in events)


@contextlib.contextmanager
def _held(zk: ZkServer) -> Iterator[None]:
    """The server process stopped (SIGSTOP) for the block and resumed after: connections
    made meanwhile are accepted with their first request already in the socket."""
    assert zk.proc is not None
    os.kill(zk.proc.pid, signal.SIGSTOP)
    try:
        yield
        time.sleep(0.1)
    finally:
        os.kill(zk.proc.pid, signal.SIGCONT)


def _one_answer(port: int, q: dns.message.Message) -> bytes:
    """The wire of a one-message answer to ``q`` over a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_framed(q.to_wire()))
        (answer,) = _read_framed(s, 1)
    return answer


def test_first_request_answered_at_accept_then_the_connection_goes_on(
        zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    """The requests that came with the handshake are answered as the connection is accepted
    as far as they need no task (queries, IXFRs whose answers are known); a transfer that
    needs serving and whatever follows it, and what comes later, are answered by the
    connection's transport, all in order on the same connection. A request of another
    opcode that names IXFR is not a transfer (NOTIMP)."""
    make_zone(api, zone_name)
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.8"}]})
    known = _one_answer(zk.dns_port, _ixfr_query(zone_name, start, 1))  # made (and kept) here
    soa = dns.message.make_query(zone_name, "SOA", id=2)
    with socket.create_connection(("127.0.0.1", zk.dns_port), timeout=10) as s:
        with _held(zk):
            s.sendall(_framed(_ixfr_query(zone_name, start, 1).to_wire()) + _framed(soa.to_wire())
                      + _framed(_ixfr_query(zone_name, start, 3).to_wire()))
        first, second, third = _read_framed(s, 3)
        s.sendall(_framed(_ixfr_query(zone_name, start, 4).to_wire()))
        (fourth,) = _read_framed(s, 1)
    assert first == known
    assert third[2:] == fourth[2:] == known[2:] and third[:2] == b"\x00\x03" and fourth[:2] == b"\x00\x04"
    r = dns.message.from_wire(second)
    assert r.id == 2 and r.answer[0].rdtype == dns.rdatatype.SOA
    events = _xfr_events(zk, zone_name, 4)
    assert [(e["style"], e["result"]) for e in events] == [(f"incremental from {start}", "ok")] * 4
    # A query, then a transfer that needs serving (AXFR), then a query: the first answered at
    # accept, the rest by the connection's transport once it has one, in order.
    axfr = dns.message.make_query(zone_name, "AXFR", id=7)
    with socket.create_connection(("127.0.0.1", zk.dns_port), timeout=10) as s:
        with _held(zk):
            s.sendall(_framed(dns.message.make_query(zone_name, "SOA", id=6).to_wire())
                      + _framed(axfr.to_wire())
                      + _framed(dns.message.make_query(zone_name, "NS", id=8).to_wire()))
        got = [dns.message.from_wire(w) for w in _read_framed(s, 3)]
    assert [m.id for m in got] == [6, 7, 8]
    assert got[0].answer[0].rdtype == dns.rdatatype.SOA and got[2].answer[0].rdtype == dns.rdatatype.NS
    assert [rrset.rdtype for rrset in got[1].answer][0] == dns.rdatatype.SOA and len(got[1].answer) > 2
    update = _ixfr_query(zone_name, start, 5)
    update.set_opcode(dns.opcode.UPDATE)
    with socket.create_connection(("127.0.0.1", zk.dns_port), timeout=10) as s:
        s.sendall(_framed(update.to_wire()))
        (refused,) = _read_framed(s, 1)
    # An UPDATE whose zone section is not one IN SOA question is malformed (RFC 2136 3.1.1).
    assert dns.message.from_wire(refused).rcode() == dns.rcode.FORMERR
    assert [e["type"] for e in zk.events("xfr.out", zone=zone_name)] == ["IXFR"] * 4 + ["AXFR"]


def test_big_answer_at_accept_to_a_small_window(zk: ZkServer, api: httpx2.Client,
                                                zone_name: str) -> None:
    """A known answer of ~55 KB written at accept to a client with a 4 KiB receive window
    arrives whole and once (what a socket does not take at once is finished by the
    connection's transport: tests/unit/test_tcp_acceptor.py)."""
    records = [{"content": f'"{i:03d} {"y" * 200}"'} for i in range(120)]
    make_zone(api, zone_name, rrsets=[{"name": "ns1", "type": "A", "records": [{"content": "192.0.2.1"}]},
                                      {"name": "big", "type": "TXT", "records": records}])
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    # 240 RRs changed in a zone of 3 owners: incremental all the same.
    assert api.patch(f"/zones/{zone_name}", json={"ixfr_max_ratio": 100}).status_code == 200
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/big/TXT",
            json={"records": [{"content": f'"{i:03d} {"z" * 200}"'} for i in range(120)]})
    known = _one_answer(zk.dns_port, _ixfr_query(zone_name, start, 1))
    assert 40_000 < len(known) < 65_000  # one message, kept for requests of its shape
    styles = [e["style"] for e in _xfr_events(zk, zone_name, 1)]
    assert styles == [f"incremental from {start}"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        with _held(zk):
            s.connect(("127.0.0.1", zk.dns_port))
            s.sendall(_framed(_ixfr_query(zone_name, start, 1).to_wire()))
        time.sleep(0.5)  # the client reads late
        (answer,) = _read_framed(s, 1)
        s.settimeout(0.5)
        try:
            extra = s.recv(1)
        except TimeoutError:
            extra = b""
    assert answer == known and extra == b""
    events = _xfr_events(zk, zone_name, 2)
    assert [(e["bytes"], e["result"], e["style"]) for e in events] == [
        (len(known) + 2, "ok", f"incremental from {start}")] * 2


def test_axfr_image_is_built_in_the_background_after_a_start(tmp_path: Path) -> None:
    """Every zone served gets its AXFR image after a start, with no transfer asked for (and
    after a zone is created): the first AXFR finds it built. The transfer is still whole.
    (Without the image cache: with it, the image is read back instead, below.)"""
    zk = ZkServer(tmp_path, demo=False, env={"ZONEKEEPER_DNS__AXFR_IMAGE_CACHE": ""}).start()
    try:
        with zk.client() as api:
            big_zone(api, "warm.test.", 500)
            api.post("/acls", json={"zone": "warm.test.", "action": "transfer", "network": "127.0.0.0/8"})
        serial = zk.serial("warm.test.")
        wait_for(lambda: zk.events("xfr.image_built", zone="warm.test.", serial=serial),
                 what="the image of a new zone built without a transfer")
        zk.stop()
        zk.start()
        wait_for(lambda: len(zk.events("xfr.image_built", zone="warm.test.", serial=serial)) == 2,
                 what="the image built again after the start, without a transfer")
        assert not zk.events("xfr.out")
        assert not zk.events("xfr.images_saved") and not (tmp_path / "zonekeeper.db.axfr-images").exists()
        zone = dns.zone.Zone("warm.test.")
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30)
        assert len(zone.nodes) == 502 and zone.get_soa().serial == serial
        assert len(zk.events("xfr.image_built", zone="warm.test.")) == 2  # not built again
    finally:
        zk.stop()


def _axfr_stream(port: int, zone: str) -> list[bytes]:
    """Every message of an AXFR of ``zone`` (query ID 7), as sent."""
    q = dns.message.make_query(zone, "AXFR")
    q.id = 7
    out: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_framed(q.to_wire()))
        soas = 0
        buf = b""
        while soas < 2:
            while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                chunk = s.recv(65536)
                assert chunk, f"closed after {len(out)} messages"
                buf += chunk
            size = int.from_bytes(buf[:2], "big")
            msg, buf = buf[2 : 2 + size], buf[2 + size :]
            out.append(msg)
            parsed = dns.message.from_wire(msg)
            assert parsed.rcode() == dns.rcode.NOERROR, parsed
            soas += sum(1 for rr in parsed.answer if rr.rdtype == dns.rdatatype.SOA)
    return out


def test_axfr_image_kept_across_a_restart(tmp_path: Path) -> None:
    """At a stop the images and node tables are written beside the SQLite file (private);
    at the next start the node table is read instead of the zone's rows, and the image
    before DNS listens: no build, the same bytes as before the stop, and an edit then
    patches both."""
    zk = ZkServer(tmp_path, demo=False).start()
    cache = tmp_path / "zonekeeper.db.axfr-images"
    try:
        with zk.client() as api:
            big_zone(api, "kept.test.", 3000)
            api.post("/acls", json={"zone": "kept.test.", "action": "transfer", "network": "127.0.0.0/8"})
        serial = zk.serial("kept.test.")
        wait_for(lambda: zk.events("xfr.image_built", zone="kept.test.", serial=serial),
                 what="the image built")
        before = _axfr_stream(zk.dns_port, "kept.test.")
        assert len(before) > 1  # several messages: buckets and chunks are kept as they were
        zk.stop()
        (saved,) = zk.events("xfr.images_saved")
        assert saved["written"] == 1 and saved["nodes_written"] == 1, saved
        files = sorted(cache.iterdir())
        assert [re.sub(r"\d+", "N", f.name) for f in files] == [
            "stamp", "zone-N.axfr", "zone-N.nodes"]
        assert cache.stat().st_mode & 0o777 == 0o700
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
        zk.start()
        (answering,) = zk.events("dns.answering")
        assert answering["saved_tables"] == 1 and answering["stale_tables"] == 0, answering
        (restored,) = zk.events("xfr.images_restored")
        assert restored["restored"] == 1 and restored["stale"] == 0, restored
        assert _axfr_stream(zk.dns_port, "kept.test.") == before
        assert len(zk.events("xfr.image_built", zone="kept.test.")) == 1  # the first start's only
        with zk.client() as api:
            r = api.patch("/zones/kept.test./rrsets", json={"rrsets": [
                {"name": "h17", "type": "TXT", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": '"edited"'}]},
                {"name": "new", "type": "A", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": "192.0.2.9"}]}]})
            assert r.status_code == 200, r.text
        zone = dns.zone.Zone("kept.test.")
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30)
        assert len(zone.nodes) == 3000 + 3 and zone.get_soa().serial == serial + 1
        assert [rd.to_text() for rd in zone.find_rdataset("h17", "TXT")] == ['"edited"']
        assert [rd.to_text() for rd in zone.find_rdataset("h18", "TXT")] == [f'"000018 {"x" * 80}"']
        zk.stop()
        # Unchanged since the last start but for the edit: the files are written again.
        assert zk.events("xfr.images_saved")[-1]["written"] == 1
        assert zk.events("xfr.images_saved")[-1]["nodes_written"] == 1
        zk.start()  # the edited version's table: read back, and served as edited
        assert zk.events("dns.answering")[-1]["saved_tables"] == 1
        assert [rr.to_text() for rr in zk.query("new.kept.test.").answer] == [
            "new.kept.test. 60 IN A 192.0.2.9"]
        assert zk.query("h17.kept.test.", "TXT").answer[0][0].to_text() == '"edited"'
        zk.stop()
        assert zk.events("xfr.images_saved")[-1]["nodes_kept"] == 1
        # The long way (no early answers): read back all the same.
        early = len(zk.events("dns.answering"))
        zk.extra_env = {"ZONEKEEPER_DNS__UDP_FAST_PATH": "false"}
        zk.start()
        assert len(zk.events("dns.answering")) == early
        assert zk.events("zones.loaded")[-1]["saved_tables"] == 1
        assert zk.query("h17.kept.test.", "TXT").answer[0][0].to_text() == '"edited"'
        zk.stop()
    finally:
        zk.stop()


def test_a_stop_right_after_an_import_keeps_its_image(tmp_path: Path) -> None:
    """A zone imported just before a stop: its image is kept (the stop waits for the build
    if it is still under way: tests/unit/test_image_warmer.py), so the first AXFR after the
    start reads it back instead of building it."""
    zk = ZkServer(tmp_path, demo=False).start()
    try:
        with zk.client() as api:
            api.post("/acls", json={"action": "transfer", "network": "127.0.0.0/8"}).raise_for_status()
            big_zone(api, "late.test.", 40000)
        zk.stop()  # at once
        (built,) = zk.events("xfr.image_built", zone="late.test.")
        serial = built["serial"]
        (saved,) = zk.events("xfr.images_saved")
        assert saved["written"] == 1, saved
        zk.start()
        (restored,) = zk.events("xfr.images_restored")
        assert restored["restored"] == 1, restored
        zone = dns.zone.Zone("late.test.")
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30)
        assert len(zone.nodes) == 40000 + 2 and zone.get_soa().serial == serial
        assert len(zk.events("xfr.image_built", zone="late.test.")) == 1  # before the stop only
    finally:
        zk.stop()


def test_images_only_for_zones_some_client_may_transfer(tmp_path: Path) -> None:
    """No AXFR image is built ahead for a zone no rule or linked secondary lets anyone
    transfer (it would only take memory); one is once a rule or a secondary link allows
    it, or on demand."""
    zk = ZkServer(tmp_path, demo=False).start()
    try:
        with zk.client() as api:
            big_zone(api, "closed.test.", 1000)
            big_zone(api, "ruled.test.", 1000)
            big_zone(api, "linked.test.", 1000)
            api.post("/acls", json={"zone": "ruled.test.", "action": "transfer",
                                    "network": "127.0.0.0/8"}).raise_for_status()
            # The warmer takes zones in turn: the two published before this one were not
            # queued, or they would have been built first.
            wait_for(lambda: zk.events("xfr.image_built", zone="ruled.test."), what="ruled image")
            assert [e["zone"] for e in zk.events("xfr.image_built")] == ["ruled.test."]
            r = zk.query("closed.test.", "AXFR", tcp=True)
            assert r.rcode() == dns.rcode.REFUSED
            api.post("/peers", json={"name": "down", "address": "127.0.0.77"}).raise_for_status()
            assert api.put("/zones/linked.test./peers/down", json={"role": "secondary"}).status_code == 200
            wait_for(lambda: zk.events("xfr.image_built", zone="linked.test."), what="linked image")
            assert not zk.events("xfr.image_built", zone="closed.test.")
        zk.stop()
        assert zk.events("xfr.images_saved")[-1]["written"] == 2
        zk.start()
        assert zk.events("xfr.images_restored")[-1]["restored"] == 2
        with zk.client() as api:  # a rule that lets 127.0.0.1 transfer it: the build on demand
            api.post("/acls", json={"zone": "closed.test.", "action": "transfer",
                                    "network": "127.0.0.1/32"}).raise_for_status()
        zone = dns.zone.Zone("closed.test.")
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30)
        assert len(zone.nodes) == 1000 + 2
        assert len(zk.events("xfr.image_built", zone="closed.test.")) == 1
    finally:
        zk.stop()


def test_a_stale_or_damaged_image_file_is_not_used(tmp_path: Path) -> None:
    """A file of another version of the zone (changed while the cache was off) or a damaged
    one is skipped: the image is built, the zone's rows are read, and the transfer and the
    answers are the zone's content."""
    zk = ZkServer(tmp_path, demo=False).start()
    cache = tmp_path / "zonekeeper.db.axfr-images"
    try:
        with zk.client() as api:
            big_zone(api, "stale.test.", 1000)
            api.post("/acls", json={"zone": "stale.test.", "action": "transfer", "network": "127.0.0.0/8"})
        serial = zk.serial("stale.test.")
        wait_for(lambda: zk.events("xfr.image_built", zone="stale.test."), what="the image built")
        zk.stop()
        (saved,) = cache.glob("*.axfr")
        (table,) = cache.glob("*.nodes")
        kept, kept_table = saved.read_bytes(), table.read_bytes()
        # Changed while the cache is off: the file still holds the version before.
        zk.extra_env = {"ZONEKEEPER_DNS__AXFR_IMAGE_CACHE": ""}
        zk.start()
        with zk.client() as api:
            r = api.patch("/zones/stale.test./rrsets", json={"rrsets": [
                {"name": "h5", "type": "TXT", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": '"changed"'}]}]})
            assert r.status_code == 200, r.text
        zk.stop()
        assert saved.read_bytes() == kept and table.read_bytes() == kept_table
        zk.extra_env = {}
        zk.start()
        answering = zk.events("dns.answering")[-1]
        assert answering["saved_tables"] == 0 and answering["stale_tables"] == 1, answering
        assert zk.query("h5.stale.test.", "TXT").answer[0][0].to_text() == '"changed"'
        (restored,) = zk.events("xfr.images_restored")
        assert restored["restored"] == 0 and restored["stale"] == 1, restored
        wait_for(lambda: zk.events("xfr.image_built", zone="stale.test.", serial=serial + 1),
                 what="the image built for the version served")
        zone = dns.zone.Zone("stale.test.")
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30)
        assert [rd.to_text() for rd in zone.find_rdataset("h5", "TXT")] == ['"changed"']
        zk.stop()
        # Damaged: the header right, the rest cut short.
        for damaged in (saved, table):
            data = damaged.read_bytes()
            damaged.write_bytes(data[: len(data) // 2])
        zk.start()
        answering = zk.events("dns.answering")[-1]
        assert answering["saved_tables"] == 0 and answering["stale_tables"] == 1, answering
        assert zk.events("zones.nodes_file_unreadable")
        assert zk.query("h5.stale.test.", "TXT").answer[0][0].to_text() == '"changed"'
        (restored,) = zk.events("xfr.images_restored")[-1:]
        assert restored["restored"] == 0 and restored["stale"] == 1, restored
        assert zk.events("xfr.image_unreadable")
        zone = dns.zone.Zone("stale.test.")
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30)
        assert len(zone.nodes) == 1002
        assert [rd.to_text() for rd in zone.find_rdataset("h5", "TXT")] == ['"changed"']
    finally:
        zk.stop()


def test_only_zones_of_some_size_are_kept(tmp_path: Path) -> None:
    """A small zone's image is built at the start (milliseconds), not kept in a file."""
    zk = ZkServer(tmp_path, demo=False).start()
    try:
        with zk.client() as api:
            api.post("/acls", json={"action": "transfer", "network": "127.0.0.0/8"}).raise_for_status()
            big_zone(api, "small.test.", 50)
            big_zone(api, "large.test.", 1000)
        wait_for(lambda: len(zk.events("xfr.image_built")) == 2, what="both images built")
        zk.stop()
        assert zk.events("xfr.images_saved")[-1]["written"] == 1
        assert len(list((tmp_path / "zonekeeper.db.axfr-images").glob("*.axfr"))) == 1
        # The node tables: the large zone's in a file of its own, the small ones' together.
        assert sorted(re.sub(r"\d+", "N", f.name) for f in
                      (tmp_path / "zonekeeper.db.axfr-images").glob("*.nodes")) == [
            "small-zones.nodes", "zone-N.nodes"]
        zk.start()
        assert zk.events("xfr.images_restored")[-1]["restored"] == 1
        wait_for(lambda: zk.events("xfr.image_built", zone="small.test.")[1:],
                 what="the small zone's image built again")
        assert len(zk.events("xfr.image_built", zone="large.test.")) == 1
    finally:
        zk.stop()


def test_small_zones_tables_are_kept_together(tmp_path: Path) -> None:
    """The node tables of small zones are kept in one file: read back at the next start
    (no row read), each checked on its own (a zone changed while the cache was off is read
    from its rows, the others from the file); after a crash none is used."""
    zk = ZkServer(tmp_path, demo=False).start()
    cache = tmp_path / "zonekeeper.db.axfr-images"
    names = [f"small{i}.test." for i in range(3)]

    def change(name: str, value: str) -> None:
        with zk.client() as api:
            r = api.patch(f"/zones/{name}/rrsets", json={"rrsets": [
                {"name": "h3", "type": "TXT", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": f'"{value}"'}]}]})
            assert r.status_code == 200, r.text

    try:
        with zk.client() as api:
            for name in names:
                big_zone(api, name, 20)
        zk.stop()
        assert sorted(f.name for f in cache.iterdir()) == ["small-zones.nodes", "stamp"]
        assert zk.events("xfr.images_saved")[-1]["nodes_written"] == 1
        zk.start()
        answering = zk.events("dns.answering")[-1]
        assert answering["saved_tables"] == 3 and answering["stale_tables"] == 0, answering
        assert zk.query(f"h3.{names[1]}", "TXT").answer
        change(names[1], "changed")
        zk.stop(signal.SIGKILL)
        zk.start()  # killed: no table is used (the stamp went at the start before)
        answering = zk.events("dns.answering")[-1]
        assert answering["saved_tables"] == 0 and answering["stale_tables"] == 0, answering
        assert zk.query(f"h3.{names[1]}", "TXT").answer[0][0].to_text() == '"changed"'
        zk.stop()
        assert zk.events("xfr.images_saved")[-1]["nodes_written"] == 1
        zk.extra_env = {"ZONEKEEPER_DNS__AXFR_IMAGE_CACHE": ""}  # changed with the cache off
        zk.start()
        change(names[2], "changed too")
        zk.stop()
        zk.extra_env = {}
        zk.start()
        answering = zk.events("dns.answering")[-1]
        assert answering["saved_tables"] == 2 and answering["stale_tables"] == 1, answering
        assert zk.query(f"h3.{names[1]}", "TXT").answer[0][0].to_text() == '"changed"'
        assert zk.query(f"h3.{names[2]}", "TXT").answer[0][0].to_text() == '"changed too"'
        assert zk.query(f"h3.{names[0]}", "TXT").answer[0][0].to_text().startswith('"000003')
        zk.stop()
        assert zk.events("xfr.images_saved")[-1]["nodes_written"] == 1
    finally:
        zk.stop()


def test_tables_kept_for_another_database_are_not_used(tmp_path: Path) -> None:
    """Another database put in the place of this one, holding a zone of the same name, id,
    serial and change count but other records: its rows are read, not this one's tables."""
    first = ZkServer(tmp_path / "a", demo=False)
    other = ZkServer(tmp_path / "b", demo=False)
    for srv in (first, other):
        srv.workdir.mkdir()
    try:
        for srv, value in ((first, "first"), (other, "other")):
            srv.start()
            with srv.client() as api:
                text = ["$ORIGIN same.test.", "$TTL 300", "@ SOA ns1 host 10 3600 900 1209600 300",
                        "@ NS ns1", "ns1 A 192.0.2.1", f'txt TXT "{value}"']
                text += [f"h{i} A 192.0.2.{i % 250 + 1}" for i in range(1000)]
                make_zone(api, "same.test.", zone_text="\n".join(text) + "\n")
            srv.stop()
        assert (first.workdir / "zonekeeper.db.axfr-images" / "zone-1.nodes").exists()
        shutil.copyfile(other.db_path, first.db_path)
        first.start()
        assert zk_events_last(first, "dns.answering")["saved_tables"] == 0
        assert first.events("zones.node_tables_not_used")
        assert first.query("txt.same.test.", "TXT").answer[0][0].to_text() == '"other"'
        assert not first.events("xfr.images_restored")  # the image is built, not read
        zone = dns.zone.Zone("same.test.")
        with first.client() as api:
            api.post("/acls", json={"zone": "same.test.", "action": "transfer",
                                    "network": "127.0.0.0/8"})
        dns.query.inbound_xfr("127.0.0.1", zone, port=first.dns_port, timeout=10, lifetime=30)
        assert [rd.to_text() for rd in zone.find_rdataset("txt", "TXT")] == ['"other"']
    finally:
        first.stop()
        other.stop()


def zk_events_last(zk: ZkServer, event: str) -> dict[str, object]:
    return zk.events(event)[-1]


def test_a_zone_made_again_does_not_get_the_old_zones_image(tmp_path: Path) -> None:
    """A zone removed and made again under its name, with the same serial and owners, then
    a crash (no stop to tidy the files): the old zone's file is not used at the next start
    (zone ids are never reused), and goes at the next stop."""
    zk = ZkServer(tmp_path, demo=False).start()
    cache = tmp_path / "zonekeeper.db.axfr-images"

    def make(api: httpx2.Client, value: str) -> None:
        text = ["$ORIGIN again.test.", "$TTL 300", "@ SOA ns1 host 10 3600 900 1209600 300",
                "@ NS ns1", "ns1 A 192.0.2.1", f'txt TXT "{value}"']
        text += [f"h{i} A 192.0.2.{i % 250 + 1}" for i in range(1000)]  # kept: >= MIN_NODES
        make_zone(api, "again.test.", zone_text="\n".join(text) + "\n")
        api.post("/acls", json={"zone": "again.test.", "action": "transfer", "network": "127.0.0.0/8"})

    try:
        with zk.client() as api:
            make(api, "first")
        wait_for(lambda: zk.events("xfr.image_built", zone="again.test."), what="the image built")
        zk.stop()
        (old,) = cache.glob("*.axfr")
        zk.start()
        assert zk.events("xfr.images_restored")[-1]["restored"] == 1
        with zk.client() as api:
            assert api.delete("/zones/again.test.").status_code == 204
            make(api, "second")
        zk.stop(signal.SIGKILL)
        zk.start()
        assert len(zk.events("xfr.images_restored")) == 1  # nothing of this zone's to read back
        assert zk.events("dns.answering")[-1]["saved_tables"] == 0
        assert zk.query("txt.again.test.", "TXT").answer[0][0].to_text() == '"second"'
        zone = dns.zone.Zone("again.test.")
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30)
        assert [rd.to_text() for rd in zone.find_rdataset("txt", "TXT")] == ['"second"']
        zk.stop()
        assert zk.events("xfr.images_saved")[-1]["removed"] == 2  # the image and the table
        (new,) = cache.glob("*.axfr")
        assert new.name != old.name
    finally:
        zk.stop()
