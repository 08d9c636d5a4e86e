"""``zonekeeper <noun> <verb>``: the REST API from the command line.

Thin commands: parse arguments, make one API call, print the result as a table (on a
terminal) or JSON (otherwise, or with ``-o json``). Exit status, the same for every command
(``EXIT_STATUS`` is the top-level ``--help`` epilog): 0 success, 1 the operation failed (an
API error, or a failed outcome), 2 usage error or a refused confirmation, 3 the API could not
be reached or did not accept the token.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zonekeeper.text import absolute as with_dot

if TYPE_CHECKING:  # imported where used: ``zonekeeper serve`` loads this module too
    import httpx2
    from rich.progress import Progress

DEFAULT_API_URL = "http://127.0.0.1:8080"

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

EXIT_STATUS = """\b
Exit status (every command):
  0  success
  1  the operation failed: the API refused it or had an error, or its outcome
     is a failure (a FAILED transfer, a NOTIFY not acknowledged, a denied
     'acl check', a zone file with errors)
  2  usage error, or a confirmation refused (or impossible: a destructive
     command without --yes when standard input is not a terminal)
  3  the API could not be reached, or there is no token, the token is not
     valid, or its scope is too small
"""


class Unreachable(click.ClickException):
    """The API cannot be used: not reachable, no token, or the token not accepted."""

    exit_code = EXIT_UNREACHABLE


class NotConfirmed(click.ClickException):
    """A destructive command that was not confirmed."""

    exit_code = EXIT_USAGE


Where = Callable[[Sequence[str | int]], str]


class Api:
    def __init__(self, url: str, token: str | None, output: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.output = output or ("table" if sys.stdout.isatty() else "json")

    def client(self) -> httpx2.Client:
        import httpx2

        if not self.token:
            raise Unreachable(
                "no API token: pass --token or set ZONEKEEPER_TOKEN "
                "(make one with 'zonekeeper token create --bootstrap' on the server host)"
            )
        return httpx2.Client(base_url=self.url + "/api/v1", timeout=120,
                             headers={"Authorization": f"Bearer {self.token}"})

    def call(self, method: str, path: str, *, where: Where | None = None, **kw: Any) -> httpx2.Response:
        """One request; an error answer ends the command (``where`` names each reason's
        place in what was sent, see ``Locator``)."""
        import httpx2

        try:
            with self.client() as c:
                r = c.request(method, path, **kw)
        except (httpx2.ConnectError, httpx2.ConnectTimeout):
            raise Unreachable(
                f"cannot reach the zonekeeper API at {self.url}; is 'zonekeeper serve' running? "
                "(set --api-url or ZONEKEEPER_API_URL)"
            ) from None
        except httpx2.TransportError as exc:
            raise click.ClickException(f"the request to {self.url} failed: {exc}") from None
        if r.status_code >= 400:
            _fail(r, where)
        return r

    def show(self, data: Any, columns: list[str] | None = None) -> None:
        if self.output == "json":
            click.echo(json.dumps(data, indent=2))
            return
        rows = data if isinstance(data, list) else [data]
        if not rows:
            click.echo("(none)")
            return
        from rich.console import Console
        from rich.table import Table

        cols = columns or list(rows[0].keys())
        table = Table(*cols)
        for row in rows:
            table.add_row(*[_cell(row.get(c)) for c in cols])
        Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def absolute(name: str, zone: str | None) -> str:
    """An owner as the API prints it: relative names (``www``, ``@``) completed with the zone."""
    zone_abs = None if zone is None else with_dot(zone.lower())
    if name in ("@", ""):
        return zone_abs or name
    if name.endswith(".") or zone_abs is None:
        return name.lower()
    return f"{name.lower()}.{zone_abs}"


class Locator:
    """Names the place of a problem the API reports in terms of what the command sent:
    ``record 2 of www.example.test. A`` rather than the request's ``body.records.1.content``.

    ``body`` is the JSON sent; ``rrset`` the (owner, type) of a request about one RRset (its
    records are the body's ``records``); ``zone`` completes relative owners.
    """

    def __init__(self, body: Any = None, *, zone: str | None = None,
                 rrset: tuple[str, str] | None = None) -> None:
        self.body = body
        self.zone = zone
        self.rrset = rrset

    def _item(self, field: str, index: int) -> Any:
        items = self.body.get(field) if isinstance(self.body, dict) else None
        return items[index] if isinstance(items, list) and 0 <= index < len(items) else None

    def __call__(self, loc: Sequence[str | int]) -> str:
        parts = list(loc)
        if parts[:1] == ["body"]:
            parts = parts[1:]
        if len(parts) == 2 and parts[0] == "line":
            return f"line {parts[1]}" if parts[1] else "the zone text"
        if len(parts) == 2 and parts[0] == "query":
            return f"parameter {parts[1]}"
        if len(parts) == 3 and parts[0] == "rrsets" and isinstance(parts[1], str):
            return f"{parts[1]} {parts[2]}"  # a check of the content: (rrsets, owner, type)
        rrset = self.rrset
        if len(parts) >= 2 and parts[0] == "rrsets" and isinstance(parts[1], int):
            item = self._item("rrsets", parts[1])
            if isinstance(item, dict) and "name" in item and "type" in item:
                rrset = (str(item["name"]), str(item["type"]))
            elif rrset is None:
                return " ".join(_words([f"RRset {parts[1] + 1}", *parts[2:]]))
            parts = parts[2:]
        if rrset is not None:
            label = f"{absolute(rrset[0], self.zone)} {rrset[1].upper()}"
            if len(parts) >= 2 and parts[0] == "records" and isinstance(parts[1], int):
                return f"record {parts[1] + 1} of {label}"
            if len(parts) == 1 and parts[0] in _RRSET_FIELDS:
                return f"{_RRSET_FIELDS[str(parts[0])]} of {label}"
            if not parts:
                return label
        # Other fields are named as the option that sets them (a list item by its value).
        if len(parts) == 2 and isinstance(parts[1], int):
            value = self._item(str(parts[0]), parts[1])
            if isinstance(value, str | int):
                return f"{_option(str(parts[0]))} {value}"
        if parts and isinstance(parts[-1], str):
            return _option(parts[-1])
        return " ".join(_words(parts)) or "the request"


_RRSET_FIELDS = {"ttl": "TTL", "name": "owner", "type": "type", "records": "records"}
_OPTIONS = {"name": "NAME", "nameservers": "--ns", "primaries": "--primary", "scopes": "--scope",
            "outgoing_enabled": "--outgoing", "zone_text": "--file"}


def _option(field: str) -> str:
    return _OPTIONS.get(field, "--" + field.replace("_", "-"))


def _words(parts: Iterable[str | int]) -> list[str]:
    return [f"#{p + 1}" if isinstance(p, int) else str(p).replace("_", " ") for p in parts]


def _fail(r: httpx2.Response, where: Where | None = None) -> None:
    try:
        body = r.json()
        detail = body.get("detail") or body.get("title") or r.text
        reasons = body.get("errors") or []
    except ValueError:
        detail, reasons = r.text, []
    name = where or Locator()
    lines = [f"error {r.status_code}: {detail}"]
    for e in reasons:
        loc = e.get("loc") or []
        lines.append(f"  {name(loc)}: {e.get('msg')}" if loc else f"  {e.get('msg')}")
    if r.status_code == 401:
        lines.append("  (check --token / ZONEKEEPER_TOKEN)")
    elif r.status_code == 403:
        lines.append("  (this token's scope is too small; an admin can make one with more)")
    click.echo("\n".join(lines), err=True)
    sys.exit(EXIT_UNREACHABLE if r.status_code in (401, 403) else EXIT_FAILED)


yes_option = click.option(
    "--yes", "-y", is_flag=True,
    help="do not ask for confirmation (required when standard input is not a terminal)")


def confirm(action: str, yes: bool, *, notes: Iterable[str] = ()) -> None:
    """Before a destructive command: print ``notes`` (what else it affects), then ask on a
    terminal; without one, only ``--yes`` lets it go on (exit 2 otherwise)."""
    for note in notes:
        click.echo(note, err=True)
    if yes:
        return
    if not sys.stdin.isatty():
        raise NotConfirmed(f"not confirmed: to {action} without a terminal, add --yes")
    try:
        ok = click.confirm(f"{action[0].upper()}{action[1:]}?", default=False, err=True)
    except click.Abort:
        ok = False
    if not ok:
        raise NotConfirmed("not confirmed; nothing was changed")


def pass_api(fn: Any) -> Any:
    """Pass the Api object; also accept -o/--output after the verb (``zone list -o json``)."""
    _pass = click.make_pass_decorator(Api)

    @click.option("-o", "--output", "verb_output", type=click.Choice(["table", "json"]), default=None,
                  help="table on a terminal, json otherwise")
    @_pass
    @functools.wraps(fn)
    def wrapper(api: Api, *args: Any, verb_output: str | None = None, **kwargs: Any) -> Any:
        if verb_output:
            api.output = verb_output
        return fn(api, *args, **kwargs)

    return wrapper


def remote_group(name: str, help_text: str) -> click.Group:
    """A noun whose verbs call the API. --api-url, --token and -o may be given before the
    noun (``zonekeeper -o json zone list``) or right after it (``zonekeeper zone -o json list``)."""

    @click.group(name=name, help=help_text)
    @click.option("--api-url", default=None, help="API base URL (or ZONEKEEPER_API_URL)")
    @click.option("--token", default=None, help="API token (or ZONEKEEPER_TOKEN)")
    @click.option("-o", "--output", type=click.Choice(["table", "json"]), default=None,
                  help="table on a terminal, json otherwise")
    @click.pass_context
    def group(ctx: click.Context, api_url: str | None, token: str | None, output: str | None) -> None:
        root = ctx.find_root().obj or {}
        ctx.obj = Api(
            api_url or root.get("api_url") or DEFAULT_API_URL,
            token or root.get("token"),
            output or root.get("output"),
        )

    return group


def _items(r: httpx2.Response) -> list[dict[str, Any]]:
    body = r.json()
    return body["items"] if isinstance(body, dict) and "items" in body else body


def _all(api: Api, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        p = dict(params or {}, limit=1000, **({"cursor": cursor} if cursor else {}))
        body = api.call("GET", path, params=p).json()
        out += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return out


# -- zone ------------------------------------------------------------------------------------
zone = remote_group("zone", "Zones: list, show, create, set, delete, import, export, notify, member, "
                                    "transfer, status, link, unlink.")


@zone.command("list")
@click.option("--kind", type=click.Choice(["primary", "secondary", "catalog"]),
              help="only zones of this kind")
@pass_api
def zone_list(api: Api, kind: str | None) -> None:
    """List the zones with their kind, serial and state."""
    api.show(_all(api, "/zones", {"kind": kind} if kind else None), ["name", "kind", "serial", "state", "record_count"])


@zone.command("show")
@click.argument("name")
@pass_api
def zone_show(api: Api, name: str) -> None:
    """Show a zone's settings, SOA, serial and state."""
    api.show(api.call("GET", f"/zones/{name}").json())


def _glue(nameservers: Iterable[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """``--ns NAME[=ADDRESS]`` values: the nameserver names, and an A or AAAA RRset per name
    that was given addresses (the glue an in-zone nameserver needs)."""
    names: list[str] = []
    addresses: dict[tuple[str, str], list[str]] = {}
    for value in nameservers:
        name, sep, address = value.partition("=")
        name = name.strip()
        if not name or (sep and not address.strip()):
            raise click.BadParameter(f"{value!r}: give NAME or NAME=ADDRESS", param_hint="--ns")
        if name not in names:
            names.append(name)
        if not sep:
            continue
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            raise click.BadParameter(f"{value!r}: {address.strip()!r} is not an IPv4 or IPv6 "
                                     "address", param_hint="--ns") from None
        owner = with_dot(name)
        addresses.setdefault((owner, "A" if ip.version == 4 else "AAAA"), []).append(str(ip))
    rrsets = [{"name": owner, "type": rdtype, "records": [{"content": a} for a in addrs]}
              for (owner, rdtype), addrs in addresses.items()]
    return names, rrsets


@zone.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(["primary", "secondary", "catalog"]), default="primary",
              show_default=True,
              help="primary: its content is kept here; secondary: transferred from --primary; "
                   "catalog: an RFC 9432 catalog listing the zones linked with 'zone member add'")
@click.option("--primary", "primaries", multiple=True, metavar="PEER",
              help="a peer to transfer a secondary zone from (repeatable, tried in order)")
@click.option("--ns", "nameservers", multiple=True, metavar="NAME[=ADDRESS]",
              help="an apex nameserver (repeatable); one inside the zone needs its address "
                   "as glue: --ns ns1.example.test.=192.0.2.1 (repeat it for more addresses)")
@click.option("--file", "zone_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="create a primary zone from this zone file (its SOA serial is kept)")
@click.option("--serial-policy", type=click.Choice(["increment", "unixtime", "dateserial"]),
              default=None, help="how a primary zone's serial moves on each change [increment]")
@click.option("--catalog", "consume", is_flag=True,
              help="with --kind secondary: consume the zone as an RFC 9432 catalog (its "
                   "members become secondary zones here)")
@click.option("--member-peer", metavar="PEER",
              help="with --kind catalog: every primary zone linked to PEER as a secondary "
                   "is a member automatically")
@pass_api
def zone_create(api: Api, name: str, kind: str, primaries: tuple[str, ...],
                nameservers: tuple[str, ...], zone_file: Path | None,
                serial_policy: str | None, consume: bool, member_peer: str | None) -> None:
    """Create a zone: a primary with --ns (or --file), a secondary with --primary, or a
    catalog (no records to give: its members are linked with 'zone member add')."""
    body: dict[str, Any] = {"name": name, "kind": kind}
    if consume and kind != "secondary":
        raise click.UsageError("--catalog consumes a catalog as a secondary zone: add --kind "
                               "secondary --primary PEER (--kind catalog publishes one)")
    if consume:
        body["catalog"] = True
    if member_peer is not None and kind != "catalog":
        raise click.UsageError("--member-peer is for a catalog: add --kind catalog")
    if member_peer is not None:
        body["member_peer"] = member_peer
    if kind == "catalog":
        given = [o for o, v in (("--ns", nameservers), ("--file", zone_file),
                                ("--primary", primaries)) if v]
        if given:
            raise click.UsageError(f"{', '.join(given)}: not for a catalog zone, whose records "
                                   "are its members ('zonekeeper zone member add')")
        if serial_policy:
            body["serial_policy"] = serial_policy
    elif kind == "secondary":
        given = [o for o, v in (("--ns", nameservers), ("--file", zone_file),
                                ("--serial-policy", serial_policy)) if v]
        if given:
            raise click.UsageError(f"{', '.join(given)}: not for a secondary zone, whose "
                                   "content comes from its primaries")
        if not primaries:
            raise click.UsageError("a secondary zone needs --primary PEER (a peer made with "
                                   "'zonekeeper peer create')")
        body["primaries"] = list(primaries)
    else:
        if primaries:
            raise click.UsageError("--primary is for a secondary zone: add --kind secondary")
        body["nameservers"], rrsets = _glue(nameservers)
        if rrsets:
            body["rrsets"] = rrsets
        if serial_policy:
            body["serial_policy"] = serial_policy
        if zone_file is not None:
            body["zone_text"] = zone_file.read_text()
    made = api.call("POST", "/zones", json=body, where=Locator(body, zone=name)).json()
    api.show(made, ["name", "kind", "serial", "state", "record_count"])


@zone.command("set")
@click.argument("name")
@click.option("--serial-policy", type=click.Choice(["increment", "unixtime", "dateserial"]),
              help="how the serial moves on each change")
@click.option("--outgoing/--no-outgoing", default=None, help="outgoing transfers and NOTIFY on/off")
@click.option("--notify-ns/--no-notify-ns", default=None,
              help="also NOTIFY the apex NS targets (but the SOA MNAME), as BIND's 'notify yes'")
@click.option("--serial", type=int, help="set the serial (a jump forward of less than 2^31)")
@click.option("--mname", help="SOA primary nameserver name")
@click.option("--rname", help="SOA mailbox of the person responsible, as a name")
@click.option("--refresh", type=int, help="SOA refresh, seconds")
@click.option("--retry", type=int, help="SOA retry, seconds")
@click.option("--expire", type=int, help="SOA expire, seconds")
@click.option("--minimum", type=int, help="SOA minimum (negative-answer TTL), seconds")
@click.option("--member-peer", metavar="PEER",
              help="a catalog's member peer: the primary zones linked to PEER as a secondary "
                   "become members")
@click.option("--no-member-peer", is_flag=True,
              help="a catalog follows no peer: the members its peer added leave")
@pass_api
def zone_set(api: Api, name: str, serial_policy: str | None, outgoing: bool | None, notify_ns: bool | None,
             serial: int | None, member_peer: str | None, no_member_peer: bool,
             **soa: Any) -> None:
    """Change a zone's settings or SOA fields (one serial bump)."""
    body: dict[str, Any] = {}
    if member_peer is not None and no_member_peer:
        raise click.UsageError("--member-peer and --no-member-peer: give one")
    if member_peer is not None or no_member_peer:
        body["member_peer"] = member_peer
    if serial_policy:
        body["serial_policy"] = serial_policy
    if outgoing is not None:
        body["outgoing_enabled"] = outgoing
    if notify_ns is not None:
        body["notify_ns"] = notify_ns
    if serial is not None:
        body["serial"] = serial
    soa = {k: v for k, v in soa.items() if v is not None}
    if soa:
        body["soa"] = soa
    if not body:
        raise click.UsageError("nothing to change: give at least one option")
    columns = ["name", "serial", "outgoing_enabled", "record_count"]
    if "member_peer" in body:
        columns.append("member_peer")
    api.show(api.call("PATCH", f"/zones/{name}", json=body).json(), columns)


def _link_notes(zone_name: str, links: list[dict[str, Any]]) -> list[str]:
    """What deleting a zone does to the peers linked to it."""
    notes = []
    secondaries = [x["peer"] for x in links if x.get("role") == "secondary"]
    primaries = [x["peer"] for x in links if x.get("role") == "primary"]
    if secondaries:
        many = len(secondaries) > 1
        notes.append(f"{zone_name} has {len(secondaries)} linked peer{'s' if many else ''} "
                     f"({', '.join(secondaries)}); {'they' if many else 'it'} will stop "
                     "receiving NOTIFY, and transfers of the zone will be refused")
    if primaries:
        many = len(primaries) > 1
        notes.append(f"{zone_name} is transferred from {len(primaries)} linked "
                     f"primar{'ies' if many else 'y'} ({', '.join(primaries)}); "
                     "it will no longer be refreshed or served")
    return notes


@zone.command("delete")
@click.argument("name")
@yes_option
@pass_api
def zone_delete(api: Api, name: str, yes: bool) -> None:
    """Delete a zone, its records and history; says first which linked peers it affects."""
    info = api.call("GET", f"/zones/{name}").json()
    zone_name = info["name"]
    links = api.call("GET", f"/zones/{name}/peers").json()
    count = info.get("record_count")
    what = f"{info['kind']} zone {zone_name}" + (f" ({count} records)" if count else "")
    confirm(f"delete {what}", yes, notes=_link_notes(zone_name, links))
    api.call("DELETE", f"/zones/{name}")
    click.echo(f"zone {zone_name} deleted", err=True)


PROGRESS_MIN_BYTES = 1 << 20


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), console=Console(stderr=True), transient=True)


def _upload(data: bytes, label: str) -> Iterator[bytes] | bytes:
    """The request body; on a terminal, large bodies are sent with a progress bar."""
    if len(data) < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return data

    def chunks() -> Iterator[bytes]:
        with _progress() as bar:
            task = bar.add_task(label, total=len(data))
            for i in range(0, len(data), 256 * 1024):
                piece = data[i : i + 256 * 1024]
                yield piece
                bar.advance(task, len(piece))

    return chunks()


@zone.command("export")
@click.argument("name")
@pass_api
def zone_export(api: Api, name: str) -> None:
    """Print the zone as canonical text (a progress bar on a terminal for large zones)."""
    if not sys.stderr.isatty():
        click.echo(api.call("GET", f"/zones/{name}/export").text, nl=False)
        return
    with api.client() as c, c.stream("GET", f"/zones/{name}/export") as r:
        if r.status_code >= 400:
            r.read()
            _fail(r)
        with _progress() as bar:
            task = bar.add_task(f"export {name}", total=None)
            for chunk in r.iter_bytes():
                sys.stdout.buffer.write(chunk)
                bar.advance(task, len(chunk))
        sys.stdout.flush()


@zone.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="only show the changes and warnings")
@click.option("--force", is_flag=True, help="apply even a large change or an apex NS change")
@pass_api
def zone_import(api: Api, name: str, file: Path, dry_run: bool, force: bool) -> None:
    """Replace a primary zone's content with a zone file (one serial bump; the serial is the
    zone's to set)."""
    r = api.call("POST", f"/zones/{name}/import", content=_upload(file.read_bytes(), f"import {name}"),
                 params={"dry_run": str(dry_run).lower(), "force": str(force).lower()},
                 headers={"content-type": "text/dns"})
    body = r.json()
    if api.output == "json":
        api.show(body)
        return
    for c in body["changes"]:
        click.echo(f"{'+' if c['op'] == 'add' else '-'} {c['name']} {c['ttl']} {c['type']} {c['content']}")
    for w in body["warnings"]:
        click.echo(f"warning: {w}", err=True)
    verb = "applied" if body["applied"] else "not applied (dry run)" if dry_run else "nothing to change"
    click.echo(f"+{body['added']} -{body['removed']} records, {verb}; serial {body['serial']}")


