"""memberlist messages: Go-identical encodings, lenient decoding, clean errors."""

from __future__ import annotations

import zlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.errors import DecodeError, TruncatedError
from cluster.messages import (
    ALERTMANAGER_VSN,
    Ack,
    Alive,
    Compound,
    Compress,
    Dead,
    Encrypted,
    ErrResp,
    HasCrc,
    IndirectPing,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
    decode_message,
)

ULID = "01M84Y2YRBC3JPCA7R37RW1XJG"
ULID_RAW = b"\xba" + ULID.encode()
LOCALHOST = bytes((127, 0, 0, 1))


def _s(name: str) -> bytes:
    """A fixstr-encoded key, as go-msgpack writes struct field names."""
    return bytes((0xA0 | len(name),)) + name.encode()


# Byte layouts recorded from real Alertmanager 0.25 traffic (cluster-wire.md 1.4, 1.8).
GO_PING = (
    b"\x00\x85"
    + _s("Node") + ULID_RAW
    + _s("SeqNo") + b"\x01"
    + _s("SourceAddr") + b"\xa4\x7f\x00\x00\x01"
    + _s("SourceNode") + ULID_RAW
    + _s("SourcePort") + b"\xcd\x4b\x02"
)  # fmt: skip
GO_ACK = bytes.fromhex("0282a75061796c6f6164a0a55365714e6f01")
GO_ALIVE = (
    b"\x04\x86"
    + _s("Addr") + b"\xa4\x7f\x00\x00\x01"
    + _s("Incarnation") + b"\x01"
    + _s("Meta") + b"\xc0"
    + _s("Node") + ULID_RAW
    + _s("Port") + b"\xcd\x4b\x02"
    + _s("Vsn") + b"\xa6\x01\x05\x02\x00\x00\x00"
)  # fmt: skip
JOIN_FULL_STATE = bytes.fromhex("0a050a036e666c0a050a0373696c")
GO_PUSH_PULL = (
    b"\x06\x83"
    + _s("Join") + b"\xc3"
    + _s("Nodes") + b"\x01"
    + _s("UserStateLen") + b"\x0e"
    + b"\x87"
    + _s("Addr") + b"\xa4\x7f\x00\x00\x01"
    + _s("Incarnation") + b"\x01"
    + _s("Meta") + b"\xa0"
    + _s("Name") + ULID_RAW
    + _s("Port") + b"\xcd\x4b\x02"
    + _s("State") + b"\x00"
    + _s("Vsn") + b"\xa6\x01\x05\x02\x00\x00\x00"
    + JOIN_FULL_STATE
)  # fmt: skip


def test_go_ping_fixture() -> None:
    """A 109-byte ping from Alertmanager decodes and re-encodes byte-identically."""
    assert len(GO_PING) == 109
    ping = Ping(seq_no=1, node=ULID, source_addr=LOCALHOST, source_port=19202, source_node=ULID)
    assert Ping.decode(GO_PING) == ping
    assert ping.encode() == GO_PING


def test_go_ack_fixture() -> None:
    """Alertmanager's 18-byte ack carries an empty (a0) payload."""
    assert Ack(seq_no=1).encode() == GO_ACK
    assert Ack.decode(GO_ACK) == Ack(seq_no=1, payload=b"")


def test_go_alive_fixture_with_nil_meta() -> None:
    """An 82-byte re-gossiped alive with Meta nil (c0) decodes with empty meta."""
    assert len(GO_ALIVE) == 82
    alive = Alive.decode(GO_ALIVE)
    assert alive == Alive(incarnation=1, node=ULID, addr=LOCALHOST, port=19202)
    assert alive.vsn == ALERTMANAGER_VSN
    # We write Meta as a0 (a node's own alive); the rest is identical.
    assert alive.encode() == GO_ALIVE.replace(_s("Meta") + b"\xc0", _s("Meta") + b"\xa0")


