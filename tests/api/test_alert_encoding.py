"""gettable_alert_json writes what go_json(gettable_alert(...)) writes, faster, and
escapes as Go's encoding/json where Python's encoder differs (\\b and \\f)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.alert import Alert
from daemon.api.backend import AlertStatus
from daemon.api.encoding import gettable_alert, gettable_alert_json, go_json

S = 1_000_000_000
# Any text but \b and \f, which the two encoders write differently, and lone
# surrogates, which the intake has already turned into U+FFFD (test_post_alerts).
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\b\f"), max_size=12
)
LABELS = st.dictionaries(TEXT.filter(bool), TEXT.filter(bool), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    labels=LABELS,
    annotations=st.dictionaries(TEXT.filter(bool), TEXT, max_size=3),
    times=st.tuples(*[st.integers(0, 4_000_000_000) for _ in range(3)]),
    url=TEXT,
    receivers=st.lists(TEXT, max_size=3),
    silenced=st.lists(st.uuids().map(str), max_size=2),
    inhibited=st.lists(st.text("0123456789abcdef", min_size=16, max_size=16), max_size=1),
)
def test_the_same_bytes_as_the_dict_and_the_encoder(
    labels: dict[str, str],
    annotations: dict[str, str],
    times: tuple[int, int, int],
    url: str,
    receivers: list[str],
    silenced: list[str],
    inhibited: list[str],
) -> None:
    """For any alert, status and receivers: the direct text equals the encoded dict."""
    starts, ends, updated = (t * S for t in times)
    alert = Alert(labels, annotations, starts, ends, url, updated)
    status = AlertStatus(silenced_by=tuple(silenced), inhibited_by=tuple(inhibited))
    assert gettable_alert_json(alert, status, receivers) == go_json(
        gettable_alert(alert, status, receivers)
    )


def test_backspace_and_form_feed_as_go_writes_them() -> None:
    """\\b and \\f in labels and annotations are \\u0008 and \\u000c, as in Go's answer."""
    alert = Alert({"a": "x\by"}, {"d": "p\fq"}, S, 2 * S, "", S)
    text = gettable_alert_json(alert, AlertStatus(), ["r"])
    assert '"a":"x\\u0008y"' in text and '"d":"p\\u000cq"' in text
