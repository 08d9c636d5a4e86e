"""/api/docs: Swagger UI from the package's own files, under the console's CSP, so it
works offline and on networks that block CDNs. Checked over HTTP, then in Chromium."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

import httpx2

from tests.conftest import ZkServer
from tests.web.test_console import STATIC

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")


def test_vendored_swagger_ui_is_the_recorded_files() -> None:
    recorded = (STATIC / "VENDORED.md").read_text()
    for name in ASSETS:
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        assert digest in recorded, name


def test_docs_page_references_only_its_own_origin_and_each_asset_loads(zk: ZkServer) -> None:
    with httpx2.Client(base_url=zk.api_url, timeout=30) as http:
        page = http.get("/api/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        console = http.get("/ui/login")
        # The console's policy (scripts, styles, requests: 'self' only, no inline script),
        # and data: images for the icons in Swagger UI's stylesheet.
        csp = console.headers["content-security-policy"]
        assert csp.startswith("default-src 'self';") and "img-src" not in csp
        assert page.headers["content-security-policy"] == csp + "; img-src 'self' data:"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text  # no inline script: the CSP would block it
        refs = re.findall(r'(?:src|href|data-openapi)="([^"]+)"', page.text)
        assert len(refs) == 5, refs  # icon, stylesheet, bundle, starter, OpenAPI document
        for ref in refs:
            parts = urlsplit(ref)
            assert not parts.scheme and not parts.netloc and ref.startswith("/"), ref
            r = http.get(ref)
            assert r.status_code == 200 and r.content, ref
            kind = r.headers["content-type"]
            expected = {"js": "text/javascript", "css": "text/css", "png": "image/png",
                        "json": "application/json"}[ref.rsplit(".", 1)[-1]]
            assert kind.startswith(expected), (ref, kind)
        for name in ASSETS:
            served = http.get(f"/ui/static/{name}").content
            assert served == (STATIC / name).read_bytes(), name


def test_docs_render_in_chromium_with_nothing_from_elsewhere(zk: ZkServer, browser: Any) -> None:
    context = browser.new_context(base_url=zk.api_url)
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto("/api/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="zonekeeper").wait_for(timeout=30_000)
    page.get_by_text("/api/v1/zones", exact=True).first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() > 20  # the operations are listed
    page.wait_for_load_state("networkidle")
    origin = zk.api_url
    assert requests and all(url.startswith(origin + "/") for url in requests), requests
    assert not problems, problems  # no CSP violation, no script error
    context.close()
