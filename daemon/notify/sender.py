"""The sender process: burst notifications exchanged on a second core.

tocsin's notification pipeline shares one interpreter with the API's intake. A burst
of new groups (``group_wait: 0``) makes one webhook exchange per group, and the
exchange (connection pool, request write, reply wait and parse) was about a quarter of
that interpreter's time in issue 15's workload, while the machine's second core idled.
Here those exchanges run in a child process with the same
:class:`~daemon.notify.http1.Http1Client`: the daemon hands it each request as a
msgpack frame over a pipe and wakes the waiting task on the outcome frame.

Theory of operation:

* :class:`ProcessSender` is an :class:`~daemon.notify.http1.HttpSender`. In ``auto``
  mode a request goes to the child only while another request is in flight (a burst);
  a lone one is sent in-process, because the pipe hop adds to a paced notification's
  latency and saves nothing while the interpreter is idle. Requests made under a
  receivers firewall (a tenant's context) always stay in-process, where the firewall
  checks each connect, and so do bodies over :data:`MAX_CHILD_BODY`.
* What goes to the child is what the daemon's :class:`Http1Client` would send: entries
  whose ``http_config`` needs no client of its own (TLS files, proxy, OAuth2), HTTPS
  against the system's CAs included; redirects are followed by the daemon's fallback.
* Frames made in one scheduler round go out in one ``write``; outcomes are read in
  batches. Each request holds a slot of the daemon-wide in-flight limiter, as the
  in-process client's requests do, so the bound on requests in flight is unchanged.
* Error handling: the child answers each request with its reply or with the error text
  of the in-process client (Go's wording), so a failure reads the same either way; a
  redirect the integration follows is followed by the daemon's own fallback client, as
  in-process. A caller cancelled while waiting (the flush's deadline) sends a cancel
  frame, and the child abandons that request and closes its connection. A child that
  does not answer within the request timeout (plus a grace) times the request out. If
  the child dies, its requests in flight fail as retryable transport errors, later
  requests go in-process, and a new child starts after :data:`RESTART_DELAY`; one that
  never became ready (it cannot start at all) is retried ever more slowly, up to
  :data:`MAX_RESTART_DELAY`, so a broken installation logs once a minute, not a second.
* Lifetime: :meth:`ProcessSender.serve` (``nursery.start``) owns the child and starts it
  at once, in the background: requests go in-process until it reports ready. The child
  ignores SIGINT and SIGTERM (a terminal's Ctrl-C and systemd's stop reach the whole
  group) and ends when its input pipe closes: when the daemon closes it on shutdown, or
  when the daemon dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import msgpack
import outcome
import structlog
import trio
from prometheus_client import Counter

from daemon import metrics
from daemon.notify import firewall
from daemon.notify.http1 import Http1Client, HTTPReply, HttpSender, timed_out
from daemon.notify.retry import NotifyError

log = structlog.get_logger(__name__)

#: Frame kinds, daemon to child: ``(_REQUEST, id, method, url, headers, body, max_body,
#: follow_redirects)`` and ``(_CANCEL, id)``. Child to daemon: ``(id, status, payload)``,
#: where payload is the reply body, or the error text when status is :data:`_FAILED`.
_REQUEST = 0
_CANCEL = 1
_FAILED = -1
#: The integration follows redirects and the reply is one: the daemon's fallback sends.
_REDIRECT = -2
#: The child's first frame (id 0): ready for requests.
_READY = -3
#: Not from the child: it ended with the request in flight.
_EXITED = -4
#: Not from the child: no answer within the request timeout plus CHILD_GRACE.
_OVERDUE = -5

_READ_SIZE = 1 << 18
#: The pause before a new child after one died.
RESTART_DELAY = 1.0
#: The longest pause, reached after children in a row that never became ready.
MAX_RESTART_DELAY = 60.0
#: Larger bodies are sent in-process: copying them through the pipe costs more than the
#: exchange saves (a group of thousands of alerts in one webhook).
MAX_CHILD_BODY = 1 << 20
#: How much longer than the request timeout the daemon waits for a child's answer
#: (the child times its requests out itself; this is for a wedged child). Checked this
#: often, so an overdue request fails within twice the grace of its due time.
CHILD_GRACE = 2.0
#: How long a child may take to exit after its input closed.
EXIT_WAIT = 5.0

EXITED = "the sender process exited"

requests_total = Counter(
    "tocsin_notify_sender_process_requests_total",
    "Notification requests exchanged by the sender process (replies and failures).",
    registry=metrics.REGISTRY,
)
exits_total = Counter(
    "tocsin_notify_sender_process_exits_total",
    "Sender processes that ended other than at shutdown (each is started again).",
    registry=metrics.REGISTRY,
)


def child_command(fd_in: int, fd_out: int, request_timeout: float, limit: int) -> list[str]:
    """The child's command line (see :func:`main`)."""
    return [
        sys.executable,
        "-m",
        "daemon.notify.sender",
        str(fd_in),
        str(fd_out),
        repr(request_timeout),
        str(limit),
    ]


