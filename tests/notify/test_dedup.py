"""The dedup decision (spec §4.1), rule by rule."""

from __future__ import annotations

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from daemon.alert import Alert, labels_hash_bytes
from daemon.clock import ZERO_TIME
from daemon.nflog.state import Entry, ReceiverKey, alert_hash
from daemon.notify.dedup import needs_update, split_hashes

S = 1_000_000_000
NOW = 1_700_000_000 * S
REPEAT = 3600 * S


def entry(firing: tuple[int, ...], resolved: tuple[int, ...] = (), ts: int = NOW - S) -> Entry:
    return Entry("{}:{}", ReceiverKey("r", "webhook", 0), ts, firing, resolved, NOW + REPEAT)


@pytest.mark.parametrize(
    ("case", "entry_", "firing", "resolved", "send_resolved", "expected"),
    [
        # Rule 1: no entry.
        ("no entry, firing", None, {1}, set(), True, True),
        ("no entry, only resolved", None, set(), {1}, True, False),
        ("no entry, nothing", None, set(), set(), True, False),
        # Rule 2: firing not a subset of the logged firing set.
        ("new firing alert", entry((1,)), {1, 2}, set(), False, True),
        ("re-firing after resolve", entry((1,), (2,)), {1, 2}, set(), False, True),
        ("disjoint firing", entry((1,)), {2}, set(), False, True),
        # Subset, not equality: a shrinking firing set is not news.
        ("firing shrank, resolved not sent", entry((1, 2)), {1}, {2}, False, False),
        ("equal firing set", entry((1, 2)), {1, 2}, set(), True, False),
        # Rule 3: everything resolved, regardless of send_resolved.
        ("all resolved, log had firing", entry((1,)), set(), {1}, False, True),
        ("all resolved, send_resolved", entry((1,)), set(), {1}, True, True),
        ("all resolved, log had none firing", entry((), (1,)), set(), {1}, True, False),
        ("empty flush, log empty", entry(()), set(), set(), True, False),
        # Rule 4: new resolved hashes only matter with send_resolved.
        ("firing shrank, send_resolved", entry((1, 2)), {1}, {2}, True, True),
        ("resolved already logged", entry((1,), (2,)), {1}, {2}, True, False),
        ("resolved subset of logged", entry((1,), (2, 3)), {1}, {2}, True, False),
    ],
)
def test_rules(
    case: str,
    entry_: Entry | None,
    firing: set[int],
    resolved: set[int],
    send_resolved: bool,
    expected: bool,
) -> None:
    """Each §4.1 rule decides as Alertmanager's DedupStage.needsUpdate does."""
    assert needs_update(entry_, firing, resolved, send_resolved, REPEAT, NOW) is expected, case


def test_repeat_interval_boundary_is_strict() -> None:
    """An unchanged group repeats only when the last send is strictly older than the interval."""
    at_boundary = entry((1,), ts=NOW - REPEAT)
    assert not needs_update(at_boundary, {1}, set(), True, REPEAT, NOW)
    just_past = entry((1,), ts=NOW - REPEAT - 1)
    assert needs_update(just_past, {1}, set(), True, REPEAT, NOW)


def test_repeat_does_not_resend_when_nothing_fires() -> None:
    """An all-resolved flush after an all-resolved log is not repeated, however old."""
    old = entry((), (1,), ts=NOW - 10 * REPEAT)
    assert not needs_update(old, set(), {1}, True, REPEAT, NOW)


def test_split_hashes_uses_now_for_resolution() -> None:
    """Zero endsAt is firing; endsAt <= now is resolved; a future endsAt is still firing."""
    firing = Alert({"a": "1"}, {}, NOW - S, ZERO_TIME)
    resolved = Alert({"a": "2"}, {}, NOW - S, NOW)
    future = Alert({"a": "3"}, {}, NOW - S, NOW + 1)
    got = split_hashes([firing, resolved, future], NOW)
    assert got == (
        [alert_hash({"a": "1"}), alert_hash({"a": "3"})],
        [alert_hash({"a": "2"})],
    )


@given(
    st.dictionaries(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=5),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=5),
        max_size=5,
    )
)
def test_alert_hash_is_xxhash_of_the_fingerprint_bytes(labels: dict[str, str]) -> None:
    """The joined-and-encoded hash input equals labels_hash_bytes, byte for byte."""
    assert alert_hash(labels) == xxhash.xxh64_intdigest(labels_hash_bytes(labels), 0)
