"""Access decisions (policy/acl.py): a policy remembers its decisions, which are the ones it
would make afresh; a new policy decides anew; the memory is bounded."""

from __future__ import annotations

import itertools

from zonekeeper.policy import acl
from zonekeeper.policy.acl import (
    AclAction,
    Effect,
    PeerGrant,
    Policy,
    Rule,
    parse_address,
    parse_network,
)

RULES = (
    Rule(1, AclAction.TRANSFER, Effect.ALLOW, zone="a.test.",
         network=parse_network("192.0.2.0/24")),
    Rule(2, AclAction.TRANSFER, Effect.DENY, network=parse_network("192.0.2.9/32")),
    Rule(3, AclAction.TRANSFER, Effect.ALLOW, key="k."),
    Rule(4, AclAction.NOTIFY, Effect.ALLOW, network=parse_network("2001:db8::/32")),
)
GRANTS = {"b.test.": (PeerGrant("sec", "secondary", (parse_network("198.51.100.0/24"),), "k2."),)}


def test_remembered_decisions_are_the_fresh_ones() -> None:
    policy = Policy(rules=RULES, peers=GRANTS)
    asked = list(itertools.product(
        AclAction, ["a.test.", "A.Test.", "b.test."],
        ["192.0.2.1", "192.0.2.9", "::ffff:192.0.2.1", "198.51.100.7", "2001:db8::1",
         "fe80::1%eth0", "not an address"],
        [None, "k.", "K.", "k2."]))
    first = [policy.allowed(*q) for q in asked]
    assert first == [policy._decide(*q) for q in asked]
    assert [policy.allowed(*q) for q in asked] == first  # now from memory
    assert policy.allowed(AclAction.TRANSFER, "a.test.", "::ffff:192.0.2.1", None).allowed
    assert not policy.allowed(AclAction.TRANSFER, "a.test.", "192.0.2.9", None).allowed
    assert policy.allowed(AclAction.TRANSFER, "b.test.", "198.51.100.7", "K2.").rule == "peer sec"
    # Another policy (rules changed) decides for itself.
    stricter = Policy(rules=(*RULES, Rule(5, AclAction.TRANSFER, Effect.DENY)), peers=GRANTS)
    assert not stricter.allowed(AclAction.TRANSFER, "a.test.", "192.0.2.1", None).allowed
    assert policy.allowed(AclAction.TRANSFER, "a.test.", "192.0.2.1", None).allowed


def test_memory_is_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(acl, "_MAX_DECISIONS", 10)
    policy = Policy(rules=RULES)
    for i in range(25):
        decision = policy.allowed(AclAction.TRANSFER, "a.test.", f"192.0.2.{i}", None)
        assert decision.allowed is (i != 9)
        assert len(policy._decisions) <= 10


def test_parsed_addresses_are_shared_and_equal() -> None:
    assert parse_address("::ffff:192.0.2.1") == parse_address("192.0.2.1")
    assert parse_address("fe80::1%eth0") is parse_address("fe80::1%eth0")
    assert parse_network("::ffff:192.0.2.0/120") == parse_network("192.0.2.0/24")
