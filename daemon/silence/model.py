"""The silence as a value: its fields and its states (``silencepb.Silence``).

Pure. :mod:`daemon.silence.state` keeps the store; :mod:`daemon.silence.codec` reads
and writes these values in Alertmanager's wire format.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from daemon.matcher import Matcher
from daemon.silence.recurring import RecurrenceSpec


class SilenceState(enum.Enum):
    ACTIVE = "active"
    PENDING = "pending"
    EXPIRED = "expired"


@attrs.frozen
class Silence:
    """One silence (``silencepb.Silence``). Times are Unix ns."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: int
    ends_at: int
    updated_at: int = 0
    created_by: str = ""
    comment: str = ""
    #: Set on each window silence of a recurring silence (tocsin only).
    recurrence: RecurrenceSpec | None = None

    def state(self, now: int) -> SilenceState:
        """The internal state: both ends inclusive (upstream ``getState``)."""
        if now < self.starts_at:
            return SilenceState.PENDING
        if now > self.ends_at:
            return SilenceState.EXPIRED
        return SilenceState.ACTIVE

    def display_state(self, now: int) -> SilenceState:
        """The state the API shows (upstream ``CalcSilenceState``): active until ``ends_at``."""
        if now < self.starts_at:
            return SilenceState.PENDING
        if now < self.ends_at:
            return SilenceState.ACTIVE
        return SilenceState.EXPIRED

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every matcher matches; a missing label reads as ``""``."""
        for m in self.matchers:
            if not m.matches(labels.get(m.name, "")):
                return False
        return True


__all__ = ["Silence", "SilenceState"]
