"""No flag is silently ignored: every flag ``tocsin`` accepts is either honoured, with a
test elsewhere that shows it, or refused at start-up with a message naming it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attrs
import pytest

from daemon.cli import build_parser
from daemon.options import NOT_HONOURED, Options, refused_flags

ROOT = Path(__file__).resolve().parents[1]

#: flag → the test that shows tocsin honouring it. Where no test drives the flag end to
#: end, the reference is the test of the part the flag's value is handed to.
HONOURED: dict[str, str] = {
    "config.file": "tests/integration/test_daemon.py::test_reload_swaps_good_config_and_keeps_old_on_bad",
    "storage.path": "tests/integration/test_daemon.py::test_restart_does_not_resend_notified_groups",
    "data.retention": "tests/nflog/test_state.py::test_log_expiry_shorter_than_retention_wins",
    "data.maintenance-interval": "tests/persist/test_durable.py::test_serve_compacts_every_interval_and_at_shutdown",
    "alerts.gc-interval": "tests/test_store.py::test_gc_removes_only_resolved",
    "web.listen-address": "tests/integration/test_webconfig.py::test_every_listen_address_is_served",
    "web.external-url": "tests/notify/test_alertmanager_compat.py",
    "web.route-prefix": "tests/api/test_routing.py::test_route_prefix",
    "web.config.file": "tests/integration/test_webconfig.py::test_curl_over_tls_with_basic_auth",
    "web.systemd-socket": "tests/integration/test_webconfig.py::test_systemd_socket_is_served",
    "web.timeout": "tests/integration/test_http_hardening.py::test_web_timeout_flag_is_honoured",
    "web.get-concurrency": "tests/api/test_limits.py::test_get_concurrency_limits_gets_only",
    "cluster.listen-address": "tests/integration/test_cluster.py",
    "cluster.advertise-address": "tests/integration/test_cluster.py::test_advertise_address_rules",
    "cluster.allow-insecure-public-advertise-address-discovery": "tests/integration/test_cluster.py::test_advertise_address_rules",
    "cluster.peer": "tests/integration/test_cluster.py",
    "cluster.peer-timeout": "tests/integration/test_cluster.py",
    "cluster.gossip-interval": "tests/integration/test_cluster.py",
    "cluster.pushpull-interval": "tests/integration/test_cluster.py",
    "cluster.tcp-timeout": "tests/integration/test_cluster_faults.py",
    "cluster.probe-timeout": "tests/integration/test_cluster.py",
    "cluster.probe-interval": "tests/integration/test_cluster.py",
    "cluster.settle-timeout": "tests/integration/test_cluster.py",
    "cluster.reconnect-interval": "tests/integration/test_cluster.py",
    "cluster.reconnect-timeout": "tests/integration/cluster_processes.py",
    "cluster.tls-config": "tests/integration/test_cluster_tls.py::test_bad_tls_config_stops_start_up",
    "cluster.gossip-key-file": "tests/integration/test_cluster_encryption.py",
    "cluster.label": "tests/integration/test_cluster_label.py",
    "history.retention": "tests/history/test_store.py::test_retention_prunes_on_its_timer",
    "tenancy.config-file": "tests/tenancy/test_isolation.py::test_reload_rereads_the_tenancy_file",
    "history.max-rows": "tests/history/test_database.py::test_size_cap_drops_the_oldest",
    "history.export-file": "tests/history/test_service.py::test_one_record_reaches_store_file_and_webhook",
    "history.webhook-url": "tests/history/test_service.py::test_one_record_reaches_store_file_and_webhook",
    "history.webhook-format": "tests/history/test_service.py::test_webhook_format_nm_posts_notification_managers_body",
    "events.rules-file": "tests/api/test_events_e2e.py::test_every_event_shape_becomes_alerts_and_notifications",
    "events.notification-webhook": "tests/api/test_events_e2e.py::test_every_event_shape_becomes_alerts_and_notifications",
    "events.resolve-after": "tests/api/test_events_e2e.py::test_resolve_after_flag_resolves_when_the_event_stops",
    "events.workspaces-file": "tests/sources/test_rulesets.py::test_workspace_rules_apply_to_the_namespaces_of_their_workspace",
    "auditing.rules-file": "tests/api/test_events_e2e.py::test_audit_webhook_shapes_become_kube_auditing_alerts",
    "auditing.alerting-priority": "tests/api/test_events_e2e.py::test_audit_webhook_shapes_become_kube_auditing_alerts",
    "events.kubeconfig": "tests/api/test_events_e2e.py::test_watch_intake_against_a_stand_in_api_server",
    "events.watch": "tests/api/test_events_e2e.py::test_events_watch_outside_a_pod_stops_start_up",
    "notify.sender-process": "tests/integration/test_sender_process.py::test_a_burst_is_notified_once_per_group_with_and_without_the_child",
    "log.level": "tests/integration/test_cluster_faults.py",
    "log.format": "tests/integration/processes.py",
    "debug.stall-endpoint": "tests/integration/test_systemd.py::test_stall_endpoint_only_with_its_flag",
    "version": "tests/integration/test_daemon.py::test_informational_flags",
    "help": "tests/integration/test_daemon.py::test_informational_flags",
}


def accepted_flags() -> set[str]:
    """Every long option the parser takes, without ``--`` and without ``--no-`` twins."""
    flags: set[str] = set()
    for action in build_parser()._actions:
        for option in action.option_strings:
            if option.startswith("--") and not (
                option.startswith("--no-") and f"--{option[5:]}" in action.option_strings
            ):
                flags.add(option[2:])
    return flags


def test_every_flag_is_honoured_or_refused() -> None:
    """The two lists cover every accepted flag exactly once."""
    assert accepted_flags() == set(HONOURED) | set(NOT_HONOURED)
    assert not set(HONOURED) & set(NOT_HONOURED)


@pytest.mark.parametrize("flag", sorted(HONOURED))
def test_honoured_flag_has_its_test(flag: str) -> None:
    """Each reference names a test file, and function where given, that exists."""
    path, _, function = HONOURED[flag].partition("::")
    text = (ROOT / path).read_text()
    if function:
        assert re.search(rf"def {function}\(", text), f"{flag}: {HONOURED[flag]} is missing"


def _attributes_read_by_daemon() -> set[str]:
    """Names read as ``<something>.<name>`` anywhere in daemon/ outside cli and options."""
    names: set[str] = set()
    for path in (ROOT / "daemon").rglob("*.py"):
        if path.name in ("cli.py", "options.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
    return names


def test_every_honoured_option_is_read_by_the_daemon() -> None:
    """A honoured flag's field is read by the daemon (a field nothing reads is ignored)."""
    read = _attributes_read_by_daemon()
    refused = {attr for attr, _ in NOT_HONOURED.values()}
    fields = {a.name for a in attrs.fields(Options)}
    unread = sorted(f for f in fields - refused if f not in read)
    assert unread == []


#: A stand-in for a flag not honoured yet (every flag is today), to prove the refusal.
REFUSED_EXAMPLE = {"cluster.label": ("cluster_label", lambda v: v == "")}


@pytest.mark.parametrize("flag", sorted(NOT_HONOURED or REFUSED_EXAMPLE))
def test_refused_flag_fails_start_up_with_its_name(
    flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a non-default value, each refused flag yields a start-up error naming it;
    at its default it is accepted (Alertmanager's default behaviour is tocsin's)."""
    if not NOT_HONOURED:
        monkeypatch.setitem(NOT_HONOURED, flag, REFUSED_EXAMPLE[flag])
    attr, is_default = NOT_HONOURED[flag]
    default = getattr(Options(), attr)
    assert is_default(default)
    assert refused_flags(Options()) == []
    value = "prod" if isinstance(default, str) else 5
    problems = refused_flags(Options(**{attr: value}))
    assert len(problems) == 1 and problems[0].startswith(f"--{flag}=")
