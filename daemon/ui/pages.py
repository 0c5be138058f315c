"""The web UI's routes: server-rendered page shells and the static files they load.

Each page is a Jinja2 template (``templates/``) rendered with the route prefix; the
page's data comes from the JSON APIs (``/api/v2/...``, ``/api/v1/history``,
``/api/v1/why``, ``/api/v1/routes``) through one hand-written script (``static/app.js``),
so the UI reads exactly what API clients read and has no data path of its own. The
pages live under the same app as the API: web-config auth (and, with tenancy, the
tenant's token) guards them the same way, and they add no new way in.

The shells hold no data at all (not even the version): with tenancy, a tenancy gate
may let them through unauthenticated so that the page can ask for a token, and still
nothing is revealed. Nothing is fetched from elsewhere at run time: the templates, the
script and the style sheet are package files, read once when the routes are built. Every answer
carries a Content-Security-Policy allowing only this origin's scripts and styles.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import jinja2
from quart import Response

from daemon.api.app import ApiHandler, no_wildcard_cors
from daemon.api.backend import ApiBackend

#: page path (relative to the route prefix) -> (template, navigation title).
PAGES: dict[str, tuple[str, str]] = {
    "": ("alerts.html", "Alerts"),
    "ui/alerts": ("alerts.html", "Alerts"),
    "ui/silences": ("silences.html", "Silences"),
    "ui/why": ("why.html", "Why"),
    "ui/routes": ("routes.html", "Routing tree"),
    "ui/status": ("status.html", "Status"),
    "ui/history": ("history.html", "History"),
}
STATIC_PATH = "ui/static/{name}"
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SECURITY_HEADERS = {
    # Scripts and styles from this origin only: no inline script can run, so text from
    # alerts (labels, annotations) can never execute even if a renderer slipped.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def is_shell(method: str, path: str) -> bool:
    """Whether a request (``path`` below the route prefix, no leading slash) reads a page
    shell or a static file: those carry no data, so a tenancy gate may serve them
    without a token (the page then asks for one). Only GET and HEAD, only the page paths
    above and single file names below ``ui/static/``: nothing else is opened."""
    if method not in ("GET", "HEAD"):
        return False
    if path in PAGES:
        return True
    folder, _, name = path.rpartition("/")
    return folder == "ui/static" and name not in ("", ".", "..")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("daemon.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _static_files() -> dict[str, bytes]:
    folder = resources.files("daemon.ui") / "static"
    return {
        f.name: f.read_bytes() for f in folder.iterdir() if f.name.endswith(tuple(_CONTENT_TYPES))
    }


def _respond(payload: bytes | str, content_type: str, status: int = 200) -> Response:
    resp = Response(payload, status=status, content_type=content_type)
    for name, value in _SECURITY_HEADERS.items():
        resp.headers[name] = value
    return resp


def ui_routes() -> dict[str, dict[str, ApiHandler]]:
    """The route table to pass as ``create_app(..., extra_routes=...)``.

    Templates and static files are loaded here, once; a missing file fails start-up.
    """
    env = _environment()
    static = _static_files()
    nav = [(path, title) for path, (_, title) in PAGES.items() if path]
    routes: dict[str, dict[str, ApiHandler]] = {}

    def page(path: str, template_name: str, title: str) -> ApiHandler:
        template = env.get_template(template_name)

        async def show(backend: ApiBackend, params: Mapping[str, str]) -> Response:
            prefix = backend.route_prefix.rstrip("/")
            html = template.render(
                prefix=prefix,
                title=title,
                current=path or "ui/alerts",
                nav=nav,
            )
            resp = _respond(html, "text/html; charset=utf-8")
            resp.headers["Cache-Control"] = "no-store"
            return resp

        return no_wildcard_cors(show)

    for path, (template_name, title) in PAGES.items():
        routes[path] = {"GET": page(path, template_name, title)}

    async def serve_static(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        name = params.get("name", "")
        data = static.get(name)
        if data is None:
            return _respond("404 page not found\n", "text/plain; charset=utf-8", 404)
        suffix = name[name.rfind(".") :]
        resp = _respond(data, _CONTENT_TYPES[suffix])
        # Revalidated on every load: a new version's script is picked up at once.
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    routes[STATIC_PATH] = {"GET": no_wildcard_cors(serve_static)}
    return routes


__all__ = ["PAGES", "STATIC_PATH", "is_shell", "ui_routes"]
