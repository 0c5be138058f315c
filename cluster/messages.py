"""memberlist's wire messages as values, encoded exactly as a Go peer expects.

Every message starts with one type byte (:class:`MessageType`). Most are followed by one
go-msgpack struct (see :mod:`cluster.gomsgpack` for the dialect); the others are:

* ``user`` (8): on UDP the raw payload follows the type byte; on a TCP stream a
  ``{UserMsgLen}`` struct comes first, then exactly that many raw bytes;
* ``pushPull`` (6, TCP only): a ``{Join, Nodes, UserStateLen}`` header, ``Nodes`` node
  state structs, then exactly ``UserStateLen`` raw bytes of delegate state;
* ``compound`` (7): ``N:uint8``, N big-endian ``uint16`` lengths, then the N messages;
* ``hasCrc`` (12): a big-endian CRC-32/IEEE of the rest of the packet, then the packet;
* ``encrypt`` (10, TCP only): a big-endian ``uint32`` length, then that many bytes of
  ciphertext (see :mod:`cluster.security`).

Field conventions: names are ``str`` (Go ``string``), addresses and other ``[]byte``
fields are ``bytes`` (a raw 4- or 16-byte IP for addresses), Go unsigned fields are
non-negative ``int`` checked against their width on encode and decode. A nil and an
empty ``[]byte`` both decode to ``b""``, as Go's ``bytes.Equal`` treats them alike.

``encode()`` returns the complete message including its type byte, and
``decode(data)`` takes the same; bytes after a msgpack struct are ignored as Go ignores
them. Decoding raises only :class:`~cluster.errors.DecodeError` (its subclass
:class:`~cluster.errors.TruncatedError` when the input is merely incomplete).
"""

from __future__ import annotations

import zlib
from enum import IntEnum
from typing import ClassVar, Self

import attrs

from cluster import lzw
from cluster.errors import DecodeError, TruncatedError
from cluster.gomsgpack import (
    FieldValue,
    as_struct,
    get_bool,
    get_bytes,
    get_int,
    get_str,
    get_uint,
    pack_struct,
    unpack_value,
)


class MessageType(IntEnum):
    """The first byte of every memberlist message."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    #: memberlist >= 0.3 only; never send it to Alertmanager 0.25 peers.
    HAS_LABEL = 244


class NodeState(IntEnum):
    """``pushNodeState.State`` values. Decoding keeps unknown values as plain ints."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


#: Alertmanager 0.25's ``Vsn``: protocol min 1, max 5, current 2; delegate 0, 0, 0.
ALERTMANAGER_VSN = bytes((1, 5, 2, 0, 0, 0))
#: memberlist's ``MetaMaxSize``.
META_MAX_SIZE = 512
#: The only compression algorithm memberlist knows (``lzwAlgo``).
LZW_ALGO = 0


def _require_uint(name: str, value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name}={value} does not fit uint{bits}")
    return value


def _require_int64(name: str, value: int) -> int:
    if not -(1 << 63) <= value < 1 << 63:
        raise ValueError(f"{name}={value} does not fit int64")
    return value


def _expect_type(data: bytes, expected: MessageType) -> None:
    if not data:
        raise TruncatedError("missing message type byte")
    if data[0] != expected:
        raise DecodeError(f"expected message type {expected.name}, got {data[0]}")


def body_struct(
    data: bytes | bytearray | memoryview, pos: int, name: str, order: tuple[str, ...]
) -> tuple[dict[bytes, object], int]:
    """The go-msgpack struct at ``pos`` as a key map, and the offset after it.

    Raises:
        TruncatedError: the value is incomplete.
        DecodeError: it is malformed or not a struct.
    """
    value, end = unpack_value(data, pos)
    return as_struct(value, name, order), end


class _StructMessage:
    """Shared encode/decode for messages that are a type byte plus one msgpack struct."""

    TYPE: ClassVar[MessageType]
    #: Go struct field order (used only when a peer sends the struct as an array).
    GO_FIELDS: ClassVar[tuple[str, ...]]

    def fields(self) -> dict[str, FieldValue]:
        raise NotImplementedError

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> Self:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The complete message: type byte then the go-msgpack struct."""
        return bytes((self.TYPE,)) + pack_struct(self.fields())

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse a complete message including its type byte."""
        _expect_type(data, cls.TYPE)
        struct, _ = body_struct(data, 1, cls.__name__, cls.GO_FIELDS)
        return cls.from_struct(struct)


