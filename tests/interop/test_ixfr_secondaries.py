"""IXFR out to real BIND, Knot and NSD secondaries (issue: IXFR out).

After edits (RRset PATCHes, an SOA change, a zone-text import) each secondary pulls an
incremental transfer, and says so in its own log, and ends with the primary's data; a
difference too big for one message goes out as a signed multi-message IXFR; a secondary
older than the journal gets a correct full (AXFR-style) answer and takes IXFR again once it
is back within the journal; a linked peer with ``ixfr: false`` gets AXFR-style answers
until IXFR is switched back on; the journal survives restarts of zonekeeper and serves
IXFR across them.

How each side names the transfer type:

- zonekeeper: ``xfr.out`` with ``type`` "IXFR" (``style`` "incremental from N") or
  "AXFR-style IXFR" (``style`` "axfr-style: <why>").
- BIND 9.18: only at debug level (the secondary runs with ``severity debug 3``):
  "requesting IXFR for serial N", then "got incremental response" or "got nonincremental
  response"; "Transfer completed: M messages, …".
- Knot: "IXFR, incoming, …, finished", or "IXFR, incoming, …, receiving AXFR-style IXFR"
  followed by "AXFR, incoming, …, finished".
- NSD 4.6 names no transfer type at any verbosity; its "received update to serial S … of
  N bytes" line is matched with the one answer zonekeeper sent it for S (N is that answer's
  size without the TCP length prefixes), whose type zonekeeper logged.

Secondaries look only when told (``refresh``): peers are linked with ``notify: false`` and
the SOA refresh is a day long.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import dns.name
import dns.query
import dns.rdatatype
import httpx2
import pytest

from tests.conftest import ZkServer, make_zone
from tests.peers import (
    Secondary,
    SecondaryZone,
    TsigKey,
    axfr_lines,
    running_secondaries,
)

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("ixfr-secondaries")]

SOURCES = {"bind": "127.0.0.51", "knot": "127.0.0.52", "nsd": "127.0.0.53"}
DUMP = "127.0.0.1"  # the tests dump the primary from here (the secondaries come from SOURCES)
ZONE_TEXT = """$TTL 300
@ IN SOA ns1 hostmaster 1 86400 3600 1209600 300
@ IN NS ns1
@ IN MX 10 mail
ns1 IN A 192.0.2.1
mail IN A 192.0.2.3
www IN A 192.0.2.2
www IN AAAA 2001:db8::2
alias IN CNAME www
keep IN TXT "unchanged"
_sip._tcp IN SRV 10 20 5060 www
"""


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def secondaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Secondary]]:
    # BIND's "debug 3" adds xfer-in's "requesting IXFR" and "got incremental response".
    with running_secondaries(tmp_path_factory.mktemp("ixfr-secondaries"), SOURCES,
                             bind_log_severity="debug 3") as peers:
        yield peers


# -- zonekeeper side -----------------------------------------------------------------------
def transfers(zk: ZkServer, zone: str, **fields: object) -> list[dict[str, object]]:
    """zonekeeper's ``xfr.out`` events for ``zone`` with the given field values, in order."""
    out = []
    for line in zk.log().splitlines():
        if '"xfr.out"' not in line or zone not in line:
            continue
        event = json.loads(line)
        if event.get("zone") == zone and all(event.get(k) == v for k, v in fields.items()):
            out.append(event)
    return out


def served(zk: ZkServer, zone: str, kind: str, serial: int) -> dict[str, object]:
    """The one answer zonekeeper sent ``kind``'s secondary for ``serial``."""
    events = transfers(zk, zone, client=SOURCES[kind], serial=serial)
    assert len(events) == 1, (kind, serial, events)
    assert events[0]["result"] == "ok", events[0]
    return events[0]


def setup_zone(zk: ZkServer, api: httpx2.Client, secondaries: dict[str, Secondary], *,
               ixfr: bool = True, key: TsigKey | None = None, zone_text: str = ZONE_TEXT,
               label: str = "i") -> str:
    """A new zone at serial 1, linked to the three secondaries (as peers, NOTIFY off) and
    loaded by each."""
    zone = f"{label}-{uuid.uuid4().hex[:8]}.test."
    make_zone(api, zone, zone_text=zone_text)
    r = api.post("/acls", json={"zone": zone, "action": "transfer", "network": f"{DUMP}/32"})
    assert r.status_code == 201, r.text
    tag = zone.split(".")[0]
    for kind, sec in secondaries.items():
        body: dict[str, object] = {"name": f"{kind}-{tag}", "address": sec.listen, "port": sec.port,
                                   "transfer_from": [f"{sec.source}/32"], "notify": False,
                                   "ixfr": ixfr}
        if key is not None:
            body["key"] = key.name
        r = api.post("/peers", json=body)
        assert r.status_code == 201, r.text
        r = api.put(f"/zones/{zone}/peers/{kind}-{tag}", json={"role": "secondary"})
        assert r.status_code in (200, 201, 204), r.text
        sec.add_zones(SecondaryZone(zone, (zk.addr, zk.dns_port), key.name if key else None))
    for sec in secondaries.values():
        sec.wait_serial(zone, 1, timeout=30)
    return zone


