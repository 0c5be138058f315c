"""Receiver-wide stages: gossip settle, inhibition, active and mute time intervals (spec §4).

They run in this order, before silences, and each implements
:class:`daemon.notify.context.Stage`. The decisions themselves are pure
(:class:`daemon.inhibit.Inhibitor`, :class:`daemon.timeinterval.TimeIntervals`); the
stages only apply them to one flush, at the flush's tick time ``ctx.now``.

Rules:

* Inhibition drops each alert some firing source inhibits; the others pass.
* Active time intervals: with a non-empty list on the route, if ``now`` is inside none
  of them the whole flush is dropped and the group is marked muted by all listed names.
* Mute time intervals: if ``now`` is inside any listed interval the whole flush is
  dropped and the group is marked muted by the names containing ``now`` (once per
  matching sub-interval); otherwise the group's mute mark is cleared.
* A stage that leaves nothing ends the flush with *success* without touching the nflog,
  so the group then deletes its resolved alerts: a resolution flushed while muted is
  never sent (trap 5). That is Alertmanager's behaviour, kept on purpose.
* Every dropped alert counts in ``alertmanager_notifications_suppressed_total{reason}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
import structlog
import trio

from daemon import metrics
from daemon.alert import Alert
from daemon.inhibit import Inhibitor
from daemon.notify.context import NotifyContext
from daemon.notify.retry import NotifyError
from daemon.timeinterval import TimeIntervals

log = structlog.get_logger(__name__)

REASON_INHIBITION = "inhibition"
REASON_ACTIVE_TIME_INTERVAL = "active_time_interval"
REASON_MUTE_TIME_INTERVAL = "mute_time_interval"


@attrs.define
class GroupMuteMarker:
    """Which groups the time-interval stages muted at their last flush, and by which names.

    Keyed by (route ID, group key): identical sibling routes share group keys. Read by
    the API (``GET /api/v2/alerts/groups`` shows ``mutedBy`` in newer versions).
    """

    _muted: dict[tuple[str, str], tuple[str, ...]] = attrs.field(factory=dict, alias="_muted")

    def set_muted(self, route_id: str, group_key: str, names: Sequence[str]) -> None:
        """Record the names muting a group; no names clears its mark."""
        if names:
            self._muted[(route_id, group_key)] = tuple(names)
        else:
            self._muted.pop((route_id, group_key), None)

    def muted_by(self, route_id: str, group_key: str) -> tuple[str, ...]:
        """The names that muted the group at its last flush; empty if it was not muted."""
        return self._muted.get((route_id, group_key), ())

    def delete(self, route_id: str, group_key: str) -> None:
        """Forget a group that no longer exists."""
        self._muted.pop((route_id, group_key), None)

    def __len__(self) -> int:
        return len(self._muted)


def _active_names(intervals: TimeIntervals, names: Sequence[str], now: int) -> list[str]:
    try:
        return intervals.active_names(names, now)
    except KeyError as err:
        # Config loading rejects unknown names; this only guards a wiring mistake.
        raise NotifyError(
            f"time interval {err.args[0]} doesn't exist in config", retryable=False
        ) from None


@attrs.frozen
class GossipSettleStage:
    """Gossip settle, the first receiver stage: hold flushes until the peer settled.

    Cancellation: the dispatcher's flush deadline bounds the wait; a cancelled flush
    counts as failed and is retried at the next group interval, as upstream.
    """

    wait_settled: Callable[[], Awaitable[None]]

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]:
        """Return ``alerts`` once gossip has settled."""
        await self.wait_settled()
        return alerts


@attrs.define
class InhibitStage:
    """Drops the alerts the inhibitor mutes at the flush's tick time."""

    inhibitor: Inhibitor
    #: The pipeline's tenant, a label of its suppression count (None: the global one).
    tenant: str | None = None

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]:
        # A cancel point without a scheduler round trip: stages run on every flush.
        await trio.lowlevel.checkpoint_if_cancelled()
        inhibited_by = self.inhibitor.inhibited_by
        now = ctx.now
        kept = [a for a in alerts if inhibited_by(a.labels, a.fingerprint, now) is None]
        dropped = len(alerts) - len(kept)
        if dropped:
            metrics.pipeline_series(
                metrics.notifications_suppressed, self.tenant, REASON_INHIBITION
            ).inc(dropped)
            log.debug(
                "notify.inhibited", receiver=ctx.receiver, group_key=ctx.group_key, count=dropped
            )
        return kept


@attrs.define
class TimeActiveStage:
    """Drops the whole flush when the route's active time intervals all exclude ``now``."""

    intervals: TimeIntervals
    marker: GroupMuteMarker = attrs.field(factory=GroupMuteMarker)
    tenant: str | None = None

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]:
        # A cancel point without a scheduler round trip: stages run on every flush.
        await trio.lowlevel.checkpoint_if_cancelled()
        names = ctx.active_time_intervals
        if not names:
            # No active intervals at all means always active.
            return alerts
        if _active_names(self.intervals, names, ctx.now):
            self.marker.set_muted(ctx.route_id, ctx.group_key, ())
            return alerts
        self.marker.set_muted(ctx.route_id, ctx.group_key, names)
        metrics.pipeline_series(
            metrics.notifications_suppressed, self.tenant, REASON_ACTIVE_TIME_INTERVAL
        ).inc(len(alerts))
        log.debug(
            "notify.time_muted",
            receiver=ctx.receiver,
            group_key=ctx.group_key,
            reason=REASON_ACTIVE_TIME_INTERVAL,
            muted_by=list(names),
            count=len(alerts),
        )
        return []


@attrs.define
class TimeMuteStage:
    """Drops the whole flush when ``now`` is inside one of the route's mute time intervals."""

    intervals: TimeIntervals
    marker: GroupMuteMarker = attrs.field(factory=GroupMuteMarker)
    tenant: str | None = None

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]:
        # A cancel point without a scheduler round trip: stages run on every flush.
        await trio.lowlevel.checkpoint_if_cancelled()
        muted_by = _active_names(self.intervals, ctx.mute_time_intervals, ctx.now)
        self.marker.set_muted(ctx.route_id, ctx.group_key, muted_by)
        if not muted_by:
            return alerts
        metrics.pipeline_series(
            metrics.notifications_suppressed, self.tenant, REASON_MUTE_TIME_INTERVAL
        ).inc(len(alerts))
        log.debug(
            "notify.time_muted",
            receiver=ctx.receiver,
            group_key=ctx.group_key,
            reason=REASON_MUTE_TIME_INTERVAL,
            muted_by=muted_by,
            count=len(alerts),
        )
        return []


__all__ = [
    "REASON_ACTIVE_TIME_INTERVAL",
    "REASON_INHIBITION",
    "REASON_MUTE_TIME_INTERVAL",
    "GossipSettleStage",
    "GroupMuteMarker",
    "InhibitStage",
    "TimeActiveStage",
    "TimeMuteStage",
]
