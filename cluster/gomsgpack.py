"""The msgpack dialect of hashicorp/go-msgpack v0.5.3 as memberlist uses it.

memberlist encodes every wire struct with a zero-valued ``codec.MsgpackHandle``:

* a struct is a map keyed by the Go field name, keys sorted bytewise;
* strings *and* ``[]byte`` are written in the old raw (str) family: fixstr, str16,
  str32 — never bin, never str8 (msgpack-python's ``use_bin_type=False`` makes exactly
  these choices);
* non-negative integers use the smallest unsigned form.

Decoding is lenient in the same ways Go's is: unknown keys are ignored, missing keys
leave the zero value, a struct may also arrive as an array in field order, a ``[]byte``
field accepts str, bin or an array of small ints, nil means empty, and a bool accepts
0/1. Values are unpacked with ``raw=True`` because byte fields (addresses, LZW buffers)
are not UTF-8; name fields are turned into ``str`` here, losslessly
(``surrogateescape``) so a non-UTF-8 Go string survives a round trip.

Every failure is a :class:`~cluster.errors.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgpack

from cluster.errors import DecodeError, TruncatedError

#: A value a wire struct field can hold when encoding.
FieldValue = int | bool | bytes | str | None

_UINT_MAX = {8: 0xFF, 16: 0xFFFF, 32: 0xFFFF_FFFF, 64: 0xFFFF_FFFF_FFFF_FFFF}
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def go_string_bytes(value: str) -> bytes:
    """The bytes of a Go string held in a Python ``str`` (inverse of :func:`get_str`)."""
    return value.encode("utf-8", "surrogateescape")


def pack_struct(fields: Mapping[str, FieldValue]) -> bytes:
    """Pack ``fields`` as go-msgpack packs a struct: a map with keys sorted bytewise.

    Callers leave ``omitempty`` fields out of ``fields`` when they are empty.
    """
    ordered: dict[bytes, int | bool | bytes | None] = {}
    for name in sorted(fields, key=lambda n: n.encode()):
        value = fields[name]
        ordered[name.encode()] = go_string_bytes(value) if isinstance(value, str) else value
    packed: bytes = msgpack.packb(ordered, use_bin_type=False)
    return packed


def value_end(buf: bytes | bytearray | memoryview, pos: int) -> int | None:
    """The offset just past the msgpack value starting at ``pos``, or ``None`` if incomplete.

    Only container heads and lengths are inspected, so this is cheap even for a
    multi-megabyte ``Buf``. A reader that gets the bytes piecemeal uses
    :class:`ValueScanner` instead, which resumes where it stopped.

    Raises:
        DecodeError: the byte 0xc1 (never used by msgpack) appears as a type byte.
    """
    end, remaining, _ = scan_values(buf, pos, 1)
    return end if remaining == 0 and end <= len(buf) else None


def scan_values(
    buf: bytes | bytearray | memoryview, pos: int, remaining: int, max_items: int = -1
) -> tuple[int, int, int]:
    """Skip ``remaining`` msgpack values from ``pos`` as far as ``buf`` reaches.

    Returns ``(pos, remaining, items)``: the value is complete when ``remaining`` is 0
    and ``pos <= len(buf)`` (a string may end past the bytes received so far); ``items``
    is how many values (container elements included) were skipped. Otherwise calling
    again with the returned position and count and a longer ``buf`` carries on; a value
    head cut short is re-read from its first byte, so every byte is looked at about once.

    Raises:
        DecodeError: the byte 0xc1 (never used by msgpack) appears as a type byte, or
            more than ``max_items`` values were skipped (when it is not negative).
    """
    n = len(buf)
    items = 0
    while remaining:
        if pos >= n:
            break
        if items == max_items:
            raise DecodeError(f"msgpack: value has more than {max_items} elements")
        b = buf[pos]
        if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
            pos += 1
        elif 0x80 <= b <= 0x8F:
            remaining += 2 * (b & 0x0F)
            pos += 1
        elif 0x90 <= b <= 0x9F:
            remaining += b & 0x0F
            pos += 1
        elif 0xA0 <= b <= 0xBF:
            pos += 1 + (b & 0x1F)
        elif b == 0xC1:
            raise DecodeError("msgpack: reserved type byte 0xc1")
        elif b in (0xC4, 0xD9):  # bin8, str8
            if pos + 2 > n:
                break
            pos += 2 + buf[pos + 1]
        elif b in (0xC5, 0xDA):  # bin16, str16
            if pos + 3 > n:
                break
            pos += 3 + int.from_bytes(buf[pos + 1 : pos + 3], "big")
        elif b in (0xC6, 0xDB):  # bin32, str32
            if pos + 5 > n:
                break
            pos += 5 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
        elif b in (0xC7, 0xC8, 0xC9):  # ext8/16/32: length, type, data
            width = {0xC7: 1, 0xC8: 2, 0xC9: 4}[b]
            if pos + 1 + width > n:
                break
            pos += 2 + width + int.from_bytes(buf[pos + 1 : pos + 1 + width], "big")
        elif b in (0xCA, 0xCB):  # float32/64
            pos += 5 if b == 0xCA else 9
        elif 0xCC <= b <= 0xD3:  # uint8..64, int8..64
            pos += 1 + (1 << ((b - 0xCC) & 3))
        elif 0xD4 <= b <= 0xD8:  # fixext 1/2/4/8/16
            pos += 2 + (1 << (b - 0xD4))
        elif b in (0xDC, 0xDE):  # array16, map16
            if pos + 3 > n:
                break
            count = int.from_bytes(buf[pos + 1 : pos + 3], "big")
            remaining += count if b == 0xDC else 2 * count
            pos += 3
        else:  # 0xDD array32, 0xDF map32
            if pos + 5 > n:
                break
            count = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            remaining += count if b == 0xDD else 2 * count
            pos += 5
        remaining -= 1
        items += 1
    return pos, remaining, items


class ValueScanner:
    """Finds where one msgpack value ends in a buffer that keeps growing.

    Each call to :meth:`end` resumes where the previous one stopped, so feeding a value
    in many chunks costs time linear in its size (re-scanning from the start on every
    read cost 50 ms per MiB already received, a quadratic stall).
    """

    def __init__(self, start: int, max_items: int = -1) -> None:
        self.start = start
        self._pos = start
        self._remaining = 1
        #: Elements still allowed (negative: no bound).
        self._budget = max_items

    def end(self, buf: bytes | bytearray | memoryview) -> int | None:
        """The offset just past the value, or ``None`` until more bytes arrive.

        Raises:
            DecodeError: the byte 0xc1 appears as a type byte, or the value has more
                elements than ``max_items``.
        """
        if self._remaining:
            budget = self._budget
            self._pos, self._remaining, items = scan_values(buf, self._pos, self._remaining, budget)
            if budget >= 0:
                self._budget = budget - items
        if self._remaining == 0 and self._pos <= len(buf):
            return self._pos
        return None


def unpack_span(buf: bytes | bytearray | memoryview, start: int, end: int) -> object:
    """Unpack the complete msgpack value known to occupy ``buf[start:end]``.

    Raises:
        DecodeError: the value is malformed.
    """
    try:
        return msgpack.unpackb(bytes(buf[start:end]), raw=True, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise DecodeError(f"msgpack: {exc}") from exc


def unpack_value(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[object, int]:
    """Unpack the one msgpack value at ``pos``; return it and the offset after it.

    Raises:
        TruncatedError: the value is incomplete.
        DecodeError: the value is malformed.
    """
    end = value_end(buf, pos)
    if end is None:
        raise TruncatedError("msgpack: truncated value")
    return unpack_span(buf, pos, end), end


def as_struct(value: object, name: str, field_order: Sequence[str]) -> dict[bytes, object]:
    """Normalise a decoded struct (a map, or an array in Go field order) to a key map."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {field.encode(): item for field, item in zip(field_order, value, strict=False)}
    if value is None:
        return {}  # go-msgpack leaves a nil struct at its zero value
    raise DecodeError(f"{name}: expected a msgpack map, got {type(value).__name__}")