def _put_source(out: dict[str, FieldValue], addr: bytes, port: int, node: str) -> None:
    """A probe's optional reply address (memberlist's omitempty ``Source*`` fields):
    each absent when empty."""
    if addr:
        out["SourceAddr"] = addr
    if port:
        out["SourcePort"] = _require_uint("source_port", port, 16)
    if node:
        out["SourceNode"] = node


def _get_source(struct: dict[bytes, object]) -> tuple[bytes, int, str]:
    """``(source_addr, source_port, source_node)`` of a probe, empty where absent."""
    return (
        get_bytes(struct, "SourceAddr"),
        get_uint(struct, "SourcePort", 16),
        get_str(struct, "SourceNode"),
    )


@attrs.frozen
class Ping(_StructMessage):
    """A direct probe. ``node`` is the target's name; the target ignores a ping for another."""

    TYPE = MessageType.PING
    GO_FIELDS = ("SeqNo", "Node", "SourceAddr", "SourcePort", "SourceNode")

    seq_no: int
    node: str
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""

    def fields(self) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {
            "SeqNo": _require_uint("seq_no", self.seq_no, 32),
            "Node": self.node,
        }
        _put_source(out, self.source_addr, self.source_port, self.source_node)
        return out

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> Ping:
        return cls(get_uint(struct, "SeqNo", 32), get_str(struct, "Node"), *_get_source(struct))


@attrs.frozen
class IndirectPing(_StructMessage):
    """A request to probe ``target:port`` (named ``node``) on the requester's behalf."""

    TYPE = MessageType.INDIRECT_PING
    GO_FIELDS = (
        "SeqNo",
        "Target",
        "Port",
        "Node",
        "Nack",
        "SourceAddr",
        "SourcePort",
        "SourceNode",
    )

    seq_no: int
    target: bytes
    port: int
    node: str
    nack: bool = False
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""

    def fields(self) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {
            "SeqNo": _require_uint("seq_no", self.seq_no, 32),
            "Target": self.target,
            "Port": _require_uint("port", self.port, 16),
            "Node": self.node,
            "Nack": self.nack,
        }
        _put_source(out, self.source_addr, self.source_port, self.source_node)
        return out

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> IndirectPing:
        return cls(
            get_uint(struct, "SeqNo", 32),
            get_bytes(struct, "Target"),
            get_uint(struct, "Port", 16),
            get_str(struct, "Node"),
            get_bool(struct, "Nack"),
            *_get_source(struct),
        )


@attrs.frozen
class Ack(_StructMessage):
    """The answer to a ping (``ackResp``); Alertmanager's payload is empty."""

    TYPE = MessageType.ACK
    GO_FIELDS = ("SeqNo", "Payload")

    seq_no: int
    payload: bytes = b""

    def fields(self) -> dict[str, FieldValue]:
        return {"SeqNo": _require_uint("seq_no", self.seq_no, 32), "Payload": self.payload}

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> Ack:
        return cls(seq_no=get_uint(struct, "SeqNo", 32), payload=get_bytes(struct, "Payload"))


@attrs.frozen
class Nack(_StructMessage):
    """A relay's report that the target of an indirect ping did not answer (``nackResp``)."""

    TYPE = MessageType.NACK
    GO_FIELDS = ("SeqNo",)

    seq_no: int

    def fields(self) -> dict[str, FieldValue]:
        return {"SeqNo": _require_uint("seq_no", self.seq_no, 32)}

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> Nack:
        return cls(seq_no=get_uint(struct, "SeqNo", 32))


@attrs.frozen
class ErrResp(_StructMessage):
    """A stream responder's report that it could not read the request (``errResp``)."""

    TYPE = MessageType.ERR
    GO_FIELDS = ("Error",)

    error: str

    def fields(self) -> dict[str, FieldValue]:
        return {"Error": self.error}

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> ErrResp:
        return cls(error=get_str(struct, "Error"))


@attrs.frozen
class _Verdict(_StructMessage):
    """Suspect and dead share Go's field set: ``from_node`` says ``node`` at ``incarnation``."""

    GO_FIELDS = ("Incarnation", "Node", "From")

    incarnation: int
    node: str
    from_node: str

    def fields(self) -> dict[str, FieldValue]:
        return {
            "Incarnation": _require_uint("incarnation", self.incarnation, 32),
            "Node": self.node,
            "From": self.from_node,
        }

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> Self:
        return cls(
            incarnation=get_uint(struct, "Incarnation", 32),
            node=get_str(struct, "Node"),
            from_node=get_str(struct, "From"),
        )


