"""The silence stage of the notification pipeline (spec §4, §6.4).

It runs last among the receiver-wide stages and drops every alert that an *active*
silence matches at the flush's tick time ``ctx.now``; the rest pass. As with the other
suppression stages, a flush left empty ends with success, so a resolution flushed
while silenced is never sent (trap 5). Each dropped alert counts in
``alertmanager_notifications_suppressed_total{reason="silence"}``.

The matching is :meth:`daemon.silence.state.Silences.mutes`, whose per-fingerprint cache makes
repeat flushes of the same alerts cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs
import structlog
import trio

from daemon import metrics
from daemon.alert import Alert
from daemon.notify.context import NotifyContext

log = structlog.get_logger(__name__)

REASON_SILENCE = "silence"


class SilenceMatcher(Protocol):
    """What the stage asks: :class:`daemon.silence.state.Silences` is one; a tenant
    pipeline's asks its own silences and the global ones."""

    def mutes(self, labels: Mapping[str, str], fingerprint: int, now: int) -> list[str]: ...

    def mutes_many(self, alerts: Sequence[Alert], now: int) -> list[list[str]]:
        """``mutes`` of each alert's labels and fingerprint."""
        ...


class SilenceMarker(Protocol):
    """Told, per evaluated alert, the IDs of the active silences muting it (maybe none)."""

    def set_silenced(self, fingerprint: int, silence_ids: Sequence[str]) -> None: ...


@attrs.define
class SilenceStage:
    """Drops the alerts muted by active silences at the flush's tick time."""

    silences: SilenceMatcher
    marker: SilenceMarker | None = None
    #: The pipeline's tenant, a label of its suppression count (None: the global one).
    tenant: str | None = None
    #: The ``reason="silence"`` child of the suppressed counter, looked up once.
    _suppressed: Any = attrs.field(default=None, init=False)

    def prepare(self, alerts: Sequence[Alert], now: int) -> None:
        """Look ``alerts`` up ahead of their flush: ``Silences`` caches each answer per
        fingerprint until a silence changes or starts or ends, so the flush's own
        lookup (at its tick time, later than ``now``) finds it."""
        self.silences.mutes_many(alerts, now)

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]:
        # A cancel point without a scheduler round trip: stages run on every flush.
        await trio.lowlevel.checkpoint_if_cancelled()
        marker = self.marker
        kept = []
        for alert, ids in zip(alerts, self.silences.mutes_many(alerts, ctx.now), strict=True):
            if marker is not None:
                marker.set_silenced(alert.fingerprint, ids)
            if not ids:
                kept.append(alert)
        dropped = len(alerts) - len(kept)
        if dropped:
            if self._suppressed is None:
                self._suppressed = metrics.pipeline_series(
                    metrics.notifications_suppressed, self.tenant, REASON_SILENCE
                )
            self._suppressed.inc(dropped)
            log.debug(
                "notify.silenced", receiver=ctx.receiver, group_key=ctx.group_key, count=dropped
            )
        return kept
