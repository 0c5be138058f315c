"""The limits' parser and their pure decisions: Mimir's names, config checks, alert
ledger, token buckets, the group budget and the firewall's address rules."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from daemon.alert import Alert
from daemon.dispatch.group_limit import GroupBudget
from daemon.notify.firewall import BLOCK_CIDR, BLOCK_PRIVATE, ReceiverFirewall
from daemon.notify.ratelimit import NotificationRateLimits, TokenBucket, burst_for
from daemon.template.render import Templates
from daemon.tenancy.limits import (
    UNLIMITED,
    AlertsLedger,
    LimitExceeded,
    LimitsError,
    TenantLimits,
    alert_size,
    check_config_limits,
    config_limit_breached,
    parse_limits,
)

WHERE = "tenancy.yml: tenants.team-a.limits"


def test_every_mimir_name_parses_into_its_field() -> None:
    """Each of Mimir's alertmanager_* keys sets the field of the same name without the prefix."""
    raw = {
        "alertmanager_notification_rate_limit": 2.5,
        "alertmanager_notification_rate_limit_per_integration": {"email": 0.1, "webhook": 10},
        "alertmanager_max_config_size_bytes": 1000,
        "alertmanager_max_templates_count": 3,
        "alertmanager_max_template_size_bytes": 200,
        "alertmanager_max_silences_count": 4,
        "alertmanager_max_silence_size_bytes": 500,
        "alertmanager_max_dispatcher_aggregation_groups": 5,
        "alertmanager_max_alerts_count": 6,
        "alertmanager_max_alerts_size_bytes": 7000,
        "alertmanager_receivers_firewall_block_cidr_networks": ["10.0.0.0/8", "fd00::/8"],
        "alertmanager_receivers_firewall_block_private_addresses": True,
    }
    limits = parse_limits(raw, defaults=UNLIMITED, where=WHERE)
    assert limits == TenantLimits(
        notification_rate_limit=2.5,
        notification_rate_limit_per_integration={"email": 0.1, "webhook": 10.0},
        max_config_size_bytes=1000,
        max_templates_count=3,
        max_template_size_bytes=200,
        max_silences_count=4,
        max_silence_size_bytes=500,
        max_dispatcher_aggregation_groups=5,
        max_alerts_count=6,
        max_alerts_size_bytes=7000,
        receivers_firewall_block_cidr_networks=(
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("fd00::/8"),
        ),
        receivers_firewall_block_private_addresses=True,
    )
    assert limits.notification_rate("email") == 0.1
    assert limits.notification_rate("slack") == 2.5


def test_tenant_limits_override_the_defaults_key_by_key() -> None:
    """A tenant's limits replace only the keys they name; the rest come from default_limits."""
    defaults = parse_limits(
        {"alertmanager_max_alerts_count": 100, "alertmanager_max_silences_count": 10},
        defaults=UNLIMITED,
        where="default_limits",
    )
    limits = parse_limits({"alertmanager_max_alerts_count": 5}, defaults=defaults, where=WHERE)
    assert (limits.max_alerts_count, limits.max_silences_count) == (5, 10)
    assert parse_limits({}, defaults=defaults, where=WHERE) == defaults


