"""Ready-to-paste configuration that makes a secondary follow a zone from zonekeeper.

The key appears by name only; its secret comes from the explicit key export. Access rules
in it name the primary's address and the key together: a signed request captured on the
way verifies again for 300 s (RFC 8945 keeps no replay cache), so a key alone would admit
it from anywhere (README, Security notes). A peer without a key gets a note saying how to
give it one.

A peer that transfers over TLS only (``tls``: our TLS listener's address and port, and the
pin of our certificate's key when it is known) gets the TLS form: BIND 9.18's ``tls`` block
named on ``primaries``, Knot's (3.4+) ``tls: on`` remote with ``cert-key``; NOTIFY stays on
the DNS port in cleartext (RFC 9103 leaves it so). NSD and PowerDNS get a note instead.
"""

from __future__ import annotations

from typing import NamedTuple

FORMATS = ("bind", "knot", "nsd", "pdns")


class TlsPrimary(NamedTuple):
    """Where a TLS-only peer transfers from: our TLS listener, and the pin (base64 SHA-256
    of the SubjectPublicKeyInfo) of our certificate's key, or None when not known."""

    address: str | None  # None: no TLS listener configured
    port: int
    pin: str | None


def secondary_config(fmt: str, *, zone: str, primary: str, port: int, key: str | None,
                     ixfr: bool = True, key_use: str = "both", peer: str | None = None,
                     tls: TlsPrimary | None = None, catalog: bool = False) -> str:
    """The snippet for ``fmt``. ``key_use`` says what the key signs: "both", "notify" (our
    NOTIFYs; the secondary transfers unsigned) or "transfer" (its transfer requests and SOA
    queries; our NOTIFYs come unsigned). With ``catalog`` (``zone`` is a catalog zone), the
    consumer's side of RFC 9432: the catalog as a secondary zone whose members the
    secondary creates and deletes itself, each transferred from the same primary."""
    if catalog:
        return _consumer_config(fmt, zone=zone, primary=primary, port=port, key=key,
                                ixfr=ixfr, key_use=key_use, peer=peer)
    bare = zone.rstrip(".")
    keyname = key.rstrip(".") if key else None
    xfr_key = keyname if key_use in ("both", "transfer") else None
    notify_key = keyname if key_use in ("both", "notify") else None
    comment = "//" if fmt == "bind" else "#"
    unkeyed = [] if keyname else [
        f"{comment} No TSIG key: transfers and NOTIFY are trusted by address alone. Give the "
        "peer a key, so that rules name key and address:",
        f"{comment}   zonekeeper key generate {bare}-xfr && "
        f"zonekeeper peer set {peer or 'PEER'} --key {bare}-xfr",
    ]
    if tls is not None:
        unkeyed += [f"{comment} This peer transfers over TLS only (RFC 9103): zonekeeper "
                    "refuses its cleartext AXFR/IXFR."]
        if tls.address is None:
            unkeyed += [f"{comment} zonekeeper has no TLS listener yet: set [dns] tls_listen, "
                        "tls_cert and tls_key (port 853 assumed below)."]
        xfr_addr, xfr_port = tls.address or primary, tls.port
    else:
        xfr_addr, xfr_port = primary, port
    if fmt == "bind":
        # named takes NOTIFY from its primaries' addresses and verifies a signed one with the
        # key it was given (added first): the key on "primaries" is for transfers only.
        key_part = f' key "{xfr_key}"' if xfr_key else ""
        tls_name = f"zonekeeper-{bare}-tls"
        tls_part = f" tls {tls_name}" if tls is not None else ""
        lines = [
            f"// Add the key first: zonekeeper key export {keyname} --format bind" if keyname else None,
            *([f"tls {tls_name} {{",
               "    // To verify zonekeeper's certificate (BIND 9.18 \"Strict TLS\"):",
               '    // ca-file "CA-OF-ZONEKEEPER.pem"; remote-hostname "ITS-NAME";',
               "};"] if tls is not None else []),
            f'zone "{bare}" {{',
            "    type secondary;",
            f'    file "secondary/{bare}.db";',
            f"    primaries {{ {xfr_addr} port {xfr_port}{key_part}{tls_part}; }};",
            f"    request-ixfr {'yes' if ixfr else 'no'};",
            "};",
        ]
    elif fmt == "knot":
        key_line = f"    key: {xfr_key}" if xfr_key else None
        notify_key_line = f"    key: {notify_key}" if notify_key else None
        # Identifiers are per zone: Knot refuses a config that defines one twice, and each
        # zone's snippet must paste on its own.
        rid = f"zonekeeper-{bare}"
        tls_lines: list[str | None] = []
        if tls is not None:
            tls_lines = ["    tls: on",  # Knot 3.4 and later
                         f"    cert-key: {tls.pin}" if tls.pin else
                         "    # cert-key: PIN of zonekeeper's key (kdig +tls shows it)"]
        lines = [
            f"# Add the key first: zonekeeper key export {keyname} --format knot" if keyname else None,
            "# Knot 3.4 or later transfers over TLS." if tls is not None else None,
            "remote:",
            f"  - id: {rid}",
            f"    address: {xfr_addr}@{xfr_port}",
            key_line,
            *tls_lines,
            "acl:",
            f"  - id: {rid}-notify",
            f"    address: {primary}",
            notify_key_line,
            "    action: notify",
            "zone:",
            f"  - domain: {bare}",
            f"    master: {rid}",
            f"    acl: {rid}-notify",
        ]
    elif fmt == "nsd":
        xfr = "" if ixfr else "AXFR "
        lines = [
            *(["# NSD 4.7 or later transfers over TLS: add a tls-auth clause and name it after",
               f"# the key on request-xfr ({xfr_addr}@{xfr_port}); NSD 4.6 cannot (zonekeeper "
               f"peer set {peer or 'PEER'} --no-tls-only)."] if tls is not None else []),
            f"# Add the key first: zonekeeper key export {keyname} --format nsd" if keyname else None,
            "zone:",
            f'\tname: "{bare}"',
            f'\tzonefile: "{bare}.zone"',
            f"\tallow-notify: {primary} {notify_key or 'NOKEY'}",
            f"\trequest-xfr: {xfr}{primary}@{port} {xfr_key or 'NOKEY'}",
        ]
    elif fmt == "pdns":
        lines = [
            f"# Import the key first: zonekeeper key export {keyname} --format pdns" if keyname else None,
            ("# PowerDNS does not transfer over TLS: this peer needs cleartext "
             f"(zonekeeper peer set {peer or 'PEER'} --no-tls-only)") if tls is not None else None,
            # PowerDNS has no per-zone NOTIFY setting: it takes a NOTIFY from the zone's
            # primary when it runs as a secondary and allow-notify-from admits the address.
            f"# In pdns.conf: secondary=yes; allow-notify-from (if set) must admit {primary}",
            f"pdnsutil create-secondary-zone {bare} {primary}:{port}",
            f"pdnsutil set-meta {bare} AXFR-MASTER-TSIG {xfr_key}" if xfr_key else None,
            # PowerDNS fetches by AXFR unless the zone's IXFR setting is 1.
            f"pdnsutil set-meta {bare} IXFR 1" if ixfr else None,
        ]
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return "\n".join(line for line in [*unkeyed, *lines] if line is not None) + "\n"


