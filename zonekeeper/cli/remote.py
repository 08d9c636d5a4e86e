"""``zonekeeper <noun> <verb>``: the REST API from the command line.

Thin commands: parse arguments, make one API call, print the result as a table (on a
terminal) or JSON (otherwise, or with ``-o json``). Exit 0 on success, 1 on an API
error (its problem detail and every listed reason on stderr), 2 on usage errors.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
import httpx2
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

DEFAULT_API_URL = "http://127.0.0.1:8080"


class Api:
    def __init__(self, url: str, token: str | None, output: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.output = output or ("table" if sys.stdout.isatty() else "json")

    def client(self) -> httpx2.Client:
        if not self.token:
            raise click.ClickException(
                "no API token: pass --token or set ZONEKEEPER_TOKEN "
                "(make one with 'zonekeeper token create --bootstrap' on the server host)"
            )
        return httpx2.Client(base_url=self.url + "/api/v1", timeout=120,
                             headers={"Authorization": f"Bearer {self.token}"})

    def call(self, method: str, path: str, **kw: Any) -> httpx2.Response:
        try:
            with self.client() as c:
                r = c.request(method, path, **kw)
        except httpx2.ConnectError:
            raise click.ClickException(
                f"cannot reach the zonekeeper API at {self.url}; is 'zonekeeper serve' running? "
                "(set --api-url or ZONEKEEPER_API_URL)"
            ) from None
        if r.status_code >= 400:
            _fail(r)
        return r

    def show(self, data: Any, columns: list[str] | None = None) -> None:
        if self.output == "json":
            click.echo(json.dumps(data, indent=2))
            return
        rows = data if isinstance(data, list) else [data]
        if not rows:
            click.echo("(none)")
            return
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


def _fail(r: httpx2.Response) -> None:
    try:
        body = r.json()
        detail = body.get("detail") or body.get("title") or r.text
        reasons = body.get("errors") or []
    except ValueError:
        detail, reasons = r.text, []
    lines = [f"error {r.status_code}: {detail}"]
    for e in reasons:
        loc = ".".join(str(x) for x in e.get("loc", []))
        lines.append(f"  {loc}: {e.get('msg')}" if loc else f"  {e.get('msg')}")
    if r.status_code == 401:
        lines.append("  (check --token / ZONEKEEPER_TOKEN)")
    elif r.status_code == 403:
        lines.append("  (this token's scope is too small; an admin can make one with more)")
    click.echo("\n".join(lines), err=True)
    sys.exit(1)


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
zone = remote_group("zone", "Zones: list, show, create, set, delete, import, export, notify, status, link.")


@zone.command("list")
@click.option("--kind", type=click.Choice(["primary", "secondary"]))
@pass_api
def zone_list(api: Api, kind: str | None) -> None:
    api.show(_all(api, "/zones", {"kind": kind} if kind else None), ["name", "kind", "serial", "state"])


@zone.command("show")
@click.argument("name")
@pass_api
def zone_show(api: Api, name: str) -> None:
    api.show(api.call("GET", f"/zones/{name}").json())


@zone.command("create")
@click.argument("name")
@click.option("--ns", "nameservers", multiple=True, help="nameserver name (repeatable)")
@click.option("--file", "zone_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="create from this zone file")
@click.option("--serial-policy", type=click.Choice(["increment", "unixtime", "dateserial"]), default="increment")
@pass_api
def zone_create(api: Api, name: str, nameservers: tuple[str, ...], zone_file: Path | None,
                serial_policy: str) -> None:
    body: dict[str, Any] = {"name": name, "serial_policy": serial_policy, "nameservers": list(nameservers)}
    if zone_file is not None:
        body["zone_text"] = zone_file.read_text()
    api.show(api.call("POST", "/zones", json=body).json(), ["name", "kind", "serial"])


@zone.command("set")
@click.argument("name")
@click.option("--serial-policy", type=click.Choice(["increment", "unixtime", "dateserial"]))
@click.option("--outgoing/--no-outgoing", default=None, help="outgoing transfers and NOTIFY on/off")
@click.option("--notify-ns/--no-notify-ns", default=None)
@click.option("--serial", type=int)
@click.option("--mname")
@click.option("--rname")
@click.option("--refresh", type=int)
@click.option("--retry", type=int)
@click.option("--expire", type=int)
@click.option("--minimum", type=int)
@pass_api
def zone_set(api: Api, name: str, serial_policy: str | None, outgoing: bool | None, notify_ns: bool | None,
             serial: int | None, **soa: Any) -> None:
    body: dict[str, Any] = {}
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
    api.show(api.call("PATCH", f"/zones/{name}", json=body).json(), ["name", "serial", "outgoing_enabled"])


@zone.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="do not ask")
@pass_api
def zone_delete(api: Api, name: str, yes: bool) -> None:
    if not yes and sys.stdin.isatty():
        click.confirm(f"delete zone {name} and everything in it?", abort=True)
    api.call("DELETE", f"/zones/{name}")
    click.echo(f"zone {name} deleted", err=True)


PROGRESS_MIN_BYTES = 1 << 20


def _progress() -> Progress:
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
@click.option("--dry-run", is_flag=True)
@click.option("--force", is_flag=True, help="apply even a large change or an apex NS change")
@pass_api
def zone_import(api: Api, name: str, file: Path, dry_run: bool, force: bool) -> None:
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


@zone.command("notify")
@click.argument("name")
@click.option("--peer", "peers", multiple=True)
@pass_api
def zone_notify(api: Api, name: str, peers: tuple[str, ...]) -> None:
    body = {"peers": list(peers)} if peers else {}
    results = api.call("POST", f"/zones/{name}/notify", json=body).json()
    api.show(results, ["peer", "result", "rcode", "attempts", "serial"])
    if any(r["result"] != "acked" for r in results):
        sys.exit(1)


@zone.command("transfer")
@click.argument("name")
@click.option("--axfr", is_flag=True, help="force a full transfer")
@pass_api
def zone_transfer(api: Api, name: str, axfr: bool) -> None:
    """Refresh a secondary zone from its primaries now and print the outcome."""
    api.show(api.call("POST", f"/zones/{name}/transfer", json={"axfr": axfr}).json())


@zone.command("status")
@click.argument("name")
@pass_api
def zone_status(api: Api, name: str) -> None:
    api.show(api.call("GET", f"/zones/{name}/xfr-status").json(),
             ["peer", "address", "serial", "peer_serial", "serial_lag", "state", "alert", "notify",
              "last_transfer"])


@zone.command("link")
@click.argument("name")
@click.argument("peer")
@click.option("--role", type=click.Choice(["secondary", "primary"]), default="secondary", show_default=True)
@pass_api
def zone_link(api: Api, name: str, peer: str, role: str) -> None:
    api.show(api.call("PUT", f"/zones/{name}/peers/{peer}", json={"role": role}).json())


@zone.command("unlink")
@click.argument("name")
@click.argument("peer")
@pass_api
def zone_unlink(api: Api, name: str, peer: str) -> None:
    api.call("DELETE", f"/zones/{name}/peers/{peer}")
    click.echo(f"peer {peer} unlinked from {name}", err=True)


# -- rrset -----------------------------------------------------------------------------------
rrset = remote_group("rrset", "RRsets: list, show, set, delete, apply.")


@rrset.command("list")
@click.argument("zone_name")
@click.option("--name")
@click.option("--type", "rdtype")
@pass_api
def rrset_list(api: Api, zone_name: str, name: str | None, rdtype: str | None) -> None:
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
    api.show(api.call("GET", f"/zones/{zone_name}/rrsets/{name}/{rdtype}").json())


@rrset.command("set")
@click.argument("zone_name")
@click.argument("name")
@click.argument("rdtype")
@click.argument("rdata", nargs=-1, required=True)
@click.option("--ttl", type=int)
@pass_api
def rrset_set(api: Api, zone_name: str, name: str, rdtype: str, rdata: tuple[str, ...], ttl: int | None) -> None:
    body: dict[str, Any] = {"records": [{"content": c} for c in rdata]}
    if ttl is not None:
        body["ttl"] = ttl
    api.show(api.call("PUT", f"/zones/{zone_name}/rrsets/{name}/{rdtype}", json=body).json())


@rrset.command("delete")
@click.argument("zone_name")
@click.argument("name")
@click.argument("rdtype")
@pass_api
def rrset_delete(api: Api, zone_name: str, name: str, rdtype: str) -> None:
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
    api.show(api.call("PATCH", f"/zones/{zone_name}/rrsets", json=body).json())


# -- peer ------------------------------------------------------------------------------------
peer = remote_group("peer", "Peers: list, show, create, set, delete, config.")


@peer.command("list")
@pass_api
def peer_list(api: Api) -> None:
    api.show(_items(api.call("GET", "/peers")))


@peer.command("show")
@click.argument("name")
@pass_api
def peer_show(api: Api, name: str) -> None:
    api.show(api.call("GET", f"/peers/{name}").json())


def _peer_body(address: str | None, port: int | None, key: str | None, notify: bool | None, ixfr: bool | None,
               transfer_from: Iterable[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for k, v in (("address", address), ("port", port), ("key", key), ("notify", notify), ("ixfr", ixfr)):
        if v is not None:
            body[k] = v
    nets = list(transfer_from)
    if nets:
        body["transfer_from"] = nets
    return body


@peer.command("create")
@click.argument("name")
@click.option("--address", required=True)
@click.option("--port", type=int)
@click.option("--key")
@click.option("--notify/--no-notify", default=None)
@click.option("--ixfr/--no-ixfr", default=None)
@click.option("--transfer-from", multiple=True, help="network it pulls from (repeatable)")
@pass_api
def peer_create(api: Api, name: str, **kw: Any) -> None:
    api.show(api.call("POST", "/peers", json={"name": name, **_peer_body(**kw)}).json())


@peer.command("set")
@click.argument("name")
@click.option("--address")
@click.option("--port", type=int)
@click.option("--key")
@click.option("--notify/--no-notify", default=None)
@click.option("--ixfr/--no-ixfr", default=None)
@click.option("--transfer-from", multiple=True)
@pass_api
def peer_set(api: Api, name: str, **kw: Any) -> None:
    body = _peer_body(**kw)
    if not body:
        raise click.UsageError("nothing to change: give at least one option")
    api.show(api.call("PATCH", f"/peers/{name}", json=body).json())


@peer.command("delete")
@click.argument("name")
@pass_api
def peer_delete(api: Api, name: str) -> None:
    api.call("DELETE", f"/peers/{name}")
    click.echo(f"peer {name} deleted", err=True)


@peer.command("config")
@click.argument("name")
@click.option("--zone", "zone_name", required=True)
@click.option("--format", "fmt", type=click.Choice(["bind", "knot", "nsd", "pdns"]), default="bind")
@pass_api
def peer_config(api: Api, name: str, zone_name: str, fmt: str) -> None:
    click.echo(api.call("GET", f"/peers/{name}/config", params={"zone": zone_name, "format": fmt}).text, nl=False)


# -- key -------------------------------------------------------------------------------------
key = remote_group("key", "TSIG keys: list, show, generate, import, export, delete.")


@key.command("list")
@pass_api
def key_list(api: Api) -> None:
    api.show(_items(api.call("GET", "/tsig-keys")))


@key.command("show")
@click.argument("name")
@pass_api
def key_show(api: Api, name: str) -> None:
    api.show(api.call("GET", f"/tsig-keys/{name}").json())


@key.command("generate")
@click.argument("name")
@click.option("--algorithm", default="hmac-sha256", show_default=True)
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
@click.option("--format", "fmt", type=click.Choice(["bind", "knot", "nsd", "pdns", "dig"]), default="bind")
@pass_api
def key_export(api: Api, name: str, fmt: str) -> None:
    click.echo(api.call("GET", f"/tsig-keys/{name}/export", params={"format": fmt}).text, nl=False)


@key.command("delete")
@click.argument("name")
@pass_api
def key_delete(api: Api, name: str) -> None:
    api.call("DELETE", f"/tsig-keys/{name}")
    click.echo(f"key {name} deleted", err=True)


# -- acl -------------------------------------------------------------------------------------
acl = remote_group("acl", "Access rules: list, create, delete, check.")


@acl.command("list")
@pass_api
def acl_list(api: Api) -> None:
    api.show(_items(api.call("GET", "/acls")), ["id", "zone", "action", "network", "key", "effect"])


@acl.command("create")
@click.option("--action", type=click.Choice(["transfer", "notify"]), required=True)
@click.option("--network", help="address or network the rule admits (name --key too)")
@click.option("--key", help="TSIG key the request must be signed with (name --network too)")
@click.option("--zone", "zone_name")
@click.option("--deny", is_flag=True)
@pass_api
def acl_create(api: Api, action: str, network: str | None, key: str | None, zone_name: str | None, deny: bool) -> None:
    """An access rule. Give an allow rule both --network and --key: a signed request seen
    on the way verifies again for 300 s, so a key alone admits it from any address
    (README, Security notes)."""
    body = {"action": action, "network": network, "key": key, "zone": zone_name,
            "effect": "deny" if deny else "allow"}
    api.show(api.call("POST", "/acls", json=body).json(), ["id", "zone", "action", "network", "key", "effect"])


@acl.command("delete")
@click.argument("rule_id", type=int)
@pass_api
def acl_delete(api: Api, rule_id: int) -> None:
    api.call("DELETE", f"/acls/{rule_id}")
    click.echo(f"rule {rule_id} deleted", err=True)


@acl.command("check")
@click.option("--zone", "zone_name", required=True)
@click.option("--address", required=True)
@click.option("--key")
@click.option("--action", type=click.Choice(["transfer", "notify"]), default="transfer")
@pass_api
def acl_check(api: Api, zone_name: str, address: str, key: str | None, action: str) -> None:
    """Would ADDRESS (with KEY) be allowed, and which rule decides?"""
    params = {"zone": zone_name, "address": address, "action": action, **({"key": key} if key else {})}
    result = api.call("GET", "/acls/check", params=params).json()
    api.show(result)
    if not result["allowed"]:
        sys.exit(1)


# -- token (remote verbs; `token create --bootstrap` is local) ---------------------------------
def token_remote(group: click.Group) -> None:
    @group.command("list")
    @click.option("--api-url", envvar="ZONEKEEPER_API_URL", default=DEFAULT_API_URL)
    @click.option("--token", envvar="ZONEKEEPER_TOKEN")
    @click.option("-o", "--output", type=click.Choice(["table", "json"]))
    def token_list(api_url: str, token: str | None, output: str | None) -> None:
        api = Api(api_url, token, output)
        api.show(_items(api.call("GET", "/tokens")), ["id", "name", "scopes", "created_at", "expires_at"])

    @group.command("delete")
    @click.argument("token_id")
    @click.option("--api-url", envvar="ZONEKEEPER_API_URL", default=DEFAULT_API_URL)
    @click.option("--token", envvar="ZONEKEEPER_TOKEN")
    def token_delete(token_id: str, api_url: str, token: str | None) -> None:
        Api(api_url, token, None).call("DELETE", f"/tokens/{token_id}")
        click.echo(f"token {token_id} deleted", err=True)


NOUNS = (zone, rrset, peer, key, acl)
