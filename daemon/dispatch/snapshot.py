"""Immutable views of the dispatcher's groups, for readers outside the actors (the API)."""

from __future__ import annotations

import attrs

from daemon.alert import Alert


@attrs.frozen
class GroupSnapshot:
    """One aggregation group as it stood when the snapshot was taken."""

    #: Receiver of the route that owns the group.
    receiver: str
    #: The route's ID (route key plus child indexes), unique per route node.
    route_id: str
    group_key: str
    labels: dict[str, str]
    #: Current alerts of the group, in notification order (spec §3.6), as stored.
    alerts: tuple[Alert, ...]
    #: When the group's timer next fires, on trio's clock (seconds); for the why view.
    next_flush_at: float | None = None
