"""The transfer gate (server/gate.py) and the TSIG check before it (server/tsig.py), on
canned request bytes: one test per refusal, in the gate's order, and each answer it picks."""

from __future__ import annotations

import time

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rrset
import dns.tsig
import pytest

from zonekeeper.policy.acl import AclAction, Effect, Policy, Rule, parse_network
from zonekeeper.proto.request import parse, plain_ixfr
from zonekeeper.server.gate import (
    EDE_PROHIBITED,
    REFUSAL_RCODE,
    Answer,
    Ask,
    Refusal,
    Verdict,
    transfer_gate,
)
from zonekeeper.server.tsig import TsigCheck, TsigRefusal
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState, compile_nodes

ORIGIN = dns.name.from_text("gate.test.")
CLIENT = "192.0.2.1"
KEY = dns.tsig.Key("k.", "c2VjcmV0LWtleS1mb3ItdGVzdHM=", "hmac-sha256")


def snapshot(*, state: ZoneState = ZoneState.OK, outgoing: bool = True) -> ZoneSnapshot:
    soa = dns.rdata.from_text("IN", "SOA", "ns1.gate.test. h.gate.test. 5 3600 900 86400 300")
    ns = dns.rdata.from_text("IN", "NS", "ns1.gate.test.")
    nodes, cuts = compile_nodes(ORIGIN, [(ORIGIN, 6, 300, [soa]), (ORIGIN, 2, 300, [ns])])
    return ZoneSnapshot(ORIGIN, 5, nodes, cuts, zone_id=1, state=state, outgoing=outgoing)


def policy(*rules: Rule) -> Policy:
    return Policy(keys={KEY.name.to_text(): KEY}, rules=rules or (
        Rule(1, AclAction.TRANSFER, Effect.ALLOW, network=parse_network("192.0.2.0/24")),))


def request(rdtype: str = "AXFR", *, serial: int | None = None, qname: str = "gate.test.",
            rdclass: str = "IN", edns: int | bool = False) -> bytes:
    q = dns.message.make_query(qname, rdtype, rdclass, use_edns=edns)
    q.id = 7
    if serial is not None:
        q.authority.append(dns.rrset.from_text(
            qname, 0, "IN", "SOA", f"ns1.gate.test. h.gate.test. {serial} 3600 900 86400 300"))
    return q.to_wire()  # type: ignore[no-any-return]


def decide(wire: bytes, *, pol: Policy | None = None, snap: ZoneSnapshot | None = None,
           addr: str = CLIENT, edns_version: int = -1, full: bool = False,
           ixfr: bool = True) -> Verdict:
    req = parse(wire)
    assert req is not None and req.is_transfer
    plain = plain_ixfr(wire)
    registry = Registry()
    registry.publish(snap if snap is not None else snapshot())
    ask = Ask(req.qkey, req.qtype, req.qclass, addr, None, edns_version,
              plain.serial if plain is not None else None)
    return transfer_gate(ask, pol or policy(), registry,
                         no_slot=lambda _z, _a: "transfers_out limit (1) reached" if full else None,
                         ixfr_allowed=lambda _z, _a: ixfr)


# -- refusals, in the gate's order ----------------------------------------------------------
def test_edns_version_other_than_0_is_badvers() -> None:
    v = decide(request(edns=1), edns_version=1)
    assert v.refusal is Refusal.EDNS_VERSION and v.rcode == dns.rcode.BADVERS
    assert v.reason == "EDNS version 1 (only version 0 is known here)"


def test_a_zone_not_served_is_notauth() -> None:
    v = decide(request(qname="other.test."))
    assert v.refusal is Refusal.NOT_SERVED and v.rcode == dns.rcode.NOTAUTH
    assert v.reason == "other.test. is not a zone served here" and v.ede is None


def test_another_class_is_not_served() -> None:
    v = decide(request(rdclass="CH"))
    assert v.refusal is Refusal.NOT_SERVED and v.rcode == dns.rcode.NOTAUTH


@pytest.mark.parametrize("state", [ZoneState.EXPIRED, ZoneState.UNLOADED])
def test_an_expired_or_unloaded_zone_is_servfail(state: ZoneState) -> None:
    snap = snapshot(state=state) if state is ZoneState.EXPIRED else ZoneSnapshot.unloaded(
        ORIGIN, zone_id=1, kind=snapshot().kind)
    v = decide(request(), snap=snap)
    assert v.refusal is Refusal.UNSERVED and v.rcode == dns.rcode.SERVFAIL
    assert v.reason == f"gate.test. is {state}"


def test_no_rule_for_the_client_is_refused_with_ede_prohibited() -> None:
    v = decide(request(), addr="198.51.100.1")
    assert v.refusal is Refusal.DENIED and v.rcode == dns.rcode.REFUSED
    assert v.ede == EDE_PROHIBITED and v.reason.startswith("no rule allows transfer")


