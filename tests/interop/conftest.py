"""Setup the interop modules share: a zonekeeper primary without the demo zone and an API
client on it, one per module (``zk``, ``api``). BIND, Knot and NSD secondaries come from
``tests.peers.running_secondaries``, each module giving the addresses its access rules
tell them apart by."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import ZkServer


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    srv = ZkServer(tmp_path_factory.mktemp("zk"), demo=False).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(zk: ZkServer) -> Iterator[httpx2.Client]:
    with zk.client() as c:
        yield c
