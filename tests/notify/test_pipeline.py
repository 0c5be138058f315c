"""End-to-end receiver pipeline: dedup, repeat, send_resolved, retries, failures."""

from __future__ import annotations

import json
import random

import attrs
import httpx
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from daemon import metrics
from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, ZERO_TIME, TrioClock
from daemon.config.model import (
    Config,
    GlobalConfig,
    IntegrationConfig,
    Receiver,
    Route,
    WebhookConfig,
)
from daemon.nflog.state import Nflog, ReceiverKey, alert_hash
from daemon.notify.attempt import Attempt, Outcome
from daemon.notify.context import NotifyContext
from daemon.notify.dedup import NotifyReason
from daemon.notify.pipeline import ReceiverPipeline, build_notifiers
from tests.notify.conftest import LoopbackSink

S = NS_PER_SECOND
REPEAT = 3600 * S
GK = '{}:{alertname="A"}'
ANCHOR = 1_700_000_000 * S


class Sink:
    """In-process webhook endpoint: queued statuses, then 200; records every body."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, object]] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        self.times.append(trio.current_time())
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, content=b"nope" if status >= 300 else b"")


def config(*receivers: Receiver) -> Config:
    return Config(global_=GlobalConfig(), route=Route(receiver="wh"), receivers=receivers)


def webhook_receiver(send_resolved: bool = True, count: int = 1, name: str = "wh") -> Receiver:
    hooks = tuple(
        WebhookConfig(url=f"http://sink/{i}", send_resolved=send_resolved) for i in range(count)
    )
    return Receiver(name, webhook_configs=hooks)


class Harness:
    """A pipeline wired to an in-process sink, an nflog and trio's (virtual) clock."""

    def __init__(self, receiver: Receiver, sink: Sink) -> None:
        self.sink = sink
        self.nflog = Nflog()
        self.clock = TrioClock(ANCHOR)
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(sink))
        #: What the pipeline reported of each integration's share of each flush.
        self.attempts: list[Attempt] = []
        notifiers = build_notifiers(
            config(receiver),
            self.nflog,
            self.clock,
            self.http,
            "http://am",
            rng=random.Random(1),
            recorder=self,
        )
        self.pipeline: ReceiverPipeline = notifiers[receiver.name]
        self.receiver = receiver.name

    def ctx(self) -> NotifyContext:
        return NotifyContext(GK, {"alertname": "A"}, self.receiver, REPEAT, "{}", self.clock.now())

    def record_attempt(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    async def notify(self, *alerts: Alert) -> bool:
        with trio.fail_after(600):
            return await self.pipeline.notify(self.ctx(), alerts)


def firing(i: str) -> Alert:
    return Alert({"alertname": "A", "i": i}, {}, ANCHOR - S, ZERO_TIME)


def resolved(i: str, at: int) -> Alert:
    return Alert({"alertname": "A", "i": i}, {}, ANCHOR - S, at)


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_first_send_logs_nflog(autojump_clock: trio.testing.MockClock) -> None:
    """A new group is sent once and recorded with its firing hashes and 2x repeat expiry."""
    h = Harness(webhook_receiver(), Sink())
    with capture_logs() as logs:
        assert await h.notify(firing("1"))
    assert len(h.sink.bodies) == 1
    entry = h.nflog.query(GK, ReceiverKey("wh", "webhook", 0))
    assert entry is not None
    assert entry.firing_alerts == (alert_hash({"alertname": "A", "i": "1"}),)
    assert entry.expires_at == entry.timestamp + 2 * REPEAT
    (sent,) = [e for e in logs if e["event"] == "notify.sent"]
    # Alertmanager logs "Notify success" at debug: at the default level, no line per send.
    assert sent["log_level"] == "debug"
    assert sent["receiver"] == "wh"
    assert sent["integration"] == "webhook[0]"
    assert sent["group_key"] == GK
    assert sent["attempts"] == 1


async def test_unchanged_group_deduped_until_repeat(autojump_clock: trio.testing.MockClock) -> None:
    """An unchanged group is not re-sent within repeat_interval and is re-sent after it."""
    h = Harness(webhook_receiver(), Sink())
    assert await h.notify(firing("1"))
    await trio.sleep(300)
    assert await h.notify(firing("1"))
    assert len(h.sink.bodies) == 1
    await trio.sleep(3300)  # exactly repeat_interval after the first send: not yet
    assert await h.notify(firing("1"))
    assert len(h.sink.bodies) == 1
    await trio.sleep(300)
    assert await h.notify(firing("1"))
    assert len(h.sink.bodies) == 2


async def test_new_firing_alert_is_sent(autojump_clock: trio.testing.MockClock) -> None:
    """A firing alert not in the last notification triggers a send at once."""
    h = Harness(webhook_receiver(), Sink())
    assert await h.notify(firing("1"))
    assert await h.notify(firing("1"), firing("2"))
    assert len(h.sink.bodies) == 2
    assert await h.notify(firing("2"))  # shrinking firing set: no news
    assert len(h.sink.bodies) == 2


async def test_send_resolved_true_includes_resolved(autojump_clock: trio.testing.MockClock) -> None:
    """With send_resolved, a newly resolved alert rides along with the firing ones."""
    h = Harness(webhook_receiver(send_resolved=True), Sink())
    assert await h.notify(firing("1"), firing("2"))
    await trio.sleep(60)
    assert await h.notify(firing("1"), resolved("2", h.clock.now() - S))
    assert len(h.sink.bodies) == 2
    last = h.sink.bodies[-1]
    assert [a["status"] for a in last["alerts"]] == ["firing", "resolved"]  # type: ignore[index]
    await trio.sleep(60)
    assert await h.notify(resolved("1", h.clock.now() - S), resolved("2", h.clock.now() - S))
    assert len(h.sink.bodies) == 3
    assert h.sink.bodies[-1]["status"] == "resolved"


async def test_send_resolved_false(autojump_clock: trio.testing.MockClock) -> None:
    """Without send_resolved, resolutions are never sent, yet success is reported and logged."""
    h = Harness(webhook_receiver(send_resolved=False), Sink())
    assert await h.notify(firing("1"), firing("2"))
    await trio.sleep(60)
    assert await h.notify(firing("1"), resolved("2", h.clock.now() - S))
    assert len(h.sink.bodies) == 1
    await trio.sleep(60)
    assert await h.notify(resolved("1", h.clock.now() - S), resolved("2", h.clock.now() - S))
    assert len(h.sink.bodies) == 1
    entry = h.nflog.query(GK, ReceiverKey("wh", "webhook", 0))
    assert entry is not None
    assert entry.firing_alerts == ()
    assert set(entry.resolved_alerts) == {
        alert_hash({"alertname": "A", "i": "1"}),
        alert_hash({"alertname": "A", "i": "2"}),
    }
    # A new firing alert next to a resolved one sends only the firing one.
    await trio.sleep(60)
    assert await h.notify(firing("3"), resolved("1", h.clock.now() - S))
    assert [a["labels"]["i"] for a in h.sink.bodies[-1]["alerts"]] == ["3"]  # type: ignore[index]


async def test_server_errors_retried_until_success(autojump_clock: trio.testing.MockClock) -> None:
    """5xx answers are retried with growing backoff until one succeeds."""
    h = Harness(webhook_receiver(), Sink([500, 503, 502, 200]))
    failed_before = sample("alertmanager_notification_requests_failed_total", integration="webhook")
    with capture_logs() as logs:
        assert await h.notify(firing("1"))
    assert len(h.sink.bodies) == 4
    gaps = [b - a for a, b in zip(h.sink.times, h.sink.times[1:], strict=False)]
    for gap, current in zip(gaps, (0.5, 0.75, 1.125), strict=True):
        assert 0.5 * current <= gap <= 1.5 * current
    assert (
        sample("alertmanager_notification_requests_failed_total", integration="webhook")
        == failed_before + 3
    )
    assert [e["event"] for e in logs if e["event"].startswith("notify.")] == [
        "notify.attempt",
        "notify.attempt",
        "notify.attempt",
        "notify.sent",
    ]
    assert h.nflog.query(GK, ReceiverKey("wh", "webhook", 0)) is not None


async def test_client_error_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A 4xx answer fails the flush at once, is counted, and leaves the nflog untouched."""
    h = Harness(webhook_receiver(), Sink([400]))
    failed_before = sample(
        "alertmanager_notifications_failed_total", integration="webhook", reason="clientError"
    )
    with capture_logs() as logs:
        assert not await h.notify(firing("1"))
    assert len(h.sink.bodies) == 1
    assert h.nflog.query(GK, ReceiverKey("wh", "webhook", 0)) is None
    assert (
        sample(
            "alertmanager_notifications_failed_total", integration="webhook", reason="clientError"
        )
        == failed_before + 1
    )
    (failed,) = [e for e in logs if e["event"] == "notify.failed"]
    assert failed["error"] == (
        "wh/webhook[0]: notify retry canceled due to unrecoverable error after 1 attempts: "
        "unexpected status code 400: nope"
    )


async def test_one_failing_integration_fails_receiver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The receiver fails if any integration fails; the one that succeeded still logs."""
    sink = Sink()

    async def by_url(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/1":
            return httpx.Response(404)
        return await sink(request)

    h = Harness(webhook_receiver(count=2), sink)
    h.pipeline.integrations[0].integration.http = httpx.AsyncClient(  # type: ignore[attr-defined]
        transport=httpx.MockTransport(by_url)
    )
    h.pipeline.integrations[1].integration.http = httpx.AsyncClient(  # type: ignore[attr-defined]
        transport=httpx.MockTransport(by_url)
    )
    assert not await h.notify(firing("1"))
    assert h.nflog.query(GK, ReceiverKey("wh", "webhook", 0)) is not None
    assert h.nflog.query(GK, ReceiverKey("wh", "webhook", 1)) is None


async def test_deadline_gives_up_with_last_error(autojump_clock: trio.testing.MockClock) -> None:
    """At the caller's deadline the give-up is logged with the last error, then cancelled."""
    h = Harness(webhook_receiver(), Sink([500] * 1000))
    with capture_logs() as logs, trio.move_on_after(30) as scope:
        await h.pipeline.notify(h.ctx(), [firing("1")])
    assert scope.cancelled_caught
    (failed,) = [e for e in logs if e["event"] == "notify.failed"]
    assert failed["reason"] == "serverError"
    assert failed["error"].startswith("wh/webhook[0]: notify retry canceled after ")
    assert failed["error"].endswith(" attempts: unexpected status code 500: nope")
    assert h.nflog.query(GK, ReceiverKey("wh", "webhook", 0)) is None


async def test_unsupported_integration_fails(autojump_clock: trio.testing.MockClock) -> None:
    """A receiver with only unimplemented integration types warns at build and fails at send."""
    slack = Receiver("sl", other_configs=(IntegrationConfig("jira", False, {}),))
    with capture_logs() as logs:
        h = Harness(slack, Sink())
    assert [e["event"] for e in logs] == ["notify.integration_unsupported"]
    assert not await h.notify(firing("1"))


async def test_blackhole_receiver_succeeds(autojump_clock: trio.testing.MockClock) -> None:
    """A receiver without integrations accepts every flush."""
    h = Harness(Receiver("wh"), Sink())
    assert await h.notify(firing("1"))


async def test_loopback_end_to_end(loopback_sink: LoopbackSink) -> None:
    """Over a real loopback socket the payload arrives and a repeat is deduped."""
    nflog = Nflog()
    clock = TrioClock(ANCHOR)
    receiver = Receiver("wh", webhook_configs=(WebhookConfig(url=loopback_sink.url),))
    async with httpx.AsyncClient() as http:
        pipeline = build_notifiers(config(receiver), nflog, clock, http, "http://am")["wh"]
        ctx = NotifyContext(GK, {"alertname": "A"}, "wh", REPEAT, "{}", clock.now())
        with trio.fail_after(10):
            assert await pipeline.notify(ctx, [firing("1")])
            assert await pipeline.notify(ctx, [firing("1")])
    assert len(loopback_sink.received) == 1
    (got,) = loopback_sink.received
    assert got.head.startswith(b"POST /hook HTTP/1.1")
    assert b"user-agent: alertmanager/0.25.0" in got.head.lower()
    assert json.loads(got.body)["groupKey"] == GK


async def test_loopback_retry_then_client_error(loopback_sink: LoopbackSink) -> None:
    """Over a real socket a 503 is retried and a following 400 ends the flush as failed."""
    loopback_sink.statuses = [503, 400]
    receiver = Receiver("wh", webhook_configs=(WebhookConfig(url=loopback_sink.url),))
    async with httpx.AsyncClient() as http:
        pipeline = build_notifiers(
            config(receiver), Nflog(), TrioClock(ANCHOR), http, "http://am", rng=random.Random(0)
        )["wh"]
        ctx = NotifyContext(GK, {}, "wh", REPEAT, "{}", ANCHOR)
        with trio.fail_after(10):
            assert not await pipeline.notify(ctx, [firing("1")])
    assert len(loopback_sink.received) == 2


@pytest.mark.parametrize("send_resolved", [True, False])
async def test_only_resolved_never_notified_sends_nothing(
    autojump_clock: trio.testing.MockClock, send_resolved: bool
) -> None:
    """A group whose alerts were all resolved before any send produces no request."""
    h = Harness(webhook_receiver(send_resolved=send_resolved), Sink())
    assert await h.notify(resolved("1", h.clock.now() - S))
    assert h.sink.bodies == []


async def test_every_attempt_is_reported(autojump_clock: trio.testing.MockClock) -> None:
    """Sent, deduped and failed shares of flushes each reach the recorder with why and how."""
    h = Harness(webhook_receiver(), Sink(statuses=[500, 200, 400]))
    assert await h.notify(firing("1"))  # a 500, then 200 after the backoff
    assert await h.notify(firing("1"))  # nothing new
    assert not await h.notify(firing("1"), firing("2"))  # a 400 is not retried
    got = [(a.outcome, a.reason, a.attempts, len(a.alerts)) for a in h.attempts]
    assert got == [
        (Outcome.SENT, NotifyReason.FIRST_NOTIFICATION, 2, 1),
        (Outcome.SUPPRESSED, None, 0, 1),
        (Outcome.FAILED, NotifyReason.NEW_ALERTS_IN_GROUP, 1, 2),
    ]
    sent, _, failed = h.attempts
    assert sent.duration > 0 and sent.ended >= sent.now
    assert (sent.integration, sent.index, sent.ctx.group_key) == ("webhook", 0, GK)
    assert failed.error is not None and "400" in failed.error


class _StepCounter(trio.abc.Instrument):
    """Counts the scheduler steps of one task."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def _notify_steps(h: Harness) -> int:
    """Scheduler steps one flush takes after its first."""
    counter = _StepCounter(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(counter)
    try:
        assert await h.notify(firing("1"))
    finally:
        trio.lowlevel.remove_instrument(counter)
    return counter.steps


@attrs.frozen
class _Crowded:
    """What trio's statistics say while other tasks wait to run."""

    tasks_runnable: int = 3


async def test_stages_yield_only_when_others_wait(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between stages a flush yields to waiting tasks (a mass flush stays in short steps)
    but, alone, runs on without a scheduler round per stage."""
    from daemon.notify import pipeline

    alone = await _notify_steps(Harness(webhook_receiver(), Sink()))
    # Every boundary past the minimum slice (here: all of them).
    monkeypatch.setattr(pipeline, "STAGES_MIN_SLICE_SECONDS", 0.0)
    monkeypatch.setattr(trio.lowlevel, "current_statistics", _Crowded)
    crowded = await _notify_steps(Harness(webhook_receiver(), Sink()))
    # The receiver's boundary (before the fan-out) and the integration's after wait and
    # dedup; not the one after retry (see test_no_yield_right_after_the_send).
    assert crowded == alone + 3


async def test_stages_yield_when_the_flush_ran_long(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush alone still yields between stages once it has run its slice (flushes
    started in one scheduler batch see nobody waiting, yet must not make one long batch)."""
    from daemon.notify import pipeline

    alone = await _notify_steps(Harness(webhook_receiver(), Sink()))
    monkeypatch.setattr(pipeline, "STAGES_SLICE_SECONDS", 0.0)
    monkeypatch.setattr(pipeline, "STAGES_MIN_SLICE_SECONDS", 0.0)
    spent = await _notify_steps(Harness(webhook_receiver(), Sink()))
    assert spent == alone + 3


class _WaitingSink(Sink):
    """A receiver that answers after a scheduler round, as a real one over a socket."""

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await trio.sleep(0.01)
        return await super().__call__(request)


async def test_no_yield_right_after_the_send(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the send, which waited for the receiver's answer, the flush runs on to
    set-notifies without another scheduler round, however crowded: it has just resumed,
    and the time since its last checkpoint was the wait, not a run."""
    from daemon.notify import pipeline

    alone = await _notify_steps(Harness(webhook_receiver(), _WaitingSink()))
    monkeypatch.setattr(pipeline, "STAGES_MIN_SLICE_SECONDS", 0.0)
    monkeypatch.setattr(trio.lowlevel, "current_statistics", _Crowded)
    crowded = await _notify_steps(Harness(webhook_receiver(), _WaitingSink()))
    # As with a sink that answers at once: the receiver's boundary, wait and dedup.
    assert crowded == alone + 3


async def test_stages_do_not_ask_for_waiting_tasks_within_the_minimum_slice(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a flush has run the minimum slice it neither asks trio whether others wait
    (a walk of every waiting fd) nor yields, crowded or not."""
    from daemon.notify import pipeline

    alone = await _notify_steps(Harness(webhook_receiver(), Sink()))
    asked: list[int] = []

    def crowded() -> _Crowded:
        asked.append(1)
        return _Crowded()

    monkeypatch.setattr(pipeline, "STAGES_MIN_SLICE_SECONDS", 3600.0)
    monkeypatch.setattr(trio.lowlevel, "current_statistics", crowded)
    steps = await _notify_steps(Harness(webhook_receiver(), Sink()))
    assert asked == []
    assert steps == alone
