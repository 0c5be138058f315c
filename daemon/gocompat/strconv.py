"""Go's ``strconv.Quote`` (the ``%q`` verb on a string), the one quoting every Go-facing
text uses: label sets in group keys and ``LabelSet.String``, validation and config
messages, and the template engine's ``printf "%q"``.

Go's rules, rune by rune:

* ``"`` and ``\\`` get a backslash;
* a printable rune (``unicode.IsPrint``: letters, marks, numbers, punctuation, symbols
  and the ASCII space) is written as it is;
* ``\\a \\b \\f \\n \\r \\t \\v`` use their short escapes;
* any other rune below U+0020, and U+007F, is ``\\xNN``; the rest are ``\\uNNNN`` or
  ``\\UNNNNNNNN``, in lower-case hex;
* bytes that are not valid UTF-8 are ``\\xNN`` each. In a Python string they can only
  arrive as lone surrogates: U+DC80..U+DCFF (``surrogateescape``) stand for one byte,
  and any other surrogate is not a character, so it is written as Go writes U+FFFD.

Python's ``str.isprintable`` is false for exactly the categories Go's ``IsPrint``
excludes (controls, formats, surrogates, private use, unassigned and separators other
than U+0020), so it serves as the test.
"""

from __future__ import annotations

_SHORT = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _escape(ch: str) -> str:
    short = _SHORT.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote(text: str) -> str:
    """``text`` as Go's ``strconv.Quote`` writes it, double quotes included."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        # The common case (label values, names): nothing to escape.
        return f'"{text}"'
    return (
        '"'
        + "".join(ch if ch.isprintable() and ch not in _SHORT else _escape(ch) for ch in text)
        + '"'
    )


__all__ = ["go_quote"]
