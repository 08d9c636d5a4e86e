"""Fuzzing a real ``zonekeeper serve`` over UDP and TCP: garbage never kills the server,
and every reply it sends is a well-formed response to the datagram it answers."""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ZkServer
from tests.unit.test_handler_fuzz import check_response, mutated_queries

# Server-level checks in this module use hypothesis' function-scoped-fixture health check
# knowingly: ``zk`` is one server per module, which is exactly what is being hammered.
FUZZ = settings(
    deadline=None,
    max_examples=500,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
UDP_TIMEOUT = 3.0


def udp_exchange(zk: ZkServer, data: bytes) -> list[bytes]:
    """Send ``data`` then a valid probe query from the same socket; return the replies to
    ``data``: those that came before the probe's, and one after it when none came before
    and one is due. The probe's reply proves the server is still answering. The order is
    not the server's to keep: the UDP receive loop has a worker per CPU (another may answer
    the probe first), and NOTIFY and UPDATE are answered on the event loop."""
    probe = dns.message.make_query("probe.example.test", "SOA")
    probe.id = (int.from_bytes(data[0:2], "big") + 1) % 65536 if len(data) >= 2 else 1
    probe_wire = probe.to_wire()
    before: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(UDP_TIMEOUT)
        s.sendto(data, (zk.addr, zk.dns_port))
        s.sendto(probe_wire, (zk.addr, zk.dns_port))
        while True:
            try:
                reply, _ = s.recvfrom(65535)
            except TimeoutError:
                raise AssertionError(
                    f"no reply to the probe after {data.hex()}; server alive: "
                    f"{zk.proc is not None and zk.proc.poll() is None}"
                ) from None
            if reply[0:2] == probe_wire[0:2] and reply[12:].startswith(probe_wire[12:]):
                if not before:
                    # Due (a request with a header): wait for it as long as for the probe;
                    # else look briefly for one that should not come.
                    if len(data) < 12 or data[2] & 0x80:
                        s.settimeout(0.02)
                    try:
                        before.append(s.recvfrom(65535)[0])
                    except TimeoutError:
                        pass
                return before
            before.append(reply)
            assert len(before) <= 1, f"several replies to {data.hex()}"


def check_live(zk: ZkServer, data: bytes) -> None:
    replies = udp_exchange(zk, data)
    if len(data) < 12 or data[2] & 0x80:
        assert not replies, f"answered {data.hex()}"
        return
    # Loopback does not lose datagrams: no reply means the server dropped a request with a
    # header, which the handler never does (FORMERR at worst).
    assert replies, f"no reply to {data.hex()}"
    msg = check_response(data, replies[0])
    assert msg is not None


def assert_alive(zk: ZkServer) -> None:
    assert zk.proc is not None and zk.proc.poll() is None, zk.log()[-4000:]
    # The listener turns a handler exception into SERVFAIL; the log tells them apart.
    errors = [line for line in zk.log().splitlines() if "dns.handler_error" in line]
    assert not errors, "\n".join(errors[:5])
    for tcp in (False, True):
        r = zk.query("example.test", "SOA", tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR
        assert r.flags & dns.flags.AA
        assert r.answer and r.answer[0].rdtype == dns.rdatatype.SOA


@FUZZ
@given(data=st.binary(max_size=512))
@example(data=b"")
@example(data=b"\x00")
@example(data=b"\x00" * 12)
@example(data=b"\x12\x34\x80" + b"\x00" * 9)
@example(data=b"\xff" * 512)
def test_udp_random_bytes(zk: ZkServer, data: bytes) -> None:
    check_live(zk, data)


@FUZZ
@given(data=mutated_queries())
def test_udp_mutated_queries(zk: ZkServer, data: bytes) -> None:
    check_live(zk, data)


def test_still_answers_after_udp_fuzz(zk: ZkServer) -> None:
    # Runs after the two fuzz tests above (file order), on the same server.
    assert_alive(zk)


def _read_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


@st.composite
def tcp_streams(draw: st.DrawFn) -> list[bytes]:
    """A few length-prefixed frames: garbage, mutated queries, lying length prefixes."""
    frames = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["garbage", "mutated", "short_prefix", "long_prefix", "raw"]))
        if kind == "garbage":
            body = draw(st.binary(max_size=300))
            frames.append(struct.pack("!H", len(body)) + body)
        elif kind == "mutated":
            body = draw(mutated_queries())
            frames.append(struct.pack("!H", len(body)) + body)
        elif kind == "short_prefix":
            body = draw(st.binary(min_size=1, max_size=64))
            frames.append(struct.pack("!H", draw(st.integers(0, len(body) - 1))) + body)
        elif kind == "long_prefix":
            body = draw(st.binary(max_size=64))
            frames.append(struct.pack("!H", draw(st.integers(len(body) + 1, 65535))) + body)
        else:
            frames.append(draw(st.binary(min_size=1, max_size=64)))
    return frames


