"""JSON bytes exactly as Go's ``encoding/json`` writes them, for payloads that receivers
(and our tests) compare byte for byte.

Differences from ``json.dumps(ensure_ascii=False)`` that matter: ``<``, ``>``, ``&``,
U+2028 and U+2029 are ``\\u``-escaped (Go's HTML-safe default); control characters other
than ``\\n``, ``\\r``, ``\\t`` are ``\\u00xx`` (Go before 1.22, which Alertmanager 0.25
was built with, has no ``\\b``/``\\f``); lone surrogates, which cannot be valid UTF-8,
become U+FFFD as Go does with invalid bytes. Map keys are sorted by byte order, which
for ``str`` is code-point order.
"""

from __future__ import annotations

from collections.abc import Mapping

from daemon.gocompat.jsonstring import json_string


def string(value: str) -> str:
    """A Go-encoded JSON string literal, quotes included."""
    return json_string(value)


def string_map(value: Mapping[str, str]) -> str:
    """A ``map[string]string`` as Go encodes it: keys sorted, ``{}`` when empty."""
    return "{" + ",".join(f"{string(k)}:{string(value[k])}" for k in sorted(value)) + "}"


def obj(fields: list[tuple[str, str]]) -> str:
    """An object from already-encoded values, keys in the given (struct field) order."""
    return "{" + ",".join(f"{string(k)}:{v}" for k, v in fields) + "}"
