"""GET /api/v2/alerts: listing, status recomputation, filters and params (spec §1.5)."""

import json

import pytest

from daemon.alert import Alert, fingerprint
from daemon.api import AlertStatus
from tests.api.conftest import NOW, Api, S


def _alert(labels: dict[str, str], ends: int = NOW + 300 * S) -> Alert:
    return Alert(labels, {}, NOW - 10 * S, ends, "", NOW)


async def test_empty_store_lists_empty_array(api: Api) -> None:
    """No alerts gives [] (never null)."""
    assert await api.get_valid("/alerts") == []


async def test_gettable_alert_bytes_match_alertmanager(api: Api) -> None:
    """Keys in go-swagger order, labels sorted, Go escaping, millisecond UTC times."""
    await api.post_alerts(
        [
            {
                "labels": {"sev": "crit", "alertname": "x<y&z"},
                "annotations": {"s": "<b>é"},
                "generatorURL": "http://g/x?a=1&b=2",
                "startsAt": "2025-12-31T23:59:59.123456Z",
            }
        ]
    )
    _, body, _ = await api.request("GET", "/api/v2/alerts")
    assert body.decode() == (
        '[{"annotations":{"s":"\\u003cb\\u003eé"},"endsAt":"2026-01-01T00:05:00.000Z",'
        '"fingerprint":"0f452a48edd44fed","receivers":[{"name":"default"}],'
        '"startsAt":"2025-12-31T23:59:59.123Z","status":{"inhibitedBy":[],"silencedBy":[],'
        '"state":"active"},"updatedAt":"2026-01-01T00:00:00.000Z",'
        '"generatorURL":"http://g/x?a=1\\u0026b=2",'
        '"labels":{"alertname":"x\\u003cy\\u0026z","sev":"crit"}}]\n'
    )
    await api.get_valid("/alerts")


async def test_sorted_by_fingerprint_and_generator_url_omitted(api: Api) -> None:
    """Alerts come sorted by fingerprint string; an empty generatorURL is left out."""
    api.backend.store.put([_alert({"alertname": str(i)}) for i in range(20)])
    doc = await api.get_valid("/alerts")
    fps = [a["fingerprint"] for a in doc]
    assert fps == sorted(fps) and len(fps) == 20
    assert all("generatorURL" not in a for a in doc)


async def test_resolved_hidden_but_ending_now_shown(api: Api) -> None:
    """Alerts whose endsAt is before now are hidden; endsAt == now is still listed."""
    api.backend.store.put(
        [_alert({"a": "past"}, ends=NOW - S), _alert({"a": "now"}, ends=NOW), _alert({"a": "f"})]
    )
    doc = await api.get_valid("/alerts")
    assert sorted(a["labels"]["a"] for a in doc) == ["f", "now"]


