"""TSIG keys and access rules: storage, in-use checks, and the live ``Policy``.

Every change rebuilds the immutable Policy from storage and swaps it in, so the DNS
path reads keys and rules from memory and sees a change from the next request on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from zonekeeper.errors import Conflict, Invalid, NotFound, Reason
from zonekeeper.policy import keys as keyfmt
from zonekeeper.policy.acl import (
    AclAction,
    Decision,
    Effect,
    Policy,
    Rule,
    parse_network,
    transfer_decision,
    update_decision,
)
from zonekeeper.services.usage import LastUsed
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import AclRule, Peer, TsigKey, Zone
from zonekeeper.text import absolute, utc_text
from zonekeeper.zones.snapshot import Registry

log = structlog.get_logger("zonekeeper.access")


def _iso(dt: Any) -> str | None:
    return None if dt is None else utc_text(dt)


def key_info(row: TsigKey, *, with_secret: bool = False,
             usage: LastUsed | None = None) -> dict[str, Any]:
    last = usage.key_seen(row.name, row.last_used_at) if usage is not None else row.last_used_at
    info: dict[str, Any] = {
        "name": row.name,
        "algorithm": row.algorithm,
        "created_at": _iso(row.created_at),
        "last_used_at": _iso(last),
    }
    if with_secret:
        info["secret"] = row.secret
    return info


def rule_info(row: AclRule, zones: dict[int, str], keys: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone": zones.get(row.zone_id) if row.zone_id is not None else None,
        "action": row.action,
        "network": row.network,
        "key": keys.get(row.tsig_key_id) if row.tsig_key_id is not None else None,
        "effect": row.effect,
        "names": json.loads(row.names) if row.names else None,
        "types": json.loads(row.types) if row.types else None,
        "tls_only": bool(row.tls_only),
        "created_at": _iso(row.created_at),
    }


def build_policy(s: Session) -> Policy:
    keys = {k.id: k for k in s.scalars(select(TsigKey))}
    zones: dict[int, str] = dict(s.execute(select(Zone.id, Zone.name)).tuples().all())
    rules = []
    for r in s.scalars(select(AclRule).order_by(AclRule.id)):
        rules.append(
            Rule(
                id=r.id,
                action=AclAction(r.action),
                effect=Effect(r.effect),
                zone=zones.get(r.zone_id) if r.zone_id is not None else None,
                network=parse_network(r.network) if r.network else None,
                key=keys[r.tsig_key_id].name if r.tsig_key_id is not None else None,
                names=tuple(json.loads(r.names)) if r.names else (),
                types=tuple(dns.rdatatype.from_text(t) for t in json.loads(r.types))
                if r.types else (),
                tls_only=bool(r.tls_only),
            )
        )
    keyring = {
        k.name: keyfmt.KeyMaterial(k.name, k.algorithm, k.secret).to_dnspython()
        for k in keys.values()
    }
    from zonekeeper.services.peers import load_grants

    return Policy(keys=keyring, rules=tuple(rules), peers=load_grants(s))


class AccessService:
    def __init__(self, db: Database, *, on_policy: Callable[[Policy], None],
                 registry: Registry, usage: LastUsed | None = None) -> None:
        self.db = db
        self.usage = usage  # uses noted in memory, newer than the stored last_used_at
        self.on_policy = on_policy
        self.registry = registry  # the zones served, for transfer decisions
        self.policy = Policy()

    def reload_sync(self) -> Policy:
        with self.db.read() as s:
            self.policy = build_policy(s)
        self.on_policy(self.policy)
        return self.policy

    async def _write(self, fn: Callable[[Session], Any]) -> Any:
        """Run a change and rebuild the policy from the same transaction, then swap it in."""

        def work(s: Session) -> tuple[Any, Policy]:
            result = fn(s)
            s.flush()
            repo.announce(s, "access")
            return result, build_policy(s)

        result, policy = await self.db.run_write(work)
        self.policy = policy
        self.on_policy(policy)
        return result

    async def _read(self, fn: Callable[[Session], Any]) -> Any:
        return await self.db.run_read(fn)

    # -- keys -------------------------------------------------------------------------------
    async def list_keys(self) -> list[dict[str, Any]]:
        return await self._read(  # type: ignore[no-any-return]
            lambda s: [key_info(k, usage=self.usage)
                       for k in s.scalars(select(TsigKey).order_by(TsigKey.name))]
        )

    async def get_key(self, name: str, *, with_secret: bool = False) -> dict[str, Any]:
        name = _key_name(name)

        def fn(s: Session) -> dict[str, Any]:
            return key_info(_key_row(s, name), with_secret=with_secret, usage=self.usage)

        return await self._read(fn)  # type: ignore[no-any-return]

    async def create_key(self, name: str, algorithm: str | None, secret: str | None) -> dict[str, Any]:
        try:
            if secret is None:
                material = keyfmt.generate(name, algorithm or keyfmt.DEFAULT_ALGORITHM)
            else:
                material = keyfmt.make(name, algorithm or keyfmt.DEFAULT_ALGORITHM, secret)
        except keyfmt.KeyFormatError as exc:
            loc = ("name",) if isinstance(exc, keyfmt.KeyNameError) else ("body",)
            raise Invalid("the key cannot be created", [Reason(loc, str(exc))]) from None
        info = await self._write(lambda s: _insert_keys(s, [material])[0])
        log.info("key.created", key=info["name"], algorithm=info["algorithm"],
                 generated=secret is None)
        return info  # type: ignore[no-any-return]

    async def import_keys(self, text: str) -> list[dict[str, Any]]:
        try:
            materials = keyfmt.parse_text(text)
        except keyfmt.KeyFormatError as exc:
            raise Invalid("the key text cannot be imported", [Reason(("body",), str(exc))]) from None
        infos = await self._write(lambda s: _insert_keys(s, materials))
        log.info("key.imported", keys=[i["name"] for i in infos])
        return infos  # type: ignore[no-any-return]

    async def export_key(self, name: str, fmt: str) -> str:
        info = await self.get_key(name, with_secret=True)
        log.info("key.exported", key=info["name"], format=fmt)
        return keyfmt.export(keyfmt.KeyMaterial(info["name"], info["algorithm"], info["secret"]), fmt)

    async def delete_key(self, name: str) -> None:
        name = _key_name(name)

        def fn(s: Session) -> None:
            row = _key_row(s, name)
            users = [f"acl rule {r.id}" for r in s.scalars(select(AclRule).where(AclRule.tsig_key_id == row.id))]
            users += [f"peer {p.name}" for p in s.scalars(select(Peer).where(Peer.tsig_key_id == row.id))]
            if users:
                raise Conflict(f"key {name} is in use by {', '.join(users)}; remove those first")
            s.delete(row)

        await self._write(fn)

    # -- rules ------------------------------------------------------------------------------
    async def list_rules(self) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            zones, keys = _names(s)
            return [rule_info(r, zones, keys) for r in s.scalars(select(AclRule).order_by(AclRule.id))]

        return await self._read(fn)  # type: ignore[no-any-return]

    async def get_rule(self, rule_id: int) -> dict[str, Any]:
        def fn(s: Session) -> dict[str, Any]:
            zones, keys = _names(s)
            return rule_info(_rule_row(s, rule_id), zones, keys)

        return await self._read(fn)  # type: ignore[no-any-return]

    async def create_rule(self, fields: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
        """A new rule. An allow rule for every address (0.0.0.0/0, ::/0) is refused unless
        ``force``; forced, it is logged as a warning."""

        def fn(s: Session) -> dict[str, Any]:
            row = AclRule()
            _set_rule(s, row, fields, creating=True, force=force)
            s.add(row)
            s.flush()
            zones, keys = _names(s)
            return rule_info(row, zones, keys)

        info: dict[str, Any] = await self._write(fn)
        _warn_if_open(info)
        return info

    async def update_rule(self, rule_id: int, fields: dict[str, Any], *,
                          force: bool = False) -> dict[str, Any]:
        def fn(s: Session) -> dict[str, Any]:
            row = _rule_row(s, rule_id)
            _set_rule(s, row, fields, creating=False, force=force)
            s.flush()
            zones, keys = _names(s)
            return rule_info(row, zones, keys)

        info: dict[str, Any] = await self._write(fn)
        if _opens(fields):
            _warn_if_open(info)
        return info

    async def delete_rule(self, rule_id: int) -> None:
        await self._write(lambda s: s.delete(_rule_row(s, rule_id)))

    def check(self, action: str, zone: str, address: str, key: str | None, *,
              name: str | None = None, rdtype: str | None = None, tls: bool = False) -> Decision:
        """What the DNS side decides for such a request now. For a transfer that is the
        transfer path's own decision (``transfer_decision``: zone served, not expired,
        access policy, outgoing switch), on the version served now; for an UPDATE, the
        update path's (``update_decision``) for a change of ``name`` and ``rdtype`` (default:
        the apex, every type)."""
        if AclAction(action) is AclAction.UPDATE:
            zone_abs = absolute(zone.lower())
            owner = _absolute(name, zone_abs) if name else zone_abs
            try:
                t = dns.rdatatype.from_text(rdtype) if rdtype else dns.rdatatype.ANY
            except dns.exception.DNSException:
                raise Invalid("bad type", [Reason(("type",), f"{rdtype!r} is not a record type")]) from None
            return update_decision(self.policy, zone_abs, address, key, [(owner, int(t))])
        if AclAction(action) is AclAction.TRANSFER:
            try:
                snap = self.registry.get(dns.name.from_text(zone))
            except dns.exception.DNSException:
                snap = None
            return transfer_decision(self.policy, zone, address, key, snap, tls=tls)
        return self.policy.allowed(AclAction(action), zone, address, key)


def _absolute(name: str, zone: str) -> str:
    """``name`` (absolute, or relative to ``zone``; ``@`` is the apex), lower case."""
    name = name.strip().lower()
    if name == "@":
        return zone
    return name if name.endswith(".") else f"{name}.{zone}"


def _rule_names(values: list[str], zone: str | None) -> tuple[list[str], list[Reason]]:
    """An update rule's owner names: exact, or ``*.name`` for anything below ``name``;
    relative ones need the rule's zone, and every one must be in it."""
    out: list[str] = []
    reasons: list[Reason] = []
    for i, raw in enumerate(values):
        text = raw.strip().lower()
        if not text.endswith(".") and text != "@" and zone is None:
            reasons.append(Reason(("names", i), f"{raw!r} is relative: name the rule's zone, "
                                               "or give an absolute name (ending in a dot)"))
            continue
        name = _absolute(text, zone or "")
        try:
            parsed = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            reasons.append(Reason(("names", i), f"{raw!r} is not a domain name: {exc}"))
            continue
        if "*" in name[2:] or ("*" in name and not name.startswith("*.")):
            reasons.append(Reason(("names", i), f"{raw!r}: a wildcard stands only first, "
                                               "as *.name (anything below name)"))
            continue
        if zone is not None and not parsed.is_subdomain(dns.name.from_text(zone)):
            reasons.append(Reason(("names", i), f"{name} is outside zone {zone}"))
            continue
        if name not in out:
            out.append(name)
    return out, reasons


