"""Recurring silences in the store: window planning, ending, restart and peers (pure)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

import attrs

from daemon.clock import NS_PER_SECOND
from daemon.matcher import Matcher, MatchType
from daemon.silence import codec
from daemon.silence.model import Silence, SilenceState
from daemon.silence.recurring import RecurrenceSpec, window_silence_id
from daemon.silence.state import Silences
from daemon.silence.windows import LOOKAHEAD, next_check, plan_end, plan_new, plan_windows

S = NS_PER_SECOND
HOUR = 3600 * S
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(text: str, zone: zoneinfo.ZoneInfo = SHANGHAI) -> int:
    """Unix ns of a wall time (Shanghai unless told)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()) * S


TEMPLATE = Silence(
    id="",
    matchers=(Matcher.create(MatchType.EQUAL, "severity", "info"),),
    starts_at=0,
    ends_at=0,
    created_by="ops",
    comment="nightly quiet",
)


def nightly(since: int, until: int | None = None) -> RecurrenceSpec:
    return RecurrenceSpec("rec-1", "0 22 * * *", 8 * HOUR, "Asia/Shanghai", since, until)


def windows_of(store: Silences) -> list[tuple[int, int]]:
    return sorted((s.starts_at, s.ends_at) for s in store if s.recurrence is not None)


def test_new_recurring_silence_inside_a_window_mutes_at_once() -> None:
    """Created at 03:00, a 22:00+8h schedule gets the open window (from now) and tonight's."""
    store = Silences()
    now = at("2026-06-02T03:00:00")
    plan = plan_new(store, TEMPLATE, nightly(now), now)
    store.apply(plan)
    # As in NM, the window that opened last night is active now; it starts at creation.
    assert windows_of(store) == [
        (now, at("2026-06-02T06:00:00")),
        (at("2026-06-02T22:00:00"), at("2026-06-03T06:00:00")),
    ]
    open_now = store.get(window_silence_id("rec-1", at("2026-06-01T22:00:00")))
    assert open_now is not None and open_now.state(now) is SilenceState.ACTIVE
    tonight = store.get(window_silence_id("rec-1", at("2026-06-02T22:00:00")))
    assert tonight is not None and tonight.state(now) is SilenceState.PENDING
    assert (tonight.created_by, tonight.comment, tonight.matchers) == (
        "ops",
        "nightly quiet",
        TEMPLATE.matchers,
    )


def test_windows_are_written_a_lookahead_ahead_and_only_once() -> None:
    """plan_windows adds the next window when the one before opens, and never twice."""
    store = Silences()
    start = at("2026-06-02T12:00:00")
    store.apply(plan_new(store, TEMPLATE, nightly(start), start))
    assert plan_windows(store, start) is None
    due = next_check(store, start)
    # Tonight's window is written; tomorrow's is written when tonight's opens.
    assert due == at("2026-06-02T22:00:00")
    assert plan_windows(store, due - 1) is None
    plan = plan_windows(store, due)
    assert plan is not None
    store.apply(plan)
    assert windows_of(store)[-1] == (at("2026-06-03T22:00:00"), at("2026-06-04T06:00:00"))
    assert plan_windows(store, due) is None


def test_peers_write_the_same_window_silence() -> None:
    """Two nodes that learned a recurring silence by gossip compute identical window silences."""
    a, b = Silences(), Silences()
    start = at("2026-06-02T12:00:00")
    a.subscribe(lambda record: b.merge_bytes(record, start))
    a.apply(plan_new(a, TEMPLATE, nightly(start), start))
    assert windows_of(b) == windows_of(a)
    later = at("2026-06-03T21:30:00")
    plan_a, plan_b = plan_windows(a, later), plan_windows(b, later)
    assert plan_a is not None and plan_b is not None
    assert plan_a.records == plan_b.records


def test_recurring_definition_survives_a_restart() -> None:
    """A snapshot of the store carries the spec; a restarted store continues the schedule."""
    store = Silences()
    start = at("2026-06-02T12:00:00")
    store.apply(plan_new(store, TEMPLATE, nightly(start), start))
    restarted = Silences()
    restarted.load_snapshot(store.marshal())
    [s] = list(restarted)
    assert s.recurrence == nightly(start)
    plan = plan_windows(restarted, at("2026-06-03T21:30:00"))
    assert plan is not None
    assert [r.starts_at for r, _ in plan.records] == [at("2026-06-03T22:00:00")]


