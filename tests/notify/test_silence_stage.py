"""The pipeline's silence stage."""

from __future__ import annotations

from collections.abc import Sequence

from daemon import metrics
from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, ZERO_TIME
from daemon.matcher import parse_matcher
from daemon.notify.context import NotifyContext
from daemon.notify.silence_stage import SilenceStage
from daemon.silence.model import Silence
from daemon.silence.state import Silences

S = NS_PER_SECOND
T0 = 1_767_225_600 * S


def ctx(now: int) -> NotifyContext:
    return NotifyContext("{}:{}", {}, "r", 3600 * S, "route", now)


class Marker:
    def __init__(self) -> None:
        self.marks: dict[int, list[str]] = {}

    def set_silenced(self, fingerprint: int, silence_ids: Sequence[str]) -> None:
        self.marks[fingerprint] = list(silence_ids)


async def test_stage_drops_silenced_alerts_and_counts_them() -> None:
    """Alerts muted at ctx.now are dropped, counted as reason=silence, and marked."""
    st = Silences()
    sid = st.set(Silence("", (parse_matcher('sev="low"'),), T0, T0 + 60 * S), T0)
    low = Alert({"sev": "low"}, {}, T0, ZERO_TIME)
    high = Alert({"sev": "high"}, {}, T0, ZERO_TIME)
    marker = Marker()
    counter = metrics.notifications_suppressed.labels("silence")
    before = counter._value.get()
    kept = await SilenceStage(st, marker).process(ctx(T0 + S), [low, high])
    assert list(kept) == [high]
    assert counter._value.get() == before + 1
    assert marker.marks == {low.fingerprint: [sid], high.fingerprint: []}
    kept = await SilenceStage(st).process(ctx(T0 + 61 * S), [low, high])
    assert list(kept) == [low, high]
