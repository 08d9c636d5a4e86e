"""The transfer gate: whether a transfer request goes ahead, decided once, without I/O.

Order (as in Knot): TSIG (checked before, by ``server.tsig``: its key name comes in) →
EDNS version → zone → zone state → access (with the transport: a "TLS only" grant admits
only a request that came over TLS) → outgoing switch → quota → IXFR choice, so
requests nobody allowed never take a transfer slot. Both ways a transfer is served ask
this one function: ``XfrServer.answer_now`` (answers known at accept) and
``XfrServer.serve`` (the task). A refusal is a ``Refusal``; ``REFUSAL_RCODE`` is the one
table that says what each is answered with.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import dns.rcode

from zonekeeper.policy.acl import Policy, transfer_decision
from zonekeeper.proto.request import AXFR
from zonekeeper.proto.rrwire import key_to_name
from zonekeeper.proto.serial import is_newer
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot

EDE_PROHIBITED = 18  # Extended DNS Error "Prohibited" (RFC 8914)
_CLASS_IN = 1


class Refusal(enum.Enum):
    MALFORMED = "malformed"  # e.g. an IXFR without the client's SOA
    EDNS_VERSION = "edns-version"
    NOT_SERVED = "not-served"
    UNSERVED = "unserved"  # expired, or a secondary not loaded yet
    DENIED = "denied"  # by the access policy, or the zone's outgoing switch
    QUOTA = "quota"


# What each refusal is answered with: RCODE, and the Extended DNS Error when the client
# speaks EDNS (None: none).
REFUSAL_RCODE: dict[Refusal, tuple[int, int | None]] = {
    Refusal.MALFORMED: (dns.rcode.FORMERR, None),
    Refusal.EDNS_VERSION: (dns.rcode.BADVERS, None),
    Refusal.NOT_SERVED: (dns.rcode.NOTAUTH, None),
    Refusal.UNSERVED: (dns.rcode.SERVFAIL, None),
    Refusal.DENIED: (dns.rcode.REFUSED, EDE_PROHIBITED),
    Refusal.QUOTA: (dns.rcode.REFUSED, None),
}
_BY_DECISION_RCODE = {dns.rcode.NOTAUTH: Refusal.NOT_SERVED, dns.rcode.SERVFAIL: Refusal.UNSERVED,
                      dns.rcode.REFUSED: Refusal.DENIED}


class Answer(enum.Enum):
    AXFR = "axfr"  # the whole zone
    CURRENT = "current"  # IXFR from the current serial or newer: one SOA
    INCREMENTAL = "incremental"  # IXFR: the difference (AXFR-style if the journal says so)
    AXFR_STYLE = "axfr-style"  # IXFR answered with the whole zone: IXFR off for this peer


class Ask(NamedTuple):
    """What the gate reads of a transfer request."""

    qkey: bytes  # the question's name, lower-case wire
    qtype: int
    qclass: int
    addr: str  # the client's address
    key: str | None  # the TSIG key it verified with (absolute, lower case), or None
    edns_version: int = -1  # -1: no OPT
    client_serial: int | None = None  # an IXFR's SOA serial (None: absent)
    tls: bool = False  # the request came over TLS (XoT): what "TLS only" grants need


@dataclass(frozen=True, slots=True)
class Verdict:
    refusal: Refusal | None
    reason: str
    zone: str
    rule: str | None = None
    snap: ZoneSnapshot | None = None
    answer: Answer | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def rcode(self) -> int:
        return dns.rcode.NOERROR if self.refusal is None else REFUSAL_RCODE[self.refusal][0]

    @property
    def ede(self) -> int | None:
        return None if self.refusal is None else REFUSAL_RCODE[self.refusal][1]


@functools.lru_cache(maxsize=1024)
def zone_text(qkey: bytes) -> str:
    """A zone's name as transfers log it (what ``q.name.to_text().lower()`` gives for a
    question naming that zone in any case)."""
    return key_to_name(qkey).to_text().lower()


def transfer_gate(ask: Ask, policy: Policy, registry: Registry, *,
                  no_slot: Callable[[str, str], str | None],
                  ixfr_allowed: Callable[[str, str], bool]) -> Verdict:
    """The verdict on one transfer request. ``no_slot(zone, addr)`` says why no transfer
    slot is free for it now (None: one is), ``ixfr_allowed(zone, addr)`` whether the client
    takes incremental answers (a linked peer may not)."""
    zone = zone_text(ask.qkey)
    if ask.edns_version > 0:
        return Verdict(Refusal.EDNS_VERSION,
                       f"EDNS version {ask.edns_version} (only version 0 is known here)", zone)
    snap = registry.zones.get(ask.qkey) if ask.qclass == _CLASS_IN else None
    decision = transfer_decision(policy, zone, ask.addr, ask.key, snap, tls=ask.tls)
    if not decision.allowed:
        return Verdict(_BY_DECISION_RCODE[decision.rcode], decision.reason, zone, decision.rule)
    assert snap is not None
    why = no_slot(zone, ask.addr)
    if why is not None:
        return Verdict(Refusal.QUOTA, why, zone, None, snap)
    if ask.qtype == AXFR:
        answer = Answer.AXFR
    elif ask.client_serial is None:
        return Verdict(Refusal.MALFORMED, "IXFR without the client's SOA in the authority section",
                       zone, None, snap)
    elif not is_newer(snap.serial, ask.client_serial):
        answer = Answer.CURRENT  # up to date (or newer): one SOA (RFC 1995 §2)
    elif not ixfr_allowed(zone, ask.addr):
        answer = Answer.AXFR_STYLE
    else:
        answer = Answer.INCREMENTAL
    return Verdict(None, decision.reason, zone, decision.rule, snap, answer)
