"""A node under attack: arbitrary bytes, too many streams, too much buffering, labels.

Everything runs on the in-memory network in virtual time; the attacker is a bare
transport on the same network, so every byte goes through the node's own packet and
stream handling (label, decryption, framing, msgpack, compounds, compression, merge).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import attrs
import msgpack
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.channel import Part
from cluster.errors import DecodeError
from cluster.framing import (
    StreamDecoder,
    add_label,
    compress_message,
    decode_packet,
    encode_packet,
    encode_stream,
)
from cluster.membership import SendPacket
from cluster.messages import (
    ALERTMANAGER_VSN,
    Compound,
    PushNodeState,
    PushPull,
    UserMsg,
)
from cluster.node import ChannelDelegate, Node, NodeConfig, NodeStatistics
from cluster.security import Keyring
from cluster.testing.network import MemoryNetwork, MemoryTransport
from tests.cluster.test_node_sockets import RecordingState

KEY = bytes(range(16))


def start_node(
    network: MemoryNetwork, name: str, config: NodeConfig
) -> tuple[Node, RecordingState]:
    """A node with a recording ``sil`` state, not yet running."""
    state = RecordingState()
    delegate = ChannelDelegate()
    delegate.add_state("sil", state)
    node = Node(network.attach(), name, config=config, delegate=delegate, rng=random.Random(name))
    return node, state


@attrs.define
class Lab:
    """A network, a nursery that cancels at the end, and an attacker's transport."""

    network: MemoryNetwork
    nursery: trio.Nursery
    attacker: MemoryTransport

    async def run(self, name: str, config: NodeConfig) -> tuple[Node, RecordingState]:
        """Start a node and wait until it serves."""
        node, state = start_node(self.network, name, config)
        await self.nursery.start(node.run)
        return node, state


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    """An in-memory network whose nodes are all cancelled at the end of the test."""
    async with trio.open_nursery() as nursery:
        network = MemoryNetwork(random.Random(3))
        await nursery.start(network.run)
        yield Lab(network, nursery, network.attach())
        nursery.cancel_scope.cancel()


# --- --cluster.label ------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True])
async def test_a_labelled_pair_gossips(
    lab: Lab, autojump_clock: trio.testing.MockClock, keyed: bool
) -> None:
    """Two nodes with the same label (and key) join, probe each other and exchange a broadcast."""
    keyring = Keyring.create([KEY]) if keyed else None
    a, _ = await lab.run("a", NodeConfig(label=b"prod", keyring=keyring))
    b, b_state = await lab.run("b", NodeConfig(label=b"prod", keyring=keyring))
    assert await b.join([a.address]) == 1
    a.broadcast("sil", b"record")
    await trio.sleep(5)
    assert {m.name for m in a.members()} == {"a", "b"}
    assert {m.name for m in b.members()} == {"a", "b"}
    assert b"record" in b_state.merged
    assert a.statistics().label_refused == b.statistics().label_refused == 0
    assert a.statistics().decrypt_failures == b.statistics().decrypt_failures == 0


async def test_labelled_packets_and_streams_carry_the_label_header(lab: Lab) -> None:
    """Every packet a labelled node sends and every stream it opens starts f4 | len | label."""
    node, _ = await lab.run("a", NodeConfig(label=b"prod"))
    spy = lab.attacker
    with trio.fail_after(5):
        node._dispatch([SendPacket(spy.local_address, b"\x0b\x81\xa5SeqNo\x01")])
        packet, _ = await spy.receive_packet()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.join, [spy.local_address])
            stream = await spy.accept_stream()
            head = await stream.receive_some(6)
            nursery.cancel_scope.cancel()
    assert packet == b"\xf4\x04prod\x0b\x81\xa5SeqNo\x01"
    assert head.startswith(b"\xf4\x04prod")


