"""The tenancy file: parsing, validation, tenant ids, globs and relative paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from daemon.config.errors import ConfigError
from daemon.tenancy.tenants import (
    TenantIdError,
    check_tenant_id,
    load_tenancy_file,
    parse_tenancy,
)


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


FULL = f"""\
anonymous: ingest
admins:
  - name: ops
    token_sha256: {sha("admin-token")}
ingest:
  - name: prometheus
    token_sha256: {sha("ingest-token")}
namespace_resolver:
  type: sidecar
  url: http://127.0.0.1:19094/api/v2/tenant
  cache: 2m
  rule_level_only: true
fallback_config_file: tenant-default.yml
default_limits: {{alertmanager_max_alerts_count: 10}}
tenants:
  team-a:
    tokens_sha256: [{sha("a-token")}]
    namespaces: ["team-a", "team-a-*"]
    limits: {{alertmanager_max_alerts_count: 1000}}
  team-b: {{}}
"""


def test_full_file_parses(tmp_path: Path) -> None:
    """Every field of the contract's example is read, paths resolve next to the file."""
    path = tmp_path / "tenancy.yml"
    path.write_text(FULL)
    config = load_tenancy_file(str(path))
    assert config.anonymous == "ingest"
    assert config.admins[0].name == "ops"
    assert config.admins[0].token_sha256 == hashlib.sha256(b"admin-token").digest()
    assert config.ingest[0].name == "prometheus"
    assert config.resolver.type == "sidecar"
    assert config.resolver.url == "http://127.0.0.1:19094/api/v2/tenant"
    assert config.resolver.cache == 120 * 10**9
    assert config.resolver.rule_level_only is True
    assert config.fallback_config_file == str(tmp_path / "tenant-default.yml")
    assert config.default_limits.max_alerts_count == 10
    assert list(config.tenants) == ["team-a", "team-b"]
    assert config.tenants["team-a"].limits.max_alerts_count == 1000
    assert config.tenants["team-b"].limits.max_alerts_count == 10  # the default
    assert config.tenants["team-b"].namespaces == ()


def test_globs_are_anchored_and_case_sensitive() -> None:
    """Namespace globs are shell-style, anchored at both ends and case-sensitive."""
    config = parse_tenancy("tenants:\n  a:\n    namespaces: ['team-a', 'team-a-*']\n")
    tenant = config.tenants["a"]
    assert tenant.owns_namespace("team-a")
    assert tenant.owns_namespace("team-a-dev")
    assert not tenant.owns_namespace("xteam-a")
    assert not tenant.owns_namespace("team-ab")
    assert not tenant.owns_namespace("Team-a")


def test_empty_file_is_no_tenants() -> None:
    """An empty file is valid: nobody but open endpoints, no tenants."""
    config = parse_tenancy("")
    assert config.tenants == {}
    assert config.anonymous == "none"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("anonymous: maybe\n", 1, "anonymous"),
        ("admins:\n  - name: x\n    token_sha256: abc\n", 3, "admins[0].token_sha256"),
        ("admins:\n  - name: x\n", 2, "admins[0].token_sha256"),
        ("tenants:\n  '..': {}\n", 2, "tenants..."),
        ("tenants:\n  'a/b': {}\n", 2, "tenants.a/b"),
        ("tenants:\n  a:\n    namespace: [x]\n", 3, "tenants.a.namespace"),
        ("tenants:\n  a:\n    namespaces: x\n", 3, "tenants.a.namespaces"),
        ("namespace_resolver:\n  type: ldap\n", 2, "namespace_resolver.type"),
        ("namespace_resolver:\n  type: sidecar\n", 2, "namespace_resolver.url"),
        ("namespace_resolver:\n  cache: soon\n", 2, "namespace_resolver.cache"),
        ("namespace_resolver:\n  rule_level_only: 3\n", 2, "namespace_resolver.rule_level_only"),
        ("tenants:\n  a:\n    limits: [1]\n", 3, "tenants.a.limits"),
        ("admin: []\n", 1, "admin"),
        ("tenants:\n  a:\n    limits: {alertmanager_nope: 1}\n", 3, "tenants.a.limits"),
        ("default_limits: {alertmanager_max_alerts_count: many}\n", 1, "default_limits"),
    ],
)
def test_errors_name_file_line_and_key(text: str, line: int, key: str) -> None:
    """A bad file is a ConfigError naming the file, the line and the key."""
    with pytest.raises(ConfigError) as caught:
        parse_tenancy(text, "/etc/tocsin/tenancy.yml")
    assert caught.value.file == "/etc/tocsin/tenancy.yml"
    assert caught.value.line == line
    assert caught.value.key == key
    assert str(caught.value).startswith(f"/etc/tocsin/tenancy.yml:{line}: {key}")


def test_a_token_given_twice_is_refused() -> None:
    """One token may not be two identities: which one would it be?"""
    digest = sha("same")
    text = f"admins:\n  - token_sha256: {digest}\ntenants:\n  a:\n    tokens_sha256: [{digest}]\n"
    with pytest.raises(ConfigError, match="more than one identity"):
        parse_tenancy(text)


def test_yaml_syntax_error_names_the_file() -> None:
    """A YAML syntax error names the file and line too."""
    with pytest.raises(ConfigError) as caught:
        parse_tenancy("tenants:\n  a: [\n", "t.yml")
    assert caught.value.file == "t.yml"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\\b", "x" * 151, "ü", "a b", "a\0"])
def test_bad_tenant_ids_are_refused(bad: str) -> None:
    """Ids outside [A-Za-z0-9_.-], '.', '..' and ids over 150 characters are refused."""
    with pytest.raises(TenantIdError):
        check_tenant_id(bad)


@pytest.mark.parametrize("good", ["a", "team-a", "a.b_c-1", "...", "x" * 150])
def test_good_tenant_ids_pass(good: str) -> None:
    """Ids of the allowed characters up to 150 long pass unchanged."""
    assert check_tenant_id(good) == good
