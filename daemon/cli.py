"""The ``tocsin`` command line: Alertmanager 0.25's flags, names and defaults.

Flags are accepted as ``--flag=value`` or ``--flag value`` (kingpin style), so existing
systemd units and scripts that start Alertmanager start tocsin unchanged. Boolean flags
also take kingpin's ``--no-<flag>`` negation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from daemon import __version__
from daemon.gocompat.duration import DurationError, parse_duration, parse_go_duration
from daemon.history.export import WEBHOOK_FORMATS
from daemon.log import LEVELS
from daemon.options import SENDER_PROCESS_MODES, Options


def _duration(text: str) -> int:
    # Alertmanager's duration flags are kingpin Duration flags: Go's time.ParseDuration,
    # except data.retention style values like "120h" which both grammars accept.
    try:
        return parse_go_duration(text)
    except DurationError:
        try:
            return parse_duration(text)
        except DurationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


_DURATIONS = {
    "data.retention",
    "data.maintenance-interval",
    "alerts.gc-interval",
    "web.timeout",
    "cluster.peer-timeout",
    "cluster.gossip-interval",
    "cluster.pushpull-interval",
    "cluster.tcp-timeout",
    "cluster.probe-timeout",
    "cluster.probe-interval",
    "cluster.settle-timeout",
    "cluster.reconnect-interval",
    "cluster.reconnect-timeout",
    "history.retention",
}
_BOOLS = {
    "debug.stall-endpoint",
    "events.watch",
    "web.systemd-socket",
    "cluster.allow-insecure-public-advertise-address-discovery",
}
_STRINGS = {
    "config.file",
    "storage.path",
    "web.external-url",
    "web.route-prefix",
    "web.config.file",
    "cluster.listen-address",
    "cluster.advertise-address",
    "cluster.tls-config",
    "cluster.label",
    "cluster.gossip-key-file",
    "history.export-file",
    "history.webhook-url",
    "tenancy.config-file",
    "events.workspaces-file",
    "events.kubeconfig",
}


def _positive_duration(text: str) -> int:
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than 0s")
    return value


def _webhook_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL")
    return text


#: The repeatable flags of the Kubernetes event sources: flag, attribute, type, help.
_EVENT_REPEATED: tuple[tuple[str, str, Callable[[str], str], str], ...] = (
    ("--events.rules-file", "events_rules_files", str, "kube-events Rule files, a glob"),
    ("--auditing.rules-file", "auditing_rules_files", str, "kube-auditing Rule files, a glob"),
    (
        "--events.notification-webhook",
        "events_notification_webhooks",
        _webhook_url,
        "where events matched by notification rules go, as NDJSON",
    ),
)


def _attr(flag: str) -> str:
    return flag.replace(".", "_").replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tocsin",
        description="tocsin: an Alertmanager-compatible alert manager.",
    )
    defaults = Options()
    for flag in sorted(_STRINGS):
        p.add_argument(f"--{flag}", dest=_attr(flag), default=getattr(defaults, _attr(flag)))
    for flag in sorted(_DURATIONS):
        p.add_argument(
            f"--{flag}", dest=_attr(flag), type=_duration, default=getattr(defaults, _attr(flag))
        )
    for flag in sorted(_BOOLS):
        p.add_argument(
            f"--{flag}",
            dest=_attr(flag),
            action=argparse.BooleanOptionalAction,
            default=False,
        )
    p.add_argument(
        "--history.webhook-format",
        dest="history_webhook_format",
        choices=WEBHOOK_FORMATS,
        default=Options().history_webhook_format,
        help="the body --history.webhook-url gets: events (Alertmanager event-recorder "
        "JSON lines) or nm (Notification Manager's history webhook)",
    )
    p.add_argument(
        "--web.listen-address",
        dest="web_listen_addresses",
        action="append",
        default=[],
        help="addresses to serve the API and UI on (may be repeated)",
    )
    p.add_argument("--web.get-concurrency", dest="web_get_concurrency", type=int, default=0)
    p.add_argument(
        "--history.max-rows",
        dest="history_max_rows",
        type=int,
        default=defaults.history_max_rows,
        help="notification history rows kept at most; the oldest go first",
    )
    p.add_argument(
        "--cluster.peer",
        dest="cluster_peers",
        action="append",
        default=[],
        help="initial peers (may be repeated)",
    )
    p.add_argument(
        "--events.resolve-after",
        dest="events_resolve_after",
        type=_positive_duration,
        default=defaults.events_resolve_after,
        help="how long an event alert stays firing after its event last occurred",
    )
    for flag, dest, kind, text in _EVENT_REPEATED:
        p.add_argument(flag, dest=dest, action="append", type=kind, default=[], help=text)
    p.add_argument(
        "--auditing.alerting-priority",
        dest="auditing_alerting_priority",
        choices=("DEBUG", "INFO", "WARNING"),
        default=defaults.auditing_alerting_priority,
        help="audit rules below this priority raise no alert",
    )
    p.add_argument(
        "--notify.sender-process",
        dest="notify_sender_process",
        choices=SENDER_PROCESS_MODES,
        default=defaults.notify_sender_process,
        help="auto: notifications made during a burst are exchanged in a "
        "child process, on another core; off: all in the daemon's process",
    )
    p.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    p.add_argument("--log.format", dest="log_format", choices=("logfmt", "json"), default=None)
    p.add_argument("--version", action="version", version=f"tocsin, version {__version__}")
    return p


def parse_args(argv: Sequence[str]) -> Options:
    ns = build_parser().parse_args(list(argv))
    values = vars(ns)
    values["cluster_peers"] = tuple(values["cluster_peers"])
    for _, repeated, _, _ in _EVENT_REPEATED:
        values[repeated] = tuple(values[repeated])
    values["web_listen_addresses"] = tuple(values["web_listen_addresses"]) or (
        Options().web_listen_addresses
    )
    return Options(**values)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    from daemon.app import run

    sys.exit(run(options))
