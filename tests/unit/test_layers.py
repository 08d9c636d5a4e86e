"""Import direction: a layer imports only layers to its right (docs/architecture.md):
cli → api → services → events, server → zones, policy → proto; storage only from services."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "zonekeeper"

# layer → layers it must never import
FORBIDDEN = {
    "proto": {"zones", "server", "services", "storage", "api", "cli", "events", "app", "policy"},
    "policy": {"zones", "server", "services", "storage", "api", "cli", "events", "app"},
    "zones": {"server", "services", "storage", "api", "cli", "events", "app"},
    "storage": {"zones", "server", "services", "api", "cli", "events", "app"},
    "server": {"services", "storage", "api", "cli", "app"},
    "events": {"storage", "api", "cli", "app", "server"},
    "services": {"api", "cli", "app", "server"},
    "api": {"cli", "app", "storage"},
}


def imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "zonekeeper" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_no_wrong_way_imports() -> None:
    wrong = []
    for layer, forbidden in FORBIDDEN.items():
        for path in (PKG / layer).rglob("*.py"):
            bad = imported_layers(path) & forbidden
            if bad:
                wrong.append(f"{path.relative_to(PKG)} imports {sorted(bad)}")
    assert not wrong, "\n".join(wrong)


def test_no_subpackage_shadows_dnspython() -> None:
    assert not (PKG / "dns").exists()
