"""``zonekeeper serve``'s first steps: answering queries before the rest is imported.

Importing the storage layer (SQLAlchemy and the models: ~0.2 s here), the services and
their DNS clients took more than half of a start's time to the first answer. On SQLite,
with a schema that needs no migration, the stored zones are read here with the standard
library's ``sqlite3`` (``zones.stored``, the same reader ``ZoneStore.load_all`` uses), with
the stored DNS COOKIE secret, and the C UDP loop answers queries from them at once: opcode
QUERY, one question, no TSIG; EDNS options but EXPIRE (a secondary zone's timers come
later) are answered as always. Every other request (NOTIFY, UPDATE, signed queries,
EXPIRE; cookies too when no secret is stored yet) is held until the server has started
(``FastUdp``), and TCP connections wait in the listen queue: they need the access policy
and the keys, which come with the rest. Then
``zonekeeper.app`` is imported (in a worker thread, while the loop answers) and its
``serve`` runs with what was started here.

Otherwise (PostgreSQL, a new or older database, the API-only role, the asyncio UDP
endpoint) ``app.serve`` does it all, as before.

A start again with the same inputs does the same even before the command line is parsed
(``prestart``, from ``zonekeeper.quickstart``): so this module imports nothing of click,
pydantic or SQLAlchemy (the settings' type only for the checker).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any

from zonekeeper import quickstart
from zonekeeper.logs import get_logger
from zonekeeper.metrics import Metrics
from zonekeeper.proto.edns import COOKIE, EXPIRE, EdnsOptions, MalformedOption, options
from zonekeeper.proto.request import OPCODE_QUERY, Request
from zonekeeper.server import udpfast
from zonekeeper.server.handler import QueryHandler
from zonekeeper.server.imagecache import ImageCache
from zonekeeper.server.tsig import TsigCheck
from zonekeeper.server.udp import make_socket, start_fast_udp
from zonekeeper.storage import COOKIE_SECRET, DATABASE_STAMP, SCHEMA_HEAD
from zonekeeper.text import parse_hostport
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot
from zonekeeper.zones.stored import read_served

if TYPE_CHECKING:
    import asyncio

    from zonekeeper.settings import Settings

log = get_logger("zonekeeper")
DEFAULT_DNS_LISTEN = ["127.0.0.1:5300", "[::1]:5300"]


class StartupError(RuntimeError):
    """A fatal problem at start: one line to the user, exit 1."""


@dataclass
class DnsCore:
    """What answers queries: the zones, the query handler and what it reads. Built before
    storage is opened; the rest of the server plugs into it (``app.build``): the access
    policy into ``tsig``, the cookie secret and EXPIRE into ``edns_options``."""

    registry: Registry
    metrics: Metrics
    tsig: TsigCheck
    edns_options: EdnsOptions
    handler: QueryHandler


def dns_core(settings: Settings) -> DnsCore:
    dns_cfg = settings.dns
    registry = Registry()
    metrics = Metrics(enabled=settings.metrics.enabled)
    tsig = TsigCheck(metrics=metrics)  # the access policy and on_key_used: app.build
    fixed = bytes.fromhex(dns_cfg.cookie_secret) if dns_cfg.cookie_secret else None
    edns_options = EdnsOptions(
        nsid=dns_cfg.nsid.encode() if dns_cfg.nsid else None,
        idle_timeout=dns_cfg.tcp_idle_timeout,
        secrets=lambda: (fixed,) if fixed else (),  # the stored secret: app.build
        require_cookie=dns_cfg.require_cookie)
    handler = QueryHandler(
        registry,
        udp_max_payload=dns_cfg.udp_max_payload,
        cache_entries=dns_cfg.response_cache_entries,
        edns_options=edns_options,
        tsig=tsig,
        metrics=metrics,
    )
    return DnsCore(registry, metrics, tsig, edns_options, handler)


@dataclass
class Early:
    """What ``serve`` started before importing the rest: the zones read (their rows, for
    ``ZoneStore.load_all``), the sockets, and the C loops answering on the UDP ones."""

    core: DnsCore
    stored: list[tuple[Any, ZoneSnapshot]]
    sockets: list[tuple[str, int, socket.socket, socket.socket]]
    images: ImageCache | None
    transports: list[Any] = field(default_factory=list)


def sqlite_file(url: str) -> str | None:
    """The file of an SQLite database URL (``sqlite:///relative``, ``sqlite:////absolute``,
    a ``sqlite+driver`` scheme, a ``?query``), or None: PostgreSQL, or in memory."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "sqlite":
        return None
    path = rest.partition("/")[2].partition("?")[0]
    return path if path and path != ":memory:" else None


