"""The zone service's ground floor: loading zones from storage, locks, publishing,
and the helpers that turn stored rows into served snapshots and back (shared by every
zone operation).
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import functools
import itertools
import json
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import structlog

from zonekeeper.errors import (
    Conflict,
    Invalid,
    NotFound,
    Reason,
    Stale,
)
from zonekeeper.logs import Throttle
from zonekeeper.proto import axfr, ixfr
from zonekeeper.proto.rrwire import (
    Node,
    ancestors,
    blob_to_rdatas,
    blob_ttl,
    blob_type,
    count_below,
    find_blob,
    find_cuts,
    key_to_name,
    name_key,
    node_blobs,
    sort_key,
    updated_nodes,
)
from zonekeeper.proto.serial import SerialPolicy
from zonekeeper.services import paging
from zonekeeper.services.zone_inputs import RRsetChange
from zonekeeper.settings import ZoneSettings
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import Zone
from zonekeeper.text import absolute, utc_text
from zonekeeper.zones.model import Record, RRsetData, ZoneContent, rdata_text
from zonekeeper.zones.snapshot import (
    Registry,
    ZoneKind,
    ZoneSnapshot,
    ZoneState,
)
from zonekeeper.zones.stored import Saved, from_stored, nodes_of_rows, read_served
from zonekeeper.zones.stored import snapshot_of as _snapshot
from zonekeeper.zones.validate import Finding, check
from zonekeeper.zones.zonefile import (
    ParseResult,
    Problem,
    gc_paused_for,
    parse_zone_text,
    quick_switches_for,
)

T = TypeVar("T")

try:  # the rows made in C (_axfrbuild.c); the Python in _rrset_rows is the reference
    from dns.rdtypes.ANY.CNAME import CNAME as _CNAME
    from dns.rdtypes.ANY.MX import MX as _MX_RDATA
    from dns.rdtypes.ANY.NS import NS as _NS_RDATA
    from dns.rdtypes.ANY.PTR import PTR as _PTR
    from dns.rdtypes.ANY.TXT import TXT as _TXT_RDATA
    from dns.rdtypes.IN.A import A as _A
    from dns.rdtypes.IN.AAAA import AAAA as _AAAA
    from dns.rdtypes.IN.SRV import SRV as _SRV_RDATA

    from zonekeeper.proto._axfrbuild import rrset_rows as _c_rrset_rows
    _TARGET_ONLY = (_NS_RDATA, _CNAME, _PTR)  # types whose text is their target's
except ImportError:  # built without a C compiler
    _c_rrset_rows = None
_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]

log = structlog.get_logger("zonekeeper.zones")

_SOA = int(dns.rdatatype.SOA)
_NS = int(dns.rdatatype.NS)
_T_NS = _NS.to_bytes(2, "big")
_T_SOA = _SOA.to_bytes(2, "big")
IMPORT_SAFE_SHARE = 0.30
JOURNAL_MAX_COUNT = 1000
JOURNAL_MAX_AGE_SECONDS = 30 * 86400
# How many journal rows a node reads back to catch up with a zone changed by another node;
# further behind, it reads the zone's nodes whole.
JOURNAL_CATCH_UP = 64
# What PATCH /zones/{zone} with null sets (the model's defaults for its NOT NULL columns).
_SETTING_DEFAULTS: dict[str, Any] = {
    "serial_policy": SerialPolicy.INCREMENT, "outgoing_enabled": True, "notify_ns": False,
    "notify_delay": 0.0, "ixfr_max_ratio": 1.0,
}

# How long a worker of ZoneStore._text_work waits for its version to be published before it
# lets go of what it read anyway.
LET_GO_AFTER_SECONDS = 10.0


def _call_in(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """``fn(*args)`` in ``loop``, from another thread; nothing once the loop is closed (the
    server stopped while a worker was still busy)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


