"""Zone content as RRsets of dnspython rdata: the editable side of a zone."""

from __future__ import annotations

import json
import re
from collections.abc import ItemsView, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.txtbase import TXTBase

from zonekeeper.proto.rrwire import from_rdatas, make_node, name_key
from zonekeeper.zones.snapshot import Node

# ``rdata.to_text()``'s style, made once: it builds one from its keywords at every call.
_TEXT = dns.rdata.RdataStyle(origin=None, relativize=True)
# A JSON string as ``json.dumps`` writes it (ASCII, escaped), in C.
_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
# A character-string that prints as itself: printable ASCII but the quote and backslash.
_PLAIN = re.compile(rb'[ !#-\[\]-~]*').fullmatch
_NONE: Mapping[int, RRsetData] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Record:
    rdata: dns.rdata.Rdata
    disabled: bool = False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and self.rdata == other.rdata

    def __hash__(self) -> int:
        return hash(self.rdata)

    @property
    def sort_key(self) -> bytes:
        return self.rdata.to_digestable()

    def as_dict(self) -> dict[str, object]:
        return {"content": rdata_text(self.rdata), "disabled": self.disabled}


def rdata_text(rdata: dns.rdata.Rdata) -> str:
    """``rdata.to_text()``; a TXT of plain strings without dnspython's escaping, which
    looks at each octet in Python (a fifth of the time of writing an import's rows)."""
    if isinstance(rdata, TXTBase):
        strings = rdata.strings
        if all(_PLAIN(s) for s in strings):
            return " ".join(['"' + s.decode("ascii") + '"' for s in strings])
    return rdata.to_styled_text(_TEXT)


@dataclass(slots=True)
class RRsetData:
    name: dns.name.Name
    rdtype: int
    ttl: int
    records: list[Record] = field(default_factory=list)

    @property
    def type_text(self) -> str:
        return dns.rdatatype.to_text(self.rdtype)  # type: ignore[arg-type]

    def enabled(self) -> list[dns.rdata.Rdata]:
        return [r.rdata for r in self.records if not r.disabled]

    def records_json(self) -> str:
        """The records as ``json.dumps([r.as_dict() ...], separators=(",", ":"))`` writes
        them, without its encoder's per-call set-up and walk of the dicts."""
        return "[" + ",".join([
            '{"content":' + _json_str(rdata_text(r.rdata))
            + (',"disabled":true}' if r.disabled else ',"disabled":false}')
            for r in self.records
        ]) + "]"

    @classmethod
    def from_row(cls, name: str, rdtype: int, ttl: int, records_json: str) -> RRsetData:
        owner = dns.name.from_text(name)
        records = [
            Record(
                dns.rdata.from_text(dns.rdataclass.IN, rdtype, item["content"]),  # type: ignore[arg-type]
                bool(item.get("disabled", False)),
            )
            for item in json.loads(records_json)
        ]
        return cls(owner, rdtype, ttl, records)

    @staticmethod
    def row_dict(name: str, rdtype: int, ttl: int, records_json: str) -> dict[str, object]:
        """``from_row(...).as_dict()`` of a stored row, without parsing a record: the row
        holds its name as ``Name.to_text`` and its records as ``rdata_text`` wrote them,
        which is what parsing them and writing them again gives (tests/unit/zones/test_model.py).
        A listing page of RRsets spent 40% of its time on that round trip."""
        return {
            "name": name.lower(),
            "type": dns.rdatatype.to_text(rdtype),  # type: ignore[arg-type]
            "ttl": ttl,
            "records": [{"content": item["content"], "disabled": bool(item.get("disabled", False))}
                        for item in json.loads(records_json)],
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name.to_text().lower(),
            "type": self.type_text,
            "ttl": self.ttl,
            "records": [r.as_dict() for r in self.records],
        }


