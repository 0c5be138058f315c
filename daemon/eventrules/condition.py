"""kube-events' condition language (kubesphere/event-rule-engine), compiled to closures.

The grammar is upstream's ``EventRule.g4``, read as ANTLR reads it:

- The lexer takes the longest token at each position, and the first rule listed on a
  tie, so ``not contains`` (one space) is one token, ``notes`` is a field name, ``true``
  is a boolean and ``And`` is a field name (keywords are lower case only).
- ``and`` and ``or`` are ONE binary operator level, left to right: ``a or b and c`` is
  ``(a or b) and c``. Existing rule files depend on this, so it stays; ``mixed_and_or``
  finds the conditions that mix them without parentheses, for ``tocsinctl rules check``.
- ``not``/``!`` binds looser than and/or: it takes the rest of the chain, up to the
  closing parenthesis (``not a and b`` is ``not (a and b)``).

Evaluation follows ``visitor/eventrule.go``:

- A string literal compares with the field's Go ``fmt.Sprint`` text, lexically; a number
  literal compares numerically (the field's text parsed as a float). String literals are
  not unescaped (upstream only trims the quotes).
- A missing or null field makes every operator false, ``not contains``/``not in``/...
  included; ``not (...)`` of that is true.
- ``like`` turns ``?`` into ``.`` and runs of ``*`` into ``(.*)``; ``like`` and ``regex``
  are unanchored RE2 searches.
- ``a[*].b`` needs any element, an index ``a[2].b`` or a slice ``a[1:3].b`` needs every
  selected element (an empty selection is false).
- An evaluation error upstream (a number literal against a non-numeric field, a boolean
  against a non-boolean, a path through something that is not an object or array) aborts
  the whole condition, which then does not match. Here that is ``_EvalError``, caught
  once at the top.

tocsin refuses at compile time what upstream accepts but can never evaluate: syntax
errors (ANTLR's recovery runs some of them), bad regexes, a path ending in ``]`` with an
operator other than ``contains``, a bare array path, a slice whose start passes its end.
Where upstream is plainly buggy this module does better and says so: an element of
``a[*].b`` that lacks ``b`` only fails itself (upstream fails the whole ``[*]``).
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from daemon.gocompat.regexp import GoRegexError, GoRegexp

__all__ = [
    "Condition",
    "ConditionError",
    "compile_condition",
    "go_sprint",
    "mixed_and_or",
]


class ConditionError(ValueError):
    """A condition that does not compile; ``position`` is the 0-based offset in the text."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"at position {position}: {message}")
        self.position = position
        self.message = message


class _EvalError(Exception):
    """Upstream's evaluation panic: the whole condition does not match this object."""


_MISSING: Any = object()

# --- lexer -----------------------------------------------------------------------------

