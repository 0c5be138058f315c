"""ASGI wrappers around the API app: ``--web.timeout``, ``--web.get-concurrency`` and
the per-handler HTTP metrics, in the order Alertmanager 0.25 stacks them.

Alertmanager 0.25 (``api/api.go``, ``limitHandler``) wraps every handler, ``/api/v2/``
included, in ``http.TimeoutHandler(concurrencyLimiter(h))`` when ``--web.timeout`` is
set, and in the limiter alone otherwise:

- the limiter admits at most ``--web.get-concurrency`` GET requests at once (``0`` or
  less: GOMAXPROCS, at least 8) and answers any GET over that at once with 503
  ``Limit of concurrent GET requests reached (N), try again later.``; other methods are
  not limited. ``alertmanager_http_requests_in_flight{method="get"}`` and
  ``alertmanager_http_concurrency_limit_exceeded_total{method="get"}`` count it.
- the timeout answers 503 ``Exceeded configured timeout of <Go duration>.`` when the
  handler has not finished in time. As with Go's ``TimeoutHandler``, the handler is not
  cut short: it runs to its end (so a write is never left half-done) and its answer is
  dropped; the response is buffered until then.

The metrics (``cmd/alertmanager/main.go``) observe only the router's handlers: the
route path without the prefix (``/-/healthy``, ``/metrics``) and the lower-case method.
0.25 serves ``/api/v2/`` outside the router, so it is not observed; neither are 404s,
405s and the limiter's 503s.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from daemon import metrics
from daemon.gocompat.duration import format_go_duration

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: ``(method, path) -> handler label``, or None for a request that is not observed.
HandlerLabel = Callable[[str, str], str | None]

_in_flight = metrics.http_requests_in_flight.labels("get")
_limit_exceeded = metrics.http_concurrency_limit_exceeded.labels("get")
#: Distinct (method, path) pairs whose handler label and metric children are kept.
_OBSERVER_CACHE = 1024


def default_get_concurrency() -> int:
    """Alertmanager's default: GOMAXPROCS (the CPUs this process may use), at least 8."""
    return max(len(os.sched_getaffinity(0)), 8)


async def _send_plain(send: Send, status: int, text: str, *, nosniff: bool) -> None:
    """A plain-text answer; Go's ``http.Error`` adds ``nosniff``, its TimeoutHandler not."""
    payload = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if nosniff:
        headers.append((b"x-content-type-options", b"nosniff"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def instrument(app: AsgiApp, handler_label: HandlerLabel) -> AsgiApp:
    """Observe duration and response size per handler, as Alertmanager's router does."""

    # Per request, matching the path against the router (werkzeug) and looking up two
    # labelled metric children cost more than the rest of this wrapper; both depend only
    # on (method, path), so they are worked out once per pair. Paths are the client's
    # (silence IDs, junk), so the cache is bounded: when full it starts over.
    observers: dict[tuple[str, str], tuple[Any, Any] | None] = {}

    def observers_for(method: str, path: str) -> tuple[Any, Any] | None:
        key = (method, path)
        try:
            return observers[key]
        except KeyError:
            pass
        label = handler_label(method, path)
        found = None
        if label is not None:
            lower = method.lower()
            found = (
                metrics.http_request_duration.labels(label, lower),
                metrics.http_response_size.labels(label, lower),
            )
        if len(observers) >= _OBSERVER_CACHE:
            observers.clear()
        observers[key] = found
        return found

    async def instrumented(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        found = observers_for(str(scope["method"]), str(scope["path"]))
        if found is None:
            await app(scope, receive, send)
            return
        duration, response_size = found
        size = 0

        async def counting_send(message: Message) -> None:
            nonlocal size
            if message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        started = trio.current_time()
        try:
            await app(scope, receive, counting_send)
        finally:
            duration.observe(trio.current_time() - started)
            response_size.observe(size)

    return instrumented


def limit(app: AsgiApp, *, get_concurrency: int, timeout_ns: int) -> AsgiApp:
    """Alertmanager's ``limitHandler``: the GET limiter, inside the timeout if any."""
    capacity = get_concurrency if get_concurrency >= 1 else default_get_concurrency()
    slots = trio.Semaphore(capacity)
    refusal = f"Limit of concurrent GET requests reached ({capacity}), try again later.\n"

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await app(scope, receive, send)
            return
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            _limit_exceeded.inc()
            # Go's http.Error adds a newline to a message that has one already.
            await _send_plain(send, 503, refusal + "\n", nosniff=True)
            return
        _in_flight.inc()
        try:
            await app(scope, receive, send)
        finally:
            _in_flight.dec()
            slots.release()

    if timeout_ns <= 0:
        return limited
    seconds = timeout_ns / 1e9
    message = f"Exceeded configured timeout of {format_go_duration(timeout_ns)}.\n"

    async def timed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await limited(scope, receive, send)
            return
        held: list[Message] = []
        finished = trio.Event()

        async def hold(msg: Message) -> None:
            held.append(msg)

        async def run() -> None:
            try:
                await limited(scope, receive, hold)
            finally:
                finished.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            with trio.move_on_after(seconds):
                await finished.wait()
            if not finished.is_set():
                # The handler goes on to its end inside this nursery; what it sends
                # from now on is dropped, as Go's TimeoutHandler drops it.
                await _send_plain(send, 503, message, nosniff=False)
                return
        for msg in held:
            await send(msg)

    return timed


__all__ = ["AsgiApp", "HandlerLabel", "default_get_concurrency", "instrument", "limit"]
