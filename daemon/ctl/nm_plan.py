"""From NM's CRDs to Alertmanager configs and silences: the import's pure planning.

:func:`plan_import` takes the objects read by :mod:`daemon.ctl.nm_crds` and returns a
:class:`Plan`: one Alertmanager config per tenant, the global config (only when asked
for), the silences to post, and every :class:`Problem` met on the way. It does no I/O.

How NM's model becomes Alertmanager's:

* Each enabled channel block of a ``Receiver`` CR is one Alertmanager receiver named
  ``<cr name>-<channel>`` (NM also treats each block as its own receiver). It gets a
  route with its ``alertSelector`` as matchers and ``continue: true``, so, as in NM,
  every receiver whose selector matches is notified. The root route's receiver
  (``nm-unrouted``) has no integrations: an alert no receiver selects goes nowhere.
* The Config CR block a receiver block uses is chosen as NM chooses it: a tenant
  receiver looks in its tenant's Configs with its ``<channel>ConfigSelector``, then in
  every ``type: default`` Config; a global receiver only in the default ones. The
  lowest ``priority`` label wins (ties: by name, where NM picks at random).
* ``Router`` CRs act across tenants, so they belong to the global pipeline: one route
  per router, matching its ``alertSelector``, with a child route per receiver it names
  (each with that receiver's own ``alertSelector``, which NM applies after routing).
* ``Silence`` CRs become API silences of their tenant (global ones: of the global
  pipeline, which also mutes every tenant's copies). A ``schedule`` makes a recurring
  silence (:mod:`daemon.silence.recurring`), whose schedule is checked here as the
  server checks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from daemon.ctl.nm_channels import CHANNELS, map_channel
from daemon.ctl.nm_crds import (
    DEFAULT,
    GLOBAL,
    Problem,
    Resource,
    Secrets,
    TenantRules,
    Unmappable,
    mapping,
    selector_matchers,
    selector_matches,
)
from daemon.gocompat.duration import DurationError, format_go_duration, parse_go_duration
from daemon.gocompat.regexp import GoRegexError, compile_anchored
from daemon.gocompat.timestamp import format_millis, parse_rfc3339
from daemon.matcher import Matcher, MatchType
from daemon.silence.recurring import RecurrenceSpec, ScheduleError

UNROUTED = "nm-unrouted"
CREATED_BY = "tocsinctl import notification-manager"
#: NM's README default; the NotificationManager CR's ``groupLabels`` replaces it.
DEFAULT_GROUP_BY = ("alertname", "namespace")
#: KubeSphere installs NM here; Secrets without a namespace are looked up in it.
DEFAULT_SECRET_NAMESPACE = "kubesphere-monitoring-system"
_PRIORITY_NONE = 2**31 - 2  # NM's math.MaxInt32 - 1 for a missing or bad priority


@attrs.frozen
class Options:
    """Choices from flags; None means "the NotificationManager CR's, else NM's default"."""

    now: int
    tenant_key: str | None = None
    secret_namespace: str | None = None
    group_by: tuple[str, ...] | None = None
    time_zone: str = "UTC"
    #: Build the global pipeline's config (global receivers and Routers).
    want_global: bool = False


@attrs.frozen
class PlannedSilence:
    """One silence to post; ``tenant`` None is the global pipeline."""

    tenant: str | None
    source: str
    body: Mapping[str, Any]


@attrs.define
class Plan:
    tenants: dict[str, dict[str, Any]] = attrs.Factory(dict)
    global_config: dict[str, Any] | None = None
    silences: list[PlannedSilence] = attrs.Factory(list)
    problems: list[Problem] = attrs.Factory(list)


@attrs.frozen
class _Receiver:
    """One channel block of a Receiver CR, mapped."""

    cr: Resource
    owner: str
    channel: str
    name: str
    matchers: tuple[Matcher, ...]
    integrations: Mapping[str, Sequence[Mapping[str, Any]]]


def _priority(r: Resource) -> int:
    try:
        return int(r.labels.get("priority", ""))
    except ValueError:
        return _PRIORITY_NONE


def _pick_config(
    candidates: Iterable[Resource], channel: str, selector: Any
) -> Mapping[str, Any] | None:
    usable = [
        c
        for c in candidates
        if isinstance(c.spec.get(channel), dict) and selector_matches(selector, c.labels)
    ]
    if not usable:
        return None
    best = min(usable, key=lambda c: (_priority(c), c.name))
    block: Mapping[str, Any] = best.spec[channel]
    return block


def _nm_settings(
    resources: Sequence[Resource], opts: Options
) -> tuple[TenantRules, str, list[str]]:
    """Tenant rules, secret namespace and group labels: flag, else the NM CR, else default."""
    spec: Mapping[str, Any] = {}
    for r in resources:
        if r.kind == "NotificationManager":
            spec = r.spec
    receivers = mapping(spec.get("receivers"))
    tenant_key = opts.tenant_key or str(receivers.get("tenantKey") or "user")
    namespace = opts.secret_namespace or str(
        spec.get("defaultSecretNamespace") or DEFAULT_SECRET_NAMESPACE
    )
    if opts.group_by is not None:
        group_by = list(opts.group_by)
    elif isinstance(spec.get("groupLabels"), list):
        group_by = [str(v) for v in spec["groupLabels"]]
    else:
        group_by = list(DEFAULT_GROUP_BY)
    return TenantRules.from_cr(spec, tenant_key), namespace, group_by


def plan_import(resources: Sequence[Resource], opts: Options) -> Plan:
    plan = Plan()
    problems = plan.problems
    rules, secret_namespace, group_by = _nm_settings(resources, opts)
    secrets = Secrets.from_resources(resources, secret_namespace, problems)
    for r in resources:
        if r.kind == "NotificationManager":
            policy = r.spec.get("routePolicy") or "All"
            if policy != "All":
                problems.append(
                    Problem(
                        r.kind,
                        r.name,
                        f"routePolicy {policy}: tenant fan-out does not depend on Routers in "
                        "tocsin; Routers add to it as with All",
                    )
                )

    configs: dict[str, list[Resource]] = {}
    for r in resources:
        if r.kind != "Config":
            continue
        owner = rules.owner(r)
        if owner is None or owner == GLOBAL:
            problems.append(Problem(r.kind, r.name, _ignored(owner, rules.tenant_key)))
            continue
        configs.setdefault(owner, []).append(r)

    receivers = _map_receivers(resources, rules, configs, secrets, problems)
    tenants = sorted({rcv.owner for rcv in receivers if rcv.owner != GLOBAL})
    for tenant in tenants:
        plan.tenants[tenant] = _config(
            [rcv for rcv in receivers if rcv.owner == tenant], [], group_by
        )
    routers = [r for r in resources if r.kind == "Router"]
    global_receivers = [rcv for rcv in receivers if rcv.owner == GLOBAL]
    if opts.want_global:
        routes = [_router_route(r, receivers, problems) for r in routers]
        plan.global_config = _config(
            global_receivers, [route for route in routes if route is not None], group_by, receivers
        )
    else:
        for item in [*routers, *{rcv.cr.name: rcv.cr for rcv in global_receivers}.values()]:
            problems.append(
                Problem(
                    item.kind,
                    item.name,
                    "belongs to the global pipeline, whose config is a file: "
                    "give --global-config-out FILE to write it",
                )
            )
    for r in resources:
        if r.kind == "Silence":
            try:
                plan.silences.append(_silence(r, rules, opts))
            except Unmappable as exc:
                problems.append(Problem(r.kind, r.name, str(exc)))
    return plan


def _ignored(owner: str | None, tenant_key: str) -> str:
    if owner == GLOBAL:
        return "a global Config is never used by NM (global receivers use default Configs)"
    return (
        f"its labels make it neither global, default nor a tenant's "
        f"(a tenant's also needs the tenant key label {tenant_key!r}): NM ignores it"
    )


def _map_receivers(
    resources: Sequence[Resource],
    rules: TenantRules,
    configs: Mapping[str, list[Resource]],
    secrets: Secrets,
    problems: list[Problem],
) -> list[_Receiver]:
    out: list[_Receiver] = []
    for r in resources:
        if r.kind != "Receiver":
            continue
        owner = rules.owner(r)
        if owner is None:
            problems.append(Problem(r.kind, r.name, _ignored(owner, rules.tenant_key)))
            continue
        unknown = sorted(set(r.spec) - set(CHANNELS))
        if unknown:
            problems.append(Problem(r.kind, r.name, f"unknown channel types {unknown}"))
        for channel in CHANNELS:
            block = r.spec.get(channel)
            if not isinstance(block, dict):
                continue
            if block.get("enabled") is False:
                problems.append(Problem(r.kind, r.name, f"{channel}: disabled, not imported"))
                continue
            selector = block.get(f"{channel}ConfigSelector")
            if owner == GLOBAL:
                config = _pick_config(configs.get(DEFAULT, []), channel, selector)
            else:
                config = _pick_config(configs.get(owner, []), channel, selector)
                if config is None:
                    config = _pick_config(configs.get(DEFAULT, []), channel, None)
            try:
                matchers = selector_matchers(block.get("alertSelector"), f"{channel}.alertSelector")
                mapped = map_channel(channel, block, config, secrets)
            except Unmappable as exc:
                problems.append(Problem(r.kind, r.name, str(exc)))
                continue
            for reason in mapped.dropped:
                problems.append(Problem(r.kind, r.name, reason))
            integrations: dict[str, list[Mapping[str, Any]]] = {}
            for key, entry in mapped.configs:
                integrations.setdefault(key, []).append(entry)
            out.append(
                _Receiver(r, owner, channel, f"{r.name}-{channel}", tuple(matchers), integrations)
            )
    return out


def _route(rcv: _Receiver) -> dict[str, Any]:
    route: dict[str, Any] = {"receiver": rcv.name}
    if rcv.matchers:
        route["matchers"] = [str(m) for m in rcv.matchers]
    route["continue"] = True
    return route


def _config(
    own: Sequence[_Receiver],
    extra_routes: Sequence[dict[str, Any]],
    group_by: Sequence[str],
    referable: Sequence[_Receiver] = (),
) -> dict[str, Any]:
    """An Alertmanager config: routers' routes first, then one route per receiver."""
    used = {rcv.name: rcv for rcv in own}
    for route in extra_routes:
        for child in route.get("routes", []):
            found = next(rcv for rcv in referable if rcv.name == child["receiver"])
            used.setdefault(found.name, found)
    return {
        "route": {
            "receiver": UNROUTED,
            "group_by": list(group_by),
            "routes": [*extra_routes, *(_route(rcv) for rcv in own)],
        },
        "receivers": [
            {"name": UNROUTED},
            *({"name": name, **used[name].integrations} for name in sorted(used)),
        ],
    }


