"""Alerts: identity (fingerprint), the posted-alert defaults, validation and merging.

Invariants:

* ``fingerprint`` is FNV-1a 64 over sorted label names, each as ``name 0xFF value 0xFF``
  (spec §2.1). It is computed once, when the alert is made; labels never change after.
* Times are Unix nanoseconds (see :mod:`daemon.clock`). ``ends_at == ZERO_TIME`` means
  "no end": only notification copies of firing alerts carry it.
* "Resolved at t" means ``ends_at`` is set and ``ends_at <= t``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from daemon.clock import ZERO_TIME
from daemon.gocompat.strconv import go_quote

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEP = 0xFF


def fingerprint_reference(labels: Mapping[str, str]) -> int:
    """FNV-1a 64 of the label set, exactly as Prometheus' ``LabelSet.Fingerprint``.

    The plain byte loop, kept as the definition the fast versions are tested against.
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in chunk:
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ _SEP) * _FNV_PRIME) & _MASK
    return h


def fingerprint(labels: Mapping[str, str]) -> int:
    """FNV-1a 64 of the label set, exactly as Prometheus' ``LabelSet.Fingerprint``."""
    return _fingerprint_fast(labels if type(labels) is dict else dict(labels))


def labels_hash_bytes(labels: Mapping[str, str]) -> bytes:
    """The byte stream both hashes are taken over (fingerprint and nflog xxHash64)."""
    return _labels_hash_bytes_fast(labels if type(labels) is dict else dict(labels))


def _labels_hash_bytes_python(labels: Mapping[str, str]) -> bytes:
    """:func:`labels_hash_bytes` without the C build; the definition it is tested against."""
    out = bytearray()
    for name in sorted(labels):
        out += name.encode()
        out.append(_SEP)
        out += labels[name].encode()
        out.append(_SEP)
    return bytes(out)


def format_fingerprint(fp: int) -> str:
    return f"{fp:016x}"


@attrs.define(slots=True, eq=False)
class Alert:
    """An alert as stored. Treat as immutable: merging makes a new one."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: int
    ends_at: int
    generator_url: str = ""
    updated_at: int = 0
    #: ``ends_at`` was defaulted to now + resolve_timeout rather than sent by the client.
    timeout: bool = False
    fingerprint: int = attrs.field(default=-1)

    def __attrs_post_init__(self) -> None:
        if self.fingerprint < 0:
            labels = self.labels
            self.fingerprint = _fingerprint_fast(labels if type(labels) is dict else dict(labels))
        # An alert refers only to str dicts and numbers, so it is never in a reference
        # cycle: out of the cyclic collector's sight (see untrack), a full pass no longer
        # walks every stored alert.
        untrack(self)

    @property
    def fingerprint_hex(self) -> str:
        return f"{self.fingerprint:016x}"

    def resolved(self, now: int) -> bool:
        return self.ends_at != ZERO_TIME and self.ends_at <= now

    def status(self, now: int) -> str:
        return "resolved" if self.resolved(now) else "firing"

    def copy(self, **changes: Any) -> Alert:
        changes.setdefault("fingerprint", self.fingerprint)
        return attrs.evolve(self, **changes)


def merge(old: Alert, new: Alert, now: int) -> Alert:
    """The stored alert after ``new`` is posted over ``old`` (same fingerprint), spec §2.3."""
    overlap = (old.starts_at < new.ends_at < old.ends_at) or (
        old.starts_at < new.starts_at < old.ends_at
    )
    if not overlap:
        return new
    if new.updated_at >= old.updated_at:
        newer, older = new, old
    else:
        newer, older = old, new
    starts_at = min(old.starts_at, new.starts_at)
    ends_at = newer.ends_at
    if newer.resolved(now):
        if older.resolved(now) and older.ends_at > newer.ends_at:
            ends_at = older.ends_at
    elif older.ends_at > newer.ends_at and not older.timeout:
        ends_at = older.ends_at
    if starts_at == newer.starts_at and ends_at == newer.ends_at:
        return newer
    # newer.copy(starts_at=..., ends_at=...) spelled out: a re-post without startsAt
    # lands here every time, and attrs.evolve costs several times the construction.
    return Alert(
        newer.labels,
        newer.annotations,
        starts_at,
        ends_at,
        newer.generator_url,
        newer.updated_at,
        newer.timeout,
        newer.fingerprint,
    )


# --- posting: defaults and validation (spec §1.6, Alertmanager 0.25) -------------------

_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Label and annotation names come from a small vocabulary; remembering the valid ones
# keeps the regex off the hot path. Bounded so hostile clients cannot grow it forever.
_valid_names: set[str] = set()
_VALID_NAMES_MAX = 4096

#: Shared by every posted alert that has no annotations (alerts are never mutated in
#: place), which saves one dict per alert in the store.
NO_ANNOTATIONS: dict[str, str] = {}


def _name_ok(name: str) -> bool:
    if name in _valid_names:
        return True
    if _LEGACY_LABEL_NAME.fullmatch(name) is None:
        return False
    if len(_valid_names) < _VALID_NAMES_MAX:
        _valid_names.add(name)
    return True


def _fingerprint_python(labels: Mapping[str, str]) -> int:
    """Same value as :func:`fingerprint_reference`, with the byte loop unrolled four-fold.

    Masking to 64 bits only every fourth byte is exact: XOR with a byte touches the
    low bits only, and the low 64 bits of a product depend only on the low 64 bits
    of its factors.
    """
    data = (
        b"\xff".join([p for n in sorted(labels) for p in (n.encode(), labels[n].encode())])
        + b"\xff"
        if labels
        else b""
    )
    h = _FNV_OFFSET
    p = _FNV_PRIME
    n = len(data)
    i = 0
    end = n - n % 4
    while i < end:
        h = (
            ((((((h ^ data[i]) * p) ^ data[i + 1]) * p ^ data[i + 2]) * p) ^ data[i + 3]) * p
        ) & _MASK
        i += 4
    for byte in data[end:]:
        h = ((h ^ byte) * p) & _MASK
    return h


_intern = sys.intern


def _posted_labels_python(labels: dict[str, str]) -> int:
    """Intern every label value in place; the fingerprint of the result."""
    for name, value in labels.items():
        labels[name] = _intern(value)
    return _fingerprint_python(labels)


_T = TypeVar("_T")


def _untrack_python(obj: _T) -> _T:
    """Without the C build an object cannot leave the collector's lists: a no-op."""
    return obj


