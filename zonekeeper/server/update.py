"""RFC 2136 dynamic UPDATE in: TSIG (the transfer server's check), the zone, the update
policy (``update_decision``: which key from which address may change which names and
types), then the change itself through the service layer (``apply``, wired by the
composition root: ``ZoneService.apply_update``), as one change set.

Answers: FORMERR for a malformed UPDATE; NOTAUTH for a zone not served here or a bad key
(with the TSIG error); NOTIMP for a secondary zone (UPDATE is not forwarded to its
primary); REFUSED when no rule allows every change; the prerequisites' own RCODEs (NXDOMAIN,
YXDOMAIN, NXRRSET, YXRRSET, NOTZONE); NOERROR once applied. Whatever is refused or fails
changes nothing. Every UPDATE is one ``dns.update`` log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import structlog

from zonekeeper.errors import Conflict, NotFound
from zonekeeper.policy.acl import update_decision
from zonekeeper.proto.rrwire import name_key
from zonekeeper.server.tsig import TsigCheck, TsigRefusal
from zonekeeper.zones.snapshot import Registry, ZoneKind

log = structlog.get_logger("zonekeeper.update")

# What ``apply`` is handed: (owner, class, type, ttl, rdata or None) per record, as the
# service layer's UpdateRR takes them.
UpdateRecord = tuple[dns.name.Name, int, int, int, object]
Apply = Callable[[dns.name.Name, list[UpdateRecord], list[UpdateRecord]],
                 Awaitable[tuple[int, int | None, list[str]]]]

MAX_UPDATE_RECORDS = 1000  # prerequisites and updates in one UPDATE, at most


def is_update(wire: bytes) -> bool:
    """A request (QR clear) with opcode UPDATE."""
    return len(wire) >= 12 and wire[2] & 0xF8 == 0x28


def _records(section: list[dns.rrset.RRset]) -> list[UpdateRecord]:
    """A section's records; an RRset with no rdata (RDLENGTH 0) is one record without."""
    out: list[UpdateRecord] = []
    for rrset in section:
        rdclass = int(rrset.deleting) if rrset.deleting is not None else int(rrset.rdclass)
        if len(rrset) == 0:
            out.append((rrset.name, rdclass, int(rrset.rdtype), int(rrset.ttl), None))
        for rd in rrset:
            out.append((rrset.name, rdclass, int(rrset.rdtype), int(rrset.ttl), rd))
    return out


FORWARD_TIMEOUT = 10.0  # seconds for a forwarded UPDATE's answer


