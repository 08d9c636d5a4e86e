"""The schema for the whole system. Serials are BIGINT; times are UTC.

``rrsets`` is the editable truth (presentation text, one row per RRset);
``nodes`` is the compiled served form (``proto.rrwire``), one row per owner,
written in the same transaction, so a restart loads a zone without parsing text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (schema 0007)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    serial: Mapped[int] = mapped_column(BigInteger)
    serial_policy: Mapped[str] = mapped_column(String(16), default="increment")
    state: Mapped[str] = mapped_column(String(16), default="ok")
    change_id: Mapped[int] = mapped_column(BigInteger, default=0)
    outgoing_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_ns: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_delay: Mapped[float] = mapped_column(Float, default=0.0)
    ixfr_max_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    journal_max_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    journal_max_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    journal_max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Catalog consumer (schema 0011): a secondary zone read as an RFC 9432 catalog, whose
    # members are made secondary zones here; a member names its catalog and unique id.
    catalog_consumer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    member_of: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    member_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Catalog producer (schema 0013): on a catalog, the peer whose linked primary zones
    # are its members automatically (a peer name: peers are never renamed).
    member_peer: Mapped[str | None] = mapped_column(String(255), nullable=True)


class CatalogAuto(Base):
    """A catalog member added because the zone is linked to the catalog's member peer
    (0013): unlinking it, or clearing the peer, removes it; a member linked by hand has no
    row here and stays."""

    __tablename__ = "catalog_auto"

    catalog_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RRset(Base):
    __tablename__ = "rrsets"
    __table_args__ = (UniqueConstraint("zone_id", "name", "type", name="uq_rrsets_zone_name_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No index of its own (0014): uq_rrsets_zone_name_type leads with it.
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[int] = mapped_column(Integer)
    ttl: Mapped[int] = mapped_column(Integer)
    # JSON list of {"content": str, "disabled": bool}, presentation format, absolute names.
    records: Mapped[str] = mapped_column(Text)


class Node(Base):
    """A primary zone's served node of one owner. Where the zone has an image
    (``ZoneImage``), the owners edited since, over it (``rrwire.GONE``: deleted); a zone
    stored before images holds every owner here."""

    __tablename__ = "nodes"
    # Keyed by the owner's sort key alone (rrwire.sort_key; rrwire.key_of_sort_key gives the
    # owner back): one B-tree serves lookups by owner and a zone's load in one scan.
    # Clustered on SQLite (no rowid).
    __table_args__ = ({"sqlite_with_rowid": False},)

    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    sortkey: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ZoneImage(Base):
    """A zone's whole node table (serialized by ``proto.rrwire.pack_nodes``) in chunks: a
    secondary's served form, a primary's as its last create, import or promotion stored
    it (its ``nodes`` rows are the edits since). A transfer or an import replaces a zone
    wholesale, and one row per owner costs ~3-10 us each to write here (3-10 s for a
    1M-record zone)."""

    __tablename__ = "zone_images"

    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TsigKey(Base):
    __tablename__ = "tsig_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    algorithm: Mapped[str] = mapped_column(String(32))
    secret: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Peer(Base):
    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    address: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer, default=53)
    tsig_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("tsig_keys.id", ondelete="RESTRICT"), nullable=True
    )
    notify: Mapped[bool] = mapped_column(Boolean, default=True)
    ixfr: Mapped[bool] = mapped_column(Boolean, default=True)
    transfer_from: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of CIDRs
    # What the key signs: "both", "notify" (NOTIFY, and the SOA checks that follow it) or
    # "transfer" (transfer requests; for a primary, also its SOA checks).
    key_use: Mapped[str] = mapped_column(String(16), default="both", server_default="both")
    # Zone transfers over TLS (0012). As a secondary: its transfers are allowed only over
    # TLS. As a primary: reached over TLS, its certificate verified by name (tls_verify) or
    # its key pinned (tls_spki, base64 SHA-256 of the SubjectPublicKeyInfo), or neither.
    tls_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    tls: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    tls_verify: Mapped[str | None] = mapped_column(String(255), nullable=True)
    tls_spki: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ZonePeer(Base):
    __tablename__ = "zone_peers"

    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    peer_id: Mapped[int] = mapped_column(
        ForeignKey("peers.id", ondelete="RESTRICT"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))  # "secondary" (we notify) | "primary" (we pull)
    position: Mapped[int] = mapped_column(Integer, default=0)


class AclRule(Base):
    __tablename__ = "acl_rules"
    __table_args__ = {"sqlite_autoincrement": True}  # "acl 7" names one rule ever (0007)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[int | None] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), nullable=True, index=True
    )
    action: Mapped[str] = mapped_column(String(16))  # transfer | notify | update
    network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tsig_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("tsig_keys.id", ondelete="RESTRICT"), nullable=True
    )
    effect: Mapped[str] = mapped_column(String(8))  # allow | deny
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Update rules only (0008): JSON lists of owner names ("*.name." for anything below)
    # and record types it covers; NULL: the whole zone, every type.
    names: Mapped[str | None] = mapped_column(Text, nullable=True)
    types: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Transfer rules (0012): what it allows, only over TLS.
    tls_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class JournalEntry(Base):
    __tablename__ = "journal"
    __table_args__ = (Index("ix_journal_zone_serial", "zone_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"))
    serial_from: Mapped[int] = mapped_column(BigInteger)
    serial_to: Mapped[int] = mapped_column(BigInteger)
    removed: Mapped[bytes] = mapped_column(LargeBinary)  # RR wire, owner in full
    added: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Timer(Base):
    __tablename__ = "timers"

    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    next_refresh: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_expire: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_notified_serial: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_primary: Mapped[str | None] = mapped_column(String(255), nullable=True)
    expired: Mapped[bool] = mapped_column(Boolean, default=False)


class TransferStatus(Base):
    __tablename__ = "transfer_status"

    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    peer_id: Mapped[int] = mapped_column(
        ForeignKey("peers.id", ondelete="CASCADE"), primary_key=True
    )
    peer_serial: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_transfer: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    notify: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON


class NotifyOwed(Base):
    """A NOTIFY not yet answered nor given up: sent again after a restart."""

    __tablename__ = "notify_owed"

    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(String(512), primary_key=True)  # peer, or NS@address
    serial: Mapped[int] = mapped_column(BigInteger)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the secret part
    scopes: Mapped[str] = mapped_column(String(64))  # space separated
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class User(Base):
    """A person who signs in to the web console; only an argon2 hash of the password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | editor | admin
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebSession(Base):
    """A signed-in console session: the cookie holds a random token, this its SHA-256."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256 of the cookie
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServerSecret(Base):
    """A secret the nodes of one database share (0009): the DNS COOKIE secret; also the
    database's stamp (``DATABASE_STAMP``, not a secret: a random name for the database)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    current: Mapped[bytes] = mapped_column(LargeBinary)
    previous: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    rotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClusterLeader(Base):
    """The node that leads the nodes sharing one PostgreSQL database (0010): one row, id 1,
    written when a node takes the leader's advisory lock; ``epoch`` counts the terms."""

    __tablename__ = "cluster_leader"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    epoch: Mapped[int] = mapped_column(BigInteger)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
