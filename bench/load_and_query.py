#!/usr/bin/env python3
"""Zone load time, memory after load and UDP queries/s: NSD, Knot and zonekeeper side by side.

Stdlib only. For a generated zone of N records (shared/bench/genzone.py) each server is
launched ``--runs`` times, pinned to CPU 0 (the peers by shared/bench/peers/NAME/start.sh,
zonekeeper by ``taskset -c 0 zonekeeper serve``); each launch measures

  1. zone load: from launch to the first SOA answer over UDP (polled from CPU 1);
  2. memory after load: PSS from /proc/PID/smaps_rollup, summed over the server's processes;
  3. UDP queries/s: ``taskset -c 1 dnsperf -l SECONDS -c 4 -q 200`` with genzone's query list.

``--cpus 2``: every server gets both CPUs and one worker per CPU (NSD ``server-count: 2``
with ``reuseport``, Knot ``udp-workers: 2``, zonekeeper its default of one UDP loop per
CPU), and dnsperf runs 2 threads on the same two CPUs: who needs less CPU per answer wins.
The peers' configurations are copied from shared/bench/peers into bench/work/ and edited.

zonekeeper serves from SQLite: the zone is first put into its database through the API
(``POST /api/v1/zones``), a setup step that is timed on its own and not part of the load time.

  bench/load_and_query.py --quick              # 100k records
  bench/load_and_query.py                      # 1M records (default), 3 runs
  bench/load_and_query.py --records 300000 --runs 5
  bench/load_and_query.py --quick --zonekeeper-rev HEAD   # zonekeeper as committed
  bench/load_and_query.py --quick --cpus 2     # one worker per CPU, on both CPUs
  bench/load_and_query.py --quick --nxdomain   # a random-subdomain flood (all NXDOMAIN)
  bench/load_and_query.py --quick --profile    # py-spy profiles of zonekeeper only
  bench/load_and_query.py --profile --native   # ... with C frames (syscalls) while serving

Generated files (zone, queries, database, logs, results JSON, profiles) go to bench/work/.
Only processes this script started are stopped, by PID (the peers through peers/stop.sh).
All traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
VENV = REPO / ".venv"
DEFAULT_SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared" / "bench"))

ORIGIN = "bench.test."
SERVER_CPU = "0"
CLIENT_CPU = "1"

# Each server on its own loopback address (the peers' start.sh defaults); BIND and PowerDNS are
# measured by bench/compare.py (--servers here takes them too).
PEERS = {
    "nsd": ("NSD", "127.0.0.11", 5311),
    "knot": ("Knot", "127.0.0.12", 5312),
    "bind": ("BIND", "127.0.0.1", 5313),
    "pdns": ("PowerDNS", "127.0.0.14", 5314),
}
PEER_DAEMONS = {"nsd": "nsd", "knot": "knotd", "bind": "named", "pdns": "pdns_server"}
ZK_ADDR, ZK_PORT, ZK_API_PORT = "127.0.0.15", 5315, 5380

TARGETS = {  # ratio name: (numerator, denominator, measure, op, bound)
    "load": ("zonekeeper", "nsd", "load_s", "<=", 3.0),
    "memory": ("zonekeeper", "knot", "pss_mib", "<=", 2.0),
    "qps": ("zonekeeper", "nsd", "qps", ">=", 1.0),
    "qps vs Knot": ("zonekeeper", "knot", "qps", ">=", 1.0),
}


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- DNS over UDP, by hand ----------------------------------------------------------------


def wire_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


SOA_QUESTION = wire_name(ORIGIN) + struct.pack("!HH", 6, 1)


def soa_query(qid: int) -> bytes:
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + SOA_QUESTION


def soa_serial(resp: bytes) -> int | None:
    """The SOA serial of a NOERROR answer to our SOA question, else None."""
    if len(resp) < 12 + len(SOA_QUESTION):
        return None
    _qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", resp[:12])
    if not flags & 0x8000 or flags & 0x000F or qd != 1 or an < 1:
        return None
    if resp[12 : 12 + len(SOA_QUESTION)].lower() != SOA_QUESTION:
        return None
    pos = 12 + len(SOA_QUESTION)
    # first answer RR: owner (pointer or name), type, class, ttl, rdlength, rdata
    try:
        if resp[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while resp[pos]:
                pos += resp[pos] + 1
            pos += 1
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", resp[pos : pos + 10])
        if rtype != 6:
            return None
        rdata = resp[pos + 10 : pos + 10 + rdlen]
        return struct.unpack("!I", rdata[-20:-16])[0]
    except (IndexError, struct.error):
        return None


def wait_for_soa(addr: str, port: int, deadline: float, alive, interval: float = 0.005) -> float:
    """Poll SOA over UDP until the server answers; returns time.monotonic() of the answer.

    Bounded by ``deadline`` (monotonic) and an iteration cap; raises if ``alive()`` turns false.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((addr, port))
        max_iter = int((deadline - time.monotonic()) / interval) + 100
        for i in range(max_iter):
            now = time.monotonic()
            if now > deadline:
                break
            try:
                sock.send(soa_query(i & 0xFFFF))
            except ConnectionRefusedError:
                pass
            end = now + interval
            while True:
                wait = end - time.monotonic()
                if wait <= 0:
                    break
                ready, _, _ = select.select([sock], [], [], wait)
                if not ready:
                    break
                try:
                    resp = sock.recv(4096)
                except ConnectionRefusedError:
                    time.sleep(max(0.0, end - time.monotonic()))
                    break
                if soa_serial(resp) is not None:
                    return time.monotonic()
            if i % 20 == 0 and not alive():
                raise BenchError(f"the server at {addr}:{port} exited before answering SOA")
        raise BenchError(f"no SOA answer from {addr}:{port} before the deadline")
    finally:
        sock.close()