@zone.command("import-from")
@click.argument("name")
@click.option("--address", required=True, help="the running primary's IPv4 or IPv6 address")
@click.option("--port", type=int, default=53, show_default=True, help="the primary's DNS port")
@click.option("--key", help="a TSIG key stored here to sign the AXFR with")
@click.option("--serial-policy", type=click.Choice(["increment", "unixtime", "dateserial"]),
              default="increment", show_default=True,
              help="how the new zone's serial moves on each change from here on")
@pass_api
def zone_import_from(api: Api, name: str, address: str, port: int, key: str | None,
                     serial_policy: str) -> None:
    """Create a primary zone NAME from an AXFR of a running primary (its serial is kept);
    exit 1 with the reason if the primary refuses or cannot be reached."""
    body: dict[str, Any] = {"address": address, "port": port, "serial_policy": serial_policy}
    if key:
        body["key"] = key
    made = api.call("POST", f"/zones/{name}/import-from", json=body).json()
    api.show(made, ["name", "kind", "serial", "state", "record_count"])


@zone.command("promote")
@click.argument("name")
@pass_api
def zone_promote(api: Api, name: str) -> None:
    """Make secondary zone NAME a primary zone: it keeps the version and serial it serves,
    stops following its primaries and takes edits from now on."""
    api.show(api.call("POST", f"/zones/{name}/promote").json(),
             ["name", "kind", "serial", "state", "record_count"])


