"""The TCP acceptor's hand-over (server/listeners.py) on real sockets and uvloop, the loop
the server runs: an answer the acceptor could write only in part is finished by the
connection's transport before anything else, and bytes read at accept that were not
answered there are served by the TcpProtocol as if they had just arrived."""

from __future__ import annotations

import asyncio
import socket

import dns.message
import dns.rcode
import uvloop

from zonekeeper.server.handler import QueryHandler
from zonekeeper.server.listeners import TcpAcceptor, TcpProtocol, TcpServerState, _EarlyOut
from zonekeeper.zones.snapshot import Registry


def test_early_out_keeps_what_the_socket_did_not_take() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        a.setblocking(False)
        out = _EarlyOut(a)
        assert not out.paused()
        data = bytes(range(256)) * 4096  # 1 MiB: more than any socket buffer takes at once
        out.write(data)
        assert out.paused() and 0 < len(out.unsent) < len(data)
        sent = len(data) - len(out.unsent)
        assert data[sent:] == out.unsent


def _framed(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


async def _handover(unread: bytes, unsent: bytes, later: bytes) -> bytes:
    """Hand one end of a socket pair over as the acceptor does; the other end sends
    ``later`` and reads until the server side goes quiet."""
    loop = asyncio.get_running_loop()
    state = TcpServerState(QueryHandler(Registry(), udp_max_payload=1232, cache_entries=0),
                           idle_timeout=1, max_clients=10)
    server_end, client = socket.socketpair()
    server_end.setblocking(False)
    state.opening += 1
    proto = TcpProtocol(state, ("192.0.2.9", 53000), unread, unsent)
    await loop.connect_accepted_socket(lambda: proto, server_end)
    assert state.opening == 0 and state.connections == {proto}
    client.setblocking(False)
    await loop.sock_sendall(client, later)
    got = b""
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(client, 65536), timeout=2)
        except TimeoutError:
            break
        if not chunk:
            break  # the idle timeout closed it
        got += chunk
    client.close()
    return got


def test_unsent_goes_first_then_the_unread_request_is_answered() -> None:
    query = _framed(dns.message.make_query("nowhere.test.", "A", id=4242).to_wire())
    # The first half of a query came with the handshake; the rest comes later.
    got = uvloop.run(_handover(query[:7], b"rest-of-an-answer", query[7:]))
    assert got.startswith(b"rest-of-an-answer")
    answer = got[len(b"rest-of-an-answer"):]
    n = int.from_bytes(answer[:2], "big")
    assert len(answer) == 2 + n
    reply = dns.message.from_wire(answer[2:])
    assert reply.id == 4242 and reply.rcode() == dns.rcode.REFUSED  # no such zone here


def test_acceptor_refuses_over_the_cap_and_closes_on_request() -> None:
    async def run() -> tuple[bytes, int]:
        loop = asyncio.get_running_loop()
        state = TcpServerState(QueryHandler(Registry(), udp_max_payload=1232, cache_entries=0),
                               idle_timeout=5, max_clients=1)
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        acceptor = TcpAcceptor(state, listener)
        port = listener.getsockname()[1]
        first = socket.create_connection(("127.0.0.1", port))
        while len(state.connections) < 1:
            await asyncio.sleep(0.01)
        second = socket.create_connection(("127.0.0.1", port))
        second.setblocking(False)
        refused = await asyncio.wait_for(loop.sock_recv(second, 10), timeout=2)
        acceptor.close()
        state.close_all()
        first.close()
        second.close()
        return refused, listener.fileno()

    refused, fd = uvloop.run(run())
    assert refused == b""  # over the cap: closed at once
    assert fd == -1  # the listening socket is closed with the acceptor
