"""Loading valid configs: defaults, inheritance, global fallbacks, paths, re-serialisation."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from daemon.config.load import load_config_file, load_config_text
from daemon.config.model import HOUR, MINUTE, SECOND, IntegrationConfig
from daemon.matcher import MatchType
from daemon.timeinterval import InclusiveRange, TimeInterval, TimeRange

MINIMAL = "route:\n  receiver: a\nreceivers:\n- name: a\n"


def test_minimal_config_gets_alertmanager_defaults() -> None:
    """A two-line config gets the root timers, resolve_timeout and global URLs."""
    config = load_config_text(MINIMAL)
    assert config.route.receiver == "a"
    assert (config.route.group_wait, config.route.group_interval) == (30 * SECOND, 5 * MINUTE)
    assert config.route.repeat_interval == 4 * HOUR
    assert config.route.group_by == () and not config.route.group_by_all
    assert config.global_.resolve_timeout == 5 * MINUTE
    assert config.global_.fields["smtp_hello"] == "localhost"
    assert config.global_.fields["opsgenie_api_url"] == "https://api.opsgenie.com/"
    assert config.global_.http_config.follow_redirects and config.global_.http_config.enable_http2
    assert config.source_text == MINIMAL
    assert config.receiver("a").webhook_configs == ()


def test_partial_global_keeps_other_defaults() -> None:
    """Setting one global key leaves the other defaults in place."""
    config = load_config_text("global:\n  resolve_timeout: 1m\n" + MINIMAL)
    assert config.global_.resolve_timeout == MINUTE
    assert config.global_.fields["smtp_require_tls"] is True
    assert config.global_.fields["pagerduty_url"] == "https://events.pagerduty.com/v2/enqueue"


INHERIT = """
route:
  receiver: root
  group_by: [alertname]
  group_wait: 10s
  repeat_interval: 1h
  routes:
    - matchers: ['team="x"', 'a=~"b|c"']
      match: {z: y}
      match_re: {m: 'n.*'}
      group_by: []
      routes:
        - receiver: leaf
          group_by: ['...']
          group_wait: 1s
          continue: true
        - group_by: [cluster, env]
          mute_time_intervals: [w]
    - receiver: leaf
      group_by: ['...']
receivers:
  - name: root
  - name: leaf
time_intervals:
  - name: w
    time_intervals: [{weekdays: [saturday]}]
"""


def test_route_inheritance() -> None:
    """Children inherit receiver, group_by and timers; [] inherits; '...' groups by all."""
    root = load_config_text(INHERIT).route
    team, wildcard = root.routes
    assert team.receiver == "root"
    assert team.group_by == ("alertname",) and not team.group_by_all
    assert (team.group_wait, team.group_interval, team.repeat_interval) == (
        10 * SECOND,
        5 * MINUTE,
        HOUR,
    )
    leaf, cluster = team.routes
    assert leaf.receiver == "leaf" and leaf.group_by_all and leaf.continue_
    assert leaf.group_wait == SECOND and leaf.repeat_interval == HOUR
    assert cluster.group_by == ("cluster", "env") and not cluster.group_by_all
    assert cluster.group_wait == 10 * SECOND
    assert cluster.mute_time_intervals == ("w",)
    # Matchers and time intervals are never inherited.
    assert cluster.matchers == () and leaf.mute_time_intervals == ()
    assert wildcard.group_by_all and wildcard.receiver == "leaf"


def test_route_matchers_combine_and_sort() -> None:
    """match, match_re and matchers merge into one list sorted by (name, value, type).

    match_re values read ``^(?:…)$``, as Alertmanager 0.25's route tree shows them."""
    team = load_config_text(INHERIT).route.routes[0]
    assert [str(m) for m in team.matchers] == [
        'a=~"b|c"',
        'm=~"^(?:n.*)$"',
        'team="x"',
        'z="y"',
    ]
    assert team.matchers[1].type is MatchType.REGEXP
    assert team.matchers[1].matches("nope") and not team.matchers[1].matches("xn")


def test_inhibit_rules_combine_all_matcher_forms() -> None:
    """source_match/_re/_matchers and the target side each become one matcher tuple."""
    config = load_config_text(
        MINIMAL
        + "inhibit_rules:\n"
        + "- source_match: {severity: critical}\n"
        + "  source_match_re: {team: 'a|b'}\n"
        + "  target_matchers: ['severity!=\"critical\"']\n"
        + "  equal: [alertname, zone]\n"
    )
    (rule,) = config.inhibit_rules
    assert [str(m) for m in rule.source_matchers] == [
        'severity="critical"',
        'team=~"^(?:a|b)$"',
    ]
    assert [str(m) for m in rule.target_matchers] == ['severity!="critical"']
    assert rule.equal == ("alertname", "zone")


