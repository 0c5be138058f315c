"""The history record and the reason decision (pure)."""

from __future__ import annotations

from hypothesis import strategies as st

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.history.record import (
    HistoryAlert,
    NotifyReason,
    Outcome,
    Status,
    history_alerts,
    notify_reason,
    record_to_json,
)
from daemon.nflog.state import Entry, ReceiverKey
from tests.history.conftest import T0, S, make_record

HOUR = 3600 * S


def entry(firing: tuple[int, ...], resolved: tuple[int, ...] = (), at: int = T0) -> Entry:
    return Entry("g", ReceiverKey("r", "webhook", 0), at, firing, resolved, at + 10 * HOUR)


def test_first_notification_needs_a_firing_alert() -> None:
    """With no nflog entry, firing alerts are a first notification and resolved ones alone are nothing."""
    assert notify_reason(None, [1], [], HOUR, T0) is NotifyReason.FIRST_NOTIFICATION
    assert notify_reason(None, [], [2], HOUR, T0) is None


def test_new_firing_alert_is_new_alerts_in_group() -> None:
    """A firing hash the last notification did not have makes NEW_ALERTS_IN_GROUP."""
    assert notify_reason(entry((1,)), [1, 2], [], HOUR, T0) is NotifyReason.NEW_ALERTS_IN_GROUP


def test_firing_again_after_all_resolved_is_a_first_notification() -> None:
    """After an all-resolved message the next firing alert starts over, as Alertmanager says."""
    assert notify_reason(entry((), (1,)), [1], [], HOUR, T0) is NotifyReason.FIRST_NOTIFICATION


def test_all_resolved_only_when_something_was_firing() -> None:
    """No firing alert left is ALL_ALERTS_RESOLVED only if the receiver was told of firing ones."""
    assert notify_reason(entry((1,)), [], [1], HOUR, T0) is NotifyReason.ALL_ALERTS_RESOLVED
    assert notify_reason(entry(()), [], [1], HOUR, T0) is None


def test_all_resolved_ignores_send_resolved() -> None:
    """ALL_ALERTS_RESOLVED is decided whatever send_resolved says (the log must be cleared)."""
    reason = notify_reason(entry((1,)), [], [1], HOUR, T0, send_resolved=False)
    assert reason is NotifyReason.ALL_ALERTS_RESOLVED


def test_new_resolved_alerts_need_send_resolved() -> None:
    """A new resolved hash is news only for an integration that sends resolved notifications."""
    prev = entry((1, 2))
    assert notify_reason(prev, [1], [2], HOUR, T0) is NotifyReason.NEW_RESOLVED_ALERTS
    assert notify_reason(prev, [1], [2], HOUR, T0, send_resolved=False) is None


def test_repeat_interval_must_be_strictly_exceeded() -> None:
    """Nothing new repeats only once the last send is strictly older than the repeat interval."""
    prev = entry((1,), at=T0)
    assert notify_reason(prev, [1], [], HOUR, T0 + HOUR) is None
    reason = notify_reason(prev, [1], [], HOUR, T0 + HOUR + 1)
    assert reason is NotifyReason.REPEAT_INTERVAL_ELAPSED


_hashes = st.frozensets(st.integers(0, 5), max_size=4)


def test_status_is_firing_if_any_alert_fires() -> None:
    """A record is firing while any of its alerts fires, resolved when none does."""
    rec = make_record(alerts=[{"a": "1"}, {"a": "2"}])
    assert rec.status is Status.FIRING
    assert make_record(status=Status.RESOLVED).status is Status.RESOLVED


def test_history_alerts_take_status_at_now() -> None:
    """history_alerts reads each alert's status as of the given now, and its 16-hex fingerprint."""
    firing = Alert({"alertname": "A"}, {}, starts_at=T0, ends_at=ZERO_TIME)
    ended = Alert({"alertname": "B"}, {}, starts_at=T0, ends_at=T0 + S)
    out = history_alerts([firing, ended], T0 + 2 * S)
    assert out == (
        HistoryAlert(firing.fingerprint_hex, {"alertname": "A"}, Status.FIRING),
        HistoryAlert(ended.fingerprint_hex, {"alertname": "B"}, Status.RESOLVED),
    )
    assert len(out[0].fingerprint) == 16


def test_record_json_shape() -> None:
    """The API item carries every field, times as RFC 3339 and the reason by its event-recorder name."""
    rec = make_record(
        T0 + 1500, alerts={"alertname": "A", "b": "2"}, outcome=Outcome.FAILED, error="boom"
    )
    assert record_to_json(rec) == {
        "time": "2026-01-01T00:00:00.0000015Z",
        "tenant": "",
        "receiver": "team-a",
        "integration": {"name": "webhook", "index": 0},
        "groupKey": '{}:{alertname="A"}',
        "groupLabels": {"alertname": "A"},
        "status": "firing",
        "reason": "NOTIFY_REASON_FIRST_NOTIFICATION",
        "outcome": "failed",
        "error": "boom",
        "attempts": 1,
        "durationSeconds": 0.005,
        "alerts": [
            {
                "fingerprint": "0000000000000000",
                "labels": {"alertname": "A", "b": "2"},
                "status": "firing",
            }
        ],
    }
    assert record_to_json(make_record(outcome=Outcome.SUPPRESSED))["reason"] is None