def answers_soa(addr: str, port: int, timeout: float = 0.3) -> bool:
    try:
        wait_for_soa(addr, port, time.monotonic() + timeout, lambda: True, interval=0.05)
        return True
    except BenchError:
        return False


# -- processes ------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (one /proc scan)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo and len(out) < 1000:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_mib(pid: int) -> float:
    """PSS of the process tree in MiB (shared pages split between the sharers, so sums are fair)."""
    total_kb = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            continue
    return total_kb / 1024


class Server:
    key: str
    label: str
    addr: str
    port: int
    pid: int | None = None

    def start(self) -> float:
        """Launch; returns time.monotonic() at launch."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)


class Peer(Server):
    """NSD, Knot, BIND or PowerDNS through shared/bench/peers/NAME/start.sh (pinned to CPU 0)."""

    def __init__(self, key: str, shared: Path, zonefile: Path) -> None:
        self.key = key
        self.label, self.addr, self.port = PEERS[key]
        self.shared = shared
        self.zonefile = zonefile
        self.pidfile = Path(f"/tmp/bench-{key}.pid")
        self.started = False

    def _env(self) -> dict[str, str]:
        return dict(os.environ, ADDR=self.addr, PORT=str(self.port), SERVER_CPU=SERVER_CPU)

    def start(self) -> float:
        if self.pidfile.exists():
            try:
                other = int(self.pidfile.read_text().strip())
            except ValueError:
                other = None
            if other is not None and pid_alive(other):
                raise BenchError(
                    f"{self.label} is already running (pid {other}, {self.pidfile}), not started by "
                    f"this run: stop it with peers/stop.sh {self.key} first"
                )
        t0 = time.monotonic()
        subprocess.run(
            ["bash", str(self.shared / "peers" / self.key / "start.sh"), str(self.zonefile)],
            env=self._env(), check=True, timeout=60,
        )
        self.started = True
        self.pid = int(self.pidfile.read_text().strip())
        return t0

    def stop(self) -> None:
        if not self.started:
            return
        subprocess.run(["bash", str(self.shared / "peers" / "stop.sh"), self.key],
                       check=False, timeout=60)
        self.started = False
        self.pid = None


def zonekeeper_env(src: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEKEEPER_")}
    if src is not None:
        env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


class Zonekeeper(Server):
    key = "zonekeeper"
    label = "zonekeeper"

    def __init__(self, db: Path, src: Path | None, logfile: Path, extra_env: dict[str, str] | None = None,
                 wrap: list[str] | None = None) -> None:
        self.addr, self.port = ZK_ADDR, ZK_PORT
        self.db = db
        self.src = src
        self.logfile = logfile
        self.extra_env = extra_env or {}
        self.wrap = wrap or []
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            *self.wrap, "taskset", "-c", SERVER_CPU, str(VENV / "bin" / "zonekeeper"), "serve",
            "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}", "--api-listen", f"{ZK_ADDR}:{ZK_API_PORT}",
            "--database", f"sqlite:///{self.db}", "--log-format", "json",
        ]

    def start(self) -> float:
        with open(self.logfile, "ab") as out:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         env=zonekeeper_env(self.src, self.extra_env), cwd=WORK)
        self.pid = self.proc.pid
        if self.wrap:  # py-spy launched it: the server is py-spy's child
            for _ in range(200):
                kids = [p for p in process_tree(self.proc.pid) if p != self.proc.pid]
                if kids:
                    self.pid = kids[0]
                    break
                time.sleep(0.01)
        return t0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            target = self.pid if self.wrap and self.pid else self.proc.pid
            os.kill(target, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log(f"zonekeeper (pid {self.proc.pid}) ignored TERM for 60 s, sending KILL")
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None
        self.pid = None

    def log_events(self) -> dict[str, dict]:
        """The last JSON log line of each event (e.g. zones.loaded, ready)."""
        events: dict[str, dict] = {}
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("{"):
                        try:
                            d = json.loads(line)
                        except ValueError:
                            continue
                        events[d.get("event", "")] = d
        except OSError:
            pass
        return events


# -- the measurements -------------------------------------------------------------------------


def run_dnsperf(addr: str, port: int, queries: Path, seconds: int, clients: int, outstanding: int,
                extra: tuple[str, ...] = ()) -> dict:
    if "," in CLIENT_CPU:  # --cpus 2: a thread per CPU, or the client is the limit
        extra = ("-T", str(len(CLIENT_CPU.split(","))), *extra)
    cmd = ["taskset", "-c", CLIENT_CPU, "dnsperf", "-s", addr, "-p", str(port), "-d", str(queries),
           "-l", str(seconds), "-c", str(clients), "-q", str(outstanding), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = res.stdout + res.stderr

    def grab(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    qps = grab(r"Queries per second:\s+([\d.]+)")
    if res.returncode != 0 or qps is None:
        raise BenchError(f"dnsperf failed ({res.returncode}): {out[-2000:]}")
    return {
        "qps": qps,
        "sent": grab(r"Queries sent:\s+(\d+)"),
        "completed": grab(r"Queries completed:\s+(\d+)"),
        "lost": grab(r"Queries lost:\s+(\d+)"),
        "latency_ms": (grab(r"Average Latency \(s\):\s+([\d.]+)") or 0.0) * 1000,
    }


def two_worker_peers(shared: Path) -> Path:
    """shared/bench's peers, copied into bench/work/peers-2cpu/ with a UDP worker per CPU."""
    dest = WORK / "peers-2cpu"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(shared / "peers", dest / "peers")
    edits = {
        "nsd/nsd.conf.in": ("server-count: 1", "server-count: 2\n    reuseport: yes"),
        "knot/knot.conf.in": ("udp-workers: 1", "udp-workers: 2"),
    }
    for rel, (old, new) in edits.items():
        conf = dest / "peers" / rel
        text = conf.read_text()
        if old not in text:
            raise BenchError(f"{shared / 'peers' / rel} has no '{old}' to change")
        conf.write_text(text.replace(old, new))
    return dest


