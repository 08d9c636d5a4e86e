"""DNS over UDP: the datagram protocol, the sockets, and the C receive loop's start.

Kept apart from ``listeners`` (TCP, TLS, the asyncio endpoint's start) because the quick
start needs these before it answers, and nothing here imports asyncio (~25 ms of a start).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dns.rcode

from zonekeeper.logs import get_logger
from zonekeeper.proto.request import OPCODE_QUERY, Request, header_only, parse
from zonekeeper.server import udpfast
from zonekeeper.server.handler import QueryHandler
from zonekeeper.server.router import Route, Router

if TYPE_CHECKING:
    import asyncio

    from zonekeeper.server.notify_in import NotifyIn
    from zonekeeper.server.update import UpdateServer

log = get_logger("zonekeeper.dns")


class UdpProtocol:
    """DNS over UDP: answers datagrams (an asyncio datagram protocol: the methods the
    transport calls are all here, so that this module needs no asyncio, which the quick
    start imports only after it answers; or the C loop's Python side, ``udpfast``)."""

    MAX_UPDATES = 32  # UPDATEs being applied at once from UDP; more are dropped

    def __init__(self, handler: QueryHandler, notify: NotifyIn | None = None,
                 counts: list[int] | None = None, update: UpdateServer | None = None) -> None:
        self.router = Router(handler, notify=notify, update=update)
        self.handler = handler
        self.updates: set[asyncio.Task[None]] = set()  # UPDATEs being applied
        # Requests by the RCODE of their answer (slot 16: no answer), or None: not counted.
        self.counts = counts
        # Several threads count (the C loop's workers, the event loop): ``+=`` on a list
        # slot is not atomic, so each count takes the lock (~40 ns).
        self._count_lock = threading.Lock()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        req = parse(data)
        if req is None:
            resp = None
            self.count(resp)
        elif req.opcode == OPCODE_QUERY:
            resp, _ = self.query(req, addr)  # counted there
        elif self.router.route(req, tcp=False) is Route.UPDATE:
            # Applied in a task (it writes to storage); answered when done.
            if len(self.updates) < self.MAX_UPDATES:
                import asyncio  # imported by then: an event loop runs this

                task = asyncio.get_running_loop().create_task(self._update(data, addr))
                self.updates.add(task)
                task.add_done_callback(self.updates.discard)
            return
        else:
            resp = self.router.answer(req, tcp=False, addr=addr[0])
            self.count(resp)
        if resp is not None and self.transport is not None:
            self.transport.sendto(resp, addr)

    def query(self, req: Request, addr: tuple[str, int],
              cache: bool = True) -> tuple[bytes | None, bool]:
        """The answer to an opcode-QUERY request, counted, and whether it may be kept for
        the next identical query (not a SERVFAIL that stands for a bug). ``cache=False``:
        not put in the handler's response cache (the C loop keeps the answer itself)."""
        # Over UDP a query's route is always the query handler (``Router.answer``'s,
        # asked straight: two calls a query less, ~8% of the UDP path).
        try:
            resp = self.handler.answer(req, tcp=False, addr=addr[0], keep=cache)
            keep = True
        except Exception:  # noqa: BLE001 - a bug must cost one SERVFAIL, never the listener
            log.exception("dns.handler_error", tcp=False, size=len(req.wire))
            resp = header_only(req.wire, dns.rcode.SERVFAIL)
            keep = False
        self.count(resp)
        return resp, keep

    def count(self, resp: bytes | None) -> None:
        if self.counts is not None:
            with self._count_lock:
                self.counts[resp[3] & 15 if resp else 16] += 1

    async def _update(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.router.update is not None
        resp = await self.router.update.handle(data, addr[0])
        if resp is not None and self.transport is not None:
            self.transport.sendto(resp, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns.udp_error", error=str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def pause_writing(self) -> None:  # a datagram transport's buffer over its high mark:
        pass  # answers are dropped as the kernel would drop them

    def resume_writing(self) -> None:
        pass


def make_socket(host: str, port: int, kind: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        else:
            # Room for bursts of queries while the loop is busy (the kernel may cap it).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def start_fast_udp(handler: QueryHandler, sock: socket.socket, notify: NotifyIn | None = None,
                   counts: list[int] | None = None, update: UpdateServer | None = None, *,
                   fast_loops: list[Any] | None = None, workers: int = 1,
                   early: Callable[[Request], bool] | None = None) -> udpfast.FastUdp:
    """The C receive loop on ``sock`` (``udpfast.available()`` must be true); no event loop
    needed until ``early`` ends (``FastUdp.started``)."""
    protocol = UdpProtocol(handler, notify, counts, update)
    listener = udpfast.FastUdp(sock, protocol, handler.registry, handler.cache_entries,
                               workers, early=early)
    if fast_loops is not None and counts is not None:
        fast_loops.append(listener)
    return listener
