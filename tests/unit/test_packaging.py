"""pyproject.toml: metadata that current setuptools reads without deprecation warnings."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression() -> None:
    # A table (license = { text = ... }) is deprecated since setuptools 77, which reads an
    # SPDX expression; older setuptools cannot, so the build requires 77 or later.
    assert PYPROJECT["project"]["license"] == "MIT"
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]