def udp_rcvbuf_errors() -> int | None:
    """System-wide UDP receive-buffer drops (/proc/net/snmp): datagrams lost for a full socket buffer."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None


def one_launch(server: Server, args: argparse.Namespace, queries: Path) -> dict:
    if answers_soa(server.addr, server.port):
        raise BenchError(f"something already answers at {server.addr}:{server.port}; not ours, not touching it")
    try:
        t0 = server.start()
        t1 = wait_for_soa(server.addr, server.port, t0 + args.load_timeout, server.alive)
        load_s = t1 - t0
        time.sleep(args.settle)
        assert server.pid is not None
        pss = pss_mib(server.pid)
        drops0 = udp_rcvbuf_errors()
        perf = run_dnsperf(server.addr, server.port, queries, args.qps_seconds, args.clients, args.outstanding)
        drops1 = udp_rcvbuf_errors()
        pss_after = pss_mib(server.pid)
        if not server.alive():
            raise BenchError(f"{server.label} died during the dnsperf run")
    finally:
        server.stop()
    rec = {"load_s": load_s, "pss_mib": pss, "pss_after_queries_mib": pss_after, **perf,
           "udp_rcvbuf_errors": (drops1 - drops0) if drops0 is not None and drops1 is not None else None}
    if isinstance(server, Zonekeeper):
        ev = server.log_events()
        for name in ("dns.answering", "zones.loaded", "ready"):
            if name in ev and "seconds" in ev[name]:
                rec[f"zk_{name}_s"] = ev[name]["seconds"]
    return rec


# -- preparing the inputs ---------------------------------------------------------------


def nxdomain_queries(count: int) -> Path:
    """``count`` A queries for random 12-character names under the zone that do not exist
    (a random-subdomain flood: every one is a first-time query), the same every run."""
    path = WORK / f"queries-nx-{count}.txt"
    if not path.exists():
        rnd = random.Random(7)
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        lines = ("".join(rnd.choice(alphabet) for _ in range(12)) + f".{ORIGIN} A\n"
                 for _ in range(count))
        path.write_text("".join(lines))
    return path


def generate(shared: Path, records: int, query_count: int) -> tuple[Path, Path, float | None]:
    zone = WORK / f"bench-{records}.zone"
    queries = WORK / f"queries-{records}-{query_count}.txt"
    stamp = WORK / f"bench-{records}-{query_count}.ok"
    if zone.exists() and queries.exists() and stamp.exists():
        return zone, queries, None
    log(f"generating a {records:,}-record zone and {query_count:,} queries with genzone.py")
    t0 = time.monotonic()
    subprocess.run([sys.executable, str(shared / "genzone.py"), "--records", str(records), "--serial", "1",
                    "--out", str(zone), "--queries", str(queries), "--query-count", str(query_count)],
                   check=True, timeout=3600)
    stamp.write_text("ok\n")
    return zone, queries, time.monotonic() - t0


def http(method: str, url: str, token: str | None, body: bytes | None = None,
         ctype: str = "application/json", timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(api: str, proc_alive, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 10):
        if time.monotonic() > deadline:
            break
        try:
            status, _ = http("GET", api + "/readyz", None, timeout=2)
            if status == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        if not proc_alive():
            raise BenchError("zonekeeper exited during the setup start")
        time.sleep(0.05)
    raise BenchError("zonekeeper's API did not become ready")


def setup_zonekeeper(args: argparse.Namespace, zone: Path, src: Path | None, db: Path,
                     wrap_setup=None) -> dict:
    """Put the zone into a fresh SQLite database through the API (not part of the load time)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    text = zone.read_text()
    body = json.dumps({"name": ORIGIN, "zone_text": text}).encode()
    token = f"zk_bench{secrets.token_hex(4)}_{secrets.token_hex(16)}"
    env = {"ZONEKEEPER_API__BOOTSTRAP_TOKEN": token,
           "ZONEKEEPER_API__MAX_BODY_BYTES": str(len(body) + (1 << 20))}
    zk = Zonekeeper(db, src, WORK / "zonekeeper-setup.log", env)
    api = f"http://{ZK_ADDR}:{ZK_API_PORT}"
    if answers_soa(ZK_ADDR, ZK_PORT):
        raise BenchError(f"something already answers at {ZK_ADDR}:{ZK_PORT}; not ours, not touching it")
    t0 = time.monotonic()
    prof = None
    try:
        zk.start()
        wait_ready(api, zk.alive, 120)
        t_ready = time.monotonic()
        if wrap_setup is not None:
            prof = wrap_setup(zk.pid)
        log(f"zonekeeper setup: POST /api/v1/zones with {len(body) / 1e6:.1f} MB of JSON")
        status, resp = http("POST", api + "/api/v1/zones", token, body, timeout=args.setup_timeout)
        t_post = time.monotonic()
        if prof is not None:
            prof()
        if status != 201:
            raise BenchError(f"zone creation failed: HTTP {status}: {resp[:2000]!r}")
        info = json.loads(resp)
        if not answers_soa(ZK_ADDR, ZK_PORT, timeout=5):
            raise BenchError("zonekeeper does not answer SOA after the zone creation")
    finally:
        zk.stop()
    t_end = time.monotonic()
    size = sum(Path(str(db) + s).stat().st_size for s in ("", "-wal") if Path(str(db) + s).exists())
    return {
        "post_s": t_post - t_ready,
        "total_s": t_end - t0,
        "db_mib": size / 1048576,
        "record_count": info.get("record_count"),
        "serial": info.get("serial"),
        "body_mb": len(body) / 1e6,
    }