@zone.command("demote")
@click.argument("name")
@click.option("--primary", "primaries", multiple=True, required=True, metavar="PEER",
              help="a peer to transfer from (repeatable, tried in order)")
@pass_api
def zone_demote(api: Api, name: str, primaries: tuple[str, ...]) -> None:
    """Make primary zone NAME a secondary zone of --primary: it serves what it has until the
    first transfer replaces it, and its records can no longer be edited here."""
    api.show(api.call("POST", f"/zones/{name}/demote", json={"primaries": list(primaries)}).json(),
             ["name", "kind", "serial", "state", "record_count"])


@zone.command("notify")
@click.argument("name")
@click.option("--peer", "peers", multiple=True,
              help="only this linked peer (repeatable; default: every NOTIFY target)")
@pass_api
def zone_notify(api: Api, name: str, peers: tuple[str, ...]) -> None:
    """Send NOTIFY now and print each answer; exit 1 if any was not acknowledged."""
    body = {"peers": list(peers)} if peers else {}
    results = api.call("POST", f"/zones/{name}/notify", json=body).json()
    api.show(results, ["peer", "result", "rcode", "attempts", "serial"])
    if any(r["result"] != "acked" for r in results):
        sys.exit(EXIT_FAILED)


TRANSFER_SUCCESS = ("UPTODATE", "IXFR", "AXFR", "FALLBACK")


