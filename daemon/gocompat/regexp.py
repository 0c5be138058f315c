"""Go's regular expressions (RE2 syntax, ``regexp/syntax`` with Perl flags) on Python's re.

Alertmanager compiles every regex matcher, silence and template pattern with Go's
``regexp``. Python's ``re`` reads much of the same text differently: ``(?i)`` is only
allowed at the very start (Go allows it anywhere, and Alertmanager wraps each matcher
in ``^(?:…)$``, so ``=~"(?i)critical"`` would not even compile), ``\\d``/``\\w``/``\\s``
are Unicode (Go: ASCII), ``$`` also matches before a final newline, ``a{,3}`` is a
repetition (Go: literal text), ``\\1`` is a backreference and lookarounds exist (Go
refuses both), and Go's ``\\z``, ``\\x{…}``, ``\\Q…\\E``, ``[[:alpha:]]``, ``\\pL`` and
``(?U)`` are unknown to Python.

So patterns are not handed to ``re`` as written: :func:`translate` parses them as Go's
parser does and writes an equivalent Python pattern, and refuses what Go refuses with
Go's error text (``error parsing regexp: <code>: `<expr>```), which operators see in
API responses and ``check-config`` output.

How it is kept exact: flags are tracked the way Go's parser tracks them (a ``(?i)``
lasts to the end of the enclosing group, across ``|``) and applied to each atom as a
scoped group, never as a global flag; every class is written out as explicit ranges;
the result is compiled with ``re.ASCII`` so ``\\b`` is Go's ASCII word boundary, and
case-folded atoms turn Unicode back on locally (Go folds Unicode).

Not supported: Unicode script classes such as ``\\p{Greek}`` (Python's ``unicodedata``
has no script property); they are refused with a clear error rather than guessed.
General categories (``\\pL``, ``\\p{Lu}``, ``\\PN``) and ``\\p{Any}`` work.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

MAX_REPEAT = 1000
_MAX_RUNE = sys.maxunicode

Ranges = list[tuple[int, int]]


class GoRegexError(ValueError):
    """A pattern Go's ``regexp.Compile`` refuses; ``str()`` is Go's message."""

    def __init__(self, code: str, expr: str) -> None:
        super().__init__(code, expr)
        self.code = code
        self.expr = expr

    def __str__(self) -> str:
        return f"error parsing regexp: {self.code}: `{self.expr}`"


MISSING_PAREN = "missing closing )"
UNEXPECTED_PAREN = "unexpected )"
MISSING_BRACKET = "missing closing ]"
INVALID_CHAR_RANGE = "invalid character class range"
INVALID_ESCAPE = "invalid escape sequence"
INVALID_NAMED_CAPTURE = "invalid named capture"
INVALID_PERL_OP = "invalid or unsupported Perl syntax"
INVALID_REPEAT_OP = "invalid nested repetition operator"
INVALID_REPEAT_SIZE = "invalid repeat count"
MISSING_REPEAT_ARGUMENT = "missing argument to repetition operator"
TRAILING_BACKSLASH = "trailing backslash at end of expression"
UNSUPPORTED_SCRIPT = "Unicode script classes are not supported by tocsin"


def _r(spec: str) -> Ranges:
    """``"09AZaz"``-style pairs of range ends."""
    return [(ord(spec[i]), ord(spec[i + 1])) for i in range(0, len(spec), 2)]


_PERL: dict[str, Ranges] = {
    "d": _r("09"),
    "s": [(9, 10), (12, 13), (32, 32)],
    "w": _r("09AZ__az"),
}
_POSIX: dict[str, Ranges] = {
    "alnum": _r("09AZaz"),
    "alpha": _r("AZaz"),
    "ascii": [(0, 0x7F)],
    "blank": [(9, 9), (32, 32)],
    "cntrl": [(0, 0x1F), (0x7F, 0x7F)],
    "digit": _r("09"),
    "graph": _r("!~"),
    "lower": _r("az"),
    "print": _r(" ~"),
    "punct": _r("!/:@[`{~"),
    "space": [(9, 13), (32, 32)],
    "upper": _r("AZ"),
    "word": _r("09AZ__az"),
    "xdigit": _r("09AFaf"),
}
_CATEGORIES = {
    "C": ("Cc", "Cf", "Co", "Cs"),
    "L": ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "M": ("Mn", "Mc", "Me"),
    "N": ("Nd", "Nl", "No"),
    "P": ("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),
    "S": ("Sm", "Sc", "Sk", "So"),
    "Z": ("Zs", "Zl", "Zp"),
}
_ALL_CATEGORIES = {c for group in _CATEGORIES.values() for c in group}


@functools.cache
def _category_ranges(name: str) -> tuple[tuple[int, int], ...]:
    """Code point ranges of a Unicode general category (one letter or two)."""
    wanted = set(_CATEGORIES.get(name, (name,)))
    out: Ranges = []
    for cp in range(_MAX_RUNE + 1):
        # Go's tables exclude unassigned code points from "C"; Python reports them "Cn".
        if unicodedata.category(chr(cp)) in wanted:
            if out and out[-1][1] == cp - 1:
                out[-1] = (out[-1][0], cp)
            else:
                out.append((cp, cp))
    return tuple(out)


def _negate(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in sorted(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= _MAX_RUNE:
        out.append((nxt, _MAX_RUNE))
    return out


def _class_char(cp: int) -> str:
    ch = chr(cp)
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\U{cp:08x}"


def _class_text(ranges: Ranges, negated: bool) -> str:
    parts = [
        _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}"
        for lo, hi in sorted(set(ranges))
    ]
    return "[" + ("^" if negated else "") + "".join(parts) + "]"


def _is_hex(c: str) -> bool:
    return c in "0123456789abcdefABCDEF"


class _Item:
    """One atom of the output and what a quantifier may do with it."""

    __slots__ = ("assertion", "fold", "literal", "quantified", "text")

    def __init__(
        self,
        text: str,
        *,
        fold: bool = False,
        literal: bool = False,
        assertion: bool = False,
        quantified: bool = False,
    ) -> None:
        self.text = text
        #: Wants Go's case folding (written inside ``(?u:(?i:…))``).
        self.fold = fold
        #: A single literal character with no quantifier (may merge with neighbours).
        self.literal = literal
        #: Zero-width (``\\A``, ``\\b`` …): Python needs a group around it to repeat it.
        self.assertion = assertion
        #: Already carries a quantifier: Go may repeat it again (``a*(?i)*``), Python
        #: only inside a group.
        self.quantified = quantified


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.pos = 0
        self.fold = False
        self.multiline = False
        self.dotnl = False
        self.ungreedy = False
        # One list of items per open group; alternation bars are items too.
        self.frames: list[list[_Item | str]] = [[]]
        # (flags to restore, group opener) per open group.
        self.opened: list[tuple[tuple[bool, bool, bool, bool], str]] = []
        #: Start of the previous repetition operator when it ended just before here.
        self.last_repeat_at = -1
        self.names: set[str] = set()

    # --- helpers ------------------------------------------------------------------

    def _flags(self) -> tuple[bool, bool, bool, bool]:
        return (self.fold, self.multiline, self.dotnl, self.ungreedy)

    def _set_flags(self, flags: tuple[bool, bool, bool, bool]) -> None:
        self.fold, self.multiline, self.dotnl, self.ungreedy = flags

    def _push(self, item: _Item) -> None:
        self.frames[-1].append(item)

    def _literal(self, ch: str) -> None:
        folds = self.fold and (ch.lower() != ch or ch.upper() != ch or ch.casefold() != ch)
        self._push(_Item(re.escape(ch), fold=folds, literal=True))

    def _class_item(self, ranges: Ranges, negated: bool) -> None:
        self._push(_Item(_class_text(ranges, negated), fold=self.fold))

    # --- the main loop ------------------------------------------------------------

    def run(self) -> str:
        s = self.s
        while self.pos < len(s):
            start = self.pos
            c = s[self.pos]
            repeat_at = -1
            if c == "(":
                self._open_paren()
            elif c == "|":
                self.frames[-1].append("|")
                self.pos += 1
            elif c == ")":
                self._close_paren()
            elif c == "^":
                self._push(_Item("(?m:^)" if self.multiline else "\\A", assertion=True))
                self.pos += 1
            elif c == "$":
                self._push(_Item("(?m:$)" if self.multiline else "\\Z", assertion=True))
                self.pos += 1
            elif c == ".":
                self._push(_Item("(?s:.)" if self.dotnl else "."))
                self.pos += 1
            elif c == "[":
                self._parse_class()
            elif c in "*+?":
                self.pos += 1
                low, high = {"*": (0, -1), "+": (1, -1), "?": (0, 1)}[c]
                self._repeat(low, high, start)
                repeat_at = start
            elif c == "{":
                parsed = self._parse_repeat(start)
                if parsed is None:
                    self._literal("{")
                    self.pos += 1
                else:
                    low, high, end = parsed
                    self.pos = end
                    if low > MAX_REPEAT or high > MAX_REPEAT or (high >= 0 and low > high):
                        raise GoRegexError(INVALID_REPEAT_SIZE, s[start:end])
                    self._repeat(low, high, start)
                    repeat_at = start
            elif c == "\\":
                self._parse_backslash()
            else:
                self._literal(c)
                self.pos += 1
            self.last_repeat_at = repeat_at
        if self.opened:
            raise GoRegexError(MISSING_PAREN, s)
        return self._render(self.frames[0])

    # --- groups -------------------------------------------------------------------

    def _open_paren(self) -> None:
        s, start = self.s, self.pos
        if s.startswith("(?P<", start) and len(s) - start > 4:
            end = s.find(">", start)
            if end < 0:
                raise GoRegexError(INVALID_NAMED_CAPTURE, s[start:])
            name = s[start + 4 : end]
            if not name or not all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name):
                raise GoRegexError(INVALID_NAMED_CAPTURE, s[start : end + 1])
            # Go allows a name twice, Python does not; the group still captures.
            self._begin_group("(" if name in self.names else f"(?P<{name}>")
            self.names.add(name)
            self.pos = end + 1
            return
        if s.startswith("(?", start):
            self._perl_flags()
            return
        self._begin_group("(")
        self.pos += 1

    def _begin_group(self, opener: str, saved: tuple[bool, bool, bool, bool] | None = None) -> None:
        self.opened.append((saved if saved is not None else self._flags(), opener))
        self.frames.append([])

    def _perl_flags(self) -> None:
        s, start = self.s, self.pos
        i = start + 2
        flags = list(self._flags())
        sign = 1
        saw_flag = False
        while i < len(s):
            c = s[i]
            i += 1
            if c in "imsU":
                index = "imsU".index(c)
                flags[index] = sign > 0
                saw_flag = True
            elif c == "-":
                if sign < 0:
                    break
                sign, saw_flag = -1, False
            elif c in ":)":
                if sign < 0 and not saw_flag:
                    break
                new = (flags[0], flags[1], flags[2], flags[3])
                if c == ":":
                    self._begin_group("(?:", saved=self._flags())
                self._set_flags(new)
                self.pos = i
                return
            else:
                break
        raise GoRegexError(INVALID_PERL_OP, s[start:i])

    def _close_paren(self) -> None:
        if not self.opened:
            raise GoRegexError(UNEXPECTED_PAREN, self.s)
        saved, opener = self.opened.pop()
        inner = self._render(self.frames.pop())
        self._set_flags(saved)
        self._push(_Item(f"{opener}{inner})"))
        self.pos += 1

    # --- repetition ---------------------------------------------------------------

    def _parse_repeat(self, start: int) -> tuple[int, int, int] | None:
        """``{n}``, ``{n,}`` or ``{n,m}`` at ``start``: (min, max or -1, end), else None."""
        m = _REPEAT.match(self.s, start)
        if m is None:
            return None
        low_text, comma, high_text = m.group(1), m.group(2), m.group(3)
        low = _go_int(low_text)
        if low is None:
            return None
        if not comma:
            return low, low, m.end()
        if not high_text:
            return low, -1, m.end()
        high = _go_int(high_text)
        if high is None:
            return None
        return low, high, m.end()

    def _repeat(self, low: int, high: int, start: int) -> None:
        s = self.s
        lazy = False
        if self.pos < len(s) and s[self.pos] == "?":
            lazy = True
            self.pos += 1
        if self.last_repeat_at >= 0:
            raise GoRegexError(INVALID_REPEAT_OP, s[self.last_repeat_at : self.pos])
        frame = self.frames[-1]
        if not frame or frame[-1] == "|":
            raise GoRegexError(MISSING_REPEAT_ARGUMENT, s[start : self.pos])
        item = frame[-1]
        assert isinstance(item, _Item)
        if high < 0:
            quantifier = "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
        elif low == 0 and high == 1:
            quantifier = "?"
        elif low == high:
            quantifier = f"{{{low}}}"
        else:
            quantifier = f"{{{low},{high}}}"
        if lazy != self.ungreedy:
            quantifier += "?"
        text = item.text
        if item.fold:
            text = f"(?u:(?i:{text}))"
        elif item.assertion or item.quantified:
            text = f"(?:{text})"
        frame[-1] = _Item(text + quantifier, quantified=True)

    # --- escapes ------------------------------------------------------------------

    def _parse_backslash(self) -> None:
        s, start = self.s, self.pos
        if start + 1 < len(s):
            c = s[start + 1]
            if c in "AbBz":
                text = {"A": "\\A", "b": "\\b", "B": "\\B", "z": "\\Z"}[c]
                self._push(_Item(text, assertion=True))
                self.pos += 2
                return
            if c == "Q":
                end = s.find("\\E", start + 2)
                literal = s[start + 2 :] if end < 0 else s[start + 2 : end]
                for ch in literal:
                    self._literal(ch)
                self.pos = len(s) if end < 0 else end + 2
                return
            if c in "pP":
                ranges, negated, self.pos = self._unicode_class(start)
                self._class_item(ranges, negated)
                return
            if c.lower() in _PERL:
                self._class_item(_PERL[c.lower()], c.isupper())
                self.pos += 2
                return
        cp, self.pos = self._escape(start)
        self._literal(chr(cp))

    def _escape(self, start: int) -> tuple[int, int]:
        """A single-character escape at ``start``: (code point, end)."""
        s = self.s
        i = start + 1
        if i >= len(s):
            raise GoRegexError(TRAILING_BACKSLASH, "")
        c = s[i]
        i += 1
        if c.isascii() and not c.isalnum():
            return ord(c), i
        if c in "01234567" and (c == "0" or (i < len(s) and s[i] in "01234567")):
            value = int(c)
            for _ in range(2):
                if i < len(s) and s[i] in "01234567":
                    value = value * 8 + int(s[i])
                    i += 1
            return value, i
        if c == "x" and i < len(s):
            if s[i] == "{":
                j = i + 1
                value = 0
                while j < len(s) and s[j] != "}":
                    if not _is_hex(s[j]):
                        raise GoRegexError(INVALID_ESCAPE, s[start : j + 1])
                    value = value * 16 + int(s[j], 16)
                    if value > _MAX_RUNE:
                        raise GoRegexError(INVALID_ESCAPE, s[start : j + 1])
                    j += 1
                if j >= len(s) or j == i + 1:
                    raise GoRegexError(INVALID_ESCAPE, s[start : min(j + 1, len(s))])
                return value, j + 1
            if i + 1 < len(s) and _is_hex(s[i]) and _is_hex(s[i + 1]):
                return int(s[i : i + 2], 16), i + 2
            raise GoRegexError(INVALID_ESCAPE, s[start : min(i + 2, len(s))])
        simple = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
        if c in simple:
            return simple[c], i
        raise GoRegexError(INVALID_ESCAPE, s[start:i])

    def _unicode_class(self, start: int) -> tuple[Ranges, bool, int]:
        """``\\pX``, ``\\p{Name}``, ``\\p{^Name}`` (and ``\\P``) at ``start``."""
        s = self.s
        negated = s[start + 1] == "P"
        i = start + 2
        if i >= len(s):
            raise GoRegexError(INVALID_CHAR_RANGE, s[start:])
        if s[i] == "{":
            end = s.find("}", i)
            if end < 0:
                raise GoRegexError(INVALID_CHAR_RANGE, s[start:])
            name = s[i + 1 : end]
            i = end + 1
        else:
            name = s[i]
            i += 1
        seq = s[start:i]
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        if name == "Any":
            return [(0, _MAX_RUNE)], negated, i
        if name in _CATEGORIES or name in _ALL_CATEGORIES:
            return list(_category_ranges(name)), negated, i
        if name and name[0].isupper() and name.isalpha():
            raise GoRegexError(UNSUPPORTED_SCRIPT, seq)
        raise GoRegexError(INVALID_CHAR_RANGE, seq)

    # --- classes ------------------------------------------------------------------

    def _parse_class(self) -> None:
        s, start = self.s, self.pos
        i = start + 1
        negated = False
        if i < len(s) and s[i] == "^":
            negated = True
            i += 1
        ranges: Ranges = []
        first = True
        while i >= len(s) or s[i] != "]" or first:
            if i >= len(s):
                raise GoRegexError(MISSING_BRACKET, s[start:])
            first = False
            if s.startswith("[:", i):
                end = s.find(":]", i + 2)
                if end >= 0:
                    name = s[i + 2 : end]
                    neg = name.startswith("^")
                    posix = _POSIX.get(name[1:] if neg else name)
                    if posix is None:
                        raise GoRegexError(INVALID_CHAR_RANGE, s[i : end + 2])
                    ranges.extend(_negate(posix) if neg else posix)
                    i = end + 2
                    continue
            if s[i] == "\\" and i + 1 < len(s):
                c = s[i + 1]
                if c in "pP":
                    sub, neg, i = self._unicode_class(i)
                    ranges.extend(_negate(sub) if neg else sub)
                    continue
                if c.lower() in _PERL:
                    sub = _PERL[c.lower()]
                    ranges.extend(_negate(sub) if c.isupper() else sub)
                    i += 2
                    continue
            range_start = i
            lo, i = self._class_char(i, start)
            hi = lo
            if i + 1 < len(s) and s[i] == "-" and s[i + 1] != "]":
                hi, i = self._class_char(i + 1, start)
                if hi < lo:
                    raise GoRegexError(INVALID_CHAR_RANGE, s[range_start:i])
            ranges.append((lo, hi))
        self.pos = i + 1
        self._class_item(ranges, negated)

    def _class_char(self, i: int, class_start: int) -> tuple[int, int]:
        s = self.s
        if i >= len(s):
            raise GoRegexError(MISSING_BRACKET, s[class_start:])
        if s[i] == "\\":
            return self._escape(i)
        return ord(s[i]), i + 1

    # --- output -------------------------------------------------------------------

    def _render(self, frame: list[_Item | str]) -> str:
        """The items as Python regex text; runs of folded literals share one group."""
        out: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                out.append(f"(?u:(?i:{''.join(run)}))")
                run.clear()

        for item in frame:
            if isinstance(item, str):
                flush()
                out.append(item)
            elif item.fold:
                run.append(item.text)
                if not item.literal:
                    flush()
            else:
                flush()
                out.append(item.text)
        flush()
        return "".join(out)


_REPEAT = re.compile(r"\{([0-9]+)(,)?([0-9]*)\}")


def _go_int(text: str) -> int | None:
    """Go's ``parseInt`` for repeat counts: no leading zeros; huge counts read as -1."""
    if len(text) >= 2 and text[0] == "0":
        return None
    if len(text) > 8:
        return MAX_REPEAT + 1
    return int(text)