def patch(api: httpx2.Client, zone: str, *rrsets: dict[str, object]) -> int:
    r = api.patch(f"/zones/{zone}/rrsets", json={"rrsets": list(rrsets)})
    assert r.status_code == 200, r.text
    return int(r.json()["serial"])


def a(name: str, *addrs: str, ttl: int = 300) -> dict[str, object]:
    return {"name": name, "type": "A", "changetype": "REPLACE", "ttl": ttl,
            "records": [{"content": x} for x in addrs]}


def delete(name: str, rdtype: str) -> dict[str, object]:
    return {"name": name, "type": rdtype, "changetype": "DELETE"}


def edit(api: httpx2.Client, zone: str, n: int) -> int:
    """One change: www's address and a new AAAA owner."""
    return patch(api, zone, a("www", f"192.0.2.{n}"),
                 {"name": f"new{n}", "type": "AAAA", "changetype": "REPLACE", "ttl": 60,
                  "records": [{"content": f"2001:db8::{n}"}]})


def primary_dump(zk: ZkServer, zone: str) -> list[str]:
    return axfr_lines(zk.addr, zk.dns_port, zone, source=DUMP)


# -- the secondaries' own logs -------------------------------------------------------------
def log_marks(secondaries: dict[str, Secondary]) -> dict[str, int]:
    """Where each secondary's log ends now: read only what follows."""
    return {k: s.log_path.stat().st_size if s.log_path.exists() else 0
            for k, s in secondaries.items()}


def _zone_lines(sec: Secondary, zone: str, since: int) -> list[str]:
    with open(sec.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    bare = zone.rstrip(".")
    tags = {"bind": (f"'{bare}/IN'", f"zone {bare}/IN:"), "knot": (f"[{bare}.]",),
            "nsd": (f"zone {bare} ", f"zone {bare}. ")}[sec.kind]
    return [ln for ln in text.splitlines() if any(t in ln for t in tags)]


def secondary_says(sec: Secondary, zone: str, since: int, zk: ZkServer, serial: int,
                   timeout: float = 10) -> tuple[str, int]:
    """How the secondary's own log (lines since ``since``) says it got ``serial`` of
    ``zone``: ("IXFR" or "AXFR", messages). A log line may come a moment after the new
    serial is served, hence the wait."""
    deadline = time.monotonic() + timeout
    while True:
        lines = _zone_lines(sec, zone, since)
        found = _read_transfer(sec, lines, zk, zone, serial)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{sec.kind}'s log has no finished transfer of {zone} to "
                                 f"serial {serial}:\n" + "\n".join(lines[-30:]))
        time.sleep(0.1)


def _read_transfer(sec: Secondary, lines: list[str], zk: ZkServer, zone: str,
                   serial: int) -> tuple[str, int] | None:
    if sec.kind == "bind":
        done = [ln for ln in lines if "Transfer completed:" in ln and f"(serial {serial})" in ln]
        if not done:
            return None
        assert any("requesting IXFR for serial" in ln for ln in lines), lines
        got = [ln for ln in lines if "incremental response" in ln]
        assert got, lines
        msgs = int(re.search(r"Transfer completed: (\d+) messages", done[-1]).group(1))  # type: ignore[union-attr]
        return ("AXFR" if "got nonincremental response" in got[-1] else "IXFR"), msgs
    if sec.kind == "knot":
        done = [ln for ln in lines if ", incoming, " in ln and ", finished" in ln]
        if not done:
            return None
        kind = done[-1].split("]", 1)[1].split(",", 1)[0].strip()
        if kind == "AXFR":
            # A secondary asks for IXFR; Knot says when the answer was the whole zone.
            assert any("receiving AXFR-style IXFR" in ln for ln in lines), lines
        msgs = int(re.search(r"(\d+) messages", done[-1]).group(1))  # type: ignore[union-attr]
        return kind, msgs
    got = [ln for ln in lines if f"received update to serial {serial} " in ln and " bytes" in ln]
    if not got:
        return None
    size = int(re.search(r" of (\d+) bytes", got[-1]).group(1))  # type: ignore[union-attr]
    event = served(zk, zone, "nsd", serial)
    msgs = int(event["msgs"])  # type: ignore[call-overload]
    # NSD counts the messages without their TSIG records.
    per_msg = 2 + (_tsig_rr_size(str(event["key"])) if event["key"] else 0)
    assert int(event["bytes"]) - per_msg * msgs == size, (got[-1], event)  # type: ignore[call-overload]
    return ("IXFR" if event["type"] == "IXFR" else "AXFR"), msgs


