"""Shared fixtures: real zonekeeper server processes on loopback, and tool checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import httpx2
import pytest

TOKEN = "zk_testadmin_" + "s3cr3t-for-tests-only-0123456789abcdef"


def require_tool(cmd: str, package: str) -> str:
    """The path of ``cmd``; fails (never skips) naming the Debian package to install."""
    path = shutil.which(cmd) or (f"/usr/sbin/{cmd}" if os.path.exists(f"/usr/sbin/{cmd}") else None)
    if path is None:
        pytest.fail(f"{cmd} is not installed: apt-get install -y {package} (scripts/setup.sh --test does it)")
    return path


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


class ZkServer:
    """A real ``zonekeeper serve`` process with its own SQLite file and ports."""

    def __init__(self, workdir: Path, *, demo: bool = True, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.demo = demo
        self.extra_args = extra_args or []
        self.extra_env = env or {}
        self.dns_port = free_port()
        self.api_port = free_port()
        self.db_path = workdir / "zonekeeper.db"
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
            "--database", f"sqlite:///{self.db_path}",
            "--log-format", "json",
        ]
        if ipv6_available():
            args += ["--dns-listen", f"[::1]:{self.dns_port}"]
        if self.demo:
            args.append("--demo")
        return args + self.extra_args

    def start(self, timeout: float = 30) -> ZkServer:
        env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN, **self.extra_env)
        env.pop("ZONEKEEPER_CONFIG", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), cwd=self.workdir, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
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
        return httpx2.Client(base_url=self.api_url + "/api/v1", headers=headers, timeout=60)

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
