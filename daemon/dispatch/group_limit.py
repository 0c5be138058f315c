"""A tenant's cap on aggregation groups (Mimir's ``alertmanager_max_dispatcher_aggregation_groups``).

One :class:`GroupBudget` per dispatcher, shared by its route-group actors: the cap is on
the groups of all routes together, as Mimir counts them. An alert that would need a
new group beyond the cap does not get one (for that route): it is logged and counted,
and stays stored, so it is grouped once old groups go away. Alerts for existing groups
are never refused.

All actors run on one trio thread and only touch the budget synchronously, so a plain
counter is enough.
"""

from __future__ import annotations

from collections.abc import Callable


class GroupBudget:
    """How many groups exist and whether another may be made; ``limit()`` (0: no cap)
    is read at every new group, so a changed limit applies at once."""

    __slots__ = ("count", "limit", "on_refused")

    def __init__(self, limit: Callable[[], int], on_refused: Callable[[], None]) -> None:
        self.limit = limit
        self.on_refused = on_refused
        self.count = 0

    def take(self) -> bool:
        """Count one new group, or refuse it (and tell ``on_refused``)."""
        limit = self.limit()
        if limit and self.count >= limit:
            self.on_refused()
            return False
        self.count += 1
        return True

    def release(self, n: int) -> None:
        self.count -= n


__all__ = ["GroupBudget"]
