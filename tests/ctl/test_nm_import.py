"""``tocsinctl import notification-manager`` on a realistic set of NM v2beta2 CRDs."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from daemon.config.load import load_config_text
from daemon.ctl import main
from daemon.ctl.nm_crds import Problem, read_resources, selector_matchers
from daemon.ctl.nm_import import config_yaml
from daemon.ctl.nm_plan import Options, Plan, plan_import
from daemon.gocompat.timestamp import parse_rfc3339

FIXTURES = Path(__file__).parent / "fixtures" / "nm"
NOW = parse_rfc3339("2026-06-01T12:00:00Z")


def plan(**options: Any) -> Plan:
    problems: list[Problem] = []
    resources = read_resources([str(FIXTURES)], problems)
    assert problems == []
    return plan_import(resources, Options(now=NOW, **options))


def reasons(p: Plan) -> list[str]:
    return [str(problem) for problem in p.problems]


def receiver(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in config["receivers"] if r["name"] == name)
    return found


def test_tenants_get_their_own_receivers_and_routes() -> None:
    """Each tenant's Receiver CRs become that tenant's config: one receiver per channel block."""
    p = plan()
    assert sorted(p.tenants) == ["alice", "bob"]
    alice = p.tenants["alice"]
    assert [r["name"] for r in alice["receivers"]] == [
        "nm-unrouted",
        "alice-receiver-dingtalk",
        "alice-receiver-email",
        "alice-receiver-feishu",
        "alice-receiver-slack",
        "alice-receiver-wechat",
    ]
    # The NotificationManager CR's groupLabels; every selected receiver is notified.
    assert alice["route"]["group_by"] == ["alertname", "namespace", "cluster"]
    assert alice["route"]["receiver"] == "nm-unrouted"
    assert all(route["continue"] for route in alice["route"]["routes"])
    email_route = alice["route"]["routes"][0]
    assert email_route == {
        "receiver": "alice-receiver-email",
        "matchers": ['team="web"', 'alertname!="Watchdog"', 'pod=~"(?s:.*)(?:^api-)(?s:.*)"'],
        "continue": True,
    }
    assert not any(r["name"].startswith("bob") for r in alice["receivers"])


def test_config_choice_follows_nm_tenant_then_default_then_priority() -> None:
    """A tenant's own Config wins; a global receiver uses the default with the lowest priority."""
    p = plan(want_global=True)
    alice_email = receiver(p.tenants["alice"], "alice-receiver-email")["email_configs"]
    # One message per recipient, as NM sends them.
    assert [e["to"] for e in alice_email] == ["alice@example.com", "oncall@example.com"]
    assert alice_email[0]["from"] == "alice-team@example.com"
    assert alice_email[0]["smarthost"] == "smtp.alice.example.com:465"
    assert alice_email[0]["auth_password"] == "alice-plain-password"
    assert p.global_config is not None
    ops = receiver(p.global_config, "global-receiver-email")["email_configs"]
    assert ops[0]["from"] == "other@example.com"  # priority "5" beats no priority


def test_credentials_come_from_secret_files() -> None:
    """secretKeyRef credentials are read from Secret files: data (base64) and stringData."""
    p = plan()
    bob = p.tenants["bob"]
    sns = receiver(bob, "bob-receiver-sms")["sns_configs"]
    assert [s["phone_number"] for s in sns] == ["+6590000000", "+6590000001"]
    assert sns[0]["sigv4"] == {
        "access_key": "AKIAAWSID",
        "secret_key": "aws-secret-key",
        "region": "ap-southeast-1",
    }
    slack = receiver(p.tenants["alice"], "alice-receiver-slack")["slack_configs"][0]
    assert slack["api_url"] == "https://slack.com/api/chat.postMessage"
    assert slack["http_config"]["authorization"]["credentials"] == "xoxb-0000-slack-bot-token"
    ding = receiver(p.tenants["alice"], "alice-receiver-dingtalk")["dingtalk_configs"][0]
    assert ding["secret"] == "SECdingsecret"
    assert ding["webhook_url"].endswith("access_token=dingtoken")


