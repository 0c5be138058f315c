"""The HTTP side of multi-tenancy: the gate, the per-request pipeline, the tenant silence
rules, Mimir's tenant config API and the tenant list.

Theory of operation:

* :func:`gate` wraps the whole ASGI app. It classifies each request (:func:`access_of`),
  asks :func:`daemon.tenancy.identity.authorize` and either answers 401/403/404/400
  itself or passes the request on with the identity and the chosen pipeline in the ASGI
  scope (``tocsin.identity``, ``tocsin.tenant``). A rejected request never reaches a
  handler, so it changes nothing.
* :class:`RequestBackend` is the one ``ApiBackend`` the app is built with; each call
  goes to the backend of the request's pipeline. So every ``/api/v2/*`` handler works
  per tenant unchanged, and a handler can never see another pipeline's data by mistake.
* Seam for other handlers (history, the UI, ``/api/v1/why``): :func:`request_identity`
  and :func:`request_tenant`, callable inside any quart request. Without tenancy both
  return None.
* Silences: a tenant sees its own silences and the global ones; it may change only its
  own. Another tenant's silence id is 404, never 403, so ids leak nothing.
* ``POST /api/v1/alerts``: a JSON array is Alertmanager 0.25's v1 alert ingest (with
  the meaning of ``POST /api/v2/alerts``); anything else is Mimir's config API, which
  needs the tenant-config permission (the gate let it through as ingest first).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from daemon.alert import Alert
from daemon.api.app import ApiHandler, post_alerts
from daemon.api.backend import AdmitsAlerts, AlertStatus, ApiBackend, implements
from daemon.api.encoding import body
from daemon.api.limits import AsgiApp, Receive, Scope, Send
from daemon.api.silences import gettable_silence, request_filters
from daemon.clock import Clock
from daemon.config.model import Config
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.matcher import MatcherError
from daemon.persist import DurableState
from daemon.silence.state import Silences, api_sort_key
from daemon.store import AlertStore
from daemon.tenancy.configstore import TenantConfigDoc, TenantConfigError, parse_doc
from daemon.tenancy.identity import Access, Identity, authorize
from daemon.tenancy.tenants import TenancyConfig

IDENTITY_KEY = "tocsin.identity"
TENANT_KEY = "tocsin.tenant"

#: Paths (below the route prefix) whose POST puts alerts in.
INGEST_PATHS = frozenset({"api/v2/alerts", "api/v1/alerts"})
#: Paths whose POST puts Kubernetes or audit events into the global intake.
EVENT_PATHS = frozenset({"api/v1/events", "audit/webhook/event"})
TENANT_CONFIG_PATH = "api/v1/alerts"
TENANTS_PATH = "api/v1/tenants"
IDENTITY_PATH = "api/v1/identity"


class PipelineBackend(ApiBackend, Protocol):
    """One pipeline's backend, with what the silence and receiver-test handlers use
    (``daemon.instance.InstanceBackend`` is one)."""

    @property
    def silences(self) -> Silences: ...

    @property
    def silence_state(self) -> DurableState | None: ...

    async def test_receiver(self, name: str) -> list[dict[str, Any]] | None: ...


class TenantDirectory(Protocol):
    """The daemon's tenants as the API sees them (``daemon.instances.TenantMap``)."""

    @property
    def tenancy(self) -> TenancyConfig: ...

    def backend_for(self, tenant: str | None) -> PipelineBackend | None:
        """The backend of ``tenant``'s pipeline (None: the global one); None if unknown."""
        ...

    def tenant_list(self) -> list[dict[str, Any]]: ...

    async def get_config(self, tenant: str) -> TenantConfigDoc | None: ...

    async def set_config(self, tenant: str, doc: TenantConfigDoc) -> None:
        """Raises ``TenantConfigError`` (a 400) with nothing changed."""
        ...

    async def delete_config(self, tenant: str) -> None: ...


# --- the seam for handlers ---------------------------------------------------------------


def request_identity() -> Identity | None:
    """Who sent the current request (None without tenancy, or for open endpoints)."""
    found = request.scope.get(IDENTITY_KEY)
    return found if isinstance(found, Identity) else None


