"""html/template's parsing context: where in an HTML document the output stands.

Go's html/template decides each action's escapers from the context the literal text
before it leaves, and rewrites that text a little (comments dropped, a stray ``<``
written as ``&lt;``). This module is that context and its transitions, written from
Go 1.19.8's rules (the Go that built the Alertmanager 0.25 we compare with):

* HTML text, tags, attribute names and values (quoted or not), HTML comments, and the
  RCDATA of ``<title>``/``<textarea>``;
* URL attributes (``href``, ``src``, ``data-*url*`` ...) split into the part before
  ``?``/``#`` and the query or fragment; ``srcset``;
* JS in ``<script>`` (unless its ``type`` is not a JS type) and ``on*`` attributes:
  code, whose last token decides whether ``/`` starts a regexp or divides, ``"``/``'``
  strings, regexps, block and line comments, and template literals (an action there
  is an error in Go 1.19.8);
* CSS in ``<style>`` and ``style`` attributes: values, strings, ``url(...)`` and
  comments.

Attribute values are matched with their HTML entities decoded, as a browser would
before running the JS or CSS in them.

Pure: no I/O. The escapers and the sink that uses this are in :mod:`htmlescape`.
"""

from __future__ import annotations

import functools
import html
from enum import Enum

import attrs


# Each member's value is Go's name for it, which Go's error messages print.
class State(Enum):
    TEXT = "stateText"
    TAG = "stateTag"
    ATTR_NAME = "stateAttrName"
    AFTER_NAME = "stateAfterName"
    BEFORE_VALUE = "stateBeforeValue"
    HTML_CMT = "stateHTMLCmt"
    RCDATA = "stateRCDATA"
    ATTR = "stateAttr"
    URL = "stateURL"
    SRCSET = "stateSrcset"
    JS = "stateJS"
    JS_DQ_STR = "stateJSDqStr"
    JS_SQ_STR = "stateJSSqStr"
    JS_BQ_STR = "stateJSBqStr"
    JS_REGEXP = "stateJSRegexp"
    JS_BLOCK_CMT = "stateJSBlockCmt"
    JS_LINE_CMT = "stateJSLineCmt"
    CSS = "stateCSS"
    CSS_DQ_STR = "stateCSSDqStr"
    CSS_SQ_STR = "stateCSSSqStr"
    CSS_DQ_URL = "stateCSSDqURL"
    CSS_SQ_URL = "stateCSSSqURL"
    CSS_URL = "stateCSSURL"
    CSS_BLOCK_CMT = "stateCSSBlockCmt"
    CSS_LINE_CMT = "stateCSSLineCmt"
    ERROR = "stateError"


class Delim(Enum):
    NONE = "delimNone"
    DOUBLE_QUOTE = "delimDoubleQuote"
    SINGLE_QUOTE = "delimSingleQuote"
    SPACE_OR_TAG_END = "delimSpaceOrTagEnd"


class UrlPart(Enum):
    NONE = "urlPartNone"
    PRE_QUERY = "urlPartPreQuery"
    QUERY_OR_FRAG = "urlPartQueryOrFrag"
    # Only after branches that end in different URL parts.
    UNKNOWN = "urlPartUnknown"


class JsCtx(Enum):
    REGEXP = "jsCtxRegexp"
    DIV_OP = "jsCtxDivOp"
    # Only after branches that disagree.
    UNKNOWN = "jsCtxUnknown"


class Attr(Enum):
    NONE = "attrNone"
    SCRIPT = "attrScript"
    SCRIPT_TYPE = "attrScriptType"
    STYLE = "attrStyle"
    URL = "attrURL"
    SRCSET = "attrSrcset"


class Element(Enum):
    NONE = "elementNone"
    SCRIPT = "elementScript"
    STYLE = "elementStyle"
    TEXTAREA = "elementTextarea"
    TITLE = "elementTitle"


class EscapeError(Exception):
    """A template Go's html/template refuses; the message is Go's description."""


