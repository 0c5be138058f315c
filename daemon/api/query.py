"""The read side of API v2: query parameters and the alert and group listings (spec §1.5, §1.7).

Pure: these functions read the backend and return JSON-ready values; the quart shell
only encodes them. Status is recomputed per alert and request through
``backend.alert_status``, exactly like Alertmanager's ``alertFilter``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from daemon.alert import Alert
from daemon.api.backend import AlertStatus, ApiBackend
from daemon.api.encoding import RawJson, gettable_alert, go_json, json_array, sorted_labels
from daemon.clock import ZERO_TIME
from daemon.gocompat.regexp import GoRegexp
from daemon.matcher import Matcher, MatcherError, compile_anchored, parse_matcher

# go-openapi's swag.ConvertBool: these words are true, any other non-empty value false.
_TRUE_WORDS = frozenset(
    ("true", "1", "yes", "ok", "y", "on", "selected", "checked", "t", "enabled")
)


class QueryError(ValueError):
    """A bad query parameter; the message is the handler's 400 body (a JSON string)."""


def parse_bool(values: Sequence[str], default: bool = True) -> bool:
    """A boolean query parameter: the last value counts; absent or empty is the default."""
    if not values or values[-1] == "":
        return default
    return values[-1].lower() in _TRUE_WORDS


def parse_filters(values: Sequence[str]) -> list[Matcher]:
    """Each ``filter`` value is one classic matcher, as 0.25's ``labels.ParseMatcher`` reads it.

    The whole value is one matcher, so ``a=b,c`` means ``a="b,c"`` (the list parser
    would split it); braces fail the shape check with ``bad matcher format: …``.
    """
    try:
        return [parse_matcher(v) for v in values]
    except MatcherError as exc:
        raise QueryError(str(exc)) from None


def parse_receiver(value: str | None) -> GoRegexp | None:
    """The ``receiver`` parameter as Alertmanager's anchored regex (match with ``search``)."""
    if value is None:
        return None
    try:
        return compile_anchored(value)
    except MatcherError as exc:
        raise QueryError(f"failed to parse receiver param: {exc}") from None


@attrs.frozen
class AlertQuery:
    """The parameters GET /alerts and GET /alerts/groups share."""

    active: bool = True
    silenced: bool = True
    inhibited: bool = True
    filters: Sequence[Matcher] = ()
    receiver: GoRegexp | None = None

    @classmethod
    def from_args(cls, getlist: Callable[[str], list[str]]) -> AlertQuery:
        """Parse query arguments; ``getlist(name)`` returns every value of ``name``."""
        receivers = getlist("receiver")
        return cls(
            active=parse_bool(getlist("active")),
            silenced=parse_bool(getlist("silenced")),
            inhibited=parse_bool(getlist("inhibited")),
            filters=parse_filters(getlist("filter")),
            receiver=parse_receiver(receivers[-1] if receivers else None),
        )


def _passes(
    query: AlertQuery,
    alert: Alert,
    now: int,
    status_of: Callable[[Alert], AlertStatus],
) -> AlertStatus | None:
    """Alertmanager's ``alertFilter``: the recomputed status, or None to skip the alert."""
    # Strictly before now: an alert ending exactly now is still listed (0.25).
    if alert.ends_at != ZERO_TIME and alert.ends_at < now:
        return None
    status = status_of(alert)
    if not query.active and status.state == "active":
        return None
    if not query.silenced and status.silenced_by:
        return None
    if not query.inhibited and status.inhibited_by:
        return None
    labels = alert.labels
    for m in query.filters:
        if not m.matches(labels.get(m.name, "")):
            return None
    return status


#: fingerprint -> (alert, silenced_by, inhibited_by, receivers, encoded gettableAlert).
#: Alerts are immutable values, so the text stays right while the same object and
#: the same status and receivers come back; most listings re-encode nothing.
_Fragment = tuple[Alert, tuple[str, ...], tuple[str, ...], tuple[str, ...], str]
_fragments: dict[int, _Fragment] = {}
#: Above this many cached entries per stored alert, start over (drops departed alerts).
_FRAGMENT_SLACK = 2


