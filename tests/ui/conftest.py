"""Browser tests of the web UI: Debian's chromium driven by Playwright, against a real tocsin.

Playwright drives the system's chromium through ``executable_path``; its own browser
download is never used. Without chromium (or Playwright) every browser test skips and
says why; .ci/run installs both, so they run there.

One daemon per module, fed a few alerts at start, with a webhook sink so that the
history has rows. Screenshots go to ``test-artifacts/ui/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import ROOT, Proc, WebhookSink, run_tocsin

ARTIFACTS = ROOT / "test-artifacts" / "ui"

#: Debian puts the browser binary here; /usr/bin/chromium is a shell wrapper around it.
_CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")

CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1h
  routes:
    - matchers: ['team="db"']
      receiver: db
      group_by: [alertname, instance]
    - matchers: ['severity=~"crit.*"']
      receiver: pager
receivers:
  - name: default
  - name: db
    webhook_configs:
      - url: http://127.0.0.1:{port}/hook
  - name: pager
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"""

ALERTS: list[dict[str, Any]] = [
    {
        "labels": {"alertname": "DiskFull", "team": "db", "instance": "db1", "severity": "warning"},
        "annotations": {
            "summary": "Disk /var is 97% full",
            "runbook": "see https://runbooks.example.com/disk for the fix",
        },
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=disk",
    },
    {"labels": {"alertname": "DiskFull", "team": "db", "instance": "db2", "severity": "page"}},
    {
        "labels": {
            "alertname": "HighLatency",
            "team": "web",
            "instance": "web1",
            "severity": "warning",
        }
    },
    {
        "labels": {
            "alertname": "HighLatency",
            "team": "web",
            "instance": "web2",
            "severity": "warning",
        }
    },
]


def chromium_path() -> str | None:
    for candidate in _CHROMIUM_CANDIDATES:
        found = shutil.which(candidate) if "/" not in candidate else candidate
        if found and Path(found).is_file():
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (make venv installs the test extra)")
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, WebhookSink]]:
    tmp = tmp_path_factory.mktemp("ui")
    with WebhookSink() as sink, run_tocsin(tmp, CONFIG.replace("{port}", str(sink.port))) as proc:
        assert proc.post_alerts(ALERTS).status_code == 200
        yield proc, sink


@contextlib.contextmanager
def watched_page(browser: Any, scheme: str, expected_console: re.Pattern[str]) -> Iterator[Any]:
    """A fresh page in ``scheme``; uncaught exceptions and console errors other than
    ``expected_console`` fail the test when the block ends.

    The browser logs every 4xx answer as a console error, so each test module names the
    answers its pages are meant to get.
    """
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not expected_console.search(msg.text)
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not problems, problems


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh light-scheme page; console errors and uncaught exceptions fail the test.

    A 400 is what a test that types a bad matcher expects (the page shows the message),
    so only that one is let through.
    """
    with watched_page(
        browser, getattr(request, "param", "light"), re.compile("status of 400")
    ) as p:
        yield p


def nameless_controls(page: Any) -> list[str]:
    """The visible buttons, links, inputs and selects that have no accessible name."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('button, a, input:not([type=hidden]), select')]
            .filter((e) => e.offsetParent !== null || e.getClientRects().length)
            .filter((e) => !(e.getAttribute('aria-label') || (e.labels && e.labels.length)
                             || e.textContent.trim()))
            .map((e) => e.outerHTML)"""
    )
    return found


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