@attrs.frozen
class Context:
    state: State = State.TEXT
    delim: Delim = Delim.NONE
    url_part: UrlPart = UrlPart.NONE
    js_ctx: JsCtx = JsCtx.REGEXP
    attr: Attr = Attr.NONE
    element: Element = Element.NONE
    err: str = ""

    def __str__(self) -> str:
        """Go's ``context.String()``."""
        err = self.err or "<nil>"
        return (
            f"{{{self.state.value} {self.delim.value} {self.url_part.value} {self.js_ctx.value}"
            f" {self.attr.value} {self.element.value} {err}}}"
        )


TEXT = Context()

COMMENTS = frozenset(
    {State.HTML_CMT, State.JS_BLOCK_CMT, State.JS_LINE_CMT, State.CSS_BLOCK_CMT, State.CSS_LINE_CMT}
)

_ELEMENTS = {
    "script": Element.SCRIPT,
    "style": Element.STYLE,
    "textarea": Element.TEXTAREA,
    "title": Element.TITLE,
}
_CONTENT_STATE = {
    Element.NONE: State.TEXT,
    Element.SCRIPT: State.JS,
    Element.STYLE: State.CSS,
    Element.TEXTAREA: State.RCDATA,
    Element.TITLE: State.RCDATA,
}
ATTR_START = {
    Attr.NONE: State.ATTR,
    Attr.SCRIPT: State.JS,
    Attr.SCRIPT_TYPE: State.ATTR,
    Attr.STYLE: State.CSS,
    Attr.URL: State.URL,
    Attr.SRCSET: State.SRCSET,
}
_DELIM_ENDS = {
    Delim.DOUBLE_QUOTE: '"',
    Delim.SINGLE_QUOTE: "'",
    Delim.SPACE_OR_TAG_END: " \t\n\f\r>",
}
_HTML_SPACE = " \t\n\f\r"

# Attributes whose value Go treats as a URL, style or srcset; all others found in Go's
# attribute table are plain, and an unknown name falls to the heuristics of attr_type.
_URL_ATTRS = frozenset(
    "action archive background cite classid codebase data formaction href icon longdesc"
    " manifest poster profile src usemap xmlns".split()
)
_KNOWN_OTHER_ATTRS = frozenset({"srclang", "srcdoc"})

_JS_TYPES = frozenset(
    {
        "application/ecmascript",
        "application/javascript",
        "application/json",
        "application/ld+json",
        "application/x-ecmascript",
        "application/x-javascript",
        "module",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    }
)

_REGEXP_PRECEDER_KEYWORDS = frozenset(
    "break case continue delete do else finally in instanceof return throw try typeof void".split()
)


def attr_type(name: str) -> str:
    """``url``, ``css``, ``js``, ``srcset`` or ``plain``: how Go treats attribute ``name``."""
    if name.startswith("data-"):
        name = name[5:]
    elif ":" in name:
        prefix, _, name = name.partition(":")
        if prefix == "xmlns":
            return "url"
    if name in _URL_ATTRS:
        return "url"
    if name == "style":
        return "css"
    if name == "srcset":
        return "srcset"
    if name in _KNOWN_OTHER_ATTRS:
        return "plain"
    if name.startswith("on"):
        return "js"
    if "src" in name or "uri" in name or "url" in name:
        return "url"
    return "plain"


def _is_ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def is_js_ident_part(c: str) -> bool:
    return c == "$" or c == "_" or _is_ascii_alnum(c)


def is_css_nmchar(c: str) -> bool:
    o = ord(c)
    return (
        _is_ascii_alnum(c)
        or c in "-_"
        or 0x80 <= o <= 0xD7FF
        or 0xE000 <= o <= 0xFFFD
        or 0x10000 <= o <= 0x10FFFF
    )


def _is_hex(c: str) -> bool:
    return c in "0123456789abcdefABCDEF"


