"""html/template's contextual autoescaping, done while the output is written.

Go decides each action's escapers statically from the context (:mod:`htmlcontext`)
that the literal text before it leaves, and rewrites that text. For a template whose
context at each action does not depend on the data (Go refuses the others), following
the context through the text as it is written picks the same escapers, so
:class:`HtmlSink` does that:

* literal text goes through :func:`htmlcontext.escape_text` (comments dropped, stray
  ``<`` escaped) and moves the context;
* a value gets Go's escaper chain for the (nudged) context: ``htmlescaper`` in text,
  ``attrescaper`` or ``nospaceescaper`` in attribute values, ``urlfilter`` +
  ``urlnormalizer``/``urlescaper`` in URLs, ``jsvalescaper`` (Go's JSON) in JS code,
  ``jsstrescaper``/``jsregexpescaper`` in JS strings and regexps, ``cssvaluefilter`` and
  ``cssescaper`` in CSS, ``htmlnamefilter`` where an attribute name goes, nothing in a
  comment; an action in a JS template literal is an error, as in Go 1.19.8;
* a pipeline ending in ``html``/``urlquery`` has that escaper merged with the chain as
  Go does (it replaces an equivalent escaper, or runs before the chain);
* a template that ends in a non-text context is an error.

Go also refuses some templates as a whole before running them (branches that end in
different contexts, errors in untaken branches): :mod:`htmlcheck` does that pass first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import attrs

from daemon.gocompat.jsonstring import json_string
from daemon.template.execute import printable
from daemon.template.functions import NO_VALUE, SafeHTML, go_html, go_urlquery
from daemon.template.gofmt import format_float
from daemon.template.gotime import GoTime, format_layout
from daemon.template.htmlcontext import (
    TEXT,
    Context,
    Delim,
    EscapeError,
    JsCtx,
    State,
    UrlPart,
    attr_type,
    decode_css,
    escape_text,
    is_css_nmchar,
    is_js_ident_part,
    nudge,
    strip_tags,
)

FILTERED = "ZgotmplZ"

# -- stringify: what an escaper sees of its argument ------------------------------------


def _stringify(v: object) -> tuple[str, bool]:
    """The text of ``v`` and whether it is typed HTML (Go's ``template.HTML``)."""
    if isinstance(v, SafeHTML):
        return str(v), True
    if isinstance(v, str):
        return v, False
    # Untyped nil is skipped by Go's stringify, so it prints as nothing.
    if v is NO_VALUE:
        return "", False
    return printable(v), False


# -- HTML ---------------------------------------------------------------------------

_HTML_TABLE = {
    "\0": "\ufffd",
    '"': "&#34;",
    "&": "&amp;",
    "'": "&#39;",
    "+": "&#43;",
    "<": "&lt;",
    ">": "&gt;",
}
_HTML_NORM_TABLE = {k: v for k, v in _HTML_TABLE.items() if k != "&"}
_NOSPACE_TABLE = {
    **_HTML_TABLE,
    "\0": "&#xfffd;",
    "\t": "&#9;",
    "\n": "&#10;",
    "\v": "&#11;",
    "\f": "&#12;",
    "\r": "&#13;",
    " ": "&#32;",
    "=": "&#61;",
    "`": "&#96;",
}
_NOSPACE_NORM_TABLE = {k: v for k, v in _NOSPACE_TABLE.items() if k != "&"}


def _html_replace(s: str, table: Mapping[str, str], bad_runes: bool) -> str:
    out = []
    for c in s:
        r = table.get(c)
        if r is not None:
            out.append(r)
        elif not bad_runes and (0xFDD0 <= ord(c) <= 0xFDEF or 0xFFF0 <= ord(c) <= 0xFFFF):
            out.append(f"&#x{ord(c):x};")
        else:
            out.append(c)
    return "".join(out)


def html_escaper(v: object) -> str:
    s, is_html = _stringify(v)
    return s if is_html else _html_replace(s, _HTML_TABLE, True)


def html_escape(s: str) -> str:
    return _html_replace(s, _HTML_TABLE, True)


def rcdata_escaper(v: object) -> str:
    s, is_html = _stringify(v)
    return _html_replace(s, _HTML_NORM_TABLE if is_html else _HTML_TABLE, True)


def attr_escaper(v: object) -> str:
    s, is_html = _stringify(v)
    if is_html:
        return _html_replace(strip_tags(s), _HTML_NORM_TABLE, True)
    return _html_replace(s, _HTML_TABLE, True)


def nospace_escaper(v: object) -> str:
    s, is_html = _stringify(v)
    if is_html:
        return _html_replace(strip_tags(s), _NOSPACE_NORM_TABLE, False)
    return _html_replace(s, _NOSPACE_TABLE, False)


def html_name_filter(v: object) -> str:
    s, _ = _stringify(v)
    if not s:
        return FILTERED
    s = s.lower()
    if attr_type(s) != "plain":
        return FILTERED
    if not all(c.isascii() and (c.isdigit() or c.islower()) for c in s):
        return FILTERED
    return s


def comment_escaper(v: object) -> str:
    return ""


# -- URLs ---------------------------------------------------------------------------

_URL_RESERVED = frozenset(b"!#$&*+,/:;=?@[]")
_URL_UNRESERVED = frozenset(b"-._~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def is_safe_url(s: str) -> bool:
    protocol, colon, _ = s.partition(":")
    if colon and "/" not in protocol:
        return protocol.casefold() in ("http", "https", "mailto")
    return True


def url_filter(v: object) -> str:
    s, _ = _stringify(v)
    return s if is_safe_url(s) else "#" + FILTERED


def process_url(s: str, norm: bool) -> str:
    """Percent-encode ``s`` (UTF-8, lower-case hex); ``norm`` keeps reserved characters."""
    b = s.encode("utf-8", "surrogatepass")
    out = bytearray()
    for i, c in enumerate(b):
        if c in _URL_UNRESERVED or (norm and c in _URL_RESERVED):
            out.append(c)
        elif c == 0x25 and norm and i + 2 < len(b) and b[i + 1] in _HEX and b[i + 2] in _HEX:
            out.append(c)  # an existing valid escape is kept
        else:
            out += f"%{c:02x}".encode()
    return out.decode("utf-8", "surrogatepass")


def url_normalizer(v: object) -> str:
    return process_url(_stringify(v)[0], True)


def url_escaper(v: object) -> str:
    return process_url(_stringify(v)[0], False)


def _filter_srcset_element(s: str, left: int, right: int, out: list[str]) -> None:
    start = left
    while start < right and s[start] in " \t\n\f\r":
        start += 1
    end = right
    for i in range(start, right):
        if s[i] in " \t\n\f\r":
            end = i
            break
    url = s[start:end]
    if is_safe_url(url) and all(
        c in " \t\n\f\r" or (c.isascii() and c.isalnum()) for c in s[end:right]
    ):
        out.append(s[left:start] + process_url(url, True) + s[end:right])
        return
    out.append("#" + FILTERED)


def srcset_escaper(v: object) -> str:
    s, _ = _stringify(v)
    out: list[str] = []
    written = 0
    for i, c in enumerate(s):
        if c == ",":
            _filter_srcset_element(s, written, i, out)
            out.append(",")
            written = i + 1
    _filter_srcset_element(s, written, len(s), out)
    return "".join(out)


# -- JS -----------------------------------------------------------------------------


def _json_float(f: float) -> str:
    # encoding/json: the shortest 'f' form, or 'e' outside [1e-6, 1e21) with "e-07"
    # shortened to "e-7".
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        b = format_float(f, "e")
        if len(b) >= 4 and b[-4] == "e" and b[-3] == "-" and b[-2] == "0":
            b = b[:-2] + b[-1]
        return b
    return format_float(f, "f")


def go_json(v: object) -> str:
    """``encoding/json.Marshal`` of a template value (Go's HTML-safe output)."""
    if v is None or v is NO_VALUE:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, GoTime):
        return '"' + format_layout(v, "2006-01-02T15:04:05.999999999Z07:00") + '"'
    go_time = getattr(v, "go_time", None)
    if callable(go_time):
        t = go_time()
        if isinstance(t, GoTime):
            return go_json(t)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError(f"json: unsupported value: {printable(v)}")
        return _json_float(v)
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, Mapping):
        keys = sorted(str(k) for k in v)
        return "{" + ",".join(f"{go_json(k)}:{go_json(v[k])}" for k in keys) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    if attrs.has(type(v)):
        fields = attrs.fields(type(v))  # type: ignore[arg-type]
        names = _JSON_NAMES.get(type(v).__name__, {})
        return (
            "{"
            + ",".join(
                f"{go_json(names.get(a.name, a.name))}:{go_json(getattr(v, a.name))}"
                for a in fields
            )
            + "}"
        )
    return go_json(printable(v))


