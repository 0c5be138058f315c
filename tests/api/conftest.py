"""A fake ApiBackend, a quart test client over it, and OpenAPI schema checks."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import jsonschema
import pytest
import yaml

from daemon.alert import Alert
from daemon.api import AlertStatus, create_app
from daemon.api.app import default_api_routes
from daemon.api.silences import silence_routes
from daemon.clock import NS_PER_SECOND, FixedClock
from daemon.config.model import Config, GlobalConfig, Receiver, Route
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.silence.state import Silences
from daemon.store import AlertStore

S = NS_PER_SECOND
#: 2026-01-01T00:00:00Z
NOW = 1_767_225_600 * S
SPEC = yaml.safe_load((Path(__file__).parents[2] / "daemon/api/openapi-v2.yaml").read_text())
_MILLIS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

_formats = jsonschema.FormatChecker(formats=())


@_formats.checks("date-time")
def _is_api_time(value: object) -> bool:
    return not isinstance(value, str) or _MILLIS.fullmatch(value) is not None


def validate(body: Any, schema: Mapping[str, Any]) -> None:
    """Validate ``body`` against a schema whose ``$ref``s point into the spec's definitions."""
    full = {**schema, "definitions": SPEC["definitions"]}
    jsonschema.Draft4Validator(full, format_checker=_formats).validate(body)


RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "/alerts": {"$ref": "#/definitions/gettableAlerts"},
    "/alerts/groups": {"$ref": "#/definitions/alertGroups"},
    "/receivers": SPEC["paths"]["/receivers"]["get"]["responses"]["200"]["schema"],
    "/status": {"$ref": "#/definitions/alertmanagerStatus"},
}


def config(*receivers: str, original: str = "route:\n  receiver: default\n") -> Config:
    names = receivers or ("default",)
    return Config(
        global_=GlobalConfig(),
        route=Route(receiver=names[0]),
        receivers=tuple(Receiver(n) for n in names),
        original=original,
    )


@attrs.define
class FakeBackend:
    """Routing, groups and statuses are plain data the test sets."""

    config: Config
    store: AlertStore
    clock: FixedClock
    uptime: int = NOW - 3600 * S
    route_prefix: str = "/"
    version_info: dict[str, str] = attrs.field(
        factory=lambda: {
            "branch": "main",
            "buildDate": "20260101-00:00:00",
            "buildUser": "ci",
            "goVersion": "python3.11",
            "revision": "abc",
            "version": "0.1.0",
        }
    )
    #: label value of ``team`` -> receivers; alerts without a match go to "default".
    routes: dict[str, list[str]] = attrs.field(factory=dict)
    group_list: list[GroupSnapshot] = attrs.field(factory=list)
    statuses: dict[int, AlertStatus] = attrs.field(factory=dict)
    status_calls: int = 0
    cluster: dict[str, Any] = attrs.field(factory=lambda: {"peers": [], "status": "disabled"})
    is_ready: bool = True
    reload_error: str | None = None
    #: Every alert the intake stored, as put_alerts handed them on.
    ingested: list[Alert] = attrs.field(factory=list)

    def put_alerts(self, alerts: Sequence[Alert], now: int) -> None:
        self.ingested.extend(self.store.put(alerts, now))

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        return list(self.routes.get(labels.get("team", ""), ["default"]))

    def groups(self) -> list[GroupSnapshot]:
        return list(self.group_list)

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        self.status_calls += 1
        return self.statuses.get(alert.fingerprint, AlertStatus())

    def cluster_status(self) -> Mapping[str, Any]:
        return self.cluster

    def ready(self) -> bool:
        return self.is_ready

    async def reload(self) -> str | None:
        return self.reload_error


@pytest.fixture
def backend() -> FakeBackend:
    clock = FixedClock(NOW)
    return FakeBackend(config("default", "team-a", "team-b"), AlertStore(clock), clock)


class Api:
    """Thin helpers over quart's test client."""

    def __init__(self, backend: FakeBackend, **app_kwargs: Any) -> None:
        self.backend = backend
        self.app = create_app(backend, **app_kwargs)
        self.client = self.app.test_client()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        content_type: str | None = "application/json",
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, Any]:
        if query:
            path = f"{path}?{urlencode(query)}"
        hdrs = dict(headers or {})
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        data = body.encode() if isinstance(body, str) else body
        resp = await self.client.open(path, method=method, data=data, headers=hdrs)
        return resp.status_code, await resp.get_data(as_text=False), resp.headers

    async def post_alerts(self, alerts: Any) -> tuple[int, bytes]:
        status, data, _ = await self.request("POST", "/api/v2/alerts", json.dumps(alerts))
        return status, data

    async def get_valid(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        """GET an API v2 path, assert 200 and validate the body against the spec."""
        status, data, headers = await self.request("GET", f"/api/v2{path}", query=query)
        assert status == 200, data
        assert headers["Content-Type"] == "application/json"
        assert data.endswith(b"\n")
        doc = json.loads(data)
        validate(doc, RESPONSE_SCHEMAS[path])
        return doc


@pytest.fixture
def api(backend: FakeBackend) -> Api:
    return Api(backend)


# --- the silence routes -----------------------------------------------------------------


@attrs.define
class SilenceFakeBackend(FakeBackend):
    """FakeBackend plus the ``silences`` property of SilenceBackend."""

    silences: Silences = attrs.field(factory=Silences)


@pytest.fixture
def sbackend() -> SilenceFakeBackend:
    clock = FixedClock(NOW)
    ids = itertools.count(1)
    silences = Silences(new_id=lambda: f"00000000-0000-4000-8000-{next(ids):012d}")
    return SilenceFakeBackend(config("default"), AlertStore(clock), clock, silences=silences)


@pytest.fixture
def sapi(sbackend: SilenceFakeBackend) -> Api:
    return Api(sbackend, api_routes={**default_api_routes(), **silence_routes()})