_INDEX = r"(?:\[(?:\*|[0-9]+|(?:[0-9]+)?:(?:[0-9]+)?)\])"
_NAME = r"[a-zA-Z_][a-zA-Z0-9_-]*"
# Token kinds in upstream's declaration order (ties go to the earlier one).
_TOKEN_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("LPAREN", re.compile(r"\(")),
    ("RPAREN", re.compile(r"\)")),
    ("AND", re.compile(r"and")),
    ("OR", re.compile(r"or")),
    ("NOT", re.compile(r"not|!")),
    ("EQU", re.compile(r"==|=")),
    ("NEQ", re.compile(r"!=")),
    ("GT", re.compile(r">")),
    ("LT", re.compile(r"<")),
    ("GTE", re.compile(r">=")),
    ("LTE", re.compile(r"<=")),
    ("CONTAINS", re.compile(r"contains")),
    ("NOTCONTAINS", re.compile(r"not contains")),
    ("IN", re.compile(r"in")),
    ("NOTIN", re.compile(r"not in")),
    ("LIKE", re.compile(r"like")),
    ("NOTLIKE", re.compile(r"not like")),
    ("REGEX", re.compile(r"regex")),
    ("NOTREGEX", re.compile(r"not regex")),
    ("EXISTS", re.compile(r"exists")),
    ("NOTEXISTS", re.compile(r"not exists")),
    ("COMMA", re.compile(r",")),
    ("NUMBER", re.compile(r"-?[0-9]+(?:\.[0-9]+)?")),
    ("BOOLEAN", re.compile(r"True|TRUE|true|False|FALSE|false")),
    # Upstream's ``('.')?`` after a segment, taken only where no segment follows, so
    # that Python's first match is ANTLR's longest one (``a.b.c``, ``a.b..c``, ``a.b.``).
    ("VAR", re.compile(rf"{_NAME}{_INDEX}?(?:\.{_NAME}{_INDEX}?(?:\.(?![a-zA-Z_]))?)*")),
]
_SPACE = " \t\r\n"
_COMPARE_OPS = {"EQU", "NEQ", "GT", "LT", "GTE", "LTE"}
_NEGATED = {"NOTCONTAINS", "NOTIN", "NOTLIKE", "NOTREGEX", "NOTEXISTS"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: int


def _string_end(text: str, start: int) -> int:
    """The end of upstream's ``STRING: '"' (ESC|.)*? '"'`` with ``ESC: '\\"' | '\\\\'``.

    A scan rather than a regex: the regex's overlapping alternatives backtrack
    exponentially on a long run of backslashes with no closing quote.
    """
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise ConditionError(start, "the string has no closing quote")


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] in _SPACE:
            pos += 1
            continue
        if text[pos] == '"':
            end = _string_end(text, pos)
            out.append(_Token("STRING", text[pos:end], pos))
            pos = end
            continue
        best: tuple[int, str] | None = None
        for kind, rx in _TOKEN_RULES:
            m = rx.match(text, pos)
            if m and m.end() > pos and (best is None or m.end() > best[0]):
                best = (m.end(), kind)
        if best is None:
            raise ConditionError(pos, f"unexpected character {text[pos]!r}")
        out.append(_Token(best[1], text[pos : best[0]], pos))
        pos = best[0]
    out.append(_Token("EOF", "", len(text)))
    return out


# --- syntax tree -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    """One parsed expression: ``kind`` is and/or/not/paren or an operator token kind."""

    kind: str
    pos: int
    children: tuple[_Node, ...] = ()
    var: str = ""
    literals: tuple[_Token, ...] = ()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self, *kinds: str) -> _Token:
        tok = self.toks[self.i]
        if tok.kind not in kinds:
            if tok.kind in _NEGATED and "VAR" in kinds:
                # ``not involvedObject.kind = "Pod"``: the lexer takes the longest token,
                # ``not in``, as kube-events' does.
                field = (
                    self.text[tok.pos + 4 :].split(None, 1)[0]
                    if len(self.text) > tok.pos + 4
                    else ""
                )
                raise ConditionError(
                    tok.pos,
                    f"{tok.text!r} is read as one operator here, as kube-events reads it; "
                    f"to negate a test of {field!r} write '!{field} ...' or 'not ({field} ...)'",
                )
            raise ConditionError(tok.pos, f"expected {_describe(kinds)}, found {_show(tok)}")
        self.i += 1
        return tok

    def parse(self) -> _Node:
        node = self.chain()
        self.take("EOF")
        return node

    def chain(self) -> _Node:
        # and/or: one level, left to right (upstream's left-recursive first alternative).
        node = self.unary()
        while self.peek().kind in ("AND", "OR"):
            op = self.take("AND", "OR")
            right = self.unary()
            node = _Node(op.kind.lower(), op.pos, (node, right))
        return node

    def unary(self) -> _Node:
        tok = self.peek()
        if tok.kind == "NOT":
            self.i += 1
            # The prefix alternative's operand may hold the whole and/or chain.
            return _Node("not", tok.pos, (self.chain(),))
        if tok.kind == "LPAREN":
            self.i += 1
            inner = self.chain()
            self.take("RPAREN")
            return _Node("paren", tok.pos, (inner,))
        var = self.take("VAR")
        op = self.peek()
        if op.kind in _COMPARE_OPS:
            self.i += 1
            if op.kind in ("EQU", "NEQ") and self.peek().kind == "BOOLEAN":
                lit = self.take("BOOLEAN")
                return _Node("BOOL" + op.kind, var.pos, var=var.text, literals=(lit,))
            lit = self.take("STRING", "NUMBER")
            return _Node(op.kind, var.pos, var=var.text, literals=(lit,))
        if op.kind in ("CONTAINS", "NOTCONTAINS"):
            self.i += 1
            lit = self.take("STRING", "NUMBER")
            return _Node(op.kind, var.pos, var=var.text, literals=(lit,))
        if op.kind in ("IN", "NOTIN"):
            self.i += 1
            self.take("LPAREN")
            lits = [self.take("NUMBER", "STRING")]
            while self.peek().kind == "COMMA":
                self.i += 1
                lits.append(self.take("NUMBER", "STRING"))
            self.take("RPAREN")
            return _Node(op.kind, var.pos, var=var.text, literals=tuple(lits))
        if op.kind in ("REGEX", "NOTREGEX", "LIKE", "NOTLIKE"):
            self.i += 1
            lit = self.take("STRING")
            return _Node(op.kind, var.pos, var=var.text, literals=(lit,))
        if op.kind in ("EXISTS", "NOTEXISTS"):
            self.i += 1
            return _Node(op.kind, var.pos, var=var.text)
        return _Node("VAR", var.pos, var=var.text)


