"""From decoded events to what the sources do with them: pure and synchronous.

A body's events go through the current rules (:class:`EventRules`, which
:mod:`daemon.sources.rulesets` builds from the rule files) one by one. Each event yields
the outcomes of the rules it matched: for an event rule, at most one ``alert`` and one
``notification`` outcome (the first enabled matching rule of each type); for audit
rules, one ``alert`` per matching rule at or above the alerting priority. An ``alert``
outcome becomes an :class:`~daemon.sources.resolve.Occurrence` for the resolve actor;
a ``notification`` outcome sends the event on to the notification webhooks.

Nothing here is applied: :func:`evaluate_steps` returns an :class:`Evaluation` that the
shell (:mod:`daemon.sources.intake`) applies whole, so a body is all or nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Generator, Sequence
from typing import Any, Literal, Protocol

import attrs

from daemon.sources.resolve import Occurrence, event_identity

#: Events evaluated between two yields of :func:`evaluate_steps`.
STEP_EVENTS = 100

Intake = Literal["events", "audit"]


@attrs.frozen
class Outcome:
    """One rule that matched one event."""

    rule: str
    type: Literal["alert", "notification"]
    labels: dict[str, str] = attrs.field(factory=dict)
    annotations: dict[str, str] = attrs.field(factory=dict)
    #: The rule's own resolve_after in nanoseconds; None means the default.
    resolve_after: int | None = None


class EventRules(Protocol):
    """The loaded rules of one intake."""

    def outcomes(self, event: dict[str, Any]) -> list[Outcome]:
        """The rules ``event`` matches, in the order they win."""
        ...

    def __len__(self) -> int:
        """How many rules are loaded (for the metrics)."""
        ...


@attrs.frozen
class Evaluation:
    """What one body's events come to; applied whole or not at all."""

    intake: Intake
    received: int
    #: Events that matched at least one rule.
    matched: int
    occurrences: list[Occurrence]
    #: Events for the notification webhooks, in body order.
    notifications: list[dict[str, Any]]
    #: (rule, type) → events matched.
    per_rule: Counter[tuple[str, str]]
    #: CPU seconds spent in the rules (yields excluded).
    seconds: float


def evaluate_steps(
    intake: Intake,
    rules: EventRules,
    events: Sequence[dict[str, Any]],
    default_resolve_after: int,
) -> Generator[None, None, Evaluation]:
    """Run ``events`` through ``rules``, yielding every :data:`STEP_EVENTS` events.

    Event occurrences carry the event's identity and version (only a new or changed
    event extends its alert); audit events have none: each is an occurrence.
    """
    occurrences: list[Occurrence] = []
    notifications: list[dict[str, Any]] = []
    per_rule: Counter[tuple[str, str]] = Counter()
    matched = 0
    seconds = 0.0
    outcomes_of = rules.outcomes
    with_identity = intake == "events"
    for start in range(0, len(events), STEP_EVENTS):
        began = time.perf_counter()
        for event in events[start : start + STEP_EVENTS]:
            outcomes = outcomes_of(event)
            if not outcomes:
                continue
            matched += 1
            for outcome in outcomes:
                per_rule[outcome.rule, outcome.type] += 1
                if outcome.type == "notification":
                    notifications.append(event)
                    continue
                identity, version = event_identity(event) if with_identity else (None, ())
                occurrences.append(
                    Occurrence(
                        outcome.labels,
                        outcome.annotations,
                        default_resolve_after
                        if outcome.resolve_after is None
                        else outcome.resolve_after,
                        identity,
                        version,
                    )
                )
        seconds += time.perf_counter() - began
        yield
    return Evaluation(intake, len(events), matched, occurrences, notifications, per_rule, seconds)


__all__ = ["Evaluation", "EventRules", "Intake", "Outcome", "evaluate_steps"]
