"""The notification pipeline of one receiver, as Alertmanager's ``PipelineBuilder``
assembles it (spec §4), built in one place: :func:`build_pipeline`.

Stage order, per flush (``ReceiverPipeline.notify``):

1. Receiver-wide stages, each a :class:`~daemon.notify.context.Stage`: GossipSettle,
   Inhibit, TimeActive, TimeMute and Silence (:mod:`daemon.notify.stages`,
   :mod:`daemon.notify.silence_stage`). Each returns the alerts it lets through; the
   first that returns none ends the flush with success.
2. Fan-out: one :class:`IntegrationPipeline` per integration, all concurrently in one
   nursery, each the chain Wait, Dedup, Retry, SetNotifies (:class:`WaitStage`,
   :class:`DedupStage`, :class:`RetryStage`, :class:`SetNotifiesStage`): wait
   ``position * peer_timeout`` (HA ordering), ask the nflog whether anything is new
   (:mod:`daemon.notify.dedup`), send with retries, and on success record the send in
   the nflog with expiry ``2 * repeat_interval``.
3. The flush succeeds only if every integration succeeded; failures are logged joined
   by ``"; "``.

Invariants:

* ``ctx.now`` (the tick's wall time) decides which alerts are resolved and whether the
  repeat interval passed; the clock is re-read only after the HA wait and to timestamp
  the nflog entry, which, as upstream, records when the send actually succeeded.
* With ``send_resolved: false`` resolved alerts are never sent, but the nflog entry
  still lists them, and an all-resolved flush succeeds without a request (trap 13).

Cancellation: the dispatcher bounds ``notify`` with the flush deadline. When it
expires, each integration still retrying logs and counts its give-up
(``contextDeadlineExceeded``), then ``Cancelled`` propagates: the caller must treat a
cancelled flush as failed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
import httpx
import structlog
import trio

from daemon import metrics
from daemon.alert import Alert
from daemon.clock import Clock
from daemon.config.model import Config
from daemon.inhibit import Inhibitor
from daemon.nflog.state import Nflog, ReceiverKey
from daemon.notify.attempt import Attempt, AttemptRecorder, Outcome
from daemon.notify.context import NotifyContext, Stage
from daemon.notify.dedup import NotifyReason, notify_reason, split_hashes
from daemon.notify.http1 import HttpSender
from daemon.notify.httpclient import HttpClients
from daemon.notify.ratelimit import NotificationRateLimits
from daemon.notify.receivers.base import Integration, Templater
from daemon.notify.receivers.registry import build_integrations
from daemon.notify.retry import (
    REASON_CONTEXT_CANCELED,
    REASON_DEADLINE_EXCEEDED,
    Backoff,
    NotifyError,
)
from daemon.notify.silence_stage import SilenceMatcher, SilenceStage
from daemon.notify.stages import (
    GossipSettleStage,
    GroupMuteMarker,
    InhibitStage,
    TimeActiveStage,
    TimeMuteStage,
)
from daemon.template.render import Templates
from daemon.timeinterval import TimeIntervals

log = structlog.get_logger(__name__)


def no_wait() -> float:
    """The HA wait without clustering: this node is always first."""
    return 0.0


# --- the per-integration stages ----------------------------------------------------------


@attrs.define(slots=True)
class IntegrationFlush:
    """One integration's share of a flush, handed down its stages (Alertmanager keeps
    these facts in the context: the time after the HA wait and the hash sets that
    Dedup computed for SetNotifies)."""

    ctx: NotifyContext
    now: int
    firing: list[int] = attrs.field(factory=list)
    resolved: list[int] = attrs.field(factory=list)
    #: Why Dedup let the alerts through (None: it stopped them).
    reason: NotifyReason | None = None
    #: Retry's tally, for the history: send attempts and trio time of the first.
    attempts: int = 0
    started: float = 0.0
    #: Retry's give-up text when the flush deadline cancelled it.
    error: str | None = None


#: Longest a flush runs its stages without a checkpoint when no other task waits.
STAGES_SLICE_SECONDS = 0.002
#: Shortest run between two checkpoints before trio is asked whether others wait.
#: Asking costs about 4 us (``current_statistics`` walks every fd a task waits on), was
#: asked at every stage boundary (about six per flush, 5% of a flush's samples in a
#: py-spy profile of issue 15's ingest), while a stage takes a few microseconds: a step
#: this short holds the loop for nothing worth yielding for.
STAGES_MIN_SLICE_SECONDS = 0.0002


async def _let_others_run(since: float) -> float:
    """Between two stages: yield to the scheduler if another task is waiting to run or
    this flush has run :data:`STAGES_SLICE_SECONDS` since ``since`` (its last yield);
    returns the new ``since``.

    With 1,000 groups flushing at once, short steps keep the event loop responsive (and
    flushes started in one scheduler batch see no waiting task, hence the time bound).
    A lone flush of a few alerts (a paced alert) has nobody to make way for, and a
    checkpoint would cost it a scheduler round and an ``epoll`` call per stage on its
    way to the receiver. Nobody is asked about before :data:`STAGES_MIN_SLICE_SECONDS`.
    """
    now = time.perf_counter()
    ran = now - since
    if ran < STAGES_MIN_SLICE_SECONDS or (
        ran < STAGES_SLICE_SECONDS and not trio.lowlevel.current_statistics().tasks_runnable
    ):
        return since
    await trio.lowlevel.checkpoint()
    return time.perf_counter()


class IntegrationStage(Protocol):
    """A step of one integration's chain; returns the alerts it passes on.

    Returning none ends the chain with success. :class:`IntegrationFailed` ends it with
    failure.
    """

    async def process(
        self, flush: IntegrationFlush, alerts: Sequence[Alert]
    ) -> Sequence[Alert]: ...


class IntegrationFailed(Exception):
    """The integration gave up; ``text`` is Alertmanager's error line for the flush."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@attrs.define