def request_tenant() -> str | None:
    """The tenant whose pipeline the current request acts on; None for the global one
    (an admin without ``X-Scope-OrgID``, ingest without it, or tenancy off)."""
    return scope_tenant(request.scope)


def scope_tenant(scope: Mapping[str, Any]) -> str | None:
    """:func:`request_tenant` of an ASGI scope the gate has seen (no quart context)."""
    found = scope.get(TENANT_KEY)
    return found if isinstance(found, str) else None


# --- the gate ----------------------------------------------------------------------------


#: Whether a request (method, path below the route prefix) is for a file that carries no
#: data, such as the web UI's page shells: the gate lets those through unauthenticated
#: so that a browser can load the page that asks for a token.
OpenRead = Callable[[str, str], bool]


def access_of(method: str, path: str, open_read: OpenRead | None = None) -> Access:
    """What a request to ``path`` (below the route prefix, no leading slash) does."""
    if path in ("-/healthy", "-/ready"):
        return Access.OPEN
    if open_read is not None and open_read(method, path):
        return Access.OPEN
    if path == "metrics":
        return Access.METRICS
    if path == "-/reload":
        return Access.RELOAD
    if method == "POST" and path in INGEST_PATHS:
        return Access.INGEST
    if method == "POST" and path in EVENT_PATHS:
        return Access.EVENTS
    if path == TENANT_CONFIG_PATH:
        return Access.TENANT_CONFIG
    if path == TENANTS_PATH:
        return Access.TENANTS
    return Access.API


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def gate(
    app: AsgiApp, directory: TenantDirectory, prefix: str, open_read: OpenRead | None = None
) -> AsgiApp:
    """``app`` behind the tenancy gate (``prefix``: the route prefix, no trailing slash;
    ``open_read``: the data-free files anyone may fetch, see :func:`access_of`)."""

    async def gated(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :]
        access = access_of(str(scope.get("method", "GET")), path.lstrip("/"), open_read)
        org_id = _header(scope, b"x-scope-orgid")
        verdict = authorize(directory.tenancy, _header(scope, b"authorization"), org_id, access)
        if verdict.status:
            await _drain(receive)
            await _refuse(send, verdict.status, verdict.message)
            return
        scope = {**scope, IDENTITY_KEY: verdict.identity, TENANT_KEY: verdict.tenant}
        await app(scope, receive, send)

    return gated


def install_gate(
    app: QuartTrio, directory: TenantDirectory, open_read: OpenRead | None = None
) -> None:
    """Put ``app`` (from ``create_app``) behind :func:`gate`, outside its limits, so a
    refused request takes no concurrency slot."""
    inner: AsgiApp = app.asgi_app  # type: ignore[assignment]
    prefix = directory.backend_for(None)
    assert prefix is not None
    app.asgi_app = gate(  # type: ignore[method-assign,assignment]
        inner, directory, prefix.route_prefix.rstrip("/"), open_read
    )


#: Request body bytes read (and dropped) before a refusal is sent: a client still
#: sending its body would otherwise see the connection reset instead of the 401/403.
DRAIN_LIMIT = 1024 * 1024


async def _drain(receive: Receive) -> None:
    seen = 0
    while seen <= DRAIN_LIMIT:
        message = await receive()
        if message.get("type") != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _refuse(send: Send, status: int, message: str) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="tocsin"'))
    payload = (message + "\n").encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# --- the per-request backend -------------------------------------------------------------


