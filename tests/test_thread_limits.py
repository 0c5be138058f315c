"""Each kind of blocking work has its own worker threads (issue 9: one shared pool of 40)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from daemon import thread_limits
from daemon.notify.receivers import email
from daemon.persist import DurableState
from tests.notify.receivers.conftest import (
    ctx,
    env_with,
    firing,
    integration_config,
    real_templates,
    recorder,
)

#: More stalled sends than trio's default limiter has threads (40).
STALLED_SENDS = 50


async def test_stalled_smtp_server_does_not_delay_a_silence_write(tmp_path: Path) -> None:
    """50 sends stuck on a mail server that never greets; a journal write+fsync still runs."""
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(STALLED_SENDS + 10)  # connections wait in the backlog, never accepted
    port = stalled.getsockname()[1]
    conf = integration_config(
        "email", f"{{to: 'ops@example.com', smarthost: '127.0.0.1:{port}', require_tls: false}}"
    )
    _, handler = recorder()
    integration = email.build(conf, 0, env_with(handler, real_templates()))

    async def send() -> None:
        await integration.notify(ctx(), [firing()])

    try:
        async with trio.open_nursery() as nursery:
            for _ in range(STALLED_SENDS):
                nursery.start_soon(send)
            with trio.fail_after(10):
                # Every send is then in a thread, stuck on the greeting, or queued for one.
                await trio.testing.wait_all_tasks_blocked(0.2)
            assert thread_limits.smtp().borrowed_tokens == thread_limits.SMTP_THREADS
            started = time.monotonic()
            with trio.fail_after(5):
                state = await DurableState.open(tmp_path, "silences")
                await state.append(b"a silence")
                await state.aclose()
            assert time.monotonic() - started < 2
            assert thread_limits.smtp().borrowed_tokens == thread_limits.SMTP_THREADS
            nursery.cancel_scope.cancel()
    finally:
        # Resets the connections in the backlog, so the abandoned threads end now.
        stalled.close()


async def test_host_name_look_ups_use_the_dns_threads() -> None:
    """Once installed, trio.socket.getaddrinfo of a name runs in a dns-limiter thread."""
    thread_limits.install_resolver()
    limiter = thread_limits.dns()
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(limiter.borrowed_tokens)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        answers = await trio.socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        nursery.cancel_scope.cancel()
    assert answers
    assert max(seen) == 1


async def test_each_run_gets_fresh_limiters() -> None:
    """The limiters are per trio run, with the documented sizes, and distinct per kind."""
    kinds = [
        thread_limits.disk(),
        thread_limits.dns(),
        thread_limits.smtp(),
        thread_limits.config_reload(),
    ]
    assert len({id(k) for k in kinds}) == 4
    assert [k.total_tokens for k in kinds] == [
        thread_limits.DISK_THREADS,
        thread_limits.DNS_THREADS,
        thread_limits.SMTP_THREADS,
        thread_limits.CONFIG_THREADS,
    ]
    assert thread_limits.disk() is kinds[0]


def test_share_the_gil_shortens_the_switch_interval() -> None:
    """Worker threads give the GIL back to the event loop within 1 ms, not CPython's 5 ms."""
    before = sys.getswitchinterval()
    try:
        thread_limits.share_the_gil()
        assert sys.getswitchinterval() == pytest.approx(thread_limits.GIL_SWITCH_INTERVAL)
        assert thread_limits.GIL_SWITCH_INTERVAL < 0.005
    finally:
        sys.setswitchinterval(before)
