"""Go compress/lzw (LSB, literal width 8) compatibility."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster import lzw
from cluster.errors import DecodeError

# Vectors from Go's src/compress/lzw/reader_test.go (LSB, width 8).
TOBE_RAW = b"TOBEORNOTTOBEORTOBEORNOT"
TOBE_LZW = bytes.fromhex("549e0829f2448a932754041234b8b0e0c1840101")
GIF_RAW = b"\x28\xff\xff\xff\x28\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
GIF_LZW = bytes.fromhex("0051fc1b2870a0c1830101")


def _codes(data: bytes, count: int) -> list[int]:
    """Read the first ``count`` codes assuming they are all 9 bits wide."""
    value = int.from_bytes(data, "little")
    return [(value >> (9 * i)) & 0x1FF for i in range(count)]


def test_decodes_go_reader_vector_without_leading_clear() -> None:
    """Go's "tobe;LSB;8" vector (no clear code first) inflates to its text."""
    assert lzw.decompress(TOBE_LZW) == TOBE_RAW


def test_gif_vector_matches_go_byte_for_byte() -> None:
    """Encoding Go's "gif;LSB;8" input gives exactly Go's bytes, leading clear included."""
    assert lzw.compress(GIF_RAW) == GIF_LZW
    assert lzw.decompress(GIF_LZW) == GIF_RAW


def test_empty_input_is_clear_then_eof() -> None:
    """Go's writer emits clear (256) then EOF (257) for empty input: 00 03 02."""
    assert lzw.compress(b"") == b"\x00\x03\x02"
    assert lzw.decompress(b"\x00\x03\x02") == b""
    assert lzw.decompress(b"\x01\x01") == b""


def test_stream_starts_with_clear_and_literals() -> None:
    """A push/pull compresses to codes 256, 6, 131, like the captured Alertmanager stream."""
    assert _codes(lzw.compress(b"\x06\x83\xa4Join"), 3) == [256, 6, 131]


def test_truncated_input_is_a_decode_error() -> None:
    """Input that stops before the EOF code is rejected, like Go's ErrUnexpectedEOF."""
    with pytest.raises(DecodeError):
        lzw.decompress(TOBE_LZW[:11])


def test_code_beyond_table_is_invalid() -> None:
    """A code above the next assignable one is rejected rather than guessed."""
    # clear (256), literal 'a', then code 300 which is not defined yet.
    value = 256 | (ord("a") << 9) | (300 << 18)
    with pytest.raises(DecodeError, match="invalid code"):
        lzw.decompress(value.to_bytes(4, "little"))


def test_output_limit_is_enforced() -> None:
    """A decompression bomb beyond max_output raises instead of exhausting memory."""
    with pytest.raises(DecodeError, match="exceeds"):
        lzw.decompress(lzw.compress(bytes(10_000)), max_output=1000)


def test_table_reset_round_trips() -> None:
    """Inputs long enough to fill the 4096-code table (reset, deferred clear) round-trip."""
    data = bytes((i * 7 + (i >> 5)) & 0xFF for i in range(200_000))
    assert lzw.decompress(lzw.compress(data)) == data


def test_decoder_keeps_going_with_a_full_table() -> None:
    """With a full table the decoder stops adding entries instead of failing (deferred clear)."""
    # Hand-build a stream without any mid-stream clear: literals only, widening as Go does.
    out_bits = 0
    nbits = 0
    width = 9
    hi = 257
    data = bytearray()

    def emit(code: int) -> None:
        nonlocal out_bits, nbits
        out_bits |= code << nbits
        nbits += width

    emit(256)
    for i in range(5000):
        emit(i & 0xFF)
        data.append(i & 0xFF)
        if i > 0 and width < 12:
            hi += 1
            if hi + 1 >= 1 << width:
                width += 1
    emit(257)
    encoded = out_bits.to_bytes((nbits + 7) // 8, "little")
    assert lzw.decompress(encoded) == bytes(data)


@given(st.binary(max_size=3000))
def test_round_trip(data: bytes) -> None:
    """Any bytes survive compress then decompress."""
    assert lzw.decompress(lzw.compress(data)) == data


@given(st.lists(st.sampled_from([b"a", b"b", b"ab", b"\x00"]), max_size=3000).map(b"".join))
def test_round_trip_repetitive(data: bytes) -> None:
    """Highly repetitive input (long codes, KwKwK cases) survives a round trip."""
    assert lzw.decompress(lzw.compress(data)) == data


@given(st.binary(max_size=300))
def test_garbage_raises_only_decode_error(data: bytes) -> None:
    """Random bytes either inflate or raise DecodeError, never anything else."""
    try:
        lzw.decompress(data)
    except DecodeError:
        pass
