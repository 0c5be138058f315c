"""The notification pipeline of one receiver (spec §4).

Theory of operation, per flush (``ReceiverPipeline.notify``):

1. Receiver-wide stages run in order (gossip settle, inhibition, time intervals,
   silences; :class:`Stage`). Each returns the alerts it lets through; the first that
   returns none ends the flush with success.
2. Fan-out: one :class:`IntegrationPipeline` per integration, all concurrently in one
   nursery. Each one waits ``position * peer_timeout`` (HA ordering), asks the nflog
   whether anything is new (:mod:`daemon.notify.dedup`), sends with retries, and on
   success records the send in the nflog with expiry ``2 * repeat_interval``.
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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import httpx
import structlog
import trio

from daemon import metrics
from daemon.alert import Alert
from daemon.clock import Clock, SystemClock
from daemon.config.model import Config, HTTPConfig, IntegrationConfig, Receiver
from daemon.nflog.state import Nflog, ReceiverKey
from daemon.notify.context import NotifyContext
from daemon.notify.dedup import needs_update, split_hashes
from daemon.notify.http1 import HttpSender
from daemon.notify.httpclient import HttpClients, as_sender
from daemon.notify.receivers.base import IntegrationEnv, Templater
from daemon.notify.receivers.registry import build_integration
from daemon.notify.receivers.webhook import WebhookIntegration, unsupported_http_keys
from daemon.notify.retry import (
    REASON_CONTEXT_CANCELED,
    REASON_DEADLINE_EXCEEDED,
    Backoff,
    NotifyError,
)
from daemon.template.render import Templates

log = structlog.get_logger(__name__)


class Stage(Protocol):
    """A receiver-wide step before the fan-out; returns the alerts it lets through.

    Error handling: raise :class:`NotifyError` to fail the flush (it is logged and
    ``notify`` returns False); anything else is a bug and propagates.
    """

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]: ...


class Integration(Protocol):
    """One configured integration (e.g. one ``webhook_configs`` entry).

    ``notify`` returns on success and raises :class:`NotifyError` otherwise.
    """

    @property
    def name(self) -> str: ...

    @property
    def index(self) -> int: ...

    @property
    def send_resolved(self) -> bool: ...

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None: ...


@attrs.define
class UnsupportedIntegration:
    """An integration type tocsin cannot send yet: every send fails, loudly, not silently."""

    name: str
    index: int
    send_resolved: bool

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        await trio.lowlevel.checkpoint()
        raise NotifyError(
            f"integration type {self.name!r} is not implemented by tocsin", retryable=False
        )


def no_wait() -> float:
    """The HA wait without clustering: this node is always first."""
    return 0.0


@attrs.define
class IntegrationPipeline:
    """Wait, dedup, retry and set-notifies for one integration of one receiver."""

    receiver: str
    integration: Integration
    nflog: Nflog
    clock: Clock
    rng: random.Random
    #: Seconds to wait before dedup: ``position * peer_timeout``.
    wait: Callable[[], float] = no_wait
    #: This integration's children of the per-attempt metrics, looked up once.
    _sent_metrics: tuple[Any, Any, Any] | None = attrs.field(default=None, init=False)
    #: The nflog key, built once per integration object (read twice per flush).
    _key: tuple[Integration, ReceiverKey] | None = attrs.field(default=None, init=False)

    def _metrics(self) -> tuple[Any, Any, Any]:
        """``notifications``, ``notification_requests`` and the latency histogram."""
        if self._sent_metrics is None:
            name = self.integration.name
            self._sent_metrics = (
                metrics.notifications.labels(name),
                metrics.notification_requests.labels(name),
                metrics.notification_latency.labels(name),
            )
        return self._sent_metrics

    @property
    def label(self) -> str:
        """Upstream's integration string, ``webhook[0]``, used in logs and errors."""
        return f"{self.integration.name}[{self.integration.index}]"

    @property
    def key(self) -> ReceiverKey:
        cached = self._key
        if cached is None or cached[0] is not self.integration:
            key = ReceiverKey(self.receiver, self.integration.name, self.integration.index)
            cached = self._key = (self.integration, key)
        return cached[1]

    async def run(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> str | None:
        """Deliver if needed; returns None on success or the give-up error text."""
        now = ctx.now
        delay = self.wait()
        if delay > 0:
            await trio.sleep(delay)
            # Peers ahead of us had `delay` to notify; judge their entries at real time.
            now = self.clock.now()
        firing, resolved = split_hashes(alerts, now)
        entry = self.nflog.query(ctx.group_key, self.key)
        if not needs_update(
            entry, firing, resolved, self.integration.send_resolved, ctx.repeat_interval, now
        ):
            log.debug(
                "notify.deduped",
                receiver=self.receiver,
                integration=self.label,
                group_key=ctx.group_key,
            )
            return None
        error = await self._retry(ctx, alerts, now)
        if error is not None:
            return error
        self.nflog.log(
            self.key,
            ctx.group_key,
            firing,
            resolved,
            now=self.clock.now(),
            expiry=2 * ctx.repeat_interval,
        )
        return None

    async def _retry(self, ctx: NotifyContext, alerts: Sequence[Alert], now: int) -> str | None:
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
        try:
            while True:
                attempts += 1
                started = trio.current_time()
                try:
                    await self.integration.notify(ctx, sent)
                except NotifyError as err:
                    requests.inc()
                    metrics.notification_requests_failed.labels(name).inc()
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
                    log.info(
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
            self._give_up(text, reason, attempts, fields)
            raise

    def _give_up(self, text: str, reason: str, attempts: int, fields: dict[str, object]) -> str:
        metrics.notifications_failed.labels(self.integration.name, reason).inc()
        log.error("notify.failed", **fields, attempts=attempts, reason=reason, error=text)
        return text


@attrs.define
class ReceiverPipeline:
    """The :class:`~daemon.notify.context.Notifier` for one receiver."""

    receiver: str
    integrations: list[IntegrationPipeline]
    #: Receiver-wide stages before the fan-out, in order; empty until those land.
    stages: list[Stage] = attrs.field(factory=list)

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


def build_integrations(
    receiver: Receiver,
    http: httpx.AsyncClient | HttpSender,
    external_url: str,
    templater: Templater | None = None,
    clock: Clock | None = None,
    clients: HttpClients | None = None,
) -> list[Integration]:
    """The integrations of one receiver; unknown types become failing placeholders.

    With ``clients``, each entry gets the sender its ``http_config`` needs (the
    default one, or httpx for TLS, proxy, OAuth2; raises ``HttpClientConfigError`` on
    unusable TLS files) and ``http`` is not used; without, all share ``http`` and
    those settings are logged as ignored.
    """
    default = as_sender(http) if clients is None else clients.default_sender
    built: list[Integration] = []
    for idx, webhook in enumerate(receiver.webhook_configs):
        if clients is None:
            _warn_ignored(receiver.name, f"webhook[{idx}]", webhook.http_config)
        sender = default if clients is None else clients.sender_for(webhook.http_config)
        built.append(WebhookIntegration(webhook, idx, sender, external_url))
    env = IntegrationEnv(
        http=default,
        templater=templater or Templates.load((), external_url),
        external_url=external_url,
        clock=clock or SystemClock(),
        receiver=receiver.name,
    )
    per_type: dict[str, int] = {}
    for other in receiver.other_configs:
        idx = per_type.get(other.type, 0)
        per_type[other.type] = idx + 1
        integration = build_integration(other, idx, _env_for(env, other, clients))
        if integration is None:
            log.warning(
                "notify.integration_unsupported",
                receiver=receiver.name,
                integration=f"{other.type}[{idx}]",
            )
            integration = UnsupportedIntegration(other.type, idx, other.send_resolved)
        built.append(integration)
    return built


def _warn_ignored(receiver: str, integration: str, config: HTTPConfig) -> None:
    ignored = unsupported_http_keys(config)
    if ignored:
        log.warning(
            "notify.config_ignored", receiver=receiver, integration=integration, keys=ignored
        )


def _env_for(
    env: IntegrationEnv, other: IntegrationConfig, clients: HttpClients | None
) -> IntegrationEnv:
    """``env`` with the HTTP sender this entry's ``http_config`` asks for."""
    config = other.fields.get("http_config")
    if clients is None or not isinstance(config, HTTPConfig):
        return env
    sender = clients.sender_for(config)
    return env if sender is env.http else attrs.evolve(env, http=sender)


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
) -> dict[str, ReceiverPipeline]:
    """One pipeline per configured receiver, keyed by receiver name.

    Every receiver gets one, referenced by a route or not: building is cheap and only
    referenced ones are ever called. ``wait`` gives this peer's HA wait in seconds.
    ``templates`` renders integration fields (defaults to the built-in templates only).
    ``clients`` gives each integration the client its ``http_config`` needs.
    """
    rng = rng or random.Random()
    templates = templates or Templates.load((), external_url)
    pipelines: dict[str, ReceiverPipeline] = {}
    for receiver in config.receivers:
        subs = [
            IntegrationPipeline(receiver.name, integration, nflog, clock, rng, wait)
            for integration in build_integrations(
                receiver, http, external_url, templates, clock, clients
            )
        ]
        pipelines[receiver.name] = ReceiverPipeline(receiver.name, subs)
    return pipelines


__all__ = [
    "Integration",
    "IntegrationPipeline",
    "ReceiverPipeline",
    "Stage",
    "UnsupportedIntegration",
    "build_notifiers",
]