def test_go_push_pull_fixture() -> None:
    """The 131-byte join push/pull decodes and re-encodes byte-identically."""
    assert len(GO_PUSH_PULL) == 131
    node = PushNodeState(name=ULID, addr=LOCALHOST, port=19202, incarnation=1)
    expected = PushPull(join=True, nodes=(node,), user_state=JOIN_FULL_STATE)
    assert PushPull.decode(GO_PUSH_PULL) == expected
    assert expected.encode() == GO_PUSH_PULL


def test_omitempty_fields_are_left_out() -> None:
    """A ping without a source omits SourceAddr/SourcePort/SourceNode, as Go's omitempty does."""
    body = msgpack.unpackb(Ping(seq_no=7, node="x").encode()[1:], raw=True)
    assert list(body) == [b"Node", b"SeqNo"]


def test_byte_fields_are_raw_str_never_bin_or_str8() -> None:
    """A 40-byte field is written da 00 28 (str16), never bin8 c4 or str8 d9."""
    encoded = UserMsg(payload=b"").encode_stream()
    assert encoded.startswith(b"\x08\x81")
    ack = Ack(seq_no=1, payload=b"x" * 40).encode()
    assert b"\xda\x00\x28" + b"x" * 40 in ack
    assert b"\xc4" not in ack and b"\xd9" not in ack


def test_unsigned_ints_use_smallest_unsigned_form() -> None:
    """Integers use fixint/cc/cd/ce as go-msgpack does."""
    assert Nack(seq_no=200).encode().endswith(b"\xcc\xc8")
    assert Nack(seq_no=70000).encode().endswith(b"\xce\x00\x01\x11\x70")


def test_lenient_decoding_bin_array_and_unknown_keys() -> None:
    """bin-typed bytes, a Vsn sent as an int array, and unknown keys are all accepted."""
    body = msgpack.packb(
        {
            "Addr": LOCALHOST,
            "Incarnation": 3,
            "Node": "n",
            "Port": 1,
            "Vsn": [1, 5, 2, 0, 0, 0],
            "Extra": {"x": 1},
        },
        use_bin_type=True,
    )
    alive = Alive.decode(b"\x04" + body)
    assert alive == Alive(incarnation=3, node="n", addr=LOCALHOST, port=1, meta=b"")


def test_struct_as_array_in_go_field_order() -> None:
    """A struct sent as a msgpack array is read in Go's field order."""
    body = msgpack.packb([5, "target", "me"], use_bin_type=False)
    assert Suspect.decode(b"\x03" + body) == Suspect(incarnation=5, node="target", from_node="me")


def test_bool_accepts_zero_and_one() -> None:
    """go-msgpack reads fixint 0/1 as a bool."""
    body = msgpack.packb({"SeqNo": 1, "Nack": 1, "Node": "n", "Port": 2, "Target": b"ab"})
    assert IndirectPing.decode(b"\x01" + body).nack is True


def test_non_utf8_names_round_trip() -> None:
    """A Go string that is not UTF-8 survives decode and re-encode unchanged."""
    raw = b"\x05" + msgpack.packb(
        {"From": b"\xff\xfe", "Incarnation": 1, "Node": b"n"}, use_bin_type=False
    )
    dead = Dead.decode(raw)
    assert dead.encode() == raw


def test_dead_from_self_is_a_leave() -> None:
    """dead with From == Node is a graceful leave."""
    assert Dead(incarnation=1, node="a", from_node="a").is_leave
    assert not Dead(incarnation=1, node="a", from_node="b").is_leave


