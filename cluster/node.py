"""A cluster node: the trio shell around :class:`cluster.membership.Membership`.

Theory of operation. The membership core is pure; this module owns everything that
waits. :meth:`Node.run` starts one task per source of events, all in the node's own
nursery:

* a packet reader feeds every datagram to the core;
* a stream acceptor serves each incoming TCP stream (push/pull, reliable user message,
  fallback ping) in its own task;
* a timer task sleeps until the core's next deadline (every event moves its sleep's
  deadline to the core's new one, without waking it) and polls the core;
* a sender drains the outbox of packets, so the synchronous dispatch never blocks;
* Alertmanager's settle, reconnect, prune and refresh loops.

The core is only ever touched between awaits, so trio's cooperative scheduling makes
every call atomic without locks. Actions the core returns are carried out by
:meth:`Node._dispatch`: packets go to the outbox, push/pulls and fallback pings become
tasks, user messages go to the delegate, membership changes to the failed-peer list and
the ``on_event`` hook.

Replicated state plugs in through :class:`Delegate` (memberlist's delegate reduced to
what Alertmanager uses); :class:`ChannelDelegate` adapts the ``"nfl"``/``"sil"``
:class:`cluster.state.State` objects by way of :mod:`cluster.channel`.

Error handling: whatever a peer sends is counted and dropped (malformed packets, bad
streams, user messages a state cannot merge); network errors on streams are logged and
end that exchange only. Bugs propagate and end :meth:`Node.run`.

Cancellation: cancelling :meth:`Node.run` stops every task at once; call
:meth:`Node.leave` first for a graceful exit.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import random
from collections.abc import Callable, Iterable
from typing import Protocol

import attrs
import structlog
import trio

from cluster.channel import deliver_user_message, local_state, merge_remote_state, plan_broadcast
from cluster.errors import DecodeError, DecryptError, LabelError
from cluster.framing import (
    DEFAULT_MAX_STREAM_BYTES,
    StreamDecoder,
    StreamMessage,
    StreamTooLargeError,
    add_label,
    check_label,
    encode_stream,
    parse_label,
)
from cluster.membership import (
    Action,
    Address,
    DeliverUserMessage,
    FailedPeers,
    MemberInfo,
    MemberJoined,
    MemberLeft,
    Membership,
    MembershipConfig,
    MemberUpdated,
    PingCompleted,
    SendPacket,
    StartFallbackPing,
    StartPushPull,
)
from cluster.messages import Ack, ErrResp, Ping, PushPull, UserMsg
from cluster.security import Keyring, decrypt_payload, encrypt_payload
from cluster.state import State
from cluster.transport import Transport

log = structlog.get_logger("cluster.node")

#: Packets waiting for the sender before new ones are dropped.
OUTBOX_SIZE = 4096
#: Direct sends wait this long (s) so a burst of changes shares packets.
DIRECT_BATCH_DELAY = 0.005
#: How much a stream read asks for at a time.
STREAM_READ_SIZE = 65536
#: Incoming streams served at once; more are closed at once and counted. memberlist
#: refuses push/pulls beyond 128 pending; a real cluster has at most a few per peer
#: (a push/pull, a fallback ping, an oversized broadcast per channel).
MAX_INCOMING_STREAMS = 128
#: Bytes all incoming streams together may hold in their buffers (each is also bound
#: by ``max_stream_bytes``): 128 streams of 32 MiB each would be 4 GiB.
MAX_STREAM_MEMORY = 256 * 1024 * 1024
#: Compressed stream payloads longer than this are inflated in a worker thread (see
#: ``StreamDecoder.defer_unwrap_over``); shorter ones take under ~50 ms inline.
INLINE_UNWRAP_BYTES = 64 * 1024
#: Alertmanager's gossip packet budget (``MaxGossipPacketSize``).
UDP_BUFFER_SIZE = 1400
#: Alertmanager prunes its failed-peer list this often.
PRUNE_INTERVAL = 300.0
#: Alertmanager's settle needs this many unchanged polls in a row.
SETTLE_OKAY_POLLS = 3
#: Oversized Parts waiting per channel key before new ones are dropped (Alertmanager's
#: ``msgc`` buffer).
OVERSIZE_QUEUE = 200
#: Alertmanager prunes its user broadcast queue to this many messages ...
MAX_QUEUED_USER_MESSAGES = 4096
#: ... checking this often (its delegate's ``handleQueueDepth``).
QUEUE_CHECK_INTERVAL = 15 * 60.0
#: How long closing a refused stream may take.
STREAM_CLOSE_TIMEOUT = 1.0
#: Buckets of ``alertmanager_cluster_pings_seconds``.
PING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
#: Buckets of ``alertmanager_oversize_gossip_message_duration_seconds`` (Go's defaults).
OVERSIZE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: What the ``on_event`` hook receives.
MemberEvent = MemberJoined | MemberLeft | MemberUpdated

_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, DecodeError)


class Delegate(Protocol):
    """The application's replicated state, as memberlist's delegate sees it."""

    def local_state(self, join: bool) -> bytes:
        """The user state to send in a push/pull."""
        ...

    def merge_remote_state(self, buf: bytes, join: bool) -> None:
        """Merge a peer's push/pull user state; raise DecodeError if it is malformed."""
        ...

    def notify_msg(self, payload: bytes) -> None:
        """Apply one user message; raise DecodeError if it is malformed."""
        ...