def decode_css(s: str) -> str:
    """CSS escapes (``\\41 ``, ``\\"``) decoded, as Go's decodeCSS."""
    if "\\" not in s:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        j = s.find("\\", i)
        if j < 0:
            out.append(s[i:])
            break
        out.append(s[i:j])
        if j + 1 >= n:
            break
        if _is_hex(s[j + 1]):
            k = j + 2
            while k < n and k < j + 7 and _is_hex(s[k]):
                k += 1
            r = int(s[j + 1 : k], 16)
            if r > 0x10FFFF:
                r, k = r // 16, k - 1
            out.append(chr(r) if not 0xD800 <= r <= 0xDFFF else "\ufffd")
            # One optional space (or CRLF) ends a hex escape.
            if s.startswith("\r\n", k):
                k += 2
            elif k < n and s[k] in _HTML_SPACE:
                k += 1
            i = k
        else:
            out.append(s[j + 1])
            i = j + 2
    return "".join(out)


def next_js_ctx(s: str, preceding: JsCtx) -> JsCtx:
    """Whether a ``/`` after JS code ``s`` starts a regexp or is a division."""
    s = s.rstrip("\t\n\f\r \u2028\u2029")
    if not s:
        return preceding
    c, n = s[-1], len(s)
    if c in "+-":
        start = n - 1
        while start > 0 and s[start - 1] == c:
            start -= 1
        return JsCtx.REGEXP if (n - start) % 2 == 1 else JsCtx.DIV_OP
    if c == ".":
        if n != 1 and "0" <= s[-2] <= "9":
            return JsCtx.DIV_OP
        return JsCtx.REGEXP
    if c in ",<>=*%&|^?!~([:;{}":
        return JsCtx.REGEXP
    j = n
    while j > 0 and is_js_ident_part(s[j - 1]):
        j -= 1
    if s[j:] in _REGEXP_PRECEDER_KEYWORDS:
        return JsCtx.REGEXP
    return JsCtx.DIV_OP


# -- transitions: (context, text) -> (context after, characters consumed) -------------


def _eat_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _HTML_SPACE:
        i += 1
    return i


def _eat_tag_name(s: str, i: int) -> tuple[int, Element]:
    if i == len(s) or not (s[i].isascii() and s[i].isalpha()):
        return i, Element.NONE
    j = i + 1
    while j < len(s):
        x = s[j]
        if _is_ascii_alnum(x):
            j += 1
        elif x in ":-" and j + 1 < len(s) and _is_ascii_alnum(s[j + 1]):
            j += 2
        else:
            break
    return j, _ELEMENTS.get(s[i:j].lower(), Element.NONE)


def _eat_attr_name(s: str, i: int) -> int:
    for j in range(i, len(s)):
        c = s[j]
        if c in " \t\n\f\r=>":
            return j
        if c in "'\"<":
            raise EscapeError(f"{_go_q(c)} in attribute name: {_go_q(s[:32])}")
    return len(s)


def _go_q(s: str) -> str:
    from daemon.gocompat.strconv import go_quote

    return go_quote(s)


def _error(msg: str) -> Context:
    return Context(state=State.ERROR, err=msg)


def _t_text(c: Context, s: str) -> tuple[Context, int]:
    k = 0
    while True:
        i = s.find("<", k)
        if i < 0 or i + 1 == len(s):
            return c, len(s)
        if s.startswith("<!--", i):
            return Context(state=State.HTML_CMT), i + 4
        i += 1
        end = False
        if s[i] == "/":
            if i + 1 == len(s):
                return c, len(s)
            end, i = True, i + 1
        j, e = _eat_tag_name(s, i)
        if j != i:
            return Context(state=State.TAG, element=Element.NONE if end else e), j
        k = j


def _t_tag(c: Context, s: str) -> tuple[Context, int]:
    i = _eat_ws(s, 0)
    if i == len(s):
        return c, len(s)
    if s[i] == ">":
        return Context(state=_CONTENT_STATE[c.element], element=c.element), i + 1
    try:
        j = _eat_attr_name(s, i)
    except EscapeError as e:
        return _error(str(e)), len(s)
    if i == j:
        return _error(f"expected space, attr name, or end of tag, but got {_go_q(s[i:])}"), len(s)
    name = s[i:j].lower()
    attr = Attr.NONE
    if c.element == Element.SCRIPT and name == "type":
        attr = Attr.SCRIPT_TYPE
    else:
        attr = {
            "url": Attr.URL,
            "css": Attr.STYLE,
            "js": Attr.SCRIPT,
            "srcset": Attr.SRCSET,
        }.get(attr_type(name), Attr.NONE)
    state = State.ATTR_NAME if j == len(s) else State.AFTER_NAME
    return Context(state=state, element=c.element, attr=attr), j


