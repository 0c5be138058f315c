"""Shipping history records out: JSON lines to a file, or a webhook. Shapes are pure; sinks are actors.

Two shapes:

* :func:`event_recorder_line`: Alertmanager's event recorder ``Event`` with a
  ``notification`` payload, as ``protojson`` writes it (``eventrecorderpb``):
  lowerCamelCase keys, ``@timestamp``, 64-bit integers as strings, enums by name,
  durations as ``"14400s"``, zero values left out. Label sets are
  ``{"labels": [{"key", "value"}]}`` sorted by key. Alertmanager records successful
  sends only; we write every record and put what its shape has no room for (outcome,
  error, attempts, duration, tenant) in a top-level ``"tocsin"`` object, which
  consumers of Alertmanager's shape ignore. Alert details carry fingerprint, name,
  labels and resolved; the history keeps no annotations or start and end times.
* :func:`nm_history_body`: KubeSphere Notification Manager's history webhook body,
  one ``Data`` object per batch of successfully sent records, each alert with
  ``notificationTime`` and a ``receiver`` map (receiver -> {integration -> targets};
  tocsin knows no targets, so the list names the integration, ``webhook[0]``).

Each sink runs behind a :class:`HistoryExporter`: its own bounded queue (a full one
drops and counts), its own task, so a slow disk or webhook never reaches the
notifier or the database writer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import httpx
import structlog
import trio
from prometheus_client import Counter

from daemon import metrics
from daemon.gocompat.timestamp import format_nano
from daemon.history.intake import Intake
from daemon.history.record import HistoryRecord, Outcome, Status
from daemon.history.store import RunSync
from daemon.nflog.state import alert_hash

log = structlog.get_logger("daemon.history")

export_dropped_total = Counter(
    "tocsin_history_export_dropped_total",
    "History records a sink lost, by sink and reason.",
    ["sink", "reason"],
    registry=metrics.REGISTRY,
)
exported_total = Counter(
    "tocsin_history_exported_total",
    "History records a sink shipped.",
    ["sink"],
    registry=metrics.REGISTRY,
)

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


# --- shapes (pure) --------------------------------------------------------------------


def _fraction(nanos: int) -> str:
    """protojson's fraction: none, or 3, 6 or 9 digits, whichever is exact."""
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


def pb_timestamp(ns: int) -> str:
    """A ``google.protobuf.Timestamp`` as protojson writes it."""
    base = format_nano(ns - ns % 1_000_000_000)
    return base[:-1] + _fraction(ns % 1_000_000_000) + "Z"


def pb_duration(ns: int) -> str:
    """A ``google.protobuf.Duration`` as protojson writes it (``"14400s"``, ``"0.500s"``)."""
    sign = "-" if ns < 0 else ""
    seconds, nanos = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{seconds}{_fraction(nanos)}s"


def _label_set(labels: Iterable[tuple[str, str]]) -> dict[str, Any]:
    pairs = [{"key": k, "value": v} for k, v in sorted(labels)]
    return {"labels": pairs} if pairs else {}


def _compact(obj: dict[str, Any]) -> dict[str, Any]:
    """Leave out protojson's unpopulated values (empty strings, lists, objects, zeros)."""
    # False == 0, so false booleans go too, as in protojson.
    return {k: v for k, v in obj.items() if v not in ("", 0, None, [], {})}


