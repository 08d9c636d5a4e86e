"""Which handler serves a DNS request: the one place the intake routes.

The listeners (``server.listeners``) own sockets, framing and flow control; for each
request read they ask the router what it is, and either take the answer it gives at once
(queries, NOTIFY) or start a task for it (an UPDATE, which writes to storage; over TCP, a
transfer that must stream). The handlers behind it are the three of ``server`` (queries,
NOTIFY in, transfers out) and UPDATE. One shortcut: the UDP listener hands a request of
opcode QUERY straight to the query handler (its route over UDP is always that one), the
hottest path of all.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import dns.rcode

from zonekeeper.logs import get_logger
from zonekeeper.proto.request import OPCODE_NOTIFY, OPCODE_UPDATE, Request, header_only

if TYPE_CHECKING:
    from zonekeeper.server.handler import QueryHandler
    from zonekeeper.server.notify_in import NotifyIn
    from zonekeeper.server.update import UpdateServer
    from zonekeeper.server.xfr import Sender, XfrServer

log = get_logger("zonekeeper.dns")


class Route(enum.Enum):
    ANSWER = "answer"  # a query or a NOTIFY: answered at once (``Router.answer``)
    TRANSFER = "transfer"  # AXFR/IXFR over TCP: ``answer_now`` if it can, else a task
    UPDATE = "update"  # RFC 2136: always in a task (``Router.serve``)


class Router:
    """The handlers of one server, and which of them takes a request. A handler left out
    (None) is not served: its requests go to the query handler, which answers them as any
    query of their shape (NOTIMP, REFUSED, ...)."""

    __slots__ = ("handler", "notify", "xfr", "update")

    def __init__(self, handler: QueryHandler, *, notify: NotifyIn | None = None,
                 xfr: XfrServer | None = None, update: UpdateServer | None = None) -> None:
        self.handler = handler
        self.notify = notify
        self.xfr = xfr
        self.update = update

    def route(self, req: Request, *, tcp: bool) -> Route:
        if req.opcode == OPCODE_UPDATE and self.update is not None:
            return Route.UPDATE
        if tcp and self.xfr is not None and req.is_transfer:
            return Route.TRANSFER
        return Route.ANSWER

    def answer(self, req: Request, *, tcp: bool, addr: str) -> bytes | None:
        """The answer to a request routed ANSWER: a NOTIFY to the NOTIFY handler, anything
        else to the query handler. None: no answer (dropped). A bug costs one SERVFAIL,
        never the listener."""
        if req.opcode == OPCODE_NOTIFY and self.notify is not None:
            try:
                return self.notify.handle(req.wire, addr)
            except Exception:  # noqa: BLE001 - one SERVFAIL, not the listener
                log.exception("notify.error", size=len(req.wire))
                return header_only(req.wire, dns.rcode.SERVFAIL)
        try:
            return self.handler.answer(req, tcp=tcp, addr=addr)
        except Exception:  # noqa: BLE001 - a bug must cost one SERVFAIL, never the listener
            log.exception("dns.handler_error", tcp=tcp, size=len(req.wire))
            return header_only(req.wire, dns.rcode.SERVFAIL)

    def answer_now(self, req: Request, addr: str, out: Sender) -> bool:
        """A transfer answered at once, without a task, when its answer is known already
        (``XfrServer.answer_now``); False: serve it in a task."""
        return self.xfr is not None and self.xfr.answer_now(req, addr, out)

    async def serve(self, wire: bytes, peer: tuple[str, int], out: Sender) -> None:
        """A request routed UPDATE or TRANSFER, in its own task: an UPDATE's one answer is
        written to ``out``; a transfer streams through it."""
        if self.update is not None and (wire[2] >> 3) & 0x0F == OPCODE_UPDATE:
            resp = await self.update.handle(wire, peer[0])
            if resp is not None:
                out.write(len(resp).to_bytes(2, "big") + resp)
            return
        assert self.xfr is not None
        await self.xfr.serve(wire, peer, out)
