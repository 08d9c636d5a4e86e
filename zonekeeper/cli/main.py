"""The ``zonekeeper`` command: local commands (serve, db, token --bootstrap, config, check-zone).

Only this package prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import dns.name
import tomli_w
from pydantic import ValidationError

from zonekeeper import __version__
from zonekeeper.cli.remote import DEFAULT_API_URL, EXIT_STATUS, NOUNS, Api, token_remote
from zonekeeper.text import absolute


def _settings(ctx: click.Context, flags: dict[tuple[str, str], Any] | None = None) -> Any:
    from zonekeeper.settings import load_settings

    overrides: dict[str, dict[str, Any]] = {}
    for (section, key), value in (flags or {}).items():
        if value not in (None, (), []):
            overrides.setdefault(section, {})[key] = list(value) if isinstance(value, tuple) else value
    try:
        return load_settings(ctx.obj.get("config"), **overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"bad configuration: {problems}") from None
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(epilog=EXIT_STATUS)
@click.version_option(__version__, prog_name="zonekeeper")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="TOML config file (default: $ZONEKEEPER_CONFIG or /etc/zonekeeper/zonekeeper.toml)")
@click.option("--api-url", envvar="ZONEKEEPER_API_URL", default=DEFAULT_API_URL, show_default=True,
              help="API base URL for the remote commands")
@click.option("--token", envvar="ZONEKEEPER_TOKEN", default=None, help="API token (or ZONEKEEPER_TOKEN)")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default=None,
              help="table on a terminal, json otherwise")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, api_url: str, token: str | None,
        output: str | None) -> None:
    """zonekeeper: an authoritative DNS primary that transfers zones out."""
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, api_url=api_url, token=token, output=output)


@cli.command()
@click.option("--config", "config_flag", type=click.Path(path_type=Path), default=None,
              help="TOML config file")
@click.option("--dns-listen", multiple=True, help="ADDR:PORT for DNS over UDP and TCP (repeatable)")
@click.option("--tls-listen", multiple=True,
              help="ADDR:PORT for DNS over TLS and zone transfers over TLS (repeatable; "
                   "853 is the standard port)")
@click.option("--tls-cert", default=None, help="certificate chain for the TLS listener (PEM file)")
@click.option("--tls-key", default=None, help="private key for the TLS listener (PEM file)")
@click.option("--api-listen", default=None, help="ADDR:PORT for the HTTP API")
@click.option("--database", default=None, help="database URL (sqlite:///PATH or postgresql+psycopg://…)")
@click.option("--log-format", type=click.Choice(["console", "json"]), default=None,
              help="log lines for people, or JSON (default: json when stderr is not a terminal)")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="the least important lines logged [info]")
@click.option("--demo", is_flag=True, help="create the demo zone example.test. if it is missing")
@click.option("--migrate", is_flag=True, help="upgrade an older database schema")
@click.option("--nsid", default=None,
              help='the NSID answered to queries that ask (RFC 5001), e.g. --nsid "$(hostname)"')
@click.option("--role", type=click.Choice(["all", "dns", "api"]), default=None,
              help="what this node serves: DNS and the API, DNS only, or the API only [all]")
@click.pass_context
def serve(ctx: click.Context, config_flag: Path | None, dns_listen: tuple[str, ...],
          tls_listen: tuple[str, ...], tls_cert: str | None, tls_key: str | None,
          api_listen: str | None, database: str | None, log_format: str | None,
          log_level: str | None, demo: bool, migrate: bool, nsid: str | None,
          role: str | None) -> None:
    """Serve DNS and the API until SIGINT or SIGTERM (SIGHUP reloads the TLS certificate)."""
    if config_flag is not None:
        ctx.obj["config"] = config_flag
    settings = _settings(
        ctx,
        {
            ("dns", "listen"): dns_listen,
            ("dns", "tls_listen"): tls_listen,
            ("dns", "tls_cert"): tls_cert,
            ("dns", "tls_key"): tls_key,
            ("api", "listen"): api_listen,
            ("database", "url"): database,
            ("log", "format"): log_format,
            ("log", "level"): log_level,
            ("dns", "nsid"): nsid,
            ("server", "role"): role,
        },
    )
    import uvloop

    from zonekeeper import logs
    from zonekeeper.settings import config_path
    from zonekeeper.start import StartupError
    from zonekeeper.start import serve as run

    logs.configure(settings.log.level, settings.log.format)
    try:
        uvloop.run(run(settings, demo=demo, migrate=migrate,
                       config_file=config_path(ctx.obj.get("config"))))
    except StartupError as exc:
        click.echo(f"zonekeeper: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--database", default=None, help="database URL")
@click.pass_context
def db_upgrade(ctx: click.Context, database: str | None) -> None:
    """Create or upgrade the database schema."""
    from zonekeeper.local import upgrade_schema

    settings = _settings(ctx, {("database", "url"): database})
    click.echo(f"schema at {upgrade_schema(settings.database.url)}")


@cli.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--name", default="admin", show_default=True, help="a name to recognise it by")
@click.option("--scope", "scopes", multiple=True, default=("admin",), show_default=True,
              type=click.Choice(["read", "write", "admin"]),
              help="read: GET; write: also changes; admin: also keys and tokens (repeatable)")
@click.option("--bootstrap", is_flag=True,
              help="write the token straight into the local database (no API needed)")
@click.option("--database", default=None, help="database URL (with --bootstrap)")
@click.option("--api-url", envvar="ZONEKEEPER_API_URL", default=DEFAULT_API_URL,
              help="API base URL (or ZONEKEEPER_API_URL)")
@click.option("--token", "api_token", envvar="ZONEKEEPER_TOKEN", default=None,
              help="an admin API token to make it with (or ZONEKEEPER_TOKEN)")
@click.pass_context
def token_create(ctx: click.Context, name: str, scopes: tuple[str, ...], bootstrap: bool,
                 database: str | None, api_url: str, api_token: str | None) -> None:
    """Create a token and print it once (--bootstrap: locally, else through the API)."""
    if not bootstrap:
        api = Api(api_url, api_token, "json")
        body = api.call("POST", "/tokens", json={"name": name, "scopes": list(scopes)}).json()
        click.echo(body["token"])
        click.echo(f"token {body['id']} ({' '.join(body['scopes'])}); it is shown only now", err=True)
        return
    from zonekeeper.local import create_token

    settings = _settings(ctx, {("database", "url"): database})
    try:
        secret, info = create_token(settings.database.url, name, list(scopes))
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(str(exc)) from None
    click.echo(secret)
    click.echo(f"token {info['id']} ({' '.join(info['scopes'])}); it is shown only now", err=True)


token_remote(token)


@cli.group()
def user() -> None:
    """Web console users (made on the server host, in the local database)."""


@user.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin"]), required=True,
              help="viewer: sees everything; editor: also changes zones, records, links and "
                   "rules; admin: also keys, peers' secrets, users and tokens")
@click.option("--password-stdin", is_flag=True,
              help="read the password as one line from standard input (no prompt)")
@click.option("--database", default=None, help="database URL (default: the configured one)")
@click.pass_context
def user_create(ctx: click.Context, name: str, role: str, password_stdin: bool,
                database: str | None) -> None:
    """Create a console user NAME; the password is asked twice on a terminal."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError("not a terminal: give the password with --password-stdin")
    from zonekeeper.errors import ZonekeeperError
    from zonekeeper.local import create_user

    settings = _settings(ctx, {("database", "url"): database})
    try:
        info = create_user(settings.database.url, name, role, password)
    except ZonekeeperError as exc:
        reasons = "; ".join(f"{r.loc[-1]}: {r.msg}" for r in exc.reasons)
        raise click.ClickException(f"{exc.detail}{': ' + reasons if reasons else ''}") from None
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {info['name']} ({info['role']}) created", err=True)


