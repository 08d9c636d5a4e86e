"""UDP queries answered by a receive loop in C (``_udpfast.c``), Python answering the rest.

Why: on the asyncio datagram endpoint, each query costs a trip through the event loop,
a ``recvfrom`` and a ``sendto`` and the Python that looks its answer up: about 10 µs, a
third of NSD's and Knot's rate on one core. Most queries on an authoritative server ask
what was asked before; the C loop takes them in batches (``recvmmsg``), answers those it
has an answer for without Python and sends them in batches (``sendmmsg``).

How the answers stay right:
- Python makes every answer but the plainest: a plain query for a name of a served zone,
  with no zone cut on the way, whose answer is the RRset of the asked type at that name,
  or the SOA for a name that does not exist (no wildcard where it would be: NXDOMAIN) or
  has no RRset of that type and no CNAME (NODATA), is answered by the loop itself from
  the node table (``resolve_plain`` in ``_udpfast.c``: the
  same bytes ``proto.answer`` and the handler make, which
  ``tests/integration/test_udp_fast_path.py`` checks against the asyncio endpoint); a
  first-time query for a name of the zone then costs no Python (the misses of a burst of
  new names were ~10 us each in Python). The loop keeps only what the query handler
  returned, or it resolved (but an NXDOMAIN: made again in ~1 us, and a flood of random
  names would push out the answers that are asked again), for a query of one plain shape (opcode QUERY, one question
  with an uncompressed name, no record but an OPT record without options), and only
  when the handler said it may
  (``UdpProtocol.query``: not a SERVFAIL that stands for a bug). Its key is every byte of
  the query but the ID, the name in lower case; an answer given from it carries the new
  query's ID and question, so the case of the name is echoed as the handler would.
  Those queries' answers depend on nothing else than the zones (not on the client's
  address, the time or options such as cookies: queries with options, signed queries,
  NOTIFY and UPDATE always go to Python).
- Each change of the zone registry (``Registry.on_change``, called once the change is
  visible) tells the loop to forget everything; the loop checks right after each
  receive, so a query sent after an API write returned is answered from the new data.
- NOTIFY and UPDATE are handed to the event loop's thread and answered by
  ``UdpProtocol`` as on the asyncio endpoint (so their answers may come after those of
  queries sent later); queries the loop cannot answer, and other opcodes (NOTIMP), are
  answered in the loop's own thread, in order (the handler reads immutable zone
  snapshots, so it needs nothing from the event loop).

Workers: ``[dns] udp_workers`` loops (default: one per CPU this process may run on) share
each socket and its table: the kernel gives each datagram to one of them, and answers
from the table take no GIL, so they run on every core at once.

``[dns] udp_fast_path = false`` keeps the asyncio endpoint; so does a build without a C
compiler (a warning says so at start).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zonekeeper.logs import get_logger
from zonekeeper.proto.request import OPCODE_NOTIFY, OPCODE_QUERY, Request, parse
from zonekeeper.server.router import Route
from zonekeeper.zones.snapshot import Registry, ZoneState

try:
    from zonekeeper.server._udpfast import Listener
except ImportError:  # built without a C compiler: the asyncio endpoint answers
    Listener = None

if TYPE_CHECKING:
    import asyncio

    from zonekeeper.server.udp import UdpProtocol

log = get_logger("zonekeeper.dns")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, or None; asyncio is not imported for it (a quick start
    answers before anything imports asyncio, and then no loop runs)."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return None
    try:
        return aio.get_running_loop()  # type: ignore[no-any-return]
    except RuntimeError:
        return None


def available() -> bool:
    return Listener is not None


def log_unavailable() -> None:
    log.warning("dns.udp_fast_path_unavailable",
                reason="zonekeeper.server._udpfast is not built (install with a C compiler "
                       "and the Python headers: apt-get install gcc python3-dev); UDP is "
                       "answered on the asyncio endpoint")


class _Sender:
    """What ``UdpProtocol`` sends its event-loop answers (NOTIFY, UPDATE) through."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:  # a full buffer or a bad address: UDP drops it
            log.debug("dns.udp_error", error=str(exc))


