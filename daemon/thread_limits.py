"""One worker-thread limiter per kind of blocking work, so one kind cannot starve another.

trio's default limiter is one pool of 40 threads for every ``to_thread.run_sync`` call
without a ``limiter``. With one pool, 40 sends to a mail server that never answers (each
waits up to its 60 s timeout) would hold every thread, and a silence's fsync, which the
API waits for before it answers, would queue behind them. Each kind gets its own limiter
instead:

* :func:`disk`: journal appends, fsyncs and snapshots (``daemon/persist.py``);
* :func:`dns`: host name look-ups, for every ``trio.socket.getaddrinfo`` call (cluster
  peers, receivers' HTTP connections) once :func:`install_resolver` has run;
* :func:`smtp`: the email receiver's blocking SMTP dialogue;
* :func:`config_reload`: reading and parsing the config file and templates.

The limiters live in :class:`trio.lowlevel.RunVar`\\ s, like trio's own default limiter,
so each ``trio.run`` (each test) gets fresh ones.
"""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Callable
from typing import Any

import trio
from trio.lowlevel import RunVar

#: Threads per kind. Disk work is serialised per journal anyway; a few journals (silences,
#: nflog, per tenant) may write at once. SMTP sends block for up to their timeout each.
DISK_THREADS = 8
DNS_THREADS = 16
SMTP_THREADS = 16
CONFIG_THREADS = 2


def _limiter(name: str, total: int) -> Callable[[], trio.CapacityLimiter]:
    var: RunVar[trio.CapacityLimiter] = RunVar(name)

    def get() -> trio.CapacityLimiter:
        try:
            return var.get()
        except LookupError:
            limiter = trio.CapacityLimiter(total)
            var.set(limiter)
            return limiter

    get.__name__ = name
    get.__doc__ = f"This run's limiter for {name} threads ({total} at most)."
    return get


disk = _limiter("disk", DISK_THREADS)
dns = _limiter("dns", DNS_THREADS)
smtp = _limiter("smtp", SMTP_THREADS)
config_reload = _limiter("config_reload", CONFIG_THREADS)


class LimitedResolver(trio.abc.HostnameResolver):
    """The system resolver in worker threads from :func:`dns` (trio's default, otherwise)."""

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        """``socket.getaddrinfo`` in a :func:`dns` thread (trio tried numeric hosts first)."""
        # A look-up is abandoned on cancel (as trio's own is): the thread finishes alone.
        look_up = functools.partial(socket.getaddrinfo, host, port, family, type, proto, flags)
        return await trio.to_thread.run_sync(look_up, abandon_on_cancel=True, limiter=dns())

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        """``socket.getnameinfo`` in a :func:`dns` thread."""
        return await trio.to_thread.run_sync(
            socket.getnameinfo, sockaddr, flags, abandon_on_cancel=True, limiter=dns()
        )


#: How long a worker thread running Python code (the history writer, snapshot encoding)
#: may keep the GIL once the event-loop thread wants it. Every syscall the loop makes
#: (each send, each epoll) gives the GIL up and waits this long to get it back, so with
#: CPython's 5 ms default one flush step of a dozen sends waited 60-90 ms.
GIL_SWITCH_INTERVAL = 0.001


def share_the_gil() -> None:
    """Set the process's GIL switch interval to :data:`GIL_SWITCH_INTERVAL`."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


def install_resolver() -> None:
    """Route this run's host name look-ups through :func:`dns`'s threads."""
    trio.socket.set_custom_hostname_resolver(LimitedResolver())