def restart_delay(failures: int) -> float:
    """The pause before the next child: :data:`RESTART_DELAY` after one that ran, then
    doubling with each child in a row that never became ready, up to the maximum."""
    return float(min(RESTART_DELAY * 2 ** max(failures - 1, 0), MAX_RESTART_DELAY))


class _Frames:
    """One end's frames over a pipe pair: :meth:`post` queues a frame, :meth:`write_loop`
    sends what is queued (frames posted in one scheduler round go out in one ``write``),
    :meth:`read` returns the next batch of frames that arrived."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out
        self._outbox = bytearray()
        self._packer = msgpack.Packer(use_bin_type=True)
        # No cap beyond msgpack's 4 GiB (its default of 100 MiB would make a child that
        # got a huge body fail); bodies over MAX_CHILD_BODY stay in-process anyway.
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=0)
        self._writer: trio.lowlevel.Task | None = None

    def post(self, frame: tuple[Any, ...]) -> None:
        self._outbox += self._packer.pack(frame)
        writer, self._writer = self._writer, None
        if writer is not None:  # parked on an empty outbox
            trio.lowlevel.reschedule(writer)

    async def write_loop(self) -> None:
        """Write until cancelled, or until the other end is gone (returns)."""
        outbox = self._outbox
        while True:
            if not outbox:
                self._writer = trio.lowlevel.current_task()

                def abort(_: Any) -> trio.lowlevel.Abort:
                    self._writer = None
                    return trio.lowlevel.Abort.SUCCEEDED

                await trio.lowlevel.wait_task_rescheduled(abort)
                continue
            try:
                written = os.write(self.fd_out, outbox)
            except BlockingIOError:
                written = 0
            except BrokenPipeError:
                return
            del outbox[:written]
            if outbox:
                await trio.lowlevel.wait_writable(self.fd_out)
            else:
                # The frames posted in the rest of this round join the next write.
                await trio.lowlevel.cancel_shielded_checkpoint()

    async def read(self) -> list[Any] | None:
        """The frames that arrived next (at least one), or None at end of file."""
        while True:
            await trio.lowlevel.wait_readable(self.fd_in)
            try:
                data = os.read(self.fd_in, _READ_SIZE)
            except BlockingIOError:
                continue
            if not data:
                return None
            self._unpacker.feed(data)
            frames = list(self._unpacker)
            if frames:
                return frames

    def close(self) -> None:
        os.close(self.fd_in)
        os.close(self.fd_out)


class ProcessSender:
    """An :class:`HttpSender` that exchanges burst requests in a child process.

    ``inline`` sends what stays in-process (and everything while no child is ready);
    ``fallback`` follows redirects, as ``inline``'s own fallback does; ``limiter`` is
    the daemon-wide bound on requests in flight. ``mode``: ``auto`` (see the module
    doc) or ``always`` (tests: every request the firewall allows goes to the child once
    it is ready). ``--notify.sender-process=off`` builds none (:class:`HttpClients`).
    """

    def __init__(
        self,
        *,
        inline: HttpSender,
        limiter: trio.CapacityLimiter,
        timeout: float,
        fallback: HttpSender | None,
        mode: str = "auto",
    ) -> None:
        if mode not in ("auto", "always"):
            raise ValueError(f"sender process mode {mode!r}: must be auto or always")
        self._inline = inline
        self._limiter = limiter
        self._timeout = timeout
        self._fallback = fallback
        self.mode = mode
        self._in_flight = 0
        self._next_id = 0
        #: Request id -> the waiting task and when the request is overdue (ids grow, so
        #: the dict's order is the order of due times).
        self._waiting: dict[int, tuple[trio.lowlevel.Task, float]] = {}
        self._frames: _Frames | None = None
        self._ready = False
        #: Requests the child answered, and children started (statistics, tests).
        self.answered_by_child = 0
        self.children_started = 0
        self.child_pid: int | None = None

    @property
    def ready(self) -> bool:
        """A child is up and taking requests."""
        return self._ready

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
        """Send one request; see :class:`HttpSender`."""
        to_child = (
            self._ready
            and (self._in_flight > 0 or self.mode == "always")
            and (body is None or len(body) <= MAX_CHILD_BODY)
            and not firewall.guarding()
        )
        self._in_flight += 1
        try:
            if to_child:
                return await self._via_child(method, url, headers, body, follow_redirects, max_body)
            return await self._inline.send(
                method, url, headers, body, follow_redirects=follow_redirects, max_body=max_body
            )
        finally:
            self._in_flight -= 1

    async def _via_child(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        follow_redirects: bool,
        max_body: int,
    ) -> HTTPReply:
        limiter = self._limiter
        try:
            # Without a scheduler round when a slot is free, as in-process.
            limiter.acquire_nowait()
        except trio.WouldBlock:
            await limiter.acquire()
            if not self._ready:  # the child ended while we waited for a slot
                limiter.release()
                return await self._inline.send(
                    method,
                    url,
                    headers,
                    body,
                    follow_redirects=follow_redirects,
                    max_body=max_body,
                )
        answer: tuple[int, Any] | None = None
        try:
            self._next_id += 1
            ident = self._next_id
            try:
                self._post(
                    (
                        _REQUEST,
                        ident,
                        method,
                        url,
                        list(headers.items()),
                        body,
                        max_body,
                        # The child marks a redirect for our fallback to follow; without
                        # one the 3xx is the answer, as in-process.
                        follow_redirects and self._fallback is not None,
                    )
                )
            except ValueError:
                pass  # not encodable (a lone surrogate in the URL or a header): below
            else:
                answer = await self._answer(ident)
        finally:
            limiter.release()
        if answer is None:
            # The daemon's own client refuses it with its own error, as in-process.
            return await self._inline.send(
                method, url, headers, body, follow_redirects=follow_redirects, max_body=max_body
            )
        status, payload = answer
        if status == _OVERDUE:
            raise timed_out(method)
        if status == _EXITED:
            raise NotifyError(EXITED, retryable=True)
        requests_total.inc()
        if status == _FAILED:
            raise NotifyError(str(payload), retryable=True)
        if status == _REDIRECT:
            # Our slot is released: the fallback takes its own from the same limiter.
            assert self._fallback is not None  # asked for only with one
            return await self._fallback.send(
                method, url, headers, body, follow_redirects=True, max_body=max_body
            )
        self.answered_by_child += 1
        return HTTPReply(status, payload)

    async def _answer(self, ident: int) -> tuple[int, Any]:
        """Park until the reader hands over request ``ident``'s outcome."""
        # No cancel scope per request for the overdue check (entering and leaving one
        # was half of this method's cost): _watch_overdue looks at all of them.
        due = trio.current_time() + self._timeout + CHILD_GRACE
        self._waiting[ident] = (trio.lowlevel.current_task(), due)

        def abort(_: Any) -> trio.lowlevel.Abort:
            # Cancelled while the child works on it: the child drops it too.
            if self._waiting.pop(ident, None) is not None:
                self._post((_CANCEL, ident))
            return trio.lowlevel.Abort.SUCCEEDED

        answer: tuple[int, Any] = await trio.lowlevel.wait_task_rescheduled(abort)
        return answer

    def _post(self, frame: tuple[Any, ...]) -> None:
        if self._frames is not None:
            self._frames.post(frame)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the child: start it now, start a new one after a pause if it dies."""
        task_status.started()
        failures = 0
        while True:
            became_ready = False
            try:
                became_ready = await self._run_child()
            except OSError as exc:
                log.error("notify.sender_process_failed", error=str(exc))
            failures = 0 if became_ready else failures + 1
            await trio.sleep(restart_delay(failures))

    async def _run_child(self) -> bool:
        """Run one child until it ends; whether it became ready."""
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            proc = await trio.lowlevel.open_process(
                child_command(
                    to_child_r, from_child_w, self._timeout, int(self._limiter.total_tokens)
                ),
                pass_fds=(to_child_r, from_child_w),
                # Nothing on stdout (the daemon's log stream); stderr is shared.
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise
        os.close(to_child_r)
        os.close(from_child_w)
        self.children_started += 1
        self.child_pid = proc.pid
        os.set_blocking(to_child_w, False)
        os.set_blocking(from_child_r, False)
        frames = self._frames = _Frames(from_child_r, to_child_w)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(frames.write_loop)
                nursery.start_soon(self._watch_overdue, proc)
                await self._read_loop(frames)
                nursery.cancel_scope.cancel()
        finally:
            became_ready = self._ready
            self._ready = False
            self._frames = None
            failed = [task for task, _ in self._waiting.values()]
            self._waiting.clear()
            for task in failed:
                trio.lowlevel.reschedule(task, outcome.Value((_EXITED, None)))
            frames.close()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(EXIT_WAIT):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            self.child_pid = None
            if failed or proc.returncode != 0:
                exits_total.inc()
                log.error(
                    "notify.sender_process_exited",
                    returncode=proc.returncode,
                    failed_requests=len(failed),
                )
        return became_ready

    async def _read_loop(self, frames: _Frames) -> None:
        waiting = self._waiting
        reschedule = trio.lowlevel.reschedule
        value = outcome.Value
        while (batch := await frames.read()) is not None:
            for ident, status, payload in batch:
                if status == _READY:
                    self._ready = True
                    continue
                entry = waiting.pop(ident, None)
                if entry is not None:  # else its caller was cancelled
                    reschedule(entry[0], value((status, payload)))

    async def _watch_overdue(self, proc: trio.Process) -> None:
        """Fail the requests a wedged child has not answered in time, and replace it.

        A request is overdue only when the child let its own timeout pass by
        ``CHILD_GRACE``: the child is stopped or starved. Kept, it went on taking every
        burst's requests and failing them, and its unread frames piled up in the
        daemon; and one that came back later sent requests whose callers had been told
        they failed (and retried them), once the cancel frames came too late to stop
        them. So it is killed: its other requests fail as retryable, the daemon sends
        in-process meanwhile, and a new child starts as after any exit.
        """
        waiting = self._waiting
        while True:
            await trio.sleep(CHILD_GRACE)
            now = trio.current_time()
            overdue = []
            for ident, (_, due) in waiting.items():
                if due > now:
                    break
                overdue.append(ident)
            if not overdue:
                continue
            self._ready = False
            proc.kill()
            log.error("notify.sender_process_wedged", pid=proc.pid, overdue_requests=len(overdue))
            for ident in overdue:
                task, _ = waiting.pop(ident)
                trio.lowlevel.reschedule(task, outcome.Value((_OVERDUE, None)))


# --- the child ------------------------------------------------------------------------


class _Redirected(Exception):
    pass


class _RedirectMarker:
    """The child client's fallback: it marks a redirect the integration would follow,
    which the daemon's own fallback then follows."""

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
        raise _Redirected