def _router_route(
    router: Resource, receivers: Sequence[_Receiver], problems: list[Problem]
) -> dict[str, Any] | None:
    spec = router.spec
    if spec.get("enabled") is False:
        problems.append(Problem(router.kind, router.name, "disabled, not imported"))
        return None
    want = mapping(spec.get("receivers"))
    names = {str(n) for n in want.get("name") or []}
    only_type = str(want.get("type") or "")
    regex = None
    if want.get("regexName"):
        try:
            # NM's RegularMatch searches unanchored.
            regex = compile_anchored(f"(?s:.*)(?:{want['regexName']})(?s:.*)")
        except GoRegexError as exc:
            problems.append(Problem(router.kind, router.name, f"regexName: {exc}"))
            return None
    chosen: dict[str, _Receiver] = {}
    for rcv in receivers:
        typed = not only_type or rcv.channel == only_type
        by_name = rcv.cr.name in names or (regex is not None and regex.search(rcv.cr.name))
        by_selector = want.get("selector") is not None and selector_matches(
            want["selector"], rcv.cr.labels
        )
        by_tenant = any(
            isinstance(ch, dict)
            and str(ch.get("tenant")) == rcv.owner
            and (not ch.get("type") or rcv.channel in ch["type"])
            for ch in want.get("channels") or []
        )
        if (typed and (by_name or by_selector)) or by_tenant:
            chosen[rcv.name] = rcv
    if not chosen:
        problems.append(Problem(router.kind, router.name, "selects no imported receiver"))
        return None
    try:
        matchers = selector_matchers(spec.get("alertSelector"), "alertSelector")
    except Unmappable as exc:
        problems.append(Problem(router.kind, router.name, str(exc)))
        return None
    tenant_targets = sorted(n for n, rcv in chosen.items() if rcv.owner != GLOBAL)
    if tenant_targets:
        problems.append(
            Problem(
                router.kind,
                router.name,
                f"tenant receivers {tenant_targets} are also reached through their tenant's "
                "own pipeline; an alert both routes deliver is notified twice (NM sent once)",
            )
        )
    route: dict[str, Any] = {"receiver": UNROUTED}
    if matchers:
        route["matchers"] = [str(m) for m in matchers]
    route["continue"] = True
    route["routes"] = [_route(chosen[name]) for name in sorted(chosen)]
    return route


