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
import ipaddress
import os
import socket
import ssl
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import dns.rcode
import structlog

from zonekeeper.logs import Throttle
from zonekeeper.proto.request import Request, header_only, parse
from zonekeeper.server import udpfast
from zonekeeper.server.handler import QueryHandler
from zonekeeper.server.router import Route, Router
from zonekeeper.server.udp import UdpProtocol, start_fast_udp

if TYPE_CHECKING:  # not imported at run time: zonekeeper.start loads this module early
    from zonekeeper.server.notify_in import NotifyIn
    from zonekeeper.server.update import UpdateServer
    from zonekeeper.server.xfr import XfrServer

BATCH_BYTES = 16384  # query answers written together at most, before looking at flow control
TURN_REQUESTS = 64  # requests of one connection answered in one loop turn at most
# Answers to queries waiting in the kernel, unsent because the client does not read, at
# most (TCP_NOTSENT_LOWAT): past it the socket takes no more, the transport pauses us and
# we stop reading the client. Without it the kernel's send buffer grows to megabytes, and
# a client that never reads makes us compute thousands of answers per connection. Lifted
# while a transfer streams, which wants every byte of buffer it can get.
QUERY_NOTSENT_LOWAT = 65536
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
_LOWAT_UNLIMITED = (0xFFFFFFFF).to_bytes(4, sys.byteorder)  # as an unsigned int

log = structlog.get_logger("zonekeeper.dns")


class TcpServerState:
    """Shared by every TCP connection of one process: the connection limits.

    ``max_clients`` connections in all; ``reserved`` of them only for known clients (linked
    peers, addresses of narrow allow rules: ``Policy.known``), who are also free of the
    per-address and per-prefix limits. When the slots for everyone else are full, a
    newcomer takes the place of the unknown connection that has made no progress for
    longest (a transfer running counts as progress): idle or stalled connections cannot
    hold the server against newcomers, and a client is cut only after every connection
    opened or active since it. RFC 7766 §6.2.3 lets a server under pressure close idle
    connections; clients retry."""

    def __init__(self, handler: QueryHandler, xfr: XfrServer | None = None, *,
                 idle_timeout: float, max_clients: int, reserved: int = 0,
                 per_ip: int | None = None, per_prefix: int | None = None,
                 max_input: int = 131_072, notify: NotifyIn | None = None,
                 update: UpdateServer | None = None, counts: list[int] | None = None,
                 on_refused: Callable[[str], None] | None = None,
                 tls_counts: list[int] | None = None) -> None:
        self.handler = handler
        self.xfr = xfr
        self.router = Router(handler, notify=notify, xfr=xfr, update=update)
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self.reserved = reserved
        self.per_ip = per_ip or max_clients
        self.per_prefix = per_prefix or max_clients
        self.max_input = max_input
        self.connections: set[TcpProtocol] = set()
        # Unknown clients' connections, least recent progress first (``touch``).
        self.by_progress: OrderedDict[TcpProtocol, None] = OrderedDict()
        self.opening = 0  # accepted, and their TcpProtocol not made yet
        self.by_ip: dict[str, int] = {}
        self.by_prefix: dict[str, int] = {}
        self.transfers: set[asyncio.Task[None]] = set()
        self.accepting = True
        self.loop = asyncio.get_running_loop()
        self.refusals = Throttle(10.0)
        self.counts = counts  # as UdpProtocol.counts, for TCP
        self.tls_counts = tls_counts  # the same, for connections over TLS
        self.on_refused = on_refused  # a connection refused: reason

    def known(self, addr: str) -> bool:
        return self.xfr is not None and self.xfr.policy.known(addr)

    def admit(self, addr: str) -> bool | None:
        """Count a new connection from ``addr`` in: whether the client is known, or None
        when it may not connect (logged, rate-limited). Every connection admitted is let go
        with ``release`` exactly once."""
        if not self.accepting:
            return None
        prefix = prefix_of(addr)
        known = self.known(addr)
        n_ip = self.by_ip.get(addr, 0)
        n_prefix = self.by_prefix.get(prefix, 0)
        if not known:
            if n_ip >= self.per_ip:
                return self._refuse(addr, "per-address limit", self.per_ip)
            if n_prefix >= self.per_prefix:
                return self._refuse(addr, "per-prefix limit", self.per_prefix)
        limit = self.max_clients - (0 if known else self.reserved)
        if len(self.connections) + self.opening >= limit and not self._evict():
            return self._refuse(addr, "connection limit", self.max_clients)
        self.by_ip[addr] = n_ip + 1
        self.by_prefix[prefix] = n_prefix + 1
        return known

    def release(self, addr: str) -> None:
        for table, key in ((self.by_ip, addr), (self.by_prefix, prefix_of(addr))):
            n = table.get(key, 0) - 1
            if n > 0:
                table[key] = n
            else:
                table.pop(key, None)

    def _refuse(self, addr: str, reason: str, limit: int) -> None:
        if self.on_refused is not None:
            self.on_refused(reason)
        held = self.refusals.due(reason)
        if held is not None:
            log.warning("dns.tcp_refused", client=addr, reason=reason, limit=limit,
                        suppressed=held)
        return None

    def _evict(self) -> bool:
        """Cut the unknown connection with the least recent progress that runs no transfer;
        False if there is none."""
        for conn in self.by_progress:
            if not conn.busy:
                break
        else:
            return False
        held = self.refusals.due("evicted")
        if held is not None:
            log.warning("dns.tcp_evicted", client=conn.peer[0],
                        idle_s=round(self.loop.time() - conn.idle_since, 3), suppressed=held)
        conn.abort()
        # Counted out now: its connection_lost comes on a later loop turn.
        self.connections.discard(conn)
        del self.by_progress[conn]
        return True

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


