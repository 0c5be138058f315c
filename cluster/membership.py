"""SWIM membership with Lifeguard, as hashicorp/memberlist runs it: a pure state machine.

No I/O and no clock reads. The shell feeds events in (a UDP packet arrived, a push/pull
reply arrived, a TCP fallback ping came back, time passed) and carries out the actions
that come back (send these bytes to that address, open a push/pull with that peer,
deliver this user message, tell the application a member joined). Times are monotonic
seconds (the shell passes ``trio.current_time()``); :meth:`Membership.next_deadline`
says when :meth:`Membership.poll` next has work.

Rules, each as memberlist applies them:

* **States.** Every known node is alive, suspect, dead or left, with an incarnation
  number only its owner may raise. A node's table includes itself.
* **alive** about another node applies only with a strictly higher incarnation (or a
  new address for a node that has left); about ourselves it is ignored when it matches
  what we advertise, and otherwise *refuted*: we bump our incarnation past it and gossip
  a fresh alive. A ``Vsn`` shorter than 6 bytes, or with a zero/inverted protocol range,
  is ignored (Alertmanager installs an alive delegate). Same name at a different address
  is a conflict and is ignored unless the old entry has left.
* **suspect** applies with incarnation >= known, only to an alive node; about ourselves it
  is refuted. A suspicion that is already running counts a new confirmation instead.
* **dead** applies with incarnation >= known and cancels the suspicion; about ourselves
  it is refuted unless we are leaving. ``From == Node`` is a graceful leave (state left).
* **Probing.** Every probe interval (scaled by the awareness score) the next node of a
  shuffled round-robin list is pinged (a suspect one gets ``compound[ping, suspect]`` so
  it can refute). No ack within the probe timeout: ask ``indirect_checks`` random alive
  peers to ping it (with nacks when they speak protocol 4+), and try a TCP ping. No ack
  by the end of the interval: raise our own awareness score by the missing nacks (or by
  1) and suspect the node. An ack lowers the score by 1.
* **Lifeguard suspicion.** For n known nodes the timeout runs from
  ``max = 6 * min`` down to ``min = 4 * max(1, log10 n) * probe_interval`` as
  independent confirmations arrive (k = 2 expected, 0 when fewer than 4 nodes); when it
  fires the node is declared dead by us.
* **Gossip.** Every gossip interval up to ``gossip_nodes`` random nodes that are alive,
  suspect, or dead for less than ``gossip_to_the_dead_time`` get a packet of queued
  broadcasts (ours first, then user messages). Pings, acks and nacks carry the same
  broadcasts piggybacked in the space left. A tick with both queues empty sends nothing
  (memberlist's returns at once), so it is no deadline: an idle node does not wake for
  it, and the tick grid is caught up before anything new is queued.
* **Push/pull.** On join and every push/pull interval with one random alive node, the
  whole table is exchanged. A remote alive goes through the alive rules, left becomes a
  leave, and a remote dead *or* suspect becomes our suspicion (never trust a remote dead).
* **Reaping.** At the end of each probe round, dead/left nodes older than
  ``gossip_to_the_dead_time`` are forgotten and the list is reshuffled.

Invariants: our own entry is never suspect or dead unless we are leaving; an action
list is returned by every public method that changes state, in the order to perform it.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Callable, Iterable, Sequence

import attrs
import structlog

from cluster.broadcast import TransmitLimitedQueue
from cluster.errors import DecodeError
from cluster.framing import decode_packet, encode_packet, make_compounds
from cluster.messages import (
    ALERTMANAGER_VSN,
    MAX_COMPOUND_PARTS,
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    Suspect,
    UserMsg,
)

log = structlog.get_logger("cluster.membership")

#: A peer's transport address: IP text and port.
Address = tuple[str, int]

#: Bytes a compound adds per message (its uint16 length).
COMPOUND_OVERHEAD = 2
#: Bytes of a compound's head (type byte and count).
COMPOUND_HEADER_OVERHEAD = 2
#: Bytes a user message adds in a packet (its type byte).
USER_MSG_OVERHEAD = 1
#: memberlist's cap on its own queued broadcasts.
MAX_QUEUED_BROADCASTS = 1024


def ip_to_host(addr: bytes) -> str:
    """The text form of a raw 4- or 16-byte IP.

    Raises:
        DecodeError: any other length.
    """
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    raise DecodeError(f"address of {len(addr)} bytes is not an IP")


def host_to_ip(host: str) -> bytes:
    """The raw bytes of an IP literal (4 bytes for IPv4)."""
    return ipaddress.ip_address(host).packed


@attrs.frozen
class MembershipConfig:
    """memberlist's LAN settings as Alertmanager 0.25 overrides them (times in seconds)."""

    name: str
    address: Address
    meta: bytes = b""
    vsn: bytes = ALERTMANAGER_VSN
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    push_pull_interval: float = 60.0
    indirect_checks: int = 3
    retransmit_mult: int = 4
    user_retransmit_mult: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    awareness_max_multiplier: int = 8
    gossip_to_the_dead_time: float = 30.0
    udp_buffer_size: int = 1400
    enable_compression: bool = True
    disable_tcp_pings: bool = False