@attrs.frozen
class Suspect(_Verdict):
    """``from_node`` suspects ``node`` at ``incarnation`` has failed."""

    TYPE = MessageType.SUSPECT


@attrs.frozen
class Dead(_Verdict):
    """``from_node`` declares ``node`` dead; ``from_node == node`` is a graceful leave."""

    TYPE = MessageType.DEAD

    @property
    def is_leave(self) -> bool:
        """True when the node announced its own departure (receivers record Left)."""
        return self.node == self.from_node


@attrs.frozen
class Alive(_StructMessage):
    """``node`` is alive at ``addr:port`` with ``incarnation``; ``vsn`` must be 6 bytes."""

    TYPE = MessageType.ALIVE
    GO_FIELDS = ("Incarnation", "Node", "Addr", "Port", "Meta", "Vsn")

    incarnation: int
    node: str
    addr: bytes
    port: int
    meta: bytes = b""
    vsn: bytes = ALERTMANAGER_VSN

    def fields(self) -> dict[str, FieldValue]:
        return {
            "Incarnation": _require_uint("incarnation", self.incarnation, 32),
            "Node": self.node,
            "Addr": self.addr,
            "Port": _require_uint("port", self.port, 16),
            "Meta": self.meta,
            "Vsn": self.vsn,
        }

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> Alive:
        return cls(
            incarnation=get_uint(struct, "Incarnation", 32),
            node=get_str(struct, "Node"),
            addr=get_bytes(struct, "Addr"),
            port=get_uint(struct, "Port", 16),
            meta=get_bytes(struct, "Meta"),
            vsn=get_bytes(struct, "Vsn"),
        )


@attrs.frozen
class PushNodeState:
    """One entry of a push/pull's node table (``pushNodeState``).

    ``state`` is a :class:`NodeState` value; an unknown value from a peer is kept as is.
    """

    GO_FIELDS: ClassVar[tuple[str, ...]] = (
        "Name",
        "Addr",
        "Port",
        "Meta",
        "Incarnation",
        "State",
        "Vsn",
    )

    name: str
    addr: bytes
    port: int
    incarnation: int
    state: int = NodeState.ALIVE
    meta: bytes = b""
    vsn: bytes = ALERTMANAGER_VSN

    def encode(self) -> bytes:
        """The go-msgpack struct (no type byte: node states only appear inside a push/pull)."""
        return pack_struct(
            {
                "Name": self.name,
                "Addr": self.addr,
                "Port": _require_uint("port", self.port, 16),
                "Meta": self.meta,
                "Incarnation": _require_uint("incarnation", self.incarnation, 32),
                "State": _require_int64("state", int(self.state)),
                "Vsn": self.vsn,
            }
        )

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> PushNodeState:
        """Build from a decoded struct map."""
        state = get_int(struct, "State")
        return cls(
            name=get_str(struct, "Name"),
            addr=get_bytes(struct, "Addr"),
            port=get_uint(struct, "Port", 16),
            incarnation=get_uint(struct, "Incarnation", 32),
            state=NodeState(state) if state in NodeState._value2member_map_ else state,
            meta=get_bytes(struct, "Meta"),
            vsn=get_bytes(struct, "Vsn"),
        )


PUSH_PULL_HEADER_FIELDS = ("Nodes", "UserStateLen", "Join")
USER_HEADER_FIELDS = ("UserMsgLen",)


#: The most node states a push/pull may declare. memberlist 0.5 sets no bound (it
#: allocates the declared count; later versions refuse over 2**20). Real clusters have a
#: handful of members, and refusing a wild header at once beats reading what follows.
MAX_PUSH_PULL_NODES = 10_000


def _nonnegative_len(struct: dict[bytes, object], field: str) -> int:
    value = get_int(struct, field)
    if value < 0:
        raise DecodeError(f"field {field}: negative length {value}")
    return value