def zonekeeper_source(args: argparse.Namespace) -> Path | None:
    if args.zonekeeper_src:
        return Path(args.zonekeeper_src).resolve()
    if args.zonekeeper_rev:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.zonekeeper_rev],
                             capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        dest = WORK / f"src-{rev}"
        if not (dest / "zonekeeper" / "__init__.py").exists():
            dest.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "zonekeeper"],
                                     capture_output=True, check=True, timeout=60).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=60)
        return dest
    return None


# -- reporting ----------------------------------------------------------------------------


def stats(values: list[float]) -> tuple[float, float, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_cell(values: list[float], fmt: str) -> str:
    s = stats(values)
    if s is None:
        return "-"
    med, lo, hi = s
    return f"{fmt.format(med)} [{fmt.format(lo)}-{fmt.format(hi)}]"


def report(results: dict, keys: list[str], meta: dict) -> str:
    labels = {**{k: v[0] for k, v in PEERS.items()}, "zonekeeper": "zonekeeper"}
    rows = [
        ("zone load, launch to 1st SOA (s)", "load_s", "{:.3f}"),
        ("memory after load, PSS (MiB)", "pss_mib", "{:.1f}"),
        ("UDP queries/s (dnsperf)", "qps", "{:,.0f}"),
        ("  queries lost per run", "lost", "{:,.0f}"),
        ("  UDP rcvbuf drops (system-wide)", "udp_rcvbuf_errors", "{:,.0f}"),
        ("  avg latency (ms)", "latency_ms", "{:.2f}"),
        ("  PSS after the queries (MiB)", "pss_after_queries_mib", "{:.1f}"),
    ]
    out = []
    out.append(f"zone: {meta['records']:,} records ({ORIGIN}, {meta['zone_mb']:.1f} MB file); "
               f"{meta['query_count']:,} queries ({meta.get('query_kind', 'genzone.py')}); "
               f"{meta['runs']} launch(es) per server; "
               f"server on CPU {SERVER_CPU}, dnsperf on CPU {CLIENT_CPU} "
               f"(-l {meta['qps_seconds']} -c {meta['clients']} -q {meta['outstanding']})")
    out.append(f"zonekeeper code: {meta['zonekeeper_code']}")
    st = meta.get("setup")
    if st:
        out.append(f"zonekeeper setup (not in the load time): POST /api/v1/zones {st['post_s']:.2f} s "
                   f"({st['body_mb']:.1f} MB JSON, {st['record_count']} RRsets stored), whole step incl. "
                   f"start/stop {st['total_s']:.2f} s; database {st['db_mib']:.1f} MiB")
    elif meta.get("setup_reused"):
        out.append("zonekeeper setup: reused an existing database (--reuse-db), not timed in this run")
    out.append("")
    width = 34
    col = 26
    out.append("measure".ljust(width) + "".join(labels[k].ljust(col) for k in keys))
    out.append("(median [min-max] over launches)")
    for title, field, fmt in rows:
        cells = [fmt_cell([r.get(field) for r in results.get(k, [])], fmt) for k in keys]
        out.append(title.ljust(width) + "".join(c.ljust(col) for c in cells))
    zk = results.get("zonekeeper") or []
    if zk and "zk_zones.loaded_s" in zk[0]:
        loaded = stats([r.get("zk_zones.loaded_s") for r in zk])
        ready = stats([r.get("zk_ready_s") for r in zk])
        load = stats([r["load_s"] for r in zk])
        # DNS answers from dns.answering (a start on SQLite that reads its zones before the
        # rest is imported, zonekeeper/start.py), else from just after zones.loaded; "ready"
        # (the API up) comes later.
        first = stats([r.get("zk_dns.answering_s") for r in zk]) or loaded
        if loaded and ready and load and first:
            out.append(f"  zonekeeper's own log (median): answering {first[0]:.3f} s, zones.loaded "
                       f"{loaded[0]:.3f} s, ready (API) {ready[0]:.3f} s after serve() began; so "
                       f"about {load[0] - first[0]:.3f} s of the launch went to the interpreter, "
                       "imports and settings before serve()")
    out.append("")
    out.append("ratio".ljust(width) + "value".ljust(10) + "target".ljust(10) + "result")
    for name, (num, den, field, op, bound) in TARGETS.items():
        a = stats([r.get(field) for r in results.get(num, [])])
        b = stats([r.get(field) for r in results.get(den, [])])
        title = f"{name}: {labels[num]}/{labels[den]}"
        if not a or not b or not b[0]:
            out.append(title.ljust(width) + "-")
            continue
        ratio = a[0] / b[0]
        ok = ratio <= bound if op == "<=" else ratio >= bound
        out.append(title.ljust(width) + f"{ratio:.2f}x".ljust(10) + f"{op} {bound:g}x".ljust(10)
                   + ("PASS" if ok else "MISS"))
    return "\n".join(out)


# -- profiling (zonekeeper only) ---------------------------------------------------------


def pyspy() -> str:
    cand = VENV / "bin" / "py-spy"
    if cand.exists():
        return str(cand)
    from shutil import which

    found = which("py-spy")
    if not found:
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "Thread.wait (threading.py",
               "Condition.wait (threading.py")


