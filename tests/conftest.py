"""Shared fixtures: real zonekeeper server processes on loopback, and tool checks."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.query
import dns.rdatatype
import httpx2
import pytest

T = TypeVar("T")

TOKEN = "zk_testadmin_" + "s3cr3t-for-tests-only-0123456789abcdef"


def require_tool(cmd: str, package: str) -> str:
    """The path of ``cmd``; fails (never skips) naming the Debian package to install."""
    path = shutil.which(cmd) or (f"/usr/sbin/{cmd}" if os.path.exists(f"/usr/sbin/{cmd}") else None)
    if path is None:
        pytest.fail(f"{cmd} is not installed: apt-get install -y {package} (scripts/setup.sh --test does it)")
    return path


def wait_for(pred: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """``pred()``'s first true value, asked every 20 ms; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout}s")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class PgServer:
    """A real PostgreSQL server of our own (initdb, pg_ctl) on loopback: trust auth, a free
    port, its unix socket and data in a temporary directory. initdb and postgres refuse to
    run as root, so as root they run as the ``postgres`` user (which the Debian package
    creates)."""

    def __init__(self) -> None:
        found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
        if not found:
            pytest.fail("the PostgreSQL server is not installed: apt-get install -y postgresql "
                        "(scripts/setup.sh --test does it)")
        newest = max(found, key=lambda p: [int(x) for x in Path(p).parts[-3].split(".")
                                           if x.isdigit()])
        self.bindir = Path(newest).parent
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = require_tool("runuser", "util-linux")
            self.as_user = [runuser, "-u", "postgres", "--"]
        # Not under pytest's basetemp: that is private to its owner, and postgres must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="zk-pg-"))
        self.data = self.root / "data"
        self.sockdir = self.root / "sock"
        self.sockdir.mkdir()
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.started = False

    def _run(self, *args: str) -> None:
        r = subprocess.run([*self.as_user, *args], cwd=self.root, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
        if r.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(f"{' '.join(args)} exited {r.returncode}:\n"
                               f"{r.stdout}{r.stderr}{log}")

    def start(self) -> PgServer:
        if self.as_user:
            try:
                shutil.chown(self.root, "postgres")
                shutil.chown(self.sockdir, "postgres")
            except LookupError:
                pytest.fail("no postgres user to run PostgreSQL as: apt-get install -y postgresql")
        # Test data only: no fsync, so creating databases and committing are quick.
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--no-sync")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.sockdir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                  "-o", opts, "-w", "-t", "60", "start")
        self.started = True
        return self

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                      "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> Any:
        """A psycopg connection (autocommit) to one of this server's databases."""
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname,
                               autocommit=True)

    def create_database(self) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        name = f"zk_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server per test session (per xdist worker)."""
    srv = PgServer()
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty PostgreSQL database for this test."""
    return pg_server.create_database()


# Every secret the tests have seen (the bootstrap token, tokens and TSIG secrets the API
# answered with, console passwords): no server log of the suite may hold one. Checked each
# time a server stops (``ZkServer.stop``), so a leak fails the test that caused it.
SECRETS: set[str] = {TOKEN}
GENERATED_TOKEN = re.compile(r"zk_[0-9a-f]{12}_[A-Za-z0-9-]{40,}")


def _collect_secrets(value: object) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("secret", "token") and isinstance(v, str) and len(v) >= 16:
                SECRETS.add(v)
            else:
                _collect_secrets(v)
    elif isinstance(value, list):
        for v in value:
            _collect_secrets(v)


def _secrets_of_response(response: httpx2.Response) -> None:
    if "json" in response.headers.get("content-type", ""):
        response.read()
        try:
            _collect_secrets(response.json())
        except ValueError:
            pass


def secrets_in_log(text: str) -> list[str]:
    """The known secrets (shortened) and generated tokens found in a server log."""
    found = [f"{s[:6]}..." for s in SECRETS if s in text]
    found += [f"{m.group(0)[:9]}..." for m in GENERATED_TOKEN.finditer(text)]
    return found


class ZkServer:
    """A real ``zonekeeper serve`` process with its own ports and database: its own SQLite
    file unless ``database`` gives another URL (a PostgreSQL database from ``pg_url``)."""

    def __init__(self, workdir: Path, *, demo: bool = True, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, database: str | None = None) -> None:
        self.workdir = workdir
        self.demo = demo
        self.extra_args = extra_args or []
        self.extra_env = env or {}
        self.dns_port = free_port()
        self.api_port = free_port()
        self.db_path = workdir / "zonekeeper.db"
        self.database = database or f"sqlite:///{self.db_path}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"

    @property
    def addr(self) -> str:
        return "127.0.0.1"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def args(self) -> list[str]:
        args = [
            sys.executable, "-m", "zonekeeper", "serve",
            "--dns-listen", f"127.0.0.1:{self.dns_port}",
            "--api-listen", f"127.0.0.1:{self.api_port}",
            "--database", self.database,
            "--log-format", "json",
        ]
        if ipv6_available():
            args += ["--dns-listen", f"[::1]:{self.dns_port}"]
        if self.demo:
            args.append("--demo")
        return args + self.extra_args

    def start(self, timeout: float = 30, *, port_tries: int = 3) -> ZkServer:
        # The quick start's files (zonekeeper/quickstart.py) stay with the test: a restart
        # with the same command line and environment starts from them.
        env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN,
                   XDG_CACHE_HOME=str(self.workdir / "cache"), **self.extra_env)
        env.pop("ZONEKEEPER_CONFIG", None)
        log = open(self.log_path, "ab")
        logged = self.log_path.stat().st_size
        self.proc = subprocess.Popen(self.args(), cwd=self.workdir, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                this_run = self.log_path.read_bytes()[logged:].decode(errors="replace")
                if "Address already in use" in this_run and port_tries > 1:
                    # free_port() raced another test's server for the port: new ports. The
                    # run that never started leaves nothing in the log (a test may read
                    # every line of it as JSON).
                    log.close()
                    with open(self.log_path, "r+b") as f:
                        f.truncate(logged)
                    self.dns_port, self.api_port = free_port(), free_port()
                    return self.start(timeout, port_tries=port_tries - 1)
                raise RuntimeError(f"zonekeeper exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx2.get(self.api_url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"zonekeeper did not become ready:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        leaked = secrets_in_log(self.log())
        assert not leaked, f"secrets in the server log {self.log_path}: {leaked}"
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, event: str, **fields: object) -> list[dict[str, object]]:
        """The JSON log lines of ``event`` whose ``fields`` have the given values, in order."""
        out = []
        for line in self.log().splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if (isinstance(ev, dict) and ev.get("event") == event
                    and all(ev.get(k) == v for k, v in fields.items())):
                out.append(ev)
        return out

    def client(self, token: str | None = TOKEN) -> httpx2.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx2.Client(base_url=self.api_url + "/api/v1", headers=headers, timeout=60,
                             event_hooks={"response": [_secrets_of_response]})

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False, **kw: object) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
        if tcp:
            return dns.query.tcp(q, self.addr, port=self.dns_port, timeout=5)
        return dns.query.udp(q, self.addr, port=self.dns_port, timeout=5, raise_on_truncation=False)

    def serial(self, zone: str) -> int:
        r = self.query(zone, "SOA")
        return r.answer[0][0].serial  # type: ignore[no-any-return]


@pytest.fixture
def zk_factory(tmp_path: Path) -> Iterator[type]:
    started: list[ZkServer] = []

    def make(**kw: object) -> ZkServer:
        d = tmp_path / f"zk{len(started)}"
        d.mkdir()
        srv = ZkServer(d, **kw)  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield make  # type: ignore[misc]
    for srv in started:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop(signal.SIGKILL)
        else:
            leaked = secrets_in_log(srv.log())
            assert not leaked, f"secrets in the server log {srv.log_path}: {leaked}"


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    """One server per test module; tests make zones with unique names."""
    srv = ZkServer(tmp_path_factory.mktemp("zk")).start()
    yield srv
    srv.stop()


@pytest.fixture
def zone_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}.test."


@pytest.fixture
def api(zk: ZkServer) -> Iterator[httpx2.Client]:
    with zk.client() as c:
        yield c


def make_zone(client: httpx2.Client, name: str, **body: object) -> dict[str, object]:
    payload = {"name": name, "nameservers": [f"ns1.{name}"], **body}
    if "zone_text" not in body and "rrsets" not in body:
        payload["rrsets"] = [{"name": "ns1", "type": "A", "records": [{"content": "192.0.2.1"}]}]
    r = client.post("/zones", json=payload)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]
