"""Response bodies encoded the way Alertmanager's Go server writes them.

* Compact JSON, object keys in go-swagger's order (own ``allOf`` part alphabetically,
  then the embedded part alphabetically), label maps sorted by key.
* ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c`` and so on; other non-ASCII
  raw UTF-8. A plain replace on the encoded text is exact because those characters
  can only occur inside JSON strings.
* Successful bodies and handler errors end with a newline (Go's ``json.Encoder``);
  framework errors (``{"code","message"}``) do not.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from daemon.alert import Alert
from daemon.api.backend import AlertStatus
from daemon.gocompat.timestamp import format_millis
from daemon.notify import gojson

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


class RawJson(str):
    """Text that is already Go JSON: :func:`go_json` passes it through unchanged."""

    __slots__ = ()


def go_json(value: Any) -> str:
    """Compact JSON text with Go's HTML-safe escaping; keys keep their insertion order."""
    if type(value) is RawJson:
        return value
    text = _encoder.encode(value)
    for raw, escaped in _ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def body(value: Any) -> bytes:
    """A success or handler-error body: Go JSON plus the encoder's trailing newline."""
    return (go_json(value) + "\n").encode()


def framework_error(code: int, message: str) -> bytes:
    """go-openapi's ``{"code":…,"message":…}`` error body (no trailing newline)."""
    return go_json({"code": code, "message": message}).encode()


# Alerts posted together share updatedAt (and often endsAt): format each value once.
_millis = functools.lru_cache(maxsize=4096)(format_millis)


@functools.lru_cache(maxsize=1024)
def _receivers_text(receivers: tuple[str, ...]) -> str:
    """The ``receivers`` array's elements: the same for every alert of a group."""
    return ",".join([f'{{"name":{gojson.string(r)}}}' for r in receivers])


@functools.lru_cache(maxsize=4096)
def _generator_text(url: str) -> str:
    """The ``generatorURL`` member, absent when empty: one URL per rule."""
    return f',"generatorURL":{gojson.string(url)}' if url else ""


def sorted_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted(labels.items())) if len(labels) > 1 else dict(labels)


def gettable_alert(alert: Alert, status: AlertStatus, receivers: Sequence[str]) -> dict[str, Any]:
    """The ``gettableAlert`` object, keys in Alertmanager's order (spec §1.1, §1.5).

    The definition :func:`gettable_alert_json` (what the listings use) is tested against.
    """
    out: dict[str, Any] = {
        "annotations": sorted_labels(alert.annotations),
        "endsAt": _millis(alert.ends_at),
        "fingerprint": alert.fingerprint_hex,
        "receivers": [{"name": r} for r in receivers],
        "startsAt": _millis(alert.starts_at),
        "status": {
            "inhibitedBy": list(status.inhibited_by),
            "silencedBy": list(status.silenced_by),
            "state": status.state,
        },
        "updatedAt": _millis(alert.updated_at),
    }
    if alert.generator_url:
        out["generatorURL"] = alert.generator_url
    out["labels"] = sorted_labels(alert.labels)
    return out


def gettable_alert_json(alert: Alert, status: AlertStatus, receivers: Sequence[str]) -> str:
    r"""``go_json(gettable_alert(...))`` written out directly, strings escaped as Go's
    ``encoding/json`` does (:func:`gojson.write`, as the webhook body's alert objects).

    The first listing of GET /api/v2/alerts/groups encodes every stored alert: one C
    call for the whole object when no map needs escaping, the receivers' and generator
    URL's text cached (they repeat across a group and a rule), where the dict and the
    encoder took 7.7 us (six labels). The bytes are the same, except that ``\b`` and
    ``\f`` in a label or annotation come out as ``\u0008`` and ``\u000c``, as Go writes
    them.
    """
    string = gojson.string
    inhibited = ",".join(map(string, status.inhibited_by)) if status.inhibited_by else ""
    silenced = ",".join(map(string, status.silenced_by)) if status.silenced_by else ""
    return gojson.write(
        (
            '{"annotations":',
            alert.annotations,
            ',"endsAt":"',
            _millis(alert.ends_at),
            '","fingerprint":"',
            alert.fingerprint,
            '","receivers":[',
            _receivers_text(tuple(receivers)),
            '],"startsAt":"',
            _millis(alert.starts_at),
            '","status":{"inhibitedBy":[',
            inhibited,
            '],"silencedBy":[',
            silenced,
            '],"state":"',
            status.state,
            '"},"updatedAt":"',
            _millis(alert.updated_at),
            '"',
            _generator_text(alert.generator_url),
            ',"labels":',
            alert.labels,
            "}",
        )
    )


def json_array(fragments: Sequence[str]) -> RawJson:
    """The compact JSON array of already encoded elements (what the encoder would write)."""
    return RawJson("[" + ",".join(fragments) + "]")


def cluster_status(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``clusterStatus`` with keys ordered ``name, peers, status``; peers ``address, name``."""
    out: dict[str, Any] = {}
    if raw.get("name"):
        out["name"] = raw["name"]
    out["peers"] = [{"address": p["address"], "name": p["name"]} for p in raw.get("peers", ())]
    out["status"] = raw["status"]
    return out


VERSION_KEYS = ("branch", "buildDate", "buildUser", "goVersion", "revision", "version")


def version_info(raw: Mapping[str, str]) -> dict[str, str]:
    return {k: raw.get(k, "") for k in VERSION_KEYS}
