"""Label matchers (``=``, ``!=``, ``=~``, ``!~``) and Alertmanager's classic matcher parser.

Rules (spec §1.11, §3.1, §6.3):

* A missing label reads as the empty string, so ``foo=""`` matches its absence.
* Regexes are fully anchored and read with Go's syntax and meaning
  (:mod:`daemon.gocompat.regexp`), and matched by RE2 in linear time.
* Sort order of a matcher set is (name, value, type) with ``= < != < =~ < !~``; it
  is part of the route key that the nflog persists, so it must be exact.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping

import attrs

from daemon.gocompat import regexp as goregex


class MatcherError(ValueError):
    """A matcher that does not parse or whose regex does not compile."""


class MatchType(enum.IntEnum):
    EQUAL = 0
    NOT_EQUAL = 1
    REGEXP = 2
    NOT_REGEXP = 3

    @property
    def operator(self) -> str:
        return _OPERATORS[self]


_OPERATORS = {
    MatchType.EQUAL: "=",
    MatchType.NOT_EQUAL: "!=",
    MatchType.REGEXP: "=~",
    MatchType.NOT_REGEXP: "!~",
}
_BY_OPERATOR = {v: k for k, v in _OPERATORS.items()}

_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def is_valid_label_name(name: str) -> bool:
    """The legacy (0.25) label-name rule."""
    return _LEGACY_NAME.fullmatch(name) is not None


def compile_anchored(pattern: str) -> goregex.GoRegexp:
    """Alertmanager's ``^(?:pattern)$`` with Go's regexp meaning (RE2); match with ``search``.

    Errors read like Go's regexp package (they reach API responses and config checks).
    """
    try:
        return goregex.compile_anchored(pattern)
    except goregex.GoRegexError as exc:
        raise MatcherError(str(exc)) from None


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@attrs.frozen(eq=False, repr=False)
class Matcher:
    """One label matcher. Equality and hashing are on (type, name, value)."""

    type: MatchType
    name: str
    value: str
    _regex: goregex.GoRegexp | None = attrs.field(default=None, alias="_regex")
    #: The values a regex matches when it spells out a few literals (``web|db``): a set
    #: lookup then answers without running the regex.
    _literals: frozenset[str] | None = attrs.field(default=None, alias="_literals")

    @classmethod
    def create(cls, type: MatchType, name: str, value: str) -> Matcher:
        regex = None
        literals = None
        if type in (MatchType.REGEXP, MatchType.NOT_REGEXP):
            regex = compile_anchored(value)
            literals = goregex.anchored_literals(value)
        return cls(type, name, value, _regex=regex, _literals=literals)

    def matches(self, value: str) -> bool:
        t = self.type
        if t is MatchType.EQUAL:
            return value == self.value
        if t is MatchType.NOT_EQUAL:
            return value != self.value
        if self._literals is not None:
            found = value in self._literals
        else:
            assert self._regex is not None
            found = self._regex.search(value)
        return found if t is MatchType.REGEXP else not found

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.matches(labels.get(self.name, ""))

    def matches_empty(self) -> bool:
        """True if this matcher would match an absent label (``""``)."""
        return self.matches("")

    @property
    def sort_key(self) -> tuple[str, str, int]:
        return (self.name, self.value, int(self.type))

    def __str__(self) -> str:
        return f'{self.name}{self.type.operator}"{_escape_value(self.value)}"'

    def __repr__(self) -> str:
        return f"Matcher({self})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Matcher):
            return NotImplemented
        return (self.type, self.name, self.value) == (other.type, other.name, other.value)

    def __hash__(self) -> int:
        return hash((self.type, self.name, self.value))


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def sort_matchers(matchers: Iterable[Matcher]) -> list[Matcher]:
    return sorted(matchers, key=lambda m: m.sort_key)


def matchers_string(matchers: Iterable[Matcher]) -> str:
    """``{a="b",c=~"d"}`` in sorted order: the route-key form (spec §3.2)."""
    return "{" + ",".join(str(m) for m in sort_matchers(matchers)) + "}"


# --- the classic parser (0.25) --------------------------------------------------------

_CLASSIC = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*", re.DOTALL)


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``severity=~"crit|warn"``."""
    m = _CLASSIC.fullmatch(text)
    if m is None:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = m.group(1), m.group(2), m.group(3)
    rest = raw
    expect_quote = rest.startswith('"')
    if expect_quote:
        rest = rest[1:]
    out: list[str] = []
    escaped = False
    last = len(rest) - 1
    for i, ch in enumerate(rest):
        if escaped:
            escaped = False
            if ch == "n":
                out.append("\n")
            elif ch in '"\\':
                out.append(ch)
            else:
                # A spurious escape: keep the backslash literally.
                out.append("\\" + ch)
            continue
        if ch == "\\":
            if i < last:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if not expect_quote or i < last:
                raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
            expect_quote = False
        else:
            out.append(ch)
    if expect_quote:
        raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
    return Matcher.create(_BY_OPERATOR[op], name, "".join(out))


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a matcher list such as ``{a="b", c=~"d,e"}`` (braces optional, trailing comma ok)."""
    if text.startswith("{"):
        text = text[1:]
    if text.endswith("}"):
        text = text[:-1]
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = False
    escaped = False
    for ch in text:
        if ch == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return [parse_matcher(t) for t in tokens]


def parse_filter(text: str) -> Matcher:
    """An API ``filter`` value: exactly one matcher, no braces."""
    if text.startswith("{") or text.endswith("}"):
        raise MatcherError(f"bad matcher format: {text}")
    parsed = parse_matchers(text)
    if len(parsed) != 1:
        raise MatcherError(f"bad matcher format: {text}")
    return parsed[0]


def matcher_json(m: Matcher) -> dict[str, object]:
    """The API's form of ``m``: ``{isEqual, isRegex, name, value}`` (spec §1.8)."""
    return {
        "isEqual": m.type in (MatchType.EQUAL, MatchType.REGEXP),
        "isRegex": m.type in (MatchType.REGEXP, MatchType.NOT_REGEXP),
        "name": m.name,
        "value": m.value,
    }
