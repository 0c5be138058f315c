"""Packet and stream layering: compound, compression, CRC, encryption and labels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.errors import DecodeError, LabelError, TruncatedError
from cluster.framing import (
    StreamDecoder,
    add_label,
    check_label,
    compress_if_smaller,
    compress_message,
    decode_packet,
    decode_stream_message,
    encode_packet,
    encode_stream,
    make_compounds,
    strip_label,
)
from cluster.messages import (
    Ack,
    Alive,
    Compound,
    Dead,
    ErrResp,
    HasCrc,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)
from cluster.security import Keyring

ULID = "01M84Y2YRBC3JPCA7R37RW1XJG"
LOCALHOST = bytes((127, 0, 0, 1))
ALIVE = Alive(incarnation=1, node=ULID, addr=LOCALHOST, port=19202)
PING = Ping(seq_no=1, node=ULID, source_addr=LOCALHOST, source_port=19202, source_node=ULID)
JOIN = PushPull(
    join=True,
    nodes=(PushNodeState(name=ULID, addr=LOCALHOST, port=19202, incarnation=1),),
    user_state=bytes.fromhex("0a050a036e666c0a050a0373696c"),
)
KEY = bytes(range(32))


def test_label_header() -> None:
    """A label is f4|len|label; empty adds nothing; over 255 bytes is refused."""
    assert add_label(b"\x00x", b"") == b"\x00x"
    assert add_label(b"\x00x", b"prod") == b"\xf4\x04prod\x00x"
    assert strip_label(b"\xf4\x04prod\x00x") == (b"prod", b"\x00x")
    assert strip_label(b"\x00x") == (b"", b"\x00x")
    with pytest.raises(ValueError, match="255"):
        add_label(b"", b"x" * 256)
    with pytest.raises(DecodeError, match="empty"):
        strip_label(b"\xf4\x00\x00")
    with pytest.raises(TruncatedError):
        strip_label(b"\xf4\x05ab")


def test_label_check() -> None:
    """Labels must match both ways unless the inbound check is skipped."""
    assert check_label(b"a", b"a") == b"a"
    with pytest.raises(LabelError):
        check_label(b"", b"a")
    with pytest.raises(LabelError):
        check_label(b"a", b"")
    assert check_label(b"", b"a", skip_inbound_check=True) == b"a"


def test_plain_small_packet_stays_uncompressed() -> None:
    """A lone ping is not compressed (LZW would not shrink it) and carries no CRC by default."""
    assert encode_packet(PING.encode()) == PING.encode()


def test_crc_compound_like_alertmanager_gossip() -> None:
    """Gossip of two alives is 0c <crc> 07 02 0052 0052 ... and decodes to both alives."""
    compound = Compound((ALIVE.encode(), ALIVE.encode())).encode()
    packet = encode_packet(compound, compress=False, crc=True)
    assert packet[0] == 0x0C and packet[5:11] == bytes.fromhex("070200520052")
    assert decode_packet(packet).messages == (ALIVE, ALIVE)


def test_nested_crc_compress_compound() -> None:
    """0c -> 09 -> 07 -> {ping, suspect, user} unwraps in order."""
    suspect = Suspect(incarnation=1, node="x", from_node=ULID)
    parts = (PING.encode(), suspect.encode(), UserMsg(b"\x0a\x03sil").encode())
    packet = HasCrc(compress_message(Compound(parts).encode())).encode()
    decoded = decode_packet(packet)
    assert decoded.messages == (PING, suspect, UserMsg(b"\x0a\x03sil"))
    assert decoded.errors == ()


def test_compression_used_only_when_smaller() -> None:
    """Compression is applied to a repetitive compound but not to a short message."""
    big = Compound((ALIVE.encode(),) * 6).encode()
    assert compress_if_smaller(big)[0] == 0x09
    assert compress_if_smaller(b"\x0b\x81") == b"\x0b\x81"
    assert decode_packet(encode_packet(big)).messages == (ALIVE,) * 6


def test_bad_parts_are_reported_good_parts_kept() -> None:
    """A malformed or truncated compound part is reported while the others are delivered."""
    good = Dead(incarnation=2, node="a", from_node="a").encode()
    packet = Compound((good, b"\x04\xc1", b"\x63zz", good)).encode()
    decoded = decode_packet(packet[:-1])
    assert decoded.messages == (Dead(incarnation=2, node="a", from_node="a"),)
    assert len(decoded.errors) == 3
    assert any("truncated" in str(e) for e in decoded.errors)
    assert any("not supported" in str(e) for e in decoded.errors)


def test_unsupported_packet_types() -> None:
    """A push/pull, errResp or nested hasCrc in a UDP packet is reported, not delivered."""
    for message in (JOIN.encode(), ErrResp("x").encode(), HasCrc(PING.encode()).encode()):
        decoded = decode_packet(Compound((message,)).encode())
        assert decoded.messages == ()
        assert len(decoded.errors) == 1


def test_bad_crc_drops_packet() -> None:
    """A checksum mismatch raises: the whole packet is dropped."""
    packet = bytearray(HasCrc(PING.encode()).encode())
    packet[-1] ^= 1
    with pytest.raises(DecodeError, match="checksum"):
        decode_packet(bytes(packet))


def test_deep_nesting_is_bounded() -> None:
    """Compound nesting deeper than the limit is reported instead of recursing forever."""
    message = PING.encode()
    for _ in range(20):
        message = Compound((message,)).encode()
    decoded = decode_packet(message)
    assert decoded.messages == () and "nested" in str(decoded.errors[0])


@pytest.mark.parametrize("version", [0, 1])
def test_encrypted_labelled_packet(version: int) -> None:
    """Packets encrypt with the label as associated data, and need the right key and label."""
    ring = Keyring.create([KEY])
    packet = encode_packet(
        PING.encode(), crc=True, keyring=ring, encryption_version=version, label=b"prod"
    )
    assert packet.startswith(b"\xf4\x04prod" + bytes((version,)))
    assert decode_packet(packet, keyring=ring, label=b"prod").messages == (PING,)
    with pytest.raises(LabelError):
        decode_packet(packet, keyring=ring)
    with pytest.raises(DecodeError, match="no installed keys"):
        decode_packet(packet, keyring=Keyring.create([bytes(16)]), label=b"prod")
    # Skipping the inbound check assumes our label; then the stripped header is ignored.
    assert decode_packet(
        packet, keyring=ring, label=b"prod", skip_inbound_label_check=True
    ).messages == (PING,)


def test_plaintext_accepted_when_not_verifying_incoming() -> None:
    """With verify_incoming off, an unencrypted packet is read as plaintext."""
    ring = Keyring.create([KEY])
    with pytest.raises(DecodeError):
        decode_packet(PING.encode(), keyring=ring)
    assert decode_packet(PING.encode(), keyring=ring, verify_incoming=False).messages == (PING,)


def test_make_compounds_splits_at_255() -> None:
    """More than 255 messages become several compounds."""
    packets = make_compounds([b"\x0b\x81"] * 300)
    assert [p[1] for p in packets] == [255, 45]


def _feed_bytewise(decoder: StreamDecoder, data: bytes) -> object:
    """Feed one byte at a time; check nothing is returned before the last byte."""
    for i in range(len(data) - 1):
        assert decoder.feed(data[i : i + 1]) is None
    return decoder.feed(data[-1:])


def test_stream_push_pull_compressed_incremental() -> None:
    """A compressed push/pull is recognised exactly when its last byte arrives."""
    stream = encode_stream(JOIN.encode())
    assert stream.startswith(bytes.fromhex("0982a4416c676f00a3427566da"))
    decoder = StreamDecoder()
    assert _feed_bytewise(decoder, stream) == JOIN
    assert decoder.done
    decoder.eof()


def test_stream_plain_messages() -> None:
    """Uncompressed push/pull, user, ping, ack and errResp streams are all accepted."""
    for message, encoded in [
        (JOIN, JOIN.encode()),
        (UserMsg(b"part"), UserMsg(b"part").encode_stream()),
        (PING, PING.encode()),
        (Ack(3), Ack(3).encode()),
        (ErrResp("nope"), ErrResp("nope").encode()),
    ]:
        assert _feed_bytewise(StreamDecoder(), encode_stream(encoded, compress=False)) == message
        assert decode_stream_message(encoded) == message


def test_stream_ignores_trailing_bytes() -> None:
    """Bytes after the message (none are expected) do not disturb it."""
    decoder = StreamDecoder()
    assert decoder.feed(PING.encode() + b"junk") == PING
    assert decoder.feed(b"more") is None


def test_stream_eof_mid_message() -> None:
    """Closing before the message is complete is a TruncatedError."""
    decoder = StreamDecoder()
    decoder.feed(JOIN.encode()[:-3])
    with pytest.raises(TruncatedError):
        decoder.eof()


def test_stream_rejects_packet_only_types() -> None:
    """A stream starting with alive (a UDP-only message) is rejected at once."""
    with pytest.raises(DecodeError, match="invalid stream message type"):
        StreamDecoder().feed(ALIVE.encode())


def test_compressed_stream_with_truncated_inner_message() -> None:
    """A complete compress wrapper around a cut message fails instead of waiting forever."""
    stream = compress_message(JOIN.encode()[:-1])
    with pytest.raises(DecodeError, match="incomplete"):
        StreamDecoder().feed(stream)


@pytest.mark.parametrize("version", [0, 1])
def test_encrypted_labelled_stream(version: int) -> None:
    """Encrypted streams authenticate header and label, and decode incrementally."""
    ring = Keyring.create([KEY])
    stream = encode_stream(
        UserMsg(b"x" * 1000).encode_stream(),
        keyring=ring,
        encryption_version=version,
        label=b"lab",
    )
    assert stream.startswith(b"\xf4\x03lab\x0a")
    decoder = StreamDecoder(keyring=ring, label=b"lab")
    assert _feed_bytewise(decoder, stream) == UserMsg(b"x" * 1000)
    assert decoder.received_label == b"lab"
    tampered = bytearray(stream)
    tampered[8] ^= 1  # inside the length header, which is authenticated
    with pytest.raises(DecodeError):
        StreamDecoder(keyring=ring, label=b"lab").feed(bytes(tampered) + bytes(70000))


def test_stream_encryption_policy() -> None:
    """Encrypted streams need a keyring; a keyring refuses plaintext unless told not to verify."""
    ring = Keyring.create([KEY])
    encrypted = encode_stream(PING.encode(), keyring=ring)
    with pytest.raises(DecodeError, match="not configured"):
        StreamDecoder().feed(encrypted)
    with pytest.raises(DecodeError, match="not encrypted"):
        StreamDecoder(keyring=ring).feed(PING.encode())
    assert StreamDecoder(keyring=ring, verify_incoming=False).feed(PING.encode()) == PING


def test_stream_size_limit() -> None:
    """A stream larger than max_bytes is refused rather than buffered without bound."""
    decoder = StreamDecoder(max_bytes=100)
    huge = UserMsg(b"x" * 500).encode_stream()
    with pytest.raises(DecodeError, match="exceeds"):
        decoder.feed(huge[:200])


@given(st.binary(max_size=300))
def test_random_packets_raise_only_decode_error(data: bytes) -> None:
    """Random packets decode (possibly with errors listed) or raise DecodeError only."""
    try:
        decode_packet(data)
    except DecodeError:
        pass


@given(st.binary(max_size=300), st.integers(1, 50))
def test_random_streams_raise_only_decode_error(data: bytes, chunk: int) -> None:
    """Random stream bytes in any chunking yield a message, wait, or raise DecodeError."""
    decoder = StreamDecoder()
    try:
        for i in range(0, len(data), chunk):
            decoder.feed(data[i : i + chunk])
        decoder.eof()
    except DecodeError:
        pass


@given(st.integers(0, (1 << 32) - 1), st.binary(max_size=2000), st.booleans(), st.booleans())
def test_packet_round_trip(seq: int, payload: bytes, compress: bool, crc: bool) -> None:
    """Any compound of ack and user messages survives every layering combination."""
    messages = (Ack(seq, payload[:50]), UserMsg(payload))
    packet = encode_packet(
        Compound(tuple(m.encode() for m in messages)).encode(), compress=compress, crc=crc
    )
    assert decode_packet(packet).messages == messages