def test_mimirs_comma_separated_cidr_string_is_accepted() -> None:
    """Mimir's runtime-config spelling of the CIDR list (one comma-separated string) works too."""
    limits = parse_limits(
        {"alertmanager_receivers_firewall_block_cidr_networks": "10.0.0.0/8, 192.168.1.0/24"},
        defaults=UNLIMITED,
        where=WHERE,
    )
    assert [str(n) for n in limits.receivers_firewall_block_cidr_networks] == [
        "10.0.0.0/8",
        "192.168.1.0/24",
    ]


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"alertmanager_max_alert_count": 1}, "'alertmanager_max_alert_count'"),
        ({"max_alerts_count": 1}, "'max_alerts_count'"),
        ({"alertmanager_max_alerts_count": "10"}, "alertmanager_max_alerts_count"),
        ({"alertmanager_max_alerts_count": True}, "alertmanager_max_alerts_count"),
        ({"alertmanager_max_alerts_count": -1}, "alertmanager_max_alerts_count"),
        ({"alertmanager_max_alerts_count": 1.5}, "alertmanager_max_alerts_count"),
        ({"alertmanager_notification_rate_limit": "fast"}, "alertmanager_notification_rate_limit"),
        (
            {"alertmanager_notification_rate_limit_per_integration": {"carrier-pigeon": 1}},
            "'carrier-pigeon'",
        ),
        (
            {"alertmanager_notification_rate_limit_per_integration": {"email": None}},
            "alertmanager_notification_rate_limit_per_integration.email",
        ),
        (
            {"alertmanager_receivers_firewall_block_cidr_networks": ["10.0.0.0/33"]},
            "alertmanager_receivers_firewall_block_cidr_networks",
        ),
        (
            {"alertmanager_receivers_firewall_block_cidr_networks": [10]},
            "alertmanager_receivers_firewall_block_cidr_networks",
        ),
        (
            {"alertmanager_receivers_firewall_block_private_addresses": "yes"},
            "alertmanager_receivers_firewall_block_private_addresses",
        ),
    ],
)
def test_a_bad_key_or_value_names_the_key_and_where(raw: dict[str, object], names: str) -> None:
    """An unknown key or a value of the wrong kind is a LimitsError naming the key and the place."""
    with pytest.raises(LimitsError) as caught:
        parse_limits(raw, defaults=UNLIMITED, where=WHERE)
    assert str(caught.value).startswith(WHERE + ": ")
    assert names in str(caught.value)


def test_config_limits_name_what_is_too_big() -> None:
    """Config size, template count and template size each give their own message; within
    the limits (or with none) there is no message."""
    limits = TenantLimits(
        max_config_size_bytes=10, max_templates_count=1, max_template_size_bytes=4
    )
    assert check_config_limits(limits, "route: {}\n", {"a.tmpl": "abcd"}) is None
    assert (
        check_config_limits(UNLIMITED, "x" * 10_000, {str(i): "y" * 99 for i in range(50)}) is None
    )
    assert check_config_limits(limits, "é" * 6, {}) == (
        "Alertmanager configuration is too big: 12 bytes (limit: 10 bytes)"
    )
    assert check_config_limits(limits, "", {"a": "", "b": ""}) == (
        "too many templates in the configuration: 2 (limit: 1)"
    )
    assert check_config_limits(limits, "", {"big.tmpl": "12345"}) == (
        "template big.tmpl is too big: 5 bytes (limit: 4 bytes)"
    )
    assert [
        config_limit_breached(check_config_limits(limits, *case) or "")
        for case in (("x" * 11, {}), ("", {"a": "", "b": ""}), ("", {"a": "12345"}))
    ] == ["max_config_size_bytes", "max_templates_count", "max_template_size_bytes"]


def alert(name: str, note: str = "") -> Alert:
    return Alert({"alertname": name}, {"note": note} if note else {}, 1, 2, "http://g", 1)


def test_alert_size_is_mimirs() -> None:
    """Names and values of labels and annotations plus the generator URL, in UTF-8 bytes."""
    assert alert_size(alert("A", "é")) == len("alertname") + 1 + len("note") + 2 + len("http://g")


def test_reposting_stored_alerts_is_never_a_breach() -> None:
    """At the count limit, a batch re-posting stored alerts passes; one new alert does not."""
    ledger = AlertsLedger()
    limits = TenantLimits(max_alerts_count=2)
    batch = [alert("A"), alert("B")]
    ledger.admit(limits, batch)
    ledger.stored(batch)
    ledger.admit(limits, [alert("B"), alert("A"), alert("A")])
    with pytest.raises(LimitExceeded) as caught:
        ledger.admit(limits, [alert("A"), alert("C")])
    assert caught.value.limit == "max_alerts_count"
    assert str(caught.value) == "too many alerts: storing this batch would make 3 (limit: 2)"
    assert len(ledger) == 2


def test_the_size_limit_counts_an_update_by_its_change_in_size() -> None:
    """Growing a stored alert past the total size is a breach; an update that keeps or
    shrinks the total is not, and forgotten alerts free their bytes."""
    small = alert("A")
    limits = TenantLimits(max_alerts_size_bytes=alert_size(small) + 5)
    ledger = AlertsLedger()
    ledger.stored([small])
    ledger.admit(limits, [alert("A")])
    ledger.admit(limits, [alert("A", "")])
    with pytest.raises(LimitExceeded) as caught:
        ledger.admit(limits, [alert("B")])
    assert caught.value.limit == "max_alerts_size_bytes"
    with pytest.raises(LimitExceeded):
        ledger.admit(limits, [alert("A", "x" * 20)])
    ledger.forget([small])
    assert ledger.total == 0
    ledger.admit(limits, [alert("B")])


