"""PROMISES.md cannot rot: every test it names exists, and every promise names one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:::(\w+))?`")


def _tests_in(path: Path) -> set[str]:
    """``name`` of every test function and ``Class::name`` of every test method."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            out.add(node.name)
        elif isinstance(node, ast.ClassDef):
            out |= {f"{node.name}::{m.name}" for m in node.body
                    if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
                    and m.name.startswith("test")}
    return out


def promises() -> list[str]:
    """Each promise: a bullet (with its continuation lines) or a row of the limits table."""
    items: list[str] = []
    section = ""
    for line in (ROOT / "PROMISES.md").read_text().splitlines():
        if line.startswith("## "):
            section = line
            continue
        if not section:
            continue
        if line.startswith("- ") or (line.startswith("| ") and not line.startswith("| limit ")):
            items.append(line)
        elif line.startswith("  ") and items and items[-1].startswith("- "):
            items[-1] += " " + line.strip()
    return items


def test_every_test_named_exists() -> None:
    text = (ROOT / "PROMISES.md").read_text()
    refs = REF.findall(text)
    assert len(refs) >= 30, f"only {len(refs)} test references found in PROMISES.md"
    missing = []
    cache: dict[str, set[str]] = {}
    for path, first, second in refs:
        file = ROOT / path
        if not file.is_file():
            missing.append(f"{path} (no such file)")
            continue
        names = cache.setdefault(path, _tests_in(file))
        name = f"{first}::{second}" if second else first
        if name not in names:
            missing.append(f"{path}::{name}")
    assert not missing, f"PROMISES.md names tests that do not exist: {missing}"


def test_every_promise_names_a_test() -> None:
    items = promises()
    assert len(items) >= 25, items
    bare = [item[:80] for item in items if not REF.search(item)]
    assert not bare, f"promises without a test: {bare}"