_fingerprint_fast: Callable[[dict[str, str]], int]
_posted_labels: Callable[[dict[str, str]], int]
_labels_hash_bytes_fast: Callable[[dict[str, str]], bytes]
#: ``untrack(obj)`` takes ``obj`` out of the cyclic garbage collector and returns it.
#: Only for objects that cannot be part of a reference cycle (they refer to nothing
#: that could refer back): refcounting frees them, and a full collection, which walks
#: every tracked object on the event loop, stops walking them. At 100k alerts each full
#: pass took 100-200 ms; the daemon's tracked objects were mostly alerts and the tuples
#: that cache their encodings.
try:
    # The C build (daemon/_speedups.c) is ~30x faster; it is optional so that a machine
    # without a compiler still runs, on the pure Python versions.
    from daemon._speedups import fingerprint as _fingerprint_fast
    from daemon._speedups import labels_hash_bytes as _labels_hash_bytes_fast
    from daemon._speedups import posted_labels as _posted_labels
    from daemon._speedups import untrack as untrack
except ImportError:  # pragma: no cover - depends on the build
    _fingerprint_fast = _fingerprint_python
    _posted_labels = _posted_labels_python
    _labels_hash_bytes_fast = _labels_hash_bytes_python
    untrack = _untrack_python

#: Longer annotation values (descriptions) are rarely shared; not worth a lookup.
_INTERN_MAX = 256


def posted_alert(
    labels: dict[str, str],
    annotations: dict[str, str],
    starts_at: int,
    ends_at: int,
    generator_url: str,
    now: int,
    timeout_ends_at: int,
) -> Alert:
    """An alert as POST /api/v2/alerts stores it, with 0.25's defaults applied.

    ``starts_at``/``ends_at`` are :data:`ZERO_TIME` when not posted; ``timeout_ends_at``
    is ``now + resolve_timeout``. Empty-valued labels are dropped (annotations keep
    theirs). ``labels`` and ``annotations`` may be modified in place.
    """
    return next(
        _defaulted([(labels, annotations, starts_at, ends_at, generator_url)], now, timeout_ends_at)
    )


