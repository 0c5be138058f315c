"""``GET /api/v1/history``: the notification history, newest first, one page at a time.

Our own endpoint (Alertmanager keeps no history), so it lives outside ``/api/v2/`` and
answers as :mod:`daemon.api.receivers` does: JSON with a trailing newline, errors as
``{"error": ...}``. Parameters and their meaning are :mod:`daemon.history.query`'s.
The handler reaches the store through :class:`HistorySource`; with tenancy the
composition root passes ``request_tenant`` and every query is pinned to that tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
from quart import Response, request

from daemon.api.app import ApiHandler
from daemon.api.backend import ApiBackend
from daemon.api.encoding import body
from daemon.history.database import HistoryPage
from daemon.history.query import HistoryQuery, QueryError, parse_query
from daemon.history.record import record_to_json
from daemon.history.store import HistoryUnavailable

#: The path, relative to the route prefix, in ``create_app(extra_routes=...)`` form.
HISTORY_PATH = "api/v1/history"

#: The tenant of the current request, or None for "not pinned" (tenancy off, or an
#: admin, who may pass ``tenant=`` or see all). Called inside the request context.
RequestTenant = Callable[[], str | None]


class HistorySource(Protocol):
    """What the handler needs: :class:`daemon.history.store.HistoryStore` is one."""

    async def query(self, query: HistoryQuery) -> HistoryPage:
        """One page; raises :class:`HistoryUnavailable` when the store is not running."""
        ...


def _json(status: int, payload: Any) -> Response:
    return Response(body(payload), status=status, content_type="application/json")


def page_json(page: HistoryPage) -> dict[str, Any]:
    """The response body of a page."""
    cursor = page.next_cursor
    return {
        "items": [record_to_json(r) for r in page.items],
        "next_cursor": cursor.encode() if cursor is not None else None,
    }


def history_routes(
    source: HistorySource, *, request_tenant: RequestTenant | None = None
) -> dict[str, dict[str, ApiHandler]]:
    """The route table to pass as ``create_app(..., extra_routes=...)``."""

    async def get_history(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        """200 with a page; 400 for a bad parameter; 503 while the store is down."""
        try:
            query = parse_query(request.args.getlist)
        except QueryError as exc:
            return _json(400, {"error": str(exc)})
        tenant = request_tenant() if request_tenant is not None else None
        if tenant is not None:
            if query.tenant is not None and query.tenant != tenant:
                return _json(403, {"error": "the history of another tenant is not visible"})
            query = attrs.evolve(query, tenant=tenant)
        try:
            page = await source.query(query)
        except HistoryUnavailable as exc:
            return _json(503, {"error": str(exc)})
        return _json(200, page_json(page))

    return {HISTORY_PATH: {"GET": get_history}}


__all__ = ["HISTORY_PATH", "HistorySource", "RequestTenant", "history_routes", "page_json"]
