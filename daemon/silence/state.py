"""Silences: the store, its state rules, validation, gossip merge and the mute cache.

Pure: no I/O, no trio; every operation takes ``now`` (Unix ns, see :mod:`daemon.clock`).

Rules (spec §1.8-1.10, §6, traps 10 and 11; Alertmanager 0.25 ``silence/silence.go``):

* States. Internally (muting, expiry, the update rule): pending while ``now < starts_at``,
  expired once ``now > ends_at``, active in between, both ends inclusive. The API shows
  a silence as active only while ``now < ends_at`` (:meth:`Silence.display_state`).
  Only active silences mute.
* :meth:`Silences.set` updates a silence in place (same ID) only if its matcher list is
  identical and it is not expired, and: when active, the new ``starts_at`` has the same
  Unix second and the new ``ends_at`` is not before now; when pending, the new
  ``starts_at`` is not before now. Anything else makes a new silence with a new ID
  (``starts_at`` clamped to ``now``) and expires the old one. Upstream expires the old
  one before validating the new one, so a rejected update loses the old silence; here
  the whole write is planned and validated first (:meth:`Silences.plan_set`) and a
  rejected request changes nothing.
* Writes are two steps so a durable caller can journal before anything is live:
  ``plan_set``/``plan_expire`` validate and return the records, :meth:`Silences.apply`
  stores them. ``set``/``expire`` do both at once.
* :meth:`Silences.expire`: active → ``ends_at = now``; pending → both ends ``now``;
  expired → unchanged (no error).
* Every stored silence expires from the store ``retention`` after its ``ends_at``
  (:meth:`Silences.gc`, inclusive). Gossip merge (:meth:`Silences.merge`) ignores records
  whose expiry is already past and replaces only with a strictly newer ``updated_at``.
  Local writes always replace: upstream routes them through the same merge, which drops
  a write made within the same nanosecond as the previous one; we do not copy that.

Theory of the live set. Only active silences can mute, so only they are consulted.
The store keeps a *horizon*, the latest ``now`` any :meth:`Silences.mutes` asked about,
and a :class:`~daemon.silence.index.MuteIndex` of exactly the silences active at it.
Silences pending at the horizon wait in a heap by start; indexed ones sit in a heap by
end. Moving the horizon forward pops both heaps: a silence starting or ending is a
step of the change log like a write. Expired silences leave the index, so however many there are,
an alert never meets them. A query behind the horizon (a flush asks at its start time,
which an ingest may have passed) also needs the silences that ended in between: those
that left the index less than :data:`_LOOKBACK` ago are kept sorted by end for it.

Theory of the mute cache (:meth:`Silences.mutes`). For each alert fingerprint we keep
the IDs of the matching active silences, the step they were computed at, and
the wall-time window ``[computed_at, recheck_at)`` during which none of them changes
state by time alone (``recheck_at`` is the instant after the earliest end). A repeat
query inside the window with an unchanged step is a dict lookup. When only time
moved, just the cached IDs are re-checked. When the step moved (a write, a merge, or
a silence starting or ending), the change log says which silence IDs changed since; only
those are matched against the labels, unless there are many, and then the index is asked.

Invariants: ``version`` increases on every change of the stored set, ``_step`` on every
change of the stored set or the live set; ``_changes`` holds the ID changed by each step
from ``_changes_base`` on;
the index holds exactly the stored silences active at the horizon; every stored silence
pending at the horizon is in ``_starts``.
"""

from __future__ import annotations

import bisect
import builtins
import heapq
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

import attrs
from prometheus_client import Counter, Gauge, Histogram, Summary

from cluster.protowire import write_delimited
from daemon import metrics
from daemon.alert import Alert, untrack
from daemon.clock import ZERO_TIME
from daemon.gocompat import regexp as goregex
from daemon.gocompat.strconv import go_quote
from daemon.matcher import Matcher, MatchType, is_valid_label_name
from daemon.silence import codec as silencepb
from daemon.silence.index import MuteIndex, regex_literals
from daemon.silence.model import Silence, SilenceState

#: Alertmanager's ``--data.retention`` default, 120h, in nanoseconds.
DEFAULT_RETENTION = 120 * 3600 * 1_000_000_000

#: Validation errors read ``silence invalid: <reason>`` in 0.25 (``invalid silence:`` in 0.28).
INVALID_PREFIX = "silence invalid: "

_NS_PER_SECOND = 1_000_000_000
_FOREVER = 1 << 62
#: Beyond this many writes since a cache entry was computed, rescan instead of patching.
_PATCH_LIMIT = 64
#: How many change-log entries to keep.
_CHANGE_LOG = 4096
#: Fingerprints with cached marks; the cache is dropped wholesale when it grows past this.
_CACHE_LIMIT = 200_000
#: How far behind the horizon a query still finds ended silences without a full scan.
#: Flushes ask at their start time, a little behind the newest ingest; a query further
#: back (a clock stepped backwards) scans every silence instead.
_LOOKBACK = 300 * _NS_PER_SECOND


