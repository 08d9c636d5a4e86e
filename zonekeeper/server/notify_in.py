"""NOTIFY in (RFC 1996): the second of the three DNS handlers.

A NOTIFY for a secondary zone, from a linked primary (or a ``notify`` rule), with its key
when it has one, is answered and the zone's refresh triggered at once. Charged first to
its source's budget (``NotifyLimit``) on the address alone; its TSIG is checked by
``server.tsig`` as every request's is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import structlog

from zonekeeper.logs import Throttle
from zonekeeper.metrics import Metrics, refusal_reason
from zonekeeper.policy.acl import AclAction
from zonekeeper.proto.request import header_only
from zonekeeper.proto.rrwire import name_key
from zonekeeper.server.notify_limit import NotifyLimit
from zonekeeper.server.tsig import TsigCheck, TsigRefusal
from zonekeeper.zones.snapshot import Registry, ZoneKind

log = structlog.get_logger("zonekeeper.xfr")


def _notify_subject(wire: bytes) -> tuple[str | None, int | None]:
    """The zone and SOA serial a NOTIFY names, read without checking its signature: what
    the log says of one that was refused (its lines are counted per zone and serial)."""
    try:
        msg = dns.message.from_wire(wire, keyring=False)
        serial = next((rr.serial for rrset in msg.answer if rrset.rdtype == dns.rdatatype.SOA
                       for rr in rrset), None)
        return msg.question[0].name.to_text().lower(), serial
    except Exception:  # noqa: BLE001 - a log detail, nothing more
        return None, None


class NotifyIn:
    def __init__(self, registry: Registry, tsig: TsigCheck, *,
                 limit: NotifyLimit | None = None, metrics: Metrics | None = None,
                 on_notify: Callable[[str], None] | None = None) -> None:
        self.registry = registry
        self.tsig = tsig
        # A budget per source, and five lines per source and outcome every 10 s at most,
        # with the count held back.
        self.limit = limit if limit is not None else NotifyLimit()
        self.throttle = Throttle(10.0, burst=5)
        self.metrics = metrics if metrics is not None else tsig.metrics
        self.on_notify = on_notify  # told the zone (absolute, lower case) of each accepted

    def handle(self, wire: bytes, addr: str) -> bytes | None:
        """NOTIFY in (RFC 1996): from a linked primary (or a ``notify`` rule), with its key
        when it has one; answered, then the zone's refresh is triggered at once.

        Charged first to its source's budget (``notify_limit``), on the address alone:
        over it, the NOTIFY is dropped before any parse or TSIG check. Log lines are held
        to five per source and outcome every 10 s (``suppressed`` counts the rest)."""
        policy = self.tsig.policy
        known = policy.notify_source(addr)
        if not self.limit.allow(addr, known):
            # One line for the shared budget of strangers, one per source of its own.
            self._log(("dropped", addr if known else None), client=addr,
                             result="dropped", reason="over the NOTIFY budget of its source")
            return None
        checked = self.tsig.check(wire)
        if isinstance(checked, TsigRefusal):
            if checked.reason is not None:
                zone, serial = _notify_subject(wire)
                self._log((checked.result, addr, zone, serial), zone=zone, client=addr,
                                 key=checked.key, serial=serial, result="refused",
                                 reason=checked.reason)
            return checked.answer
        query = checked
        if len(query.question) != 1:
            return header_only(wire, dns.rcode.FORMERR)
        zone = query.question[0].name.to_text().lower()
        key_name = cast(dns.name.Name, query.keyname).to_text().lower() if query.had_tsig else None
        resp = dns.message.make_response(query)
        snap = self.registry.zones.get(name_key(query.question[0].name))
        if snap is None or snap.kind is not ZoneKind.SECONDARY:
            resp.set_rcode(dns.rcode.NOTAUTH)
            self._log(("notauth", addr), zone=zone, client=addr, key=key_name,
                             result="notauth", reason="not a secondary zone here")
            return bytes(resp.to_wire())
        decision = policy.allowed(AclAction.NOTIFY, zone, addr, key_name)
        if not decision.allowed:
            resp.set_rcode(dns.rcode.REFUSED)
            self._log(("refused", addr), zone=zone, client=addr, key=key_name,
                             result="refused", reason=decision.reason)
            return bytes(resp.to_wire())
        resp.flags |= dns.flags.AA
        serial = next((rr.serial for rrset in query.answer if rrset.rdtype == dns.rdatatype.SOA
                       for rr in rrset), None)
        self._log(("accepted", addr, zone, serial), zone=zone, client=addr, key=key_name,
                         serial=serial, result="accepted", rule=decision.rule)
        if self.on_notify is not None:
            self.on_notify(zone)
        return bytes(resp.to_wire())

    def _log(self, what: object, /, **event: object) -> None:
        """A ``notify.received`` line, unless five for ``what`` went out in the last 10 s."""
        result = str(event["result"])
        self.metrics.notify_in(result)
        if result != "accepted":
            self.metrics.refused("notify", refusal_reason(str(event.get("reason") or "")))
        held = self.throttle.due(what)
        if held is not None:
            log.info("notify.received", **event, **({"suppressed": held} if held else {}))