@pytest.mark.parametrize(
    ("ours", "theirs"), [(b"prod", b"staging"), (b"prod", b""), (b"", b"prod")]
)
async def test_a_differently_labelled_node_is_refused_and_counted(
    lab: Lab, autojump_clock: trio.testing.MockClock, ours: bytes, theirs: bytes
) -> None:
    """A node with another label (or none) cannot join; the refusal is counted, not fatal."""
    a, a_state = await lab.run("a", NodeConfig(label=ours))
    c, _ = await lab.run("c", NodeConfig(label=theirs))
    assert await c.join([a.address]) == 0
    assert a.statistics().label_refused == 1  # the push/pull stream
    # c's packets too: make c believe in a, so it probes and sends a broadcast to it
    c._dispatch(c.core.merge_remote_nodes(a.core.push_pull_nodes(), trio.current_time()))
    c._dispatch(c.core.send_user_messages([b"\x0a\x03sil"]))
    await trio.sleep(5)
    assert [m.name for m in a.members()] == ["a"]
    assert a.statistics().label_refused > 1
    assert a_state.merged == []


# --- stream limits ----------------------------------------------------------------------


async def test_streams_beyond_the_cap_are_closed_and_counted(
    lab: Lab, autojump_clock: trio.testing.MockClock
) -> None:
    """With the cap reached, a further stream is closed unread; the node still serves later."""
    node, _ = await lab.run("a", NodeConfig(max_incoming_streams=3, tcp_timeout=10))
    idle = [await lab.attacker.open_stream(node.address) for _ in range(3)]
    extra = await lab.attacker.open_stream(node.address)
    with trio.fail_after(1):
        assert await extra.receive_some(10) == b""  # closed at once
    assert node.statistics().streams_refused == 1
    await trio.sleep(11)  # the idle ones time out and free their slots
    for stream in idle:
        await stream.aclose()
    joiner, _ = await lab.run("b", NodeConfig())
    assert await joiner.join([node.address]) == 1


async def test_streams_together_cannot_buffer_more_than_the_node_budget(
    lab: Lab, autojump_clock: trio.testing.MockClock
) -> None:
    """Unfinished streams that together pass stream_memory are dropped and counted."""
    node, _ = await lab.run("a", NodeConfig(stream_memory=200_000, enable_compression=False))
    head = UserMsg(b"u" * 1_000_000).encode_stream()[:90_000]
    streams = []
    for _ in range(3):
        stream = await lab.attacker.open_stream(node.address)
        await stream.send_all(head)
        streams.append(stream)
        await trio.sleep(0.1)
    stats = node.statistics()
    assert stats.streams_too_large == 1
    assert stats.malformed_streams == 0  # each drop has one reason


async def test_a_stream_over_its_own_bound_is_dropped_and_counted(
    lab: Lab, autojump_clock: trio.testing.MockClock
) -> None:
    """A user message declaring more than max_stream_bytes is refused at its header."""
    node, _ = await lab.run("a", NodeConfig(max_stream_bytes=4096))
    stream = await lab.attacker.open_stream(node.address)
    await stream.send_all(
        encode_stream(UserMsg(b"u" * 10_000).encode_stream(), compress=False)[:64]
    )
    await trio.sleep(1)
    assert node.statistics().streams_too_large == 1


# --- arbitrary bytes through the node -------------------------------------------------

CONFIGS = {
    "plain": NodeConfig(),
    "labelled": NodeConfig(label=b"prod"),
    "encrypted": NodeConfig(keyring=Keyring.create([KEY])),
}

NODE_STATE = PushNodeState(
    name="x", addr=bytes((10, 0, 0, 9)), port=7946, incarnation=1, vsn=ALERTMANAGER_VSN
)


GO_FIELDS = sorted(
    {
        *("Node", "SeqNo", "SourceAddr", "SourceNode", "SourcePort", "Nack", "Port", "Target"),
        *("Payload", "Error", "From", "Incarnation", "Addr", "Meta", "Vsn", "Name", "State"),
        *("Join", "Nodes", "UserStateLen", "UserMsgLen", "Algo", "Buf"),
    }
)
FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=10),
    st.lists(st.integers(-300, 300), max_size=8),
)