def test_time_intervals_from_both_lists() -> None:
    """time_intervals and mute_time_intervals share one name → intervals mapping."""
    config = load_config_text(
        MINIMAL
        + "mute_time_intervals:\n- name: old\n  time_intervals: [{}]\n"
        + "time_intervals:\n- name: new\n  time_intervals:\n"
        + "  - times: [{start_time: '09:00', end_time: '17:00'}]\n"
        + "    weekdays: ['monday:friday']\n    location: Europe/Berlin\n"
    )
    assert config.time_intervals["old"] == (TimeInterval(),)
    (new,) = config.time_intervals["new"]
    assert new.times == (TimeRange(540, 1020),)
    assert new.weekdays == (InclusiveRange(1, 5),)
    assert new.location == "Europe/Berlin" and new.months is None


def test_webhook_config_and_global_http_config() -> None:
    """Webhooks become WebhookConfig and share the global http_config when they have none."""
    config = load_config_text(
        "global:\n  http_config:\n    follow_redirects: false\n"
        "route:\n  receiver: a\nreceivers:\n- name: a\n  webhook_configs:\n"
        "  - url: http://127.0.0.1:5001/\n    max_alerts: 3\n    send_resolved: false\n"
    )
    (wh,) = config.receiver("a").webhook_configs
    assert (wh.url, wh.max_alerts, wh.send_resolved) == ("http://127.0.0.1:5001/", 3, False)
    assert wh.http_config.follow_redirects is False and wh.http_config.enable_http2 is True


def other(config_text: str, type_: str) -> IntegrationConfig:
    (conf,) = [
        c for c in load_config_text(config_text).receiver("a").other_configs if c.type == type_
    ]
    return conf


RECV = "route:\n  receiver: a\nreceivers:\n- name: a\n"


def test_email_falls_back_to_global_smtp() -> None:
    """Email configs take smarthost, from, hello, auth and require_tls from global."""
    email = other(
        "global:\n  smtp_smarthost: 'mx:25'\n  smtp_from: a@b\n  smtp_auth_password: pw\n"
        "  smtp_require_tls: false\n" + RECV + "  email_configs:\n  - to: x@y\n",
        "email",
    )
    fields = email.fields
    assert (fields["smarthost"], fields["from"], fields["hello"]) == ("mx:25", "a@b", "localhost")
    assert fields["auth_password"] == "pw" and fields["require_tls"] is False
    assert email.send_resolved is False
    assert fields["html"] == '{{ template "email.default.html" . }}'


def test_opsgenie_url_gets_trailing_slash_and_global_key() -> None:
    """OpsGenie's api_url always ends in '/', and the API key falls back to global."""
    og = other(
        "global:\n  opsgenie_api_key: k\n" + RECV + "  opsgenie_configs:\n"
        "  - api_url: https://og.example/v2\n",
        "opsgenie",
    )
    assert og.fields["api_url"] == "https://og.example/v2/"
    assert og.fields["api_key"] == "k"
    assert og.send_resolved is True


def test_slack_and_pagerduty_defaults() -> None:
    """Slack takes the global API URL; PagerDuty fills details and source from client."""
    text = (
        "global:\n  slack_api_url: https://hooks.example/x\n"
        + RECV
        + "  slack_configs: [{channel: '#c'}]\n"
        + "  pagerduty_configs: [{routing_key: rk, client: me, details: {firing: mine}}]\n"
    )
    slack = other(text, "slack")
    assert slack.fields["api_url"] == "https://hooks.example/x"
    assert slack.fields["title"] == '{{ template "slack.default.title" . }}'
    pd = other(text, "pagerduty")
    assert pd.fields["source"] == "me"
    assert pd.fields["details"]["firing"] == "mine"
    assert pd.fields["details"]["num_resolved"] == "{{ .Alerts.Resolved | len }}"
    assert pd.fields["url"] == "https://events.pagerduty.com/v2/enqueue"


def test_msteams_is_accepted() -> None:
    """msteams_configs (0.26+) load, with defaults, even though 0.25 lacks them."""
    teams = other(
        RECV + "  msteams_configs:\n  - webhook_url: https://teams.example/x\n", "msteams"
    )
    assert teams.send_resolved is True
    assert teams.fields["title"] == '{{ template "msteams.default.title" . }}'


