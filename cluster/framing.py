"""How memberlist messages are layered into UDP packets and TCP streams.

Packets (UDP). The sender builds one message, or a compound of several, then:

1. compresses it (``compress`` message) if enabled *and* strictly shorter;
2. prefixes ``hasCrc`` if the destination advertised protocol max >= 5;
3. encrypts it if a keyring is set (associated data: the label);
4. prefixes the label header ``f4 | len | label`` if a label is set.

The receiver undoes 4, 3 and 2 at the top level only, then dispatches on the type
byte; ``compound`` and ``compress`` recurse, so any nesting such as
``0c -> 09 -> 07 -> {00, 03, 08}`` is accepted. Failures of steps 4-2 drop the whole
packet (:func:`decode_packet` raises); a bad part inside a compound is reported and the
good parts are still delivered, as memberlist does.

Streams (TCP) carry one message per connection, with no outer length: the optional
label header, then either ``encrypt`` (``0a | uint32 len | ciphertext``, associated data
= those 5 bytes + label) or the message itself, which may be ``compress`` (every stream
Go sends is) wrapping a plain message. The plain message is a push/pull, a user message
(TCP form), a fallback ping, its ack, or an ``errResp``. Its end is only known by
parsing it, so :class:`StreamDecoder` is fed bytes and reports the message as soon as it
is complete: the peer that starts a push/pull does not half-close, so waiting for EOF
would deadlock.

Alertmanager 0.25 peers never use labels or encryption, and the Debian build cannot
parse a label at all: the defaults here (no label, no keyring) are the interoperable
ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from cluster.errors import DecodeError, DecryptError, LabelError, TruncatedError
from cluster.gomsgpack import ValueScanner, as_struct, unpack_span, value_end
from cluster.messages import (
    MAX_COMPOUND_PARTS,
    PUSH_PULL_HEADER_FIELDS,
    USER_HEADER_FIELDS,
    Ack,
    Alive,
    Compound,
    Compress,
    Dead,
    Encrypted,
    ErrResp,
    HasCrc,
    IndirectPing,
    MessageType,
    Nack,
    Ping,
    PushNodeState,
    PushPull,
    PushPullHeader,
    Suspect,
    UserMsg,
    user_msg_len,
)
from cluster.security import Keyring, decrypt_payload, encrypt_payload, encrypted_length

#: Longest cluster label (its length travels in one byte).
MAX_LABEL_LENGTH = 255
#: How deeply compound/compress may nest inside one packet before we give up.
MAX_PACKET_NESTING = 8
#: Most msgpack elements one struct on a stream may have (its keys and values count).
#: memberlist's structs have at most 8 fields (16 elements); the slack is for unknown
#: keys, which Go skips. Without a bound, a header of millions of tiny elements is
#: scanned, then unpacked into a list of millions of objects in one go.
MAX_STRUCT_ELEMENTS = 1024
#: Default bound on one stream message, as received and after decompression. A
#: push/pull of a big Alertmanager state is a few MiB; memberlist refuses user state over
#: 20 MiB (``maxPushStateBytes``) and decompressed streams over 40 MiB, so a genuine
#: peer never comes near this.
DEFAULT_MAX_STREAM_BYTES = 32 * 1024 * 1024
#: Default bound on what one UDP packet may decompress to. A sender only compresses a
#: message it built to fit one datagram (gossip fits 1400 bytes), so nothing genuine
#: comes near this; without it a 60 KB LZW bomb makes a 64 MiB buffer and stalls the
#: node for a third of a second, long enough for its peers to suspect it.
MAX_PACKET_OUTPUT = 1024 * 1024

#: A message that can arrive in a UDP packet once containers are unwrapped.
PacketMessage = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | UserMsg
#: A message that can arrive on a TCP stream once wrappers are removed.
StreamMessage = PushPull | UserMsg | Ping | Ack | ErrResp


class StreamTooLargeError(DecodeError):
    """A stream message is, or declares itself, longer than the decoder's bound."""