def image_cache_of(settings: Settings) -> ImageCache | None:
    """Where the AXFR images and node tables of the served versions are kept across a
    restart (``[dns] axfr_image_cache``), or None."""
    where = settings.dns.axfr_image_cache
    if where == "auto":
        path = sqlite_file(settings.database.url)
        if path is None:
            return None
        where = f"{path}.axfr-images"
    return ImageCache(where, stamp_of=stored_stamp) if where else None


def stored_stamp(cur: Any) -> bytes | None:
    """The database stamp (``Database.stamp``) as a DB-API cursor reads it, or None."""
    # The name is a constant of ours: written into the SQL, so that the query runs as it is
    # on either driver's placeholder style.
    cur.execute(f"SELECT current FROM server_secrets WHERE name = '{DATABASE_STAMP}'")
    row = cur.fetchone()
    return bytes(row[0]) if row is not None else None


def single_node_lock(settings: Settings) -> IO[bytes] | None:
    """On SQLite, one ``zonekeeper serve`` per database file: an exclusive lock on
    ``FILE.serve.lock`` beside it, taken before the database is opened (or migrated) and
    held as long as the process runs (the kernel drops it when the process ends, however it
    ends). None on PostgreSQL, where nodes share the database."""
    path = sqlite_file(settings.database.url)
    if path is None:
        return None
    lock_path = f"{path}.serve.lock"
    handle = open(lock_path, "a+b")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise StartupError(
            f"database {path} is in use by another zonekeeper serve (it holds {lock_path}); "
            "SQLite serves one node: run several nodes on one PostgreSQL database") from exc
    return handle


def bind_all(settings: Settings) -> list[tuple[str, int, socket.socket, socket.socket]]:
    """Bind UDP and TCP on every DNS address; skip an unbindable *default* IPv6 address."""
    bound = []
    defaults = settings.dns.listen == DEFAULT_DNS_LISTEN
    for item in settings.dns.listen:
        host, port = parse_hostport(item)
        try:
            udp = make_socket(host, port, socket.SOCK_DGRAM)
            try:
                tcp = make_socket(host, port, socket.SOCK_STREAM)
            except OSError:
                udp.close()
                raise
        except OSError as exc:
            if defaults and ":" in host:
                log.warning("dns.listen_skipped", address=item, error=str(exc))
                continue
            for _h, _p, u, t in bound:
                u.close()
                t.close()
            raise StartupError(f"cannot listen on {item}: {exc.strerror or exc}") from exc
        bound.append((host, port, udp, tcp))
    if not bound:
        raise StartupError("no DNS address could be bound")
    return bound


def read_stored(path: str, images: ImageCache | None = None,
                ) -> tuple[list[tuple[Any, ZoneSnapshot]], tuple[bytes, ...]] | None:
    """The zones stored in SQLite file ``path``, read with ``sqlite3`` (a zone whose node
    table ``images`` kept for its stored version: from there), and the stored DNS COOKIE
    secrets (current, previous; none yet: empty); None when this start must go the long
    way: no file yet, a schema other than this version's, or a database that cannot be
    read (``app.serve`` then says why)."""
    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(path, timeout=5)
    except sqlite3.Error:
        return None
    try:
        conn.execute("BEGIN")  # one snapshot for every read below, as load_all's transaction
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row is None or row[0] != SCHEMA_HEAD:
            return None
        secrets = conn.execute("SELECT current, previous FROM server_secrets WHERE name = ?",
                               (COOKIE_SECRET,)).fetchone()
        stored = read_served(conn.cursor(), images.saved_nodes if images is not None else None)
    except Exception:  # noqa: BLE001 - whatever it is, the long way reports it
        return None
    finally:
        conn.close()
    return stored, tuple(bytes(s) for s in secrets or () if s)


