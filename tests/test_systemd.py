"""The sd_notify protocol against a real AF_UNIX datagram socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from daemon.systemd import Notifier, message, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_message_is_key_value_lines() -> None:
    """Fields become upper-case KEY=value lines, in the order given."""
    assert message(ready=1, status="3 alerts") == b"READY=1\nSTATUS=3 alerts"


def test_watchdog_interval_is_half_the_timeout_for_us_only() -> None:
    """WATCHDOG_USEC gives a ping every half interval, unless WATCHDOG_PID names another."""
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}, 7) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 7) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "8"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval({}, 7) is None


def test_notifier_sends_ready_reloading_stopping(
    notify_socket: tuple[str, socket.socket],
) -> None:
    """Each call is one datagram on NOTIFY_SOCKET; RELOADING carries MONOTONIC_USEC."""
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("up")
    notifier.reloading()
    notifier.stopping()
    got = [sock.recv(4096) for _ in range(3)]
    assert got[0] == b"READY=1\nSTATUS=up"
    reloading = dict(line.split("=", 1) for line in got[1].decode().splitlines())
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    assert got[2] == b"STOPPING=1"
    notifier.close()


def test_notifier_without_socket_is_silent() -> None:
    """Outside systemd every call is a no-op."""
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready()
    notifier.stopping()


def test_abstract_socket_name(tmp_path: Path) -> None:
    """A NOTIFY_SOCKET starting with @ is Linux's abstract namespace."""
    name = f"tocsin-test-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.status("hi")
        notifier.close()
        assert sock.recv(100) == b"STATUS=hi"


async def test_watchdog_pings_at_half_interval(
    notify_socket: tuple[str, socket.socket], autojump_clock: trio.testing.MockClock
) -> None:
    """With WATCHDOG_USEC=10 s the loop sends WATCHDOG=1 every 5 s."""
    path, sock = notify_socket
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
    with trio.move_on_after(12):
        await notifier.feed_watchdog()
    notifier.close()
    got = []
    while True:
        try:
            got.append(sock.recv(100))
        except BlockingIOError:
            break
    assert got == [b"WATCHDOG=1"] * 3  # at 0, 5 and 10 s