class UpdateServer:
    def __init__(self, tsig: TsigCheck, registry: Registry, apply: Apply, *,
                 primaries: Callable[[str], list[tuple[str, int]]] | None = None) -> None:
        self.tsig = tsig  # the TSIG check; holds the access policy and the metrics
        self.registry = registry
        self.apply = apply
        # Set: UPDATEs for secondary zones go to the zone's first primary (address, port).
        self.primaries = primaries

    async def handle(self, wire: bytes, addr: str) -> bytes | None:
        """The answer to one UPDATE from ``addr``; None to drop it (not a request)."""
        if not is_update(wire):
            return None
        checked = self.tsig.check(wire)
        if isinstance(checked, TsigRefusal):
            self.tsig.metrics.refused("update", "tsig" if checked.result != "formerr" else "malformed")
            if checked.reason is not None:
                log.info("dns.update", client=addr, key=checked.key, result="refused",
                         reason=checked.reason)
            return checked.answer
        msg = checked
        key = msg.keyname.to_text().lower() if msg.had_tsig else None  # type: ignore[union-attr]
        zone_section = msg.sections[0]
        if (len(zone_section) != 1 or zone_section[0].rdtype != dns.rdatatype.SOA
                or zone_section[0].rdclass != dns.rdataclass.IN):
            return self._answer(msg, dns.rcode.FORMERR, addr, key, None,
                                "the zone section must hold one IN SOA question")
        origin = zone_section[0].name
        zone = origin.to_text().lower()
        prereqs = _records(msg.sections[1])
        updates = _records(msg.sections[2])
        if len(prereqs) + len(updates) > MAX_UPDATE_RECORDS:
            return self._answer(msg, dns.rcode.REFUSED, addr, key, zone,
                                f"over {MAX_UPDATE_RECORDS} records in one UPDATE")
        snap = self.registry.zones.get(name_key(origin))
        if snap is None:
            return self._answer(msg, dns.rcode.NOTAUTH, addr, key, zone, "zone not served here")
        secondary = snap.kind is ZoneKind.SECONDARY
        if secondary and self.primaries is None:
            return self._answer(msg, dns.rcode.NOTIMP, addr, key, zone,
                                "a secondary zone: send the UPDATE to its primary")
        changes = [(name.to_text().lower(), rdtype) for name, _c, rdtype, _t, _r in updates]
        decision = update_decision(self.tsig.policy, zone, addr, key, changes)
        if not decision.allowed:
            self.tsig.metrics.refused("update", "acl")
            return self._answer(msg, dns.rcode.REFUSED, addr, key, zone, decision.reason,
                                rule=decision.rule)
        if secondary:
            return await self._forward(wire, msg, addr, key, zone, decision.rule)
        if snap.kind is ZoneKind.CATALOG:
            return self._answer(msg, dns.rcode.REFUSED, addr, key, zone,
                                "a catalog zone: its members are linked through the API",
                                rule=decision.rule)
        structlog.contextvars.bind_contextvars(update_key=key, update_client=addr)
        try:
            rcode, serial, notes = await self.apply(origin, prereqs, updates)
        except NotFound:
            return self._answer(msg, dns.rcode.NOTAUTH, addr, key, zone, "zone not served here")
        except Conflict as exc:
            return self._answer(msg, dns.rcode.NOTIMP, addr, key, zone, exc.detail)
        except Exception:  # noqa: BLE001 - storage down or a bug: SERVFAIL, nothing applied
            log.exception("dns.update_error", zone=zone, client=addr)
            return self._answer(msg, dns.rcode.SERVFAIL, addr, key, zone, "internal error")
        if serial is not None:
            reason = "applied"
        elif rcode == dns.rcode.NOERROR:
            reason = "nothing to change"
        elif rcode == dns.rcode.REFUSED:
            reason = "the change would leave the zone broken; nothing applied"
        else:
            reason = "a prerequisite does not hold"
        return self._answer(msg, rcode, addr, key, zone, reason, rule=decision.rule,
                            serial=serial, notes=notes or None)

    async def _forward(self, wire: bytes, msg: dns.message.Message, addr: str,
                       key: str | None, zone: str, rule: str | None) -> bytes | None:
        """The UPDATE, as it came, to the zone's first primary over TCP; its answer relayed
        as it came (signed by the primary for the client when the request was signed)."""
        assert self.primaries is not None
        targets = self.primaries(zone)
        if not targets:
            return self._answer(msg, dns.rcode.SERVFAIL, addr, key, zone,
                                "a secondary zone without primaries to forward to")
        host, port = targets[0]
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                    FORWARD_TIMEOUT)
            try:
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2),
                                                             FORWARD_TIMEOUT), "big")
                answer = await asyncio.wait_for(reader.readexactly(size), FORWARD_TIMEOUT)
            finally:
                writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            return self._answer(msg, dns.rcode.SERVFAIL, addr, key, zone,
                                f"forwarding to {host}#{port} failed: {exc or type(exc).__name__}")
        if len(answer) < 12 or answer[:2] != wire[:2]:
            return self._answer(msg, dns.rcode.SERVFAIL, addr, key, zone,
                                f"the answer from {host}#{port} does not match the UPDATE")
        log.info("dns.update", zone=zone, client=addr, key=key, rule=rule,
                 result="forwarded", primary=f"{host}#{port}",
                 rcode=dns.rcode.to_text(dns.rcode.Rcode(answer[3] & 15)))
        return answer

    def _answer(self, msg: dns.message.Message, rcode: int, addr: str, key: str | None,
                zone: str | None, reason: str, **event: object) -> bytes | None:
        result = "ok" if rcode == dns.rcode.NOERROR else dns.rcode.to_text(rcode).lower()
        log.info("dns.update", zone=zone, client=addr, key=key, result=result, reason=reason,
                 **{k: v for k, v in event.items() if v is not None})
        resp = dns.message.make_response(msg)
        resp.set_rcode(rcode)
        try:
            return resp.to_wire()  # signed if the request was
        except Exception:  # noqa: BLE001 - cannot be rendered or signed: no answer
            log.exception("dns.update_answer_error", zone=zone, client=addr)
            return None
