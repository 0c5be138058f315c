"""Load an Alertmanager 0.25 configuration file into :class:`daemon.config.model.Config`.

Stages, each a plain function:

1. :func:`daemon.config.yamlsource.compose` — YAML text to nodes (syntax errors).
2. :data:`CONFIG` decoding — the schema walk, with Alertmanager's per-type checks
   (:mod:`daemon.config.schema`) and, last, the top-level cross-checks of Go's
   ``Config.UnmarshalYAML`` (:func:`_check_config`), which also fill in the global
   fallbacks (smtp_from, slack_api_url, opsgenie_api_url + ``/`` …).
3. ``Load``'s own checks, relative paths joined to the config directory, and the
   conversion to typed, inheritance-resolved model values.

The re-serialised form for ``/api/v2/status`` is emitted from the decoded data, so it
shows what Alertmanager shows: defaults filled, routes as written, ``<secret>``s.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from typing import Any

from daemon import timeinterval as ti
from daemon.config import schema
from daemon.config.decode import (
    Decoder,
    Field,
    Invalid,
    ListOf,
    Obj,
    Struct,
    dump,
)
from daemon.config.errors import ConfigError
from daemon.config.model import (
    Config,
    GlobalConfig,
    HTTPConfig,
    InhibitRule,
    IntegrationConfig,
    Receiver,
    Route,
    WebhookConfig,
)
from daemon.config.yamlsource import compose, is_null
from daemon.gocompat.strconv import go_quote
from daemon.matcher import Matcher, MatchType, sort_matchers

__all__ = ["CONFIG", "ConfigError", "load_config_file", "load_config_text"]


def _with_slash(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.path.endswith("/"):
        return url
    return urllib.parse.urlunsplit(parts._replace(path=parts.path + "/"))


def _fail(message: str, key: str) -> None:
    raise Invalid(message, key)


def _check_config(c: Obj) -> None:
    """Go's ``Config.UnmarshalYAML``: global fallbacks and cross-references, in its order."""
    if c["global"] is None:
        c["global"] = schema.default_global()
    g = c["global"]
    for a, b in (
        ("slack_api_url", "slack_api_url_file"),
        ("opsgenie_api_key", "opsgenie_api_key_file"),
        ("victorops_api_key", "victorops_api_key_file"),
        ("smtp_auth_password", "smtp_auth_password_file"),
    ):
        if g[a] and g[b]:
            _fail(f"at most one of {a} & {b} must be configured", f"global.{b}")

    names: set[str] = set()
    for i, rcv in enumerate(c["receivers"] or ()):
        base = f"receivers[{i}]"
        if rcv["name"] in names:
            _fail(f"notification config name {go_quote(rcv['name'])} is not unique", f"{base}.name")

        def configs(key: str, rcv: Obj = rcv, base: str = base) -> Iterator[tuple[str, Obj]]:
            for j, conf in enumerate(rcv[key] or ()):
                if conf is not None:
                    yield f"{base}.{key}[{j}]", conf

        def http(conf: Obj) -> None:
            if conf["http_config"] is None:
                conf["http_config"] = g["http_config"]

        for _, wh in configs("webhook_configs"):
            http(wh)
        for at, ec in configs("email_configs"):
            if ec["smarthost"] == "":
                if g["smtp_smarthost"] == "":
                    _fail("no global SMTP smarthost set", at)
                ec["smarthost"] = g["smtp_smarthost"]
            if ec["from"] == "":
                if g["smtp_from"] == "":
                    _fail("no global SMTP from set", at)
                ec["from"] = g["smtp_from"]
            for own, glob in (
                ("hello", "smtp_hello"),
                ("auth_username", "smtp_auth_username"),
                ("auth_secret", "smtp_auth_secret"),
                ("auth_identity", "smtp_auth_identity"),
            ):
                if ec[own] == "":
                    ec[own] = g[glob]
            if ec["auth_password"] == "" and ec["auth_password_file"] == "":
                ec["auth_password"] = g["smtp_auth_password"]
                ec["auth_password_file"] = g["smtp_auth_password_file"]
            if ec["require_tls"] is None:
                ec["require_tls"] = g["smtp_require_tls"]
        for at, sc in configs("slack_configs"):
            http(sc)
            if sc["api_url"] is None and sc["api_url_file"] == "":
                if g["slack_api_url"] is None and g["slack_api_url_file"] == "":
                    _fail("no global Slack API URL set either inline or in a file", at)
                sc["api_url"] = g["slack_api_url"]
                sc["api_url_file"] = g["slack_api_url_file"]
        for _, poc in configs("pushover_configs"):
            http(poc)
        for at, pdc in configs("pagerduty_configs"):
            http(pdc)
            if pdc["url"] is None:
                if g["pagerduty_url"] is None:
                    _fail("no global PagerDuty URL set", at)
                pdc["url"] = g["pagerduty_url"]
        for at, ogc in configs("opsgenie_configs"):
            http(ogc)
            _url_with_slash(g, ogc, "api_url", "opsgenie_api_url", "no global OpsGenie URL set", at)
            if ogc["api_key"] == "" and ogc["api_key_file"] == "":
                if g["opsgenie_api_key"] == "" and g["opsgenie_api_key_file"] == "":
                    _fail("no global OpsGenie API Key set either inline or in a file", at)
                ogc["api_key"] = g["opsgenie_api_key"]
                ogc["api_key_file"] = g["opsgenie_api_key_file"]
        for at, wcc in configs("wechat_configs"):
            http(wcc)
            if wcc["api_url"] is None and g["wechat_api_url"] is None:
                _fail("no global Wechat URL set", at)
            if wcc["api_secret"] == "":
                if g["wechat_api_secret"] == "":
                    _fail("no global Wechat ApiSecret set", at)
                wcc["api_secret"] = g["wechat_api_secret"]
            if wcc["corp_id"] == "":
                if g["wechat_api_corp_id"] == "":
                    _fail("no global Wechat CorpID set", at)
                wcc["corp_id"] = g["wechat_api_corp_id"]
            _url_with_slash(g, wcc, "api_url", "wechat_api_url", "no global Wechat URL set", at)
        for at, voc in configs("victorops_configs"):
            http(voc)
            _url_with_slash(
                g, voc, "api_url", "victorops_api_url", "no global VictorOps URL set", at
            )
            if voc["api_key"] == "" and voc["api_key_file"] == "":
                if g["victorops_api_key"] == "" and g["victorops_api_key_file"] == "":
                    _fail("no global VictorOps API Key set", at)
                voc["api_key"] = g["victorops_api_key"]
                voc["api_key_file"] = g["victorops_api_key_file"]
        for _, sns in configs("sns_configs"):
            http(sns)
        for _, tg in configs("telegram_configs"):
            http(tg)
            if tg["api_url"] is None:
                tg["api_url"] = g["telegram_api_url"]
        for at, dc in configs("discord_configs"):
            http(dc)
            if dc["webhook_url"] is None:
                _fail("no discord webhook URL provided", at)
        for at, wx in configs("webex_configs"):
            http(wx)
            if wx["api_url"] is None:
                if g["webex_api_url"] is None:
                    _fail("no global Webex URL set", at)
                wx["api_url"] = g["webex_api_url"]
        for _, mt in configs("msteams_configs"):
            http(mt)
        for key in schema.EXTRA_INTEGRATIONS:
            for _, xc in configs(key):
                http(xc)
        names.add(rcv["name"])

    route = c["route"]
    if route is None:
        _fail("no routes provided", "")
    if route["receiver"] == "":
        _fail("root route must specify a default receiver", "route")
    if route["match"] or route["match_re"] or route["matchers"]:
        _fail("root route must not have any matchers", "route")
    if route["mute_time_intervals"]:
        _fail("root route must not have any mute time intervals", "route.mute_time_intervals")
    if route["active_time_intervals"]:
        _fail("root route must not have any active time intervals", "route.active_time_intervals")
    _check_receivers(route, names, "route")

    interval_names: set[str] = set()
    for key, what in (
        ("mute_time_intervals", "mute time interval"),
        ("time_intervals", "time interval"),
    ):
        for i, mt in enumerate(c[key] or ()):
            if mt["name"] in interval_names:
                _fail(f"{what} {go_quote(mt['name'])} is not unique", f"{key}[{i}].name")
            interval_names.add(mt["name"])
    _check_intervals(route, interval_names, "route")


