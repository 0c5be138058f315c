"""POST /api/v1/alerts with a JSON array: Alertmanager 0.25's v1 alert ingest, which
older clients (falcosidekick, elastalert2) still use."""

from __future__ import annotations

import json

import pytest

from daemon.api.tenancy import v1_alert_routes
from tests.api.conftest import Api, FakeBackend


@pytest.fixture
def v1(backend: FakeBackend) -> Api:
    return Api(backend, extra_routes=v1_alert_routes(None))


async def test_json_array_is_ingested(v1: Api) -> None:
    """A JSON array is stored as POST /api/v2/alerts would, answered v1's way."""
    status, body, _ = await v1.request(
        "POST", "/api/v1/alerts", json.dumps([{"labels": {"alertname": "falco"}}])
    )
    assert status == 200
    assert json.loads(body) == {"status": "success"}
    assert [a.labels for a in v1.backend.store.list()] == [{"alertname": "falco"}]


async def test_invalid_alerts_are_v1_errors(v1: Api) -> None:
    """An invalid alert is a 400 in v1's error shape, and nothing is stored."""
    status, body, _ = await v1.request(
        "POST", "/api/v1/alerts", json.dumps([{"labels": {"a": "b"}, "startsAt": "yesterday"}])
    )
    doc = json.loads(body)
    assert status in (400, 422)
    assert doc["status"] == "error" and doc["errorType"] == "bad_data" and doc["error"]
    assert v1.backend.store.list() == []


async def test_without_tenancy_a_non_array_is_v1_ingest_too(v1: Api) -> None:
    """With tenancy off there is no config API: any body is v1 ingest (and an object
    that is not a payload is refused as Alertmanager refuses it)."""
    status, body, _ = await v1.request("POST", "/api/v1/alerts", "alertmanager_config: x")
    assert status == 400
    assert json.loads(body)["status"] == "error"
