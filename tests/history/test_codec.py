"""The history row codec: the body built map by map is the encoder's text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.history import codec
from daemon.history.record import HistoryAlert, HistoryRecord, IntegrationRef, Status
from daemon.notify.attempt import Outcome
from daemon.notify.dedup import NotifyReason
from tests.history.conftest import T0

# Characters each escaping rule treats apart: quote, backslash, controls, Go's HTML
# escapes, U+2028/9, a lone surrogate, non-ASCII, astral.
_chars = st.sampled_from(list('a"\\\n\x01\x1f<>&\u2028\u2029\ud800é€😀 =,{}[]:'))
_text = st.text(_chars, max_size=6) | st.text(max_size=6)
_labels = st.dictionaries(_text, _text, max_size=4)


@given(
    group=_labels,
    alerts=st.lists(
        st.tuples(
            st.text(max_size=16) | st.just("00ab00cd00ef0012"), _labels, st.sampled_from(Status)
        ),
        max_size=4,
    ),
)
def test_body_is_the_encoders_text(
    group: dict[str, str], alerts: list[tuple[str, dict[str, str], Status]]
) -> None:
    """Any labels (escapes, surrogates, non-ASCII, empty maps) and fingerprints: the
    stored body equals one encoder call over the same data, so label filters and
    stored rows from before read it the same."""
    rec = HistoryRecord(
        time=T0,
        receiver="r",
        integration=IntegrationRef("webhook", 0),
        group_key="k",
        group_labels=group,
        alerts=[HistoryAlert(fp, labels, status) for fp, labels, status in alerts],
        reason=NotifyReason.FIRST_NOTIFICATION,
        outcome=Outcome.SENT,
    )
    row = codec.record_to_row(rec)
    assert row[-1] == codec.encode_body(rec)


def test_body_of_a_plain_record() -> None:
    """The shape itself (keys sorted: alerts before group labels)."""
    rec = HistoryRecord(
        time=T0,
        receiver="r",
        integration=IntegrationRef("webhook", 0),
        group_key="k",
        group_labels={"alertname": "A"},
        alerts=[HistoryAlert("00000000000000ff", {"b": "2", "a": "<1>"}, Status.RESOLVED)],
        reason=NotifyReason.FIRST_NOTIFICATION,
        outcome=Outcome.SENT,
    )
    assert codec.record_to_row(rec)[-1] == (
        '{"a":[["00000000000000ff",{"a":"<1>","b":"2"},"resolved"]],"g":{"alertname":"A"}}'
    )
