"""Identities and the gate's decisions: tokens, roles, X-Scope-OrgID, status codes."""

from __future__ import annotations

import hashlib

import pytest

from daemon.tenancy.identity import ADMIN, INGEST, TENANT, Access, authenticate, authorize
from daemon.tenancy.tenants import parse_tenancy


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


CONFIG = parse_tenancy(
    f"""\
admins: [{{name: ops, token_sha256: {sha("admin")}}}]
ingest: [{{name: prom, token_sha256: {sha("ingest")}}}]
tenants:
  a: {{tokens_sha256: [{sha("a")}, {sha("a2")}]}}
  b: {{tokens_sha256: [{sha("b")}]}}
"""
)
ANON_INGEST = parse_tenancy("anonymous: ingest\ntenants: {a: {}}\n")


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_tokens_map_to_roles() -> None:
    """Each token gives its role; a tenant's second token is the same tenant."""
    admin = authenticate(CONFIG, bearer("admin"))
    assert admin is not None and admin.role == ADMIN and admin.name == "ops"
    ingest = authenticate(CONFIG, bearer("ingest"))
    assert ingest is not None and ingest.role == INGEST
    a2 = authenticate(CONFIG, bearer("a2"))
    assert a2 is not None and (a2.role, a2.tenant) == (TENANT, "a")


@pytest.mark.parametrize("header", ["Bearer nope", "Basic YWRtaW46eA==", "Bearer ", "admin"])
def test_bad_credentials_are_none(header: str) -> None:
    """A wrong token or another scheme is no identity, even with anonymous ingest."""
    assert authenticate(CONFIG, header) is None
    assert authenticate(ANON_INGEST, header) is None


def test_no_credentials() -> None:
    """Without credentials: nobody, unless the file says anonymous: ingest."""
    assert authenticate(CONFIG, None) is None
    anon = authenticate(ANON_INGEST, None)
    assert anon is not None and anon.role == INGEST


A = Access
# (token or None, X-Scope-OrgID or None, access) -> (status, pipeline)
CASES = [
    (None, None, A.OPEN, 0, None),
    ("bad", None, A.OPEN, 0, None),
    (None, None, A.API, 401, None),
    ("bad", None, A.API, 401, None),
    ("bad", "a", A.INGEST, 401, None),
    ("admin", None, A.API, 0, None),
    ("admin", "a", A.API, 0, "a"),
    ("admin", "zz", A.API, 404, None),
    ("admin", None, A.METRICS, 0, None),
    ("admin", None, A.RELOAD, 0, None),
    ("admin", None, A.TENANTS, 0, None),
    ("admin", None, A.TENANT_CONFIG, 400, None),
    ("admin", "b", A.TENANT_CONFIG, 0, "b"),
    ("ingest", None, A.INGEST, 0, None),
    ("ingest", "a", A.INGEST, 0, "a"),
    ("ingest", "zz", A.INGEST, 404, None),
    ("ingest", None, A.METRICS, 0, None),
    ("ingest", None, A.API, 403, None),
    ("ingest", "a", A.API, 403, None),
    ("ingest", None, A.RELOAD, 403, None),
    ("ingest", None, A.TENANTS, 403, None),
    ("ingest", "a", A.TENANT_CONFIG, 403, None),
    ("a", None, A.API, 0, "a"),
    ("a", "a", A.API, 0, "a"),
    ("a", "b", A.API, 403, None),
    ("a", "zz", A.API, 403, None),
    ("a", None, A.INGEST, 0, "a"),
    ("a", "b", A.INGEST, 403, None),
    ("a", None, A.METRICS, 403, None),
    ("a", None, A.RELOAD, 403, None),
    ("a", None, A.TENANTS, 403, None),
    ("a", None, A.TENANT_CONFIG, 0, "a"),
    ("b", "a", A.TENANT_CONFIG, 403, None),
    ("admin", None, A.EVENTS, 0, None),
    ("ingest", None, A.EVENTS, 0, None),
    ("ingest", "a", A.EVENTS, 400, None),
    ("a", None, A.EVENTS, 403, None),
    (None, None, A.EVENTS, 401, None),
]


@pytest.mark.parametrize(("token", "org", "access", "status", "pipeline"), CASES)
def test_gate_table(
    token: str | None, org: str | None, access: Access, status: int, pipeline: str | None
) -> None:
    """The contract's who-may-do-what, row by row."""
    verdict = authorize(CONFIG, bearer(token) if token else None, org, access)
    assert verdict.status == status
    if status == 0:
        assert verdict.tenant == pipeline


def test_anonymous_ingest_may_only_ingest() -> None:
    """anonymous: ingest lets a credential-less request post alerts, nothing more."""
    assert authorize(ANON_INGEST, None, None, A.INGEST).status == 0
    assert authorize(ANON_INGEST, None, "a", A.INGEST).tenant == "a"
    assert authorize(ANON_INGEST, None, None, A.API).status == 403