@attrs.define
class Member:
    """One row of the node table."""

    name: str
    addr: bytes
    port: int
    incarnation: int
    state: NodeState
    state_change: float
    meta: bytes = b""
    vsn: bytes = b""

    @property
    def address(self) -> Address:
        """Where to send packets and open streams."""
        return (ip_to_host(self.addr), self.port)

    @property
    def protocol_max(self) -> int:
        """The highest protocol the node speaks (0 if it never said)."""
        return self.vsn[1] if len(self.vsn) > 1 else 0

    @property
    def dead_or_left(self) -> bool:
        """True for dead and left nodes."""
        return self.state in (NodeState.DEAD, NodeState.LEFT)

    def info(self) -> MemberInfo:
        """An immutable snapshot."""
        return MemberInfo(
            name=self.name,
            address=self.address,
            incarnation=self.incarnation,
            state=self.state,
            meta=self.meta,
        )


@attrs.frozen
class MemberInfo:
    """What the application sees of a member."""

    name: str
    address: Address
    incarnation: int
    state: NodeState
    meta: bytes = b""


# --- actions ---------------------------------------------------------------------------


@attrs.frozen
class SendPacket:
    """Send one fully encoded UDP packet."""

    address: Address
    data: bytes


@attrs.frozen
class StartPushPull:
    """Open a TCP push/pull with ``address`` and feed the reply to ``merge_remote_nodes``."""

    address: Address
    join: bool


@attrs.frozen
class StartFallbackPing:
    """Send ``ping`` over TCP; if the ack arrives before ``deadline``, report it."""

    address: Address
    ping: Ping
    deadline: float


@attrs.frozen
class DeliverUserMessage:
    """A user message (Alertmanager: one ``clusterpb.Part``) arrived by gossip."""

    payload: bytes


@attrs.frozen
class PingCompleted:
    """A probe's direct ping was acked within the probe timeout (memberlist's
    ``NotifyPingComplete``); ``rtt`` is seconds from sending it to the ack."""

    name: str
    rtt: float


@attrs.frozen
class MemberJoined:
    """A node became alive (memberlist's NotifyJoin)."""

    member: MemberInfo


@attrs.frozen
class MemberLeft:
    """A node became dead or left (NotifyLeave)."""

    member: MemberInfo


@attrs.frozen
class MemberUpdated:
    """An alive node changed its metadata (NotifyUpdate)."""

    member: MemberInfo


Action = (
    SendPacket
    | StartPushPull
    | StartFallbackPing
    | DeliverUserMessage
    | PingCompleted
    | MemberJoined
    | MemberLeft
    | MemberUpdated
)


# --- Lifeguard pieces -------------------------------------------------------------------


def suspicion_timeout(suspicion_mult: int, num_nodes: int, probe_interval: float) -> float:
    """The minimum suspicion timeout: ``mult * max(1, log10 n) * interval``."""
    node_scale = max(1.0, math.log10(max(1.0, float(num_nodes))))
    # memberlist truncates the scale to milliseconds before multiplying
    return suspicion_mult * math.floor(node_scale * 1000) * probe_interval / 1000


def remaining_suspicion_time(
    confirmations: int, k: int, elapsed: float, min_timeout: float, max_timeout: float
) -> float:
    """Time left after ``confirmations`` of ``k`` expected ones: log decay from max to min."""
    frac = math.log(confirmations + 1.0) / math.log(k + 1.0)
    raw = max_timeout - frac * (max_timeout - min_timeout)
    timeout = math.floor(1000.0 * raw) / 1000.0
    return max(timeout, min_timeout) - elapsed


@attrs.define
class Suspicion:
    """A running suspicion timer; it fires at ``deadline`` unless cancelled."""

    incarnation: int
    start: float
    k: int
    min_timeout: float
    max_timeout: float
    deadline: float
    confirmations: set[str]

    @classmethod
    def begin(
        cls,
        from_node: str,
        incarnation: int,
        k: int,
        min_timeout: float,
        max_timeout: float,
        now: float,
    ) -> Suspicion:
        """Start a timer: at max, or at min when no confirmations are expected."""
        timeout = min_timeout if k < 1 else max_timeout
        return cls(
            incarnation=incarnation,
            start=now,
            k=k,
            min_timeout=min_timeout,
            max_timeout=max_timeout,
            deadline=now + timeout,
            confirmations={from_node},
        )

    def confirm(self, from_node: str, now: float) -> bool:
        """Count a new independent confirmation; True if it was new (then re-gossip it)."""
        if len(self.confirmations) - 1 >= self.k or from_node in self.confirmations:
            return False
        self.confirmations.add(from_node)
        count = len(self.confirmations) - 1
        remaining = remaining_suspicion_time(
            count, self.k, now - self.start, self.min_timeout, self.max_timeout
        )
        self.deadline = now + max(remaining, 0.0)
        return True


