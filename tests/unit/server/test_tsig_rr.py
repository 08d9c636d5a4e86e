"""MacChain signs the messages of a transfer byte for byte as dnspython's ``dns.tsig.sign``
does in a multi-message chain (RFC 8945 §5.3.1), for every HMAC algorithm, truncated MACs,
with and without a request MAC, and a time past 2^32 seconds; and ``tsig_rr`` writes what
dnspython's rdata is on the wire."""

from __future__ import annotations

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import pytest

from zonekeeper.server.tsig import FUDGE, MacChain, tsig_rr

SECRET = "YmVuY2gta2V5LW5vdC1hLXJlYWwtc2VjcmV0LTAxMjM="
ALGORITHMS = ["hmac-sha256", "hmac-sha512", "hmac-sha1", "hmac-md5.sig-alg.reg.int", "hmac-sha256-128",
              "hmac-sha384-192", "hmac-sha224"]


def _messages(n: int) -> list[bytes]:
    """Unsigned answer messages of different sizes, ID 4242."""
    out = []
    for i in range(n):
        m = dns.message.make_query("example.", "AXFR")
        m.id = 4242
        m.flags |= 0x8400
        for j in range(1 + 40 * i):
            m.answer.append(dns.rrset.from_text(f"h{j}.example.", 300, "IN", "A", f"192.0.2.{j % 250}"))
        out.append(m.to_wire())
    return out


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("now", [1_764_921_600, (1 << 40) + 7])
@pytest.mark.parametrize("request_mac", [b"", bytes(range(32))])
def test_chain_equals_dnspython(alg: str, now: int, request_mac: bytes) -> None:
    key = dns.tsig.Key("transfer-key.example.", SECRET, alg)
    chain = MacChain(key, 4242, now, request_mac or None)
    ctx = None
    for i, wire in enumerate(_messages(4)):
        template = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm,
                                             now, FUDGE, b"", 4242, 0, b"")
        theirs, ctx = dns.tsig.sign(wire, key, template, now, request_mac if i == 0 else None,
                                    ctx, True)
        ours = chain.sign((wire[2:6], wire[6:40], wire[40:]))  # any split of the message
        assert ours == tsig_rr(key.name, theirs), f"message {i}"


def test_chains_do_not_share_state() -> None:
    """Two transfers with the same key at the same second but different request MACs
    get different MACs from the first message on; the same inputs give the same ones."""
    key = dns.tsig.Key("transfer-key.example.", SECRET, "hmac-sha256")
    wire = _messages(1)[0]
    a = MacChain(key, 4242, 1_764_921_600, b"\x01" * 32)
    b = MacChain(key, 4242, 1_764_921_600, b"\x02" * 32)
    c = MacChain(key, 4242, 1_764_921_600, b"\x01" * 32)
    first = [x.sign((wire[2:],)) for x in (a, b, c)]
    assert first[0] != first[1] and first[0] == first[2]
    assert a.sign((wire[2:],)) == c.sign((wire[2:],)) != first[0]
