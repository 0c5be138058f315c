"""``POST /api/v1/receivers/{name}/test``: send a test notification through a receiver.

Our own endpoint (Alertmanager has none; Grafana and KubeSphere's Notification Manager
have one each). It lives outside ``/api/v2/`` so go-swagger's error shapes do not
apply: bodies are ``{"error": ...}`` or the result list, JSON with a trailing newline.
The sending itself is :func:`daemon.notify.receiver_test.test_receiver`, reached
through :class:`ReceiverTestBackend`.

It sends real notifications past dedup and silences, so it is guarded, in this order:

1. ``Content-Type: application/json`` only (else 415). A web page cannot send that
   cross-origin without a CORS preflight, and the endpoint answers no preflight and
   sends no ``Access-Control-Allow-Origin``, so no page an operator visits can fire it.
2. :class:`ReceiverTestAccess` (else 403): the seam where tenancy decides who may test
   which receiver. ``--web.config.file`` auth wraps the whole server before this.
3. :class:`ReceiverTestRateLimit` (else 429 with ``Retry-After``): a token bucket per receiver
   and one for all receivers together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import trio
from quart import Response, request

from daemon.api.app import ApiHandler, no_wildcard_cors
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


class ReceiverTestAccess(Protocol):
    """Who may test which receiver (tenancy plugs in here); headers are the request's."""

    def permits(self, headers: Mapping[str, str], receiver: str) -> bool: ...


class AnyoneMayTest:
    """Without tenancy, whoever reached the endpoint (past web-config auth) may test."""

    def permits(self, headers: Mapping[str, str], receiver: str) -> bool:
        return True


@attrs.define
class TokenBucket:
    """``burst`` tokens, refilled at ``per_second``; pure: time is passed in."""

    burst: float
    per_second: float
    _tokens: float = attrs.field(init=False)
    _at: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0 if one is there now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.per_second

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1


#: Per receiver: 3 tests at once, then one every 20 s.
PER_RECEIVER = (3.0, 1 / 20)
#: All receivers together: 10 at once, then one every 2 s.
OVERALL = (10.0, 1 / 2)
#: Buckets kept per receiver name at most (names come from the URL, so from anyone).
MAX_BUCKETS = 1024


@attrs.define
class ReceiverTestRateLimit:
    """A token bucket per receiver and one overall; a test takes one from each."""

    per_receiver: tuple[float, float] = PER_RECEIVER
    overall: tuple[float, float] = OVERALL
    _all: TokenBucket = attrs.field(init=False)
    _by_name: dict[str, TokenBucket] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self._all = TokenBucket(*self.overall)

    def admit(self, receiver: str, now: float) -> float:
        """0 and a token taken from both buckets, or the seconds to wait (none taken)."""
        bucket = self._by_name.get(receiver)
        if bucket is None:
            if len(self._by_name) >= MAX_BUCKETS:
                # Full buckets forget nothing worth keeping; drop them before others.
                for key in [k for k, b in self._by_name.items() if b.wait(now) == 0][:64]:
                    del self._by_name[key]
            bucket = TokenBucket(*self.per_receiver)
            if len(self._by_name) < MAX_BUCKETS:
                self._by_name[receiver] = bucket
        wait = max(bucket.wait(now), self._all.wait(now))
        if wait > 0:
            return wait
        bucket.take(now)
        self._all.take(now)
        return 0.0


def _json(status: int, payload: Any) -> Response:
    return Response(body(payload), status=status, content_type="application/json")


def _is_json(header: str | None) -> bool:
    return (header or "").partition(";")[0].strip().lower() == "application/json"


def receiver_test_handler(
    access: ReceiverTestAccess | None = None, rate_limit: ReceiverTestRateLimit | None = None
) -> ApiHandler:
    """The POST handler, with its access seam and its own rate limit."""
    gate = access if access is not None else AnyoneMayTest()
    limits = rate_limit if rate_limit is not None else ReceiverTestRateLimit()

    @no_wildcard_cors
    async def post_receiver_test(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        """Test every integration of receiver ``name``: 200 with results, 404 if unknown."""
        if not _is_json(request.headers.get("Content-Type")):
            return _json(415, {"error": "Content-Type must be application/json"})
        if not isinstance(backend, ReceiverTestBackend):
            return _json(501, {"error": "receiver tests are not supported by this server"})
        name = params["name"]
        if not gate.permits(dict(request.headers), name):
            return _json(403, {"error": "not allowed to test this receiver"})
        wait = limits.admit(name, trio.current_time())
        if wait > 0:
            resp = _json(429, {"error": "too many receiver tests, try again later"})
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp
        results = await backend.test_receiver(name)
        if results is None:
            return _json(404, {"error": "receiver not found"})
        return _json(200, {"receiver": name, "results": results})

    return post_receiver_test


def receiver_test_routes(
    access: ReceiverTestAccess | None = None, rate_limit: ReceiverTestRateLimit | None = None
) -> dict[str, dict[str, ApiHandler]]:
    """The route table to pass as ``create_app(..., extra_routes=...)``."""
    return {RECEIVER_TEST_PATH: {"POST": receiver_test_handler(access, rate_limit)}}


__all__ = [
    "RECEIVER_TEST_PATH",
    "AnyoneMayTest",
    "ReceiverTestAccess",
    "ReceiverTestBackend",
    "ReceiverTestRateLimit",
    "TokenBucket",
    "receiver_test_handler",
    "receiver_test_routes",
]