async def _child(fd_in: int, fd_out: int, request_timeout: float, max_in_flight: int) -> None:
    client = Http1Client(
        timeout=request_timeout,
        limiter=trio.CapacityLimiter(max_in_flight),
        fallback=_RedirectMarker(),
    )
    frames = _Frames(fd_in, fd_out)
    frames.post((0, _READY, None))
    scopes: dict[int, trio.CancelScope] = {}

    async def exchange(
        scope: trio.CancelScope,
        ident: int,
        method: str,
        url: str,
        headers: list[list[str]],
        body: bytes | None,
        max_body: int,
        follow_redirects: bool,
    ) -> None:
        frame: tuple[int, int, Any]
        if scope.cancel_called:
            # Cancelled before it started (the daemon gave up on it): a pooled
            # connection would take the request before any checkpoint, so check first.
            scopes.pop(ident, None)
            return
        with scope:
            try:
                reply = await client.send(
                    method,
                    url,
                    dict(headers),
                    body,
                    follow_redirects=follow_redirects,
                    max_body=max_body,
                )
            except NotifyError as exc:
                frame = (ident, _FAILED, str(exc))
            except _Redirected:
                frame = (ident, _REDIRECT, None)
            except Exception as exc:  # a bug here must not leave the daemon waiting
                traceback.print_exc()  # to the daemon's stderr: the journal
                frame = (ident, _FAILED, f"sender process: {exc}")
            else:
                frame = (ident, reply.status_code, reply.body)
            frames.post(frame)
        scopes.pop(ident, None)

    async def write(done: trio.CancelScope) -> None:
        await frames.write_loop()
        done.cancel()  # the daemon is gone

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, nursery.cancel_scope)
            # Until the daemon closes the pipe, or dies.
            while (batch := await frames.read()) is not None:
                for frame in batch:
                    if frame[0] == _REQUEST:
                        # The scope exists from here, so a cancel in the same batch
                        # finds it.
                        scope = scopes[frame[1]] = trio.CancelScope()
                        nursery.start_soon(exchange, scope, *frame[1:])
                    else:
                        dropped = scopes.pop(frame[1], None)
                        if dropped is not None:
                            dropped.cancel()
            nursery.cancel_scope.cancel()
    finally:
        await client.aclose()


def main(argv: list[str]) -> None:
    """The child's entry: ``python -m daemon.notify.sender FD_IN FD_OUT TIMEOUT LIMIT``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd_in, fd_out = int(argv[0]), int(argv[1])
    os.set_blocking(fd_in, False)
    os.set_blocking(fd_out, False)
    trio.run(_child, fd_in, fd_out, float(argv[2]), int(argv[3]))


if __name__ == "__main__":
    main(sys.argv[1:])
