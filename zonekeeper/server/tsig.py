"""TSIG on requests (RFC 8945), checked once for every path: signed queries, NOTIFY,
transfers and UPDATE all ask ``TsigCheck.check``; answers to signed queries are signed by
``TsigCheck.sign_answer``.

The checks run in RFC 8945 §5.2's order: key (BADKEY), MAC size (§5.2.2.1: FORMERR) and
MAC (BADSIG), time (BADTIME), truncation (BADTRUNC). Key and MAC errors are answered
unsigned (§5.3.2); time and truncation errors are signed.
"""

from __future__ import annotations

import functools
import hmac
import struct
import time
from collections.abc import Callable
from typing import NamedTuple, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig

from zonekeeper.metrics import Metrics
from zonekeeper.policy.acl import Policy
from zonekeeper.proto.request import header_only, tsig_start

FUDGE = 300


def tsig_rr(keyname: dns.name.Name, rdata: dns.rdtypes.ANY.TSIG.TSIG) -> bytes:
    """A TSIG record's wire form (owner uncompressed)."""
    rd = rdata.to_wire()
    owner: bytes = keyname.to_wire()  # type: ignore[assignment]
    return owner + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rd)) + rd


class MacChain:
    """The TSIG records of a multi-message answer (RFC 8945 §5.3.1), one message after
    another: the first MAC covers the request's MAC, the message and the TSIG variables;
    each later one the previous MAC, the message and the times. The chain is this
    answer's own (computed for every client, never cached).

    Everything but the messages is worked out once: the key's HMAC is set up once and
    copied per message (setting it up again cost ~5 us a message, two per message), and
    the TSIG record around each MAC is two constant pieces. Same digest input as
    dnspython's ``dns.tsig.sign``, checked by tests that verify our transfers with
    dnspython, dig, kdig and real secondaries. ``parts`` of a message: its wire form from
    the flags on, with ARCOUNT not counting the TSIG."""

    __slots__ = ("_base", "_cut", "_id", "_later", "_first", "_prev", "_head", "_tail")

    def __init__(self, key: dns.tsig.Key, original_id: int, now: int,
                 request_mac: bytes | None) -> None:
        ctx = dns.tsig.get_context(key)
        keyed = getattr(ctx, "hmac_context", None)
        if keyed is None:  # no keyed hash (GSS-TSIG): not a key a transfer is allowed with
            raise NotImplementedError(f"no HMAC for TSIG algorithm {key.algorithm}")
        # The C object behind hmac.HMAC when there is one: copy/update/digest without a
        # Python frame each (a tenth of the chain's time beside the hash).
        self._base = getattr(keyed, "_hmac", None) or keyed
        size = getattr(ctx, "size", None)  # bits, for the truncated algorithms
        maclen = size // 8 if size else keyed.digest_size
        self._cut = maclen if size else None
        self._id = struct.pack("!H", original_id)
        times = struct.pack("!HIH", (now >> 32) & 0xFFFF, now & 0xFFFFFFFF, FUDGE)
        self._later = times
        self._first = (key.name.to_digestable() + struct.pack("!HI", dns.rdataclass.ANY, 0)
                       + key.algorithm.to_digestable() + times + struct.pack("!HH", 0, 0))
        self._prev = struct.pack("!H", len(request_mac)) + request_mac if request_mac else b""
        algorithm: bytes = key.algorithm.to_wire()  # type: ignore[assignment]
        owner: bytes = key.name.to_wire()  # type: ignore[assignment]
        rdlen = len(algorithm) + 10 + maclen + 6
        self._head = (owner + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, rdlen)
                      + algorithm + times + struct.pack("!H", maclen))
        self._tail = self._id + struct.pack("!HH", 0, 0)

    def sign(self, parts: tuple[bytes, ...]) -> bytes:
        """The TSIG record (wire form, owner uncompressed) of the next message."""
        h = self._base.copy()
        first = self._first
        if self._prev:
            h.update(self._prev)
        h.update(self._id)
        for part in parts:
            h.update(part)
        if first:
            h.update(first)
            self._first = b""
        else:
            h.update(self._later)
        mac = h.digest()
        if self._cut is not None:
            mac = mac[: self._cut]
        self._prev = struct.pack("!H", len(mac)) + mac
        return self._head + mac + self._tail


class TsigRefusal(NamedTuple):
    """A request refused by its TSIG (RFC 8945 §5.2): what to answer, the outcome, and for
    the log the reason (stable text; None for a request that does not parse) and key."""

    answer: bytes
    result: str  # badkey, badsig, badtime, badtrunc or formerr
    reason: str | None
    key: str | None = None

    @property
    def metric(self) -> str:
        """The refusal reason metrics count it under."""
        return "tsig" if self.result != "formerr" else "malformed"