@zone.command("transfer")
@click.argument("name")
@click.option("--axfr", is_flag=True, help="force a full transfer (AXFR), even of an older serial")
@click.option("--timeout", type=click.FloatRange(0, 3600, min_open=True), default=60,
              show_default=True, help="seconds to wait for the outcome")
@pass_api
def zone_transfer(api: Api, name: str, axfr: bool, timeout: float) -> None:
    """Refresh a secondary zone from its primaries now and print the outcome.

    Exit 0 when it is UPTODATE, IXFR, AXFR or FALLBACK; 1 when it FAILED, or is still
    RUNNING after --timeout seconds."""
    outcome = api.call("POST", f"/zones/{name}/transfer", json={"axfr": axfr},
                       params={"timeout": timeout}).json()
    api.show(outcome)
    if outcome["result"] == "RUNNING":
        click.echo(f"the transfer is still running after {timeout:g} s; "
                   f"'zonekeeper zone status {name}' shows how it ends", err=True)
    elif outcome["result"] not in TRANSFER_SUCCESS:
        click.echo(f"transfer failed: {outcome.get('error') or outcome['result']}", err=True)
    if outcome["result"] not in TRANSFER_SUCCESS:
        sys.exit(EXIT_FAILED)


@zone.command("status")
@click.argument("name")
@pass_api
def zone_status(api: Api, name: str) -> None:
    """Per linked peer: its serial, lag, last NOTIFY and last transfer; then the node
    answering (its role, the serial it serves) and the node that leads."""
    api.show(api.call("GET", f"/zones/{name}/xfr-status").json(),
             ["peer", "address", "serial", "peer_serial", "serial_lag", "state", "alert", "notify",
              "last_transfer"])
    served = api.call("GET", f"/zones/{name}/served").json()
    leader = served.get("leader") or {}
    node = served["node"]
    click.echo(f"node {node['name']} (role {served['role']}"
               f"{', leading' if served['leading'] else ''}) serves serial {served['serial']}"
               f" (stored {served['stored_serial']}); leader: "
               f"{leader.get('name') or 'none'}"
               f"{'' if not leader or leader.get('held') else ' (lock not held)'}", err=True)


