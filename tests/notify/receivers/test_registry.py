"""Tests for the integration registry."""

from __future__ import annotations

import httpx

from daemon.clock import ZERO_TIME
from daemon.config.model import IntegrationConfig
from daemon.notify.receivers import registry
from daemon.notify.receivers.base import IntegrationEnv


class _Clock:
    def now(self) -> int:
        return ZERO_TIME


class _Templater:
    def render(self, text: str, ctx: object, alerts: object, *, html: bool = False) -> str:
        return text


def test_unknown_type_builds_none() -> None:
    """A type no module handles yields None so the caller can fall back."""
    env = IntegrationEnv(
        http=httpx.AsyncClient(),
        templater=_Templater(),
        external_url="",
        clock=_Clock(),
        receiver="r",
    )
    config = IntegrationConfig(type="no-such-type", send_resolved=True, fields={})
    assert registry.build_integration(config, 0, env) is None


def test_webhook_and_helpers_are_not_registered() -> None:
    """Only modules defining INTEGRATION_TYPE are discovered; the webhook has its own path."""
    types = registry.integration_types()
    assert "webhook" not in types
    assert "base" not in types and "registry" not in types


def test_chat_and_kubesphere_types_are_registered() -> None:
    """Every integration module of this package with INTEGRATION_TYPE is discovered."""
    types = registry.integration_types()
    expected = {
        "slack",
        "discord",
        "msteams",
        "telegram",
        "webex",
        "dingtalk",
        "feishu",
        "wecom",
        "sms",
    }
    assert expected <= types