def _consumer_config(fmt: str, *, zone: str, primary: str, port: int, key: str | None,
                     ixfr: bool, key_use: str, peer: str | None) -> str:
    """A catalog consumer: the catalog zone itself is a secondary zone as any other (the
    plain snippet), plus what makes the secondary act on its members."""
    bare = zone.rstrip(".")
    keyname = key.rstrip(".") if key else None
    xfr_key = keyname if key_use in ("both", "transfer") else None
    notify_key = keyname if key_use in ("both", "notify") else None
    plain = secondary_config(fmt, zone=zone, primary=primary, port=port, key=key, ixfr=ixfr,
                             key_use=key_use, peer=peer)
    if fmt == "bind":
        key_part = f' key "{xfr_key}"' if xfr_key else ""
        lines = [
            f"// Catalog zone {bare} (RFC 9432): named creates and deletes a secondary zone "
            "for each member it lists,",
            f"// transferred from {primary} port {port}. Inside options {{ }} (or the view): "
            "named takes one",
            "// catalog-zones statement; if there is one already, add this zone clause to it.",
            "catalog-zones {",
            f'    zone "{bare}" default-primaries {{ {primary} port {port}{key_part}; }};',
            "};",
            "// At the top level: the catalog zone itself.",
        ]
        return "\n".join(lines) + "\n" + plain
    if fmt == "knot":
        rid = f"zonekeeper-{bare}"
        # A member zone takes its settings from this template alone (not from "default"):
        # no zone file, its content kept in the journal (the database storage).
        template = [
            f"# Catalog zone {bare} (RFC 9432): knotd creates and deletes a zone for each "
            f"member it lists, with template {rid}-members.",
            "template:",
            f"  - id: {rid}-members",
            f"    master: {rid}",
            f"    acl: {rid}-notify",
            "    zonefile-load: none",
            "    zonefile-sync: -1",
            "    journal-content: all",
        ]
        head, sep, zone_part = plain.partition("zone:\n")
        return (head + "\n".join(template) + "\n" + sep + zone_part
                + "    catalog-role: interpret\n"
                f"    catalog-template: {rid}-members\n")
    if fmt == "nsd":
        pattern = f"zonekeeper-{bare}-members"
        lines = [
            f"# Catalog zone {bare} (RFC 9432), for NSD 4.9 and later: members are added "
            f"with pattern {pattern}.",
            "pattern:",
            f'\tname: "{pattern}"',
            f"\tallow-notify: {primary} {notify_key or 'NOKEY'}",
            f"\trequest-xfr: {'' if ixfr else 'AXFR '}{primary}@{port} {xfr_key or 'NOKEY'}",
        ]
        return (plain + "\tcatalog: consumer\n"
                f'\tcatalog-member-pattern: "{pattern}"\n' + "\n".join(lines) + "\n")
    if fmt == "pdns":
        return (plain + f"# PowerDNS 4.7 and later consume catalog zones: make {bare} one\n"
                f"pdnsutil set-kind {bare} consumer\n")
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
