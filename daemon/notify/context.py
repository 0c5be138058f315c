"""What the dispatcher hands the notification pipeline at each group flush."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from daemon.alert import Alert


@attrs.frozen
class NotifyContext:
    """Facts about one flush; ``now`` is the tick's wall time and is never re-read below."""

    group_key: str
    group_labels: dict[str, str]
    receiver: str
    repeat_interval: int
    #: Route ID: route key plus child index per level; disambiguates identical siblings.
    route_id: str
    now: int
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


class Notifier(Protocol):
    """The pipeline's entry point as the dispatcher sees it.

    ``alerts`` are sorted (spec §3.6); firing ones carry ``ends_at == ZERO_TIME``.
    Returns True on success, including every "nothing to send" outcome; False if any
    integration failed, so the group keeps its resolved alerts for the next tick.

    Cancellation: the caller bounds the call with a cancel scope (the flush deadline).
    """

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> bool: ...


class Stage(Protocol):
    """A receiver-wide step before the fan-out; returns the alerts it lets through.

    Error handling: raise :class:`daemon.notify.retry.NotifyError` to fail the flush
    (it is logged and ``notify`` returns False); anything else is a bug and propagates.
    """

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]: ...
