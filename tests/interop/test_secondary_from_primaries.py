"""zonekeeper as the secondary of real BIND, Knot and NSD primaries (tests/primaries.py), with
and without a TSIG key: the first AXFR; an edit on the primary reaches us by its NOTIFY and
an IXFR; a primary without IXFR history gives a full transfer instead; a refused transfer
and a wrong key fail with the reason in the outcome and in xfr-status; a zone whose primary
is gone expires to SERVFAIL; a restart keeps the data."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dns.rcode
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, require_tool
from tests.conftest import wait_for as conftest_wait_for
from tests.peers import TsigKey, axfr_lines
from tests.primaries import BindPrimary, KnotPrimary, NsdPrimary, Primary, PrimaryZone

pytestmark = pytest.mark.interop

KINDS = ("bind", "knot", "nsd")
# BIND listens on 127.0.0.1 only (see BindSecondary); the others on addresses of their own.
ADDRS = {"knot": "127.0.0.32", "nsd": "127.0.0.33"}
SOLO_ADDRS = {"knot": "127.0.0.34", "nsd": "127.0.0.35"}  # one-test primaries that get stopped
# SOA timers of a second or two are honoured (each test zone sets its own).
ENV = {"ZONEKEEPER_SECONDARY__REFRESH_MIN": "1", "ZONEKEEPER_SECONDARY__RETRY_MIN": "1",
       "ZONEKEEPER_SECONDARY__EXPIRE_MIN": "2"}


def zone_text(serial: int, *, refresh: int = 86400, retry: int = 3600, expire: int = 1209600,
              extra: str = "", bulk: int = 0) -> str:
    """A small zone; ``bulk`` more A records make its AXFR several messages."""
    hosts = "\n".join(f"h{i} IN A 198.51.100.{i}" for i in range(1, 41))
    hosts += "".join(f"\nb{i} IN A 10.{i >> 8 & 255}.{i & 255}.1" for i in range(bulk))
    return f"""$TTL 300
