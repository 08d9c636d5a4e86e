"""Shared pieces of the benchmark scripts: paths, the reference peers, a zonekeeper
process, timing helpers. Stdlib plus what the project's venv has."""

from __future__ import annotations

import base64
import hashlib
import hmac
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
import dns.rrset
import dns.tsig
import httpx2

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ZK_SHARED", ROOT.parent / "shared")) / "bench"
WORK = ROOT / "bench" / "work"
ZONE = "bench.test."
TSIG_NAME = "benchkey."
TSIG_SECRET = "YmVuY2gta2V5LW5vdC1hLXJlYWwtc2VjcmV0LTAxMjM="
TOKEN = "zk_bench_" + "benchmark-token-not-secret-0123456789"
# The reference primaries at the defaults of ../shared/bench/peers/NAME/start.sh.
PEERS = {"nsd": ("127.0.0.11", 5311), "knot": ("127.0.0.12", 5312), "bind": ("127.0.0.1", 5313),
         "pdns": ("127.0.0.14", 5314)}
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
    return _timed_transfer(addr, port, q.to_wire(), records, timeout=300)


def tsig_stream(addr: str, port: int, records: int) -> list[bytes]:
    """The messages of one signed AXFR, whole, as they came (for ``hmac_floor``)."""
    key = dns.tsig.Key(TSIG_NAME, TSIG_SECRET, "hmac-sha256")
    q = dns.message.make_query(ZONE, "AXFR")
    q.use_tsig(key)
    wire = q.to_wire()
    msgs: list[bytes] = []
    with socket.create_connection((addr, port), timeout=300) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        f = s.makefile("rb", buffering=1 << 20)
        got = 0
        while got < records:
            n = struct.unpack("!H", f.read(2))[0]
            m = f.read(n)
            msgs.append(m)
            got += struct.unpack("!H", m[6:8])[0]
    return msgs


def hmac_floor(msgs: list[bytes]) -> float:
    """What the MACs alone of a signed transfer cost: hashlib's HMAC-SHA256 over the same
    messages, chained as RFC 8945 chains them (each MAC over the previous one and the
    message), with the key set up once and copied per message. Seconds, in this process."""
    secret = base64.b64decode(TSIG_SECRET)
    keyed = hmac.new(secret, digestmod=hashlib.sha256)
    start = time.perf_counter()
    prev = b""
    for m in msgs:
        h = keyed.copy()
        h.update(prev)
        h.update(m)
        prev = h.digest()
    return time.perf_counter() - start


def timed_ixfr(addr: str, port: int, records: int, serial: int) -> float:
    """One IXFR from ``serial`` on a new connection, read like rawxfr (headers only, until
    ``records`` RRs have come), timed from connect to the last byte, from this process:
    unlike rawxfr.py, no fresh interpreter's first-use costs (about 2 ms of the ~2.5 ms an
    IXFR of 100 changes takes through rawxfr.py here) sit inside the time."""
    q = dns.message.make_query(ZONE, "IXFR")
    q.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    return _timed_transfer(addr, port, q.to_wire(), records, timeout=60)


def _timed_transfer(addr: str, port: int, wire: bytes, records: int, *, timeout: float,
                    source: str | None = None) -> float:
    framed = struct.pack("!H", len(wire)) + wire
    buf = bytearray(70000)
    view = memoryview(buf)
    start = time.perf_counter()
    bind = (source, 0) if source is not None else None
    with socket.create_connection((addr, port), timeout=timeout, source_address=bind) as s:
        s.sendall(framed)
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

    def start(self, *, log_level: str = "warning", env_extra: dict[str, str] | None = None) -> None:
        env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN,
                   ZONEKEEPER_API__MAX_BODY_BYTES=str(1 << 30), **(env_extra or {}))
        exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", exe, "serve", "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}",
             "--api-listen", f"127.0.0.1:{ZK_API}", "--database", f"sqlite:///{self.db}",
             "--log-level", log_level, "--migrate"],
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
    # stdout to stderr: the control tools' "OK" lines would mix with a script's results
    subprocess.run(argv, check=True, timeout=120, env=dict(os.environ, SERVER_CPU="0"),
                   stdout=sys.stderr)




