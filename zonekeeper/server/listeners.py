"""DNS over UDP and TCP (RFC 7766) on asyncio protocols.

UDP: one socket per configured address (no wildcard binds, so replies leave from
the address the query reached). TCP: pipelined queries answered in order, an
idle timeout, a cap on open connections; a length prefix of 0 or a peer that
sends half a message and goes quiet is closed at the idle timeout.

TCP connections are accepted here (``TcpAcceptor``), not by the loop's server: what a
client sent with its handshake is read at once, and transfer requests whose answers are
known already (a secondary asking for the difference others got) are answered before the
connection has a transport. Setting one up takes three trips through the loop, a third of
answering such a request on an idle server; the connection then goes on as a
``TcpProtocol``, which gets whatever was left unanswered.
"""

from __future__ import annotations

import asyncio
import os
import socket

import dns.rcode
import structlog

from zonekeeper.server.handler import QueryHandler, header_only
from zonekeeper.server.xfr import XfrServer, qtype_of, tsig_start

_XFR_TYPES = (252, 251)  # AXFR, IXFR

log = structlog.get_logger("zonekeeper.dns")


def _safe_handle(handler: QueryHandler, data: bytes, *, tcp: bool) -> bytes | None:
    try:
        return handler.handle(data, tcp=tcp)
    except Exception:  # noqa: BLE001 - a bug must cost one SERVFAIL, never the listener
        log.exception("dns.handler_error", tcp=tcp, size=len(data))
        if len(data) >= 12 and not data[2] & 0x80:
            return header_only(data, dns.rcode.SERVFAIL)
        return None


def _respond(handler: QueryHandler, xfr: XfrServer | None, data: bytes, *,
             tcp: bool, addr: str = "") -> bytes | None:
    """The answer to one request; a TSIG-signed query (opcode QUERY) is checked and its
    answer signed by the transfer server, which holds the keys; so is a NOTIFY."""
    if xfr is not None and len(data) >= 12 and data[2] & 0xF8 == 0x20:  # QR=0, opcode NOTIFY
        try:
            return xfr.notify_in(data, addr)
        except Exception:  # noqa: BLE001 - one SERVFAIL, not the listener
            log.exception("notify.error", size=len(data))
            return header_only(data, dns.rcode.SERVFAIL)
    if xfr is not None and len(data) >= 12 and not data[2] & 0xF8:  # QR=0, opcode QUERY
        at = tsig_start(data)
        if at is not None:
            try:
                return xfr.answer_signed(
                    data, at, lambda inner: _safe_handle(handler, inner, tcp=tcp),
                    udp_max_payload=None if tcp else handler.udp_max_payload,
                )
            except Exception:  # noqa: BLE001 - as in _safe_handle: one SERVFAIL, not the listener
                log.exception("dns.tsig_error", tcp=tcp, size=len(data))
                return header_only(data, dns.rcode.SERVFAIL)
    return _safe_handle(handler, data, tcp=tcp)


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: QueryHandler, xfr: XfrServer | None = None) -> None:
        self.handler = handler
        self.xfr = xfr
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        resp = _respond(self.handler, self.xfr, data, tcp=False, addr=addr[0])
        if resp is not None and self.transport is not None:
            self.transport.sendto(resp, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns.udp_error", error=str(exc))


class TcpServerState:
    """Shared by every TCP connection of one process: the connection cap."""

    def __init__(self, handler: QueryHandler, xfr: XfrServer | None = None, *,
                 idle_timeout: float, max_clients: int) -> None:
        self.handler = handler
        self.xfr = xfr
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self.connections: set[TcpProtocol] = set()
        self.opening = 0  # accepted, and their TcpProtocol not made yet
        self.transfers: set[asyncio.Task[None]] = set()
        self.accepting = True
        self.loop = asyncio.get_running_loop()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    async def finish_transfers(self, grace: float) -> None:
        """Let running transfers finish within ``grace`` seconds, then cut them."""
        if not self.transfers:
            return
        _done, pending = await asyncio.wait(set(self.transfers), timeout=grace)
        for task in pending:
            log.warning("xfr.cut", reason="shutdown")
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)


