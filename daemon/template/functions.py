"""Template functions: Go's built-ins and Alertmanager's additions.

Functions are plain Python callables. They raise :class:`FunctionError` (or any
``ValueError``/``TypeError``) to fail, and the executor reports ``error calling <name>: …``.
``and``/``or`` are listed here for the parser but the executor evaluates them lazily,
as Go 1.18+ does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from daemon.gocompat.regexp import GoRegexError, GoRegexp, compile_go
from daemon.template import titlecase
from daemon.template.errors import FunctionError
from daemon.template.gofmt import go_type_name, sprint, sprintf, sprintln
from daemon.template.gotime import GoDuration, GoTime, as_time, load_zone


class SafeHTML(str):
    """A string that html templates insert without escaping (Go's ``template.HTML``)."""

    __slots__ = ()


class NoValue:
    """Go's invalid ``reflect.Value``; prints as ``<no value>``."""

    _instance: NoValue | None = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = NoValue()


def _basic_kind(v: object) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    return None


def _eq2(a: object, b: object) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka is None or kb is None:
        if a is None or b is None or a is NO_VALUE or b is NO_VALUE:
            return (a is None or a is NO_VALUE) and (b is None or b is NO_VALUE)
        if ka != kb:
            raise FunctionError("incompatible types for comparison")
        try:
            return bool(a == b)
        except Exception:
            raise FunctionError("non-comparable types") from None
    if ka != kb:
        raise FunctionError("incompatible types for comparison")
    return bool(a == b)


def go_eq(arg1: object, *args: object) -> bool:
    """``eq a b c…``: whether ``a`` equals any of the others."""
    if arg1 is NO_VALUE or arg1 is None:
        if not args:
            raise FunctionError("missing argument for comparison")
    if not args:
        raise FunctionError("missing argument for comparison")
    return any(_eq2(arg1, b) for b in args)


def go_ne(a: object, b: object) -> bool:
    return not _eq2(a, b)


def _order(a: object, b: object) -> int:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka is None or kb is None or ka in ("bool", "complex") or kb in ("bool", "complex"):
        raise FunctionError("invalid type for comparison")
    if ka != kb:
        raise FunctionError("incompatible types for comparison")
    assert isinstance(a, int | float | str) and isinstance(b, int | float | str)
    if isinstance(a, str) and isinstance(b, str):
        ea, eb = a.encode(), b.encode()
        return (ea > eb) - (ea < eb)
    return (a > b) - (a < b)  # type: ignore[operator]


def go_lt(a: object, b: object) -> bool:
    return _order(a, b) < 0


def go_le(a: object, b: object) -> bool:
    return _order(a, b) <= 0


def go_gt(a: object, b: object) -> bool:
    return _order(a, b) > 0


def go_ge(a: object, b: object) -> bool:
    return _order(a, b) >= 0


def go_not(a: object) -> bool:
    return not is_true(a)


def is_true(v: object) -> bool:
    """Go's truth: zero values, nil and empty collections are false."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float | complex):
        return v != 0
    if isinstance(v, str | bytes | list | tuple | Mapping):
        return len(v) > 0
    return True


def go_len(v: object) -> int:
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, list | tuple | Mapping | bytes):
        return len(v)
    if v is None or v is NO_VALUE:
        raise FunctionError("len of nil pointer")
    raise FunctionError(f"len of type {go_type_name(v)}")


def _index_of(i: object, cap: int) -> int:
    if not isinstance(i, int) or isinstance(i, bool):
        raise FunctionError(f"cannot index slice/array with type {go_type_name(i)}")
    if i < 0 or i >= cap:
        raise FunctionError(f"index out of range: {i}")
    return i


def go_index(item: object, *indexes: object) -> object:
    """``index x 1 2``: nested indexing of slices, strings and maps."""
    if item is None or item is NO_VALUE:
        raise FunctionError("index of untyped nil")
    for ix in indexes:
        if isinstance(item, str):
            item = item.encode()[_index_of(ix, len(item.encode()))]
        elif isinstance(item, list | tuple | bytes):
            item = item[_index_of(ix, len(item))]
        elif isinstance(item, Mapping):
            if ix in item:
                item = item[ix]
            else:
                # missingkey=zero: string maps give "".
                item = ""
        elif item is None:
            raise FunctionError("index of nil pointer")
        else:
            raise FunctionError(f"can't index item of type {go_type_name(item)}")
    return item


def go_slice(item: object, *indexes: object) -> object:
    if item is None or item is NO_VALUE:
        raise FunctionError("slice of untyped nil")
    if len(indexes) > 3:
        raise FunctionError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FunctionError("cannot 3-index slice a string")
        data = item.encode()
    elif isinstance(item, list | tuple):
        data = item  # type: ignore[assignment]
    else:
        raise FunctionError(f"can't slice item of type {go_type_name(item)}")
    cap = len(data)
    idx = [0, len(data)]
    for i, x in enumerate(indexes):
        idx_v = x
        if not isinstance(idx_v, int) or idx_v < 0 or idx_v > cap:
            raise FunctionError(f"index out of range: {idx_v}")
        if i < 2:
            idx[i] = idx_v
    if idx[0] > idx[1]:
        raise FunctionError(f"invalid slice index: {idx[0]} > {idx[1]}")
    part = data[idx[0] : idx[1]]
    if isinstance(part, bytes):
        return part.decode("utf-8", "replace")
    return list(part)


def eval_args(args: Sequence[object]) -> str:
    """Go's evalArgs: one string as it is, else the operands printed by fmt.Sprint."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(args)


_HTML_TEXT = {
    "\0": "\ufffd",
    '"': "&#34;",
    "'": "&#39;",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
}


def html_escape_string(s: str) -> str:
    """Go's ``template.HTMLEscapeString``."""
    return "".join(_HTML_TEXT.get(c, c) for c in s)


def go_html(*args: object) -> str:
    return html_escape_string(eval_args(args))


def js_escape_string(s: str) -> str:
    """Go's ``template.JSEscapeString``."""
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == "'":
            out.append("\\'")
        elif c == '"':
            out.append('\\"')
        elif c in "<>&=":
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) < 0x20 or (ord(c) >= 0x80 and not c.isprintable()):
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def go_js(*args: object) -> str:
    return js_escape_string(eval_args(args))