class WaitStage:
    """Wait ``position * peer_timeout`` so peers ahead of us notify first (HA ordering)."""

    wait: Callable[[], float]
    clock: Clock

    async def process(self, flush: IntegrationFlush, alerts: Sequence[Alert]) -> Sequence[Alert]:
        delay = self.wait()
        if delay > 0:
            await trio.sleep(delay)
            # Peers ahead of us had `delay` to notify; judge their entries at real time.
            flush.now = self.clock.now()
        return alerts


@attrs.define
class DedupStage:
    """Pass the alerts on only if the nflog says the integration has news (spec §4.1)."""

    nflog: Nflog
    key: ReceiverKey
    send_resolved: bool

    async def process(self, flush: IntegrationFlush, alerts: Sequence[Alert]) -> Sequence[Alert]:
        ctx = flush.ctx
        firing, resolved = split_hashes(alerts, flush.now)
        entry = self.nflog.query(ctx.group_key, self.key)
        flush.reason = notify_reason(
            entry,
            firing,
            resolved,
            ctx.repeat_interval,
            flush.now,
            send_resolved=self.send_resolved,
        )
        if flush.reason is None:
            log.debug(
                "notify.deduped",
                receiver=ctx.receiver,
                integration=f"{self.key.integration}[{self.key.idx}]",
                group_key=ctx.group_key,
            )
            return ()
        flush.firing, flush.resolved = firing, resolved
        return alerts


