"""Access control for transfers and NOTIFY: one predicate, ``Policy.allowed``.

A rule names a network, a key, or both, and matches only if everything it names matches.
Deny rules win over allow rules; with no matching allow, the answer is no. Pure: the
policy is an immutable value rebuilt and swapped whenever keys or rules change, so each
policy remembers the decisions it has made (a secondary asks the same question each time).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AclAction(enum.StrEnum):
    TRANSFER = "transfer"
    NOTIFY = "notify"
    UPDATE = "update"  # RFC 2136 dynamic UPDATE


class Effect(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


# Peer addresses and rule networks recur: each is parsed once (ipaddress objects are immutable).
@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress:
    """An address as rules see it: IPv4-mapped IPv6 becomes IPv4; scope ids dropped."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _network_problem(text: str) -> str:
    """Why ``text`` is not a network, in one phrase."""
    address, slash, prefix = text.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IPv4 or IPv6 address"
    longest = ip.max_prefixlen
    if slash and not prefix.isdigit():
        return f"{prefix!r} is not a prefix length (0 to {longest} for IPv{ip.version})"
    if slash and int(prefix) > longest:
        return f"the prefix length /{prefix} is over {longest}, the most for IPv{ip.version}"
    return f"{text!r} is not an IPv{ip.version} network"


