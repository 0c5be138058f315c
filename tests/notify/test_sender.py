"""The sender process (daemon/notify/sender.py): a real child process, loopback servers.

Every test that starts a child stops it by cancelling ``serve`` (which closes the pipe
and waits for the child's exit, killing it after a grace) and checks the PID is gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import attrs
import pytest
import structlog
import structlog.testing
import trio
import trio.testing

from daemon.notify import firewall
from daemon.notify import sender as sender_module
from daemon.notify.http1 import Http1Client, HTTPReply, HttpSender
from daemon.notify.httpclient import HttpClients
from daemon.notify.retry import NotifyError
from daemon.notify.sender import EXITED, ProcessSender
from tests.notify.test_http1 import OK, Scripted, serve


async def until(predicate: Callable[[], bool], limit: float) -> None:
    """Poll ``predicate`` (what it waits for happens in another process), failing
    after ``limit`` seconds."""
    with trio.fail_after(limit):
        while True:
            if predicate():
                return
            await trio.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes only once reaped; serve reaps it.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@attrs.define
class RecordingFallback:
    """A fallback sender that answers 200 ``followed`` and records its calls."""

    calls: list[tuple[str, bool]] = attrs.field(factory=list)

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        follow_redirects: bool,
        max_body: int,
    ) -> HTTPReply:
        self.calls.append((url, follow_redirects))
        return HTTPReply(200, b"followed")


@asynccontextmanager
async def running(
    mode: str = "always", request_timeout: float = 30.0, fallback: HttpSender | None = None
) -> AsyncIterator[tuple[ProcessSender, Http1Client]]:
    """A ProcessSender with its child ready; the child is gone when the block ends."""
    limiter = trio.CapacityLimiter(64)
    inline = Http1Client(timeout=request_timeout, limiter=limiter, fallback=fallback)
    sender = ProcessSender(
        inline=inline, limiter=limiter, timeout=request_timeout, fallback=fallback, mode=mode
    )
    pids: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.serve)
        await until(lambda: sender.ready, 20)
        assert sender.child_pid is not None
        pids.append(sender.child_pid)
        try:
            yield sender, inline
        finally:
            nursery.cancel_scope.cancel()
    await inline.aclose()
    assert sender.child_pid is None
    for pid in pids:
        assert not _alive(pid)


async def post(sender: HttpSender, url: str, follow: bool = True) -> HTTPReply:
    return await sender.send(
        "POST", url, {"Content-Type": "text/plain"}, b"hi", follow_redirects=follow, max_body=64
    )


async def test_a_request_through_the_child_is_the_request_sent_in_process(
    nursery: trio.Nursery,
) -> None:
    """Same bytes on the wire, same reply; the child answered it."""
    server = await serve(
        nursery, Scripted([b"HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nyes"])
    )
    async with running() as (sender, inline):
        via_child = await post(sender, server.url())
        in_process = await post(inline, server.url())
        assert sender.answered_by_child == 1
    assert via_child == in_process == HTTPReply(202, b"yes")
    assert server.requests[0] == server.requests[1]


async def test_a_failure_reads_as_in_process(nursery: trio.Nursery) -> None:
    """A refused connection: the same Go-worded, retryable error either way."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/token"
    async with running() as (sender, inline):
        with pytest.raises(NotifyError) as via_child:
            await post(sender, url)
        with pytest.raises(NotifyError) as in_process:
            await post(inline, url)
    assert str(via_child.value) == str(in_process.value)
    assert str(via_child.value).endswith("connect: connection refused")
    assert via_child.value.retryable


async def test_the_child_times_a_request_out_as_in_process(nursery: trio.Nursery) -> None:
    server = await serve(nursery, Scripted([None]))
    async with running(request_timeout=0.5) as (sender, _):
        start = trio.current_time()
        with pytest.raises(NotifyError) as info:
            await post(sender, server.url())
        assert trio.current_time() - start < 2.0
    assert str(info.value).startswith('Post "<redacted>": context deadline exceeded')


