#!/usr/bin/env python3
"""The hostile side of bench/hostile.py: one process (stdlib only) that keeps up, from
addresses of its own on 127.0.0.0/8, for ``--seconds``:

  - ``--idle`` connections that send nothing (127.1.P.H),
  - ``--stalled`` AXFR requests on connections with a tiny window that are never read
    (127.2.P.H; the zone must allow them: the worst case),
  - ``--pipeliners`` connections that send pipelined queries and never read (127.3.P.H),
  - a flood of AXFR/IXFR requests for a zone nobody may transfer, each on a new
    connection, its answer read (127.4.P.H), at most ``--xfr-rate`` a second,
  - a flood of NOTIFYs over UDP from strangers (127.5.P.H), at most ``--notify-rate`` a
    second,

reconnecting whatever the server closes (after --reconnect-delay; 0 makes it a
connection flood as well). Spread over 100 /24s, ten addresses each, so
that per-address and per-prefix limits alone do not stop it. Every loop is bounded in time
and count. Prints one JSON line of counters at the end.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import signal
import socket
import struct
import time


PIPE_MAX = 1 << 20  # bytes of queries a pipelining client sends on one connection


def qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"


def query(name: str, qtype: int, *, opcode: int = 0, serial: int | None = None) -> bytes:
    qid = int.from_bytes(os.urandom(2), "big")
    ns = 1 if serial is not None else 0
    msg = struct.pack("!HHHHHH", qid, opcode << 11, 1, 0, ns, 0) + qname(name) + struct.pack("!HH", qtype, 1)
    if serial is not None:
        rdata = b"\0\0" + struct.pack("!IIIII", serial, 0, 0, 0, 0)
        msg += qname(name) + struct.pack("!HHIH", 6, 1, 0, len(rdata)) + rdata
    return msg


def framed(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


def source(block: int, i: int) -> str:
    return f"127.{block}.{i // 10 % 100}.{i % 10 + 1}"


class Attack:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.sel = selectors.DefaultSelector()
        # Connections that are never read (stalled AXFR readers, pipeliners that sent
        # enough): looked at once a second for a reset, not by the selector.
        self.parked: dict[tuple[str, int], socket.socket] = {}
        self.pipe_sent: dict[int, int] = {}
        self.since: dict[socket.socket, float] = {}  # connecting, or waiting for an answer
        self.counts: dict[str, int] = {}
        self.axfr = framed(query(a.zone, 252))
        big = framed(query(a.pipeline_name, 255 if a.pipeline_any else 1))
        self.pipeline = big * (32768 // len(big))
        self.closed_xfr = [framed(query(a.closed_zone, 252)),
                           framed(query(a.closed_zone, 251, serial=1))]

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def connect(self, kind: str, slot: int) -> None:
        block = {"idle": 1, "stalled": 2, "pipe": 3, "xfr": 4}[kind]
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((source(block, slot), 0))
            if kind == "stalled":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            err = s.connect_ex((self.a.addr, self.a.port))
        except OSError:
            s.close()
            self.count(f"{kind}_connect_failed")
            return
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.count(f"{kind}_connect_failed")
            return
        self.count(f"{kind}_connects")
        self.sel.register(s, selectors.EVENT_WRITE, (kind, slot, "connecting"))
        self.since[s] = time.monotonic()

    def run(self) -> None:
        a = self.a
        end = time.monotonic() + a.seconds
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        for i in range(a.idle):
            self.connect("idle", i)
        for i in range(a.stalled):
            self.connect("stalled", i)
        for i in range(a.pipeliners):
            self.connect("pipe", i)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        udp.bind((source(5, 0), 0))
        self.sel.register(udp, selectors.EVENT_READ, ("notify", 0, "udp"))
        notify = query(a.zone, 6, opcode=4)
        xfr_budget = notify_budget = 0.0
        last = time.monotonic()
        xfr_slot = 0
        reconnect: list[tuple[float, str, int]] = []
        next_check = 0.0
        while (now := time.monotonic()) < end and not stop:
            if now >= next_check:
                self.check_parked(reconnect, now)
                self.expire(reconnect, now)
                next_check = now + 1.0
            xfr_budget = min(xfr_budget + (now - last) * a.xfr_rate, a.xfr_rate / 10)
            notify_budget = min(notify_budget + (now - last) * a.notify_rate, a.notify_rate / 10)
            last = now
            while xfr_budget >= 1:
                xfr_budget -= 1
                self.connect("xfr", xfr_slot)
                xfr_slot = (xfr_slot + 1) % 1000
            while notify_budget >= 1:
                notify_budget -= 1
                try:
                    udp.sendto(notify, (a.addr, a.port))
                    self.count("notify_sent")
                except OSError:
                    self.count("notify_send_failed")
            due = [r for r in reconnect if r[0] <= now]
            reconnect = [r for r in reconnect if r[0] > now]
            for _t, kind, slot in due:
                self.connect(kind, slot)
            for key, events in self.sel.select(timeout=0.01):
                self.event(key, events, reconnect, now)
        self.report()

    def expire(self, reconnect: list[tuple[float, str, int]], now: float) -> None:
        """Connections still connecting (a full listen queue drops SYNs), or flood requests
        still unanswered, after 2 s are given up."""
        for s, t in list(self.since.items()):
            if now - t > 2.0:
                kind, slot, _state = self.sel.get_key(s).data
                self.drop(s, kind, slot, "timeout", reconnect, now)

    def drop(self, s: socket.socket, kind: str, slot: int, reason: str,
             reconnect: list[tuple[float, str, int]], now: float) -> None:
        self.since.pop(s, None)
        self.sel.unregister(s)
        s.close()
        self.count(f"{kind}_{reason}")
        if kind != "xfr":
            reconnect.append((now + self.a.reconnect_delay, kind, slot))

    def event(self, key: selectors.SelectorKey, events: int,
              reconnect: list[tuple[float, str, int]], now: float) -> None:
        s: socket.socket = key.fileobj  # type: ignore[assignment]
        kind, slot, state = key.data
        if kind == "notify":
            try:
                while True:
                    s.recvfrom(4096)
                    self.count("notify_answered")
            except OSError:
                return
        if state == "connecting":
            if kind != "xfr":
                self.since.pop(s, None)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.drop(s, kind, slot, "refused", reconnect, now)
                return
            if kind == "idle":
                self.sel.modify(s, selectors.EVENT_READ, (kind, slot, "open"))
            elif kind == "stalled":
                try:
                    s.send(self.axfr)
                except OSError:
                    self.drop(s, kind, slot, "reset", reconnect, now)
                    return
                # Never read: looked at once a second (check_stalled) for a reset.
                self.sel.unregister(s)
                self.parked[(kind, slot)] = s
                self.since.pop(s, None)
            elif kind == "pipe":
                self.pipe_sent[slot] = 0
                self.sel.modify(s, selectors.EVENT_WRITE, (kind, slot, "open"))
            else:  # xfr flood: one request, read the answer, close
                try:
                    s.send(self.closed_xfr[slot % 2])
                except OSError:
                    self.drop(s, kind, slot, "reset", reconnect, now)
                    return
                self.sel.modify(s, selectors.EVENT_READ, (kind, slot, "open"))
            return
        if kind == "pipe":
            try:
                n = s.send(self.pipeline)
                self.count("pipe_bytes", n)
                self.pipe_sent[slot] = self.pipe_sent.get(slot, 0) + n
                if self.pipe_sent[slot] >= PIPE_MAX:
                    # Enough to keep the server's side full: wait for the reset.
                    self.sel.unregister(s)
                    self.parked[(kind, slot)] = s
            except BlockingIOError:
                pass
            except OSError:
                self.drop(s, kind, slot, "reset", reconnect, now)
            return
        try:
            data = s.recv(65536)
        except OSError:
            self.drop(s, kind, slot, "reset", reconnect, now)
            return
        if kind == "xfr":
            if len(data) >= 6:
                self.count(f"xfr_rcode_{data[5] & 0x0F}")
            self.drop(s, kind, slot, "answered" if data else "closed", reconnect, now)
        elif not data:
            self.drop(s, kind, slot, "closed", reconnect, now)

    def check_parked(self, reconnect: list[tuple[float, str, int]], now: float) -> None:
        """A parked connection the server reset (or closed with nothing unread) comes back."""
        for (kind, slot), s in list(self.parked.items()):
            try:
                gone = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                reason = "closed"
            except BlockingIOError:
                gone = False
            except OSError:
                gone, reason = True, "reset"
            if gone:
                del self.parked[(kind, slot)]
                s.close()
                self.count(f"{kind}_{reason}")
                reconnect.append((now + self.a.reconnect_delay, kind, slot))

    def report(self) -> None:
        print(json.dumps({"seconds": self.a.seconds, **dict(sorted(self.counts.items()))}),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("--zone", default="bench.test.")
    ap.add_argument("--closed-zone", default="closed.test.")
    ap.add_argument("--pipeline-name", default="bench.test.")
    ap.add_argument("--pipeline-any", action="store_true", help="ask ANY (RFC 8482: small)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--stalled", type=int, default=200)
    ap.add_argument("--pipeliners", type=int, default=250)
    ap.add_argument("--reconnect-delay", type=float, default=1.0,
                    help="seconds before a connection the server cut is made again")
    ap.add_argument("--xfr-rate", type=float, default=500)
    ap.add_argument("--notify-rate", type=float, default=5000)
    a = ap.parse_args()
    a.seconds = min(a.seconds, 600)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    Attack(a).run()


if __name__ == "__main__":
    main()
