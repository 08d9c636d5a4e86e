"""scripts/: the demo and setup scripts, run by bash on a copy of the repository.

The copy's .venv holds stand-ins for python and zonekeeper that write down how they were
called, so the scripts run unchanged without installing anything from a package index."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$(dirname "$0")/../../calls.log"
"""


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", root / "scripts")
    shutil.copytree(REPO / "zonekeeper", root / "zonekeeper",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    bindir = root / ".venv" / "bin"
    bindir.mkdir(parents=True)
    for name in ("python", "zonekeeper"):
        (bindir / name).write_text(STAND_IN)
        (bindir / name).chmod(0o755)
    return root


def _demo(root: Path) -> list[str]:
    """The calls one run of scripts/demo.sh made."""
    log = root / "calls.log"
    log.unlink(missing_ok=True)
    r = subprocess.run(["bash", "scripts/demo.sh", "--log-level", "debug"], cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return log.read_text().splitlines()


def _installs(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("python -m pip install") and "-e" in c]


def test_demo_installs_only_when_the_project_changed(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    calls = _demo(root)
    assert _installs(calls) == ["python -m pip install -q --disable-pip-version-check -e ."]
    assert calls[-1] == "zonekeeper serve --demo --log-level debug"
    calls = _demo(root)
    # Nothing installed again: only the modules' bytecode brought up to date, then serve.
    assert _installs(calls) == [] and calls == ["python -m compileall -q zonekeeper",
                                                "zonekeeper serve --demo --log-level debug"]
    with (root / "pyproject.toml").open("a") as f:
        f.write("\n# changed\n")
    assert len(_installs(_demo(root))) == 1
    assert _installs(_demo(root)) == []
    (root / "zonekeeper" / "added.py").write_text("")
    assert len(_installs(_demo(root))) == 1
    assert _installs(_demo(root)) == []
    (root / "zonekeeper" / "added.py").write_text("VALUE = 1\n")  # the editable install sees it
    assert _installs(_demo(root)) == []
