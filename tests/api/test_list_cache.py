"""GET /api/v2/alerts reuses encoded alerts only while alert, status and receivers are unchanged."""

import json
from typing import Any

from daemon.alert import Alert
from daemon.api import AlertStatus
from daemon.api.encoding import body, gettable_alert
from daemon.api.query import AlertQuery, list_alerts
from daemon.notify.context import NotifyContext
from daemon.notify.receivers.webhook import build_payload, encode_payload
from daemon.template.data import build_data
from tests.api.conftest import NOW, Api, S


def _alert(labels: dict[str, str], ends: int = NOW + 300 * S, note: str = "") -> Alert:
    return Alert(labels, {"note": note} if note else {}, NOW - 10 * S, ends, "", NOW)


async def _one(api: Api) -> dict[str, Any]:
    doc = await api.get_valid("/alerts")
    assert len(doc) == 1
    return dict(doc[0])


async def test_status_change_is_reencoded(api: Api) -> None:
    """A silence appearing after a listing shows up in the next one (cache keyed by status)."""
    a = _alert({"alertname": "cache-status"})
    api.backend.store.put([a])
    assert (await _one(api))["status"]["state"] == "active"
    api.backend.statuses[a.fingerprint] = AlertStatus(silenced_by=("s1",))
    got = await _one(api)
    assert got["status"] == {"inhibitedBy": [], "silencedBy": ["s1"], "state": "suppressed"}
    api.backend.statuses.clear()
    assert (await _one(api))["status"]["state"] == "active"


async def test_replaced_alert_is_reencoded(api: Api) -> None:
    """A re-posted alert with the same labels (same fingerprint) lists its new content."""
    api.backend.store.put([_alert({"alertname": "cache-merge"}, note="one")])
    assert (await _one(api))["annotations"] == {"note": "one"}
    api.backend.store.put([_alert({"alertname": "cache-merge"}, note="two")])
    assert (await _one(api))["annotations"] == {"note": "two"}


async def test_receiver_change_is_reencoded(api: Api) -> None:
    """New routing for the same alert changes its receivers in the next listing."""
    api.backend.store.put([_alert({"alertname": "cache-route", "team": "a"})])
    assert (await _one(api))["receivers"] == [{"name": "default"}]
    api.backend.routes = {"a": ["team-a"]}
    assert (await _one(api))["receivers"] == [{"name": "team-a"}]


async def test_listing_equals_encoding_each_alert(api: Api) -> None:
    """The joined fragments equal one encoding of the whole list, for every query shape."""
    alerts = [_alert({"alertname": f"cache-{i}", "x": "<&>"}) for i in range(30)]
    api.backend.store.put(alerts)
    api.backend.statuses[alerts[3].fingerprint] = AlertStatus(inhibited_by=("00000000000000ab",))
    for query in (AlertQuery(), AlertQuery(active=False), AlertQuery(inhibited=False)):
        # Twice: the second listing is served from the cache.
        for _ in range(2):
            got = body(list_alerts(api.backend, query, NOW))
            expected = sorted(
                (
                    gettable_alert(a, api.backend.alert_status(a, NOW), ["default"])
                    for a in alerts
                    if api.backend.alert_status(a, NOW).state != "suppressed" or query.inhibited
                    if api.backend.alert_status(a, NOW).state == "suppressed" or query.active
                ),
                key=lambda d: str(d["fingerprint"]),
            )
            assert got == body(expected)
            assert json.loads(got) == json.loads(body(expected))


def test_webhook_payload_cache_matches_template_data_encoding() -> None:
    """The webhook body built from cached alert fragments equals encoding the template data."""
    alerts = [
        Alert(
            {"alertname": "wh", "i": str(i), "x": "<&>"},
            {"a": "b", "n": str(i % 2)},
            NOW - S,
            NOW + i * S - 2 * S,
            "http://g/?a&b",
            NOW,
        )
        for i in range(6)
    ]
    ctx = NotifyContext(
        group_key='{}:{alertname="wh"}',
        group_labels={"alertname": "wh"},
        receiver="r.x",
        repeat_interval=3600 * S,
        route_id="{}",
        now=NOW,
    )
    for now in (NOW, NOW + 3 * S, NOW + 10 * S):
        for max_alerts in (0, 4):
            for _ in range(2):
                kept = alerts[:max_alerts] if max_alerts else alerts
                want = encode_payload(
                    build_data("r.x", {"alertname": "wh"}, kept, "http://e", now),
                    ctx.group_key,
                    len(alerts) - len(kept),
                )
                assert build_payload(ctx, alerts, max_alerts, "http://e", now) == want
