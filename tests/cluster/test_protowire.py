"""Protobuf wire codec and Alertmanager's clusterpb messages and channel helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.channel import (
    MAX_GOSSIP_PART_BYTES,
    FullState,
    Part,
    deliver_user_message,
    local_state,
    merge_remote_state,
    plan_broadcast,
)
from cluster.errors import DecodeError
from cluster.protowire import (
    ProtoWriter,
    WireType,
    decode_varint,
    encode_varint,
    iter_delimited,
    iter_fields,
    repeated_varints,
    to_int32,
    to_int64,
    write_delimited,
)

JOIN_FULL_STATE = bytes.fromhex("0a050a036e666c0a050a0373696c")


def test_varint_known_values() -> None:
    """Varints match the protobuf spec examples (1, 150, 300, -1 as 10 bytes)."""
    assert encode_varint(1) == b"\x01"
    assert encode_varint(150) == b"\x96\x01"
    assert encode_varint(300) == b"\xac\x02"
    assert encode_varint(-1) == b"\xff" * 9 + b"\x01"
    assert to_int64(decode_varint(encode_varint(-5))[0]) == -5
    assert to_int32(decode_varint(encode_varint(-5))[0]) == -5


def _varint_by_bytes(value: int) -> bytes:
    """The definition: seven bits a byte, low first, the high bit on all but the last."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_varint_at_every_length_boundary() -> None:
    """encode_varint equals the byte-at-a-time definition on each side of every 7-bit
    boundary and for negatives, round-trips, and refuses values past 64 bits."""
    values = [0, 1, 127, -1, -(2**63), 2**64 - 1]
    for bits in range(7, 64, 7):
        values += [2**bits - 1, 2**bits, 2**bits + 1]
    for v in values:
        assert encode_varint(v) == _varint_by_bytes(v), v
        assert decode_varint(encode_varint(v))[0] == v & (2**64 - 1)
    with pytest.raises(ValueError, match="out of range"):
        encode_varint(2**64)


def test_varint_errors() -> None:
    """Truncated, overlong and overflowing varints are DecodeErrors."""
    with pytest.raises(DecodeError, match="truncated"):
        decode_varint(b"\x80")
    with pytest.raises(DecodeError, match="10 bytes"):
        decode_varint(b"\x80" * 11)
    with pytest.raises(DecodeError, match="64 bits"):
        decode_varint(b"\xff" * 9 + b"\x7f")


def test_writer_and_reader_cover_all_wire_types() -> None:
    """Every wire type the writer emits reads back with number, type and value."""
    msg = (
        ProtoWriter()
        .varint(1, 7)
        .fixed64(2, 2**63)
        .fixed32(3, 9)
        .string(4, "hé")
        .packed_varints(6, [1, 300])
        .getvalue()
    )
    fields = list(iter_fields(msg))
    assert [(f.number, f.wire_type) for f in fields] == [
        (1, WireType.VARINT),
        (2, WireType.FIXED64),
        (3, WireType.FIXED32),
        (4, WireType.LEN),
        (6, WireType.LEN),
    ]
    assert fields[1].as_int() == 2**63
    assert fields[3].as_str() == "hé"
    assert repeated_varints(fields[4]) == [1, 300]


def test_repeated_accepts_unpacked() -> None:
    """An unpacked repeated varint (one field per value) is accepted too."""
    msg = ProtoWriter().varint(6, 5).varint(6, 6).getvalue()
    assert [v for f in iter_fields(msg) for v in repeated_varints(f)] == [5, 6]


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x05abc", b"\x00\x01", b"\x0b", b"\x09\x01\x02", b"\x0d\x01", b"\x08"],
)
def test_malformed_messages(data: bytes) -> None:
    """Truncated fields, field 0 and groups raise DecodeError."""
    with pytest.raises(DecodeError):
        list(iter_fields(data))