def test_unknown_node_state_is_kept() -> None:
    """A push/pull node state with an unknown State value is kept, not dropped."""
    node = PushNodeState(name="n", addr=LOCALHOST, port=1, incarnation=1, state=7)
    decoded = PushPull.decode(PushPull(join=False, nodes=(node,)).encode())
    assert decoded.nodes[0].state == 7
    left = PushNodeState(name="n", addr=LOCALHOST, port=1, incarnation=1, state=NodeState.LEFT)
    assert PushPull.decode(PushPull(join=False, nodes=(left,)).encode()).nodes[0].state is (
        NodeState.LEFT
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"SeqNo": -1, "Node": "n"}, "uint32"),
        ({"SeqNo": 1 << 32, "Node": "n"}, "uint32"),
        ({"SeqNo": 1, "Node": 5}, "string"),
        ({"SeqNo": "1", "Node": "n"}, "integer"),
        ({"SeqNo": 1, "Node": "n", "SourcePort": 70000}, "uint16"),
        ({"SeqNo": 1.0, "Node": "n"}, "integer"),
    ],
)
def test_wrong_field_types_are_decode_errors(body: dict[str, object], match: str) -> None:
    """Out-of-range or mistyped fields raise DecodeError naming the problem."""
    with pytest.raises(DecodeError, match=match):
        Ping.decode(b"\x00" + msgpack.packb(body))


def test_negative_lengths_are_rejected() -> None:
    """A push/pull header with a negative UserStateLen is a DecodeError."""
    header = msgpack.packb({"Join": False, "Nodes": 0, "UserStateLen": -1})
    with pytest.raises(DecodeError, match="negative"):
        PushPull.decode(b"\x06" + header)


def test_truncated_push_pull_is_truncated_error() -> None:
    """Cutting the user state short is reported as TruncatedError."""
    with pytest.raises(TruncatedError):
        PushPull.decode(GO_PUSH_PULL[:-1])


def test_wrong_type_byte_is_rejected() -> None:
    """Decoding a ping as an ack fails cleanly."""
    with pytest.raises(DecodeError, match="expected message type ACK"):
        Ack.decode(GO_PING)


def test_encode_rejects_out_of_range_values() -> None:
    """Encoding a value that does not fit its Go type is a programming error (ValueError)."""
    with pytest.raises(ValueError, match="uint16"):
        Alive(incarnation=1, node="n", addr=LOCALHOST, port=1 << 16).encode()


def test_compound_layout_and_truncation() -> None:
    """A compound is 07|N|lengths|parts; truncated trailing parts are counted, not fatal."""
    alive = Alive(incarnation=1, node=ULID, addr=LOCALHOST, port=19202).encode()
    packet = Compound((alive, alive)).encode()
    assert packet[:6] == bytes.fromhex("0702 0052 0052".replace(" ", ""))
    assert Compound.decode(packet) == Compound((alive, alive))
    cut = Compound.decode(packet[:-1])
    assert cut.parts == (alive,) and cut.truncated == 1
    with pytest.raises(TruncatedError):
        Compound.decode(b"\x07\x02\x00")


def test_compound_part_limit() -> None:
    """More than 255 parts cannot be encoded in one compound."""
    with pytest.raises(ValueError, match="255"):
        Compound((b"\x0b",) * 256).encode()


def test_has_crc_checks_checksum() -> None:
    """hasCrc prefixes a big-endian CRC-32/IEEE and rejects a mismatch."""
    packet = HasCrc(b"\x08hello").encode()
    assert packet[0] == 0x0C
    assert packet[1:5] == zlib.crc32(b"\x08hello").to_bytes(4, "big")
    assert HasCrc.decode(packet).payload == b"\x08hello"
    with pytest.raises(DecodeError, match="checksum"):
        HasCrc.decode(packet[:-1] + b"X")


def test_compress_message_head_matches_alertmanager() -> None:
    """A compress message starts 09 82 a4"Algo" 00 a3"Buf" da, like every AM stream."""
    inner = GO_PUSH_PULL
    encoded = Compress.wrap(inner).encode()
    assert encoded.startswith(bytes.fromhex("0982a4416c676f00a3427566"))
    assert Compress.decode(encoded).unwrap() == inner


def test_compress_unknown_algorithm() -> None:
    """A compress message with an algorithm other than LZW cannot be unwrapped."""
    with pytest.raises(DecodeError, match="unknown algorithm"):
        Compress(buf=b"", algo=1).unwrap()


