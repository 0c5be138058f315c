"""The quart-trio shell of the HTTP API: routing, status codes, headers (spec §1.1-1.7, §1.12).

Everything under ``<prefix>/api/v2/`` goes through one route and a small table of our
own, so unknown paths and wrong methods answer go-swagger's JSON errors (404/405 with
``Allow``) rather than werkzeug's HTML. Decoding, validation and listings are pure
functions in sibling modules; handlers here only move bytes.

No service runs in quart's ``app.nursery``: the app is a request handler only.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import trio
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, PathConverter

from daemon import metrics
from daemon.alert import Alert, posted_alerts
from daemon.api.backend import AdmitsAlerts, ApiBackend, KnowsTenant, implements
from daemon.api.cooperative import run_cooperatively
from daemon.api.direct import (
    DirectHandler,
    Disconnected,
    header,
    read_body,
    register_direct_routes,
    with_direct_routes,
)
from daemon.api.encoding import body, cluster_status, framework_error, version_info
from daemon.api.limits import AsgiApp, HandlerLabel, Receive, Scope, instrument, limit
from daemon.api.postable import BodyError, parse_alerts_steps
from daemon.api.query import AlertQuery, QueryError, list_alerts_steps, list_groups_steps
from daemon.dispatch.actor import flushes_started
from daemon.gocompat.timestamp import format_millis
from daemon.tenancy.limits import LimitExceeded

#: Alerts validated and stored between two checkpoints of POST /api/v2/alerts (~5 ms).
INTAKE_SLICE = 500

#: Scheduler rounds an alert POST's answer waits when its put started a flush, so that
#: the flush runs first (see accept_alerts; the put starts it, in this task).
NOTIFY_FIRST_ROUNDS = 2

#: Default request body limit for the API (Alertmanager has none; we refuse to buffer more).
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

#: An API v2 handler: the backend and the path parameters (``{silenceID}`` → value).
ApiHandler = Callable[[ApiBackend, Mapping[str, str]], Awaitable[Response]]


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_AT = re.compile(_TOKEN)
_MEDIA_PARAM = re.compile(rf'\s*{_TOKEN}\s*=\s*(?:{_TOKEN}|"(?:[^"\\]|\\.)*")\s*')


def _json(status: int, payload: bytes) -> Response:
    return Response(payload, status=status, content_type="application/json")


def _handler_error(status: int, message: str) -> Response:
    """Handler errors are JSON strings (with the encoder's newline)."""
    return _json(status, body(message))


def _framework_error(status: int, code: int, message: str) -> Response:
    return _json(status, framework_error(code, message))


def _mime_error(raw: str) -> str | None:
    """Go's ``mime.ParseMediaType`` error for a Content-Type value, or None."""
    media, semi, params = raw.partition(";")
    base = media.strip().lower()
    first = _TOKEN_AT.match(base)
    if first is None:
        return "mime: no media type"
    rest = base[first.end() :]
    if rest:
        if rest[0] != "/":
            return "mime: expected slash after first token"
        second = _TOKEN_AT.match(rest, 1)
        if second is None:
            return "mime: expected token after slash"
        if second.end() != len(rest):
            return "mime: unexpected content after media subtype"
    if semi:
        parts = params.split(";")
        for i, part in enumerate(parts):
            if not part.strip():
                if i == len(parts) - 1:
                    continue  # one trailing semicolon is ignored
                return "mime: invalid media parameter"
            if _MEDIA_PARAM.fullmatch(part) is None:
                return "mime: invalid media parameter"
    return None


def _media_type_error(header: str | None) -> Response | None:
    """None if the body is JSON; else go-openapi's 415, or 400 for an unparsable header."""
    # go-openapi treats a missing Content-Type as application/octet-stream.
    raw = header if header else "application/octet-stream"
    reason = _mime_error(raw)
    if reason is not None:
        return _framework_error(
            400, 400, f'parsing Content-Type header from "{raw}" failed, because {reason}'
        )
    media = raw.partition(";")[0].strip().lower()
    if media != "application/json":
        return _framework_error(
            415, 415, f'unsupported media type "{media}", only [application/json] are allowed'
        )
    return None


def _empty_ok() -> Response:
    """200 with an empty body and no Content-Type, as POST /api/v2/alerts answers."""
    resp = Response(b"", status=200)
    del resp.headers["Content-Type"]
    return resp


#: A POST handler's work apart from the framework: the backend, the request's
#: ``Content-Type``, a reader of the whole body (``RequestEntityTooLarge`` past the
#: limit) and that limit. Quart's route and the direct route both call it.
BodyHandler = Callable[
    [ApiBackend, str | None, Callable[[], Awaitable[bytes]], int | None], Awaitable[Response]
]

#: Quart handlers that are a :data:`BodyHandler` around quart's request, which
#: :func:`create_app` also serves beside quart (see served_directly).
_SERVED_DIRECTLY: dict[ApiHandler, BodyHandler] = {}
_Handler = TypeVar("_Handler", bound=ApiHandler)


def served_directly(logic: BodyHandler) -> Callable[[_Handler], _Handler]:
    """Mark an API v2 handler that only calls ``logic`` with quart's request: wherever a
    route table holds it (at a path without ``{parameters}``), :func:`create_app` serves
    that method and path at the ASGI level too (:mod:`daemon.api.direct`)."""

    def mark(handler: _Handler) -> _Handler:
        _SERVED_DIRECTLY[handler] = logic
        return handler

    return mark


async def request_body() -> bytes:
    """The whole body of quart's current request (``RequestEntityTooLarge`` past its limit)."""
    data = await request.get_data(cache=False, as_text=False)
    return data if isinstance(data, bytes) else data.encode()


async def accept_alerts(
    backend: ApiBackend,
    content_type: str | None,
    read_body: Callable[[], Awaitable[bytes]],
    max_body_bytes: int | None,
    *,
    version: str = "v2",
) -> Response:
    """The work of :func:`post_alerts`, apart from the framework: ``read_body`` returns
    the whole body or raises ``RequestEntityTooLarge`` past ``max_body_bytes``."""
    error = _media_type_error(content_type)
    if error is not None:
        return error
    try:
        data = await read_body()
    except RequestEntityTooLarge:
        return _framework_error(413, 413, f"request body too large (limit {max_body_bytes} bytes)")
    try:
        raws = await run_cooperatively(parse_alerts_steps(data))
    except BodyError as exc:
        return _framework_error(exc.status, exc.code, exc.message)
    now = backend.clock.now()
    timeout_ends_at = now + backend.config.global_.resolve_timeout
    errors: list[str] = []
    firing = 0
    flushes_before = flushes_started()
    # In slices with checkpoints between (a 32 MiB body holds ~150k alerts), shielded so
    # a disconnecting client cannot leave the body half stored.
    with trio.CancelScope(shield=True):
        # A tenant's alert limits judge the whole batch before any of it is stored.
        limited = implements(backend, AdmitsAlerts)
        held: list[Alert] = []
        for start in range(0, len(raws), INTAKE_SLICE):
            if start:
                await trio.lowlevel.checkpoint()
            valid, slice_errors, slice_firing = posted_alerts(
                raws[start : start + INTAKE_SLICE], now, timeout_ends_at
            )
            errors += slice_errors
            firing += slice_firing
            if limited:
                held += valid
            else:
                backend.put_alerts(valid, now)
        if limited:
            try:
                if cast(AdmitsAlerts, backend).admit_alerts(held):
                    backend.put_alerts(held, now)
                else:
                    for start in range(0, len(held), INTAKE_SLICE):
                        # The first slice at once, as without limits: a checkpoint here
                        # put a scheduler round (~0.1 ms) before every alert's store.
                        if start:
                            await trio.lowlevel.checkpoint()
                        backend.put_alerts(held[start : start + INTAKE_SLICE], now)
            except LimitExceeded as exc:
                return _handler_error(400, str(exc))
    tenant = cast(KnowsTenant, backend).tenant if implements(backend, KnowsTenant) else None
    if firing:
        metrics.pipeline_series(metrics.alerts_received, tenant, version, "firing").inc(firing)
    if len(raws) > firing:
        metrics.pipeline_series(metrics.alerts_received, tenant, version, "resolved").inc(
            len(raws) - firing
        )
    if errors:
        metrics.pipeline_series(metrics.alerts_invalid, tenant, version).inc(len(errors))
    if flushes_started() != flushes_before:
        # Notifications first, then the answer. With group_wait 0 the put starts a new
        # group's flush (a task, which runs from the next scheduler round), while this
        # answer is ready now: on one thread, sending it first put its cost (~0.4 ms)
        # before every such notification. Alertmanager does both at once on two cores.
        # The answer waits one round more than that (trio runs a round's tasks in
        # either order), so the flush has reached its first wait (the receiver's
        # socket) when it goes out. A put that started no flush answers at once.
        for _ in range(NOTIFY_FIRST_ROUNDS):
            await trio.lowlevel.cancel_shielded_checkpoint()
    if errors:
        return _handler_error(400, "; ".join(errors))
    return _empty_ok()


@served_directly(accept_alerts)
async def post_alerts(
    backend: ApiBackend, params: Mapping[str, str], *, version: str = "v2"
) -> Response:
    """POST /api/v2/alerts (spec §1.6): defaults, best-effort store, joined errors.
    ``version`` is the API version the alerts count under in ``/metrics``."""
    return await accept_alerts(
        backend,
        request.headers.get("Content-Type"),
        request_body,
        request.max_content_length,
        version=version,
    )


def _query() -> AlertQuery:
    return AlertQuery.from_args(request.args.getlist)


async def get_alerts(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """GET /api/v2/alerts (spec §1.5)."""
    try:
        query = _query()
    except QueryError as exc:
        return _handler_error(400, str(exc))
    listing = await run_cooperatively(list_alerts_steps(backend, query, backend.clock.now()))
    return _json(200, body(listing))


async def get_groups(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """GET /api/v2/alerts/groups (spec §1.7)."""
    try:
        query = _query()
    except QueryError as exc:
        return _handler_error(400, str(exc))
    # In steps: 100k alerts take ~0.5 s to list, far over the event loop's pause budget.
    listing = await run_cooperatively(list_groups_steps(backend, query, backend.clock.now()))
    return _json(200, body(listing))


async def get_receivers(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """GET /api/v2/receivers (spec §1.4): every configured receiver, in file order."""
    return _json(200, body([{"name": r.name} for r in backend.config.receivers]))


async def get_status(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """GET /api/v2/status (spec §1.3)."""
    payload: dict[str, Any] = {
        "cluster": cluster_status(backend.cluster_status()),
        "config": {"original": backend.config.original},
        "uptime": format_millis(backend.uptime),
        "versionInfo": version_info(backend.version_info),
    }
    return _json(200, body(payload))


def default_api_routes() -> dict[str, dict[str, ApiHandler]]:
    """API v2 paths (below ``/api/v2/``) → methods in ``Allow`` order → handler.

    The composition root adds other domains' paths (``silences``, ``silence/{silenceID}``)
    to this dict and passes it to :func:`create_app`.
    """
    return {
        "status": {"GET": get_status},
        "receivers": {"GET": get_receivers},
        "alerts": {"POST": post_alerts, "GET": get_alerts},
        "alerts/groups": {"GET": get_groups},
    }


def _match(
    routes: Mapping[str, dict[str, ApiHandler]], rest: str
) -> tuple[dict[str, ApiHandler] | None, dict[str, str]]:
    """The method table for a path below ``/api/v2/`` and its ``{name}`` parameters."""
    table = routes.get(rest)
    if table is not None:
        return table, {}
    parts = rest.split("/")
    for pattern, candidate in routes.items():
        if "{" not in pattern:
            continue
        pattern_parts = pattern.split("/")
        if len(pattern_parts) != len(parts):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern_parts, parts, strict=True):
            if want.startswith("{") and want.endswith("}") and got:
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return candidate, params
    return None, {}


#: Handlers that must never send ``Access-Control-Allow-Origin: *`` (see no_wildcard_cors).
_NO_WILDCARD_CORS: set[ApiHandler] = set()


def no_wildcard_cors(handler: ApiHandler) -> ApiHandler:
    """Mark an extra-route handler whose answers carry no wildcard CORS header: one that
    acts (sends notifications) must not be readable or callable from any web page."""
    _NO_WILDCARD_CORS.add(handler)
    return handler


def _cors(resp: Response) -> Response:
    return _with_cors(resp, "Origin" in request.headers)


def _with_cors(resp: Response, has_origin: bool) -> Response:
    """The API's CORS headers: ``Vary: Origin``, and the wildcard for a cross-origin
    request (one that sent ``Origin``)."""
    resp.headers["Vary"] = "Origin"
    if has_origin:
        resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


def _not_found() -> Response:
    """Go's net/http 404 for a path outside the API table (or a tenant gone)."""
    return _plain(404, "404 page not found\n")


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    resp = Response(text, status=status, content_type="text/plain; charset=utf-8")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _extra_view(
    backend: ApiBackend, table: Mapping[str, ApiHandler]
) -> Callable[..., Awaitable[Response]]:
    async def view(**params: str) -> Response:
        # werkzeug answers HEAD for GET routes; it runs the GET handler.
        handler = table.get(request.method) or table["GET"]
        if handler in _NO_WILDCARD_CORS:
            return await handler(backend, params)
        return _cors(await handler(backend, params))

    return view


class _AnyPathConverter(PathConverter):
    """werkzeug's ``path`` that also matches newlines (``%0A`` in a silence ID), so that
    such a path reaches the API table and gets go-openapi's 422, not a plain 404."""

    regex = "[^/](?s:.*?)"


def create_app(
    backend: ApiBackend,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    api_routes: dict[str, dict[str, ApiHandler]] | None = None,
    extra_routes: Mapping[str, Mapping[str, ApiHandler]] | None = None,
    get_concurrency: int = 0,
    timeout_ns: int = 0,
    direct_routes: bool = True,
) -> QuartTrio:
    """The API v2 app, all routes under ``backend.route_prefix``.

    ``api_routes`` maps paths below ``/api/v2/`` to ``{method: handler}`` in the order
    ``Allow`` lists them; it defaults to :func:`default_api_routes`. ``extra_routes``
    does the same for paths outside ``/api/v2/`` (relative to the prefix, e.g.
    ``api/v1/receivers/{name}/test``); they get werkzeug's routing and Go's plain
    404/405 texts. ``get_concurrency`` and ``timeout_ns`` are ``--web.get-concurrency``
    and ``--web.timeout`` (see :mod:`daemon.api.limits`). ``direct_routes`` serves the
    API v2 handlers marked :func:`served_directly` (``POST /api/v2/alerts`` and
    ``POST /api/v2/silences``) beside quart (:mod:`daemon.api.direct`); a backend
    resolved per request must then be a :class:`PerRequestBackend`.
    """
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.url_map.converters["anypath"] = _AnyPathConverter
    routes = default_api_routes() if api_routes is None else api_routes
    prefix = backend.route_prefix.rstrip("/")
    all_methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    async def api(rest: str = "") -> Response:
        path = f"/api/v2/{rest}"
        table, params = _match(routes, rest)
        if table is None:
            return _cors(_framework_error(404, 404, f"path {path} was not found"))
        method = request.method
        handler = table.get(method)
        if handler is None and method == "OPTIONS":
            wanted = request.headers.get("Access-Control-Request-Method")
            if "Origin" in request.headers and wanted in table:
                resp = _empty_ok()
                resp.headers["Access-Control-Allow-Methods"] = wanted
                return _cors(resp)
        if handler is None:
            allowed = ",".join(table)
            resp = _framework_error(
                405, 405, f"method {method} is not allowed, but [{allowed}] are"
            )
            resp.headers["Allow"] = allowed
            return _cors(resp)
        return _cors(await handler(backend, params))

    async def api_no_slash() -> Response:
        return Response(b"", status=301, headers={"Location": f"{prefix}/api/v2/"})

    app.add_url_rule(
        f"{prefix}/api/v2/", "api_root", api, methods=all_methods, provide_automatic_options=False
    )
    app.add_url_rule(
        f"{prefix}/api/v2/<anypath:rest>",
        "api",
        api,
        methods=all_methods,
        provide_automatic_options=False,
    )
    app.add_url_rule(
        f"{prefix}/api/v2",
        "api_no_slash",
        api_no_slash,
        methods=all_methods,
        provide_automatic_options=False,
        strict_slashes=True,
    )

    async def healthy() -> Response:
        return _plain(200, "OK")

    async def ready() -> Response:
        if backend.ready():
            return _plain(200, "OK")
        return _plain(503, "Service Unavailable")

    async def reload() -> Response:
        problem = await backend.reload()
        if problem is None:
            return _empty_ok()
        return _plain(500, f"failed to reload config: {problem}\n")

    async def metrics_page() -> Response:
        return Response(
            generate_latest(metrics.REGISTRY), status=200, content_type=CONTENT_TYPE_PLAIN_0_0_4
        )

    app.add_url_rule(f"{prefix}/-/healthy", "healthy", healthy, methods=["GET", "HEAD"])
    app.add_url_rule(f"{prefix}/-/ready", "ready", ready, methods=["GET", "HEAD"])
    app.add_url_rule(f"{prefix}/-/reload", "reload", reload, methods=["POST"])
    app.add_url_rule(f"{prefix}/metrics", "metrics", metrics_page, methods=["GET"])

    for i, (path, table) in enumerate((extra_routes or {}).items()):
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path.strip("/"))
        app.add_url_rule(
            f"{prefix}/{rule}",
            f"extra_{i}",
            _extra_view(backend, table),
            methods=list(table),
            provide_automatic_options=False,
        )

    if prefix:

        async def to_prefix() -> Response:
            return Response(b"", status=302, headers={"Location": backend.route_prefix})

        app.add_url_rule("/", "to_prefix", to_prefix, methods=["GET"])

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        # Go's net/http texts for everything outside the API table.
        if exc.code == 405:
            valid = sorted(set(getattr(exc, "valid_methods", None) or []) | {"OPTIONS"})
            return _plain(405, "Method Not Allowed\n", {"Allow": ", ".join(valid)})
        if exc.code == 404:
            return _not_found()
        return _plain(exc.code or 500, f"{exc.name}\n")

    # The ASGI callable quart serves: Alertmanager's limiter and timeout around the
    # router's instrumentation around the app.
    inner: AsgiApp = app.asgi_app  # type: ignore[assignment]
    direct = _direct_routes(backend, routes, prefix, max_body_bytes) if direct_routes else {}
    if direct:
        inner = with_direct_routes(inner, direct)
        register_direct_routes(app, direct)
    instrumented = instrument(inner, _router_handler_label(app.url_map, prefix, extra_routes))
    app.asgi_app = limit(  # type: ignore[method-assign,assignment]
        instrumented, get_concurrency=get_concurrency, timeout_ns=timeout_ns
    )
    return app


@runtime_checkable
class PerRequestBackend(Protocol):
    """A backend resolved per request (the tenancy's), which a direct route, outside
    quart's request context, asks for the backend of one request's scope."""

    def for_scope(self, scope: Mapping[str, Any]) -> ApiBackend: ...


def _direct_routes(
    backend: ApiBackend,
    routes: Mapping[str, Mapping[str, ApiHandler]],
    prefix: str,
    max_body_bytes: int,
) -> dict[tuple[str, str], DirectHandler]:
    """The (method, full path) of every handler in ``routes`` marked served_directly
    (a handler a tenancy table wrapped is not), with its direct handler."""
    out: dict[tuple[str, str], DirectHandler] = {}
    for rest, table in routes.items():
        if "{" in rest:
            continue  # a direct route matches one exact path
        for method, handler in table.items():
            logic = _SERVED_DIRECTLY.get(handler)
            if logic is not None:
                out[(method, f"{prefix}/api/v2/{rest}")] = _direct(backend, logic, max_body_bytes)
    return out


def _direct(backend: ApiBackend, logic: BodyHandler, max_body_bytes: int) -> DirectHandler:
    """``logic`` at the ASGI level: its quart handler's answers, without quart."""
    # Asked once: a runtime Protocol check walks the Protocol's attributes (~15 us).
    per_request = backend if isinstance(backend, PerRequestBackend) else None

    async def handler(scope: Scope, receive: Receive) -> Response | None:
        own = backend if per_request is None else per_request.for_scope(scope)
        try:
            response = await logic(
                own,
                header(scope, b"content-type"),
                lambda: read_body(scope, receive, max_body_bytes),
                max_body_bytes,
            )
        except Disconnected:
            return None
        except NotFound:
            # The request's tenant went (a tenancy reload) mid-request: quart's 404.
            return _not_found()
        return _with_cors(response, header(scope, b"origin") is not None)

    return handler


#: Endpoints Alertmanager 0.25 serves outside its instrumented router.
_UNOBSERVED_ENDPOINTS = frozenset({"api", "api_root", "api_no_slash", "to_prefix"})


def _router_handler_label(
    url_map: Map, prefix: str, extra_routes: Mapping[str, Mapping[str, ApiHandler]] | None
) -> HandlerLabel:
    """The ``handler`` label Alertmanager's router gives a request, or None."""
    adapter = url_map.bind("localhost")
    templates = {f"extra_{i}": "/" + path.strip("/") for i, path in enumerate(extra_routes or {})}

    def label(method: str, path: str) -> str | None:
        try:
            rule, _ = adapter.match(path, method, return_rule=True)
        except HTTPException:
            return None  # 404 and 405: httprouter answers them unobserved
        endpoint = rule.endpoint
        if endpoint in _UNOBSERVED_ENDPOINTS:
            return None
        if endpoint in templates:
            return templates[str(endpoint)]
        return rule.rule[len(prefix) :] or "/"

    return label