def rawxfr_full(addr: str, port: int, records: int, *, ixfr_serial: int | None = None) -> dict[str, float]:
    """rawxfr.py's whole JSON line (time, bytes, messages)."""
    argv = ["taskset", "-c", "1", sys.executable, str(SHARED / "rawxfr.py"), addr, str(port),
            "--records", str(records), "--zone", ZONE]
    if ixfr_serial is not None:
        argv += ["--ixfr-serial", str(ixfr_serial)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _genzone(path: Path, *args: str) -> Path:
    """Run genzone.py once into ``path`` (written under a temporary name, then renamed, so an
    interrupted run leaves no half file behind to be reused)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    subprocess.run([sys.executable, str(SHARED / "genzone.py"), *args, "--out", str(tmp)],
                   check=True, timeout=3600)
    tmp.rename(path)
    return path


def ensure_zone_file(records: int, *, serial: int = 1000) -> Path:
    """The generated zone of ``records`` RRs (SOA included) with ``serial``."""
    return _genzone(WORK / f"zone-{records}-s{serial}.zone", "--records", str(records),
                    "--serial", str(serial))


def ensure_changed_zone(records: int, changes: int, *, base_serial: int = 1000) -> Path:
    """The zone of ensure_zone_file() after ``changes`` changes, with serial base_serial + 1."""
    return _genzone(WORK / f"zone-{records}-c{changes}.zone", "--records", str(records),
                    "--base-serial", str(base_serial), "--changes", str(changes),
                    "--serial", str(base_serial + 1))


def ensure_queries(records: int, count: int = 100_000) -> Path:
    """genzone.py's dnsperf query list for the zone of ``records`` RRs (the same bytes as
    load_and_query.py's queries-N-COUNT.txt)."""
    path = WORK / f"queries-{records}-{count}.txt"
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(SHARED / "genzone.py"), "--records", str(records),
                        "--out", os.devnull, "--queries", str(tmp), "--query-count", str(count)],
                       check=True, timeout=3600)
        tmp.rename(path)
    return path


def _ancestors(pid: int) -> set[int]:
    out: set[int] = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    stack = [pid]
    while stack and len(out) < 10000:
        p = stack.pop()
        if p not in out:
            out.add(p)
            stack += _children(p)
    return out


# Benchmarks that call wait_for_quiet() take turns through an flock on BENCH_LOCK (held until
# release_quiet() or the process ends) and list themselves in BENCH_PARTICIPANTS/<pid>, so that
# they neither wait for one another's idle waiting nor start together. Anything else that looks
# like a benchmark (older scripts, a reference peer left running) is waited for by sight.
BENCH_LOCK = Path("/tmp/bench.lock")
BENCH_PARTICIPANTS = Path("/tmp/bench-participants")
_lock_fd: int | None = None