@attrs.define
class ChannelDelegate:
    """Alertmanager's delegate: user state is a ``FullState``, messages are ``Part``s."""

    states: dict[str, State] = attrs.field(factory=dict)

    def add_state(self, key: str, state: State) -> None:
        """Register a replicated state under its channel key (``"nfl"``, ``"sil"``)."""
        self.states[key] = state

    def local_state(self, join: bool) -> bytes:
        """Every state's full serialization (the join flag does not matter)."""
        return local_state(self.states)

    def merge_remote_state(self, buf: bytes, join: bool) -> None:
        """Merge each part into its state; unknown keys are logged and skipped."""
        unknown = merge_remote_state(self.states, buf)
        if unknown:
            log.warning("state.unknown_keys", keys=list(unknown))

    def notify_msg(self, payload: bytes) -> None:
        """Merge one broadcast Part; an unknown key is ignored as in Alertmanager."""
        deliver_user_message(self.states, payload)


@attrs.frozen
class NodeConfig:
    """Alertmanager 0.25's cluster flags and memberlist settings (seconds)."""

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    gossip_interval: float = 0.2
    push_pull_interval: float = 60.0
    gossip_nodes: int = 3
    user_retransmit_mult: int = 3
    tcp_timeout: float = 10.0
    reconnect_interval: float = 10.0
    reconnect_timeout: float = 6 * 3600.0
    refresh_interval: float = 15.0
    settle_timeout: float = 60.0
    leave_timeout: float = 10.0
    enable_compression: bool = True
    meta: bytes = b""
    #: Gossip encryption (memberlist's SecretKey/Keyring); None sends plaintext. The
    #: ring is shared, not copied, so keys added or promoted later apply at once.
    keyring: Keyring | None = attrs.field(default=None, eq=False)
    #: 1 unless speaking memberlist protocol version 1 (see security.encryption_version).
    encryption_version: int = 1
    #: With a keyring: refuse plaintext (false only while migrating a cluster to a key).
    gossip_verify_incoming: bool = True
    #: With a keyring: encrypt what we send (false only while migrating).
    gossip_verify_outgoing: bool = True
    #: Also send each small broadcast straight to every live member at once (a tocsin
    #: extension; see ``Membership.send_user_message``). Off: memberlist's gossip only.
    direct_user_messages: bool = False
    #: ``--cluster.label`` (Alertmanager 0.26, memberlist's Label): prefixed to every
    #: packet and to every stream we open, and required on every packet and stream we
    #: accept. Empty: none sent, and labelled traffic is refused.
    label: bytes = b""
    #: Incoming streams served at once (more are closed and counted).
    max_incoming_streams: int = MAX_INCOMING_STREAMS
    #: Bound on one stream message, as received and after decompression.
    max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES
    #: Bound on the bytes all incoming streams together may buffer.
    stream_memory: int = MAX_STREAM_MEMORY

    def membership(self, name: str, address: Address) -> MembershipConfig:
        """The core's settings for a node called ``name`` advertising ``address``."""
        return MembershipConfig(
            name=name,
            address=address,
            meta=self.meta,
            probe_interval=self.probe_interval,
            probe_timeout=self.probe_timeout,
            gossip_interval=self.gossip_interval,
            gossip_nodes=self.gossip_nodes,
            push_pull_interval=self.push_pull_interval,
            user_retransmit_mult=self.user_retransmit_mult,
            enable_compression=self.enable_compression,
            # memberlist leaves room for the label header in every gossip packet
            udp_buffer_size=UDP_BUFFER_SIZE - (2 + len(self.label) if self.label else 0),
        )


