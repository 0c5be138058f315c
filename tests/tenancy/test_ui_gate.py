"""The tenancy gate and the web UI: page shells and static files are open, data is not."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import trio

from daemon.api.tenancy import access_of, gate
from daemon.tenancy.identity import Access
from daemon.tenancy.tenants import TenancyConfig, parse_tenancy
from daemon.ui.pages import PAGES, is_shell

TENANCY = parse_tenancy(
    "admins: [{name: ops, token_sha256: "
    + hashlib.sha256(b"admin").hexdigest()
    + "}]\ntenants: {a: {}}\n"
)

#: (method, path below the route prefix, what the gate must make of it)
CASES: list[tuple[str, str, Access]] = [
    *[("GET", path, Access.OPEN) for path in PAGES],
    ("HEAD", "ui/alerts", Access.OPEN),
    ("GET", "ui/static/app.js", Access.OPEN),
    ("GET", "ui/static/app.css", Access.OPEN),
    ("GET", "ui/static/missing.js", Access.OPEN),  # a 404 from the UI, still no data
    # Not a page shell: writes, unknown pages, anything that escapes ui/static/.
    ("POST", "ui/alerts", Access.API),
    ("PUT", "ui/static/app.js", Access.API),
    ("DELETE", "", Access.API),
    ("GET", "ui/nope", Access.API),
    ("GET", "ui", Access.API),
    ("GET", "ui/static/", Access.API),
    ("GET", "ui/static/..", Access.API),
    ("GET", "ui/static/../api/v2/alerts", Access.API),
    ("GET", "ui/static/x/app.js", Access.API),
    ("GET", "ui/alerts/x", Access.API),
    # The data the pages read keeps needing a token.
    ("GET", "api/v2/alerts", Access.API),
    ("GET", "api/v2/status", Access.API),
    ("GET", "api/v2/silences", Access.API),
    ("GET", "api/v1/why", Access.API),
    ("GET", "api/v1/muted", Access.API),
    ("GET", "api/v1/routes", Access.API),
    ("GET", "api/v1/history", Access.API),
    ("GET", "api/v1/tenants", Access.TENANTS),
    ("GET", "metrics", Access.METRICS),
    ("POST", "api/v2/alerts", Access.INGEST),
]


@pytest.mark.parametrize(("method", "path", "access"), CASES)
def test_ui_access_table(method: str, path: str, access: Access) -> None:
    """Only GET/HEAD of the page shells and single static files are open; the rest is as before."""
    assert access_of(method, path, is_shell) is access


def test_without_the_ui_predicate_nothing_extra_is_open() -> None:
    """A gate built without ``open_read`` opens only the health endpoints, as before."""
    assert access_of("GET", "", None) is Access.API
    assert access_of("GET", "ui/static/app.js", None) is Access.API


class Directory:
    """What the gate reads of the daemon's tenants: the tenancy file."""

    tenancy: TenancyConfig = TENANCY


async def call(path: str, method: str = "GET", headers: list[Any] | None = None) -> int:
    """The status the gated app answers; the inner app answers 200 for whatever it gets."""
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = gate(inner, Directory(), "/am", is_shell)  # type: ignore[arg-type]
    scope = {"type": "http", "method": method, "path": path, "headers": headers or []}
    with trio.fail_after(5):
        await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_gate_serves_shells_without_a_token_and_refuses_data() -> None:
    """Behind a route prefix, the shells and the script pass with no token; every data
    path answers 401; a token still opens the data."""
    for path in ("/am", "/am/", "/am/ui/silences", "/am/ui/static/app.js"):
        assert await call(path) == 200, path
    for path in ("/am/api/v2/alerts", "/am/api/v1/why", "/am/api/v1/routes", "/am/ui/nope"):
        assert await call(path) == 401, path
    assert await call("/am/ui/alerts", method="POST") == 401
    auth = [(b"authorization", b"Bearer admin")]
    assert await call("/am/api/v2/alerts", headers=auth) == 200