def event_recorder_event(rec: HistoryRecord, instance: str) -> dict[str, Any]:
    """The event recorder ``Event`` for ``rec`` (see the module docstring)."""
    grouped: list[dict[str, Any]] = []
    firing: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    for a in rec.alerts:
        hash_text = str(alert_hash(a.labels))
        details = _compact(
            {
                "fingerprint": str(int(a.fingerprint, 16)),
                "name": a.labels.get("alertname", ""),
                "labels": _label_set(a.labels.items()),
                "resolved": a.status is Status.RESOLVED,
            }
        )
        grouped.append({"hash": hash_text, "details": details})
        (resolved if a.status is Status.RESOLVED else firing).append({"hash": hash_text})
    notification = _compact(
        {
            "alerts": grouped,
            "firingAlerts": firing,
            "resolvedAlerts": resolved,
            "groupInfo": _compact(
                {
                    "groupKey": rec.group_key,
                    "groupLabels": _label_set(rec.group_labels.items()),
                    "groupId": hashlib.sha256(rec.group_key.encode()).hexdigest(),
                    "receiverName": rec.receiver,
                }
            ),
            "repeatInterval": pb_duration(rec.repeat_interval) if rec.repeat_interval else None,
            "reason": rec.reason.value if rec.reason is not None else None,
            "integration": _compact(
                {
                    "name": rec.integration.name,
                    # int64: a string in protojson, and left out when zero.
                    "index": str(rec.integration.index) if rec.integration.index else None,
                }
            ),
        }
    )
    return {
        "@timestamp": pb_timestamp(rec.time),
        **_compact({"instance": instance}),
        "data": {"notification": notification},
        "tocsin": _compact(
            {
                "tenant": rec.tenant,
                "outcome": rec.outcome.value,
                "error": rec.error,
                "attempts": rec.attempts,
                "duration": pb_duration(rec.duration),
            }
        ),
    }


def event_recorder_line(rec: HistoryRecord, instance: str) -> str:
    """One JSON line (with its newline) for the export file."""
    return _encoder.encode(event_recorder_event(rec, instance)) + "\n"


def nm_history_body(records: Sequence[HistoryRecord]) -> dict[str, Any] | None:
    """Notification Manager's history ``Data`` for the sent records of a batch, or None if none."""
    sent = [r for r in records if r.outcome is Outcome.SENT]
    if not sent:
        return None
    alerts: list[dict[str, Any]] = []
    for rec in sent:
        target = f"{rec.integration.name}[{rec.integration.index}]"
        for a in rec.alerts:
            alerts.append(
                {
                    "id": a.fingerprint,
                    "status": a.status.value,
                    "labels": {**a.labels, "receiver": rec.receiver},
                    "annotations": {},
                    "notificationTime": format_nano(rec.time),
                    "receiver": {rec.receiver: {rec.integration.name: [target]}},
                }
            )
    if not alerts:
        return None
    common = dict(alerts[0]["labels"])
    for other in alerts[1:]:
        common = {k: v for k, v in common.items() if other["labels"].get(k) == v}
    group_labels = dict(sent[0].group_labels) if len(sent) == 1 else {}
    return {
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {},
    }


# --- sinks (shell) --------------------------------------------------------------------


class HistoryRecorder(Protocol):
    """Anything that takes records from the notifier: sync, non-blocking, never raising."""

    def record(self, rec: HistoryRecord) -> None: ...


@attrs.frozen
class FanOut:
    """One ``record`` call for several recorders (store, file, webhook)."""

    recorders: tuple[HistoryRecorder, ...]

    def record(self, rec: HistoryRecord) -> None:
        for r in self.recorders:
            r.record(rec)


class Sink(Protocol):
    """Ships a batch; raises on failure (the exporter counts and logs it)."""

    @property
    def name(self) -> str: ...

    async def send(self, batch: Sequence[HistoryRecord]) -> int:
        """Ship ``batch``; how many records it shipped."""
        ...


@attrs.define(eq=False)
class JsonLinesFile:
    """Appends event-recorder JSON lines to ``path`` in a worker thread.

    The file is opened per batch, so a logrotate rename or removal is picked up at
    the next batch without a watcher.
    """

    path: Path = attrs.field(converter=Path)
    instance: str = ""
    run_sync: RunSync = trio.to_thread.run_sync
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def _append(self, batch: Sequence[HistoryRecord]) -> int:
        text = "".join(event_recorder_line(r, self.instance) for r in batch)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
        return len(batch)

    async def send(self, batch: Sequence[HistoryRecord]) -> int:
        shipped: int = await self.run_sync(self._append, batch, limiter=self._limiter)
        return shipped


#: The bodies the history webhook can post (``--history.webhook-format``).
WEBHOOK_FORMATS = ("events", "nm")