def _t_attr_name(c: Context, s: str) -> tuple[Context, int]:
    try:
        i = _eat_attr_name(s, 0)
    except EscapeError as e:
        return _error(str(e)), len(s)
    if i != len(s):
        c = attrs.evolve(c, state=State.AFTER_NAME)
    return c, i


def _t_after_name(c: Context, s: str) -> tuple[Context, int]:
    i = _eat_ws(s, 0)
    if i == len(s):
        return c, len(s)
    if s[i] != "=":
        # A valueless attribute, or the end of the tag.
        return attrs.evolve(c, state=State.TAG), i
    return attrs.evolve(c, state=State.BEFORE_VALUE), i + 1


def _t_before_value(c: Context, s: str) -> tuple[Context, int]:
    i = _eat_ws(s, 0)
    if i == len(s):
        return c, len(s)
    delim = Delim.SPACE_OR_TAG_END
    if s[i] == "'":
        delim, i = Delim.SINGLE_QUOTE, i + 1
    elif s[i] == '"':
        delim, i = Delim.DOUBLE_QUOTE, i + 1
    return attrs.evolve(c, state=ATTR_START[c.attr], delim=delim), i


def _t_html_cmt(c: Context, s: str) -> tuple[Context, int]:
    i = s.find("-->")
    if i < 0:
        return c, len(s)
    return TEXT, i + 3


def _index_tag_end(s: str, tag: str) -> int:
    """Where ``</tag`` (any case, then a separator) starts in ``s``, or -1."""
    res = 0
    while s:
        i = s.find("</")
        if i < 0:
            return -1
        s = s[i + 2 :]
        if len(tag) <= len(s) and s[: len(tag)].lower() == tag:
            s = s[len(tag) :]
            if s and s[0] in "> \t\n\f/":
                return res + i
            res += len(tag)
        res += i + 2
    return -1


def _t_special_tag_end(c: Context, s: str) -> tuple[Context, int]:
    if c.element != Element.NONE:
        i = _index_tag_end(s, c.element.name.lower())
        if i >= 0:
            return TEXT, i
    return c, len(s)


def _t_attr(c: Context, s: str) -> tuple[Context, int]:
    return c, len(s)


def _t_url(c: Context, s: str) -> tuple[Context, int]:
    if "#" in s or "?" in s:
        c = attrs.evolve(c, url_part=UrlPart.QUERY_OR_FRAG)
    elif _eat_ws(s, 0) != len(s) and c.url_part == UrlPart.NONE:
        c = attrs.evolve(c, url_part=UrlPart.PRE_QUERY)
    return c, len(s)


def _index_any(s: str, chars: str, start: int = 0) -> int:
    best = -1
    for ch in chars:
        i = s.find(ch, start)
        if i >= 0 and (best < 0 or i < best):
            best = i
    return best


def _t_js(c: Context, s: str) -> tuple[Context, int]:
    i = _index_any(s, "\"'`/")
    if i < 0:
        return attrs.evolve(c, js_ctx=next_js_ctx(s, c.js_ctx)), len(s)
    js_ctx = next_js_ctx(s[:i], c.js_ctx)
    ch = s[i]
    if ch == '"':
        return attrs.evolve(c, state=State.JS_DQ_STR, js_ctx=JsCtx.REGEXP), i + 1
    if ch == "'":
        return attrs.evolve(c, state=State.JS_SQ_STR, js_ctx=JsCtx.REGEXP), i + 1
    if ch == "`":
        return attrs.evolve(c, state=State.JS_BQ_STR, js_ctx=JsCtx.REGEXP), i + 1
    if i + 1 < len(s) and s[i + 1] == "/":
        return attrs.evolve(c, state=State.JS_LINE_CMT, js_ctx=js_ctx), i + 2
    if i + 1 < len(s) and s[i + 1] == "*":
        return attrs.evolve(c, state=State.JS_BLOCK_CMT, js_ctx=js_ctx), i + 2
    if js_ctx == JsCtx.REGEXP:
        return attrs.evolve(c, state=State.JS_REGEXP, js_ctx=js_ctx), i + 1
    if js_ctx == JsCtx.DIV_OP:
        return attrs.evolve(c, js_ctx=JsCtx.REGEXP), i + 1
    return _error(f"'/' could start a division or regexp: {_go_q(s[i : i + 32])}"), len(s)


