"""A tenant's config body is untrusted YAML: alias bombs, self-references and deep nesting
are refused in bounded time, and a refused config changes nothing stored."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daemon.tenancy import configstore
from daemon.tenancy.configstore import TenantConfigDoc, TenantConfigError

GOOD = "route: {receiver: r}\nreceivers: [{name: r}]\n"


def laughs(levels: int = 9) -> str:
    """A billion-laughs block: ``levels`` anchors of ten aliases each (10**levels nodes)."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (GOOD + laughs(), "excessive aliasing"),
        (GOOD + "loop: &l [*l]\n", "refers to itself"),
        (GOOD + "x: " + "[" * 300 + "]" * 300 + "\n", "nested deeper than 200"),
        (GOOD + "x: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
    ],
)
def test_hostile_config_is_refused_quickly(config: str, message: str) -> None:
    """Alias bombs, a self-referring alias and deep nesting in alertmanager_config are a
    TenantConfigError (a 400) within a few seconds, never a hang or a 500."""
    started = time.monotonic()
    with pytest.raises(TenantConfigError, match=message):
        configstore.check_restrictions(TenantConfigDoc(config))
    assert time.monotonic() - started < 10


def test_alias_bomb_in_the_body_itself_is_refused() -> None:
    """The posted body (not only the config inside it) is checked the same way."""
    body = "alertmanager_config: x\n" + laughs()
    with pytest.raises(TenantConfigError, match="excessive aliasing"):
        configstore.parse_doc(body)


def test_ordinary_aliases_still_work() -> None:
    """A config that reuses a block through an alias, as operators do, is accepted."""
    config = GOOD.replace(
        "receivers: [{name: r}]",
        "receivers: [{name: r, webhook_configs: &hooks [{url: 'http://h.invalid/'}]},"
        " {name: s, webhook_configs: *hooks}]",
    )
    configstore.check_restrictions(TenantConfigDoc(config))


def test_refused_stage_keeps_the_current_config(tmp_path: Path) -> None:
    """Staging an alias bomb over a committed config raises and leaves that config as it was."""
    configstore.stage(tmp_path, "team-a", TenantConfigDoc(GOOD))
    configstore.commit(tmp_path, "team-a")
    before = configstore.read(tmp_path, "team-a")
    with pytest.raises(TenantConfigError):
        configstore.stage(tmp_path, "team-a", TenantConfigDoc(GOOD + laughs()))
    assert before is not None and before.alertmanager_config == GOOD
    assert configstore.read(tmp_path, "team-a") == before