@settings(
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=tcp_streams(), split=st.booleans(),
       ending=st.sampled_from(["half_close", "close", "reset"]))
@example(frames=[b"\x00\x00"], split=False, ending="half_close")
@example(frames=[b"\xff\xff" + b"\x00" * 20], split=False, ending="half_close")
@example(frames=[b"\xff\xff" + b"\x00" * 20], split=False, ending="reset")
@example(frames=[b"\x00"], split=True, ending="half_close")
@example(frames=[b"\x00\x0c" + b"\x00" * 12, b"\x00\x05abc"], split=True, ending="close")
def test_tcp_garbage_never_kills_the_server(
    zk: ZkServer, frames: list[bytes], split: bool, ending: str
) -> None:
    stream = b"".join(frames)
    with socket.create_connection((zk.addr, zk.dns_port), timeout=2) as s:
        try:
            if split:
                for i in range(0, len(stream), 7):
                    s.sendall(stream[i : i + 7])
            else:
                s.sendall(stream)
            if ending == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif ending == "half_close":
                s.shutdown(socket.SHUT_WR)
                # Whatever comes back must be length-prefixed responses; the server may
                # also close or reset the connection, which is fine.
                s.settimeout(0.5)
                while True:
                    head = _read_exact(s, 2)
                    if head is None:
                        break
                    n = struct.unpack("!H", head)[0]
                    body = _read_exact(s, n)
                    assert body is not None, "connection closed inside a response"
                    msg = dns.message.from_wire(body)
                    assert msg.flags & dns.flags.QR
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
    assert zk.proc is not None and zk.proc.poll() is None, zk.log()[-4000:]
    # The server still answers on a fresh connection after every example.
    probe = dns.message.make_query("example.test", "SOA")
    with socket.create_connection((zk.addr, zk.dns_port), timeout=5) as s:
        wire = probe.to_wire()
        s.sendall(struct.pack("!H", len(wire)) + wire)
        head = _read_exact(s, 2)
        assert head is not None
        body = _read_exact(s, struct.unpack("!H", head)[0])
        assert body is not None
        r = dns.message.from_wire(body)
        assert r.id == probe.id and r.rcode() == dns.rcode.NOERROR


def test_tcp_pipelined_garbage_then_valid_query_on_one_connection(zk: ZkServer) -> None:
    """Complete garbage frames are answered (FORMERR) or skipped; a valid query after them
    on the same connection is still answered."""
    good = dns.message.make_query("example.test", "SOA", id=4242).to_wire()
    frames = [
        b"\x00\x03abc",                                  # short: dropped
        b"\x00\x0c" + b"\x80" * 12,                      # a "response": dropped
        b"\x00\x10" + b"\x12\x34\x00\x00\x00\x01" + b"\x00" * 6 + b"\xc0\x0c\x00\x01",  # loop
        b"\x00\x00",                                     # empty frame: skipped
        struct.pack("!H", len(good)) + good,
    ]
    with socket.create_connection((zk.addr, zk.dns_port), timeout=5) as s:
        s.sendall(b"".join(frames))
        replies = []
        while True:
            head = _read_exact(s, 2)
            assert head is not None, "connection closed before the valid query was answered"
            body = _read_exact(s, struct.unpack("!H", head)[0])
            assert body is not None
            msg = dns.message.from_wire(body)
            replies.append(msg)
            if msg.id == 4242:
                break
    assert replies[-1].rcode() == dns.rcode.NOERROR
    assert all(r.rcode() == dns.rcode.FORMERR for r in replies[:-1])
    assert [r.id for r in replies] == [0x1234, 4242]


def test_still_answers_after_all_fuzz(zk: ZkServer) -> None:
    assert_alive(zk)

