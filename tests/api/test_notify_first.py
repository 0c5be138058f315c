"""An alert POST's answer waits until the flush its alerts made due (group_wait 0) has
started: notifications first, then the answer (daemon.api.app.accept_alerts)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs
import httpx
import pytest
import trio
import trio.testing

from daemon.alert import Alert
from daemon.api import app as api_app
from daemon.clock import NS_PER_SECOND, Clock, TrioClock
from daemon.config.load import load_config_text
from daemon.config.model import Config
from daemon.instance import Instance
from daemon.notify.pipeline import ReceiverPipeline

S = NS_PER_SECOND

CONFIG = """
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: sink
    webhook_configs: [{url: "http://sink/hook"}]
"""


@attrs.define
class Backend:
    """What accept_alerts uses of an ApiBackend, over a real Instance."""

    instance: Instance

    @property
    def clock(self) -> Clock:
        return self.instance.clock

    @property
    def config(self) -> Config:
        return self.instance.config

    def put_alerts(self, alerts: Sequence[Alert], now: int) -> None:
        self.instance.put(alerts, now)


async def _post_and_see_flush(
    monkeypatch: pytest.MonkeyPatch, config: str = CONFIG, rounds: list[int] | None = None
) -> list[str]:
    """POST one alert of a new group; what had happened when the answer was ready.
    ``rounds`` gets how many scheduler rounds the answer waited."""
    events: list[str] = []
    waited = 0
    checkpoint = trio.lowlevel.cancel_shielded_checkpoint

    async def counting() -> None:
        nonlocal waited
        waited += 1
        await checkpoint()

    monkeypatch.setattr(api_app.trio.lowlevel, "cancel_shielded_checkpoint", counting)
    notify = ReceiverPipeline.notify

    async def recording(self: ReceiverPipeline, ctx: object, alerts: Sequence[Alert]) -> bool:
        events.append("flush started")
        return await notify(self, ctx, alerts)  # type: ignore[arg-type]

    monkeypatch.setattr(ReceiverPipeline, "notify", recording)
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as http:
        instance = Instance(
            load_config_text(config),
            clock=TrioClock(1_700_000_000 * S),
            http=http,
            external_url="http://tocsin:9093",
            retention=3600 * S,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(instance.run)
            body = json.dumps([{"labels": {"alertname": "New"}}]).encode()

            async def read() -> bytes:
                return body

            waited = 0
            resp = await api_app.accept_alerts(
                Backend(instance),  # type: ignore[arg-type]
                "application/json",
                read,
                None,
            )
            events.append(f"answer {resp.status_code}")
            if rounds is not None:
                rounds.append(waited)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    return events


async def test_the_flush_starts_before_the_answer(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With group_wait 0, the new group's flush has started when the answer is ready."""
    assert await _post_and_see_flush(monkeypatch) == ["flush started", "answer 200"]


async def test_without_the_wait_the_answer_comes_first(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait is what orders them: with no rounds, the answer is ready first."""
    monkeypatch.setattr(api_app, "NOTIFY_FIRST_ROUNDS", 0)
    assert await _post_and_see_flush(monkeypatch) == ["answer 200", "flush started"]


async def test_a_put_that_starts_no_flush_answers_at_once(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With group_wait above 0 nothing is due: the answer waits no scheduler round."""
    rounds: list[int] = []
    config = CONFIG.replace("group_wait: 0s", "group_wait: 30s")
    assert await _post_and_see_flush(monkeypatch, config, rounds) == ["answer 200"]
    assert rounds == [0]


async def test_a_put_that_starts_a_flush_waits_its_rounds(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer waits NOTIFY_FIRST_ROUNDS rounds when the put started a flush."""
    rounds: list[int] = []
    await _post_and_see_flush(monkeypatch, CONFIG, rounds)
    assert rounds == [api_app.NOTIFY_FIRST_ROUNDS]
