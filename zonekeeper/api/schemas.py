"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from zonekeeper.proto.serial import SerialPolicy


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordIn(_In):
    content: str = Field(min_length=1, max_length=65535)
    disabled: bool = False


class RecordOut(BaseModel):
    content: str
    disabled: bool


# An RRset's TTL range is checked with its records (services.zones.make_change), so a bad TTL
# and bad record data come back in one answer; the schema documents the range.
_RRSET_TTL = Field(None, json_schema_extra={"minimum": 0, "maximum": 2**31 - 1})


class RRsetIn(_In):
    name: str = Field(min_length=1, max_length=255,
                      description="absolute, or relative to the zone; '@' is the apex")
    type: str = Field(min_length=1, max_length=16)
    ttl: int | None = _RRSET_TTL
    records: list[RecordIn] = Field(default_factory=list)


class RRsetPut(_In):
    ttl: int | None = _RRSET_TTL
    records: list[RecordIn] = Field(min_length=1)


class RRsetChangeIn(RRsetIn):
    changetype: Literal["REPLACE", "DELETE"]


class RRsetPatch(_In):
    rrsets: list[RRsetChangeIn] = Field(min_length=1)


class RRsetOut(BaseModel):
    name: str
    type: str
    ttl: int
    records: list[RecordOut]


class SoaIn(_In):
    mname: str | None = None
    rname: str | None = None
    refresh: int | None = Field(None, ge=0, le=2**31 - 1)
    retry: int | None = Field(None, ge=0, le=2**31 - 1)
    expire: int | None = Field(None, ge=0, le=2**31 - 1)
    minimum: int | None = Field(None, ge=0, le=2**31 - 1)
    ttl: int | None = Field(None, ge=0, le=2**31 - 1)


class SoaOut(BaseModel):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    ttl: int


class ZoneCreate(_In):
    name: str = Field(min_length=1, max_length=255)
    kind: Literal["primary", "secondary", "catalog"] = Field(
        "primary", description="primary: content kept here; secondary: transferred from "
        "primaries; catalog: an RFC 9432 catalog whose records are the member zones linked "
        "to it (PUT /zones/{catalog}/members/{zone})")
    nameservers: list[str] = Field(default_factory=list)
    soa: SoaIn | None = None
    rrsets: list[RRsetIn] = Field(default_factory=list)
    serial_policy: SerialPolicy = SerialPolicy.INCREMENT
    zone_text: str | None = Field(None, description="zone file text to create the zone from")
    primaries: list[str] = Field(default_factory=list)
    catalog: bool = Field(False, description="with kind secondary: the zone is an RFC 9432 "
                          "catalog to consume; after each transfer its member zones are "
                          "created (as secondary zones of the same primaries) and removed here")
    member_peer: str | None = Field(None, min_length=1, max_length=255,
                                    description="with kind catalog: a peer whose primary zones "
                                    "linked to it as a secondary are members automatically")


class ImportFrom(_In):
    """Where to AXFR a zone from, to make a primary zone of it here."""

    address: str = Field(min_length=1, max_length=64, description="the primary's IPv4 or IPv6 address")
    port: int = Field(53, ge=1, le=65535)
    key: str | None = Field(None, max_length=255,
                            description="a TSIG key stored here to sign the AXFR with")
    serial_policy: SerialPolicy = SerialPolicy.INCREMENT


class Demote(_In):
    primaries: list[str] = Field(min_length=1, max_length=16,
                                 description="peers to transfer from, in the order they are tried")


class ZonePatch(_In):
    serial_policy: SerialPolicy | None = None
    outgoing_enabled: bool | None = None
    notify_ns: bool | None = None
    notify_delay: float | None = Field(None, ge=0, le=3600)
    ixfr_max_ratio: float | None = Field(None, gt=0, le=100)
    journal_max_count: int | None = Field(None, ge=1)
    journal_max_bytes: int | None = Field(None, ge=1)
    journal_max_age: int | None = Field(None, ge=1)
    soa: SoaIn | None = None
    serial: int | None = Field(None, ge=0, le=2**32 - 1)
    member_peer: str | None = Field(None, min_length=1, max_length=255,
                                    description="a catalog's member peer (null: none): the "
                                    "primary zones linked to it as a secondary become members, "
                                    "the ones a former peer added leave")


class ZoneOut(BaseModel):
    name: str
    kind: str
    serial: int
    serial_policy: str
    state: str
    outgoing_enabled: bool
    notify_ns: bool
    notify_delay: float
    ixfr_max_ratio: float
    journal_max_count: int | None
    journal_max_bytes: int | None
    journal_max_age: int | None
    catalog_consumer: bool = Field(False, description="a secondary zone consumed as a catalog")
    member_of: str | None = Field(None, description="the consumed catalog that created this "
                                  "secondary zone, if one did")
    member_peer: str | None = Field(None, description="a catalog's member peer: its primary "
                                    "zones linked to it as a secondary are members")
    created_at: str
    updated_at: str
    soa: SoaOut | None = None
    record_count: int = Field(description="records (RRs) served, the SOA once; not RRsets; "
                                          "disabled records are not counted")


