"""The pure SWIM core: memberlist's alive/suspect/dead rules, probing, Lifeguard timers."""

from __future__ import annotations

import random

import pytest

from cluster.framing import decode_packet, encode_packet, make_compounds
from cluster.membership import (
    Action,
    Awareness,
    DeliverUserMessage,
    MemberJoined,
    MemberLeft,
    Membership,
    MembershipConfig,
    PingCompleted,
    SendPacket,
    StartFallbackPing,
    Suspicion,
    remaining_suspicion_time,
    suspicion_timeout,
)
from cluster.messages import (
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

ME = ("10.0.0.1", 7946)


def make(now: float = 0.0) -> Membership:
    """A core named "me" with a fixed random seed and its bootstrap actions drained."""
    core = Membership(MembershipConfig(name="me", address=ME), now, random.Random(0))
    core.poll(-1.0)
    return core


def alive(name: str, incarnation: int = 1, host: int = 2, **kw: object) -> bytes:
    """A packet carrying one alive message."""
    message = Alive(
        incarnation=incarnation, node=name, addr=bytes((10, 0, 0, host)), port=7946, **kw
    )  # type: ignore[arg-type]
    return encode_packet(message.encode())


def sent(actions: list[Action]) -> list[tuple[tuple[str, int], object]]:
    """Every message in the packets among ``actions``, with its destination."""
    out = []
    for action in actions:
        if isinstance(action, SendPacket):
            out.extend((action.address, m) for m in decode_packet(action.data).messages)
    return out


def test_suspicion_timeouts_match_memberlist() -> None:
    """min = 4 * max(1, log10 n) s, and confirmations decay the timeout from max toward min."""
    assert suspicion_timeout(4, 3, 1.0) == 4.0
    assert suspicion_timeout(4, 100, 1.0) == 8.0
    assert remaining_suspicion_time(0, 2, 0.0, 4.0, 24.0) == 24.0
    assert remaining_suspicion_time(2, 2, 0.0, 4.0, 24.0) == 4.0
    assert remaining_suspicion_time(1, 2, 1.0, 4.0, 24.0) == pytest.approx(10.381, abs=0.001)


def test_suspicion_confirmations_count_once_per_source() -> None:
    """Only new accusers confirm, at most k of them, each shortening the deadline."""
    s = Suspicion.begin("a", 1, 2, 4.0, 24.0, now=0.0)
    assert s.deadline == 24.0
    assert not s.confirm("a", 1.0)
    assert s.confirm("b", 1.0)
    assert s.deadline == pytest.approx(11.381, abs=0.001)
    assert s.confirm("c", 2.0)
    assert s.deadline == 4.0
    assert not s.confirm("d", 2.0)


def test_awareness_is_clamped() -> None:
    """The health score stays within [0, max-1] and scales timeouts by score+1."""
    awareness = Awareness(8)
    awareness.apply_delta(-3)
    assert awareness.score == 0
    awareness.apply_delta(20)
    assert awareness.score == 7
    assert awareness.scale(1.0) == 8.0


def test_alive_rules_incarnation_vsn_and_conflict() -> None:
    """New nodes join; stale incarnations, short Vsn and address conflicts are ignored."""
    core = make()
    actions = core.handle_packet(alive("b", 1), ("10.0.0.2", 7946), 1.0)
    assert [type(a) for a in actions] == [MemberJoined]
    assert core.handle_packet(alive("b", 1), ("10.0.0.2", 7946), 1.0) == []
    assert core.handle_packet(alive("c", 1, vsn=b"\x01\x05\x02"), ("x", 1), 1.0) == []
    assert core.handle_packet(alive("c", 1, vsn=b"\x00\x05\x02\x00\x00\x00"), ("x", 1), 1.0) == []
    assert core.member("c") is None
    assert core.handle_packet(alive("b", 5, host=9), ("10.0.0.9", 7946), 1.0) == []
    assert core.member("b").address == ("10.0.0.2", 7946)  # type: ignore[union-attr]
    core.handle_packet(alive("b", 2, meta=b"m"), ("10.0.0.2", 7946), 1.0)
    assert core.member("b").incarnation == 2  # type: ignore[union-attr]
    assert core.stats.ignored_alives == 3


def test_suspect_and_dead_about_us_are_refuted() -> None:
    """Accusations about ourselves raise our incarnation past them and gossip a fresh alive."""
    core = make()
    core.handle_packet(alive("b"), ("10.0.0.2", 7946), 0.0)
    accusation = Suspect(incarnation=5, node="me", from_node="b").encode()
    core.handle_packet(encode_packet(accusation), ("10.0.0.2", 7946), 1.0)
    assert core.incarnation == 6
    assert core.member("me").state == NodeState.ALIVE  # type: ignore[union-attr]
    core.handle_packet(encode_packet(Dead(6, "me", "b").encode()), ("10.0.0.2", 7946), 1.0)
    assert core.incarnation == 7
    assert core.awareness.score == 2
    gossip = [m for _, m in sent(core.poll(10.0)) if isinstance(m, Alive)]
    assert Alive(7, "me", bytes((10, 0, 0, 1)), 7946) in gossip


def test_alive_about_us_with_other_meta_is_refuted() -> None:
    """An alive about ourselves that differs from what we advertise is refuted."""
    core = make()
    core.handle_packet(alive("me", 1, host=1), ME, 1.0)
    assert core.incarnation == 1  # identical: nothing to do
    core.handle_packet(alive("me", 1, host=1, meta=b"forged"), ME, 1.0)
    assert core.incarnation == 2


def test_dead_from_self_is_a_leave_and_notifies() -> None:
    """A dead message sent by the node itself records it as left; from another, as dead."""
    core = make()
    core.handle_packet(alive("b", host=2), ("10.0.0.2", 7946), 0.0)
    core.handle_packet(alive("c", host=3), ("10.0.0.3", 7946), 0.0)
    left = core.handle_packet(encode_packet(Dead(1, "b", "b").encode()), ("x", 1), 1.0)
    dead = core.handle_packet(encode_packet(Dead(1, "c", "me2").encode()), ("x", 1), 1.0)
    assert [type(a) for a in left + dead] == [MemberLeft, MemberLeft]
    assert core.member("b").state == NodeState.LEFT  # type: ignore[union-attr]
    assert core.member("c").state == NodeState.DEAD  # type: ignore[union-attr]
    # a dead name cannot come back at the same incarnation, but can with a higher one
    assert core.handle_packet(alive("c", 1, host=3), ("x", 1), 2.0) == []
    assert [type(a) for a in core.handle_packet(alive("c", 2, host=3), ("x", 1), 2.0)] == [
        MemberJoined
    ]


def test_push_pull_merge_never_trusts_remote_dead() -> None:
    """A remote dead or suspect entry becomes a local suspicion; left stays left."""
    core = make()
    for host, name in ((2, "b"), (3, "c"), (4, "d")):
        core.handle_packet(alive(name, host=host), ("x", 1), 0.0)
    remote = [
        PushNodeState("b", bytes((10, 0, 0, 2)), 7946, 1, NodeState.DEAD),
        PushNodeState("c", bytes((10, 0, 0, 3)), 7946, 1, NodeState.LEFT),
        PushNodeState("d", bytes((10, 0, 0, 4)), 7946, 1, NodeState.SUSPECT),
        PushNodeState("e", bytes((10, 0, 0, 5)), 7946, 3, NodeState.ALIVE),
    ]
    core.merge_remote_nodes(remote, 1.0)
    states = {m.name: m.state for m in core.all_nodes()}
    assert states == {
        "me": NodeState.ALIVE,
        "b": NodeState.SUSPECT,
        "c": NodeState.LEFT,
        "d": NodeState.SUSPECT,
        "e": NodeState.ALIVE,
    }


def test_ping_is_answered_at_its_source_address_with_piggybacked_gossip() -> None:
    """An ack goes to SourceAddr:SourcePort and carries queued broadcasts in a compound."""
    core = make()
    ping = Ping(seq_no=9, node="me", source_addr=bytes((10, 0, 0, 7)), source_port=7000)
    out = sent(core.handle_packet(encode_packet(ping.encode()), ("10.0.0.99", 1), 1.0))
    assert out[0] == (("10.0.0.7", 7000), Ack(seq_no=9))
    assert any(isinstance(m, Alive) and m.node == "me" for _, m in out[1:])
    wrong = Ping(seq_no=10, node="someone-else").encode()
    assert core.handle_packet(encode_packet(wrong), ("10.0.0.99", 1), 1.0) == []


def test_failed_probe_goes_indirect_then_suspects() -> None:
    """No ack within the probe timeout: indirect pings with nacks and a TCP ping, then suspect."""
    core = make()
    for host, name in ((2, "b"), (3, "c"), (4, "d")):
        core.handle_packet(alive(name, host=host), ("x", 1), 0.0)
    target = None
    for _ in range(50):
        step = core.next_deadline()
        actions = core.poll(step)
        pings = [m for _, m in sent(actions) if isinstance(m, Ping)]
        if pings:
            target, probe_at = pings[0].node, step
            break
    assert target is not None
    actions = core.poll(probe_at + 0.5)
    indirect = [m for _, m in sent(actions) if isinstance(m, IndirectPing)]
    fallback = [a for a in actions if isinstance(a, StartFallbackPing)]
    assert len(indirect) == 2 and all(m.nack and m.node == target for m in indirect)
    assert len(fallback) == 1 and fallback[0].ping.node == target
    assert core.member(target).state == NodeState.ALIVE  # type: ignore[union-attr]
    # one relay answers with a nack; the other stays silent
    core.handle_packet(encode_packet(Nack(indirect[0].seq_no).encode()), ("x", 1), probe_at + 0.6)
    core.poll(probe_at + 1.0)
    assert core.member(target).state == NodeState.SUSPECT  # type: ignore[union-attr]
    assert core.awareness.score == 1  # one expected nack missing


def test_late_ack_via_relay_completes_the_probe() -> None:
    """An ack forwarded by a relay before the interval ends prevents the suspicion."""
    core = make()
    for host, name in ((2, "b"), (3, "c"), (4, "d")):
        core.handle_packet(alive(name, host=host), ("x", 1), 0.0)
    for _ in range(50):
        step = core.next_deadline()
        pings = [m for _, m in sent(core.poll(step)) if isinstance(m, Ping)]
        if pings:
            break
    core.poll(step + 0.5)
    core.handle_packet(encode_packet(Ack(pings[0].seq_no).encode()), ("x", 1), step + 0.7)
    core.poll(step + 1.0)
    assert all(m.state == NodeState.ALIVE for m in core.all_nodes())


def test_relay_forwards_ack_or_sends_nack() -> None:
    """As a relay we ping the target, forward its ack with the requester's seq, else nack."""
    core = make()
    request = IndirectPing(
        seq_no=77,
        target=bytes((10, 0, 0, 5)),
        port=7946,
        node="t",
        nack=True,
        source_addr=bytes((10, 0, 0, 3)),
        source_port=7946,
    )
    out = sent(core.handle_packet(encode_packet(request.encode()), ("10.0.0.3", 7946), 0.0))
    ping = out[0][1]
    assert out[0][0] == ("10.0.0.5", 7946) and isinstance(ping, Ping) and ping.node == "t"
    back = sent(core.handle_packet(encode_packet(Ack(ping.seq_no).encode()), ("x", 1), 0.1))
    assert back[0] == (("10.0.0.3", 7946), Ack(seq_no=77))
    out = sent(core.handle_packet(encode_packet(request.encode()), ("10.0.0.3", 7946), 1.0))
    nacks = [m for _, m in sent(core.poll(1.5)) if isinstance(m, Nack)]
    assert nacks == [Nack(77)] and out


def test_suspect_probe_carries_the_suspicion() -> None:
    """A suspect node is probed with compound[ping, suspect] so it can refute."""
    core = make()
    core.handle_packet(alive("b", host=2), ("x", 1), 0.0)
    core.handle_packet(encode_packet(Suspect(1, "b", "z").encode()), ("x", 1), 0.0)
    for _ in range(50):
        messages = [m for _, m in sent(core.poll(core.next_deadline()))]
        if any(isinstance(m, Ping) for m in messages):
            break
    assert any(isinstance(m, Ping) and m.node == "b" for m in messages)
    assert Suspect(1, "b", "me") in messages


def test_user_messages_are_delivered_and_gossiped() -> None:
    """A received user message is delivered; a queued one rides the next gossip packet."""
    core = make()
    core.handle_packet(alive("b", host=2), ("x", 1), 0.0)
    packet = encode_packet(make_compounds([UserMsg(b"part").encode(), b"\xee"])[0])
    actions = core.handle_packet(packet, ("x", 1), 0.0)
    assert DeliverUserMessage(b"part") in actions
    assert core.stats.malformed_messages == 1
    core.queue_user_broadcast(b"mine")
    found = []
    for _ in range(10):
        found += [m for _, m in sent(core.poll(core.next_deadline())) if isinstance(m, UserMsg)]
    assert found.count(UserMsg(b"mine")) == 3  # Alertmanager's retransmit limit for 2 nodes


def test_leave_gossips_dead_about_ourselves() -> None:
    """A leave queues dead{me, from me}; it is done after the retransmit limit."""
    core = make()
    core.handle_packet(alive("b", host=2), ("x", 1), 0.0)
    core.poll(5.0)
    core.leave(5.0)
    assert not core.leave_broadcast_done
    deads = []
    for _ in range(40):
        deads += [m for _, m in sent(core.poll(core.next_deadline())) if isinstance(m, Dead)]
    assert deads.count(Dead(1, "me", "me")) == 4
    assert core.leave_broadcast_done
    assert core.handle_packet(encode_packet(Dead(1, "me", "b").encode()), ("x", 1), 9.0) == []


def test_verify_protocol_rejects_incompatible_current_versions() -> None:
    """A push/pull whose nodes run a protocol outside the common range is refused."""
    core = make()
    ok = PushNodeState("b", bytes((10, 0, 0, 2)), 7946, 1)
    too_new = PushNodeState("c", bytes((10, 0, 0, 3)), 7946, 1, vsn=bytes((1, 5, 6, 0, 0, 0)))
    narrow = PushNodeState("d", bytes((10, 0, 0, 4)), 7946, 1, vsn=bytes((3, 5, 3, 0, 0, 0)))
    assert core.verify_protocol([ok])
    assert not core.verify_protocol([ok, too_new])
    assert not core.verify_protocol([narrow])  # our own pcur 2 is below its pmin 3


def test_many_tiny_broadcasts_are_split_into_several_compounds() -> None:
    """More than 255 queued messages fitting one packet budget go out as several compounds."""
    core = make()
    core.handle_packet(alive("b", host=2), ("x", 1), 0.0)
    core.poll(10.0)  # let the alives run out
    for i in range(300):
        core.queue_user_broadcast(bytes((i % 256,)))
    config = core.config
    core.config = MembershipConfig(name="me", address=ME, udp_buffer_size=65000)
    actions = core.poll(core.next_deadline())
    core.config = config
    users = [m for _, m in sent(actions) if isinstance(m, UserMsg)]
    assert len(users) == 300
    assert sum(isinstance(a, SendPacket) for a in actions) >= 2


def quiet_core() -> Membership:
    """A core with one peer whose only short timer is gossip (probes every 100 s)."""
    config = MembershipConfig(
        name="me", address=ME, probe_interval=100.0, push_pull_interval=1000.0
    )
    core = Membership(config, 0.0, random.Random(0))
    core.handle_packet(alive("b", host=2), ("x", 1), 0.0)
    for step in range(1, 16):  # gossip the alives out, before the first probe
        core.poll(step * 0.2)
    assert len(core.broadcasts) == 0 and len(core.user_broadcasts) == 0
    return core


def test_idle_gossip_tick_is_no_deadline() -> None:
    """With nothing queued the gossip tick is not a deadline; a queued message makes it one."""
    core = quiet_core()
    now = core._next_gossip
    assert core.next_deadline() > now + 10
    core.queue_user_broadcast(b"x", now)
    assert core.next_deadline() <= now + core.config.gossip_interval


def test_broadcast_after_skipped_ticks_waits_for_the_grid() -> None:
    """A message queued after idle ticks goes at the next tick of the gossip grid, not at once."""
    core = quiet_core()
    grid = core._next_gossip
    interval = core.config.gossip_interval
    now = grid + 3 * interval + 0.05  # ticks at grid .. grid + 3 interval were skipped
    core.queue_user_broadcast(b"late", now)
    due = core.next_deadline()
    assert due == pytest.approx(grid + 4 * interval)
    assert not [m for _, m in sent(core.poll(now)) if isinstance(m, UserMsg)]
    assert UserMsg(b"late") in [m for _, m in sent(core.poll(due))]


def first_probe(core: Membership) -> tuple[Ping, float]:
    """Poll ``core`` deadline by deadline until it pings someone; the ping and when."""
    for _ in range(50):
        step = core.next_deadline()
        pings = [m for _, m in sent(core.poll(step)) if isinstance(m, Ping)]
        if pings:
            return pings[0], step
    raise AssertionError("no probe")


def test_direct_ack_in_time_reports_the_round_trip() -> None:
    """An ack within the probe timeout yields PingCompleted(target, rtt); a later one none."""
    core = make()
    core.handle_packet(alive("b", host=2), ("x", 1), 0.0)
    ping, at = first_probe(core)
    actions = core.handle_packet(encode_packet(Ack(ping.seq_no).encode()), ("x", 1), at + 0.03)
    assert actions == [PingCompleted("b", pytest.approx(0.03))]
    ping, at = first_probe(core)
    core.poll(at + 0.5)  # the probe timeout passed: indirect probing began
    late = core.handle_packet(encode_packet(Ack(ping.seq_no).encode()), ("x", 1), at + 0.6)
    assert not [a for a in late if isinstance(a, PingCompleted)]


def test_alive_messages_are_counted_per_node_after_the_version_checks() -> None:
    """Every alive that passes the vsn checks counts for its node, applied or not."""
    core = make()
    core.handle_packet(alive("b", 1), ("x", 1), 0.0)
    core.handle_packet(alive("b", 1), ("x", 1), 0.0)  # stale: ignored, still counted
    core.handle_packet(alive("c", 1, vsn=b"\x01\x05\x02"), ("x", 1), 0.0)  # short vsn
    assert core.stats.alive_messages == {"me": 1, "b": 2}


def test_user_message_transmissions_are_counted_with_their_bytes() -> None:
    """Every draw of a user message into a packet counts once, with the payload's size."""
    core = make()
    core.handle_packet(alive("b", host=2), ("x", 1), 0.0)
    core.queue_user_broadcast(b"12345")
    for _ in range(10):
        core.poll(core.next_deadline())
    assert (core.stats.user_messages_sent, core.stats.user_bytes_sent) == (3, 15)


def test_direct_user_messages_are_packed_per_live_peer_within_the_udp_buffer() -> None:
    """send_user_messages packs each payload once per live peer, in order, in packets
    no larger than udp_buffer_size, and sends nothing to dead members."""
    core = make()
    core.handle_packet(alive("b", 1, host=2), ("10.0.0.2", 7946), 1.0)
    core.handle_packet(alive("c", 1, host=3), ("10.0.0.3", 7946), 1.0)
    core.poll(2.0)
    core.handle_packet(encode_packet(Dead(2, "c", "c").encode()), ("10.0.0.3", 7946), 2.0)
    core.poll(3.0)
    payloads = [bytes([i]) * 300 for i in range(10)]
    actions = core.send_user_messages(payloads)
    packets = [a for a in actions if isinstance(a, SendPacket)]
    assert {p.address for p in packets} == {("10.0.0.2", 7946)}
    assert all(len(p.data) <= core.config.udp_buffer_size for p in packets)
    assert 3 <= len(packets) < len(payloads)  # four 300-byte messages fit in 1400 bytes
    got = [m.payload for _, m in sent(actions) if isinstance(m, UserMsg)]
    assert got == payloads
