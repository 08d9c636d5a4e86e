#!/usr/bin/env python3
"""AXFR out over TLS (XoT, RFC 9103) against cleartext TCP, same server, same run.

zonekeeper serves the generated benchmark zone of N records (default 1,000,000) on its DNS
port and on a TLS listener (a self-signed P-256 certificate made with openssl, TLS 1.3,
ALPN dot). One client in this process (pinned to CPU 1; the server to CPU 0) takes warm
AXFRs in turns, cleartext then TLS, each on a new connection, reading headers only (like
shared/bench/rawxfr.py, no record parsed); the TLS time includes the handshake and the
client's decryption. Prints medians, min, max and the TLS / cleartext ratio, and writes
them to bench/results/axfr_tls-N.md.

    .venv/bin/python bench/axfr_tls.py [--records N] [--runs 5] [--quick]

Traffic stays on 127.0.0.0/8. Waits for its turn with other benchmarks (wait_for_quiet).
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.message
from common import (
    ROOT,
    ZK_ADDR,
    ZK_PORT,
    ZONE,
    Zonekeeper,
    _cpu_seconds,
    ensure_zone_file,
    log,
    release_quiet,
    stats,
    wait_for_quiet,
    zonekeeper_db,
)

WORK = ROOT / "bench" / "work" / "axfr_tls"
TLS_PORT = ZK_PORT + 1
TLS_HOST = ZK_ADDR


def make_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "bench-tls.crt", directory / "bench-tls.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "30", "-subj", "/CN=bench.test"],
                       check=True, capture_output=True, timeout=60)
    return cert, key


def _read(s: socket.socket, view: memoryview, n: int) -> None:
    got = 0
    while got < n:
        k = s.recv_into(view[got:n], n - got)
        if not k:
            raise ConnectionError("closed early")
        got += k


def timed_axfr(records: int, *, tls: ssl.SSLContext | None) -> float:
    """One AXFR on a new connection (TLS when ``tls``), from connect to the last record,
    reading headers only."""
    wire = dns.message.make_query(ZONE, "AXFR").to_wire()
    framed = struct.pack("!H", len(wire)) + wire
    buf = bytearray(70000)
    view = memoryview(buf)
    start = time.perf_counter()
    port = TLS_PORT if tls is not None else ZK_PORT
    raw = socket.create_connection((ZK_ADDR, port), timeout=300)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s = tls.wrap_socket(raw) if tls is not None else raw
    with s:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="100k records, 3 runs")
    args = ap.parse_args()
    if args.quick:
        args.records, args.runs = 100_000, 3
    WORK.mkdir(parents=True, exist_ok=True)
    base = ensure_zone_file(args.records)
    db = zonekeeper_db(args.records, base)
    cert, key = make_cert(WORK)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.set_alpn_protocols(["dot"])
    records = args.records + 1  # the SOA comes twice
    os.sched_setaffinity(0, {1})
    wait_for_quiet()
    loads = [os.getloadavg()[0]]
    zk = Zonekeeper(db, WORK)
    zk.start(env_extra={"ZONEKEEPER_DNS__TLS_LISTEN": f'["{TLS_HOST}:{TLS_PORT}"]',
                        "ZONEKEEPER_DNS__TLS_CERT": str(cert),
                        "ZONEKEEPER_DNS__TLS_KEY": str(key)})
    try:
        first = timed_axfr(records, tls=None)  # builds the AXFR image
        timed_axfr(records, tls=client)  # warm-up of the TLS path
        plain: list[float] = []
        over_tls: list[float] = []
        cpu: dict[str, list[float]] = {"plain": [], "tls": []}
        assert zk.proc is not None
        pid = zk.proc.pid
        for _ in range(args.runs):
            for name, times, ctx in (("plain", plain, None), ("tls", over_tls, client)):
                before = _cpu_seconds(pid)
                times.append(timed_axfr(records, tls=ctx))
                time.sleep(0.2)  # the server's last writes and the close, counted too
                cpu[name].append(_cpu_seconds(pid) - before)
            loads.append(os.getloadavg()[0])
            log(f"cleartext {plain[-1]:.3f}s (server CPU {cpu['plain'][-1]:.2f}s), "
                f"TLS {over_tls[-1]:.3f}s (server CPU {cpu['tls'][-1]:.2f}s)")
    finally:
        zk.stop()
        release_quiet()
    p, t = stats(plain), stats(over_tls)
    ratio = t["median"] / p["median"]
    pairs = statistics.median(b / a for a, b in zip(plain, over_tls, strict=True))
    head = f"AXFR of {args.records:,} records, warm, new connection each, median of {args.runs}"
    table = [
        f"{'transport':<10} {'median s':>9} {'min s':>8} {'max s':>8}",
        f"{'cleartext':<10} {p['median']:9.3f} {p['min']:8.3f} {p['max']:8.3f}",
        f"{'TLS 1.3':<10} {t['median']:9.3f} {t['min']:8.3f} {t['max']:8.3f}",
        f"TLS / cleartext: {ratio:.3f} (median of the per-pair ratios: {pairs:.3f})",
        f"server CPU per AXFR (median, s, clock ticks of 10 ms): cleartext "
        f"{statistics.median(cpu['plain']):.2f}, TLS {statistics.median(cpu['tls']):.2f}",
        f"first AXFR after start (image build, cleartext): {first:.3f}s",
        f"1-minute load average during the runs: {min(loads):.2f} to {max(loads):.2f} "
        f"on {os.cpu_count()} CPUs",
    ]
    print(head)
    print("\n".join(table))
    out = ROOT / "bench" / "results" / f"axfr_tls-{args.records}.md"
    today = datetime.date.today().isoformat()
    cmd = " ".join(["bench/axfr_tls.py", *sys.argv[1:]])
    out.write_text(
        f"# AXFR out over TLS vs cleartext, {args.records:,}-record zone ({today})\n\n"
        f"`.venv/bin/python {cmd}` (zonekeeper pinned to CPU 0, the client to CPU 1 in the "
        "benchmark process; cleartext and TLS in turns, each AXFR on a new connection, "
        "headers read only; the TLS time includes the handshake and the client's "
        "decryption).\n\n```\n" + head + "\n" + "\n".join(table) + "\n```\n\n"
        "Runs (s): cleartext " + ", ".join(f"{x:.3f}" for x in plain)
        + "; TLS " + ", ".join(f"{x:.3f}" for x in over_tls) + "\n")
    log(f"written {out}")


if __name__ == "__main__":
    main()
