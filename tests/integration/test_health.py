"""/healthz and /readyz on a real server: ready only while the database answers."""

from __future__ import annotations

import httpx2

from tests.conftest import PgServer, ZkServer, wait_for


def test_healthz_and_readyz(zk: ZkServer) -> None:
    assert httpx2.get(zk.api_url + "/healthz").json() == {"status": "ok"}
    r = httpx2.get(zk.api_url + "/readyz")
    assert r.status_code == 200 and r.json()["reasons"] == [], r.text


def test_readyz_503_while_the_database_is_down(zk_factory: type) -> None:
    pg = PgServer().start()
    try:
        srv: ZkServer = zk_factory(database=pg.create_database()).start()
        assert httpx2.get(srv.api_url + "/readyz").status_code == 200
        pg_ctl = str(pg.bindir / "pg_ctl")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={pg.port} "
                f"-c unix_socket_directories={pg.sockdir} -c fsync=off")
        pg._run(pg_ctl, "-D", str(pg.data), "-m", "immediate", "-w", "stop")
        r = httpx2.get(srv.api_url + "/readyz", timeout=10)
        assert r.status_code == 503, r.text
        assert r.json()["reasons"][0].startswith("database unreachable"), r.text
        # Alive all the same, and DNS still answers from memory.
        assert httpx2.get(srv.api_url + "/healthz").status_code == 200
        assert srv.serial("example.test.") >= 1
        metrics = httpx2.get(srv.api_url + "/metrics").text
        assert "zonekeeper_ready 0.0" in metrics

        pg._run(pg_ctl, "-D", str(pg.data), "-l", str(pg.log_path), "-o", opts, "-w", "start")
        wait_for(lambda: httpx2.get(srv.api_url + "/readyz", timeout=10).status_code == 200,
                 timeout=20, what="/readyz 200 once PostgreSQL is back")
        srv.stop()
    finally:
        pg.stop()
