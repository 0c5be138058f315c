"""Go's ``encoding/json`` encoding of a string, shared by the receivers' payloads and
html/template's JS escaper.

Differences from ``json.dumps(ensure_ascii=False)`` that matter: ``<``, ``>``, ``&``,
U+2028 and U+2029 are ``\\u``-escaped (Go's HTML-safe default); control characters other
than ``\\n``, ``\\r``, ``\\t`` are ``\\u00xx`` (Go before 1.22, which Alertmanager 0.25
was built with, has no ``\\b``/``\\f``); lone surrogates, which cannot be valid UTF-8,
become U+FFFD as Go does with invalid bytes.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    short = _SHORT.get(ch)
    if short is not None:
        return short
    if "\ud800" <= ch <= "\udfff":
        return "\ufffd"
    return f"\\u{ord(ch):04x}"


def json_string(value: str) -> str:
    """A Go-encoded JSON string literal, quotes included."""
    return '"' + _ESCAPE.sub(_escape_char, value) + '"'
