"""``nflogpb``: the notification log's protobuf wire format, for snapshots and gossip.

Pure: no I/O, no trio. Alertmanager 0.25 (``nflog/nflogpb/nflog.proto``, gogo-generated)
serialises an entry as::

    MeshEntry { Entry entry = 1; google.protobuf.Timestamp expires_at = 2; }
    Entry     { bytes group_key = 1; Receiver receiver = 2; bytes group_hash = 3 (deprecated);
                bool resolved = 4 (deprecated); google.protobuf.Timestamp timestamp = 5;
                repeated uint64 firing_alerts = 6 [packed]; repeated uint64 resolved_alerts = 7; }
    Receiver  { string group_name = 1; string integration = 2; uint32 idx = 3; }
    Timestamp { int64 seconds = 1; int32 nanos = 2; }

Encoding rules that make our bytes identical to Alertmanager's:

* ``timestamp`` and ``expires_at`` are gogo ``stdtime`` and non-nullable, so they are
  always written, even when the time is the Unix epoch (an empty Timestamp message);
  ``entry`` and ``receiver`` are pointers and are written whenever present.
* Scalars at their proto3 default (empty group key, idx 0, no hashes) are omitted.
* An absent Timestamp decodes to Go's zero time (:data:`daemon.clock.ZERO_TIME`), a
  present but empty one to the Unix epoch.

The snapshot file ``<storage.path>/nflog`` and a gossip push/pull both carry the same
thing: every ``MeshEntry``, each prefixed by its varint length (:func:`encode_state`).
Later fields Alertmanager added (``receiver_data``, ``muted_alerts``) are skipped on read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import Counter, Gauge, Summary

from cluster.errors import DecodeError
from cluster.protowire import (
    ProtoWriter,
    encode_varint,
    iter_delimited,
    iter_fields,
    length_delimited,
    repeated_varints,
    write_delimited,
)
from daemon import metrics
from daemon.clock import ZERO_TIME
from daemon.gocompat.pbtimestamp import decode_timestamp, encode_timestamp
from daemon.nflog.state import Entry, Nflog, ReceiverKey, new_entry

_U32 = 0xFFFF_FFFF

gc_duration = metrics.per_pipeline(
    Summary(
        "alertmanager_nflog_gc_duration_seconds",
        "Duration of the last notification log garbage collection cycle.",
        registry=metrics.REGISTRY,
    )
)
snapshot_duration = metrics.per_pipeline(
    Summary(
        "alertmanager_nflog_snapshot_duration_seconds",
        "Duration of the last notification log snapshot.",
        registry=metrics.REGISTRY,
    )
)
snapshot_size = metrics.per_pipeline(
    Gauge(
        "alertmanager_nflog_snapshot_size_bytes",
        "Size of the last notification log snapshot in bytes.",
        registry=metrics.REGISTRY,
    )
)
maintenance_total = metrics.per_pipeline(
    Counter(
        "alertmanager_nflog_maintenance",
        "How many maintenances were executed for the notification log.",
        registry=metrics.REGISTRY,
    )
)
maintenance_errors_total = metrics.per_pipeline(
    Counter(
        "alertmanager_nflog_maintenance_errors",
        "How many maintenances were executed for the notification log that failed.",
        registry=metrics.REGISTRY,
    )
)


_pack_uvarints: Callable[[tuple[int, ...]], bytes | None] | None
try:
    from daemon._speedups import pack_uvarints as _pack_uvarints
except ImportError:  # pragma: no cover - depends on the build
    _pack_uvarints = None


def encode_receiver(receiver: ReceiverKey) -> bytes:
    """A serialised ``nflogpb.Receiver``."""
    w = ProtoWriter()
    if receiver.group_name:
        w.string(1, receiver.group_name)
    if receiver.integration:
        w.string(2, receiver.integration)
    if receiver.idx:
        w.varint(3, receiver.idx & _U32)
    return w.getvalue()


#: ReceiverKey -> its whole field 2 of an Entry: a daemon has a handful of integrations.
_receiver_fields: dict[ReceiverKey, bytes] = {}


def _receiver_field(receiver: ReceiverKey) -> bytes:
    field = _receiver_fields.get(receiver)
    if field is None:
        if len(_receiver_fields) >= 4096:
            _receiver_fields.clear()
        field = _receiver_fields[receiver] = length_delimited(b"\x12", encode_receiver(receiver))
    return field


def decode_receiver(data: bytes) -> ReceiverKey:
    """A :class:`ReceiverKey` from a serialised ``nflogpb.Receiver``."""
    group_name = ""
    integration = ""
    idx = 0
    for f in iter_fields(data):
        if f.number == 1:
            group_name = f.as_str()
        elif f.number == 2:
            integration = f.as_str()
        elif f.number == 3:
            idx = f.as_int() & _U32
    return ReceiverKey(group_name, integration, idx)


def encode_entry(entry: Entry) -> bytes:
    """A serialised ``nflogpb.Entry`` (no expiry: that lives in the MeshEntry).

    Written directly rather than through :class:`ProtoWriter`: it runs once per
    notification, on the event loop (the journal listener).
    """
    parts = []
    if entry.group_key:
        parts.append(length_delimited(b"\x0a", entry.group_key.encode("utf-8")))
    parts.append(_receiver_field(entry.receiver))
    parts.append(length_delimited(b"\x2a", encode_timestamp(entry.timestamp)))
    if entry.firing_alerts:
        parts.append(length_delimited(b"\x32", _packed(entry.firing_alerts)))
    if entry.resolved_alerts:
        parts.append(length_delimited(b"\x3a", _packed(entry.resolved_alerts)))
    return b"".join(parts)


def _packed_python(values: tuple[int, ...]) -> bytes:
    """A packed repeated varint field's payload: each value's varint, concatenated."""
    return b"".join([encode_varint(h) for h in values])


def _packed(values: tuple[int, ...]) -> bytes:
    """:func:`_packed_python`, in C when the extension is built: the hashes of a
    notification's alerts, ten bytes each, were 5% of a flush's CPU in Python."""
    if _pack_uvarints is not None:
        packed = _pack_uvarints(values)
        if packed is not None:
            return packed
    # Values outside uint64 (never nflog hashes): the Python rules (negatives as
    # int64, ValueError past 64 bits).
    return _packed_python(values)


def encode_mesh_entry(entry: Entry) -> bytes:
    """A serialised ``nflogpb.MeshEntry``: one snapshot, journal or gossip record."""
    return length_delimited(b"\x0a", encode_entry(entry)) + length_delimited(
        b"\x12", encode_timestamp(entry.expires_at)
    )


def decode_mesh_entry(data: bytes) -> Entry:
    """An :class:`Entry` from a serialised ``nflogpb.MeshEntry``.

    Raises:
        DecodeError: the bytes are not a MeshEntry (or the group key is not UTF-8).
    """
    entry_bytes: bytes | None = None
    expires_at = ZERO_TIME
    for f in iter_fields(data):
        if f.number == 1:
            entry_bytes = f.as_bytes()
        elif f.number == 2:
            expires_at = decode_timestamp(f.as_bytes())
    if entry_bytes is None:
        raise DecodeError("nflogpb: MeshEntry without an entry")
    group_key = ""
    receiver = ReceiverKey("", "", 0)
    timestamp = ZERO_TIME
    firing: list[int] = []
    resolved: list[int] = []
    for f in iter_fields(entry_bytes):
        if f.number == 1:
            group_key = f.as_str()
        elif f.number == 2:
            receiver = decode_receiver(f.as_bytes())
        elif f.number == 5:
            timestamp = decode_timestamp(f.as_bytes())
        elif f.number == 6:
            firing.extend(repeated_varints(f))
        elif f.number == 7:
            resolved.extend(repeated_varints(f))
    return new_entry(group_key, receiver, timestamp, firing, resolved, expires_at)


def encode_state(entries: Iterable[Entry]) -> bytes:
    """Varint-length-delimited MeshEntries: a snapshot file's content, or a full push."""
    return b"".join(write_delimited(encode_mesh_entry(e)) for e in entries)


