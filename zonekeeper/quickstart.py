"""``zonekeeper serve`` answering before its command line and settings are read.

Parsing the command line (click) and validating the settings (pydantic-settings) cost
~0.2 s of imports and work at every start, before the first zone could be read. But the
settings are a function of the command line, the ``ZONEKEEPER_*`` environment, the working
directory, whether standard error is a terminal, the config file in force and the code's
defaults, which change rarely. So each ``zonekeeper serve`` that starts early keeps what its
early start read of its settings (``start.early_view``: the database, the DNS addresses,
the query path's limits; of a COOKIE secret only whether one is set), in a private file
named by a digest of those inputs. The next start with the same inputs finds it, before
importing click or pydantic: it takes the database lock, reads the zones and answers
queries (``start.prestart``), then parses its command line and settings as always. If they
do not give what was kept (the inputs are all in the digest, so they should), the early
answers are stopped and the start goes the usual way, with a warning.

The files go to ``$XDG_CACHE_HOME/zonekeeper/serve`` (``~/.cache`` by default; none without
either), private, at most ``KEEP`` of them (the newest); they hold paths and addresses,
no secrets. Anything wrong with them (unreadable, another format, not the user's own or
writable by others) means an ordinary start.

Imports nothing but the standard library until a kept start is found.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonekeeper import __version__

if TYPE_CHECKING:
    from zonekeeper.start import Prestarted

FORMAT = 1
KEEP = 32
# The code whose defaults decide the settings and the command line.
_CODE = ("settings.py", "start.py", "quickstart.py", "cli/main.py")

_argv: list[str] | None = None  # the command line of a `zonekeeper serve` process
_taken: Prestarted | None = None
_begun = False


def directory() -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.environ.get("HOME")
        if not home:
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "zonekeeper" / "serve"


def _key(argv: list[str]) -> str:
    here = Path(__file__).parent
    code = []
    for name in _CODE:
        st = os.stat(here / name)
        code.append((name, st.st_mtime_ns, st.st_size))
    env = sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("ZONEKEEPER_"))
    inputs = [FORMAT, __version__, os.getcwd(), argv, os.isatty(2), env, code]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def begin(argv: list[str]) -> None:
    """Called by the ``zonekeeper`` command first: if this is a ``serve`` started before
    with the same inputs, start answering with what that start's settings were. Never
    raises: whatever goes wrong, the usual start follows (and reports it)."""
    global _argv, _taken, _begun
    if "serve" not in argv:
        return
    _argv = list(argv)
    started = time.monotonic()
    where = directory()
    if where is None:
        return
    try:
        path = where / f"{_key(_argv)}.json"
        for made in (where, path):  # only our own files, writable by us alone
            st = os.stat(made)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return
        entry = json.loads(path.read_text())
        if entry.get("format") != FORMAT:
            return
        config, digest = entry["config"]
        if config is not None and _digest(config) != digest:
            return
        if config is None and any(os.path.exists(p) for p in entry["absent"]):
            return
        view = entry["view"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        from zonekeeper import logs, start

        logs.configure(view["log"]["level"], view["log"]["format"], defer=True)
        _begun = True
        _taken = start.prestart(view, started)
    except Exception:  # noqa: BLE001 - the usual start says what it is
        _taken = None
    if _taken is None:
        _begun = False


def begun() -> bool:
    """Whether this start is answering from a kept view of its settings."""
    return _begun


def take() -> Prestarted | None:
    """What ``begin`` started (once), or None; from then on, this start is the usual one."""
    global _taken, _begun
    taken, _taken, _begun = _taken, None, False
    return taken


def remember(view: dict[str, Any], config: Path | None, absent: tuple[str, ...] = ()) -> None:
    """Keep ``view`` for the next start with this process's inputs (``config``: the config
    file in force; ``absent``: files whose appearing would change the settings). Only in a
    process started as the ``zonekeeper`` command; errors are ignored (an optimisation)."""
    if _argv is None:
        return
    where = directory()
    if where is None:
        return
    config_path = os.path.abspath(config) if config is not None else None
    entry = {"format": FORMAT, "view": view,
             "config": [config_path, _digest(config_path) if config_path else None],
             "absent": list(absent)}
    try:
        path = where / f"{_key(_argv)}.json"
        text = json.dumps(entry, sort_keys=True)
        try:
            if path.read_text() == text:
                return
        except OSError:
            pass
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        kept = sorted(where.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEEP:]:
            old.unlink(missing_ok=True)
    except (OSError, ValueError):
        return
