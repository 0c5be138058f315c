"""What one integration's share of a flush came to, for whoever records it (the
notification history): the facts the pipeline knows, as a plain value.

The pipeline reports every integration a flush reaches: a send that succeeded, one
that gave up, and one the dedup stage stopped. Recording must be cheap and never block
or raise: it runs on the event loop, after the outcome is known.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import attrs

from daemon.alert import Alert
from daemon.notify.context import NotifyContext
from daemon.notify.dedup import NotifyReason


class Outcome(enum.Enum):
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


@attrs.frozen
class Attempt:
    """One integration's part of one flush."""

    ctx: NotifyContext
    integration: str
    index: int
    #: The flush's alerts as the integration's stages saw them.
    alerts: Sequence[Alert]
    #: The dedup stage's wall time (after the HA wait): it says which alerts resolved.
    now: int
    #: When the outcome was known, Unix ns.
    ended: int
    #: None only for a suppressed attempt.
    reason: NotifyReason | None
    outcome: Outcome
    error: str | None = None
    attempts: int = 0
    #: From the first send attempt to the outcome, ns.
    duration: int = 0


class AttemptRecorder(Protocol):
    """Takes each attempt; must not block or raise."""

    def record_attempt(self, attempt: Attempt) -> None: ...


__all__ = ["Attempt", "AttemptRecorder", "Outcome"]