def list_alerts(backend: ApiBackend, query: AlertQuery, now: int) -> RawJson:
    """GET /api/v2/alerts: unresolved alerts passing the query, sorted by fingerprint.

    Returns the encoded JSON array, built from cached per-alert fragments.
    """
    out: list[tuple[int, str]] = []
    receiver_re = query.receiver
    fragments = _fragments
    receivers_for = backend.receivers_for
    alert_status = backend.alert_status
    unfiltered = query.active and query.silenced and query.inhibited and not query.filters
    stored = 0
    for alert in backend.store:
        stored += 1
        receivers = receivers_for(alert.labels)
        if receiver_re is not None and not any(receiver_re.search(r) for r in receivers):
            continue
        if unfiltered:
            # _passes without the filters: only the end time can drop the alert.
            if alert.ends_at != ZERO_TIME and alert.ends_at < now:
                continue
            status = alert_status(alert, now)
        else:
            passed = _passes(query, alert, now, lambda a: alert_status(a, now))
            if passed is None:
                continue
            status = passed
        fp = alert.fingerprint
        silenced = tuple(status.silenced_by)
        inhibited = tuple(status.inhibited_by)
        names = tuple(receivers)
        cached = fragments.get(fp)
        if (
            cached is not None
            and cached[0] is alert
            and cached[1] == silenced
            and cached[2] == inhibited
            and cached[3] == names
        ):
            text = cached[4]
        else:
            text = go_json(gettable_alert(alert, status, receivers))
            fragments[fp] = (alert, silenced, inhibited, names, text)
        out.append((fp, text))
    if len(fragments) > _FRAGMENT_SLACK * stored + 1024:
        fragments.clear()
    # Fingerprints are 64-bit and formatted as 16 zero-padded hex digits, so
    # numeric order is the order of their hex strings.
    out.sort(key=lambda pair: pair[0])
    return json_array([text for _, text in out])


def _label_set_before(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Prometheus ``LabelSet.Before``: fewer labels first, then first differing name/value."""
    if len(a) != len(b):
        return len(a) < len(b)
    for name in sorted(set(a) | set(b)):
        if name not in a:
            return True
        if name not in b:
            return False
        if a[name] != b[name]:
            return a[name] < b[name]
    return False


_Kept = tuple[dict[str, str], str, list[tuple[Alert, AlertStatus]]]


def _group_order(x: _Kept, y: _Kept) -> int:
    """Alertmanager's ``AlertGroups.Less``: by label set, ties by receiver name."""
    if x[0] == y[0]:
        return (x[1] > y[1]) - (x[1] < y[1])
    if _label_set_before(x[0], y[0]):
        return -1
    if _label_set_before(y[0], x[0]):
        return 1
    return 0


def list_groups(backend: ApiBackend, query: AlertQuery, now: int) -> list[dict[str, Any]]:
    """GET /api/v2/alerts/groups: the dispatcher's groups with their passing alerts."""
    statuses: dict[int, AlertStatus] = {}

    def status_of(a: Alert) -> AlertStatus:
        # Alertmanager recomputes per group; the answer cannot change within a request.
        st = statuses.get(a.fingerprint)
        if st is None:
            st = statuses[a.fingerprint] = backend.alert_status(a, now)
        return st

    receivers_of: dict[int, list[str]] = {}
    kept: list[_Kept] = []
    for group in backend.groups():
        if query.receiver is not None and not query.receiver.search(group.receiver):
            continue
        alerts: list[tuple[Alert, AlertStatus]] = []
        for alert in group.alerts:
            status = _passes(query, alert, now, status_of)
            if status is None:
                continue
            receivers_of.setdefault(alert.fingerprint, []).append(group.receiver)
            alerts.append((alert, status))
        if alerts:
            kept.append((dict(group.labels), group.receiver, alerts))
    kept.sort(key=functools.cmp_to_key(_group_order))
    for names in receivers_of.values():
        names.sort()
    return [
        {
            "alerts": [
                gettable_alert(alert, status, receivers_of[alert.fingerprint])
                for alert, status in alerts
            ],
            "labels": sorted_labels(labels),
            "receiver": {"name": receiver},
        }
        for labels, receiver, alerts in kept
    ]
