"""``GET /api/v1/why`` and ``GET /api/v1/routes``: why an alert did or did not notify.

Our own endpoints (Alertmanager has neither), answered as :mod:`daemon.api.history`
answers: JSON with a trailing newline, errors as ``{"error": ...}``.

``/api/v1/why`` takes ``fingerprint=<16 hex>`` or ``filter=<matcher>`` (repeatable, the
``/api/v2/alerts`` syntax; the alert with the lowest fingerprint among those matching
is explained) and answers, for that one stored alert:

* ``routes``: every route node the alert is dispatched to (as
  :meth:`daemon.dispatch.route.RouteNode.match` decides), each with the ``path`` of
  nodes from the root down to it, its receiver and timers, and the aggregation group
  the alert sits in there with the time its timer next fires (``null`` while the
  dispatcher has not grouped the alert yet), and the route's time intervals that hold
  its notifications back now (``mutedByTimeIntervals``, ``outsideActiveTimeIntervals``);
* ``silences``: the active silences that mute it, as ``gettableSilence`` objects;
* ``inhibitions``: the inhibiting alert and the rules through which it inhibits;
* ``history``: per route, the newest notification attempts of that group (when the
  history is on; ``historyAvailable`` says whether it is).

``/api/v1/muted`` lists the fingerprints of the stored alerts that all their routes'
time intervals hold back right now (Alertmanager 0.25's alert status has no such
state; the UI's "Muted" toggle reads it).

``/api/v1/routes`` draws the routing tree as JSON; with ``labels=<matchers>`` (the
``{a="b", c="d"}`` list syntax, as ``amtool config routes test`` takes labels) every
node also says whether the labels walk through it (``matched``) and which nodes are
final (``receiver`` chosen), so that the UI can highlight the path.

The decisions here are pure functions of the backend's snapshots; the handlers read
``now`` once and pass it down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import attrs
import trio
from quart import Response, request

from daemon.alert import Alert
from daemon.api.app import ApiHandler
from daemon.api.backend import ApiBackend
from daemon.api.encoding import body, gettable_alert
from daemon.api.history import HistorySource, RequestTenant
from daemon.api.query import QueryError, parse_filters
from daemon.api.silences import gettable_silence
from daemon.clock import NS_PER_SECOND
from daemon.config.model import InhibitRule, Route
from daemon.dispatch.route import RouteNode
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.gocompat.duration import format_duration
from daemon.gocompat.timestamp import format_millis
from daemon.history.query import HistoryQuery
from daemon.history.record import record_to_json
from daemon.history.store import HistoryUnavailable
from daemon.matcher import Matcher, MatcherError, MatchType, parse_matchers
from daemon.silence.state import Silences
from daemon.timeinterval import TimeIntervals

#: Paths relative to the route prefix, in ``create_app(extra_routes=...)`` form.
WHY_PATH = "api/v1/why"
ROUTES_PATH = "api/v1/routes"
MUTED_PATH = "api/v1/muted"

#: Notification attempts shown per route's group.
HISTORY_PER_GROUP = 20
_FINGERPRINT = re.compile(r"[0-9a-fA-F]{1,16}")


class _SilenceHolder(Protocol):
    @property
    def silences(self) -> Silences: ...


def _json(status: int, payload: Any) -> Response:
    return Response(body(payload), status=status, content_type="application/json")


# --- the pure part -----------------------------------------------------------------------


def _matcher_texts(matchers: Sequence[Matcher]) -> list[str]:
    return [str(m) for m in matchers]


def route_json(node: RouteNode) -> dict[str, Any]:
    """One node's own facts (no children): what the tree view and the why view draw."""
    route: Route = node.route
    return {
        "id": node.id,
        "matchers": _matcher_texts(route.matchers),
        "receiver": route.receiver,
        "groupBy": ["..."] if route.group_by_all else list(route.group_by),
        "continue": route.continue_,
        "groupWait": format_duration(route.group_wait),
        "groupInterval": format_duration(route.group_interval),
        "repeatInterval": format_duration(route.repeat_interval),
        "muteTimeIntervals": list(route.mute_time_intervals),
        "activeTimeIntervals": list(route.active_time_intervals),
    }


def route_path(root: RouteNode, target: RouteNode) -> list[RouteNode]:
    """The nodes from ``root`` down to ``target`` (both included); empty if absent."""
    if root is target:
        return [root]
    for child in root.children:
        below = route_path(child, target)
        if below:
            return [root, *below]
    return []


