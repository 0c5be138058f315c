"""The stream decoder keeps its position: linear cost, early refusals, any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster import gomsgpack
from cluster.errors import DecodeError
from cluster.framing import (
    MAX_STRUCT_ELEMENTS,
    StreamDecoder,
    StreamTooLargeError,
    encode_stream,
)
from cluster.gomsgpack import ValueScanner, pack_struct, value_end
from cluster.messages import ALERTMANAGER_VSN, MessageType, PushNodeState, PushPull, UserMsg
from cluster.security import Keyring

CHUNK = 65536
NODES = tuple(
    PushNodeState(
        name=f"node-{i:05d}",
        addr=bytes((10, 0, i >> 8, i & 255)),
        port=9094,
        incarnation=1,
        vsn=ALERTMANAGER_VSN,
    )
    for i in range(3000)
)


def _feed_in_chunks(decoder: StreamDecoder, data: bytes, chunk: int = CHUNK) -> object:
    result = None
    for i in range(0, len(data), chunk):
        result = decoder.feed(data[i : i + chunk]) or result
    return result


def test_each_element_is_scanned_once_however_the_stream_is_chunked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Feeding a big push/pull in 1 KiB chunks scans each msgpack element once, not once per chunk."""
    scanned = 0
    real = gomsgpack.scan_values

    def counting(*args: object) -> tuple[int, int, int]:
        nonlocal scanned
        result = real(*args)  # type: ignore[arg-type]
        scanned += result[2]
        return result

    monkeypatch.setattr(gomsgpack, "scan_values", counting)
    message = PushPull(join=True, nodes=NODES, user_state=b"s" * 100_000)
    encoded = message.encode()
    assert _feed_in_chunks(StreamDecoder(), encoded, 1024) == message
    elements = 7 + 15 * len(NODES)  # header map + one 7-field map per node
    assert scanned == elements
    assert len(encoded) // 1024 > 100  # many chunks, so a re-parse would multiply this


def test_value_scanner_resumes_to_the_same_end_as_value_end() -> None:
    """Fed one byte at a time, the scanner finds exactly the end value_end finds."""
    value = pack_struct({"Buf": b"x" * 70_000, "Algo": 0}) + b"trailing"
    complete = len(value) - len(b"trailing")
    scanner = ValueScanner(0)
    for n in range(1, complete):
        assert scanner.end(value[:n]) is None
    assert scanner.end(value) == value_end(value, 0) == complete


def test_a_struct_of_too_many_elements_is_refused_before_it_completes() -> None:
    """A ping whose struct is an endless array of tiny elements is refused after MAX_STRUCT_ELEMENTS."""
    endless = bytes([MessageType.PING, 0xDD, 0xFF, 0xFF, 0xFF, 0xFF]) + b"\x01" * (4 * CHUNK)
    decoder = StreamDecoder()
    with pytest.raises(DecodeError, match=f"more than {MAX_STRUCT_ELEMENTS} elements"):
        _feed_in_chunks(decoder, endless)


@pytest.mark.parametrize(
    "head",
    [
        UserMsg(b"x" * 5000).encode_stream()[:20],
        PushPull(join=True, user_state=b"y" * 5000).encode()[:40],
    ],
)
def test_declared_lengths_over_the_bound_are_refused_at_the_header(head: bytes) -> None:
    """A user message or push/pull declaring more than max_bytes is refused before its body arrives."""
    with pytest.raises(StreamTooLargeError, match="limit is 1000"):
        StreamDecoder(max_bytes=1000).feed(head)


def test_an_encrypted_stream_declaring_more_than_the_bound_is_refused_at_its_header() -> None:
    """The 5-byte encrypt header alone is enough to refuse a stream over max_bytes."""
    ring = Keyring.create([bytes(16)])
    with pytest.raises(StreamTooLargeError):
        StreamDecoder(keyring=ring, max_bytes=1000).feed(b"\x0a\x00\x01\x00\x00")


@given(st.binary(min_size=0, max_size=3000), st.integers(1, 700), st.booleans())
def test_any_chunking_gives_the_same_message(payload: bytes, chunk: int, compress: bool) -> None:
    """A user message or push/pull decodes identically whatever the read sizes are."""
    user = UserMsg(payload)
    push_pull = PushPull(join=False, nodes=NODES[:3], user_state=payload)
    for message, plain in [(user, user.encode_stream()), (push_pull, push_pull.encode())]:
        encoded = encode_stream(plain, compress=compress)
        assert _feed_in_chunks(StreamDecoder(), encoded, chunk) == message


def test_a_big_compressed_message_is_left_for_unwrap() -> None:
    """Over defer_unwrap_over, feed stops at the complete wrapper and unwrap() inflates it."""
    message = UserMsg(bytes(range(256)) * 400)
    encoded = encode_stream(message.encode_stream())
    decoder = StreamDecoder(defer_unwrap_over=100)
    assert _feed_in_chunks(decoder, encoded + b"junk", 1000) is None
    assert decoder.unwrap_pending
    assert decoder.feed(b"more") is None
    assert decoder.unwrap() == message
    assert decoder.done and not decoder.unwrap_pending
    small = StreamDecoder(defer_unwrap_over=len(encoded))
    assert small.feed(encoded) == message
