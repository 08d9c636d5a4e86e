"""Peers (secondaries we notify and serve, primaries we pull from) and their zone links."""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import dns.tsig
from sqlalchemy import select
from sqlalchemy.orm import Session

from zonekeeper.errors import Conflict, Invalid, NotFound, Reason
from zonekeeper.events.notify import PeerTarget
from zonekeeper.events.secondary import Primary
from zonekeeper.policy.acl import PeerGrant, parse_network
from zonekeeper.policy.keys import KeyFormatError, normalize_name
from zonekeeper.policy.snippets import TlsPrimary, secondary_config
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import Peer, RRset, TransferStatus, TsigKey, Zone, ZonePeer
from zonekeeper.text import absolute
from zonekeeper.tls import DOT_PORT
from zonekeeper.zones.catalog import PTR
from zonekeeper.zones.snapshot import ZoneKind

ROLES = ("secondary", "primary")
KEY_USES = ("both", "notify", "transfer")


def key_for(row: Peer, use: str, keys: dict[int, str]) -> str | None:
    """The peer's key name if it applies to ``use`` ("notify" or "transfer"), else None.
    A peer may sign NOTIFY and not transfers (NS1's secondaries pull unsigned from allowed
    addresses), or the other way round."""
    if row.tsig_key_id is None or row.key_use not in ("both", use):
        return None
    return keys.get(row.tsig_key_id)


def _networks(row: Peer) -> list[str]:
    nets = json.loads(row.transfer_from or "[]")
    return nets or [str(parse_network(row.address))]


def peer_info(row: Peer, keys: dict[int, str]) -> dict[str, Any]:
    return {
        "name": row.name,
        "address": row.address,
        "port": row.port,
        "key": keys.get(row.tsig_key_id) if row.tsig_key_id is not None else None,
        "key_use": row.key_use,
        "notify": row.notify,
        "ixfr": row.ixfr,
        "transfer_from": json.loads(row.transfer_from or "[]"),
        "tls_only": bool(row.tls_only),
        "tls": bool(row.tls),
        "tls_verify": row.tls_verify,
        "tls_spki": row.tls_spki,
    }


def catalog_members(s: Session) -> dict[str, list[str]]:
    """Catalog zone → the member zones it lists (RFC 9432), from its stored records."""
    out: dict[str, list[str]] = {}
    catalogs = dict(s.execute(select(Zone.id, Zone.name).where(
        Zone.kind == ZoneKind.CATALOG.value)).all())
    if not catalogs:
        return out
    # Read as stored, without dnspython: rebuilt on every link, for every catalog (names in
    # rows are absolute and lower case; a member is the PTR right under "zones").
    rows = s.execute(select(RRset.zone_id, RRset.name, RRset.records).where(
        RRset.zone_id.in_(catalogs), RRset.type == PTR))
    for zone_id, name, records in rows:
        catalog = catalogs[zone_id]
        label, dot, rest = name.partition(".")
        if dot and rest == "zones." + catalog:
            out.setdefault(catalog, []).extend(
                absolute(r["content"].lower()) for r in json.loads(records)
                if not r.get("disabled"))
    return out


def _inherit(out: dict[str, list[Any]], members: dict[str, list[str]],
             name_of: Callable[[Any], str]) -> None:
    """A catalog's secondaries are its members' too (in the catalog's order, after the
    member's own links): consumers that follow the catalog transfer every member from us
    and take its NOTIFYs, with no link per member."""
    for catalog, zones in members.items():
        inherited = out.get(catalog)
        if not inherited:
            continue
        for zone in zones:
            own = out.setdefault(zone, [])
            have = {name_of(x) for x in own}
            own.extend(x for x in inherited if name_of(x) not in have)


