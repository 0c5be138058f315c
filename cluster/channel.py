"""Alertmanager's cluster payloads: ``clusterpb`` messages and how channels use them.

Alertmanager multiplexes its replicated states over memberlist's single user channel:

* a **broadcast** of a local change is a ``Part{key, data}``; it rides as a UDP user
  message (type byte 8 followed by the Part bytes) when the Part is at most
  :data:`MAX_GOSSIP_PART_BYTES`, and otherwise goes to every other member as a
  reliable TCP user stream;
* a **push/pull** carries the whole local state as ``FullState{parts}``, one Part per
  registered key, in no particular order (Go map iteration);
* on receipt, a Part whose key is not registered is ignored, and a merge error while
  applying a FullState aborts the remaining parts.

Wire shapes (proto3, gogo non-nullable): ``Part {string key = 1; bytes data = 2;}``,
and ``FullState {repeated Part parts = 1;}``. Defaults are omitted, so an empty state's
Part is just its key. (The TLS transport's ``MemberlistMessage`` frame lives in
:mod:`cluster.tls_transport`.)
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from cluster.errors import DecodeError
from cluster.protowire import Field, ProtoWriter, WireType, iter_fields
from cluster.state import State

#: Channel key of the notification log.
NFLOG_KEY = "nfl"
#: Channel key of the silences.
SILENCES_KEY = "sil"
#: Alertmanager's memberlist ``UDPBufferSize``: the largest gossip packet it builds.
MAX_GOSSIP_PACKET_SIZE = 1400
#: A serialized Part larger than this is "oversized" and sent over TCP to every member.
MAX_GOSSIP_PART_BYTES = MAX_GOSSIP_PACKET_SIZE // 2


@attrs.frozen
class Part:
    """One state's data under its channel key (``clusterpb.Part``)."""

    key: str
    data: bytes = b""

    def encode(self) -> bytes:
        """Serialize as proto3, omitting empty fields as gogo does."""
        writer = ProtoWriter()
        if self.key:
            writer.string(1, self.key)
        if self.data:
            writer.bytes_field(2, self.data)
        return writer.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> Part:
        """Parse a serialized Part; unknown fields are skipped, the last duplicate wins."""
        key = ""
        data = b""
        for field in iter_fields(buf):
            if field.number == 1:
                key = _len_field(field, "Part.key").as_str()
            elif field.number == 2:
                data = _len_field(field, "Part.data").as_bytes()
        return cls(key=key, data=data)


@attrs.frozen
class FullState:
    """Every registered state's Part (``clusterpb.FullState``), as sent in a push/pull."""

    parts: tuple[Part, ...] = ()

    def encode(self) -> bytes:
        """Serialize; every Part is written, even an empty one (non-nullable repeated)."""
        writer = ProtoWriter()
        for part in self.parts:
            writer.bytes_field(1, part.encode())
        return writer.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> FullState:
        """Parse a serialized FullState."""
        parts = [
            Part.decode(_len_field(field, "FullState.parts").as_bytes())
            for field in iter_fields(buf)
            if field.number == 1
        ]
        return cls(parts=tuple(parts))


def _len_field(field: Field, what: str) -> Field:
    if field.wire_type != WireType.LEN:
        raise DecodeError(f"{what}: want a length-delimited field")
    return field


@attrs.frozen
class Broadcast:
    """How to send one local change: the serialized Part and whether it is oversized.

    A gossip broadcast (``reliable`` false) goes into the user broadcast queue and rides
    UDP as a user message; a reliable one goes over TCP to every other member.
    """

    part: bytes
    reliable: bool


def plan_broadcast(key: str, data: bytes) -> Broadcast:
    """Wrap one state change for sending, as ``Channel.Broadcast`` does."""
    part = Part(key=key, data=data).encode()
    return Broadcast(part=part, reliable=len(part) > MAX_GOSSIP_PART_BYTES)


def local_state(states: Mapping[str, State]) -> bytes:
    """The user state of a push/pull: every registered state's full serialization."""
    return FullState(tuple(Part(key, state.marshal()) for key, state in states.items())).encode()


def merge_remote_state(states: Mapping[str, State], buf: bytes) -> tuple[str, ...]:
    """Apply a peer's push/pull user state; return the keys nobody registered.

    A part with an unknown key is skipped (Alertmanager logs a warning). An exception
    from a state's ``merge`` propagates and the remaining parts are not applied, as in
    Alertmanager.

    Raises:
        DecodeError: ``buf`` is not a FullState (a state's merge may raise it too).
    """
    unknown: list[str] = []
    for part in FullState.decode(buf).parts:
        state = states.get(part.key)
        if state is None:
            unknown.append(part.key)
            continue
        state.merge(part.data)
    return tuple(unknown)


def deliver_user_message(states: Mapping[str, State], payload: bytes) -> str | None:
    """Apply one user message (a Part); return its key, or None if the key is unknown.

    Raises:
        DecodeError: ``payload`` is not a Part (a state's merge may raise it too).
    """
    part = Part.decode(payload)
    state = states.get(part.key)
    if state is None:
        return None
    state.merge(part.data)
    return part.key