class RequestBackend:
    """An ``ApiBackend`` that is, in each request, the backend of its pipeline.

    ``tenant_of`` names the request's tenant: quart's request context by default;
    :meth:`for_scope` gives one for a request served outside quart (a direct route).
    """

    def __init__(
        self, directory: TenantDirectory, tenant_of: Callable[[], str | None] = request_tenant
    ) -> None:
        self.directory = directory
        self._tenant_of = tenant_of

    def for_scope(self, scope: Mapping[str, Any]) -> RequestBackend:
        """This backend for the request of ``scope`` (``daemon.api.direct``)."""
        tenant = scope_tenant(scope)
        return RequestBackend(self.directory, lambda: tenant)

    @property
    def current(self) -> PipelineBackend:
        found = self.directory.backend_for(self._tenant_of())
        if found is None:
            raise NotFound()  # the tenant went (tenancy file reloaded) mid-request
        return found

    @property
    def _global(self) -> PipelineBackend:
        found = self.directory.backend_for(None)
        assert found is not None
        return found

    @property
    def config(self) -> Config:
        return self.current.config

    @property
    def store(self) -> AlertStore:
        return self.current.store

    @property
    def silences(self) -> Silences:
        return self.current.silences

    @property
    def silence_state(self) -> DurableState | None:
        return self.current.silence_state

    @property
    def clock(self) -> Clock:
        return self._global.clock

    @property
    def uptime(self) -> int:
        return self._global.uptime

    @property
    def tenant(self) -> str | None:
        return self._tenant_of()

    @property
    def route_prefix(self) -> str:
        return self._global.route_prefix

    @property
    def version_info(self) -> Mapping[str, str]:
        return self._global.version_info

    def put_alerts(self, alerts: Sequence[Alert], now: int) -> None:
        self.current.put_alerts(alerts, now)

    def admit_alerts(self, alerts: Sequence[Alert]) -> bool:
        """The request pipeline's alert limits (``AdmitsAlerts``): the global one has none."""
        current = self.current
        return implements(current, AdmitsAlerts) and cast(AdmitsAlerts, current).admit_alerts(
            alerts
        )

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        return self.current.receivers_for(labels)

    def groups(self) -> list[GroupSnapshot]:
        return self.current.groups()

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        return self.current.alert_status(alert, now)

    def cluster_status(self) -> Mapping[str, Any]:
        return self._global.cluster_status()

    def ready(self) -> bool:
        return self._global.ready()

    async def reload(self) -> str | None:
        return await self._global.reload()

    async def test_receiver(self, name: str) -> list[dict[str, Any]] | None:
        return await self.current.test_receiver(name)


# --- silences ----------------------------------------------------------------------------


def _json(status: int, payload: Any) -> Response:
    return Response(body(payload), status=status, content_type="application/json")


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, content_type="text/plain; charset=utf-8")