_KIND_NAMES = {
    "LPAREN": "'('",
    "RPAREN": "')'",
    "VAR": "a field name",
    "STRING": "a string",
    "NUMBER": "a number",
    "BOOLEAN": "a boolean",
    "EOF": "the end",
}


def _describe(kinds: Sequence[str]) -> str:
    return " or ".join(_KIND_NAMES.get(k, k.lower()) for k in kinds)


def _show(tok: _Token) -> str:
    return "the end" if tok.kind == "EOF" else repr(tok.text)


def _literal(tok: _Token) -> str:
    # Upstream trims every leading and trailing quote and unescapes nothing.
    return tok.text.strip('"') if tok.kind == "STRING" else tok.text


# --- Go's value formatting and parsing --------------------------------------------------


def _go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form below 1e-4 and from 1e21."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0" if math.copysign(1, value) > 0 else "-0"
    shortest = Decimal(repr(value)).normalize()
    sign, digits, exponent = shortest.as_tuple()
    assert isinstance(exponent, int)
    power = len(digits) + exponent - 1
    if -4 <= power < 21:
        return format(shortest, "f")
    mantissa = "".join(map(str, digits)).rstrip("0") or "0"
    head = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{head}e{'-' if power < 0 else '+'}{abs(power):02d}"


def go_sprint(value: Any) -> str:
    """Go's ``fmt.Sprint`` of a decoded JSON value, as upstream compares and renders it.

    Upstream flattens numbers to float64, so a JSON integer prints as Go prints that
    float (``3``, ``1e+21``). Objects print as Go maps (sorted keys), arrays as slices.
    """
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if -(10**21) < value < 10**21 else _go_float(float(value))
    if isinstance(value, float):
        return _go_float(value)
    if value is None:
        return "<nil>"
    if isinstance(value, Mapping):
        inner = " ".join(f"{k}:{go_sprint(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
    re.IGNORECASE,
)


def _go_bool(text: str) -> bool:
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise _EvalError(f"{text!r} is not a boolean")


def _go_number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = go_sprint(value)
    # Go's ParseFloat: no spaces or underscores (Python's float() takes both).
    if _GO_FLOAT.fullmatch(text) is None:
        raise _EvalError(f"{text!r} is not a number")
    return float(text)


# --- field paths ------------------------------------------------------------------------

Getter = Callable[[Any, str], Any]


def _get_exact(obj: Any, key: str) -> Any:
    if not isinstance(obj, Mapping):
        return _MISSING
    return obj.get(key, _MISSING)


def _get_folded(obj: Any, key: str) -> Any:
    # Audit paths: ``User.Username`` finds ``user.username`` (and the other way round).
    if not isinstance(obj, Mapping):
        return _MISSING
    found = obj.get(key, _MISSING)
    if found is not _MISSING:
        return found
    low = key.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return _MISSING


def _scalar_reader(keys: tuple[str, ...], get: Getter) -> Callable[[Any], Any]:
    """A reader of a dotted path; a missing step or a null gives ``_MISSING``."""
    if get is _get_exact and len(keys) == 1:
        (k1,) = keys

        def read1(obj: Any) -> Any:
            v = obj.get(k1, _MISSING)
            return _MISSING if v is None else v

        return read1
    if get is _get_exact and len(keys) == 2:
        k1, k2 = keys

        def read2(obj: Any) -> Any:
            v = obj.get(k1, _MISSING)
            if not isinstance(v, Mapping):
                return _MISSING
            v = v.get(k2, _MISSING)
            return _MISSING if v is None else v

        return read2

    def read(obj: Any) -> Any:
        v = obj
        for k in keys:
            v = get(v, k)
            if v is _MISSING or v is None:
                return _MISSING
        return v

    return read


