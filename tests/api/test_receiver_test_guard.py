"""The receiver-test endpoint's guards: JSON only, no wildcard CORS, access seam, rate limit."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from daemon.api import create_app
from daemon.api.receivers import ReceiverTestRateLimit, TokenBucket, receiver_test_routes
from daemon.clock import FixedClock
from daemon.store import AlertStore
from tests.api.conftest import NOW, config
from tests.notify.receivers.test_receiver_test import ReceiverTestingBackend

PATH = "/api/v1/receivers/team/test"


def _backend() -> ReceiverTestingBackend:
    clock = FixedClock(NOW)
    backend = ReceiverTestingBackend(config("team"), AlertStore(clock), clock)
    backend.answers["team"] = [{"integration": "webhook[0]", "ok": True}]
    return backend


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "*/*"],
)
async def test_only_json_content_type_sends(content_type: str | None) -> None:
    """A POST without Content-Type application/json (what a page can send without a
    preflight) answers 415 and sends nothing."""
    backend = _backend()
    client = create_app(backend, extra_routes=receiver_test_routes()).test_client()
    headers = {"Origin": "https://evil.example"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    resp = await client.post(PATH, data=b"{}", headers=headers)
    assert resp.status_code == 415
    assert backend.asked == []
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_json_with_charset_is_accepted_without_wildcard_cors() -> None:
    """application/json with parameters sends; the answer carries no wildcard CORS."""
    backend = _backend()
    client = create_app(backend, extra_routes=receiver_test_routes()).test_client()
    resp = await client.post(
        PATH,
        data=b"{}",
        headers={"Content-Type": "application/json; charset=utf-8", "Origin": "https://x.example"},
    )
    assert resp.status_code == 200
    assert backend.asked == ["team"]
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_preflight_is_refused() -> None:
    """A browser's CORS preflight gets no allowance, so a page cannot send the POST."""
    client = create_app(_backend(), extra_routes=receiver_test_routes()).test_client()
    resp = await client.options(
        PATH,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert resp.status_code == 405
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Methods" not in resp.headers


async def test_api_v2_keeps_wildcard_cors() -> None:
    """Alertmanager's own API keeps its CORS answer (only the test endpoint drops it)."""
    client = create_app(_backend(), extra_routes=receiver_test_routes()).test_client()
    resp = await client.get("/api/v2/status", headers={"Origin": "https://x.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


class _OnlyAdmin:
    def permits(self, headers: Mapping[str, str], receiver: str) -> bool:
        return headers.get("X-Role") == "admin"


async def test_access_seam_gates_the_test() -> None:
    """The access seam (where tenancy plugs in) refuses with 403 before anything is sent."""
    backend = _backend()
    routes = receiver_test_routes(access=_OnlyAdmin())
    client = create_app(backend, extra_routes=routes).test_client()
    resp = await client.post(PATH, json={})
    assert resp.status_code == 403
    assert backend.asked == []
    resp = await client.post(PATH, json={}, headers={"X-Role": "admin"})
    assert resp.status_code == 200


async def test_rate_limited_with_retry_after() -> None:
    """Past the per-receiver burst the endpoint answers 429 with Retry-After, sending nothing."""
    backend = _backend()
    limit = ReceiverTestRateLimit(per_receiver=(2, 1 / 20), overall=(10, 1))
    client = create_app(backend, extra_routes=receiver_test_routes(rate_limit=limit)).test_client()
    for _ in range(2):
        assert (await client.post(PATH, json={})).status_code == 200
    resp = await client.post(PATH, json={})
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 20
    assert json.loads(await resp.get_data())["error"].startswith("too many")
    assert backend.asked == ["team", "team"]


def test_token_bucket_refills_at_its_rate() -> None:
    """A bucket gives its burst, then one token per 1/rate seconds."""
    bucket = TokenBucket(2, 0.5)
    for _ in range(2):
        assert bucket.wait(0.0) == 0
        bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(2.0)
    assert bucket.wait(1.0) == pytest.approx(1.0)
    assert bucket.wait(2.0) == 0


def test_overall_bucket_limits_across_receivers() -> None:
    """Many receivers together are limited by the overall bucket; a refused test takes
    no token from either bucket."""
    limit = ReceiverTestRateLimit(per_receiver=(5, 1), overall=(3, 0.1))
    assert [limit.admit(f"r{i}", 0.0) for i in range(3)] == [0, 0, 0]
    assert limit.admit("r9", 0.0) == pytest.approx(10.0)
    assert limit.admit("r9", 10.0) == 0
