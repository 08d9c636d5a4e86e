"""A primary zone's node table as stored: an image (``zone_images``, written by create and
import) with the owners edited since as ``nodes`` rows over it, GONE where one was deleted;
or, for a zone stored before images, a row per owner. For random edit sequences over names
at several depths (owners emptied under which names remain, empty non-terminals made and
dropped), in both forms: the served table is what compiling the zone's records gives, a
fresh start reads the same table back, another node catching up from the journal
(``_from_journal``) builds the same table or, only where it cannot, reads it whole; and
the ``rrsets`` rows after a re-import (which writes only the rows that differ) are those
of the zone's records."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import dns.name
import dns.rdata
from hypothesis import given, settings
from hypothesis import strategies as st

from zonekeeper.proto.rrwire import GONE, count_below, name_key
from zonekeeper.services.zone_store import _rrset_rows
from zonekeeper.services.zones import RRsetChange, ZoneService, ZoneSpec
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import ZoneImage
from zonekeeper.zones.model import Record
from zonekeeper.zones.snapshot import Registry, compile_content
from zonekeeper.zones.zonefile import parse_zone_text

ORIGIN = dns.name.from_text("ent.test.")
HEAD = "$ORIGIN ent.test.\n$TTL 300\n@ SOA ns1 host 1 3600 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n"
NAMES = ["c", "b.c", "a.b.c", "d.a.b.c", "x.b.c", "y.x.b.c", "e"]


def expected(records: dict[str, int]) -> dict[bytes, object]:
    """The table compiling the zone's records gives (empty non-terminals included)."""
    text = HEAD + "".join(f"{n} A 192.0.2.{v}\n" for n, v in records.items())
    nodes, _cuts = compile_content(parse_zone_text(text, ORIGIN).content)
    nodes.pop(name_key(ORIGIN))  # the SOA's serial differs; the apex is compared apart
    return nodes


def served(service: ZoneService) -> dict[bytes, object]:
    snap = service.registry.get(ORIGIN)
    assert snap is not None
    out = dict(snap.nodes.items())
    out.pop(name_key(ORIGIN))
    return out


def to_rows(db: Database, service: ZoneService) -> None:
    """The zone as a database from before images holds it: every owner a row, no image."""
    snap = service.registry.get(ORIGIN)
    assert snap is not None
    with db.write() as s:
        s.query(ZoneImage).filter(ZoneImage.zone_id == snap.zone_id).delete()
        for k, node in snap.nodes.items():
            repo.put_node(s, snap.zone_id, k, node)


batch = st.lists(st.tuples(st.sampled_from(NAMES), st.one_of(st.none(), st.integers(2, 9))),
                 min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(NAMES), unique=True), st.lists(batch, min_size=1, max_size=6),
       st.booleans(), st.integers(-1, 5))
def test_edits_over_an_image_or_rows_serve_store_and_catch_up_alike(
        start: list[str], batches: list[list[tuple[str, int | None]]], rows_only: bool,
        import_at: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'z.db'}")
        db.prepare(migrate=True)
        service = ZoneService(db, Registry())
        records = {n: 1 for n in start}

        async def run() -> None:
            await service.create(ZoneSpec(name=ORIGIN, zone_text=HEAD + "".join(
                f"{n} A 192.0.2.1\n" for n in start)))
            if rows_only:
                to_rows(db, service)
            for i, edits in enumerate(batches):
                before = service.registry.get(ORIGIN)
                assert before is not None
                if i == import_at:  # a new text: an image written again, its rows gone
                    for n, v in edits:
                        if v is None:
                            records.pop(n, None)
                        else:
                            records[n] = v
                    records["i"] = 9  # a change whatever was there
                    text = HEAD + "".join(f"{n} A 192.0.2.{v}\n" for n, v in records.items())
                    await service.import_text(ORIGIN, text, dry_run=False, force=True)
                else:
                    changes = {}
                    for n, v in edits:
                        owner = dns.name.from_text(n, ORIGIN)
                        if v is None:
                            records.pop(n, None)
                            changes[n] = RRsetChange(owner, 1, "DELETE")
                        else:
                            records[n] = v
                            changes[n] = RRsetChange(owner, 1, "REPLACE", 300, [
                                Record(dns.rdata.from_text("IN", "A", f"192.0.2.{v}"))])
                    await service.patch_rrsets(ORIGIN, list(changes.values()))
                now = served(service)
                assert now == expected(records)
                with db.read() as s:
                    z = repo.zone_by_name(s, ORIGIN.to_text())
                    assert z is not None
                    imaged = repo.has_image(s, z.id)
                    # (an import of a few changes writes them as an edit does: rows stay rows)
                    assert imaged or rows_only
                    if not imaged:  # rows alone: no GONE row, an owner deleted is a row deleted
                        assert all(d != GONE for _sk, d in repo.node_rows(s, z.id))
                    caught_up = service._from_journal(s, z, before)
                    # The rows as writing them all would leave them (an import writes only
                    # those that differ); the SOA's apart, its serial is the zone's.
                    rows = sorted(r for r in repo.rrset_rows(s, z.id) if r[1] != 6)
                    assert rows == sorted(r for r in _rrset_rows(parse_zone_text(
                        HEAD + "".join(f"{n} A 192.0.2.{v}\n" for n, v in records.items()),
                        ORIGIN).content) if r[1] != 6)
                    assert [r[1] for r in repo.rrset_rows(s, z.id)].count(6) == 1
                if caught_up is None:  # only across an import that wrote a new image
                    assert i == import_at and imaged
                else:
                    got = dict(caught_up.nodes.items())
                    got.pop(name_key(ORIGIN))
                    assert got == now
            # A fresh start reads the same table back.
            again = ZoneService(db, Registry())
            again.load_all()
            snap = again.registry.get(ORIGIN)
            assert snap is not None and snap.serial == service.registry.get(ORIGIN).serial  # type: ignore[union-attr]
            assert dict(snap.nodes.items()) == dict(service.registry.get(ORIGIN).nodes.items())  # type: ignore[union-attr]

        try:
            asyncio.run(run())
        finally:
            db.dispose()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(NAMES), unique=True), st.lists(st.sampled_from([*NAMES, "z", "q.e"])))
def test_count_below_in_c_is_the_python_count(present: list[str], asked: list[str]) -> None:
    """What lies below each name asked, counted in the C table and in a dict alike (names
    that only end alike, ``b.c`` and ``xb.c``, are not below one another)."""
    from zonekeeper.proto.rrwire import NodeMap, freeze_nodes

    table = {name_key(dns.name.from_text(n, ORIGIN)): b"" for n in [*present, "xb.c"]}
    keys = [name_key(dns.name.from_text(n, ORIGIN)) for n in asked]
    want = [sum(1 for k in table if len(k) > len(q) and dns.name.from_wire(k, 0)[0].is_subdomain(
        dns.name.from_wire(q, 0)[0])) for q in keys]
    assert count_below(table, keys) == want
    assert NodeMap is not None, "the C extension is not built: pip install -e ."
    assert count_below(freeze_nodes(table), keys) == want
