"""html/template's contextual autoescaping, done while the output is written.

Go decides each action's escaper statically from the HTML context in which it stands.
For templates whose context at each action does not depend on the data (Go rejects the
others), following the context through the literal text at run time picks the same
escapers, so :class:`HtmlSink` tracks it with a small HTML tokenizer as text is written.

Supported contexts, with Go's escapers:

* HTML text: ``&<>"'+`` and NUL escaped (``safeHtml`` values are written as they are);
  HTML comments in template text are removed, and actions inside them print nothing.
* Quoted and unquoted attribute values; ``safeHtml`` values lose their tags there.
* URL attributes (``href``, ``src``, ``action`` … and names containing ``url``/``uri``):
  a value at the start of the URL must have scheme http, https or mailto (or none),
  else it becomes ``#ZgotmplZ``; before ``?``/``#`` it is normalised (unsafe bytes
  percent-encoded), after them fully query-escaped.
* ``<title>``/``<textarea>`` text is escaped like HTML text.

Not supported (an error is raised rather than risk wrong escaping): actions inside
``<script>``/``<style>`` elements, ``on*`` event attributes and ``style`` attributes
(JS/CSS contexts), and actions inside a tag where an attribute name is expected.
"""

from __future__ import annotations

import re

from daemon.template.errors import TemplateExecError
from daemon.template.execute import printable
from daemon.template.functions import NO_VALUE, SafeHTML

_HTML_ESC = {
    "\0": "\ufffd",
    '"': "&#34;",
    "&": "&amp;",
    "'": "&#39;",
    "+": "&#43;",
    "<": "&lt;",
    ">": "&gt;",
}
_NOSPACE_ESC = {
    **_HTML_ESC,
    "\t": "&#9;",
    "\n": "&#10;",
    "\v": "&#11;",
    "\f": "&#12;",
    "\r": "&#13;",
    " ": "&#32;",
    "=": "&#61;",
    "`": "&#96;",
}

_URL_ATTRS = frozenset(
    {
        "action",
        "archive",
        "background",
        "cite",
        "classid",
        "codebase",
        "data",
        "formaction",
        "href",
        "icon",
        "longdesc",
        "manifest",
        "poster",
        "profile",
        "src",
        "usemap",
        "xmlns",
    }
)
_RAW_TEXT = frozenset({"script", "style"})
_RCDATA = frozenset({"textarea", "title"})
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
_NAME_RE = re.compile(r"[^\s=>/\"'<]+")

FILTERED = "ZgotmplZ"


def html_escape(s: str) -> str:
    return "".join(_HTML_ESC.get(c, c) for c in s)


def _strip_tags(s: str) -> str:
    return re.sub(r"<[^>]*>?", "", s)


_NORM_KEEP = frozenset(b"!#$&*+,/:;=?@[]-._~%")


def _url_process(s: str, norm: bool) -> str:
    out = []
    for b in s.encode("utf-8", "surrogatepass"):
        if (0x30 <= b <= 0x39) or (0x41 <= b <= 0x5A) or (0x61 <= b <= 0x7A) or b in b"-._~":
            out.append(chr(b))
        elif norm and b in _NORM_KEEP:
            out.append(chr(b))
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _url_safe(s: str) -> bool:
    i = s.find(":")
    if i >= 0 and "/" not in s[:i]:
        return s[:i].lower() in ("http", "https", "mailto")
    return True


def _attr_kind(name: str) -> str:
    n = name.lower()
    if n.startswith("data-"):
        n = n[5:]
    elif ":" in n:
        prefix, _, local = n.partition(":")
        if prefix == "xmlns":
            return "url"
        n = local
    if n in _URL_ATTRS:
        return "url"
    if n.startswith("on"):
        return "js"
    if n == "style":
        return "css"
    if "url" in n or "uri" in n or "src" in n:
        return "url"
    return "plain"