def prefix_of(addr: str) -> str:
    """The unit per-prefix limits count in: the /24 of an IPv4 address, the /56 of IPv6."""
    if ":" not in addr:
        return addr.rpartition(".")[0]
    try:
        return ipaddress.IPv6Address(addr.split("%", 1)[0]).packed[:7].hex()
    except ValueError:
        return addr


class TcpProtocol(asyncio.Protocol):
    """One DNS-over-TCP connection: queries answered in order; a transfer streams with
    flow control, and requests that arrive during it wait their turn.

    Bounded: the server stops reading the connection while answers wait for the client to
    read them, and while more than ``max_input`` bytes of requests are unanswered, so a
    client that sends without reading costs its socket buffers and no more. The idle clock
    counts from the last progress (a request read or answers taken by the client); at the
    idle timeout a connection is closed, or reset if the client left answers unread."""

    def __init__(self, state: TcpServerState, peer: tuple[str, int], unread: bytes = b"",
                 unsent: bytes = b"", known: bool = False, tls: bool = False) -> None:
        self.state = state
        # Whether the connection came over TLS (DoT/XoT, ``TlsAcceptor``): the one place
        # the transport is known, read by the transfer gate (``xfr.over_tls``).
        self.tls = tls
        self.counts = state.tls_counts if tls else state.counts  # what answer_ready counts in
        self.known = known  # may use the reserved slots, and is never cut for a newcomer
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        self.unsent = unsent  # the rest of an answer the acceptor could not send whole
        self.buffer = bytearray(unread)
        self.idle: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self.loop = state.loop
        self.busy = False
        self.more = False  # a later turn is due to go on with the buffer
        self.writable = True
        self.resumed: asyncio.Future[None] | None = None  # what drain() waits on, made then
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.opening -= 1
        self.state.connections.add(self)
        if not self.known:
            self.state.by_progress[self] = None
        self._arm_idle()
        if self.unsent:
            self.transport.write(self.unsent)
            self.unsent = b""
        if self.buffer:
            self._process()
        self._flow()

    def _arm_idle(self) -> None:
        """Start the idle clock again (a transfer stops it until it ends). One timer per
        connection, moved on only when it fires early: not a new timer per request."""
        self.idle_since = self.loop.time()
        if not self.known and self in self.state.by_progress:
            self.state.by_progress.move_to_end(self)
        if self.idle is None and not self.busy:
            self.idle = self.loop.call_at(self.idle_since + self.state.idle_timeout, self._idle_due)

    def _idle_due(self) -> None:
        self.idle = None
        if self.busy or self.lost:
            return  # a transfer runs: the clock starts again when it ends
        due = self.idle_since + self.state.idle_timeout
        if self.loop.time() < due:
            self.idle = self.loop.call_at(due, self._idle_due)
        elif self.transport is not None and (self.transport.get_write_buffer_size()
                                             or not self.transport.is_reading()):
            # Answers wait for a client that does not read them: close() would wait for
            # it without end (or leave the kernel to), a reset ends it now.
            self.abort()
        else:
            self.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._arm_idle()
            self._process()
        self._flow()

    def _set_lowat(self, value: int | bytes) -> None:
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, value)
            except OSError:
                pass

    def _flow(self) -> None:
        """Read only while answers are being taken and the unanswered requests are few."""
        transport = self.transport
        if transport is None or self.lost:
            return
        want = self.writable and len(self.buffer) < self.state.max_input
        # Asked of the transport each time, not remembered here: reading may start after
        # connection_made whatever was asked during it.
        if want != transport.is_reading():
            try:
                if want:
                    transport.resume_reading()
                else:
                    transport.pause_reading()
            except RuntimeError:  # closing already
                pass

    def _process(self) -> None:
        buf = self.buffer
        try:
            used, transfer = answer_ready(self.state, buf, self.peer[0], self)
        except ConnectionError:
            self.close()
            return
        except Exception:  # noqa: BLE001 - as in _transfer: logged, connection closed
            log.exception("xfr.error", client=self.peer[0])
            self.close()
            return
        if transfer:
            n = int.from_bytes(buf[used : used + 2], "big")
            msg = bytes(buf[used + 2 : used + 2 + n])
            del buf[: used + 2 + n]
            self._set_lowat(_LOWAT_UNLIMITED)
            self.busy = True
            self._arm_idle()
            task = self.loop.create_task(self._transfer(msg))
            self.state.transfers.add(task)
            task.add_done_callback(self.state.transfers.discard)
        else:
            del buf[:used]
            if (len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big")
                    and self.writable and not self.more):
                # A turn's worth answered and more complete requests wait: the rest at a
                # later turn, after other connections have had theirs.
                self.more = True
                self.loop.call_soon(self._more)

    def _more(self) -> None:
        self.more = False
        if not self.busy and not self.lost:
            self._process()
            self._flow()

    async def _transfer(self, msg: bytes) -> None:
        """A request answered in a task: a transfer (streamed) or an UPDATE (one answer)."""
        try:
            await self.state.router.serve(msg, self.peer, self)
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
                self._set_lowat(QUERY_NOTSENT_LOWAT)
                self._arm_idle()
                self._process()
                self._flow()

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
        self._flow()

    def resume_writing(self) -> None:
        self.writable = True
        self._wake_drain()
        if not self.busy and not self.lost:
            self._arm_idle()  # the client read: progress
            if self.buffer:
                self._process()
        self._flow()

    def _wake_drain(self) -> None:
        if self.resumed is not None:
            if not self.resumed.done():
                self.resumed.set_result(None)
            self.resumed = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.writable = True
        self._wake_drain()
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.buffer = bytearray()
        self.state.connections.discard(self)
        self.state.by_progress.pop(self, None)
        self.state.release(self.peer[0])

    def close(self) -> None:
        """Close once what is written has gone; reset if it has not gone by the idle
        timeout (a client that stopped reading)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
            if self.transport.get_write_buffer_size():
                self.loop.call_later(self.state.idle_timeout, self.abort)

    def abort(self) -> None:
        """Reset the connection now (RST, not FIN: nothing left to linger in the kernel),
        dropping whatever it has not sent."""
        if self.transport is not None and not self.lost:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                except OSError:
                    pass
            self.transport.abort()


class _EarlyOut:
    """Where the acceptor writes before the connection has a transport: straight to the
    socket. What the socket does not take is kept for the transport, and nothing more is
    written here after it (``paused``)."""

    __slots__ = ("sock", "unsent", "writes", "counts")
    tls = False  # only cleartext connections are answered before their transport exists

    def __init__(self, sock: socket.socket, counts: list[int] | None = None) -> None:
        self.sock = sock
        self.counts = counts
        self.unsent = b""
        self.writes = 0

    def write(self, data: bytes) -> None:
        if self.writes:
            # More than one answer at once: no Nagle wait for the next (the transport sets
            # TCP_NODELAY too, once it exists).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.writes += 1
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise ConnectionError(str(exc)) from exc
        self.unsent = data[sent:]

    def paused(self) -> bool:
        return bool(self.unsent)


class _Writer:
    """What answer_ready writes through: the connection's write, and whether it is paused."""

    write: Callable[[bytes], None]
    paused: Callable[[], bool]
    tls: bool
    counts: list[int] | None  # requests by the RCODE of their answer (TcpServerState.counts)