@attrs.frozen
class PushPullHeader:
    """``pushPullHeader{Join, Nodes, UserStateLen}``: what follows it on the stream."""

    join: bool
    nodes: int
    user_state_len: int

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> PushPullHeader:
        """Validate a decoded header.

        Raises:
            DecodeError: a negative length, or more than MAX_PUSH_PULL_NODES nodes.
        """
        count = _nonnegative_len(struct, "Nodes")
        if count > MAX_PUSH_PULL_NODES:
            raise DecodeError(f"push/pull of {count} nodes; the limit is {MAX_PUSH_PULL_NODES}")
        return cls(
            join=get_bool(struct, "Join"),
            nodes=count,
            user_state_len=_nonnegative_len(struct, "UserStateLen"),
        )


def user_msg_len(struct: dict[bytes, object]) -> int:
    """``userMsgHeader.UserMsgLen``: how many payload bytes follow a TCP user header.

    Raises:
        DecodeError: a negative length.
    """
    return _nonnegative_len(struct, "UserMsgLen")


@attrs.frozen
class PushPull:
    """A full state exchange over TCP: the sender's node table plus its delegate state.

    ``join`` is true for a join and false for periodic anti-entropy.
    """

    TYPE: ClassVar[MessageType] = MessageType.PUSH_PULL

    join: bool
    nodes: tuple[PushNodeState, ...] = ()
    user_state: bytes = b""

    def encode(self) -> bytes:
        """Type byte, header, each node state, then the raw user state."""
        header = pack_struct(
            {"Nodes": len(self.nodes), "UserStateLen": len(self.user_state), "Join": self.join}
        )
        parts = [bytes((self.TYPE,)), header]
        parts.extend(node.encode() for node in self.nodes)
        parts.append(self.user_state)
        return b"".join(parts)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[PushPull, int]:
        """Parse a push/pull starting at ``pos`` (its type byte); return it and its end.

        Raises:
            TruncatedError: more bytes are needed.
            DecodeError: the message is malformed.
        """
        if pos >= len(data):
            raise TruncatedError("missing message type byte")
        if data[pos] != cls.TYPE:
            raise DecodeError(f"expected message type PUSH_PULL, got {data[pos]}")
        header_struct, pos = body_struct(data, pos + 1, "pushPullHeader", PUSH_PULL_HEADER_FIELDS)
        header = PushPullHeader.from_struct(header_struct)
        nodes = []
        for _ in range(header.nodes):
            struct, pos = body_struct(data, pos, "pushNodeState", PushNodeState.GO_FIELDS)
            nodes.append(PushNodeState.from_struct(struct))
        end = pos + header.user_state_len
        if end > len(data):
            raise TruncatedError(f"push/pull user state: need {header.user_state_len} bytes")
        return cls(join=header.join, nodes=tuple(nodes), user_state=bytes(data[pos:end])), end

    @classmethod
    def decode(cls, data: bytes) -> PushPull:
        """Parse a complete push/pull message; trailing bytes are ignored."""
        return cls.parse(data)[0]


@attrs.frozen
class UserMsg:
    """An opaque delegate message (Alertmanager: one serialized ``clusterpb.Part``)."""

    TYPE: ClassVar[MessageType] = MessageType.USER

    payload: bytes

    def encode(self) -> bytes:
        """The UDP form: type byte then the raw payload."""
        return bytes((self.TYPE,)) + self.payload

    @classmethod
    def decode(cls, data: bytes) -> UserMsg:
        """Parse the UDP form."""
        _expect_type(data, cls.TYPE)
        return cls(payload=bytes(data[1:]))

    def encode_stream(self) -> bytes:
        """The TCP form: type byte, ``{UserMsgLen}`` header, then the raw payload."""
        header = pack_struct({"UserMsgLen": len(self.payload)})
        return bytes((self.TYPE,)) + header + self.payload

    @classmethod
    def parse_stream(
        cls, data: bytes | bytearray | memoryview, pos: int = 0
    ) -> tuple[UserMsg, int]:
        """Parse the TCP form starting at ``pos``; return it and its end.

        Raises:
            TruncatedError: more bytes are needed.
            DecodeError: the message is malformed.
        """
        if pos >= len(data):
            raise TruncatedError("missing message type byte")
        if data[pos] != cls.TYPE:
            raise DecodeError(f"expected message type USER, got {data[pos]}")
        header, pos = body_struct(data, pos + 1, "userMsgHeader", USER_HEADER_FIELDS)
        end = pos + user_msg_len(header)
        if end > len(data):
            raise TruncatedError("user message payload is truncated")
        return cls(payload=bytes(data[pos:end])), end

    @classmethod
    def decode_stream(cls, data: bytes) -> UserMsg:
        """Parse a complete TCP-form user message."""
        return cls.parse_stream(data)[0]