# --- labels -----------------------------------------------------------------------


def add_label(buf: bytes, label: bytes) -> bytes:
    """Prefix ``f4 | len | label`` to a packet or stream; an empty label adds nothing.

    Raises:
        ValueError: the label is longer than 255 bytes.
    """
    if not label:
        return buf
    if len(label) > MAX_LABEL_LENGTH:
        raise ValueError(f"label is {len(label)} bytes; the limit is {MAX_LABEL_LENGTH}")
    return bytes((MessageType.HAS_LABEL, len(label))) + label + buf


def parse_label(buf: bytes | bytearray | memoryview) -> tuple[bytes, int]:
    """Return the label at the start of ``buf`` (``b""`` if none) and where the rest starts.

    Raises:
        TruncatedError: the label header is cut short.
        DecodeError: a label header with length 0.
    """
    if not buf or buf[0] != MessageType.HAS_LABEL:
        return b"", 0
    if len(buf) < 2:
        raise TruncatedError("cannot decode label; packet has been truncated")
    size = buf[1]
    if size < 1:
        raise DecodeError("label header cannot be empty when present")
    if len(buf) < 2 + size:
        raise TruncatedError("cannot decode label; packet has been truncated")
    return bytes(buf[2 : 2 + size]), 2 + size


def strip_label(buf: bytes) -> tuple[bytes, bytes]:
    """Split a packet into its label (``b""`` if none) and the rest."""
    label, pos = parse_label(buf)
    return label, buf[pos:]


def check_label(received: bytes, expected: bytes, *, skip_inbound_check: bool = False) -> bytes:
    """Accept or refuse a received label; return the label to authenticate with.

    Labels must match exactly, so a labelled node drops unlabelled traffic and the
    reverse, unless the inbound check is skipped (then the configured label is assumed).

    Raises:
        LabelError: the labels differ.
    """
    if skip_inbound_check:
        return expected
    if received != expected:
        raise LabelError(f"discarding traffic with unacceptable label {received!r}")
    return received


# --- compound, compression, CRC -----------------------------------------------------


def make_compounds(messages: Sequence[bytes]) -> list[bytes]:
    """Pack messages into as few compounds as the 255-part limit allows (memberlist 0.5)."""
    return [
        Compound(tuple(messages[i : i + MAX_COMPOUND_PARTS])).encode()
        for i in range(0, len(messages), MAX_COMPOUND_PARTS)
    ]


def compress_message(message: bytes) -> bytes:
    """Wrap a complete message in a ``compress`` message (Go LZW)."""
    return Compress.wrap(message).encode()


def compress_if_smaller(message: bytes) -> bytes:
    """The compressed form if strictly shorter, else ``message``, as UDP sends do."""
    compressed = compress_message(message)
    return compressed if len(compressed) < len(message) else message


# --- packets --------------------------------------------------------------------------


def encode_packet(
    message: bytes,
    *,
    compress: bool = True,
    crc: bool = False,
    keyring: Keyring | None = None,
    encryption_version: int = 1,
    label: bytes = b"",
    nonce: bytes | None = None,
) -> bytes:
    """Apply memberlist's send layering to one complete message (or compound).

    ``crc`` should be true when the destination advertised protocol max >= 5.
    """
    if compress:
        message = compress_if_smaller(message)
    if crc:
        message = HasCrc(message).encode()
    if keyring is not None:
        message = encrypt_payload(
            encryption_version, keyring.primary_key, message, label, nonce=nonce
        )
    return add_label(message, label)


@attrs.frozen
class DecodedPacket:
    """What one UDP packet carried: its messages in order, and per-part failures."""

    messages: tuple[PacketMessage, ...]
    errors: tuple[DecodeError, ...] = ()
    label: bytes = b""


