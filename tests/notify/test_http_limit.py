"""The notification client's transport bounds requests in flight and frees slots."""

from __future__ import annotations

import httpx
import trio

from daemon.notify.http_limit import BoundedTransport


async def test_at_most_limit_requests_in_flight(autojump_clock: trio.testing.MockClock) -> None:
    """Ten concurrent sends through a limit of 2 never overlap more than 2, and all finish."""
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await trio.sleep(1)
        in_flight -= 1
        # A streamed body, as a real transport gives: reading it to the end closes it.
        return httpx.Response(200, stream=httpx.ByteStream(b"ok"))

    transport = BoundedTransport(httpx.MockTransport(handler), 2)
    done = []
    async with httpx.AsyncClient(transport=transport) as client:

        async def send(i: int) -> None:
            r = await client.post("http://sink/", content=str(i))
            done.append(r.status_code)

        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(send, i)
    assert peak == 2
    assert done == [200] * 10


async def test_failed_request_frees_its_slot(autojump_clock: trio.testing.MockClock) -> None:
    """A transport error gives the slot back, so later requests still go out."""
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, stream=httpx.ByteStream(b""))

    transport = BoundedTransport(httpx.MockTransport(handler), 1)
    async with httpx.AsyncClient(transport=transport) as client:
        try:
            await client.get("http://sink/")
        except httpx.ConnectError:
            pass
        with trio.fail_after(5):
            assert (await client.get("http://sink/")).status_code == 200