_JS_DELIMITED_SPECIALS = {
    State.JS_DQ_STR: '\\"',
    State.JS_SQ_STR: "\\'",
    State.JS_BQ_STR: "\\`",
    State.JS_REGEXP: "\\/[]",
}


def _t_js_delimited(c: Context, s: str) -> tuple[Context, int]:
    specials = _JS_DELIMITED_SPECIALS[c.state]
    k, in_charset = 0, False
    while True:
        i = _index_any(s, specials, k)
        if i < 0:
            break
        ch = s[i]
        if ch == "\\":
            i += 1
            if i == len(s):
                return _error(f"unfinished escape sequence in JS string: {_go_q(s)}"), len(s)
        elif ch == "[":
            in_charset = True
        elif ch == "]":
            in_charset = False
        elif not in_charset:
            return attrs.evolve(c, state=State.JS, js_ctx=JsCtx.DIV_OP), i + 1
        k = i + 1
    if in_charset:
        return _error(f"unfinished JS regexp charset: {_go_q(s)}"), len(s)
    return c, len(s)


def _t_block_cmt(c: Context, s: str) -> tuple[Context, int]:
    i = s.find("*/")
    if i < 0:
        return c, len(s)
    state = State.JS if c.state == State.JS_BLOCK_CMT else State.CSS
    return attrs.evolve(c, state=state), i + 2


def _t_line_cmt(c: Context, s: str) -> tuple[Context, int]:
    if c.state == State.JS_LINE_CMT:
        ends, state = "\n\r\u2028\u2029", State.JS
    else:
        ends, state = "\n\f\r", State.CSS
    i = _index_any(s, ends)
    if i < 0:
        return c, len(s)
    # The line terminator itself is not part of the comment.
    return attrs.evolve(c, state=state), i


def _ends_with_css_keyword(b: str, kw: str) -> bool:
    i = len(b) - len(kw)
    if i < 0:
        return False
    if i != 0 and is_css_nmchar(b[i - 1]):
        return False
    return b[i:].lower() == kw


def _t_css(c: Context, s: str) -> tuple[Context, int]:
    k = 0
    while True:
        i = _index_any(s, "(\"'/", k)
        if i < 0:
            return c, len(s)
        ch = s[i]
        if ch == "(":
            if _ends_with_css_keyword(s[:i].rstrip("\t\n\f\r "), "url"):
                rest = s[i + 1 :].lstrip("\t\n\f\r ")
                j = len(s) - len(rest)
                if rest.startswith('"'):
                    return attrs.evolve(c, state=State.CSS_DQ_URL), j + 1
                if rest.startswith("'"):
                    return attrs.evolve(c, state=State.CSS_SQ_URL), j + 1
                return attrs.evolve(c, state=State.CSS_URL), j
        elif ch == "/":
            if i + 1 < len(s):
                if s[i + 1] == "/":
                    return attrs.evolve(c, state=State.CSS_LINE_CMT), i + 2
                if s[i + 1] == "*":
                    return attrs.evolve(c, state=State.CSS_BLOCK_CMT), i + 2
        elif ch == '"':
            return attrs.evolve(c, state=State.CSS_DQ_STR), i + 1
        else:
            return attrs.evolve(c, state=State.CSS_SQ_STR), i + 1
        k = i + 1