def test_templates_and_http_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    """Template globs and http_config file paths become absolute, relative to the file."""
    path = tmp_path / "am.yml"
    path.write_text(
        "global:\n  http_config:\n    tls_config: {ca_file: ca.pem}\n"
        "route:\n  receiver: a\nreceivers:\n- name: a\n  webhook_configs:\n"
        "  - url: http://x/\n    http_config:\n      bearer_token_file: tok\n"
        "      basic_auth: null\n"
        "templates: ['t/*.tmpl', '/abs/*.tmpl']\n"
    )
    config = load_config_file(str(path))
    assert config.templates == (str(tmp_path / "t/*.tmpl"), "/abs/*.tmpl")
    assert config.global_.http_config.raw["tls_config"]["ca_file"] == str(tmp_path / "ca.pem")
    (wh,) = config.receiver("a").webhook_configs
    # bearer_token_file is turned into an Authorization, as prometheus/common does.
    assert wh.http_config.raw["authorization"] == {
        "type": "Bearer",
        "credentials": "",
        "credentials_file": str(tmp_path / "tok"),
    }


def test_original_hides_secrets_and_fills_defaults() -> None:
    """The re-serialised config shows defaults and replaces every secret with <secret>."""
    config = load_config_text(
        "global:\n  smtp_auth_password: hunter2\n  slack_api_url: https://hooks.example/tok\n"
        + RECV
        + "  webhook_configs:\n  - url: http://x/\n    http_config:\n"
        + "      basic_auth: {username: u, password: p4ss}\n"
        + "      proxy_url: http://user:pr0xy@proxy:3128\n"
        + "  pagerduty_configs: [{routing_key: rk-secret}]\n"
    )
    original = config.original
    for secret in ("hunter2", "hooks.example/tok", "p4ss", "pr0xy", "rk-secret"):
        assert secret not in original
    parsed = yaml.safe_load(original)
    assert parsed["global"]["smtp_auth_password"] == "<secret>"
    assert parsed["global"]["slack_api_url"] == "<secret>"
    webhook = parsed["receivers"][0]["webhook_configs"][0]
    assert webhook["http_config"]["basic_auth"] == {"username": "u", "password": "<secret>"}
    assert webhook["http_config"]["proxy_url"] == "http://user:xxxxx@proxy:3128"
    assert webhook["send_resolved"] is True and webhook["max_alerts"] == 0
    assert parsed["receivers"][0]["pagerduty_configs"][0]["routing_key"] == "<secret>"
    assert parsed["templates"] == [] and parsed["route"]["continue"] is False


def test_original_round_trips_through_the_loader() -> None:
    """The re-serialised config loads again (<secret> URLs are accepted) to the same form."""
    first = load_config_text(
        "global:\n  slack_api_url: https://hooks.example/tok\n"
        + RECV
        + "  slack_configs: [{channel: '#c'}]\n"
    )
    second = load_config_text(first.original)
    assert second.original == first.original


def test_email_headers_appear_only_for_used_receivers() -> None:
    """Like Alertmanager, only receivers a route uses get the default email headers."""
    config = load_config_text(
        "global:\n  smtp_smarthost: 'mx:25'\n  smtp_from: a@b\n"
        "route:\n  receiver: a\nreceivers:\n"
        "- name: a\n  email_configs: [{to: x@y}]\n"
        "- name: unused\n  email_configs: [{to: z@y}]\n"
    )
    used, unused = yaml.safe_load(config.original)["receivers"]
    assert used["email_configs"][0]["headers"]["To"] == "x@y"
    assert "headers" not in unused["email_configs"][0]


def test_load_config_text_resolves_relative_to_cwd() -> None:
    """Text without a real file name anchors relative templates at the working directory."""
    config = load_config_text(MINIMAL + "templates: ['x/*.tmpl']\n")
    assert config.templates == (os.path.join(os.getcwd(), "x/*.tmpl"),)


def test_yaml_merge_keys_and_anchors() -> None:
    """Anchors, aliases and << merge keys work as in yaml.v2."""
    config = load_config_text(
        "route:\n  receiver: a\n  routes:\n"
        "  - &r {receiver: a, group_wait: 7s}\n"
        "  - <<: *r\n    group_wait: 8s\n"
        "receivers:\n- name: a\n"
    )
    first, second = config.route.routes
    assert (first.group_wait, second.group_wait) == (7 * SECOND, 8 * SECOND)


def test_null_and_empty_values_keep_zero_values() -> None:
    """Keys written without a value keep Go's zero value instead of failing."""
    config = load_config_text(
        "global:\n  smtp_smarthost: ~\n  http_config:\n"
        "route:\n  receiver: a\n  group_by:\n  routes:\n  - receiver: a\n    match: {}\n"
        "receivers:\n- name: a\n  webhook_configs:\n  - url: http://x/\n"
        "    http_config:\n    max_alerts:\n  email_configs: []\ntemplates:\n"
    )
    assert config.global_.fields["smtp_smarthost"] == ""
    (wh,) = config.receiver("a").webhook_configs
    assert wh.max_alerts == 0 and wh.http_config.follow_redirects
    assert config.templates == () and config.route.routes[0].matchers == ()
