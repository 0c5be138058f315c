"""Config schema of the receiver types Alertmanager lacks (KubeSphere's channels).

Each entry of ``<type>_configs`` in a receiver is validated by
``EXTRA_RECEIVER_TYPES[type](raw)``, which returns every field after defaults (the
shape :class:`daemon.config.model.IntegrationConfig` keeps) or raises
:class:`ConfigError` with the message to report. ``http_config`` is passed through as
written (None when absent): the loader turns it into an ``HTTPConfig`` defaulted to
the global one, as for Alertmanager's types.

Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from daemon.config.errors import ConfigError

ValidateFn = Callable[[Mapping[str, Any]], dict[str, Any]]


@attrs.frozen
class Field:
    """One config key: its kind (``str``, ``bool``, ``int``, ``strings``, ``map``) and default."""

    kind: str
    default: Any = None
    required: bool = False


def _tmpl(name: str) -> str:
    return f'{{{{ template "{name}" . }}}}'


_COMMON = {
    "send_resolved": Field("bool", True),
    "http_config": Field("any"),
    "split_long_messages": Field("bool", True),
}

_SCHEMAS: dict[str, dict[str, Field]] = {
    "dingtalk": {
        "webhook_url": Field("str", ""),
        "webhook_url_file": Field("str", ""),
        "secret": Field("str", ""),
        "message_type": Field("str", "text"),
        "title": Field("str", _tmpl("dingtalk.default.title")),
        "message": Field("str", _tmpl("dingtalk.default.message")),
        "at_mobiles": Field("strings", []),
        "at_user_ids": Field("strings", []),
        "at_all": Field("bool", False),
        "keywords": Field("strings", []),
        "max_message_bytes": Field("int", 0),
    },
    "feishu": {
        "webhook_url": Field("str", ""),
        "webhook_url_file": Field("str", ""),
        "secret": Field("str", ""),
        "message": Field("str", _tmpl("feishu.default.message")),
        "keywords": Field("strings", []),
        "max_message_bytes": Field("int", 0),
    },
    "wecom": {
        "webhook_url": Field("str", ""),
        "webhook_url_file": Field("str", ""),
        "message_type": Field("str", "text"),
        "message": Field("str", _tmpl("wecom.default.message")),
        "mentioned_list": Field("strings", []),
        "mentioned_mobile_list": Field("strings", []),
    },
    "sms": {
        "url": Field("str", "", required=True),
        "method": Field("str", "POST"),
        "headers": Field("map", {}),
        "body": Field("str", _tmpl("sms.default.message")),
        "content_type": Field("str", "text/plain; charset=utf-8"),
        "send_resolved": Field("bool", False),
        "split_long_messages": Field("bool", False),
    },
}

_KIND_NAMES = {
    "str": "string",
    "bool": "bool",
    "int": "int",
    "strings": "[]string",
    "map": "map[string]string",
}


def _check_kind(type_name: str, key: str, kind: str, value: Any) -> Any:
    ok = {
        "any": True,
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "map": isinstance(value, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()),
    }[kind]
    if not ok:
        raise ConfigError(
            f"{type_name}_configs: {key} must be a {_KIND_NAMES.get(kind, kind)}",
            key=f"{type_name}_configs.{key}",
        )
    return value


def _validator(type_name: str) -> ValidateFn:
    schema = {**_COMMON, **_SCHEMAS[type_name]}

    def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{type_name}_configs: each entry must be a mapping")
        unknown = sorted(set(raw) - set(schema))
        if unknown:
            raise ConfigError(
                f"{type_name}_configs: field {unknown[0]} not found",
                key=f"{type_name}_configs.{unknown[0]}",
            )
        fields: dict[str, Any] = {}
        for key, spec in schema.items():
            value = raw.get(key)
            if value is None:
                default = spec.default
                fields[key] = list(default) if isinstance(default, list) else default
                if isinstance(default, dict):
                    fields[key] = dict(default)
                continue
            fields[key] = _check_kind(type_name, key, spec.kind, value)
        _validate_semantics(type_name, fields)
        return fields

    return validate


def schema_of(type_name: str) -> dict[str, Field]:
    """Every key of one extra type, ``send_resolved`` and ``http_config`` first."""
    return {**_COMMON, **_SCHEMAS[type_name]}


def validate_semantics(type_name: str, fields: dict[str, Any]) -> None:
    """The cross-field checks of one entry whose keys are already typed and defaulted."""
    _validate_semantics(type_name, fields)


def _validate_semantics(type_name: str, f: dict[str, Any]) -> None:
    if "webhook_url" in f:
        if not f["webhook_url"] and not f["webhook_url_file"]:
            raise ConfigError(
                f"one of webhook_url or webhook_url_file must be configured in {type_name}_config",
                key=f"{type_name}_configs.webhook_url",
            )
        if f["webhook_url"] and f["webhook_url_file"]:
            raise ConfigError(
                f"at most one of webhook_url & webhook_url_file must be configured in "
                f"{type_name}_config",
                key=f"{type_name}_configs.webhook_url_file",
            )
    if "message_type" in f and f["message_type"] not in ("text", "markdown"):
        raise ConfigError(
            f'{type_name}_configs: unknown message_type "{f["message_type"]}" '
            "(must be text or markdown)",
            key=f"{type_name}_configs.message_type",
        )
    if type_name == "sms":
        if not f["url"]:
            raise ConfigError("missing url in sms_config", key="sms_configs.url")
        if f["method"].upper() not in ("GET", "POST", "PUT", "PATCH"):
            raise ConfigError(
                f'sms_configs: unsupported method "{f["method"]}"', key="sms_configs.method"
            )


#: Integration type -> validator of one ``<type>_configs`` entry.
EXTRA_RECEIVER_TYPES: dict[str, ValidateFn] = {name: _validator(name) for name in _SCHEMAS}

#: Receiver key -> integration type, for the loader.
EXTRA_CONFIG_KEYS: dict[str, str] = {f"{name}_configs": name for name in _SCHEMAS}


def validate_extra_receivers(receiver: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every extra-type entry of one raw receiver mapping, validated, in key then file order.

    The caller removes :data:`EXTRA_CONFIG_KEYS` from the mapping before its strict
    Alertmanager decode, and builds one ``IntegrationConfig`` per returned pair.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    for key, type_name in EXTRA_CONFIG_KEYS.items():
        entries = receiver.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ConfigError(f"{key} must be a list", key=key)
        for entry in entries:
            if entry is None:
                continue
            out.append((type_name, EXTRA_RECEIVER_TYPES[type_name](entry)))
    return out


__all__ = [
    "EXTRA_CONFIG_KEYS",
    "EXTRA_RECEIVER_TYPES",
    "Field",
    "ValidateFn",
    "schema_of",
    "validate_extra_receivers",
    "validate_semantics",
]
