"""The notification log: what each integration last told each group, and when.

Pure: no I/O, no trio; every operation takes ``now`` (Unix ns, see :mod:`daemon.clock`).

Rules (spec §5, Alertmanager ``nflog/nflog.go``):

* One entry per key ``<groupKey>:<receiverName>/<integrationName>/<idx>``; only the latest
  entry per key is kept.
* An entry records the xxHash64 of every firing and every resolved alert of the last
  successful notification (:func:`alert_hash`), its wall time, and when it expires.
* ``expires_at = timestamp + retention``, or ``timestamp + expiry`` when ``expiry > 0`` and
  ``expiry < retention`` (the pipeline passes ``2 * repeat_interval``).
* :meth:`Nflog.log` is ignored when the existing entry's timestamp is after ``now`` (clock
  skew between peers, or a race); equal timestamps overwrite.
* :meth:`Nflog.merge` (gossip) ignores entries already expired (``expires_at < now``) and replaces only if the key
  is absent or the incoming timestamp is strictly newer.
* :meth:`Nflog.gc` deletes entries with ``expires_at <= now``.

Invariant: :attr:`Nflog.entries` is a plain ``dict[str, Entry]`` of immutable values, so
persistence and gossip can serialise it and replace values without copying the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from xxhash import xxh64_intdigest

from daemon import metrics
from daemon.alert import untrack

#: Alertmanager's ``--data.retention`` default, 120h, in nanoseconds.
DEFAULT_RETENTION = 120 * 3600 * 1_000_000_000


def alert_hash(labels: Mapping[str, str]) -> int:
    """The nflog dedup hash of a label set: xxHash64, seed 0 (not the FNV fingerprint),
    over :func:`daemon.alert.labels_hash_bytes`'s bytes (``name 0xFF value 0xFF`` per
    sorted label)."""
    try:
        return xxh64_intdigest(_hash_bytes(labels if type(labels) is dict else dict(labels)), 0)
    except UnicodeEncodeError:
        # Only a lone surrogate gets here (fingerprinting refuses them, so no stored
        # alert holds one). The join-and-encode reads U+DC80..U+DCFF as the bytes
        # 0x80..0xFF and raises on the others: every input keeps the answer it had.
        return _alert_hash_python(labels)


def _alert_hash_python(labels: Mapping[str, str]) -> int:
    """:func:`alert_hash` without the C build: one join and one encode, U+DCFF being the
    0xFF separator under ``surrogateescape``."""
    parts = []
    for name in sorted(labels):
        parts.append(name)
        parts.append(labels[name])
    parts.append("")
    return xxh64_intdigest("\udcff".join(parts).encode("utf-8", "surrogateescape"), 0)


_hash_bytes: Callable[[dict[str, str]], bytes]
try:
    # daemon/_speedups.c (optional build) writes the bytes in one piece; every alert of
    # every flush is hashed once.
    from daemon._speedups import labels_hash_bytes as _hash_bytes
except ImportError:  # pragma: no cover - depends on the build
    # The join beats building the bytes with a bytearray in Python.
    alert_hash = _alert_hash_python


@attrs.frozen
class ReceiverKey:
    """``nflogpb.Receiver``: which integration of which receiver was notified."""

    group_name: str
    integration: str
    idx: int

    def __str__(self) -> str:
        return f"{self.group_name}/{self.integration}/{self.idx}"


@attrs.frozen
class Entry:
    """``nflogpb.MeshEntry`` flattened: the entry fields plus its ``expires_at``."""

    group_key: str
    receiver: ReceiverKey
    #: Wall time of the notification, Unix ns.
    timestamp: int
    firing_alerts: tuple[int, ...]
    resolved_alerts: tuple[int, ...]
    expires_at: int

    @property
    def key(self) -> str:
        return state_key(self.group_key, self.receiver)

    def is_firing_subset(self, hashes: Iterable[int]) -> bool:
        """Whether every hash in ``hashes`` was firing at the last notification."""
        return set(hashes) <= set(self.firing_alerts)

    def is_resolved_subset(self, hashes: Iterable[int]) -> bool:
        """Whether every hash in ``hashes`` was resolved at the last notification."""
        return set(hashes) <= set(self.resolved_alerts)


def state_key(group_key: str, receiver: ReceiverKey) -> str:
    """The log's key, ``<groupKey>:<receiver>/<integration>/<idx>``."""
    return f"{group_key}:{receiver}"


