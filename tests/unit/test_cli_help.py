"""The CLI's help: every command and option says in a line what it is for, and the top-level
help states the exit status of every command."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from zonekeeper.cli.main import cli


def _commands(group: click.Group, path: str = "zonekeeper") -> Iterator[tuple[str, click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        yield f"{path} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{path} {name}")


def test_every_command_and_option_has_help() -> None:
    commands = list(_commands(cli))
    assert len(commands) > 40
    missing = []
    for path, cmd in commands:
        if not (cmd.help or cmd.short_help or "").strip():
            missing.append(path)
        for param in cmd.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[-1]}")
    assert missing == []


def test_every_help_page_renders() -> None:
    runner = CliRunner()
    for path, _cmd in _commands(cli):
        r = runner.invoke(cli, [*path.split()[1:], "--help"], obj={})
        assert r.exit_code == 0, (path, r.output)
        assert "Usage:" in r.output


def test_top_level_help_states_the_exit_status() -> None:
    out = " ".join(CliRunner().invoke(cli, ["--help"], obj={}).output.split())
    assert "Exit status (every command):" in out
    for code, meaning in [("0", "success"), ("1", "the operation failed"),
                          ("2", "usage error, or a confirmation refused"),
                          ("3", "the API could not be reached")]:
        assert f"{code} {meaning}" in out