@functools.lru_cache(maxsize=4096)
def translate(pattern: str) -> str:
    """The Python pattern (for ``re.ASCII``) equivalent to Go's ``pattern``.

    Raises:
        GoRegexError: Go's regexp would refuse ``pattern``; ``str()`` is Go's message.
    """
    return _Translator(pattern).run()


@functools.lru_cache(maxsize=4096)
def compile_go(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with Go's meaning; use ``search`` for Go's ``MatchString``."""
    return re.compile(translate(pattern), re.ASCII)


@functools.lru_cache(maxsize=16384)
def compile_anchored(pattern: str) -> re.Pattern[str]:
    """Alertmanager's ``^(?:pattern)$``, compiled for ``fullmatch``.

    Go parses the anchored text as one expression, so errors name it; a pattern whose
    parentheses only balance inside it (``a)|(b``) is searched in that form, as Go would.

    Raises:
        GoRegexError: as Go's regexp would, with the anchored text in the message.
    """
    anchored = f"^(?:{pattern})$"
    try:
        inner = translate(pattern)
    except GoRegexError:
        # Go parses (and reports on) the whole anchored text, which may balance
        # parentheses the pattern alone does not. Go's MatchString then searches it;
        # a fullmatch of anything around it is the same test.
        full = translate(anchored)
        return re.compile(f"(?s:.*?)(?:{full})(?s:.*)", re.ASCII)
    # The same verdict as Go's on the anchored text (``\\Q`` without ``\\E`` swallows
    # the wrapper's closing parenthesis, for one).
    translate(anchored)
    return re.compile(f"(?:{inner})", re.ASCII)