@attrs.define
class RetryStage:
    """Send, retrying retryable failures with backoff until the flush deadline."""

    receiver: str
    integration: Integration
    rng: random.Random
    #: The pipeline's tenant: its metrics carry it as a label (None: the global one).
    tenant: str | None = None
    #: This integration's children of the per-attempt metrics, looked up once.
    _sent_metrics: tuple[Any, Any, Any] | None = attrs.field(default=None, init=False)

    @property
    def label(self) -> str:
        """Upstream's integration string, ``webhook[0]``, used in logs and errors."""
        return f"{self.integration.name}[{self.integration.index}]"

    def _metrics(self) -> tuple[Any, Any, Any]:
        """``notifications``, ``notification_requests`` and the latency histogram."""
        if self._sent_metrics is None:
            name = self.integration.name
            tenant = self.tenant
            self._sent_metrics = (
                metrics.pipeline_series(metrics.notifications, tenant, name),
                metrics.pipeline_series(metrics.notification_requests, tenant, name),
                metrics.pipeline_series(metrics.notification_latency, tenant, name),
            )
        return self._sent_metrics

    async def process(self, flush: IntegrationFlush, alerts: Sequence[Alert]) -> Sequence[Alert]:
        error = await self._retry(flush, alerts)
        if error is not None:
            raise IntegrationFailed(error)
        return alerts

    async def _retry(self, flush: IntegrationFlush, alerts: Sequence[Alert]) -> str | None:
        ctx, now = flush.ctx, flush.now
        name = self.integration.name
        notifications, requests, latency = self._metrics()
        notifications.inc()
        sent = alerts
        if not self.integration.send_resolved:
            sent = [a for a in alerts if not a.resolved(now)]
            if not sent:
                # Only resolved alerts, which this integration does not want: report
                # success so that set-notifies still records them (trap 13).
                return None
        fields = {
            "receiver": self.receiver,
            "integration": self.label,
            "group_key": ctx.group_key,
            "num_alerts": len(sent),
        }
        backoff: Backoff | None = None
        attempts = 0
        last_error: NotifyError | None = None
        flush.started = trio.current_time()
        try:
            while True:
                attempts += 1
                flush.attempts = attempts
                started = trio.current_time()
                try:
                    await self.integration.notify(ctx, sent)
                except NotifyError as err:
                    requests.inc()
                    metrics.pipeline_series(
                        metrics.notification_requests_failed, self.tenant, name
                    ).inc()
                    latency.observe(trio.current_time() - started)
                    if not err.retryable:
                        text = (
                            f"{self.receiver}/{self.label}: notify retry canceled due to "
                            f"unrecoverable error after {attempts} attempts: {err}"
                        )
                        return self._give_up(text, err.reason, attempts, fields)
                    last_error = err
                    if backoff is None:
                        backoff = Backoff(self.rng)
                    delay = backoff.next_delay()
                    log.warning(
                        "notify.attempt",
                        **fields,
                        attempts=attempts,
                        error=str(err),
                        retry_in=round(delay, 3),
                    )
                    await trio.sleep_until(started + delay)
                else:
                    duration = trio.current_time() - started
                    requests.inc()
                    latency.observe(duration)
                    # Debug, as Alertmanager's "Notify success": at info every notification
                    # was a log line (8.4 us of rendering each, 5% of a notification's CPU
                    # at the default level); the notification history keeps each send.
                    log.debug(
                        "notify.sent", **fields, attempts=attempts, duration=round(duration, 6)
                    )
                    return None
        except trio.Cancelled:
            # Record the give-up (synchronously) before letting cancellation through.
            # The enclosing scopes are those of the attempts, so their deadline is too.
            expired = trio.current_time() >= trio.current_effective_deadline()
            reason = REASON_DEADLINE_EXCEEDED if expired else REASON_CONTEXT_CANCELED
            if last_error is not None:
                cause, reason = str(last_error), last_error.reason
            else:
                cause = "context deadline exceeded" if expired else "context canceled"
            text = f"{self.receiver}/{self.label}: notify retry canceled after {attempts} attempts: {cause}"
            flush.error = text
            self._give_up(text, reason, attempts, fields)
            raise

    def _give_up(self, text: str, reason: str, attempts: int, fields: dict[str, object]) -> str:
        metrics.pipeline_series(
            metrics.notifications_failed, self.tenant, self.integration.name, reason
        ).inc()
        log.error("notify.failed", **fields, attempts=attempts, reason=reason, error=text)
        return text


@attrs.define
class RateLimitStage:
    """Drop the notification (a failure, not retried) when the tenant's rate for this
    integration type is used up, as Mimir's ``rateLimitedNotifier``."""

    receiver: str
    integration: Integration
    limits: NotificationRateLimits

    async def process(self, flush: IntegrationFlush, alerts: Sequence[Alert]) -> Sequence[Alert]:
        name = self.integration.name
        if self.limits.allow(name, trio.current_time()):
            return alerts
        self.limits.on_drop(name)
        label = f"{name}[{self.integration.index}]"
        log.warning(
            "notify.rate_limited",
            receiver=self.receiver,
            integration=label,
            group_key=flush.ctx.group_key,
            num_alerts=len(alerts),
        )
        raise IntegrationFailed(f"{self.receiver}/{label}: failed to notify due to rate limits")


@attrs.define
class SetNotifiesStage:
    """Record the successful send in the nflog, expiring after twice the repeat interval."""

    nflog: Nflog
    key: ReceiverKey
    clock: Clock

    async def process(self, flush: IntegrationFlush, alerts: Sequence[Alert]) -> Sequence[Alert]:
        ctx = flush.ctx
        self.nflog.log(
            self.key,
            ctx.group_key,
            flush.firing,
            flush.resolved,
            now=self.clock.now(),
            expiry=2 * ctx.repeat_interval,
        )
        return alerts