def _participants() -> set[int]:
    """Live processes taking turns through the lock (stale entries are ignored)."""
    out: set[int] = set()
    try:
        entries = list(BENCH_PARTICIPANTS.iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.name.isdigit():
            try:
                os.kill(int(entry.name), 0)
            except OSError:
                continue
            out.add(int(entry.name))
    return out


def _mark(state: str) -> None:
    """Note this process as a participant ("waiting", "holding" or "idle") until it exits."""
    mine = BENCH_PARTICIPANTS / str(os.getpid())
    try:
        BENCH_PARTICIPANTS.mkdir(mode=0o1777, exist_ok=True)
        first = not mine.exists()
        mine.write_text(state + "\n")
    except OSError:
        return
    if first:
        import atexit

        atexit.register(mine.unlink, missing_ok=True)


def _waiting_others() -> bool:
    for pid in _participants() - {os.getpid()}:
        try:
            if (BENCH_PARTICIPANTS / str(pid)).read_text().strip() == "waiting":
                return True
        except OSError:
            continue
    return False


def other_benchmarks() -> list[str]:
    """What else is benchmarking on this machine, besides the processes that take turns through
    wait_for_quiet() (held off by its lock): a /tmp/bench-*.pid that names a live process (a
    reference peer someone started) or a process whose command line has ``bench/`` in it
    (``pgrep -f bench/``); ours (this process, its ancestors and children) left out."""
    busy: list[str] = []
    for pidfile in sorted(Path("/tmp").glob("bench-*.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        busy.append(f"{pidfile} names live pid {pid}")
    me = os.getpid()
    ours = _ancestors(me) | _descendants(me)
    for other in _participants() - {me}:
        ours |= _ancestors(other) | _descendants(other)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            argv = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "bench/" in argv:
            busy.append(f"pid {entry.name}: {argv[:160]}")
    return busy


def _try_lock() -> bool:
    global _lock_fd
    if _lock_fd is not None:
        return True
    import fcntl

    fd = os.open(BENCH_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _lock_fd = fd
    return True


def release_quiet() -> None:
    """Let another benchmark have its turn (this one has stopped its servers); if one waits,
    give it the time to take the lock before this process asks again."""
    global _lock_fd
    if _lock_fd is None:
        return
    os.close(_lock_fd)  # drops the flock
    _lock_fd = None
    _mark("idle")
    if _waiting_others():
        time.sleep(1.5)


def wait_for_quiet(max_wait: float = 900, poll: float = 10) -> None:
    """Wait (bounded) for this process's turn: the lock that benchmarks calling this take turns
    with, then no other benchmark in sight (other_benchmarks()), so that no two servers share
    the server core. The turn lasts until release_quiet() or the end of the process; calling
    this again meanwhile only checks for others in sight. Raise TimeoutError after
    ``max_wait`` seconds."""
    deadline = time.monotonic() + max_wait
    held_before = _lock_fd is not None
    said = False
    busy: list[str] = []
    step = min(poll, 1.0)  # the lock is tried often, the rest every ``poll`` seconds
    next_look = 0.0
    for _ in range(int(max_wait / step) + 2):
        if _try_lock():
            now = time.monotonic()
            if now >= next_look:
                busy = other_benchmarks()
                if not busy:
                    _mark("holding")
                    if said:
                        log("the other benchmark has finished; going on")
                    return
                next_look = now + poll
        else:
            _mark("waiting")
            busy = [f"another benchmark has the turn ({BENCH_LOCK})"]
        if time.monotonic() >= deadline:
            if not held_before:
                release_quiet()
            raise TimeoutError("another benchmark is still running after "
                               f"{max_wait:.0f}s: " + "; ".join(busy))
        if not said:
            log(f"waiting (up to {max_wait:.0f}s) for another benchmark to finish: "
                + "; ".join(busy))
            said = True
        time.sleep(min(step, max(0.0, deadline - time.monotonic())))
    if not held_before:
        release_quiet()
    raise TimeoutError("another benchmark is still running: " + "; ".join(busy))


def zonekeeper_db(records: int, base: Path) -> Path:
    """A SQLite database holding the generated zone, made once through the API and reused."""
    db = WORK / f"zonekeeper-{records}.db"
    if db.exists():
        # Made by an older zonekeeper maybe: its schema brought up to this one's.
        exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
        subprocess.run([exe, "db", "upgrade", "--database", f"sqlite:///{db}"],
                       check=True, capture_output=True, timeout=300)
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


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, *, window: float = 0.5, limit: float = 120) -> float:
    """Wait until process ``pid`` has used under 2% of a CPU over ``window`` seconds (the
    reference servers compute the difference, write their journal and free the old version
    in the background after the new serial is served: measuring then times that work too).
    Returns the seconds waited."""
    start = time.monotonic()
    before = _cpu_seconds(pid)
    while time.monotonic() - start < limit:
        time.sleep(window)
        now = _cpu_seconds(pid)
        if now - before < 0.02 * window:
            break
        before = now
    return time.monotonic() - start