def load_grants(s: Session) -> dict[str, tuple[PeerGrant, ...]]:
    keys = {k.id: k.name for k in s.scalars(select(TsigKey))}
    out: dict[str, list[PeerGrant]] = {}
    rows = s.execute(
        select(Zone.name, ZonePeer.role, Peer).join(ZonePeer, ZonePeer.zone_id == Zone.id)
        .join(Peer, Peer.id == ZonePeer.peer_id)
    )
    for zone, role, peer in rows:
        # A primary's grant is for its NOTIFYs; a secondary's, for its transfers.
        if role == "primary":
            networks = (parse_network(peer.address),)
            key = key_for(peer, "notify", keys)
        else:
            networks = tuple(parse_network(n) for n in _networks(peer))
            key = key_for(peer, "transfer", keys)
        out.setdefault(zone, []).append(PeerGrant(peer.name, role, networks, key,
                                                  tls_only=bool(peer.tls_only)))
    # A catalog's secondaries may transfer its members (a catalog's primaries, on a
    # consumer, are not its members' primaries by a link: they get their own).
    grants = {z: [g for g in gs if g.role == "secondary"] for z, gs in out.items()}
    inherited = {z: list(gs) for z, gs in grants.items()}
    _inherit(inherited, catalog_members(s), lambda g: g.peer)
    for zone, gs in inherited.items():
        mine = out.setdefault(zone, [])
        mine.extend(g for g in gs if g not in mine)
    return {z: tuple(g) for z, g in out.items()}


def load_targets(s: Session) -> dict[str, tuple[PeerTarget, ...]]:
    """Zone → its secondary peers, in link order."""
    keys = {k.id: k.name for k in s.scalars(select(TsigKey))}
    out: dict[str, list[PeerTarget]] = {}
    rows = s.execute(
        select(Zone.name, Peer).join(ZonePeer, ZonePeer.zone_id == Zone.id)
        .join(Peer, Peer.id == ZonePeer.peer_id).where(ZonePeer.role == "secondary")
        .order_by(ZonePeer.position, Peer.name)
    )
    for zone, p in rows:
        out.setdefault(zone, []).append(PeerTarget(
            p.name, p.address, p.port, key_for(p, "notify", keys), p.notify, p.ixfr,
            tuple(_networks(p))))
    _inherit(out, catalog_members(s), lambda t: t.name)
    return {z: tuple(t) for z, t in out.items()}


class CatalogLinks(Protocol):
    """What a link does to catalogs that take a peer's zones as members (the zone service,
    services/zone_catalog.py): changes made in the link's transaction, published after."""

    def catalog_locks(self) -> AbstractAsyncContextManager[None]: ...

    def zone_linked(self, s: Session, zone: Zone, peer: Peer, role: str) -> list[Any]: ...

    def zone_unlinked(self, s: Session, zone: Zone, peer: Peer) -> list[Any]: ...

    async def catalogs_changed(self, snaps: list[Any], zone: str, why: str) -> None: ...