class ZoneStore:
    """State and helpers every zone operation shares."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        *,
        on_published: Callable[[ZoneSnapshot], None] | None = None,
        limits: ZoneSettings | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.limits = limits or ZoneSettings()
        # Set when the server stops: zone text still being parsed in a worker thread gives
        # up (ShuttingDown) instead of holding the process for minutes.
        self.stopping = threading.Event()
        self._refusals = Throttle()
        self.on_published = on_published
        self.on_removed: Callable[[dns.name.Name], None] | None = None
        # A catalog's members changed: its secondaries' rights over them are rebuilt (worker
        # thread) before the catalog's new version is published (and announced).
        self.on_members_changed: Callable[[], None] | None = None
        self.on_secondaries_changed: Callable[[], Awaitable[None]] | None = None
        # Called inside a write that only the leading node may do (installing a transfer
        # in): raises when this node does not lead (services/cluster.py); None on one node.
        self.fence: Callable[[Any], None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        # Workers of _text_work still letting go of what they read after their answer.
        self._workers: set[asyncio.Future[None]] = set()
        # Secondary zones read as catalogs after each transfer (catalog consumer).
        self.consumers: set[str] = set()

    def stop(self) -> None:
        """Make work in worker threads give up (called first thing on shutdown)."""
        self.stopping.set()

    async def _text_work(self, text: str | None, fn: Callable[..., tuple[ZoneSnapshot | None, T,
                                                                         Callable[[], None] | None]],
                         *args: Any) -> T:
        """``fn(*args)``, the work of importing ``text``, in a worker thread; it gives back
        the new version (None: nothing changed), the result, and a function that lets go
        of what it read (``model.let_go``), or None. The version is published and the
        result returned as soon as ``fn`` is done; the worker lets go after the version is
        published (~1.3 s at a million records, which the answer and the zone's first
        queries used to wait for), even if the caller was cancelled meanwhile. The garbage
        collector stays paused for a large text (``zonefile.gc_paused``) until the parsed
        objects are gone."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[ZoneSnapshot | None, T]] = loop.create_future()
        published = threading.Event()

        def settle(value: Any, exc: BaseException | None) -> None:
            if done.cancelled():
                return
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(value)

        def work() -> None:
            answered = False
            try:
                with gc_paused_for(text), quick_switches_for(text):
                    try:
                        snap, result, leftovers = fn(*args)
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        answered = True
                        _call_in(loop, settle, None, exc)
                        return
                    answered = True
                    _call_in(loop, settle, (snap, result), None)
                    if leftovers is not None:
                        # Once published: the event loop does that without waiting for
                        # the GIL behind this (bounded: a loop that never answers).
                        published.wait(LET_GO_AFTER_SECONDS)
                        leftovers()
            except BaseException as exc:  # noqa: BLE001
                if not answered:  # the caller waits for an answer: this is it
                    _call_in(loop, settle, None, exc)
                else:  # the answer is given: logged only
                    log.exception("zone.release_failed")

        # As asyncio.to_thread does: the request's context (its log fields) goes along.
        ctx = contextvars.copy_context()
        worker = loop.run_in_executor(None, functools.partial(ctx.run, work))
        self._workers.add(worker)  # held until the worker is done letting go
        worker.add_done_callback(self._workers.discard)
        try:
            snap, result = await done
            self._publish(snap)
        finally:
            published.set()
        return result

    def _parse(self, text: str, origin: dns.name.Name) -> ParseResult:
        """Parse zone text within ``[zones]`` limits; every problem raised (Invalid)."""
        parsed = parse_zone_text(text, origin, limits=self.limits, cancel=self.stopping)
        if parsed.limited is not None:
            held = self._refusals.due(origin)
            if held is not None:
                log.warning("zone.text_refused", zone=origin.to_text(), line=parsed.limited.line,
                            reason=parsed.limited.msg, suppressed=held)
        raise_parse_problems(parsed)
        return parsed

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _publish(self, snap: ZoneSnapshot | None) -> None:
        if snap is None:
            return
        self.registry.publish(snap)
        if self.on_published is not None:
            self.on_published(snap)

    def _zone(self, s: Any, name: dns.name.Name) -> Zone:
        z = repo.zone_by_name(s, name.to_text())
        if z is None:
            raise NotFound(f"zone {name.to_text()} does not exist")
        return z

    async def absent(self, name: dns.name.Name) -> None:
        """Conflict if the zone exists (before work that would be thrown away)."""
        def work() -> bool:
            with self.db.read() as s:
                return repo.zone_exists(s, name.to_text())

        if await asyncio.to_thread(work):
            raise Conflict(f"zone {name.to_text()} already exists")

    def _records(self, z: Zone, snap: ZoneSnapshot | None = None) -> int:
        """The records (RRs) of the zone's version served (``snap`` if given, else the
        registry's): counted once per version, in memory, with no SQL. Disabled records
        are not served, so not counted; a zone not loaded holds none."""
        if snap is None:
            snap = self.registry.get(dns.name.from_text(z.name))
        return snap.record_count if snap is not None else 0

    def _soa(self, s: Any, z: Zone) -> RRsetData | None:
        if z.kind == ZoneKind.SECONDARY.value:
            snap = self.registry.get(dns.name.from_text(z.name))
            if snap is None or snap.state is ZoneState.UNLOADED:
                return None
            blob = find_blob(snap.nodes[snap.origin_key], _T_SOA)
            return _rrset_of(snap.name, blob) if blob else None
        rows = repo.rrsets_at(s, z.id, [z.name])
        for r in rows:
            if r.type == _SOA:
                return RRsetData.from_row(r.name, r.type, r.ttl, r.records)
        return None

    def _check_primary(self, z: Zone, *, catalog: bool = False) -> None:
        """409 unless ``z`` is a primary zone (or, with ``catalog``, a catalog zone: its SOA
        and settings may change, its records only through its members)."""
        if z.kind == ZoneKind.CATALOG.value and not catalog:
            raise Conflict(f"zone {z.name} is a catalog zone; its records are its member zones: "
                           f"link and unlink them with PUT and DELETE /zones/{z.name}/members/"
                           "{zone}, not by editing records")
        if z.kind == ZoneKind.SECONDARY.value:
            raise Conflict(f"zone {z.name} is a {z.kind} zone; its content comes from its primaries")

    # -- start-up -------------------------------------------------------------------------
    def load_all(self, stored: list[tuple[Any, ZoneSnapshot]] | None = None,
                 saved: Saved | None = None) -> list[ZoneSnapshot]:
        """Serve every stored zone: read here (``zones.stored.read_served``, no text
        parsing; node tables ``saved`` for the stored version from there), or as
        ``stored`` when the start already read them (``zonekeeper.start`` on SQLite, before
        this module was imported) and published their snapshots."""
        if stored is None:
            with self.db.read() as s, repo.cursor(s) as (cur, _ph):
                stored = read_served(cur, saved)
            for _z, snap in stored:
                self.registry.publish(snap)
        for z, _snap in stored:
            if z.catalog_consumer:
                self.consumers.add(z.name)
        return [snap for _z, snap in stored]

    def _load_zone(self, s: Any, z: Zone) -> ZoneSnapshot:
        """One zone's served form as stored (no text parsing)."""
        chunks = repo.load_image_chunks(s, z.id)
        if z.kind == ZoneKind.SECONDARY.value:
            return from_stored(z, None, chunks)
        if chunks:  # a primary's image, with the rows of the edits since over it
            return from_stored(z, None, chunks, rows=repo.node_rows(s, z.id))
        return from_stored(z, repo.load_nodes(s, z.id, nodes_of_rows), None)

    # -- changes committed by other nodes sharing the database (services/cluster.py) --------
    async def sync_zone(self, name: dns.name.Name) -> str:
        """Serve what the database holds for zone ``name`` now (another node changed it,
        or this one missed changes): under the zone's lock, as a local write; the new
        version is published as a local write publishes it (``_publish``: the registry,
        then NOTIFY where this node leads). Returns what was done: ``same``, ``settings``,
        ``changed`` (from the journal rows and the touched owners' nodes), ``loaded``
        (read whole) or ``removed``."""
        key = name.to_text()
        async with self._lock(key):
            current = self.registry.get(name)
            what, found = await asyncio.to_thread(self._read_stored, name, current)
            if what == "same":
                return what
            if what == "removed":
                if current is None:
                    return "same"
                self.registry.remove(name)
                if self.on_removed is not None:
                    await asyncio.to_thread(self.on_removed, name)
            elif what == "settings":
                assert current is not None
                snap = current.replaced(**found)
                self.registry.publish(snap)
                if found["outgoing"] and not current.outgoing and self.on_published is not None:
                    self.on_published(snap)  # switched back on: announce what was missed
            else:
                self._publish(found)
            log.info("zone.synced", zone=key, how=what,
                     serial=found.serial if isinstance(found, ZoneSnapshot) else None)
        kinds = {current.kind if current else None,
                 found.kind if isinstance(found, ZoneSnapshot) else None}
        if ZoneKind.SECONDARY in kinds and what != "settings" and self.on_secondaries_changed:
            await self.on_secondaries_changed()
        return what

    def _read_stored(self, name: dns.name.Name, current: ZoneSnapshot | None) -> tuple[str, Any]:
        """What zone ``name`` is in storage compared with ``current`` (worker thread, one
        read snapshot): gone, the same, other settings, or a new version built."""
        with self.db.read() as s:
            z = repo.zone_by_name(s, name.to_text())
            if z is None:
                return "removed", None
            settings = {"outgoing": z.outgoing_enabled, "notify_ns": z.notify_ns,
                        "notify_delay": z.notify_delay or 0.0,
                        "ixfr_max_ratio": z.ixfr_max_ratio or 1.0, "state": ZoneState(z.state)}
            same_zone = (current is not None and current.zone_id == z.id
                         and current.kind.value == z.kind)
            if same_zone and current is not None and current.serial == z.serial and (
                    (current.state is ZoneState.UNLOADED) == (z.state == ZoneState.UNLOADED.value)):
                if all(getattr(current, k) == v for k, v in settings.items()):
                    return "same", None
                return "settings", settings
            if same_zone and current is not None and z.kind == ZoneKind.PRIMARY.value and (
                    current.state is not ZoneState.UNLOADED):
                snap = self._from_journal(s, z, current)
                if snap is not None:
                    return "changed", snap
            return "loaded", self._load_zone(s, z)

    def _stored_version(self, s: Any, z: Zone, origin: dns.name.Name, serial: int) -> ZoneSnapshot:
        """The version of ``z`` stored at ``serial``, which a write about to change it works
        from (in its transaction, before it writes nodes): the one served, or, where another
        node sharing the database committed a change this one has not applied yet, that
        version caught up from the journal, as the announcement will, or read whole (not a
        stale copy)."""
        current = self.registry.get(origin)
        if current is not None and current.serial == serial and current.zone_id == z.id:
            return current
        caught_up = None
        if current is not None and current.zone_id == z.id and (
                current.state is not ZoneState.UNLOADED):
            caught_up = self._from_journal(s, z, current)
        if caught_up is None:
            stored = repo.load_nodes(s, z.id)
            caught_up = _snapshot(z, serial, stored, find_cuts(stored, name_key(origin)))
        return caught_up

    def _from_journal(self, s: Any, z: Zone, current: ZoneSnapshot) -> ZoneSnapshot | None:
        """The version stored for ``z``, from ``current``: the journal rows from its serial
        name the owners touched; their stored nodes (and their ancestors', empty
        non-terminals included) replace the served ones. None when the journal does not
        lead there (trimmed, too many changes behind, or an image written since): the
        caller reads it whole."""
        path = None
        for limit in (4, JOURNAL_CATCH_UP):  # nearly always one row behind: read few first
            rows = repo.recent_journal(s, z.id, limit)
            path = ixfr.chain([ixfr.JournalEntry(*r) for r in rows], current.serial, z.serial)
            if path is not None or len(rows) < limit:
                break
        if path is None:
            return None
        origin_key = current.origin_key
        keys: set[bytes] = set()
        for entry in path:
            for rr in ixfr.split_rrs(entry.removed + entry.added):
                k = name_key(dns.name.from_wire(rr, 0)[0])
                keys.add(k)
                keys.update(ancestors(k, origin_key))
        stored = repo.nodes_at(s, z.id, keys)
        if len(stored) < len(keys) and repo.has_image(s, z.id):
            # Over an image, every owner an edit names has a row (``_sync_nodes``): one
            # without is in an image written since (an import), read whole.
            return None
        return _next_snapshot(z, current, {k: stored.get(k) for k in keys})