def _api_matcher(m: Matcher) -> dict[str, Any]:
    return {
        "name": m.name,
        "value": m.value,
        "isRegex": m.type in (MatchType.REGEXP, MatchType.NOT_REGEXP),
        "isEqual": m.type in (MatchType.EQUAL, MatchType.REGEXP),
    }


def _silence(r: Resource, rules: TenantRules, opts: Options) -> PlannedSilence:
    owner = rules.owner(r)
    if owner is None:
        raise Unmappable(_ignored(owner, rules.tenant_key))
    spec = r.spec
    if spec.get("enabled") is False:
        raise Unmappable("disabled, not imported")
    if spec.get("matcher") is None:
        raise Unmappable("no matcher")
    matchers = selector_matchers(spec.get("matcher"), "matcher")
    if all(m.matches_empty() for m in matchers):
        raise Unmappable(
            "its matcher selects every alert; an Alertmanager silence needs a matcher "
            "that does not match an empty label"
        )
    duration = None
    if spec.get("duration") is not None:
        try:
            duration = parse_go_duration(str(spec["duration"]))
        except DurationError as exc:
            raise Unmappable(f"duration: {exc}") from None
    body: dict[str, Any] = {
        "matchers": [_api_matcher(m) for m in matchers],
        "createdBy": CREATED_BY,
        "comment": f"Notification Manager Silence {r.name}",
    }
    tenant = None if owner == GLOBAL else owner
    if spec.get("schedule"):
        if not duration:
            raise Unmappable(
                "a schedule without duration is active all the time in NM; "
                "an Alertmanager silence must end"
            )
        # Checked as the server will check it, so --dry-run shows what it would refuse.
        schedule = str(spec["schedule"])
        try:
            RecurrenceSpec("check", schedule, duration, opts.time_zone, opts.now).check()
        except ScheduleError as exc:
            raise Unmappable(f"schedule: {exc}") from None
        body["startsAt"] = format_millis(opts.now)
        body["recurrence"] = {
            "schedule": schedule,
            "duration": format_go_duration(duration),
            "timeZone": opts.time_zone,
        }
        return PlannedSilence(tenant, r.name, body)
    if duration is None:
        raise Unmappable("no duration: active forever in NM; an Alertmanager silence must end")
    starts = opts.now
    if spec.get("startsAt"):
        try:
            starts = parse_rfc3339(str(spec["startsAt"]))
        except ValueError as exc:
            raise Unmappable(f"startsAt: {exc}") from None
    ends = starts + duration
    if ends <= opts.now:
        raise Unmappable(f"ended at {format_millis(ends)}, nothing to import")
    body["startsAt"] = format_millis(max(starts, opts.now))
    body["endsAt"] = format_millis(ends)
    return PlannedSilence(tenant, r.name, body)


__all__ = ["Options", "Plan", "PlannedSilence", "plan_import"]
