"""``--events.notification-webhook``: events matched by ``notification`` rules, sent on.

As kube-events' ruler does, matching events go to each webhook as newline-delimited
JSON (one core/v1 Event a line), in batches of at most :data:`BATCH_EVENTS`. Unlike
kube-events, a sink never fails silently: every failed request, every event dropped
and why, is logged and counted (``tocsin_event_notification_*``).

Rules:

* One :class:`NotificationSink` per URL, each an actor owning a bounded queue. The
  intake hands it events without waiting (:meth:`NotificationSink.offer`); a full queue
  drops the newest events, counted with ``reason="queue_full"``, so a dead sink never
  slows the intake down.
* A batch is retried on connection errors, 5xx and 429, after :func:`retry_delay`,
  up to :data:`MAX_ATTEMPTS` times; then it is dropped (``reason="retries"``). Any other
  answer (a 4xx: wrong URL, refused auth) is not retried (``reason="refused"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
import structlog
import trio

from daemon.sources import metrics as sm

log = structlog.get_logger("tocsin.sources")

#: Events per request at most (kube-events' ruler drains its queue 500 at a time).
BATCH_EVENTS = 500
#: Events waiting per sink at most.
QUEUE_EVENTS = 20_000
#: Tries per batch, the first included.
MAX_ATTEMPTS = 8
FIRST_DELAY = 0.5
MAX_DELAY = 30.0


def retry_delay(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1`` after try ``attempt`` (1-based) failed."""
    return float(min(FIRST_DELAY * 2 ** (attempt - 1), MAX_DELAY))


def ndjson(events: Iterable[dict[str, Any]]) -> bytes:
    """The request body: one compact JSON object a line, each line ending in a newline."""
    return b"".join(
        json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for e in events
    )


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


class NotificationSink:
    """Sends the events it is offered to one webhook URL (see module doc).

    Cancellation: ``run`` stops between two tries; queued events are lost.
    """

    def __init__(self, url: str, client: httpx.AsyncClient, *, queue: int = QUEUE_EVENTS) -> None:
        self.url = url
        self.client = client
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](queue)
        self._sent = sm.notifications_sent.labels(url)
        self._failed = sm.notification_requests_failed.labels(url)
        self._full = sm.notifications_dropped.labels(url, "queue_full")
        self._given_up = sm.notifications_dropped.labels(url, "retries")
        self._refused = sm.notifications_dropped.labels(url, "refused")

    def offer(self, events: Sequence[dict[str, Any]]) -> None:
        """Queue ``events`` without waiting; what does not fit is dropped and counted."""
        dropped = 0
        for event in events:
            try:
                self._send.send_nowait(event)
            except trio.WouldBlock:
                dropped += 1
        if dropped:
            self._full.inc(dropped)
            log.warning(
                "event_notifications.dropped", url=self.url, reason="queue_full", count=dropped
            )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send batches until cancelled."""
        task_status.started()
        while True:
            batch = [await self._receive.receive()]
            while len(batch) < BATCH_EVENTS:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._deliver(batch)

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        payload = ndjson(batch)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = await self.client.post(
                    self.url, content=payload, headers={"Content-Type": "application/x-ndjson"}
                )
            except httpx.HTTPError as exc:
                problem, retry = f"{type(exc).__name__}: {exc}", True
            else:
                if response.is_success:
                    self._sent.inc(len(batch))
                    return
                problem, retry = f"status {response.status_code}", _retryable(response.status_code)
            self._failed.inc()
            log.warning(
                "event_notifications.failed",
                url=self.url,
                attempt=attempt,
                events=len(batch),
                err=problem,
            )
            if not retry:
                self._refused.inc(len(batch))
                log.error(
                    "event_notifications.dropped", url=self.url, reason="refused", count=len(batch)
                )
                return
            if attempt < MAX_ATTEMPTS:
                await trio.sleep(retry_delay(attempt))
        self._given_up.inc(len(batch))
        log.error("event_notifications.dropped", url=self.url, reason="retries", count=len(batch))


__all__ = ["NotificationSink", "ndjson", "retry_delay"]