def zone_info(zone: Zone, soa: RRsetData | dict[str, Any] | None, record_count: int) -> dict[str, Any]:
    """A zone as the API shows it. ``soa``: its SOA RRset, or the fields already read
    (``stored_soa_fields``). ``record_count`` counts records (RRs, the SOA once), not
    RRsets: what the version served holds, as an AXFR would send it."""
    info: dict[str, Any] = {
        "name": zone.name,
        "kind": zone.kind,
        "serial": zone.serial,
        "serial_policy": zone.serial_policy,
        "state": zone.state,
        "outgoing_enabled": zone.outgoing_enabled,
        "notify_ns": zone.notify_ns,
        "notify_delay": zone.notify_delay,
        "ixfr_max_ratio": zone.ixfr_max_ratio,
        "journal_max_count": zone.journal_max_count,
        "journal_max_bytes": zone.journal_max_bytes,
        "journal_max_age": zone.journal_max_age,
        "catalog_consumer": bool(zone.catalog_consumer),
        "member_of": zone.member_of,
        "member_peer": zone.member_peer,
        "created_at": utc_text(zone.created_at),
        "updated_at": utc_text(zone.updated_at),
    }
    fields = soa if isinstance(soa, dict) else soa_fields(soa)
    if fields is not None:
        info["soa"] = fields
    info["record_count"] = record_count
    return info