def decode_packet(
    data: bytes,
    *,
    keyring: Keyring | None = None,
    verify_incoming: bool = True,
    label: bytes = b"",
    skip_inbound_label_check: bool = False,
    max_output: int = MAX_PACKET_OUTPUT,
) -> DecodedPacket:
    """Undo the send layering and flatten compounds and compression.

    With a keyring, an undecryptable packet is dropped unless ``verify_incoming`` is
    false, in which case it is read as plaintext (memberlist's migration mode).

    Raises:
        DecodeError: the label, decryption or checksum failed: drop the whole packet.
    """
    received_label, pos = parse_label(data)
    auth_label = check_label(received_label, label, skip_inbound_check=skip_inbound_label_check)
    buf = data[pos:]
    if keyring is not None:
        try:
            buf = decrypt_payload(keyring.keys, buf, auth_label)
        except DecodeError:
            if verify_incoming:
                raise
    if len(buf) >= 5 and buf[0] == MessageType.HAS_CRC:
        buf = HasCrc.decode(buf).payload
    messages: list[PacketMessage] = []
    errors: list[DecodeError] = []
    _collect(buf, 0, messages, errors, max_output)
    return DecodedPacket(tuple(messages), tuple(errors), received_label)


_PACKET_TYPES: dict[int, type[PacketMessage]] = {
    MessageType.PING: Ping,
    MessageType.INDIRECT_PING: IndirectPing,
    MessageType.ACK: Ack,
    MessageType.NACK: Nack,
    MessageType.SUSPECT: Suspect,
    MessageType.ALIVE: Alive,
    MessageType.DEAD: Dead,
    MessageType.USER: UserMsg,
}


def _collect(
    buf: bytes,
    depth: int,
    messages: list[PacketMessage],
    errors: list[DecodeError],
    max_output: int,
) -> None:
    """memberlist's handleCommand: dispatch one message, recursing into containers."""
    try:
        if not buf:
            raise TruncatedError("missing message type byte")
        kind = buf[0]
        if kind in (MessageType.COMPOUND, MessageType.COMPRESS):
            if depth >= MAX_PACKET_NESTING:
                raise DecodeError(f"messages nested more than {MAX_PACKET_NESTING} deep")
            if kind == MessageType.COMPOUND:
                compound = Compound.decode(buf)
                for part in compound.parts:
                    _collect(part, depth + 1, messages, errors, max_output)
                if compound.truncated:
                    raise TruncatedError(
                        f"compound request had {compound.truncated} truncated messages"
                    )
            else:
                inner = Compress.decode(buf).unwrap(max_output=max_output)
                _collect(inner, depth + 1, messages, errors, max_output)
            return
        decoder = _PACKET_TYPES.get(kind)
        if decoder is None:
            raise DecodeError(f"message type ({kind}) not supported")
        messages.append(decoder.decode(buf))
    except DecodeError as exc:
        errors.append(exc)


# --- streams --------------------------------------------------------------------------


def encode_stream(
    message: bytes,
    *,
    compress: bool = True,
    keyring: Keyring | None = None,
    encryption_version: int = 1,
    label: bytes = b"",
    label_header: bool = True,
    nonce: bytes | None = None,
) -> bytes:
    """Apply memberlist's stream layering to one plain stream message.

    ``message`` is e.g. ``PushPull(...).encode()`` or ``UserMsg(...).encode_stream()``.
    Go compresses every stream unconditionally; so does this by default. A reply on a
    stream the peer opened has no label header (``label_header=False``); the label
    still goes into the associated data when encrypting.
    """
    if compress:
        message = compress_message(message)
    if keyring is not None:
        length = encrypted_length(encryption_version, len(message))
        header = Encrypted.header(length)
        message = header + encrypt_payload(
            encryption_version, keyring.primary_key, message, header + label, nonce=nonce
        )
    return add_label(message, label) if label_header else message


def decode_stream_message(buf: bytes) -> StreamMessage:
    """Parse one complete *plain* stream message (no label, encryption or compression).

    Raises:
        DecodeError: malformed, truncated, or a type that streams do not carry.
    """
    return _parse_plain(buf, 0)[0]


