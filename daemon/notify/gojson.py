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

import re
from collections.abc import Callable, Mapping
from typing import cast

from daemon.gocompat.jsonstring import json_string


def string(value: str) -> str:
    """A Go-encoded JSON string literal, quotes included."""
    return json_string(value)


def string_map(value: Mapping[str, str]) -> str:
    """A ``map[string]string`` as Go encodes it: keys sorted, ``{}`` when empty.

    Label and annotation maps rarely hold a character Go escapes; those are written in
    one piece (:func:`plain_string_map`), the others string by string.
    """
    if type(value) is dict:
        plain = plain_string_map(value)
        if plain is not None:
            return plain
    return escaped_string_map(value)


def escaped_string_map(value: Mapping[str, str]) -> str:
    """:func:`string_map` with every key and value escaped on its own: the definition."""
    return "{" + ",".join(f"{string(k)}:{string(value[k])}" for k in sorted(value)) + "}"


#: What :func:`string` escapes: quote, backslash, controls, HTML characters, U+2028/9,
#: surrogates.
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _plain_string_map_python(value: dict[str, str]) -> str | None:
    """The C ``go_json_map``'s fallback: :func:`string_map` of ``value``, or None when
    some key or value needs escaping. TypeError when one is not a str."""
    if not value:
        return "{}"
    # One scan over all keys and one over all values decides. Both joins come first:
    # a non-str anywhere is a TypeError, as in C and in the escaping path.
    keys, values = "".join(value), "".join(value.values())
    unsafe = _NEEDS_ESCAPE.search
    if unsafe(keys) is None and unsafe(values) is None:
        return '{"' + '","'.join([f'{k}":"{value[k]}' for k in sorted(value)]) + '"}'
    return None


plain_string_map: Callable[[dict[str, str]], str | None]
try:
    # daemon/_speedups.c (optional build) writes the text into one str, without the
    # joins and the per-entry f-strings: webhook bodies write two maps per alert.
    from daemon._speedups import go_json_map as plain_string_map
except ImportError:  # pragma: no cover - depends on the build
    plain_string_map = _plain_string_map_python


#: A :func:`join` piece: raw text, a map written as :func:`plain_string_map` writes it,
#: or a uint64 written as 16 lowercase hex digits (a fingerprint).
Piece = str | dict[str, str] | int


def _join_python(pieces: tuple[Piece, ...]) -> str | None:
    """The C ``json_join``'s fallback: the pieces' texts joined, or None when a map
    needs escaping. TypeError for another kind of piece, OverflowError for an int
    outside uint64."""
    out: list[str] = []
    for piece in pieces:
        if type(piece) is str:
            out.append(piece)
        elif isinstance(piece, dict):
            text = _plain_string_map_python(piece)
            if text is None:
                return None
            out.append(text)
        elif type(piece) is int:
            if not 0 <= piece < 1 << 64:
                raise OverflowError("a hex piece must be in uint64")
            out.append(f"{piece:016x}")
        else:
            raise TypeError(f"a piece is a str, a dict or an int, not {type(piece).__name__}")
    return "".join(out)


join: Callable[[tuple[Piece, ...]], str | None]
try:
    # One str written in one C call: the webhook body's and the API's alert objects,
    # whose maps rarely need escaping (1.1 against 1.9 us a webhook alert object).
    from daemon._speedups import json_join as join
except ImportError:  # pragma: no cover - depends on the build
    join = _join_python


def write(pieces: tuple[str | Mapping[str, str] | int, ...]) -> str:
    """The pieces' text: raw text, maps as :func:`string_map` writes them (escaped where
    Go escapes), uint64s as 16 hex digits. In one :func:`join` call when every map is a
    dict with nothing to escape, the usual case; else piece by piece."""
    try:
        text = join(cast(tuple[Piece, ...], pieces))
    except TypeError:  # a map that is not a dict: the exact path below says what is wrong
        text = None
    if text is not None:
        return text
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
        elif isinstance(piece, int):
            out.append(f"{piece:016x}")
        else:
            out.append(string_map(piece))
    return "".join(out)


def obj(fields: list[tuple[str, str]]) -> str:
    """An object from already-encoded values, keys in the given (struct field) order."""
    return "{" + ",".join(f"{string(k)}:{v}" for k, v in fields) + "}"
