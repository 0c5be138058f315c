"""The silencepb codec and the snapshot file format."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.errors import DecodeError
from cluster.protowire import ProtoWriter, write_delimited
from daemon.clock import NS_PER_SECOND
from daemon.gocompat.pbtimestamp import encode_timestamp
from daemon.matcher import Matcher, MatchType
from daemon.silence.codec import (
    decode_mesh_silence,
    decode_records,
    decode_state,
    encode_delimited,
    encode_matcher,
    encode_mesh_silence,
    read_snapshot_file,
    write_snapshot_file,
)
from daemon.silence.model import Silence
from daemon.silence.recurring import RECURRENCE_FIELD, RecurrenceSpec, encode_spec
from daemon.silence.state import Silences

S = NS_PER_SECOND
T0 = 1_767_225_600 * S + 123_456_789


def silence(sid: str = "abc") -> Silence:
    return Silence(
        sid,
        (
            Matcher.create(MatchType.EQUAL, "a", "b"),
            Matcher.create(MatchType.REGEXP, "c", "d|e"),
            Matcher.create(MatchType.NOT_EQUAL, "f", ""),
            Matcher.create(MatchType.NOT_REGEXP, "g", "h.*"),
        ),
        T0,
        T0 + 3600 * S,
        updated_at=T0 - 5,
        created_by="me",
        comment="ünïcode",
    )


def test_mesh_silence_round_trip() -> None:
    """Encoding then decoding a MeshSilence gives back the silence and its expiry."""
    s = silence()
    assert decode_mesh_silence(encode_mesh_silence(s, T0 + 7 * S)) == (s, T0 + 7 * S)


def test_matcher_enum_uses_protobuf_numbers() -> None:
    """REGEXP is 1 and NOT_EQUAL 2 on the wire, unlike MatchType's order; EQUAL is omitted."""
    assert (
        encode_matcher(Matcher.create(MatchType.REGEXP, "n", "v")) == b"\x08\x01\x12\x01n\x1a\x01v"
    )
    assert encode_matcher(Matcher.create(MatchType.NOT_EQUAL, "n", "v"))[:2] == b"\x08\x02"
    assert encode_matcher(Matcher.create(MatchType.EQUAL, "n", "v")) == b"\x12\x01n\x1a\x01v"


def test_legacy_comments_are_upgraded() -> None:
    """A snapshot record with only the old comments list gets comment and createdBy from it."""
    comment = ProtoWriter().string(1, "alice").string(2, "legacy").getvalue()
    body = (
        ProtoWriter()
        .string(1, "old")
        .bytes_field(2, encode_matcher(Matcher.create(MatchType.EQUAL, "a", "b")))
        .bytes_field(3, encode_timestamp(T0))
        .bytes_field(4, encode_timestamp(T0 + S))
        .bytes_field(5, encode_timestamp(T0))
        .bytes_field(7, comment)
        .getvalue()
    )
    mesh = (
        ProtoWriter().bytes_field(1, body).bytes_field(2, encode_timestamp(T0 + 9 * S)).getvalue()
    )
    [(got, expires_at)] = decode_state(write_delimited(mesh))
    assert (got.created_by, got.comment, expires_at) == ("alice", "legacy", T0 + 9 * S)


def test_missing_silence_is_invalid_state() -> None:
    """A MeshSilence without its silence is rejected, as upstream's ErrInvalidState."""
    with pytest.raises(DecodeError):
        decode_mesh_silence(ProtoWriter().bytes_field(2, b"").getvalue())


def test_truncated_snapshot_is_rejected_and_store_unchanged() -> None:
    """A cut snapshot raises DecodeError and leaves the store as it was."""
    st = Silences()
    st.set(silence(""), T0)
    data = st.marshal()
    before = list(st)
    with pytest.raises(DecodeError):
        st.load_snapshot(data[:-3])
    assert list(st) == before


def _mesh_with_pattern(sid: str, pattern: str) -> bytes:
    bad = ProtoWriter().varint(1, 3).string(2, "a").string(3, pattern).getvalue()  # NOT_REGEXP
    body = ProtoWriter().string(1, sid).bytes_field(2, bad).getvalue()
    return ProtoWriter().bytes_field(1, body).getvalue()


