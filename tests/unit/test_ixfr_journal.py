"""IXFR from the journal is exactly equivalent to AXFR: for random edit sequences (across the
2^32 serial wrap) and every serial s still in the journal, IXFR(s) applied to the zone as it
was at s gives the zone now."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from zonekeeper.proto import ixfr
from zonekeeper.services.zones import RRsetChange, ZoneService, ZoneSpec
from zonekeeper.storage.db import Database
from zonekeeper.zones.model import Record
from zonekeeper.zones.snapshot import Registry

ORIGIN = dns.name.from_text("ixfr.test.")
START = 2**32 - 3  # three edits in, the serial wraps through 0


def zone_text(serial: int) -> str:
    return (f"$ORIGIN ixfr.test.\n$TTL 300\n@ SOA ns1 host {serial} 3600 900 1209600 300\n"
            "@ NS ns1\nns1 A 192.0.2.1\nkeep TXT \"stays\"\n")


def rr_set(service: ZoneService, zone_id: int) -> set[bytes]:
    """The zone's current records, in the journal's wire form (owner in full)."""
    from zonekeeper.services.zones import _rr_wire
    from zonekeeper.storage import repo
    from zonekeeper.zones.model import RRsetData

    with service.db.read() as s:
        out: set[bytes] = set()
        for row in repo.iter_rrsets(s, zone_id):
            r = RRsetData.from_row(row.name, row.type, row.ttl, row.records)
            out.update(_rr_wire(r.name, r.rdtype, r.ttl, r.records))
        return out


def apply(state: set[bytes], diff: ixfr.Diff) -> set[bytes]:
    soa = {rr for rr in state if ixfr.rr_type(rr) == 6}
    assert soa == {diff.old_soa}
    return (state - set(diff.removed) - {diff.old_soa}) | set(diff.added) | {diff.new_soa}


names = st.sampled_from(["a", "b", "c.d", "keep", "w.x.y", "*.wild"])
edit = st.tuples(
    names,
    st.sampled_from(["A", "AAAA", "TXT"]),
    st.one_of(st.none(), st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True)),
    st.sampled_from([60, 300]),
)


def content(rdtype: str, n: int) -> str:
    return {"A": f"192.0.2.{n}", "AAAA": f"2001:db8::{n}", "TXT": f'"t{n}"'}[rdtype]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(edit, min_size=1, max_size=4), min_size=1, max_size=7))
def test_ixfr_from_every_journaled_serial_reaches_now(batches: list[list[tuple]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'z.db'}")
        db.prepare(migrate=False)
        service = ZoneService(db, Registry())

        async def run() -> tuple[dict[int, set[bytes]], int, list[tuple[int, int, bytes, bytes]]]:
            await service.create(ZoneSpec(name=ORIGIN, zone_text=zone_text(START)))
            zone_id = service.registry.get(ORIGIN).zone_id  # type: ignore[union-attr]
            states = {START: rr_set(service, zone_id)}
            for batch in batches:
                changes = []
                for name, rdtype, values, ttl in batch:
                    owner = dns.name.from_text(name, ORIGIN)
                    t = int(dns.rdatatype.from_text(rdtype))
                    if values is None:
                        changes.append(RRsetChange(owner, t, "DELETE"))
                    else:
                        recs = [Record(dns.rdata.from_text("IN", rdtype, content(rdtype, v))) for v in values]
                        changes.append(RRsetChange(owner, t, "REPLACE", ttl, recs))
                # Later changes to the same RRset in one batch win, as in one PATCH.
                last = {(c.name, c.rdtype): c for c in changes}
                serial = await service.patch_rrsets(ORIGIN, list(last.values()))
                states[serial] = rr_set(service, zone_id)
            return states, serial, service.journal_sync(zone_id)

        try:
            states, now, journal = asyncio.run(run())
        finally:
            db.dispose()
        entries = [ixfr.JournalEntry(*row) for row in journal]
        final = states[now]
        for s in states:
            if s == now:
                continue
            steps = ixfr.chain(entries, s, now)
            assert steps is not None, f"serial {s} should be in the journal"
            assert apply(states[s], ixfr.condense(steps)) == final
        assert ixfr.chain(entries, 12345, now) is None  # never served: AXFR-style
