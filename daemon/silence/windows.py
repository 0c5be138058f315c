"""Recurring silences in the store: which window silences to write, and when to look again.

Pure: takes the store and ``now``, returns :class:`~daemon.silence.state.Plan` values
that the caller journals and applies like any API write.

Theory of operation. A recurring silence has no record of its own. Each of its windows
is an ordinary silence (id :func:`~daemon.silence.recurring.window_silence_id`) whose
record also carries the :class:`~daemon.silence.recurring.RecurrenceSpec`. The journal,
the snapshot and gossip store and move those records as they move every silence, so the
definition survives a restart and reaches every peer with no machinery of its own, and
an Alertmanager peer sees each window as the plain silence it is.

Rules:

* The spec of a recurring silence is the one on its most recently updated record (ending
  a recurring silence rewrites every record it has, so that one wins everywhere).
* Every node keeps, for each running recurring silence, the windows that are open at
  some instant in ``[now, now + LOOKAHEAD)`` and the first window starting after ``now``,
  written (:func:`plan_windows`): the next window is written when the one before it
  opens, or a lookahead before it opens, whichever is sooner. So a peer has each window before it opens, and there is
  always a record that carries the spec, even between windows and long after the last
  one was collected. Two nodes writing the same window write the same silence.
* A window that exists (even expired by a user) is never written again; one that the
  store has already collected is over, so it is never needed again.
* :func:`plan_end` ends a recurring silence: open and pending windows expire now, and
  every record gets ``until = now``.
"""

from __future__ import annotations

import attrs

from daemon.silence.model import Silence, SilenceState
from daemon.silence.recurring import RecurrenceSpec, ScheduleError, window_silence_id
from daemon.silence.state import INVALID_PREFIX, Plan, SilenceError, Silences, validate_silence

#: How far ahead windows are written; peers have them this long before they open.
LOOKAHEAD = 3600 * 1_000_000_000


def specs(store: Silences) -> dict[str, tuple[RecurrenceSpec, Silence]]:
    """Each recurring silence's current spec, with its most recently updated record."""
    found: dict[str, tuple[RecurrenceSpec, Silence]] = {}
    for s in store.recurring():
        spec = s.recurrence
        if spec is None:
            continue
        seen = found.get(spec.id)
        if seen is None or seen[1].updated_at < s.updated_at:
            found[spec.id] = (spec, s)
    return found


def _wanted(spec: RecurrenceSpec, now: int) -> list[tuple[int, int]]:
    """The windows that should exist for ``spec`` at ``now``."""
    try:
        rec = spec.recurrence()
    except ScheduleError:
        return []  # a peer's spec we cannot read; its own node keeps it going
    start = max(now, spec.since)
    out = list(rec.windows(start, max(start + 1, now + LOOKAHEAD)))
    nxt = rec.schedule.next_fire(max(now, spec.since - 1))
    if nxt is not None and all(begin != nxt for begin, _ in out):
        out.append((nxt, nxt + spec.duration))
    limit = spec.until
    # A window already open when the recurring silence begins counts (NM: a silence is
    # active if a fire happened within the last duration); it starts at ``since``.
    return [(b, e) for b, e in out if e > spec.since and (limit is None or b < limit)]


def window(template: Silence, spec: RecurrenceSpec, starts_at: int, now: int) -> Silence:
    """The silence of one window: the template's matchers and texts, the window's times
    (a window open when the recurring silence begins starts then, not before)."""
    return attrs.evolve(
        template,
        id=window_silence_id(spec.id, starts_at),
        starts_at=max(starts_at, spec.since),
        ends_at=starts_at + spec.duration,
        updated_at=now,
        recurrence=spec,
    )


def missing(
    store: Silences, spec: RecurrenceSpec, latest: Silence, now: int
) -> list[tuple[Silence, int]]:
    """The window records of one recurring silence that are missing at ``now``."""
    if spec.until is not None and spec.until <= now:
        return []
    records: list[tuple[Silence, int]] = []
    for begin, _ in _wanted(spec, now):
        if store.get(window_silence_id(spec.id, begin)) is not None:
            continue
        s = window(latest, spec, begin, now)
        if validate_silence(s) is None:
            records.append((s, s.ends_at + store.retention))
    return records


def plan_windows(store: Silences, now: int) -> Plan | None:
    """The window silences missing at ``now``, or None if none are."""
    records = [
        r for spec, latest in specs(store).values() for r in missing(store, spec, latest, now)
    ]
    return as_plan(records)


def as_plan(records: list[tuple[Silence, int]]) -> Plan | None:
    """``records`` as one write, None if there are none."""
    if not records:
        return None
    return Plan(records[0][0].id, tuple(records))


def plan_new(store: Silences, template: Silence, spec: RecurrenceSpec, now: int) -> Plan:
    """A new recurring silence: the windows it needs now (at least the next one).

    Error handling: :class:`SilenceError` if a window is not a valid silence (the
    template's matchers) or if no window would ever start.
    """
    records: list[tuple[Silence, int]] = []
    for begin, _ in _wanted(spec, now):
        s = window(template, spec, begin, now)
        reason = validate_silence(s)
        if reason is not None:
            raise SilenceError(INVALID_PREFIX + reason)
        records.append((s, s.ends_at + store.retention))
    if not records:
        raise SilenceError("recurring silence has no window before its end")
    return Plan(records[0][0].id, tuple(records))


def due(store: Silences, spec: RecurrenceSpec, now: int) -> int | None:
    """When :func:`missing` will next have something to write for ``spec``, absent other
    changes: a lookahead before its first window not written yet, or, if sooner, the
    start of the last one written (from then on the unwritten one is "the first window
    starting after now"); None if it will write no more."""
    if spec.until is not None and spec.until <= now:
        return None
    try:
        rec = spec.recurrence()
    except ScheduleError:
        return None
    written = None
    fire = rec.schedule.next_fire(max(now, spec.since - 1))
    while fire is not None and store.get(window_silence_id(spec.id, fire)) is not None:
        written, fire = fire, rec.schedule.next_fire(fire)
    if fire is None or (spec.until is not None and fire >= spec.until):
        return None
    at = fire - LOOKAHEAD if written is None else min(fire - LOOKAHEAD, written)
    return max(at, now)


def next_check(store: Silences, now: int) -> int | None:
    """The earliest :func:`due` time of all recurring silences."""
    times = [t for spec, _ in specs(store).values() if (t := due(store, spec, now)) is not None]
    return min(times, default=None)


def plan_end(store: Silences, recurring_id: str, now: int) -> Plan:
    """End a recurring silence: its pending and active windows expire, and every one of
    its records says so (``until = now``), so no node writes another window."""
    records: list[tuple[Silence, int]] = []
    for s in store:
        spec = s.recurrence
        if spec is None or spec.id != recurring_id:
            continue
        ended = attrs.evolve(spec, until=now if spec.until is None else min(spec.until, now))
        state = s.state(now)
        if state is SilenceState.ACTIVE:
            s = attrs.evolve(s, ends_at=now)
        elif state is SilenceState.PENDING:
            s = attrs.evolve(s, starts_at=now, ends_at=now)
        s = attrs.evolve(s, updated_at=now, recurrence=ended)
        records.append((s, s.ends_at + store.retention))
    records.sort(key=lambda r: r[0].starts_at)
    return Plan(records[0][0].id if records else "", tuple(records))


__all__ = [
    "LOOKAHEAD",
    "as_plan",
    "due",
    "missing",
    "next_check",
    "plan_end",
    "plan_new",
    "plan_windows",
    "specs",
    "window",
]
