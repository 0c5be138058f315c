"""How the UI is served: under the route prefix, behind the same web-config auth, with a
strict Content-Security-Policy, from package files only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from daemon import __version__
from tests.integration.processes import run_tocsin
from tests.ui.conftest import ALERTS, CONFIG

PAGES = ["/", "/ui/alerts", "/ui/silences", "/ui/why", "/ui/routes", "/ui/status", "/ui/history"]
STATIC = ["/ui/static/app.js", "/ui/static/app.css"]


def _config() -> str:
    return CONFIG.replace("{port}", "9")


def test_pages_and_static_files_need_the_web_config_password(tmp_path: Path) -> None:
    """With basic_auth_users, every page and script answers 401 until the password comes."""
    password = "s3cret"
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {digest}\n")
    with run_tocsin(tmp_path, _config(), f"--web.config.file={web}") as proc:
        with httpx.Client(base_url=proc.url, timeout=10) as anon:
            for path in PAGES + STATIC:
                resp = anon.get(path)
                assert resp.status_code == 401, path
                assert "tocsin" not in resp.text
        with httpx.Client(base_url=proc.url, timeout=10, auth=("alice", password)) as c:
            for path in PAGES + STATIC:
                assert c.get(path).status_code == 200, path
        with httpx.Client(base_url=proc.url, timeout=10, auth=("alice", "wrong")) as c:
            assert c.get("/").status_code == 401


def test_pages_carry_a_strict_policy_and_no_wildcard_cors(tmp_path: Path) -> None:
    """Pages forbid inline and foreign scripts, are not readable cross-origin and hold no
    data; an unknown static file is a 404 and a path outside the folder is never served."""
    with run_tocsin(tmp_path, _config()) as proc, httpx.Client(base_url=proc.url) as c:
        for path in PAGES:
            resp = c.get(path, headers={"Origin": "https://evil.example"})
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "text/html; charset=utf-8"
            csp = resp.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "access-control-allow-origin" not in resp.headers
            # The shells carry no data (the version, receivers, alerts come through the API).
            assert __version__ not in resp.text and "pager" not in resp.text
            # Everything the page loads comes from this server.
            for ref in re.findall(r'(?:src|href)="([^"]+)"', resp.text):
                assert ref.startswith("/") or ref.startswith("data:") or ref.startswith("#"), ref
        js = c.get("/ui/static/app.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/static/nothing.js").status_code == 404
        assert c.get("/ui/static/..%2Fpages.py").status_code == 404
        assert c.get("/ui/static/../pages.py").status_code == 404


@pytest.mark.browser
def test_ui_works_under_a_route_prefix(tmp_path: Path, browser: Any) -> None:
    """With --web.route-prefix=/am the UI lives at /am/, loads its script from there and
    reads the API under the prefix."""
    from playwright.sync_api import expect

    with run_tocsin(tmp_path, _config(), "--web.route-prefix=/am") as proc:
        assert httpx.post(proc.url + "/am/api/v2/alerts", json=ALERTS[:1]).status_code == 200
        assert httpx.get(proc.url + "/ui/alerts").status_code == 404
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(proc.url + "/am/")
            expect(page.get_by_role("article", name="Alert DiskFull")).to_be_visible()
            expect(page.get_by_role("link", name="Routing tree")).to_have_attribute(
                "href", "/am/ui/routes"
            )
            page.get_by_role("link", name="Routing tree").click()
            expect(page.locator(".node")).to_have_count(3)
        finally:
            context.close()