def _rule_types(values: list[str], _zone: str | None) -> tuple[list[str], list[Reason]]:
    out: list[str] = []
    reasons: list[Reason] = []
    for i, raw in enumerate(values):
        try:
            t = dns.rdatatype.from_text(raw.strip().upper())
        except dns.exception.DNSException:
            reasons.append(Reason(("types", i), f"{raw!r} is not a record type"))
            continue
        if t in (dns.rdatatype.ANY, dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.OPT,
                 dns.rdatatype.TSIG):
            reasons.append(Reason(("types", i), f"{raw!r} is not a type one can update"))
            continue
        text = dns.rdatatype.to_text(t)
        if text not in out:
            out.append(text)
    return out, reasons


def _key_name(name: str) -> str:
    try:
        return keyfmt.normalize_name(name)
    except keyfmt.KeyFormatError as exc:
        raise NotFound(str(exc)) from None


def _key_row(s: Session, name: str) -> TsigKey:
    row = s.scalar(select(TsigKey).where(TsigKey.name == name))
    if row is None:
        raise NotFound(f"TSIG key {name} does not exist")
    return row


def _rule_row(s: Session, rule_id: int) -> AclRule:
    row = s.get(AclRule, rule_id)
    if row is None:
        raise NotFound(f"access rule {rule_id} does not exist")
    return row