_STREAM_STRUCTS: dict[int, type[Ping | Ack | ErrResp]] = {
    MessageType.PING: Ping,
    MessageType.ACK: Ack,
    MessageType.ERR: ErrResp,
}


def _parse_plain(buf: bytes | bytearray | memoryview, pos: int) -> tuple[StreamMessage, int]:
    if pos >= len(buf):
        raise TruncatedError("missing message type byte")
    kind = buf[pos]
    if kind == MessageType.PUSH_PULL:
        return PushPull.parse(buf, pos)
    if kind == MessageType.USER:
        return UserMsg.parse_stream(buf, pos)
    if kind in (MessageType.PING, MessageType.ACK, MessageType.ERR):
        end = value_end(buf, pos + 1)
        if end is None:
            raise TruncatedError("stream message is truncated")
        return _STREAM_STRUCTS[kind].decode(bytes(buf[pos:end])), end
    raise DecodeError(f"received invalid stream message type ({kind})")


def _parse_complete_plain(buf: bytes) -> StreamMessage:
    """Parse an unwrapped (decompressed/decrypted) buffer: no more bytes can come."""
    try:
        return _parse_plain(buf, 0)[0]
    except TruncatedError as exc:
        raise DecodeError(f"wrapped stream message is incomplete: {exc}") from exc


