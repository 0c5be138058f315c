"""The seam between the cluster and whatever it keeps in sync.

Alertmanager's cluster package knows nothing about silences or the notification log:
each one registers under a channel key (``"sil"``, ``"nfl"``) an object that can
serialize its whole state and merge a peer's serialized records. The daemon's silences
and nflog implement this Protocol; the cluster only moves the bytes.
"""

from __future__ import annotations

from typing import Protocol


class State(Protocol):
    """A replicated state: full serialization out, remote records in."""

    def marshal(self) -> bytes:
        """Serialize the whole state (a push/pull sends this to the peer)."""
        ...

    def merge(self, data: bytes) -> None:
        """Merge records received from a peer.

        ``data`` is exactly what a peer's :meth:`marshal` produced, or the data of one
        broadcast. Raise :class:`~cluster.errors.DecodeError` if it cannot be parsed;
        the implementation decides what to re-broadcast.
        """
        ...