def _t_css_str(c: Context, s: str) -> tuple[Context, int]:
    if c.state in (State.CSS_DQ_STR, State.CSS_DQ_URL):
        end_and_esc = '\\"'
    elif c.state in (State.CSS_SQ_STR, State.CSS_SQ_URL):
        end_and_esc = "\\'"
    else:
        # Unquoted URLs end with white space or a close parenthesis.
        end_and_esc = "\\\t\n\f\r )"
    k = 0
    while True:
        i = _index_any(s, end_and_esc, k)
        if i < 0:
            c2, _ = _t_url(c, decode_css(s[k:]))
            return c2, len(s)
        if s[i] == "\\":
            i += 1
            if i == len(s):
                return _error(f"unfinished escape sequence in CSS string: {_go_q(s)}"), len(s)
        else:
            return attrs.evolve(c, state=State.CSS), i + 1
        c, _ = _t_url(c, decode_css(s[: i + 1]))
        k = i + 1


def _t_error(c: Context, s: str) -> tuple[Context, int]:
    return c, len(s)


_TRANSITIONS = {
    State.TEXT: _t_text,
    State.TAG: _t_tag,
    State.ATTR_NAME: _t_attr_name,
    State.AFTER_NAME: _t_after_name,
    State.BEFORE_VALUE: _t_before_value,
    State.HTML_CMT: _t_html_cmt,
    State.RCDATA: _t_special_tag_end,
    State.ATTR: _t_attr,
    State.URL: _t_url,
    State.SRCSET: _t_url,
    State.JS: _t_js,
    State.JS_DQ_STR: _t_js_delimited,
    State.JS_SQ_STR: _t_js_delimited,
    State.JS_BQ_STR: _t_js_delimited,
    State.JS_REGEXP: _t_js_delimited,
    State.JS_BLOCK_CMT: _t_block_cmt,
    State.JS_LINE_CMT: _t_line_cmt,
    State.CSS: _t_css,
    State.CSS_DQ_STR: _t_css_str,
    State.CSS_SQ_STR: _t_css_str,
    State.CSS_DQ_URL: _t_css_str,
    State.CSS_SQ_URL: _t_css_str,
    State.CSS_URL: _t_css_str,
    State.CSS_BLOCK_CMT: _t_block_cmt,
    State.CSS_LINE_CMT: _t_line_cmt,
    State.ERROR: _t_error,
}


def is_js_type(mime: str) -> bool:
    return mime.partition(";")[0].lower().strip() in _JS_TYPES


def context_after_text(c: Context, s: str) -> tuple[Context, int]:
    """The context after the first token of ``s`` and how many characters it took."""
    if c.delim == Delim.NONE:
        c1, i = _t_special_tag_end(c, s)
        if i == 0:
            # An end tag (``</script>``) follows; everything before it is consumed.
            return c1, 0
        return _TRANSITIONS[c.state](c, s[:i])
    # Inside an attribute value.
    i = _index_any(s, _DELIM_ENDS[c.delim])
    if i < 0:
        i = len(s)
    if c.delim == Delim.SPACE_OR_TAG_END:
        j = _index_any(s[:i], "\"'<=`")
        if j >= 0:
            return _error(f"{_go_q(s[j])} in unquoted attr: {_go_q(s[:i])}"), len(s)
    if i == len(s):
        # The value goes on: run its decoded text through the value's own rules.
        u = html.unescape(s)
        while u:
            c, i1 = _TRANSITIONS[c.state](c, u)
            u = u[i1:]
        return c, len(s)
    element = c.element
    # A script element whose type is not JS holds no JS.
    if (
        c.state == State.ATTR
        and c.element == Element.SCRIPT
        and c.attr == Attr.SCRIPT_TYPE
        and not is_js_type(s[:i])
    ):
        element = Element.NONE
    if c.delim != Delim.SPACE_OR_TAG_END:
        i += 1  # the closing quote
    return Context(state=State.TAG, element=element), i