def test_without_alert_limits_the_ledger_admits_anything() -> None:
    """Zero means unlimited."""
    AlertsLedger().admit(UNLIMITED, [alert(str(i), "x" * 1000) for i in range(100)])


def test_token_bucket_has_mimirs_burst_and_refills_at_the_rate() -> None:
    """Burst is the rate rounded down (at least 1); tokens come back at the rate."""
    assert [burst_for(r) for r in (0.1, 1, 2.9, 10, -1)] == [1, 1, 2, 10, 0]
    bucket = TokenBucket(2.0, now=100.0)
    assert [bucket.allow(100.0) for _ in range(3)] == [True, True, False]
    assert bucket.allow(100.4) is False
    assert bucket.allow(100.5) is True
    slow = TokenBucket(0.1, now=0.0)
    assert (slow.allow(0.0), slow.allow(9.0), slow.allow(10.0)) == (True, False, True)


def test_rate_limits_follow_the_tenants_current_rates() -> None:
    """Each integration type has its own bucket; 0 is unlimited, a negative rate lets
    nothing through, and a changed rate applies at the next send."""
    rates = {"webhook": 1.0, "email": 0.0, "slack": -1.0}
    limits = NotificationRateLimits(lambda name: rates[name])
    assert [limits.allow("webhook", 0.0) for _ in range(2)] == [True, False]
    assert all(limits.allow("email", 0.0) for _ in range(100))
    assert limits.allow("slack", 0.0) is False
    rates["webhook"] = 0.0
    assert limits.allow("webhook", 0.0) is True


def test_group_budget_caps_groups_and_frees_removed_ones() -> None:
    """Beyond the limit a group is refused and reported; released groups make room."""
    refused: list[int] = []
    limit = [2]
    budget = GroupBudget(lambda: limit[0], lambda: refused.append(1))
    assert [budget.take() for _ in range(3)] == [True, True, False]
    assert refused == [1]
    budget.release(1)
    assert budget.take() is True
    limit[0] = 0
    assert budget.take() is True


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("127.0.0.1", BLOCK_PRIVATE),
        ("::1", BLOCK_PRIVATE),
        ("::ffff:127.0.0.1", BLOCK_PRIVATE),
        ("0.0.0.0", BLOCK_PRIVATE),
        ("10.1.2.3", BLOCK_PRIVATE),
        ("192.168.0.1", BLOCK_PRIVATE),
        ("169.254.169.254", BLOCK_PRIVATE),
        ("fe80::1%eth0", BLOCK_PRIVATE),
        ("fd12::1", BLOCK_PRIVATE),
        ("203.0.113.9", BLOCK_CIDR),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_firewall_blocks_private_addresses_and_listed_networks(
    address: str, verdict: str | None
) -> None:
    """Private, loopback, link-local and unspecified addresses, and the listed CIDRs, are refused."""
    firewall = ReceiverFirewall([ipaddress.ip_network("203.0.113.0/24")], block_private=True)
    assert firewall.blocked_by(address) == verdict


def test_firewall_without_private_blocking_refuses_only_its_networks() -> None:
    """With only CIDRs set, loopback is allowed and the listed network is not."""
    firewall = ReceiverFirewall([ipaddress.ip_network("10.0.0.0/8")])
    assert firewall.blocked_by("127.0.0.1") is None
    assert firewall.blocked_by("10.9.9.9") == BLOCK_CIDR


def test_tenants_share_parsed_builtins_but_not_their_own_templates(tmp_path: Path) -> None:
    """Loading one tenant's templates (over the shared built-ins) leaves the built-ins and
    every other tenant's set as they were."""
    a, b = tmp_path / "a.tmpl", tmp_path / "b.tmpl"
    a.write_text('{{ define "slack.default.title" }}team A{{ end }}')
    b.write_text('{{ define "own" }}team B{{ end }}')
    first, second, plain = Templates.load([str(a)]), Templates.load([str(b)]), Templates.load()
    assert first.text.execute("slack.default.title", {}) == "team A"
    assert "own" not in first.text.names()
    assert second.text.execute("own", {}) == "team B"
    assert plain.text.lookup_tree("slack.default.title") is second.text.lookup_tree(
        "slack.default.title"
    )
    assert "own" not in plain.text.names()