def test_a_deny_rule_is_refused_and_named() -> None:
    deny = Rule(1, AclAction.TRANSFER, Effect.DENY, network=parse_network("192.0.2.0/24"))
    v = decide(request(), pol=policy(deny))
    assert v.refusal is Refusal.DENIED and v.reason == "denied by rule" and v.rule is not None


def test_outgoing_switched_off_is_refused_after_access() -> None:
    v = decide(request(), snap=snapshot(outgoing=False))
    assert v.refusal is Refusal.DENIED and v.ede == EDE_PROHIBITED
    assert v.reason == "outgoing transfers are switched off for this zone"
    # Access comes first: a client no rule allows hears about the rules, not the switch.
    assert decide(request(), snap=snapshot(outgoing=False), addr="198.51.100.1").reason \
        .startswith("no rule allows")


def test_no_free_slot_is_refused_without_ede() -> None:
    v = decide(request(), full=True)
    assert v.refusal is Refusal.QUOTA and v.rcode == dns.rcode.REFUSED and v.ede is None
    assert v.reason.startswith("transfers_out") and v.rule is None


def test_ixfr_without_the_clients_soa_is_formerr() -> None:
    v = decide(request("IXFR"))
    assert v.refusal is Refusal.MALFORMED and v.rcode == dns.rcode.FORMERR
    assert v.reason == "IXFR without the client's SOA in the authority section"


def test_every_refusal_has_an_rcode() -> None:
    assert set(REFUSAL_RCODE) == set(Refusal)


# -- what an allowed request gets --------------------------------------------------------------
def test_axfr_allowed() -> None:
    v = decide(request())
    assert v.allowed and v.answer is Answer.AXFR and v.zone == "gate.test."
    assert v.snap is not None and v.rcode == dns.rcode.NOERROR


@pytest.mark.parametrize("serial", [5, 6])
def test_ixfr_from_the_current_serial_or_newer_is_one_soa(serial: int) -> None:
    assert decide(request("IXFR", serial=serial)).answer is Answer.CURRENT


def test_ixfr_from_an_older_serial_is_incremental() -> None:
    assert decide(request("IXFR", serial=4)).answer is Answer.INCREMENTAL


def test_ixfr_for_a_peer_with_ixfr_off_is_axfr_style() -> None:
    assert decide(request("IXFR", serial=4), ixfr=False).answer is Answer.AXFR_STYLE


def test_the_question_in_any_case_finds_the_zone() -> None:
    assert decide(request(qname="GaTe.TeSt.")).zone == "gate.test."


# -- TSIG, checked before the gate ----------------------------------------------------------
def signed(key: dns.tsig.Key) -> bytes:
    q = dns.message.make_query("gate.test.", "AXFR")
    q.use_tsig(key)
    return q.to_wire()  # type: ignore[no-any-return]


def refusal(wire: bytes) -> TsigRefusal:
    checked = TsigCheck(policy()).check(wire)
    assert isinstance(checked, TsigRefusal)
    return checked


def test_tsig_unknown_key_is_badkey_unsigned() -> None:
    other = dns.tsig.Key("other.", KEY.secret, "hmac-sha256")
    r = refusal(signed(other))
    reply = dns.message.from_wire(r.answer, keyring=False)
    assert r.result == "badkey" and reply.rcode() == dns.rcode.NOTAUTH
    assert reply.tsig_error == dns.rcode.BADKEY and reply.tsig[0].mac == b""  # type: ignore[index]


def test_tsig_bad_mac_is_badsig_unsigned() -> None:
    wrong = dns.tsig.Key("k.", "b3RoZXItc2VjcmV0LWtleS0tLQ==", "hmac-sha256")
    r = refusal(signed(wrong))
    reply = dns.message.from_wire(r.answer, keyring=False)
    assert r.result == "badsig" and reply.tsig_error == dns.rcode.BADSIG


def test_tsig_out_of_time_is_badtime_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: now - 3600)  # signed an hour ago
        wire = signed(KEY)
    r = refusal(wire)
    reply = dns.message.from_wire(r.answer, keyring=False)
    assert r.result == "badtime" and reply.tsig_error == dns.rcode.BADTIME
    assert reply.tsig[0].mac != b""  # type: ignore[index]


def test_unparseable_request_is_formerr() -> None:
    wire = signed(KEY)
    r = refusal(wire[:-3])
    assert r.result == "formerr" and r.answer[3] & 0x0F == dns.rcode.FORMERR


def test_a_good_signature_passes_and_names_the_key() -> None:
    used: list[str] = []
    msg = TsigCheck(policy(), on_key_used=used.append).check(signed(KEY))
    assert isinstance(msg, dns.message.Message) and msg.had_tsig and used == ["k."]
