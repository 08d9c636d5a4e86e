"""Zone operations as units of work: validate everything, write data, nodes and journal
in one transaction, then publish the new snapshot.

Every write runs in a worker thread under the zone's asyncio lock; the publish
happens on the event loop after the commit, so DNS serves the new serial before
the API call returns. A failure before the commit leaves no trace.

``ZoneService`` is assembled from one module per concept:

- ``zone_inputs``: names, types and records parsed from user input (the one place), and
  the values edits are made of (``ZoneSpec``, ``RRsetChange``, ``ZoneUpdate``...);
- ``zone_store``: loading from storage, locks, publishing, row ↔ snapshot helpers;
- ``zone_listing``: listing and reading zones and RRsets;
- ``zone_edits``: create, delete, RRset edits (API and DNS UPDATE), settings;
- ``zone_text``: import and export of zone text;
- ``zone_secondary``: secondary zones, transfers in installed, promote and demote;
- ``zone_catalog``: catalog zones (RFC 9432): members linked, unlinked, listed.
"""

from __future__ import annotations

from zonekeeper.proto.serial import SerialPolicy
from zonekeeper.services.zone_catalog import CatalogZones
from zonekeeper.services.zone_inputs import (
    ImportResult,
    RRsetChange,
    SoaFields,
    ZoneSpec,
    ZoneUpdate,
    make_change,
    owner_name,
    parse_records,
    parse_type,
    parse_zone_name,
)
from zonekeeper.services.zone_listing import ZoneListing
from zonekeeper.services.zone_secondary import SecondaryZones
from zonekeeper.services.zone_store import (
    _rr_wire,
    content_of_nodes,
    raise_parse_problems,
    zone_info,
)
from zonekeeper.services.zone_text import ZoneText

__all__ = [
    "ImportResult", "RRsetChange", "SerialPolicy", "SoaFields", "ZoneService", "ZoneSpec",
    "ZoneUpdate", "_rr_wire", "content_of_nodes", "make_change", "owner_name",
    "parse_records", "parse_type", "parse_zone_name", "raise_parse_problems", "zone_info",
]


class ZoneService(CatalogZones, ZoneText, SecondaryZones, ZoneListing):
    """Every zone operation: see the modules above, one per concept."""