def _url_with_slash(g: Obj, conf: Obj, own: str, glob: str, missing: str, at: str) -> None:
    if conf[own] is None:
        if g[glob] is None:
            _fail(missing, at)
        # Go shares one *URL with the global config and appends "/" to it in place,
        # so the global value shows the slash too once any integration used it.
        g[glob] = _with_slash(g[glob])
        conf[own] = g[glob]
    else:
        conf[own] = _with_slash(conf[own])


def _check_receivers(route: Obj, names: set[str], path: str) -> None:
    for i, child in enumerate(route["routes"] or ()):
        if child is not None:
            _check_receivers(child, names, f"{path}.routes[{i}]")
    if route["receiver"] and route["receiver"] not in names:
        _fail(f"undefined receiver {go_quote(route['receiver'])} used in route", f"{path}.receiver")


def _check_intervals(route: Obj, names: set[str], path: str) -> None:
    for i, child in enumerate(route["routes"] or ()):
        if child is not None:
            _check_intervals(child, names, f"{path}.routes[{i}]")
    for key in ("active_time_intervals", "mute_time_intervals"):
        for name in route[key] or ():
            if name not in names:
                _fail(f"undefined time interval {go_quote(name)} used in route", f"{path}.{key}")


def _config_fields() -> list[Field]:
    return [
        Field("global", schema.GLOBAL),
        Field("route", schema.ROUTE),
        Field(
            "inhibit_rules",
            ListOf(schema.INHIBIT_RULE, "[]*config.InhibitRule", reject_null=True),
        ),
        Field("receivers", ListOf(schema.RECEIVER, "[]*config.Receiver", reject_null=True)),
        Field("templates", schema.STRINGS, omitempty=False),
        Field(
            "mute_time_intervals",
            ListOf(schema.MUTE_TIME_INTERVAL, "[]config.MuteTimeInterval"),
        ),
        Field("time_intervals", ListOf(schema.NAMED_TIME_INTERVAL, "[]config.TimeInterval")),
    ]