@functools.lru_cache(maxsize=1024)
def parse_network(text: str) -> IPNetwork:
    """A network (an address alone is a /32 or /128; host bits are cleared); a ValueError
    says in one phrase what is wrong."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(_network_problem(text.strip())) from None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        prefix = max(net.prefixlen - 96, 0)
        return ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{prefix}", strict=False)
    return net


@dataclass(frozen=True)
class Rule:
    id: int
    action: AclAction
    effect: Effect
    zone: str | None = None  # absolute, lower case; None = every zone
    network: IPNetwork | None = None
    key: str | None = None  # key name, absolute, lower case
    # Update rules: the owner names ("*.name." for anything below name) and record types
    # (numbers) they cover; empty: the whole zone, every type.
    names: tuple[str, ...] = ()
    types: tuple[int, ...] = ()
    # Transfer rules: what this rule allows, it allows only over TLS (XoT); a cleartext
    # request it would admit is refused. A deny rule denies over any transport.
    tls_only: bool = False

    def describe(self) -> str:
        parts = [f"acl {self.id}: {self.effect.value} {self.action.value}"]
        parts.append(f"zone {self.zone}" if self.zone else "all zones")
        if self.network is not None:
            parts.append(f"from {self.network}")
        if self.key is not None:
            parts.append(f"key {self.key}")
        if self.names:
            parts.append("names " + ",".join(self.names))
        if self.types:
            parts.append("types " + ",".join(dns.rdatatype.to_text(t) for t in self.types))
        if self.tls_only:
            parts.append("over TLS only")
        return " ".join(parts)

    def covers(self, owner: str, rdtype: int) -> bool:
        """Whether this update rule covers changing ``owner`` (absolute, lower case) and type
        ``rdtype`` (ANY: every type at the name, which only a rule without types covers)."""
        if self.types and rdtype not in self.types:
            return False
        return not self.names or any(name_covered(owner, n) for n in self.names)

    def matches(self, action: AclAction, zone: str, address: IPAddress, key: str | None) -> bool:
        if self.action != action or (self.zone is not None and self.zone != zone):
            return False
        if self.network is not None and (
            address.version != self.network.version or address not in self.network
        ):
            return False
        return self.key is None or self.key == key


def name_covered(owner: str, pattern: str) -> bool:
    """``owner`` is ``pattern`` (absolute, lower case), or below ``name.`` for ``*.name.``."""
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".name."
        return owner.endswith(suffix) and len(owner) > len(suffix)
    return owner == pattern


@dataclass(frozen=True)
class PeerGrant:
    """A peer linked to a zone: as a secondary it may transfer the zone; as a primary it
    may NOTIFY us. It must come from one of its networks and, if it has a key, sign with it."""

    peer: str
    role: str  # "secondary" | "primary"
    networks: tuple[IPNetwork, ...]
    key: str | None = None
    tls_only: bool = False  # a secondary whose transfers are allowed only over TLS (XoT)

    def matches(self, address: IPAddress, key: str | None) -> bool:
        if not any(address.version == n.version and address in n for n in self.networks):
            return False
        return self.key is None or self.key == key


_ROLE_FOR = {AclAction.TRANSFER: "secondary", AclAction.NOTIFY: "primary"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str | None
    reason: str
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR  # what a refused request is answered with


_MAX_DECISIONS = 4096  # remembered per policy; past that the memory starts again


def _remember(memory: dict[str, bool], address: str, decide: Callable[[str], bool]) -> bool:
    """``decide(address)``, remembered in ``memory`` (bounded: past _MAX_DECISIONS it starts
    again)."""
    value = memory.get(address)
    if value is None:
        value = decide(address)
        if len(memory) >= _MAX_DECISIONS:
            memory.clear()
        memory[address] = value
    return value


@dataclass(frozen=True)
class Policy:
    keys: dict[str, dns.tsig.Key] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    peers: dict[str, tuple[PeerGrant, ...]] = field(default_factory=dict)  # zone → grants
    _decisions: dict[tuple[AclAction, str, str, str | None, bool], Decision] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _known: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False)
    _notifiers: dict[str, bool] = field(default_factory=dict, init=False, repr=False,
                                        compare=False)

    def keyring(self, _message: object, keyname: dns.name.Name) -> dns.tsig.Key | None:
        """A dnspython keyring callable."""
        return self.keys.get(keyname.to_text().lower())

    def allowed(self, action: AclAction, zone: str, address: str, key: str | None,
                tls: bool = False) -> Decision:
        """The decision on ``action``; ``tls``: the request came over TLS (a "TLS only"
        rule or peer admits only such requests)."""
        asked = (action, zone, address, key, tls)
        decision = self._decisions.get(asked)
        if decision is None:
            decision = self._decide(action, zone, address, key, tls)
            if len(self._decisions) >= _MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[asked] = decision
        return decision

    def may_transfer(self, zone: str) -> bool:
        """Whether some client could be allowed to transfer ``zone`` (absolute): an allow
        rule for transfers of it (or of every zone), or a secondary linked to it. A zone
        no one may transfer needs no AXFR image kept in memory."""
        zone = zone.lower()
        if any(g.role == "secondary" for g in self.peers.get(zone, ())):
            return True
        return any(rule.effect is Effect.ALLOW and rule.action is AclAction.TRANSFER
                   and (rule.zone is None or rule.zone == zone) for rule in self.rules)

    def linked(self, action: AclAction, zone: str, address: str) -> bool:
        """Whether ``address`` is in the networks of a peer linked to ``zone`` in the role
        that ``action`` needs (its key is checked by ``allowed``, not here): such a client
        goes first for transfer slots."""
        try:
            addr = parse_address(address)
        except ValueError:
            return False
        role = _ROLE_FOR.get(action)
        return any(g.role == role and g.matches(addr, g.key)
                   for g in self.peers.get(zone.lower(), ()))

    def known(self, address: str) -> bool:
        """Whether ``address`` is one the operator named: in a linked peer's networks, or in
        an allow rule's network no wider than a /24 (IPv4) or /56 (IPv6), the units that
        per-prefix limits count in. A rule for a wider network (0.0.0.0/0 for a public zone)
        names nobody in particular. Known clients get the TCP slots kept for them."""
        return _remember(self._known, address, self._is_known)

    def _is_known(self, address: str) -> bool:
        try:
            addr = parse_address(address)
        except ValueError:
            return False
        for grants in self.peers.values():
            if any(addr.version == n.version and addr in n for g in grants for n in g.networks):
                return True
        return any(
            rule.effect is Effect.ALLOW and rule.network is not None
            and rule.network.version == addr.version and addr in rule.network
            and rule.network.prefixlen >= (24 if addr.version == 4 else 56)
            for rule in self.rules)

    def notify_source(self, address: str) -> bool:
        """Whether an allow rule or a linked primary could admit a NOTIFY from ``address``,
        for some zone and key: such a source gets a NOTIFY budget of its own, the others
        share one (``server.notify_limit``). Asked before the NOTIFY is parsed, so it looks
        at the address alone."""
        return _remember(self._notifiers, address, self._could_notify)

    def _could_notify(self, address: str) -> bool:
        try:
            addr = parse_address(address)
        except ValueError:
            return False
        for rule in self.rules:
            if rule.effect is Effect.ALLOW and rule.action is AclAction.NOTIFY and (
                    rule.network is None or (addr.version == rule.network.version
                                             and addr in rule.network)):
                return True
        return any(grant.role == "primary" and grant.matches(addr, grant.key)
                   for grants in self.peers.values() for grant in grants)

    def _decide(self, action: AclAction, zone: str, address: str, key: str | None,
                 tls: bool = False) -> Decision:
        try:
            addr = parse_address(address)
        except ValueError:
            return Decision(False, None, f"{address!r} is not an IP address", dns.rcode.REFUSED)
        zone = zone.lower()
        key = key.lower() if key else None
        for rule in self.rules:
            if rule.effect is Effect.DENY and rule.matches(action, zone, addr, key):
                return Decision(False, rule.describe(), "denied by rule", dns.rcode.REFUSED)
        # A grant that is "TLS only" admits only requests over TLS; a cleartext request it
        # would have admitted is refused with that reason, unless another grant admits it.
        tls_needed: Decision | None = None
        for rule in self.rules:
            if rule.effect is Effect.ALLOW and rule.matches(action, zone, addr, key):
                if rule.tls_only and not tls:
                    tls_needed = tls_needed or Decision(
                        False, rule.describe(), "allowed over TLS only; this request came "
                        "over cleartext TCP", dns.rcode.REFUSED)
                    continue
                return Decision(True, rule.describe(), "allowed by rule")
        for grant in self.peers.get(zone, ()):
            if grant.role == _ROLE_FOR.get(action) and grant.matches(addr, key):
                if grant.tls_only and not tls:
                    tls_needed = tls_needed or Decision(
                        False, f"peer {grant.peer}", f"linked {grant.role} peer {grant.peer} "
                        "transfers over TLS only; this request came over cleartext TCP",
                        dns.rcode.REFUSED)
                    continue
                return Decision(True, f"peer {grant.peer}", f"linked {grant.role} peer")
        if tls_needed is not None:
            return tls_needed
        who = f"{addr}" + (f" with key {key}" if key else " without a key")
        return Decision(False, None, f"no rule allows {action.value} of {zone} from {who}",
                        dns.rcode.REFUSED)


def update_decision(policy: Policy, zone: str, address: str, key: str | None,
                    changes: list[tuple[str, int]]) -> Decision:
    """Whether an UPDATE of ``zone`` from ``address`` (signed with ``key``) that changes
    ``changes`` ((owner, type) pairs, owners absolute and lower case, type ANY for "every
    RRset at the name") may be applied: no deny rule may cover any of them, and for each an
    allow rule must. Only update rules count (no peer link grants UPDATE)."""
    try:
        addr = parse_address(address)
    except ValueError:
        return Decision(False, None, f"{address!r} is not an IP address", dns.rcode.REFUSED)
    zone = zone.lower()
    key = key.lower() if key else None
    rules = [r for r in policy.rules if r.matches(AclAction.UPDATE, zone, addr, key)]
    who = f"{addr}" + (f" with key {key}" if key else " without a key")
    allowing: list[str] = []
    for owner, rdtype in changes:
        what = f"{owner} {dns.rdatatype.to_text(rdtype)}"
        for rule in rules:
            if rule.effect is Effect.DENY and rule.covers(owner, rdtype):
                return Decision(False, rule.describe(), f"denied by rule for {what}",
                                dns.rcode.REFUSED)
        rule = next((r for r in rules if r.effect is Effect.ALLOW and r.covers(owner, rdtype)),
                    None)
        if rule is None:
            return Decision(False, None, f"no rule allows {who} to update {what} in {zone}",
                            dns.rcode.REFUSED)
        if rule.describe() not in allowing:
            allowing.append(rule.describe())
    if not allowing:  # an UPDATE that changes nothing still needs a rule for the zone
        rule = next((r for r in rules if r.effect is Effect.ALLOW), None)
        if rule is None:
            return Decision(False, None, f"no rule allows {who} to update {zone}",
                            dns.rcode.REFUSED)
        allowing.append(rule.describe())
    return Decision(True, "; ".join(allowing), "allowed by rule")


class ServedZone(Protocol):
    """What the transfer decision reads of a served zone version (a ``ZoneSnapshot``)."""

    @property
    def state(self) -> str: ...

    @property
    def outgoing(self) -> bool: ...


# Zone states in which nothing is served, so nothing may be transferred.
_UNSERVED_STATES = ("expired", "unloaded")


def transfer_decision(policy: Policy, zone: str, address: str, key: str | None,
                      snap: ServedZone | None, *, tls: bool = False) -> Decision:
    """Whether a transfer of ``zone`` to ``address`` (signed with ``key``) goes ahead, and why
    not: the zone is served here, is not expired, the access policy allows it, and the zone's
    outgoing switch is on, checked in this order. The transfer path (``XfrServer``) and the
    API's explanation (``/acls/check``) both ask this one function, so what the check says
    is what DNS does. (Quota comes after, and depends on the moment, not on the client.)"""
    if snap is None:
        return Decision(False, None, f"{zone} is not a zone served here", dns.rcode.NOTAUTH)
    if snap.state in _UNSERVED_STATES:
        return Decision(False, None, f"{zone} is {snap.state}", dns.rcode.SERVFAIL)
    decision = policy.allowed(AclAction.TRANSFER, zone, address, key, tls)
    if not decision.allowed:
        return decision
    if not snap.outgoing:
        return Decision(False, None, "outgoing transfers are switched off for this zone",
                        dns.rcode.REFUSED)
    return decision