@zone.command("link")
@click.argument("name")
@click.argument("peer")
@click.option("--role", type=click.Choice(["secondary", "primary"]), default="secondary",
              show_default=True,
              help="secondary: gets NOTIFY and may transfer the zone; primary: transferred from")
@pass_api
def zone_link(api: Api, name: str, peer: str, role: str) -> None:
    """Link PEER to zone NAME."""
    api.show(api.call("PUT", f"/zones/{name}/peers/{peer}", json={"role": role}).json())


@zone.command("unlink")
@click.argument("name")
@click.argument("peer")
@yes_option
@pass_api
def zone_unlink(api: Api, name: str, peer: str, yes: bool) -> None:
    """Unlink PEER from zone NAME (a secondary no longer gets NOTIFY, nor transfers by its
    link; a primary is no longer transferred from)."""
    confirm(f"unlink peer {peer} from {name}", yes)
    api.call("DELETE", f"/zones/{name}/peers/{peer}")
    click.echo(f"peer {peer} unlinked from {name}", err=True)


@zone.group("member")
def zone_member() -> None:
    """Members of a catalog zone (RFC 9432): list, add, remove."""


@zone_member.command("list")
@click.argument("catalog")
@pass_api
def zone_member_list(api: Api, catalog: str) -> None:
    """List the zones catalog CATALOG lists, with their id and properties."""
    api.show(_all(api, f"/zones/{catalog}/members"), ["zone", "id", "group", "coo", "automatic"])


@zone_member.command("add")
@click.argument("catalog")
@click.argument("zone_name", metavar="ZONE")
@click.option("--group", help="the member's group property (consumers apply the settings "
                              "they keep for it)")
@click.option("--coo", metavar="CATALOG",
              help="change of ownership: the catalog ZONE may move to")
@pass_api
def zone_member_add(api: Api, catalog: str, zone_name: str, group: str | None,
                    coo: str | None) -> None:
    """List ZONE in catalog CATALOG, or set its properties (those not given are removed)."""
    body = {k: v for k, v in (("group", group), ("coo", coo)) if v is not None}
    api.show(api.call("PUT", f"/zones/{catalog}/members/{zone_name}", json=body).json(),
             ["catalog", "zone", "id", "group", "coo", "serial"])


@zone_member.command("remove")
@click.argument("catalog")
@click.argument("zone_name", metavar="ZONE")
@pass_api
def zone_member_remove(api: Api, catalog: str, zone_name: str) -> None:
    """Remove ZONE from catalog CATALOG (the zone itself stays; consumers drop it)."""
    api.call("DELETE", f"/zones/{catalog}/members/{zone_name}")
    click.echo(f"{zone_name} removed from catalog {catalog}", err=True)


# -- rrset -----------------------------------------------------------------------------------
rrset = remote_group("rrset", "RRsets: list, show, set, delete, apply.")


@rrset.command("list")
@click.argument("zone_name")
@click.option("--name", help="only this owner (relative to the zone, or absolute)")
@click.option("--type", "rdtype", help="only this record type")
@pass_api
def rrset_list(api: Api, zone_name: str, name: str | None, rdtype: str | None) -> None:
    """List a zone's records, one row per record (a disabled one starts with ';')."""
    params = {k: v for k, v in {"name": name, "type": rdtype}.items() if v}
    rows = _all(api, f"/zones/{zone_name}/rrsets", params)
    if api.output == "json":
        api.show(rows)
        return
    flat = [{"name": r["name"], "ttl": r["ttl"], "type": r["type"],
             "content": ("; " if rec["disabled"] else "") + rec["content"]}
            for r in rows for rec in r["records"]]
    api.show(flat, ["name", "ttl", "type", "content"])


