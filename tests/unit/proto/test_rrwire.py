"""proto.rrwire: the served form's building blocks against dnspython as the reference."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from zonekeeper.proto.rrwire import rdata_wire


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=4, max_size=4))
def test_address_wire_is_dnspythons(v6: bytes, v4: bytes) -> None:
    """rdata_wire's short cut for A and AAAA (the address text through inet_pton) gives
    dnspython's to_wire for every address, v4-mapped and compatible ones included."""
    for rdtype, octets in ((dns.rdatatype.AAAA, v6), (dns.rdatatype.A, v4),
                           (dns.rdatatype.AAAA, bytes(10) + b"\xff\xff" + v4),
                           (dns.rdatatype.AAAA, bytes(12) + v4)):
        rd = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, octets, 0, len(octets))
        assert rdata_wire(rd) == rd.to_wire() == octets
        # ...and for the same record read from its text (the zone-file path).
        again = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rd.to_text())
        assert rdata_wire(again) == octets


def test_other_types_are_dnspythons_wire() -> None:
    rd = dns.rdata.from_text("IN", "MX", "10 Mail.Example.")
    assert rdata_wire(rd) == rd.to_wire()


_LABEL = st.binary(min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LABEL, max_size=4), st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535),
       st.lists(st.binary(max_size=255), min_size=1, max_size=4))
def test_named_and_string_types_wire_is_dnspythons(labels: list[bytes], a: int, b: int, c: int,
                                                   strings: list[bytes]) -> None:
    """rdata_wire's short cuts for NS, CNAME, DNAME, PTR, MX, SRV and TXT (names as written,
    any octets and case, the root included) give dnspython's own to_wire."""
    target = dns.name.Name([*labels, b""])
    rds = [dns.rdata.from_text("IN", t, "x.") for t in ("NS", "CNAME", "DNAME", "PTR")]
    rds = [rd.replace(target=target) for rd in rds]
    rds.append(dns.rdata.from_text("IN", "MX", "1 x.").replace(preference=a, exchange=target))
    rds.append(dns.rdata.from_text("IN", "SRV", "1 2 3 x.").replace(priority=a, weight=b, port=c,
                                                                   target=target))
    rds.append(dns.rdata.from_text("IN", "TXT", '"x"').replace(strings=strings))
    for rd in rds:
        assert rdata_wire(rd) == rd.to_wire(), rd.rdtype


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=63), min_size=0, max_size=8))
def test_sort_key_in_c_is_the_python_one(labels: list[bytes]) -> None:
    from zonekeeper.proto import rrwire

    key = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    assert rrwire.sort_key is not rrwire._py_sort_key, "zonekeeper.proto._axfrbuild is not built"
    assert rrwire.sort_key(key) == rrwire._py_sort_key(key)


@given(st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.lists(st.binary(max_size=300), max_size=6),
       st.sampled_from([list, tuple]))
def test_make_blob_in_c_is_the_python_one(rdtype: int, ttl: int, rdatas: list[bytes], kind: type) -> None:
    from zonekeeper.proto import rrwire
    assert rrwire.make_blob is not rrwire._py_make_blob, "zonekeeper.proto._axfrbuild is not built"
    blob = rrwire.make_blob(rdtype, ttl, kind(rdatas))
    assert blob == rrwire._py_make_blob(rdtype, ttl, rdatas)
    assert rrwire.blob_rdatas(blob) == rdatas and rrwire.blob_count(blob) == len(rdatas)


def test_make_blob_in_c_refuses_what_cannot_be_an_rrset() -> None:
    from zonekeeper.proto import rrwire
    for args, error in [((0x10000, 1, []), OverflowError), ((1, 2**32, []), OverflowError),
                        ((1, 2**64 + 60, []), OverflowError), ((2**64 + 1, 60, []), OverflowError),
                        ((-1, 60, []), OverflowError), ((1, -60, []), OverflowError),
                        ((1, 1, [b"x" * 65536]), OverflowError), ((1, 1, ["text"]), TypeError),
                        ((1, 1, None), TypeError)]:
        try:
            rrwire.make_blob(*args)
        except error:
            continue
        raise AssertionError(f"make_blob{args} did not raise {error.__name__}")


@given(st.lists(st.lists(st.lists(st.binary(max_size=20), max_size=4), max_size=3), max_size=8))
def test_count_records_in_c_is_the_python_one(owners: list[list[list[bytes]]]) -> None:
    # Nodes as the table holds them: b"" (an empty non-terminal), one blob, or a tuple.
    from zonekeeper.proto import rrwire
    assert rrwire.count_records is not rrwire._py_count_records, "zonekeeper.proto._axfrbuild is not built"
    nodes = []
    for types in owners:
        blobs = [rrwire.make_blob(t + 1, 60, rds) for t, rds in enumerate(types)]
        nodes.append(b"" if not blobs else blobs[0] if len(blobs) == 1 else tuple(blobs))
    expected = sum(len(rds) for types in owners for rds in types)
    assert rrwire.count_records(nodes) == rrwire._py_count_records(nodes) == expected
    for bad, error in [([b"\x00\x01\x00"], ValueError), ([1], TypeError), ([(b"",), ("x",)], TypeError)]:
        try:
            rrwire.count_records(bad)
        except error:
            continue
        raise AssertionError(f"count_records({bad!r}) did not raise {error.__name__}")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=63), min_size=0, max_size=8))
def test_key_of_sort_key_gives_the_owner_back(labels: list[bytes]) -> None:
    # The node rows keep the sort key alone (schema 0015): the owner must come back whole.
    from zonekeeper.proto import rrwire

    key = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    assert rrwire.key_of_sort_key is not rrwire._py_key_of_sort_key, "zonekeeper.proto._axfrbuild is not built"
    assert rrwire.key_of_sort_key(rrwire.sort_key(key)) == key
    assert rrwire._py_key_of_sort_key(rrwire._py_sort_key(key)) == key


def test_key_of_sort_key_in_c_refuses_what_is_not_a_sort_key() -> None:
    from zonekeeper.proto import rrwire
    for bad, error in [(b"\x03ab", ValueError), (b"\x01a\x00", ValueError), ("\x01a", TypeError)]:
        try:
            rrwire.key_of_sort_key(bad)
        except error:
            continue
        raise AssertionError(f"key_of_sort_key({bad!r}) did not raise {error.__name__}")
