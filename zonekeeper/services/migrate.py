"""Moving zones in: a primary zone made from what a running primary serves (AXFR), as
Linode's "import a domain" does.

The transfer is the secondary side's own (``SecondaryManager.fetch``: the same limits on
size, records and time, the same TSIG checks), and the content gets the same checks as a
zone text before anything is stored; the new zone keeps the primary's SOA serial.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.exception
import dns.name
import structlog

from zonekeeper.errors import Invalid, NotFound, Reason, UpstreamFailed
from zonekeeper.events.secondary import Primary, SecondaryManager, TransferFailed
from zonekeeper.proto.serial import SerialPolicy
from zonekeeper.services.access import AccessService
from zonekeeper.services.zones import ZoneService, ZoneSpec, content_of_nodes

log = structlog.get_logger("zonekeeper.migrate")


async def import_from_primary(zones: ZoneService, secondaries: SecondaryManager,
                              access: AccessService, origin: dns.name.Name, *, address: str,
                              port: int = 53, key: str | None = None,
                              serial_policy: SerialPolicy = SerialPolicy.INCREMENT) -> dict[str, Any]:
    """AXFR ``origin`` from ``address``:``port`` (signed with the stored TSIG key ``key``),
    check it, and create a primary zone holding it. Nothing is stored unless all of it
    arrived and passed the checks."""
    reasons: list[Reason] = []
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        reasons.append(Reason(("address",), f"{address!r} is not an IPv4 or IPv6 address"))
    if not 0 < port < 65536:
        reasons.append(Reason(("port",), f"port {port} is not between 1 and 65535"))
    if reasons:
        raise Invalid("the primary cannot be asked", reasons)
    tsig = None
    if key:
        try:
            tsig = access.policy.keyring(None, dns.name.from_text(key))
        except dns.exception.DNSException:
            tsig = None
        if tsig is None:
            raise NotFound(f"TSIG key {key} does not exist; create or import it first",
                           [Reason(("key",), f"no key named {key}")])
    await zones.absent(origin)  # Conflict before a transfer that would be thrown away
    primary = Primary(f"{ip}#{port}", str(ip), port, tsig, False)
    try:
        got = await secondaries.fetch(origin, primary)
    except TransferFailed as exc:
        raise UpstreamFailed(
            f"AXFR of {origin.to_text()} from {ip} port {port} failed: {exc}; nothing was created",
            [Reason(("address",), str(exc))]) from None
    info = await zones.create(ZoneSpec(name=origin, serial_policy=serial_policy,
                                       content=content_of_nodes(origin, got.nodes)))
    log.info("zone.imported_from_primary", zone=info["name"], primary=str(ip), port=port,
             key=key, serial=info["serial"], records=info.get("record_count"))
    return info