@dataclass(frozen=True, slots=True)
class _Step:
    key: str
    index: str | None  # "*", "2", "1:3", or None for a plain key


def _split_path(var: str) -> list[_Step]:
    steps = []
    for part in var.split("."):
        if not part:
            continue  # upstream's grammar lets a segment end in a dot: ``a.b..c``
        name, bracket, rest = part.partition("[")
        steps.append(_Step(name, rest[:-1] if bracket else None))
    return steps


def _select(spec: str, items: list[Any]) -> tuple[list[Any], bool]:
    """Upstream's ``getChildValue``: the elements chosen, and whether any one suffices."""
    if spec == "*":
        return items, True
    if ":" in spec:
        lo, _, hi = spec.partition(":")
        start = min(int(lo), len(items)) if lo else 0
        end = min(int(hi), len(items)) if hi else len(items)
        if start > end:
            raise _EvalError(f"wrong array range start {start}, end {end}")
        return items[start:end], False
    index = int(spec)
    return (items[index : index + 1] if index < len(items) else []), False


Test = Callable[[Any], bool]


def _array_test(
    steps: list[_Step], get: Getter, test: Test, if_absent: bool = False
) -> Callable[[Mapping[str, Any]], bool]:
    """``a.b[*].c[1:2].d``: the steps up to the first index find the array, then walk.

    ``if_absent`` is an element's result when it lacks the field: true only for ``not
    exists`` (upstream fails the whole walk there, so its ``not exists`` never holds).
    """
    first = next(i for i, s in enumerate(steps) if s.index is not None)
    head = _scalar_reader(tuple(s.key for s in steps[: first + 1]), get)
    spec = steps[first].index
    assert spec is not None
    rest = steps[first + 1 :]

    def walk(chosen: list[Any], any_one: bool, todo: list[_Step]) -> bool:
        result = False
        for item in chosen:
            if not todo:
                ok = if_absent if item is None else test(item)
            else:
                if not isinstance(item, Mapping):
                    raise _EvalError("the value is not a map")
                step = todo[0]
                sub = get(item, step.key)
                if sub is _MISSING or sub is None:
                    ok = if_absent
                elif step.index is not None:
                    if not isinstance(sub, list):
                        raise _EvalError(f"{step.key} is not an array")
                    inner, inner_any = _select(step.index, sub)
                    ok = bool(inner) and walk(inner, inner_any, todo[1:])
                else:
                    ok = walk([sub], True, todo[1:])
            if any_one:
                if ok:
                    return True
            elif not ok:
                return False
            else:
                result = True
        return result

    def run(obj: Mapping[str, Any]) -> bool:
        array = head(obj)
        if array is _MISSING:
            return False
        if not isinstance(array, list):
            raise _EvalError(f"{steps[first].key} is not an array")
        if not array:
            return False
        chosen, any_one = _select(spec, array)
        return bool(chosen) and walk(chosen, any_one, rest)

    return run


# --- compiling --------------------------------------------------------------------------

Predicate = Callable[[Mapping[str, Any]], bool]


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "EQU": operator.eq,
    "NEQ": operator.ne,
    "GT": operator.gt,
    "LT": operator.lt,
    "GTE": operator.ge,
    "LTE": operator.le,
}