@rrset.command("show")
@click.argument("zone_name")
@click.argument("name")
@click.argument("rdtype")
@pass_api
def rrset_show(api: Api, zone_name: str, name: str, rdtype: str) -> None:
    """Show one RRset: its TTL and records."""
    api.show(api.call("GET", f"/zones/{zone_name}/rrsets/{name}/{rdtype}").json())


def _contents(zone_name: str, rdtype: str, words: tuple[str, ...]) -> list[str]:
    """The records that the words after TYPE make, read as a zone file reads record data
    (``read_records``). Words that cannot be read so go to the API as one record, whose
    answer then says what is wrong with it."""
    import dns.exception
    import dns.name

    from zonekeeper.zones.zonefile import read_records

    text = " ".join(words)
    try:
        origin = dns.name.from_text(zone_name)
        return [rd.to_text() for rd in read_records(rdtype, text, origin)] or [text]
    except (dns.exception.DNSException, ValueError):
        return [text]


@rrset.command("set", epilog="""\b
Examples:
  rrset set example.test www A 192.0.2.1 192.0.2.2   two A records
  rrset set example.test @ MX 10 mail.example.test.  one MX record
  rrset set example.test @ MX --record '10 mx1' --record '20 mx2'
  rrset set example.test @ TXT '"v=spf1 -all"'       one string
  rrset set example.test t TXT 'hello world'         two strings, one record""")
@click.argument("zone_name")
@click.argument("name")
@click.argument("rdtype")
@click.argument("rdata", nargs=-1)
@click.option("--record", "records", multiple=True, metavar="RDATA",
              help="one record in zone-file presentation format (repeatable; "
                   "then give no RDATA words)")
@click.option("--ttl", type=int,
              help="the RRset's TTL in seconds (default: the TTL it has, or 3600 for a new one)")
@pass_api
def rrset_set(api: Api, zone_name: str, name: str, rdtype: str, rdata: tuple[str, ...],
              records: tuple[str, ...], ttl: int | None) -> None:
    """Replace the RRset NAME TYPE with the records given (NAME relative to the zone, @ for
    its apex, or absolute with a trailing dot).

    Each --record is exactly one record, read as the data of one zone-file line.

    Without --record, the RDATA words after TYPE are read as a zone file reads record data,
    one record after another: each record takes as many words as its type has fields, so
    'A 192.0.2.1 192.0.2.2' is two records and 'MX 10 mail.example.' is one. A type whose
    last field takes the rest of the line (TXT, DS, SSHFP, TLSA, ...) makes one record of
    all the words. The shell removes your quotes first: TXT 'hello world' reads as the
    zone-file data 'hello world', two strings; TXT '"hello world"' is one string.
    """
    if records and rdata:
        raise click.UsageError("give the records either as --record options or as words "
                               "after TYPE, not both")
    if not records and not rdata:
        raise click.UsageError("give at least one record: RDATA words after TYPE, or --record")
    contents = list(records) if records else _contents(zone_name, rdtype, rdata)
    body: dict[str, Any] = {"records": [{"content": c} for c in contents]}
    if ttl is not None:
        body["ttl"] = ttl
    where = Locator(body, zone=zone_name, rrset=(name, rdtype))
    api.show(api.call("PUT", f"/zones/{zone_name}/rrsets/{name}/{rdtype}", json=body,
                      where=where).json())


@rrset.command("delete")
@click.argument("zone_name")
@click.argument("name")
@click.argument("rdtype")
@yes_option
@pass_api
def rrset_delete(api: Api, zone_name: str, name: str, rdtype: str, yes: bool) -> None:
    """Delete the RRset NAME TYPE (every record of it) from the zone."""
    confirm(f"delete {absolute(name, zone_name)} {rdtype.upper()} from {absolute('@', zone_name)}", yes)
    api.call("DELETE", f"/zones/{zone_name}/rrsets/{name}/{rdtype}")
    click.echo(f"{name} {rdtype} deleted", err=True)


@rrset.command("apply")
@click.argument("zone_name")
@click.argument("file", type=click.File("r"))
@pass_api
def rrset_apply(api: Api, zone_name: str, file: Any) -> None:
    """Apply a JSON change set ({"rrsets": [...]}, as PATCH takes it) in one serial bump."""
    try:
        body = json.load(file)
    except ValueError as exc:
        raise click.UsageError(f"{file.name} is not JSON: {exc}") from None
    api.show(api.call("PATCH", f"/zones/{zone_name}/rrsets", json=body,
                      where=Locator(body, zone=zone_name)).json())


# -- peer ------------------------------------------------------------------------------------
peer = remote_group("peer", "Peers: list, show, create, set, delete, config.")


@peer.command("list")
@pass_api
def peer_list(api: Api) -> None:
    """List the peers."""
    api.show(_items(api.call("GET", "/peers")))


@peer.command("show")
@click.argument("name")
@pass_api
def peer_show(api: Api, name: str) -> None:
    """Show one peer."""
    api.show(api.call("GET", f"/peers/{name}").json())


