"""``POST /-/debug/stall?seconds=N``: block the event loop on purpose, to test that
systemd's watchdog restarts a daemon whose loop hangs.

Served only with ``--debug.stall-endpoint``; never on by default. It blocks the whole
process (that is its point), at most :data:`MAX_STALL` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from quart import Response, request

from daemon.api.app import ApiHandler
from daemon.api.backend import ApiBackend
from daemon.api.encoding import body

STALL_PATH = "-/debug/stall"
MAX_STALL = 600.0


def _json(status: int, payload: object) -> Response:
    return Response(body(payload), status=status, content_type="application/json")


async def post_stall(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """Sleep ``seconds`` on the event loop (blocking it), then answer 200."""
    try:
        seconds = float(request.args.get("seconds", "1"))
    except ValueError:
        return _json(400, {"error": "seconds must be a number"})
    if not 0 <= seconds <= MAX_STALL:
        return _json(400, {"error": f"seconds must be between 0 and {MAX_STALL:g}"})
    time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is what this endpoint is for
    return _json(200, {"stalled": seconds})


def stall_routes() -> dict[str, dict[str, ApiHandler]]:
    """The route table to pass as ``create_app(..., extra_routes=...)``."""
    return {STALL_PATH: {"POST": post_stall}}


__all__ = ["MAX_STALL", "STALL_PATH", "post_stall", "stall_routes"]
