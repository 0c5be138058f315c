"""YAML text → PyYAML node tree, read the way Go's ``gopkg.in/yaml.v2`` reads it.

Alertmanager decodes its config with yaml.v2, whose rules differ from PyYAML's in ways
operators can see: ``y``/``n``/``on``/``off`` are booleans, a quoted scalar is always a
string, and syntax errors are libyaml's sentences with a Go-style line number. We keep
PyYAML's composer (so every node knows its line) and re-implement only those rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import yaml

from daemon.config.errors import ConfigError

STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, MAP, SEQ, MERGE = (
    "str",
    "int",
    "float",
    "bool",
    "null",
    "timestamp",
    "map",
    "seq",
    "merge",
)

_TRUE = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"}
_FALSE = {"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"}
_NULL = {"", "~", "null", "Null", "NULL"}
_SPECIAL_FLOAT = {
    ".inf",
    ".Inf",
    ".INF",
    "+.inf",
    "+.Inf",
    "+.INF",
    "-.inf",
    "-.Inf",
    "-.INF",
    ".nan",
    ".NaN",
    ".NAN",
}
_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?")
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def resolve_plain(value: str) -> str:
    """The tag yaml.v2 gives an unquoted scalar."""
    if value in _NULL:
        return NULL
    if value in _TRUE or value in _FALSE:
        return BOOL
    if value == "<<":
        return MERGE
    if value in _SPECIAL_FLOAT:
        return FLOAT
    plain = value.replace("_", "")
    if _INT.fullmatch(plain):
        return INT
    if _FLOAT.fullmatch(plain):
        return FLOAT
    if _TIMESTAMP.fullmatch(value):
        return TIMESTAMP
    return STR


def plain_bool(value: str) -> bool:
    return value in _TRUE


def plain_int(value: str) -> int:
    plain = value.replace("_", "")
    sign = -1 if plain.startswith("-") else 1
    body = plain.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1].isdigit():
        return sign * int(body, 8)
    return sign * int(body, 0)


def needs_quotes(value: str) -> bool:
    """True if yaml.v2's encoder would double-quote ``value`` (it reads as a non-string)."""
    return resolve_plain(value) not in (STR, MERGE) or _BASE60.fullmatch(value) is not None


def tag_of(node: yaml.Node) -> str:
    """yaml.v2's short tag for ``node``: str, int, bool, null, map, seq, …"""
    if isinstance(node, yaml.MappingNode):
        return MAP
    if isinstance(node, yaml.SequenceNode):
        return SEQ
    assert isinstance(node, yaml.ScalarNode)
    if node.style is None:
        return resolve_plain(str(node.value))
    return STR


def is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and tag_of(node) == NULL)


def line_of(node: yaml.Node) -> int:
    """1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


# PyYAML (context, problem) fragments → libyaml's wording, which Go prints.
_PROBLEMS: list[tuple[str, str, str]] = [
    ("block mapping", "expected <block end>", "did not find expected key"),
    ("block collection", "expected <block end>", "did not find expected '-' indicator"),
    ("flow sequence", "expected ',' or ']'", "did not find expected ',' or ']'"),
    ("flow mapping", "expected ',' or '}'", "did not find expected ',' or '}'"),
    ("", "mapping values are not allowed", "mapping values are not allowed in this context"),
    ("simple key", "could not find expected ':'", "could not find expected ':'"),
    ("", "that cannot start any token", "found character that cannot start any token"),
    ("", "expected the node content", "did not find expected node content"),
    ("", "found unexpected end of stream", "found unexpected end of stream"),
    ("", "found undefined tag handle", "found undefined tag handle"),
    ("", "found unknown escape character", "found unknown escape character"),
    ("", "found unexpected ':'", "found unexpected ':'"),
    (
        "",
        "block sequence entries are not allowed",
        "block sequence entries are not allowed in this context",
    ),
    (
        "",
        "expected alphabetic or numeric character",
        "did not find expected alphabetic or numeric character",
    ),
    ("", "found a tab character", "found a tab character that violates indentation"),
]


def _syntax_error(exc: yaml.MarkedYAMLError) -> ConfigError:
    problem = exc.problem or ""
    context = exc.context or ""
    message = problem
    if problem.startswith("found undefined alias "):
        return ConfigError(f"yaml: unknown anchor {problem[22:]} referenced")
    for ctx_part, problem_part, go in _PROBLEMS:
        if ctx_part in context and problem_part in problem:
            message = go
            break
    # yaml.v2 reports a scanner error's own line but, for parser errors, the 0-based
    # line of the problem (which reads as the line before it); we copy both quirks.
    line = 0
    if exc.problem_mark is not None and exc.problem_mark.line != 0:
        line = int(exc.problem_mark.line)
        if isinstance(exc, yaml.scanner.ScannerError):
            line += 1
    elif exc.context_mark is not None:
        line = int(exc.context_mark.line)
    our_line = int(exc.problem_mark.line) + 1 if exc.problem_mark is not None else None
    text = f"yaml: line {line}: {message}" if line else f"yaml: {message}"
    return ConfigError(text, line=our_line)


def compose(text: str) -> yaml.Node | None:
    """The first document's node tree (yaml.v2 ignores the rest), or None if empty."""
    try:
        documents: Iterator[yaml.Node] = yaml.compose_all(text, Loader=yaml.SafeLoader)
        return next(documents, None)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"yaml: {exc}") from None