class TcpProtocol(asyncio.Protocol):
    """One DNS-over-TCP connection: queries answered in order; a transfer streams with
    flow control, and requests that arrive during it wait their turn."""

    def __init__(self, state: TcpServerState, peer: tuple[str, int], unread: bytes = b"",
                 unsent: bytes = b"") -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        self.unsent = unsent  # the rest of an answer the acceptor could not send whole
        self.buffer = bytearray(unread)
        self.idle: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self.loop = state.loop
        self.busy = False
        self.writable = True
        self.resumed: asyncio.Future[None] | None = None  # what drain() waits on, made then
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.opening -= 1
        self.state.connections.add(self)
        self._arm_idle()
        if self.unsent:
            self.transport.write(self.unsent)
            self.unsent = b""
        if self.buffer:
            self._process()

    def _arm_idle(self) -> None:
        """Start the idle clock again (a transfer stops it until it ends). One timer per
        connection, moved on only when it fires early: not a new timer per request."""
        self.idle_since = self.loop.time()
        if self.idle is None and not self.busy:
            self.idle = self.loop.call_at(self.idle_since + self.state.idle_timeout, self._idle_due)

    def _idle_due(self) -> None:
        self.idle = None
        if self.busy or self.lost:
            return  # a transfer runs: the clock starts again when it ends
        due = self.idle_since + self.state.idle_timeout
        if self.loop.time() < due:
            self.idle = self.loop.call_at(due, self._idle_due)
        else:
            self.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._arm_idle()
            self._process()

    def _process(self) -> None:
        buf = self.buffer
        out = []
        while len(buf) >= 2 and not self.busy:
            n = int.from_bytes(buf[0:2], "big")
            if len(buf) < 2 + n:
                break
            msg = bytes(buf[2 : 2 + n])
            del buf[: 2 + n]
            if n == 0:
                continue
            xfr = self.state.xfr
            if xfr is not None and is_xfr_request(msg):
                if out:
                    self.write(b"".join(out))
                    out = []
                # An answer known already (a secondary asking again) goes out here and now,
                # without a task of its own; anything else is served by a task.
                try:
                    if xfr.answer_now(msg, self.peer[0], self):
                        continue
                except Exception:  # noqa: BLE001 - as in _transfer: logged, connection closed
                    log.exception("xfr.error", client=self.peer[0])
                    self.close()
                    return
                self.busy = True
                self._arm_idle()
                task = self.loop.create_task(self._transfer(msg))
                self.state.transfers.add(task)
                task.add_done_callback(self.state.transfers.discard)
                return
            resp = _respond(self.state.handler, self.state.xfr, msg, tcp=True, addr=self.peer[0])
            if resp is not None:
                out.append(len(resp).to_bytes(2, "big") + resp)
        if out:
            self.write(b"".join(out))

    async def _transfer(self, msg: bytes) -> None:
        assert self.state.xfr is not None
        try:
            await self.state.xfr.serve(msg, self.peer, self)
        except (ConnectionError, asyncio.CancelledError):
            self.close()
        except Exception:  # noqa: BLE001 - a failed transfer must not take the server down
            log.exception("xfr.error", client=self.peer[0])
            try:
                fail = header_only(msg, dns.rcode.SERVFAIL)
                self.write(len(fail).to_bytes(2, "big") + fail)
            except ConnectionError:
                pass
            self.close()
        finally:
            self.busy = False
            if not self.lost:
                self._arm_idle()
                self._process()

    # -- what a transfer writes through --------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.lost or self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.lost:
            raise ConnectionError("connection closed")
        if not self.writable:
            if self.resumed is None:
                self.resumed = self.loop.create_future()
            await asyncio.shield(self.resumed)
            if self.lost:
                raise ConnectionError("connection closed")

    def paused(self) -> bool:
        return self.lost or not self.writable

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self._wake_drain()

    def _wake_drain(self) -> None:
        if self.resumed is not None:
            if not self.resumed.done():
                self.resumed.set_result(None)
            self.resumed = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.writable = True
        self._wake_drain()
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.state.connections.discard(self)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class _EarlyOut:
    """Where the acceptor writes an answer before the connection has a transport: straight
    to the descriptor. What the socket does not take is kept for the transport."""

    __slots__ = ("fd", "unsent")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.unsent = b""

    def write(self, data: bytes) -> None:
        try:
            sent = os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise ConnectionError(str(exc)) from exc
        self.unsent = data[sent:]

    def paused(self) -> bool:
        return bool(self.unsent)