_QUERY_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def query_escape(s: str) -> str:
    """Go's ``url.QueryEscape``."""
    out = []
    for b in s.encode("utf-8", "surrogatepass"):
        if b in _QUERY_SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def go_urlquery(*args: object) -> str:
    return query_escape(eval_args(args))


def go_print(*args: object) -> str:
    return sprint(args)


def go_printf(fmt: str, *args: object) -> str:
    return sprintf(fmt, args)


def go_println(*args: object) -> str:
    return sprintln(args)


def go_call(fn: object, *args: object) -> object:
    if fn is None or fn is NO_VALUE:
        raise FunctionError("call of nil")
    if not callable(fn):
        raise FunctionError(f"non-function of type {go_type_name(fn)}")
    return fn(*args)


def _not_lazy(*args: object) -> object:  # pragma: no cover - replaced by the executor
    raise AssertionError("and/or are evaluated by the executor")


# -- Alertmanager's functions -----------------------------------------------------------


# Go's strings.ToUpper/ToLower map rune by rune with unicode.ToUpper/ToLower: Unicode's
# *simple* case mappings, of Unicode 13.0 in Go 1.19. Python only exposes the full
# mappings (str.upper/lower), which differ exactly where the full mapping is more than
# one rune: there the simple mapping is the single-rune titlecase (U+1F80..U+1FFC take
# their prosgegrammeni form), 'i' for U+0130, or the rune itself ('ß', 'ﬁ', 'ŉ', ...).
# Python 3.11's tables are Unicode 14.0, whose new case pairs Go 1.19 does not know.
# An exhaustive run over every code point against amtool 0.25 (go1.19) pins all this
# (tests/template/test_go_outputs.py).
_UNICODE_14_CASED = titlecase.UNICODE_14_CASED


@functools.lru_cache(maxsize=4096)
def _upper_rune(c: str) -> str:
    if ord(c) in _UNICODE_14_CASED:
        return c
    u = c.upper()
    if len(u) == 1:
        return u
    t = c.title()
    return t if len(t) == 1 else c


@functools.lru_cache(maxsize=4096)
def _lower_rune(c: str) -> str:
    if ord(c) in _UNICODE_14_CASED:
        return c
    u = c.lower()
    if len(u) == 1:
        return u
    return "i" if c == "\u0130" else c


def to_upper(s: str) -> str:
    s = _need_str(s, "toUpper")
    if s.isascii():
        return s.upper()
    return "".join(_upper_rune(c) for c in s)


def to_lower(s: str) -> str:
    s = _need_str(s, "toLower")
    if s.isascii():
        return s.lower()
    return "".join(_lower_rune(c) for c in s)


def title(s: str) -> str:
    """``cases.Title(language.AmericanEnglish)`` (see :mod:`daemon.template.titlecase`)."""
    return titlecase.title(_need_str(s, "title"))


def _need_str(v: object, name: str) -> str:
    if isinstance(v, str):
        return v
    raise FunctionError(f"wrong type for value; expected string; got {go_type_name(v)}")


