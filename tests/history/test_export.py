"""Export shapes (pure) and the file and webhook sinks behind their exporters."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from daemon import metrics
from daemon.history.export import (
    FanOut,
    HistoryExporter,
    HistoryWebhook,
    JsonLinesFile,
    event_recorder_event,
    event_recorder_line,
    nm_history_body,
    pb_duration,
    pb_timestamp,
)
from daemon.history.record import NotifyReason, Outcome, Status
from daemon.nflog.state import alert_hash
from tests.history.conftest import T0, S, make_record, run_inline


def exported(sink: str) -> float:
    return metrics.REGISTRY.get_sample_value("tocsin_history_exported_total", {"sink": sink}) or 0.0


def export_dropped(sink: str, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "tocsin_history_export_dropped_total", {"sink": sink, "reason": reason}
    )
    return value or 0.0


def test_protojson_times_and_durations() -> None:
    """Timestamps and durations use protojson's 0, 3, 6 or 9 fractional digits."""
    assert pb_timestamp(T0) == "2026-01-01T00:00:00Z"
    assert pb_timestamp(T0 + 120_000_000) == "2026-01-01T00:00:00.120Z"
    assert pb_timestamp(T0 + 1_000) == "2026-01-01T00:00:00.000001Z"
    assert pb_timestamp(T0 + 1) == "2026-01-01T00:00:00.000000001Z"
    assert pb_duration(4 * 3600 * S) == "14400s"
    assert pb_duration(S // 2) == "0.500s"
    assert pb_duration(0) == "0s"


def test_event_recorder_shape() -> None:
    """A sent notification becomes the event recorder's notification event, protojson-style."""
    rec = make_record(
        T0 + 5_000_000,
        alerts=[{"alertname": "A", "x": "1"}, {"alertname": "A", "x": "2"}],
        index=1,
    )
    labels = [dict(a.labels) for a in rec.alerts]
    event = event_recorder_event(rec, "tocsin-0:9093")
    assert event == {
        "@timestamp": "2026-01-01T00:00:00.005Z",
        "instance": "tocsin-0:9093",
        "data": {
            "notification": {
                "alerts": [
                    {
                        "hash": str(alert_hash(labels[0])),
                        "details": {
                            "fingerprint": "0",
                            "name": "A",
                            "labels": {
                                "labels": [
                                    {"key": "alertname", "value": "A"},
                                    {"key": "x", "value": "1"},
                                ]
                            },
                        },
                    },
                    {
                        "hash": str(alert_hash(labels[1])),
                        "details": {
                            "fingerprint": "1",
                            "name": "A",
                            "labels": {
                                "labels": [
                                    {"key": "alertname", "value": "A"},
                                    {"key": "x", "value": "2"},
                                ]
                            },
                        },
                    },
                ],
                "firingAlerts": [
                    {"hash": str(alert_hash(labels[0]))},
                    {"hash": str(alert_hash(labels[1]))},
                ],
                "groupInfo": {
                    "groupKey": '{}:{alertname="A"}',
                    "groupLabels": {"labels": [{"key": "alertname", "value": "A"}]},
                    "groupId": "ad4b39d3af6c5f089ddb8504a474cd124febe3ef322f263d58074fb0c51dc572",
                    "receiverName": "team-a",
                },
                "repeatInterval": "14400s",
                "reason": "NOTIFY_REASON_FIRST_NOTIFICATION",
                "integration": {"name": "webhook", "index": "1"},
            }
        },
        "tocsin": {"outcome": "sent", "attempts": 1, "duration": "0.005s"},
    }


def test_event_recorder_leaves_out_zero_values() -> None:
    """Index 0, no reason and no instance are left out; resolved alerts say so; failures keep their error."""
    rec = make_record(status=Status.RESOLVED, outcome=Outcome.FAILED, error="boom", tenant="t1")
    event = json.loads(event_recorder_line(rec, ""))
    assert "instance" not in event
    notification = event["data"]["notification"]
    assert notification["integration"] == {"name": "webhook"}
    assert notification["alerts"][0]["details"]["resolved"] is True
    assert "firingAlerts" not in notification and len(notification["resolvedAlerts"]) == 1
    assert event["tocsin"] == {
        "tenant": "t1",
        "outcome": "failed",
        "error": "boom",
        "attempts": 1,
        "duration": "0.005s",
    }
    suppressed = event_recorder_event(make_record(outcome=Outcome.SUPPRESSED), "")
    assert "reason" not in suppressed["data"]["notification"]


def test_nm_history_body_has_sent_records_only() -> None:
    """NM's history body lists the alerts of sent records, with receiver label, map and common labels."""
    body = nm_history_body(
        [
            make_record(T0, alerts=[{"alertname": "A", "x": "1"}, {"alertname": "A", "x": "2"}]),
            make_record(T0, outcome=Outcome.FAILED),
        ]
    )
    assert body == {
        "alerts": [
            {
                "id": f"{i:016x}",
                "status": "firing",
                "labels": {"alertname": "A", "x": str(i + 1), "receiver": "team-a"},
                "annotations": {},
                "notificationTime": "2026-01-01T00:00:00Z",
                "receiver": {"team-a": {"webhook": ["webhook[0]"]}},
            }
            for i in range(2)
        ],
        "groupLabels": {"alertname": "A"},
        "commonLabels": {"alertname": "A", "receiver": "team-a"},
        "commonAnnotations": {},
    }
    assert nm_history_body([make_record(outcome=Outcome.SUPPRESSED)]) is None


async def test_file_sink_appends_lines_and_follows_rotation(tmp_path: Path) -> None:
    """Each record becomes one line; after a rename (logrotate) the next batch starts a new file."""
    path = tmp_path / "history.jsonl"
    sink = JsonLinesFile(path, instance="i", run_sync=run_inline)
    exporter = HistoryExporter(sink)
    before = exported(sink.name)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(exporter.run)
            FanOut((exporter,)).record(make_record(T0))
            exporter.record(make_record(T0 + 1))
            await trio.testing.wait_all_tasks_blocked()
            path.rename(tmp_path / "history.jsonl.1")
            exporter.record(make_record(T0 + 2))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    rotated = (tmp_path / "history.jsonl.1").read_text().splitlines()
    assert [json.loads(line)["@timestamp"] for line in rotated] == [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.000000001Z",
    ]
    assert len(path.read_text().splitlines()) == 1
    assert exported(sink.name) - before == 3


async def test_file_sink_error_is_counted_not_raised(tmp_path: Path) -> None:
    """An unwritable export file loses the batch, counted and logged; the exporter keeps going."""
    sink = JsonLinesFile(tmp_path / "missing-dir" / "h.jsonl", run_sync=run_inline)
    exporter = HistoryExporter(sink)
    before = export_dropped(sink.name, "error")
    with trio.fail_after(10), capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(exporter.run)
            exporter.record(make_record())
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert export_dropped(sink.name, "error") - before == 1
    assert [e["event"] for e in logs] == ["history.export_failed"]


async def test_full_export_queue_drops_and_counts(tmp_path: Path) -> None:
    """An exporter whose queue is full drops the record at once and counts it."""
    exporter = HistoryExporter(JsonLinesFile(tmp_path / "h.jsonl"), queue_size=1)
    before = export_dropped(f"file:{tmp_path / 'h.jsonl'}", "queue_full")
    exporter.record(make_record())
    exporter.record(make_record())
    assert export_dropped(f"file:{tmp_path / 'h.jsonl'}", "queue_full") - before == 1


async def test_webhook_posts_nm_body_and_retries(autojump_clock: trio.testing.MockClock) -> None:
    """The webhook sink posts NM's body, retries non-200 answers 5 s apart and counts a batch it gives up."""
    statuses = [500, 200, 503, 503, 503]
    bodies: list[dict[str, object]] = []
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        times.append(trio.current_time())
        return httpx.Response(statuses.pop(0))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = HistoryWebhook("http://history.invalid/", client, "nm")
        exporter = HistoryExporter(sink)
        before_ok, before_lost = exported("webhook"), export_dropped("webhook", "error")
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(exporter.run)
                exporter.record(make_record(T0, reason=NotifyReason.REPEAT_INTERVAL_ELAPSED))
                await trio.sleep(10)
                exporter.record(make_record(T0 + 1))
                await trio.sleep(20)
                nursery.cancel_scope.cancel()
    assert len(bodies) == 5 and times[1] - times[0] == 5.0
    assert bodies[0]["commonLabels"] == {"alertname": "A", "receiver": "team-a"}
    assert exported("webhook") - before_ok == 1
    assert export_dropped("webhook", "error") - before_lost == 1


async def test_webhook_posts_event_recorder_lines_by_default() -> None:
    """The default webhook body is every record of the batch as event-recorder JSON lines
    (failed ones too), the same lines the export file gets."""
    posted: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        return httpx.Response(200)

    failed = attrs.evolve(make_record(T0 + 1), outcome=Outcome.FAILED, error="boom")
    batch = [make_record(T0), failed]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = HistoryWebhook("http://history.invalid/", client, instance="node-1")
        assert await sink.send(batch) == 2
    assert posted[0].headers["content-type"] == "application/x-ndjson"
    expected = "".join(event_recorder_line(r, "node-1") for r in batch)
    assert posted[0].content.decode() == expected
    lines = [json.loads(line) for line in posted[0].content.decode().splitlines()]
    assert [line["tocsin"]["outcome"] for line in lines] == ["sent", "failed"]


def test_webhook_refuses_an_unknown_shape() -> None:
    """A webhook shape other than events or nm is refused when the sink is built."""
    with pytest.raises(ValueError):
        HistoryWebhook("http://x.invalid/", httpx.AsyncClient(), "loki")
