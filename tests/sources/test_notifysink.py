"""Notification webhooks get batched NDJSON, retried on failure, and never fail
silently: every failed request and every dropped event is counted."""

from __future__ import annotations

import json

import httpx
import trio
import trio.testing

from daemon.metrics import REGISTRY
from daemon.sources import notifysink
from daemon.sources.notifysink import NotificationSink, ndjson, retry_delay


def sample(name: str, url: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"url": url, **labels}) or 0.0


def test_ndjson_is_one_compact_object_a_line() -> None:
    """Each event is one JSON line, each line ends in a newline, non-ASCII kept."""
    body = ndjson([{"a": 1}, {"b": "é"}])
    assert body == '{"a":1}\n{"b":"é"}\n'.encode()


def test_retry_delay_doubles_up_to_the_cap() -> None:
    """Backoff doubles from the first delay and stops growing at the cap."""
    assert [retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry_delay(20) == notifysink.MAX_DELAY


async def test_events_are_batched_and_retried_until_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 503 then a 200: the same batch is sent twice; the failure is counted."""
    url = "http://sink.test/retry"
    bodies: list[bytes] = []
    done = trio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        if len(bodies) == 2:
            done.set()
        assert request.headers["content-type"] == "application/x-ndjson"
        return httpx.Response(503 if len(bodies) == 1 else 200)

    failed_before = sample("tocsin_event_notification_requests_failed_total", url)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = NotificationSink(url, client)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                sink.offer([{"n": i} for i in range(3)])
                await nursery.start(sink.run)
                await done.wait()
                nursery.cancel_scope.cancel()
    assert bodies[0] == bodies[1]
    assert [json.loads(line)["n"] for line in bodies[1].splitlines()] == [0, 1, 2]
    assert sample("tocsin_event_notification_requests_failed_total", url) == failed_before + 1
    assert sample("tocsin_event_notifications_sent_total", url) == 3


async def test_a_batch_is_at_most_batch_events(autojump_clock: trio.testing.MockClock) -> None:
    """1,200 queued events go out as 500, 500 and 200."""
    url = "http://sink.test/batches"
    sizes: list[int] = []
    done = trio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        sizes.append(len(request.content.splitlines()))
        if sum(sizes) >= 1200:
            done.set()
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = NotificationSink(url, client)
        sink.offer([{"n": i} for i in range(1200)])
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(sink.run)
                await done.wait()
                nursery.cancel_scope.cancel()
    assert sizes == [500, 500, 200]


async def test_refused_and_unreachable_sinks_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 404 is dropped at once (reason refused); a dead host after every retry."""
    refused, dead = "http://sink.test/404", "http://sink.test/dead"
    tries: dict[str, int] = {refused: 0, dead: 0}

    def handler(request: httpx.Request) -> httpx.Response:
        key = str(request.url)
        tries[key] += 1
        if key == dead:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(404)

    before = (
        sample("tocsin_event_notifications_dropped_total", refused, reason="refused"),
        sample("tocsin_event_notifications_dropped_total", dead, reason="retries"),
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sinks = [NotificationSink(refused, client), NotificationSink(dead, client)]
        with trio.fail_after(3600):
            async with trio.open_nursery() as nursery:
                for sink in sinks:
                    sink.offer([{"n": 1}, {"n": 2}])
                    await nursery.start(sink.run)
                await trio.sleep(600)
                nursery.cancel_scope.cancel()
    assert tries == {refused: 1, dead: notifysink.MAX_ATTEMPTS}
    assert (
        sample("tocsin_event_notifications_dropped_total", refused, reason="refused")
        == before[0] + 2
    )
    assert (
        sample("tocsin_event_notifications_dropped_total", dead, reason="retries") == before[1] + 2
    )


async def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    """offer() never blocks: what does not fit the queue is dropped and counted."""
    url = "http://sink.test/full"
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as c:
        sink = NotificationSink(url, c, queue=2)
        before = sample("tocsin_event_notifications_dropped_total", url, reason="queue_full")
        sink.offer([{"n": i} for i in range(5)])
        assert (
            sample("tocsin_event_notifications_dropped_total", url, reason="queue_full")
            == before + 3
        )