def default_workers() -> int:
    """One loop per CPU this process may run on (``taskset`` and cgroups' cpusets count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class FastUdp:
    """The C loop on one socket, run by ``workers`` threads; closed like a transport.

    ``early``: the server is still starting (``zonekeeper.start``: the zones are loaded;
    the access policy, the keys and the NOTIFY/UPDATE handlers are not). Until ``started``
    gives the full protocol, the loop answers the requests ``early`` says it can answer
    already (queries whose answers depend on nothing still missing) and holds every other
    one, at most ``MAX_HELD``, to be answered once started; what comes beyond that is
    dropped and counted in one log line."""

    MAX_HELD = 1024

    def __init__(self, sock: socket.socket, protocol: UdpProtocol, registry: Registry,
                 max_entries: int, workers: int = 1, *,
                 early: Callable[[Request], bool] | None = None) -> None:
        assert Listener is not None
        self.sock = sock
        self.protocol = protocol
        self._early = early
        self._held: list[tuple[bytes, tuple[str, int]]] | None = [] if early else None
        self._held_lock = threading.Lock()
        self._held_dropped = 0
        # NOTIFY and UPDATE are passed to the event loop; while ``early``, they are held
        # and there may be no loop yet (``zonekeeper.quickstart``): ``started`` sets it.
        self.loop: asyncio.AbstractEventLoop | None = _running_loop()
        assert self.loop is not None or early is not None, \
            "FastUdp needs the event loop unless it starts early"
        protocol.transport = _Sender(sock)  # type: ignore[assignment]
        # A miss whose answer is one RRset of a node, with no cut on the way, is answered
        # in C from the zones themselves (resolve_plain in _udpfast.c); the rest here.
        self.listener = Listener(sock.fileno(), self._answer, max_entries,
                                 zones=registry.zones, ok_state=ZoneState.OK,
                                 udp_max_payload=protocol.handler.udp_max_payload)
        self.registry = registry
        self._invalidate = self.listener.invalidate
        registry.on_change.append(self._invalidate)
        self.threads = [threading.Thread(target=self.listener.run, name=f"zonekeeper-udp-{i}",
                                         daemon=True) for i in range(max(1, workers))]
        for thread in self.threads:
            thread.start()

    def started(self, protocol: UdpProtocol) -> None:
        """The server has started: ``protocol`` answers from now on, held requests first
        (event loop)."""
        self.loop = _running_loop()
        assert self.loop is not None, "started from the event loop"
        protocol.transport = _Sender(self.sock)  # type: ignore[assignment]
        self.protocol = protocol
        with self._held_lock:
            held, self._held = self._held, None
        for data, addr in held or ():
            resp, _keep = self._answer(data, addr)
            if resp is not None:
                protocol.transport.sendto(resp, addr)  # type: ignore[union-attr]
        if self._held_dropped:
            log.warning("dns.udp_dropped_while_starting", requests=self._held_dropped,
                        held=len(held or ()))

    def _hold(self, req: Request, data: bytes, addr: tuple[str, int]) -> bool:
        """While starting: hold a request that cannot be answered yet (True: held or
        dropped, not answered now)."""
        if self._early is None or self._early(req):
            return False
        with self._held_lock:
            if self._held is None:  # started meanwhile
                return False
            if len(self._held) < self.MAX_HELD:
                self._held.append((data, addr))
            else:
                self._held_dropped += 1
        return True

    def _answer(self, data: bytes, addr: tuple[str, int]) -> tuple[bytes | None, bool]:
        """A request the C loop has no answer for: (the answer or None, may it be kept)."""
        req = parse(data)
        if req is not None and self._held is not None and self._hold(req, data, addr):
            return None, False
        protocol = self.protocol
        if req is None:  # not a request: dropped
            protocol.count(None)
            return None, False
        if req.opcode == OPCODE_QUERY:
            # The answer to a query without EDNS options goes in the loop's table: not also
            # in the handler's response cache (queries with options, cookies say, never
            # go in the table, and still use that cache).
            return protocol.query(req, addr, cache=False)
        if req.opcode == OPCODE_NOTIFY or protocol.router.route(req, tcp=False) is Route.UPDATE:
            # NOTIFY and UPDATE act on the event loop (refreshes, writes): answered there.
            assert self.loop is not None  # held while early, set by started
            self.loop.call_soon_threadsafe(protocol.datagram_received, data, addr)
            return None, False
        resp = protocol.router.answer(req, tcp=False, addr=addr[0])  # NOTIMP and the like
        protocol.count(resp)
        return resp, False

    def counts(self) -> Sequence[int]:
        return self.listener.counts()  # type: ignore[no-any-return]

    def stats(self) -> dict[str, int]:
        return self.listener.stats()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.listener.stop()
        for thread in self.threads:
            thread.join(timeout=2)
        try:
            self.registry.on_change.remove(self._invalidate)
        except ValueError:
            pass
        self.sock.close()
