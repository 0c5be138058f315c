"""Typed configuration values.

These are the shapes the rest of the daemon reads. The loader (``daemon.config.load``)
fills them from YAML, applies Alertmanager's defaults and inheritance, and validates.
All durations are ``int`` nanoseconds.

Routes are already *resolved*: inherited fields (receiver, group_by, timers) are filled
in on every node, so dispatch never walks up the tree.
"""

from __future__ import annotations

from typing import Any

import attrs

from daemon.matcher import Matcher

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


@attrs.frozen
class HTTPConfig:
    """Prometheus common HTTP client config. ``raw`` keeps every key as written."""

    follow_redirects: bool = True
    enable_http2: bool = True
    raw: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class WebhookConfig:
    url: str
    send_resolved: bool = True
    max_alerts: int = 0
    http_config: HTTPConfig = attrs.field(factory=HTTPConfig)


@attrs.frozen
class IntegrationConfig:
    """Any non-webhook integration entry: its type name (``slack``, ``email`` …),
    ``send_resolved`` and every field after defaults, as a plain mapping.

    Keys are the YAML names; secrets are in clear; ``fields["http_config"]`` (when the
    type has one) is an :class:`HTTPConfig`, already defaulted to the global one."""

    type: str
    send_resolved: bool
    fields: dict[str, Any]


@attrs.frozen
class Receiver:
    name: str
    webhook_configs: tuple[WebhookConfig, ...] = ()
    #: All other integration types, in file order per type.
    other_configs: tuple[IntegrationConfig, ...] = ()


@attrs.frozen(eq=False)
class Route:
    """A resolved routing-tree node (inherited fields already applied)."""

    receiver: str
    #: Label names to group by; ignored when ``group_by_all``.
    group_by: tuple[str, ...] = ()
    group_by_all: bool = False
    #: Own matchers only (match + match_re + matchers), sorted (spec §3.1).
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    routes: tuple[Route, ...] = ()
    group_wait: int = 30 * SECOND
    group_interval: int = 5 * MINUTE
    repeat_interval: int = 4 * HOUR
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


@attrs.frozen
class InhibitRule:
    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


@attrs.frozen
class GlobalConfig:
    resolve_timeout: int = 5 * MINUTE
    http_config: HTTPConfig = attrs.field(factory=HTTPConfig)
    #: Every global key after defaults (smtp_*, slack_api_url, …) as written/defaulted.
    fields: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Config:
    global_: GlobalConfig
    route: Route
    receivers: tuple[Receiver, ...]
    inhibit_rules: tuple[InhibitRule, ...] = ()
    #: name -> tuple of parsed :class:`daemon.timeinterval.TimeInterval` (OR-ed sub-intervals).
    time_intervals: dict[str, tuple[Any, ...]] = attrs.field(factory=dict)
    templates: tuple[str, ...] = ()
    #: The exact file text, for the config hash metric.
    source_text: str = ""
    #: The re-serialised config with defaults and ``<secret>``s, for /api/v2/status.
    original: str = ""

    def receiver(self, name: str) -> Receiver:
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)