def is_xfr_request(msg: bytes) -> bool:
    """A query (QR clear, opcode QUERY) for AXFR or IXFR: the transfer server's."""
    return len(msg) > 2 and not msg[2] & 0xF8 and qtype_of(msg) in _XFR_TYPES


class TcpAcceptor:
    """Accepts the connections of one listening socket and hands each to the loop as a
    TcpProtocol; enforces the connection cap. The first request of a connection, when it
    came with the handshake and is a transfer whose answer is known already
    (``XfrServer.answer_now``), is answered here first, straight on the descriptor."""

    BATCH = 64  # accepted per wake-up at most, so one busy listener cannot starve the loop

    def __init__(self, state: TcpServerState, sock: socket.socket) -> None:
        self.state = state
        self.sock = sock
        self.loop = state.loop
        self.fd = sock.fileno()
        self.family, self.type = int(sock.family), int(sock.type)
        self.loop.add_reader(self.fd, self._ready)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)
            self.sock.close()

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.fd, self._ready)

    def _ready(self) -> None:
        state = self.state
        for _ in range(self.BATCH):
            try:
                # The descriptor alone (what socket.accept() wraps in a socket object, which
                # costs more than the accept): the object is made once the answer is out.
                fd, addr = self.sock._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                # Out of file descriptors or buffers: stop accepting for a second, rather
                # than spin on a listener that stays readable.
                log.warning("dns.tcp_accept_failed", error=str(exc))
                self.loop.remove_reader(self.fd)
                self.loop.call_later(1.0, self._resume)
                return
            if not state.accepting or len(state.connections) + state.opening >= state.max_clients:
                os.close(fd)
                log.info("dns.tcp_refused", reason="connection limit", limit=state.max_clients)
                continue
            self._start(fd, (addr[0], addr[1]))

    def _start(self, fd: int, peer: tuple[str, int]) -> None:
        try:
            os.set_blocking(fd, False)
            unread = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            unread = b""  # nothing sent yet: the transport reads it
        except OSError:
            os.close(fd)  # reset already
            return
        else:
            if not unread:
                os.close(fd)  # closed without a word
                return
        unsent = b""
        xfr = self.state.xfr
        n = int.from_bytes(unread[0:2], "big")
        if xfr is not None and 2 + n <= len(unread) and is_xfr_request(unread[2 : 2 + n]):
            out = _EarlyOut(fd)
            try:
                if xfr.answer_now(unread[2 : 2 + n], peer[0], out):
                    unread = unread[2 + n :]
                    unsent = out.unsent
            except Exception:  # noqa: BLE001 - as in TcpProtocol: logged, connection closed
                log.exception("xfr.error", client=peer[0])
                os.close(fd)
                return
        sock = socket.socket(self.family, self.type, 0, fileno=fd)
        self.state.opening += 1
        proto = TcpProtocol(self.state, peer, unread, unsent)
        task = self.loop.create_task(self.loop.connect_accepted_socket(lambda: proto, sock))
        task.add_done_callback(lambda t: self._handed_over(t, proto, sock))

    def _handed_over(self, task: asyncio.Task[object], proto: TcpProtocol,
                     sock: socket.socket) -> None:
        if proto.transport is None:
            # connection_made never ran (the socket failed in between): nothing to serve.
            self.state.opening -= 1
            sock.close()
        if not task.cancelled() and task.exception() is not None:
            log.debug("dns.tcp_handover_failed", client=proto.peer[0], error=str(task.exception()))


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


async def start_udp(handler: QueryHandler, sock: socket.socket,
                    xfr: XfrServer | None = None) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(handler, xfr), sock=sock)
    return transport


def start_tcp(state: TcpServerState, sock: socket.socket) -> TcpAcceptor:
    return TcpAcceptor(state, sock)