def summarize_raw(path: Path, top: int = 15) -> str:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = imports = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"  (no profile written to {path})"
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        py_frames = [f for f in frames if ".py:" in f or "(<frozen" in f]
        if not frames or (py_frames and py_frames[-1].startswith(IDLE_LEAVES)):
            continue  # an idle worker thread waiting for work (native frames below it too)
        total += count
        if any(f.startswith("_find_and_load ") for f in frames):
            imports += count
        self_c[frames[-1]] = self_c.get(frames[-1], 0) + count
        for f in set(frames):
            incl[f] = incl.get(f, 0) + count
    if not total:
        return f"  (empty profile {path})"
    out = [f"  {total} samples (idle worker threads left out); {100 * imports / total:.1f}% in imports; "
           "self time ('Runner.run' = inside uvloop's C loop: epoll, socket calls):"]
    for f, c in sorted(self_c.items(), key=lambda x: -x[1])[:top]:
        out.append(f"    {100 * c / total:5.1f}%  {f}")
    out.append("  inclusive (zonekeeper code and big library entry points):")
    shown = 0
    for f, c in sorted(incl.items(), key=lambda x: -x[1]):
        if "zonekeeper" not in f and "sqlalchemy" not in f and "dns/" not in f and "json" not in f:
            continue
        out.append(f"    {100 * c / total:5.1f}%  {f}")
        shown += 1
        if shown >= top * 2:
            break
    return "\n".join(out)