class ZoneList(BaseModel):
    items: list[ZoneOut]
    next_cursor: str | None


class RRsetList(BaseModel):
    items: list[RRsetOut]
    next_cursor: str | None


class SerialOut(BaseModel):
    serial: int


class ImportChange(BaseModel):
    op: Literal["add", "remove"]
    name: str
    type: str
    ttl: int | None
    content: str


class ImportOut(BaseModel):
    serial: int
    applied: bool
    added: int
    removed: int
    changes: list[ImportChange]
    warnings: list[str]


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=255)
    scopes: list[Literal["read", "write", "admin"]] = Field(min_length=1)
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its SHA-256 is stored")


class TokenList(BaseModel):
    items: list[TokenOut]
    next_cursor: str | None = None


class ProblemItem(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemItem] = Field(default_factory=list)
    more: int = Field(0, description="reasons left out of errors (at most 100 are listed); "
                                     "present only when not 0")


class KeyCreate(_In):
    name: str = Field(min_length=1, max_length=255)
    algorithm: str | None = Field(None, description="hmac-sha256 (default), -sha224, -sha384, -sha512; "
                                                    "hmac-sha1 and hmac-md5 on import only")
    secret: str | None = Field(None, description="base64; generated when absent")


class KeyOut(BaseModel):
    name: str
    algorithm: str
    created_at: str | None
    last_used_at: str | None


class KeyCreated(KeyOut):
    secret: str = Field(description="shown only in this reply; later only through export")