@ IN SOA ns1 hostmaster {serial} {refresh} {retry} {expire} 300
@ IN NS ns1
@ IN MX 10 mail
ns1 IN A 192.0.2.1
mail IN AAAA 2001:db8::25
www IN A 192.0.2.{serial + 1}
v{serial} IN TXT "version {serial}"
{hosts}
{extra}
"""


def secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# Conditions here get 15 s unless a call says otherwise.
wait_for = partial(conftest_wait_for, timeout=15.0)


def installed(zk: ZkServer, zone: str, serial: int) -> bool:
    """Whether a transfer of ``serial`` is over: served, stored, logged and in the status
    (a version is served first, then stored; the log line comes last)."""
    return served_serial(zk, zone) == serial and any(
        e.get("serial") == serial for e in ok_transfers(zk, zone))


def served_serial(zk: ZkServer, zone: str) -> int | None:
    r = zk.query(zone, "SOA")
    return int(r.answer[0][0].serial) if r.rcode() == dns.rcode.NOERROR and r.answer else None


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    srv = ZkServer(tmp_path_factory.mktemp("zk"), demo=False, env=ENV).start()
    with srv.client() as c:  # AXFR out to 127.0.0.1, to compare with the primary
        r = c.post("/acls", json={"action": "transfer", "network": "127.0.0.1/32"})
        assert r.status_code == 201, r.text
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keys(api: httpx2.Client) -> dict[str, TsigKey]:
    """``good``: the same secret here and on the primaries. ``bad``: the primaries hold
    ``bad``, zonekeeper a key of the same name with another secret."""
    good = TsigKey("zk-primaries-good", "hmac-sha256", secret())
    bad = TsigKey("zk-primaries-bad", "hmac-sha256", secret())
    for name, key_secret in ((good.bare, good.secret), (bad.bare, secret())):
        r = api.post("/tsig-keys",
                     json={"name": name, "algorithm": "hmac-sha256", "secret": key_secret})
        assert r.status_code == 201, r.text
    return {"good": good, "bad": bad}


def make_primary(kind: str, workdir: Path, addrs: dict[str, str]) -> Primary:
    if kind == "bind":
        return BindPrimary(workdir, port=free_port(), ctl_port=free_port())
    if kind == "knot":
        return KnotPrimary(workdir, addr=addrs["knot"], port=free_port(addrs["knot"]))
    return NsdPrimary(workdir, addr=addrs["nsd"], port=free_port(addrs["nsd"]))


@pytest.fixture(scope="module")
def primaries(tmp_path_factory: pytest.TempPathFactory,
              keys: dict[str, TsigKey]) -> Iterator[dict[str, Primary]]:
    for tool, pkg in (("named", "bind9"), ("rndc", "bind9"), ("knotd", "knot"), ("knotc", "knot"),
                      ("nsd", "nsd"), ("nsd-control", "nsd")):
        require_tool(tool, pkg)
    base = tmp_path_factory.mktemp("primaries")
    servers = {kind: make_primary(kind, base / kind, ADDRS) for kind in KINDS}
    try:
        for p in servers.values():
            for key in keys.values():
                p.add_key(key)
            p.start()
        for p in servers.values():
            p.wait_ready()
        yield servers
    finally:
        for p in servers.values():
            p.stop()


def new_zone(kind: str, tag: str = "") -> str:
    return f"{kind}{tag}-{uuid.uuid4().hex[:8]}.test."


def follow(api: httpx2.Client, primary: Primary, zone: str, key: TsigKey | None = None) -> str:
    """Peer for ``primary`` (with ``key``) and a secondary zone of it; returns the peer name."""
    peer = f"{primary.kind}-{zone.split('.')[0]}"
    body: dict[str, object] = {"name": peer, "address": primary.listen, "port": primary.port}
    if key is not None:
        body["key"] = key.bare
    assert (r := api.post("/peers", json=body)).status_code == 201, r.text
    r = api.post("/zones", json={"name": zone, "kind": "secondary", "primaries": [peer]})
    assert r.status_code == 201, r.text
    return peer


def serve(primary: Primary, zone: PrimaryZone, serial: int = 1) -> None:
    primary.serve_zones(zone)
    primary.wait_serial(zone.name, serial, timeout=20)


def primary_status(api: httpx2.Client, zone: str, peer: str) -> dict[str, object]:
    rows = api.get(f"/zones/{zone}/xfr-status").json()
    row = next(r for r in rows if r["peer"] == peer)
    assert row["role"] == "primary", row
    return row["primary_status"]  # type: ignore[no-any-return]


def ok_transfers(zk: ZkServer, zone: str) -> list[dict[str, object]]:
    return zk.events("xfr.in", zone=zone, result="ok")


def same_content(zk: ZkServer, primary: Primary, zone: str, key: TsigKey | None) -> None:
    theirs = axfr_lines(primary.listen, primary.port, zone, key=key.dnspython() if key else None,
                        source="127.0.0.1")
    ours = axfr_lines(zk.addr, zk.dns_port, zone)
    assert ours == theirs


# -- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "tsig"])
@pytest.mark.parametrize("kind", KINDS)
def test_first_axfr_then_notify_driven_ixfr(zk: ZkServer, api: httpx2.Client,
                                            keys: dict[str, TsigKey], primaries: dict[str, Primary],
                                            kind: str, signed: bool) -> None:
    p = primaries[kind]
    key = keys["good"] if signed else None
    zone = new_zone(kind, "-s" if signed else "-u")
    # Signed: an AXFR of several messages, each covered by the TSIG chain.
    bulk = 6000 if signed else 0
    serve(p, PrimaryZone(zone, zone_text(1, bulk=bulk), notify=(zk.addr, zk.dns_port),
                         key=key.bare if key else None))
    peer = follow(api, p, zone, key)
    # The first AXFR, on its own, right after the zone is created.
    wait_for(lambda: installed(zk, zone, 1), what=f"{zone} at serial 1")
    first = ok_transfers(zk, zone)
    assert first and first[0]["type"] == "AXFR" and first[0]["serial"] == 1, first
    same_content(zk, p, zone, key)

    # Edit the primary's zone file and reload it: it computes the difference, keeps it for
    # IXFR and sends NOTIFY (signed when the zone has a key); we transfer the difference.
    p.edit_zone(zone, zone_text(2, extra="new IN A 192.0.2.77", bulk=bulk))
    wait_for(lambda: installed(zk, zone, 2), what=f"{zone} at serial 2 (NOTIFY from {kind})")
    last = ok_transfers(zk, zone)[-1]
    assert last["type"] == "IXFR" and last["serial_from"] == 1 and last["serial"] == 2, last
    notified = zk.events("notify.received", zone=zone, result="accepted")
    assert notified, f"no NOTIFY from {kind} was accepted"
    assert notified[-1]["key"] == (key.bare + "." if key else None), notified[-1]
    assert zk.query(f"new.{zone}", "A").answer[0][0].address == "192.0.2.77"
    assert zk.query(f"v1.{zone}", "TXT").rcode() == dns.rcode.NXDOMAIN
    same_content(zk, p, zone, key)
    status = primary_status(api, zone, peer)
    assert status["last_success"] and not status.get("last_error"), status
    # Nothing newer: transfer now says so without transferring.
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "UPTODATE" and out["serial_after"] == 2 and out["primary"] == peer, out


@pytest.mark.parametrize("kind", KINDS)
def test_no_ixfr_history_means_a_full_transfer(zk: ZkServer, api: httpx2.Client,
                                               primaries: dict[str, Primary], kind: str) -> None:
    """BIND without ixfr-from-differences, Knot without a journal, NSD without store-ixfr:
    our IXFR request is answered with the whole zone (or fails, and we ask for AXFR)."""
    p = primaries[kind]
    zone = new_zone(kind, "-f")
    serve(p, PrimaryZone(zone, zone_text(1), ixfr=False))  # no NOTIFY: we drive it
    follow(api, p, zone)
    wait_for(lambda: installed(zk, zone, 1), what=f"{zone} at serial 1")
    p.edit_zone(zone, zone_text(2, extra="new IN A 192.0.2.78"))
    p.wait_serial(zone, 2)
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] in ("FALLBACK", "AXFR") and out["serial_after"] == 2, out
    assert ok_transfers(zk, zone)[-1]["type"] == out["result"]
    assert zk.query(f"new.{zone}", "A").answer[0][0].address == "192.0.2.78"
    assert zk.query(f"v1.{zone}", "TXT").rcode() == dns.rcode.NXDOMAIN
    same_content(zk, p, zone, None)


@pytest.mark.parametrize("kind", KINDS)
def test_refused_transfer_is_reported(zk: ZkServer, api: httpx2.Client,
                                      primaries: dict[str, Primary], kind: str) -> None:
    p = primaries[kind]
    zone = new_zone(kind, "-r")
    serve(p, PrimaryZone(zone, zone_text(1), transfer_to=None))  # nobody may transfer it
    peer = follow(api, p, zone)
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "FAILED" and out["serial_after"] is None and out["primary"] == peer, out
    assert out["rcode"] in ("REFUSED", "NOTAUTH") and "refused" in out["error"], out
    err = primary_status(api, zone, peer)["last_error"]
    assert err["rcode"] == out["rcode"] and "refused" in err["error"], err  # type: ignore[index]
    assert zk.query(zone, "SOA").rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_key_is_reported(zk: ZkServer, api: httpx2.Client, keys: dict[str, TsigKey],
                               primaries: dict[str, Primary], kind: str) -> None:
    p = primaries[kind]
    zone = new_zone(kind, "-k")
    bad = keys["bad"]
    serve(p, PrimaryZone(zone, zone_text(1), notify=(zk.addr, zk.dns_port), key=bad.bare))
    peer = follow(api, p, zone, bad)  # same key name, another secret
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "FAILED" and out["serial_after"] is None and out["primary"] == peer, out
    assert "TSIG" in out["error"] and out["rcode"] == "NOTAUTH", out
    err = primary_status(api, zone, peer)["last_error"]
    assert "TSIG" in err["error"] and err["rcode"] == "NOTAUTH", err  # type: ignore[index]
    assert zk.query(zone, "SOA").rcode() == dns.rcode.SERVFAIL
    # Its NOTIFY, signed with the other secret, is refused too.
    before = len(zk.events("notify.received", result="refused"))
    p.edit_zone(zone, zone_text(2))
    wait_for(lambda: any("BADSIG" in str(e.get("reason"))
                         for e in zk.events("notify.received", result="refused")[before:]),
             what=f"{kind}'s badly signed NOTIFY refused")
    assert zk.query(zone, "SOA").rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("kind", KINDS)
def test_restart_then_expiry(zk: ZkServer, api: httpx2.Client, tmp_path: Path, kind: str) -> None:
    """A primary of its own. Stopped: a restarted zonekeeper serves the data it had. Back
    with a version whose SOA expire is 4 s, then stopped again: the zone expires to
    SERVFAIL, and loads again when the primary is back."""
    p = make_primary(kind, tmp_path / kind, SOLO_ADDRS)
    zone = new_zone(kind, "-e")
    p.serve_zones(PrimaryZone(zone, zone_text(1, refresh=1, retry=1),
                              notify=(zk.addr, zk.dns_port)), reload=False)
    try:
        p.start().wait_ready()
        p.wait_serial(zone, 1, timeout=20)
        peer = follow(api, p, zone)
        wait_for(lambda: installed(zk, zone, 1), what=f"{zone} at serial 1")
        # Restart with the primary gone: served from storage, no transfer possible.
        p.stop()
        assert zk.stop() == 0
        zk.start()
        assert served_serial(zk, zone) == 1
        assert zk.query(f"v1.{zone}", "TXT").answer and zk.query(f"h7.{zone}", "A").answer
        # The primary is back with serial 2 and a short expire; then it is gone again.
        p.zone_file(zone).write_text(zone_text(2, refresh=1, retry=1, expire=4))
        p.start().wait_ready()
        wait_for(lambda: installed(zk, zone, 2), timeout=20, what=f"{zone} at serial 2")
        p.stop()
        wait_for(lambda: zk.query(zone, "SOA").rcode() == dns.rcode.SERVFAIL, timeout=20,
                 what=f"{zone} expired")
        assert zk.query(f"www.{zone}", "A").rcode() == dns.rcode.SERVFAIL
        assert zk.events("zone.expired", zone=zone)
        err = primary_status(api, zone, peer)["last_error"]
        assert err and err["error"], err  # type: ignore[index]
        # Back again: the next retry (1 s) loads the zone again.
        p.start().wait_ready()
        wait_for(lambda: served_serial(zk, zone) == 2, timeout=20, what=f"{zone} back")
    finally:
        p.stop()


# -- import a zone from a running primary (issue 20) --------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_import_a_zone_from_a_running_primary(zk: ZkServer, api: httpx2.Client,
                                              keys: dict[str, TsigKey],
                                              primaries: dict[str, Primary], kind: str) -> None:
    p = primaries[kind]
    key = keys["good"]
    zone = new_zone(kind, "-imp")
    serve(p, PrimaryZone(zone, zone_text(7, bulk=3000), key=key.bare), serial=7)
    r = api.post(f"/zones/{zone}/import-from",
                 json={"address": p.listen, "port": p.port, "key": key.bare})
    assert r.status_code == 201, r.text
    made = r.json()
    # A primary zone here, with the primary's serial and every record it serves.
    assert made["kind"] == "primary" and made["serial"] == 7, made
    assert made["record_count"] == len(axfr_lines(p.listen, p.port, zone, key=key.dnspython(),
                                                  source="127.0.0.1"))
    assert r.headers["Location"] == f"/api/v1/zones/{zone}"
    same_content(zk, p, zone, key)
    assert zk.events("zone.imported_from_primary", zone=zone)[0]["serial"] == 7
    # It takes edits as any primary zone does, from the imported serial on.
    r = api.put(f"/zones/{zone}/rrsets/added/A", json={"records": [{"content": "192.0.2.99"}]})
    assert r.status_code == 200, r.text
    assert served_serial(zk, zone) == 8
    # Once there, a second import is a conflict: nothing is transferred or changed.
    r = api.post(f"/zones/{zone}/import-from", json={"address": p.listen, "port": p.port,
                                                      "key": key.bare})
    assert r.status_code == 409, r.text
    assert served_serial(zk, zone) == 8


def test_import_from_a_primary_that_refuses_or_cannot_be_asked_creates_nothing(
        zk: ZkServer, api: httpx2.Client, keys: dict[str, TsigKey],
        primaries: dict[str, Primary]) -> None:
    p = primaries["knot"]
    zone = new_zone("knot", "-noimp")
    serve(p, PrimaryZone(zone, zone_text(3), key=keys["good"].bare), serial=3)
    cases = [
        # Unsigned: the primary refuses (REFUSED or NOTAUTH), said in the 502.
        ({"address": p.listen, "port": p.port}, 502, ("REFUSED", "NOTAUTH")),
        # Our copy of the key has another secret: the primary's answer does not verify.
        ({"address": p.listen, "port": p.port, "key": keys["bad"].bare}, 502, ("TSIG",)),
        # Nobody listens there.
        ({"address": "127.0.0.1", "port": free_port()}, 502, ("network", "timed out", "refused")),
        ({"address": p.listen, "port": p.port, "key": "no-such-key"}, 404, ("no-such-key",)),
        ({"address": "not-an-address", "port": p.port}, 422, ("not an IPv4 or IPv6 address",)),
    ]
    for body, status, words in cases:
        r = api.post(f"/zones/{zone}/import-from", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert any(w.lower() in r.text.lower() for w in words), (body, r.text)
        assert api.get(f"/zones/{zone}").status_code == 404
    assert zk.query(zone, "SOA").rcode() == dns.rcode.REFUSED


# -- promote a secondary, demote a primary (issue 20) -------------------------------------------
def test_promote_a_secondary_whose_primary_is_stopped_then_demote_it(
        zk: ZkServer, api: httpx2.Client, tmp_path: Path) -> None:
    require_tool("knotd", "knot")
    p = make_primary("knot", tmp_path / "knot", SOLO_ADDRS)
    zone = new_zone("knot", "-promo")
    p.serve_zones(PrimaryZone(zone, zone_text(5)), reload=False)
    never = new_zone("knot", "-never")
    try:
        p.start().wait_ready()
        p.wait_serial(zone, 5, timeout=20)
        peer = follow(api, p, zone)
        wait_for(lambda: installed(zk, zone, 5), what=f"{zone} at serial 5")
        before = axfr_lines(zk.addr, zk.dns_port, zone)
        # The primary is retired: promote, and the zone takes edits from its serial on.
        p.stop()
        r = api.post(f"/zones/{zone}/promote")
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "primary" and r.json()["serial"] == 5, r.json()
        assert axfr_lines(zk.addr, zk.dns_port, zone) == before
        assert [x for x in api.get(f"/zones/{zone}/peers").json() if x["role"] == "primary"] == []
        r = api.put(f"/zones/{zone}/rrsets/promoted/TXT", json={"records": [{"content": '"mine now"'}]})
        assert r.status_code == 200, r.text
        assert served_serial(zk, zone) == 6
        after = axfr_lines(zk.addr, zk.dns_port, zone)
        assert set(before) - set(after) == {x for x in before if " soa " in x}
        assert any(x.startswith(f"promoted.{zone} ") for x in after)
        assert api.post(f"/zones/{zone}/promote").status_code == 409
        # A secondary zone that never loaded has nothing to keep.
        r = api.post("/zones", json={"name": never, "kind": "secondary", "primaries": [peer]})
        assert r.status_code == 201, r.text
        r = api.post(f"/zones/{never}/promote")
        assert r.status_code == 409 and "never been transferred" in r.text, r.text
        # Back to following the primary, now at serial 10: the edits here are replaced.
        p.serve_zones(PrimaryZone(zone, zone_text(10)), reload=False)
        p.start().wait_ready()
        p.wait_serial(zone, 10, timeout=20)
        r = api.post(f"/zones/{zone}/demote", json={"primaries": [peer]})
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "secondary" and r.json()["serial"] == 6
        wait_for(lambda: installed(zk, zone, 10), what=f"{zone} at serial 10 after demotion")
        same_content(zk, p, zone, None)
        r = api.put(f"/zones/{zone}/rrsets/again/TXT", json={"records": [{"content": '"no"'}]})
        assert r.status_code == 409, r.text
        assert api.post(f"/zones/{zone}/demote", json={"primaries": [peer]}).status_code == 409
    finally:
        p.stop()