def soa_fields(soa: RRsetData | None) -> dict[str, Any] | None:
    """A zone's SOA as the API shows it (``zone_info``'s ``soa``)."""
    if soa is None or not soa.records:
        return None
    rd: dns.rdtypes.ANY.SOA.SOA = soa.records[0].rdata  # type: ignore[assignment]
    return {
        "mname": rd.mname.to_text(),
        "rname": rd.rname.to_text(),
        "serial": rd.serial,
        "refresh": rd.refresh,
        "retry": rd.retry,
        "expire": rd.expire,
        "minimum": rd.minimum,
        "ttl": soa.ttl,
    }


def stored_soa_fields(ttl: int, records_json: str) -> dict[str, Any] | None:
    """``soa_fields`` of a stored SOA row, read from the text it holds (two names as
    dnspython writes them, which never hold a blank, then five integers) rather than by
    dnspython's parser: a page of the zone list spent a fifth of its time parsing SOAs.
    A text of another shape (none is written) goes through the parser."""
    records = json.loads(records_json)
    if not records:
        return None
    parts = records[0]["content"].split()
    if len(parts) == 7 and all(p.isdigit() for p in parts[2:]):
        mname, rname, serial, refresh, retry, expire, minimum = parts
        return {"mname": mname, "rname": rname, "serial": int(serial), "refresh": int(refresh),
                "retry": int(retry), "expire": int(expire), "minimum": int(minimum), "ttl": ttl}
    return soa_fields(RRsetData.from_row(".", _SOA, ttl, records_json))