@cli.group()
def config() -> None:
    """Configuration."""


_SECRET_FIELDS = {("api", "bootstrap_token")}


def _masked(settings: Any) -> dict[str, Any]:
    from zonekeeper.local import shown_url

    data = settings.model_dump(mode="json")
    for section, key in _SECRET_FIELDS:
        if data.get(section, {}).get(key):
            data[section][key] = "***"
    data["database"]["url"] = shown_url(data["database"]["url"])
    return {s: {k: v for k, v in d.items() if v is not None} for s, d in data.items()}


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration (secrets masked)."""
    click.echo(tomli_w.dumps(_masked(_settings(ctx))), nl=False)


@config.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Check the configuration; exit 1 naming the bad key."""
    _settings(ctx)
    click.echo("configuration ok")


@config.command("init")
@click.pass_context
def config_init(ctx: click.Context) -> None:
    """Print a config file with every default."""
    from zonekeeper.settings import Settings

    click.echo(tomli_w.dumps(_masked(Settings())), nl=False)


@cli.command("check-zone")
@click.argument("origin")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("-o", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="named-checkzone-style lines, or one JSON document")
def check_zone(origin: str, file: Any, output: str) -> None:
    """Check a zone file offline, named-checkzone style; exit 1 on errors."""
    from zonekeeper.errors import Invalid
    from zonekeeper.services.zones import raise_parse_problems
    from zonekeeper.zones.zonefile import parse_zone_text

    name = dns.name.from_text(absolute(origin))
    parsed = parse_zone_text(file.read(), name)
    where = getattr(file, "name", "-")
    try:
        raise_parse_problems(parsed)
        errors = []
    except Invalid as exc:
        errors = [(r.loc[1], r.msg) for r in exc.reasons]
        if exc.more:
            errors.append((0, f"{exc.more} more problem(s) not listed"))
    warnings = [(w.line or 0, w.msg) for w in parsed.warnings]
    if output == "json":
        click.echo(json.dumps({
            "zone": name.to_text(),
            "errors": [{"line": ln, "msg": m} for ln, m in errors],
            "warnings": [{"line": ln, "msg": m} for ln, m in warnings],
        }))
    else:
        for ln, m in warnings:
            click.echo(f"{where}:{ln}: warning: {m}")
        for ln, m in errors:
            click.echo(f"{where}:{ln}: {m}")
        if errors:
            click.echo(f"zone {name.to_text()}/IN: not loaded due to errors.")
        else:
            soa = parsed.content.get(name, 6)
            serial = soa.records[0].rdata.serial if soa else 0  # type: ignore[attr-defined]
            click.echo(f"zone {name.to_text()}/IN: loaded serial {serial}")
            click.echo("OK")
    sys.exit(1 if errors else 0)


for _noun in NOUNS:
    cli.add_command(_noun)


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