class HtmlSink:
    """Output of an html template: literal text moves the context, values are escaped."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.state = "text"
        self.tag = ""
        self.attr = ""
        self.attr_kind = "plain"
        self.quote = ""
        self.url_part = "none"
        self.raw_end = ""
        self.pending_comment = ""

    def result(self) -> str:
        return "".join(self.parts)

    # -- literal text ----------------------------------------------------------------

    def text(self, s: str) -> None:
        i = 0
        n = len(s)
        out = self.parts
        while i < n:
            st = self.state
            if st == "text":
                j = s.find("<", i)
                if j < 0:
                    out.append(s[i:])
                    return
                out.append(s[i:j])
                if s.startswith("<!--", j):
                    self.state = "comment"
                    i = j + 4
                    continue
                m = _TAG_RE.match(s, j)
                if m is None:
                    out.append("<")
                    i = j + 1
                    continue
                out.append(m.group(0))
                self.tag = m.group(2).lower() if not m.group(1) else ""
                self.state = "tag"
                i = m.end()
            elif st == "comment":
                j = s.find("-->", i)
                if j < 0:
                    return
                self.state = "text"
                i = j + 3
            elif st in ("raw", "raw_rc"):
                j = s.lower().find("</" + self.raw_end, i)
                if j < 0:
                    out.append(s[i:])
                    return
                out.append(s[i:j])
                self.state = "text"
                i = j
            elif st == "tag":
                c = s[i]
                if c.isspace() or c == "/":
                    out.append(c)
                    i += 1
                elif c == ">":
                    out.append(c)
                    i += 1
                    self._end_tag()
                else:
                    m = _NAME_RE.match(s, i)
                    if m is None:
                        out.append(c)
                        i += 1
                        continue
                    out.append(m.group(0))
                    self.attr = m.group(0)
                    self.attr_kind = _attr_kind(self.attr)
                    self.state = "after_name"
                    i = m.end()
            elif st == "after_name":
                c = s[i]
                if c.isspace():
                    out.append(c)
                    i += 1
                elif c == "=":
                    out.append(c)
                    i += 1
                    self.state = "before_value"
                else:
                    self.state = "tag"
            elif st == "before_value":
                c = s[i]
                if c.isspace():
                    out.append(c)
                    i += 1
                elif c in "\"'":
                    out.append(c)
                    i += 1
                    self._start_value(c)
                else:
                    self._start_value("")
            elif st == "value":
                if self.quote:
                    j = s.find(self.quote, i)
                    end = n if j < 0 else j
                else:
                    m = re.compile(r"[\s>]").search(s, i)
                    end = n if m is None else m.start()
                chunk = s[i:end]
                out.append(chunk)
                if self.attr_kind == "url" and chunk:
                    if "#" in chunk or "?" in chunk:
                        self.url_part = "query"
                    elif chunk.strip() and self.url_part == "none":
                        self.url_part = "prequery"
                i = end
                if end < n:
                    if self.quote:
                        out.append(self.quote)
                        i += 1
                    self.state = "tag"

    def _start_value(self, quote: str) -> None:
        self.state = "value"
        self.quote = quote
        self.url_part = "none"

    def _end_tag(self) -> None:
        if self.tag in _RAW_TEXT:
            self.state = "raw"
            self.raw_end = self.tag
        elif self.tag in _RCDATA:
            self.state = "raw_rc"
            self.raw_end = self.tag
        else:
            self.state = "text"

    # -- values ----------------------------------------------------------------------

    def value(self, v: object, escaper: str | None = None) -> None:
        st = self.state
        # A pipeline ending in html/urlquery already did the equivalent escaper's work.
        safe = isinstance(v, SafeHTML) or (escaper == "html" and st != "value")
        s = str(v) if safe else ("" if v is NO_VALUE else printable(v))
        if st == "text":
            self.parts.append(s if safe else html_escape(s))
        elif st == "comment":
            return
        elif st == "raw_rc":
            self.parts.append(html_escape(s))
        elif st == "before_value":
            self._start_value("")
            self.value(v)
        elif st == "value":
            if safe:
                s = _strip_tags(s)
            if escaper == "html" and self.attr_kind == "plain":
                self.parts.append(s)
                return
            if self.attr_kind == "url" and escaper == "urlquery":
                if self.url_part == "none" and not _url_safe(s):
                    s = "#" + FILTERED
            elif self.attr_kind == "url":
                if self.url_part == "none":
                    if not _url_safe(s):
                        s = "#" + FILTERED
                    s = _url_process(s, norm=True)
                elif self.url_part == "prequery":
                    s = _url_process(s, norm=True)
                else:
                    s = _url_process(s, norm=False)
            elif self.attr_kind in ("js", "css"):
                raise TemplateExecError(
                    f"html/template: action in {self.attr} attribute "
                    "(JS/CSS context) is not supported"
                )
            table = _NOSPACE_ESC if not self.quote else _HTML_ESC
            self.parts.append("".join(table.get(c, c) for c in s))
        else:
            raise TemplateExecError(
                f"html/template: action in unsupported context ({st}) after <{self.tag}>"
            )
