"""proto/request.py: a request read once, on canned bytes."""

from __future__ import annotations

import dns.message
import dns.opcode
import dns.tsig

from zonekeeper.proto.request import OPCODE_NOTIFY, OPCODE_QUERY, OPCODE_UPDATE, parse

KEY = dns.tsig.Key("k.", "c2VjcmV0LWtleS1mb3ItdGVzdHM=", "hmac-sha256")


def test_the_common_query_shape_is_read_whole() -> None:
    q = dns.message.make_query("WwW.Example.TEST.", "AAAA", use_edns=0, payload=1400,
                               want_dnssec=True)
    req = parse(q.to_wire())
    assert req is not None and req.simple and req.opcode == OPCODE_QUERY
    assert req.qkey == b"\x03www\x07example\x04test\x00" and req.qname[1:4] == b"WwW"
    assert req.qtype == 28 and req.qclass == 1 and req.tsig_at is None
    assert req.edns is not None and (req.edns.payload, req.edns.do, req.edns.version) == (
        1400, True, 0)
    assert not req.is_transfer


def test_no_header_or_a_response_is_dropped() -> None:
    assert parse(b"\x00" * 11) is None
    resp = dns.message.make_response(dns.message.make_query("a.test.", "A"))
    assert parse(resp.to_wire()) is None


def test_a_signed_query_has_its_tsig_position() -> None:
    q = dns.message.make_query("a.test.", "SOA")
    q.use_tsig(KEY)
    wire = q.to_wire()
    req = parse(wire)
    assert req is not None and not req.simple and req.tsig_at is not None
    assert wire[req.tsig_at:req.tsig_at + 3] == b"\x01k\x00" and req.qtype == 6


def test_transfers_notify_and_update_are_told_apart() -> None:
    axfr = parse(dns.message.make_query("z.test.", "AXFR").to_wire())
    assert axfr is not None and axfr.is_transfer
    n = dns.message.make_query("z.test.", "SOA")
    n.set_opcode(dns.opcode.NOTIFY)
    notify = parse(n.to_wire())
    assert notify is not None and notify.opcode == OPCODE_NOTIFY and not notify.is_transfer
    u = dns.message.make_query("z.test.", "SOA")
    u.set_opcode(dns.opcode.UPDATE)
    update = parse(u.to_wire())
    assert update is not None and update.opcode == OPCODE_UPDATE


def test_a_compressed_question_leaves_the_name_to_the_slow_path() -> None:
    wire = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"
    req = parse(wire)
    assert req is not None and not req.simple and req.qname == b"" and not req.is_transfer
