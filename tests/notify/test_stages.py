"""Suppression stages (inhibition, active and mute time intervals) alone and in a pipeline."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import attrs
import httpx
import pytest
import trio
import trio.testing

from daemon import metrics
from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, ZERO_TIME, TrioClock
from daemon.config.load import load_config_text
from daemon.config.model import Config
from daemon.dispatch.group import AggregationGroup
from daemon.inhibit import Inhibitor
from daemon.matcher import parse_matcher
from daemon.nflog.state import Nflog
from daemon.notify.context import NotifyContext, Stage
from daemon.notify.pipeline import ReceiverPipeline, build_notifiers
from daemon.notify.retry import NotifyError
from daemon.notify.silence_stage import SilenceStage
from daemon.notify.stages import (
    GroupMuteMarker,
    InhibitStage,
    TimeActiveStage,
    TimeMuteStage,
)
from daemon.silence.model import Silence
from daemon.silence.state import Silences
from daemon.timeinterval import TimeIntervals

S = NS_PER_SECOND
MINUTE = 60 * S
#: 2023-11-14T22:13:20Z, a Tuesday.
ANCHOR = 1_700_000_000 * S
GK = '{}:{alertname="A"}'
ROUTE_ID = "{}"

CONFIG = """\
route:
  receiver: wh
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: wh
    webhook_configs:
      - url: http://sink/hook
        send_resolved: true
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
time_intervals:
  - name: late
    time_intervals:
      - times: [{start_time: "22:00", end_time: "22:30"}]
  - name: twice
    time_intervals:
      - weekdays: [tuesday]
      - times: [{start_time: "22:00", end_time: "23:00"}]
  - name: weekend
    time_intervals:
      - weekdays: [saturday, sunday]
  - name: soon
    time_intervals:
      - times: [{start_time: "22:20", end_time: "22:40"}]
"""


def config() -> Config:
    return load_config_text(CONFIG)


def intervals() -> TimeIntervals:
    return TimeIntervals(config().time_intervals)


def ctx(
    now: int = ANCHOR, *, mute: tuple[str, ...] = (), active: tuple[str, ...] = ()
) -> NotifyContext:
    return NotifyContext(GK, {"alertname": "A"}, "wh", 4 * 3600 * S, ROUTE_ID, now, mute, active)


def firing(**labels: str) -> Alert:
    return Alert({"alertname": "A", **labels}, {}, ANCHOR - MINUTE, ZERO_TIME)


def suppressed(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "alertmanager_notifications_suppressed_total", {"reason": reason}
    )
    return value or 0.0


# --- stages on crafted contexts ---------------------------------------------------------


async def test_inhibit_stage_drops_only_inhibited_alerts() -> None:
    """Inhibited alerts are dropped, the rest pass in order, and the drops are counted."""
    inhibitor = Inhibitor(config().inhibit_rules)
    source = Alert({"alertname": "A", "severity": "critical"}, {}, ANCHOR, ANCHOR + MINUTE)
    inhibitor.ingest(source)
    warning, info = firing(severity="warning"), firing(severity="info")
    before = suppressed("inhibition")
    kept = await InhibitStage(inhibitor).process(ctx(), [firing(i="1"), warning, info])
    assert [a.labels for a in kept] == [{"alertname": "A", "i": "1"}, info.labels]
    assert suppressed("inhibition") == before + 1
    assert inhibitor.marked(warning.fingerprint) == source.fingerprint_hex


async def test_inhibit_stage_judges_sources_at_tick_time() -> None:
    """A source whose endsAt is at or before ctx.now no longer inhibits."""
    inhibitor = Inhibitor(config().inhibit_rules)
    inhibitor.ingest(Alert({"alertname": "A", "severity": "critical"}, {}, ANCHOR, ANCHOR))
    warning = firing(severity="warning")
    assert await InhibitStage(inhibitor).process(ctx(ANCHOR - S), [warning]) == []
    assert await InhibitStage(inhibitor).process(ctx(ANCHOR), [warning]) == [warning]


async def test_mute_stage_inside_window_drops_everything() -> None:
    """Inside a mute interval the whole flush is dropped and the group marked by its names."""
    marker = GroupMuteMarker()
    stage = TimeMuteStage(intervals(), marker)
    alerts = [firing(i="1"), firing(i="2")]
    before = suppressed("mute_time_interval")
    out = await stage.process(ctx(mute=("weekend", "late", "twice")), alerts)
    assert list(out) == []
    # "twice" contains now by both sub-intervals, so it is listed twice, as upstream does.
    assert marker.muted_by(ROUTE_ID, GK) == ("late", "twice", "twice")
    assert suppressed("mute_time_interval") == before + 2


async def test_mute_stage_outside_window_passes_and_clears_mark() -> None:
    """Outside every mute interval alerts pass and an earlier mute mark is cleared."""
    marker = GroupMuteMarker()
    stage = TimeMuteStage(intervals(), marker)
    alerts = [firing(i="1")]
    assert list(await stage.process(ctx(mute=("late",)), alerts)) == []
    assert marker.muted_by(ROUTE_ID, GK) == ("late",)
    later = ANCHOR + 17 * MINUTE  # 22:30:20, past "late"'s exclusive end
    assert await stage.process(ctx(later, mute=("late",)), alerts) == alerts
    assert marker.muted_by(ROUTE_ID, GK) == ()
    assert len(marker) == 0


async def test_active_stage_outside_window_drops_everything() -> None:
    """Outside all active intervals the flush is dropped and marked muted by every name."""
    marker = GroupMuteMarker()
    stage = TimeActiveStage(intervals(), marker)
    alerts = [firing(i="1")]
    before = suppressed("active_time_interval")
    later = ANCHOR + 17 * MINUTE
    assert list(await stage.process(ctx(later, active=("weekend", "late")), alerts)) == []
    assert marker.muted_by(ROUTE_ID, GK) == ("weekend", "late")
    assert suppressed("active_time_interval") == before + 1


async def test_active_stage_inside_window_passes_and_clears_mark() -> None:
    """Inside any active interval the flush passes and the group's mute mark is cleared."""
    marker = GroupMuteMarker()
    marker.set_muted(ROUTE_ID, GK, ("late",))
    stage = TimeActiveStage(intervals(), marker)
    alerts = [firing(i="1")]
    assert await stage.process(ctx(active=("weekend", "late")), alerts) == alerts
    assert marker.muted_by(ROUTE_ID, GK) == ()


