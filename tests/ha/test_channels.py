"""Gossiped silence and nflog records: whatever bytes a peer sends, a merge drops and
counts what it cannot use and never raises anything but DecodeError."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, example, given, settings

from cluster.errors import DecodeError
from cluster.protowire import ProtoWriter, write_delimited
from daemon.clock import NS_PER_SECOND, FixedClock
from daemon.gocompat.pbtimestamp import encode_timestamp
from daemon.ha.channels import NflogChannel, SilencesChannel, records_dropped_total
from daemon.matcher import Matcher, MatchType
from daemon.nflog.codec import encode_state as encode_nflog
from daemon.nflog.state import Nflog, ReceiverKey
from daemon.silence import codec as silencepb
from daemon.silence.model import Silence
from daemon.silence.state import Silences

S = NS_PER_SECOND
T0 = 1_767_225_600 * S
H = 3600 * S


def _silence(sid: str, pattern: str = "web|db") -> Silence:
    return Silence(
        id=sid,
        matchers=(Matcher.create(MatchType.REGEXP, "job", pattern),),
        starts_at=T0,
        ends_at=T0 + H,
        updated_at=T0,
        created_by="peer",
        comment="c",
    )


def _raw_silence_record(sid: str, pattern: str) -> bytes:
    """A delimited MeshSilence whose regex matcher is not checked on the way out."""
    matcher = ProtoWriter().varint(1, 1).string(2, "job").string(3, pattern).getvalue()
    body = (
        ProtoWriter()
        .string(1, sid)
        .bytes_field(2, matcher)
        .bytes_field(3, encode_timestamp(T0))
        .bytes_field(4, encode_timestamp(T0 + H))
        .bytes_field(5, encode_timestamp(T0))
        .getvalue()
    )
    mesh = ProtoWriter().bytes_field(1, body).bytes_field(2, encode_timestamp(T0 + 2 * H))
    return write_delimited(mesh.getvalue())


GOOD_SILENCES = silencepb.encode_state(
    [(_silence("a"), T0 + 2 * H), (_silence("b", "x.*"), T0 + 2 * H)]
)
_NFLOG = Nflog()
_NFLOG.log(ReceiverKey("team", "webhook", 0), "{}:{}", [1, 2], [3], now=T0)
GOOD_NFLOG = encode_nflog(_NFLOG.entries.values())


def _dropped(state: str, reason: str) -> float:
    return records_dropped_total.labels(state, reason)._value.get()  # type: ignore[no-any-return]


def _check_silences_consistent(store: Silences) -> None:
    """Every stored silence still matches, marshals and loads back as it was."""
    for s in store:
        s.matches({"job": "web", "instance": "x" * 100})
    store.mutes({"job": "web"}, fingerprint=1, now=T0 + S)
    again = Silences()
    again.load_snapshot(store.marshal())
    assert {s.id: s for s in again} == {s.id: s for s in store}


def _merge_fuzzed(
    channel: SilencesChannel | NflogChannel,
    good: bytes,
    changes: list[tuple[int, int]],
    cut: int,
    noise: bytes,
) -> None:
    """Merge ``good`` with bytes overwritten, cut at ``cut`` and ``noise`` appended;
    only DecodeError may come out, and the merge flags are reset."""
    data = bytearray(good)
    for pos, value in changes:
        data[pos % len(data)] = value
    try:
        channel.merge(bytes(data[:cut]) + noise)
    except DecodeError:
        pass
    assert not channel.merging


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=st.binary(max_size=300), changes=edits, cut=st.integers(0, 400))
@example(noise=b"", changes=[], cut=10_000)
@example(noise=_raw_silence_record("deep", "(" * 1200 + "a" + ")" * 1200), changes=[], cut=0)
def test_silences_merge_of_any_bytes(
    noise: bytes, changes: list[tuple[int, int]], cut: int
) -> None:
    """Mutated, truncated and random bytes merge or raise DecodeError; the store stays sound."""
    store = Silences()
    channel = SilencesChannel(silences=store, clock=FixedClock(T0 + S))
    _merge_fuzzed(channel, GOOD_SILENCES, changes, cut, noise)
    _check_silences_consistent(store)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=st.binary(max_size=300), changes=edits, cut=st.integers(0, 400))
def test_nflog_merge_of_any_bytes(noise: bytes, changes: list[tuple[int, int]], cut: int) -> None:
    """Mutated, truncated and random bytes merge or raise DecodeError; the log round-trips."""
    log = Nflog()
    channel = NflogChannel(nflog=log, clock=FixedClock(T0 + S))
    _merge_fuzzed(channel, GOOD_NFLOG, changes, cut, noise)
    again = Nflog()
    NflogChannel(nflog=again, clock=FixedClock(T0 + S)).merge(channel.marshal())
    assert again.entries == log.entries


def test_a_refused_pattern_drops_only_its_record_and_is_counted() -> None:
    """A peer's silence nesting 1,200 groups is dropped and counted; its neighbours merge."""
    store = Silences()
    before = _dropped("sil", "decode")
    deep = _raw_silence_record("deep", "(" * 1200 + "a" + ")" * 1200)
    bomb = _raw_silence_record("bomb", "a{1001}")
    SilencesChannel(silences=store, clock=FixedClock(T0 + S)).merge(deep + GOOD_SILENCES + bomb)
    assert sorted(s.id for s in store) == ["a", "b"]
    assert _dropped("sil", "decode") == before + 2


def test_600_nested_groups_from_a_peer_merge_and_match() -> None:
    """Go accepts 600 nested groups, so tocsin keeps the silence and matches it at once."""
    store = Silences()
    pattern = "(" * 600 + "web" + ")" * 600
    SilencesChannel(silences=store, clock=FixedClock(T0 + S)).merge(
        _raw_silence_record("deep", pattern)
    )
    assert [s.id for s in store] == ["deep"]
    assert store.mutes({"job": "web"}, fingerprint=1, now=T0 + S) == ["deep"]
    assert store.mutes({"job": "db"}, fingerprint=2, now=T0 + S) == []


def test_a_failing_state_merge_is_dropped_and_counted() -> None:
    """An exception from the state's own merge drops that record, never the daemon."""

    class Broken(Silences):
        def merge(self, silence: Silence, expires_at: int, now: int) -> bool:
            if silence.id == "a":
                raise RuntimeError("bug")
            return super().merge(silence, expires_at, now)

    store = Broken()
    before = _dropped("sil", "merge")
    SilencesChannel(silences=store, clock=FixedClock(T0 + S)).merge(GOOD_SILENCES)
    assert [s.id for s in store] == ["b"]
    assert _dropped("sil", "merge") == before + 1
