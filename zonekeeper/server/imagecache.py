"""AXFR images kept on disk across a restart, so that the first transfer after a start is
as fast as any other.

A zone version's AXFR image (``proto/axfr.py``) is built once, in a worker thread, and then
patched per edit; a build takes about 2 s at a million records. At a clean stop, each served
version's image is written to a file of its own in the cache directory, and what it was
made from goes in the file's header: the zone's name and id, its serial, its ``change_id``
(bumped in storage by every stored change), its number of owners, and a tag of the code
that renders images. At the next start, once the zones are loaded and before DNS listens, a
zone whose loaded version has the same header gets its image back from the file (about a
tenth of a build's time); any other file is ignored, and removed at the next stop.

A version whose ``change_id`` is not known (a transfer received but not stored yet) is not
written. The owner names of each bucket (only an edit's patch reads them) are kept packed,
one bytes object per bucket, and unpacked by the first edit that touches the bucket
(``proto/axfr.py``): reading an image back makes no object per owner. The file is mapped,
not read into a buffer, so a start leaves no large freed block behind.

Only zones of at least ``MIN_NODES`` names are kept: a smaller zone's image is built in a
few milliseconds, less than opening its file would cost at a start with thousands of
zones.

The node table of each such version goes beside its image (``zone-ID.nodes``: the owners'
wire forms, their pre-rendered RRsets and the zone cuts, marshalled), and those of the
smaller zones together in one file (``SMALL_NODES``, each table with its own header).
Each table is checked against the zone's row as stored (name, id, serial, ``change_id``):
the start reads it instead of the zone's rows (``zones.stored.read_served``), a fifth of
the time at 100,000 names (one ``marshal.loads`` against a Python object per row, and no
search for the cuts).
The image cache is trusted as far as ``change_id`` is: every stored change bumps it, and a
zone's id is never given again. The node tables are trusted only for the database they
were written from, and only after a clean stop: a clean stop writes the database's stamp
(``Database.stamp``: random, made with the database) to the file ``stamp`` after the
tables, and the next start reads the tables only if that file names the database it
opened, then removes the file. So a database replaced by another (whose zones may carry
the same names, ids, serials and change counts) or a process killed after changes that
were then overwritten by a restored copy never gets tables that are not its own.

Files hold zone data: the directory is made private (0700) and the files 0600.
"""

from __future__ import annotations

import hashlib
import marshal
import mmap
import os
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from zonekeeper import __version__
from zonekeeper.logs import get_logger
from zonekeeper.proto import axfr, rrwire
from zonekeeper.zones.snapshot import ZoneSnapshot, ZoneState

log = get_logger("zonekeeper.xfr")

FORMAT = 1
SUFFIX = ".axfr"
NODES_SUFFIX = ".nodes"
SMALL_NODES = "small-zones.nodes"  # the node tables of the zones under MIN_NODES, together
STAMP = "stamp"  # the database stamp the node tables were written for (at a clean stop)
# The file: MAGIC, the header's length (4 bytes), the header, the body's CRC-32 (4 bytes),
# the body (marshal dumps: the header's and the body's).
MAGIC = b"ZKAX"
MIN_NODES = 1000  # smaller zones: built at the start (a few ms each), not kept in files


def _code_tag() -> str:
    """Changes whenever the code that renders images does (or the format of this file)."""
    h = hashlib.sha256(f"{FORMAT}/{marshal.version}/{__version__}".encode())
    for path in (axfr.__file__, rrwire.__file__, __file__):
        h.update(Path(path or "").read_bytes())
    return h.hexdigest()[:32]


def _header(snap: ZoneSnapshot, tag: str) -> tuple[object, ...]:
    return (FORMAT, tag, snap.name.to_text(), snap.zone_id, snap.serial, snap.change_id,
            rrwire.owner_count(snap.nodes))


def _nodes_name(zone_id: int) -> str:
    return f"zone-{zone_id}{NODES_SUFFIX}"


def _nodes_header(name: str, zone_id: int, serial: int, change_id: int,
                  tag: str) -> tuple[object, ...]:
    return (FORMAT, tag, name, zone_id, serial, change_id)


