"""A minimal protobuf wire-format codec, enough for Alertmanager's cluster payloads.

Alertmanager's gossip payloads (``clusterpb``, ``silencepb``, ``nflogpb``) are small
proto3 messages. This module reads and writes the wire format directly instead of
depending on generated code: varints, 64- and 32-bit fixed values, length-delimited
fields, packed repeated varints, and the varint-length-delimited *streams* that
Alertmanager stores in a Part's data (``pbutil.WriteDelimited``).

Proto3 rules the callers rely on:

* default values (0, "", empty bytes, false) are *omitted* when writing; the
  ``ProtoWriter`` methods always write, and callers skip defaults themselves because
  gogo's non-nullable embedded messages are written even when empty;
* unknown fields are skipped when reading; a repeated scalar may arrive packed or
  unpacked, and the reader accepts both;
* a varint is at most 10 bytes and field number 0 is invalid.

Every decoding failure is a :class:`~cluster.errors.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import IntEnum

import attrs

from cluster.errors import DecodeError

_U64 = (1 << 64) - 1
_MAX_FIELD = (1 << 29) - 1


class WireType(IntEnum):
    """The low three bits of a field tag."""

    VARINT = 0
    FIXED64 = 1
    LEN = 2
    FIXED32 = 5


#: The one-byte varints, 0..127 (field tags, lengths, enums): no encoding at all.
_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def encode_varint(value: int) -> bytes:
    """Encode an unsigned varint; negative values are written as 64-bit two's complement.

    On every notification's and silence's journal path (the nflog's 64-bit alert
    hashes, ten bytes each; lengths and timestamps), so one comprehension rather than a
    byte at a time: encoding an nflog entry took 32 us with the loop.

    Raises:
        ValueError: ``value`` does not fit in 64 bits.
    """
    if value < 0:
        value &= _U64  # proto's int32/int64 encoding of negative numbers
    if value < 0x80:
        return _ONE_BYTE[value]
    if value > _U64:
        raise ValueError(f"varint out of range: {value}")
    last = 7 * ((value.bit_length() - 1) // 7)
    return bytes([(value >> s) & 0x7F | 0x80 for s in range(0, last, 7)] + [value >> last])


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` (its encoded key, e.g. ``b"\\x0a"`` for field 1),
    the payload's length and the payload."""
    return tag + encode_varint(len(payload)) + payload