def test_encrypted_stream_header() -> None:
    """An encrypted stream message is 0a, a big-endian length, then the ciphertext."""
    encoded = Encrypted(b"abc").encode()
    assert encoded == b"\x0a\x00\x00\x00\x03abc"
    assert Encrypted.decode(encoded) == Encrypted(b"abc")
    with pytest.raises(DecodeError, match="exceeds"):
        Encrypted.decode(b"\x0a\x7f\xff\xff\xff")


def test_user_message_forms() -> None:
    """UDP user messages are 08+payload; TCP ones add a {UserMsgLen} header."""
    part = b"\x0a\x03sil"
    assert UserMsg(part).encode() == b"\x08" + part
    stream = UserMsg(part).encode_stream()
    assert stream == b"\x08\x81" + _s("UserMsgLen") + b"\x05" + part
    assert UserMsg.decode_stream(stream) == UserMsg(part)


def test_decode_message_dispatch() -> None:
    """decode_message picks the class from the type byte and rejects unknown types."""
    assert decode_message(GO_ACK) == Ack(seq_no=1)
    assert decode_message(ErrResp("boom").encode()) == ErrResp("boom")
    with pytest.raises(DecodeError, match="not supported"):
        decode_message(b"\xf4\x01a")
    with pytest.raises(DecodeError):
        decode_message(b"")


names = st.text(max_size=40)
u32 = st.integers(0, (1 << 32) - 1)
u16 = st.integers(0, (1 << 16) - 1)
addrs = st.sampled_from([LOCALHOST, bytes(16), b"\xfd" + bytes(14) + b"\x02"])
messages = st.one_of(
    st.builds(Ping, u32, names, st.binary(max_size=16), u16, names),
    st.builds(IndirectPing, u32, addrs, u16, names, st.booleans(), addrs, u16, names),
    st.builds(Ack, u32, st.binary(max_size=100)),
    st.builds(Nack, u32),
    st.builds(ErrResp, names),
    st.builds(Suspect, u32, names, names),
    st.builds(Dead, u32, names, names),
    st.builds(
        Alive, u32, names, addrs, u16, st.binary(max_size=512), st.binary(min_size=6, max_size=6)
    ),
    st.builds(UserMsg, st.binary(max_size=200)),
    st.builds(Compress, st.binary(max_size=200), st.integers(0, 255)),
    st.builds(HasCrc, st.binary(max_size=200)),
    st.builds(Encrypted, st.binary(max_size=200)),
    st.builds(Compound, st.lists(st.binary(max_size=50), max_size=10).map(tuple)),
)
node_states = st.builds(
    PushNodeState,
    names,
    addrs,
    u16,
    u32,
    st.integers(0, 3).map(NodeState),
    st.binary(max_size=20),
    st.binary(min_size=6, max_size=6),
)


@given(messages)
def test_round_trip_every_message(message: object) -> None:
    """Every message decodes to itself after encoding."""
    assert decode_message(message.encode()) == message  # type: ignore[attr-defined]


@given(st.booleans(), st.lists(node_states, max_size=5).map(tuple), st.binary(max_size=300))
def test_round_trip_push_pull(join: bool, nodes: tuple[PushNodeState, ...], state: bytes) -> None:
    """A push/pull with any node table and user state round-trips."""
    message = PushPull(join=join, nodes=nodes, user_state=state)
    assert PushPull.decode(message.encode()) == message


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    """Arbitrary input to decode_message raises DecodeError or decodes; nothing else."""
    try:
        decode_message(data)
    except DecodeError:
        pass


@given(st.sampled_from(range(14)), st.binary(max_size=200))
def test_random_bodies_raise_only_decode_error(kind: int, body: bytes) -> None:
    """Random bodies behind every valid type byte raise only DecodeError."""
    try:
        decode_message(bytes((kind,)) + body)
    except DecodeError:
        pass


@given(messages)
def test_truncations_raise_only_decode_error(message: object) -> None:
    """Every prefix of a valid message decodes or raises DecodeError."""
    encoded = message.encode()  # type: ignore[attr-defined]
    for cut in range(len(encoded)):
        try:
            decode_message(encoded[:cut])
        except DecodeError:
            pass