def answer_ready(state: TcpServerState, data: bytes | bytearray, addr: str,
                 out: _Writer) -> tuple[int, bool]:
    """Answer the complete requests at the front of ``data`` that need no task: queries,
    NOTIFY, and transfers whose answers are known already (``XfrServer.answer_now``), in
    order, consecutive query answers in one write. Stops at a transfer that needs serving
    (True: it starts at the returned offset), at an incomplete message, or when ``out`` is
    paused, or after TURN_REQUESTS requests (the caller goes on at a later loop turn: one
    client's pipeline cannot hold the loop). Returns the bytes used."""
    pos = 0
    end = len(data)
    pending: list[bytes] = []
    batch = 0
    transfer = False
    router = state.router
    counts = getattr(out, "counts", state.counts)  # TLS connections count apart
    turn = TURN_REQUESTS
    while end - pos >= 2 and not out.paused() and turn:
        turn -= 1
        n = int.from_bytes(data[pos : pos + 2], "big")
        if end - pos - 2 < n:
            break
        req = parse(bytes(data[pos + 2 : pos + 2 + n])) if n else None
        route = Route.ANSWER if req is None else router.route(req, tcp=True)
        if route is not Route.ANSWER:
            if pending:
                out.write(b"".join(pending))
                pending = []
            assert req is not None
            # An UPDATE always goes to a task; a transfer unless its answer is known.
            if route is Route.UPDATE or not router.answer_now(req, addr, out):
                transfer = True
                break
        elif n:
            resp = None if req is None else router.answer(req, tcp=True, addr=addr)
            if counts is not None:
                counts[resp[3] & 15 if resp else 16] += 1
            if resp is not None:
                pending.append(len(resp).to_bytes(2, "big") + resp)
                batch += len(resp) + 2
                if batch >= BATCH_BYTES:
                    # Written now, so that a client that does not read pauses us here
                    # (out.paused) rather than after a megabyte of answers.
                    out.write(b"".join(pending))
                    pending = []
                    batch = 0
        pos += 2 + n
    if pending:
        out.write(b"".join(pending))
    return pos, transfer