def _tsig_rr_size(key_name: str, algorithm: str = "hmac-sha256.", mac_size: int = 32) -> int:
    """owner, TYPE CLASS TTL RDLENGTH, then algorithm, time (6), fudge, MAC size, MAC,
    original ID, error, other length (RFC 8945 §4.2)."""
    name = len(dns.name.from_text(key_name).to_wire())
    return name + 10 + len(dns.name.from_text(algorithm).to_wire()) + 6 + 2 + 2 + mac_size + 6


def refresh_all(secondaries: dict[str, Secondary], zone: str, serial: int) -> dict[str, int]:
    """Make each secondary look now; wait until all serve ``serial``. Returns the log marks
    from before the refresh."""
    marks = log_marks(secondaries)
    for sec in secondaries.values():
        sec.refresh(zone)
    for sec in secondaries.values():
        sec.wait_serial(zone, serial, timeout=30)
    return marks


def check_round(zk: ZkServer, secondaries: dict[str, Secondary], zone: str, serial: int,
                marks: dict[str, int], *, incremental_from: int | None,
                why: str = "") -> dict[str, dict[str, object]]:
    """Each secondary holds the primary's data at ``serial`` and both sides agree on how it
    got there: IXFR from ``incremental_from``, or (None) an AXFR-style answer for ``why``."""
    primary = primary_dump(zk, zone)
    events = {}
    for kind, sec in secondaries.items():
        assert sec.dump(zone) == primary, kind
        event = served(zk, zone, kind, serial)
        said, msgs = secondary_says(sec, zone, marks[kind], zk, serial)
        if incremental_from is not None:
            assert event["type"] == "IXFR", (kind, event)
            assert event["style"] == f"incremental from {incremental_from}", (kind, event)
            assert said == "IXFR", (kind, said)
        else:
            assert event["type"] == "AXFR-style IXFR", (kind, event)
            assert why in str(event["style"]), (kind, event)
            assert said == "AXFR", (kind, said)
        assert msgs == event["msgs"], (kind, msgs, event)
        events[kind] = event
    return events


