"""Alerts: identity (fingerprint), the posted-alert defaults, validation and merging.

Invariants:

* ``fingerprint`` is FNV-1a 64 over sorted label names, each as ``name 0xFF value 0xFF``
  (spec §2.1). It is computed once, when the alert is made; labels never change after.
* Times are Unix nanoseconds (see :mod:`daemon.clock`). ``ends_at == ZERO_TIME`` means
  "no end": only notification copies of firing alerts carry it.
* "Resolved at t" means ``ends_at`` is set and ``ends_at <= t``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from daemon.clock import ZERO_TIME

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEP = 0xFF


def fingerprint(labels: Mapping[str, str]) -> int:
    """FNV-1a 64 of the label set, exactly as Prometheus' ``LabelSet.Fingerprint``."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in chunk:
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ _SEP) * _FNV_PRIME) & _MASK
    return h


def labels_hash_bytes(labels: Mapping[str, str]) -> bytes:
    """The byte stream both hashes are taken over (fingerprint and nflog xxHash64)."""
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
            self.fingerprint = fingerprint(self.labels)

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
    return newer.copy(starts_at=starts_at, ends_at=ends_at)
