"""HA cluster faults with real tocsin processes on loopback (issue 5, "Faults").

Each test starts its own small cluster with :data:`cluster_processes.FAULT_FLAGS`,
breaks it (SIGKILL, a restart under a new name, SIGSTOP, garbage on the cluster
ports, a wrong gossip key) and checks that the nodes still converge: membership,
failed-peer gauges, silences, and exactly one notification per group.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.errors import DecodeError
from cluster.framing import StreamDecoder, decode_packet, encode_stream
from cluster.gomsgpack import pack_struct
from cluster.messages import (
    Ack,
    Compound,
    Compress,
    HasCrc,
    MessageType,
    Ping,
    PushNodeState,
    PushPull,
)
from tests.integration.cluster_processes import (
    Node,
    cluster_view,
    converged,
    open_lab,
    post_alert,
    run_lab_node,
    run_node,
    start_cluster,
)
from tests.integration.processes import WebhookSink, wait_for
from tests.integration.test_cluster import create_silence, notified_names


def first_in_line(nodes: list[Node]) -> Node:
    """The node at position 0 (the one that notifies without waiting)."""
    return min(nodes, key=Node.name)


def test_killed_node_is_marked_failed_and_the_rest_notify_once(tmp_path: Path) -> None:
    """After SIGKILL of the first-in-line node the others mark it failed, notify once and share new silences."""
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        nodes = start_cluster(stack, tmp_path, sink.url, 3)
        wait_for(lambda: converged(nodes), timeout=30)
        victim = first_in_line(nodes)
        victim_name = victim.name()
        survivors = [n for n in nodes if n is not victim]
        victim.kill()
        wait_for(lambda: converged(survivors, failed=1), timeout=15)
        assert all(victim_name not in n.peer_names() for n in survivors)

        silence_id = create_silence(survivors[1].proc, "Muted")
        wait_for(lambda: all(silence_id in n.silence_ids() for n in survivors), timeout=10)
        for node in survivors:
            post_alert(node, "AfterKill")
            post_alert(node, "Muted")
        # the survivor now second in line waits one peer timeout (1 s) before it checks
        assert notified_names(sink, quiet=3) == ["AfterKill"]
        assert cluster_view(survivors) == [("ready", 2, 2, 1)] * 2


def test_restart_under_a_new_name_rejoins_with_silences_and_nflog(tmp_path: Path) -> None:
    """A killed node restarted on a fresh disk under a new name gets every silence and the nflog, so it does not notify again."""
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        nodes = start_cluster(stack, tmp_path, sink.url, 3)
        wait_for(lambda: converged(nodes), timeout=30)
        for node in nodes:
            post_alert(node, "Before")
        assert notified_names(sink, quiet=3) == ["Before"]
        before_kill = create_silence(nodes[1].proc, "MutedEarly")
        wait_for(lambda: all(before_kill in n.silence_ids() for n in nodes), timeout=10)

        victim, survivors = nodes[0], nodes[1:]
        old_name = victim.name()
        victim.kill()
        wait_for(lambda: converged(survivors, failed=1), timeout=15)
        while_down = create_silence(survivors[0].proc, "MutedLate")

        reborn = stack.enter_context(
            run_node(
                tmp_path / "n0-reborn",
                sink.url,
                [survivors[1].cluster_address],
                port=victim.cluster_port,
            )
        )
        everyone = [reborn, *survivors]
        # the same address joined again, so the survivors drop it from their failed list
        wait_for(lambda: converged(everyone), timeout=20)
        assert reborn.name() != old_name
        assert all(old_name not in n.peer_names() for n in everyone)
        assert {before_kill, while_down} <= reborn.silence_ids()
        # positions are recomputed; the newest name sorts last, so the reborn node waits
        # 2 s and then finds the gossiped nflog entry
        names = sorted(n.name() for n in everyone)
        positions = [n.metrics()["alertmanager_peer_position"] for n in everyone]
        assert positions == [names.index(n.name()) for n in everyone]
        assert max(everyone, key=Node.name) is reborn
        post_alert(reborn, "Before")
        assert notified_names(sink, quiet=5) == []


# --- garbage on the cluster ports ---------------------------------------------------------

#: How long the node under attack waits for a stream message (its --cluster.tcp-timeout).
TCP_TIMEOUT = 1.0


def udp_ask(port: int, packet: bytes) -> bytes:
    """Send one datagram to 127.0.0.1:``port`` and return the first answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.sendto(packet, ("127.0.0.1", port))
        return sock.recv(65536)


