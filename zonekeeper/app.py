"""The composition root: builds every part from one Settings and runs them on one loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import dns.name
import structlog

from zonekeeper import __version__
from zonekeeper.context import AppContext
from zonekeeper.demo import DEMO_TEXT, DEMO_ZONE
from zonekeeper.errors import Conflict
from zonekeeper.events.notify import Notifier
from zonekeeper.events.secondary import Primary, SecondaryManager, ZoneTimers
from zonekeeper.monitor import Monitor
from zonekeeper.policy.acl import Policy
from zonekeeper.server import udpfast
from zonekeeper.server.handler import QueryHandler
from zonekeeper.server.listeners import (
    TcpAcceptor,
    TcpServerState,
    start_tcp,
    start_tls,
    start_udp,
)
from zonekeeper.server.notify_in import NotifyIn
from zonekeeper.server.notify_limit import NotifyLimit
from zonekeeper.server.udp import UdpProtocol, make_socket
from zonekeeper.server.update import UpdateServer
from zonekeeper.server.xfr import ImageWarmer, XfrServer
from zonekeeper.services.access import AccessService
from zonekeeper.services.cluster import Cluster, Hooks
from zonekeeper.services.dnsupdate import UpdateRR
from zonekeeper.services.peers import PeerService
from zonekeeper.services.secrets import CookieSecrets
from zonekeeper.services.status import StatusService
from zonekeeper.services.tokens import TokenService
from zonekeeper.services.usage import LastUsed
from zonekeeper.services.users import UserService
from zonekeeper.services.zones import ZoneService, ZoneSpec
from zonekeeper.settings import Settings
from zonekeeper.start import (
    DnsCore,
    Early,
    StartupError,
    bind_all,
    dns_core,
    image_cache_of,
)
from zonekeeper.storage.db import Database, shown_url
from zonekeeper.text import parse_hostport
from zonekeeper.tls import ServerTls, TlsConfigError
from zonekeeper.zones.snapshot import Registry, ZoneState

log = structlog.get_logger("zonekeeper")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    registry: Registry
    zones: ZoneService
    tokens: TokenService
    access: AccessService
    handler: QueryHandler
    xfr: XfrServer
    notify_in: NotifyIn
    ctx: AppContext
    usage: LastUsed
    cookies: CookieSecrets | None = None
    transports: list[Any] = field(default_factory=list)
    servers: list[TcpAcceptor] = field(default_factory=list)
    tcp_state: TcpServerState | None = None
    refresh: Any = None
    images: ImageWarmer = field(default_factory=ImageWarmer)


def build(settings: Settings, *, migrate: bool = False, core: DnsCore | None = None) -> Runtime:
    """Every part of the server, around ``core`` (the zones and what answers queries: made
    here, or already answering, ``zonekeeper.start``)."""
    db = Database(settings.database.url)
    try:
        db.prepare(migrate=migrate)
    except Exception as exc:
        db.dispose()
        raise StartupError(f"database {shown_url(settings.database.url)}: {exc}") from exc
    core = core or dns_core(settings)
    registry = core.registry
    zones = ZoneService(db, registry, limits=settings.zones)
    role = settings.server.role
    node_name = settings.server.name or (
        f"{socket.gethostname()}:{parse_hostport(settings.api.listen)[1]}")
    cluster = Cluster(db, zones, role=role, name=node_name, can_lead=role != "api")
    zones.fence = cluster.fence  # only the leader installs transfers in
    usage = LastUsed(db, interval_seconds=settings.database.last_used_interval)
    tokens = TokenService(db, usage)
    dns_cfg = settings.dns
    cookies = CookieSecrets(db, rotate=dns_cfg.cookie_rotate,
                            fixed=bytes.fromhex(dns_cfg.cookie_secret) if dns_cfg.cookie_secret else None,
                            known=core.edns_options.secrets())
    edns_options = core.edns_options
    edns_options.secrets = cookies.current
    metrics = core.metrics
    tsig = core.tsig  # holds the access policy
    tsig.on_key_used = usage.key_used
    handler = core.handler
    # AXFR images are built ahead only for zones some client may transfer (ImageWarmer).
    images = ImageWarmer(wanted=lambda snap: bool(snap.outgoing)
                         and tsig.policy.may_transfer(snap.name.to_text()))

    def policy_set(policy: Policy) -> None:
        tsig.set_policy(policy)
        images.warm_all(lambda: list(registry.zones.values()))

    access = AccessService(db, on_policy=policy_set, registry=registry, usage=usage)
    status = StatusService(db, registry)
    notifier = Notifier(
        registry,
        retries=settings.notify.retries,
        retry_interval=settings.notify.retry_interval,
        try_timeout=settings.notify.timeout,
        ns_port=settings.notify.ns_port,
        sources=notify_sources(settings),
        keys=lambda name: access.policy.keys.get(name),
        on_status=status.update,
        on_owed=status.owe,
        settle=0.0 if db.is_sqlite else settings.notify.cluster_settle,
    )
    notifier.active = cluster.leading  # several nodes: the leader alone sends NOTIFY
    xfr = XfrServer(
        registry,
        transfers_out=settings.dns.transfers_out,
        reserved=settings.dns.transfers_out_reserved,
        per_ip=settings.dns.transfers_out_per_ip,
        stall_preempt=settings.dns.xfr_stall_preempt,
        send_timeout=settings.dns.xfr_send_timeout,
        max_time=settings.dns.xfr_max_time,
        edns_payload=settings.dns.udp_max_payload,
        tsig=tsig,
        metrics=metrics,
        journal=zones.journal_sync,
        ixfr_allowed=notifier.takes_ixfr,
        on_transfer=status.transfer_served,
        edns_options=edns_options,
    )
    secondaries = SecondaryManager(
        settings.secondary,
        install=zones.install_transfer,
        current=zones.current,
        save_timers=lambda name, t, primary: zones.save_timers(
            name, t.next_refresh, t.next_expire, t.expired, primary),
        set_expired=lambda name, flag: zones.set_state(name, ZoneState.EXPIRED if flag else ZoneState.OK),
        source_for=lambda addr: notify_sources(settings).get(6 if ":" in addr else 4),
        tls_min_version=settings.dns.tls_min_version,
    )

    def notify_accepted(zone: str) -> None:
        """A NOTIFY for a secondary zone: refresh it now, or ask the leader to."""
        if cluster.leading:
            secondaries.notify(zone)
        else:
            asyncio.get_running_loop().create_task(cluster.announce("refresh", zone))

    notify_in = NotifyIn(
        registry, tsig, metrics=metrics, on_notify=notify_accepted,
        limit=NotifyLimit(
            rate=settings.notify.in_rate,
            burst=settings.notify.in_burst,
            stranger_rate=settings.notify.in_stranger_rate,
            max_sources=settings.notify.in_sources,
        ),
    )
    peers = PeerService(db, on_change=lambda: sync_secondaries(), catalogs=zones)

    def refresh() -> None:
        """Rebuild the access policy and the NOTIFY targets from storage (worker thread)."""
        access.reload_sync()
        targets = peers.targets_sync()
        notifier.set_targets(targets)
        status.set_targets(targets)

    def secondary_setup() -> tuple[list[dict[str, Any]], dict[str, list[Primary]]]:
        """Secondary zones (stored timers) and their primaries, keys resolved (worker
        thread)."""
        return zones.secondary_rows(), peers.primaries_sync(access.policy.keys.get)

    async def sync_secondaries() -> None:
        """Give the refresh engine every secondary zone with its current primaries (and
        rebuild the access policy: linked primaries may NOTIFY us). Only the leading node
        refreshes secondary zones."""
        await asyncio.to_thread(refresh)
        if not cluster.leading:
            for name in list(secondaries.zones):
                secondaries.remove(dns.name.from_text(name))
            return
        rows, primaries = await asyncio.to_thread(secondary_setup)
        for row in rows:
            t = secondaries.zones.get(row["name"])
            timers = t.timers if t is not None else _timers(secondaries, row)
            secondaries.add(dns.name.from_text(row["name"]), row["serial"], timers,
                            primaries.get(row["name"], []))
        known = {r["name"] for r in rows}
        for name in [n for n in secondaries.zones if n not in known]:
            secondaries.remove(dns.name.from_text(name))

    zones.on_secondaries_changed = sync_secondaries
    zones.on_removed = lambda _name: refresh()
    zones.on_members_changed = refresh

    def published(snap: Any) -> None:
        notifier.zone_changed(snap)
        images.warm(snap)  # a version without an AXFR image gets one, in the background

    zones.on_published = published
    users = UserService(db, idle=settings.web.session_idle, max_age=settings.web.session_max_age)
    ctx = AppContext(settings=settings, zones=zones, tokens=tokens, access=access, peers=peers,
                     status=status, notifier=notifier, secondaries=secondaries, users=users)
    ctx.state["sync_secondaries"] = sync_secondaries
    ctx.state["cluster"] = cluster

    async def leading(lead: bool) -> None:
        """This node took the lead: send the NOTIFYs owed (stored with every change, so
        those its predecessor had not sent too) and refresh the secondary zones. Lost it:
        stop both."""
        if lead:
            notifier.active = True
            owed = await asyncio.to_thread(status.stored_owed_sync)
            await sync_secondaries()
            notifier.resume(owed)
            notifier.took_over()
        else:
            notifier.pause()
            await sync_secondaries()

    async def access_changed() -> None:
        await asyncio.to_thread(refresh)

    ctx.state["cluster_hooks"] = Hooks(access_changed=access_changed,
                                       peers_changed=sync_secondaries, leading=leading,
                                       refresh=secondaries.notify,
                                       tokens_changed=tokens.forget)
    monitor = Monitor(settings, db=db, registry=registry, status=status, notifier=notifier,
                      metrics=metrics)
    monitor.attach(notifier=notifier, secondaries=secondaries, zones=zones)
    monitor.state = ctx.state
    ctx.state["monitor"] = monitor
    rt = Runtime(settings, db, registry, zones, tokens, access, handler, xfr, notify_in, ctx, usage)
    rt.refresh = refresh
    rt.cookies = cookies
    rt.images = images

    def expire_of(snap: Any) -> int | None:
        """EDNS EXPIRE (RFC 7314): a primary zone's SOA expire; for a secondary zone, the
        seconds left before it expires (0 once expired)."""
        if snap.kind.local:
            return int(snap.soa_rrset()[0].expire)
        state = secondaries.zones.get(snap.name.to_text())
        if state is None or state.timers.next_expire is None:
            return None
        return 0 if state.timers.expired else int(state.timers.next_expire - time.time())

    edns_options.expire_of = expire_of
    return rt


def _timers(manager: SecondaryManager, row: dict[str, Any]) -> ZoneTimers:
    t = ZoneTimers(next_refresh=row["next_refresh"] or 0.0, next_expire=row["next_expire"],
                   expired=row["expired"])
    soa = row.get("soa")
    if soa is not None and soa.records:
        manager.timers_from_soa(t, soa.records[0].rdata.to_wire())
    return t


def notify_sources(settings: Settings) -> dict[int, str]:
    """NOTIFY source per family: [notify] source, else the DNS listen address of that family."""
    out: dict[int, str] = {}
    for item in settings.notify.source:
        out.setdefault(6 if ":" in item else 4, item.strip("[]"))
    for item in settings.dns.listen:
        host, _ = parse_hostport(item)
        out.setdefault(6 if ":" in host else 4, host)
    return out


def _bind_tls(settings: Settings) -> tuple[ServerTls | None, list[tuple[str, int, socket.socket]]]:
    """The TLS listener's context and sockets ([dns] tls_listen), or none: a certificate or
    key that cannot be read, or an address that cannot be bound, stops start-up."""
    cfg = settings.dns
    if not cfg.tls_listen:
        return None, []
    try:
        tls = ServerTls(cfg.tls_cert, cfg.tls_key, cfg.tls_min_version)
    except TlsConfigError as exc:
        raise StartupError(f"TLS listener: {exc}") from None
    bound: list[tuple[str, int, socket.socket]] = []
    for item in cfg.tls_listen:
        host, port = parse_hostport(item)
        try:
            bound.append((host, port, make_socket(host, port, socket.SOCK_STREAM)))
        except OSError as exc:
            for _h, _p, sock in bound:
                sock.close()
            raise StartupError(f"cannot listen on {item} (TLS): {exc.strerror or exc}") from exc
    return tls, bound


async def ensure_demo(rt: Runtime) -> None:
    origin = dns.name.from_text(DEMO_ZONE)
    if rt.registry.get(origin) is not None:
        return
    try:
        await rt.zones.create(ZoneSpec(name=origin, zone_text=DEMO_TEXT))
    except Conflict:
        return
    for network in ("127.0.0.0/8", "::1/128"):
        await rt.access.create_rule(
            {"zone": DEMO_ZONE, "action": "transfer", "network": network, "effect": "allow"}
        )
    log.info("demo.created", zone=DEMO_ZONE)


def _web_app(ctx: AppContext) -> tuple[Any, Any]:
    """uvicorn and the API's ASGI app (worker thread: imports and route building)."""
    import uvicorn

    from zonekeeper.api.app import create_app

    return uvicorn, create_app(ctx)