def _value_test(node: _Node) -> Test:
    """The operator applied to one present value (missing/null was ruled out before)."""
    kind = node.kind
    if kind in _COMPARE_OPS:
        lit = node.literals[0]
        if lit.kind == "STRING":
            want = _literal(lit)
            compare_text = _ORDER[kind]
            return lambda v: compare_text(go_sprint(v), want)
        num = float(lit.text)
        compare_number = _ORDER[kind]
        return lambda v: compare_number(_go_number(v), num)
    if kind in ("BOOLEQU", "BOOLNEQ"):
        want_bool = _go_bool(node.literals[0].text)
        if kind == "BOOLEQU":
            return lambda v: _go_bool(go_sprint(v)) == want_bool
        return lambda v: _go_bool(go_sprint(v)) != want_bool
    if kind in ("CONTAINS", "NOTCONTAINS"):
        part = _literal(node.literals[0])
        if kind == "CONTAINS":
            return lambda v: part in go_sprint(v)
        return lambda v: part not in go_sprint(v)
    if kind in ("IN", "NOTIN"):
        choices = frozenset(_literal(t) for t in node.literals)
        if kind == "IN":
            return lambda v: go_sprint(v) in choices
        return lambda v: go_sprint(v) not in choices
    if kind in ("REGEX", "NOTREGEX", "LIKE", "NOTLIKE"):
        lit = node.literals[0]
        pattern = _literal(lit)
        if kind in ("LIKE", "NOTLIKE"):
            pattern = re.sub(r"\*+", "(.*)", pattern.replace("?", "."))
        try:
            rx = GoRegexp(pattern)
        except GoRegexError as err:
            raise ConditionError(lit.pos, f"bad regular expression {pattern!r}: {err}") from err
        search = rx.search
        if kind in ("REGEX", "LIKE"):
            return lambda v: search(go_sprint(v))
        return lambda v: not search(go_sprint(v))
    if kind in ("EXISTS", "NOTEXISTS"):
        # Reached only for array elements: the element is there.
        return (lambda v: True) if kind == "EXISTS" else (lambda v: False)
    if kind == "VAR":
        return lambda v: _go_bool(go_sprint(v))
    raise AssertionError(kind)


def _leaf(node: _Node, get: Getter) -> Predicate:
    steps = _split_path(node.var)
    test = _value_test(node)
    if any(s.index is not None for s in steps):
        if node.var.endswith("]") and node.kind not in ("CONTAINS", "NOTCONTAINS"):
            raise ConditionError(
                node.pos,
                f"{node.var}: an array element itself can only be tested with "
                "contains or not contains (name a field of it, like a[*].name)",
            )
        if node.kind == "VAR":
            raise ConditionError(
                node.pos, f"{node.var}: an array path needs an operator (upstream never matches it)"
            )
        for s in steps:
            if s.index and ":" in s.index:
                lo, _, hi = s.index.partition(":")
                if lo and hi and int(lo) > int(hi):
                    raise ConditionError(node.pos, f"slice [{s.index}] starts after its end")
        return _array_test(steps, get, test, node.kind == "NOTEXISTS")
    read = _scalar_reader(tuple(s.key for s in steps), get)
    if node.kind in ("EXISTS", "NOTEXISTS"):
        # A present, non-null value (an object counts: upstream's "any VAR.* key").
        if node.kind == "EXISTS":
            return lambda obj: read(obj) is not _MISSING
        return lambda obj: read(obj) is _MISSING

    def leaf(obj: Mapping[str, Any]) -> bool:
        v = read(obj)
        return v is not _MISSING and test(v)

    return leaf


def _chain(node: _Node) -> tuple[_Node, list[tuple[str, _Node]]]:
    """A left-deep and/or chain as its first operand and (operator, operand) pairs.

    Walked without recursion: a rule may join thousands of tests with ``or``.
    """
    links: list[tuple[str, _Node]] = []
    while node.kind in ("and", "or"):
        links.append((node.kind, node.children[1]))
        node = node.children[0]
    links.reverse()
    return node, links


def _build(node: _Node, get: Getter) -> Predicate:
    if node.kind == "paren":
        return _build(node.children[0], get)
    if node.kind == "not":
        inner = _build(node.children[0], get)
        return lambda obj: not inner(obj)
    if node.kind in ("and", "or"):
        first, links = _chain(node)
        if len(links) == 1:
            left, right = _build(first, get), _build(links[0][1], get)
            if links[0][0] == "and":
                return lambda obj: left(obj) and right(obj)
            return lambda obj: left(obj) or right(obj)
        head = _build(first, get)
        steps = [(op == "and", _build(operand, get)) for op, operand in links]

        def chain(obj: Mapping[str, Any]) -> bool:
            # Left to right, one precedence: each operator applies to the result so far.
            result = head(obj)
            for is_and, test in steps:
                if result == is_and:  # true before "and", false before "or": it decides
                    result = test(obj)
            return result

        return chain
    return _leaf(node, get)