def tcp_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and our end-of-stream on a new connection; read until the node closes.

    A node that closes with our bytes unread makes the kernel reset the connection:
    that counts as closed too, whether the reset reaches us as ECONNRESET or, when it
    comes before our shutdown, as ENOTCONN.
    """
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.ENOTCONN):
                raise
    return b"".join(chunks)


def bad_packets(ack: bytes, ping: bytes) -> list[bytes]:
    """UDP garbage: random bytes, a real ack cut short, broken compounds, CRC and LZW."""
    rng = random.Random(5)
    packets = [rng.randbytes(n) for n in (1, 3, 40, 512, 1400, 9000) for _ in range(3)]
    packets += [ack[:cut] for cut in range(1, len(ack))]
    packets += [
        b"",
        bytes([99]),
        # a compound whose second part claims 65535 bytes, and one with no length table
        bytes([MessageType.COMPOUND, 2, 0, len(ping), 0xFF, 0xFF]) + ping,
        bytes([MessageType.COMPOUND, 200, 0]),
        # a valid ping under a checksum with one bit flipped
        _flip(HasCrc(ping).encode(), 2),
        # compressed garbage, and an unknown compression algorithm
        bytes([MessageType.COMPRESS]) + pack_struct({"Algo": 0, "Buf": rng.randbytes(64)}),
        bytes([MessageType.COMPRESS]) + pack_struct({"Algo": 7, "Buf": ping}),
        # compounds nested far deeper than any sender makes them
        _nest(ping, 40),
    ]
    return packets


#: 59 KB that would decompress to 80 MB.
LZW_BOMB = Compress.wrap(bytes(80_000_000)).encode()


def test_a_packet_decompresses_to_at_most_a_mebibyte() -> None:
    """A datagram-sized LZW bomb is refused at 1 MiB instead of filling 64 MiB."""
    assert len(LZW_BOMB) < 65_000
    (error,) = decode_packet(LZW_BOMB).errors
    assert "exceeds 1048576 bytes" in str(error)


#: A push/pull header claiming 2**31 nodes, then 2.4 MB of small valid node states.
NODE_FLOOD = (
    bytes([MessageType.PUSH_PULL])
    + pack_struct({"Nodes": 2**31, "UserStateLen": 0, "Join": False})
    + PushNodeState(name="x", addr=bytes([127, 0, 0, 1]), port=1, incarnation=1).encode() * 40_000
)


def test_a_push_pull_declaring_too_many_nodes_is_refused_at_its_header() -> None:
    """A push/pull claiming 2**31 nodes is refused at once, not re-parsed as each chunk arrives."""
    with pytest.raises(DecodeError, match="limit is 10000"):
        StreamDecoder().feed(NODE_FLOOD[:65536])


def _flip(data: bytes, index: int) -> bytes:
    """``data`` with the low bit of byte ``index`` flipped."""
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def _nest(message: bytes, depth: int) -> bytes:
    """``message`` wrapped in ``depth`` one-part compounds."""
    for _ in range(depth):
        message = Compound((message,)).encode()
    return message


def bad_streams(reply: bytes) -> list[bytes]:
    """TCP garbage, each sent on its own connection that is then closed."""
    rng = random.Random(6)
    streams = [rng.randbytes(n) for n in (1, 100, 70_000)]
    streams += [reply[:cut] for cut in (1, 2, 5, len(reply) // 2, len(reply) - 1)]
    streams += [
        bytes([99]) + rng.randbytes(20),
        NODE_FLOOD,
        # an encrypted frame declaring 4 GiB, to a node without a key
        bytes([MessageType.ENCRYPT]) + b"\xff\xff\xff\xff" + rng.randbytes(30),
    ]
    return streams


def oversized_push_pull() -> bytes:
    """A push/pull header declaring a 4 GiB user state, and nothing after it (refused at once)."""
    header = pack_struct({"Nodes": 0, "UserStateLen": 2**32 - 1, "Join": False})
    return bytes([MessageType.PUSH_PULL]) + header


@contextlib.contextmanager
def hanging_connections(port: int, data: bytes, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each send ``data`` and then wait."""
    with contextlib.ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            sock.sendall(data)
            socks.append(sock)
        yield socks


def malformed_from(node: Node, source_port: int, *events: str) -> int:
    """How many of ``events`` the node logged for datagrams from ``source_port``."""
    return sum(
        1
        for name in events
        for event in node.events(name)
        if event.get("source", [None, None])[1] == source_port
    )


