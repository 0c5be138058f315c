"""The receivers firewall: a tenant's notifications may not connect to blocked addresses.

Mimir's ``alertmanager_receivers_firewall_block_cidr_networks`` and
``..._block_private_addresses``, checked where Mimir checks them: at connect time, on
the address the name resolved to. So a hostname that resolves to 127.0.0.1 is refused
like the literal address, a redirect to a blocked address is refused, and a name that
resolves differently between a check and the connect (DNS rebinding) cannot slip
through, because the address checked is the address connected to.

Theory of operation:

* Each tenant instance owns a :class:`ReceiverFirewall` (its rules change in place
  when the tenant's limits do) and makes it current, through a context variable, in
  the task that runs its pipelines (:func:`use`). trio copies the context into every
  task that task starts, so every flush, retry and redirect of that tenant sees it;
  the global pipeline, the API and the cluster never do.
* :func:`install` sets trio's socket factory (once per run) to make sockets whose
  ``connect`` first asks the current firewall, if any, about the numeric address. Every
  outgoing connection of the notifiers goes through trio sockets: the HTTP/1 client,
  httpx (httpcore's trio backend) and so redirects and proxies.
* ``email`` sends through ``smtplib`` in a worker thread, which does not use trio
  sockets; trio copies the context into the thread too, and the email integration
  connects through :func:`create_connection`, which resolves the name, checks every
  address and connects only to the checked ones.
* A refused connect raises :class:`BlockedAddress` (an ``OSError``), which the
  senders report as a failed dial: the notification fails like an unreachable
  receiver, and is counted by the owner's ``on_block`` hook.
"""

from __future__ import annotations

import contextvars
import errno
import ipaddress
import socket as stdlib_socket
from collections.abc import Callable, Sequence
from typing import Any

import structlog
import trio
from trio import _socket as trio_socket_impl

log = structlog.get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(PermissionError):
    """A connect the receivers firewall refused."""


#: The limit each rule enforces (Mimir's name without ``alertmanager_``).
BLOCK_CIDR = "receivers_firewall_block_cidr_networks"
BLOCK_PRIVATE = "receivers_firewall_block_private_addresses"


class ReceiverFirewall:
    """A tenant's blocked networks; ``on_block`` hears the limit that refused each
    connect (:data:`BLOCK_CIDR` or :data:`BLOCK_PRIVATE`)."""

    def __init__(
        self,
        networks: Sequence[Network] = (),
        block_private: bool = False,
        on_block: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.networks = tuple(networks)
        self.block_private = block_private
        self.on_block = on_block

    def set_rules(self, networks: Sequence[Network], block_private: bool) -> None:
        self.networks = tuple(networks)
        self.block_private = block_private

    @property
    def active(self) -> bool:
        return bool(self.networks or self.block_private)

    def blocked_by(self, address: str) -> str | None:
        """The limit that refuses a connect to the numeric ``address``, or None."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            # ::ffff:127.0.0.1 reaches 127.0.0.1.
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.networks):
            return BLOCK_CIDR
        if self.block_private and is_private(ip):
            return BLOCK_PRIVATE
        return None


def is_private(ip: IPAddress) -> bool:
    """Loopback, link-local, unspecified (0.0.0.0 reaches the local host) and the IANA
    private-use ranges (10/8, 172.16/12, 192.168/16, fc00::/7, ...)."""
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified


_CURRENT: contextvars.ContextVar[ReceiverFirewall | None] = contextvars.ContextVar(
    "tocsin_receiver_firewall", default=None
)


def use(firewall: ReceiverFirewall | None) -> contextvars.Token[ReceiverFirewall | None]:
    """Make ``firewall`` current for this task and the tasks it starts from now on."""
    install()
    return _CURRENT.set(firewall)


def reset(token: contextvars.Token[ReceiverFirewall | None]) -> None:
    _CURRENT.reset(token)


def _refuse(firewall: ReceiverFirewall, host: str, port: int) -> BlockedAddress | None:
    """The error for a connect to numeric ``host`` the firewall refuses (counted and
    logged), or None."""
    limit = firewall.blocked_by(host)
    if limit is None:
        return None
    firewall.on_block(limit)
    log.warning("notify.firewall_blocked", address=host, port=port, limit=limit)
    return BlockedAddress(errno.EACCES, f"address {host} is blocked by the receivers firewall")


def guarding() -> bool:
    """Whether a firewall with rules is current in this task's context."""
    firewall = _CURRENT.get()
    return firewall is not None and firewall.active


def check(host: str, port: int) -> None:
    """Raise :class:`BlockedAddress` if the current firewall refuses the numeric address
    ``host`` (for a connect made without a trio socket from the factory)."""
    firewall = _CURRENT.get()
    if firewall is None or not firewall.active:
        return
    refused = _refuse(firewall, host, port)
    if refused is not None:
        raise refused


def create_connection(
    host: str, port: int, timeout: float, source_address: Any = None
) -> stdlib_socket.socket:
    """``socket.create_connection`` for blocking code in a worker thread (SMTP), through
    the current firewall: only addresses it allows are connected to."""
    firewall = _CURRENT.get()
    if firewall is None or not firewall.active:
        return stdlib_socket.create_connection((host, port), timeout, source_address)
    error: OSError | None = None
    for family, kind, proto, _, address in stdlib_socket.getaddrinfo(
        host, port, 0, stdlib_socket.SOCK_STREAM
    ):
        refused = _refuse(firewall, str(address[0]), port)
        if refused is not None:
            error = refused
            continue
        sock = stdlib_socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error or OSError(f"no address for {host}")


class _FirewalledSocket(trio_socket_impl._SocketType):
    """A trio socket whose ``connect`` asks the current firewall first.

    trio has no public hook on connect; its socket class is subclassed here so that
    the check sees exactly the address the kernel is asked to connect to.
    """

    async def connect(self, address: Any) -> None:
        firewall = _CURRENT.get()
        if (
            firewall is not None
            and firewall.active
            and self.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6)
        ):
            host, port = address[0], address[1]
            try:
                ipaddress.ip_address(str(host).split("%", 1)[0])
            except ValueError:
                # A name given to connect itself: resolve it here and connect to the
                # checked address, so the check and the connect agree.
                infos = await trio.socket.getaddrinfo(host, port, self.family, self.type)
                address = (infos[0][4][0], port, *address[2:])
                host = address[0]
            check(str(host), port)
        await super().connect(address)


class _FirewallSocketFactory(trio.abc.SocketFactory):
    def socket(
        self,
        family: stdlib_socket.AddressFamily | int = stdlib_socket.AF_INET,
        type: stdlib_socket.SocketKind | int = stdlib_socket.SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        return _FirewalledSocket(stdlib_socket.socket(family, type, proto))


_FACTORY = _FirewallSocketFactory()


def install() -> None:
    """Make trio's sockets in this run check the current firewall (idempotent)."""
    previous = trio.socket.set_custom_socket_factory(_FACTORY)
    if previous is not None and previous is not _FACTORY:
        # Someone else's factory: keep theirs and say so rather than replace it.
        trio.socket.set_custom_socket_factory(previous)
        raise RuntimeError("another trio socket factory is installed")


__all__ = [
    "BLOCK_CIDR",
    "BLOCK_PRIVATE",
    "BlockedAddress",
    "ReceiverFirewall",
    "check",
    "create_connection",
    "install",
    "is_private",
    "reset",
    "use",
]
