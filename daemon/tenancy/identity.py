"""Who is asking, and what they may do: bearer tokens, roles and ``X-Scope-OrgID``.

Rules (issue 11's contract), decided here as pure functions so a table test covers them:

* The identity comes from ``Authorization: Bearer <token>``. The token's SHA-256 is
  compared with every known digest with ``hmac.compare_digest``, all of them every
  time, so the time taken says nothing about which entry (or how much of one) matched.
* No credentials: 401, unless ``anonymous: ingest``. A bad token: 401 (never the
  anonymous role: a typo in a token must not silently downgrade).
* ``X-Scope-OrgID`` picks the tenant, as in Mimir and Cortex: an admin may name any
  tenant (none: the global pipeline); a tenant may name only itself (403); ingest may
  name a tenant to post into it alone. An unknown tenant is 404 for admin and ingest
  and 403 for a tenant token, so a tenant learns nothing of other tenants' names.
* ``/-/healthy`` and ``/-/ready`` are open; ``/metrics`` is admin or ingest;
  ``/-/reload`` and ``/api/v1/tenants`` are admin; ingest may only post alerts and
  events (and scrape ``/metrics``): 403 for everything else. Events feed the global
  intake, so a tenant token may not post them and ``X-Scope-OrgID`` is refused there.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import Enum

import attrs

from daemon.tenancy.tenants import TenancyConfig

ADMIN = "admin"
INGEST = "ingest"
TENANT = "tenant"


class Access(Enum):
    """What kind of thing a request does, as far as the gate cares."""

    OPEN = "open"  # /-/healthy, /-/ready
    METRICS = "metrics"
    RELOAD = "reload"
    INGEST = "ingest"  # POST alerts (v1, v2)
    #: POST Kubernetes and audit events: they feed the global intake (which fans out),
    #: so only admin and ingest may, and without naming a tenant.
    EVENTS = "events"
    TENANTS = "tenants"  # GET /api/v1/tenants
    TENANT_CONFIG = "tenant_config"  # Mimir's GET/POST/DELETE /api/v1/alerts
    API = "api"  # everything else: reads and silences, on one pipeline


@attrs.frozen
class Identity:
    """An authenticated caller. ``tenant`` is set for the tenant role only."""

    role: str
    name: str
    tenant: str | None = None


ANONYMOUS_INGEST = Identity(INGEST, "anonymous")


@attrs.frozen
class Verdict:
    """The gate's answer: ``status`` 0 means go on, to ``tenant``'s pipeline (None:
    the global one); otherwise answer ``status`` with ``message``."""

    status: int
    message: str = ""
    identity: Identity | None = None
    tenant: str | None = None


def _token(authorization: str | None) -> str | None:
    """The bearer token, "" for a header that is not a bearer token, None for none."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


def authenticate(config: TenancyConfig, authorization: str | None) -> Identity | None:
    """The identity of ``authorization`` (the header's value), or None for a 401."""
    token = _token(authorization)
    if token is None:
        return ANONYMOUS_INGEST if config.anonymous == INGEST else None
    if not token:
        return None
    digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
    found: Identity | None = None
    # No early exit: every entry is compared, whatever matched first.
    for p in config.admins:
        if hmac.compare_digest(digest, p.token_sha256):
            found = Identity(ADMIN, p.name)
    for p in config.ingest:
        if hmac.compare_digest(digest, p.token_sha256):
            found = Identity(INGEST, p.name)
    for tenant in config.tenants.values():
        for known in tenant.tokens_sha256:
            if hmac.compare_digest(digest, known):
                found = Identity(TENANT, tenant.id, tenant.id)
    return found


def authorize(
    config: TenancyConfig,
    authorization: str | None,
    org_id: str | None,
    access: Access,
) -> Verdict:
    """The gate's whole decision for one request."""
    if access is Access.OPEN:
        return Verdict(0)
    who = authenticate(config, authorization)
    if who is None:
        if authorization is None:
            return Verdict(401, "authentication required: send Authorization: Bearer <token>")
        return Verdict(401, "invalid bearer token")
    tenant: str | None = None
    if org_id is not None:
        if who.role == TENANT:
            if org_id != who.tenant:
                return Verdict(
                    403, "a tenant token may only name its own tenant in X-Scope-OrgID", who
                )
        elif org_id not in config.tenants:
            return Verdict(404, f"unknown tenant {org_id!r} in X-Scope-OrgID", who)
        tenant = org_id
    elif who.role == TENANT:
        tenant = who.tenant
    if access is Access.METRICS:
        if who.role == TENANT:
            return Verdict(403, "/metrics needs an admin or ingest token", who)
        return Verdict(0, identity=who)
    if access is Access.EVENTS:
        if who.role == TENANT:
            return Verdict(
                403, "events feed the global pipeline: they need an ingest or admin token", who
            )
        if org_id is not None:
            return Verdict(
                400, "events feed the global pipeline: X-Scope-OrgID is not taken here", who
            )
        return Verdict(0, identity=who)
    if who.role == INGEST and access is not Access.INGEST:
        return Verdict(403, "an ingest token may only post alerts and events", who)
    if access in (Access.RELOAD, Access.TENANTS) and who.role != ADMIN:
        return Verdict(403, "this endpoint needs an admin token", who)
    if access is Access.TENANT_CONFIG and tenant is None:
        return Verdict(400, "the tenant config API needs X-Scope-OrgID naming a tenant", who)
    return Verdict(0, identity=who, tenant=tenant)


__all__ = [
    "ADMIN",
    "ANONYMOUS_INGEST",
    "INGEST",
    "TENANT",
    "Access",
    "Identity",
    "Verdict",
    "authenticate",
    "authorize",
]