@attrs.define(eq=False)
class HistoryWebhook:
    """POSTs each batch to ``url``, in one of two shapes (``shape``):

    * ``events`` (the default): every record of the batch as Alertmanager event-recorder
      JSON lines (:func:`event_recorder_line`), ``Content-Type: application/x-ndjson``, the
      same lines ``--history.export-file`` writes, ready for Loki or Elasticsearch;
    * ``nm``: Notification Manager's history body (:func:`nm_history_body`), sent records
      only, for receivers built for NM.

    As NM's history webhook: success is HTTP 200 exactly; three tries, ``retry_delay``
    seconds apart, then the batch is dropped. Each try is bounded by ``timeout``.
    """

    url: str
    client: httpx.AsyncClient
    shape: str = attrs.field(default="events", validator=attrs.validators.in_(WEBHOOK_FORMATS))
    instance: str = ""
    timeout: float = 10.0
    attempts: int = 3
    retry_delay: float = 5.0

    @property
    def name(self) -> str:
        return "webhook"

    def _body(self, batch: Sequence[HistoryRecord]) -> tuple[bytes, str, int] | None:
        """The request body, its content type and how many records it ships."""
        if self.shape == "nm":
            payload = nm_history_body(batch)
            if payload is None:
                return None
            shipped = sum(1 for r in batch if r.outcome is Outcome.SENT)
            return _encoder.encode(payload).encode(), "application/json", shipped
        text = "".join(event_recorder_line(r, self.instance) for r in batch)
        return text.encode(), "application/x-ndjson", len(batch)

    async def send(self, batch: Sequence[HistoryRecord]) -> int:
        body = self._body(batch)
        if body is None:
            return 0
        content, content_type, shipped = body
        error = ""
        for attempt in range(self.attempts):
            if attempt:
                await trio.sleep(self.retry_delay)
            try:
                with trio.fail_after(self.timeout):
                    resp = await self.client.post(
                        self.url, content=content, headers={"Content-Type": content_type}
                    )
            except (httpx.HTTPError, trio.TooSlowError) as exc:
                error = repr(exc)
                continue
            if resp.status_code == 200:
                return shipped
            error = f"status {resp.status_code}"
        raise ExportError(f"history webhook failed after {self.attempts} attempts: {error}")


class ExportError(Exception):
    """A sink gave up on a batch."""


@attrs.define(eq=False)
class HistoryExporter:
    """A bounded queue and one task feeding a :class:`Sink`. Start with ``nursery.start``."""

    sink: Sink
    queue_size: int = 10_000
    batch_size: int = 500
    _intake: Intake = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        name = self.sink.name
        self._intake = Intake(
            self.queue_size, lambda reason, n: export_dropped_total.labels(name, reason).inc(n)
        )

    def record(self, rec: HistoryRecord) -> None:
        """Queue ``rec``; never blocks, never raises (a lost record is counted)."""
        self._intake.put(rec)

    async def wait_written(self) -> None:
        """Wait until every record accepted before this call is shipped or dropped."""
        await self._intake.wait_settled()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ship batches until cancelled.

        Error handling: a failed batch is counted and logged (``history.export_failed``)
        and the next one is tried; only bugs propagate.
        """
        task_status.started()
        try:
            while True:
                batch = [await self._intake.receive()]
                self._intake.take_queued(batch, self.batch_size)
                try:
                    shipped = await self.sink.send(batch)
                except (OSError, ValueError, ExportError) as exc:
                    # ValueError: text the encoders refuse (UnicodeEncodeError).
                    export_dropped_total.labels(self.sink.name, "error").inc(len(batch))
                    log.error(
                        "history.export_failed",
                        sink=self.sink.name,
                        error=str(exc),
                        records=len(batch),
                    )
                else:
                    exported_total.labels(self.sink.name).inc(shipped)
                finally:
                    self._intake.settle(len(batch))
        finally:
            # Whatever is still queued at shutdown is lost; say how much.
            left = self._intake.close()
            if left:
                export_dropped_total.labels(self.sink.name, "closed").inc(len(left))


__all__ = [
    "WEBHOOK_FORMATS",
    "ExportError",
    "FanOut",
    "HistoryExporter",
    "HistoryRecorder",
    "HistoryWebhook",
    "JsonLinesFile",
    "Sink",
    "event_recorder_event",
    "event_recorder_line",
    "nm_history_body",
    "pb_duration",
    "pb_timestamp",
]