def let_go(*big: list[Any] | dict[Any, Any]) -> None:
    """Empty large lists and dicts a slice at a time. Freeing a million-record zone's
    objects in one go (the last reference dropped) holds the GIL for most of a second, and
    the event loop's queries and transfers wait; emptied a slice at a time, in a Python
    loop, other threads get the GIL between slices as usual."""
    for c in big:
        if isinstance(c, dict):
            while c:
                c.popitem()
        else:
            while c:
                del c[-1024:]


class ZoneContent:
    """A set of RRsets keyed by owner then type; owners are absolute names."""

    def __init__(self, origin: dns.name.Name, rrsets: Iterable[RRsetData] = ()) -> None:
        self.origin = origin
        self._owners: dict[dns.name.Name, dict[int, RRsetData]] = {}
        for rrset in rrsets:
            self.put(rrset)

    def put(self, rrset: RRsetData) -> None:
        types = self._owners.get(rrset.name)
        if types is None:
            types = self._owners[rrset.name] = {}
        types[int(rrset.rdtype)] = rrset

    def put_owners(self, owners: dict[dns.name.Name, dict[int, RRsetData]]) -> None:
        """Put every RRset of ``owners`` (by owner, then type; the dicts are taken over, not
        copied): what the content held at those owners is replaced. Keys keep the hashes
        ``owners`` has for them."""
        if not self._owners:  # (a parse's: the dict itself, not a million entries copied)
            self._owners = owners
        else:
            self._owners.update(owners)

    def release(self) -> None:
        """Empty the content gradually (``let_go``): for a large one nobody needs any more."""
        let_go(self._owners)

    def delete(self, name: dns.name.Name, rdtype: int) -> RRsetData | None:
        types = self._owners.get(name)
        if not types:
            return None
        gone = types.pop(int(rdtype), None)
        if not types:
            del self._owners[name]
        return gone

    def get(self, name: dns.name.Name, rdtype: int) -> RRsetData | None:
        types = self._owners.get(name)
        return types.get(int(rdtype)) if types else None

    def at(self, name: dns.name.Name) -> list[RRsetData]:
        return list(self._owners.get(name, {}).values())

    def types_at(self, name: dns.name.Name) -> Mapping[int, RRsetData]:
        """The RRsets at ``name`` by type (read-only: the content's own)."""
        return self._owners.get(name, _NONE)

    def by_name(self) -> Mapping[dns.name.Name, Mapping[int, RRsetData]]:
        """Owner -> its RRsets by type: the content's own dict, read-only (C code looks
        owners up in it, validate.check's targets)."""
        return self._owners  # type: ignore[return-value]

    def by_owner(self) -> ItemsView[dns.name.Name, Mapping[int, RRsetData]]:
        """Every owner with its RRsets by type, without looking each owner up (read-only)."""
        return self._owners.items()  # type: ignore[return-value]

    def owners(self) -> set[dns.name.Name]:
        return set(self._owners)

    def __iter__(self) -> Iterator[RRsetData]:
        for types in self._owners.values():
            yield from types.values()

    def __len__(self) -> int:
        return sum(len(t) for t in self._owners.values())

    def record_count(self) -> int:
        return sum(len(s.records) for s in self)

    def sorted_rrsets(self) -> list[RRsetData]:
        return sorted(self, key=lambda s: (s.name, s.rdtype))

    def node_for(self, name: dns.name.Name) -> Node:
        """The served node of one owner (disabled records left out)."""
        blobs = []
        for rrset in self.at(name):
            rdatas = rrset.enabled()
            if rdatas:
                blobs.append(from_rdatas(rrset.rdtype, rrset.ttl, rdatas))
        return make_node(blobs)

    def served_rrsets(self) -> Iterator[tuple[dns.name.Name, int, int, list[dns.rdata.Rdata]]]:
        for types in self._owners.values():
            for rrset in types.values():
                rdatas = [r.rdata for r in rrset.records if not r.disabled]
                if rdatas:
                    yield rrset.name, rrset.rdtype, rrset.ttl, rdatas


def key_of(name: dns.name.Name) -> bytes:
    return name_key(name)
