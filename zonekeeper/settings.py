"""One typed Settings object: flags > environment > TOML file > defaults.

Unknown keys and bad values stop start-up with a message naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from zonekeeper.text import parse_hostport

DEFAULT_CONFIG_PATH = Path("/etc/zonekeeper/zonekeeper.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DnsSettings(_Section):
    listen: list[str] = Field(default_factory=lambda: ["127.0.0.1:5300", "[::1]:5300"])
    tcp_idle_timeout: float = Field(10, gt=0)
    tcp_max_clients: int = Field(250, ge=1)
    # Of tcp_max_clients, this many are kept for known clients (linked peers' addresses and
    # networks of allow rules no wider than a /24 or /56); they are not held to the next two.
    tcp_reserved_clients: int = Field(25, ge=0)
    tcp_max_clients_per_ip: int = Field(16, ge=1)
    tcp_max_clients_per_prefix: int = Field(64, ge=1)  # per IPv4 /24, per IPv6 /56
    # Requests read ahead on one connection and not answered yet (RFC 7766 pipelining):
    # past this, or while answers wait to be read, the server stops reading it.
    tcp_max_input_bytes: int = Field(131_072, ge=65_538)
    transfers_out: int = Field(10, ge=1)
    transfers_out_reserved: int = Field(2, ge=0)  # of transfers_out, for linked secondaries
    transfers_out_per_ip: int = Field(2, ge=1)  # for clients that are not linked secondaries
    # A transfer whose reader took nothing for this long gives up its slot to a request
    # that would otherwise be refused for want of one.
    xfr_stall_preempt: float = Field(2, gt=0)
    xfr_send_timeout: float = Field(30, gt=0)
    xfr_max_time: float = Field(7200, gt=0)
    udp_max_payload: int = Field(1232, ge=512, le=65535)
    response_cache_entries: int = Field(100_000, ge=0)
    # UDP queries taken in batches by a receive loop in C that answers those it answered
    # before (server/udpfast.py); false: the asyncio endpoint answers every one.
    udp_fast_path: bool = True
    # Threads running the C receive loop on each UDP socket; 0: one per CPU this process
    # may run on (its affinity: taskset, cpusets).
    udp_workers: int = Field(0, ge=0, le=64)
    # Where the AXFR images and node tables of the served versions are written at a stop
    # and read back at the next start (server/imagecache.py). "auto": beside an SQLite database file
    # (FILE.axfr-images/), none on PostgreSQL (set a directory per node); "": none.
    axfr_image_cache: str = "auto"
    # An UPDATE for a secondary zone, allowed by an update rule here, is passed on to its
    # first primary as it came (signature included) and the answer relayed (BIND's
    # allow-update-forwarding); off: NOTIMP.
    update_forward: bool = False
    # EDNS options (RFC 5001, 7873/9018, 7828). nsid: what NSID answers ("" = none; e.g.
    # the host name). cookie_secret: 32 hex digits to fix the server cookie secret (every
    # node the same); empty: one kept in the database, rotated every cookie_rotate seconds
    # (the previous one is still accepted). require_cookie: UDP queries without a valid
    # server cookie get BADCOOKIE (BIND's require-server-cookie).
    nsid: str = Field("", max_length=128)
    cookie_secret: str = Field("", pattern=r"^([0-9a-fA-F]{32})?$")
    cookie_rotate: float = Field(30 * 86400, ge=60)
    require_cookie: bool = False
    # DNS over TLS (RFC 7858) and zone transfers over TLS (RFC 9103): ADDR:PORT to listen on
    # (853 is the standard port; none by default), the certificate chain and key (PEM files,
    # read again on SIGHUP), and the oldest TLS version accepted (RFC 9103 wants 1.3).
    tls_listen: list[str] = Field(default_factory=list)
    tls_cert: str = ""
    tls_key: str = ""
    tls_min_version: Literal["1.2", "1.3"] = "1.3"

    @field_validator("listen", "tls_listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_hostport(item)
        return value

    @model_validator(mode="after")
    def _check_reserves(self) -> DnsSettings:
        if self.tcp_reserved_clients >= self.tcp_max_clients:
            raise ValueError("tcp_reserved_clients must be below tcp_max_clients")
        if self.transfers_out_reserved >= self.transfers_out:
            raise ValueError("transfers_out_reserved must be below transfers_out")
        if self.tls_listen and not (self.tls_cert and self.tls_key):
            raise ValueError("tls_listen needs tls_cert and tls_key (the certificate and key "
                             "files, PEM)")
        return self


class ServerSettings(_Section):
    """This node among several sharing one PostgreSQL database (services/cluster.py)."""

    # all: DNS and the API; dns: DNS only (the HTTP listener answers /healthz, /readyz and
    # /metrics alone); api: the API only (no DNS listener; never leads).
    role: Literal["all", "dns", "api"] = "all"
    # How the node is shown (/readyz, zone status, the leader): default host:API port.
    name: str | None = None


class ApiSettings(_Section):
    listen: str = "127.0.0.1:8080"
    max_body_bytes: int = Field(10_485_760, ge=1024)
    bootstrap_token: str | None = None

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_hostport(value)
        return value


class ZoneSettings(_Section):
    """Bounds on zone text read through the API (import, ``zone_text``), checked before the
    work is done: a ``$GENERATE`` range is counted before it is expanded."""

    # As [secondary] max_records: a zone we accept by import is one we could transfer in.
    max_records: int = Field(5_000_000, ge=1)
    # A /16 of PTR or A records per line; a line that asks for more is nearly always a
    # mistake (1-4294967295 is minutes of work and gigabytes before the total cap bites).
    generate_max_records: int = Field(65_536, ge=1)


class WebSettings(_Section):
    """The console at /ui/ on the API's address."""

    session_idle: float = Field(1800, gt=0)  # seconds without a request before sign-out
    session_max_age: float = Field(43200, gt=0)  # seconds after sign-in, whatever the use