def _names(s: Session) -> tuple[dict[int, str], dict[int, str]]:
    zones: dict[int, str] = dict(s.execute(select(Zone.id, Zone.name)).tuples().all())
    keys: dict[int, str] = dict(s.execute(select(TsigKey.id, TsigKey.name)).tuples().all())
    return zones, keys


def _insert_keys(s: Session, materials: list[keyfmt.KeyMaterial]) -> list[dict[str, Any]]:
    out = []
    for m in materials:
        if s.scalar(select(TsigKey).where(TsigKey.name == m.name)) is not None:
            raise Conflict(f"TSIG key {m.name} already exists")
        row = TsigKey(name=m.name, algorithm=m.algorithm, secret=m.secret)
        s.add(row)
        s.flush()
        out.append(key_info(row, with_secret=True))
    return out


def _every_address(network: str | None) -> bool:
    return network is not None and parse_network(network).prefixlen == 0


def _opens(fields: dict[str, Any]) -> bool:
    """Whether a change of these fields can make a rule admit every address."""
    return "network" in fields or "effect" in fields


def _warn_if_open(info: dict[str, Any]) -> None:
    if info["effect"] == Effect.ALLOW.value and _every_address(info["network"]):
        log.warning("acl.allow_all_forced", rule=info["id"], action=info["action"],
                    zone=info["zone"] or "all zones", network=info["network"], key=info["key"])


