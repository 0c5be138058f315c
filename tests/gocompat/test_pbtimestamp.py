"""The protobuf Timestamp codec shared by the nflog and silence wire formats."""

from __future__ import annotations

import pytest

from cluster.errors import DecodeError
from cluster.protowire import ProtoWriter
from daemon.clock import NS_PER_SECOND, ZERO_TIME
from daemon.gocompat.pbtimestamp import decode_timestamp, encode_timestamp
from daemon.silence.codec import decode_silence

S = NS_PER_SECOND
T0 = 1_700_000_000 * S
T1 = 1_767_225_600 * S + 123_456_789


@pytest.mark.parametrize("ns", [0, 1, T0 + 123, T1, -1, ZERO_TIME, ZERO_TIME + 999_999_999])
def test_timestamp_round_trip_with_nonnegative_nanos(ns: int) -> None:
    """Timestamps (also before 1970) round-trip, with nanos normalised into [0, 1e9)."""
    assert decode_timestamp(encode_timestamp(ns)) == ns


def test_epoch_is_an_empty_message() -> None:
    """The Unix epoch encodes to no bytes at all (both fields at their default)."""
    assert encode_timestamp(0) == b""


def test_go_zero_time_encoding() -> None:
    """Go's zero time is seconds -62135596800 as a 10-byte two's-complement varint."""
    assert encode_timestamp(ZERO_TIME) == b"\x08\x80\x92\xb8\xc3\x98\xfe\xff\xff\xff\x01"


def test_out_of_range_nanos_rejected() -> None:
    """A Timestamp whose nanos are outside [0, 1e9) is rejected, as Go's validation does."""
    with pytest.raises(DecodeError, match="nanos"):
        decode_timestamp(ProtoWriter().varint(2, NS_PER_SECOND).getvalue())


def test_silence_with_out_of_range_nanos_rejected() -> None:
    """A silence whose start time has nanos out of range fails to decode, as in Go."""
    bad = ProtoWriter().varint(2, NS_PER_SECOND).getvalue()
    data = ProtoWriter().string(1, "id").bytes_field(3, bad).getvalue()
    with pytest.raises(DecodeError, match="nanos"):
        decode_silence(data)