@attrs.frozen
class Compress(_StructMessage):
    """Another complete message, LZW-compressed (``compress{Algo, Buf}``)."""

    TYPE = MessageType.COMPRESS
    GO_FIELDS = ("Algo", "Buf")

    buf: bytes
    algo: int = LZW_ALGO

    @classmethod
    def wrap(cls, message: bytes) -> Compress:
        """Compress a complete message (type byte included) with Go's LZW."""
        return cls(buf=lzw.compress(message))

    def unwrap(self, *, max_output: int = lzw.DEFAULT_MAX_OUTPUT) -> bytes:
        """The inner message.

        Raises:
            DecodeError: an unknown algorithm or corrupt LZW data.
        """
        if self.algo != LZW_ALGO:
            raise DecodeError(f"cannot decompress unknown algorithm {self.algo}")
        return lzw.decompress(self.buf, max_output=max_output)

    def fields(self) -> dict[str, FieldValue]:
        return {"Algo": _require_uint("algo", self.algo, 8), "Buf": self.buf}

    @classmethod
    def from_struct(cls, struct: dict[bytes, object]) -> Compress:
        return cls(buf=get_bytes(struct, "Buf"), algo=get_uint(struct, "Algo", 8))

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[Compress, int]:
        """Parse a compress message starting at ``pos``; return it and its end.

        Raises:
            TruncatedError: more bytes are needed.
            DecodeError: the message is malformed.
        """
        if pos >= len(data):
            raise TruncatedError("missing message type byte")
        if data[pos] != cls.TYPE:
            raise DecodeError(f"expected message type COMPRESS, got {data[pos]}")
        struct, end = body_struct(data, pos + 1, "compress", cls.GO_FIELDS)
        return cls.from_struct(struct), end


#: The most parts one compound message can hold (its count is one byte).
MAX_COMPOUND_PARTS = 255


@attrs.frozen
class Compound:
    """Several complete messages in one packet.

    ``truncated`` counts trailing parts whose declared length ran past the packet end;
    memberlist reports them and still processes the complete ones.
    """

    TYPE: ClassVar[MessageType] = MessageType.COMPOUND

    parts: tuple[bytes, ...]
    truncated: int = 0

    def encode(self) -> bytes:
        """``07 | N | N big-endian uint16 lengths | parts``.

        Raises:
            ValueError: more than 255 parts or a part over 65535 bytes (split first; see
                :func:`cluster.framing.make_compounds`).
        """
        if len(self.parts) > MAX_COMPOUND_PARTS:
            raise ValueError(f"compound of {len(self.parts)} parts; the limit is 255")
        head = bytearray((self.TYPE, len(self.parts)))
        for part in self.parts:
            if len(part) > 0xFFFF:
                raise ValueError(f"compound part of {len(part)} bytes; the limit is 65535")
            head += len(part).to_bytes(2, "big")
        return bytes(head) + b"".join(self.parts)

    @classmethod
    def decode(cls, data: bytes) -> Compound:
        """Split a compound; bytes after the last declared part are ignored.

        Raises:
            DecodeError: the count byte or the length table is missing or truncated.
        """
        _expect_type(data, cls.TYPE)
        if len(data) < 2:
            raise TruncatedError("compound: missing length byte")
        count = data[1]
        pos = 2 + 2 * count
        if len(data) < pos:
            raise TruncatedError("compound: truncated length table")
        parts: list[bytes] = []
        for index in range(count):
            length = int.from_bytes(data[2 + 2 * index : 4 + 2 * index], "big")
            if pos + length > len(data):
                return cls(parts=tuple(parts), truncated=count - index)
            parts.append(bytes(data[pos : pos + length]))
            pos += length
        return cls(parts=tuple(parts))


