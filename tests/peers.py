"""Real BIND, Knot and NSD processes as *secondaries* of a zonekeeper primary.

Each runs as the invoking user from its own temp dir (no user switch, no chroot), on a
127.0.0.x loopback address and a free port (never 53), with its config written here: the zones
it pulls (primary address and port, optional TSIG key), a source address for its transfers
(BIND ``transfer-source``, Knot ``via``, NSD ``outgoing-interface``) so access rules can
tell the servers apart, and AXFR out allowed to 127.0.0.1 so tests can dump what it serves.

Zones are added to a running server by rewriting its config and reloading it (``rndc
reconfig``, ``knotc reload``, ``nsd-control reconfig``), so one process per server can serve
a whole test module. Stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.tsig
import dns.xfr

from tests.conftest import free_port, require_tool

DUMP_SOURCE = "127.0.0.1"
# Secret of the rndc control channel of the BIND secondary: throwaway, loopback only.
RNDC_SECRET = "cm5kYy1rZXktbm90LWEtcmVhbC1zZWNyZXQtMDEyMzQ="


@dataclass(frozen=True)
class TsigKey:
    name: str  # without or with the trailing dot
    algorithm: str  # "hmac-sha256", …
    secret: str  # base64

    @property
    def bare(self) -> str:
        return self.name.rstrip(".")

    def dnspython(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.bare + ".", self.secret, self.algorithm)


@dataclass(frozen=True)
class SecondaryZone:
    name: str  # absolute or not; stored without the trailing dot
    primary: tuple[str, int]
    key: str | None = None  # a key added with add_key


def _tool(cmd: str) -> str:
    path = shutil.which(cmd) or (f"/usr/sbin/{cmd}" if os.path.exists(f"/usr/sbin/{cmd}") else None)
    if path is None:
        raise RuntimeError(f"{cmd} is not installed")
    return path


def _bare(zone: str) -> str:
    return zone.rstrip(".").lower()


def axfr_lines(addr: str, port: int, zone: str, *, key: dns.tsig.Key | None = None,
               source: str | None = None, timeout: float = 30) -> list[str]:
    """A canonical dump of the zone by AXFR: sorted, lower-case ``name ttl class type rdata``
    lines, the closing SOA dropped. Raises dns.xfr.TransferError / dns.exception errors."""
    lines: list[str] = []
    for msg in dns.query.xfr(addr, zone, port=port, timeout=timeout, lifetime=timeout * 4,
                             relativize=False, source=source,
                             keyring={key.name: key} if key else None,
                             keyname=key.name if key else None):
        for rrset in msg.answer:
            lines.extend(rrset.to_text().lower().splitlines())
    if len(lines) >= 2 and lines[-1] == lines[0] and " soa " in lines[0]:
        lines.pop()
    return sorted(lines)


def dig_axfr_lines(addr: str, port: int, zone: str, *, key: TsigKey | str | None = None,
                   source: str | None = None, tool: str = "dig", canonical: bool = True,
                   timeout: float = 60) -> list[str]:
    """A dump like ``axfr_lines``, by ``dig`` (or ``kdig``), with ``-y`` for a key (a TsigKey,
    or ``alg:name:secret`` text as given): a second implementation checking our TSIG, and
    fast for big zones. TSIG records and the closing SOA are left out. With ``canonical``
    the rdata is re-rendered by dnspython (comparable with ``axfr_lines``, ~2 s per 100k
    records); without, lines are the tool's own text, comparable only with the same tool's.
    Raises AssertionError when the transfer fails (refused, TSIG not verified, cut short)."""
    args = [_tool(tool), "-p", str(port), f"@{addr}", zone, "AXFR"]
    if source:
        args += ["-b", source]
    if isinstance(key, TsigKey):
        args += ["-y", f"{key.algorithm}:{key.bare}:{key.secret}"]
    elif key is not None:
        args += ["-y", key.strip()]
    if tool == "dig":
        args += ["+nocmd", "+nostats", "+nocomments", "+noquestion", f"+time={int(timeout)}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)
    records = [ln.split(None, 4) for ln in r.stdout.splitlines()
               if ln.strip() and not ln.startswith(";")]
    lines = [" ".join(f).lower() for f in records if len(f) < 4 or f[3].upper() != "TSIG"]
    notes = r.stderr + "\n".join(ln for ln in r.stdout.splitlines() if ln.startswith(";"))
    complete = len(lines) >= 2 and lines[0] == lines[-1] and " soa " in lines[0]
    if r.returncode != 0 or "failed" in notes.lower() or "error" in notes.lower() or not complete:
        raise AssertionError(f"{tool} AXFR {zone} from {addr}:{port} failed "
                             f"(exit {r.returncode}):\n{notes[-2000:]}\n{r.stdout[:500]}")
    lines.pop()
    if canonical:
        lines = [_canonical(f) for f in (ln.split(None, 4) for ln in lines)]
    return sorted(lines)


def _canonical(fields: list[str]) -> str:
    name, ttl, rdclass, rdtype, text = fields
    rdata = dns.rdata.from_text(rdclass, rdtype, text)
    return f"{name} {ttl} {rdclass} {rdtype} {rdata.to_text()}".lower()


class Secondary:
    """What every secondary offers; subclasses write the config and know how to reload."""

    kind = "?"
    config_name = "server.conf"

    def __init__(self, workdir: Path, *, listen: str, source: str, port: int) -> None:
        self.workdir = workdir
        self.listen = listen  # where it answers queries
        self.source = source  # where its transfers (and refresh queries) come from
        self.port = port
        self.zones: dict[str, SecondaryZone] = {}
        self.keys: dict[str, TsigKey] = {}
        self.key_text: dict[str, str] = {}  # key name → exported text, pasted as is
        self.proc: subprocess.Popen[bytes] | None = None
        # Raw text appended to the generated config (e.g. a snippet zonekeeper generated).
        self.extra_config = ""
        # BIND: raw text written before "options" (e.g. a "tls" block its listen-on names),
        # and lines added inside "options" (e.g. "listen-on port P tls NAME { ... };").
        self.pre_config = ""
        self.extra_options: list[str] = []
        self.log_path = workdir / "server.log"
        self.out_path = workdir / "stdout.log"
        workdir.mkdir(parents=True, exist_ok=True)

    # -- configuration ---------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.workdir / self.config_name

    def add_key(self, key: TsigKey, exported: str | None = None) -> None:
        """A key for later zones; ``exported`` is zonekeeper's export of it in this
        server's own format, used verbatim when given."""
        self.keys[key.bare.lower()] = key
        if exported is not None:
            self.key_text[key.bare.lower()] = exported

    def add_zones(self, *zones: SecondaryZone, reload: bool = True) -> None:
        for z in zones:
            self.zones[_bare(z.name)] = z
        if reload and self.running:
            self.reload()

    def add_config_text(self, text: str, *, reload: bool = True) -> None:
        """Paste raw text (a key export, a snippet zonekeeper generated) at the end of this
        server's config, as an operator would; reloads a running server."""
        self.extra_config += text if text.endswith("\n") else text + "\n"
        if reload and self.running:
            self.reload()

    def write_config(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def reload(self) -> None:
        raise NotImplementedError

    # -- process -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Secondary:
        """Start without waiting (start several, then ``wait_ready`` on each)."""
        self.write_config()
        out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        return self

    def wait_ready(self, timeout: float = 20) -> Secondary:
        """Until it answers a query over UDP (any rcode)."""
        deadline = time.monotonic() + timeout
        q = dns.message.make_query("ready.invalid.", "SOA")
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else "?"
                raise RuntimeError(f"{self.kind} exited {code}:\n{self.diagnostics()}")
            try:
                dns.query.udp(q, self.listen, port=self.port, timeout=0.3, source=DUMP_SOURCE)
                return self
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not answer within {timeout}s:\n{self.diagnostics()}")

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def diagnostics(self, lines: int = 40) -> str:
        parts = []
        for p in (self.out_path, self.log_path):
            if p.exists():
                tail = p.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {p.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- what it serves ----------------------------------------------------------------------
    def serial(self, zone: str, *, tcp: bool = False) -> int | None:
        """The SOA serial it serves for ``zone``, or None (not loaded, refused, no answer)."""
        q = dns.message.make_query(zone, "SOA")
        try:
            send = dns.query.tcp if tcp else dns.query.udp
            r = send(q, self.listen, port=self.port, timeout=1, source=DUMP_SOURCE)
        except (dns.exception.DNSException, OSError):
            return None
        if r.rcode() != dns.rcode.NOERROR or not r.flags & dns.flags.AA:
            return None
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    def wait_serial(self, zone: str, serial: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            # Over both transports: NSD's old server process may still answer TCP for a
            # moment after a reload.
            seen = self.serial(zone)
            if seen == serial and self.serial(zone, tcp=True) == serial:
                return
            if not self.running:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.kind} serves {zone} at serial {seen}, not {serial}, "
                             f"after {timeout}s:\n{self.diagnostics()}")

    def dump(self, zone: str, *, dig: bool = False) -> list[str]:
        """Canonical lines of an AXFR of ``zone`` from this server (allowed from 127.0.0.1),
        by dnspython or, with ``dig``, by dig."""
        deadline = time.monotonic() + 5
        while True:
            try:
                if dig:  # dig's own text (see dig_axfr_lines)
                    return dig_axfr_lines(self.listen, self.port, zone, source=DUMP_SOURCE,
                                          canonical=False)
                return axfr_lines(self.listen, self.port, zone, source=DUMP_SOURCE)
            except (dns.xfr.TransferError, AssertionError):
                # A server process from before the last reload may not know the zone yet.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def refresh(self, zone: str) -> None:
        """Check the primary's SOA now (and transfer if it is newer)."""
        raise NotImplementedError


class BindSecondary(Secondary):
    """named -f, listening on 127.0.0.1 (named only binds addresses configured on an
    interface), transfers from ``source`` (any 127/8 address binds on Linux); rndc on a
    loopback control port for ``reconfig``."""

    kind = "bind"
    config_name = "named.conf"

    def __init__(self, workdir: Path, *, source: str = "127.0.0.21", port: int,
                 ctl_port: int, log_severity: str = "info") -> None:
        super().__init__(workdir, listen="127.0.0.1", source=source, port=port)
        self.ctl_port = ctl_port
        self.log_path = workdir / "named.log"
        # "debug 3" adds xfer-in's "requesting IXFR for serial N" and "got incremental /
        # nonincremental response": BIND 9.18 names the transfer type only at debug level.
        self.log_severity = log_severity
        # Raw text pasted inside options { } (a catalog-zones statement).
        self.options_text = ""

    def write_config(self) -> None:
        run = self.workdir
        out = [
            *([self.pre_config] if self.pre_config else []),
            "options {",
            *self.extra_options,
            f'    directory "{run}";',
            f'    pid-file "{run}/named.pid";',
            f'    session-keyfile "{run}/session.key";',
            f'    managed-keys-directory "{run}";',
            f"    listen-on port {self.port} {{ {self.listen}; }};",
            "    listen-on-v6 { none; };",
            "    recursion no;",
            "    notify no;",
            "    dnssec-validation no;",
            f"    allow-transfer {{ {DUMP_SOURCE}; }};",
            f"    transfer-source {self.source};",
            f"    notify-source {self.source};",
            *self.options_text.splitlines(),
            "};",
            f'key "rndc-key" {{ algorithm hmac-sha256; secret "{RNDC_SECRET}"; }};',
            f"controls {{ inet 127.0.0.1 port {self.ctl_port} allow {{ 127.0.0.1; }}"
            ' keys { "rndc-key"; }; };',
            "logging {",
            f'    channel main {{ file "{self.log_path}"; severity {self.log_severity};'
            " print-time yes; };",
            "    category default { main; };",
            "    category xfer-in { main; };",
            "};",
        ]
        for name, key in self.keys.items():
            out.append(self.key_text.get(name) or
                       f'key "{key.bare}" {{ algorithm {key.algorithm}; secret "{key.secret}"; }};')
        for name, z in self.zones.items():
            addr, port = z.primary
            keypart = f" key \"{self.keys[z.key.rstrip('.').lower()].bare}\"" if z.key else ""
            out.append(f'zone "{name}" {{ type secondary;'
                       f" primaries {{ {addr} port {port}{keypart}; }}; }};")
        self.config_path.write_text("\n".join(out) + "\n" + self.extra_config)
        (self.workdir / "rndc.conf").write_text(
            f'key "rndc-key" {{ algorithm hmac-sha256; secret "{RNDC_SECRET}"; }};\n'
            'options { default-key "rndc-key"; default-server 127.0.0.1;'
            f" default-port {self.ctl_port}; }};\n"
        )

    def command(self) -> list[str]:
        return [_tool("named"), "-f", "-n", "2", "-c", str(self.config_path)]

    def rndc(self, *args: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([_tool("rndc"), "-c", str(self.workdir / "rndc.conf"), *args],
                               capture_output=True, text=True, timeout=timeout)
            if r.returncode == 0:
                return r.stdout
            # The control channel opens a moment after the DNS listeners.
            if time.monotonic() > deadline or "connection refused" not in (r.stderr + r.stdout):
                raise RuntimeError(f"rndc {' '.join(args)} failed: {r.stderr}{r.stdout}\n"
                                   f"{self.diagnostics()}")
            time.sleep(0.1)

    def reload(self) -> None:
        self.write_config()
        self.rndc("reconfig")

    def refresh(self, zone: str) -> None:
        self.rndc("refresh", _bare(zone))


class KnotSecondary(Secondary):
    """knotd with a control socket in its dir; ``via`` sets the transfer source."""

    kind = "knot"
    config_name = "knot.conf"

    def __init__(self, workdir: Path, *, addr: str = "127.0.0.22", port: int) -> None:
        super().__init__(workdir, listen=addr, source=addr, port=port)
        self.log_path = workdir / "knot.log"
        self.sock = workdir / "knot.sock"

    def write_config(self) -> None:
        run = self.workdir
        out = [
            "server:",
            f'    rundir: "{run}"',
            f"    listen: {self.listen}@{self.port}",
            "    udp-workers: 1",
            "    tcp-workers: 2",
            "    background-workers: 2",
            "database:",
            f'    storage: "{run}"',
            "control:",
            f'    listen: "{self.sock}"',
            "log:",
            f'  - target: "{self.log_path}"',
            "    any: info",
        ]
        if self.keys:
            out.append("key:")
            for name, key in self.keys.items():
                text = self.key_text.get(name)
                if text:
                    # zonekeeper's export is a whole "key:" section; keep its items.
                    items = [ln for ln in text.splitlines()
                             if ln.strip() and not ln.lstrip().startswith("#")]
                    out.extend(ln for ln in items if ln.strip() != "key:")
                else:
                    out += [f"  - id: {key.bare}", f"    algorithm: {key.algorithm}",
                            f"    secret: {key.secret}"]
        remotes: dict[str, tuple[str, int, str | None]] = {}
        for z in self.zones.values():
            rid = f"primary_{z.primary[0].replace('.', '_')}_{z.primary[1]}" + (
                f"_{z.key.rstrip('.').lower().replace('.', '_')}" if z.key else "")
            remotes[rid] = (z.primary[0], z.primary[1], z.key)
        if remotes:
            out.append("remote:")
            for rid, (addr, port, key) in remotes.items():
                out += [f"  - id: {rid}", f"    address: {addr}@{port}", f"    via: {self.source}"]
                if key:
                    out.append(f"    key: {key.rstrip('.')}")
        out += [
            "acl:",
            "  - id: dump",
            f"    address: {DUMP_SOURCE}",
            "    action: transfer",
        ]
        for rid, (addr, _port, key) in remotes.items():
            # Knot 3.2 takes NOTIFY only where an ACL allows it: from each primary.
            out += [f"  - id: notify_{rid}", f"    address: {addr}", "    action: notify"]
            if key:
                out.append(f"    key: {key.rstrip('.')}")
        out += [
            "template:",
            "  - id: default",
            f'    storage: "{run}"',
            "    zonefile-sync: -1",
            "    zonefile-load: none",
            "    journal-content: none",
            "    semantic-checks: off",
        ]
        if self.zones:
            out.append("zone:")
            for name, z in self.zones.items():
                rid = f"primary_{z.primary[0].replace('.', '_')}_{z.primary[1]}" + (
                    f"_{z.key.rstrip('.').lower().replace('.', '_')}" if z.key else "")
                out += [f"  - domain: {name}", f"    master: {rid}", f"    acl: [dump, notify_{rid}]"]
        self.config_path.write_text("\n".join(out) + "\n" + self.extra_config)

    def command(self) -> list[str]:
        return [_tool("knotd"), "-c", str(self.config_path)]

    def knotc(self, *args: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([_tool("knotc"), "-s", str(self.sock), "-t", "10", *args],
                               capture_output=True, text=True, timeout=timeout + 5)
            if r.returncode == 0:
                return r.stdout
            if time.monotonic() > deadline or self.sock.exists():
                raise RuntimeError(f"knotc {' '.join(args)} failed: {r.stderr}{r.stdout}\n"
                                   f"{self.diagnostics()}")
            time.sleep(0.1)

    def reload(self) -> None:
        self.write_config()
        self.knotc("reload")

    def refresh(self, zone: str) -> None:
        self.knotc("zone-refresh", _bare(zone))


class NsdSecondary(Secondary):
    """nsd -d with a unix control socket; ``outgoing-interface`` sets the transfer source."""

    kind = "nsd"
    config_name = "nsd.conf"

    def __init__(self, workdir: Path, *, addr: str = "127.0.0.23", port: int) -> None:
        super().__init__(workdir, listen=addr, source=addr, port=port)
        self.log_path = workdir / "nsd.log"
        self.ctl = workdir / "nsd.ctl"

    def write_config(self) -> None:
        run = self.workdir
        out = [
            "server:",
            f"    ip-address: {self.listen}@{self.port}",
            f"    port: {self.port}",
            "    server-count: 1",
            '    username: ""',
            '    chroot: ""',
            f'    zonesdir: "{run}"',
            '    database: ""',
            f'    zonelistfile: "{run}/zone.list"',
            f'    xfrdfile: "{run}/xfrd.state"',
            f'    xfrdir: "{run}"',
            f'    pidfile: "{run}/nsd.pid"',
            f'    logfile: "{run}/nsd.log"',
            "    verbosity: 2",
            "    zonefiles-write: 0",
            "    xfrd-reload-timeout: 0",
            "    rrl-ratelimit: 0",
            "    rrl-whitelist-ratelimit: 0",
            "remote-control:",
            "    control-enable: yes",
            f'    control-interface: "{self.ctl}"',
        ]
        for name, key in self.keys.items():
            out.append(self.key_text.get(name) or f'key:\n\tname: "{key.bare}"\n'
                       f'\talgorithm: {key.algorithm}\n\tsecret: "{key.secret}"')
        for name, z in self.zones.items():
            addr, port = z.primary
            key = z.key.rstrip(".") if z.key else "NOKEY"
            out += [
                "zone:",
                f'    name: "{name}"',
                f"    request-xfr: {addr}@{port} {key}",
                f"    allow-notify: {addr} {key}",
                f"    outgoing-interface: {self.source}",
                f"    provide-xfr: {DUMP_SOURCE} NOKEY",
            ]
        self.config_path.write_text("\n".join(out) + "\n" + self.extra_config)

    def command(self) -> list[str]:
        return [_tool("nsd"), "-d", "-c", str(self.config_path)]

    def nsd_control(self, *args: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([_tool("nsd-control"), "-c", str(self.config_path), *args],
                               capture_output=True, text=True, timeout=timeout + 5)
            if r.returncode == 0 and not r.stdout.startswith("error"):
                return r.stdout
            if time.monotonic() > deadline:
                raise RuntimeError(f"nsd-control {' '.join(args)} failed: {r.stderr}{r.stdout}\n"
                                   f"{self.diagnostics()}")
            time.sleep(0.1)

    def reload(self) -> None:
        self.write_config()
        self.nsd_control("reconfig")

    def refresh(self, zone: str) -> None:
        self.nsd_control("transfer", _bare(zone))  # SOA check, then IXFR/AXFR if newer


def make_secondary(kind: str, workdir: Path, addr: str, *,
                   bind_log_severity: str = "info") -> Secondary:
    """A secondary of ``kind`` ("bind", "knot", "nsd") seen by the primary from ``addr``:
    BIND listens on 127.0.0.1 and transfers from ``addr``; Knot and NSD listen on it."""
    if kind == "bind":
        return BindSecondary(workdir, source=addr, port=free_port(), ctl_port=free_port(),
                             log_severity=bind_log_severity)
    if kind == "knot":
        return KnotSecondary(workdir, addr=addr, port=free_port(addr))
    if kind == "nsd":
        return NsdSecondary(workdir, addr=addr, port=free_port(addr))
    raise ValueError(f"unknown secondary kind {kind!r}")


@contextmanager
def running_secondaries(base: Path, sources: dict[str, str], *,
                        bind_log_severity: str = "info") -> Iterator[dict[str, Secondary]]:
    """One secondary per kind in ``sources`` (kind -> the address it is seen from), started
    together, ready, and stopped (by PID) on the way out. Fails with what to install when a
    server is missing."""
    tools = {"bind": (("named", "bind9"), ("rndc", "bind9")),
             "knot": (("knotd", "knot"), ("knotc", "knot")),
             "nsd": (("nsd", "nsd"), ("nsd-control", "nsd"))}
    for kind in sources:
        for tool, pkg in tools[kind]:
            require_tool(tool, pkg)
    peers = {kind: make_secondary(kind, base / kind, addr, bind_log_severity=bind_log_severity)
             for kind, addr in sources.items()}
    try:
        for p in peers.values():
            p.start()
        for p in peers.values():
            p.wait_ready()
        yield peers
    finally:
        for p in peers.values():
            p.stop()
