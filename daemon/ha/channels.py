"""The two replicated states Alertmanager gossips, ``"sil"`` and ``"nfl"``, as
:class:`cluster.state.State` objects, and the delegate that counts their messages.

The two channels are shaped alike. ``marshal`` gives the whole state (for push/pull);
``merge`` takes a peer's records and raises :class:`cluster.errors.DecodeError`
before merging anything if the framing does not parse. Anything else that goes wrong
with one record (its protobuf, a matcher Go refuses, the state's merge) drops that
record, counts it in ``tocsin_cluster_records_dropped_total{state,reason}`` and logs
it; the message's other records still merge. The cluster port is unauthenticated by
default, so a merge must never raise anything but ``DecodeError`` (which the node
counts and drops): one hostile datagram must not take the daemon down. What a merge stores reaches the
state's ``subscribe`` listeners (the durable journal, and the peer, which gossips it on).
While a merge runs, ``merging`` is true, and ``merging_oversized`` tells whether the
message was over :data:`~cluster.channel.MAX_GOSSIP_PART_BYTES`: such a message already
went to every member by TCP, so its records must not be echoed (Alertmanager's
``Merge`` re-broadcasts only small messages).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs
import structlog
from prometheus_client import Counter

from cluster.channel import MAX_GOSSIP_PART_BYTES
from cluster.node import ChannelDelegate
from cluster.protowire import iter_delimited
from daemon import metrics
from daemon.clock import Clock
from daemon.nflog.codec import decode_mesh_entry, encode_state
from daemon.nflog.state import Entry, Nflog
from daemon.silence import codec as silencepb
from daemon.silence.state import Silences

log = structlog.get_logger()
T = TypeVar("T")

records_dropped_total = Counter(
    "tocsin_cluster_records_dropped_total",
    "Gossiped silence and nflog records dropped because they could not be decoded "
    "(reason decode: protobuf, matcher that Go refuses) or merged (reason merge).",
    ["state", "reason"],
    registry=metrics.REGISTRY,
)
for _state in ("sil", "nfl"):
    for _reason in ("decode", "merge"):
        records_dropped_total.labels(_state, _reason)


def _dropped(state: str, reason: str, error: str) -> None:
    records_dropped_total.labels(state, reason).inc()
    log.warning("gossip.record_dropped", state=state, reason=reason, error=error[:200])


def _merge_each(state: str, records: list[T], merge: Callable[[T], object]) -> None:
    for record in records:
        try:
            merge(record)
        # A peer's record must never be fatal, whatever the state's merge raises.
        except Exception as exc:
            _dropped(state, "merge", repr(exc))


#: Message types of ``alertmanager_cluster_messages_*`` (Alertmanager's labels).
MSG_TYPES = ("full_state", "update")


@attrs.define
class Counters:
    """What Alertmanager's delegate counts, read by the cluster metrics collector.

    Sent ``update`` messages are counted by the node's core, at every transmission
    (Alertmanager counts them in ``GetBroadcasts``); ``sent`` holds ``full_state`` only.
    """

    received: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(MSG_TYPES, 0))
    received_size: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(MSG_TYPES, 0))
    sent: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(MSG_TYPES, 0))
    sent_size: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(MSG_TYPES, 0))
    joined: int = 0
    left: int = 0
    updated: int = 0


@attrs.define
class CountingDelegate:
    """Alertmanager's delegate: the channel delegate plus its message counters."""

    inner: ChannelDelegate
    counters: Counters

    def local_state(self, join: bool) -> bytes:
        """Our full state for a push/pull (counted as a sent ``full_state``)."""
        data = self.inner.local_state(join)
        self.counters.sent["full_state"] += 1
        self.counters.sent_size["full_state"] += len(data)
        return data

    def merge_remote_state(self, buf: bytes, join: bool) -> None:
        """A peer's full state (counted as a received ``full_state``)."""
        self.counters.received["full_state"] += 1
        self.counters.received_size["full_state"] += len(buf)
        self.inner.merge_remote_state(buf, join)

    def notify_msg(self, payload: bytes) -> None:
        """One broadcast Part (counted as a received ``update``)."""
        self.counters.received["update"] += 1
        self.counters.received_size["update"] += len(payload)
        self.inner.notify_msg(payload)


@attrs.define
class _Merging:
    """The merge flags both channels share (see the module doc)."""

    merging: bool = attrs.field(default=False, init=False)
    merging_oversized: bool = attrs.field(default=False, init=False)

    def _begin(self, data: bytes) -> None:
        self.merging = True
        self.merging_oversized = len(data) > MAX_GOSSIP_PART_BYTES

    def _end(self) -> None:
        self.merging = self.merging_oversized = False

    @property
    def echo_merged(self) -> bool:
        """Whether a record stored right now came from a small peer message."""
        return self.merging and not self.merging_oversized


@attrs.define
class SilencesChannel(_Merging):
    """The ``"sil"`` state."""

    silences: Silences = attrs.field(kw_only=True)
    clock: Clock = attrs.field(kw_only=True)

    def marshal(self) -> bytes:
        """Every silence, delimited (Alertmanager's snapshot format)."""
        return self.silences.marshal()

    def merge(self, data: bytes) -> None:
        """Merge a peer's records at the current wall time; bad records are dropped.

        Error handling: :class:`DecodeError` only, when the framing is broken.
        """
        self._begin(data)
        try:
            records, skipped = silencepb.decode_records(data)
            for reason in skipped:
                _dropped("sil", "decode", reason)
            now = self.clock.now()
            _merge_each("sil", records, lambda r: self.silences.merge(r[0], r[1], now))
        finally:
            self._end()


@attrs.define
class NflogChannel(_Merging):
    """The ``"nfl"`` state."""

    nflog: Nflog = attrs.field(kw_only=True)
    clock: Clock = attrs.field(kw_only=True)

    def marshal(self) -> bytes:
        """Every entry, delimited, exactly as Alertmanager's ``MarshalBinary``."""
        return encode_state(self.nflog.entries.values())

    def merge(self, data: bytes) -> None:
        """Merge a peer's entries at the current wall time; bad entries are dropped.

        Error handling: :class:`DecodeError` only, when the framing is broken.
        """
        self._begin(data)
        try:
            entries: list[Entry] = []
            for record in list(iter_delimited(data)):
                try:
                    entries.append(decode_mesh_entry(record))
                except (ValueError, OverflowError) as exc:  # DecodeError is a ValueError
                    _dropped("nfl", "decode", str(exc))
            now = self.clock.now()
            _merge_each("nfl", entries, lambda e: self.nflog.merge(e, now))
        finally:
            self._end()


__all__ = [
    "MSG_TYPES",
    "Counters",
    "CountingDelegate",
    "NflogChannel",
    "SilencesChannel",
    "records_dropped_total",
]
