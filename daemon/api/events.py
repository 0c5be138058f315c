"""``POST /api/v1/events`` and ``POST /audit/webhook/event``: Kubernetes events and
audit events in, alerts out (through :class:`daemon.sources.intake.EventIntake`).

Our own endpoints, outside ``/api/v2/``; answers are JSON with a trailing newline,
errors ``{"error": ...}`` as :mod:`daemon.api.history` does. The body is decoded and
evaluated whole before anything is applied: a 400 names the line and the problem, and
nothing of that body reaches the alerts or the notification webhooks. No Content-Type is
required: exporters send NDJSON under several names. The body size is bounded by the
app's ``MAX_CONTENT_LENGTH``, as for every other endpoint (413).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from daemon.api.app import ApiHandler, no_wildcard_cors
from daemon.api.backend import ApiBackend
from daemon.api.cooperative import run_cooperatively
from daemon.api.encoding import body
from daemon.sources import metrics as sm
from daemon.sources.intake import EventIntake
from daemon.sources.kubeevents import DecodeError, audit_events_steps, kube_events_steps
from daemon.sources.production import Intake

#: Paths relative to the route prefix, in ``create_app(extra_routes=...)`` form.
EVENTS_PATH = "api/v1/events"
#: kube-auditing's path, so the API server's audit webhook kubeconfig only changes host.
AUDIT_PATH = "audit/webhook/event"

Decoder = Callable[[bytes], Generator[None, None, list[dict[str, Any]]]]


def _json(status: int, payload: Any) -> Response:
    return Response(body(payload), status=status, content_type="application/json")


def event_routes(intake: EventIntake) -> dict[str, dict[str, ApiHandler]]:
    """The route table to pass as ``create_app(..., extra_routes=...)``."""

    async def handle(name: Intake, decode: Decoder) -> Response:
        sm.bodies_received.labels(name).inc()
        try:
            data = await request.get_data(cache=False, as_text=False)
        except RequestEntityTooLarge:
            sm.bodies_rejected.labels(name).inc()
            limit = request.max_content_length
            return _json(413, {"error": f"request body too large (limit {limit} bytes)"})
        raw = data if isinstance(data, bytes) else data.encode()
        try:
            events = await run_cooperatively(decode(raw))
        except DecodeError as exc:
            sm.bodies_rejected.labels(name).inc()
            return _json(400, {"error": str(exc)})
        evaluation = await run_cooperatively(intake.evaluate_steps(name, events))
        summary = await intake.apply(evaluation)
        return _json(200, summary.json())

    @no_wildcard_cors
    async def post_events(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        """200 with the counts; 400 naming the line and the problem; 413."""
        return await handle("events", kube_events_steps)

    @no_wildcard_cors
    async def post_audit(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        """200 with the counts; 400 naming the line and the problem; 413."""
        return await handle("audit", audit_events_steps)

    return {EVENTS_PATH: {"POST": post_events}, AUDIT_PATH: {"POST": post_audit}}


__all__ = ["AUDIT_PATH", "EVENTS_PATH", "event_routes"]