def tenant_silence_routes(
    routes: Mapping[str, dict[str, ApiHandler]], directory: TenantDirectory
) -> dict[str, dict[str, ApiHandler]]:
    """``routes`` (the API v2 table) with the silence handlers taught the tenant rules."""

    def global_silences() -> Silences:
        found = directory.backend_for(None)
        assert found is not None
        return found.silences

    def own_silences(backend: ApiBackend) -> Silences:
        # The app runs on a RequestBackend: its silences are the request pipeline's.
        assert isinstance(backend, RequestBackend)
        return backend.silences

    plain = routes["silences"]
    one = routes["silence/{silenceID}"]

    async def get_silences(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        if request_tenant() is None:
            return await plain["GET"](backend, params)
        try:
            filters = request_filters()
        except MatcherError as exc:
            return _json(400, str(exc))
        now = backend.clock.now()
        found = own_silences(backend).query(filters, now) + global_silences().query(filters, now)
        found.sort(key=lambda s: api_sort_key(s, now))
        return _json(200, [gettable_silence(s, now) for s in found])

    async def get_silence(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        resp = await one["GET"](backend, params)
        if request_tenant() is None or resp.status_code != 404:
            return resp
        shared = global_silences().get(params.get("silenceID", ""))
        if shared is None:
            return resp
        return _json(200, gettable_silence(shared, backend.clock.now()))

    async def delete_silence(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        silence_id = params.get("silenceID", "")
        if request_tenant() is None or own_silences(backend).get(silence_id) is not None:
            return await one["DELETE"](backend, params)
        if global_silences().get(silence_id) is not None:
            return _json(403, "a global silence can only be changed by an admin")
        resp = await one["DELETE"](backend, params)
        # Alertmanager answers an unknown id with 500; a tenant gets 404, so another
        # tenant's ids look exactly like ids that do not exist.
        return _json(404, "silence not found") if resp.status_code == 500 else resp

    return {
        **routes,
        "silences": {**plain, "GET": get_silences},
        "silence/{silenceID}": {**one, "GET": get_silence, "DELETE": delete_silence},
    }


# --- /api/v1/alerts: v1 ingest and Mimir's config API --------------------------------------


def _is_json_array(data: bytes) -> bool:
    return data.lstrip()[:1] == b"["


async def _v1_ingest(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """Alertmanager 0.25's v1 answer around the v2 intake."""
    resp = await post_alerts(backend, params, version="v1")
    if resp.status_code == 200:
        return _json(200, {"status": "success"})
    detail = (await resp.get_data(as_text=True)).strip()
    try:
        message = json.loads(detail)
        if isinstance(message, dict):
            message = message.get("message", detail)
    except ValueError:
        message = detail
    return _json(resp.status_code, {"status": "error", "errorType": "bad_data", "error": message})


def v1_alert_routes(directory: TenantDirectory | None) -> dict[str, dict[str, ApiHandler]]:
    """``api/v1/alerts``: v1 ingest always; with tenancy, Mimir's config API too."""

    async def post(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        try:
            raw = await request.get_data(cache=True, as_text=False)
        except RequestEntityTooLarge:
            return _json(413, {"status": "error", "error": "request body too large"})
        data = raw if isinstance(raw, bytes) else raw.encode()
        if directory is None or _is_json_array(data):
            return await _v1_ingest(backend, params)
        verdict = authorize(
            directory.tenancy,
            request.headers.get("Authorization"),
            request.headers.get("X-Scope-OrgID"),
            Access.TENANT_CONFIG,
        )
        if verdict.status:
            return _text(verdict.status, verdict.message)
        tenant = request_tenant()
        assert tenant is not None  # TENANT_CONFIG is refused without one
        try:
            doc = parse_doc(data.decode("utf-8", "replace"))
            await directory.set_config(tenant, doc)
        except TenantConfigError as exc:
            return _text(400, f"error validating Alertmanager config: {exc}")
        except KeyError:
            return _text(404, "the tenant is not running")
        return _text(201, "")

    async def get(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        assert directory is not None
        tenant = request_tenant()
        assert tenant is not None
        doc = await directory.get_config(tenant)
        if doc is None:
            return _text(404, "the Alertmanager config was not found")
        return Response(doc.to_yaml(), status=200, content_type="application/yaml")

    async def delete(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        assert directory is not None
        tenant = request_tenant()
        assert tenant is not None
        try:
            await directory.delete_config(tenant)
        except KeyError:
            return _text(404, "the tenant is not running")
        return _text(200, "")

    if directory is None:
        return {TENANT_CONFIG_PATH: {"POST": post}}
    return {TENANT_CONFIG_PATH: {"GET": get, "POST": post, "DELETE": delete}}


def tenants_routes(directory: TenantDirectory) -> dict[str, dict[str, ApiHandler]]:
    """``GET /api/v1/tenants`` (admin only: the gate sees to it) and
    ``GET /api/v1/identity`` (the caller's own role, name and pipeline, so the web UI
    can say whose view it shows and offer the tenant switcher to admins only)."""

    async def get(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        return _json(200, directory.tenant_list())

    async def get_identity(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        who = request_identity()
        assert who is not None  # the gate passes API requests with an identity only
        return _json(200, {"role": who.role, "name": who.name, "tenant": request_tenant()})

    return {TENANTS_PATH: {"GET": get}, IDENTITY_PATH: {"GET": get_identity}}


__all__ = [
    "IDENTITY_KEY",
    "TENANT_KEY",
    "OpenRead",
    "PipelineBackend",
    "RequestBackend",
    "TenantDirectory",
    "access_of",
    "gate",
    "install_gate",
    "request_identity",
    "request_tenant",
    "scope_tenant",
    "tenant_silence_routes",
    "tenants_routes",
    "v1_alert_routes",
]
