"""Access decisions (policy/acl.py): a policy remembers its decisions, which are the ones it
would make afresh; a new policy decides anew; the memory is bounded."""

from __future__ import annotations

import itertools

import pytest

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


def test_known_addresses_are_linked_peers_and_narrow_allow_rules() -> None:
    rules = RULES + (
        Rule(5, AclAction.TRANSFER, Effect.ALLOW, network=parse_network("0.0.0.0/0")),
        Rule(6, AclAction.TRANSFER, Effect.DENY, network=parse_network("203.0.113.0/24")),
        Rule(7, AclAction.TRANSFER, Effect.ALLOW, network=parse_network("10.0.0.0/16")),
    )
    policy = Policy(rules=rules, peers=GRANTS)
    assert policy.known("192.0.2.77")  # allow rule 1, a /24
    assert policy.known("::ffff:192.0.2.77")
    assert policy.known("198.51.100.7")  # a linked peer's network
    assert not policy.known("203.0.113.5")  # named by a deny rule only
    assert not policy.known("10.0.1.1")  # a /16 names nobody in particular
    assert not policy.known("8.8.8.8")  # 0.0.0.0/0 neither
    assert not policy.known("2001:db8::1")  # rule 4 is a /32
    assert not policy.known("not an address")
    assert [policy.known(a) for a in ("192.0.2.77", "8.8.8.8")] == [True, False]  # remembered


def test_linked_follows_the_role_the_action_needs() -> None:
    grants = {"b.test.": (
        PeerGrant("sec", "secondary", (parse_network("198.51.100.0/24"),), "k2."),
        PeerGrant("pri", "primary", (parse_network("192.0.2.53/32"),)),
    )}
    policy = Policy(peers=grants)
    assert policy.linked(AclAction.TRANSFER, "b.test.", "198.51.100.9")
    assert policy.linked(AclAction.TRANSFER, "B.TEST.", "198.51.100.9")
    assert not policy.linked(AclAction.TRANSFER, "b.test.", "192.0.2.53")
    assert policy.linked(AclAction.NOTIFY, "b.test.", "192.0.2.53")
    assert not policy.linked(AclAction.TRANSFER, "a.test.", "198.51.100.9")
    assert not policy.linked(AclAction.TRANSFER, "b.test.", "bogus")


@pytest.mark.parametrize(("text", "why"), [
    ("10.0.0.0/33", "the prefix length /33 is over 32, the most for IPv4"),
    ("2001:db8::/129", "the prefix length /129 is over 128, the most for IPv6"),
    ("10.0.0.0/3x", "'3x' is not a prefix length (0 to 32 for IPv4)"),
    ("10.0.0/8", "'10.0.0' is not an IPv4 or IPv6 address"),
])
def test_a_bad_network_says_what_is_wrong_once(text: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        acl.parse_network(text)
    assert str(caught.value) == why


def test_may_transfer_is_whether_some_request_could_be_allowed() -> None:
    """``may_transfer`` (no AXFR image is kept for a zone it says no to) says yes exactly
    when some address and key would get a transfer allowed, over the addresses and keys
    the rules and grants name."""
    notify_only = (Rule(4, AclAction.NOTIFY, Effect.ALLOW, network=parse_network("2001:db8::/32")),)
    primary_only = {"c.test.": (PeerGrant("pri", "primary", (parse_network("192.0.2.53/32"),)),)}
    cases = [
        (Policy(rules=RULES, peers=GRANTS), {"a.test.": True, "b.test.": True, "z.test.": True}),
        (Policy(rules=RULES[:2], peers=GRANTS), {"a.test.": True, "b.test.": True, "z.test.": False}),
        (Policy(rules=RULES[:2]), {"A.Test.": True, "b.test.": False}),
        (Policy(rules=notify_only, peers=primary_only), {"a.test.": False, "c.test.": False}),
        (Policy(), {"a.test.": False}),
    ]
    addresses = ["192.0.2.1", "192.0.2.9", "198.51.100.7", "2001:db8::1", "192.0.2.53"]
    for policy, expected in cases:
        for zone, want in expected.items():
            assert policy.may_transfer(zone) is want, (zone, policy)
            some = any(policy.allowed(AclAction.TRANSFER, zone, a, k).allowed
                       for a in addresses for k in (None, "k.", "k2."))
            assert some is want, (zone, policy)