@attrs.define
class Awareness:
    """Lifeguard's local health score: 0 is healthy; timeouts scale by ``score + 1``."""

    max_multiplier: int
    score: int = 0

    def apply_delta(self, delta: int) -> None:
        """Move the score, clamped to ``[0, max_multiplier - 1]``."""
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, timeout: float) -> float:
        """Stretch a timeout by how unhealthy we think we are."""
        return timeout * (self.score + 1)


@attrs.define
class _Probe:
    target: str
    seq_no: int
    sent: float
    direct_deadline: float
    deadline: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0
    fallback_ok: bool = False


@attrs.define
class _Relay:
    """An indirect ping we perform for someone else."""

    reply_to: Address
    their_seq: int
    deadline: float
    nack: bool


@attrs.define
class MembershipStats:
    """Counters for metrics and tests."""

    packets_received: int = 0
    malformed_packets: int = 0
    malformed_messages: int = 0
    ignored_alives: int = 0
    refutations: int = 0
    #: Alive messages that passed the version checks, by node name (Alertmanager's
    #: alive delegate counts them in ``alertmanager_cluster_alive_messages_total``).
    alive_messages: dict[str, int] = attrs.field(factory=dict)
    #: User messages handed to a packet, each transmission counted, and their bytes
    #: (Alertmanager counts ``messages_sent{msg_type="update"}`` at this draw).
    user_messages_sent: int = 0
    user_bytes_sent: int = 0


# --- the state machine ----------------------------------------------------------------


