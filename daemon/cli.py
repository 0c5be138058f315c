"""The ``tocsin`` command line: Alertmanager 0.25's flags, names and defaults.

Flags are accepted as ``--flag=value`` or ``--flag value`` (kingpin style), so existing
systemd units and scripts that start Alertmanager start tocsin unchanged. Boolean flags
also take kingpin's ``--no-<flag>`` negation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import attrs

from daemon import __version__
from daemon.duration import DurationError, parse_duration, parse_go_duration
from daemon.log import LEVELS


@attrs.frozen
class Options:
    config_file: str = "alertmanager.yml"
    storage_path: str = "data/"
    data_retention: int = parse_duration("120h")
    data_maintenance_interval: int = parse_duration("15m")
    alerts_gc_interval: int = parse_duration("30m")
    web_listen_address: str = ":9093"
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
    log_level: str = "info"
    #: None when the flag was not given: then the format follows the TTY.
    log_format: str | None = None


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
}
_BOOLS = {
    "web.systemd-socket",
    "cluster.allow-insecure-public-advertise-address-discovery",
}
_STRINGS = {
    "config.file",
    "storage.path",
    "web.listen-address",
    "web.external-url",
    "web.route-prefix",
    "web.config.file",
    "cluster.listen-address",
    "cluster.advertise-address",
    "cluster.tls-config",
    "cluster.label",
    "cluster.gossip-key-file",
}


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
    p.add_argument("--web.get-concurrency", dest="web_get_concurrency", type=int, default=0)
    p.add_argument(
        "--cluster.peer",
        dest="cluster_peers",
        action="append",
        default=[],
        help="initial peers (may be repeated)",
    )
    p.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    p.add_argument("--log.format", dest="log_format", choices=("logfmt", "json"), default=None)
    p.add_argument("--version", action="version", version=f"tocsin, version {__version__}")
    return p


def parse_args(argv: Sequence[str]) -> Options:
    ns = build_parser().parse_args(list(argv))
    values = vars(ns)
    values["cluster_peers"] = tuple(values["cluster_peers"])
    return Options(**values)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    from daemon.app import run

    sys.exit(run(options))
