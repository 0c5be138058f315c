"""Posting a batch of alerts in one call gives what posting them one by one gives."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from daemon.alert import PostedFields, merge, posted_alert, posted_alerts, validate_posted
from daemon.clock import ZERO_TIME

NOW = 1_700_000_000_000_000_000
TIMEOUT_END = NOW + 300 * 10**9

_names = st.sampled_from(["alertname", "job", "a_b", "9bad", "bad-name", "", "ünï"])
_values = st.sampled_from(["", "x", "a value", "☃"])
_times = st.sampled_from([ZERO_TIME, NOW - 10**9, NOW, NOW + 10**9, 0])
_raw = st.tuples(
    st.dictionaries(_names, _values, max_size=4),
    st.dictionaries(_names, _values, max_size=2),
    _times,
    _times,
    st.sampled_from(["", "http://x/graph"]),
)


def _copy(raw: PostedFields) -> PostedFields:
    labels, annotations, starts_at, ends_at, url = raw
    return dict(labels), dict(annotations), starts_at, ends_at, url


@given(st.lists(_raw, max_size=6))
def test_batch_equals_alert_by_alert(raws: list[PostedFields]) -> None:
    """Same valid alerts (all fields), same errors in order, same firing count."""
    want_valid, want_errors, want_firing = [], [], 0
    for raw in raws:
        alert = posted_alert(*_copy(raw), NOW, TIMEOUT_END)
        want_firing += alert.ends_at > NOW
        problem = validate_posted(alert)
        if problem is None:
            want_valid.append(alert)
        else:
            want_errors.append(problem)
    valid, errors, firing = posted_alerts([_copy(r) for r in raws], NOW, TIMEOUT_END)
    assert [attrs.astuple(a) for a in valid] == [attrs.astuple(a) for a in want_valid]
    assert errors == want_errors
    assert firing == want_firing


def test_batch_reports_invalid_items_and_keeps_the_rest() -> None:
    """A bad name and an empty label set are reported; the good alert is kept, defaulted."""
    valid, errors, firing = posted_alerts(
        [
            ({"alertname": "A"}, {}, ZERO_TIME, ZERO_TIME, ""),
            ({"bad-name": "x"}, {}, ZERO_TIME, ZERO_TIME, ""),
            ({"job": ""}, {}, ZERO_TIME, NOW - 1, ""),
        ],
        NOW,
        TIMEOUT_END,
    )
    assert [(a.labels, a.starts_at, a.ends_at, a.timeout) for a in valid] == [
        ({"alertname": "A"}, NOW, TIMEOUT_END, True)
    ]
    assert errors == [
        'invalid label set: invalid name "bad-name"',
        "at least one label pair required",
    ]
    assert firing == 2


def test_repost_without_starts_at_keeps_first_start_and_all_other_fields() -> None:
    """A re-post merges to the first startsAt with every other field from the new post."""
    (first,), _, _ = posted_alerts(
        [({"alertname": "A"}, {"s": "1"}, ZERO_TIME, ZERO_TIME, "")], NOW, TIMEOUT_END
    )
    later = NOW + 60 * 10**9
    (second,), _, _ = posted_alerts(
        [({"alertname": "A"}, {"s": "2"}, ZERO_TIME, ZERO_TIME, "http://x/")],
        later,
        later + 300 * 10**9,
    )
    merged = merge(first, second, later)
    assert attrs.astuple(merged) == attrs.astuple(
        second.copy(starts_at=NOW, ends_at=later + 300 * 10**9)
    )
    assert merged.starts_at == NOW