class TcpAcceptor:
    """Accepts the connections of one listening socket and hands each to the loop as a
    TcpProtocol; enforces the connection cap. The requests that came with the handshake
    are answered here first, straight on the socket, as far as they need no task
    (``answer_ready``); the TcpProtocol gets the rest."""

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
                # What socket.accept() does, without its per-connection look-ups of the
                # listener's family and type (Python properties): the descriptor is wrapped
                # with the numbers kept here (~4 us less a connection).
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
            known = state.admit(addr[0])
            if known is None:
                os.close(fd)
                continue
            self._start(fd, (addr[0], addr[1]), known)

    def _start(self, fd: int, peer: tuple[str, int], known: bool) -> None:
        sock = socket.socket(self.family, self.type, 0, fileno=fd)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, QUERY_NOTSENT_LOWAT)
            unread = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            unread = b""  # nothing sent yet: the transport reads it
        except OSError:
            self._drop(sock, peer)  # reset already
            return
        else:
            if not unread:
                self._drop(sock, peer)  # closed without a word
                return
        out = _EarlyOut(sock, self.state.counts)
        if unread:
            try:
                used, _transfer = answer_ready(self.state, unread, peer[0], out)
            except ConnectionError:
                self._drop(sock, peer)
                return
            except Exception:  # noqa: BLE001 - as in TcpProtocol: logged, connection closed
                log.exception("xfr.error", client=peer[0])
                self._drop(sock, peer)
                return
            unread = unread[used:]
        self.state.opening += 1
        proto = TcpProtocol(self.state, peer, unread, out.unsent, known)
        self._hand_over(self.loop.connect_accepted_socket(lambda: proto, sock), proto, sock)

    def _drop(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        """Close a connection that never became a TcpProtocol, and count it out."""
        sock.close()
        self.state.release(peer[0])

    def _hand_over(self, step: Coroutine[Any, Any, object], proto: TcpProtocol,
                   sock: socket.socket) -> None:
        """Run connect_accepted_socket to its end: stepped here, on each future it waits
        for, rather than as a task (a task per connection cost ~7 us more)."""
        try:
            waiting = step.send(None)
        except StopIteration:
            return
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - failed in between: nothing to serve
            if proto.transport is None:
                self.state.opening -= 1
                self._drop(sock, proto.peer)
            log.debug("dns.tcp_handover_failed", client=proto.peer[0], error=str(exc))
            return
        waiting.add_done_callback(lambda _done: self._hand_over(step, proto, sock))


class TlsAcceptor(TcpAcceptor):
    """Accepts the connections of a DNS-over-TLS listening socket (DoT, XoT): admitted by
    the same ``TcpServerState`` counts as TCP, then the TLS handshake (bounded by the idle
    timeout) and the same ``TcpProtocol`` over the TLS transport, which knows it is TLS.
    Nothing is answered before the handshake: what came with it is encrypted. ``context``
    gives the server context of the moment, so a reloaded certificate serves the
    connections accepted after it."""

    def __init__(self, state: TcpServerState, sock: socket.socket,
                 context: Callable[[], ssl.SSLContext]) -> None:
        super().__init__(state, sock)
        self.context = context

    def _start(self, fd: int, peer: tuple[str, int], known: bool) -> None:
        sock = socket.socket(self.family, self.type, 0, fileno=fd)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, QUERY_NOTSENT_LOWAT)
        except OSError:
            self._drop(sock, peer)
            return
        self.state.opening += 1
        proto = TcpProtocol(self.state, peer, known=known, tls=True)
        timeout = self.state.idle_timeout
        self._hand_over(self.loop.connect_accepted_socket(
            lambda: proto, sock, ssl=self.context(), ssl_handshake_timeout=timeout,
            ssl_shutdown_timeout=timeout), proto, sock)