def test_every_channel_type_maps_or_is_reported() -> None:
    """All ten channel types are handled: mapped to an integration, and each loss reported."""
    p = plan()
    kinds = {
        key
        for config in p.tenants.values()
        for r in config["receivers"]
        for key in r
        if key.endswith("_configs")
    }
    assert kinds == {
        "email_configs",
        "slack_configs",
        "webhook_configs",
        "wechat_configs",
        "wecom_configs",
        "dingtalk_configs",
        "feishu_configs",
        "sns_configs",
        "pushover_configs",
        "telegram_configs",
        "discord_configs",
    }
    wechat = receiver(p.tenants["alice"], "alice-receiver-wechat")
    assert wechat["wechat_configs"][0]["to_user"] == "user1|user2"
    assert wechat["wecom_configs"][0]["mentioned_list"] == ["user1"]
    hook = receiver(p.tenants["bob"], "bob-receiver-webhook")["webhook_configs"][0]
    assert hook["url"] == "http://alert-sink.bob-system:8080/alerts"
    telegram = receiver(p.tenants["bob"], "bob-receiver-telegram")["telegram_configs"]
    assert [t["chat_id"] for t in telegram] == [-1001234567890]
    got = reasons(p)
    for expected in (
        "Receiver/alice-receiver: dingtalk.conversation: DingTalk app chats",
        "Receiver/alice-receiver: feishu.user/department:",
        "Receiver/bob-receiver: telegram.channels '@bob_channel': Alertmanager takes numeric",
        "Receiver/bob-receiver: pushover.profiles[0].devices:",
        "Receiver/bob-receiver: sms.template: NM templates",
        "Receiver/bob-receiver: slack: disabled",
        "Receiver/stray-receiver: its labels make it neither global",
        "Receiver/global-receiver: webhook.httpConfig.tlsConfig.rootCA:",
        "Silence/forever: no duration",
        "Silence/switched-off: disabled",
    ):
        assert any(line.startswith(expected) for line in got), expected


def test_global_items_need_the_global_config_file() -> None:
    """Without --global-config-out, global receivers and Routers are reported, not lost silently."""
    p = plan()
    assert p.global_config is None
    got = reasons(p)
    assert any(
        line.startswith("Router/cluster-alerts-to-ops: belongs to the global") for line in got
    )
    assert any(line.startswith("Receiver/global-receiver: belongs to the global") for line in got)


def test_routers_route_in_the_global_config() -> None:
    """A Router is a route on its alertSelector with a child per receiver it names."""
    p = plan(want_global=True)
    assert p.global_config is not None
    routes = p.global_config["route"]["routes"]
    assert routes[0] == {
        "receiver": "nm-unrouted",
        "matchers": ['namespace=""'],
        "continue": True,
        "routes": [
            {
                "receiver": "global-receiver-email",
                "matchers": ['severity=~"critical|warning"'],
                "continue": True,
            }
        ],
    }
    # channels: [{tenant: bob, type: [webhook]}] picks bob's webhook block only.
    assert [c["receiver"] for c in routes[1]["routes"]] == ["bob-receiver-webhook"]
    assert any("notified twice" in line for line in reasons(p))


def test_silences_become_api_silences_of_their_tenant() -> None:
    """Silence CRs become postable silences; a schedule becomes a recurring silence."""
    p = plan(time_zone="Asia/Shanghai")
    by_name = {s.source: s for s in p.silences}
    assert sorted(by_name) == ["alice-nightly", "maintenance"]
    maintenance = by_name["maintenance"]
    assert maintenance.tenant is None
    assert maintenance.body["matchers"] == [
        {"name": "namespace", "value": "test|staging", "isRegex": True, "isEqual": True}
    ]
    assert maintenance.body["startsAt"] == "2099-01-01T00:00:00.000Z"
    assert maintenance.body["endsAt"] == "2099-01-02T00:00:00.000Z"
    nightly = by_name["alice-nightly"]
    assert nightly.tenant == "alice"
    assert nightly.body["recurrence"] == {
        "schedule": "0 22 * * *",
        "duration": "8h0m0s",
        "timeZone": "Asia/Shanghai",
    }
    # No endsAt: a server that does not know recurrence refuses it instead of muting forever.
    assert "endsAt" not in nightly.body


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"a": "b"}}, ['a="b"']),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x.y", "z"]}]},
            ['a=~"x\\\\.y|z"'],
        ),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, ['a!="x"']),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, ['a!=""']),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, ['a=""']),
        (None, []),
    ],
)
def test_label_selectors_as_matchers(selector: Any, expected: list[str]) -> None:
    """Kubernetes selector operators become the Alertmanager matchers that select the same alerts."""
    assert [str(m) for m in selector_matchers(selector, "x")] == expected