def decode_state(data: bytes) -> list[Entry]:
    """Every entry of :func:`encode_state`'s output (or Alertmanager's ``nflog`` file)."""
    return [decode_mesh_entry(record) for record in iter_delimited(data)]


def snapshot_records(nflog: Nflog) -> list[bytes]:
    """One MeshEntry record per entry, for :meth:`daemon.persist.DurableState.compact`."""
    return [encode_mesh_entry(e) for e in nflog.entries.values()]


def maintenance(nflog: Nflog, now: int) -> list[bytes]:
    """GC, then the snapshot records, as Alertmanager's maintenance (with its metrics)."""
    return list(deferred_maintenance(nflog, now))


def deferred_maintenance(nflog: Nflog, now: int) -> Iterator[bytes]:
    """:func:`maintenance` whose records are encoded as the iterator is consumed.

    GC runs and the entries are taken now; entries are frozen, so encoding them later
    (in the persist worker thread, off the event loop: 1,000 groups' entries take
    ~0.1 s) still gives the snapshot of now. Pass as
    ``snapshot=lambda: deferred_maintenance(nflog, clock.now())`` to
    :meth:`daemon.persist.DurableState.serve`.
    """
    tenant = nflog.tenant
    metrics.pipeline_series(maintenance_total, tenant).inc()
    start = time.perf_counter()
    nflog.gc(now)
    metrics.pipeline_series(gc_duration, tenant).observe(time.perf_counter() - start)
    entries = list(nflog.entries.values())

    def encode() -> Iterator[bytes]:
        start = time.perf_counter()
        size = 0
        for entry in entries:
            record = encode_mesh_entry(entry)
            size += len(encode_varint(len(record))) + len(record)
            yield record
        metrics.pipeline_series(snapshot_duration, tenant).observe(time.perf_counter() - start)
        metrics.pipeline_series(snapshot_size, tenant).set(size)

    return encode()


def merge_bytes(nflog: Nflog, data: bytes, now: int) -> list[Entry]:
    """Merge a peer's delimited MeshEntries with the gossip rule; returns those that changed.

    The whole payload is decoded before anything is merged, so a corrupt message
    changes nothing.
    """
    return [e for e in decode_state(data) if nflog.merge(e, now)]
