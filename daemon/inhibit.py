"""Inhibition: alerts that mute other alerts (spec §7, trap 12). Pure: no trio, no I/O.

Rules (Alertmanager 0.25 ``inhibit`` package):

* Each rule keeps a *source cache*: every alert ever stored whose labels match the rule's
  source matchers, re-posts replacing the earlier copy by fingerprint. Resolved sources
  stay cached until :meth:`Inhibitor.gc`; they are merely skipped when judging.
* A target label set T is judged rule by rule, in config order. A rule applies only if
  its target matchers match T. A cached source S then inhibits T iff S is firing at
  ``now``; every ``equal`` label has the same value on both, a missing label reading as
  ``""`` (so "missing on both" is equal); and, only when T also matches the source
  matchers, S does *not* match the target matchers. That last, two-sided rule means an
  alert matching both sides is never inhibited by another such alert, nor by itself.
* Whether S is itself silenced or inhibited is not checked: a silenced source inhibits.
* The first rule with an inhibiting source wins; its fingerprint is the ``inhibitedBy``.

Theory of operation: a label set's labels never change for its fingerprint, so both
the tuple of ``equal`` values and "matches the target side" are fixed per source when
it is first cached. Each rule indexes its sources by that tuple, so a lookup reads only
the sources that could pass the ``equal`` test, in the order they were first cached
(upstream walks a Go map, whose order is random: any inhibiting source is as correct).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from daemon.alert import Alert, format_fingerprint
from daemon.config.model import InhibitRule
from daemon.matcher import matches_all


@attrs.define(slots=True, eq=False)
class _Source:
    """One cached source alert (latest copy) and whether it also matches the target side."""

    alert: Alert
    matches_target: bool


@attrs.define(slots=True, eq=False)
class _RuleCache:
    """One rule's sources, indexed by the values of its ``equal`` labels."""

    rule: InhibitRule
    by_equal: dict[tuple[str, ...], dict[int, _Source]] = attrs.field(factory=dict)

    def key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        return tuple([labels.get(name, "") for name in self.rule.equal])


class Inhibitor:
    """The inhibition rules of one config generation and their source caches.

    Feed it every stored alert with :meth:`ingest` (subscribe it to the alert store and
    replay the store's contents when a new generation starts); ask it with
    :meth:`inhibited_by`; call :meth:`gc` periodically to drop resolved sources.
    """

    __slots__ = ("_marks", "_rules")

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self._rules = [_RuleCache(rule) for rule in rules]
        #: fingerprint -> inhibiting fingerprint, as of the last judgement of that alert.
        self._marks: dict[int, str] = {}

    def ingest(self, alert: Alert) -> None:
        """Cache ``alert`` as a source of every rule whose source matchers match it."""
        labels = alert.labels
        for cache in self._rules:
            if not matches_all(cache.rule.source_matchers, labels):
                continue
            bucket = cache.by_equal.setdefault(cache.key(labels), {})
            existing = bucket.get(alert.fingerprint)
            if existing is not None:
                existing.alert = alert
            else:
                bucket[alert.fingerprint] = _Source(
                    alert, matches_all(cache.rule.target_matchers, labels)
                )

    def inhibited_by(self, labels: Mapping[str, str], fingerprint: int, now: int) -> str | None:
        """The fingerprint (16 hex digits) of an alert inhibiting ``labels`` at ``now``, or None.

        Also records the answer as the mark of ``fingerprint`` (see :meth:`marked`).
        """
        for cache in self._rules:
            rule = cache.rule
            if not matches_all(rule.target_matchers, labels):
                continue
            bucket = cache.by_equal.get(cache.key(labels))
            if not bucket:
                continue
            two_sided = matches_all(rule.source_matchers, labels)
            for source in bucket.values():
                if two_sided and source.matches_target:
                    continue
                if source.alert.resolved(now):
                    continue
                by = format_fingerprint(source.alert.fingerprint)
                self._marks[fingerprint] = by
                return by
        self._marks.pop(fingerprint, None)
        return None

    def marked(self, fingerprint: int) -> str | None:
        """The answer of the last :meth:`inhibited_by` for ``fingerprint`` (for state gauges)."""
        return self._marks.get(fingerprint)

    def forget(self, fingerprint: int) -> None:
        """Drop the mark of an alert that left the store."""
        self._marks.pop(fingerprint, None)

    def gc(self, now: int) -> int:
        """Drop sources resolved at ``now`` from every rule's cache; returns how many."""
        removed = 0
        for cache in self._rules:
            empty: list[tuple[str, ...]] = []
            for key, bucket in cache.by_equal.items():
                gone = [fp for fp, s in bucket.items() if s.alert.resolved(now)]
                for fp in gone:
                    del bucket[fp]
                removed += len(gone)
                if not bucket:
                    empty.append(key)
            for key in empty:
                del cache.by_equal[key]
        return removed

    def source_count(self) -> int:
        """Cached sources over all rules (an alert matching two rules counts twice)."""
        return sum(len(b) for c in self._rules for b in c.by_equal.values())