def join(sep: str, items: Sequence[str]) -> str:
    """Alertmanager's ``join sep list`` (separator first, for pipelines)."""
    _need_str(sep, "join")
    if isinstance(items, str) or not isinstance(items, list | tuple):
        raise FunctionError(f"wrong type for value; expected []string; got {go_type_name(items)}")
    for x in items:
        if not isinstance(x, str):
            raise FunctionError(
                f"wrong type for value; expected []string; got {go_type_name(items)}"
            )
    return sep.join(items)


def compile_go_regexp(pattern: str) -> GoRegexp:
    """Go's RE2 ``pattern``, compiled once (cached there)."""
    try:
        return compile_go(pattern)
    except GoRegexError as e:
        raise FunctionError(str(e)) from None


def match(pattern: str, text: str) -> bool:
    """``regexp.MatchString``: unanchored search."""
    return compile_go_regexp(_need_str(pattern, "match")).search(_need_str(text, "match"))


def re_replace_all(pattern: str, repl: str, text: str) -> str:
    """``regexp.ReplaceAllString``: ``$1``, ``${1}``, ``$name`` expand; ``$$`` is ``$``."""
    rx = compile_go_regexp(_need_str(pattern, "reReplaceAll"))
    return rx.replace_all(_need_str(text, "reReplaceAll"), _need_str(repl, "reReplaceAll"))


def safe_html(text: str) -> SafeHTML:
    return SafeHTML(_need_str(text, "safeHtml"))


def string_slice(*items: str) -> list[str]:
    return list(items)


_GO_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def trim_space(s: str) -> str:
    return _need_str(s, "trimSpace").strip(_GO_SPACE)


def date(layout: str, t: object) -> str:
    """``date layout t`` (Alertmanager 0.28): format with a Go layout."""
    try:
        return as_time(t).Format(_need_str(layout, "date"))
    except TypeError as e:
        raise FunctionError(str(e)) from None


def tz(name: str, t: object) -> GoTime:
    """``tz name t`` (Alertmanager 0.28): the same instant in an IANA zone."""
    try:
        zone = load_zone(_need_str(name, "tz"))
        return GoTime(as_time(t).ns, zone)
    except (TypeError, ValueError) as e:
        raise FunctionError(str(e)) from None


def _to_float(v: object) -> float:
    if isinstance(v, GoDuration):
        return v.ns / 1e9
    if isinstance(v, bool):
        raise FunctionError(f"can't convert {go_type_name(v)} to float")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise FunctionError(f'strconv.ParseFloat: parsing "{v}": invalid syntax') from None
    raise FunctionError(f"can't convert {go_type_name(v)} to float")


def humanize_duration(v: object) -> str:
    """Prometheus' ``humanizeDuration`` (Alertmanager 0.28)."""
    f = _to_float(v)
    if f != f or f in (float("inf"), float("-inf")):
        return sprintf("%.4g", [f])
    if f == 0:
        return "0s"
    if abs(f) >= 1:
        sign = "-" if f < 0 else ""
        f = abs(f)
        d = int(f)
        seconds, minutes, hours, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return sign + sprintf("%.4gs", [f])
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(f) >= 1:
            break
        prefix = p
        f *= 1000
    return sprintf("%.4g", [f]) + prefix + "s"


def make_since(now_ns: Callable[[], int]) -> Callable[[object], GoDuration]:
    """``since t`` bound to a clock, so execution stays a pure function of ``now``."""

    def since(t: object) -> GoDuration:
        try:
            return GoDuration(now_ns() - as_time(t).ns)
        except TypeError as e:
            raise FunctionError(str(e)) from None

    return since


BUILTINS: dict[str, Callable[..., Any]] = {
    "and": _not_lazy,
    "or": _not_lazy,
    "not": go_not,
    "eq": go_eq,
    "ne": go_ne,
    "lt": go_lt,
    "le": go_le,
    "gt": go_gt,
    "ge": go_ge,
    "len": go_len,
    "index": go_index,
    "slice": go_slice,
    "print": go_print,
    "printf": go_printf,
    "println": go_println,
    "html": go_html,
    "js": go_js,
    "urlquery": go_urlquery,
    "call": go_call,
}

ALERTMANAGER_FUNCS: dict[str, Callable[..., Any]] = {
    "toUpper": to_upper,
    "toLower": to_lower,
    "title": title,
    "join": join,
    "match": match,
    "reReplaceAll": re_replace_all,
    "safeHtml": safe_html,
    "stringSlice": string_slice,
    "trimSpace": trim_space,
    "date": date,
    "tz": tz,
    "humanizeDuration": humanize_duration,
}