class DatabaseSettings(_Section):
    url: str = "sqlite:///zonekeeper.db"
    # Seconds between writes of the last_used_at of TSIG keys and API tokens: their uses
    # are noted in memory and each is written at most once per interval.
    last_used_interval: float = Field(60, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # psycopg (3) is the PostgreSQL driver installed; a bare postgresql:// would make
        # SQLAlchemy look for psycopg2.
        if not value.startswith(("sqlite:///", "postgresql+psycopg://")):
            raise ValueError("database url must start with sqlite:/// or postgresql+psycopg://")
        return value


class LogSettings(_Section):
    format: Literal["console", "json"] | None = None
    level: Literal["debug", "info", "warning", "error"] = "info"


class NotifySettings(_Section):
    retries: int = Field(5, ge=0)
    retry_interval: float = Field(5, gt=0)
    timeout: float = Field(5, gt=0)  # per try, and for looking up an NS target's address
    source: list[str] = Field(default_factory=list)
    # NOTIFY in, charged per source address before it is parsed (server/notify_limit.py):
    # a source that an allow rule or linked primary could admit has a bucket of its own
    # (``in_rate`` a second, up to ``in_burst`` at once); all others share ``in_stranger_rate``.
    # Over the budget, a NOTIFY is dropped unanswered.
    in_rate: float = Field(20, gt=0)
    in_burst: int = Field(100, ge=1)
    in_stranger_rate: float = Field(5, gt=0)
    in_sources: int = Field(4096, ge=1)  # buckets kept at most
    # The port NOTIFYs to a zone's NS targets go to (zones with notify_ns on; a linked peer
    # has its own port). Other than 53 only for tests and unusual set-ups.
    ns_port: int = Field(53, ge=1, le=65535)
    # Several nodes (PostgreSQL): the leader waits this long after a change before it
    # NOTIFYs, so that the other nodes have read the change (7.8 ms at the median, 30 ms
    # at p99 in bench/multinode.py) when the secondary asks one of them for the SOA.
    cluster_settle: float = Field(0.25, ge=0, le=60)


class SecondarySettings(_Section):
    refresh_min: int = Field(60, ge=1)
    refresh_max: int = Field(86400, ge=1)
    retry_min: int = Field(10, ge=1)
    retry_max: int = Field(3600, ge=1)
    expire_min: int = Field(3600, ge=1)
    expire_max: int = Field(2419200, ge=1)
    max_records: int = Field(5_000_000, ge=1)
    max_bytes: int = Field(1_073_741_824, ge=1)
    transfer_timeout: float = Field(3600, gt=0)
    # Primaries reached over TLS whose certificate is verified by name (a peer's
    # tls_verify): the CA certificates (PEM) to verify with; empty: the system's store.
    tls_ca_file: str = ""


class MetricsSettings(_Section):
    """``/metrics`` (Prometheus text format, no auth): on the API's address when ``listen`` is
    empty, else on an address of its own (ADDR:PORT)."""

    enabled: bool = True
    listen: str = ""
    per_zone: bool = True  # per-zone and per-peer series; off for very many zones

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        if value:
            parse_hostport(value)
        return value


class AlertSettings(_Section):
    """The stale-secondary detector and where its state changes are posted."""

    # A linked secondary that does not serve the zone's serial this long after the change
    # is "behind".
    behind_after: float = Field(60, gt=0)
    # NOTIFYs given up on, or failed transfers to the peer in a row, before it is "failing".
    failing_after: int = Field(3, ge=1)
    webhooks: list[str] = Field(default_factory=list)
    webhook_timeout: float = Field(5, gt=0)
    webhook_retries: int = Field(5, ge=0)  # after the first try, backing off from 1 s
    webhook_queue: int = Field(1000, ge=1)  # events waiting at most; past it the oldest go

    @field_validator("webhooks")
    @classmethod
    def _check_webhooks(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r}: a webhook is an http:// or https:// URL")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZONEKEEPER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    zones: ZoneSettings = Field(default_factory=ZoneSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    secondary: SecondarySettings = Field(default_factory=SecondarySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def config_path(explicit: Path | None = None) -> Path | None:
    """The config file in force: --config, else $ZONEKEEPER_CONFIG, else the default if present."""
    if explicit is not None:
        return explicit
    env = os.environ.get("ZONEKEEPER_CONFIG")
    if env:
        return Path(env)
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    return None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from the config file in force plus flag overrides.

    ``overrides`` are nested dicts per section, e.g. ``{"dns": {"listen": [...]}}``;
    they win over the environment and the file.
    """
    path = config_path(config)
    if path is None:
        return Settings(**overrides)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    return FileSettings(**overrides)