def _journal_limits(z: Zone) -> dict[str, int | None]:
    """The zone's journal limits, with the defaults (1000 changes, 30 days, no byte cap)."""
    return {
        "max_count": z.journal_max_count or JOURNAL_MAX_COUNT,
        "max_bytes": z.journal_max_bytes,
        "max_age_seconds": z.journal_max_age or JOURNAL_MAX_AGE_SECONDS,
    }


def _next_snapshot(z: Zone, current: ZoneSnapshot | None,
                   node_changes: dict[bytes, Node | None]) -> ZoneSnapshot:
    """The version of zone row ``z`` after ``current`` with ``node_changes`` applied (None:
    the owner is gone): the node table with those owners replaced (rrwire.updated_nodes), the cuts kept
    right, the AXFR image re-rendered for those owners only. What the writing node
    publishes, and what another node sharing the database builds from the stored rows."""
    nodes = updated_nodes(current.nodes if current is not None else {}, node_changes)
    cuts = set(current.cuts) if current is not None else set()
    origin_key = name_key(dns.name.from_text(z.name))
    for k, v in node_changes.items():
        if v is not None and k != origin_key and find_blob(v, _T_NS) is not None:
            cuts.add(k)
        else:
            cuts.discard(k)
    snap = _snapshot(z, z.serial, nodes, frozenset(cuts))
    if current is not None and current.axfr is not None:
        snap.axfr = axfr.patch(current.axfr, nodes, origin_key, node_changes.keys())
    return snap