def tree_json(node: RouteNode, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The whole tree; with ``labels``, ``matched`` and ``final`` as amtool's test walks it."""
    walked: set[str] = set()
    final: set[str] = set()
    if labels is not None:
        for leaf in node.match(labels):
            final.add(leaf.id)
            walked.update(n.id for n in route_path(node, leaf))

    def draw(n: RouteNode) -> dict[str, Any]:
        out = route_json(n)
        if labels is not None:
            out["matched"] = n.id in walked
            out["final"] = n.id in final
        out["routes"] = [draw(child) for child in n.children]
        return out

    return draw(node)


def inhibiting_rules(
    rules: Sequence[InhibitRule], target: Mapping[str, str], source: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The rules under which ``source`` inhibits ``target`` (spec: equal labels, both sides)."""
    out = []
    for rule in rules:
        if not all(m.matches_labels(target) for m in rule.target_matchers):
            continue
        if not all(m.matches_labels(source) for m in rule.source_matchers):
            continue
        if any(target.get(name, "") != source.get(name, "") for name in rule.equal):
            continue
        out.append(
            {
                "sourceMatchers": _matcher_texts(rule.source_matchers),
                "targetMatchers": _matcher_texts(rule.target_matchers),
                "equal": list(rule.equal),
            }
        )
    return out


def time_muting(intervals: TimeIntervals, route: Route, now: int) -> dict[str, list[str]]:
    """Why the route's time intervals hold its notifications back right now, if they do:
    the mute intervals in effect, and the active intervals when none of them is."""
    muted = intervals.active_names(route.mute_time_intervals, now)
    active = route.active_time_intervals
    outside = list(active) if active and not intervals.active_names(active, now) else []
    return {"mutedByTimeIntervals": muted, "outsideActiveTimeIntervals": outside}


def time_muted(backend: ApiBackend, root: RouteNode, now: int) -> list[str]:
    """Fingerprints of the stored alerts that every one of their routes holds back now
    through its time intervals (the UI's "muted"; silences and inhibitions aside)."""
    intervals = TimeIntervals(backend.config.time_intervals)
    held = {
        node.id for node in root.walk() if any(time_muting(intervals, node.route, now).values())
    }
    if not held:
        return []
    out = []
    for alert in backend.store:
        leaves = root.match(alert.labels)
        if leaves and all(leaf.id in held for leaf in leaves):
            out.append(alert.fingerprint_hex)
    return sorted(out)


def wall_time(timer_at: float, timer_now: float, wall_now: int) -> int:
    """A time on trio's clock (seconds) as Unix nanoseconds, given both clocks' ``now``."""
    return wall_now + round((timer_at - timer_now) * NS_PER_SECOND)


@attrs.frozen
class Explanation:
    """The why answer before its history is fetched."""

    alert: Alert
    payload: dict[str, Any]
    #: ``(index into payload["routes"], receiver, group labels, group key)`` to look up.
    lookups: tuple[tuple[int, str, dict[str, str], str], ...]


def explain(
    backend: ApiBackend, alert: Alert, now: int, timer_now: float, root: RouteNode
) -> Explanation:
    """Everything but the history about ``alert``, as of ``now`` (and ``timer_now``)."""
    status = backend.alert_status(alert, now)
    leaves = root.match(alert.labels)
    groups: dict[tuple[str, str], GroupSnapshot] = {
        (g.route_id, g.group_key): g for g in backend.groups()
    }
    routes: list[dict[str, Any]] = []
    lookups: list[tuple[int, str, dict[str, str], str]] = []
    intervals = TimeIntervals(backend.config.time_intervals)
    for i, leaf in enumerate(leaves):
        group_labels = leaf.group_labels(alert.labels)
        key = leaf.group_key(group_labels)
        snap = groups.get((leaf.id, key))
        group: dict[str, Any] | None = None
        if snap is not None and any(a.fingerprint == alert.fingerprint for a in snap.alerts):
            nxt = snap.next_flush_at
            group = {
                "key": key,
                "labels": dict(sorted(group_labels.items())),
                "alerts": len(snap.alerts),
                "nextFlush": (
                    format_millis(wall_time(nxt, timer_now, now)) if nxt is not None else None
                ),
            }
        routes.append(
            {
                "receiver": leaf.receiver,
                "groupKey": key,
                "path": [route_json(n) for n in route_path(root, leaf)],
                "group": group,
                **time_muting(intervals, leaf.route, now),
            }
        )
        lookups.append((i, leaf.receiver, group_labels, key))
    silences: list[dict[str, Any]] = []
    holder = cast(_SilenceHolder, backend)
    for sid in status.silenced_by:
        silence = holder.silences.get(sid)
        if silence is not None:
            silences.append(gettable_silence(silence, now))
    inhibitions: list[dict[str, Any]] = []
    for fp in status.inhibited_by:
        source = _stored(backend, fp)
        inhibitions.append(
            {
                "fingerprint": fp,
                "labels": dict(sorted(source.labels.items())) if source is not None else None,
                "rules": (
                    inhibiting_rules(backend.config.inhibit_rules, alert.labels, source.labels)
                    if source is not None
                    else []
                ),
            }
        )
    payload: dict[str, Any] = {
        "alert": gettable_alert(alert, status, sorted(leaf.receiver for leaf in leaves)),
        "routes": routes,
        "silences": silences,
        "inhibitions": inhibitions,
        "history": [],
        "historyAvailable": False,
    }
    return Explanation(alert, payload, tuple(lookups))


def _stored(backend: ApiBackend, fingerprint: str) -> Alert | None:
    if _FINGERPRINT.fullmatch(fingerprint) is None:
        return None
    return backend.store.get(int(fingerprint, 16))


def find_alert(backend: ApiBackend, args: Mapping[str, list[str]], now: int) -> Alert:
    """The alert a request names; raises ``LookupError`` (404) or ``QueryError`` (400)."""
    fingerprints = args.get("fingerprint", [])
    filters = args.get("filter", [])
    if bool(fingerprints) == bool(filters):
        raise QueryError("give either fingerprint or filter")
    if fingerprints:
        fp = fingerprints[-1]
        if _FINGERPRINT.fullmatch(fp) is None:
            raise QueryError(f"invalid fingerprint {fp!r}: want up to 16 hex digits")
        alert = backend.store.get(int(fp, 16))
        if alert is None:
            raise LookupError(f"no alert with fingerprint {fp.lower().zfill(16)}")
        return alert
    matchers = parse_filters(filters)
    best: Alert | None = None
    for alert in backend.store:
        if all(m.matches_labels(alert.labels) for m in matchers) and (
            best is None or alert.fingerprint < best.fingerprint
        ):
            best = alert
    if best is None:
        raise LookupError("no alert matches the filter")
    return best


def group_history_query(receiver: str, group_labels: Mapping[str, str]) -> HistoryQuery:
    """The history rows that can belong to a group: its receiver, its labels' values.

    A row matches when one of its alerts carries every group label, which every alert
    of the group does; the handler keeps the rows whose group key is exactly the group's.
    """
    matchers = tuple(
        Matcher.create(MatchType.EQUAL, name, value) for name, value in group_labels.items()
    )
    return HistoryQuery(receiver=receiver, matchers=matchers, limit=HISTORY_PER_GROUP)


# --- the handlers --------------------------------------------------------------------------


def why_routes(
    history: HistorySource | None, *, request_tenant: RequestTenant | None = None
) -> dict[str, dict[str, ApiHandler]]:
    """The route table to pass as ``create_app(..., extra_routes=...)``."""

    async def get_why(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        """200 with the explanation; 400 for bad parameters; 404 for no such alert."""
        now = backend.clock.now()
        args = {name: request.args.getlist(name) for name in ("fingerprint", "filter")}
        try:
            alert = find_alert(backend, args, now)
        except QueryError as exc:
            return _json(400, {"error": str(exc)})
        except LookupError as exc:
            return _json(404, {"error": str(exc.args[0])})
        root = RouteNode.build(backend.config.route)
        why = explain(backend, alert, now, trio.current_time(), root)
        payload = why.payload
        if history is not None:
            tenant = request_tenant() if request_tenant is not None else None
            records: list[dict[str, Any]] = []
            try:
                for _, receiver, labels, key in why.lookups:
                    query = attrs.evolve(group_history_query(receiver, labels), tenant=tenant)
                    page = await history.query(query)
                    records += [record_to_json(r) for r in page.items if r.group_key == key]
                payload["historyAvailable"] = True
            except HistoryUnavailable:
                records = []
            records.sort(key=lambda r: str(r["time"]), reverse=True)
            payload["history"] = records
        return _json(200, payload)

    async def get_routes(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        """200 with the tree; with ``labels``, the path those labels take (400 if invalid)."""
        root = RouteNode.build(backend.config.route)
        given = request.args.getlist("labels")
        labels: dict[str, str] | None = None
        if given:
            try:
                parsed = parse_matchers(given[-1])
            except MatcherError as exc:
                return _json(400, {"error": f"invalid labels: {exc}"})
            bad = [str(m) for m in parsed if m.type is not MatchType.EQUAL]
            if bad:
                return _json(400, {"error": f"labels take name=value only, not {bad[0]}"})
            labels = {m.name: m.value for m in parsed}
        payload: dict[str, Any] = {"tree": tree_json(root, labels)}
        if labels is not None:
            payload["receivers"] = [leaf.receiver for leaf in root.match(labels)]
        return _json(200, payload)

    async def get_muted(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        """200 with the fingerprints of the alerts their routes' time intervals hold back."""
        root = RouteNode.build(backend.config.route)
        return _json(200, {"fingerprints": time_muted(backend, root, backend.clock.now())})

    return {
        WHY_PATH: {"GET": get_why},
        ROUTES_PATH: {"GET": get_routes},
        MUTED_PATH: {"GET": get_muted},
    }


__all__ = [
    "MUTED_PATH",
    "ROUTES_PATH",
    "WHY_PATH",
    "explain",
    "find_alert",
    "inhibiting_rules",
    "route_path",
    "tree_json",
    "why_routes",
]