async def serve(settings: Settings, *, demo: bool = False, migrate: bool = False,
                stop: asyncio.Event | None = None, lock: Any = None, early: Early | None = None,
                started: float | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set): DNS, the API, orderly shutdown.
    Called by ``start.serve``, with the SQLite lock it took and what it started (``early``:
    the zones read and the UDP loops answering plain queries from them)."""
    started = time.monotonic() if started is None else started
    rt = build(settings, migrate=migrate, core=early.core if early is not None else None)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("shutdown.forced")
            raise SystemExit(1)
        log.info("shutdown.requested")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    role = settings.server.role
    if early is not None:
        sockets = early.sockets
    else:
        sockets = bind_all(settings) if role != "api" else []
    server_tls, tls_sockets = _bind_tls(settings) if role != "api" else (None, [])
    api_host, api_port = parse_hostport(settings.api.listen)
    try:
        api_sock = make_socket(api_host, api_port, socket.SOCK_STREAM)
    except OSError as exc:
        raise StartupError(f"cannot listen on {settings.api.listen}: {exc.strerror or exc}") from exc
    metrics_sock = None
    if settings.metrics.enabled and settings.metrics.listen:
        m_host, m_port = parse_hostport(settings.metrics.listen)
        try:
            metrics_sock = make_socket(m_host, m_port, socket.SOCK_STREAM)
        except OSError as exc:
            raise StartupError(f"cannot listen on {settings.metrics.listen}: "
                               f"{exc.strerror or exc}") from exc

    image_cache = None
    if role != "api":
        image_cache = early.images if early is not None else image_cache_of(settings)
    if early is not None:
        await asyncio.to_thread(rt.zones.load_all, early.stored)
        early.stored = []  # the rows read at start: done with (the snapshots are served)
    else:
        await asyncio.to_thread(rt.zones.load_all, None,
                                image_cache.saved_nodes if image_cache is not None else None)
    if image_cache is not None:
        # Before DNS listens: the first transfer after a start finds its image (a build
        # takes ~2 s at a million records; reading it back, about a tenth of that).
        await asyncio.to_thread(image_cache.restore, list(rt.registry.zones.values()))
    assert rt.cookies is not None
    await asyncio.to_thread(rt.cookies.load)  # the COOKIE secret, before the first answer
    await asyncio.to_thread(rt.ctx.status.load_sync)
    await rt.ctx.state["sync_secondaries"]()  # also builds the access policy
    # Consumed catalogs are read once as stored: what a stop between a catalog's transfer
    # and its members' creation left undone is done now, not at the catalog's next change.
    for name in sorted(rt.zones.consumers):
        await rt.zones.consume_catalog(dns.name.from_text(name))
    if settings.api.bootstrap_token:
        try:
            created = await asyncio.to_thread(rt.tokens.ensure_bootstrap, settings.api.bootstrap_token)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        if created:
            log.info("token.bootstrap_stored")
    if demo:
        await ensure_demo(rt)
    rt.ctx.state["zones_loaded"] = True
    # Counted now, from what is served: the demo zone (created after load_all) included.
    served = list(rt.registry.zones.values())
    unloaded = sum(1 for snap in served if snap.state is ZoneState.UNLOADED)
    log.info("zones.loaded", zones=len(served) - unloaded, unloaded=unloaded,
             saved_tables=image_cache.nodes_read if image_cache is not None else 0,
             seconds=round(time.monotonic() - started, 3))

    zones = rt.zones

    async def apply_update(origin: Any, prereqs: list[Any], updates: list[Any]) -> Any:
        return await zones.apply_update(origin, [UpdateRR(*r) for r in prereqs],
                                        [UpdateRR(*r) for r in updates])

    secondaries = rt.ctx.secondaries

    def primaries_of(zone: str) -> list[tuple[str, int]]:
        return [(p.address, p.port) for p in secondaries.primaries_of(zone)]

    update = UpdateServer(rt.xfr.tsig, rt.registry, apply_update,
                          primaries=primaries_of if settings.dns.update_forward else None)
    monitor: Monitor = rt.ctx.state["monitor"]
    dns_cfg = settings.dns
    rt.tcp_state = TcpServerState(
        rt.handler, rt.xfr, idle_timeout=dns_cfg.tcp_idle_timeout,
        max_clients=dns_cfg.tcp_max_clients, reserved=dns_cfg.tcp_reserved_clients,
        per_ip=dns_cfg.tcp_max_clients_per_ip, per_prefix=dns_cfg.tcp_max_clients_per_prefix,
        max_input=dns_cfg.tcp_max_input_bytes, notify=rt.notify_in, update=update,
        counts=monitor.metrics.tcp, tls_counts=monitor.metrics.tls,
        on_refused=lambda _reason: monitor.metrics.refused("tcp", "quota"),
    )
    udp_workers = dns_cfg.udp_workers or udpfast.default_workers()
    for i, (host, port, udp, tcp) in enumerate(sockets):
        if early is not None:
            # Answering plain queries since the start: now everything, held requests first.
            fast = early.transports[i]
            fast.started(UdpProtocol(rt.handler, rt.notify_in, monitor.metrics.udp, update))
            rt.transports.append(fast)
        else:
            rt.transports.append(await start_udp(rt.handler, udp, rt.notify_in,
                                                 monitor.metrics.udp, update,
                                                 fast=dns_cfg.udp_fast_path,
                                                 fast_loops=monitor.metrics.udp_fast,
                                                 workers=udp_workers))
            log.info("dns.listening", address=host, port=port,
                     udp=(f"c-loop x{udp_workers}"
                          if isinstance(rt.transports[-1], udpfast.FastUdp) else "asyncio"))
        rt.servers.append(start_tcp(rt.tcp_state, tcp))
    if server_tls is not None:
        for host, port, sock in tls_sockets:
            rt.servers.append(start_tls(rt.tcp_state, sock, server_tls))
            log.info("dns.listening", address=host, port=port, transport="tls")

        def reload_tls() -> None:
            """SIGHUP: read the certificate and key again; connections accepted from now
            on get them. A file that cannot be used keeps the ones in use."""
            assert server_tls is not None
            try:
                server_tls.reload()
            except TlsConfigError as exc:
                log.error("tls.reload_failed", error=str(exc))
            else:
                log.info("tls.reloaded", cert=server_tls.cert)

        loop.add_signal_handler(signal.SIGHUP, reload_tls)
    # Every zone served has its AXFR image built from now on, one at a time, off the query
    # path, while the web stack loads: the first transfer after a start finds it built.
    rt.images.start(list(rt.registry.zones.values()))
    # Answering now: NOTIFYs owed when the server last stopped go out again (a secondary
    # that takes one transfers at once).
    rt.ctx.notifier.resume(dict(rt.ctx.status.owed))
    cluster: Cluster = rt.ctx.state["cluster"]
    # Several nodes on PostgreSQL: listen for the others' changes, resynchronise, and try
    # to lead (on SQLite this node leads and nothing runs).
    cluster.start(rt.ctx.state["cluster_hooks"])
    rt.usage.start()  # last_used_at of keys and tokens, written every interval
    assert rt.cookies is not None
    rt.cookies.start()  # the COOKIE secret: re-read, rotated when due

    # The web stack (~0.4 s of imports and route building) is loaded only now, in a worker
    # thread: DNS answers meanwhile (an import on the loop would hold every query back).
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        uvicorn, app = await asyncio.to_thread(_web_app, rt.ctx)
    finally:
        sys.setswitchinterval(switch)

    class _EmbeddedServer(uvicorn.Server):
        """uvicorn inside our loop: signals are ours, so it only learns to exit."""

        def capture_signals(self):  # type: ignore[no-untyped-def, override]
            return contextlib.nullcontext()

    # What exists now (modules, the zones loaded) lives as long as the process: keep it out
    # of the cyclic collector's full passes, which otherwise rescan it all while a big
    # transfer allocates (refcounting still frees whatever is dropped later).
    gc.freeze()
    # http="h11", never "auto": uvicorn would take httptools wherever it happens to be
    # installed, and that parser puts no bound on a request's head (hundreds of MB of
    # headers accepted in a trial; tests/integration/test_api_limits.py).
    config = uvicorn.Config(app, loop="none", lifespan="off", log_level="warning",
                            access_log=False, limit_max_requests=None, http="h11")
    api = _EmbeddedServer(config)
    api_task = asyncio.create_task(api.serve(sockets=[api_sock]))
    metrics_server = None
    if metrics_sock is not None:
        from zonekeeper.api.app import metrics_app

        metrics_server = _EmbeddedServer(uvicorn.Config(
            metrics_app(monitor), loop="none", lifespan="off", log_level="warning",
            access_log=False, http="h11"))
        metrics_task = asyncio.create_task(metrics_server.serve(sockets=[metrics_sock]))
        log.info("metrics.listening", address=settings.metrics.listen)
    monitor.start()
    rt.ctx.state["listening"] = True
    log.info("api.listening", address=api_host, port=api_port, version=__version__)
    log.info("ready", seconds=round(time.monotonic() - started, 3))

    stop_task = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stop_task, api_task}, return_when=asyncio.FIRST_COMPLETED)
    if api_task in done and api_task.exception() is not None:
        log.error("api.failed", error=str(api_task.exception()))
    # Ordered shutdown: stop work in worker threads (a long import parse would otherwise keep
    # the process alive: asyncio waits for its threads), stop accepting, close connections,
    # stop the API, close storage.
    rt.zones.stop()
    await cluster.close()  # the lead, if held, passes to another node now
    await rt.images.close()
    if image_cache is not None:
        try:
            stamp: bytes | None = await asyncio.to_thread(rt.db.stamp)
        except Exception as exc:  # noqa: BLE001 - a stop never fails for the cache
            log.warning("zones.database_stamp_unread", error=str(exc)[:200],
                        effect="the node tables kept now are not used at the next start")
            stamp = None
        await asyncio.to_thread(image_cache.save, list(rt.registry.zones.values()), stamp)
    rt.tcp_state.accepting = False
    for server in rt.servers:
        server.close()
    for tr in rt.transports:
        tr.close()
    await rt.ctx.notifier.close()
    await rt.ctx.secondaries.close()
    await rt.tcp_state.finish_transfers(grace=5)
    rt.tcp_state.close_all()
    api.should_exit = True
    try:
        await asyncio.wait_for(api_task, timeout=10)
    except (TimeoutError, asyncio.CancelledError):
        api_task.cancel()
    stop_task.cancel()
    if metrics_server is not None:
        metrics_server.should_exit = True
        try:
            await asyncio.wait_for(metrics_task, timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            metrics_task.cancel()
    await monitor.close()
    await rt.ctx.status.close()
    await rt.usage.close()  # the uses noted since the last write
    if rt.cookies is not None:
        await rt.cookies.close()
    rt.db.dispose()
    if lock is not None:
        lock.close()
    log.info("shutdown.done")