def _peer_body(address: str | None, port: int | None, key: str | None, notify: bool | None, ixfr: bool | None,
               transfer_from: Iterable[str], tls_only: bool | None = None, tls: bool | None = None,
               tls_verify: str | None = None, tls_spki: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for k, v in (("address", address), ("port", port), ("key", key), ("notify", notify), ("ixfr", ixfr),
                 ("tls_only", tls_only), ("tls", tls), ("tls_verify", tls_verify),
                 ("tls_spki", tls_spki)):
        if v is not None:
            body[k] = v
    nets = list(transfer_from)
    if nets:
        body["transfer_from"] = nets
    return body


_PEER_HELP = {
    "address": "its IPv4 or IPv6 address",
    "port": "its DNS port [53]",
    "key": "the TSIG key that signs NOTIFY and transfers with it",
    "notify": "send it NOTIFY when a linked zone changes [on]",
    "ixfr": "answer its IXFR with differences (else with the whole zone) [on]",
    "transfer_from": "a network it transfers from (repeatable; default: its address)",
    "tls_only": "as a secondary: allow its transfers only over TLS (XoT); cleartext is refused",
    "tls": "as a primary: reach it over TLS (XoT) on --port (853 is the standard port)",
    "tls_verify": "as a primary over TLS: the name its certificate must be valid for",
    "tls_spki": "as a primary over TLS: pin its key (base64 SHA-256 of the SubjectPublicKeyInfo)",
}


@peer.command("create")
@click.argument("name")
@click.option("--address", required=True, help=_PEER_HELP["address"])
@click.option("--port", type=int, help=_PEER_HELP["port"])
@click.option("--key", help=_PEER_HELP["key"])
@click.option("--notify/--no-notify", default=None, help=_PEER_HELP["notify"])
@click.option("--ixfr/--no-ixfr", default=None, help=_PEER_HELP["ixfr"])
@click.option("--transfer-from", multiple=True, help=_PEER_HELP["transfer_from"])
@click.option("--tls-only/--no-tls-only", default=None, help=_PEER_HELP["tls_only"])
@click.option("--tls/--no-tls", default=None, help=_PEER_HELP["tls"])
@click.option("--tls-verify", metavar="NAME", help=_PEER_HELP["tls_verify"])
@click.option("--tls-spki", metavar="PIN", help=_PEER_HELP["tls_spki"])
@pass_api
def peer_create(api: Api, name: str, **kw: Any) -> None:
    """Create a peer: a secondary to notify and serve, or a primary to transfer from."""
    body = {"name": name, **_peer_body(**kw)}
    api.show(api.call("POST", "/peers", json=body, where=Locator(body)).json())


@peer.command("set")
@click.argument("name")
@click.option("--address", help=_PEER_HELP["address"])
@click.option("--port", type=int, help=_PEER_HELP["port"])
@click.option("--key", help=_PEER_HELP["key"])
@click.option("--notify/--no-notify", default=None, help=_PEER_HELP["notify"])
@click.option("--ixfr/--no-ixfr", default=None, help=_PEER_HELP["ixfr"])
@click.option("--transfer-from", multiple=True,
              help="a network it transfers from (repeatable; replaces the list)")
@click.option("--tls-only/--no-tls-only", default=None, help=_PEER_HELP["tls_only"])
@click.option("--tls/--no-tls", default=None, help=_PEER_HELP["tls"])
@click.option("--tls-verify", metavar="NAME", help=_PEER_HELP["tls_verify"] + " ('' clears it)")
@click.option("--tls-spki", metavar="PIN", help=_PEER_HELP["tls_spki"] + " ('' clears it)")
@pass_api
def peer_set(api: Api, name: str, **kw: Any) -> None:
    """Change a peer; options not given stay as they are."""
    body = _peer_body(**kw)
    if not body:
        raise click.UsageError("nothing to change: give at least one option")
    api.show(api.call("PATCH", f"/peers/{name}", json=body, where=Locator(body)).json())


@peer.command("delete")
@click.argument("name")
@yes_option
@pass_api
def peer_delete(api: Api, name: str, yes: bool) -> None:
    """Delete a peer (refused while it is linked to a zone)."""
    confirm(f"delete peer {name}", yes)
    api.call("DELETE", f"/peers/{name}")
    click.echo(f"peer {name} deleted", err=True)


@peer.command("config")
@click.argument("name")
@click.option("--zone", "zone_name", required=True, help="the zone it serves as a secondary")
@click.option("--format", "fmt", type=click.Choice(["bind", "knot", "nsd", "pdns"]), default="bind",
              show_default=True, help="the secondary's software")
@pass_api
def peer_config(api: Api, name: str, zone_name: str, fmt: str) -> None:
    """Print ready-to-paste configuration for the secondary PEER of a zone."""
    click.echo(api.call("GET", f"/peers/{name}/config", params={"zone": zone_name, "format": fmt}).text, nl=False)


# -- key -------------------------------------------------------------------------------------
key = remote_group("key", "TSIG keys: list, show, generate, import, export, delete.")


@key.command("list")
@pass_api
def key_list(api: Api) -> None:
    """List the TSIG keys (never their secrets)."""
    api.show(_items(api.call("GET", "/tsig-keys")))


@key.command("show")
@click.argument("name")
@pass_api
def key_show(api: Api, name: str) -> None:
    """Show one TSIG key (not its secret; see 'key export')."""
    api.show(api.call("GET", f"/tsig-keys/{name}").json())


@key.command("generate")
@click.argument("name")
@click.option("--algorithm", default="hmac-sha256", show_default=True,
              help="hmac-sha256, hmac-sha224, hmac-sha384 or hmac-sha512")
@pass_api
def key_generate(api: Api, name: str, algorithm: str) -> None:
    """Generate a key; its secret is printed this once."""
    api.show(api.call("POST", "/tsig-keys", json={"name": name, "algorithm": algorithm}).json())


@key.command("import")
@click.argument("file", type=click.File("r"))
@pass_api
def key_import(api: Api, file: Any) -> None:
    """Import BIND, Knot, NSD key text or alg:name:secret lines."""
    r = api.call("POST", "/tsig-keys/import", content=file.read().encode(), headers={"content-type": "text/plain"})
    api.show([{k: v for k, v in i.items() if k != "secret"} for i in r.json()["items"]])


@key.command("export")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["bind", "knot", "nsd", "pdns", "dig"]),
              default="bind", show_default=True,
              help="as that software's configuration (dig: the -y argument)")
@pass_api
def key_export(api: Api, name: str, fmt: str) -> None:
    """Print a TSIG key with its secret, for another server's configuration."""
    click.echo(api.call("GET", f"/tsig-keys/{name}/export", params={"format": fmt}).text, nl=False)