async def test_no_intervals_means_no_muting() -> None:
    """A route with neither list passes every alert through both time stages."""
    marker = GroupMuteMarker()
    alerts = [firing(i="1")]
    assert await TimeActiveStage(intervals(), marker).process(ctx(), alerts) == alerts
    assert await TimeMuteStage(intervals(), marker).process(ctx(), alerts) == alerts
    assert len(marker) == 0


async def test_unknown_interval_name_fails_the_flush() -> None:
    """A name missing from the config fails the stage, as upstream's lookup error does."""
    with pytest.raises(NotifyError, match="time interval nope doesn't exist in config"):
        await TimeMuteStage(intervals()).process(ctx(mute=("nope",)), [firing()])
    with pytest.raises(NotifyError, match="time interval nope doesn't exist in config"):
        await TimeActiveStage(intervals()).process(ctx(active=("nope",)), [firing()])


def test_marker_is_keyed_by_route_and_group() -> None:
    """Identical group keys on sibling routes keep separate marks; delete forgets one."""
    marker = GroupMuteMarker()
    marker.set_muted("r0", GK, ["late"])
    marker.set_muted("r1", GK, ["weekend"])
    assert marker.muted_by("r0", GK) == ("late",)
    assert marker.muted_by("r1", GK) == ("weekend",)
    marker.delete("r0", GK)
    assert marker.muted_by("r0", GK) == ()
    assert marker.muted_by("r1", GK) == ("weekend",)


# --- end to end through a receiver pipeline ---------------------------------------------


class Sink:
    """In-process webhook endpoint answering 200 and keeping every JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return httpx.Response(200)

    def sent_labels(self) -> list[list[dict[str, str]]]:
        """Per request, the labels of the alerts it carried."""
        out = []
        for body in self.bodies:
            alerts = body["alerts"]
            assert isinstance(alerts, list)
            out.append([a["labels"] for a in alerts])
        return out


@attrs.define
class DropLabelled:
    """Stands in for the silence stage: drops alerts carrying ``name=value``."""

    name: str
    value: str

    async def process(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> Sequence[Alert]:
        await trio.lowlevel.checkpoint()
        return [a for a in alerts if a.labels.get(self.name) != self.value]


class Harness:
    """A receiver pipeline with the suppression stages, an nflog and a mock webhook."""

    def __init__(self, extra: Sequence[Stage] = ()) -> None:
        cfg = config()
        self.sink = Sink()
        self.clock = TrioClock(ANCHOR)
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self.sink))
        self.inhibitor = Inhibitor(cfg.inhibit_rules)
        self.marker = GroupMuteMarker()
        base = build_notifiers(
            cfg, Nflog(), self.clock, self.http, "http://am", rng=random.Random(1)
        )["wh"]
        intervals = TimeIntervals(cfg.time_intervals)
        stages = [
            InhibitStage(self.inhibitor),
            TimeActiveStage(intervals, self.marker),
            TimeMuteStage(intervals, self.marker),
            *extra,
        ]
        self.pipeline = ReceiverPipeline("wh", base.integrations, stages=stages)

    async def notify(self, alerts: Sequence[Alert], mute: tuple[str, ...] = ()) -> bool:
        with trio.fail_after(60):
            return await self.pipeline.notify(ctx(self.clock.now(), mute=mute), alerts)


async def test_inhibited_alerts_are_not_sent(autojump_clock: trio.testing.MockClock) -> None:
    """A warning inhibited by a stored critical source is left out of the webhook request."""
    h = Harness()
    critical = Alert({"alertname": "A", "severity": "critical"}, {}, ANCHOR, ANCHOR + 5 * MINUTE)
    h.inhibitor.ingest(critical)
    group = [critical.copy(ends_at=ZERO_TIME), firing(severity="warning"), firing(i="x")]
    assert await h.notify(group)
    assert h.sink.sent_labels() == [
        [{"alertname": "A", "severity": "critical"}, {"alertname": "A", "i": "x"}]
    ]


async def test_silenced_source_still_inhibits_in_pipeline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A source dropped later by a silence-like stage still keeps its target from being sent."""
    h = Harness(extra=[DropLabelled("severity", "critical")])
    critical = Alert({"alertname": "A", "severity": "critical"}, {}, ANCHOR, ANCHOR + 5 * MINUTE)
    h.inhibitor.ingest(critical)
    assert await h.notify([critical.copy(ends_at=ZERO_TIME), firing(severity="warning")])
    assert h.sink.bodies == []
    # Once the source resolves the warning goes out.
    await trio.sleep(5 * 60)
    assert await h.notify([critical, firing(severity="warning")])
    assert h.sink.sent_labels() == [[{"alertname": "A", "severity": "warning"}]]


