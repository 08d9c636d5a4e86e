"""What the API layer is handed by the composition root (no web framework imports here,
so DNS can start before FastAPI is even imported)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zonekeeper.events.notify import Notifier
from zonekeeper.events.secondary import SecondaryManager
from zonekeeper.services.access import AccessService
from zonekeeper.services.peers import PeerService
from zonekeeper.services.status import StatusService
from zonekeeper.services.tokens import TokenService
from zonekeeper.services.users import UserService
from zonekeeper.services.zones import ZoneService
from zonekeeper.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    zones: ZoneService
    tokens: TokenService
    access: AccessService
    peers: PeerService
    status: StatusService
    notifier: Notifier
    secondaries: SecondaryManager
    users: UserService
    state: dict[str, Any] = field(default_factory=dict)