def profile(args: argparse.Namespace, zone: Path, queries: Path, src: Path | None) -> None:
    spy = pyspy()
    tag = f"{args.records}"
    db = WORK / f"zk-{tag}.db"
    procs: list[subprocess.Popen] = []

    def attach(name: str, duration: int | None = None, native: bool = False):
        def start(pid: int):
            out = WORK / f"prof-{name}-{tag}.txt"
            cmd = [spy, "record", "--pid", str(pid), "--format", "raw", "--function", "--rate",
                   str(args.profile_rate), "--output", str(out)]
            cmd += ["--native"] if native else ["--nonblocking"]
            if duration:
                cmd += ["--duration", str(duration)]
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(WORK / f"prof-{name}.log", "w"))
            procs.append(p)
            time.sleep(0.5)

            def finish():
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=30)
            return finish
        return start

    results = {}
    try:
        # 1. the zone creation through the API
        log("profile 1/3: zone creation (POST /api/v1/zones)")
        st = setup_zonekeeper(args, zone, src, db, wrap_setup=attach("create"))
        results["create"] = st
        # 2. start-up: py-spy launches the server and records until the first SOA answer
        log("profile 2/3: start-up load")
        out = WORK / f"prof-startup-{tag}.txt"
        wrap = [spy, "record", "--format", "raw", "--function", "--rate", str(args.profile_rate),
                "--output", str(out), "--"]
        zk = Zonekeeper(db, src, WORK / "zonekeeper-profile.log", wrap=wrap)
        try:
            t0 = zk.start()
            t1 = wait_for_soa(ZK_ADDR, ZK_PORT, t0 + args.load_timeout, zk.alive)
            results["startup_s_under_pyspy"] = t1 - t0
            assert zk.proc is not None
            zk.proc.send_signal(signal.SIGINT)  # py-spy writes the profile and ends its child
            zk.proc.wait(timeout=120)
        finally:
            zk.stop()
        # 3. serving: a plain launch, py-spy attached for the dnsperf run
        log("profile 3/3: serving UDP queries under dnsperf")
        zk = Zonekeeper(db, src, WORK / "zonekeeper-profile.log")
        try:
            t0 = zk.start()
            wait_for_soa(ZK_ADDR, ZK_PORT, t0 + args.load_timeout, zk.alive)
            assert zk.pid is not None
            finish = attach("serve", duration=args.qps_seconds, native=args.native)(zk.pid)
            perf = run_dnsperf(ZK_ADDR, ZK_PORT, queries, args.qps_seconds, args.clients, args.outstanding)
            results["qps_under_pyspy"] = perf["qps"]
            finish()
        finally:
            zk.stop()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"zonekeeper profiles, {args.records:,} records (py-spy --rate {args.profile_rate}; "
          f"timings here include profiling overhead)")
    print(f"zone creation: POST {results['create']['post_s']:.2f} s")
    print(summarize_raw(WORK / f"prof-create-{tag}.txt"))
    print(f"start-up to first SOA: {results.get('startup_s_under_pyspy', float('nan')):.3f} s")
    print(summarize_raw(WORK / f"prof-startup-{tag}.txt"))
    print(f"serving: {results.get('qps_under_pyspy', float('nan')):,.0f} queries/s under py-spy")
    print(summarize_raw(WORK / f"prof-serve-{tag}.txt"))


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records in the zone (default 1,000,000)")
    ap.add_argument("--quick", action="store_true", help="100,000 records")
    ap.add_argument("--runs", type=int, default=3, help="launches per server (default 3)")
    ap.add_argument("--servers", default="nsd,knot,zonekeeper",
                    help="comma-separated, of nsd,knot,bind,pdns,zonekeeper")
    ap.add_argument("--query-count", type=int, default=100_000, help="lines in the dnsperf query file")
    ap.add_argument("--nxdomain", action="store_true",
                    help="query random names that do not exist (a random-subdomain flood)")
    ap.add_argument("--qps-seconds", type=int, default=10, help="dnsperf -l (default 10)")
    ap.add_argument("--clients", type=int, default=4, help="dnsperf -c (default 4)")
    ap.add_argument("--outstanding", type=int, default=200, help="dnsperf -q (default 200)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between first SOA and the PSS reading")
    ap.add_argument("--load-timeout", type=float, default=900, help="give up on a launch after this (s)")
    ap.add_argument("--setup-timeout", type=float, default=3600, help="limit for the zone creation POST (s)")
    ap.add_argument("--reuse-db", action="store_true",
                    help="reuse bench/work/zk-N.db from an earlier run instead of the setup step")
    ap.add_argument("--zonekeeper-src", help="run zonekeeper from this source tree (PYTHONPATH), "
                    "default: the venv's install (the work tree)")
    ap.add_argument("--zonekeeper-rev", help="run zonekeeper as of this git revision (git archive into bench/work)")
    ap.add_argument("--zonekeeper-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for the timed zonekeeper launches, e.g. "
                    "ZONEKEEPER_DNS__RESPONSE_CACHE_ENTRIES=0 (repeatable)")
    ap.add_argument("--bench-dir", default=str(DEFAULT_SHARED), help="shared/bench (genzone.py, peers/)")
    ap.add_argument("--profile", action="store_true",
                    help="instead of the comparison: py-spy profiles of zonekeeper's zone creation, "
                    "start-up load and query serving")
    ap.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--native", action="store_true", help="with --profile: native (C) frames while serving")
    ap.add_argument("--cpus", type=int, choices=(1, 2), default=1,
                    help="1: each server on CPU 0, the client on CPU 1 (default); 2: servers with "
                    "one worker per CPU and the client all on both CPUs")
    ap.add_argument("--json", default=None, help="results file (default bench/work/results-N.json)")
    args = ap.parse_args()
    if args.quick:
        args.records = 100_000
    if args.runs < 1 or args.runs > 50:
        ap.error("--runs must be 1..50")
    for item in args.zonekeeper_env:
        if "=" not in item or not item.startswith("ZONEKEEPER_"):
            ap.error(f"--zonekeeper-env wants ZONEKEEPER_KEY=VALUE, not {item!r}")
    keys = [k.strip() for k in args.servers.split(",") if k.strip()]
    for k in keys:
        if k not in ("zonekeeper", *PEERS):
            ap.error(f"unknown server {k!r}")
    shared = Path(args.bench_dir).resolve()
    if args.cpus == 2:
        global SERVER_CPU, CLIENT_CPU
        SERVER_CPU = CLIENT_CPU = "0,1"
    for tool in ("taskset", "dnsperf", *(PEER_DAEMONS[k] for k in keys if k in PEERS)):
        from shutil import which

        if which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise SystemExit(f"{tool} is not installed")
    if len(os.sched_getaffinity(0)) < 2 and os.cpu_count() and os.cpu_count() < 2:
        raise SystemExit("needs 2 CPUs: the server on CPU 0, the clients on CPU 1")
    WORK.mkdir(parents=True, exist_ok=True)
    # This process polls and measures from CPU 1 so that it does not steal the server's CPU.
    try:
        os.sched_setaffinity(0, {int(c) for c in CLIENT_CPU.split(",")})
    except OSError:
        pass
    peers_dir = shared if args.cpus == 1 else two_worker_peers(shared)

    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    src = zonekeeper_source(args)
    zone, queries, gen_s = generate(shared, args.records, args.query_count)
    if gen_s is not None:
        log(f"generated in {gen_s:.1f} s: {zone} ({zone.stat().st_size / 1e6:.1f} MB)")
    if args.nxdomain:
        queries = nxdomain_queries(args.query_count)

    if args.profile:
        profile(args, zone, queries, src)
        return 0

    meta = {
        "records": args.records, "zone_mb": zone.stat().st_size / 1e6, "query_count": args.query_count,
        "runs": args.runs, "qps_seconds": args.qps_seconds, "clients": args.clients,
        "outstanding": args.outstanding,
        "zonekeeper_code": (f"{src}" if src else f"the venv's install ({REPO}, work tree)"),
        "query_kind": "random names that do not exist (NXDOMAIN)" if args.nxdomain else "genzone.py's",
    }
    db = WORK / f"zk-{args.records}.db"
    zk_env = dict(item.split("=", 1) for item in args.zonekeeper_env)
    if zk_env:
        meta["zonekeeper_code"] += " with " + " ".join(args.zonekeeper_env)
    servers: dict[str, Server] = {}
    for k in keys:
        if k in PEERS:
            servers[k] = Peer(k, peers_dir, zone)
        else:
            servers[k] = Zonekeeper(db, src, WORK / "zonekeeper-serve.log", zk_env)
    if "zonekeeper" in keys:
        if args.reuse_db and db.exists():
            meta["setup_reused"] = True
            log(f"reusing {db}")
        else:
            log("zonekeeper setup: loading the zone into a fresh SQLite database through the API")
            meta["setup"] = setup_zonekeeper(args, zone, src, db)
            log(f"zonekeeper setup done: POST {meta['setup']['post_s']:.2f} s, whole step "
                f"{meta['setup']['total_s']:.2f} s")
        (WORK / "zonekeeper-serve.log").unlink(missing_ok=True)

    results: dict[str, list[dict]] = {k: [] for k in keys}
    try:
        for run in range(1, args.runs + 1):
            for k in keys:  # interleaved, so slow drifts of the machine hit every server alike
                srv = servers[k]
                rec = one_launch(srv, args, queries)
                results[k].append(rec)
                log(f"run {run}/{args.runs} {srv.label}: load {rec['load_s']:.3f} s, PSS {rec['pss_mib']:.1f} MiB, "
                    f"{rec['qps']:,.0f} q/s (lost {rec['lost']:.0f})")
                time.sleep(0.5)
    except KeyboardInterrupt:
        log("interrupted: stopping what this run started")
        for srv in servers.values():
            srv.stop()
        return 130
    finally:
        for srv in servers.values():
            srv.stop()

    text = report(results, keys, meta)
    print(text, flush=True)
    out = Path(args.json) if args.json else WORK / f"results-{args.records}.json"
    out.write_text(json.dumps({"meta": meta, "results": results, "table": text}, indent=1) + "\n")
    log(f"results in {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"load_and_query: {exc}", file=sys.stderr)
        sys.exit(1)