class Membership:
    """The SWIM node table of one member and everything that changes it.

    Error handling: malformed packets are counted in :attr:`stats` and dropped; nothing
    a peer sends raises out of these methods.
    """

    def __init__(self, config: MembershipConfig, now: float, rng: random.Random) -> None:
        self.config = config
        self.stats = MembershipStats()
        self.awareness = Awareness(config.awareness_max_multiplier)
        self._rng = rng
        self._out: list[Action] = []
        self._nodes: list[Member] = []
        self._by_name: dict[str, Member] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._probe_index = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._seq = 0
        self._incarnation = 0
        self._leaving = False
        self._leave_done = False
        self.broadcasts = TransmitLimitedQueue(config.retransmit_mult, lambda: len(self._nodes))
        self.user_broadcasts = TransmitLimitedQueue(config.user_retransmit_mult, self.num_members)
        # memberlist staggers each ticker's start by a random fraction of its interval
        self._next_probe = now + rng.random() * config.probe_interval
        self._next_gossip = now + rng.random() * config.gossip_interval
        self._next_push_pull = now + rng.random() * config.push_pull_interval
        host, port = config.address
        self._alive_node(
            Alive(
                incarnation=self._next_incarnation(),
                node=config.name,
                addr=host_to_ip(host),
                port=port,
                meta=config.meta,
                vsn=config.vsn,
            ),
            now,
            bootstrap=True,
        )

    # --- queries -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Our node name."""
        return self.config.name

    @property
    def incarnation(self) -> int:
        """Our current incarnation."""
        return self._by_name[self.config.name].incarnation

    @property
    def leaving(self) -> bool:
        """True once :meth:`leave` was called."""
        return self._leaving

    @property
    def leave_broadcast_done(self) -> bool:
        """True once our leave has been gossiped its full count (or nobody is left to tell)."""
        return self._leave_done

    def member(self, name: str) -> MemberInfo | None:
        """The table entry for ``name``, in any state, or None if unknown."""
        found = self._by_name.get(name)
        return None if found is None else found.info()

    def members(self) -> list[MemberInfo]:
        """Live members (alive or suspect), ourselves included."""
        return [m.info() for m in self._nodes if not m.dead_or_left]

    def all_nodes(self) -> list[MemberInfo]:
        """Every entry of the table, dead and left ones included."""
        return [m.info() for m in self._nodes]

    def num_members(self) -> int:
        """How many nodes are alive or suspect, ourselves included."""
        return sum(1 for m in self._nodes if not m.dead_or_left)

    def next_deadline(self) -> float:
        """The earliest time :meth:`poll` has something to do.

        The gossip tick counts only while a broadcast is queued: with empty queues it
        would send nothing (memberlist's tick returns at once then), so an idle node
        need not wake for it. See :meth:`_catch_up_gossip` for how the tick keeps its
        grid across the skipped wakes.
        """
        times = [self._next_push_pull]
        if self._gossip_queued():
            times.append(self._next_gossip)
        if self._probe is None:
            times.append(self._next_probe)
        else:
            times.append(
                self._probe.deadline if self._probe.indirect_sent else self._probe.direct_deadline
            )
        times.extend(s.deadline for s in self._suspicions.values())
        times.extend(r.deadline for r in self._relays.values() if r.nack)
        return min(times)

    # --- events ------------------------------------------------------------------------

    def poll(self, now: float) -> list[Action]:
        """Run every timer that is due at ``now``."""
        self._catch_up_gossip(now)
        for name, suspicion in list(self._suspicions.items()):
            if suspicion.deadline <= now:
                self._suspicion_fired(name, suspicion, now)
        for seq, relay in list(self._relays.items()):
            if relay.deadline <= now:
                del self._relays[seq]
                if relay.nack:
                    self._send_msg(relay.reply_to, Nack(seq_no=relay.their_seq).encode())
        probe = self._probe
        if probe is not None:
            if not probe.indirect_sent and probe.direct_deadline <= now:
                self._probe_indirect(probe)
            if probe.deadline <= now:
                self._probe_failed(probe, now)
        if self._probe is None and self._next_probe <= now:
            self._start_probe(now)
            # the ticker keeps its own pace; a slow (scaled) probe just swallows ticks
            self._next_probe = self._following_tick(
                self._next_probe, self.config.probe_interval, now
            )
        if self._next_gossip <= now:
            self._gossip(now)
            self._next_gossip = self._following_tick(
                self._next_gossip, self.config.gossip_interval, now
            )
        if self._next_push_pull <= now:
            self._periodic_push_pull()
            self._next_push_pull = self._following_tick(
                self._next_push_pull, self._push_pull_interval(), now
            )
        return self._drain()

    def handle_packet(self, data: bytes, source: Address, now: float) -> list[Action]:
        """Process one received UDP packet."""
        self._catch_up_gossip(now)
        self.stats.packets_received += 1
        try:
            packet = decode_packet(data)
        except DecodeError as exc:
            self.stats.malformed_packets += 1
            log.debug("packet.malformed", source=source, error=str(exc))
            return []
        if packet.errors:
            self.stats.malformed_messages += len(packet.errors)
            log.debug("packet.malformed_part", source=source, errors=len(packet.errors))
        for message in packet.messages:
            try:
                self._handle_message(message, source, now)
            except DecodeError as exc:
                self.stats.malformed_messages += 1
                log.debug("message.malformed", source=source, error=str(exc))
        return self._drain()

    def handle_fallback_ack(self, seq_no: int) -> list[Action]:
        """A TCP fallback ping for ``seq_no`` was answered."""
        if self._probe is not None and self._probe.seq_no == seq_no:
            self._probe.fallback_ok = True
        return self._drain()

    def push_pull_nodes(self) -> tuple[PushNodeState, ...]:
        """Our whole node table as a push/pull carries it (dead and left included)."""
        return tuple(
            PushNodeState(
                name=m.name,
                addr=m.addr,
                port=m.port,
                incarnation=m.incarnation,
                state=m.state,
                meta=m.meta,
                vsn=m.vsn,
            )
            for m in self._nodes
        )

    def verify_protocol(self, remote: Sequence[PushNodeState]) -> bool:
        """memberlist's verifyProtocol: every node's current versions fit the common range.

        The range is [highest minimum, lowest maximum] over the alive nodes of both
        tables; a push/pull that fails this is not merged at all.
        """

        def versions(vsn: bytes) -> tuple[int, int, int, int, int, int]:
            if len(vsn) < 6:
                return (0, 0, 0, 0, 0, 0)
            return (vsn[0], vsn[1], vsn[2], vsn[3], vsn[4], vsn[5])

        ranges = [versions(n.vsn) for n in remote if n.state == NodeState.ALIVE and n.vsn]
        ranges += [versions(m.vsn) for m in self._nodes if m.state == NodeState.ALIVE]
        max_pmin = max((v[0] for v in ranges), default=0)
        min_pmax = min((v[1] for v in ranges), default=255)
        max_dmin = max((v[3] for v in ranges), default=0)
        min_dmax = min((v[4] for v in ranges), default=255)
        currents = [versions(n.vsn) for n in remote] + [versions(m.vsn) for m in self._nodes]
        return all(max_pmin <= v[2] <= min_pmax and max_dmin <= v[5] <= min_dmax for v in currents)

    def merge_remote_nodes(self, nodes: Iterable[PushNodeState], now: float) -> list[Action]:
        """Merge a peer's node table from a push/pull (memberlist's mergeState)."""
        self._catch_up_gossip(now)
        for remote in nodes:
            if remote.state == NodeState.ALIVE:
                alive = Alive(
                    incarnation=remote.incarnation,
                    node=remote.name,
                    addr=remote.addr,
                    port=remote.port,
                    meta=remote.meta,
                    vsn=remote.vsn,
                )
                self._alive_node(alive, now)
            elif remote.state == NodeState.LEFT:
                self._dead_node(Dead(remote.incarnation, remote.name, remote.name), now)
            elif remote.state in (NodeState.DEAD, NodeState.SUSPECT):
                # never trust a remote dead: verify it by suspecting
                self._suspect_node(Suspect(remote.incarnation, remote.name, self.name), now)
        return self._drain()

    def queue_user_broadcast(self, payload: bytes, now: float | None = None) -> None:
        """Gossip a user message (a serialized Part) with the user retransmit limit.

        With ``now`` it goes out at the next gossip tick after ``now``; without, a tick
        skipped while the queues were empty may send it at once.
        """
        if now is not None:
            self._catch_up_gossip(now)
        self.user_broadcasts.queue(payload)

    def send_user_messages(self, payloads: Sequence[bytes]) -> list[Action]:
        """memberlist's ``SendBestEffort`` of user messages to every other live member,
        packed into as few UDP packets as fit ``udp_buffer_size``.

        Not part of memberlist's gossip: tocsin sends each local change this way as well
        as queueing it for gossip, because gossip hands a message out only
        ``user_retransmit_mult * ceil(log10(n+1))`` times (3 in a cluster of three) to
        random nodes, so now and then a peer never gets it until the next push/pull. For
        an nflog entry that means a duplicate notification. Packing matters in a burst:
        one packet per entry overflows a busy peer's socket buffer. Receivers
        (Alertmanager too) take them as any gossiped user messages; merging twice is
        harmless.
        """
        packets = self._pack([UserMsg(p).encode() for p in payloads])
        for member in self._nodes:
            if member.name == self.name or member.dead_or_left:
                continue
            self.stats.user_messages_sent += len(payloads)
            self.stats.user_bytes_sent += sum(map(len, payloads))
            for packet in packets:
                self._send_raw(member.address, packet, member)
        return self._drain()

    def _pack(self, messages: Sequence[bytes]) -> list[bytes]:
        """Messages in packets of at most ``udp_buffer_size`` (compounds when several)."""
        limit = self.config.udp_buffer_size - COMPOUND_HEADER_OVERHEAD
        packets: list[bytes] = []
        batch: list[bytes] = []
        used = 0
        for message in messages:
            size = len(message) + COMPOUND_OVERHEAD
            if batch and (used + size > limit or len(batch) == MAX_COMPOUND_PARTS):
                packets.append(batch[0] if len(batch) == 1 else make_compounds(batch)[0])
                batch, used = [], 0
            batch.append(message)
            used += size
        if batch:
            packets.append(batch[0] if len(batch) == 1 else make_compounds(batch)[0])
        return packets

    def leave(self, now: float) -> list[Action]:
        """Start a graceful leave: gossip ``dead`` about ourselves from ourselves."""
        if self._leaving:
            return []
        self._catch_up_gossip(now)
        self._leaving = True
        me = self._by_name[self.name]
        self._dead_node(Dead(me.incarnation, self.name, self.name), now)
        if not any(m.state == NodeState.ALIVE and m.name != self.name for m in self._nodes):
            self._leave_done = True
        return self._drain()

    # --- message dispatch ------------------------------------------------------------

    def _handle_message(self, message: object, source: Address, now: float) -> None:
        if isinstance(message, Ping):
            self._handle_ping(message, source)
        elif isinstance(message, IndirectPing):
            self._handle_indirect_ping(message, source, now)
        elif isinstance(message, Ack):
            self._handle_ack(message, now)
        elif isinstance(message, Nack):
            if self._probe is not None and self._probe.seq_no == message.seq_no:
                self._probe.nacks += 1
        elif isinstance(message, Alive):
            self._alive_node(message, now)
        elif isinstance(message, Suspect):
            self._suspect_node(message, now)
        elif isinstance(message, Dead):
            self._dead_node(message, now)
        elif isinstance(message, UserMsg):
            self._out.append(DeliverUserMessage(message.payload))

    def _handle_ping(self, ping: Ping, source: Address) -> None:
        if ping.node and ping.node != self.name:
            log.debug("ping.wrong_node", node=ping.node, source=source)
            return
        reply_to = source
        if ping.source_addr and ping.source_port:
            reply_to = (ip_to_host(ping.source_addr), ping.source_port)
        self._send_msg(reply_to, Ack(seq_no=ping.seq_no).encode())

    def _handle_indirect_ping(self, req: IndirectPing, source: Address, now: float) -> None:
        reply_to = source
        if req.source_addr and req.source_port:
            reply_to = (ip_to_host(req.source_addr), req.source_port)
        seq = self._next_seq()
        self._relays[seq] = _Relay(
            reply_to=reply_to,
            their_seq=req.seq_no,
            deadline=now + self.config.probe_timeout,
            nack=req.nack,
        )
        self._send_msg((ip_to_host(req.target), req.port), self._ping(seq, req.node).encode())

    def _handle_ack(self, ack: Ack, now: float) -> None:
        probe = self._probe
        if probe is not None and probe.seq_no == ack.seq_no:
            self._probe = None
            self.awareness.apply_delta(-1)
            if now <= probe.direct_deadline:
                # memberlist reports the round trip only for a direct ack in time
                self._out.append(PingCompleted(probe.target, now - probe.sent))
            return
        relay = self._relays.pop(ack.seq_no, None)
        if relay is not None:
            self._send_msg(relay.reply_to, Ack(seq_no=relay.their_seq).encode())

    # --- alive / suspect / dead ------------------------------------------------------

    def _alive_node(self, alive: Alive, now: float, *, bootstrap: bool = False) -> None:
        is_self = alive.node == self.name
        if self._leaving and is_self:
            return
        vsn = alive.vsn
        if len(vsn) >= 3 and (vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]):
            self.stats.ignored_alives += 1
            return
        if len(vsn) < 6:
            # Alertmanager's alive delegate makes memberlist drop these
            self.stats.ignored_alives += 1
            return
        counts = self.stats.alive_messages
        counts[alive.node] = counts.get(alive.node, 0) + 1
        if len(alive.addr) not in (4, 16):
            self.stats.ignored_alives += 1
            return
        state = self._by_name.get(alive.node)
        updates_node = False
        if state is None:
            state = Member(
                name=alive.node,
                addr=alive.addr,
                port=alive.port,
                incarnation=0,
                state=NodeState.DEAD,
                state_change=now,
                meta=alive.meta,
                vsn=alive.vsn,
            )
            self._by_name[alive.node] = state
            # a new node goes to a random position so probe order stays unpredictable
            self._nodes.append(state)
            offset = self._rng.randrange(len(self._nodes))
            last = len(self._nodes) - 1
            self._nodes[offset], self._nodes[last] = self._nodes[last], self._nodes[offset]
        elif state.addr != alive.addr or state.port != alive.port:
            if state.state == NodeState.LEFT:
                updates_node = True
            else:
                log.warning(
                    "member.conflict", node=alive.node, known=state.address, port=alive.port
                )
                self.stats.ignored_alives += 1
                return
        if alive.incarnation <= state.incarnation and not is_self and not updates_node:
            return
        if alive.incarnation < state.incarnation and is_self:
            return
        self._suspicions.pop(alive.node, None)
        old_state, old_meta = state.state, state.meta
        if not bootstrap and is_self:
            if (
                alive.incarnation == state.incarnation
                and alive.meta == state.meta
                and alive.vsn == state.vsn
            ):
                return
            self._refute(state, alive.incarnation)
            log.warning("member.refute_alive", incarnation=alive.incarnation)
            return
        self.broadcasts.queue(alive.encode(), name=alive.node)
        state.incarnation = alive.incarnation
        state.meta = alive.meta
        state.addr = alive.addr
        state.port = alive.port
        state.vsn = alive.vsn
        if state.state != NodeState.ALIVE:
            state.state = NodeState.ALIVE
            state.state_change = now
        if old_state in (NodeState.DEAD, NodeState.LEFT):
            self._out.append(MemberJoined(state.info()))
        elif old_meta != state.meta:
            self._out.append(MemberUpdated(state.info()))

    def _suspect_node(self, suspect: Suspect, now: float) -> None:
        state = self._by_name.get(suspect.node)
        if state is None or suspect.incarnation < state.incarnation:
            return
        running = self._suspicions.get(suspect.node)
        if running is not None:
            if running.confirm(suspect.from_node, now):
                self.broadcasts.queue(suspect.encode(), name=suspect.node)
            return
        if state.state != NodeState.ALIVE:
            return
        if state.name == self.name:
            self._refute(state, suspect.incarnation)
            log.warning("member.refute_suspect", accuser=suspect.from_node)
            return
        self.broadcasts.queue(suspect.encode(), name=suspect.node)
        state.incarnation = suspect.incarnation
        state.state = NodeState.SUSPECT
        state.state_change = now
        log.info("peer.suspected", node=suspect.node, accuser=suspect.from_node)
        # k confirmations are expected, unless too few nodes exist to send them (we and
        # the suspect do not count)
        k = self.config.suspicion_mult - 2
        n = len(self._nodes)
        if n - 2 < k:
            k = 0
        min_timeout = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval)
        max_timeout = self.config.suspicion_max_timeout_mult * min_timeout
        self._suspicions[suspect.node] = Suspicion.begin(
            suspect.from_node, suspect.incarnation, k, min_timeout, max_timeout, now
        )

    def _suspicion_fired(self, name: str, suspicion: Suspicion, now: float) -> None:
        del self._suspicions[name]
        state = self._by_name.get(name)
        if (
            state is not None
            and state.state == NodeState.SUSPECT
            and state.incarnation == suspicion.incarnation
        ):
            log.info(
                "peer.declared_dead",
                node=name,
                confirmations=len(suspicion.confirmations) - 1,
            )
            self._dead_node(Dead(state.incarnation, name, self.name), now)

    def _dead_node(self, dead: Dead, now: float) -> None:
        state = self._by_name.get(dead.node)
        if state is None or dead.incarnation < state.incarnation:
            return
        self._suspicions.pop(dead.node, None)
        if state.dead_or_left:
            return
        if state.name == self.name:
            if not self._leaving:
                self._refute(state, dead.incarnation)
                log.warning("member.refute_dead", accuser=dead.from_node)
                return
            self.broadcasts.queue(dead.encode(), name=dead.node, on_finished=self._left)
        else:
            self.broadcasts.queue(dead.encode(), name=dead.node)
        state.incarnation = dead.incarnation
        state.state = NodeState.LEFT if dead.is_leave else NodeState.DEAD
        state.state_change = now
        self._out.append(MemberLeft(state.info()))

    def _left(self) -> None:
        self._leave_done = True

    def _refute(self, me: Member, accused: int) -> None:
        incarnation = self._next_incarnation()
        if accused >= incarnation:
            incarnation = self._skip_incarnation(accused - incarnation + 1)
        me.incarnation = incarnation
        self.stats.refutations += 1
        # being accused means others are not hearing from us: slow our own probing down
        self.awareness.apply_delta(1)
        alive = Alive(
            incarnation=incarnation,
            node=me.name,
            addr=me.addr,
            port=me.port,
            meta=me.meta,
            vsn=me.vsn,
        )
        self.broadcasts.queue(alive.encode(), name=me.name)

    # --- probing ---------------------------------------------------------------------

    def _interval(self) -> float:
        return self.awareness.scale(self.config.probe_interval)

    def _start_probe(self, now: float) -> None:
        target = self._next_probe_target(now)
        if target is None:
            return
        seq = self._next_seq()
        interval = self._interval()
        self._probe = _Probe(
            target=target.name,
            seq_no=seq,
            sent=now,
            direct_deadline=now + self.config.probe_timeout,
            deadline=now + interval,
        )
        ping = self._ping(seq, target.name).encode()
        if target.state == NodeState.ALIVE:
            self._send_msg(target.address, ping)
        else:
            # tell a suspect node it is suspected so it can refute
            suspect = Suspect(target.incarnation, target.name, self.name).encode()
            self._send_raw(target.address, make_compounds([ping, suspect])[0], target)

    def _next_probe_target(self, now: float) -> Member | None:
        checked = 0
        while checked < len(self._nodes):
            if self._probe_index >= len(self._nodes):
                self._reset_nodes(now)
                self._probe_index = 0
                checked += 1
                continue
            node = self._nodes[self._probe_index]
            self._probe_index += 1
            if node.name == self.name or node.dead_or_left:
                checked += 1
                continue
            return node
        return None

    def _reset_nodes(self, now: float) -> None:
        """End of a round: forget long-dead nodes and reshuffle the rest."""
        cutoff = now - self.config.gossip_to_the_dead_time
        kept: list[Member] = []
        for node in self._nodes:
            if node.dead_or_left and node.state_change < cutoff:
                del self._by_name[node.name]
            else:
                kept.append(node)
        self._rng.shuffle(kept)
        self._nodes = kept

    def _probe_indirect(self, probe: _Probe) -> None:
        probe.indirect_sent = True
        target = self._by_name.get(probe.target)
        if target is None:
            return
        host, port = self.config.address
        peers = self._random_nodes(
            self.config.indirect_checks,
            lambda m: m.name in (self.name, probe.target) or m.state != NodeState.ALIVE,
        )
        for peer in peers:
            nack = peer.protocol_max >= 4
            if nack:
                probe.expected_nacks += 1
            request = IndirectPing(
                seq_no=probe.seq_no,
                target=target.addr,
                port=target.port,
                node=target.name,
                nack=nack,
                source_addr=host_to_ip(host),
                source_port=port,
                source_node=self.name,
            )
            self._send_msg(peer.address, request.encode())
        if not self.config.disable_tcp_pings and target.protocol_max >= 3:
            self._out.append(
                StartFallbackPing(
                    target.address, self._ping(probe.seq_no, target.name), probe.deadline
                )
            )

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        self._probe = None
        if probe.fallback_ok:
            log.warning("probe.udp_failed_tcp_ok", node=probe.target)
            return
        if probe.expected_nacks > 0:
            self.awareness.apply_delta(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self.awareness.apply_delta(1)
        target = self._by_name.get(probe.target)
        if target is None:
            return
        log.info("probe.failed", node=probe.target)
        self._suspect_node(Suspect(target.incarnation, target.name, self.name), now)

    def _ping(self, seq: int, node: str) -> Ping:
        host, port = self.config.address
        return Ping(
            seq_no=seq,
            node=node,
            source_addr=host_to_ip(host),
            source_port=port,
            source_node=self.name,
        )

    # --- gossip and push/pull --------------------------------------------------------

    def _gossip(self, now: float) -> None:
        dead_cutoff = now - self.config.gossip_to_the_dead_time

        def skip(m: Member) -> bool:
            if m.name == self.name:
                return True
            if m.state in (NodeState.ALIVE, NodeState.SUSPECT):
                return False
            return m.state != NodeState.DEAD or m.state_change < dead_cutoff

        limit = self.config.udp_buffer_size - COMPOUND_HEADER_OVERHEAD
        for node in self._random_nodes(self.config.gossip_nodes, skip):
            messages = self._get_broadcasts(COMPOUND_OVERHEAD, limit)
            if not messages:
                return
            payloads = messages if len(messages) == 1 else make_compounds(messages)
            # more than 255 tiny messages need several compounds (memberlist 0.5 splits)
            for payload in payloads:
                self._send_raw(node.address, payload, node)

    def _gossip_queued(self) -> bool:
        return bool(len(self.broadcasts) or len(self.user_broadcasts))

    def _catch_up_gossip(self, now: float) -> None:
        """Move a gossip tick that passed while nothing was queued onto the grid after ``now``.

        Called before anything can be queued, so a new broadcast leaves at the next tick
        of the ``gossip_interval`` grid, exactly when memberlist's ticker would send it,
        and not at once for a tick that was skipped.
        """
        if self._next_gossip <= now and not self._gossip_queued():
            self._next_gossip = self._following_tick(
                self._next_gossip, self.config.gossip_interval, now
            )

    def _periodic_push_pull(self) -> None:
        peers = self._random_nodes(1, lambda m: m.name == self.name or m.state != NodeState.ALIVE)
        for peer in peers:
            self._out.append(StartPushPull(peer.address, join=False))

    def _push_pull_interval(self) -> float:
        # memberlist backs off above 32 nodes so push/pull load stays flat
        n = len(self._nodes)
        if n <= 32:
            return self.config.push_pull_interval
        return self.config.push_pull_interval * (math.ceil(math.log2(n) - math.log2(32)) + 1)

    def _get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        messages = self.broadcasts.get_broadcasts(overhead, limit)
        used = sum(len(m) + overhead for m in messages)
        available = limit - used
        if available > overhead + USER_MSG_OVERHEAD:
            for payload in self.user_broadcasts.get_broadcasts(
                overhead + USER_MSG_OVERHEAD, available
            ):
                self.stats.user_messages_sent += 1
                self.stats.user_bytes_sent += len(payload)
                messages.append(UserMsg(payload).encode())
        return messages

    # --- sending -----------------------------------------------------------------------

    def _send_msg(self, address: Address, message: bytes) -> None:
        """memberlist's sendMsg: piggyback broadcasts, no CRC (the node is not looked up)."""
        available = self.config.udp_buffer_size - len(message) - COMPOUND_HEADER_OVERHEAD
        extra = self._get_broadcasts(COMPOUND_OVERHEAD, available)
        if not extra:
            self._send_raw(address, message, None)
            return
        for compound in make_compounds([message, *extra]):
            self._send_raw(address, compound, None)

    def _send_raw(self, address: Address, message: bytes, node: Member | None) -> None:
        crc = node is not None and node.protocol_max >= 5
        data = encode_packet(message, compress=self.config.enable_compression, crc=crc)
        self._out.append(SendPacket(address, data))

    # --- small helpers -----------------------------------------------------------------

    def _random_nodes(self, k: int, skip: Callable[[Member], bool]) -> Sequence[Member]:
        candidates = [m for m in self._nodes if not skip(m)]
        return self._rng.sample(candidates, min(k, len(candidates)))

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF_FFFF
        return self._seq

    def _next_incarnation(self) -> int:
        self._incarnation = (self._incarnation + 1) & 0xFFFF_FFFF
        return self._incarnation

    def _skip_incarnation(self, offset: int) -> int:
        self._incarnation = (self._incarnation + offset) & 0xFFFF_FFFF
        return self._incarnation

    @staticmethod
    def _following_tick(previous: float, interval: float, now: float) -> float:
        """The first tick after ``now`` on the grid ``previous + k * interval``."""
        if interval <= 0:
            return now
        steps = math.floor((now - previous) / interval) + 1
        return previous + steps * interval

    def _drain(self) -> list[Action]:
        out, self._out = self._out, []
        if len(self.broadcasts) > MAX_QUEUED_BROADCASTS:
            self.broadcasts.prune(MAX_QUEUED_BROADCASTS)
        return out


# --- Alertmanager's failed-peer bookkeeping ---------------------------------------------


@attrs.define
class FailedPeers:
    """Peers to keep re-joining: Alertmanager's ``failedPeers`` list.

    A configured peer starts here as a placeholder (address only) until a member at
    that address joins; a member that dies or leaves comes back here with the time it
    left. Every reconnect interval the shell re-joins each address; entries older than
    the reconnect timeout are pruned. Keyed by address, as Alertmanager keys peers.
    """

    entries: dict[Address, tuple[str, float]] = attrs.field(factory=dict)

    def add(self, address: Address, name: str, now: float) -> None:
        """Remember a peer to reconnect to (a placeholder has an empty name)."""
        self.entries[address] = (name, now)

    def joined(self, address: Address) -> bool:
        """A member at ``address`` joined; True if it was a failed peer (a rejoin)."""
        return self.entries.pop(address, None) is not None

    def addresses(self) -> list[Address]:
        """Every address to try to re-join."""
        return list(self.entries)

    def prune(self, now: float, timeout: float) -> list[Address]:
        """Forget peers that failed more than ``timeout`` ago; return their addresses."""
        gone = [a for a, (_, since) in self.entries.items() if now - since > timeout]
        for address in gone:
            del self.entries[address]
        return gone
