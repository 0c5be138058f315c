"""One call that starts the history store and its optional sinks: the seam the daemon wires.

The composition root calls :func:`start_history` with its root (or instance) nursery
and hands ``history.recorder.record`` to the notification pipeline and
``history.store`` to :func:`daemon.api.history.history_routes`.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import httpx
import trio

from daemon.clock import Clock, SystemClock
from daemon.history.export import (
    FanOut,
    HistoryExporter,
    HistoryRecorder,
    HistoryWebhook,
    JsonLinesFile,
)
from daemon.history.record import from_attempt
from daemon.history.store import DEFAULT_MAX_ROWS, DEFAULT_RETENTION, HistoryStore
from daemon.notify.attempt import Attempt


@attrs.frozen
class AttemptHistory:
    """The pipeline's :class:`~daemon.notify.attempt.AttemptRecorder`: each attempt
    becomes one history record of ``tenant``."""

    recorder: HistoryRecorder
    tenant: str = ""

    def record_attempt(self, attempt: Attempt) -> None:
        self.recorder.record(from_attempt(attempt, self.tenant))


@attrs.frozen
class History:
    """The started history: where records go and what the API queries."""

    store: HistoryStore
    #: The store alone, or the store and every configured sink.
    recorder: HistoryRecorder
    exporters: tuple[HistoryExporter, ...] = ()

    def for_tenant(self, tenant: str = "") -> AttemptHistory:
        """What one instance's notification pipeline reports its attempts to."""
        return AttemptHistory(self.recorder, tenant)

    async def wait_written(self) -> None:
        """Wait until every record given so far is written (or dropped) everywhere."""
        await self.store.wait_written()
        for exporter in self.exporters:
            await exporter.wait_written()


async def start_history(
    nursery: trio.Nursery,
    storage_path: str | Path,
    *,
    retention: int = DEFAULT_RETENTION,
    max_rows: int = DEFAULT_MAX_ROWS,
    export_file: str | Path | None = None,
    webhook_url: str | None = None,
    webhook_format: str = "events",
    http_client: httpx.AsyncClient | None = None,
    instance: str = "",
    clock: Clock | None = None,
) -> History:
    """Start the store (and the file and webhook exporters asked for) in ``nursery``.

    Returns once the database is open. ``retention`` is a parsed duration (ns);
    ``instance`` names this node in exported events (Alertmanager uses host:port).
    ``webhook_url`` needs ``http_client`` (the daemon's shared one); ``webhook_format``
    is ``events`` (event-recorder JSON lines) or ``nm`` (Notification Manager's body).

    Error handling: a database that cannot be opened raises here; later write and
    export failures are counted and logged, never raised.
    """
    if webhook_url is not None and http_client is None:
        # Before anything starts: a half-started history is worse than none.
        raise ValueError("a history webhook needs an http_client")
    store = HistoryStore(
        storage_path, retention=retention, max_rows=max_rows, clock=clock or SystemClock()
    )
    await nursery.start(store.run)
    exporters: list[HistoryExporter] = []
    if export_file is not None:
        exporter = HistoryExporter(JsonLinesFile(export_file, instance=instance))
        await nursery.start(exporter.run)
        exporters.append(exporter)
    if webhook_url is not None:
        assert http_client is not None  # checked above
        hook = HistoryExporter(HistoryWebhook(webhook_url, http_client, webhook_format, instance))
        await nursery.start(hook.run)
        exporters.append(hook)
    recorder: HistoryRecorder = store if not exporters else FanOut((store, *exporters))
    return History(store, recorder, tuple(exporters))


__all__ = ["History", "start_history"]
