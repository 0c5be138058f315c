"""The two replicated states Alertmanager gossips, ``"sil"`` and ``"nfl"``, as
:class:`cluster.state.State` objects, and the delegate that counts their messages.

The two channels are shaped alike. ``marshal`` gives the whole state (for push/pull);
``merge`` takes a peer's records and raises :class:`cluster.errors.DecodeError`
before merging anything if the bytes do not parse. What a merge stores reaches the
state's ``subscribe`` listeners (the durable journal, and the peer, which gossips it on).
While a merge runs, ``merging`` is true, and ``merging_oversized`` tells whether the
message was over :data:`~cluster.channel.MAX_GOSSIP_PART_BYTES`: such a message already
went to every member by TCP, so its records must not be echoed (Alertmanager's
``Merge`` re-broadcasts only small messages).
"""

from __future__ import annotations

import attrs

from cluster.channel import MAX_GOSSIP_PART_BYTES
from cluster.node import ChannelDelegate
from daemon.clock import Clock
from daemon.nflog.codec import encode_state, merge_bytes
from daemon.nflog.state import Nflog
from daemon.silence.state import Silences

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
        """Merge a peer's records at the current wall time (raises DecodeError)."""
        self._begin(data)
        try:
            self.silences.merge_bytes(data, self.clock.now())
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
        """Merge a peer's entries at the current wall time (raises DecodeError)."""
        self._begin(data)
        try:
            merge_bytes(self.nflog, data, self.clock.now())
        finally:
            self._end()


__all__ = ["MSG_TYPES", "Counters", "CountingDelegate", "NflogChannel", "SilencesChannel"]