def new_entry(
    group_key: str,
    receiver: ReceiverKey,
    timestamp: int,
    firing: Iterable[int],
    resolved: Iterable[int],
    expires_at: int,
) -> Entry:
    """An :class:`Entry` out of the cyclic collector's walks: values only (strings, ints,
    a ReceiverKey), so never in a cycle, and kept for the retention (see
    :data:`daemon.alert.untrack`). Every entry the log keeps is made here."""
    return untrack(
        Entry(group_key, receiver, timestamp, tuple(firing), tuple(resolved), expires_at)
    )


@attrs.define
class Nflog:
    """The in-memory notification log (mutable state; values are immutable)."""

    retention: int = DEFAULT_RETENTION
    entries: dict[str, Entry] = attrs.field(factory=dict)
    #: The tenant whose pipeline this log is (None: the global one), for its metrics.
    tenant: str | None = None
    # This pipeline's query counter and histogram, looked up once: query() runs on
    # every flush.
    _query_series: tuple[Any, Any] = attrs.field(
        default=attrs.Factory(lambda self: self._open_series(), takes_self=True),
        init=False,
        eq=False,
        repr=False,
    )
    # Observers of every stored entry (persistence journal, gossip broadcast); they run
    # synchronously inside log()/merge(), so they must only queue work, never block.
    _listeners: list[Callable[[Entry], None]] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )

    def _open_series(self) -> tuple[Any, Any]:
        return (
            metrics.pipeline_series(metrics.nflog_queries, self.tenant),
            metrics.pipeline_series(metrics.nflog_query_duration, self.tenant),
        )

    def subscribe(self, listener: Callable[[Entry], None]) -> Callable[[], None]:
        """Call ``listener`` with every entry log() or merge() stores; returns an unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _stored(self, entry: Entry) -> None:
        for listener in list(self._listeners):
            listener(entry)

    def load_entries(self, entries: Iterable[Entry]) -> int:
        """Restore entries from a snapshot and journal, in file order; returns how many were kept.

        As Alertmanager's snapshot load there is no expiry filtering (the next GC drops
        expired entries). A later record replaces an earlier one unless it is older, so
        replaying a journal over a snapshot that already holds its effect changes nothing.
        Listeners are not called: the entries are already on disk.
        """
        kept = 0
        for entry in entries:
            key = entry.key
            previous = self.entries.get(key)
            if previous is None or entry.timestamp >= previous.timestamp:
                self.entries[key] = entry
                kept += 1
        return kept

    def log(
        self,
        receiver: ReceiverKey,
        group_key: str,
        firing: Iterable[int],
        resolved: Iterable[int],
        now: int,
        expiry: int = 0,
    ) -> Entry | None:
        """Record a successful notification; returns the new entry, or None if ignored."""
        key = state_key(group_key, receiver)
        previous = self.entries.get(key)
        if previous is not None and previous.timestamp > now:
            return None
        expires_at = now + self.retention
        if 0 < expiry < self.retention:
            expires_at = now + expiry
        entry = new_entry(group_key, receiver, now, firing, resolved, expires_at)
        self.entries[key] = entry
        self._stored(entry)
        return entry

    def query(self, group_key: str, receiver: ReceiverKey) -> Entry | None:
        """The latest entry for this group and integration, or None (never notified)."""
        queries, duration = self._query_series
        queries.inc()
        start = time.perf_counter()
        entry = self.entries.get(state_key(group_key, receiver))
        # As the Histogram's own timer, without its context-manager cost per flush.
        duration.observe(time.perf_counter() - start)
        return entry

    def merge(self, entry: Entry, now: int) -> bool:
        """Merge a peer's (or a snapshot's) entry; returns whether the log changed."""
        if entry.expires_at < now:
            # An entry that expired in flight must not resurrect a GC'd key. Strict, as
            # upstream (``ExpiresAt.Before(now)``); GC's test is the inclusive one.
            return False
        key = entry.key
        previous = self.entries.get(key)
        if previous is None or entry.timestamp > previous.timestamp:
            self.entries[key] = entry
            self._stored(entry)
            return True
        return False

    def gc(self, now: int) -> int:
        """Delete expired entries; returns how many were deleted."""
        expired = [k for k, e in self.entries.items() if e.expires_at <= now]
        for k in expired:
            del self.entries[k]
        return len(expired)
