"""The daemon's settings, as Alertmanager 0.25's flags give them (one field per flag).

A plain value: :mod:`daemon.cli` parses the command line into it, and the process shell
(:mod:`daemon.app`) hands each part the fields it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from daemon.gocompat.duration import parse_duration

#: ``--notify.sender-process``'s values.
SENDER_PROCESS_MODES = ("auto", "off")


@attrs.frozen
class Options:
    config_file: str = "alertmanager.yml"
    storage_path: str = "data/"
    data_retention: int = parse_duration("120h")
    data_maintenance_interval: int = parse_duration("15m")
    alerts_gc_interval: int = parse_duration("30m")
    #: repeatable, as in Alertmanager 0.25; the external URL takes the first one's port.
    web_listen_addresses: tuple[str, ...] = (":9093",)
    web_external_url: str = ""
    web_route_prefix: str = ""
    web_config_file: str = ""
    web_get_concurrency: int = 0
    web_timeout: int = 0
    web_systemd_socket: bool = False
    cluster_listen_address: str = "0.0.0.0:9094"
    cluster_advertise_address: str = ""
    cluster_peers: tuple[str, ...] = ()
    cluster_peer_timeout: int = parse_duration("15s")
    cluster_gossip_interval: int = parse_duration("200ms")
    cluster_pushpull_interval: int = parse_duration("1m")
    cluster_tcp_timeout: int = parse_duration("10s")
    cluster_probe_timeout: int = parse_duration("500ms")
    cluster_probe_interval: int = parse_duration("1s")
    cluster_settle_timeout: int = parse_duration("1m")
    cluster_reconnect_interval: int = parse_duration("10s")
    cluster_reconnect_timeout: int = parse_duration("6h")
    cluster_tls_config: str = ""
    cluster_allow_insecure_public_advertise_address_discovery: bool = False
    cluster_label: str = ""
    #: tocsin only: a file of base64 gossip keys, one a line, the first one primary.
    cluster_gossip_key_file: str = ""
    #: tocsin only: the notification history (``<storage.path>/history.db``); 0 turns it off.
    history_retention: int = parse_duration("7d")
    history_max_rows: int = 1_000_000
    history_export_file: str = ""
    history_webhook_url: str = ""
    #: ``events`` (Alertmanager event-recorder JSON lines) or ``nm`` (NM's history body).
    history_webhook_format: str = "events"
    #: tocsin only: serve POST /-/debug/stall, which blocks the event loop (watchdog tests).
    debug_stall_endpoint: bool = False
    #: tocsin only: the tenancy file; "" runs without tenancy (one global pipeline).
    tenancy_config_file: str = ""
    #: tocsin only: Kubernetes events and audit events (daemon/sources/); globs, repeatable.
    events_rules_files: tuple[str, ...] = ()
    events_workspaces_file: str = ""
    events_resolve_after: int = parse_duration("15m")
    events_notification_webhooks: tuple[str, ...] = ()
    #: The API-server watch: a kubeconfig, or (events_watch) the pod's service account.
    events_kubeconfig: str = ""
    events_watch: bool = False
    auditing_rules_files: tuple[str, ...] = ()
    auditing_alerting_priority: str = "WARNING"
    #: tocsin only: ``auto`` exchanges burst notifications in a child process
    #: (daemon/notify/sender.py); ``off`` keeps every exchange in the daemon.
    notify_sender_process: str = "auto"
    log_level: str = "info"
    #: None when the flag was not given: then the format follows the TTY.
    log_format: str | None = None


#: Flags tocsin accepts but does not honour yet, with the values that mean Alertmanager's
#: default (which tocsin does honour): any other value fails start-up, naming the flag.
#: No flag is silently ignored.
NOT_HONOURED: dict[str, tuple[str, Callable[[Any], bool]]] = {
    # Every flag of Alertmanager 0.25 is honoured now; a flag added later that is not
    # yet goes here, with the test in tests/test_flags.py guarding the rule.
}


def refused_flags(options: Options) -> list[str]:
    """One message per flag given a value that tocsin would not honour."""
    return [
        f"--{flag}={getattr(options, attr)!r} is not supported by tocsin yet; "
        "remove the flag (tocsin refuses to start rather than ignore it)"
        for flag, (attr, is_default) in NOT_HONOURED.items()
        if not is_default(getattr(options, attr))
    ]