def _counts() -> dict[str, int]:
    return {}


@attrs.frozen
class NodeStatistics:
    """Counters for metrics and tests."""

    members: int
    health_score: int
    packets_received: int
    malformed_packets: int
    malformed_messages: int
    malformed_streams: int
    bad_user_messages: int
    dropped_outgoing: int
    failed_peers: int
    #: Packets and streams refused because no installed key opened them.
    decrypt_failures: int = 0
    #: Packets and streams refused for a missing, foreign or malformed cluster label.
    label_refused: int = 0
    #: Incoming streams closed unread because MAX_INCOMING_STREAMS were being served.
    streams_refused: int = 0
    #: Incoming streams dropped for exceeding their own bound or the node-wide one.
    streams_too_large: int = 0
    #: User messages waiting in the gossip queue.
    queued_user_messages: int = 0
    #: User messages gossiped (every transmission) and their bytes.
    user_messages_sent: int = 0
    user_bytes_sent: int = 0
    #: Alive messages processed, by node name (a copy).
    alive_messages: dict[str, int] = attrs.field(factory=_counts)


@attrs.define
class Histogram:
    """Observations in fixed buckets, as a Prometheus histogram keeps them."""

    bounds: tuple[float, ...]
    #: Per bucket (not cumulative); the last one is +Inf.
    counts: list[int] = attrs.field(init=False)
    total: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose upper bound is at least ``value``."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        """How many values were observed."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, values at or below it)`` for each bucket, +Inf last."""
        running = list(itertools.accumulate(self.counts))
        return list(zip((*self.bounds, math.inf), running, strict=True))


