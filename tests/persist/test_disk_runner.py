"""The disk runner (``run_in_thread``): a worker thread from trio's cache under the disk
limiter, whose job, once handed over, always finishes before its caller goes on."""

from __future__ import annotations

import contextvars
import threading

import pytest
import trio
import trio.testing

from daemon import thread_limits
from daemon.persist import run_in_thread


async def test_runs_the_job_off_the_loop_thread_and_returns_its_value() -> None:
    """The job runs in another thread and its value comes back."""
    assert await run_in_thread(threading.get_ident) != threading.get_ident()


async def test_the_jobs_exception_reaches_the_caller() -> None:
    """An error raised by the job is raised to the caller, unchanged."""

    def fail() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await run_in_thread(fail)


async def test_a_caller_cancelled_before_the_hand_off_runs_nothing() -> None:
    """Cancelled before it starts, the job never runs and the limiter is not held."""
    ran: list[int] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await run_in_thread(lambda: ran.append(1))
    assert ran == []
    assert thread_limits.disk().borrowed_tokens == 0


async def test_a_started_job_finishes_before_the_cancellation_is_seen() -> None:
    """Cancelled while its job runs, the caller waits for the job, then is cancelled."""
    started, release = threading.Event(), threading.Event()
    finished: list[int] = []

    def job() -> None:
        started.set()
        release.wait(10)
        finished.append(1)

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_once_started() -> None:
                await trio.to_thread.run_sync(started.wait, 10)
                scope.cancel()
                # Still running: the caller must not have been released yet.
                assert finished == []
                release.set()

            nursery.start_soon(cancel_once_started)
            await run_in_thread(job)
            # Cancellation is level-triggered: the next checkpoint raises it.
            await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert finished == [1]
    assert thread_limits.disk().borrowed_tokens == 0


async def test_jobs_wait_for_a_disk_thread_when_all_are_busy() -> None:
    """No more jobs run at once than the disk limiter allows; the rest queue."""
    limiter = thread_limits.disk()
    limiter.total_tokens = 2
    running = 0
    most = 0
    lock = threading.Lock()
    gate, two_running = threading.Event(), threading.Event()

    def job() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            if running == 2:
                two_running.set()
        gate.wait(10)
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(run_in_thread, job)
        # Every task is then either waiting for its thread or for the limiter.
        await trio.testing.wait_all_tasks_blocked()
        assert limiter.borrowed_tokens == 2
        assert limiter.statistics().tasks_waiting == 3
        await trio.to_thread.run_sync(two_running.wait, 10)
        gate.set()
    assert most == 2
    assert limiter.borrowed_tokens == 0


async def test_the_job_runs_in_the_callers_context() -> None:
    """Context variables set by the caller (structlog's bound fields, a tenant pipeline's
    ``tenant``) are seen by the job in the disk thread, as with ``trio.to_thread``."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("the caller's")
    assert await run_in_thread(var.get) == "the caller's"