class SilenceError(ValueError):
    """A silence that cannot be stored; ``str()`` is Alertmanager's message."""


class SilenceLimitError(SilenceError):
    """A write that would take the store past a tenant's silence limits; ``limit`` is
    the limit's name (``max_silences_count`` or ``max_silence_size_bytes``)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@attrs.define
class SilenceLimits:
    """A tenant's silence limits (0: none), read at every local write; ``on_breach``
    hears the limit's name of each refused write."""

    max_silences_count: int = 0
    max_silence_size_bytes: int = 0
    on_breach: Callable[[str], None] = lambda _: None


class SilenceNotFound(LookupError):
    """An ID that is not in the store."""

    def __init__(self) -> None:
        super().__init__("silence not found")

    def __str__(self) -> str:
        return "silence not found"


def _regex_error(pattern: str) -> str | None:
    # Alertmanager validates with regexp.Compile of the pattern as given (not anchored).
    try:
        goregex.check(pattern)
    except goregex.GoRegexError as exc:
        return str(exc)
    return None


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def validate_matcher(m: Matcher) -> str | None:
    """Upstream ``ValidateMatcher``: the reason a matcher is invalid, or None."""
    if not is_valid_label_name(m.name):
        return f"invalid label name {go_quote(m.name)}"
    if m.type in (MatchType.EQUAL, MatchType.NOT_EQUAL):
        if _has_surrogate(m.value):
            return f"invalid label value {go_quote(m.value)}"
        return None
    reason = _regex_error(m.value)
    if reason is not None:
        return f"invalid regular expression {go_quote(m.value)}: {reason}"
    return None


def _matches_empty(m: Matcher) -> bool:
    # Negative matchers never count, even when they would match an absent label.
    if m.type is MatchType.EQUAL:
        return m.value == ""
    if m.type is MatchType.REGEXP:
        return m.matches("")
    return False


def validate_silence(s: Silence) -> str | None:
    """Upstream ``validateSilence``: the reason (without prefix) or None."""
    if not s.id:
        return "ID missing"
    if not s.matchers:
        return "at least one matcher required"
    all_empty = True
    for i, m in enumerate(s.matchers):
        reason = validate_matcher(m)
        if reason is not None:
            return f"invalid label matcher {i}: {reason}"
        all_empty = all_empty and _matches_empty(m)
    if all_empty:
        return "at least one matcher must not match the empty string"
    if s.starts_at == ZERO_TIME:
        return "invalid zero start timestamp"
    if s.ends_at == ZERO_TIME:
        return "invalid zero end timestamp"
    if s.ends_at < s.starts_at:
        return "end time must not be before start time"
    if s.updated_at == ZERO_TIME:
        return "invalid zero update timestamp"
    return None


def can_update(old: Silence, new: Silence, now: int) -> bool:
    """Whether posting ``new`` over ``old`` keeps the ID (trap 10)."""
    if old.matchers != new.matchers:
        return False
    state = old.state(now)
    if state is SilenceState.ACTIVE:
        return new.starts_at // _NS_PER_SECOND == old.starts_at // _NS_PER_SECOND and not (
            new.ends_at < now
        )
    if state is SilenceState.PENDING:
        return not new.starts_at < now
    return False


_STATE_ORDER = {SilenceState.ACTIVE: 0, SilenceState.PENDING: 1, SilenceState.EXPIRED: 2}


def api_sort_key(s: Silence, now: int) -> tuple[int, int]:
    """GET /silences order: active by end, pending by start, expired by end descending."""
    state = s.display_state(now)
    if state is SilenceState.ACTIVE:
        return (0, s.ends_at)
    if state is SilenceState.PENDING:
        return (1, s.starts_at)
    return (2, -s.ends_at)


def filter_matches(s: Silence, filters: Sequence[Matcher]) -> bool:
    """Syntactic filter (trap 11): each filter equals (name, type, value) one of the matchers."""
    return all(f in s.matchers for f in filters)


# --- metrics (spec §11) ---------------------------------------------------------------

