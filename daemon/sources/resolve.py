"""Event alerts that stay firing while their event recurs, and resolve after it stops.

kube-events posts its alerts without ``endsAt``, so Alertmanager resolves them
``resolve_timeout`` (5 minutes) after the last post, whether or not the problem goes on,
and a re-listed, unchanged event fires them again. Here the source decides instead:

Rules:

* An *occurrence* is a matched event that is new to us, or whose ``count`` grew, or whose
  last-seen time (``lastTimestamp``, ``series.lastObservedTime``, ``eventTime``) moved.
  A copy of an event already seen (an informer re-list, a second exporter replica, a
  retried POST) is not an occurrence: it neither fires nor extends anything.
* Each occurrence puts its alert with ``endsAt = now + resolve_after`` (the rule's, else
  ``--events.resolve-after``); ``startsAt`` is the first occurrence of the alert's
  current firing spell.
* When ``endsAt`` passes with no new occurrence, the alert is put once more, resolved at
  that ``endsAt``, and forgotten; a later occurrence starts a new spell.

Invariants: :class:`ResolveBook` is pure (it takes ``now``) and owned by one
:class:`~daemon.sources.resolve_actor.ResolveActor`; every alert the book returns goes to the intake in the order
returned. Memory is bounded: at most :data:`MAX_SEEN_EVENTS` event identities are
remembered (the oldest are forgotten first) and each for :data:`SEEN_TTL` after it was
last seen (Kubernetes keeps events one hour by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from daemon.alert import Alert, fingerprint
from daemon.clock import NS_PER_SECOND

#: How long an event identity is remembered after it was last seen, so that a re-list
#: of an old event does not fire again (twice the API server's default --event-ttl).
SEEN_TTL = 2 * 3600 * NS_PER_SECOND
#: Event identities remembered at most (about 150 bytes each).
MAX_SEEN_EVENTS = 100_000


@attrs.frozen
class Occurrence:
    """One matched event, as the rules turned it into an alert."""

    labels: dict[str, str]
    annotations: dict[str, str]
    #: Nanoseconds the alert stays firing after this occurrence.
    resolve_after: int
    #: Who the event is (uid, or namespace/name) and what makes it a new occurrence
    #: (count and last-seen time); None for inputs without identity (audit events),
    #: which are always occurrences.
    identity: str | None = None
    version: tuple[Any, ...] = ()


def event_identity(event: Mapping[str, Any]) -> tuple[str | None, tuple[Any, ...]]:
    """``(identity, version)`` of a core/v1 Event, as :class:`Occurrence` wants them."""
    meta = event.get("metadata")
    identity: str | None = None
    if isinstance(meta, dict):
        uid = meta.get("uid")
        if isinstance(uid, str) and uid:
            identity = uid
        elif isinstance(meta.get("name"), str) and meta["name"]:
            identity = f"{meta.get('namespace', '')}/{meta['name']}"
    series = event.get("series")
    observed = series.get("lastObservedTime") if isinstance(series, dict) else None
    version = (
        event.get("count"),
        event.get("lastTimestamp"),
        observed,
        event.get("eventTime"),
    )
    return identity, version


@attrs.define(slots=True)
class _Firing:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: int
    ends_at: int


@attrs.define
class ResolveBook:
    """The firing event alerts and the event identities seen (pure; see module doc)."""

    firing: dict[int, _Firing] = attrs.field(factory=dict)
    #: identity → (hash of version, last seen); insertion order is oldest-seen first.
    #: The hash, not the version, so the table does not keep the events' timestamp
    #: strings alive (a collision only misses one recurrence).
    seen: dict[str, tuple[int, int]] = attrs.field(factory=dict)
    max_seen: int = MAX_SEEN_EVENTS

    def occur(self, occurrences: Sequence[Occurrence], now: int) -> list[Alert]:
        """The alerts to put for ``occurrences`` received at ``now``."""
        out: dict[int, Alert] = {}
        for occ in occurrences:
            if occ.identity is not None and not self._is_new(occ.identity, occ.version, now):
                continue
            fp = fingerprint(occ.labels)
            ends_at = now + occ.resolve_after
            current = self.firing.get(fp)
            if current is None or current.ends_at <= now:
                current = _Firing(occ.labels, occ.annotations, now, ends_at)
                self.firing[fp] = current
            else:
                current.annotations = occ.annotations
                current.ends_at = max(current.ends_at, ends_at)
            out[fp] = Alert(
                dict(current.labels),
                dict(current.annotations),
                current.starts_at,
                current.ends_at,
                "",
                now,
                False,
                fp,
            )
        self._forget_seen(now)
        return list(out.values())

    def _is_new(self, identity: str, version: tuple[Any, ...], now: int) -> bool:
        before = self.seen.pop(identity, None)
        digest = hash(version)
        self.seen[identity] = (digest, now)
        return before is None or before[0] != digest

    def _forget_seen(self, now: int) -> None:
        seen = self.seen
        while len(seen) > self.max_seen:
            del seen[next(iter(seen))]
        # Oldest first, so the walk stops at the first identity still fresh: a batch
        # costs what it expires, not the size of the table.
        horizon = now - SEEN_TTL
        expired = []
        for identity, (_, last) in seen.items():
            if last >= horizon:
                break
            expired.append(identity)
        for identity in expired:
            del seen[identity]

    def due(self, now: int) -> list[Alert]:
        """The alerts whose ``endsAt`` has come, resolved at it; they are forgotten."""
        out: list[Alert] = []
        for fp, f in list(self.firing.items()):
            if f.ends_at <= now:
                del self.firing[fp]
                out.append(
                    Alert(f.labels, f.annotations, f.starts_at, f.ends_at, "", now, False, fp)
                )
        return out

    def next_deadline(self) -> int | None:
        """The earliest ``endsAt`` of a firing alert, or None."""
        return min((f.ends_at for f in self.firing.values()), default=None)


__all__ = ["Occurrence", "ResolveBook", "event_identity"]
