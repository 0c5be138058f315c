"""The daemon's side of the HA cluster: one :class:`ClusterPeer` per process.

Theory of operation. :mod:`cluster` knows nothing about silences or the nflog; this
module is the glue Alertmanager keeps in ``cmd/alertmanager/main.go`` and
``cluster/cluster.go``:

* :meth:`ClusterPeer.run` binds UDP and TCP on ``--cluster.listen-address``, picks the
  advertise address, starts a :class:`cluster.node.Node` named by a fresh ULID with the
  ``"sil"`` and ``"nfl"`` states registered, joins the resolved ``--cluster.peer``
  addresses, and reports ready. On cancellation it gossips a graceful leave (shielded,
  bounded by ``leave_timeout``) before the sockets close.
* Local changes are broadcast: the peer subscribes to :meth:`Silences.subscribe` and
  :meth:`Nflog.subscribe` while it runs, beside the durable journal's own listeners.
* Records merged from a peer (:mod:`daemon.ha.channels`) are re-gossiped, one record at
  a time, only if the received data was at most 700 bytes (an oversized message already
  went to every member by TCP), as Alertmanager's ``Merge`` does.
* For the notification pipeline: :meth:`ClusterPeer.wait_settled` (the gossip settle
  stage, first of every receiver) and :meth:`ClusterPeer.peer_wait` (``position *
  peer_timeout`` seconds). For the API: :meth:`ClusterPeer.cluster_status`. The
  ``alertmanager_cluster_*`` metrics (:mod:`daemon.ha.metrics`) are served by a
  collector registered while the peer runs, so a daemon without clustering exposes none.

Error handling: an address that cannot be bound raises :class:`OSError` from
:meth:`ClusterPeer.run` before ``task_status.started()``; an unusable flag raises
:class:`PeerSetupError`. Peers that cannot be reached or resolved are logged and
retried (Node's reconnect loop, our refresh loop), never fatal.

Cancellation: cancelling :meth:`ClusterPeer.run` leaves the cluster first (the node
keeps running in a shielded scope until the leave went out or ``leave_timeout``
passed), then closes the sockets.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import random
import socket
from collections.abc import Callable, Iterable, Sequence

import structlog
import trio

from cluster.channel import (
    NFLOG_KEY,
    SILENCES_KEY,
)
from cluster.framing import MAX_LABEL_LENGTH
from cluster.membership import Address, MemberJoined, MemberLeft
from cluster.node import (
    ChannelDelegate,
    MemberEvent,
    Node,
    NodeConfig,
    ulid_name,
)
from cluster.security import Keyring, KeyringError
from cluster.state import State
from cluster.tls_transport import TLSTransport, open_tls_transport
from cluster.transport import Transport, open_udp_tcp_transport
from daemon import metrics
from daemon.clock import NS_PER_MS, NS_PER_SECOND, Clock
from daemon.ha.channels import Counters, CountingDelegate, NflogChannel, SilencesChannel
from daemon.ha.metrics import COLLECTOR
from daemon.ha.tls_config import (
    ClusterTLS,
    ClusterTLSError,
    load_cluster_tls,
)
from daemon.nflog.codec import encode_state
from daemon.nflog.state import Entry, Nflog
from daemon.options import Options
from daemon.silence.state import Silences
from daemon.silence.state import gossip_propagated as silences_propagated

log = structlog.get_logger("tocsin.peer")

#: Alertmanager's ``DefaultClusterAddr`` port, used when an address has no port.
DEFAULT_PORT = 9094
#: Message types of ``alertmanager_cluster_messages_*`` (Alertmanager's labels).
MSG_TYPES = ("full_state", "update")


class PeerSetupError(ValueError):
    """A ``--cluster.*`` flag tocsin cannot honour (the daemon should exit)."""


# --- addresses (pure) --------------------------------------------------------------------


def split_host_port(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as a pair; an empty host stays empty.

    Raises:
        PeerSetupError: the port is not a number in 0..65535.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:  # a bare IPv6 literal
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise PeerSetupError(f"invalid port in address {text!r}") from None
    if not 0 <= port <= 65535:
        raise PeerSetupError(f"invalid port in address {text!r}")
    return host, port


def join_host_port(address: Address) -> str:
    """Go's ``net.JoinHostPort``: IPv6 hosts in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_unspecified(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def _private_candidates(addresses: Iterable[str], allow_public: bool) -> str | None:
    """The first private (RFC 6890) non-loopback IP, else a public one if allowed."""
    public: str | None = None
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            continue
        if ip.is_private:
            return str(ip)
        if public is None:
            public = str(ip)
    return public if allow_public else None


