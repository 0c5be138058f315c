"""The nflogpb codec, gossip merge, and the Nflog hooks persistence relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.errors import DecodeError
from cluster.protowire import ProtoWriter, write_delimited
from daemon.clock import NS_PER_SECOND, ZERO_TIME, FixedClock
from daemon.gocompat.pbtimestamp import encode_timestamp
from daemon.ha.channels import NflogChannel
from daemon.nflog import codec as nflogpb
from daemon.nflog.codec import (
    decode_mesh_entry,
    decode_state,
    encode_mesh_entry,
    encode_state,
    merge_bytes,
    snapshot_records,
)
from daemon.nflog.state import Entry, Nflog, ReceiverKey

S = NS_PER_SECOND
H = 3600 * S
T0 = 1_700_000_000 * S
RECV = ReceiverKey("wh", "webhook", 0)
GK = '{}:{alertname="A1"}'


def entry(ts: int = T0, firing: tuple[int, ...] = (1, 2**64 - 1), key: str = GK) -> Entry:
    return Entry(key, RECV, ts, firing, (7,), ts + 2 * H)


def test_mesh_entry_exact_bytes() -> None:
    """A MeshEntry encodes field by field as gogo does: packed hashes, stdtime always written."""
    e = Entry("g", ReceiverKey("r", "webhook", 2), 5 * S + 6, (1, 300), (), 9 * S)
    want_entry = (
        b"\x0a\x01g"
        + b"\x12\x0e\x0a\x01r\x12\x07webhook\x18\x02"
        + b"\x2a\x04\x08\x05\x10\x06"
        + b"\x32\x03\x01\xac\x02"
    )
    want = b"\x0a" + bytes([len(want_entry)]) + want_entry + b"\x12\x02\x08\x09"
    assert encode_mesh_entry(e) == want
    assert decode_mesh_entry(want) == e


def test_idx_zero_and_epoch_are_omitted_but_messages_present() -> None:
    """Proto3 defaults are omitted inside messages, but receiver and timestamps stay present."""
    e = Entry("", ReceiverKey("", "", 0), 0, (), (), 0)
    assert encode_mesh_entry(e) == b"\x0a\x04\x12\x00\x2a\x00\x12\x00"
    assert decode_mesh_entry(encode_mesh_entry(e)) == e


def test_absent_timestamps_decode_to_go_zero_time() -> None:
    """A MeshEntry without timestamps decodes to Go's zero time, not the Unix epoch."""
    data = ProtoWriter().bytes_field(1, ProtoWriter().string(1, GK).getvalue()).getvalue()
    got = decode_mesh_entry(data)
    assert (got.timestamp, got.expires_at) == (ZERO_TIME, ZERO_TIME)
    assert got.receiver == ReceiverKey("", "", 0)


def test_unpacked_hashes_and_unknown_fields_accepted() -> None:
    """Unpacked repeated hashes and later Alertmanager fields (muted_alerts) are read or skipped."""
    inner = (
        ProtoWriter()
        .string(1, GK)
        .bytes_field(2, b"\x0a\x02wh")
        .varint(6, 11)
        .varint(6, 12)
        .packed_varints(9, [5])
        .getvalue()
    )
    got = decode_mesh_entry(ProtoWriter().bytes_field(1, inner).getvalue())
    assert got.firing_alerts == (11, 12)
    assert got.receiver == ReceiverKey("wh", "", 0)


@pytest.mark.parametrize(
    "data",
    [b"\x12\x00", b"\x0a\x05\x0a\x01", b"\x0a\x03\x0a\x01\xff", b"\x12\x02\x10\x80"],
)
def test_bad_mesh_entries_raise_decode_error(data: bytes) -> None:
    """Missing entry, truncation, invalid UTF-8 and bad varints are all DecodeError."""
    with pytest.raises(DecodeError):
        decode_mesh_entry(data)


@given(
    group_key=st.text(),
    name=st.text(),
    integration=st.text(),
    idx=st.integers(0, 2**32 - 1),
    ts=st.integers(ZERO_TIME, 2**62),
    firing=st.lists(st.integers(0, 2**64 - 1), max_size=5),
    resolved=st.lists(st.integers(0, 2**64 - 1), max_size=5),
    expires=st.integers(ZERO_TIME, 2**62),
)
def test_mesh_entry_round_trip(
    group_key: str,
    name: str,
    integration: str,
    idx: int,
    ts: int,
    firing: list[int],
    resolved: list[int],
    expires: int,
) -> None:
    """Any entry encodes to the bytes the field-by-field ProtoWriter writes (varints of
    every width, negative times, cached receivers alike) and decodes back unchanged."""
    e = Entry(
        group_key,
        ReceiverKey(name, integration, idx),
        ts,
        tuple(firing),
        tuple(resolved),
        expires,
    )
    assert encode_mesh_entry(e) == _reference_mesh_entry(e)
    assert decode_mesh_entry(encode_mesh_entry(e)) == e


