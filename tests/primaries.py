"""Real BIND, Knot and NSD processes as *primaries* that zonekeeper follows as a secondary.

They run exactly like the secondaries of tests/peers.py (same temp dirs, loopback addresses,
free ports, control channels, stop by PID), so each class here extends its counterpart
there: the base config that class writes (options, logging, control, keys; no secondary
zones) is kept and the primary zones are added after it. A zone is served from a zone file
in the server's dir and says who gets NOTIFY (zonekeeper's DNS address and port), who may
transfer it (an address, or only holders of its key; or nobody) and whether the server
keeps the history that IXFR answers need:

- BIND: ``also-notify``, ``allow-transfer``, ``ixfr-from-differences``, NOTIFY from 127.0.0.1
  (named only listens there; see BindSecondary);
- Knot: a ``notify`` remote ``via`` its own address, a ``transfer`` ACL, ``zonefile-load:
  difference`` with a journal of changes (or ``whole`` with no journal);
- NSD: ``notify``, ``provide-xfr``, ``outgoing-interface`` (the NOTIFY source),
  ``store-ixfr`` + ``create-ixfr``.

``edit_zone`` rewrites a zone file and reloads that zone, which makes the server compute
the difference (when it keeps history) and send NOTIFY.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.peers import BindSecondary, KnotSecondary, NsdSecondary, _bare


@dataclass(frozen=True)
class PrimaryZone:
    name: str
    text: str  # the zone file, relative names allowed ($ORIGIN is the zone)
    notify: tuple[str, int] | None = None  # zonekeeper's DNS address and port
    transfer_to: str | None = "127.0.0.1"  # the address allowed to transfer; None: nobody
    key: str | None = None  # a key added with add_key: NOTIFY is signed, transfers need it
    ixfr: bool = True  # keep the history IXFR answers need


class PrimaryMixin:
    """The zones a primary serves; the subclasses render them in their server's syntax."""

    workdir: Path
    running: bool
    source: str

    def _init_primary(self) -> None:
        self.served: dict[str, PrimaryZone] = {}

    def zone_file(self, name: str) -> Path:
        return self.workdir / f"{_bare(name)}.zone"

    def serve_zones(self, *zones: PrimaryZone, reload: bool = True) -> None:
        """Write the zone files and (re)configure; a running server reloads its config."""
        for z in zones:
            self.zone_file(z.name).write_text(z.text)
            self.served[_bare(z.name)] = z
        if reload and self.running:
            self.reload()  # type: ignore[attr-defined]

    def edit_zone(self, name: str, text: str) -> None:
        """New zone file text (with a higher serial); the server reloads the zone from it and
        notifies."""
        self.zone_file(name).write_text(text)
        self.reload_zone(_bare(name))

    def reload_zone(self, name: str) -> None:
        raise NotImplementedError

    def primary_config(self) -> str:
        raise NotImplementedError


class BindPrimary(PrimaryMixin, BindSecondary):
    """named with primary zones; NOTIFY and transfers from/to 127.0.0.1."""

    def __init__(self, workdir: Path, *, port: int, ctl_port: int) -> None:
        super().__init__(workdir, source="127.0.0.1", port=port, ctl_port=ctl_port)
        self._init_primary()

    def write_config(self) -> None:
        super().write_config()  # options (notify no unless a zone says so), rndc, keys
        with self.config_path.open("a") as f:
            f.write(self.primary_config())

    def primary_config(self) -> str:
        out = []
        for name, z in self.served.items():
            key = f' key "{self.keys[z.key.rstrip(".").lower()].bare}"' if z.key else ""
            if z.transfer_to is None:
                allow = "none;"
            elif z.key:
                allow = f"key \"{self.keys[z.key.rstrip('.').lower()].bare}\";"
            else:
                allow = f"{z.transfer_to};"
            # notify-delay 0: NOTIFY at once, not after BIND's default 5 s.
            notify = (f" notify explicit; notify-delay 0;"
                      f" also-notify {{ {z.notify[0]} port {z.notify[1]}{key}; }};"
                      if z.notify else " notify no;")
            out.append(f'zone "{name}" {{ type primary; file "{self.zone_file(name)}";{notify}'
                       f" allow-transfer {{ {allow} }};"
                       f" ixfr-from-differences {'yes' if z.ixfr else 'no'}; }};")
        return "\n".join(out) + "\n"

    def reload_zone(self, name: str) -> None:
        self.rndc("reload", name)


