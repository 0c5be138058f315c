"""Alertmanager 0.25's configuration types, as data for :mod:`daemon.config.decode`.

Field order, ``omitempty`` flags, defaults and checks follow upstream
``config/config.go``, ``config/notifiers.go``, ``timeinterval/timeinterval.go`` and
``prometheus/common`` v0.38 ``config/http_config.go`` and ``sigv4``, because three
things operators see depend on them: the error message for a bad file, the Go type
name in ``field foo not found in type config.plain``, and the key order of the
re-serialised config in ``GET /api/v2/status``.

``msteams_configs`` (0.26+) is accepted as well, since newer configs use it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import yaml

from daemon import timeinterval as ti
from daemon.config import extra_receivers
from daemon.config.decode import (
    Bool,
    Decoder,
    Field,
    Int,
    Invalid,
    Kind,
    ListOf,
    MapOf,
    Obj,
    Scalar,
    Secret,
    Str,
    Struct,
    int_node,
    null_node,
    seq_node,
    str_node,
)
from daemon.config.errors import ConfigError
from daemon.config.yamlsource import is_null
from daemon.gocompat.duration import (
    DurationError,
    format_duration,
    parse_duration,
    parse_go_duration,
)
from daemon.gocompat.strconv import go_quote
from daemon.matcher import (
    Matcher,
    MatcherError,
    compile_anchored,
    is_valid_label_name,
    parse_matchers,
    sort_matchers,
)

# --- scalar parsers -----------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def _go_url_parse(text: str) -> urllib.parse.SplitResult:
    """The subset of Go's ``url.Parse`` errors that config files meet."""
    colon = text.find(":")
    if colon == 0:
        raise Invalid(f"parse {go_quote(text)}: missing protocol scheme")
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise Invalid(f"parse {go_quote(text)}: net/url: invalid control character in URL")
    if colon > 0 and not _SCHEME.fullmatch(text[:colon]) and "/" not in text[:colon]:
        raise Invalid(f"parse {go_quote(text)}: first path segment in URL cannot contain colon")
    return urllib.parse.urlsplit(text)


def parse_am_url(text: str) -> str:
    """Alertmanager's ``URL``: http or https, with a host."""
    parts = _go_url_parse(text)
    scheme = parts.scheme.lower() if _SCHEME.fullmatch(text.split(":", 1)[0]) else ""
    if scheme not in ("http", "https"):
        raise Invalid(f"unsupported scheme {go_quote(scheme)} for URL")
    if not parts.netloc:
        raise Invalid("missing host for URL")
    return text


def parse_secret_url(text: str) -> str:
    # A config read back from the API carries "<secret>" where the URL was.
    if text == "<secret>":
        return text
    return parse_am_url(text)


def parse_common_url(text: str) -> str:
    _go_url_parse(text)
    return text


def show_redacted_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.password is None:
        return text
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:xxxxx@{host}"))


def parse_host_port(text: str) -> str:
    """Go's ``net.SplitHostPort`` plus Alertmanager's non-empty port rule."""
    if text == "":
        return ""
    missing = f"address {text}: missing port in address"
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise Invalid(f"address {text}: missing ']' in address")
        if end + 1 == len(text):
            raise Invalid(missing)
        if text[end + 1] != ":":
            raise Invalid(f"address {text}: missing port in address")
        port = text[end + 2 :]
    else:
        if ":" not in text:
            raise Invalid(missing)
        if text.count(":") > 1:
            raise Invalid(f"address {text}: too many colons in address")
        port = text.split(":", 1)[1]
    if port == "":
        raise Invalid(f"address {go_quote(text)}: port cannot be empty")
    return text


def parse_model_duration(text: str) -> int:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise Invalid(str(exc)) from None


_GO_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_GO_DURATION_UNITS = {"ns", "us", "µs", "μs", "ms", "s", "m", "h"}