def test_delimited_stream() -> None:
    """Delimited records concatenate and split back; a short tail is an error."""
    blob = write_delimited(b"abc") + write_delimited(b"") + write_delimited(b"x" * 200)
    assert list(iter_delimited(blob)) == [b"abc", b"", b"x" * 200]
    with pytest.raises(DecodeError):
        list(iter_delimited(blob[:-1]))


def test_join_full_state_fixture() -> None:
    """The 14-byte FullState of two empty states matches Alertmanager's bytes."""
    state = FullState((Part("nfl"), Part("sil")))
    assert state.encode() == JOIN_FULL_STATE
    assert FullState.decode(JOIN_FULL_STATE) == state


def test_part_fixture_from_the_wire() -> None:
    """A silence Part is 0a 03 "sil" 12 <len> <data>."""
    data = write_delimited(b"\x0a" * 0x7B)
    part = Part("sil", data).encode()
    assert part.startswith(b"\x0a\x03sil\x12\x7c\x7b")
    assert Part.decode(part) == Part("sil", data)


def test_part_wrong_wire_type() -> None:
    """A Part whose key is a varint is rejected."""
    with pytest.raises(DecodeError, match="length-delimited"):
        Part.decode(b"\x08\x01")


class _Recorder:
    """A State that records merges."""

    def __init__(self, snapshot: bytes = b"") -> None:
        self.snapshot = snapshot
        self.merged: list[bytes] = []

    def marshal(self) -> bytes:
        return self.snapshot

    def merge(self, data: bytes) -> None:
        if data == b"boom":
            raise DecodeError("bad state")
        self.merged.append(data)


def test_local_state_and_merge() -> None:
    """FullState carries every state; merging routes parts by key and skips unknown keys."""
    nfl, sil = _Recorder(b"N"), _Recorder()
    buf = local_state({"nfl": nfl, "sil": sil})
    assert FullState.decode(buf) == FullState((Part("nfl", b"N"), Part("sil")))
    other_nfl, other_sil = _Recorder(), _Recorder()
    blob = FullState((Part("zzz", b"?"), Part("nfl", b"N"), Part("sil", b""))).encode()
    assert merge_remote_state({"nfl": other_nfl, "sil": other_sil}, blob) == ("zzz",)
    assert other_nfl.merged == [b"N"] and other_sil.merged == [b""]


def test_merge_error_aborts_remaining_parts() -> None:
    """A failing merge stops the remaining parts, as Alertmanager does."""
    first, second = _Recorder(), _Recorder()
    blob = FullState((Part("a", b"boom"), Part("b", b"x"))).encode()
    with pytest.raises(DecodeError):
        merge_remote_state({"a": first, "b": second}, blob)
    assert second.merged == []


def test_user_message_delivery() -> None:
    """A user message Part is merged into its state; an unknown key is ignored."""
    sil = _Recorder()
    assert deliver_user_message({"sil": sil}, Part("sil", b"x").encode()) == "sil"
    assert deliver_user_message({"sil": sil}, Part("nope", b"y").encode()) is None
    assert sil.merged == [b"x"]


def test_oversized_threshold() -> None:
    """A Part over 700 bytes goes reliably over TCP; 700 bytes or less is gossiped."""
    small = plan_broadcast("sil", b"x" * 600)
    assert not small.reliable and Part.decode(small.part) == Part("sil", b"x" * 600)
    edge = b"x" * (MAX_GOSSIP_PART_BYTES - 8)
    assert len(plan_broadcast("sil", edge).part) == MAX_GOSSIP_PART_BYTES
    assert not plan_broadcast("sil", edge).reliable
    assert plan_broadcast("sil", edge + b"x").reliable


@given(st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=50)), max_size=5))
def test_full_state_round_trip(parts: list[tuple[str, bytes]]) -> None:
    """Any FullState round-trips."""
    state = FullState(tuple(Part(k, d) for k, d in parts))
    assert FullState.decode(state.encode()) == state


@given(st.binary(max_size=100))
def test_garbage_raises_decode_error(data: bytes) -> None:
    """Random bytes parse as a FullState or raise DecodeError, nothing else."""
    try:
        FullState.decode(data)
    except DecodeError:
        pass