async def test_resolved_alert_flushed_in_mute_window_is_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Trap 5: a resolution flushed while muted counts as success and is never sent later."""
    h = Harness()
    group = AggregationGroup.create(GK, {"alertname": "A"}, 0, MINUTE, trio.current_time())

    async def tick(mute: tuple[str, ...]) -> bool | None:
        taken = group.begin_flush(h.clock.now())
        if taken is None:
            return None
        alerts, snapshot = taken
        ok = await h.notify(alerts, mute)
        group.finish_flush(snapshot, ok)
        return ok

    stored = Alert({"alertname": "A", "i": "1"}, {}, ANCHOR - MINUTE, ANCHOR + 10 * MINUTE)
    group.insert(stored, h.clock.now())
    assert await tick(("soon",)) is True  # 22:13:20, before the window: sent firing
    assert h.sink.sent_labels() == [[stored.labels]]
    await trio.sleep(10 * 60)  # 22:23:20: resolved, and inside the window
    assert await tick(("soon",)) is True
    assert group.empty()  # the "successful" muted flush deleted the resolved alert
    await trio.sleep(20 * 60)  # 22:43:20: the window is over, nothing left to send
    assert await tick(("soon",)) is None
    assert len(h.sink.bodies) == 1
    assert h.marker.muted_by(ROUTE_ID, GK) == ("soon",)


async def test_resolved_alert_outside_mute_window_is_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The control for trap 5: without a window the same resolution is sent."""
    h = Harness()
    stored = Alert({"alertname": "A", "i": "1"}, {}, ANCHOR - MINUTE, ANCHOR + 10 * MINUTE)
    assert await h.notify([stored.copy(ends_at=ZERO_TIME)], mute=("weekend",))
    await trio.sleep(10 * 60)
    assert await h.notify([stored], mute=("weekend",))
    assert [b["status"] for b in h.sink.bodies] == ["firing", "resolved"]


async def test_firing_alert_is_sent_after_mute_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A firing alert muted by the window is sent at the first flush after it ends."""
    h = Harness()
    alert = firing(i="1")
    assert await h.notify([alert], mute=("late",))
    assert h.sink.bodies == []
    assert h.marker.muted_by(ROUTE_ID, GK) == ("late",)
    await trio.sleep(17 * 60)  # 22:30:20
    assert await h.notify([alert], mute=("late",))
    assert h.sink.sent_labels() == [[alert.labels]]
    assert h.marker.muted_by(ROUTE_ID, GK) == ()


async def test_silence_lookups_prepared_ahead_give_the_flush_the_same_answer() -> None:
    """Silences looked up before a flush still answer for the flush's time and changes."""
    t0 = 1_767_225_600 * S
    st = Silences()
    st.set(Silence("", (parse_matcher('sev="low"'),), t0, t0 + 60 * S), t0)
    low, mid, high = (Alert({"sev": sev}, {}, t0, ZERO_TIME) for sev in ("low", "mid", "high"))
    stage = SilenceStage(st)
    pipeline = ReceiverPipeline("r", [], [stage])
    pipeline.prepare([low, mid, high], t0 + S)
    # A silence made after the lookup mutes at the flush.
    st.set(Silence("", (parse_matcher('sev="mid"'),), t0, t0 + 30 * S), t0 + 2 * S)
    flush_ctx = NotifyContext("{}:{}", {}, "r", 3600 * S, "route", t0 + 3 * S)
    assert list(await stage.process(flush_ctx, [low, mid, high])) == [high]
    # Both silences end before the next flush: the earlier lookup does not keep muting.
    pipeline.prepare([low, mid, high], t0 + 4 * S)
    later = attrs.evolve(flush_ctx, now=t0 + 61 * S)
    assert list(await stage.process(later, [low, mid, high])) == [low, mid, high]