# Alertmanager's template.Data and template.Alert carry json tags; Pair has none.
_JSON_NAMES: dict[str, dict[str, str]] = {
    "TemplateData": {
        "Receiver": "receiver",
        "Status": "status",
        "Alerts": "alerts",
        "GroupLabels": "groupLabels",
        "CommonLabels": "commonLabels",
        "CommonAnnotations": "commonAnnotations",
        "ExternalURL": "externalURL",
    },
    "Alert": {
        "Status": "status",
        "Labels": "labels",
        "Annotations": "annotations",
        "StartsAt": "startsAt",
        "EndsAt": "endsAt",
        "GeneratorURL": "generatorURL",
        "Fingerprint": "fingerprint",
    },
}


def js_val_escaper(v: object) -> str:
    # A fmt.Stringer that is no json.Marshaler (time.Duration) is written as its String();
    # times marshal themselves.
    string_method = getattr(v, "String", None)
    if callable(string_method) and not isinstance(v, GoTime) and not hasattr(v, "go_time"):
        v = string_method()
    try:
        b = go_json(v)
    except ValueError as e:
        # A comment then null, spaced so that "x/{{.}}" cannot become a line comment.
        return " /* " + str(e).replace("*/", "* /") + " */null "
    pad = is_js_ident_part(b[0]) or is_js_ident_part(b[-1])
    return f" {b} " if pad else b


