"""mac_rr writes the TSIG record a transfer's messages carry byte for byte as tsig_rr does
from dnspython's rdata, for every algorithm, MAC size and a time past 2^32 seconds."""

from __future__ import annotations

import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import pytest

from zonekeeper.server.tsig import FUDGE, mac_rr, tsig_rr

SECRET = "YmVuY2gta2V5LW5vdC1hLXJlYWwtc2VjcmV0LTAxMjM="


@pytest.mark.parametrize("alg", ["hmac-sha256", "hmac-sha512", "hmac-sha1", "hmac-md5", "hmac-sha256-128"])
@pytest.mark.parametrize("now", [0, 1_764_921_600, (1 << 40) + 7])
def test_mac_rr_equals_tsig_rr(alg: str, now: int) -> None:
    key = dns.tsig.Key("transfer-key.example.", SECRET, alg)
    for mac in (b"", bytes(range(16)), bytes(range(64))):
        rdata = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm,
                                          now, FUDGE, mac, 4242, 0, b"")
        assert mac_rr(key, now, mac, 4242) == tsig_rr(key.name, rdata)