@attrs.frozen
class HasCrc:
    """A packet prefixed with its CRC-32/IEEE, big-endian (memberlist protocol >= 5)."""

    TYPE: ClassVar[MessageType] = MessageType.HAS_CRC

    payload: bytes

    def encode(self) -> bytes:
        """``0c | crc32(payload) | payload``."""
        return bytes((self.TYPE,)) + zlib.crc32(self.payload).to_bytes(4, "big") + self.payload

    @classmethod
    def decode(cls, data: bytes) -> HasCrc:
        """Check the CRC and return the payload.

        Raises:
            DecodeError: shorter than the 5-byte header, or the checksum does not match.
        """
        _expect_type(data, cls.TYPE)
        if len(data) < 5:
            raise TruncatedError("hasCrc: truncated checksum")
        payload = bytes(data[5:])
        expected = int.from_bytes(data[1:5], "big")
        actual = zlib.crc32(payload)
        if actual != expected:
            raise DecodeError(f"invalid checksum: got {actual:08x}, header says {expected:08x}")
        return cls(payload=payload)


#: The most ciphertext an encrypted stream may declare (memberlist's maxPushStateBytes).
MAX_ENCRYPTED_STREAM_BYTES = 20 * 1024 * 1024


@attrs.frozen
class Encrypted:
    """An encrypted stream message: ``0a | uint32 BE length | ciphertext``.

    The ciphertext (see :mod:`cluster.security`) is authenticated together with the 5
    header bytes and the stream label, so :meth:`header` is part of the associated data.
    """

    TYPE: ClassVar[MessageType] = MessageType.ENCRYPT

    ciphertext: bytes

    @staticmethod
    def header(length: int) -> bytes:
        """The 5 header bytes for a ciphertext of ``length`` bytes."""
        return bytes((MessageType.ENCRYPT,)) + _require_uint("length", length, 32).to_bytes(
            4, "big"
        )

    def encode(self) -> bytes:
        """Header then ciphertext."""
        return self.header(len(self.ciphertext)) + self.ciphertext

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[Encrypted, int]:
        """Parse an encrypted stream message at ``pos``; return it and its end.

        Raises:
            TruncatedError: more bytes are needed.
            DecodeError: wrong type byte or a length above 20 MiB.
        """
        if pos >= len(data):
            raise TruncatedError("missing message type byte")
        if data[pos] != cls.TYPE:
            raise DecodeError(f"expected message type ENCRYPT, got {data[pos]}")
        if pos + 5 > len(data):
            raise TruncatedError("encrypted stream: truncated length")
        length = int.from_bytes(data[pos + 1 : pos + 5], "big")
        if length > MAX_ENCRYPTED_STREAM_BYTES:
            raise DecodeError(
                f"encrypted stream of {length} bytes exceeds {MAX_ENCRYPTED_STREAM_BYTES}"
            )
        end = pos + 5 + length
        if end > len(data):
            raise TruncatedError("encrypted stream: truncated ciphertext")
        return cls(ciphertext=bytes(data[pos + 5 : end])), end

    @classmethod
    def decode(cls, data: bytes) -> Encrypted:
        """Parse a complete encrypted stream message."""
        return cls.parse(data)[0]


#: Any message :func:`decode_message` can return.
Message = (
    Ping
    | IndirectPing
    | Ack
    | Nack
    | ErrResp
    | Suspect
    | Alive
    | Dead
    | PushPull
    | Compound
    | UserMsg
    | Compress
    | HasCrc
    | Encrypted
)

_DECODERS: dict[int, type[Message]] = {
    MessageType.PING: Ping,
    MessageType.INDIRECT_PING: IndirectPing,
    MessageType.ACK: Ack,
    MessageType.SUSPECT: Suspect,
    MessageType.ALIVE: Alive,
    MessageType.DEAD: Dead,
    MessageType.PUSH_PULL: PushPull,
    MessageType.COMPOUND: Compound,
    MessageType.USER: UserMsg,
    MessageType.COMPRESS: Compress,
    MessageType.ENCRYPT: Encrypted,
    MessageType.NACK: Nack,
    MessageType.HAS_CRC: HasCrc,
    MessageType.ERR: ErrResp,
}


def decode_message(data: bytes) -> Message:
    """Decode one complete message by its type byte, without unwrapping containers.

    ``user`` is decoded in its UDP form; use :meth:`UserMsg.decode_stream` for TCP.

    Raises:
        DecodeError: empty input, an unknown type byte, or a malformed body.
    """
    if not data:
        raise TruncatedError("missing message type byte")
    decoder = _DECODERS.get(data[0])
    if decoder is None:
        raise DecodeError(f"message type ({data[0]}) not supported")
    return decoder.decode(data)
