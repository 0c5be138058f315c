"""Alertmanager's ``silencepb`` protobuf messages and the ``<storage>/silences`` file.

Wire layout (``silence/silencepb/silence.proto``, gogo-generated marshalers):

* ``Matcher {type = 1 (EQUAL=0, REGEXP=1, NOT_EQUAL=2, NOT_REGEXP=3); name = 2; pattern = 3}``
  — note the enum order differs from :class:`daemon.matcher.MatchType`.
* ``Silence {id = 1; repeated Matcher matchers = 2; starts_at = 3; ends_at = 4;
  updated_at = 5; repeated Comment comments = 7 (legacy); created_by = 8; comment = 9}``,
  ``Comment {author = 1; comment = 2; timestamp = 3}``.
* ``MeshSilence {silence = 1; expires_at = 2}``.
* Times are ``google.protobuf.Timestamp {seconds = 1; nanos = 2}``, gogo ``stdtime`` and
  non-nullable: always written, even when empty. An absent timestamp decodes to Go's
  zero time, a present empty one to the Unix epoch.

The snapshot file and gossip payloads are concatenations of varint-length-delimited
``MeshSilence`` records. Pure, except for the two small file helpers at the end, which
block: call them from a worker thread.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cluster.errors import DecodeError
from cluster.protowire import (
    ProtoWriter,
    encode_varint,
    iter_delimited,
    iter_fields,
    length_delimited,
    write_delimited,
)
from daemon.clock import ZERO_TIME
from daemon.gocompat.pbtimestamp import decode_timestamp, encode_timestamp
from daemon.matcher import Matcher, MatcherError, MatchType
from daemon.silence import model
from daemon.silence.recurring import RECURRENCE_FIELD, decode_spec, encode_spec

_TO_PB = {
    MatchType.EQUAL: 0,
    MatchType.REGEXP: 1,
    MatchType.NOT_EQUAL: 2,
    MatchType.NOT_REGEXP: 3,
}
_FROM_PB = {v: k for k, v in _TO_PB.items()}


# --- encoding ----------------------------------------------------------------------
#
# Written out by hand rather than with ProtoWriter: every silence POST encodes its record
# before the journal write, and ProtoWriter's generic field calls (a tag check, a varint
# and a bytes copy per field, a writer per nested message) cost 22 us a record; this
# costs 10 us. The field keys below are ``(number << 3) | wire type``, one byte each;
# tests/silence/test_codec.py checks the bytes against a ProtoWriter encoding.


def encode_matcher(m: Matcher) -> bytes:
    parts = []
    kind = _TO_PB[m.type]
    if kind:
        parts.append(b"\x08" + encode_varint(kind))
    if m.name:
        parts.append(length_delimited(b"\x12", m.name.encode()))
    if m.value:
        parts.append(length_delimited(b"\x1a", m.value.encode()))
    return b"".join(parts)


def decode_matcher(data: bytes) -> Matcher:
    kind = 0
    name = pattern = ""
    for f in iter_fields(data):
        if f.number == 1:
            kind = f.as_int()
        elif f.number == 2:
            name = f.as_str()
        elif f.number == 3:
            pattern = f.as_str()
    match_type = _FROM_PB.get(kind)
    if match_type is None:
        raise DecodeError(f"silencepb: unknown matcher type {kind}")
    try:
        return Matcher.create(match_type, name, pattern)
    except MatcherError as exc:
        # A pattern Go refuses (a peer's bug, or a hostile packet) makes the whole
        # record unusable: guessing what it should mute would be worse than dropping it.
        raise DecodeError(f"silencepb: invalid matcher: {exc}") from None


def encode_silence(s: model.Silence) -> bytes:
    parts = [length_delimited(b"\x0a", s.id.encode())] if s.id else []
    for m in s.matchers:
        parts.append(length_delimited(b"\x12", encode_matcher(m)))
    # Timestamps are non-nullable (gogo stdtime): always written, even when empty.
    parts.append(length_delimited(b"\x1a", encode_timestamp(s.starts_at)))
    parts.append(length_delimited(b"\x22", encode_timestamp(s.ends_at)))
    parts.append(length_delimited(b"\x2a", encode_timestamp(s.updated_at)))
    if s.created_by:
        parts.append(length_delimited(b"\x42", s.created_by.encode()))
    if s.comment:
        parts.append(length_delimited(b"\x4a", s.comment.encode()))
    if s.recurrence is not None:
        parts.append(
            ProtoWriter().bytes_field(RECURRENCE_FIELD, encode_spec(s.recurrence)).getvalue()
        )
    return b"".join(parts)


def _decode_comment(data: bytes) -> tuple[str, str]:
    author = comment = ""
    for f in iter_fields(data):
        if f.number == 1:
            author = f.as_str()
        elif f.number == 2:
            comment = f.as_str()
    return author, comment


def decode_silence(data: bytes) -> model.Silence:
    """A ``Silence``; a legacy ``comments`` list becomes comment/createdBy (first entry)."""
    sid = created_by = comment = ""
    matchers: list[Matcher] = []
    starts_at = ends_at = updated_at = ZERO_TIME
    legacy: list[tuple[str, str]] = []
    recurrence = None
    for f in iter_fields(data):
        n = f.number
        if n == 1:
            sid = f.as_str()
        elif n == 2:
            matchers.append(decode_matcher(f.as_bytes()))
        elif n == 3:
            starts_at = decode_timestamp(f.as_bytes())
        elif n == 4:
            ends_at = decode_timestamp(f.as_bytes())
        elif n == 5:
            updated_at = decode_timestamp(f.as_bytes())
        elif n == 7:
            legacy.append(_decode_comment(f.as_bytes()))
        elif n == 8:
            created_by = f.as_str()
        elif n == 9:
            comment = f.as_str()
        elif n == RECURRENCE_FIELD:
            recurrence = decode_spec(f.as_bytes())
    if legacy:
        created_by, comment = legacy[0]
    return model.Silence(
        id=sid,
        matchers=tuple(matchers),
        starts_at=starts_at,
        ends_at=ends_at,
        updated_at=updated_at,
        created_by=created_by,
        comment=comment,
        recurrence=recurrence,
    )


def encode_mesh_silence(s: model.Silence, expires_at: int) -> bytes:
    """One ``MeshSilence`` message (not length-prefixed)."""
    return length_delimited(b"\x0a", encode_silence(s)) + length_delimited(
        b"\x12", encode_timestamp(expires_at)
    )


def decode_mesh_silence(data: bytes) -> tuple[model.Silence, int]:
    """``(silence, expires_at)``; DecodeError if the silence is missing, as upstream."""
    silence: model.Silence | None = None
    expires_at = ZERO_TIME
    for f in iter_fields(data):
        if f.number == 1:
            silence = decode_silence(f.as_bytes())
        elif f.number == 2:
            expires_at = decode_timestamp(f.as_bytes())
    if silence is None:
        raise DecodeError("silencepb: invalid state: MeshSilence without a silence")
    return silence, expires_at


def encode_delimited(s: model.Silence, expires_at: int) -> bytes:
    """One length-delimited ``MeshSilence`` (a gossip broadcast)."""
    return write_delimited(encode_mesh_silence(s, expires_at))


def encode_state(records: Iterable[tuple[model.Silence, int]]) -> bytes:
    """Concatenated delimited records: the snapshot file and the push/pull state."""
    return b"".join(encode_delimited(s, exp) for s, exp in records)


def decode_records(data: bytes) -> tuple[list[tuple[model.Silence, int]], list[str]]:
    """A peer's records, skipping those that do not decode; ``(records, why each was
    skipped)``. A later duplicate ID wins.

    One bad record (a matcher Go refuses, a malformed timestamp) must not cost the
    others in the same message, nor raise out of the cluster node.

    Error handling: :class:`~cluster.errors.DecodeError` when the framing itself is
    broken (the record boundaries are unknown, so nothing is used).
    """
    by_id: dict[str, tuple[model.Silence, int]] = {}
    skipped: list[str] = []
    for record in list(iter_delimited(data)):
        try:
            silence, expires_at = decode_mesh_silence(record)
        except (ValueError, OverflowError) as exc:  # DecodeError and UnicodeError are ValueErrors
            skipped.append(str(exc))
            continue
        by_id[silence.id] = (silence, expires_at)
    return list(by_id.values()), skipped


def decode_state(data: bytes) -> list[tuple[model.Silence, int]]:
    """All records of a snapshot or gossip payload; a later duplicate ID wins."""
    by_id: dict[str, tuple[model.Silence, int]] = {}
    for record in iter_delimited(data):
        silence, expires_at = decode_mesh_silence(record)
        by_id[silence.id] = (silence, expires_at)
    return list(by_id.values())


# --- files (blocking) ---------------------------------------------------------------


def read_snapshot_file(path: str | os.PathLike[str]) -> bytes | None:
    """The snapshot's bytes, or None if there is no file yet."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def write_snapshot_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to ``<path>.<random hex>``, fsync, rename over ``path`` (upstream's scheme)."""
    target = Path(path)
    tmp = target.with_name(f"{target.name}.{secrets.token_hex(8)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
