"""Shared pieces of the benchmark scripts: paths, the reference peers, a zonekeeper
process, timing helpers. Stdlib plus what the project's venv has."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.tsig
import httpx2

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ZK_SHARED", ROOT.parent / "shared")) / "bench"
WORK = ROOT / "bench" / "work"
ZONE = "bench.test."
TSIG_NAME = "benchkey."
TSIG_SECRET = "YmVuY2gta2V5LW5vdC1hLXJlYWwtc2VjcmV0LTAxMjM="
TOKEN = "zk_bench_" + "benchmark-token-not-secret-0123456789"
PEERS = {"nsd": ("127.0.0.11", 5311), "knot": ("127.0.0.12", 5312), "bind": ("127.0.0.1", 5313)}
ZK_ADDR, ZK_PORT, ZK_API = "127.0.0.13", 5313, 8313


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def pss_mib(pid: int) -> float:
    """PSS of a process and all its descendants (NSD serves from forked children)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            continue
        stack += _children(p)
    return total / 1024


def soa_serial(addr: str, port: int) -> int | None:
    try:
        r = dns.query.udp(dns.message.make_query(ZONE, "SOA"), addr, port=port, timeout=1)
        return r.answer[0][0].serial if r.answer else None
    except Exception:  # noqa: BLE001 - not up yet
        return None


def wait_serial(addr: str, port: int, serial: int, limit: float = 600) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if soa_serial(addr, port) == serial:
            return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError(f"{addr}:{port} did not serve serial {serial} within {limit}s")


def rawxfr(addr: str, port: int, records: int) -> float:
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, str(SHARED / "rawxfr.py"), addr, str(port),
         "--records", str(records), "--zone", ZONE],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["elapsed_s"])


def tsig_xfr(addr: str, port: int, records: int) -> float:
    """A signed AXFR read like rawxfr: headers only, the MACs are not checked."""
    key = dns.tsig.Key(TSIG_NAME, TSIG_SECRET, "hmac-sha256")
    q = dns.message.make_query(ZONE, "AXFR")
    q.use_tsig(key)
    wire = q.to_wire()
    buf = bytearray(70000)
    view = memoryview(buf)
    start = time.perf_counter()
    with socket.create_connection((addr, port), timeout=300) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        got = 0
        while got < records:
            _read(s, view, 2)
            n = struct.unpack("!H", buf[:2])[0]
            _read(s, view, n)
            if buf[3] & 0x0F:
                raise RuntimeError(f"rcode {buf[3] & 0x0F}")
            got += struct.unpack("!H", buf[6:8])[0]
        return time.perf_counter() - start


def _read(s: socket.socket, view: memoryview, n: int) -> None:
    got = 0
    while got < n:
        k = s.recv_into(view[got:n])
        if not k:
            raise ConnectionError("closed early")
        got += k


def zone_records(path: Path) -> int:
    """Records in a genzone.py file: every line but the $ directives."""
    with open(path) as f:
        return sum(1 for line in f if line.strip() and not line.startswith(("$", ";")))


def stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


class Zonekeeper:
    def __init__(self, db: Path, workdir: Path) -> None:
        self.db = db
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = f"http://127.0.0.1:{ZK_API}/api/v1"
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def start(self) -> None:
        env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN,
                   ZONEKEEPER_API__MAX_BODY_BYTES=str(1 << 30))
        exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", exe, "serve", "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}",
             "--api-listen", f"127.0.0.1:{ZK_API}", "--database", f"sqlite:///{self.db}",
             "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.workdir / "zonekeeper.log", "ab"),
        )
        for _ in range(6000):
            try:
                if httpx2.get(f"http://127.0.0.1:{ZK_API}/readyz", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"zonekeeper exited; see {self.workdir}/zonekeeper.log")
            time.sleep(0.05)
        raise TimeoutError("zonekeeper did not become ready")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)

    def load(self, zone_file: Path) -> None:
        c = httpx2.Client(base_url=self.api, headers=self.headers, timeout=3600)
        if c.get(f"/zones/{ZONE}").status_code == 200:
            return
        t = time.monotonic()
        r = c.post("/zones", json={"name": ZONE, "zone_text": zone_file.read_text()})
        r.raise_for_status()
        c.post("/tsig-keys", json={"name": TSIG_NAME, "secret": TSIG_SECRET}).raise_for_status()
        for rule in ({"network": "127.0.0.0/8"}, {"network": "127.0.0.0/8", "key": TSIG_NAME}):
            c.post("/acls", json={"zone": ZONE, "action": "transfer", **rule}).raise_for_status()
        log(f"zonekeeper: zone created through the API in {time.monotonic() - t:.1f}s (not timed)")

    def edit(self, n: int) -> int:
        c = httpx2.Client(base_url=self.api, headers=self.headers, timeout=60)
        r = c.put(f"/zones/{ZONE}/rrsets/edit-probe/A", json={"records": [{"content": f"192.0.2.{n % 250 + 1}"}]})
        r.raise_for_status()
        return int(r.json()["serial"])


def peer(name: str, action: str, *args: str) -> None:
    script = SHARED / "peers" / (f"{name}/{action}.sh" if action != "stop" else "stop.sh")
    argv = ["bash", str(script), *(args if action != "stop" else (name,))]
    subprocess.run(argv, check=True, timeout=120, env=dict(os.environ, SERVER_CPU="0"))




def rawxfr_full(addr: str, port: int, records: int, *, ixfr_serial: int | None = None) -> dict[str, float]:
    """rawxfr.py's whole JSON line (time, bytes, messages)."""
    argv = ["taskset", "-c", "1", sys.executable, str(SHARED / "rawxfr.py"), addr, str(port),
            "--records", str(records), "--zone", ZONE]
    if ixfr_serial is not None:
        argv += ["--ixfr-serial", str(ixfr_serial)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def ensure_zone_file(records: int, *, serial: int = 1000) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"zone-{records}-s{serial}.zone"
    if not path.exists():
        subprocess.run([sys.executable, str(SHARED / "genzone.py"), "--records", str(records),
                        "--serial", str(serial), "--out", str(path)], check=True)
    return path


def zonekeeper_db(records: int, base: Path) -> Path:
    """A SQLite database holding the generated zone, made once through the API and reused."""
    db = WORK / f"zonekeeper-{records}.db"
    if db.exists():
        return db
    tmp = WORK / f"zonekeeper-{records}.db.tmp"
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    zk = Zonekeeper(tmp, WORK)
    zk.start()
    try:
        zk.load(base)
    finally:
        zk.stop()
    tmp.rename(db)
    return db