def choose_advertise_address(
    opts: Options, bound: Address, host_addresses: Sequence[str]
) -> Address:
    """Alertmanager's advertise rules, simplified (``cluster-wire.md`` §2.9).

    ``--cluster.advertise-address`` if given (its host must be an IP); else the bound IP
    if it is specific; else the first private address of this host (a public one only
    with ``--cluster.allow-insecure-public-advertise-address-discovery``), else loopback
    with a warning. The port defaults to the bound port.

    Raises:
        PeerSetupError: the advertise address is not an IP literal.
    """
    if opts.cluster_advertise_address:
        host, port = split_host_port(opts.cluster_advertise_address, bound[1])
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise PeerSetupError(
                f"--cluster.advertise-address: {host!r} is not an IP address"
            ) from None
        return str(ip), port
    if not _is_unspecified(bound[0]):
        return bound
    chosen = _private_candidates(
        host_addresses, opts.cluster_allow_insecure_public_advertise_address_discovery
    )
    if chosen is None:
        log.warning("cluster.no_private_address", fallback="127.0.0.1")
        chosen = "127.0.0.1"
    return chosen, bound[1]


def parse_gossip_keys(text: str) -> Keyring:
    """A keyring from base64 keys, one a line (blank lines and ``#`` comments skipped).

    The first key is primary (it encrypts); the others are only tried when decrypting,
    which is what a rolling key rotation needs.

    Raises:
        PeerSetupError: a line is not base64, a key is not 16, 24 or 32 bytes, or there
            is no key at all.
    """
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise PeerSetupError(f"gossip key on line {number} is not base64: {exc}") from None
        if len(key) not in (16, 24, 32):
            raise PeerSetupError(
                f"gossip key on line {number} is {len(key)} bytes, not 16, 24 or 32"
            )
        keys.append(key)
    try:
        return Keyring.create(keys)
    except KeyringError as exc:
        raise PeerSetupError(f"no usable gossip key: {exc}") from None