def get_uint(struct: Mapping[bytes, object], field: str, bits: int) -> int:
    """A Go ``uintN`` field; absent or nil is 0."""
    value = struct.get(field.encode())
    if value is None:
        return 0
    if type(value) is not int:
        raise DecodeError(f"field {field}: expected an integer, got {type(value).__name__}")
    if not 0 <= value <= _UINT_MAX[bits]:
        raise DecodeError(f"field {field}: {value} does not fit uint{bits}")
    return value


def get_int(struct: Mapping[bytes, object], field: str) -> int:
    """A Go ``int`` field (64-bit); absent or nil is 0."""
    value = struct.get(field.encode())
    if value is None:
        return 0
    if type(value) is not int:
        raise DecodeError(f"field {field}: expected an integer, got {type(value).__name__}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise DecodeError(f"field {field}: {value} does not fit int64")
    return value


def get_bool(struct: Mapping[bytes, object], field: str) -> bool:
    """A Go ``bool`` field; also accepts 0 and 1 as go-msgpack does."""
    value = struct.get(field.encode())
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise DecodeError(f"field {field}: expected a bool, got {value!r}")


def get_bytes(struct: Mapping[bytes, object], field: str) -> bytes:
    """A Go ``[]byte`` field: str, bin, or an array of byte values; nil is empty."""
    value = struct.get(field.encode())
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        if all(type(item) is int and 0 <= item <= 0xFF for item in value):
            return bytes(value)
        raise DecodeError(f"field {field}: array is not a list of bytes")
    raise DecodeError(f"field {field}: expected bytes, got {type(value).__name__}")


def get_str(struct: Mapping[bytes, object], field: str) -> str:
    """A Go ``string`` field; nil is empty; non-UTF-8 bytes survive via surrogateescape."""
    value = struct.get(field.encode())
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise DecodeError(f"field {field}: expected a string, got {type(value).__name__}")