CONFIG = Struct("config.plain", _config_fields(), validate=_check_config, pointer=False)


# --- entry points ---------------------------------------------------------------------------


def load_config_file(path: str) -> Config:
    """Read and load ``path``; relative paths inside resolve against its directory."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"open {path}: {_os_reason(exc)}", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("yaml: invalid leading UTF-8 octet", file=path) from None
    return load_config_text(text, filename=path)


def _os_reason(exc: OSError) -> str:
    # Go's syscall error strings are the lower-cased C ones.
    reason = exc.strerror or str(exc)
    return reason[:1].lower() + reason[1:]


def load_config_text(text: str, filename: str = "<config>") -> Config:
    """Load config ``text``. ``filename`` names it in errors and anchors relative paths
    (the current directory when it is a placeholder such as ``<config>``)."""
    if filename.startswith("<"):
        base_dir = os.getcwd()
    else:
        base_dir = os.path.dirname(os.path.abspath(filename))
    try:
        raw = decode_config(text)
    except ConfigError as exc:
        raise exc.with_file(filename) from None
    _resolve_paths(raw, base_dir)
    used = _used_receivers(raw["route"])
    config = _build(raw, text)
    _add_email_headers(raw, used)
    return _with_original(config, dump(CONFIG.emit(raw)))


def decode_config(text: str) -> Obj:
    """Stages 1 and 2 and ``Load``'s checks: the validated raw config as plain data."""
    node = compose(text)
    d = Decoder()
    raw: Obj = CONFIG.zero()
    if not is_null(node):
        assert node is not None
        raw = CONFIG.decode(d, node, "")
    if d.type_errors:
        raise d.unmarshal_errors()
    if raw["route"] is None:
        raise ConfigError("no route provided in config")
    if raw["route"]["continue"]:
        raise ConfigError(
            "cannot have continue in root route",
            line=d.positions.get("route.continue"),
            key="route.continue",
        )
    return raw


