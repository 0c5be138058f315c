"""The two event intakes in-process: counts in the answer, refusals that apply nothing
(not even to the notification webhooks), the body limit, and no wildcard CORS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from daemon.api.events import event_routes
from daemon.sources.intake import EventIntake
from daemon.sources.rulesets import RuleFiles
from tests.api.conftest import Api, FakeBackend

RULES = """
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: api
  namespace: kubesphere-logging-system
  labels: {kubesphere.io/rule-scope: cluster}
spec:
  rules:
    - {name: PodBackOff, type: alert, enable: true, condition: 'reason = "BackOff"'}
    - {name: Scheduled, type: notification, enable: true, condition: 'reason = "Scheduled"'}
"""


def ev(reason: str, uid: str) -> dict[str, object]:
    return {
        "metadata": {"uid": uid},
        "involvedObject": {"kind": "Pod", "name": f"p-{uid}", "namespace": "ns"},
        "reason": reason,
    }


class Offered:
    """A notification sink stand-in that records what it is offered."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def offer(self, events: Sequence[dict[str, Any]]) -> None:
        self.events.extend(events)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()


@pytest.fixture
async def intake(
    tmp_path: Path, backend: FakeBackend
) -> AsyncIterator[tuple[EventIntake, Offered]]:
    (tmp_path / "rules.yaml").write_text(RULES)
    rules = RuleFiles(events=[str(tmp_path / "rules.yaml")]).load()
    offered = Offered()
    intake = EventIntake(rules, backend.clock, default_resolve_after=60 * 10**9, sinks=[offered])
    async with trio.open_nursery() as nursery:
        await nursery.start(intake.run, backend.put_alerts)
        yield intake, offered
        nursery.cancel_scope.cancel()


def make_api(backend: FakeBackend, intake: EventIntake, **kwargs: object) -> Api:
    return Api(backend, extra_routes=event_routes(intake), **kwargs)


async def test_counts_and_alerts(backend: FakeBackend, intake: tuple[EventIntake, Offered]) -> None:
    """received, matched and alerts count the body; the alert is stored, the
    notification event offered to the sinks."""
    api = make_api(backend, intake[0])
    body = "\n".join(
        json.dumps(e) for e in (ev("BackOff", "1"), ev("Scheduled", "2"), ev("X", "3"))
    )
    status, data, headers = await api.request("POST", "/api/v1/events", body, content_type=None)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(data) == {"received": 3, "matched": 2, "alerts": 1}
    assert [a.labels["alertname"] for a in backend.ingested] == ["PodBackOff"]
    assert [e["reason"] for e in intake[1].events] == ["Scheduled"]


async def test_a_refused_body_applies_nothing(
    backend: FakeBackend, intake: tuple[EventIntake, Offered]
) -> None:
    """One bad line refuses the body: no alert stored, nothing offered to the sinks."""
    api = make_api(backend, intake[0])
    body = json.dumps([ev("BackOff", "1"), ev("Scheduled", "2"), {"kind": "Node"}])
    status, data, _ = await api.request("POST", "/api/v1/events", body)
    assert status == 400
    assert json.loads(data) == {"error": "line 1: not a Kubernetes Event: kind 'Node'"}
    assert backend.ingested == [] and intake[1].events == []


async def test_body_limit_is_a_413(
    backend: FakeBackend, intake: tuple[EventIntake, Offered]
) -> None:
    """A body over the app's limit is refused with 413 before anything is decoded."""
    api = make_api(backend, intake[0], max_body_bytes=100)
    body = json.dumps([ev("BackOff", str(i)) for i in range(10)])
    status, data, _ = await api.request("POST", "/audit/webhook/event", body)
    assert status == 413 and "limit 100 bytes" in json.loads(data)["error"]
    assert backend.ingested == []


async def test_intakes_send_no_wildcard_cors(
    backend: FakeBackend, intake: tuple[EventIntake, Offered]
) -> None:
    """The intakes act, so no web page may call them: no Access-Control-Allow-Origin."""
    api = make_api(backend, intake[0])
    headers = {"Origin": "https://evil.example"}
    for path in ("/api/v1/events", "/audit/webhook/event"):
        status, _, got = await api.request("POST", path, "[]", headers=headers)
        assert status == 200 and "Access-Control-Allow-Origin" not in got


async def test_intakes_live_under_the_route_prefix(
    backend: FakeBackend, intake: tuple[EventIntake, Offered]
) -> None:
    """With a route prefix the intakes move under it, like every other route."""
    backend.route_prefix = "/am"
    api = make_api(backend, intake[0])
    assert (await api.request("POST", "/am/api/v1/events", "[]"))[0] == 200
    assert (await api.request("POST", "/api/v1/events", "[]"))[0] == 404


@pytest.mark.parametrize("path", ["/api/v1/events", "/audit/webhook/event"])
async def test_a_body_nested_too_deeply_is_a_400_that_applies_nothing(
    backend: FakeBackend, intake: tuple[EventIntake, Offered], path: str
) -> None:
    """A good event followed by one nested 100,000 levels deep is a 400 naming the line,
    not a 500 from the decoder's recursion, and the good event is not applied either."""
    api = make_api(backend, intake[0])
    hostile = '{"kind": "Event", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    body = json.dumps(ev("BackOff", "1")) + "\n" + hostile + "\n"
    status, data, _ = await api.request("POST", path, body)
    assert status == 400
    assert json.loads(data) == {"error": "line 2: invalid JSON: nested too deeply"}
    assert backend.ingested == [] and intake[1].events == []