def _kept(snap: ZoneSnapshot) -> bool:
    """A version whose node table is kept: stored (its change_id known), served."""
    return (snap.change_id is not None and not snap.retired
            and snap.state is not ZoneState.UNLOADED and bool(snap.nodes))


def _table(snap: ZoneSnapshot) -> tuple[list[bytes] | bytes, list[rrwire.Node] | None, list[bytes]]:
    """(keys, nodes, cuts); a NodeMap's table as its bytes (``NodeMap.to_bytes``) and None."""
    nodes = snap.nodes
    if rrwire.NodeMap is not None and type(nodes) is rrwire.NodeMap:
        return nodes.to_bytes(), None, sorted(snap.cuts)  # type: ignore[attr-defined]
    return list(nodes), list(nodes.values()), sorted(snap.cuts)


def _read_table(keys: Any, values: Any) -> Mapping[bytes, rrwire.Node]:
    """The node table of ``_table``'s first two; ValueError or TypeError if it is not one."""
    if type(keys) is bytes and values is None and rrwire.NodeMap is not None:
        return rrwire.NodeMap.from_bytes(keys)  # type: ignore[no-any-return]
    if type(keys) is not list or type(values) is not list or len(keys) != len(values):
        raise ValueError("not a node table")
    return dict(zip(keys, values))