def decode_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode the varint at ``pos``; return it and the offset after it.

    Raises:
        DecodeError: truncated, longer than 10 bytes, or above 2**64 - 1.
    """
    result = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise DecodeError("protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise DecodeError("protobuf: varint longer than 10 bytes")
    if result > _U64:
        raise DecodeError("protobuf: varint overflows 64 bits")
    return result, pos


def to_int64(value: int) -> int:
    """Reinterpret a decoded 64-bit varint as a signed ``int64``."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_int32(value: int) -> int:
    """Reinterpret a decoded varint as a signed ``int32`` (proto truncates to 32 bits)."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@attrs.frozen
class Field:
    """One decoded field: its number, wire type and raw value.

    ``value`` is an ``int`` for VARINT, FIXED64 and FIXED32 (unsigned), and ``bytes``
    for LEN.
    """

    number: int
    wire_type: WireType
    value: int | bytes

    def as_int(self) -> int:
        """The value of a numeric field, or raise DecodeError for a LEN field."""
        if isinstance(self.value, bytes):
            raise DecodeError(f"protobuf: field {self.number} is length-delimited, want a number")
        return self.value

    def as_bytes(self) -> bytes:
        """The payload of a LEN field, or raise DecodeError for a numeric field."""
        if not isinstance(self.value, bytes):
            raise DecodeError(f"protobuf: field {self.number} is numeric, want length-delimited")
        return self.value

    def as_str(self) -> str:
        """A LEN field as a proto3 ``string`` (must be UTF-8)."""
        try:
            return self.as_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"protobuf: field {self.number} is not valid UTF-8") from exc


def iter_fields(buf: bytes | bytearray | memoryview) -> Iterator[Field]:
    """Yield every field of one serialized message, in wire order.

    Raises:
        DecodeError: a tag, length or value is truncated or invalid (groups, wire
            types 3 and 4, are rejected: no Alertmanager message uses them).
    """
    pos = 0
    n = len(buf)
    while pos < n:
        tag, pos = decode_varint(buf, pos)
        number = tag >> 3
        if number == 0 or number > _MAX_FIELD:
            raise DecodeError(f"protobuf: invalid field number {number}")
        kind = tag & 7
        if kind == WireType.VARINT:
            value, pos = decode_varint(buf, pos)
            yield Field(number, WireType.VARINT, value)
        elif kind == WireType.LEN:
            length, pos = decode_varint(buf, pos)
            if length > n - pos:
                raise DecodeError(f"protobuf: field {number} is truncated")
            yield Field(number, WireType.LEN, bytes(buf[pos : pos + length]))
            pos += length
        elif kind == WireType.FIXED64:
            if pos + 8 > n:
                raise DecodeError(f"protobuf: field {number} is truncated")
            yield Field(number, WireType.FIXED64, int.from_bytes(buf[pos : pos + 8], "little"))
            pos += 8
        elif kind == WireType.FIXED32:
            if pos + 4 > n:
                raise DecodeError(f"protobuf: field {number} is truncated")
            yield Field(number, WireType.FIXED32, int.from_bytes(buf[pos : pos + 4], "little"))
            pos += 4
        else:
            raise DecodeError(f"protobuf: unsupported wire type {kind} for field {number}")


def decode_packed_varints(data: bytes) -> list[int]:
    """Decode the payload of a packed repeated varint field."""
    values: list[int] = []
    pos = 0
    while pos < len(data):
        value, pos = decode_varint(data, pos)
        values.append(value)
    return values


def repeated_varints(field: Field) -> list[int]:
    """The values of one occurrence of a repeated varint field, packed or not."""
    if field.wire_type == WireType.LEN:
        return decode_packed_varints(field.as_bytes())
    if field.wire_type == WireType.VARINT:
        return [field.as_int()]
    raise DecodeError(f"protobuf: field {field.number} has wire type {field.wire_type}")


class ProtoWriter:
    """Builds one serialized message field by field. Methods always write; skip defaults."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def _tag(self, number: int, wire_type: WireType) -> None:
        if not 1 <= number <= _MAX_FIELD:
            raise ValueError(f"invalid field number {number}")
        self._buf += encode_varint((number << 3) | wire_type)

    def varint(self, number: int, value: int) -> ProtoWriter:
        """Write a varint field (uint32/64, int32/64, bool, enum)."""
        self._tag(number, WireType.VARINT)
        self._buf += encode_varint(value)
        return self

    def fixed64(self, number: int, value: int) -> ProtoWriter:
        """Write a little-endian 64-bit field (fixed64, sfixed64)."""
        self._tag(number, WireType.FIXED64)
        self._buf += (value & _U64).to_bytes(8, "little")
        return self

    def fixed32(self, number: int, value: int) -> ProtoWriter:
        """Write a little-endian 32-bit field (fixed32, sfixed32)."""
        self._tag(number, WireType.FIXED32)
        self._buf += (value & 0xFFFF_FFFF).to_bytes(4, "little")
        return self

    def bytes_field(self, number: int, value: bytes) -> ProtoWriter:
        """Write a length-delimited field (bytes, or an embedded message's bytes)."""
        self._tag(number, WireType.LEN)
        self._buf += encode_varint(len(value))
        self._buf += value
        return self

    def string(self, number: int, value: str) -> ProtoWriter:
        """Write a proto3 ``string`` field."""
        return self.bytes_field(number, value.encode("utf-8"))

    def packed_varints(self, number: int, values: Iterable[int]) -> ProtoWriter:
        """Write a packed repeated varint field (proto3's default for repeated scalars)."""
        payload = b"".join(encode_varint(v) for v in values)
        return self.bytes_field(number, payload)

    def getvalue(self) -> bytes:
        """The message written so far."""
        return bytes(self._buf)


def write_delimited(message: bytes) -> bytes:
    """Prefix ``message`` with its varint length, as Go's ``pbutil.WriteDelimited`` does."""
    return encode_varint(len(message)) + message


def iter_delimited(data: bytes | bytearray | memoryview) -> Iterator[bytes]:
    """Split a concatenation of varint-length-delimited messages.

    Raises:
        DecodeError: a length prefix is truncated or points past the end.
    """
    pos = 0
    n = len(data)
    while pos < n:
        length, pos = decode_varint(data, pos)
        if length > n - pos:
            raise DecodeError("protobuf: delimited message is truncated")
        yield bytes(data[pos : pos + length])
        pos += length
