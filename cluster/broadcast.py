"""memberlist's transmit-limited broadcast queue (``TransmitLimitedQueue``).

Gossip is best effort: each queued message is handed out a bounded number of times
and then forgotten. The rules, as in memberlist:

* **Limit.** A message is dropped after ``retransmit_mult * ceil(log10(n + 1))``
  draws in total, where ``n`` is the cluster size at draw time. Every draw counts,
  whether the message went to a gossip target or rode on a ping or an ack.
* **Draw order.** Fewest transmissions first; within a tier, the largest message that
  still fits the remaining space, and among equals the newest. Messages that do not
  fit are skipped, not waited for.
* **Invalidation.** A named broadcast (memberlist's alive/suspect/dead about node N are
  all named N) replaces every queued broadcast with the same name: only the newest
  news about a node is worth sending. Unnamed broadcasts (Alertmanager's user
  messages) never invalidate anything.
* **Finished.** A broadcast's ``on_finished`` callback runs once, when it reaches its
  limit or is invalidated or pruned; a graceful leave waits on it.

The queue is pure and synchronous; the node calls :meth:`get_broadcasts` while
building each packet.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import attrs


def retransmit_limit(retransmit_mult: int, num_nodes: int) -> int:
    """How many times a broadcast is sent in a cluster of ``num_nodes`` (memberlist's rule)."""
    node_scale = math.ceil(math.log10(max(num_nodes, 0) + 1))
    return retransmit_mult * node_scale


@attrs.define
class _Queued:
    message: bytes
    name: str | None
    id: int
    transmits: int = 0
    on_finished: Callable[[], None] | None = None

    def finish(self) -> None:
        if self.on_finished is not None:
            callback, self.on_finished = self.on_finished, None
            callback()

    def order(self) -> tuple[int, int, int]:
        # fewest transmits first, then the longest, then the newest
        return (self.transmits, -len(self.message), -self.id)


@attrs.define
class TransmitLimitedQueue:
    """Queued broadcasts handed out a limited number of times each.

    ``num_nodes`` is read at every draw: memberlist's own queue uses the size of the
    node table, Alertmanager's user queue the number of live members.
    """

    retransmit_mult: int
    num_nodes: Callable[[], int]
    _items: list[_Queued] = attrs.field(factory=list, init=False)
    _ids: itertools.count[int] = attrs.field(factory=itertools.count, init=False)

    def __len__(self) -> int:
        return len(self._items)

    def queue(
        self,
        message: bytes,
        *,
        name: str | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        """Add a broadcast; a named one replaces queued broadcasts with the same name."""
        if name is not None:
            kept: list[_Queued] = []
            for item in self._items:
                if item.name == name:
                    item.finish()
                else:
                    kept.append(item)
            self._items = kept
        self._items.append(
            _Queued(message=message, name=name, id=next(self._ids), on_finished=on_finished)
        )

    def has_named(self, name: str) -> bool:
        """True while a broadcast with this name is queued."""
        return any(item.name == name for item in self._items)

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        """Draw messages whose sizes plus ``overhead`` each fit in ``limit`` bytes in total.

        Each drawn message counts one transmission; those reaching the limit are removed.
        """
        if not self._items or limit <= overhead:
            return []
        transmit_limit = retransmit_limit(self.retransmit_mult, self.num_nodes())
        used = 0
        drawn: list[bytes] = []
        finished: list[_Queued] = []
        for item in sorted(self._items, key=_Queued.order):
            if used + overhead + len(item.message) > limit:
                continue
            used += overhead + len(item.message)
            drawn.append(item.message)
            item.transmits += 1
            if item.transmits >= transmit_limit:
                finished.append(item)
        if finished:
            gone = {id(item) for item in finished}
            self._items = [item for item in self._items if id(item) not in gone]
            for item in finished:
                item.finish()
        return drawn

    def prune(self, max_retain: int) -> None:
        """Keep only the ``max_retain`` broadcasts with the fewest transmissions."""
        if len(self._items) <= max_retain:
            return
        ordered = sorted(self._items, key=_Queued.order)
        self._items = ordered[:max_retain]
        for item in ordered[max_retain:]:
            item.finish()

    def reset(self) -> None:
        """Drop every queued broadcast (each one's ``on_finished`` runs)."""
        items, self._items = self._items, []
        for item in items:
            item.finish()