class ImageCache:
    """Images of the served versions in ``directory`` (one file per zone id)."""

    def __init__(self, directory: str | Path,
                 stamp_of: Callable[[Any], bytes | None] | None = None) -> None:
        """``stamp_of``: the stamp of the database a cursor reads (none: the node tables
        and images are never read back)."""
        self.directory = Path(directory)
        self.stamp_of = stamp_of
        self._tag: str | None = None
        # Files known whole, by name: read back at the start or written since, with their
        # header. Only those are left as they are at a stop.
        self._good: dict[str, object] = {}
        self._listing: frozenset[str] | None = None  # the directory's files, read once
        self._small: dict[int, Any] | None = None  # SMALL_NODES as read, until restore
        self._trusted: bool | None = None  # whether the tables are this database's (read once)
        self.nodes_read = self.nodes_stale = 0

    @property
    def tag(self) -> str:
        if self._tag is None:
            self._tag = _code_tag()
        return self._tag

    def _path(self, zone_id: int) -> Path:
        return self.directory / f"zone-{zone_id}{SUFFIX}"

    # -- at a stop ---------------------------------------------------------------------------
    def save(self, snaps: Iterable[ZoneSnapshot], stamp: bytes | None) -> dict[str, int]:
        """Write the image and the node table of every served version that is kept (a file
        that holds it already is left as it is); remove every other file; then write
        ``stamp`` (the database's; None: the tables will not be trusted). Errors are
        logged: the cache is an optimisation, never a reason for a stop to fail."""
        started = time.monotonic()
        counts = {"written": 0, "kept": 0, "removed": 0, "nodes_written": 0, "nodes_kept": 0}
        keep: set[str] = set()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Until the new stamp is written last, nothing here is trusted.
            (self.directory / STAMP).unlink(missing_ok=True)
            self._small = None
            small: dict[int, tuple[object, ...]] = {}
            small_snaps = []
            # (file, its header, what says it is up to date, its body, which count)
            files: list[tuple[Path, tuple[object, ...], object, Callable[[], bytes], str]] = []
            for snap in snaps:
                if not _kept(snap):
                    continue
                assert snap.change_id is not None
                nodes_header = _nodes_header(snap.name.to_text(), snap.zone_id, snap.serial,
                                             snap.change_id, self.tag)
                if len(snap.nodes) < MIN_NODES:
                    small[snap.zone_id] = nodes_header
                    small_snaps.append(snap)
                    continue
                files.append((self._nodes_path(snap.zone_id), nodes_header, nodes_header,
                              partial(_nodes_body, snap), "nodes_"))
                image = snap.built_image()
                if image is not None:
                    header = _header(snap, self.tag)
                    files.append((self._path(snap.zone_id), header, header,
                                  partial(_image_body, image), ""))
            if small:
                files.append((self.directory / SMALL_NODES, self._small_header(),
                              _small_signature(small.values()),
                              partial(_small_body, small, small_snaps), "nodes_"))
            for path, header, good, body, what in files:
                keep.add(path.name)
                if self._good.get(path.name) == good and path.exists():
                    counts[what + "kept"] += 1
                    continue
                self._write(path, header, body())
                self._good[path.name] = good
                counts[what + "written"] += 1
            for suffix in (SUFFIX, NODES_SUFFIX):
                for old in self.directory.glob(f"*{suffix}*"):
                    if old.name not in keep:
                        old.unlink(missing_ok=True)
                        counts["removed"] += 1
            if stamp is not None:
                tmp = self.directory / f"{STAMP}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(stamp)
                os.replace(tmp, self.directory / STAMP)
        except (OSError, ValueError, TypeError) as exc:  # never a reason for a stop to fail
            log.warning("xfr.images_not_saved", directory=str(self.directory), error=str(exc))
            return {**counts, "removed": 0}
        log.info("xfr.images_saved", directory=str(self.directory), **counts,
                 seconds=round(time.monotonic() - started, 3))
        return counts

    def _nodes_path(self, zone_id: int) -> Path:
        return self.directory / _nodes_name(zone_id)

    @staticmethod
    def _write(path: Path, header: tuple[object, ...], rest: bytes) -> None:
        head = marshal.dumps(header)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + len(head).to_bytes(4, "big") + head)
                f.write(zlib.crc32(rest).to_bytes(4, "big"))
                f.write(rest)
            os.replace(tmp, path)  # a reader sees the old file or the whole new one
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _read_header(f: BinaryIO) -> object:
        """The header of the file ``f`` is open on, or None."""
        start = f.read(8)
        if len(start) != 8 or start[:4] != MAGIC:
            return None
        try:
            return marshal.loads(f.read(int.from_bytes(start[4:], "big")))
        except (EOFError, ValueError, TypeError):
            return None

    # -- at a start --------------------------------------------------------------------------
    def restore(self, snaps: Iterable[ZoneSnapshot]) -> int:
        """Give each loaded version without an image the one stored for exactly it; returns
        how many were restored. A file that does not match, or cannot be read, is skipped;
        none is read unless the node tables were found to be this database's (``_trust``,
        when the zones were read)."""
        self._small = None  # the small zones' tables not taken: done with
        if not self._trusted or not self.directory.is_dir():
            return 0  # written for another database, or not at a clean stop
        started = time.monotonic()
        restored = skipped = 0
        for snap in snaps:
            if (snap.axfr is not None or snap.change_id is None
                    or snap.state is ZoneState.UNLOADED or len(snap.nodes) < MIN_NODES):
                continue
            path = self._path(snap.zone_id)
            if not path.exists():
                continue
            header = _header(snap, self.tag)
            image = self._read(path, snap, header)
            if image is None:
                skipped += 1
                continue
            snap.axfr = image
            self._good[path.name] = header
            restored += 1
        if restored or skipped:
            log.info("xfr.images_restored", directory=str(self.directory), restored=restored,
                     stale=skipped, seconds=round(time.monotonic() - started, 3))
        return restored

    def _read(self, path: Path, snap: ZoneSnapshot,
              header: tuple[object, ...]) -> axfr.AxfrImage | None:
        body = self._load(path, header, "xfr.image_unreadable")
        if body is None:
            return None
        try:
            soa, buckets, owners, firsts, records, size, base, bucket_owners = body
            return axfr.AxfrImage(
                soa, tuple(axfr.Bucket(tuple(map(tuple, chunks)), count, size_)
                           for chunks, count, size_ in buckets),
                tuple(owners), tuple(firsts), records, size, base, bucket_owners)
        except (ValueError, TypeError) as exc:
            log.warning("xfr.image_unreadable", file=str(path), error=repr(exc)[:200])
            return None

    def saved_nodes(self, cur: Any, z: Any) -> tuple[Mapping[bytes, rrwire.Node],
                                                     frozenset[bytes]] | None:
        """The node table and cuts saved for zone row ``z`` (``zones`` columns as
        attributes) as it is stored now, or None: no file, the file of another version
        (``nodes_stale`` counts those), or one that cannot be read. ``cur``: a cursor on
        the database the row was read from (its stamp, read once)."""
        if self._listing is None:
            try:
                self._listing = frozenset(os.listdir(self.directory))
            except OSError:
                self._listing = frozenset()
        if self._trusted is None:
            self._trusted = self._trust(cur)
        if not self._trusted:
            return None
        name = _nodes_name(z.id)  # (a Path only for a file there: 1,000s of zones)
        header = _nodes_header(z.name, z.id, z.serial, z.change_id, self.tag)
        path = self.directory / name if name in self._listing else None
        if path is not None:
            body = self._load(path, header, "zones.nodes_file_unreadable")
        else:
            small = self._small_tables().pop(z.id, None)
            if small is None:
                return None
            body = small[1:] if small[0] == header else None
        if body is None:
            self.nodes_stale += 1
            return None
        try:
            keys, values, cuts = body
            if type(cuts) is not list:
                raise ValueError("not a node table")
            nodes = _read_table(keys, values)
        except (ValueError, TypeError) as exc:
            log.warning("zones.nodes_file_unreadable",
                        file=str(path or self.directory / SMALL_NODES), error=repr(exc)[:200])
            self.nodes_stale += 1
            return None
        if path is not None:
            self._good[name] = header
        self.nodes_read += 1
        return nodes, frozenset(cuts)

    def _trust(self, cur: Any) -> bool:
        """Whether the tables were written at a clean stop for the database ``cur`` reads;
        the stamp file is removed either way (a start that ends without a clean stop leaves
        none behind)."""
        if STAMP not in self._listing:  # type: ignore[operator]
            return False
        path = self.directory / STAMP
        try:
            kept = path.read_bytes()
            path.unlink()
        except OSError:
            return False
        if self.stamp_of is None or self.stamp_of(cur) != kept:
            log.info("zones.node_tables_not_used", directory=str(self.directory),
                     reason="written for another database")
            return False
        return True

    def _small_header(self) -> tuple[object, ...]:
        return (FORMAT, self.tag, SMALL_NODES)

    def _small_tables(self) -> dict[int, Any]:
        """SMALL_NODES as read (once; each table taken is dropped from it): zone id ->
        (its header, owners, nodes, cuts)."""
        if self._small is None:
            self._small = {}
            if self._listing is not None and SMALL_NODES in self._listing:
                path = self.directory / SMALL_NODES
                body = self._load(path, self._small_header(), "zones.nodes_file_unreadable")
                if type(body) is dict and all(type(v) is tuple and len(v) == 4
                                              for v in body.values()):
                    self._small = body
                    self._good[SMALL_NODES] = _small_signature(v[0] for v in body.values())
                elif body is not None:
                    log.warning("zones.nodes_file_unreadable", file=str(path),
                                error="not a table of zones")
        return self._small

    def _load(self, path: Path, header: tuple[object, ...], unreadable: str) -> Any:
        """What file ``path`` holds if its header is ``header`` and its body is whole, else
        None (logged as ``unreadable`` when it cannot be read)."""
        try:
            with open(path, "rb") as f:
                if self._read_header(f) != header:
                    return None
                crc = int.from_bytes(f.read(4), "big")
                start = f.tell()
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    body = memoryview(mapped)[start:]
                    try:
                        if zlib.crc32(body) != crc:
                            raise ValueError("CRC mismatch: the file is damaged")
                        return marshal.loads(body)
                    finally:
                        body.release()
        except (OSError, EOFError, ValueError, TypeError) as exc:
            log.warning(unreadable, file=str(path), error=repr(exc)[:200])
            return None


def _image_body(image: axfr.AxfrImage) -> bytes:
    owners = tuple(g if isinstance(g, bytes) else axfr.pack_owners(g) for g in image.owners)
    return marshal.dumps((image.soa, tuple((b.chunks, b.count, b.size) for b in image.buckets),
                          owners, image.firsts, image.records, image.size, image.base,
                          image.bucket_owners))


def _nodes_body(snap: ZoneSnapshot) -> bytes:
    return marshal.dumps(_table(snap), 4)


def _small_signature(headers: Iterable[tuple[object, ...]]) -> frozenset[tuple[object, ...]]:
    """What SMALL_NODES holds: the headers of its zones' versions."""
    return frozenset(headers)


def _small_body(headers: dict[int, tuple[object, ...]], snaps: list[ZoneSnapshot]) -> bytes:
    return marshal.dumps({s.zone_id: (headers[s.zone_id], *_table(s)) for s in snaps}, 4)