class KeyList(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None = None


class KeyImported(BaseModel):
    items: list[KeyCreated]


_FORCE_DOC = ("allow a rule for every address (0.0.0.0/0, ::/0), which is otherwise refused; "
              "not stored, and logged as a warning")


_NAMES_DOC = ("update rules: the owner names the rule covers, absolute or relative to its "
              "zone; '*.name' covers every name below name. Absent or empty: the whole zone")
_TYPES_DOC = "update rules: the record types the rule covers. Absent or empty: every type"


_TLS_ONLY_DOC = ("transfer rules: what this rule allows, it allows only over TLS (XoT, the "
                 "[dns] tls_listen port); a cleartext AXFR/IXFR it would admit is REFUSED")


class AclCreate(_In):
    zone: str | None = None
    action: Literal["transfer", "notify", "update"]
    network: str | None = None
    key: str | None = None
    effect: Literal["allow", "deny"] = "allow"
    names: list[str] | None = Field(None, max_length=100, description=_NAMES_DOC)
    types: list[str] | None = Field(None, max_length=50, description=_TYPES_DOC)
    tls_only: bool = Field(False, description=_TLS_ONLY_DOC)
    force: bool = Field(False, description=_FORCE_DOC)


class AclPatch(_In):
    """Fields to change; null clears zone, network or key (action and effect cannot be null)."""

    zone: str | None = None
    action: Literal["transfer", "notify", "update"] = None  # type: ignore[assignment]
    network: str | None = None
    key: str | None = None
    effect: Literal["allow", "deny"] = None  # type: ignore[assignment]
    names: list[str] | None = Field(None, max_length=100, description=_NAMES_DOC)
    types: list[str] | None = Field(None, max_length=50, description=_TYPES_DOC)
    tls_only: bool | None = Field(None, description=_TLS_ONLY_DOC)
    force: bool = Field(False, description=_FORCE_DOC)


class AclOut(BaseModel):
    id: int
    zone: str | None
    action: str
    network: str | None
    key: str | None
    effect: str
    names: list[str] | None = None
    types: list[str] | None = None
    tls_only: bool = False
    created_at: str | None


class AclList(BaseModel):
    items: list[AclOut]
    next_cursor: str | None = None


class AclDecision(BaseModel):
    allowed: bool
    rule: str | None
    reason: str


KeyUse = Literal["both", "notify", "transfer"]
_KEY_USE_DOC = ("what the peer's key signs: NOTIFY and transfers (both), NOTIFY only (its "
                "transfers are allowed by address), or transfers only (NOTIFY unsigned)")


_PEER_TLS_ONLY_DOC = ("as a secondary: its transfers are allowed only over TLS (XoT); a "
                      "cleartext AXFR/IXFR from it is REFUSED")
_PEER_TLS_DOC = ("as a primary: reached over TLS (XoT) on its port (853 is the standard one): "
                 "SOA queries and transfers")
_PEER_TLS_VERIFY_DOC = ("as a primary over TLS: the name its certificate must be valid for "
                        "(chain checked against [secondary] tls_ca_file, else the system's "
                        "CAs); null: not checked by name")
_PEER_TLS_SPKI_DOC = ("as a primary over TLS: its key's pin, the base64 SHA-256 of the "
                      "certificate's SubjectPublicKeyInfo; null: no pin")


class PeerCreate(_In):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    address: str
    port: int = Field(53, ge=1, le=65535)
    key: str | None = None
    key_use: KeyUse = Field("both", description=_KEY_USE_DOC)
    notify: bool = True
    ixfr: bool = True
    transfer_from: list[str] = Field(default_factory=list)
    tls_only: bool = Field(False, description=_PEER_TLS_ONLY_DOC)
    tls: bool = Field(False, description=_PEER_TLS_DOC)
    tls_verify: str | None = Field(None, max_length=255, description=_PEER_TLS_VERIFY_DOC)
    tls_spki: str | None = Field(None, max_length=64, description=_PEER_TLS_SPKI_DOC)


class PeerPatch(_In):
    address: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    key: str | None = None
    key_use: KeyUse | None = Field(None, description=_KEY_USE_DOC)
    notify: bool | None = None
    ixfr: bool | None = None
    transfer_from: list[str] | None = None
    tls_only: bool | None = Field(None, description=_PEER_TLS_ONLY_DOC)
    tls: bool | None = Field(None, description=_PEER_TLS_DOC)
    tls_verify: str | None = Field(None, max_length=255, description=_PEER_TLS_VERIFY_DOC)
    tls_spki: str | None = Field(None, max_length=64, description=_PEER_TLS_SPKI_DOC)


class PeerOut(BaseModel):
    name: str
    address: str
    port: int
    key: str | None
    key_use: KeyUse
    notify: bool
    ixfr: bool
    transfer_from: list[str]
    tls_only: bool = False
    tls: bool = False
    tls_verify: str | None = None
    tls_spki: str | None = None


class PeerList(BaseModel):
    items: list[PeerOut]
    next_cursor: str | None = None


class CatalogMemberIn(_In):
    """A member's properties (RFC 9432 §4.4): each left out or null for none."""

    group: str | None = Field(None, min_length=1, max_length=255,
                              description="the group property (§4.4.2): a consumer applies "
                                          "the configuration it keeps for this group")
    coo: str | None = Field(None, min_length=1, max_length=255,
                            description="change of ownership (§4.4.1): the catalog the member "
                                        "may move to")


class CatalogMemberOut(BaseModel):
    zone: str
    id: str = Field(description="the member's unique id label: <id>.zones.<catalog>")
    group: str | None
    coo: str | None


class CatalogMemberListed(CatalogMemberOut):
    provisioned: bool | None = Field(None, description="only for a consumed catalog's "
                                     "member: whether it is a secondary zone here by it")
    automatic: bool | None = Field(None, description="only for a catalog kept here: the "
                                   "member was added because it is linked to the catalog's "
                                   "member peer (it leaves when unlinked), not by hand")


class CatalogMemberLinked(CatalogMemberOut):
    catalog: str
    serial: int = Field(description="the catalog's serial after the change")


class CatalogMemberList(BaseModel):
    items: list[CatalogMemberListed]
    next_cursor: str | None = None


class ZoneLink(_In):
    role: Literal["secondary", "primary"] = "secondary"


class ZoneLinkOut(BaseModel):
    peer: str
    role: str


class NotifyRequest(_In):
    peers: list[str] | None = None


class NotifyResultOut(BaseModel):
    peer: str
    result: Literal["acked", "failed"]
    rcode: str | None
    attempts: int
    serial: int


class XfrStatusRow(BaseModel):
    peer: str
    role: str
    address: str
    port: int
    serial: int | None
    peer_serial: int | None
    serial_lag: int | None
    lag_seconds: float | None
    checked_at: str | None
    state: str
    last_transfer: dict[str, object] | None
    notify: dict[str, object] | None
    primary_status: dict[str, object] | None = None
    # The stale-secondary detector's view: in_sync, behind or failing, since when, and why.
    alert: str | None = None
    alert_since: str | None = None
    alert_reason: str | None = None


class ServedOut(BaseModel):
    """A zone as this node serves it, among the nodes sharing the database."""

    zone: str
    serial: int | None  # the version this node serves (None: not served here)
    stored_serial: int  # the version committed in the database
    role: str  # this node's role: all, dns or api
    leading: bool
    node: dict[str, object]
    leader: dict[str, object] | None


class TransferRequest(_In):
    axfr: bool = False


class TransferOutcome(BaseModel):
    result: Literal["UPTODATE", "IXFR", "AXFR", "FALLBACK", "FAILED", "RUNNING"]
    serial_before: int | None
    serial_after: int | None
    primary: str | None
    rcode: str | None
    error: str | None
    duration_ms: float
    records: int