@attrs.define
class NodeMetrics:
    """What Alertmanager's peer, delegate and channels count, kept by the node."""

    reconnections: int = 0
    reconnections_failed: int = 0
    refresh_joins: int = 0
    refresh_joins_failed: int = 0
    #: User messages dropped because the queue outgrew MAX_QUEUED_USER_MESSAGES.
    messages_pruned: int = 0
    #: Round trips of direct pings acked in time, by peer name.
    ping_seconds: dict[str, Histogram] = attrs.field(factory=dict)
    #: Oversized Parts sent by TCP, per channel key: one per peer tried.
    oversize_sent: dict[str, int] = attrs.field(factory=_counts)
    oversize_failed: dict[str, int] = attrs.field(factory=_counts)
    #: Oversized Parts refused because OVERSIZE_QUEUE were already waiting.
    oversize_dropped: dict[str, int] = attrs.field(factory=_counts)
    #: Durations of successful oversized sends, per channel key.
    oversize_seconds: dict[str, Histogram] = attrs.field(factory=dict)

    def ping(self, name: str, rtt: float) -> None:
        """Record a completed ping to ``name``."""
        histogram = self.ping_seconds.get(name)
        if histogram is None:
            histogram = self.ping_seconds[name] = Histogram(PING_BUCKETS)
        histogram.observe(rtt)

    def oversize_done(self, key: str, seconds: float) -> None:
        """Record a successful oversized send on channel ``key``."""
        histogram = self.oversize_seconds.get(key)
        if histogram is None:
            histogram = self.oversize_seconds[key] = Histogram(OVERSIZE_BUCKETS)
        histogram.observe(seconds)


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_name(unix_ms: int, rng: random.Random) -> str:
    """A ULID (ms timestamp + 80 random bits, Crockford base32), as Alertmanager names nodes."""
    value = ((unix_ms & (2**48 - 1)) << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


class Node:
    """One member of a memberlist cluster (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        name: str,
        *,
        config: NodeConfig | None = None,
        delegate: Delegate | None = None,
        rng: random.Random | None = None,
        on_event: Callable[[MemberEvent], None] | None = None,
        advertise: Address | None = None,
    ) -> None:
        self.name = name
        self._advertise = advertise
        self.config = config or NodeConfig()
        self.delegate: Delegate = delegate or ChannelDelegate()
        self._transport = transport
        self._rng = rng or random.Random()
        self._on_event = on_event
        self._core: Membership | None = None
        self._nursery: trio.Nursery | None = None
        #: The timer task's sleep, while it sleeps; its deadline is the core's next one.
        self._timer_scope: trio.CancelScope | None = None
        self._ready = trio.Event()
        self._leave_sent = trio.Event()
        self._outbox_send, self._outbox = trio.open_memory_channel[tuple[Address, bytes]](
            OUTBOX_SIZE
        )
        self.failed_peers = FailedPeers()
        self._known_peers: list[Address] = []
        self._malformed_streams = 0
        self._bad_user_messages = 0
        self._dropped_outgoing = 0
        #: Parts waiting for ``_send_direct`` (``direct_user_messages``).
        self._direct_pending: list[bytes] = []
        self._decrypt_failures = 0
        self._label_refused = 0
        self._streams_refused = 0
        self._streams_too_large = 0
        #: Incoming streams being served, and the bytes their decoders hold.
        self._incoming_streams = 0
        self._stream_bytes = 0
        #: One big inflate at a time: more threads would only share the same GIL.
        self._unwrap_limiter = trio.CapacityLimiter(1)
        self.metrics = NodeMetrics()
        self._oversize_queues: dict[str, trio.MemorySendChannel[bytes]] = {}

    # --- lifecycle -------------------------------------------------------------------

    @property
    def address(self) -> Address:
        """The address we advertise for both UDP and TCP (by default the bound one).

        It must be an IP literal: alive messages carry it as raw IP bytes.
        """
        return self._advertise or self._transport.local_address

    @property
    def core(self) -> Membership:
        """The membership state machine (available once :meth:`run` has started)."""
        if self._core is None:
            raise RuntimeError("the node is not running")
        return self._core

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the cluster protocol until cancelled (or until :meth:`leave` finishes).

        ``task_status.started()`` is called once packets and streams are being served.
        """
        self._core = Membership(
            self.config.membership(self.name, self.address), trio.current_time(), self._rng
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._receive_packets)
                nursery.start_soon(self._accept_streams)
                nursery.start_soon(self._send_packets)
                nursery.start_soon(self._timers)
                nursery.start_soon(self._settle)
                nursery.start_soon(self._reconnect)
                log.info("cluster.started", name=self.name, address=self.address)
                task_status.started()
        finally:
            # A broadcast after the node stopped (an nflog entry written while the
            # daemon shuts down) must not start tasks in the closed nursery.
            self._nursery = None

    async def join(self, addresses: Iterable[Address]) -> int:
        """Push/pull with each peer (Join=true); return how many answered.

        Every peer other than ourselves is also remembered for reconnects, as
        Alertmanager does with ``--cluster.peer``. A failure is logged, not raised.
        """
        now = trio.current_time()
        targets = [a for a in addresses if a != self.address]
        for address in targets:
            if address not in self._known_peers:
                self._known_peers.append(address)
            if not any(m.address == address for m in self.core.members()):
                self.failed_peers.add(address, "", now)
        joined = 0
        for address in targets:
            if await self._push_pull(address, join=True):
                joined += 1
        log.info("cluster.joined", peers=joined, tried=len(targets))
        return joined

    async def leave(self) -> None:
        """Gossip our departure, wait (bounded) until it went out, then stop :meth:`run`."""
        self._dispatch(self.core.leave(trio.current_time()))
        with trio.move_on_after(self.config.leave_timeout):
            await self._leave_sent.wait()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # --- queries -----------------------------------------------------------------------

    def members(self) -> list[MemberInfo]:
        """Live members (alive or suspect), ourselves included."""
        return self.core.members()

    def position(self) -> int:
        """Our index among live members sorted by name (0 notifies first)."""
        names = sorted(m.name for m in self.core.members())
        return names.index(self.name) if self.name in names else 0

    @property
    def ready(self) -> bool:
        """True once gossip has settled (or the settle timeout passed)."""
        return self._ready.is_set()

    async def wait_settled(self) -> None:
        """Wait until gossip has settled (Alertmanager's ``WaitReady``)."""
        await self._ready.wait()

    def statistics(self) -> NodeStatistics:
        """Current counters."""
        core = self.core
        return NodeStatistics(
            members=core.num_members(),
            health_score=core.awareness.score,
            packets_received=core.stats.packets_received,
            malformed_packets=core.stats.malformed_packets,
            malformed_messages=core.stats.malformed_messages,
            malformed_streams=self._malformed_streams,
            bad_user_messages=self._bad_user_messages,
            dropped_outgoing=self._dropped_outgoing,
            failed_peers=len(self.failed_peers.entries),
            decrypt_failures=self._decrypt_failures,
            label_refused=self._label_refused,
            streams_refused=self._streams_refused,
            streams_too_large=self._streams_too_large,
            queued_user_messages=len(core.user_broadcasts),
            alive_messages=dict(core.stats.alive_messages),
            user_messages_sent=core.stats.user_messages_sent,
            user_bytes_sent=core.stats.user_bytes_sent,
        )

    # --- broadcasting user state ------------------------------------------------------

    def broadcast(self, key: str, data: bytes) -> None:
        """Send a local change on channel ``key``, as Alertmanager's ``Channel.Broadcast``.

        A small Part is gossiped (and, with ``direct_user_messages``, also sent to every
        live member at once); an oversized one goes by TCP to every other member.
        """
        plan = plan_broadcast(key, data)
        if not plan.reliable:
            self.core.queue_user_broadcast(plan.part, trio.current_time())
            self._rearm()
            if self.config.direct_user_messages and self._nursery is not None:
                if not self._direct_pending:
                    self._nursery.start_soon(self._send_direct)
                self._direct_pending.append(plan.part)
            return
        if self._nursery is None:
            return
        queue = self._oversize_queues.get(key)
        if queue is None:
            queue, pending = trio.open_memory_channel[bytes](OVERSIZE_QUEUE)
            self._oversize_queues[key] = queue
            self._nursery.start_soon(self._send_oversized, key, pending)
        try:
            queue.send_nowait(plan.part)
        except trio.WouldBlock:
            _bump(self.metrics.oversize_dropped, key)
            log.debug("broadcast.oversize_dropped", key=key)

    async def _send_direct(self) -> None:
        """Send the Parts broadcast in the last few milliseconds to every peer, packed."""
        await trio.sleep(DIRECT_BATCH_DELAY)
        parts, self._direct_pending = self._direct_pending, []
        self._dispatch(self.core.send_user_messages(parts))

    async def _send_oversized(self, key: str, pending: trio.MemoryReceiveChannel[bytes]) -> None:
        """Alertmanager's ``handleOverSizedMessages``: each Part to every peer at once,
        one Part at a time."""
        async for part in pending:
            async with trio.open_nursery() as nursery:
                for member in self.core.members():
                    if member.name != self.name:
                        nursery.start_soon(self._send_reliable, key, member.address, part)

    async def _send_reliable(self, key: str, address: Address, payload: bytes) -> None:
        _bump(self.metrics.oversize_sent, key)
        started = trio.current_time()
        try:
            with trio.fail_after(self.config.tcp_timeout):
                stream = await self._transport.open_stream(address)
                async with stream:
                    await stream.send_all(self._encode_stream(UserMsg(payload).encode_stream()))
        except (*_NETWORK_ERRORS, trio.TooSlowError) as exc:
            _bump(self.metrics.oversize_failed, key)
            log.warning("broadcast.reliable_failed", address=address, error=str(exc))
            return
        self.metrics.oversize_done(key, trio.current_time() - started)

    # --- event sources ---------------------------------------------------------------

    async def _receive_packets(self) -> None:
        while True:
            data, source = await self._transport.receive_packet()
            opened = self._open_packet(data, source)
            if opened is not None:
                self._dispatch(self.core.handle_packet(opened, source, trio.current_time()))

    async def _send_packets(self) -> None:
        async for address, data in self._outbox:
            await self._transport.send_packet(address, self._seal_packet(data))

    async def _timers(self) -> None:
        while True:
            with trio.CancelScope(deadline=self.core.next_deadline()) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            # awake until the next sleep: dispatches meanwhile need not move the
            # deadline, it is recomputed before sleeping again
            self._timer_scope = None
            self._dispatch(self.core.poll(trio.current_time()))

    async def _accept_streams(self) -> None:
        assert self._nursery is not None
        while True:
            stream = await self._transport.accept_stream()
            if self._incoming_streams >= self.config.max_incoming_streams:
                self._streams_refused += 1
                log.warning(
                    "stream.refused", peer=_peer_of(stream), limit=self.config.max_incoming_streams
                )
                with trio.move_on_after(STREAM_CLOSE_TIMEOUT):
                    await stream.aclose()
                continue
            self._incoming_streams += 1
            self._nursery.start_soon(self._serve_stream, stream)

    # --- dispatch --------------------------------------------------------------------

    def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendPacket):
                try:
                    self._outbox_send.send_nowait((action.address, action.data))
                except trio.WouldBlock:
                    self._dropped_outgoing += 1
            elif isinstance(action, StartPushPull):
                if self._nursery is not None:
                    self._nursery.start_soon(self._push_pull, action.address, action.join)
            elif isinstance(action, StartFallbackPing):
                if self._nursery is not None:
                    self._nursery.start_soon(self._fallback_ping, action)
            elif isinstance(action, DeliverUserMessage):
                self._deliver(action.payload)
            elif isinstance(action, PingCompleted):
                self.metrics.ping(action.name, action.rtt)
            else:
                self._member_event(action)
        if self._core is not None and self._core.leave_broadcast_done:
            self._leave_sent.set()
        self._rearm()

    def _rearm(self) -> None:
        """Move the timer task's sleep to the core's next deadline, without waking it.

        Waking it instead after every event cost a cancel scope and a poll per packet,
        and an ack that ended a probe early still left a wake at the probe timeout.
        """
        scope = self._timer_scope
        if scope is not None and self._core is not None:
            deadline = self._core.next_deadline()
            if deadline != scope.deadline:
                scope.deadline = deadline

    def _member_event(self, event: MemberEvent) -> None:
        member = event.member
        if member.name != self.name:
            if isinstance(event, MemberJoined):
                rejoined = self.failed_peers.joined(member.address)
                log.info("peer.joined", peer=member.name, address=member.address, rejoin=rejoined)
            elif isinstance(event, MemberLeft):
                self.failed_peers.add(member.address, member.name, trio.current_time())
                log.info("peer.left", peer=member.name, state=member.state.name)
            else:
                log.info("peer.updated", peer=member.name)
        if self._on_event is not None:
            self._on_event(event)

    def _deliver(self, payload: bytes) -> None:
        try:
            self.delegate.notify_msg(payload)
        except DecodeError as exc:
            self._bad_user_messages += 1
            log.warning("user_message.malformed", error=str(exc))

    def _merge_user_state(self, buf: bytes, join: bool) -> None:
        try:
            self.delegate.merge_remote_state(buf, join)
        except DecodeError as exc:
            self._bad_user_messages += 1
            log.warning("remote_state.malformed", error=str(exc))

    # --- streams -----------------------------------------------------------------------

    def _push_pull_request(self, join: bool, *, reply: bool = False) -> bytes:
        request = PushPull(
            join=join,
            nodes=self.core.push_pull_nodes(),
            user_state=self.delegate.local_state(join),
        )
        if reply:
            return self._encode_reply(request.encode())
        return self._encode_stream(request.encode())

    async def _push_pull(self, address: Address, join: bool) -> bool:
        """One push/pull as the initiator; True if the peer's state was merged."""
        try:
            with trio.fail_after(self.config.tcp_timeout):
                stream = await self._transport.open_stream(address)
                async with stream:
                    await stream.send_all(self._push_pull_request(join))
                    reply = await self._read_message(stream)
        except DecryptError as exc:
            self._decrypt_failed(address, exc)
            return False
        except LabelError as exc:
            self._refuse_label(address, exc)
            return False
        except (*_NETWORK_ERRORS, trio.TooSlowError) as exc:
            log.debug("push_pull.failed", address=address, error=str(exc) or type(exc).__name__)
            return False
        if not isinstance(reply, PushPull):
            detail = reply.error if isinstance(reply, ErrResp) else type(reply).__name__
            log.warning("push_pull.bad_reply", address=address, reply=detail)
            return False
        return self._merge_push_pull(reply, address)

    def _merge_push_pull(self, message: PushPull, peer: object) -> bool:
        if not self.core.verify_protocol(message.nodes):
            log.warning("push_pull.incompatible_versions", peer=peer)
            return False
        self._dispatch(self.core.merge_remote_nodes(message.nodes, trio.current_time()))
        self._merge_user_state(message.user_state, message.join)
        return True

    async def _serve_stream(self, stream: trio.abc.Stream) -> None:
        try:
            async with stream:
                await self._serve_stream_inner(stream)
        finally:
            self._incoming_streams -= 1

    async def _serve_stream_inner(self, stream: trio.abc.Stream) -> None:
        try:
            with trio.fail_after(self.config.tcp_timeout):
                await self._answer_stream(stream)
        except LabelError as exc:
            # memberlist closes such a stream without an answer
            self._refuse_label(_peer_of(stream), exc)
        except DecodeError as exc:
            # each dropped stream is counted once, under one reason
            if isinstance(exc, DecryptError):
                self._decrypt_failed(_peer_of(stream), exc)
            elif isinstance(exc, StreamTooLargeError):
                self._streams_too_large += 1
                log.warning("stream.too_large", peer=_peer_of(stream), error=str(exc))
            else:
                self._malformed_streams += 1
                log.debug("stream.malformed", error=str(exc))
            with (
                trio.move_on_after(self.config.tcp_timeout),
                contextlib.suppress(*_NETWORK_ERRORS),
            ):
                await stream.send_all(
                    self._encode_reply(ErrResp(str(exc)).encode(), compress=False)
                )
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.debug("stream.failed", error=str(exc))
        except trio.TooSlowError:
            log.debug("stream.timeout")

    async def _answer_stream(self, stream: trio.abc.Stream) -> None:
        message = await self._read_message(stream, incoming=True)
        if isinstance(message, PushPull):
            # reply with our view before merging theirs, as memberlist does
            await stream.send_all(self._push_pull_request(message.join, reply=True))
            self._merge_push_pull(message, "incoming")
        elif isinstance(message, UserMsg):
            self._deliver(message.payload)
        elif isinstance(message, Ping):
            if message.node and message.node != self.name:
                log.debug("ping.wrong_node", node=message.node)
                return
            await stream.send_all(self._encode_reply(Ack(seq_no=message.seq_no).encode()))
        else:
            log.debug("stream.unexpected", kind=type(message).__name__)

    async def _fallback_ping(self, action: StartFallbackPing) -> None:
        with trio.move_on_at(action.deadline), contextlib.suppress(*_NETWORK_ERRORS):
            stream = await self._transport.open_stream(action.address)
            async with stream:
                await stream.send_all(self._encode_stream(action.ping.encode()))
                reply = await self._read_message(stream)
            if isinstance(reply, Ack) and reply.seq_no == action.ping.seq_no:
                self._dispatch(self.core.handle_fallback_ack(reply.seq_no))

    # --- gossip encryption -------------------------------------------------------------

    def _outgoing_keyring(self) -> Keyring | None:
        return self.config.keyring if self.config.gossip_verify_outgoing else None

    def _seal_packet(self, data: bytes) -> bytes:
        """Encrypt one packet from the core, as framing.encode_packet would with a keyring.

        The core frames packets without a label, so the associated data is empty and
        encryption is the outermost layer.
        """
        keyring = self._outgoing_keyring()
        label = self.config.label
        if keyring is not None:
            data = encrypt_payload(self.config.encryption_version, keyring.primary_key, data, label)
        return add_label(data, label)

    def _open_packet(self, data: bytes, source: Address) -> bytes | None:
        """Check the label and decrypt one received packet; None (logged and counted) if
        the label is wrong or no key opens it."""
        try:
            received, start = parse_label(data)
            label = check_label(received, self.config.label)
        except DecodeError as exc:
            self._refuse_label(source, exc)
            return None
        data = data[start:]
        keyring = self.config.keyring
        if keyring is None:
            return data
        try:
            return decrypt_payload(keyring.keys, data, label)
        except DecryptError as exc:
            if not self.config.gossip_verify_incoming:
                # migration mode: a peer not yet encrypting sends plaintext
                return data
            self._decrypt_failed(source, exc)
            return None

    def _refuse_label(self, source: object, exc: DecodeError) -> None:
        self._label_refused += 1
        log.warning("peer.label_refused", source=source, error=str(exc))

    def _decrypt_failed(self, source: object, exc: DecryptError) -> None:
        self._decrypt_failures += 1
        log.warning("peer.decrypt_failed", source=source, error=str(exc))

    def _encode_stream(
        self, message: bytes, *, compress: bool | None = None, reply: bool = False
    ) -> bytes:
        """Layer a message for a stream we opened (``reply``: one a peer opened)."""
        return encode_stream(
            message,
            compress=self.config.enable_compression if compress is None else compress,
            keyring=self._outgoing_keyring(),
            encryption_version=self.config.encryption_version,
            label=self.config.label,
            label_header=not reply,
        )

    def _encode_reply(self, message: bytes, *, compress: bool | None = None) -> bytes:
        return self._encode_stream(message, compress=compress, reply=True)

    async def _read_message(
        self, stream: trio.abc.Stream, *, incoming: bool = False
    ) -> StreamMessage:
        """Read exactly one stream message (the peer does not close its side first).

        ``incoming``: a stream a peer opened, which carries its label header and whose
        buffer counts against the node-wide ``stream_memory``; otherwise the reply on
        one we opened.
        """
        decoder = StreamDecoder(
            keyring=self.config.keyring,
            verify_incoming=self.config.gossip_verify_incoming,
            label=self.config.label,
            label_header=incoming,
            max_bytes=self.config.max_stream_bytes,
            defer_unwrap_over=INLINE_UNWRAP_BYTES,
        )
        held = 0
        try:
            while True:
                data = await stream.receive_some(STREAM_READ_SIZE)
                if not data:
                    decoder.eof()
                    raise DecodeError("stream closed before a message")  # pragma: no cover
                if incoming:
                    held += len(data)
                    self._stream_bytes += len(data)
                    if self._stream_bytes > self.config.stream_memory:
                        raise StreamTooLargeError(
                            f"incoming streams hold over {self.config.stream_memory} bytes"
                        )
                message = decoder.feed(bytes(data))
                if message is not None:
                    return message
                if decoder.unwrap_pending:
                    # Pure-Python LZW holds the GIL, but a thread gives it back to the
                    # event loop every switch interval (5 ms) instead of for seconds.
                    # Abandoned on cancel (the stream's deadline, shutdown): the thread
                    # only touches this decoder, which nobody reads again.
                    return await trio.to_thread.run_sync(
                        decoder.unwrap, limiter=self._unwrap_limiter, abandon_on_cancel=True
                    )
        finally:
            self._stream_bytes -= held

    # --- Alertmanager's background loops -----------------------------------------------

    async def _settle(self) -> None:
        interval = 10 * self.config.gossip_interval
        start = trio.current_time()
        with trio.move_on_after(self.config.settle_timeout) as scope:
            peers, okay = 0, 0
            while True:
                await trio.sleep(interval)
                count = self.core.num_members()
                if okay >= SETTLE_OKAY_POLLS:
                    break
                okay = okay + 1 if count == peers else 0
                peers = count
        elapsed = trio.current_time() - start
        if scope.cancelled_caught:
            log.info("gossip.not_settled", elapsed=elapsed)
        else:
            log.info("gossip.settled", elapsed=elapsed)
        self._ready.set()

    async def _reconnect(self) -> None:
        now = trio.current_time()
        next_reconnect = now + self.config.reconnect_interval
        next_prune = now + PRUNE_INTERVAL
        next_refresh = now + self.config.refresh_interval
        next_queue_check = now + QUEUE_CHECK_INTERVAL
        while True:
            await trio.sleep_until(min(next_reconnect, next_prune, next_refresh, next_queue_check))
            now = trio.current_time()
            if now >= next_reconnect:
                next_reconnect = now + self.config.reconnect_interval
                for address in self.failed_peers.addresses():
                    if await self._push_pull(address, join=True):
                        self.metrics.reconnections += 1
                    else:
                        self.metrics.reconnections_failed += 1
            if now >= next_prune:
                next_prune = now + PRUNE_INTERVAL
                for address in self.failed_peers.prune(now, self.config.reconnect_timeout):
                    log.info("peer.reconnect_timeout", address=address)
            if now >= next_refresh:
                next_refresh = now + self.config.refresh_interval
                live = {m.address for m in self.core.members()}
                for address in self._known_peers:
                    if address not in live:
                        self.count_refresh_join(await self._push_pull(address, join=True))
            if now >= next_queue_check:
                next_queue_check = now + QUEUE_CHECK_INTERVAL
                self.prune_user_queue()

    def count_refresh_join(self, joined: bool) -> None:
        """Count one join attempt made by a refresh (Alertmanager's refresh counters)."""
        if joined:
            self.metrics.refresh_joins += 1
        else:
            self.metrics.refresh_joins_failed += 1

    def prune_user_queue(self) -> None:
        """Drop the most-sent user messages beyond MAX_QUEUED_USER_MESSAGES, counting them."""
        queued = len(self.core.user_broadcasts)
        if queued > MAX_QUEUED_USER_MESSAGES:
            log.warning("broadcast.queue_pruned", queued=queued, limit=MAX_QUEUED_USER_MESSAGES)
            self.core.user_broadcasts.prune(MAX_QUEUED_USER_MESSAGES)
            self.metrics.messages_pruned += queued - MAX_QUEUED_USER_MESSAGES


def _peer_of(stream: trio.abc.Stream) -> object:
    """The remote address of a socket stream, for logs (in-memory streams have none)."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return "unknown"
    try:
        peer: object = sock.getpeername()
    except OSError:
        return "unknown"
    return peer