async def test_a_wedged_child_times_its_requests_out(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped child answers nothing: the daemon fails the request itself, and kills
    and replaces the child. Kept, the child took every later burst's requests and failed
    them, and once continued it sent the ones already reported failed (and retried)."""
    monkeypatch.setattr(sender_module, "CHILD_GRACE", 0.2)
    server = await serve(nursery, Scripted([OK]))
    async with running(request_timeout=0.5) as (sender, _):
        wedged = sender.child_pid
        assert wedged is not None
        os.kill(wedged, signal.SIGSTOP)
        try:
            start = trio.current_time()
            with pytest.raises(NotifyError) as info:
                await post(sender, server.url())
            assert 0.5 <= trio.current_time() - start < 3.0
            await until(lambda: sender.ready and sender.child_pid not in (None, wedged), 10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(wedged, signal.SIGCONT)
        assert str(info.value).startswith('Post "<redacted>": context deadline exceeded')
        assert sender._waiting == {}
        assert sender.children_started == 2
        # The new child serves, and the request the daemon reported failed (and would
        # retry) never reached the receiver.
        assert (await post(sender, server.url())).status_code == 200
        assert len(server.requests) == 1


async def test_a_request_the_pipe_cannot_carry_fails_as_in_process(nursery: trio.Nursery) -> None:
    """A lone surrogate in a header (msgpack cannot encode it): the same NotifyError as
    the daemon's own client gives, not a UnicodeEncodeError out of the sender."""
    server = await serve(nursery, Scripted([OK]))
    errors = []
    async with running() as (sender, inline):
        for client in (sender, inline):
            with pytest.raises(NotifyError) as info:
                await client.send(
                    "POST",
                    server.url(),
                    {"X-Bad": "\ud800"},
                    b"hi",
                    follow_redirects=True,
                    max_body=64,
                )
            errors.append(str(info.value))
        assert (await post(sender, server.url())).status_code == 200  # the pipe still works
    assert errors[0] == errors[1]
    assert server.requests and len(server.requests) == 1


async def test_a_redirect_is_followed_by_the_daemons_fallback(nursery: trio.Nursery) -> None:
    moved = b"HTTP/1.1 307 Moved\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n"
    server = await serve(nursery, Scripted([moved]))
    fallback = RecordingFallback()
    async with running(fallback=fallback) as (sender, _):
        assert await post(sender, server.url()) == HTTPReply(200, b"followed")
        # Not following: the 3xx is the answer, from the child.
        assert (await post(sender, server.url(), follow=False)).status_code == 307
    assert fallback.calls == [(server.url(), True)]


async def test_without_a_fallback_a_redirect_is_the_answer_as_in_process(
    nursery: trio.Nursery,
) -> None:
    moved = b"HTTP/1.1 307 Moved\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n"
    server = await serve(nursery, Scripted([moved]))
    async with running(fallback=None) as (sender, inline):
        via_child = await post(sender, server.url())
        in_process = await post(inline, server.url())
        assert sender.answered_by_child == 1
    assert via_child == in_process
    assert via_child.status_code == 307


async def test_a_cancelled_request_is_dropped_by_the_child(nursery: trio.Nursery) -> None:
    """The caller's deadline passes: the child closes that request's connection."""
    arrived, closed = trio.Event(), trio.Event()

    async def handle(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        arrived.set()
        while await stream.receive_some(65536):
            pass
        closed.set()

    listeners = await nursery.start(trio.serve_tcp, handle, 0)
    port = listeners[0].socket.getsockname()[1]
    async with running() as (sender, _):
        with trio.move_on_after(10) as scope:
            async with trio.open_nursery() as inner:
                inner.start_soon(post, sender, f"http://127.0.0.1:{port}/")
                await arrived.wait()
                inner.cancel_scope.cancel()
        assert not scope.cancelled_caught
        with trio.fail_after(5):
            await closed.wait()
        # The limiter slot came back.
        assert sender._limiter.borrowed_tokens == 0


async def test_a_dead_child_fails_its_requests_and_is_replaced(nursery: trio.Nursery) -> None:
    """Killed mid-request: retryable failure; in-process meanwhile; a new child later."""
    server = await serve(nursery, Scripted([None, OK]))
    async with running() as (sender, _):
        first_pid = sender.child_pid
        assert first_pid is not None
        async with trio.open_nursery() as inner:

            async def doomed() -> None:
                with pytest.raises(NotifyError) as info:
                    await post(sender, server.url())
                assert str(info.value) == EXITED
                assert info.value.retryable

            inner.start_soon(doomed)
            await until(lambda: bool(server.requests), 10)
            os.kill(first_pid, signal.SIGKILL)
        assert not sender.ready
        assert (await post(sender, server.url())).status_code == 200
        assert sender.answered_by_child == 0  # sent in-process
        await until(lambda: sender.ready, 20)
        assert sender.children_started == 2
        assert sender.child_pid != first_pid
        assert (await post(sender, server.url())).status_code == 200
        assert sender.answered_by_child == 1
    assert not _alive(first_pid)


async def test_auto_sends_a_lone_request_in_process_and_a_burst_through_the_child(
    nursery: trio.Nursery,
) -> None:
    gate = trio.Event()
    answered = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal answered
        while await stream.receive_some(65536):
            await gate.wait()
            answered += 1
            await stream.send_all(OK)

    listeners = await nursery.start(trio.serve_tcp, handle, 0)
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
    async with running(mode="auto") as (sender, _):
        gate.set()
        await post(sender, url)
        assert sender.answered_by_child == 0
        gate = trio.Event()
        async with trio.open_nursery() as burst:
            for _ in range(5):
                burst.start_soon(post, sender, url)
            await until(lambda: sender._in_flight == 5, 5)
            gate.set()
        assert answered == 6
        # The first of the burst found nothing in flight; the other four went out.
        assert sender.answered_by_child == 4


async def test_requests_under_a_receivers_firewall_stay_in_process(
    nursery: trio.Nursery,
) -> None:
    """The firewall checks connects in this process, so its requests never leave it."""
    server = await serve(nursery, Scripted([OK]))
    async with running() as (sender, _):
        token = firewall.use(firewall.ReceiverFirewall([ipaddress.ip_network("127.0.0.0/8")]))
        try:
            with pytest.raises(NotifyError, match="connect: permission denied"):
                await post(sender, server.url())
        finally:
            firewall.reset(token)
        assert sender.answered_by_child == 0
        assert (await post(sender, server.url())).status_code == 200
        assert sender.answered_by_child == 1
    assert server.requests and len(server.requests) == 1


def test_children_that_never_start_are_retried_ever_more_slowly() -> None:
    assert [sender_module.restart_delay(n) for n in range(9)] == [
        1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0,
    ]  # fmt: skip


async def test_a_child_that_cannot_start_leaves_sends_in_process(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken installation: each child exits at once. Logged, retried with a growing
    pause, and meanwhile every request is sent from the daemon's process."""
    monkeypatch.setattr(
        sender_module,
        "child_command",
        lambda *_: [sys.executable, "-c", "import sys; sys.exit(3)"],
    )
    monkeypatch.setattr(sender_module, "RESTART_DELAY", 0.1)
    server = await serve(nursery, Scripted([OK]))
    limiter = trio.CapacityLimiter(4)
    inline = Http1Client(timeout=5.0, limiter=limiter)
    sender = ProcessSender(
        inline=inline, limiter=limiter, timeout=5.0, fallback=None, mode="always"
    )
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as inner:
            await inner.start(sender.serve)
            await until(lambda: sender.children_started >= 3, 20)
            assert not sender.ready
            assert (await post(sender, server.url())).status_code == 200
            assert sender.answered_by_child == 0
            inner.cancel_scope.cancel()
    await inline.aclose()
    exits = [e for e in logs if e["event"] == "notify.sender_process_exited"]
    assert len(exits) >= 2 and {e["returncode"] for e in exits} == {3}


async def test_a_large_body_is_sent_in_process(nursery: trio.Nursery) -> None:
    server = await serve(nursery, Scripted([OK]))
    async with running() as (sender, _):
        big = b"x" * (sender_module.MAX_CHILD_BODY + 1)
        for body in (big, big[:-1]):
            reply = await sender.send(
                "POST", server.url(), {}, body, follow_redirects=False, max_body=64
            )
            assert reply.status_code == 200
        assert sender.answered_by_child == 1  # only the one at the limit
    assert [len(r.partition(b"\r\n\r\n")[2]) for r in server.requests] == [
        len(big),
        len(big) - 1,
    ]


def test_off_builds_no_sender_process() -> None:
    """``--notify.sender-process=off``: the daemon's clients send everything themselves."""
    clients = HttpClients(sender_process="off")
    assert clients.process is None
    assert isinstance(clients.default_sender, Http1Client)
    assert isinstance(HttpClients(sender_process="auto").default_sender, ProcessSender)


def test_an_unknown_mode_is_refused() -> None:
    limiter = trio.CapacityLimiter(1)
    with pytest.raises(ValueError, match="must be auto or always"):
        ProcessSender(
            inline=Http1Client(timeout=1.0, limiter=limiter),
            limiter=limiter,
            timeout=1.0,
            fallback=None,
            mode="sometimes",
        )
