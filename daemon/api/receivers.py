"""``POST /api/v1/receivers/{name}/test``: send a test notification through a receiver.

Our own endpoint (Alertmanager has none; Grafana and KubeSphere's Notification Manager
have one each). It lives outside ``/api/v2/`` so go-swagger's error shapes do not
apply: bodies are ``{"error": ...}`` or the result list, JSON with a trailing newline.
The sending itself is :func:`daemon.notify.receiver_test.test_receiver`, reached
through :class:`ReceiverTestBackend`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from quart import Response

from daemon.api.app import ApiHandler
from daemon.api.backend import ApiBackend
from daemon.api.encoding import body

#: The path, relative to the route prefix, in ``create_app(extra_routes=...)`` form.
RECEIVER_TEST_PATH = "api/v1/receivers/{name}/test"


@runtime_checkable
class ReceiverTestBackend(Protocol):
    """What the handler needs besides :class:`ApiBackend`."""

    async def test_receiver(self, name: str) -> list[dict[str, Any]] | None:
        """Each integration's result (``{"integration", "ok"[, "error"]}``), or None
        when the current config has no receiver ``name``."""
        ...


def _json(status: int, payload: Any) -> Response:
    return Response(body(payload), status=status, content_type="application/json")


async def post_receiver_test(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """Test every integration of receiver ``name``: 200 with results, 404 if unknown."""
    if not isinstance(backend, ReceiverTestBackend):
        return _json(501, {"error": "receiver tests are not supported by this server"})
    name = params["name"]
    results = await backend.test_receiver(name)
    if results is None:
        return _json(404, {"error": "receiver not found"})
    return _json(200, {"receiver": name, "results": results})


def receiver_test_routes() -> dict[str, dict[str, ApiHandler]]:
    """The route table to pass as ``create_app(..., extra_routes=...)``."""
    return {RECEIVER_TEST_PATH: {"POST": post_receiver_test}}


__all__ = [
    "RECEIVER_TEST_PATH",
    "ReceiverTestBackend",
    "post_receiver_test",
    "receiver_test_routes",
]