def parse_time_duration(text: str) -> int:
    """Go's ``time.ParseDuration``, with its three distinct error messages."""
    try:
        return parse_go_duration(text)
    except DurationError:
        pass
    quoted = go_quote(text)
    body = text[1:] if text[:1] in "+-" else text
    pos = 0
    while body and pos < len(body):
        m = _GO_DURATION_PART.match(body, pos)
        if m is None or m.end() == pos or m.group(1) in ("", "."):
            break
        unit = m.group(2)
        if unit == "":
            raise Invalid(f"time: missing unit in duration {quoted}")
        if unit not in _GO_DURATION_UNITS:
            raise Invalid(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        pos = m.end()
    raise Invalid(f"time: invalid duration {quoted}")


def format_go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` for whole-millisecond-or-coarser values."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + f"{ns / size:.9f}".rstrip("0").rstrip(".") + unit
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds = f"{rest / 1_000_000_000:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def parse_regexp(text: str) -> str:
    try:
        compile_anchored(text)
    except MatcherError as exc:
        raise Invalid(str(exc)) from None
    return text


def parse_label_name(text: str) -> str:
    if not is_valid_label_name(text):
        raise Invalid(f"{go_quote(text)} is not a valid label name")
    return text


def parse_tls_version(text: str) -> str:
    if text not in ("TLS13", "TLS12", "TLS11", "TLS10"):
        raise Invalid(f"unknown TLS version: {text}")
    return text


def _via(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Adapt a :mod:`daemon.timeinterval` parser to raise :class:`Invalid`."""

    def run(text: str) -> Any:
        try:
            return parse(text)
        except ti.TimeIntervalError as exc:
            raise Invalid(str(exc)) from None

    return run


def _same(value: Any) -> str:
    return str(value)


STR = Str()
SECRET = Secret()
BOOL = Bool()
URL = Scalar(parse_am_url, _same)
SECRET_URL = Scalar(parse_secret_url, _same, secret=True)
COMMON_URL = Scalar(parse_common_url, show_redacted_url)
HOST_PORT = Scalar(parse_host_port, _same, zero="")
DURATION = Scalar(parse_model_duration, format_duration)
GO_DURATION = Scalar(parse_time_duration, format_go_duration, zero=0)
STRINGS = ListOf(STR, "[]string")
STRING_MAP = MapOf(STR)


class OptBool(Bool):
    """A Go ``*bool``: None when absent."""

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return None
        return super().decode(d, node, path)

    def zero(self) -> Any:
        return None

    def is_zero(self, value: Any) -> bool:
        return value is None

    def emit(self, value: Any) -> yaml.Node:
        return null_node() if value is None else super().emit(value)


class Checked(Kind):
    """A kind whose Go ``UnmarshalYAML`` decodes an inner type, then checks or converts it."""

    def __init__(
        self,
        inner: Kind,
        convert: Callable[[Any], Any],
        show: Callable[[Any], Any],
        *,
        flow: bool = False,
    ) -> None:
        self.inner = inner
        self.convert = convert
        self.show = show
        self.go_type = inner.go_type
        self.flow = flow

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return None
        before = len(d.type_errors)
        value = self.inner.decode(d, node, path)
        if len(d.type_errors) > before:
            return None
        try:
            return self.convert(value)
        except Invalid as exc:
            d.fail(exc.message, node, path)

    def is_zero(self, value: Any) -> bool:
        return value is None or value == []

    def emit(self, value: Any) -> yaml.Node:
        return self.inner.emit(self.show(value))


def _matchers(lines: list[str]) -> list[Matcher]:
    out: list[Matcher] = []
    for line in lines:
        try:
            out.extend(parse_matchers(line))
        except MatcherError as exc:
            raise Invalid(str(exc)) from None
    return sort_matchers(out)


MATCHERS = Checked(STRINGS, _matchers, lambda ms: [str(m) for m in ms])


def _match_regexps(value: dict[str, Any]) -> dict[str, str]:
    for name, regex in value.items():
        if not is_valid_label_name(name):
            raise Invalid(f"invalid label name {go_quote(name)}")
        if regex is None:
            raise Invalid(f"invalid regexp value for {go_quote(name)}")
    return value


# Regexp.MarshalYAML returns null for an empty pattern.
MATCH_REGEXPS = Checked(
    MapOf(Scalar(parse_regexp, lambda v: v or None), "config.plain"), _match_regexps, lambda v: v
)
LABEL_NAMES = ListOf(Scalar(parse_label_name, _same), "model.LabelNames")


def _struct(go_type: str, *fields: Field, **kw: Any) -> Struct:
    return Struct(go_type, fields, **kw)


def F(name: str, kind: Kind, omitempty: bool = True) -> Field:
    return Field(name, kind, omitempty)


# --- prometheus/common HTTP client config ---------------------------------------------------

# TLSVersion's MarshalYAML has a pointer receiver, which yaml.v2 does not call on a
# struct field value: Alertmanager shows the raw uint16 (771 for TLS12), and so do we.
_TLS_VERSIONS = {"TLS10": 0x0301, "TLS11": 0x0302, "TLS12": 0x0303, "TLS13": 0x0304}
TLS_VERSION = Scalar(parse_tls_version, lambda v: int_node(_TLS_VERSIONS[v]), zero="")
TLS_CONFIG = _struct(
    "config.plain",
    F("ca_file", STR),
    F("cert_file", STR),
    F("key_file", STR),
    F("server_name", STR),
    F("insecure_skip_verify", BOOL, False),
    F("min_version", TLS_VERSION),
    F("max_version", TLS_VERSION),
    pointer=False,
)
BASIC_AUTH = _struct(
    "config.plain", F("username", STR, False), F("password", SECRET), F("password_file", STR)
)
AUTHORIZATION = _struct(
    "config.Authorization", F("type", STR), F("credentials", SECRET), F("credentials_file", STR)
)
OAUTH2 = _struct(
    "config.OAuth2",
    F("client_id", STR, False),
    F("client_secret", SECRET, False),
    F("client_secret_file", STR, False),
    F("scopes", STRINGS),
    F("token_url", STR, False),
    F("endpoint_params", STRING_MAP),
    F("proxy_url", COMMON_URL),
    F("tls_config", TLS_CONFIG),
)


def default_http_config() -> Obj:
    obj = HTTP_CONFIG.zero_fields()
    obj["follow_redirects"] = True
    obj["enable_http2"] = True
    return obj


def _validate_http_config(c: Obj) -> None:
    bearer, bearer_file = c["bearer_token"], c["bearer_token_file"]
    basic, oauth2, auth = c["basic_auth"], c["oauth2"], c["authorization"]
    if bearer and bearer_file:
        raise Invalid("at most one of bearer_token & bearer_token_file must be configured")
    if (basic is not None or oauth2 is not None) and (bearer or bearer_file):
        raise Invalid(
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
        )
    if basic is not None and basic["password"] and basic["password_file"]:
        raise Invalid("at most one of basic_auth password & password_file must be configured")
    if auth is not None:
        if bearer or bearer_file:
            raise Invalid("authorization is not compatible with bearer_token & bearer_token_file")
        if auth["credentials"] and auth["credentials_file"]:
            raise Invalid(
                "at most one of authorization credentials & credentials_file must be configured"
            )
        auth["type"] = auth["type"].strip() or "Bearer"
        if auth["type"].lower() == "basic":
            raise Invalid('authorization type cannot be set to "basic", use "basic_auth" instead')
        if basic is not None or oauth2 is not None:
            raise Invalid("at most one of basic_auth, oauth2 & authorization must be configured")
    else:
        # The legacy bearer fields become an Authorization, as prometheus/common does.
        if bearer:
            c["authorization"] = {"type": "Bearer", "credentials": bearer, "credentials_file": ""}
            c["bearer_token"] = ""
        if bearer_file:
            c["authorization"] = {
                "type": "Bearer",
                "credentials": "",
                "credentials_file": bearer_file,
            }
            c["bearer_token_file"] = ""
    if oauth2 is not None:
        if basic is not None:
            raise Invalid("at most one of basic_auth, oauth2 & authorization must be configured")
        if not oauth2["client_id"]:
            raise Invalid("oauth2 client_id must be configured")
        if not oauth2["client_secret"] and not oauth2["client_secret_file"]:
            raise Invalid("either oauth2 client_secret or client_secret_file must be configured")
        if not oauth2["token_url"]:
            raise Invalid("oauth2 token_url must be configured")
        if oauth2["client_secret"] and oauth2["client_secret_file"]:
            raise Invalid(
                "at most one of oauth2 client_secret & client_secret_file must be configured"
            )


class _HTTPConfigStruct(Struct):
    def zero_fields(self) -> Obj:
        return {f.name: f.kind.zero() for f in self.fields.values()}


HTTP_CONFIG = _HTTPConfigStruct(
    "config.plain",
    [
        F("basic_auth", BASIC_AUTH),
        F("authorization", AUTHORIZATION),
        F("oauth2", OAUTH2),
        F("bearer_token", SECRET),
        F("bearer_token_file", STR),
        F("proxy_url", COMMON_URL),
        F("tls_config", TLS_CONFIG),
        F("follow_redirects", BOOL, False),
        F("enable_http2", BOOL, False),
    ],
    validate=_validate_http_config,
)
HTTP_CONFIG.defaults = default_http_config

SIGV4 = _struct(
    "sigv4.plain",
    F("region", STR),
    F("access_key", STR),
    F("secret_key", SECRET),
    F("profile", STR),
    F("role_arn", STR),
    pointer=False,
    validate=lambda c: _check(
        (c["access_key"] == "") != (c["secret_key"] == ""),
        "must provide a AWS SigV4 Access key and Secret Key if credentials are specified in the SigV4 config",
    ),
)


def _check(failed: bool, message: str, key: str | None = None) -> None:
    if failed:
        raise Invalid(message, key)


# --- notifiers ----------------------------------------------------------------------------

_T = '{{{{ template "{}" . }}}}'


def _tmpl(name: str) -> str:
    return _T.format(name)


def _notifier(
    type_name: str,
    send_resolved: bool,
    fields: list[Field],
    defaults: dict[str, Any],
    validate: Callable[[Obj], None] | None = None,
) -> Struct:
    all_fields = [F("send_resolved", BOOL, False), *fields]
    struct = Struct("config.plain", all_fields, validate=validate)

    def new() -> Obj:
        obj = {f.name: f.kind.zero() for f in all_fields}
        obj["send_resolved"] = send_resolved
        obj.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()})
        return obj

    struct.defaults = new
    return struct


HTTP = F("http_config", HTTP_CONFIG)
# Our addition for the chat integrations (not in Alertmanager): a *bool, so a file that
# does not set it re-serialises exactly as Alertmanager shows it; absent means on.
SPLIT = F("split_long_messages", OptBool())


def _validate_webex(c: Obj) -> None:
    _check(c["room_id"] == "", "missing room_id on webex_config")
    _check(
        c["http_config"] is None or c["http_config"]["authorization"] is None,
        "missing webex_configs.http_config.authorization",
    )


WEBEX = _notifier(
    "webex",
    True,
    [HTTP, F("api_url", URL), F("message", STR), F("room_id", STR, False), SPLIT],
    {"message": _tmpl("webex.default.message")},
    _validate_webex,
)
DISCORD = _notifier(
    "discord",
    True,
    [HTTP, F("webhook_url", SECRET_URL), F("title", STR), F("message", STR), SPLIT],
    {"title": _tmpl("discord.default.title"), "message": _tmpl("discord.default.message")},
)


def canonical_mime_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``."""
    for ch in name:
        if not (ch.isascii() and (ch.isalnum() or ch in "!#$%&'*+-.^_`|~")):
            return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _validate_email(c: Obj) -> None:
    _check(c["to"] == "", "missing to address in email config")
    headers: dict[str, str] = {}
    for name, value in (c["headers"] or {}).items():
        canonical = canonical_mime_header_key(name)
        if canonical in headers:
            raise Invalid(f"duplicate header {go_quote(canonical)} in email config", "headers")
        headers[canonical] = value
    c["headers"] = headers


EMAIL = _notifier(
    "email",
    False,
    [
        F("to", STR),
        F("from", STR),
        F("hello", STR),
        F("smarthost", HOST_PORT),
        F("auth_username", STR),
        F("auth_password", SECRET),
        F("auth_password_file", STR),
        F("auth_secret", SECRET),
        F("auth_identity", STR),
        F("headers", STRING_MAP),
        F("html", STR),
        F("text", STR),
        F("require_tls", OptBool()),
        F("tls_config", TLS_CONFIG),
    ],
    {"html": _tmpl("email.default.html"), "text": ""},
    _validate_email,
)

PAGERDUTY_DETAILS = {
    "firing": '{{ template "pagerduty.default.instances" .Alerts.Firing }}',
    "resolved": '{{ template "pagerduty.default.instances" .Alerts.Resolved }}',
    "num_firing": "{{ .Alerts.Firing | len }}",
    "num_resolved": "{{ .Alerts.Resolved | len }}",
}


def _validate_pagerduty(c: Obj) -> None:
    _check(
        not (
            c["routing_key"] or c["service_key"] or c["routing_key_file"] or c["service_key_file"]
        ),
        "missing service or routing key in PagerDuty config",
    )
    _check(
        bool(c["routing_key"] and c["routing_key_file"]),
        "at most one of routing_key & routing_key_file must be configured",
    )
    _check(
        bool(c["service_key"] and c["service_key_file"]),
        "at most one of service_key & service_key_file must be configured",
    )
    details = dict(c["details"] or {})
    if not c["source"]:
        c["source"] = c["client"]
    for key, value in PAGERDUTY_DETAILS.items():
        details.setdefault(key, value)
    c["details"] = details


PAGERDUTY = _notifier(
    "pagerduty",
    True,
    [
        HTTP,
        F("service_key", SECRET),
        F("service_key_file", STR),
        F("routing_key", SECRET),
        F("routing_key_file", STR),
        F("url", URL),
        F("client", STR),
        F("client_url", STR),
        F("description", STR),
        F("details", STRING_MAP),
        F(
            "images",
            ListOf(
                _struct(
                    "config.PagerdutyImage",
                    F("src", STR),
                    F("alt", STR),
                    F("href", STR),
                    pointer=False,
                ),
                "[]config.PagerdutyImage",
            ),
        ),
        F(
            "links",
            ListOf(
                _struct("config.PagerdutyLink", F("href", STR), F("text", STR), pointer=False),
                "[]config.PagerdutyLink",
            ),
        ),
        F("source", STR),
        F("severity", STR),
        F("class", STR),
        F("component", STR),
        F("group", STR),
    ],
    {
        "description": '{{ template "pagerduty.default.description" .}}',
        "client": _tmpl("pagerduty.default.client"),
        "client_url": _tmpl("pagerduty.default.clientURL"),
    },
    _validate_pagerduty,
)

SLACK_CONFIRM = _struct(
    "config.plain",
    F("text", STR),
    F("title", STR),
    F("ok_text", STR),
    F("dismiss_text", STR),
    validate=lambda c: _check(c["text"] == "", "missing text in Slack confirmation configuration"),
)


def _validate_slack_action(c: Obj) -> None:
    _check(c["type"] == "", "missing type in Slack action configuration")
    _check(c["text"] == "", "missing text in Slack action configuration")
    if c["url"] != "":
        c["name"], c["value"], c["confirm"] = "", "", None
    elif c["name"] == "":
        raise Invalid("missing name or url in Slack action configuration")


SLACK_ACTION = _struct(
    "config.plain",
    F("type", STR),
    F("text", STR),
    F("url", STR),
    F("style", STR),
    F("name", STR),
    F("value", STR),
    F("confirm", SLACK_CONFIRM),
    validate=_validate_slack_action,
)


def _validate_slack_field(c: Obj) -> None:
    _check(c["title"] == "", "missing title in Slack field configuration")
    _check(c["value"] == "", "missing value in Slack field configuration")


SLACK_FIELD = _struct(
    "config.plain",
    F("title", STR),
    F("value", STR),
    F("short", OptBool()),
    validate=_validate_slack_field,
)
SLACK = _notifier(
    "slack",
    False,
    [
        HTTP,
        F("api_url", SECRET_URL),
        F("api_url_file", STR),
        F("channel", STR),
        F("username", STR),
        F("color", STR),
        F("title", STR),
        F("title_link", STR),
        F("pretext", STR),
        F("text", STR),
        F("fields", ListOf(SLACK_FIELD, "[]*config.SlackField")),
        F("short_fields", BOOL, False),
        F("footer", STR),
        F("fallback", STR),
        F("callback_id", STR),
        F("icon_emoji", STR),
        F("icon_url", STR),
        F("image_url", STR),
        F("thumb_url", STR),
        F("link_names", BOOL, False),
        F("mrkdwn_in", STRINGS),
        F("actions", ListOf(SLACK_ACTION, "[]*config.SlackAction")),
        SPLIT,
    ],
    {
        "color": '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}',
        "username": _tmpl("slack.default.username"),
        "title": _tmpl("slack.default.title"),
        "title_link": _tmpl("slack.default.titlelink"),
        "icon_emoji": _tmpl("slack.default.iconemoji"),
        "icon_url": _tmpl("slack.default.iconurl"),
        "pretext": _tmpl("slack.default.pretext"),
        "text": _tmpl("slack.default.text"),
        "fallback": _tmpl("slack.default.fallback"),
        "callback_id": _tmpl("slack.default.callbackid"),
        "footer": _tmpl("slack.default.footer"),
    },
    lambda c: _check(
        c["api_url"] is not None and c["api_url_file"] != "",
        "at most one of api_url & api_url_file must be configured",
    ),
)
WEBHOOK = _notifier(
    "webhook",
    True,
    [HTTP, F("url", URL, False), F("max_alerts", Int("uint64"), False)],
    {},
    lambda c: _check(c["url"] is None, "missing URL in webhook config"),
)

_WECHAT_TYPES = r"^(text|markdown)$"


def _validate_wechat(c: Obj) -> None:
    if c["message_type"] == "":
        c["message_type"] = "text"
    _check(
        c["message_type"] not in ("text", "markdown"),
        f"weChat message type {go_quote(c['message_type'])} does not match valid options {_WECHAT_TYPES}",
    )


WECHAT = _notifier(
    "wechat",
    False,
    [
        HTTP,
        F("api_secret", SECRET),
        F("corp_id", STR),
        F("message", STR),
        F("api_url", URL),
        F("to_user", STR),
        F("to_party", STR),
        F("to_tag", STR),
        F("agent_id", STR),
        F("message_type", STR),
    ],
    {
        "message": _tmpl("wechat.default.message"),
        "to_user": _tmpl("wechat.default.to_user"),
        "to_party": _tmpl("wechat.default.to_party"),
        "to_tag": _tmpl("wechat.default.to_tag"),
        "agent_id": _tmpl("wechat.default.agent_id"),
    },
    _validate_wechat,
)

_OPSGENIE_TYPES = r"^(team|teams|user|escalation|schedule)$"
OPSGENIE_RESPONDER = _struct(
    "config.OpsGenieConfigResponder",
    F("id", STR),
    F("name", STR),
    F("username", STR),
    F("type", STR),
    pointer=False,
)


def _validate_opsgenie(c: Obj) -> None:
    _check(
        bool(c["api_key"] and c["api_key_file"]),
        "at most one of api_key & api_key_file must be configured",
    )
    for r in c["responders"] or ():
        # Go prints the responder with %v: "{id name username type}".
        shown = "{" + " ".join(r[k] for k in ("id", "name", "username", "type")) + "}"
        _check(
            not (r["id"] or r["username"] or r["name"]),
            f"opsGenieConfig responder {shown} has to have at least one of id, username or name specified",
        )
        # Template types are checked when rendered; plain ones must be known words.
        if "{{" not in r["type"] and not re.fullmatch(_OPSGENIE_TYPES, r["type"].lower()):
            raise Invalid(
                f"opsGenieConfig responder {shown} type does not match valid options {_OPSGENIE_TYPES}"
            )


OPSGENIE = _notifier(
    "opsgenie",
    True,
    [
        HTTP,
        F("api_key", SECRET),
        F("api_key_file", STR),
        F("api_url", URL),
        F("message", STR),
        F("description", STR),
        F("source", STR),
        F("details", STRING_MAP),
        F("entity", STR),
        F("responders", ListOf(OPSGENIE_RESPONDER, "[]config.OpsGenieConfigResponder")),
        F("actions", STR),
        F("tags", STR),
        F("note", STR),
        F("priority", STR),
        F("update_alerts", BOOL),
    ],
    {
        "message": _tmpl("opsgenie.default.message"),
        "description": _tmpl("opsgenie.default.description"),
        "source": _tmpl("opsgenie.default.source"),
    },
    _validate_opsgenie,
)

_VICTOROPS_RESERVED = [
    "routing_key",
    "message_type",
    "state_message",
    "entity_display_name",
    "monitoring_tool",
    "entity_id",
    "entity_state",
]


def _validate_victorops(c: Obj) -> None:
    _check(c["routing_key"] == "", "missing Routing key in VictorOps config")
    _check(
        bool(c["api_key"] and c["api_key_file"]),
        "at most one of api_key & api_key_file must be configured",
    )
    for name in _VICTOROPS_RESERVED:
        _check(
            name in (c["custom_fields"] or {}),
            f"victorOps config contains custom field {name} which cannot be used as it conflicts with the fixed/static fields",
        )


VICTOROPS = _notifier(
    "victorops",
    True,
    [
        HTTP,
        F("api_key", SECRET),
        F("api_key_file", STR),
        F("api_url", URL, False),
        F("routing_key", STR, False),
        F("message_type", STR, False),
        F("state_message", STR, False),
        F("entity_display_name", STR, False),
        F("monitoring_tool", STR, False),
        F("custom_fields", STRING_MAP),
    ],
    {
        "message_type": "CRITICAL",
        "state_message": _tmpl("victorops.default.state_message"),
        "entity_display_name": _tmpl("victorops.default.entity_display_name"),
        "monitoring_tool": _tmpl("victorops.default.monitoring_tool"),
    },
    _validate_victorops,
)


def _validate_pushover(c: Obj) -> None:
    _check(c["user_key"] == "", "missing user key in Pushover config")
    _check(c["token"] == "", "missing token in Pushover config")


PUSHOVER = _notifier(
    "pushover",
    True,
    [
        HTTP,
        F("user_key", SECRET),
        F("token", SECRET),
        F("title", STR),
        F("message", STR),
        F("url", STR),
        F("url_title", STR),
        F("sound", STR),
        F("priority", STR),
        F("retry", GO_DURATION),
        F("expire", GO_DURATION),
        F("html", BOOL, False),
    ],
    {
        "title": _tmpl("pushover.default.title"),
        "message": _tmpl("pushover.default.message"),
        "url": _tmpl("pushover.default.url"),
        "priority": '{{ if eq .Status "firing" }}2{{ else }}0{{ end }}',
        "retry": 60 * 1_000_000_000,
        "expire": 3600 * 1_000_000_000,
    },
    _validate_pushover,
)


def _validate_sns(c: Obj) -> None:
    # Go evaluates (a != b) != c left to right; the quirk (all three set passes) is kept.
    target, topic, phone = c["target_arn"] == "", c["topic_arn"] == "", c["phone_number"] == ""
    _check(
        (target != topic) != phone,
        "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config",
    )


SNS = _notifier(
    "sns",
    True,
    [
        HTTP,
        F("api_url", STR),
        F("sigv4", SIGV4, False),
        F("topic_arn", STR),
        F("phone_number", STR),
        F("target_arn", STR),
        F("subject", STR),
        F("message", STR),
        F("attributes", STRING_MAP),
    ],
    {
        "subject": _tmpl("sns.default.subject"),
        "message": _tmpl("sns.default.message"),
    },
    _validate_sns,
)


def _validate_telegram(c: Obj) -> None:
    _check(c["bot_token"] == "", "missing bot_token on telegram_config")
    _check(c["chat_id"] == 0, "missing chat_id on telegram_config")
    _check(
        c["parse_mode"] not in ("", "Markdown", "MarkdownV2", "HTML"),
        "unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty string",
    )


TELEGRAM = _notifier(
    "telegram",
    True,
    [
        HTTP,
        F("api_url", URL, False),
        F("bot_token", SECRET),
        F("chat_id", Int("int64")),
        F("message", STR),
        F("disable_notifications", BOOL),
        F("parse_mode", STR),
        F("message_thread_id", Int("int")),
        SPLIT,
    ],
    {"message": _tmpl("telegram.default.message"), "parse_mode": "HTML"},
    _validate_telegram,
)


def _validate_msteams(c: Obj) -> None:
    _check(
        c["webhook_url"] is None and c["webhook_url_file"] == "",
        "one of webhook_url or webhook_url_file must be configured",
    )
    _check(
        c["webhook_url"] is not None and c["webhook_url_file"] != "",
        "at most one of webhook_url & webhook_url_file must be configured",
    )


MSTEAMS = _notifier(
    "msteams",
    True,
    [
        HTTP,
        F("webhook_url", SECRET_URL),
        F("webhook_url_file", STR),
        F("title", STR),
        F("summary", STR),
        F("text", STR),
        SPLIT,
    ],
    {
        "title": _tmpl("msteams.default.title"),
        "summary": _tmpl("msteams.default.summary"),
        "text": _tmpl("msteams.default.text"),
    },
    _validate_msteams,
)

# --- KubeSphere channels (not in Alertmanager) -------------------------------------------
#
# Their keys and defaults live in daemon.config.extra_receivers (shared with the
# integrations' own tests); here they become decoder structs so they get the same
# strict decoding, error positions and re-serialisation as Alertmanager's types.

_EXTRA_SECRET_KEYS = frozenset({"secret", "webhook_url"})
_EXTRA_GO_NAMES = {"dingtalk": "DingTalk", "feishu": "Feishu", "wecom": "WeCom", "sms": "SMS"}


def _extra_kind(key: str, spec: extra_receivers.Field) -> Kind:
    if key == "http_config":
        return HTTP_CONFIG
    if spec.kind == "str":
        return SECRET if key in _EXTRA_SECRET_KEYS else STR
    if spec.kind == "bool":
        return BOOL
    if spec.kind == "int":
        return Int("uint")
    if spec.kind == "strings":
        return STRINGS
    # The only map is sms headers, which carry API tokens: shown as <secret>.
    return MapOf(SECRET)


def _extra_struct(type_name: str) -> Struct:
    spec = extra_receivers.schema_of(type_name)
    order = ["send_resolved", "http_config"]
    order += [k for k in spec if k not in order and k != "split_long_messages"]
    order.append("split_long_messages")
    fields = [F(k, _extra_kind(k, spec[k]), spec[k].kind not in ("bool", "int")) for k in order]

    def new() -> Obj:
        obj: Obj = {}
        for k in order:
            default = spec[k].default
            obj[k] = type(default)(default) if isinstance(default, list | dict) else default
        return obj

    def validate(c: Obj) -> None:
        for k in order:
            if c[k] is None and spec[k].kind in ("strings", "map"):
                c[k] = [] if spec[k].kind == "strings" else {}
        try:
            extra_receivers.validate_semantics(type_name, c)
        except ConfigError as exc:
            key = exc.key.split(".", 1)[1] if exc.key and "." in exc.key else None
            raise Invalid(exc.message, key) from None

    return Struct("config.plain", fields, defaults=new, validate=validate)


EXTRA_INTEGRATIONS: dict[str, tuple[str, Struct]] = {
    key: (name, _extra_struct(name)) for key, name in extra_receivers.EXTRA_CONFIG_KEYS.items()
}

#: ``<type>_configs`` key → (integration name, struct, Go list type), in 0.25's field order.
INTEGRATIONS: dict[str, tuple[str, Struct]] = {
    "discord_configs": ("discord", DISCORD),
    "email_configs": ("email", EMAIL),
    "pagerduty_configs": ("pagerduty", PAGERDUTY),
    "slack_configs": ("slack", SLACK),
    "webhook_configs": ("webhook", WEBHOOK),
    "opsgenie_configs": ("opsgenie", OPSGENIE),
    "wechat_configs": ("wechat", WECHAT),
    "pushover_configs": ("pushover", PUSHOVER),
    "victorops_configs": ("victorops", VICTOROPS),
    "sns_configs": ("sns", SNS),
    "telegram_configs": ("telegram", TELEGRAM),
    "webex_configs": ("webex", WEBEX),
    "msteams_configs": ("msteams", MSTEAMS),
    # Ours, after Alertmanager's (the re-serialised receiver lists them last).
    **EXTRA_INTEGRATIONS,
}
_GO_NAMES = {
    "discord": "Discord",
    "email": "Email",
    "pagerduty": "Pagerduty",
    "slack": "Slack",
    "webhook": "Webhook",
    "opsgenie": "OpsGenie",
    "wechat": "Wechat",
    "pushover": "Pushover",
    "victorops": "VictorOps",
    "sns": "SNS",
    "telegram": "Telegram",
    "webex": "Webex",
    "msteams": "MSTeams",
    **_EXTRA_GO_NAMES,
}

RECEIVER = _struct(
    "config.plain",
    F("name", STR, False),
    *(
        F(key, ListOf(struct, f"[]*config.{_GO_NAMES[name]}Config", reject_null=True))
        for key, (name, struct) in INTEGRATIONS.items()
    ),
    validate=lambda c: _check(c["name"] == "", "missing name in receiver"),
)

# --- global --------------------------------------------------------------------------------

GLOBAL_URL_DEFAULTS = {
    "pagerduty_url": "https://events.pagerduty.com/v2/enqueue",
    "opsgenie_api_url": "https://api.opsgenie.com/",
    "wechat_api_url": "https://qyapi.weixin.qq.com/cgi-bin/",
    "victorops_api_url": "https://alert.victorops.com/integrations/generic/20131114/alert/",
    "telegram_api_url": "https://api.telegram.org",
    "webex_api_url": "https://webexapis.com/v1/messages",
}


def default_global() -> Obj:
    obj = {f.name: f.kind.zero() for f in GLOBAL.fields.values()}
    obj.update(
        resolve_timeout=5 * 60 * 1_000_000_000,
        http_config=default_http_config(),
        smtp_hello="localhost",
        smtp_require_tls=True,
        **GLOBAL_URL_DEFAULTS,
    )
    return obj


GLOBAL = _struct(
    "config.plain",
    F("resolve_timeout", DURATION, False),
    F("http_config", HTTP_CONFIG),
    F("smtp_from", STR),
    F("smtp_hello", STR),
    F("smtp_smarthost", HOST_PORT),
    F("smtp_auth_username", STR),
    F("smtp_auth_password", SECRET),
    F("smtp_auth_password_file", STR),
    F("smtp_auth_secret", SECRET),
    F("smtp_auth_identity", STR),
    F("smtp_require_tls", BOOL, False),
    F("slack_api_url", SECRET_URL),
    F("slack_api_url_file", STR),
    F("pagerduty_url", URL),
    F("opsgenie_api_url", URL),
    F("opsgenie_api_key", SECRET),
    F("opsgenie_api_key_file", STR),
    F("wechat_api_url", URL),
    F("wechat_api_secret", SECRET),
    F("wechat_api_corp_id", STR),
    F("victorops_api_url", URL),
    F("victorops_api_key", SECRET),
    F("victorops_api_key_file", STR),
    F("telegram_api_url", URL),
    F("webex_api_url", URL),
)
GLOBAL.defaults = default_global

# --- routes, inhibit rules, time intervals ---------------------------------------------------


def _validate_route(r: Obj) -> None:
    for name in r["match"] or {}:
        _check(not is_valid_label_name(name), f"invalid label name {go_quote(name)}", "match")
    group_by: list[str] = []
    group_by_all = False
    for name in r["group_by"] or ():
        if name == "...":
            group_by_all = True
        else:
            _check(
                not is_valid_label_name(name),
                f"invalid label name {go_quote(name)} in group_by list",
                "group_by",
            )
            group_by.append(name)
    _check(
        bool(group_by) and group_by_all,
        "cannot have wildcard group_by (`...`) and other other labels at the same time",
        "group_by",
    )
    seen: set[str] = set()
    for name in group_by:
        _check(name in seen, f"duplicated label {go_quote(name)} in group_by", "group_by")
        seen.add(name)
    _check(r["group_interval"] == 0, "group_interval cannot be zero", "group_interval")
    _check(r["repeat_interval"] == 0, "repeat_interval cannot be zero", "repeat_interval")


ROUTE = _struct(
    "config.plain",
    F("receiver", STR),
    F("group_by", STRINGS),
    F("match", STRING_MAP),
    F("match_re", MATCH_REGEXPS),
    F("matchers", MATCHERS),
    F("mute_time_intervals", STRINGS),
    F("active_time_intervals", STRINGS),
    F("continue", BOOL, False),
    validate=_validate_route,
)
# Routes nest; the field is added once the struct exists.
ROUTE.fields["routes"] = F("routes", ListOf(ROUTE, "[]*config.Route", reject_null=True))
for _late in ("group_wait", "group_interval", "repeat_interval"):
    ROUTE.fields[_late] = F(_late, DURATION)


def _validate_inhibit_rule(r: Obj) -> None:
    for side in ("source_match", "target_match"):
        for name in r[side] or {}:
            _check(not is_valid_label_name(name), f"invalid label name {go_quote(name)}", side)


INHIBIT_RULE = _struct(
    "config.plain",
    F("source_match", STRING_MAP),
    F("source_match_re", MATCH_REGEXPS),
    F("source_matchers", MATCHERS),
    F("target_match", STRING_MAP),
    F("target_match_re", MATCH_REGEXPS),
    F("target_matchers", MATCHERS),
    F("equal", LABEL_NAMES),
    validate=_validate_inhibit_rule,
)


def _time_range(raw: Obj) -> ti.TimeRange:
    try:
        return ti.parse_time_range(raw["start_time"], raw["end_time"])
    except ti.TimeIntervalError as exc:
        raise Invalid(str(exc)) from None


TIME_RANGE = Checked(
    _struct(
        "timeinterval.yamlTimeRange",
        F("start_time", STR, False),
        F("end_time", STR, False),
        pointer=False,
    ),
    _time_range,
    lambda r: {
        "start_time": ti.format_time(r.start_minute),
        "end_time": ti.format_time(r.end_minute),
    },
)


def _ranges(parse: Callable[[str], Any], show: Callable[[Any], str], go_type: str) -> Kind:
    return ListOf(Scalar(_via(parse), show), go_type, flow=True)


TIME_INTERVAL = _struct(
    "timeinterval.TimeInterval",
    F("times", ListOf(TIME_RANGE, "[]timeinterval.TimeRange")),
    F(
        "weekdays",
        _ranges(ti.parse_weekday_range, ti.format_weekday_range, "[]timeinterval.WeekdayRange"),
    ),
    F(
        "days_of_month",
        _ranges(ti.parse_day_of_month_range, ti.format_range, "[]timeinterval.DayOfMonthRange"),
    ),
    F("months", _ranges(ti.parse_month_range, ti.format_range, "[]timeinterval.MonthRange")),
    F("years", _ranges(ti.parse_year_range, ti.format_range, "[]timeinterval.YearRange")),
    F("location", Scalar(_via(ti.parse_location), _same)),
    pointer=False,
)


def _named_intervals(missing: str) -> Struct:
    return _struct(
        "config.plain",
        F("name", STR, False),
        F("time_intervals", ListOf(TIME_INTERVAL, "[]timeinterval.TimeInterval"), False),
        pointer=False,
        validate=lambda c: _check(c["name"] == "", missing),
    )


MUTE_TIME_INTERVAL = _named_intervals("missing name in mute time interval")
NAMED_TIME_INTERVAL = _named_intervals("missing name in time interval")

# The top-level Config struct and its cross-checks live in daemon.config.validate.
__all__ = [
    "GLOBAL",
    "INHIBIT_RULE",
    "INTEGRATIONS",
    "MUTE_TIME_INTERVAL",
    "NAMED_TIME_INTERVAL",
    "RECEIVER",
    "ROUTE",
    "seq_node",
    "str_node",
]