def _set_rule(s: Session, row: AclRule, fields: dict[str, Any], *, creating: bool,
              force: bool = False) -> None:
    reasons: list[Reason] = []
    if "zone" in fields:
        zone = fields["zone"]
        if zone is None:
            row.zone_id = None
        else:
            name = absolute(zone.lower())
            z = s.scalar(select(Zone).where(Zone.name == name))
            if z is None:
                raise NotFound(f"zone {name} does not exist")
            row.zone_id = z.id
    if "action" in fields:
        row.action = AclAction(fields["action"]).value
    if "effect" in fields or creating:
        row.effect = Effect(fields.get("effect") or "allow").value
    if "network" in fields:
        net = fields["network"]
        if net is None:
            row.network = None
        else:
            try:
                row.network = str(parse_network(net))
            except ValueError as exc:
                reasons.append(Reason(("network",), f"{net!r} is not a network: {exc}"))
    if "key" in fields:
        key = fields["key"]
        if key is None:
            row.tsig_key_id = None
        else:
            row.tsig_key_id = _key_row(s, _key_name(key)).id
    for field_name, parse in (("names", _rule_names), ("types", _rule_types)):
        if field_name in fields:
            values = fields[field_name]
            if not values:
                setattr(row, field_name, None)
                continue
            zone_name = (s.get(Zone, row.zone_id).name  # type: ignore[union-attr]
                         if row.zone_id is not None else None)
            parsed, problems = parse(values, zone_name)
            reasons += problems
            setattr(row, field_name, json.dumps(parsed) if parsed else None)
    if fields.get("tls_only") is not None:
        row.tls_only = bool(fields["tls_only"])
    if row.tls_only and (row.action or fields.get("action")) != AclAction.TRANSFER.value:
        reasons.append(Reason(("tls_only",), "tls_only is for transfer rules (action: "
                              "transfer): NOTIFY and UPDATE do not come over TLS"))
    if (row.names or row.types) and (row.action or fields.get("action")) != AclAction.UPDATE.value:
        reasons.append(Reason(("names" if row.names else "types",),
                              "names and types narrow update rules only (action: update)"))
    network_bad = any(r.loc == ("network",) for r in reasons)
    if (row.effect == Effect.ALLOW.value and row.network is None and row.tsig_key_id is None
            and not network_bad):
        reasons.append(Reason(("network",), "an allow rule must name a network, a key, or both"))
    if (row.effect == Effect.ALLOW.value and _every_address(row.network) and not force
            and (creating or _opens(fields))):
        family = "IPv4" if ":" not in (row.network or "") else "IPv6"
        who = ("anyone who can reach the server" if row.tsig_key_id is None
               else "a request signed with its key from anywhere")
        reasons.append(Reason(("network",), (
            f"{row.network} is every {family} address: this allow rule would let {who} "
            f"{row.action or 'transfer'}; name the peers' networks, or send force: true "
            "(CLI: --force) if every address is meant")))
    if reasons:
        raise Invalid("the access rule is invalid", reasons)
    if creating and not row.action:
        raise Invalid("the access rule is invalid", [Reason(("action",), "action is required")])