@st.composite
def struct_messages(draw: st.DrawFn) -> bytes:
    """A type byte and a go-msgpack struct of memberlist's field names with any values."""
    kind = draw(st.integers(0, 13))
    fields = draw(st.dictionaries(st.sampled_from(GO_FIELDS), FIELD_VALUES, max_size=8))
    body: bytes = msgpack.packb(fields, use_bin_type=draw(st.booleans()))
    return bytes((kind,)) + body


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Junk, and junk wrapped in valid outer layers so that the inner layers see it too."""
    junk = draw(st.one_of(st.binary(max_size=400), struct_messages()))
    layer = draw(
        st.sampled_from(
            ["raw", "compressed", "crc", "labelled", "compound", "push_pull", "user", "encrypted"]
        )
    )
    if layer == "compressed":
        return compress_message(junk)
    if layer == "crc":
        return encode_packet(junk, compress=False, crc=True)
    if layer == "labelled":
        return add_label(junk, b"prod")
    if layer == "compound":
        return Compound((junk, junk[::-1])).encode()
    if layer == "push_pull":
        return PushPull(join=True, nodes=(NODE_STATE,), user_state=junk).encode()
    if layer == "user":
        return UserMsg(junk).encode_stream()
    if layer == "encrypted":
        return encode_packet(junk, compress=False, keyring=Keyring.create([KEY]))
    return junk


def _drops(stats: NodeStatistics) -> int:
    return (
        stats.malformed_packets
        + stats.malformed_messages
        + stats.malformed_streams
        + stats.streams_too_large
        + stats.bad_user_messages
        + stats.label_refused
        + stats.decrypt_failures
    )


def _undecodable_packet(data: bytes, config: NodeConfig) -> bool:
    """True if the codecs alone (under a plain node) already refuse this packet."""
    if config.label or config.keyring is not None:
        return False  # the node's own layers decide; counted either way below
    try:
        return bool(decode_packet(data).errors)
    except DecodeError:
        return True


def _undecodable_stream(data: bytes) -> bool:
    decoder = StreamDecoder()
    try:
        decoder.feed(data)
        decoder.eof()
    except DecodeError:
        return True
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CONFIGS)), st.lists(hostile_bytes(), min_size=1, max_size=4))
def test_arbitrary_packets_and_streams_never_stop_the_node(
    config_name: str, inputs: list[bytes]
) -> None:
    """Any bytes, as packets and as streams, are handled or dropped and counted; the node keeps serving."""
    config = CONFIGS[config_name]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            network = MemoryNetwork(random.Random(1))
            await nursery.start(network.run)
            attacker = network.attach()
            node, _ = start_node(network, "victim", config)
            await nursery.start(node.run)
            expected_drops = 0
            for data in inputs:
                before = _drops(node.statistics())
                await attacker.send_packet(node.address, data)
                await trio.sleep(0.05)
                if _undecodable_packet(data, config):
                    expected_drops += 1
                    assert _drops(node.statistics()) > before, data
                before = _drops(node.statistics())
                stream = await attacker.open_stream(node.address)
                await stream.send_all(data)
                await stream.send_eof()
                with trio.move_on_after(config.tcp_timeout + 1):
                    while await stream.receive_some(65536):
                        pass
                await trio.sleep(0.05)
                if config_name == "plain" and _undecodable_stream(data):
                    assert _drops(node.statistics()) > before, data
            # still serving: a well-behaved peer can join
            friend, _ = start_node(network, "friend", config)
            await nursery.start(friend.run)
            assert await friend.join([node.address]) == 1
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_big_compressed_stream_is_inflated_off_the_event_loop(lab: Lab) -> None:
    """An oversized compressed user message is inflated in a thread and still delivered."""
    node, state = await lab.run("a", NodeConfig())
    part = Part(key="sil", data=random.Random(5).randbytes(300_000)).encode()
    stream = await lab.attacker.open_stream(node.address)
    with trio.fail_after(30):
        await stream.send_all(encode_stream(UserMsg(part).encode_stream()))
        while await stream.receive_some(100):  # the node closes once it delivered
            pass
    assert len(state.merged[0]) == 300_000
