"""docs/: the project's documents stand on their own."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_point_to_no_document_outside_the_repository() -> None:
    pages = sorted(DOCS.glob("*.md"))
    assert {p.name for p in pages} >= {"architecture.md", "interface.md"}
    outside = [(p.name, m.group(0)) for p in pages
               for m in re.finditer(r"(\.\./|/work/|\bshared/)\S*", p.read_text())]
    assert outside == []


def test_interface_states_the_cli_exit_status() -> None:
    text = (DOCS / "interface.md").read_text()
    for row in ("| 0 | success |", "| 1 | the operation failed", "| 2 | usage error",
                "| 3 | the API could not be reached"):
        assert row in text