def _equalities(node: _Node) -> dict[str, frozenset[str]]:
    """Fields whose Go text must be one of a set of strings for ``node`` to hold."""
    if node.kind == "paren":
        return _equalities(node.children[0])
    if node.kind in ("and", "or"):
        first, links = _chain(node)
        merged = _equalities(first)
        for op, operand in links:
            right = _equalities(operand)
            if op == "and":
                for path, values in right.items():
                    merged[path] = merged[path] & values if path in merged else values
            else:
                merged = {p: merged[p] | right[p] for p in merged.keys() & right.keys()}
        return merged
    if node.kind not in ("EQU", "IN") or "[" in node.var:
        return {}
    path = ".".join(s for s in node.var.split(".") if s)
    if node.kind == "EQU" and node.literals[0].kind == "STRING":
        return {path: frozenset({_literal(node.literals[0])})}
    if node.kind == "IN" and all(t.kind == "STRING" for t in node.literals):
        return {path: frozenset(_literal(t) for t in node.literals)}
    return {}


@dataclass(frozen=True, slots=True, eq=False)
class Condition:
    """A compiled condition: call it with a decoded JSON object.

    ``equalities`` maps a dotted field path to the strings its Go text must be one of for
    the condition to hold (from ``=``/``in`` with string literals reachable through
    ``and``/``or``), which ``EventRuleSet`` indexes on.
    """

    text: str
    case_insensitive_paths: bool
    equalities: Mapping[str, frozenset[str]] = field(repr=False)
    _predicate: Predicate = field(repr=False)

    def __call__(self, obj: Mapping[str, Any]) -> bool:
        try:
            return self._predicate(obj)
        except _EvalError:
            return False
        except RecursionError:
            return False

    def explain(self, obj: Mapping[str, Any]) -> str | None:
        """Why evaluating ``obj`` failed with an error (upstream's panic), if it did."""
        try:
            self._predicate(obj)
        except _EvalError as err:
            return str(err)
        return None


#: Upstream's ANTLR parser recurses per nesting level; so does ours. Deeper input is
#: refused before it can exhaust the interpreter's stack.
MAX_DEPTH = 100


def _depth(tokens: Iterator[_Token]) -> int:
    """How deep the parser will recurse: parentheses, and each ``not`` up to the ``)``."""
    nots = [0]  # per open parenthesis: the nots inside it, each nesting what follows
    depth = deepest = 0
    for tok in tokens:
        if tok.kind == "LPAREN":
            nots.append(0)
            depth += 1
        elif tok.kind == "NOT":
            nots[-1] += 1
            depth += 1
        elif tok.kind == "RPAREN" and len(nots) > 1:
            depth -= nots.pop() + 1
        deepest = max(deepest, depth)
    return deepest


def _parse(text: str) -> _Node:
    parser = _Parser(text)
    if _depth(iter(parser.toks)) > MAX_DEPTH:
        raise ConditionError(0, f"nested more than {MAX_DEPTH} levels deep")
    if parser.toks[0].kind == "EOF":
        raise ConditionError(0, "the condition is empty")
    return parser.parse()


def compile_condition(text: str, *, case_insensitive_paths: bool = False) -> Condition:
    """Compile ``text`` once into closures; raises ``ConditionError`` naming the position."""
    tree = _parse(text)
    get = _get_folded if case_insensitive_paths else _get_exact
    return Condition(
        text=text,
        case_insensitive_paths=case_insensitive_paths,
        equalities=_equalities(tree),
        _predicate=_build(tree, get),
    )


def mixed_and_or(text: str) -> list[int]:
    """Positions of each and/or chain that mixes the two without parentheses.

    Each position is the first operator that differs from the one before it in the same
    chain: where a reader expecting ``and`` to bind tighter would be surprised.
    """
    found: list[int] = []

    def visit(node: _Node) -> None:
        if node.kind in ("and", "or"):
            chain: list[_Node] = []
            cur = node
            while cur.kind in ("and", "or"):
                chain.append(cur)
                cur = cur.children[0]
            chain.reverse()  # leftmost operator first
            for prev, nxt in itertools.pairwise(chain):
                if prev.kind != nxt.kind:
                    found.append(nxt.pos)
                    break
            visit(cur)
            for link in chain:
                visit(link.children[1])
        else:
            for child in node.children:
                visit(child)

    visit(_parse(text))
    return sorted(found)
