"""The read side of API v2: query parameters and the alert and group listings (spec §1.5, §1.7).

Pure: these functions read the backend and return JSON-ready values; the quart shell
only encodes them. Status is recomputed per alert and request through
``backend.alert_status``, exactly like Alertmanager's ``alertFilter``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence

import attrs

from daemon.alert import Alert, untrack
from daemon.api.backend import AlertStatus, ApiBackend
from daemon.api.encoding import RawJson, gettable_alert_json, go_json, json_array, sorted_labels
from daemon.api.postable import Steps, run_steps
from daemon.clock import ZERO_TIME
from daemon.gocompat.regexp import GoRegexp
from daemon.matcher import Matcher, MatcherError, compile_anchored, parse_matcher
from daemon.store import AlertStore

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
#: the same status and receivers come back; most listings re-encode nothing. Both
#: listings share it: an alert of one group with one receiver encodes the same in each.
_Fragment = tuple[Alert, tuple[str, ...], tuple[str, ...], tuple[str, ...], str]
_Fragments = dict[int, _Fragment]
#: One cache per alert store (per tenant): with one cache for all, listing a tenant's
#: ten alerts dropped (as departed) another tenant's 100k encodings.
_caches: weakref.WeakKeyDictionary[AlertStore, _Fragments] = weakref.WeakKeyDictionary()
#: Above this many cached entries per stored alert, start over (drops departed alerts).
_FRAGMENT_SLACK = 2
#: Alerts handled between two yields of a listing's steps: each costs a few µs, so a
#: step stays far below :data:`daemon.api.cooperative.SLICE_SECONDS`.
LIST_STEP_ALERTS = 64


def _fragments_of(store: AlertStore) -> _Fragments:
    fragments = _caches.get(store)
    if fragments is None:
        fragments = _caches[store] = {}
    return fragments


def _fragment(
    fragments: _Fragments, alert: Alert, status: AlertStatus, receivers: Sequence[str]
) -> str:
    """The encoded ``gettableAlert``, from the cache when nothing it shows changed."""
    silenced = tuple(status.silenced_by)
    inhibited = tuple(status.inhibited_by)
    names = tuple(receivers)
    cached = fragments.get(alert.fingerprint)
    if (
        cached is not None
        and cached[0] is alert
        and cached[1] == silenced
        and cached[2] == inhibited
        and cached[3] == names
    ):
        return cached[4]
    text = gettable_alert_json(alert, status, receivers)
    # Alerts, str tuples and str: never in a cycle, so kept out of the collector's walk.
    fragments[alert.fingerprint] = untrack((alert, silenced, inhibited, names, text))
    return text


def _trim_fragments(fragments: _Fragments, stored: int) -> None:
    # Against the store's size, not what one listing showed: a filtered listing of a
    # few groups must not drop the encodings of every other stored alert.
    if len(fragments) > _FRAGMENT_SLACK * stored + 1024:
        fragments.clear()


def list_alerts(backend: ApiBackend, query: AlertQuery, now: int) -> RawJson:
    """GET /api/v2/alerts in one go (see :func:`list_alerts_steps`)."""
    return run_steps(list_alerts_steps(backend, query, now))


def list_alerts_steps(backend: ApiBackend, query: AlertQuery, now: int) -> Steps[RawJson]:
    """GET /api/v2/alerts: unresolved alerts passing the query, sorted by fingerprint.

    Returns the encoded JSON array, built from cached per-alert fragments, yielding
    every :data:`LIST_STEP_ALERTS` alerts. The store is copied first (iterating it
    does), so alerts posted between steps do not disturb the listing.
    """
    out: list[tuple[int, str]] = []
    fragments = _fragments_of(backend.store)
    receiver_re = query.receiver
    receivers_for = backend.receivers_for
    alert_status = backend.alert_status
    unfiltered = query.active and query.silenced and query.inhibited and not query.filters
    stored = 0
    for alert in backend.store:
        stored += 1
        if not stored % LIST_STEP_ALERTS:
            yield
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
        out.append((alert.fingerprint, _fragment(fragments, alert, status, receivers)))
    _trim_fragments(fragments, len(backend.store))
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


def list_groups(backend: ApiBackend, query: AlertQuery, now: int) -> RawJson:
    """GET /api/v2/alerts/groups in one go (see :func:`list_groups_steps`)."""
    return run_steps(list_groups_steps(backend, query, now))


def list_groups_steps(backend: ApiBackend, query: AlertQuery, now: int) -> Steps[RawJson]:
    """GET /api/v2/alerts/groups: the dispatcher's groups with their passing alerts.

    Returns the encoded JSON array, yielding every :data:`LIST_STEP_ALERTS` alerts.
    The groups are immutable snapshots taken at the start, so the listing is the
    dispatcher's state at that moment whatever happens between steps.
    """
    fragments = _fragments_of(backend.store)
    statuses: dict[int, AlertStatus] = {}

    def status_of(a: Alert) -> AlertStatus:
        # Alertmanager recomputes per group; one answer per request is as right (and
        # the same alert in two groups then shows one status in both).
        st = statuses.get(a.fingerprint)
        if st is None:
            st = statuses[a.fingerprint] = backend.alert_status(a, now)
        return st

    receivers_of: dict[int, list[str]] = {}
    kept: list[_Kept] = []
    unfiltered = query.active and query.silenced and query.inhibited and not query.filters
    seen = 0
    for group in backend.groups():
        if query.receiver is not None and not query.receiver.search(group.receiver):
            continue
        alerts: list[tuple[Alert, AlertStatus]] = []
        for alert in group.alerts:
            seen += 1
            if not seen % LIST_STEP_ALERTS:
                yield
            if unfiltered:
                # _passes without the filters: only the end time can drop the alert.
                if alert.ends_at != ZERO_TIME and alert.ends_at < now:
                    continue
                status = status_of(alert)
            else:
                passed = _passes(query, alert, now, status_of)
                if passed is None:
                    continue
                status = passed
            fp = alert.fingerprint
            names = receivers_of.get(fp)
            if names is None:
                receivers_of[fp] = [group.receiver]
            else:
                names.append(group.receiver)
            alerts.append((alert, status))
        if alerts:
            kept.append((dict(group.labels), group.receiver, alerts))
    kept.sort(key=functools.cmp_to_key(_group_order))
    for names in receivers_of.values():
        if len(names) > 1:
            names.sort()
    # One flat list of pieces joined once at the end: the answer is ~50 MB at 100k
    # alerts, and every intermediate string of it would be another copy.
    pieces = ["["]
    encoded = 0
    for n, (labels, receiver, members) in enumerate(kept):
        # gettableAlertGroup's keys in go-swagger's order: alerts, labels, receiver.
        pieces.append('{"alerts":[' if n == 0 else ',{"alerts":[')
        for i, (alert, status) in enumerate(members):
            encoded += 1
            if not encoded % LIST_STEP_ALERTS:
                yield
            if i:
                pieces.append(",")
            pieces.append(_fragment(fragments, alert, status, receivers_of[alert.fingerprint]))
        pieces.append(
            '],"labels":'
            + go_json(sorted_labels(labels))
            + ',"receiver":'
            + go_json({"name": receiver})
            + "}"
        )
    pieces.append("]")
    _trim_fragments(fragments, len(backend.store))
    return RawJson("".join(pieces))