def load_gossip_keys(path: str) -> Keyring:
    """Read ``--cluster.gossip-key-file`` (see :func:`parse_gossip_keys`).

    Raises:
        PeerSetupError: the file cannot be read or holds no valid key.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise PeerSetupError(f"--cluster.gossip-key-file: {exc}") from None
    try:
        return parse_gossip_keys(text)
    except PeerSetupError as exc:
        raise PeerSetupError(f"--cluster.gossip-key-file {path}: {exc}") from None


def open_port_warning(bind_host: str, *, keyed: bool, tls: bool) -> str | None:
    """What to warn about a cluster port bound to ``bind_host``, or None if nothing.

    The cluster port authenticates nobody unless a gossip key or mutual TLS is set, and
    what it accepts is applied at once; on loopback only this host can reach it.
    """
    if keyed or tls:
        return None
    try:
        if ipaddress.ip_address(bind_host).is_loopback:
            return None
    except ValueError:
        pass  # a name: assume it can be reached from elsewhere
    return (
        "the cluster port has neither --cluster.gossip-key-file nor --cluster.tls-config: "
        "anyone who can reach it can join the cluster, create and expire silences and "
        "forge notification-log entries (suppressing or repeating notifications); set a "
        "gossip key or mutual TLS, or firewall the port to the other Alertmanagers"
    )


def cluster_label(text: str) -> bytes:
    """``--cluster.label`` as the bytes memberlist puts on the wire.

    Raises:
        PeerSetupError: longer than 255 bytes (its length travels in one byte).
    """
    label = text.encode("utf-8")
    if len(label) > MAX_LABEL_LENGTH:
        raise PeerSetupError(
            f"--cluster.label: {len(label)} bytes is too long; the limit is {MAX_LABEL_LENGTH}"
        )
    return label


def node_config(opts: Options) -> NodeConfig:
    """The node's settings from the ``--cluster.*`` flags (ns → seconds).

    As Alertmanager, gossip fan-out and retransmits are ``max(3, len(peers) / 2)``;
    unlike it, local changes are also sent to every peer at once.
    The gossip key file is read here, once, at start.

    Raises:
        PeerSetupError: the gossip key file is unreadable or invalid, or the label is
            too long.
    """

    def sec(ns: int) -> float:
        return ns / NS_PER_SECOND

    retransmit = max(3, len(opts.cluster_peers) // 2)
    return NodeConfig(
        probe_interval=sec(opts.cluster_probe_interval),
        probe_timeout=sec(opts.cluster_probe_timeout),
        gossip_interval=sec(opts.cluster_gossip_interval),
        push_pull_interval=sec(opts.cluster_pushpull_interval),
        gossip_nodes=retransmit,
        user_retransmit_mult=retransmit,
        tcp_timeout=sec(opts.cluster_tcp_timeout),
        reconnect_interval=sec(opts.cluster_reconnect_interval),
        reconnect_timeout=sec(opts.cluster_reconnect_timeout),
        settle_timeout=sec(opts.cluster_settle_timeout),
        # Every local silence and nflog entry also goes straight to each peer: gossip
        # alone now and then misses one, and a missed nflog entry is a duplicate.
        direct_user_messages=True,
        keyring=load_gossip_keys(opts.cluster_gossip_key_file)
        if opts.cluster_gossip_key_file
        else None,
        label=cluster_label(opts.cluster_label),
    )


async def resolve_peers(peers: Iterable[str], own: Address) -> tuple[list[Address], list[str]]:
    """Resolve ``--cluster.peer`` entries; returns the addresses and the names that failed.

    Every A/AAAA answer counts (as Alertmanager's resolver); our own address is dropped.
    """
    resolved: list[Address] = []
    failed: list[str] = []
    for text in peers:
        try:
            host, port = split_host_port(text)
        except PeerSetupError:
            log.warning("cluster.peer_invalid", peer=text)
            continue
        try:
            answers = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            log.warning("cluster.peer_unresolved", peer=text, err=str(exc))
            failed.append(text)
            continue
        for family, _, _, _, sockaddr in answers:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = (str(sockaddr[0]), int(sockaddr[1]))
            if address != own and address not in resolved:
                resolved.append(address)
    return resolved, failed


# --- the peer ------------------------------------------------------------------------------


class ClusterPeer:
    """This daemon as a cluster member (see the module docstring).

    Construct it before the first pipeline is built (the stage and wait refer to it),
    and start :meth:`run` after silences and nflog are loaded and their journal listeners
    are subscribed, so the first push/pull carries the loaded state.
    """

    def __init__(
        self,
        opts: Options,
        silences: Silences,
        nflog: Nflog,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        host_addresses: Callable[[], Sequence[str]] | None = None,
        leave_timeout: float = 10.0,
    ) -> None:
        #: Alertmanager's TLS transport (``--cluster.tls-config``) instead of UDP and TCP.
        self.tls: ClusterTLS | None = None
        if opts.cluster_tls_config:
            try:
                self.tls = load_cluster_tls(opts.cluster_tls_config)
            except ClusterTLSError as exc:
                raise PeerSetupError(str(exc)) from None
        self.tls_transport: TLSTransport | None = None
        self.opts = opts
        self.silences = silences
        self.nflog = nflog
        self.clock = clock
        self._rng = rng or random.Random()
        self.name = ulid_name(clock.now() // NS_PER_MS, self._rng)
        self.config = node_config(opts)
        self.peer_timeout = opts.cluster_peer_timeout / NS_PER_SECOND
        self.leave_timeout = leave_timeout
        self.counters = Counters()
        self._host_addresses = host_addresses or _host_addresses
        self._settled = trio.Event()
        self._node: Node | None = None
        self._channels: ChannelDelegate | None = None
        #: Tenant pipelines to gossip (see add_tenant), and how to stop each.
        self._tenants: dict[str, tuple[Silences, Nflog]] = {}
        #: tocsin-only states registered by add_state (tenant configs).
        self._extra_states: dict[str, State] = {}
        self._detach_tenant: dict[str, Callable[[], None]] = {}

    # --- queries ---------------------------------------------------------------------------

    @property
    def node(self) -> Node:
        """The running node.

        Raises:
            RuntimeError: :meth:`run` has not started it.
        """
        if self._node is None:
            raise RuntimeError("the cluster peer is not running")
        return self._node

    @property
    def running_node(self) -> Node | None:
        """The node while :meth:`run` runs it, else None."""
        return self._node

    @property
    def ready(self) -> bool:
        """True once gossip settled (or the settle timeout passed)."""
        return self._settled.is_set()

    async def wait_settled(self) -> None:
        """Wait until gossip settled (Alertmanager's ``WaitReady``)."""
        await self._settled.wait()

    def position(self) -> int:
        """Our index among live members sorted by name (0 before the node runs)."""
        return self._node.position() if self._node is not None else 0

    def peer_wait(self) -> float:
        """The HA wait in seconds, ``position * peer_timeout``, for ``build_notifiers``."""
        return self.position() * self.peer_timeout

    def cluster_status(self) -> dict[str, object]:
        """``/api/v2/status``'s ``cluster`` object: name, ready|settling, peers by name."""
        members = self._node.members() if self._node is not None else []
        peers = sorted(
            ({"name": m.name, "address": join_host_port(m.address)} for m in members),
            key=lambda p: p["name"],
        )
        return {
            "name": self.name,
            "status": "ready" if self.ready else "settling",
            "peers": peers,
        }

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, start the node, join the peers, then serve until cancelled.

        ``task_status.started()`` is called once the first join attempt is over.

        Raises:
            OSError: the listen address cannot be bound.
            PeerSetupError: the listen or advertise address is unusable.
        """
        host, port = split_host_port(self.opts.cluster_listen_address)
        bind_host = host or "0.0.0.0"
        if not _is_ip(bind_host):
            resolved, _ = await resolve_peers([f"{bind_host}:{port}"], ("", -1))
            if not resolved:
                raise PeerSetupError(f"--cluster.listen-address: cannot resolve {host!r}")
            bind_host = resolved[0][0]
        async with self._open_transport(bind_host, port) as transport:
            if isinstance(transport, TLSTransport):
                self.tls_transport = transport
            self._warn_if_open(bind_host)
            advertise = choose_advertise_address(
                self.opts, transport.local_address, self._host_addresses()
            )
            channels = ChannelDelegate()
            node = Node(
                transport,
                self.name,
                config=self.config,
                delegate=CountingDelegate(channels, self.counters),
                rng=self._rng,
                on_event=self._member_event,
                advertise=advertise,
            )
            node_scope = trio.CancelScope(shield=True)

            async def run_node(*, task_status: trio.TaskStatus[None]) -> None:
                # Shielded so that cancelling run() still lets the leave go out; the
                # finally below cancels this scope once the leave is done.
                with node_scope:
                    await node.run(task_status=task_status)

            # States are registered before the node runs, so its first push/pull has them.
            self._channels = channels
            detach = self._attach(SILENCES_KEY, NFLOG_KEY, self.silences, self.nflog)
            for key, state in self._extra_states.items():
                channels.add_state(key, state)
            for tenant, (silences, nflog) in self._tenants.items():
                self._detach_tenant[tenant] = self._attach(*tenant_keys(tenant), silences, nflog)
            async with trio.open_nursery() as nursery:
                await nursery.start(run_node)
                self._node = node
                COLLECTOR.use(self)
                metrics.cluster_enabled.set(1)
                try:
                    peers, unresolved = await resolve_peers(self.opts.cluster_peers, advertise)
                    await node.join(peers)
                    nursery.start_soon(self._mark_settled, node)
                    nursery.start_soon(self._refresh, node, unresolved)
                    log.info(
                        "cluster.ready",
                        name=self.name,
                        address=join_host_port(advertise),
                        peers=[join_host_port(p) for p in peers],
                    )
                    task_status.started()
                    await trio.sleep_forever()
                finally:
                    detach()
                    for undo in self._detach_tenant.values():
                        undo()
                    self._detach_tenant.clear()
                    self._channels = None
                    COLLECTOR.release(self)
                    with trio.CancelScope(shield=True) as leave_scope:
                        leave_scope.deadline = trio.current_time() + self.leave_timeout
                        await node.leave()
                    node_scope.cancel()

    # --- internals -------------------------------------------------------------------------

    def _warn_if_open(self, bind_host: str) -> None:
        """One warning when anyone who reaches a non-loopback port is trusted fully."""
        warning = open_port_warning(
            bind_host, keyed=self.config.keyring is not None, tls=self.tls is not None
        )
        if warning is not None:
            log.warning(
                "cluster.unauthenticated", listen=self.opts.cluster_listen_address, msg=warning
            )

    def _open_transport(
        self, host: str, port: int
    ) -> contextlib.AbstractAsyncContextManager[Transport]:
        """UDP and TCP, or Alertmanager's TLS transport with ``--cluster.tls-config``."""
        if self.tls is None:
            return open_udp_tcp_transport(host, port)
        return open_tls_transport(
            host,
            port,
            self.tls.server_context,
            self.tls.client_context,
            server_name=self.tls.server_name,
        )

    def add_state(self, key: str, state: State) -> Callable[[bytes], None]:
        """Replicate ``state`` under the tocsin-only channel ``key`` (Alertmanager peers
        skip it); returns the function that broadcasts one local change. Call before or
        while :meth:`run` runs."""
        self._extra_states[key] = state
        if self._channels is not None:
            self._channels.add_state(key, state)
        return lambda record: self._broadcast(key, record)

    def add_tenant(self, tenant: str, silences: Silences, nflog: Nflog) -> Callable[[], None]:
        """Gossip a tenant pipeline's silences and nflog under tocsin-only keys
        (:func:`tenant_keys`); returns the function that stops it. Alertmanager peers
        skip the keys they do not know, so only ``"sil"`` and ``"nfl"`` (the global
        pipeline) reach them, and a tenant's nflog entries can never dedup another
        pipeline's notifications."""
        self._tenants[tenant] = (silences, nflog)
        if self._channels is not None:
            self._detach_tenant[tenant] = self._attach(*tenant_keys(tenant), silences, nflog)

        def remove() -> None:
            self._tenants.pop(tenant, None)
            undo = self._detach_tenant.pop(tenant, None)
            if undo is not None:
                undo()

        return remove

    def _attach(
        self, silences_key: str, nflog_key: str, silences: Silences, nflog: Nflog
    ) -> Callable[[], None]:
        """Register one pipeline's two states on the running node and broadcast their
        changes; returns the function that undoes both."""
        channels = self._channels
        assert channels is not None
        silences_channel = SilencesChannel(silences=silences, clock=self.clock)
        nflog_channel = NflogChannel(nflog=nflog, clock=self.clock)
        channels.add_state(silences_key, silences_channel)
        channels.add_state(nflog_key, nflog_channel)
        silence_propagations = metrics.pipeline_series(silences_propagated, silences.tenant)
        nflog_propagations = metrics.pipeline_series(
            metrics.nflog_gossip_messages_propagated, nflog.tenant
        )

        def on_silence(record: bytes) -> None:
            # Called for our own writes and for every record a merge stored.
            if silences_channel.merging:
                if silences_channel.merging_oversized:
                    return
                silence_propagations.inc()
            self._broadcast(silences_key, record)

        def on_nflog_entry(entry: Entry) -> None:
            # Called for our own log() and for every entry a merge stored.
            if nflog_channel.merging:
                if nflog_channel.merging_oversized:
                    return
                nflog_propagations.inc()
            # Delimited, as Alertmanager's nflog broadcasts (pbutil.WriteDelimited).
            self._broadcast(nflog_key, encode_state([entry]))

        unsubscribe_silences = silences.subscribe(on_silence)
        unsubscribe_nflog = nflog.subscribe(on_nflog_entry)

        def detach() -> None:
            unsubscribe_silences()
            unsubscribe_nflog()
            channels.states.pop(silences_key, None)
            channels.states.pop(nflog_key, None)

        return detach

    def _broadcast(self, key: str, record: bytes) -> None:
        if self._node is None:
            return
        self._node.broadcast(key, record)

    def _member_event(self, event: MemberEvent) -> None:
        if isinstance(event, MemberJoined):
            self.counters.joined += 1
        elif isinstance(event, MemberLeft):
            self.counters.left += 1
        else:
            self.counters.updated += 1

    async def _mark_settled(self, node: Node) -> None:
        await node.wait_settled()
        self._settled.set()

    async def _refresh(self, node: Node, unresolved: list[str]) -> None:
        """Re-resolve names that failed at start; join what they resolve to.

        Node's own refresh re-joins known addresses that dropped out; this covers
        peers whose DNS name did not resolve yet when we started.
        """
        pending = list(unresolved)
        while pending:
            await trio.sleep(node.config.refresh_interval)
            addresses, pending = await resolve_peers(pending, node.address)
            if addresses:
                joined = await node.join(addresses)
                for ok in [True] * joined + [False] * (len(addresses) - joined):
                    node.count_refresh_join(ok)


#: The prefix of the tocsin-only channel keys of tenant pipelines ("/" is in no tenant id).
TENANT_KEY_PREFIX = "tocsin/"


def tenant_keys(tenant: str) -> tuple[str, str]:
    """The silences and nflog channel keys of ``tenant``'s pipeline."""
    return f"{TENANT_KEY_PREFIX}sil/{tenant}", f"{TENANT_KEY_PREFIX}nfl/{tenant}"


def create_peer(
    opts: Options, silences: Silences, nflog: Nflog, clock: Clock
) -> ClusterPeer | None:
    """The peer for these flags, or None when ``--cluster.listen-address`` is empty.

    Raises:
        PeerSetupError: a ``--cluster.*`` flag cannot be honoured.
    """
    if not opts.cluster_listen_address:
        return None
    return ClusterPeer(opts, silences, nflog, clock)


def disabled_cluster_status() -> dict[str, object]:
    """``/api/v2/status``'s ``cluster`` object without clustering."""
    return {"peers": [], "status": "disabled"}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_addresses() -> list[str]:
    """This host's addresses as the resolver knows them (blocking, but local)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]