queries_total = metrics.per_pipeline(
    Counter(
        "alertmanager_silences_queries",
        "How many silence queries were received.",
        registry=metrics.REGISTRY,
    )
)
query_errors_total = metrics.per_pipeline(
    Counter(
        "alertmanager_silences_query_errors",
        "How many silence received queries did not succeed.",
        registry=metrics.REGISTRY,
    )
)
query_duration = metrics.per_pipeline(
    Histogram(
        "alertmanager_silences_query_duration_seconds",
        "Duration of silence query evaluation.",
        buckets=metrics.GO_DEFAULT_BUCKETS,
        registry=metrics.REGISTRY,
    )
)
gc_duration = metrics.per_pipeline(
    Summary(
        "alertmanager_silences_gc_duration_seconds",
        "Duration of the last silence garbage collection cycle.",
        registry=metrics.REGISTRY,
    )
)
snapshot_duration = metrics.per_pipeline(
    Summary(
        "alertmanager_silences_snapshot_duration_seconds",
        "Duration of the last silence snapshot.",
        registry=metrics.REGISTRY,
    )
)
snapshot_size = metrics.per_pipeline(
    Gauge(
        "alertmanager_silences_snapshot_size_bytes",
        "Size of the last silence snapshot in bytes.",
        registry=metrics.REGISTRY,
    )
)
gossip_propagated = metrics.per_pipeline(
    Counter(
        "alertmanager_silences_gossip_messages_propagated",
        "Number of received gossip messages that have been further gossiped.",
        registry=metrics.REGISTRY,
    )
)
maintenance_total = metrics.per_pipeline(
    Counter(
        "alertmanager_silences_maintenance",
        "How many maintenances were executed for silences.",
        registry=metrics.REGISTRY,
    )
)
maintenance_errors_total = metrics.per_pipeline(
    Counter(
        "alertmanager_silences_maintenance_errors",
        "How many maintenances were executed for silences that failed.",
        registry=metrics.REGISTRY,
    )
)


@attrs.frozen
class _Series:
    """One pipeline's children of the silence families, looked up once (a lookup takes
    a lock and a dict probe, and :meth:`Silences.mutes` is on the notify path)."""

    queries: Counter
    query_duration: Histogram
    gc_duration: Summary
    snapshot_duration: Summary
    snapshot_size: Gauge
    maintenance: Counter

    @classmethod
    def of(cls, tenant: str | None) -> _Series:
        """``tenant``'s children (None: the global pipeline's)."""
        return cls(
            metrics.pipeline_series(queries_total, tenant),
            metrics.pipeline_series(query_duration, tenant),
            metrics.pipeline_series(gc_duration, tenant),
            metrics.pipeline_series(snapshot_duration, tenant),
            metrics.pipeline_series(snapshot_size, tenant),
            metrics.pipeline_series(maintenance_total, tenant),
        )


# --- the store --------------------------------------------------------------------------


@attrs.frozen
class Plan:
    """A validated local write, not applied yet: the records to store, in order."""

    silence_id: str
    records: tuple[tuple[Silence, int], ...]


@attrs.define(slots=True)
class _Marks:
    """Cached silence IDs of one fingerprint; valid for ``computed_at <= now < recheck_at``.

    ``pending`` holds the matching silences that were live at the horizon but had not
    started at ``computed_at`` (a query behind the horizon); the rest of the pending
    silences were never consulted, and their start is a step of the change log.
    Never changed once made: the alerts nothing matches at one step and time share one
    (:meth:`Silences._nothing`).
    """

    step: int
    active: tuple[str, ...]
    pending: tuple[str, ...]
    computed_at: int
    recheck_at: int


def _new_id() -> str:
    return str(uuid.uuid4())


#: Kept under its old name for callers and tests of the literal expansion.
_regex_literals = regex_literals


_L = TypeVar("_L")


def _listen(listeners: list[_L], listener: _L) -> Callable[[], None]:
    """Add ``listener`` to ``listeners``; returns the function that takes it out again."""
    listeners.append(listener)

    def unsubscribe() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return unsubscribe