@attrs.define
class StreamDecoder:
    """Incremental reader of the one message on an incoming (or reply) TCP stream.

    Feed it bytes as they arrive; :meth:`feed` returns the message as soon as it is
    complete, and bytes after it are ignored. Call :meth:`eof` when the peer closes to
    turn an unfinished message into an error.

    Theory of operation (h11-style: bytes in, the message out, no I/O). The decoder is
    a chain of steps: label header, type byte, then per type the msgpack header, the
    node states one by one, and the raw bytes the header declared. Each step remembers
    where it stopped (msgpack values through :class:`~cluster.gomsgpack.ValueScanner`),
    so every received byte is examined about once: the cost of a stream is linear in
    its size however it is chunked. (Re-parsing the whole buffer on every read cost
    50 ms per MiB already buffered, a quadratic stall of the event loop.) A wrapped
    message (``encrypt`` or ``compress``) is unwrapped and parsed in one go once the
    wrapper is complete. Lengths a header declares above ``max_bytes`` are refused at
    the header, before anything is buffered for them.

    Error handling: every problem is a :class:`~cluster.errors.DecodeError`; after one,
    the stream is unusable and the caller closes it (optionally sending ``errResp``).
    """

    keyring: Keyring | None = None
    verify_incoming: bool = True
    label: bytes = b""
    skip_inbound_label_check: bool = False
    max_bytes: int = DEFAULT_MAX_STREAM_BYTES
    #: False for the reply on a stream we opened: memberlist labels only the streams a
    #: node dials, so a reply has no label header (``label`` still authenticates it).
    label_header: bool = True
    #: Compressed payloads longer than this are not inflated inside :meth:`feed`, which
    #: then returns None with :attr:`unwrap_pending` set: the caller runs
    #: :meth:`unwrap` in a worker thread, because Go's LZW in pure Python takes about
    #: 0.7 s per MB of input and would stall the event loop. Negative: always inline.
    defer_unwrap_over: int = -1
    received_label: bytes = attrs.field(default=b"", init=False)
    _buf: bytearray = attrs.field(factory=bytearray, init=False)
    _done: bool = attrs.field(default=False, init=False)
    #: Where the current step starts reading.
    _pos: int = attrs.field(default=0, init=False)
    _step: Callable[[], StreamMessage | None] = attrs.field(init=False)
    _auth_label: bytes = attrs.field(default=b"", init=False)
    _kind: int = attrs.field(default=0, init=False)
    _scanner: ValueScanner = attrs.field(init=False)
    _header: PushPullHeader = attrs.field(init=False)
    _nodes: list[PushNodeState] = attrs.field(factory=list, init=False)
    _payload_len: int = attrs.field(default=0, init=False)
    _pending: Callable[[], StreamMessage] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._step = self._read_label

    @property
    def done(self) -> bool:
        """True once the message has been returned."""
        return self._done

    @property
    def unwrap_pending(self) -> bool:
        """True when the message is complete but still compressed (see :meth:`unwrap`)."""
        return self._pending is not None

    def unwrap(self) -> StreamMessage:
        """Inflate and parse the message :attr:`unwrap_pending` announced.

        It touches only this decoder, so it may run in a worker thread while no
        :meth:`feed` runs.

        Raises:
            DecodeError: corrupt compressed data or a malformed inner message.
            RuntimeError: nothing is pending.
        """
        job, self._pending = self._pending, None
        if job is None:
            raise RuntimeError("no compressed message is waiting to be unwrapped")
        self._done = True
        self._buf.clear()
        return job()

    def feed(self, data: bytes) -> StreamMessage | None:
        """Add received bytes; return the message once it is complete, else None.

        Raises:
            DecodeError: the stream is malformed, unauthenticated or too large.
        """
        if self._done:
            return None
        self._buf += data
        if len(self._buf) > self.max_bytes:
            raise StreamTooLargeError(f"stream message exceeds {self.max_bytes} bytes")
        while True:
            step = self._step
            message = step()
            if message is not None:
                self._done = True
                self._buf.clear()
                return message
            if self._step == step:
                return None  # the step waits for more bytes

    def eof(self) -> None:
        """The peer closed the stream.

        Raises:
            TruncatedError: it closed before a whole message arrived.
        """
        if not self._done:
            raise TruncatedError(f"stream closed after {len(self._buf)} bytes, mid-message")

    # --- steps: each returns the message, moves to the next step, or waits --------------

    def _read_label(self) -> None:
        buf = self._buf
        if not self.label_header:
            self._auth_label = self.label
            self._step = self._read_kind
            return
        if not buf:
            return
        if buf[0] == MessageType.HAS_LABEL and len(buf) < 2 + max(buf[1:2] or b"\x01"):
            return
        self.received_label, self._pos = parse_label(buf)
        self._auth_label = check_label(
            self.received_label, self.label, skip_inbound_check=self.skip_inbound_label_check
        )
        self._step = self._read_kind

    def _read_kind(self) -> None:
        if self._pos >= len(self._buf):
            return
        kind = self._kind = self._buf[self._pos]
        if kind == MessageType.ENCRYPT:
            if self.keyring is None:
                raise DecryptError("remote state is encrypted and encryption is not configured")
            self._step = self._read_encrypted
            return
        if self.keyring is not None and self.verify_incoming:
            raise DecryptError("encryption is configured but remote state is not encrypted")
        self._scanner = ValueScanner(self._pos + 1, MAX_STRUCT_ELEMENTS)
        if kind == MessageType.COMPRESS:
            self._step = self._read_compressed
        elif kind == MessageType.PUSH_PULL:
            self._step = self._read_push_pull_header
        elif kind == MessageType.USER:
            self._step = self._read_user_header
        elif kind in _STREAM_STRUCTS:
            self._step = self._read_struct
        else:
            raise DecodeError(f"received invalid stream message type ({kind})")

    def _read_encrypted(self) -> StreamMessage | None:
        buf, pos = self._buf, self._pos
        if len(buf) < pos + 5:
            return None
        self._check_length(int.from_bytes(buf[pos + 1 : pos + 5], "big"), pos + 5)
        try:
            encrypted, _ = Encrypted.parse(buf, pos)
        except TruncatedError:
            return None
        header = bytes(buf[pos : pos + 5])
        assert self.keyring is not None  # checked by _read_kind
        plain = decrypt_payload(self.keyring.keys, encrypted.ciphertext, header + self._auth_label)
        return self._unwrap(plain)

    def _read_compressed(self) -> StreamMessage | None:
        end = self._scanner.end(self._buf)
        if end is None:
            return None
        compressed = Compress.from_struct(self._struct(end, "compress", Compress.GO_FIELDS))
        return self._inflate(compressed)

    def _read_struct(self) -> StreamMessage | None:
        end = self._scanner.end(self._buf)
        if end is None:
            return None
        return _STREAM_STRUCTS[self._kind].decode(bytes(self._buf[self._pos : end]))

    def _read_push_pull_header(self) -> None:
        end = self._scanner.end(self._buf)
        if end is None:
            return
        struct = self._struct(end, "pushPullHeader", PUSH_PULL_HEADER_FIELDS)
        self._header = PushPullHeader.from_struct(struct)
        self._check_length(self._header.user_state_len, end)
        self._pos = end
        self._scanner = ValueScanner(end, MAX_STRUCT_ELEMENTS)
        self._step = self._read_node_states

    def _read_node_states(self) -> None:
        while len(self._nodes) < self._header.nodes:
            end = self._scanner.end(self._buf)
            if end is None:
                return
            struct = self._struct(end, "pushNodeState", PushNodeState.GO_FIELDS)
            self._nodes.append(PushNodeState.from_struct(struct))
            self._scanner = ValueScanner(end, MAX_STRUCT_ELEMENTS)
        self._pos = self._scanner.start
        self._payload_len = self._header.user_state_len
        self._step = self._read_user_state

    def _read_user_state(self) -> StreamMessage | None:
        state = self._take_payload()
        if state is None:
            return None
        return PushPull(join=self._header.join, nodes=tuple(self._nodes), user_state=state)

    def _read_user_header(self) -> None:
        end = self._scanner.end(self._buf)
        if end is None:
            return
        struct = self._struct(end, "userMsgHeader", USER_HEADER_FIELDS)
        self._payload_len = user_msg_len(struct)
        self._check_length(self._payload_len, end)
        self._pos = end
        self._step = self._read_user_payload

    def _read_user_payload(self) -> StreamMessage | None:
        payload = self._take_payload()
        return None if payload is None else UserMsg(payload)

    # --- helpers ------------------------------------------------------------------------

    def _struct(self, end: int, name: str, order: tuple[str, ...]) -> dict[bytes, object]:
        """The struct the scanner found, ending at ``end``."""
        return as_struct(unpack_span(self._buf, self._scanner.start, end), name, order)

    def _take_payload(self) -> bytes | None:
        """The ``_payload_len`` raw bytes at ``_pos``, once they are all here."""
        end = self._pos + self._payload_len
        if len(self._buf) < end:
            return None
        return bytes(self._buf[self._pos : end])

    def _check_length(self, declared: int, start: int) -> None:
        """Refuse a declared length that would take the stream past ``max_bytes``."""
        if start + declared > self.max_bytes:
            raise StreamTooLargeError(
                f"stream declares {declared} bytes; the limit is {self.max_bytes}"
            )

    def _unwrap(self, plain: bytes) -> StreamMessage | None:
        if plain and plain[0] == MessageType.COMPRESS:
            try:
                compressed = Compress.decode(plain)
            except TruncatedError as exc:
                raise DecodeError(f"encrypted compress message is incomplete: {exc}") from exc
            return self._inflate(compressed)
        return _parse_complete_plain(plain)

    def _inflate(self, compressed: Compress) -> StreamMessage | None:
        """Inflate and parse now, or leave it to :meth:`unwrap` if it is big."""
        max_output = self.max_bytes

        def job() -> StreamMessage:
            return _parse_complete_plain(compressed.unwrap(max_output=max_output))

        if 0 <= self.defer_unwrap_over < len(compressed.buf):
            self._pending = job
            self._step = self._wait_for_unwrap
            return None
        return job()

    def _wait_for_unwrap(self) -> None:
        """Nothing more to read: the caller owes an :meth:`unwrap`."""
