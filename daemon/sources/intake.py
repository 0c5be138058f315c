"""The Kubernetes event and audit source: the shell around rule evaluation.

One :class:`EventIntake` serves both HTTP intakes and the API-server watch. A caller
decodes a body (:mod:`daemon.sources.kubeevents`), runs :meth:`EventIntake.evaluate_steps`
(pure, in slices) and, only if all of that succeeded, :meth:`EventIntake.apply`: alert
occurrences go to the :class:`~daemon.sources.resolve.ResolveActor`, which puts them
into the instance's intake exactly as ``POST /api/v2/alerts`` without a tenant would;
notification events go to every :class:`~daemon.sources.notifysink.NotificationSink`.

The rules in use are swapped whole by :meth:`EventIntake.use` (start-up and reload); a
body is evaluated against one set from start to end.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Protocol

import attrs
import trio

from daemon.clock import Clock
from daemon.sources import Put
from daemon.sources import metrics as sm
from daemon.sources.production import Evaluation, EventRules, Intake, Outcome, evaluate_steps
from daemon.sources.resolve_actor import ResolveActor

#: Seconds :meth:`EventIntake.apply` waits for the resolve actor at most.
APPLY_TIMEOUT = 10.0


class NoRules:
    """The rules of an intake given no rule files: nothing matches."""

    def outcomes(self, event: dict[str, Any]) -> list[Outcome]:
        return []

    def __len__(self) -> int:
        return 0


class EventSink(Protocol):
    """Where notification-rule events go (:class:`~daemon.sources.notifysink.NotificationSink`)."""

    def offer(self, events: Sequence[dict[str, Any]]) -> None:
        """Take ``events`` without waiting (a full sink drops and counts)."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled."""
        ...


@attrs.frozen
class RuleSets:
    """The rules of both intakes, loaded together and swapped together."""

    events: EventRules = attrs.field(factory=NoRules)
    audit: EventRules = attrs.field(factory=NoRules)


@attrs.frozen
class Summary:
    """A body's answer: ``{"received": n, "matched": n, "alerts": n}``."""

    received: int
    matched: int
    alerts: int

    def json(self) -> dict[str, int]:
        return {"received": self.received, "matched": self.matched, "alerts": self.alerts}


class EventIntake:
    """Evaluates event and audit bodies and applies the result (see module doc).

    Error handling: nothing raises on bad events (the decoder refused those already);
    a failing notification webhook is counted by its sink, never by the intake.
    """

    name = "kubernetes-events"

    def __init__(
        self,
        rules: RuleSets,
        clock: Clock,
        *,
        default_resolve_after: int,
        sinks: Sequence[EventSink] = (),
    ) -> None:
        self.rules = rules
        self.default_resolve_after = default_resolve_after
        self.sinks = tuple(sinks)
        self.actor = ResolveActor(clock)
        self.use(rules)

    def use(self, rules: RuleSets) -> None:
        """Evaluate bodies that start from now on against ``rules``."""
        self.rules = rules
        sm.rules_last_reload_successful.set(1)
        sm.rules_loaded.labels("events").set(len(rules.events))
        sm.rules_loaded.labels("audit").set(len(rules.audit))

    def evaluate_steps(
        self, intake: Intake, events: Sequence[dict[str, Any]]
    ) -> Generator[None, None, Evaluation]:
        """The rules' verdict on ``events`` (pure; applies nothing)."""
        rules = self.rules.events if intake == "events" else self.rules.audit
        return evaluate_steps(intake, rules, events, self.default_resolve_after)

    async def apply(self, evaluation: Evaluation) -> Summary:
        """Put the alerts and forward the notifications of an evaluated body.

        Cancellation: shielded, so a client that disconnects cannot leave half a body
        applied; the actor answers as soon as it has put the batch.
        """
        intake = evaluation.intake
        sm.events_decoded.labels(intake).inc(evaluation.received)
        sm.rule_evaluation.labels(intake).observe(evaluation.seconds)
        for (rule, kind), n in evaluation.per_rule.items():
            sm.events_matched.labels(intake, rule, kind).inc(n)
        if evaluation.notifications:
            for sink in self.sinks:
                sink.offer(evaluation.notifications)
        alerts = 0
        if evaluation.occurrences:
            # Bounded even while shielded: at shutdown the actor may be gone already.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + APPLY_TIMEOUT):
                alerts = await self.actor.occur(evaluation.occurrences)
        return Summary(evaluation.received, evaluation.matched, alerts)

    async def run(
        self, put: Put, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the resolve actor and the sinks until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.actor.run, put)
            for sink in self.sinks:
                await nursery.start(sink.run)
            task_status.started()


__all__ = ["EventIntake", "EventSink", "NoRules", "RuleSets", "Summary"]
