"""The web console in a real browser: Debian's chromium driven by Playwright (never a
downloaded browser), against a real ``zonekeeper serve`` with console users made by the
real ``zonekeeper user create``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRETS, ZkServer, require_tool

ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORDS = {"ada": "ada-password-1", "eve": "eve-password-1", "vic": "vic-password-1"}
ROLES = {"ada": "admin", "eve": "editor", "vic": "viewer"}
SECRETS.update(PASSWORDS.values())  # no server log may hold a password (tests/conftest.py)
# As the probe of this machine ran it: no sandbox (root), no GPU, no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def create_user(srv: ZkServer, name: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zonekeeper", "user", "create", name, "--role", role,
         "--password-stdin", "--database", srv.database],
        input=password + "\n", capture_output=True, text=True, timeout=60, cwd=srv.workdir)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    srv = ZkServer(tmp_path_factory.mktemp("console")).start()
    for name, role in ROLES.items():
        done = create_user(srv, name, role, PASSWORDS[name])
        assert done.returncode == 0, done.stderr
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    exe = require_tool("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: scripts/setup.sh --test installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(browser: Any, srv: ZkServer, user: str, *, width: int = 1280,
            confirm: bool = True) -> Any:
    """A new browser context signed in as ``user``; returns its page. With ``confirm``, every
    "are you sure?" dialog (``data-confirm``) is answered yes; without it the test answers."""
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=srv.api_url)
    page = context.new_page()
    if confirm:
        page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/ui/")
    assert "/ui/login" in page.url  # signed out: sent to sign in, and back after
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/")
    return page


def shot(page: Any, name: str) -> None:
    """A screenshot of the page at 1280 and 390 px wide, under tests/web/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size(size)