_JS_STR_TABLE = {
    "\0": "\\u0000",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\u000b",
    "\f": "\\f",
    "\r": "\\r",
    '"': "\\u0022",
    "&": "\\u0026",
    "'": "\\u0027",
    "`": "\\u0060",
    "+": "\\u002b",
    "/": "\\/",
    "<": "\\u003c",
    ">": "\\u003e",
    "\\": "\\\\",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JS_REGEXP_TABLE = {
    **_JS_STR_TABLE,
    "$": "\\$",
    "(": "\\(",
    ")": "\\)",
    "*": "\\*",
    "-": "\\-",
    ".": "\\.",
    "?": "\\?",
    "[": "\\[",
    "]": "\\]",
    "^": "\\^",
    "{": "\\{",
    "|": "\\|",
    "}": "\\}",
}


def js_str_escaper(v: object) -> str:
    return "".join(_JS_STR_TABLE.get(c, c) for c in _stringify(v)[0])


def js_regexp_escaper(v: object) -> str:
    s = "".join(_JS_REGEXP_TABLE.get(c, c) for c in _stringify(v)[0])
    # An empty regexp would make "//" a line comment.
    return s or "(?:)"


# -- CSS ----------------------------------------------------------------------------

_CSS_TABLE = {
    "\0": "\\0",
    "\t": "\\9",
    "\n": "\\a",
    "\f": "\\c",
    "\r": "\\d",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "(": "\\28",
    ")": "\\29",
    "+": "\\2b",
    "/": "\\2f",
    ":": "\\3a",
    ";": "\\3b",
    "<": "\\3c",
    ">": "\\3e",
    "\\": "\\\\",
    "{": "\\7b",
    "}": "\\7d",
}


def css_escaper(v: object) -> str:
    s, _ = _stringify(v)
    out = []
    for i, c in enumerate(s):
        r = _CSS_TABLE.get(c)
        if r is None:
            out.append(c)
            continue
        out.append(r)
        # A hex escape must not run into a following hex digit or space.
        if r != "\\\\" and (i + 1 == len(s) or s[i + 1] in "0123456789abcdefABCDEF \t\n\f\r"):
            out.append(" ")
    return "".join(out)


def css_value_filter(v: object) -> str:
    s, _ = _stringify(v)
    b = decode_css(s)
    ident = []
    for i, c in enumerate(b):
        if c in "\0\"'()/;@[\\]`{}":
            return FILTERED
        if c == "-":
            if i != 0 and b[i - 1] == "-":
                return FILTERED
        elif c.isascii() and is_css_nmchar(c):
            ident.append(c)
    word = "".join(ident).lower()
    if "expression" in word or "mozbinding" in word:
        return FILTERED
    return b


# -- choosing the chain ---------------------------------------------------------------

Escaper = Callable[[object], str]

_URL_STATES = frozenset(
    {
        State.URL,
        State.CSS_DQ_STR,
        State.CSS_SQ_STR,
        State.CSS_DQ_URL,
        State.CSS_SQ_URL,
        State.CSS_URL,
    }
)
_SIMPLE: dict[State, tuple[str, Escaper]] = {
    State.JS_DQ_STR: ("jsstr", js_str_escaper),
    State.JS_SQ_STR: ("jsstr", js_str_escaper),
    State.JS_REGEXP: ("jsregexp", js_regexp_escaper),
    State.CSS: ("cssvalue", css_value_filter),
    State.TEXT: ("htmlescaper", html_escaper),
    State.RCDATA: ("rcdata", rcdata_escaper),
    State.SRCSET: ("srcset", srcset_escaper),
}
# Which of our escapers a trailing predefined escaper may stand in for (Go's
# equivEscapers): the html ones for "html", the URL ones for "urlquery".
_EQUIVALENT = {
    "htmlescaper": "html",
    "rcdata": "html",
    "attr": "html",
    "urlescaper": "urlquery",
    "urlnormalizer": "urlquery",
}
_PREDEFINED: dict[str, Callable[..., str]] = {"html": go_html, "urlquery": go_urlquery}


@functools.lru_cache(maxsize=256)
def escapers(c: Context) -> tuple[Context, tuple[tuple[str, Escaper], ...]]:
    """The escapers of an action in context ``c``, and the context after it."""
    c = nudge(c)
    chain: list[tuple[str, Escaper]] = []
    st = c.state
    if st in _URL_STATES:
        if c.url_part == UrlPart.UNKNOWN:
            raise EscapeError("{action} appears in an ambiguous context within a URL")
        if c.url_part == UrlPart.NONE:
            chain.append(("urlfilter", url_filter))
        if c.url_part in (UrlPart.NONE, UrlPart.PRE_QUERY):
            if st in (State.CSS_DQ_STR, State.CSS_SQ_STR):
                chain.append(("css", css_escaper))
            else:
                chain.append(("urlnormalizer", url_normalizer))
        else:
            chain.append(("urlescaper", url_escaper))
    elif st == State.JS:
        chain.append(("jsval", js_val_escaper))
        c = attrs.evolve(c, js_ctx=JsCtx.DIV_OP)
    elif st == State.JS_BQ_STR:
        raise EscapeError("{action} appears in a JS template literal")
    elif st in _SIMPLE:
        chain.append(_SIMPLE[st])
    elif st == State.ATTR_NAME:
        chain.append(("htmlname", html_name_filter))
    elif st == State.ATTR:
        pass
    elif st in (
        State.HTML_CMT,
        State.JS_BLOCK_CMT,
        State.JS_LINE_CMT,
        State.CSS_BLOCK_CMT,
        State.CSS_LINE_CMT,
    ):
        chain.append(("comment", comment_escaper))
    else:  # pragma: no cover - every state is listed above
        raise AssertionError(f"unexpected state {st}")
    if c.delim == Delim.SPACE_OR_TAG_END:
        chain.append(("nospace", nospace_escaper))
    elif c.delim != Delim.NONE:
        chain.append(("attr", attr_escaper))
    return c, tuple(chain)


class HtmlSink:
    """Output of an html template: literal text moves the context, values are escaped."""

    contextual = True

    def __init__(self, after: Mapping[tuple[int, Context], Context] | None = None) -> None:
        self.parts: list[str] = []
        self.context = TEXT
        # Go's context after each branch and template call, by (id(node), context before),
        # from the static pass: Go escapes what follows from the joined context of all
        # branches, not from the one that ran.
        self.after = after or {}

    def enter(self) -> object:
        return self.context

    def restart(self, token: object) -> None:
        # Go escapes a range body once, from the context before the range.
        if isinstance(token, Context):
            self.context = token

    def leave(self, node: object, token: object) -> None:
        if isinstance(token, Context):
            self.context = self.after.get((id(node), token), self.context)

    def result(self) -> str:
        if self.context.state != State.TEXT:
            raise EscapeError(f"ends in a non-text context: {self.context}")
        return "".join(self.parts)

    def text(self, s: str) -> None:
        self.context, out = escape_text(self.context, s)
        self.parts.append(out)

    def value(
        self,
        v: object,
        escaper: str | None = None,
        finish: Callable[[], object] | None = None,
    ) -> None:
        """Write value ``v``; ``escaper`` names a trailing ``html``/``urlquery`` that was
        not yet applied to ``v``, and ``finish()`` applies it as the pipeline would."""
        self.context, fixed = escapers(self.context)
        chain = list(fixed)
        if escaper is not None:
            if escaper == "html" and (
                self.context.state == State.ATTR and self.context.delim == Delim.SPACE_OR_TAG_END
            ):
                raise EscapeError('predefined escaper "html" disallowed in template')
            merged = False
            for i, (name, _) in enumerate(chain):
                if _EQUIVALENT.get(name) == escaper:
                    chain[i] = (escaper, _PREDEFINED[escaper])
                    merged = True
            if not merged:
                v = finish() if finish is not None else _PREDEFINED[escaper](v)
        for _, fn in chain:
            v = fn(v)
        if chain:
            self.parts.append(str(v))
        else:  # pragma: no cover - every context has at least one escaper
            self.parts.append(_stringify(v)[0])