@key.command("delete")
@click.argument("name")
@yes_option
@pass_api
def key_delete(api: Api, name: str, yes: bool) -> None:
    """Delete a TSIG key (refused while a peer or rule uses it)."""
    confirm(f"delete TSIG key {name}", yes)
    api.call("DELETE", f"/tsig-keys/{name}")
    click.echo(f"key {name} deleted", err=True)


# -- acl -------------------------------------------------------------------------------------
acl = remote_group("acl", "Access rules: list, create, delete, check.")


@acl.command("list")
@pass_api
def acl_list(api: Api) -> None:
    """List the access rules."""
    api.show(_items(api.call("GET", "/acls")),
             ["id", "zone", "action", "network", "key", "effect", "tls_only"])


@acl.command("create")
@click.option("--action", type=click.Choice(["transfer", "notify", "update"]), required=True,
              help="what the rule is about: transfers out, NOTIFY in, or dynamic UPDATE in")
@click.option("--network", help="address or network the rule admits (name --key too)")
@click.option("--key", help="TSIG key the request must be signed with (name --network too)")
@click.option("--zone", "zone_name", help="only this zone (default: every zone)")
@click.option("--deny", is_flag=True, help="a deny rule (default: allow)")
@click.option("--force", is_flag=True,
              help="allow every address (0.0.0.0/0 or ::/0), refused without it")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="update rules: an owner name it covers (repeatable; relative to --zone; "
                   "*.NAME for every name below NAME); default: the whole zone")
@click.option("--type", "types", multiple=True, metavar="TYPE",
              help="update rules: a record type it covers (repeatable); default: every type")
@click.option("--tls-only", is_flag=True,
              help="transfer rules: allow only over TLS (XoT); a cleartext request is refused")
@pass_api
def acl_create(api: Api, action: str, network: str | None, key: str | None, zone_name: str | None,
               deny: bool, force: bool, names: tuple[str, ...], types: tuple[str, ...],
               tls_only: bool) -> None:
    """An access rule. Give an allow rule both --network and --key: a signed request seen
    on the way verifies again for 300 s, so a key alone admits it from any address
    (README, Security notes). An update rule may narrow what its key changes:
    --action update --zone example.com --key acme --name _acme-challenge --type TXT."""
    body = {"action": action, "network": network, "key": key, "zone": zone_name,
            "effect": "deny" if deny else "allow", **({"force": True} if force else {}),
            **({"names": list(names)} if names else {}), **({"types": list(types)} if types else {}),
            **({"tls_only": True} if tls_only else {})}
    api.show(api.call("POST", "/acls", json=body).json(),
              ["id", "zone", "action", "network", "key", "effect", "names", "types", "tls_only"])


@acl.command("delete")
@click.argument("rule_id", type=int)
@yes_option
@pass_api
def acl_delete(api: Api, rule_id: int, yes: bool) -> None:
    """Delete access rule RULE_ID (the id 'acl list' shows)."""
    confirm(f"delete access rule {rule_id}", yes)
    api.call("DELETE", f"/acls/{rule_id}")
    click.echo(f"rule {rule_id} deleted", err=True)


@acl.command("check")
@click.option("--zone", "zone_name", required=True, help="the zone asked for")
@click.option("--address", required=True, help="the client's address")
@click.option("--key", help="the TSIG key the request is signed with")
@click.option("--action", type=click.Choice(["transfer", "notify", "update"]), default="transfer",
              show_default=True, help="a transfer out, a NOTIFY in, or an UPDATE in")
@click.option("--name", help="update: the owner name changed (default: the apex)")
@click.option("--type", "rdtype", help="update: the record type changed (default: every type)")
@click.option("--tls", is_flag=True, help="transfer: the request comes over TLS (XoT)")
@pass_api
def acl_check(api: Api, zone_name: str, address: str, key: str | None, action: str,
              name: str | None, rdtype: str | None, tls: bool) -> None:
    """Would ADDRESS (with KEY) be allowed, and which rule decides? Exit 1 if not."""
    params = {"zone": zone_name, "address": address, "action": action, **({"key": key} if key else {}),
              **({"tls": "true"} if tls else {}),
              **({"name": name} if name else {}), **({"type": rdtype} if rdtype else {})}
    result = api.call("GET", "/acls/check", params=params).json()
    api.show(result)
    if not result["allowed"]:
        sys.exit(EXIT_FAILED)


# -- token (remote verbs; `token create --bootstrap` is local) ---------------------------------
def token_remote(group: click.Group) -> None:
    @group.command("list")
    @click.option("--api-url", envvar="ZONEKEEPER_API_URL", default=DEFAULT_API_URL,
                  help="API base URL (or ZONEKEEPER_API_URL)")
    @click.option("--token", envvar="ZONEKEEPER_TOKEN", help="API token (or ZONEKEEPER_TOKEN)")
    @click.option("-o", "--output", type=click.Choice(["table", "json"]),
                  help="table on a terminal, json otherwise")
    def token_list(api_url: str, token: str | None, output: str | None) -> None:
        """List the API tokens (never their secrets)."""
        api = Api(api_url, token, output)
        api.show(_items(api.call("GET", "/tokens")), ["id", "name", "scopes", "created_at", "expires_at",
                                                          "last_used_at"])

    @group.command("delete")
    @click.argument("token_id")
    @yes_option
    @click.option("--api-url", envvar="ZONEKEEPER_API_URL", default=DEFAULT_API_URL,
                  help="API base URL (or ZONEKEEPER_API_URL)")
    @click.option("--token", envvar="ZONEKEEPER_TOKEN", help="API token (or ZONEKEEPER_TOKEN)")
    def token_delete(token_id: str, yes: bool, api_url: str, token: str | None) -> None:
        """Delete (revoke) token TOKEN_ID; requests with it get 401 from then on."""
        confirm(f"delete token {token_id}", yes)
        Api(api_url, token, None).call("DELETE", f"/tokens/{token_id}")
        click.echo(f"token {token_id} deleted", err=True)


NOUNS = (zone, rrset, peer, key, acl)
