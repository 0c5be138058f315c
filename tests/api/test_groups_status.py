"""GET /alerts/groups, /receivers and /status (spec §1.3, §1.4, §1.7)."""

import json

from daemon.alert import Alert
from daemon.api import AlertStatus
from daemon.dispatch.snapshot import GroupSnapshot
from tests.api.conftest import NOW, Api, FakeBackend, S, config


def _alert(labels: dict[str, str], ends: int = NOW + 300 * S) -> Alert:
    return Alert(labels, {}, NOW - 10 * S, ends, "", NOW)


def _group(receiver: str, labels: dict[str, str], *alerts: Alert) -> GroupSnapshot:
    key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return GroupSnapshot(receiver, "{}", key, labels, tuple(alerts))


async def test_groups_order_receivers_and_alert_order(api: Api) -> None:
    """Groups sort by label set then receiver; alerts keep group order; receivers are merged."""
    a1, a2, a3 = (
        _alert({"alertname": "A", "i": "2"}),
        _alert({"alertname": "A", "i": "1"}),
        _alert({"x": "y"}),
    )
    api.backend.group_list = [
        _group("team-b", {"alertname": "A"}, a1, a2),
        _group("team-a", {"alertname": "A"}, a1),
        _group("default", {}, a3),
        _group("default", {"alertname": "A", "z": "1"}, a2),
        _group("default", {"alertname": "0"}, a3),
    ]
    doc = await api.get_valid("/alerts/groups")
    assert [(g["labels"], g["receiver"]["name"]) for g in doc] == [
        ({}, "default"),
        ({"alertname": "0"}, "default"),
        ({"alertname": "A"}, "team-a"),
        ({"alertname": "A"}, "team-b"),
        ({"alertname": "A", "z": "1"}, "default"),
    ]
    team_b = doc[3]
    assert [a["labels"]["i"] for a in team_b["alerts"]] == ["2", "1"]
    recv = {
        a["labels"].get("i"): [r["name"] for r in a["receivers"]] for g in doc for a in g["alerts"]
    }
    assert recv == {
        "2": ["team-a", "team-b"],
        "1": ["default", "team-b"],
        None: ["default", "default"],
    }
    assert list(doc[0]) == ["alerts", "labels", "receiver"]


async def test_groups_filters_drop_alerts_and_empty_groups(api: Api) -> None:
    """Resolved, filtered or suppressed-and-excluded alerts are dropped; empty groups vanish."""
    firing, silenced, resolved = (
        _alert({"a": "f"}),
        _alert({"a": "s"}),
        _alert({"a": "r"}, ends=NOW - S),
    )
    api.backend.statuses[silenced.fingerprint] = AlertStatus(silenced_by=["id"])
    api.backend.group_list = [
        _group("default", {"g": "1"}, firing, silenced),
        _group("team-a", {"g": "2"}, resolved),
        _group("team-b", {"g": "3"}, silenced),
    ]
    doc = await api.get_valid("/alerts/groups")
    assert [[a["labels"]["a"] for a in g["alerts"]] for g in doc] == [["f", "s"], ["s"]]
    doc = await api.get_valid("/alerts/groups", [("silenced", "false")])
    assert [[a["labels"]["a"] for a in g["alerts"]] for g in doc] == [["f"]]
    doc = await api.get_valid("/alerts/groups", [("filter", "a=s")])
    assert [g["receiver"]["name"] for g in doc] == ["default", "team-b"]
    doc = await api.get_valid("/alerts/groups", [("receiver", "team-.")])
    assert [g["receiver"]["name"] for g in doc] == ["team-b"]
    doc = await api.get_valid("/alerts/groups", [("receiver", "team")])
    assert doc == []


async def test_groups_bad_params(api: Api) -> None:
    """Bad filter or receiver regex on /alerts/groups answer 400 JSON strings."""
    status, body, _ = await api.request("GET", "/api/v2/alerts/groups", query=[("receiver", "(")])
    assert (status, json.loads(body)) == (
        400,
        "failed to parse receiver param: error parsing regexp: missing closing ): `^(?:()$`",
    )
    status, body, _ = await api.request("GET", "/api/v2/alerts/groups", query=[("filter", "x")])
    assert (status, json.loads(body)) == (400, "bad matcher format: x")


async def test_receivers_lists_config_in_file_order(backend: FakeBackend) -> None:
    """Every configured receiver, in file order, also unreferenced ones."""
    backend.config = config("zeta", "alpha", "mid")
    doc = await Api(backend).get_valid("/receivers")
    assert doc == [{"name": "zeta"}, {"name": "alpha"}, {"name": "mid"}]


async def test_status_body(api: Api) -> None:
    """Status has cluster, config.original, uptime and versionInfo in Go's key order."""
    doc = await api.get_valid("/status")
    assert list(doc) == ["cluster", "config", "uptime", "versionInfo"]
    assert doc["cluster"] == {"peers": [], "status": "disabled"}
    assert doc["config"] == {"original": "route:\n  receiver: default\n"}
    assert doc["uptime"] == "2025-12-31T23:00:00.000Z"
    assert list(doc["versionInfo"]) == [
        "branch",
        "buildDate",
        "buildUser",
        "goVersion",
        "revision",
        "version",
    ]


async def test_status_cluster_with_peers(api: Api) -> None:
    """A clustered status lists name, peers (address, name) and status in Go's key order."""
    api.backend.cluster = {
        "status": "ready",
        "name": "01ABC",
        "peers": [{"name": "01ABC", "address": "127.0.0.1:9094"}],
    }
    _, body, _ = await api.request("GET", "/api/v2/status")
    assert (
        '"cluster":{"name":"01ABC","peers":[{"address":"127.0.0.1:9094","name":"01ABC"}],"status":"ready"}'
        in body.decode()
    )
    await api.get_valid("/status")
