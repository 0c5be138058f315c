"""systemd's notify protocol (``sd_notify``): readiness, reload, stop, status and the
watchdog, spoken directly over the ``NOTIFY_SOCKET`` datagram socket.

The protocol is a few lines: each message is one ``AF_UNIX`` datagram of
newline-separated ``KEY=value`` assignments, sent to the path in ``NOTIFY_SOCKET`` (a
leading ``@`` names an abstract socket). Without ``NOTIFY_SOCKET`` every call is a
no-op, so the daemon behaves the same outside systemd.

Rules:

* ``READY=1`` is sent once the state is loaded, the listeners are bound and the cluster
  has settled (or its settle timeout passed): the process shell decides when.
* A reload is bracketed by ``RELOADING=1`` with ``MONOTONIC_USEC`` (as systemd 253's
  ``Type=notify-reload`` asks) and ``READY=1``; shutdown starts with ``STOPPING=1``.
* The watchdog (``WATCHDOG_USEC``, set by ``WatchdogSec=``) is fed from the event loop
  itself at half the interval, so a stalled loop stops the pings and systemd restarts
  the daemon. ``WATCHDOG_PID``, when set, must be ours.
* Sending never blocks the loop: the socket is non-blocking and a message that does not
  fit the receiver's queue is dropped (systemd reads its queue continuously).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog
import trio

log = structlog.get_logger(__name__)


def message(**fields: str | int) -> bytes:
    """One notify datagram: ``KEY=value`` lines (keys as given, upper case)."""
    return "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or None when off."""
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None
    return int(usec) / 1e6 / 2


class Notifier:
    """The notify socket of this process (a no-op without ``NOTIFY_SOCKET``)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        self._sock: socket.socket | None = None
        #: Whether READY=1 went out (a reload before that must not claim readiness).
        self.was_ready = False
        self.watchdog_interval = watchdog_interval(env, os.getpid()) if path else None
        if path:
            # "@name" is Linux's abstract namespace: a leading NUL byte.
            self._address = "\0" + path[1:] if path.startswith("@") else path
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> None:
        """Send one message; drops it (logged at debug) if the socket cannot take it."""
        if self._sock is None or self._address is None:
            return
        try:
            self._sock.sendto(message(**fields), self._address)
        except OSError as exc:
            log.debug("systemd.notify_failed", err=str(exc), fields=list(fields))

    def ready(self, status: str = "") -> None:
        self.was_ready = True
        self.send(ready=1, **({"status": status} if status else {}))

    def reloading(self) -> None:
        self.send(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        self.send(stopping=1)

    def status(self, text: str) -> None:
        self.send(status=text)

    async def feed_watchdog(self) -> None:
        """Ping the watchdog from the event loop until cancelled (returns at once when off)."""
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.send(watchdog=1)
            await trio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["Notifier", "message", "watchdog_interval"]