@functools.lru_cache(maxsize=16)
def _mac_bounds(algorithm: dns.name.Name) -> tuple[int, int] | None:
    """The shortest and longest MAC (octets) a request signed with ``algorithm`` may carry
    (RFC 8945 §5.2.2.1): at most the keyed hash's output, at least the larger of 10 and half
    the hash function's output. None for an algorithm without an HMAC here (dnspython then
    says what is wrong)."""
    try:
        ctx = dns.tsig.get_context(dns.tsig.Key("bounds.", b"", algorithm))
    except NotImplementedError:
        return None
    digest = getattr(ctx, "hmac_context", None)
    if digest is None:
        return None
    size = getattr(ctx, "size", None)  # bits, for the truncated algorithms (hmac-sha256-128)
    return max(10, digest.digest_size // 2), size // 8 if size else digest.digest_size


def _truncated_mac_verifies(wire: bytes, at: int, key: dns.tsig.Key,
                            tsig: dns.rdtypes.ANY.TSIG.TSIG) -> bool:
    """Whether a MAC shorter than the hash output is the start of the right one (what a
    truncated MAC is, RFC 8945 §5.2.2.1; dnspython compares whole MACs only)."""
    ar = int.from_bytes(wire[10:12], "big") - 1
    unsigned = wire[:10] + ar.to_bytes(2, "big") + wire[12:at]
    full, _ctx = dns.tsig.sign(unsigned, key, tsig, tsig.time_signed)
    return hmac.compare_digest(full.mac[: len(tsig.mac)], tsig.mac)


class TsigCheck:
    """The keys (in the current ``Policy``) and the TSIG checks on them. Holds the policy
    every DNS path reads: ``policy`` is replaced whole when keys, rules or peers change."""

    def __init__(self, policy: Policy | None = None, *, metrics: Metrics | None = None,
                 on_key_used: Callable[[str], None] | None = None) -> None:
        self.policy = policy if policy is not None else Policy()
        self.metrics = metrics if metrics is not None else Metrics(enabled=False)
        # Told the key name (absolute, lower case) of every request whose TSIG verified;
        # it only notes the time in memory (services.usage.LastUsed.key_used).
        self.on_key_used = on_key_used

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy

    def check(self, wire: bytes) -> dns.message.Message | TsigRefusal:
        """The request parsed and, when signed, verified; TSIG failures counted by kind."""
        try:
            checked = self._verify(wire)
        except Exception:  # noqa: BLE001 - malformed past its TSIG (octets after it): the
            # refusal's re-parse fails too (dnspython checks the TSIG before the rest): FORMERR
            checked = TsigRefusal(header_only(wire, dns.rcode.FORMERR), "formerr", None)
        if isinstance(checked, TsigRefusal) and checked.result != "formerr":
            self.metrics.tsig_error(checked.result)
        return checked

    def _tsig_failure(self, wire: bytes, error: int) -> bytes:
        """NOTAUTH with an unsigned TSIG record carrying ``error`` (BADKEY or BADSIG)."""
        query = dns.message.from_wire(wire, keyring=False)
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.NOTAUTH)
        resp.flags &= ~dns.flags.AA
        body = resp.to_wire()
        rrset = cast(dns.rrset.RRset, query.tsig)
        tsig = rrset[0]
        rdata = dns.rdtypes.ANY.TSIG.TSIG(
            dns.rdataclass.ANY, dns.rdatatype.TSIG, tsig.algorithm, tsig.time_signed, tsig.fudge,
            b"", query.id, error, b"",
        )
        arcount = int.from_bytes(body[10:12], "big") + 1
        return body[:10] + arcount.to_bytes(2, "big") + body[12:] + tsig_rr(rrset.name, rdata)

    def _signed_error(self, wire: bytes, key: dns.tsig.Key, error: int) -> bytes:
        """NOTAUTH signed with ``key`` carrying ``error``: BADTIME (our clock in Other Data)
        or BADTRUNC, for a request whose MAC verified, over its (maybe truncated) MAC."""
        query = dns.message.from_wire(wire, keyring=False)
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.NOTAUTH)
        resp.flags &= ~dns.flags.AA
        now = int(time.time())
        other = struct.pack("!Q", now)[2:] if error == dns.rcode.BADTIME else b""
        resp.use_tsig(key, key.name, FUDGE, query.id, error, other, key.algorithm)
        resp.request_mac = cast(dns.rrset.RRset, query.tsig)[0].mac
        return bytes(resp.to_wire())

    def _verify(self, wire: bytes) -> dns.message.Message | TsigRefusal:
        """The request parsed and, when signed, verified in RFC 8945 §5.2's order: key
        (BADKEY), MAC size (§5.2.2.1: FORMERR) and MAC (BADSIG), time (BADTIME), truncation
        (BADTRUNC: a truncated MAC is refused, whole MACs only). Key and MAC errors are
        answered unsigned (§5.3.2): nothing is signed for a request that is not
        authenticated, so a bad MAC is BADSIG whatever its time. Anything unparseable is
        FORMERR. The same for transfers, signed queries and NOTIFY."""
        policy = self.policy
        at = tsig_start(wire)
        key = tsig = bounds = None
        if at is not None:
            try:
                owner, used = dns.name.from_wire(wire, at)
                rdlen = int.from_bytes(wire[at + used + 8 : at + used + 10], "big")
                tsig = cast(dns.rdtypes.ANY.TSIG.TSIG, dns.rdata.from_wire(
                    dns.rdataclass.ANY, dns.rdatatype.TSIG, wire, at + used + 10, rdlen))
            except Exception:  # noqa: BLE001 - anything unparseable is FORMERR
                return TsigRefusal(header_only(wire, dns.rcode.FORMERR), "formerr", None)
            key = policy.keys.get(owner.to_text().lower())
            if key is not None and key.algorithm == tsig.algorithm:
                bounds = _mac_bounds(key.algorithm)
                if bounds is not None and not bounds[0] <= len(tsig.mac) <= bounds[1]:
                    return TsigRefusal(
                        header_only(wire, dns.rcode.FORMERR), "formerr",
                        f"TSIG MAC of {len(tsig.mac)} octets (RFC 8945 5.2.2.1: {bounds[0]} to "
                        f"{bounds[1]} for {key.algorithm.to_text()}) (FORMERR)",
                        key.name.to_text())
        try:
            msg = dns.message.from_wire(wire, keyring=policy.keyring)
            if msg.had_tsig and self.on_key_used is not None:
                self.on_key_used(cast(dns.name.Name, msg.keyname).to_text().lower())
            return msg
        except (dns.message.UnknownTSIGKey, dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            return TsigRefusal(self._tsig_failure(wire, dns.rcode.BADKEY), "badkey",
                               "unknown TSIG key (BADKEY)")
        except dns.tsig.BadSignature:
            if (key is not None and tsig is not None and at is not None and bounds is not None
                    and len(tsig.mac) < bounds[1]
                    and _truncated_mac_verifies(wire, at, key, tsig)):
                name = key.name.to_text()
                if abs(tsig.time_signed - time.time()) > tsig.fudge:
                    return TsigRefusal(self._signed_error(wire, key, dns.rcode.BADTIME),
                                        "badtime", "TSIG time outside fudge (BADTIME)", name)
                return TsigRefusal(self._signed_error(wire, key, dns.rcode.BADTRUNC),
                                   "badtrunc", "truncated TSIG MAC (BADTRUNC)", name)
            return TsigRefusal(self._tsig_failure(wire, dns.rcode.BADSIG), "badsig",
                               "bad TSIG signature (BADSIG)")
        except dns.tsig.BadTime:
            if key is None:
                q = dns.message.from_wire(wire, keyring=False)
                key = policy.keyring(q, cast(dns.rrset.RRset, q.tsig).name)
            assert key is not None
            return TsigRefusal(self._signed_error(wire, key, dns.rcode.BADTIME), "badtime",
                               "TSIG time outside fudge (BADTIME)", key.name.to_text())
        except Exception:  # noqa: BLE001 - anything unparseable is FORMERR
            return TsigRefusal(header_only(wire, dns.rcode.FORMERR), "formerr", None)


    def sign_answer(self, query: dns.message.Message, body: bytes, *,
                    udp_max_payload: int | None) -> bytes:
        """``body`` (the answer to ``query`` without its TSIG) signed with the
        request's key over its MAC (RFC 8945 §5.3). Over UDP (``udp_max_payload`` set) a
        signed reply over the client's limit goes out truncated: question and TSIG."""
        key = cast(dns.tsig.Key, query.keyring)
        now = int(time.time())
        template = dns.rdtypes.ANY.TSIG.TSIG(
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, FUDGE, b"", query.id, 0,
            b"",
        )
        tsig, _ctx = dns.tsig.sign(body, key, template, now, query.mac, None, False)
        rr = tsig_rr(key.name, tsig)
        if udp_max_payload is None:
            udp_limit = 65535
        else:
            udp_limit = 512 if query.edns < 0 else max(512, min(query.payload, udp_max_payload))
        if len(body) + len(rr) > udp_limit:
            resp = dns.message.make_response(query)  # signed with the request's key and MAC
            resp.flags = int.from_bytes(body[2:4], "big") | dns.flags.TC  # AA and RCODE as answered
            return bytes(resp.to_wire())
        ar = int.from_bytes(body[10:12], "big") + 1
        return body[:10] + ar.to_bytes(2, "big") + body[12:] + rr
