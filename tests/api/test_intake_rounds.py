"""An alert POST reaches the store in the step its body arrived in: no scheduler round
between the body and the put, for a backend with or without alert limits
(daemon.api.app.accept_alerts)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs
import pytest
import trio

from daemon.alert import Alert
from daemon.api import backend as api_backend
from daemon.api.app import accept_alerts
from daemon.clock import NS_PER_SECOND, Clock, FixedClock
from daemon.config.load import load_config_text
from daemon.config.model import Config

CONFIG = load_config_text("route: {receiver: r}\nreceivers: [{name: r}]\n")


class StepCounter(trio.abc.Instrument):
    """Counts the steps one task has taken (each ends at a yield to the scheduler)."""

    def __init__(self) -> None:
        self.task: trio.lowlevel.Task | None = None
        self.steps = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


@attrs.define
class Backend:
    """The parts of an ApiBackend accept_alerts uses; notes the step of each put."""

    counter: StepCounter
    puts: list[int] = attrs.Factory(list)
    clock: Clock = attrs.Factory(lambda: FixedClock(1_700_000_000 * NS_PER_SECOND))
    config: Config = CONFIG

    def put_alerts(self, alerts: Sequence[Alert], now: int) -> None:
        self.puts.append(self.counter.steps)


@attrs.define
class LimitedBackend(Backend):
    """A backend that may hold alert limits (as every InstanceBackend), here none in force."""

    tenant: str | None = None

    def admit_alerts(self, alerts: Sequence[Alert]) -> bool:
        return False


@pytest.mark.parametrize("kind", [Backend, LimitedBackend])
async def test_the_put_comes_in_the_step_of_the_body(kind: type[Backend]) -> None:
    """The body read returns at once here, so the alerts are stored before the posting
    task first yields (a checkpoint before the put cost a scheduler round per POST)."""
    counter = StepCounter()
    backend = kind(counter)
    body = json.dumps([{"labels": {"alertname": "A"}}]).encode()

    async def read_body() -> bytes:
        return body

    async def post() -> None:
        counter.task = trio.lowlevel.current_task()
        response = await accept_alerts(backend, "application/json", read_body, None)  # type: ignore[arg-type]
        assert response.status_code == 200

    trio.lowlevel.add_instrument(counter)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post)
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert backend.puts == [0]


def test_protocol_answers_are_cached_per_class() -> None:
    """implements() answers as isinstance does, and asks the Protocol once per class."""
    calls = 0

    class Counting(Backend):
        @property
        def tenant(self) -> str | None:
            nonlocal calls
            calls += 1
            return None

    one, two = Counting(StepCounter()), Counting(StepCounter())
    assert api_backend.implements(one, api_backend.KnowsTenant)
    assert api_backend.implements(two, api_backend.KnowsTenant)
    assert not api_backend.implements(Backend(StepCounter()), api_backend.AdmitsAlerts)
    assert api_backend.implements(LimitedBackend(StepCounter()), api_backend.AdmitsAlerts)
    assert calls <= 1