@attrs.define
class IntegrationPipeline:
    """Wait, Dedup, Retry and SetNotifies for one integration of one receiver."""

    receiver: str
    integration: Integration
    stages: Sequence[IntegrationStage]
    #: Told what each flush came to (the notification history), if anyone listens.
    recorder: AttemptRecorder | None = None
    clock: Clock | None = None

    @classmethod
    def build(
        cls,
        receiver: str,
        integration: Integration,
        nflog: Nflog,
        clock: Clock,
        rng: random.Random,
        wait: Callable[[], float] = no_wait,
        recorder: AttemptRecorder | None = None,
        rate_limits: NotificationRateLimits | None = None,
        tenant: str | None = None,
    ) -> IntegrationPipeline:
        """The chain in Alertmanager's order (with a tenant's rate limit before Retry)."""
        key = ReceiverKey(receiver, integration.name, integration.index)
        limit: tuple[IntegrationStage, ...] = ()
        if rate_limits is not None:
            limit = (RateLimitStage(receiver, integration, rate_limits),)
        return cls(
            receiver,
            integration,
            (
                WaitStage(wait, clock),
                DedupStage(nflog, key, integration.send_resolved),
                *limit,
                RetryStage(receiver, integration, rng, tenant),
                SetNotifiesStage(nflog, key, clock),
            ),
            recorder,
            clock,
        )

    async def run(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> str | None:
        """Deliver if needed; returns None on success or the give-up error text."""
        flush = IntegrationFlush(ctx, ctx.now)
        given = alerts
        since = time.perf_counter()
        try:
            for stage in self.stages:
                alerts = await stage.process(flush, alerts)
                if not alerts:
                    break
                if isinstance(stage, RetryStage):
                    # The send waited for the receiver's answer: this flush has just
                    # resumed in a fresh scheduler step, and the time since the last
                    # checkpoint counts that wait, not a run. Yielding here was an extra
                    # scheduler round for 78% of the flushes of issue 15's ingest.
                    since = time.perf_counter()
                else:
                    since = await _let_others_run(since)
        except IntegrationFailed as failed:
            self._record(flush, given, Outcome.FAILED, failed.text)
            return failed.text
        except trio.Cancelled:
            if flush.attempts:
                self._record(flush, given, Outcome.FAILED, flush.error)
            raise
        self._record(flush, given, Outcome.SENT if flush.reason else Outcome.SUPPRESSED, None)
        return None

    def _record(
        self, flush: IntegrationFlush, alerts: Sequence[Alert], outcome: Outcome, error: str | None
    ) -> None:
        if self.recorder is None or self.clock is None:
            return
        duration = 0
        if flush.attempts:
            duration = int((trio.current_time() - flush.started) * 1_000_000_000)
        self.recorder.record_attempt(
            Attempt(
                ctx=flush.ctx,
                integration=self.integration.name,
                index=self.integration.index,
                alerts=alerts,
                now=flush.now,
                ended=self.clock.now(),
                reason=flush.reason,
                outcome=outcome,
                error=error,
                attempts=flush.attempts,
                duration=duration,
            )
        )


# --- the receiver ----------------------------------------------------------------------------


@attrs.define
class ReceiverPipeline:
    """The :class:`~daemon.notify.context.Notifier` for one receiver."""

    receiver: str
    integrations: list[IntegrationPipeline]
    #: Receiver-wide stages before the fan-out, in order (see :func:`build_pipeline`).
    stages: Sequence[Stage] = ()

    def prepare(self, alerts: Sequence[Alert], now: int) -> None:
        """Let stages that can (silences) look ``alerts`` up ahead of their flush.

        Only caches are filled: the flush still runs every stage on its own data.
        """
        for stage in self.stages:
            prepare = getattr(stage, "prepare", None)
            if prepare is not None:
                prepare(alerts, now)

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> bool:
        """Run the stages and fan out; True unless some integration failed."""
        since = time.perf_counter()
        for stage in self.stages:
            try:
                alerts = await stage.process(ctx, alerts)
            except NotifyError as err:
                log.error(
                    "notify.failed", receiver=self.receiver, group_key=ctx.group_key, error=str(err)
                )
                return False
            if not alerts:
                return True
            since = await _let_others_run(since)
        errors: list[str] = []

        async def run_one(sub: IntegrationPipeline) -> None:
            error = await sub.run(ctx, alerts)
            if error is not None:
                errors.append(error)

        if len(self.integrations) == 1:
            # Nothing to run concurrently: a task and a nursery per flush would be
            # pure overhead on the busiest path.
            await run_one(self.integrations[0])
        else:
            async with trio.open_nursery() as nursery:
                for sub in self.integrations:
                    nursery.start_soon(run_one, sub)
        if errors:
            log.warning(
                "notify.receiver_failed",
                receiver=self.receiver,
                group_key=ctx.group_key,
                error="; ".join(sorted(errors)),
            )
            return False
        return True


def build_notifiers(
    config: Config,
    nflog: Nflog,
    clock: Clock,
    http: httpx.AsyncClient | HttpSender,
    external_url: str,
    *,
    rng: random.Random | None = None,
    wait: Callable[[], float] = no_wait,
    templates: Templater | None = None,
    clients: HttpClients | None = None,
    stages: Sequence[Stage] = (),
    recorder: AttemptRecorder | None = None,
    rate_limits: NotificationRateLimits | None = None,
    tenant: str | None = None,
) -> dict[str, ReceiverPipeline]:
    """One pipeline per configured receiver, keyed by receiver name.

    Every receiver gets one, referenced by a route or not: building is cheap and only
    referenced ones are ever called. ``wait`` gives this peer's HA wait in seconds.
    ``templates`` renders integration fields (defaults to the built-in templates only).
    ``clients`` gives each integration the client its ``http_config`` needs.
    ``stages`` are the receiver-wide stages every receiver runs first; ``recorder``
    is told what each integration's share of each flush came to; ``rate_limits`` are
    a tenant's notification rate limits (None: unlimited).
    """
    rng = rng or random.Random()
    templates = templates or Templates.load((), external_url)
    pipelines: dict[str, ReceiverPipeline] = {}
    for receiver in config.receivers:
        subs = [
            IntegrationPipeline.build(
                receiver.name, integration, nflog, clock, rng, wait, recorder, rate_limits, tenant
            )
            for integration in build_integrations(
                receiver, http, external_url, templates, clock, clients
            )
        ]
        pipelines[receiver.name] = ReceiverPipeline(receiver.name, subs, stages)
    return pipelines


def build_pipeline(
    config: Config,
    *,
    nflog: Nflog,
    silences: SilenceMatcher,
    inhibitor: Inhibitor,
    mute_marker: GroupMuteMarker,
    clock: Clock,
    http: httpx.AsyncClient | HttpSender,
    external_url: str,
    templates: Templater,
    clients: HttpClients | None = None,
    settle: Callable[[], Awaitable[None]] | None = None,
    wait: Callable[[], float] = no_wait,
    rng: random.Random | None = None,
    recorder: AttemptRecorder | None = None,
    rate_limits: NotificationRateLimits | None = None,
    tenant: str | None = None,
) -> dict[str, ReceiverPipeline]:
    """Every receiver's pipeline, stages in Alertmanager's ``PipelineBuilder`` order.

    ``settle`` waits until gossip has settled (None without clustering); ``wait`` gives
    this peer's HA wait in seconds.
    """
    intervals = TimeIntervals(config.time_intervals)
    stages: list[Stage] = [] if settle is None else [GossipSettleStage(settle)]
    stages += [
        InhibitStage(inhibitor, tenant),
        TimeActiveStage(intervals, mute_marker, tenant),
        TimeMuteStage(intervals, mute_marker, tenant),
        SilenceStage(silences, tenant=tenant),
    ]
    return build_notifiers(
        config,
        nflog,
        clock,
        http,
        external_url,
        rng=rng,
        wait=wait,
        templates=templates,
        clients=clients,
        stages=tuple(stages),
        recorder=recorder,
        rate_limits=rate_limits,
        tenant=tenant,
    )


__all__ = [
    "DedupStage",
    "IntegrationFailed",
    "IntegrationFlush",
    "IntegrationPipeline",
    "IntegrationStage",
    "RateLimitStage",
    "ReceiverPipeline",
    "RetryStage",
    "SetNotifiesStage",
    "WaitStage",
    "build_notifiers",
    "build_pipeline",
]
