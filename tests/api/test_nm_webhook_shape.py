"""POST /api/v2/alerts with Notification Manager's ingest shape: Alertmanager's webhook
payload as a JSON object, whose alerts[] are ingested with their status."""

from __future__ import annotations

from daemon.clock import ZERO_TIME
from tests.api.conftest import NOW, Api, S

PAYLOAD = {
    "receiver": "notification-manager",
    "status": "firing",
    "groupLabels": {"alertname": "KubePodCrashLooping"},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": '{}:{alertname="KubePodCrashLooping"}',
    "truncatedAlerts": 0,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "team-a"},
            "annotations": {"message": "restarting"},
            "startsAt": "2025-12-31T23:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "0123456789abcdef",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "team-b"},
            "annotations": {},
            "startsAt": "2025-12-31T22:00:00Z",
            "endsAt": "2025-12-31T23:30:00Z",
            "generatorURL": "",
            "fingerprint": "fedcba9876543210",
        },
    ],
}


async def test_webhook_payload_alerts_are_ingested_with_their_status(api: Api) -> None:
    """A firing alert of the payload is stored firing (endsAt defaulted by the
    resolve timeout), a resolved one resolved at its own endsAt; the envelope's other
    fields and each alert's status and fingerprint fields are not taken as alerts."""
    status, body = await api.post_alerts(PAYLOAD)
    assert (status, body) == (200, b"")
    stored = {a.labels["namespace"]: a for a in api.backend.store.list()}
    assert set(stored) == {"team-a", "team-b"}
    firing, resolved = stored["team-a"], stored["team-b"]
    assert firing.starts_at == NOW - 3600 * S
    assert firing.ends_at == NOW + 5 * 60 * S and firing.timeout
    assert firing.annotations == {"message": "restarting"}
    assert firing.generator_url == "http://prometheus/graph"
    assert not firing.resolved(NOW)
    assert resolved.ends_at == NOW - 1800 * S and resolved.resolved(NOW)
    assert resolved.ends_at != ZERO_TIME


async def test_other_objects_are_still_refused(api: Api) -> None:
    """An object that is not a webhook payload keeps Alertmanager's 400."""
    status, body = await api.post_alerts({"labels": {"a": "b"}})
    assert status == 400
    assert b"cannot unmarshal object" in body
    assert api.backend.store.list() == []


async def test_payload_alert_without_labels_is_refused(api: Api) -> None:
    """The payload's alerts are validated as posted alerts are."""
    status, _ = await api.post_alerts({"alerts": [{"status": "firing"}]})
    assert status == 422
    assert api.backend.store.list() == []