def _reference_mesh_entry(e: Entry) -> bytes:
    """The MeshEntry written field by field with the generic ProtoWriter (the oracle)."""
    receiver = ProtoWriter()
    if e.receiver.group_name:
        receiver.string(1, e.receiver.group_name)
    if e.receiver.integration:
        receiver.string(2, e.receiver.integration)
    if e.receiver.idx:
        receiver.varint(3, e.receiver.idx)
    inner = ProtoWriter()
    if e.group_key:
        inner.string(1, e.group_key)
    inner.bytes_field(2, receiver.getvalue()).bytes_field(5, encode_timestamp(e.timestamp))
    if e.firing_alerts:
        inner.packed_varints(6, e.firing_alerts)
    if e.resolved_alerts:
        inner.packed_varints(7, e.resolved_alerts)
    outer = ProtoWriter().bytes_field(1, inner.getvalue())
    return outer.bytes_field(2, encode_timestamp(e.expires_at)).getvalue()


def test_mesh_entry_rejects_a_hash_wider_than_64_bits() -> None:
    """A hash that does not fit uint64 is an error, not a silently longer varint."""
    with pytest.raises(ValueError):
        encode_mesh_entry(Entry(GK, RECV, T0, (2**64,), (), T0))


def test_state_is_delimited_mesh_entries() -> None:
    """A full state is the snapshot format: each MeshEntry prefixed by its varint length."""
    a, b = entry(), entry(key="{}:other")
    data = encode_state([a, b])
    assert data == write_delimited(encode_mesh_entry(a)) + write_delimited(encode_mesh_entry(b))
    assert decode_state(data) == [a, b]


def test_snapshot_records_and_load_entries_round_trip() -> None:
    """An nflog's snapshot records load into an empty log as the same entries."""
    log = Nflog()
    log.log(RECV, GK, [1], [], now=T0, expiry=2 * H)
    log.log(ReceiverKey("wh", "webhook", 1), GK, [], [2], now=T0 + S)
    restored = Nflog()
    assert restored.load_entries(decode_mesh_entry(r) for r in snapshot_records(log)) == 2
    assert restored.entries == log.entries


def test_load_entries_keeps_expired_and_prefers_later_records() -> None:
    """Loading keeps expired entries (GC drops them) and an older replayed record never wins."""
    log = Nflog()
    old, new = entry(ts=T0), entry(ts=T0 + H)
    expired = Entry("{}:gone", RECV, 0, (), (), 1)
    assert log.load_entries([new, old, expired]) == 2
    assert log.query(GK, RECV) == new
    assert log.query("{}:gone", RECV) == expired
    same_time = entry(ts=T0 + H, firing=(9,))
    log.load_entries([same_time])
    assert log.query(GK, RECV) == same_time


def test_subscribe_sees_log_and_merge_but_not_ignored_writes() -> None:
    """Listeners get every stored entry from log() and merge(), and nothing that was ignored."""
    log = Nflog()
    seen: list[Entry] = []
    unsubscribe = log.subscribe(seen.append)
    first = log.log(RECV, GK, [1], [], now=T0)
    assert log.log(RECV, GK, [2], [], now=T0 - S) is None  # older than the stored entry
    merged = entry(ts=T0 + S)
    assert log.merge(merged, now=T0)
    assert not log.merge(entry(ts=T0), now=T0)
    assert seen == [first, merged]
    unsubscribe()
    unsubscribe()
    log.log(RECV, GK, [3], [], now=T0 + H)
    assert len(seen) == 2


def test_merge_bytes_returns_changed_entries_only() -> None:
    """Gossip merge applies the nflog rule and reports which entries changed."""
    log = Nflog()
    current = entry(ts=T0 + H)
    log.load_entries([current])
    newer_other = entry(ts=T0, key="{}:b")
    expired = Entry("{}:c", RECV, T0 - 10 * H, (), (), T0 - H)
    data = encode_state([entry(ts=T0), newer_other, expired])
    assert merge_bytes(log, data, now=T0) == [newer_other]
    assert log.query(GK, RECV) == current
    assert log.query("{}:c", RECV) is None


def test_merge_bytes_is_all_or_nothing() -> None:
    """A payload with a corrupt record merges nothing at all."""
    log = Nflog()
    data = encode_state([entry()]) + b"\x05\x0a"
    with pytest.raises(DecodeError):
        merge_bytes(log, data, now=T0)
    assert log.entries == {}


def test_nflog_state_marshal_merge_between_two_logs() -> None:
    """The "nfl" channel's marshal on one node merged by another reproduces its entries."""
    a, b = Nflog(), Nflog()
    a.log(RECV, GK, [1, 2], [3], now=T0)
    clock = FixedClock(T0 + S)
    NflogChannel(nflog=b, clock=clock).merge(NflogChannel(nflog=a, clock=clock).marshal())
    assert b.entries == a.entries


def test_maintenance_gcs_and_reports_snapshot_size() -> None:
    """Maintenance drops expired entries and sets the size gauge to the snapshot's byte size."""
    log = Nflog()
    log.log(RECV, GK, [1], [], now=T0, expiry=H)
    log.log(RECV, "{}:later", [2], [], now=T0 + H, expiry=H)
    runs = nflogpb.maintenance_total._value.get()
    records = nflogpb.maintenance(log, now=T0 + H)
    assert [decode_mesh_entry(r) for r in records] == list(log.entries.values())
    assert list(log.entries) == [f"{{}}:later:{RECV}"]
    assert nflogpb.snapshot_size._value.get() == len(encode_state(log.entries.values()))
    assert nflogpb.maintenance_total._value.get() == runs + 1