def _with_original(config: Config, original: str) -> Config:
    import attrs

    return attrs.evolve(config, original=original)


# --- paths ----------------------------------------------------------------------------------


def _join(base: str, path: str) -> str:
    if path and not os.path.isabs(path):
        return os.path.normpath(os.path.join(base, path))
    return path


def _resolve_http_paths(http: Obj | None, base: str) -> None:
    if http is None:
        return
    tls: list[Obj] = [http["tls_config"]]
    if http["basic_auth"] is not None:
        http["basic_auth"]["password_file"] = _join(base, http["basic_auth"]["password_file"])
    if http["authorization"] is not None:
        auth = http["authorization"]
        auth["credentials_file"] = _join(base, auth["credentials_file"])
    if http["oauth2"] is not None:
        oauth2 = http["oauth2"]
        oauth2["client_secret_file"] = _join(base, oauth2["client_secret_file"])
        tls.append(oauth2["tls_config"])
    http["bearer_token_file"] = _join(base, http["bearer_token_file"])
    for t in tls:
        for key in ("ca_file", "cert_file", "key_file"):
            t[key] = _join(base, t[key])


def _resolve_paths(raw: Obj, base: str) -> None:
    raw["templates"] = [_join(base, t) for t in raw["templates"] or ()]
    _resolve_http_paths(raw["global"]["http_config"], base)
    for rcv in raw["receivers"] or ():
        for key in schema.INTEGRATIONS:
            for conf in rcv[key] or ():
                if key != "email_configs":
                    _resolve_http_paths(conf["http_config"], base)


# --- conversion to the typed model -----------------------------------------------------------


def _used_receivers(route: Obj) -> set[str]:
    used = {route["receiver"]} if route["receiver"] else set()
    for child in route["routes"] or ():
        if child is not None:
            used |= _used_receivers(child)
    return used


def _add_email_headers(raw: Obj, used: set[str]) -> None:
    # Alertmanager's email notifier fills these headers into the config object when
    # it is built, which happens only for receivers a route uses; /api/v2/status
    # shows them, so the re-serialised form does too.
    for rcv in raw["receivers"] or ():
        if rcv["name"] not in used:
            continue
        for ec in rcv["email_configs"] or ():
            headers = ec["headers"]
            headers.setdefault("Subject", '{{ template "email.default.subject" . }}')
            headers.setdefault("To", ec["to"])
            headers.setdefault("From", ec["from"])


def _http(raw: Obj | None) -> HTTPConfig:
    if raw is None:
        return HTTPConfig()
    return HTTPConfig(
        follow_redirects=bool(raw["follow_redirects"]),
        enable_http2=bool(raw["enable_http2"]),
        raw=raw,
    )


def _matchers(
    match: dict[str, str] | None, match_re: dict[str, str] | None, matchers: list[Matcher] | None
) -> tuple[Matcher, ...]:
    out = [Matcher.create(MatchType.EQUAL, k, v) for k, v in (match or {}).items()]
    # Alertmanager 0.25 builds these from the compiled regexp's String(), which is the
    # anchored "^(?:v)$"; that text is then anchored again and shows in group keys
    # ({}/{severity=~"^(?:crit.*)$"}:{...}) and so in the nflog and webhook payloads.
    out += [Matcher.create(MatchType.REGEXP, k, f"^(?:{v})$") for k, v in (match_re or {}).items()]
    out += matchers or []
    return tuple(sort_matchers(out))