def test_garbage_and_truncated_packets_are_dropped_counted_and_harmless(tmp_path: Path) -> None:
    """Random, truncated and malformed UDP packets and TCP streams are dropped and logged; the node stays in the cluster."""
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        nodes = start_cluster(
            stack,
            tmp_path,
            sink.url,
            2,
            "--log.level=debug",
            f"--cluster.tcp-timeout={int(TCP_TIMEOUT * 1000)}ms",
        )
        wait_for(lambda: converged(nodes), timeout=30)
        source, target = nodes
        # real messages, captured from a peer: the ack to a ping, the reply to a push/pull
        ping = Ping(seq_no=7, node=source.name()).encode()
        ack = udp_ask(source.cluster_port, ping)
        assert Ack.decode(ack).seq_no == 7
        reply = tcp_exchange(source.cluster_port, encode_stream(PushPull(join=False).encode()))
        assert len(reply) > 20

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
            attacker.bind(("127.0.0.1", 0))
            attacker_port = attacker.getsockname()[1]
            packets = bad_packets(ack, ping)
            for packet in packets:
                attacker.sendto(packet, ("127.0.0.1", target.cluster_port))
            events = ("packet.malformed", "packet.malformed_part", "message.malformed")
            wait_for(lambda: malformed_from(target, attacker_port, *events) >= len(packets))
            # one at a time, so the kernel's receive buffer never drops one
            for sent in range(len(packets) + 1, len(packets) + 4):
                attacker.sendto(LZW_BOMB, ("127.0.0.1", target.cluster_port))
                wait_for(lambda: malformed_from(target, attacker_port, *events) >= sent)  # noqa: B023

        streams = bad_streams(reply)
        with hanging_connections(target.cluster_port, reply[: len(reply) // 2], 20) as hung:
            with hanging_connections(target.cluster_port, oversized_push_pull(), 5) as big:
                for data in streams:
                    tcp_exchange(target.cluster_port, data)
                for sock in big:
                    # refused at its header: an errResp naming the limit, then closed
                    refusal = sock.recv(65536)
                    assert refusal.startswith(bytes([MessageType.ERR]))
                    assert b"limit is" in refusal
                    assert sock.recv(65536) == b""
                started = time.monotonic()
                for sock in hung:
                    # the node gives up on each after its TCP timeout and closes it
                    assert sock.recv(65536) == b""
                assert time.monotonic() - started < 4 * TCP_TIMEOUT
        wait_for(lambda: len(target.events("stream.timeout")) >= len(hung))
        wait_for(lambda: len(target.events("stream.too_large")) >= len(big))
        refused = ("stream.malformed", "peer.decrypt_failed")
        wait_for(lambda: sum(len(target.events(e)) for e in refused) >= len(streams))

        assert target.alive()
        ping_target = Ping(seq_no=8, node=target.name()).encode()
        assert Ack.decode(udp_ask(target.cluster_port, ping_target)).seq_no == 8
        silence_id = create_silence(source.proc, "AfterGarbage")
        wait_for(lambda: silence_id in target.silence_ids(), timeout=10)
        assert converged(nodes)


# --- partitions ---------------------------------------------------------------------------


def test_paused_node_is_failed_then_refutes_and_converges(tmp_path: Path) -> None:
    """A SIGSTOPped node is declared dead while the rest serve; after SIGCONT it refutes, rejoins and catches up."""
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        nodes = start_cluster(stack, tmp_path, sink.url, 3)
        wait_for(lambda: converged(nodes), timeout=30)
        paused, survivors = nodes[0], nodes[1:]
        paused_name = paused.name()
        paused.pause()
        wait_for(lambda: converged(survivors, failed=1), timeout=15)
        silence_id = create_silence(survivors[0].proc, "Muted")
        for node in survivors:
            post_alert(node, "DuringPause")
            post_alert(node, "Muted")
        assert notified_names(sink, quiet=3) == ["DuringPause"]

        paused.resume()
        wait_for(lambda: converged(nodes), timeout=20)
        assert paused.name() == paused_name
        # it heard of its own death and outbid it with a higher incarnation
        assert paused.events("member.refute_dead") or paused.events("member.refute_suspect")
        assert silence_id in paused.silence_ids()
        post_alert(paused, "DuringPause")
        post_alert(paused, "Muted")
        assert notified_names(sink, quiet=4) == []


def test_two_sided_partition_in_namespaces_heals_with_silences_from_both_sides(
    tmp_path: Path,
) -> None:
    """Nodes in network namespaces split 2|1: each side serves and takes silences; after healing all have both."""
    with open_lab(3) as lab, contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(
                run_lab_node(lab, i, tmp_path / f"n{i}", [p for p in range(3) if p != i])
            )
            for i in range(3)
        ]
        wait_for(lambda: converged(nodes), timeout=30)
        majority, minority = nodes[:2], nodes[2:]
        lab.partition([0, 1], [2])
        wait_for(lambda: converged(majority, failed=1), timeout=15)
        wait_for(lambda: converged(minority, failed=2), timeout=15)

        on_majority = create_silence(majority[0].proc, "MutedLeft")
        on_minority = create_silence(minority[0].proc, "MutedRight")
        wait_for(lambda: on_majority in majority[1].silence_ids(), timeout=10)
        assert on_majority not in minority[0].silence_ids()
        assert all(on_minority not in n.silence_ids() for n in majority)

        lab.heal([0, 1], [2])
        wait_for(lambda: converged(nodes), timeout=20)
        wait_for(lambda: all({on_majority, on_minority} <= n.silence_ids() for n in nodes))