def answerable(cookies: bool) -> Callable[[Request], bool]:
    """What the UDP loop may answer before the server has started: queries (opcode QUERY,
    the common shape, unsigned) without an EXPIRE option, and without a COOKIE option
    unless ``cookies`` (a secret is known). A malformed option is FORMERR either way."""

    def early(req: Request) -> bool:
        if req.opcode != OPCODE_QUERY or not req.simple or req.tsig_at is not None:
            return False
        if req.edns is None or not req.edns.options:
            return True
        try:
            for code, _data in options(req.edns.options):
                if code == EXPIRE or (code == COOKIE and not cookies):
                    return False
        except MalformedOption:
            return True
        return True

    return early


async def serve(settings: Settings, *, demo: bool = False, migrate: bool = False,
                stop: asyncio.Event | None = None, config_file: Path | None = None) -> None:
    """``zonekeeper serve``: answer from the stored zones as early as possible, then run
    ``app.serve`` (until SIGINT/SIGTERM, or ``stop``). ``config_file``: the config file in
    force (for ``quickstart.remember``)."""
    import asyncio  # (not at the top: the quick start answers before importing it)

    started = time.monotonic()
    lock = early = None
    switch = sys.getswitchinterval()
    taken = quickstart.take()
    if taken is not None:
        switch = taken.switch
        if taken.view == early_view(settings):
            lock, early = taken.lock, taken.early
        else:  # cannot happen unless the settings depend on something the key leaves out
            close_early(taken.early)
            taken.lock.close()
            log.warning("start.quick_start_discarded",
                        reason="the settings differ from the last start's with the same "
                               "command line, environment and config file")
    try:
        if early is None:
            lock = single_node_lock(settings)
            path = sqlite_file(settings.database.url)
            if path is not None and _can_start_early(settings):
                images = image_cache_of(settings)
                found = read_stored(path, images)
                if found is not None:
                    early = answer_early(settings, *found, images, started)
                del found  # the rows go with early.stored, once load_all has them
        # The rest of the server (~0.3 s of imports: storage, services, DNS clients) loads
        # in a worker thread, so the UDP loop keeps answering meanwhile.
        sys.setswitchinterval(0.0001)
        try:
            app = await asyncio.to_thread(_import_app)
        finally:
            sys.setswitchinterval(switch)
        if sqlite_file(settings.database.url) and _can_start_early(settings):
            # (Only SQLite starts early: no database password goes to the file.)
            from zonekeeper.settings import DEFAULT_CONFIG_PATH  # loaded by now

            quickstart.remember(early_view(settings), config_file,
                                absent=() if config_file else (str(DEFAULT_CONFIG_PATH),))
    except BaseException:
        if early is not None:
            close_early(early)
        if lock is not None:
            lock.close()
        raise
    try:
        await app.serve(settings, demo=demo, migrate=migrate, stop=stop, lock=lock, early=early,
                        started=started)
    except BaseException:
        # A start that failed after answering early: nothing keeps answering, no socket
        # stays bound (after a clean stop app.serve has closed them; closing is idempotent).
        if early is not None:
            close_early(early)
        raise


def _can_start_early(settings: Settings | SimpleNamespace) -> bool:
    return (settings.server.role != "api" and settings.dns.udp_fast_path
            and udpfast.available())


def _import_app() -> Any:
    from zonekeeper import app

    return app