def _abs(name: str) -> str:
    return absolute(name)


def _state_key(state: tuple[int, list[Record]] | None) -> Any:
    if state is None or not state[1]:
        return None
    return (state[0], sorted((r.sort_key, r.disabled) for r in state[1]))


def _check_if_match(z: Zone, if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    tags = [t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")]
    if str(z.serial) not in tags:
        raise Stale(f"zone {z.name} is at serial {z.serial}, not {if_match}; re-read it and retry")


def _load(s: Any, z: Zone, names: Iterable[dns.name.Name]) -> ZoneContent:
    rows = repo.rrsets_at(s, z.id, [repo.row_name(n) for n in names])
    return ZoneContent(dns.name.from_text(z.name), (RRsetData.from_row(r.name, r.type, r.ttl, r.records) for r in rows))


def _apply_changes(content: ZoneContent, changes: list[RRsetChange]) -> None:
    for ch in changes:
        if ch.changetype == "DELETE" or not ch.records:
            content.delete(ch.name, ch.rdtype)
        else:
            existing = content.get(ch.name, ch.rdtype)
            ttl = ch.ttl if ch.ttl is not None else (existing.ttl if existing else 3600)
            content.put(RRsetData(ch.name, ch.rdtype, ttl, list(ch.records)))


def _rrset_rows(content: ZoneContent, *, c_loop: bool = True) -> list[tuple[str, int, int, str]]:
    """The ``rrsets`` rows of ``content``: (name, type, TTL, records as JSON). Made in C
    where that is built (~4x faster; ``c_loop=False``: here, as the tests compare them)."""
    if c_loop and _c_rrset_rows is not None:
        return _c_rrset_rows(content.by_owner(), repo.row_name, rdata_text, _json_str,  # type: ignore[no-any-return]
                             _A, _AAAA, _TARGET_ONLY, _TXT_RDATA, _MX_RDATA, _SRV_RDATA)
    return [(repo.row_name(r.name), r.rdtype, r.ttl, r.records_json()) for r in content if r.records]


def _rr_wire(owner: dns.name.Name, rdtype: int, ttl: int, records: Iterable[Record]) -> list[bytes]:
    head = owner.to_wire() + rdtype.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big")  # type: ignore[operator]
    out = []
    for r in records:
        if r.disabled:
            continue
        rd = r.rdata.to_wire()
        out.append(head + len(rd).to_bytes(2, "big") + rd)
    return out


def _sync_nodes(
    s: Any, zone_id: int, content: ZoneContent, owners: set[dns.name.Name], current: Mapping[bytes, Node]
) -> dict[bytes, Node | None]:
    """Write the served nodes of ``owners`` and keep empty non-terminals right: an owner
    left with nothing stays as an empty non-terminal while names remain below it, else it
    goes, with the empty non-terminals above it that nothing else holds up. ``current``
    is the stored table before this change; what lies below a name is counted there
    (``count_below``, one pass) and kept up to date as this change adds and removes
    owners. Where the zone's table is an image (``repo.has_image``), every owner named
    here and each of its ancestors gets a row, even unchanged, so that another node
    catching up from the journal finds each of them in the rows (``_from_journal``)."""
    origin_key = name_key(content.origin)
    changes: dict[bytes, Node | None] = {}

    def value(k: bytes) -> Node | None:
        return changes[k] if k in changes else current.get(k)

    wanted = {name_key(owner): content.node_for(owner) for owner in owners}
    emptied = [k for k, node in wanted.items() if not node and k != origin_key]
    asked = list({a: None for k in emptied for a in (k, *ancestors(k, origin_key))})
    below = dict(zip(asked, count_below(current, asked), strict=True)) if asked else {}

    def put(k: bytes, node: Node | None) -> None:
        was, now = value(k) is not None, node is not None
        if was != now:
            for anc in ancestors(k, origin_key):
                if anc in below:
                    below[anc] += 1 if now else -1
        changes[k] = node

    for k, node in wanted.items():
        if node:
            put(k, node)
            for anc in ancestors(k, origin_key):
                if value(anc) is not None:
                    break
                put(anc, b"")
    for k in emptied:
        if below[k]:
            put(k, b"")
            continue
        put(k, None)
        for anc in ancestors(k, origin_key):
            if value(anc) != b"" or below[anc]:
                break
            put(anc, None)
    over_image = repo.has_image(s, zone_id)
    for k, node in changes.items():
        if node is None:
            repo.delete_node(s, zone_id, k, over_image=over_image)
        else:
            repo.put_node(s, zone_id, k, node)
    if over_image:  # the ancestors left as they were (every owner named is in changes)
        for k in {a for k in wanted for a in ancestors(k, origin_key)} - changes.keys():
            node = current.get(k)
            if node is not None:  # one absent names no record a journal entry holds
                repo.put_node(s, zone_id, k, node)
    return changes


def _differing(origin: dns.name.Name, stored: list[tuple[str, int, int, str]], new: ZoneContent,
               rows: list[tuple[str, int, int, str]],
               ) -> tuple[ZoneContent, ZoneContent, int, int, set[tuple[str, int]]]:
    """What ``_diff`` needs to compare of a zone's stored version (its ``rrsets`` rows,
    ``stored``) and of ``new`` (with its rows, ``rows``, as ``_rrset_rows`` made them): the
    RRsets whose row is not the same on both sides (TTL or records' JSON, which the records'
    text and flags determine), and the apex SOA, as two contents; the stored version's record
    count; where the SOA's row is in ``rows`` (the caller writes it again once the new
    serial is set); and the keys (name, type) of the rows the same on both sides, which
    the caller need not write again. An RRset with the same row on both sides is the same
    RRset, so a re-import of a large zone reads back from text only what differs (a whole
    zone's rows read back took ~10x the import itself)."""
    soa = (repo.row_name(origin), _SOA)
    old_rows = {(name, rdtype): (ttl, records) for name, rdtype, ttl, records in stored}
    # Each record is one {"content":...} object; a quote inside a content is escaped.
    total = sum(records.count('{"content":') for _n, _t, _ttl, records in stored)
    same: set[tuple[str, int]] = set()
    new_part = ZoneContent(origin)
    soa_at = -1
    for i, (rrset, (name, rdtype, ttl, records)) in enumerate(
            zip((r for r in new if r.records), rows, strict=True)):
        key = (name, rdtype)
        if key == soa:
            soa_at = i
            new_part.put(rrset)
        elif old_rows.get(key) == (ttl, records):
            same.add(key)
        else:
            new_part.put(rrset)
    old_part = ZoneContent(origin, (RRsetData.from_row(name, rdtype, ttl, records)
                                    for (name, rdtype), (ttl, records) in old_rows.items()
                                    if (name, rdtype) not in same))
    return old_part, new_part, total, soa_at, same


def _diff(old: ZoneContent, new: ZoneContent) -> tuple[int, int, list[dict[str, Any]], dict[Any, Any]]:
    """Records added and removed (SOA serial ignored), a change list, and touched RRsets."""
    origin = old.origin
    added = removed = 0
    changes: list[dict[str, Any]] = []
    touched: dict[Any, Any] = {}
    keys = {(r.name, r.rdtype) for r in old} | {(r.name, r.rdtype) for r in new}
    for key in sorted(keys):
        o = old.get(*key)
        n = new.get(*key)
        if key == (origin, _SOA) and o is not None and n is not None:
            same = o.ttl == n.ttl and o.records[0].rdata.replace(serial=0) == n.records[0].rdata.replace(serial=0)
            if same:
                continue
        ostate = {(r.rdata, r.disabled) for r in o.records} if o else set()
        nstate = {(r.rdata, r.disabled) for r in n.records} if n else set()
        if o is not None and n is not None and o.ttl != n.ttl:
            gone, new_recs = ostate, nstate
        else:
            gone, new_recs = ostate - nstate, nstate - ostate
        if not gone and not new_recs:
            continue
        touched[key] = ((o.ttl, list(o.records)) if o else None, n)
        tname = dns.rdatatype.to_text(key[1])  # type: ignore[arg-type]
        for rd, _d in sorted(gone, key=lambda x: x[0].to_digestable()):
            removed += 1
            changes.append({"op": "remove", "name": key[0].to_text(), "type": tname, "ttl": o.ttl if o else None, "content": rd.to_text()})
        for rd, _d in sorted(new_recs, key=lambda x: x[0].to_digestable()):
            added += 1
            changes.append({"op": "add", "name": key[0].to_text(), "type": tname, "ttl": n.ttl if n else None, "content": rd.to_text()})
    return added, removed, changes, touched


def raise_parse_problems(parsed: ParseResult) -> None:
    # Content cut short by a limit is not checked: its findings would be about the cut.
    findings = check(parsed.content) if parsed.stopped_by is None else []
    reasons = [Reason(("line", p.line or 0), p.msg) for p in parsed.errors]
    for f in findings:
        if f.error:
            line = parsed.lines.get((f.name, f.rdtype)) if f.rdtype is not None else None
            reasons.append(Reason(("line", line or 0), f.msg))
    if reasons:
        reasons.sort(key=lambda r: r.loc[1] if isinstance(r.loc[1], int) else 0)
        # The parser kept the first problems and counted the rest.
        dropped = parsed.errors.dropped
        raise Invalid(f"the zone text has {len(reasons) + dropped} problem(s)", reasons,
                      more=dropped)
    parsed.warnings.extend(
        Problem(parsed.lines.get((f.name, f.rdtype)) if f.rdtype is not None else None, f.msg)
        for f in findings
        if not f.error
    )


def _raise_findings(findings: list[Finding], loc: Callable[[Finding], tuple[Any, ...]]) -> None:
    errors = [Reason(loc(f), f.msg) for f in findings if f.error]
    if errors:
        raise Invalid(f"{len(errors)} problem(s) in the change", errors)


# -- secondary zones: content read from the served form ----------------------------------------
def _rrset_of(owner: dns.name.Name, blob: bytes) -> RRsetData:
    return RRsetData(owner, blob_type(blob), blob_ttl(blob),
                     [Record(rd) for rd in blob_to_rdatas(blob)])


def content_of_nodes(origin: dns.name.Name, nodes: dict[bytes, Node]) -> ZoneContent:
    """A zone's content from served nodes (a transfer's result), to create a zone from."""
    return ZoneContent(origin, _rrsets_of_nodes(nodes))


def _rrsets_of_nodes(nodes: dict[bytes, Node]) -> Iterable[RRsetData]:
    for key, node in nodes.items():
        if node:
            owner = key_to_name(key)
            for blob in node_blobs(node):
                yield _rrset_of(owner, blob)


def _node_page(snap: ZoneSnapshot | None, *, owner: dns.name.Name | None, rdtype: int | None,
               limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a secondary zone's RRsets (from the version served) in DNSSEC name order,
    then type. The cursor is the last item's sort key and type, in hex."""
    after = paging.node_after(cursor)
    if snap is None or snap.state is ZoneState.UNLOADED:
        return [], None
    if owner is not None:
        key = name_key(owner)
        keys = [(sort_key(key), key)] if key in snap.nodes else []
        start = 0
    else:
        keys = snap.sorted_keys()
        start = bisect.bisect_left(keys, (after[0], b"")) if after else 0
    items: list[dict[str, Any]] = []
    last: tuple[bytes, int] | None = None
    for sk, key in itertools.islice(keys, start, None):
        for blob in node_blobs(snap.nodes[key]):
            t = blob_type(blob)
            if (rdtype is not None and t != rdtype) or (after is not None and (sk, t) <= after):
                continue
            if len(items) == limit:
                assert last is not None
                return items, f"{last[0].hex()}.{last[1]:x}"
            items.append(_rrset_of(key_to_name(key), blob).as_dict())
            last = (sk, t)
    return items, None
