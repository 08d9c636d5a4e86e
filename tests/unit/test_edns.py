"""EDNS options without a server: RFC 9018's own server cookie example, cookie checks
(stale, future, other address, previous secret), option parsing limits, and the COOKIE
secret kept and rotated in a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest

from zonekeeper.proto.edns import (
    COOKIE,
    EXPIRE,
    KEEPALIVE,
    NSID,
    NSID_MAX,
    OPTIONS_MAX,
    EdnsOptions,
    MalformedOption,
    cookie_valid,
    option,
    options,
    server_cookie,
)
from zonekeeper.services.secrets import CookieSecrets
from zonekeeper.storage.db import Database


def test_rfc_9018_appendix_a_server_cookie() -> None:
    made = server_cookie(bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf"),
                         bytes.fromhex("2464c4abcf10c957"), "198.51.100.100", 1559731985)
    assert made.hex() == "010000005cf79f111f8130c3eee29480"


def test_cookie_checks() -> None:
    old, new = b"o" * 16, b"n" * 16
    client = bytes(8)
    made = server_cookie(old, client, "192.0.2.1", 1000)
    assert cookie_valid((new, old), client, made, "192.0.2.1", 1000 + 3599)  # previous secret
    assert not cookie_valid((new,), client, made, "192.0.2.1", 1000)  # secret gone
    assert not cookie_valid((old,), client, made, "192.0.2.2", 1000)  # another address
    assert not cookie_valid((old,), client, made, "192.0.2.1", 1000 + 3601)  # stale
    assert not cookie_valid((old,), client, made, "192.0.2.1", 1000 - 301)  # from the future
    v6 = server_cookie(old, client, "2001:db8::1", 5)
    assert cookie_valid((old,), client, v6, "2001:db8::1", 5)


def test_options_are_parsed_within_the_opt_record() -> None:
    rdata = option(NSID, b"") + option(KEEPALIVE, b"")
    assert list(options(rdata)) == [(NSID, b""), (KEEPALIVE, b"")]
    with pytest.raises(MalformedOption):
        list(options(rdata + b"\x00\x0a\x00\x08abc"))  # overruns
    ops = EdnsOptions(nsid=b"n", idle_timeout=10, secrets=lambda: (b"s" * 16,), clock=lambda: 7)
    with pytest.raises(MalformedOption):
        ops.answer(option(COOKIE, b"x" * 9), tcp=False, address="192.0.2.1", zone=None, apex_soa=False)
    out, rcode = ops.answer(option(NSID, b"") + option(KEEPALIVE, b""), tcp=False,
                            address="192.0.2.1", zone=None, apex_soa=False)
    assert out == option(NSID, b"n") and rcode == 0  # no keepalive over UDP
    out, _ = ops.answer(option(KEEPALIVE, b""), tcp=True, address="192.0.2.1", zone=None, apex_soa=False)
    assert out == option(KEEPALIVE, (100).to_bytes(2, "big"))


def test_each_option_answered_once_within_options_max() -> None:
    """An option asked many times is answered once, so what an answer carries is bounded by
    OPTIONS_MAX (the room an AXFR's first message keeps beside a TSIG)."""
    ops = EdnsOptions(nsid=b"\xff" * NSID_MAX, idle_timeout=10, secrets=lambda: (b"s" * 16,),
                      expire_of=lambda _zone: 600, clock=lambda: 7)
    one = (option(NSID, b"") + option(COOKIE, b"c" * 8 + b"x" * 32) + option(EXPIRE, b"")
           + option(KEEPALIVE, b""))
    out, _ = ops.answer(one * 50, tcp=True, address="192.0.2.1", zone=object(), apex_soa=True)
    assert [code for code, _ in options(out)] == [NSID, COOKIE, EXPIRE, KEEPALIVE]
    assert len(out) == OPTIONS_MAX


def test_cookie_secret_is_kept_and_rotated_in_the_database(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'zk.db'}")
    db.prepare(migrate=True)
    first = CookieSecrets(db, rotate=3600)
    first.load()
    (secret,) = first.current()
    again = CookieSecrets(db, rotate=3600)  # another start, or another node
    again.load()
    assert again.current() == (secret,)
    rotating = CookieSecrets(db, rotate=0)
    rotating.load()
    new, previous = rotating.current()
    assert previous == secret and new != secret
    fixed = CookieSecrets(db, rotate=0, fixed=b"f" * 16)
    fixed.load()
    assert fixed.current() == (b"f" * 16,)
    db.dispose()