def test_match_operator_is_unanchored_like_nm() -> None:
    """NM's Match searches the value; the matcher built for it does too."""
    [m] = selector_matchers(
        {"matchExpressions": [{"key": "pod", "operator": "Match", "regexValue": "api"}]}, "x"
    )
    assert m.matches("my-api-7f") and not m.matches("web-1")


def test_tenant_configs_load_in_tocsin() -> None:
    """Every produced config loads with tocsin's own config loader."""
    p = plan(want_global=True)
    assert p.global_config is not None
    for config in [*p.tenants.values(), p.global_config]:
        loaded = load_config_text(config_yaml(config))
        assert len(loaded.receivers) == len(config["receivers"])


@pytest.mark.alertmanager
def test_configs_pass_real_amtool_check_config(tmp_path: Path) -> None:
    """Configs with only Alertmanager 0.25 integrations pass the real amtool check-config."""
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool 0.25 must be installed for alertmanager tests"
    p = plan(want_global=True)
    assert p.global_config is not None
    # alice's config uses tocsin's DingTalk/Feishu/WeCom types, which amtool does not know.
    for name, config in [("bob", p.tenants["bob"]), ("global", p.global_config)]:
        path = tmp_path / f"{name}.yml"
        path.write_text(config_yaml(config))
        done = subprocess.run(
            [amtool, "check-config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


class FakeServer:
    """An httpx transport that records each request and answers like tocsin's APIs."""

    def __init__(self, refuse_configs: bool = False, status: int | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.refuse_configs = refuse_configs
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status is not None:
            return httpx.Response(self.status, json={"error": "no"})
        if self.refuse_configs and request.url.path == "/api/v1/alerts":
            return httpx.Response(400, json={"error": "bad receiver"})
        if request.url.path == "/api/v2/silences":
            return httpx.Response(200, json={"silenceID": f"id-{len(self.requests)}"})
        return httpx.Response(201 if request.url.path == "/api/v1/alerts" else 404)


def run_import(*args: str, server: FakeServer) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            [
                "--alertmanager.url=http://tocsin.test:9093",
                "--no-version-check",
                "import",
                "notification-manager",
                *args,
            ],
            home="/nonexistent",
            transport=httpx.MockTransport(server),
        )
    return status, out.getvalue()


def test_command_posts_configs_and_silences_with_tenant_headers(tmp_path: Path) -> None:
    """The command sends exactly: each tenant's config, then each silence, under its tenant."""
    server = FakeServer()
    out_file = tmp_path / "global.yml"
    status, out = run_import(str(FIXTURES), f"--global-config-out={out_file}", server=server)
    assert status == 2  # some items could not be mapped, and were reported
    sent = [
        (r.method, r.url.path, r.headers.get("X-Scope-OrgID"), r.headers["Content-Type"])
        for r in server.requests
    ]
    assert sent == [
        ("POST", "/api/v1/alerts", "alice", "application/yaml"),
        ("POST", "/api/v1/alerts", "bob", "application/yaml"),
        ("POST", "/api/v2/silences", None, "application/json"),
        ("POST", "/api/v2/silences", "alice", "application/json"),
    ]
    body = yaml.safe_load(server.requests[1].content)
    assert body["template_files"] == {}
    assert yaml.safe_load(body["alertmanager_config"]) == plan().tenants["bob"]
    silence = json.loads(server.requests[2].content)
    assert silence["comment"] == "Notification Manager Silence maintenance"
    # The global config file is written and loads.
    assert load_config_text(out_file.read_text()).route.receiver == "nm-unrouted"
    assert "Receiver/stray-receiver:" in out
    assert out.rstrip().splitlines()[-1].startswith("  Silence/switched-off: disabled")


def test_dry_run_sends_nothing(tmp_path: Path) -> None:
    """--dry-run prints the requests it would make and makes none."""
    server = FakeServer()
    out_file = tmp_path / "global.yml"
    status, out = run_import(
        str(FIXTURES), "--dry-run", f"--global-config-out={out_file}", server=server
    )
    assert status == 2
    assert server.requests == []
    assert not out_file.exists()
    assert "# POST /api/v1/alerts X-Scope-OrgID: alice" in out
    assert "# global config file" in out


def test_server_refusals_are_reported_and_the_run_goes_on() -> None:
    """A 400 from the config API is reported with the server's reason; the rest is still sent."""
    server = FakeServer(refuse_configs=True)
    status, out = run_import(str(FIXTURES), server=server)
    assert status == 2
    assert [(r.url.path, r.headers.get("X-Scope-OrgID")) for r in server.requests] == [
        ("/api/v1/alerts", "alice"),
        ("/api/v1/alerts", "bob"),
        ("/api/v2/silences", None),
        ("/api/v2/silences", "alice"),
    ]
    assert "  Tenant/alice: config refused by the server: HTTP 400: bad receiver\n" in out


def test_an_unauthorised_import_stops_at_once() -> None:
    """A 401 ends the run with a hint about credentials, after one request."""
    server = FakeServer(status=401)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status, _ = run_import(str(FIXTURES / "receivers.yaml"), server=server)
    assert status == 1
    assert len(server.requests) == 1
    assert "HTTP 401" in err.getvalue() and "--bearer-token" in err.getvalue()


def test_unknown_time_zone_is_refused_before_anything_is_sent() -> None:
    """--time-zone is checked locally, so a typo does not stop the import half-way."""
    server = FakeServer()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status, _ = run_import(str(FIXTURES), "--time-zone=Asia/Shangai", server=server)
    assert status == 1
    assert "unknown --time-zone 'Asia/Shangai'" in err.getvalue()
    assert server.requests == []


def test_unknown_and_old_objects_are_reported(tmp_path: Path) -> None:
    """v2beta1 objects and foreign kinds are listed, not silently dropped."""
    f = tmp_path / "mixed.yaml"
    f.write_text(
        "apiVersion: notification.kubesphere.io/v2beta1\nkind: Receiver\nmetadata: {name: old}\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nm}\n"
    )
    problems: list[Problem] = []
    assert read_resources([str(f)], problems) == []
    assert [str(p) for p in problems] == [
        "Receiver/old: notification.kubesphere.io/v2beta1 is not read; convert it to v2beta2 first",
        "Deployment/nm: apps/v1 Deployment is not an NM object",
    ]


def test_flags_override_the_notification_manager_cr(tmp_path: Path) -> None:
    """--tenant-key, --group-by, --secret-namespace and --time-zone change what is built."""
    f = tmp_path / "carol.yaml"
    f.write_text(
        """
apiVersion: v1
kind: Secret
metadata: {name: hook, namespace: carol-ns}
stringData: {url: "https://discord.test/hook"}
---
apiVersion: notification.kubesphere.io/v2beta2
kind: Receiver
metadata:
  name: carol-receiver
  labels: {type: tenant, team: carol, user: alice}
spec:
  discord:
    webhook: {valueFrom: {secretKeyRef: {name: hook, key: url}}}
---
apiVersion: notification.kubesphere.io/v2beta2
kind: Silence
metadata:
  name: weekends
  labels: {type: tenant, team: carol}
spec:
  matcher: {matchLabels: {severity: info}}
  schedule: "0 0 * * SAT"
  duration: 48h
"""
    )
    server = FakeServer()
    status, out = run_import(
        str(f),
        "--dry-run",
        "--tenant-key=team",
        "--group-by=alertname, cluster",
        "--secret-namespace=carol-ns",
        "--time-zone=Europe/Paris",
        server=server,
    )
    assert status == 0, out
    assert "X-Scope-OrgID: carol" in out and "X-Scope-OrgID: alice" not in out
    assert "group_by:\n  - alertname\n  - cluster\n" in out
    assert "webhook_url: https://discord.test/hook" in out
    assert '"timeZone": "Europe/Paris"' in out
    assert out.rstrip().endswith("Everything was imported.")


def test_the_notification_manager_crs_own_selectors_decide_tenancy(tmp_path: Path) -> None:
    """Custom global/tenant/default selectors in the NotificationManager CR are NM's rules."""
    f = tmp_path / "custom.yaml"
    f.write_text(
        """
apiVersion: notification.kubesphere.io/v2beta2
kind: NotificationManager
metadata: {name: nm}
spec:
  defaultConfigSelector: {matchLabels: {scope: shared}}
  receivers:
    tenantKey: namespace
    globalReceiverSelector: {matchLabels: {scope: everyone}}
    tenantReceiverSelector: {matchLabels: {scope: team}}
---
apiVersion: notification.kubesphere.io/v2beta2
kind: Config
metadata: {name: shared-slack, labels: {scope: shared}}
spec:
  slack: {slackTokenSecret: {value: xoxb-shared}}
---
apiVersion: notification.kubesphere.io/v2beta2
kind: Receiver
metadata: {name: web, labels: {scope: team, namespace: web-ns}}
spec:
  slack: {channels: ["#web"]}
---
apiVersion: notification.kubesphere.io/v2beta2
kind: Receiver
metadata: {name: old-style, labels: {type: tenant, user: web}}
spec:
  slack: {channels: ["#old"]}
"""
    )
    problems: list[Problem] = []
    p = plan_import(read_resources([str(f)], problems), Options(now=NOW))
    assert list(p.tenants) == ["web-ns"]
    slack = receiver(p.tenants["web-ns"], "web-slack")["slack_configs"][0]
    assert slack["http_config"]["authorization"]["credentials"] == "xoxb-shared"
    assert any(line.startswith("Receiver/old-style: its labels") for line in reasons(p))


def test_files_without_nm_objects_and_unwritable_output_are_errors(tmp_path: Path) -> None:
    """An empty export and an unwritable --global-config-out fail with a message, sending nothing."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    server = FakeServer()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status, _ = run_import(str(empty), server=server)
        assert status == 1
        assert "no Notification Manager objects in" in err.getvalue()
        status, _ = run_import(
            str(FIXTURES), f"--global-config-out={tmp_path}/missing/dir/global.yml", server=server
        )
    assert status == 1
    assert "cannot write --global-config-out" in err.getvalue()
    assert server.requests == []


def test_schedules_the_server_would_refuse_are_reported(tmp_path: Path) -> None:
    """robfig's @every and windows longer than the schedule's period are reported, not posted."""
    f = tmp_path / "schedules.yaml"
    f.write_text(
        """
apiVersion: notification.kubesphere.io/v2beta2
kind: Silence
metadata: {name: every, labels: {type: global}}
spec: {matcher: {matchLabels: {a: b}}, schedule: "@every 5m", duration: 1m}
---
apiVersion: notification.kubesphere.io/v2beta2
kind: Silence
metadata: {name: overlap, labels: {type: global}}
spec: {matcher: {matchLabels: {a: b}}, schedule: "0 * * * *", duration: 2h}
"""
    )
    problems: list[Problem] = []
    p = plan_import(read_resources([str(f)], problems), Options(now=NOW))
    assert p.silences == []
    assert [str(x).split(":")[0] for x in p.problems] == ["Silence/every", "Silence/overlap"]
    assert "windows would overlap" in str(p.problems[1])
