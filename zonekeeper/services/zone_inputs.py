"""Zone inputs: names, types and records parsed from what API, console and CLI send
(the one place they are parsed), and the values edits are made of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA

from zonekeeper.errors import (
    Malformed,
    Reason,
)
from zonekeeper.proto.serial import SerialPolicy
from zonekeeper.text import absolute
from zonekeeper.zones.model import Record, ZoneContent
from zonekeeper.zones.snapshot import ZoneKind

MAX_TTL = 2**31 - 1


def parse_zone_name(text: str) -> dns.name.Name:
    """A zone name from user input: case-insensitive, trailing dot optional, IDN allowed."""
    text = text.strip()
    if not text or text == ".":
        raise Malformed("the zone name is empty", [Reason(("name",), "a zone name is required")])
    try:
        name = dns.name.from_text(absolute(text))
    except Exception as exc:  # noqa: BLE001 - dnspython raises several kinds
        raise Malformed(
            f"{text!r} is not a valid domain name", [Reason(("name",), str(exc))]
        ) from None
    return name.canonicalize()


def owner_name(text: str, origin: dns.name.Name) -> dns.name.Name:
    """An owner from the API: absolute, or relative to the zone, '@' for the apex."""
    text = text.strip()
    if text in ("@", ""):
        return origin
    if text.endswith("."):
        return dns.name.from_text(text).canonicalize()
    return dns.name.from_text(text, origin).canonicalize()


def parse_type(text: str | int) -> int:
    try:
        return int(dns.rdatatype.RdataType.make(text))
    except Exception:  # noqa: BLE001
        raise ValueError(f"unknown record type {text!r}") from None


def parse_records(
    rdtype: int, contents: Iterable[tuple[str, bool]], origin: dns.name.Name
) -> tuple[list[Record], list[tuple[int, str]]]:
    """Parse presentation-format contents; returns records and (index, error) pairs."""
    records: list[Record] = []
    errors: list[tuple[int, str]] = []
    for i, (content, disabled) in enumerate(contents):
        try:
            rdata = dns.rdata.from_text(
                dns.rdataclass.IN, rdtype, content, origin=origin, relativize=False  # type: ignore[arg-type]
            )
        except Exception as exc:  # noqa: BLE001
            errors.append((i, f"bad {dns.rdatatype.to_text(rdtype)} rdata {content!r}: {exc}"))  # type: ignore[arg-type]
            continue
        rec = Record(rdata, disabled)
        if rec not in records:
            records.append(rec)
    return records, errors


@dataclass
class RRsetChange:
    name: dns.name.Name
    rdtype: int
    changetype: str  # REPLACE | DELETE
    ttl: int | None = None
    records: list[Record] = field(default_factory=list)


@dataclass
class SoaFields:
    mname: str | None = None
    rname: str | None = None
    refresh: int | None = None
    retry: int | None = None
    expire: int | None = None
    minimum: int | None = None
    ttl: int | None = None


def make_change(
    name: str, rdtype: str, ttl: int | None, contents: list[tuple[str, bool]], changetype: str,
    origin: dns.name.Name, loc: tuple[str | int, ...] = (),
) -> tuple[RRsetChange | None, list[Reason]]:
    """An RRset change from what a user typed (owner relative to ``origin``, type, TTL,
    records in presentation format), or every problem with it, each at ``loc`` + where in
    the change it is. The API and the console both build changes here."""
    reasons: list[Reason] = []
    owner = t = None
    try:
        owner = owner_name(name, origin)
    except Exception as exc:  # noqa: BLE001
        reasons.append(Reason((*loc, "name"), f"{name!r} is not a valid name: {exc}"))
    try:
        t = parse_type(rdtype)
    except ValueError as exc:
        reasons.append(Reason((*loc, "type"), str(exc)))
    if ttl is not None and not 0 <= ttl <= MAX_TTL:
        reasons.append(Reason((*loc, "ttl"), f"TTL {ttl} is outside 0..{MAX_TTL}"))
    if changetype == "REPLACE" and not contents:
        reasons.append(Reason((*loc, "records"), "REPLACE needs at least one record"))
    if t is None:
        return None, reasons
    records, errors = parse_records(t, contents, origin)
    reasons.extend(Reason((*loc, "records", i, "content"), msg) for i, msg in errors)
    if owner is None:
        return None, reasons
    return RRsetChange(owner, t, changetype, ttl, records), reasons


@dataclass
class ZoneSpec:
    name: dns.name.Name
    nameservers: list[str] = field(default_factory=list)
    soa: SoaFields = field(default_factory=SoaFields)
    rrsets: list[RRsetChange] = field(default_factory=list)
    serial_policy: SerialPolicy = SerialPolicy.INCREMENT
    zone_text: str | None = None
    # The whole content, read elsewhere (an AXFR from a running primary); its SOA serial is
    # kept and it gets the same checks as a zone text.
    content: ZoneContent | None = None
    # PRIMARY, or CATALOG (RFC 9432: SOA and NS invalid., version "2", members linked later).
    kind: ZoneKind = ZoneKind.PRIMARY
    # CATALOG only: the peer whose linked primary zones are members automatically.
    member_peer: str | None = None


@dataclass
class ZoneUpdate:
    serial_policy: SerialPolicy | None = None
    outgoing_enabled: bool | None = None
    notify_ns: bool | None = None
    notify_delay: float | None = None
    ixfr_max_ratio: float | None = None
    journal_max_count: int | None = None
    journal_max_bytes: int | None = None
    journal_max_age: int | None = None
    soa: SoaFields = field(default_factory=SoaFields)
    serial: int | None = None
    fields_set: set[str] = field(default_factory=set)


@dataclass
class ImportResult:
    serial: int
    applied: bool
    added: int
    removed: int
    changes: list[dict[str, Any]]
    warnings: list[str]