async def test_status_recomputed_per_request(api: Api) -> None:
    """Status comes from alert_status at query time, and suppression sets the state."""
    a, b = _alert({"a": "1"}), _alert({"a": "2"})
    api.backend.store.put([a, b])
    api.backend.statuses[a.fingerprint] = AlertStatus(silenced_by=["s1", "s2"])
    doc = {x["labels"]["a"]: x["status"] for x in await api.get_valid("/alerts")}
    assert doc == {
        "1": {"inhibitedBy": [], "silencedBy": ["s1", "s2"], "state": "suppressed"},
        "2": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
    }
    calls = api.backend.status_calls
    api.backend.statuses[a.fingerprint] = AlertStatus()
    doc2 = await api.get_valid("/alerts")
    assert all(x["status"]["state"] == "active" for x in doc2)
    assert api.backend.status_calls == calls + 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ([], ["active", "inhibited", "silenced"]),
        ([("active", "false")], ["inhibited", "silenced"]),
        ([("active", "maybe")], ["inhibited", "silenced"]),
        ([("active", "")], ["active", "inhibited", "silenced"]),
        ([("active", "YES")], ["active", "inhibited", "silenced"]),
        ([("active", "enabled")], ["active", "inhibited", "silenced"]),
        ([("silenced", "0")], ["active", "inhibited"]),
        ([("inhibited", "no")], ["active", "silenced"]),
        ([("unprocessed", "false")], ["active", "inhibited", "silenced"]),
        ([("active", "false"), ("active", "true")], ["active", "inhibited", "silenced"]),
    ],
)
async def test_bool_params(api: Api, query: list[tuple[str, str]], expected: list[str]) -> None:
    """go-openapi booleans: known words true, other values false, empty = default true."""
    alerts = {n: _alert({"alertname": n}) for n in ("active", "silenced", "inhibited")}
    api.backend.store.put(alerts.values())
    api.backend.statuses[alerts["silenced"].fingerprint] = AlertStatus(silenced_by=["x"])
    api.backend.statuses[alerts["inhibited"].fingerprint] = AlertStatus(inhibited_by=["f" * 16])
    doc = await api.get_valid("/alerts", query)
    assert sorted(a["labels"]["alertname"] for a in doc) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (['sev="crit"'], ["a"]),
        (["sev=~c.*", "team!=x"], ["a"]),
        (['team=""'], ["a", "c"]),
        (["team!~x|y"], ["a", "c"]),
        (['alertname=~"a|b"', "sev=warn"], ["b"]),
        (["missing=~.+"], []),
        (["sev=crit,other"], []),
    ],
)
async def test_filters(api: Api, filters: list[str], expected: list[str]) -> None:
    """Every filter must match; a missing label reads as empty; a value is one whole matcher."""
    api.backend.store.put(
        [
            _alert({"alertname": "a", "sev": "crit"}),
            _alert({"alertname": "b", "sev": "warn", "team": "x"}),
            _alert({"alertname": "c", "sev": "info"}),
        ]
    )
    doc = await api.get_valid("/alerts", [("filter", f) for f in filters])
    assert sorted(a["labels"]["alertname"] for a in doc) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("foo", "bad matcher format: foo"),
        ('{a="b"}', 'bad matcher format: {a="b"}'),
        ("", "bad matcher format: "),
        ('a="b', 'matcher value contains unescaped double quote: "b'),
        ("a=~(", "error parsing regexp: missing closing ): `^(?:()$`"),
    ],
)
async def test_bad_filter_is_400_json_string(api: Api, value: str, message: str) -> None:
    """A filter that does not parse answers 400 with the parser's message as a JSON string."""
    status, body, headers = await api.request("GET", "/api/v2/alerts", query=[("filter", value)])
    assert status == 400
    assert json.loads(body) == message
    assert body.endswith(b'"\n')
    assert headers["Content-Type"] == "application/json"


async def test_receivers_and_receiver_regex(api: Api) -> None:
    """receivers come from routing in match order; the receiver regex is anchored."""
    api.backend.routes = {"a": ["team-a", "team-b", "team-a"], "b": ["team-b"]}
    api.backend.store.put([_alert({"team": "a"}), _alert({"team": "b"}), _alert({"team": "c"})])
    doc = await api.get_valid("/alerts")
    got = {a["labels"]["team"]: [r["name"] for r in a["receivers"]] for a in doc}
    assert got == {"a": ["team-a", "team-b", "team-a"], "b": ["team-b"], "c": ["default"]}
    doc = await api.get_valid("/alerts", [("receiver", "team-b")])
    assert sorted(a["labels"]["team"] for a in doc) == ["a", "b"]
    assert await api.get_valid("/alerts", [("receiver", "team")]) == []
    doc = await api.get_valid("/alerts", [("receiver", "team-.|def.*")])
    assert len(doc) == 3


async def test_bad_receiver_regex(api: Api) -> None:
    """An invalid receiver regex answers 400 with Alertmanager's prefix."""
    status, body, _ = await api.request("GET", "/api/v2/alerts", query=[("receiver", "(")])
    assert status == 400
    assert (
        json.loads(body)
        == "failed to parse receiver param: error parsing regexp: missing closing ): `^(?:()$`"
    )


async def test_fingerprint_is_the_alert_fingerprint(api: Api) -> None:
    """The listed fingerprint is the FNV-1a hex of the stored labels."""
    await api.post_alerts([{"labels": {"alertname": "A3", "team": "b"}}])
    (doc,) = await api.get_valid("/alerts")
    assert (
        doc["fingerprint"]
        == "70130c860751a4d1"
        == f"{fingerprint({'alertname': 'A3', 'team': 'b'}):016x}"
    )
