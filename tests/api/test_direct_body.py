"""How the direct routes read a request body (daemon.api.direct.read_body): a body already
queued is taken without a scheduler round, and the body ends with the server's end
message, which the connection's reader queues with the last bytes (daemon.api.server),
so that hypercorn has seen the whole request before the answer."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
import trio.testing
from werkzeug.exceptions import RequestEntityTooLarge

from daemon.api.direct import Disconnected, read_body


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": list(headers)}


def _part(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def _read_queued(*parts: dict[str, Any]) -> bytes:
    """read_body of a 3-byte Content-Length body whose ``parts`` are all queued already,
    checked to take every one of them (the end message too) without a checkpoint."""
    send, receive = trio.open_memory_channel[dict[str, Any]](4)
    for part in parts:
        send.send_nowait(part)
    with trio.fail_after(1), trio.testing.assert_no_checkpoints():
        body = await read_body(_scope((b"content-length", b"3")), receive.receive, None)
    assert receive.statistics().current_buffer_used == 0
    return body


async def test_a_queued_body_is_read_without_a_checkpoint() -> None:
    """hypercorn's queue holds the whole body: read_body never yields to the scheduler."""
    assert await _read_queued(_part(b"abc", True), _part(b"", False)) == b"abc"


async def test_a_body_ends_with_the_servers_end_message() -> None:
    """With every Content-Length byte in, the read still takes the end message (without
    a round when it is queued, as the server queues it with the last bytes); until it
    comes, the read waits."""
    assert await _read_queued(_part(b"ab", True), _part(b"c", True), _part(b"", False)) == b"abc"
    send, receive = trio.open_memory_channel[dict[str, Any]](4)
    send.send_nowait(_part(b"abc", True))
    with trio.move_on_after(0.05) as waited:
        await read_body(_scope((b"content-length", b"3")), receive.receive, None)
    assert waited.cancelled_caught


async def test_a_chunked_body_waits_for_its_end() -> None:
    """Transfer-Encoding frames the body: a Content-Length beside it does not end it."""
    send, receive = trio.open_memory_channel[dict[str, Any]](4)
    headers = ((b"content-length", b"3"), (b"transfer-encoding", b"chunked"))
    send.send_nowait(_part(b"abc", True))

    async def end_later() -> None:
        await trio.sleep(0.01)
        await send.send(_part(b"def", False))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(end_later)
        body = await read_body(_scope(*headers), receive.receive, None)
    assert body == b"abcdef"


async def test_a_body_not_yet_queued_is_awaited() -> None:
    """An empty queue falls back to the server's receive, and a foreign receive works."""
    send, receive = trio.open_memory_channel[dict[str, Any]](4)

    async def later() -> None:
        await trio.sleep(0.01)
        await send.send(_part(b"xy", False))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await read_body(_scope(), receive.receive, None) == b"xy"

    async def foreign() -> dict[str, Any]:
        return _part(b"z", False)

    assert await read_body(_scope(), foreign, None) == b"z"


async def test_limits_and_disconnects_hold_on_queued_messages() -> None:
    """A queued body past the limit is refused, and a queued disconnect is seen."""
    send, receive = trio.open_memory_channel[dict[str, Any]](4)
    send.send_nowait(_part(b"abcdef", False))
    with pytest.raises(RequestEntityTooLarge):
        await read_body(_scope(), receive.receive, 5)
    with pytest.raises(RequestEntityTooLarge):
        await read_body(_scope((b"content-length", b"6")), receive.receive, 5)
    send.send_nowait({"type": "http.disconnect"})
    with pytest.raises(Disconnected):
        await read_body(_scope((b"content-length", b"3")), receive.receive, None)


async def _append(into: list[dict[str, Any]], message: dict[str, Any]) -> None:
    into.append(message)


def _echo_app() -> Any:
    """A direct route ``POST /x`` answering its body, beside a fallback that fails."""
    from quart import Response

    from daemon.api.direct import with_direct_routes

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not a direct route")

    async def echo(scope: Any, receive: Any) -> Response | None:
        try:
            return Response(await read_body(scope, receive, None))
        except Disconnected:
            return None  # as the real handlers: the client left, nothing to answer

    return with_direct_routes(fallback, {("POST", "/x"): echo})


@pytest.mark.parametrize(
    ("end", "answered"), [(_part(b"", False), True), ({"type": "http.disconnect"}, False)]
)
async def test_the_answer_waits_for_the_request_end(end: dict[str, Any], answered: bool) -> None:
    """A body read to its last Content-Length byte is answered only once the server's
    end message is in (hypercorn keeps the connection alive only if it has seen the whole
    request when the answer is complete); a client that leaves before that end gets no
    answer, as one that leaves inside its body."""
    app = _echo_app()
    scope = {**_scope((b"content-length", b"3")), "method": "POST", "path": "/x"}
    send, receive = trio.open_memory_channel[dict[str, Any]](4)
    send.send_nowait(_part(b"abc", True))
    sent: list[dict[str, Any]] = []

    async def record(message: dict[str, Any]) -> None:
        sent.append(message)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, scope, receive.receive, record)
            await trio.testing.wait_all_tasks_blocked()
            assert sent == []
            send.send_nowait(end)
    if not answered:
        assert sent == []
        return
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"abc"


async def test_an_end_already_queued_costs_no_wait() -> None:
    """With the end message queued behind the body, the answer follows at once, and a
    body ended by its own message leaves nothing to wait for."""
    app = _echo_app()
    scope = {**_scope((b"content-length", b"3")), "method": "POST", "path": "/x"}
    for parts in ([_part(b"abc", True), _part(b"", False)], [_part(b"abc", False)]):
        send, receive = trio.open_memory_channel[dict[str, Any]](4)
        for part in parts:
            send.send_nowait(part)
        sent: list[dict[str, Any]] = []

        with trio.fail_after(5):
            await app(dict(scope), receive.receive, functools.partial(_append, sent))
        assert len(sent) == 2
        assert receive.statistics().current_buffer_used == 0