@attrs.define
class Silences:
    """The silence store (mutable state; silences are immutable values)."""

    retention: int = DEFAULT_RETENTION
    new_id: Callable[[], str] = _new_id
    #: Bumped on every change of the stored set.
    version: int = 0
    _entries: dict[str, tuple[Silence, int]] = attrs.field(factory=dict, alias="_entries")
    _changes: list[str] = attrs.field(factory=list, alias="_changes")
    _changes_base: int = attrs.field(default=0, alias="_changes_base")
    _marks: dict[int, _Marks] = attrs.field(factory=dict, alias="_marks")
    #: The marks of "nothing matches", shared by the alerts computed at one step and time.
    _nothing_marks: _Marks | None = attrs.field(default=None, alias="_nothing_marks")
    #: Observers of every stored record (durable journal, gossip), each handed one
    #: length-delimited ``MeshSilence``; they run synchronously inside the write or
    #: merge, so they must only queue work, never block.
    _listeners: list[tuple[Callable[[bytes], None], bool]] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )
    _recurring_listeners: list[Callable[[], None]] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )
    #: Told after every change (see :meth:`subscribe_changes`).
    _change_listeners: list[Callable[[], None]] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )
    #: The last :meth:`_changes_since` answer: (from step, at step, IDs). After a
    #: change every cached fingerprint asks the same question.
    _since_memo: tuple[int, int, frozenset[str]] | None = attrs.field(
        default=None, alias="_since_memo"
    )
    #: A tenant's limits on local writes (peers' records are never refused).
    limits: SilenceLimits = attrs.field(factory=SilenceLimits)
    #: The tenant whose pipeline this store is (None: the global one), for its metrics.
    tenant: str | None = None
    _series: _Series = attrs.field(
        default=attrs.Factory(lambda self: _Series.of(self.tenant), takes_self=True),
        init=False,
        eq=False,
        repr=False,
    )
    #: The live set (see "Theory of the live set" above): the index holds exactly the
    #: silences active at ``_horizon``.
    _horizon: int = attrs.field(default=0, init=False, eq=False, repr=False)
    #: Bumped on every change of the stored set and of the live set; the change log
    #: and the mute cache count in these steps.
    _step: int = attrs.field(default=0, init=False, eq=False, repr=False)
    _live: MuteIndex = attrs.field(factory=MuteIndex, init=False, eq=False, repr=False)
    #: (starts_at, seq, silence) of silences pending at the horizon.
    _starts: list[tuple[int, int, Silence]] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )
    #: (ends_at, seq, silence) of the indexed silences.
    _ends: list[tuple[int, int, Silence]] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )
    #: (ends_at, id) of silences that ended before the horizon but less than
    #: :data:`_LOOKBACK` before it, sorted: a query behind the horizon needs them.
    _recent: list[tuple[int, str]] = attrs.field(factory=list, init=False, eq=False, repr=False)
    _seq: Iterator[int] = attrs.field(factory=itertools.count, init=False, eq=False, repr=False)
    #: IDs of the stored silences that carry a ``recurrence``. The recurring actor plans
    #: after every write; walking the whole store for these cost 12% of the event loop's
    #: time under a stream of silence POSTs (py-spy, 1,000+ silences).
    _recurring: builtins.set[str] = attrs.field(
        factory=builtins.set, init=False, eq=False, repr=False
    )

    def subscribe(
        self, listener: Callable[[bytes], None], *, local_writes: bool = True
    ) -> Callable[[], None]:
        """Call ``listener`` with every record a local write or a merge stores (not with
        what :meth:`load_snapshot` loads); returns the unsubscribe function.

        With ``local_writes`` False only merged records reach it: the durable journal,
        whose writer journals each local :class:`Plan` before applying it.
        """
        return _listen(self._listeners, (listener, local_writes))

    def subscribe_recurring(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each stored record that carries a ``recurrence`` or
        replaces one that did (a local write or a merge); returns the unsubscribe function.

        The recurring actor plans only when such a record changes. Woken by every
        silence instead, it took a task step per plain silence POST for nothing.
        """
        return _listen(self._recurring_listeners, listener)

    def subscribe_changes(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after every change of the stored or live silences (a write,
        a merge, an expiry, GC); returns the unsubscribe function. It runs inside the
        change, so it must only note it (the index warmer sets an event)."""
        return _listen(self._change_listeners, listener)

    def warm_index(self, now: int) -> bool:
        """Bring the live set up to ``now`` (as a query at ``now`` would: silences
        written since the last query join the index here), then rebuild one of the
        index's stale RE2 sets, if any (see
        :meth:`daemon.silence.index.MuteIndex.warm_step`); whether one was."""
        if now > self._horizon:
            self._advance(now)
        return self._live.warm_step()

    # --- reading ---

    def get(self, silence_id: str) -> Silence | None:
        entry = self._entries.get(silence_id)
        return entry[0] if entry is not None else None

    def expires_at(self, silence_id: str) -> int | None:
        entry = self._entries.get(silence_id)
        return entry[1] if entry is not None else None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Silence]:
        return iter([s for s, _ in self._entries.values()])

    def recurring(self) -> list[Silence]:
        """The stored silences that carry a ``recurrence`` (templates and windows)."""
        return [self._entries[sid][0] for sid in self._recurring]

    def query(self, filters: Sequence[Matcher], now: int) -> list[Silence]:
        """GET /silences: every stored silence passing the syntactic filters, API-sorted."""
        start = time.perf_counter()
        self._series.queries.inc()
        found = [s for s, _ in self._entries.values() if filter_matches(s, filters)]
        found.sort(key=lambda s: api_sort_key(s, now))
        self._series.query_duration.observe(time.perf_counter() - start)
        return found

    def count_by_state(self, now: int) -> dict[SilenceState, int]:
        counts = dict.fromkeys(SilenceState, 0)
        for s, _ in self._entries.values():
            counts[s.state(now)] += 1
        return counts

    # --- writing ---

    def set(self, silence: Silence, now: int) -> str:
        """Create or update a silence (spec §1.9) at once; returns its ID.

        Error handling: as :meth:`plan_set`; nothing changes then.
        """
        return self.apply(self.plan_set(silence, now))

    def expire(self, silence_id: str, now: int) -> None:
        """Expire a silence now (DELETE); a no-op for an expired one.

        Error handling: :class:`SilenceNotFound` for an unknown ID.
        """
        self.apply(self.plan_expire(silence_id, now))

    def plan_set(self, silence: Silence, now: int) -> Plan:
        """What :meth:`set` would store, validated in full; changes nothing.

        Error handling: :class:`SilenceNotFound` for an unknown non-empty ID,
        :class:`SilenceError` (``silence invalid: …``) for an invalid silence.
        """
        prev = self.get(silence.id) if silence.id else None
        if silence.id and prev is None:
            raise SilenceNotFound()
        if prev is not None and can_update(prev, silence, now):
            updated = attrs.evolve(silence, updated_at=now)
            self._check(updated)
            self._check_limits(updated, adds=False, now=now)
            return Plan(updated.id, ((updated, self._expiry(updated)),))
        created = attrs.evolve(
            silence,
            id=self.new_id(),
            starts_at=max(silence.starts_at, now),
            updated_at=now,
        )
        self._check(created)
        # Replacing a silence that is not expired yet expires it: no more silences.
        self._check_limits(
            created, adds=prev is None or prev.state(now) is SilenceState.EXPIRED, now=now
        )
        records: list[tuple[Silence, int]] = []
        if prev is not None:
            records.extend(self.plan_expire(prev.id, now).records)
        records.append((created, self._expiry(created)))
        return Plan(created.id, tuple(records))

    def plan_expire(self, silence_id: str, now: int) -> Plan:
        """What :meth:`expire` would store (nothing for an expired silence).

        Error handling: :class:`SilenceNotFound` for an unknown ID.
        """
        s = self.get(silence_id)
        if s is None:
            raise SilenceNotFound()
        state = s.state(now)
        if state is SilenceState.EXPIRED:
            return Plan(silence_id, ())
        if state is SilenceState.ACTIVE:
            s = attrs.evolve(s, ends_at=now, updated_at=now)
        else:
            s = attrs.evolve(s, starts_at=now, ends_at=now, updated_at=now)
        return Plan(silence_id, ((s, self._expiry(s)),))

    def apply(self, plan: Plan, encoded: Sequence[bytes] | None = None) -> str:
        """Store a planned local write (every listener hears it); returns its silence ID.

        ``encoded``, if given, is each record's ``MeshSilence`` encoding as the journal
        wrote it: the listeners get it framed rather than a second encoding.
        """
        if plan.records:
            # A local write happens at its records' updated_at (the plans set it to the
            # write's now). Bringing the live set there first, as a query then would, lets
            # a silence that starts at once join the index at its write (a few us)
            # instead of in the next flush: issue 15's 1,000 silences posted just before
            # a burst of alerts joined in its first flush (4 ms of one scheduler step).
            at = plan.records[-1][0].updated_at
            if at > self._horizon:
                self._advance(at)
        for k, (s, expires_at) in enumerate(plan.records):
            self._put(s, expires_at, local=True, encoded=None if encoded is None else encoded[k])
        return plan.silence_id

    def merge(self, silence: Silence, expires_at: int, now: int) -> bool:
        """Merge a peer's record; returns whether the store changed (then re-gossip it)."""
        if expires_at < now:
            return False
        prev = self.get(silence.id)
        if prev is not None and not prev.updated_at < silence.updated_at:
            return False
        self._put(silence, expires_at)
        return True

    def merge_bytes(self, data: bytes, now: int) -> int:
        """Merge concatenated delimited ``MeshSilence`` records; how many changed us.

        Each record that changed the store goes to the listeners, as any stored record.

        Error handling: :class:`~cluster.errors.DecodeError` for bytes that do not parse
        (nothing is merged then).
        """
        records = silencepb.decode_state(data)
        return sum(self.merge(silence, expires_at, now) for silence, expires_at in records)

    def gc(self, now: int) -> int:
        """Delete silences whose retention ran out (``expires_at <= now``); how many."""
        start = time.perf_counter()
        doomed = [sid for sid, (_, exp) in self._entries.items() if exp <= now]
        for sid in doomed:
            self._remove(sid)
        self._series.gc_duration.observe(time.perf_counter() - start)
        return len(doomed)

    # --- persistence and gossip ---

    def marshal(self) -> bytes:
        """The whole state as concatenated delimited ``MeshSilence`` records (snapshot format)."""
        start = time.perf_counter()
        data = silencepb.encode_state((s, exp) for s, exp in self._entries.values())
        self._series.snapshot_duration.observe(time.perf_counter() - start)
        return data

    def load_snapshot(self, data: bytes) -> None:
        """Replace the state with a snapshot's records (legacy ``comments`` upgraded).

        Error handling: :class:`~cluster.errors.DecodeError`; the store is unchanged then.
        """
        records = silencepb.decode_state(data)
        self._entries.clear()
        self._live = MuteIndex()
        self._starts.clear()
        self._ends.clear()
        self._recent.clear()
        self._recurring.clear()
        for silence, expires_at in records:
            self._entries[silence.id] = (silence, expires_at)
            if silence.recurrence is not None:
                self._recurring.add(silence.id)
        for silence, _ in self._entries.values():
            self._place(silence)
        self.version += 1
        self._step += 1
        self._changes.clear()
        self._changes_base = self._step
        self._marks.clear()

    def maintenance(self, now: int) -> bytes:
        """GC, then the snapshot to write (``<storage>/silences``)."""
        self._series.maintenance.inc()
        self.gc(now)
        data = self.marshal()
        self._series.snapshot_size.set(len(data))
        return data

    def state_samples(self, now: int) -> list[tuple[tuple[str, ...], float]]:
        """``alertmanager_silences{state}`` samples at ``now``."""
        return [((state.value,), float(n)) for state, n in self.count_by_state(now).items()]

    # --- muting ---

    def mutes(self, labels: Mapping[str, str], fingerprint: int, now: int) -> list[str]:
        """IDs of the active silences matching ``labels`` at ``now``, sorted.

        ``fingerprint`` must be the label set's fingerprint: it keys the cache.
        """
        return self._mutes(labels, fingerprint, now, None)

    def mutes_many(self, alerts: Sequence[Alert], now: int) -> list[list[str]]:
        """``[mutes(a.labels, a.fingerprint, now) for a in alerts]``, with the query
        metrics updated once for the batch (a flush asks for every alert of its group)."""
        durations: list[float] = []
        if now > self._horizon:
            self._advance(now)
        if self._live and now == self._horizon:
            found = self._mutes_at_horizon(alerts, now, durations)
        else:
            mutes = self._mutes
            found = [mutes(a.labels, a.fingerprint, now, durations) for a in alerts]
        if durations:
            self._count_queries(durations)
        return found

    def _mutes_at_horizon(
        self, alerts: Sequence[Alert], now: int, durations: list[float]
    ) -> list[list[str]]:
        """:meth:`mutes_many` at the horizon, with silences live: the alerts with no
        marks yet (a flush of new alerts, the hot path) are looked up in one pass, as
        :meth:`_mutes` would one by one (at the horizon its ``_consulted`` is the index's
        candidates); the others go through :meth:`_mutes`. The batch's time is shared
        evenly among its queries in the duration histogram."""
        marks = self._marks
        fresh: dict[int, Alert] = {}
        firsts: list[bool] = []
        for alert in alerts:
            fp = alert.fingerprint
            first = fp not in marks and fp not in fresh
            if first:
                fresh[fp] = alert
            firsts.append(first)
        answers: dict[int, list[str]] = {}
        if fresh:
            start = time.perf_counter()
            new = list(fresh.values())
            mark, matching = self._mark, self._matching
            for alert, found in zip(
                new, self._live.candidates_many([a.labels for a in new]), strict=True
            ):
                labels = alert.labels
                answers[alert.fingerprint] = mark(
                    alert.fingerprint, matching(found, labels, now) if found else (), now
                )
            share = (time.perf_counter() - start) / len(new)
            durations.extend([share] * len(new))
        # The rest after the new ones: a fingerprint twice in one batch is then a cache
        # hit the second time, as it is one by one.
        mutes = self._mutes
        return [
            answers[alert.fingerprint]
            if first
            else mutes(alert.labels, alert.fingerprint, now, durations)
            for alert, first in zip(alerts, firsts, strict=True)
        ]

    def _count_queries(self, durations: list[float]) -> None:
        series = self._series
        series.queries.inc(len(durations))
        metrics.observe_many(series.query_duration, durations)

    def _mutes(
        self,
        labels: Mapping[str, str],
        fingerprint: int,
        now: int,
        durations: list[float] | None,
    ) -> list[str]:
        """:meth:`mutes`; a query that consulted the index adds its duration to
        ``durations``, or counts itself when that is None (answers from the cache are
        not queries)."""
        if now > self._horizon:
            self._advance(now)
        marks = self._marks.get(fingerprint)
        if marks is not None and marks.step == self._step:
            if marks.computed_at <= now < marks.recheck_at:
                return list(marks.active)
            if marks.computed_at <= now:
                # Only time moved: the matching set is unchanged, states may not be.
                return self._mark(fingerprint, marks.active + marks.pending, now)
        if not self._live and self._none_ended_since(now):
            # No silence is active at ``now``: none at the horizon, and none ended between
            # ``now`` and the horizon (flushes run concurrently, so a query may be a little
            # behind the horizon another one moved). Whatever the labels, nothing mutes:
            # the usual case with no silences, or only expired or pending ones. Like a
            # cache hit above it is answered without consulting anything, and like one it
            # is not counted as a query; nothing is cached: a later query recomputes from
            # scratch or from older marks, whose step the change log still answers for.
            return []
        start = time.perf_counter()
        candidates: Iterable[str]
        since = self._changes_since(marks.step) if marks is not None else None
        if marks is not None and since is not None and marks.computed_at <= now:
            keep = set(marks.active + marks.pending) - since
            candidates = keep | self._matching(since, labels, now)
        else:
            consulted = self._consulted(labels, now)
            candidates = self._matching(consulted, labels, now) if consulted else ()
        result = self._mark(fingerprint, candidates, now)
        if durations is None:
            self._count_queries([time.perf_counter() - start])
        else:
            durations.append(time.perf_counter() - start)
        return result

    def forget(self, fingerprint: int) -> None:
        """Drop cached marks of an alert that left the store."""
        self._marks.pop(fingerprint, None)

    # --- internals ---

    def _check(self, s: Silence) -> None:
        reason = validate_silence(s)
        if reason is not None:
            raise SilenceError(INVALID_PREFIX + reason)

    def _check_limits(self, s: Silence, *, adds: bool, now: int) -> None:
        """Mimir's (and Alertmanager 0.28's) silence limits: the encoded size of the
        silence, and the count of silences not yet expired."""
        limits = self.limits
        if limits.max_silence_size_bytes:
            size = len(silencepb.encode_mesh_silence(s, self._expiry(s)))
            if size > limits.max_silence_size_bytes:
                limits.on_breach("max_silence_size_bytes")
                raise SilenceLimitError(
                    "max_silence_size_bytes",
                    f"silence exceeded maximum size: {size} bytes "
                    f"(limit: {limits.max_silence_size_bytes} bytes)",
                )
        if adds and limits.max_silences_count:
            live = sum(
                1 for t, _ in self._entries.values() if t.state(now) is not SilenceState.EXPIRED
            )
            if live >= limits.max_silences_count:
                limits.on_breach("max_silences_count")
                raise SilenceLimitError(
                    "max_silences_count",
                    f"exceeded maximum number of silences: {live} "
                    f"(limit: {limits.max_silences_count})",
                )

    def _expiry(self, s: Silence) -> int:
        return s.ends_at + self.retention

    def _put(
        self, s: Silence, expires_at: int, *, local: bool = False, encoded: bytes | None = None
    ) -> None:
        prev = self._entries.get(s.id)
        if prev is not None:
            self._live.remove(s.id)
        self._entries[s.id] = (s, expires_at)
        recurring = s.recurrence is not None or s.id in self._recurring
        if s.recurrence is not None:
            self._recurring.add(s.id)
        else:
            self._recurring.discard(s.id)
        self._place(s)
        self._changed(s.id)
        if recurring:
            for wake in self._recurring_listeners:
                wake()
        listeners = [f for f, wants_local in self._listeners if wants_local or not local]
        if listeners:
            record = (
                silencepb.encode_delimited(s, expires_at)
                if encoded is None
                else write_delimited(encoded)
            )
            for listener in listeners:
                listener(record)

    def _remove(self, sid: str) -> None:
        self._entries.pop(sid)
        self._recurring.discard(sid)
        self._live.remove(sid)
        self._changed(sid)

    def _changed(self, sid: str, *, stored: bool = True) -> None:
        """Log a change of ``sid``: a stored record (also a :attr:`version` step) or only
        its place in the live set."""
        if stored:
            self.version += 1
        self._step += 1
        self._changes.append(sid)
        if len(self._changes) > 2 * _CHANGE_LOG:
            del self._changes[:_CHANGE_LOG]
            self._changes_base += _CHANGE_LOG
        for listener in self._change_listeners:
            listener()

    def _changes_since(self, step: int) -> frozenset[str] | None:
        """IDs changed after ``step``, or None if too many or no longer logged."""
        if step < self._changes_base or self._step - step > _PATCH_LIMIT:
            return None
        memo = self._since_memo
        if memo is not None and memo[0] == step and memo[1] == self._step:
            return memo[2]
        since = frozenset(self._changes[step - self._changes_base :])
        self._since_memo = (step, self._step, since)
        return since

    # --- the live set ---

    def _current(self, s: Silence) -> bool:
        """Whether ``s`` is still the stored record of its ID (heaps delete lazily)."""
        entry = self._entries.get(s.id)
        return entry is not None and entry[0] is s

    def _place(self, s: Silence) -> None:
        """File a just-stored record by its state at the horizon."""
        horizon = self._horizon
        if s.ends_at < horizon:
            if s.ends_at >= horizon - _LOOKBACK:
                bisect.insort(self._recent, (s.ends_at, s.id))
        elif s.starts_at > horizon:
            heapq.heappush(self._starts, (s.starts_at, next(self._seq), s))
        else:
            self._live.add(s)
            heapq.heappush(self._ends, (s.ends_at, next(self._seq), s))

    def _advance(self, now: int) -> None:
        """Move the horizon forward to ``now``: silences start and end, each a step."""
        starts, ends = self._starts, self._ends
        while starts and starts[0][0] <= now:
            _, _, s = heapq.heappop(starts)
            if not self._current(s):
                continue
            if s.ends_at >= now:
                self._live.add(s)
                heapq.heappush(ends, (s.ends_at, next(self._seq), s))
            else:
                # Active only between two queries: one behind the horizon may need it.
                bisect.insort(self._recent, (s.ends_at, s.id))
            self._changed(s.id, stored=False)
        while ends and ends[0][0] < now:
            _, _, s = heapq.heappop(ends)
            if not self._current(s) or s.id not in self._live:
                continue
            self._live.remove(s.id)
            bisect.insort(self._recent, (s.ends_at, s.id))
            self._changed(s.id, stored=False)
        self._horizon = now
        recent = self._recent
        if recent and recent[0][0] < now - _LOOKBACK:
            del recent[: bisect.bisect_left(recent, (now - _LOOKBACK, ""))]

    def _none_ended_since(self, now: int) -> bool:
        """Whether no silence that was active at ``now`` has ended by the horizon (as
        :meth:`_consulted` looks behind it; a query far behind it is never answered so)."""
        horizon = self._horizon
        if now >= horizon:
            return True
        if now < horizon - _LOOKBACK:
            return False
        recent = self._recent
        return not recent or recent[-1][0] < now

    def _consulted(self, labels: Mapping[str, str], now: int) -> Iterable[str]:
        """The silences that may be active at ``now`` and match ``labels``: the index's
        candidates, and behind the horizon also the silences that ended since ``now``."""
        found = self._live.candidates(labels)
        horizon = self._horizon
        if now >= horizon:
            return found
        if now >= horizon - _LOOKBACK:
            recent = self._recent
            found.update(sid for _, sid in recent[bisect.bisect_left(recent, (now, "")) :])
            return found
        # Far behind the horizon (a clock stepped back): every silence live then.
        return [sid for sid, (s, _) in self._entries.items() if s.ends_at >= now]

    def _matching(
        self, sids: Iterable[str], labels: Mapping[str, str], now: int
    ) -> builtins.set[str]:
        """Those of ``sids`` that are stored, not over at ``now``, live by the horizon,
        and match ``labels``; states come first, so over or future silences cost no
        matching."""
        out: builtins.set[str] = set()
        horizon = self._horizon
        entries = self._entries
        for sid in sids:
            entry = entries.get(sid)
            if entry is None:
                continue
            s = entry[0]
            if s.ends_at < now or s.starts_at > horizon:
                continue
            if s.matches(labels):
                out.add(sid)
        return out

    def _mark(self, fingerprint: int, candidates: Iterable[str], now: int) -> list[str]:
        """Split matching candidates by state at ``now`` and cache the result."""
        active: list[str] = []
        pending: list[str] = []
        recheck_at = _FOREVER
        marks = self._marks
        if len(marks) >= _CACHE_LIMIT and fingerprint not in marks:
            marks.clear()
        if not candidates:
            # Most alerts: nothing matches, and nothing to sort.
            marks[fingerprint] = self._nothing(now)
            return active
        for sid in candidates:
            entry = self._entries.get(sid)
            if entry is None:
                continue
            s = entry[0]
            if now < s.starts_at:
                pending.append(sid)
                recheck_at = min(recheck_at, s.starts_at)
            elif now <= s.ends_at:
                active.append(sid)
                recheck_at = min(recheck_at, s.ends_at + 1)
        active.sort()
        pending.sort()
        # Never in a cycle (str tuples, ints): untracked, so full
        # GC passes skip the 100k marks.
        marks[fingerprint] = untrack(
            _Marks(self._step, tuple(active), tuple(pending), now, recheck_at)
        )
        return active

    def _nothing(self, now: int) -> _Marks:
        """The marks of an alert no silence matches at ``now`` (shared: a flush of new
        alerts makes one, not one per alert)."""
        shared = self._nothing_marks
        if shared is None or shared.step != self._step or shared.computed_at != now:
            shared = self._nothing_marks = untrack(_Marks(self._step, (), (), now, _FOREVER))
        return shared
