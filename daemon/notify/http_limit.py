"""A transport that bounds in-flight requests of the shared notification client.

httpcore's pool re-examines every queued request against every connection each time
one finishes: quadratic in the queue. A burst of 1,000 group flushes (one webhook
each) cost about 35 CPU seconds there. Waiting on a trio limiter instead, below the
pool's connection limit, keeps httpcore's queue empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import trio


class _ReleasingStream(httpx.AsyncByteStream):
    """The response body; closing it gives the slot back."""

    def __init__(
        self, inner: httpx.AsyncByteStream, release: trio.CapacityLimiter, token: object
    ) -> None:
        self._inner = inner
        self._limiter = release
        self._token: object | None = token

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._token is not None:
                self._limiter.release_on_behalf_of(self._token)
                self._token = None


class BoundedTransport(httpx.AsyncBaseTransport):
    """Delegates to ``inner`` with at most ``limit`` requests in flight."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._limiter = trio.CapacityLimiter(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = object()
        await self._limiter.acquire_on_behalf_of(token)
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._limiter.release_on_behalf_of(token)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._limiter, token)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