class KnotPrimary(PrimaryMixin, KnotSecondary):
    """knotd with primary zones; NOTIFY goes ``via`` its own address."""

    def __init__(self, workdir: Path, *, addr: str, port: int) -> None:
        super().__init__(workdir, addr=addr, port=port)
        self._init_primary()

    def write_config(self) -> None:
        super().write_config()  # server, control, log, keys, the default template
        with self.config_path.open("a") as f:
            f.write(self.primary_config())

    @staticmethod
    def _id(*parts: str) -> str:
        return "_".join(p.rstrip(".").lower().replace(".", "_") for p in parts)

    def primary_config(self) -> str:
        remotes: dict[str, list[str]] = {}
        acls: dict[str, list[str]] = {}
        zones: list[str] = []
        for name, z in self.served.items():
            item = [f"  - domain: {name}", f'    file: "{self.zone_file(name)}"',
                    # Knot loads the file; with history, the difference becomes a journal
                    # entry (the IXFR answer); without, the zone is replaced as a whole.
                    f"    zonefile-load: {'difference' if z.ixfr else 'whole'}",
                    f"    journal-content: {'changes' if z.ixfr else 'none'}"]
            if z.notify:
                rid = self._id("zk", z.notify[0], str(z.notify[1]), *([z.key] if z.key else []))
                keyline = [f"    key: {z.key.rstrip('.')}"] if z.key else []
                remotes[rid] = [f"  - id: {rid}", f"    address: {z.notify[0]}@{z.notify[1]}",
                                f"    via: {self.source}", *keyline]
                item.append(f"    notify: [{rid}]")
            if z.transfer_to is not None:
                aid = self._id("xfr", z.transfer_to, *([z.key] if z.key else []))
                keyline = [f"    key: {z.key.rstrip('.')}"] if z.key else []
                acls[aid] = [f"  - id: {aid}", f"    address: {z.transfer_to}",
                             "    action: transfer", *keyline]
                item.append(f"    acl: [{aid}]")
            zones += item
        out: list[str] = []
        for header, items in (("remote:", remotes), ("acl:", acls)):
            if items:
                out.append(header)
                for lines in items.values():
                    out += lines
        if zones:
            out += ["zone:", *zones]
        return "\n".join(out) + "\n"

    def reload_zone(self, name: str) -> None:
        self.knotc("zone-reload", name)


class NsdPrimary(PrimaryMixin, NsdSecondary):
    """nsd with primary zones; ``outgoing-interface`` is its NOTIFY source."""

    def __init__(self, workdir: Path, *, addr: str, port: int) -> None:
        super().__init__(workdir, addr=addr, port=port)
        self._init_primary()

    def write_config(self) -> None:
        super().write_config()  # server, remote-control, keys
        with self.config_path.open("a") as f:
            f.write(self.primary_config())

    def primary_config(self) -> str:
        out = []
        for name, z in self.served.items():
            key = z.key.rstrip(".") if z.key else "NOKEY"
            out += ["zone:", f'    name: "{name}"', f'    zonefile: "{self.zone_file(name)}"',
                    f"    outgoing-interface: {self.source}"]
            if z.notify:
                out.append(f"    notify: {z.notify[0]}@{z.notify[1]} {key}")
            if z.transfer_to is not None:
                out.append(f"    provide-xfr: {z.transfer_to} {key}")
            if z.ixfr:
                out += ["    store-ixfr: yes", "    create-ixfr: yes"]
        return "\n".join(out) + "\n"

    def reload_zone(self, name: str) -> None:
        self.nsd_control("reload", name)


Primary = BindPrimary | KnotPrimary | NsdPrimary
__all__ = ["BindPrimary", "KnotPrimary", "NsdPrimary", "Primary", "PrimaryZone"]