def test_pattern_go_refuses_from_peer_drops_the_record() -> None:
    """A peer's regex that Go refuses is a DecodeError for that record, never a guess."""
    for pattern in ("(?<", "(" * 1200 + "a" + ")" * 1200, "a{1001}"):
        with pytest.raises(DecodeError, match="invalid matcher"):
            decode_mesh_silence(_mesh_with_pattern("x", pattern))


def test_decode_records_skips_only_the_bad_records() -> None:
    """Good records around a bad one in the same message are kept; the bad one is reported."""
    good = encode_delimited(silence("good"), T0)
    bad = write_delimited(_mesh_with_pattern("bad", "(" * 1200 + ")" * 1200))
    records, skipped = decode_records(good + bad + good)
    assert [s.id for s, _ in records] == ["good"]
    assert len(skipped) == 1 and "nests too deeply" in skipped[0]


def test_snapshot_file_round_trip(tmp_path: Path) -> None:
    """The store's snapshot written with the rename scheme loads back identically."""
    st = Silences()
    for i in range(3):
        st.set(silence(""), T0 + i)
    path = tmp_path / "silences"
    assert read_snapshot_file(path) is None
    write_snapshot_file(path, st.maintenance(T0 + 10))
    assert [p.name for p in tmp_path.iterdir()] == ["silences"]
    loaded = Silences()
    data = read_snapshot_file(path)
    assert data is not None
    loaded.load_snapshot(data)
    assert sorted(loaded, key=lambda s: s.id) == sorted(st, key=lambda s: s.id)
    assert all(loaded.expires_at(s.id) == st.expires_at(s.id) for s in st)


def _reference_mesh_silence(s: Silence, expires_at: int) -> bytes:
    """The MeshSilence layout built field by field with ProtoWriter (the generic writer)."""
    w = ProtoWriter()
    if s.id:
        w.string(1, s.id)
    for m in s.matchers:
        mw = ProtoWriter()
        kind = {MatchType.EQUAL: 0, MatchType.REGEXP: 1, MatchType.NOT_EQUAL: 2}.get(m.type, 3)
        if kind:
            mw.varint(1, kind)
        if m.name:
            mw.string(2, m.name)
        if m.value:
            mw.string(3, m.value)
        w.bytes_field(2, mw.getvalue())
    for number, ns in ((3, s.starts_at), (4, s.ends_at), (5, s.updated_at)):
        w.bytes_field(number, encode_timestamp(ns))
    if s.created_by:
        w.string(8, s.created_by)
    if s.comment:
        w.string(9, s.comment)
    if s.recurrence is not None:
        w.bytes_field(RECURRENCE_FIELD, encode_spec(s.recurrence))
    return (
        ProtoWriter()
        .bytes_field(1, w.getvalue())
        .bytes_field(2, encode_timestamp(expires_at))
        .getvalue()
    )


_times = st.integers(min_value=-(2**62), max_value=2**62)
_texts = st.text(max_size=300)
_matcher = st.builds(
    Matcher,
    st.sampled_from(list(MatchType)),
    _texts,
    _texts,
)
_recurrence = st.none() | st.builds(
    RecurrenceSpec,
    st.text(max_size=40),
    st.just("0 12 * * *"),
    st.integers(min_value=1, max_value=10**15),
    st.sampled_from(["UTC", "Europe/Paris"]),
    _times,
    st.none() | _times,
)


@given(
    sid=st.text(max_size=40),
    matchers=st.lists(_matcher, max_size=4),
    times=st.tuples(_times, _times, _times, _times),
    created_by=_texts,
    comment=_texts,
    recurrence=_recurrence,
)
def test_encoding_is_the_generic_protobuf_layout(
    sid: str,
    matchers: list[Matcher],
    times: tuple[int, int, int, int],
    created_by: str,
    comment: str,
    recurrence: RecurrenceSpec | None,
) -> None:
    """The hand-written encoder writes the same bytes as ProtoWriter field by field, for
    any text, any time (negative, zero, past 2**32 s) and with or without a recurrence."""
    starts, ends, updated, expires = times
    s = Silence(
        sid,
        tuple(matchers),
        starts,
        ends,
        updated_at=updated,
        created_by=created_by,
        comment=comment,
        recurrence=recurrence,
    )
    assert encode_mesh_silence(s, expires) == _reference_mesh_silence(s, expires)