def build_route(raw: Obj, parent: Route | None = None) -> Route:
    """Resolve one routing node against its parent (spec §3.1 inheritance)."""
    receiver = raw["receiver"] or (parent.receiver if parent else "")
    group_by = parent.group_by if parent else ()
    group_by_all = parent.group_by_all if parent else False
    names = [n for n in raw["group_by"] or () if n != "..."]
    if names:
        # A non-empty list replaces the parent's; "[]" and "['...']" inherit it.
        group_by, group_by_all = tuple(names), False
    elif "..." in (raw["group_by"] or ()):
        group_by_all = True
    defaults = parent or Route(receiver="")
    node = Route(
        receiver=receiver,
        group_by=group_by,
        group_by_all=group_by_all,
        matchers=_matchers(raw["match"], raw["match_re"], raw["matchers"]),
        continue_=bool(raw["continue"]),
        group_wait=defaults.group_wait if raw["group_wait"] is None else raw["group_wait"],
        group_interval=(
            defaults.group_interval if raw["group_interval"] is None else raw["group_interval"]
        ),
        repeat_interval=(
            defaults.repeat_interval if raw["repeat_interval"] is None else raw["repeat_interval"]
        ),
        mute_time_intervals=tuple(raw["mute_time_intervals"] or ()),
        active_time_intervals=tuple(raw["active_time_intervals"] or ()),
    )
    children = tuple(build_route(c, node) for c in raw["routes"] or () if c is not None)
    import attrs

    return attrs.evolve(node, routes=children)


def _receiver(raw: Obj) -> Receiver:
    webhooks: list[WebhookConfig] = []
    others: list[IntegrationConfig] = []
    for key, (name, _) in schema.INTEGRATIONS.items():
        for conf in raw[key] or ():
            if conf is None:
                continue
            if name == "webhook":
                webhooks.append(
                    WebhookConfig(
                        url=conf["url"],
                        send_resolved=conf["send_resolved"],
                        max_alerts=conf["max_alerts"],
                        http_config=_http(conf["http_config"]),
                    )
                )
                continue
            fields = dict(conf)
            if "http_config" in fields:
                fields["http_config"] = _http(conf["http_config"])
            if "split_long_messages" in fields and fields["split_long_messages"] is None:
                fields["split_long_messages"] = True
            others.append(IntegrationConfig(name, conf["send_resolved"], fields))
    return Receiver(raw["name"], tuple(webhooks), tuple(others))


def _ranges(values: list[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def _time_interval(raw: Obj) -> ti.TimeInterval:
    return ti.TimeInterval(
        times=_ranges(raw["times"]),
        weekdays=_ranges(raw["weekdays"]),
        days_of_month=_ranges(raw["days_of_month"]),
        months=_ranges(raw["months"]),
        years=_ranges(raw["years"]),
        location=raw["location"],
    )


def _inhibit_rule(raw: Obj) -> InhibitRule:
    return InhibitRule(
        source_matchers=_matchers(
            raw["source_match"], raw["source_match_re"], raw["source_matchers"]
        ),
        target_matchers=_matchers(
            raw["target_match"], raw["target_match_re"], raw["target_matchers"]
        ),
        equal=tuple(raw["equal"] or ()),
    )


def _build(raw: Obj, text: str) -> Config:
    g = raw["global"]
    intervals: dict[str, tuple[Any, ...]] = {}
    for key in ("mute_time_intervals", "time_intervals"):
        for named in raw[key] or ():
            intervals[named["name"]] = tuple(
                _time_interval(t) for t in named["time_intervals"] or ()
            )
    return Config(
        global_=GlobalConfig(
            resolve_timeout=g["resolve_timeout"],
            http_config=_http(g["http_config"]),
            fields=dict(g),
        ),
        route=build_route(raw["route"]),
        receivers=tuple(_receiver(r) for r in raw["receivers"] or () if r is not None),
        inhibit_rules=tuple(_inhibit_rule(r) for r in raw["inhibit_rules"] or () if r is not None),
        time_intervals=intervals,
        templates=tuple(raw["templates"]),
        source_text=text,
    )