def test_the_codec_keeps_the_spec_and_the_plain_silence() -> None:
    """A window's record round-trips with its spec; without one it encodes as before."""
    spec = nightly(at("2026-06-02T12:00:00"), until=at("2026-07-01T00:00:00"))
    window = Silence(
        id="w", matchers=TEMPLATE.matchers, starts_at=1 * S, ends_at=2 * S, updated_at=3 * S,
        recurrence=spec,
    )  # fmt: skip
    assert codec.decode_silence(codec.encode_silence(window)) == window
    plain = Silence(id="p", matchers=TEMPLATE.matchers, starts_at=1 * S, ends_at=2 * S)
    assert codec.encode_silence(plain) == codec.encode_silence(
        Silence(id="p", matchers=TEMPLATE.matchers, starts_at=1 * S, ends_at=2 * S, recurrence=None)
    )
    assert len(codec.encode_silence(window)) > len(codec.encode_silence(plain))


def test_ending_expires_open_windows_and_stops_every_node() -> None:
    """plan_end expires the open and pending windows; no node writes another one."""
    a, b = Silences(), Silences()
    start = at("2026-06-02T12:00:00")
    a.subscribe(lambda record: b.merge_bytes(record, start))
    a.apply(plan_new(a, TEMPLATE, nightly(start), start))
    tonight = at("2026-06-02T23:00:00")
    plan = plan_end(a, "rec-1", tonight)
    a.apply(plan)
    [s] = list(b)
    assert s.state(tonight + 1) is SilenceState.EXPIRED
    assert s.recurrence is not None and s.recurrence.until == tonight
    for store in (a, b):
        assert plan_windows(store, at("2026-06-05T21:30:00")) is None
        assert next_check(store, tonight) is None


def test_windows_stop_at_the_recurrence_end() -> None:
    """No window starts at or after ``until``."""
    store = Silences()
    start = at("2026-06-02T12:00:00")
    store.apply(plan_new(store, TEMPLATE, nightly(start, until=at("2026-06-03T22:00:00")), start))
    assert plan_windows(store, at("2026-06-03T21:30:00")) is None
    assert next_check(store, start) is None


def test_frequent_windows_are_written_a_lookahead_ahead() -> None:
    """An hourly 10-minute window: every window within the next hour is written at once."""
    store = Silences()
    start = at("2026-06-02T12:05:00")
    spec = RecurrenceSpec("rec-2", "*/20 * * * *", 10 * 60 * S, "Asia/Shanghai", start)
    store.apply(plan_new(store, TEMPLATE, spec, start))
    assert [b for b, _ in windows_of(store)] == [
        start,  # the 12:00 window, open at creation
        at("2026-06-02T12:20:00"),
        at("2026-06-02T12:40:00"),
        at("2026-06-02T13:00:00"),
    ]
    assert next_check(store, start) == at("2026-06-02T13:20:00") - LOOKAHEAD


def test_a_later_start_clips_the_window_open_then() -> None:
    """A recurring silence starting at 02:00 mutes 02:00-06:00 of the window opened at 22:00."""
    store = Silences()
    now = at("2026-06-01T12:00:00")
    since = at("2026-06-02T02:00:00")
    store.apply(plan_new(store, TEMPLATE, nightly(since), now))
    assert windows_of(store)[0] == (since, at("2026-06-02T06:00:00"))


def _recurring_ids(store: Silences) -> set[str]:
    return {s.id for s in store.recurring()}


def test_recurring_index_follows_writes_merges_gc_and_snapshots() -> None:
    """Silences.recurring() is exactly the stored silences with a recurrence after local
    writes, a peer's merge that drops the recurrence, gc and a snapshot load."""
    store = Silences()
    start = at("2026-06-02T12:00:00")
    store.apply(plan_new(store, TEMPLATE, nightly(start), start))
    plain_id = store.set(attrs.evolve(TEMPLATE, starts_at=start, ends_at=start + HOUR), start)
    expected = {s.id for s in store if s.recurrence is not None}
    assert expected and plain_id not in expected
    assert _recurring_ids(store) == expected
    # A peer's newer record of a window without the recurrence takes it out.
    window = next(s for s in store.recurring() if s.id != plain_id)
    newer = attrs.evolve(window, recurrence=None, updated_at=window.updated_at + 1)
    assert store.merge(newer, store.expires_at(window.id) or 0, start)
    assert _recurring_ids(store) == expected - {window.id}
    restarted = Silences()
    restarted.load_snapshot(store.marshal())
    assert _recurring_ids(restarted) == expected - {window.id}
    # Past every retention, gc removes them all, and the index with them.
    assert store.gc(start + 1000 * 24 * HOUR) > 0
    assert _recurring_ids(store) == {s.id for s in store if s.recurrence is not None}