async def start_udp(handler: QueryHandler, sock: socket.socket, notify: NotifyIn | None = None,
                    counts: list[int] | None = None, update: UpdateServer | None = None, *,
                    fast: bool = False, fast_loops: list[Any] | None = None,
                    workers: int = 1,
                    early: Callable[[Request], bool] | None = None) -> asyncio.BaseTransport:
    """Answer UDP on ``sock``: in the C receive loop, run by ``workers`` threads, when
    ``fast`` and it is built (``udpfast.py``), else on an asyncio datagram endpoint.
    ``fast_loops`` gets the C loop (for its counts, when ``counts`` are kept).
    ``early``: the C loop (required) answers only what ``early`` accepts, and holds the
    rest until its ``started`` (``FastUdp``)."""
    if fast:
        if udpfast.available():
            return start_fast_udp(handler, sock, notify, counts, update, fast_loops=fast_loops,
                                  workers=workers, early=early)
        udpfast.log_unavailable()
    protocol = UdpProtocol(handler, notify, counts, update)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    return transport


def start_tcp(state: TcpServerState, sock: socket.socket) -> TcpAcceptor:
    return TcpAcceptor(state, sock)


def start_tls(state: TcpServerState, sock: socket.socket,
              context: Callable[[], ssl.SSLContext]) -> TlsAcceptor:
    return TlsAcceptor(state, sock, context)