# -- tests ---------------------------------------------------------------------------------
def test_secondaries_pull_ixfr_after_edits_and_match(zk: ZkServer, api: httpx2.Client,
                                                     secondaries: dict[str, Secondary]) -> None:
    """Several kinds of edit, condensed into one signed IXFR that every secondary applies
    (BIND and Knot refuse a difference that does not fit their copy and fall back to AXFR,
    which the log checks would catch); then one more edit, from the new serial."""
    r = api.post("/tsig-keys", json={"name": f"ixfr-{uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    body = r.json()
    key = TsigKey(body["name"], body["algorithm"], body["secret"])
    for kind, sec in secondaries.items():
        sec.add_key(key, api.get(f"/tsig-keys/{key.name}/export", params={"format": kind}).text)
    zone = setup_zone(zk, api, secondaries, key=key)

    patch(api, zone, a("www", "192.0.2.20", "192.0.2.21"), a("tmp", "192.0.2.99"),
          delete("alias", "CNAME"))
    patch(api, zone, a("www", "192.0.2.21", ttl=60), delete("tmp", "A"),  # tmp: never seen
          {"name": "keep", "type": "TXT", "changetype": "REPLACE", "ttl": 300,
           "records": [{"content": '"unchanged"'}, {"content": '"and one more"'}]})
    r = api.patch(f"/zones/{zone}", json={"soa": {"retry": 1800}})  # an SOA-only change
    assert r.status_code == 200, r.text
    text = api.get(f"/zones/{zone}/export").text
    r = api.post(f"/zones/{zone}/import", params={"force": "true"},
                 content=text.replace("192.0.2.3", "192.0.2.33"),
                 headers={"Content-Type": "text/dns"})
    assert r.status_code == 200, r.text
    serial = int(r.json()["serial"])
    assert serial == 5

    marks = refresh_all(secondaries, zone, serial)
    events = check_round(zk, secondaries, zone, serial, marks, incremental_from=1)
    # The condensed difference: tmp (added, then removed) is not in it.
    ixfr = _ixfr_text(zk, zone, 1, key)
    assert not any(ln.startswith(f"tmp.{zone}") for ln in ixfr), ixfr
    assert f"mail.{zone} 300 in a 192.0.2.33" in ixfr and f"www.{zone} 60 in a 192.0.2.21" in ixfr
    assert all(e["key"] == key.name for e in events.values()), events

    serial = edit(api, zone, 30)
    marks = refresh_all(secondaries, zone, serial)
    check_round(zk, secondaries, zone, serial, marks, incremental_from=5)


def _ixfr_text(zk: ZkServer, zone: str, serial: int, key: TsigKey) -> list[str]:
    lines: list[str] = []
    k = key.dnspython()
    for msg in dns.query.xfr(zk.addr, zone, rdtype=dns.rdatatype.IXFR, serial=serial,
                             port=zk.dns_port, relativize=False, source=DUMP,
                             keyring={k.name: k}, keyname=k.name, timeout=10):
        for rrset in msg.answer:
            lines.extend(rrset.to_text().lower().splitlines())
    return lines


def test_multi_message_signed_ixfr(zk: ZkServer, api: httpx2.Client,
                                   secondaries: dict[str, Secondary]) -> None:
    """A difference of ~1,200 records (~300 KB) goes out as several signed messages."""
    r = api.post("/tsig-keys", json={"name": f"multi-{uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    body = r.json()
    key = TsigKey(body["name"], body["algorithm"], body["secret"])
    for kind, sec in secondaries.items():
        sec.add_key(key, api.get(f"/tsig-keys/{key.name}/export", params={"format": kind}).text)
    filler = "x" * 200
    text = ZONE_TEXT + "".join(f't{i} IN TXT "{i:04d}{filler}"\n' for i in range(1500))
    zone = setup_zone(zk, api, secondaries, key=key, zone_text=text, label="multi")
    serial = patch(api, zone, *({"name": f"t{i}", "type": "TXT", "changetype": "REPLACE",
                                 "ttl": 300, "records": [{"content": f'"{i:04d}new{filler}"'}]}
                                for i in range(0, 1200, 2)))
    marks = refresh_all(secondaries, zone, serial)
    events = check_round(zk, secondaries, zone, serial, marks, incremental_from=1)
    for kind, event in events.items():
        # SOA new, SOA old, 600 removed, SOA new, 600 added, SOA new.
        assert event["records"] == 1204, (kind, event)
        assert int(event["msgs"]) >= 4, (kind, event)  # type: ignore[call-overload]


def test_older_than_the_journal_gets_a_full_transfer(zk: ZkServer, api: httpx2.Client,
                                                     secondaries: dict[str, Secondary]) -> None:
    zone = setup_zone(zk, api, secondaries)
    r = api.patch(f"/zones/{zone}", json={"journal_max_count": 2})
    assert r.status_code == 200, r.text
    assert r.json()["journal_max_count"] == 2
    serial = 1
    for n in range(20, 25):  # five changes; the journal keeps the last two
        serial = edit(api, zone, n)
    marks = refresh_all(secondaries, zone, serial)
    check_round(zk, secondaries, zone, serial, marks, incremental_from=None,
                why="serial 1 is not in the journal")
    # Back within the journal: IXFR again.
    serial = edit(api, zone, 25)
    marks = refresh_all(secondaries, zone, serial)
    check_round(zk, secondaries, zone, serial, marks, incremental_from=serial - 1)


def test_peer_with_ixfr_off_gets_axfr(zk: ZkServer, api: httpx2.Client,
                                      secondaries: dict[str, Secondary]) -> None:
    zone = setup_zone(zk, api, secondaries, ixfr=False)
    serial = edit(api, zone, 30)
    marks = refresh_all(secondaries, zone, serial)
    check_round(zk, secondaries, zone, serial, marks, incremental_from=None,
                why="IXFR is off for this peer")
    # The same journal serves IXFR once the peers take it.
    tag = zone.split(".")[0]
    for kind in secondaries:
        r = api.patch(f"/peers/{kind}-{tag}", json={"ixfr": True})
        assert r.status_code == 200, r.text
    serial = edit(api, zone, 31)
    marks = refresh_all(secondaries, zone, serial)
    check_round(zk, secondaries, zone, serial, marks, incremental_from=serial - 1)


def test_journal_serves_ixfr_across_restarts(zk_factory,  # type: ignore[no-untyped-def]
                                             secondaries: dict[str, Secondary]) -> None:
    """Edits on either side of two restarts, then one IXFR spanning all of them."""
    srv: ZkServer = zk_factory(demo=False).start()
    with srv.client() as api:
        zone = setup_zone(srv, api, secondaries, label="restart")
        edit(api, zone, 40)
    assert srv.stop() == 0
    srv.start()
    with srv.client() as api:
        patch(api, zone, delete("alias", "CNAME"))
    assert srv.stop() == 0
    srv.start()
    with srv.client() as api:
        serial = edit(api, zone, 41)
    assert serial == 4
    marks = refresh_all(secondaries, zone, serial)
    check_round(srv, secondaries, zone, serial, marks, incremental_from=1)
