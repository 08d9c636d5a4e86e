#!/usr/bin/env python3
"""AXFR out, zonekeeper vs Knot and NSD in the same run (issue: AXFR out).

For a generated zone of N records (default 1,000,000) it measures, per server, the
server time of
  - a warm plain AXFR (rawxfr.py from shared/bench: reads headers only),
  - a warm TSIG AXFR (a signed request; the reader does not verify, like rawxfr),
  - the first AXFR after a one-record edit (zonekeeper: an API PATCH; Knot/NSD: the
    zone file with one change and a reload, then waiting for the new serial),
and the memory (PSS) after the transfers. It prints medians, min, max and ratios to
Knot against the targets: warm AXFR <= 0.25x Knot, first after edit <= 1.0x Knot,
TSIG adds <= 10%.

    .venv/bin/python bench/axfr.py [--records N] [--runs 5] [--quick]

Servers run pinned to CPU 0 and the reader to CPU 1. Traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
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
WORK = ROOT / "bench" / "work" / "axfr"
ZONE = "bench.test."
TSIG_NAME = "benchkey."
TSIG_SECRET = "YmVuY2gta2V5LW5vdC1hLXJlYWwtc2VjcmV0LTAxMjM="
TOKEN = "zk_bench_" + "benchmark-token-not-secret-0123456789"
PEERS = {"nsd": ("127.0.0.11", 5311), "knot": ("127.0.0.12", 5312)}
ZK_ADDR, ZK_PORT, ZK_API = "127.0.0.13", 5313, 8313


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return float("nan")


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
    def __init__(self, db: Path) -> None:
        self.db = db
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = f"http://127.0.0.1:{ZK_API}/api/v1"
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def start(self) -> None:
        env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN)
        exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", exe, "serve", "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}",
             "--api-listen", f"127.0.0.1:{ZK_API}", "--database", f"sqlite:///{self.db}",
             "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(WORK / "zonekeeper.log", "ab"),
        )
        for _ in range(6000):
            try:
                if httpx2.get(f"http://127.0.0.1:{ZK_API}/readyz", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("zonekeeper exited; see bench/work/axfr/zonekeeper.log")
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="100k records, 3 runs")
    args = ap.parse_args()
    if args.quick:
        args.records, args.runs = 100_000, 3
    WORK.mkdir(parents=True, exist_ok=True)
    base = WORK / f"zone-{args.records}.zone"
    if not base.exists():
        subprocess.run([sys.executable, str(SHARED / "genzone.py"), "--records", str(args.records),
                        "--serial", "1000", "--out", str(base)], check=True)
    records = args.records + 1  # AXFR carries the SOA twice
    results: dict[str, dict[str, object]] = {}

    # Reference servers, one at a time so they never share the core.
    for name in ("knot", "nsd"):
        addr, port = PEERS[name]
        zone = WORK / f"{name}.zone"
        shutil.copyfile(base, zone)
        peer(name, "start", str(zone))
        try:
            wait_serial(addr, port, 1000)
            rawxfr(addr, port, records)  # warm-up
            plain = [rawxfr(addr, port, records) for _ in range(args.runs)]
            signed = [tsig_xfr(addr, port, records) for _ in range(args.runs)]
            after_edit = []
            for i in range(min(args.runs, 3)):
                serial = 1001 + i
                subprocess.run([sys.executable, str(SHARED / "genzone.py"), "--records", str(args.records),
                                "--base-serial", "1000", "--changes", "1", "--serial", str(serial),
                                "--seed", str(i + 1), "--out", str(zone)], check=True)
                peer(name, "reload")
                wait_serial(addr, port, serial)
                after_edit.append(rawxfr(addr, port, zone_records(zone) + 1))
            pid = int((Path("/tmp") / f"bench-{name}.pid").read_text())
            results[name] = {"plain": stats(plain), "tsig": stats(signed),
                             "after_edit": stats(after_edit), "pss_mib": pss_mib(pid)}
        finally:
            peer(name, "stop")
        log(f"{name}: {results[name]}")

    db = WORK / f"zonekeeper-{args.records}.db"
    zk = Zonekeeper(db)
    zk.start()
    try:
        zk.load(base)
        zk.stop()
        zk.start()  # measure from a cold start on the stored zone
        serial = soa_serial(ZK_ADDR, ZK_PORT)
        assert serial is not None
        zk_records = records + (1 if serial != 1000 else 0)  # the edit probe, once edited
        first = rawxfr(ZK_ADDR, ZK_PORT, zk_records)
        plain = [rawxfr(ZK_ADDR, ZK_PORT, zk_records) for _ in range(args.runs)]
        signed = [tsig_xfr(ZK_ADDR, ZK_PORT, zk_records) for _ in range(args.runs)]
        after_edit = []
        for i in range(min(args.runs, 3)):
            zk.edit(i)
            zk_records = records + 1
            after_edit.append(rawxfr(ZK_ADDR, ZK_PORT, zk_records))
        assert zk.proc is not None
        results["zonekeeper"] = {"first_after_start": first, "plain": stats(plain), "tsig": stats(signed),
                                 "after_edit": stats(after_edit), "pss_mib": pss_mib(zk.proc.pid)}
    finally:
        zk.stop()

    knot = results["knot"]
    zkr = results["zonekeeper"]

    def med(r: dict[str, object], k: str) -> float:
        return float(r[k]["median"])  # type: ignore[index]

    print(f"AXFR of {args.records:,} records, server time via rawxfr (s), median of {args.runs}")
    print(f"{'server':<11} {'plain':>8} {'tsig':>8} {'after edit':>11} {'PSS MiB':>8}")
    for name, r in results.items():
        print(f"{name:<11} {med(r, 'plain'):8.4f} {med(r, 'tsig'):8.4f} {med(r, 'after_edit'):11.4f} "
              f"{float(r['pss_mib']):8.1f}")  # type: ignore[arg-type]
    print(f"zonekeeper first AXFR after start (image build): {float(zkr['first_after_start']):.3f}s")  # type: ignore[arg-type]
    ratios = {
        "warm AXFR / Knot (target <= 0.25)": med(zkr, "plain") / med(knot, "plain"),
        "first AXFR after edit / Knot (target <= 1.0)": med(zkr, "after_edit") / med(knot, "after_edit"),
        "TSIG / plain, zonekeeper (target <= 1.10)": med(zkr, "tsig") / med(zkr, "plain"),
        "PSS / Knot": float(zkr["pss_mib"]) / float(knot["pss_mib"]),  # type: ignore[arg-type]
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    (WORK / "results.json").write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