# What the early start reads of the settings (``early_view``): the quick start
# (``zonekeeper.quickstart``) keeps these from the last start with the same inputs.
EARLY_FIELDS = {
    "database": ("url",),
    "server": ("role",),
    "dns": ("listen", "udp_fast_path", "udp_workers", "nsid", "tcp_idle_timeout",
            "require_cookie", "udp_max_payload", "response_cache_entries", "axfr_image_cache"),
    "metrics": ("enabled",),
    "log": ("level", "format"),
}


def early_view(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings the early start reads, as JSON values; of the DNS COOKIE secret only
    whether one is set (a secret is not written to the quick start's files)."""
    view = {section: {name: _plain(getattr(getattr(settings, section), name)) for name in names}
            for section, names in EARLY_FIELDS.items()}
    view["dns"]["cookie_secret_set"] = bool(settings.dns.cookie_secret)
    return view


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


@dataclass
class Prestarted:
    """What the quick start began before the command line was parsed: the settings it used
    (``early_view``), the SQLite lock, the early answers, the switch interval before."""

    view: dict[str, dict[str, Any]]
    lock: IO[bytes]
    early: Early
    switch: float


def prestart(view: dict[str, dict[str, Any]], started: float) -> Prestarted | None:
    """The early start from ``view`` (an ``early_view`` kept by the quick start) instead of
    the settings; None where the settings would not start early either. Raises what the
    early start raises (StartupError: the lock is held, a port is taken)."""
    settings = SimpleNamespace(**{
        section: SimpleNamespace(**values) for section, values in view.items()})
    settings.dns.cookie_secret = None  # a set one is used once the settings are read
    lock = single_node_lock(settings)  # type: ignore[arg-type]
    if lock is None:
        return None
    try:
        path = sqlite_file(settings.database.url)
        images = image_cache_of(settings)  # type: ignore[arg-type]
        found = read_stored(path, images) if path and _can_start_early(settings) else None
        if found is None:
            lock.close()
            return None
        stored, secrets = found
        if settings.dns.cookie_secret_set:
            secrets = ()  # the one set in the settings, not the stored one: held till then
        early = answer_early(settings, stored, secrets, images, started)  # type: ignore[arg-type]
    except BaseException:
        lock.close()
        raise
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # the C loops answer while the rest is imported
    return Prestarted(view, lock, early, switch)


def answer_early(settings: Settings, stored: list[tuple[Any, ZoneSnapshot]],
                 secrets: tuple[bytes, ...], images: ImageCache | None,
                 started: float) -> Early:
    """Serve the zones ``stored`` and answer on every DNS address with the C loop (what it
    cannot answer yet is held until ``app.serve`` has started)."""
    core = dns_core(settings)
    if secrets and not settings.dns.cookie_secret:
        core.edns_options.secrets = lambda: secrets  # until app.build's CookieSecrets
    cookies = bool(core.edns_options.secrets())
    for _row, snap in stored:
        core.registry.publish(snap)
    workers = settings.dns.udp_workers or udpfast.default_workers()
    early = Early(core, stored, bind_all(settings), images)
    try:
        for host, port, udp, _tcp in early.sockets:
            early.transports.append(start_fast_udp(
                core.handler, udp, None, core.metrics.udp, None,
                fast_loops=core.metrics.udp_fast, workers=workers,
                early=answerable(cookies)))
            log.info("dns.listening", address=host, port=port, udp=f"c-loop x{workers}")
    except BaseException:
        close_early(early)
        raise
    log.info("dns.answering", zones=len(stored), seconds=round(time.monotonic() - started, 3),
             cookies=cookies, quick=quickstart.begun(),
             saved_tables=images.nodes_read if images is not None else 0,
             stale_tables=images.nodes_stale if images is not None else 0)
    return early


def close_early(early: Early) -> None:
    """A start that failed after answering early: stop the loops, close the sockets."""
    for transport in early.transports:
        transport.close()
    for _h, _p, udp, tcp in early.sockets:
        udp.close()
        tcp.close()