def nudge(c: Context) -> Context:
    """The context an action in ``c`` really stands in (``<a {{.}}`` names an attribute)."""
    if c.state == State.TAG:
        return attrs.evolve(c, state=State.ATTR_NAME)
    if c.state == State.BEFORE_VALUE:
        return attrs.evolve(
            c, state=ATTR_START[c.attr], delim=Delim.SPACE_OR_TAG_END, attr=Attr.NONE
        )
    if c.state == State.AFTER_NAME:
        return attrs.evolve(c, state=State.ATTR_NAME, attr=Attr.NONE)
    return c


def _text_end(s: str, i: int, i1: int, left_text: bool) -> int:
    """Where the text in ``s[i:i1]`` ends: before the ``<`` that opened a tag or comment."""
    if left_text:
        j = s.rfind("<", i, i1)
        if j >= 0:
            return j
    return i1


@functools.lru_cache(maxsize=4096)
def escape_text(c: Context, s: str) -> tuple[Context, str]:
    """Literal template text ``s`` met in ``c``: the context after it and what to write.

    As Go rewrites a template's text: comments in HTML, JS and CSS are dropped (a JS
    block comment leaves a space, or a newline if it spanned lines), and in HTML text
    and RCDATA a ``<`` that starts no tag is written ``&lt;``. Cached: a template's
    text nodes meet the same contexts on every rendering.
    """
    out: list[str] = []
    written = 0
    i = 0
    n = len(s)
    while i != n:
        c1, nread = context_after_text(c, s[i:])
        i1 = i + nread
        if c.state in (State.TEXT, State.RCDATA):
            end = _text_end(s, i, i1, c1.state != c.state)
            j = s.find("<", i, end)
            while j >= 0:
                if not s[j : j + 9].upper().startswith("<!DOCTYPE"):
                    out.append(s[written:j])
                    out.append("&lt;")
                    written = j + 1
                j = s.find("<", j + 1, end)
        elif c.state in COMMENTS and c.delim == Delim.NONE:
            if c.state == State.JS_BLOCK_CMT:
                spanned = _index_any(s[written:i1], "\n\r\u2028\u2029") >= 0
                out.append("\n" if spanned else " ")
            elif c.state == State.CSS_BLOCK_CMT:
                out.append(" ")
            written = i1
        if c.state != c1.state and c1.state in COMMENTS and c1.delim == Delim.NONE:
            cs = i1 - (4 if c1.state == State.HTML_CMT else 2)
            out.append(s[written:cs])
            written = i1
        if i == i1 and c.state == c1.state:  # pragma: no cover - Go panics here too
            raise AssertionError(f"html/template: no progress in {c} at {s[i:]!r}")
        c, i = c1, i1
    if c.state == State.ERROR:
        raise EscapeError(c.err)
    if written == 0:
        return c, s
    if c.state not in COMMENTS or c.delim != Delim.NONE:
        out.append(s[written:])
    return c, "".join(out)


_IN_TAG = frozenset({State.TAG, State.ATTR_NAME, State.AFTER_NAME, State.BEFORE_VALUE, State.ATTR})


def strip_tags(s: str) -> str:
    """The text of HTML ``s`` without its tags and comments (Go's stripTags).

    Tags are found with the same transitions as templates, so ``<div title="1>2">`` and
    ``I <3 Ponies`` come out right; script and style content count as text.
    """
    out: list[str] = []
    c, i, all_text = TEXT, 0, True
    n = len(s)
    while i != n:
        if c.delim == Delim.NONE:
            st = c.state
            if c.element != Element.NONE and st not in _IN_TAG:
                st = State.RCDATA
            d, nread = _TRANSITIONS[st](c, s[i:])
            i1 = i + nread
            if c.state in (State.TEXT, State.RCDATA):
                out.append(s[i : _text_end(s, i, i1, d.state != c.state)])
            else:
                all_text = False
            c, i = d, i1
            continue
        i1 = _index_any(s, _DELIM_ENDS[c.delim], i)
        if i1 < 0:
            break
        if c.delim != Delim.SPACE_OR_TAG_END:
            i1 += 1
        c, i = Context(state=State.TAG, element=c.element), i1
    if all_text:
        return s
    if c.state in (State.TEXT, State.RCDATA):
        out.append(s[i:])
    return "".join(out)
