"""Every config file shipped in configs/ loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config.load import load_config_file

CONFIGS = Path(__file__).parents[2] / "configs"
SHIPPED = sorted(CONFIGS.rglob("*.yml"))


def test_configs_directory_has_default_and_examples() -> None:
    """The embedded default config and at least one example exist."""
    names = {p.relative_to(CONFIGS).as_posix() for p in SHIPPED}
    assert "tocsin.yml" in names
    assert any(n.startswith("examples/") for n in names)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_config_loads(path: Path) -> None:
    """Each shipped config passes validation."""
    config = load_config_file(str(path))
    assert config.route.receiver


def test_default_config_routes_to_local_webhook() -> None:
    """make run's config sends everything to the 'default' webhook on 127.0.0.1:5001."""
    config = load_config_file(str(CONFIGS / "tocsin.yml"))
    assert config.route.receiver == "default"
    assert config.route.group_by == ("alertname",)
    (webhook,) = config.receiver("default").webhook_configs
    assert webhook.url == "http://127.0.0.1:5001/"


def test_multi_route_example_uses_every_feature() -> None:
    """The multi-route example really shows continue, matchers, inhibition and intervals."""
    config = load_config_file(str(CONFIGS / "examples" / "multi-route.yml"))
    routes = config.route.routes
    assert any(r.continue_ for r in routes)
    assert any(r.mute_time_intervals for r in routes)
    assert any(r.active_time_intervals for r in routes)
    assert config.inhibit_rules and set(config.time_intervals) == {"weekends", "business-hours"}