def _defaulted(raws: Iterable[PostedFields], now: int, timeout_ends_at: int) -> Iterator[Alert]:
    # One generator serves both posted_alert and the batch loop of posted_alerts: a
    # generator resumes faster than a seven-argument call, and this is the hot path.
    posted_labels = _posted_labels
    intern = _intern
    for labels, annots, starts_at, ends_at, generator_url in raws:
        if starts_at == ZERO_TIME:
            starts_at = now if ends_at == ZERO_TIME else ends_at
        timeout = False
        if ends_at == ZERO_TIME:
            ends_at = timeout_ends_at
            timeout = True
        if "" in labels.values():
            labels = {k: v for k, v in labels.items() if v != ""}
        # Values repeat across alerts (alertname, job, severity, summaries, one generator
        # URL per rule) but the JSON decoder makes a fresh string each time; interning
        # keeps one copy in memory. Interned strings are freed when no longer referenced.
        fp = posted_labels(labels)
        for name, value in annots.items():
            if len(value) <= _INTERN_MAX:
                annots[name] = intern(value)
        yield Alert(
            labels,
            annots or NO_ANNOTATIONS,
            starts_at,
            ends_at,
            intern(generator_url) if len(generator_url) <= _INTERN_MAX else generator_url,
            now,
            timeout,
            fp,
        )


def _label_set_error(labels: Mapping[str, str]) -> str | None:
    if _valid_names.issuperset(labels):
        # The usual case, answered by one C-level set operation over the names.
        return None
    # Go walks a map in random order; sorted order keeps our answer deterministic.
    names = labels if all(_name_ok(n) for n in labels) else sorted(labels)
    for name in names:
        if not _name_ok(name):
            return f"invalid name {go_quote(name)}"
    return None


def validate_posted(alert: Alert) -> str | None:
    """The first validation error of a posted alert, in 0.25's order of checks, or None.

    Values cannot be invalid UTF-8 here: the JSON decoder already replaced bad bytes.
    """
    if alert.starts_at == ZERO_TIME:
        return "start time missing"
    if alert.ends_at != ZERO_TIME and alert.ends_at < alert.starts_at:
        return "start time must be before end time"
    error = _label_set_error(alert.labels)
    if error is not None:
        return f"invalid label set: {error}"
    if not alert.labels:
        return "at least one label pair required"
    if alert.annotations:
        error = _label_set_error(alert.annotations)
        if error is not None:
            return f"invalid annotations: {error}"
    return None


#: One decoded posted alert: labels, annotations, startsAt, endsAt, generatorURL (times
#: are :data:`ZERO_TIME` when absent), as :func:`daemon.api.postable.parse_alerts` gives.
PostedFields = tuple[dict[str, str], dict[str, str], int, int, str]


def posted_alerts(
    raws: Iterable[PostedFields], now: int, timeout_ends_at: int
) -> tuple[list[Alert], list[str], int]:
    """:func:`posted_alert` and :func:`validate_posted` over a whole request body.

    Returns the valid alerts, the validation errors in body order, and how many of all
    the alerts (valid or not) are firing at ``now``. Same results as the two functions
    alert by alert (a test checks that). This loop is the hot path of POST /api/v2/alerts:
    :func:`validate_posted` runs only when a name is not already known good.
    """
    valid: list[Alert] = []
    errors: list[str] = []
    firing = 0
    valid_names = _valid_names
    for alert in _defaulted(raws, now, timeout_ends_at):
        starts_at = alert.starts_at
        ends_at = alert.ends_at
        labels = alert.labels
        annots = alert.annotations
        if ends_at > now:
            firing += 1
        if (
            starts_at != ZERO_TIME
            and ends_at >= starts_at
            and labels
            and valid_names.issuperset(labels)
            and (not annots or valid_names.issuperset(annots))
        ):
            # Every check of validate_posted passes; only known-good names are involved.
            valid.append(alert)
            continue
        problem = validate_posted(alert)
        if problem is None:
            valid.append(alert)
        else:
            errors.append(problem)
    return valid, errors, firing