class PeerService:
    def __init__(self, db: Database, *, on_change: Callable[[], Awaitable[None]],
                 catalogs: CatalogLinks | None = None) -> None:
        self.db = db
        self.on_change = on_change
        self.catalogs = catalogs

    def _catalog_locks(self) -> AbstractAsyncContextManager[None]:
        return (self.catalogs.catalog_locks() if self.catalogs is not None
                else contextlib.nullcontext())

    async def _write(self, fn: Callable[[Session], Any]) -> Any:
        def work(s: Session) -> Any:
            result = fn(s)
            repo.announce(s, "peers")
            return result

        result = await self.db.run_write(work)
        await self.on_change()
        return result

    async def _read(self, fn: Callable[[Session], Any]) -> Any:
        return await self.db.run_read(fn)

    def targets_sync(self) -> dict[str, tuple[PeerTarget, ...]]:
        """Zone → its secondary peers (NOTIFY targets), in link order (worker thread)."""
        with self.db.read() as s:
            return load_targets(s)

    def primaries_sync(self, key_of: Callable[[str], dns.tsig.Key | None]
                       ) -> dict[str, list[Primary]]:
        """Zone → the primaries a secondary zone transfers from, in order, their keys
        resolved by ``key_of`` (worker thread)."""
        out: dict[str, list[Primary]] = {}
        with self.db.read() as s:
            keys = {k.id: k.name for k in s.scalars(select(TsigKey))}
            q = (select(Zone.name, Peer).join(ZonePeer, ZonePeer.zone_id == Zone.id)
                 .join(Peer, Peer.id == ZonePeer.peer_id).where(ZonePeer.role == "primary")
                 .order_by(ZonePeer.position))
            for zone, p in s.execute(q):
                name = key_for(p, "transfer", keys)
                key = key_of(name) if name else None
                out.setdefault(zone, []).append(Primary(
                    p.name, p.address, p.port, key, p.ixfr, tls=bool(p.tls),
                    tls_verify=p.tls_verify, tls_spki=p.tls_spki))
        return out

    async def list(self) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            keys = _key_names(s)
            return [peer_info(p, keys) for p in s.scalars(select(Peer).order_by(Peer.name))]

        return await self._read(fn)  # type: ignore[no-any-return]

    async def get(self, name: str) -> dict[str, Any]:
        return await self._read(lambda s: peer_info(_peer(s, name), _key_names(s)))  # type: ignore[no-any-return]

    async def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        def fn(s: Session) -> dict[str, Any]:
            if s.scalar(select(Peer).where(Peer.name == fields["name"])) is not None:
                raise Conflict(f"peer {fields['name']} already exists")
            row = Peer(name=fields["name"], port=53, notify=True, ixfr=True, transfer_from="[]",
                       key_use="both", tls_only=False, tls=False)
            _apply(s, row, fields)
            s.add(row)
            s.flush()
            return peer_info(row, _key_names(s))

        return await self._write(fn)  # type: ignore[no-any-return]

    async def update(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        def fn(s: Session) -> dict[str, Any]:
            row = _peer(s, name)
            _apply(s, row, fields)
            s.flush()
            return peer_info(row, _key_names(s))

        return await self._write(fn)  # type: ignore[no-any-return]

    async def delete(self, name: str) -> None:
        def fn(s: Session) -> None:
            row = _peer(s, name)
            zones = [z for (z,) in s.execute(
                select(Zone.name).join(ZonePeer, ZonePeer.zone_id == Zone.id).where(ZonePeer.peer_id == row.id))]
            if zones:
                raise Conflict(f"peer {name} is linked to {', '.join(zones)}; unlink it first")
            catalogs = list(s.scalars(select(Zone.name).where(Zone.member_peer == row.name)))
            if catalogs:
                raise Conflict(f"peer {name} is the member peer of catalog "
                               f"{', '.join(catalogs)}; clear it first (PATCH /zones/"
                               "{catalog} with member_peer null)")
            s.delete(row)

        await self._write(fn)

    async def links(self, zone: str) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            z = _zone(s, zone)
            keys = _key_names(s)
            rows = s.execute(select(ZonePeer, Peer).join(Peer, Peer.id == ZonePeer.peer_id)
                             .where(ZonePeer.zone_id == z.id).order_by(ZonePeer.position, Peer.name))
            return [{"peer": p.name, "role": zp.role, **{k: v for k, v in peer_info(p, keys).items() if k != "name"}}
                    for zp, p in rows]

        return await self._read(fn)  # type: ignore[no-any-return]

    async def link(self, zone: str, peer: str, role: str) -> dict[str, Any]:
        if role not in ROLES:
            raise Invalid("bad role", [Reason(("role",), "role must be 'secondary' or 'primary'")])

        snaps: list[Any] = []
        zname: list[str] = []

        def fn(s: Session) -> dict[str, Any]:
            z = _zone(s, zone)
            p = _peer(s, peer)
            row = s.get(ZonePeer, (z.id, p.id))
            if row is None:
                count = len(list(s.scalars(select(ZonePeer).where(ZonePeer.zone_id == z.id))))
                row = ZonePeer(zone_id=z.id, peer_id=p.id, role=role, position=count)
                s.add(row)
            else:
                row.role = role
            s.flush()
            if self.catalogs is not None:
                snaps[:] = self.catalogs.zone_linked(s, z, p, role)
                zname[:] = [z.name]
            return {"peer": p.name, "role": role}

        # A catalog whose member peer this is changes in the link's transaction; the
        # catalogs' locks are held until their new versions are published.
        async with self._catalog_locks():
            result = await self._write(fn)
            if snaps and self.catalogs is not None:
                await self.catalogs.catalogs_changed(
                    snaps, zname[0], "linked" if role == "secondary" else "unlinked")
        return result  # type: ignore[no-any-return]

    async def unlink(self, zone: str, peer: str) -> None:
        snaps: list[Any] = []
        zname: list[str] = []

        def fn(s: Session) -> None:
            z = _zone(s, zone)
            p = _peer(s, peer)
            row = s.get(ZonePeer, (z.id, p.id))
            if row is None:
                raise NotFound(f"peer {peer} is not linked to zone {z.name}")
            s.delete(row)
            st = s.get(TransferStatus, (z.id, p.id))
            if st is not None:
                s.delete(st)
            s.flush()
            if self.catalogs is not None:
                snaps[:] = self.catalogs.zone_unlinked(s, z, p)
                zname[:] = [z.name]

        async with self._catalog_locks():
            await self._write(fn)
            if snaps and self.catalogs is not None:
                await self.catalogs.catalogs_changed(snaps, zname[0], "unlinked")

    async def config(self, peer: str, zone: str, fmt: str, *, primary: str, port: int,
                     tls: TlsPrimary | None = None) -> str:
        """The snippet; ``tls``: our TLS listener, used when the peer is TLS-only."""
        def fn(s: Session) -> str:
            p = _peer(s, peer)
            z = _zone(s, zone)
            key = _key_names(s).get(p.tsig_key_id) if p.tsig_key_id is not None else None
            return secondary_config(
                fmt, zone=z.name, primary=primary, port=port, key=key, key_use=p.key_use,
                ixfr=p.ixfr, peer=p.name,
                tls=(tls or TlsPrimary(None, DOT_PORT, None)) if p.tls_only else None,
                catalog=z.kind == ZoneKind.CATALOG.value)

        return await self._read(fn)  # type: ignore[no-any-return]


_TLS_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9_*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9_]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def _is_pin(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (ValueError, binascii.Error):
        return False


def _key_names(s: Session) -> dict[int, str]:
    return {k.id: k.name for k in s.scalars(select(TsigKey))}


def _peer(s: Session, name: str) -> Peer:
    row = s.scalar(select(Peer).where(Peer.name == name))
    if row is None:
        raise NotFound(f"peer {name} does not exist")
    return row


def _zone(s: Session, name: str) -> Zone:
    zname = absolute(name.lower())
    row = s.scalar(select(Zone).where(Zone.name == zname))
    if row is None:
        raise NotFound(f"zone {zname} does not exist")
    return row


def _apply(s: Session, row: Peer, fields: dict[str, Any]) -> None:
    reasons: list[Reason] = []
    if "address" in fields:
        try:
            row.address = str(ipaddress.ip_address(fields["address"]))
        except ValueError:
            reasons.append(Reason(("address",), f"{fields['address']!r} is not an IP address"))
    if "port" in fields and fields["port"] is not None:
        row.port = int(fields["port"])
    if "key_use" in fields and fields["key_use"] is not None:
        if fields["key_use"] in KEY_USES:
            row.key_use = fields["key_use"]
        else:
            reasons.append(Reason(("key_use",), f"key_use must be one of {', '.join(KEY_USES)}"))
    for flag in ("notify", "ixfr", "tls_only", "tls"):
        if flag in fields and fields[flag] is not None:
            setattr(row, flag, bool(fields[flag]))
    if "transfer_from" in fields and fields["transfer_from"] is not None:
        nets = []
        for i, n in enumerate(fields["transfer_from"]):
            try:
                nets.append(str(parse_network(n)))
            except ValueError as exc:
                reasons.append(Reason(("transfer_from", i), f"{n!r} is not a network: {exc}"))
        row.transfer_from = json.dumps(nets)
    if "tls_verify" in fields:
        name = (fields["tls_verify"] or "").strip().rstrip(".")
        if name and not _TLS_NAME.fullmatch(name):
            reasons.append(Reason(("tls_verify",), f"{fields['tls_verify']!r} is not a host "
                                  "name a certificate could be for"))
        row.tls_verify = name or None
    if "tls_spki" in fields:
        pin = (fields["tls_spki"] or "").strip()
        if pin and not _is_pin(pin):
            reasons.append(Reason(("tls_spki",), "a pin is the base64 SHA-256 of the "
                                  "certificate's SubjectPublicKeyInfo: 44 characters ending "
                                  "in '='"))
        row.tls_spki = pin or None
    if (row.tls_verify or row.tls_spki) and not row.tls:
        reasons.append(Reason(("tls",), "tls_verify and tls_spki check a primary reached "
                              "over TLS: set tls: true too"))
    if "key" in fields:
        if fields["key"] is None:
            row.tsig_key_id = None
        else:
            try:
                kname = normalize_name(fields["key"])
            except KeyFormatError as exc:
                raise Invalid("bad key", [Reason(("key",), str(exc))]) from None
            key = s.scalar(select(TsigKey).where(TsigKey.name == kname))
            if key is None:
                raise NotFound(f"TSIG key {kname} does not exist")
            row.tsig_key_id = key.id
    if reasons:
        raise Invalid("the peer is invalid", reasons)
    if not row.address:
        raise Invalid("the peer is invalid", [Reason(("address",), "address is required")])
