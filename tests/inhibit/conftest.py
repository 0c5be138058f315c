"""Helpers for the inhibition tests: rules from real config text, alerts with times."""

from __future__ import annotations

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND
from daemon.config.load import load_config_text
from daemon.config.model import InhibitRule

S = NS_PER_SECOND
NOW = 1_700_000_000 * S

_HEAD = "route:\n  receiver: r\nreceivers:\n  - name: r\n"


def rules(inhibit_yaml: str) -> tuple[InhibitRule, ...]:
    """Parse an ``inhibit_rules:`` YAML list through the real config loader."""
    return load_config_text(_HEAD + "inhibit_rules:\n" + inhibit_yaml).inhibit_rules


def alert(labels: dict[str, str], *, ends_at: int = NOW + 300 * S, updated_at: int = 0) -> Alert:
    """A stored alert that started an hour before NOW and ends at ``ends_at``."""
    return Alert(dict(labels), {}, NOW - 3600 * S, ends_at, updated_at=updated_at)
