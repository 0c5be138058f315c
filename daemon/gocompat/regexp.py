"""Go's regular expressions: Go's syntax checker in Python, RE2 to match.

Alertmanager compiles every regex matcher, silence, inhibit rule, ``match_re``, API
``receiver`` parameter and template pattern with Go's ``regexp``, which is RE2: it
matches in time linear in the text, so no pattern can stall the process. Python's
``re`` backtracks (``(x+x+)+y`` on 22 characters takes 129 ms, and each extra
character doubles it) and recurses while compiling (about 600 nested groups raise
``RecursionError``). So tocsin matches with RE2 (the ``google-re2`` binding of the C++
library Go's package was ported from) and never hands a foreign pattern to ``re``.

Why a checker of our own still parses every pattern first:

* Error text. Operators see Go's messages (``error parsing regexp: <code>: `<expr>```)
  in API responses and ``check-config`` output, and tests pin them; RE2's C++ wording
  differs. :class:`_Checker` parses as Go's ``regexp/syntax`` does (Perl flags) and
  refuses what Go refuses with Go's text.
* Go's limits. Go refuses repeat counts over 1000, nested repeats whose product passes
  1000, and parse trees more than 1000 deep (``expression nests too deeply``); the
  checker computes the same tree height and repeat products. Its parse is iterative
  (one frame per open group), so no nesting depth can exhaust Python's stack.
* Syntax RE2 accepts and Go refuses (``\\C``, ``(?<name>…)``) stays refused.
* The silence index wants the finite set of strings a pattern matches (``web|db``);
  the checker's parse yields it (:func:`literal_values`) without CPython internals.

Matching keeps Go's meaning because RE2's syntax is Go's: ``(?i)`` anywhere, ASCII
``\\d``/``\\w``/``\\s``/``\\b``, ``$`` as the end of text, ``\\x{…}``, ``\\Q…\\E``,
POSIX classes, Unicode categories and scripts (``\\p{Greek}``), ``(?U)``. Options
are RE2's defaults that equal Go's: UTF-8 (text is encoded, so non-ASCII values match
as Go sees them), leftmost-first (not ``longest_match``), no POSIX syntax. A pattern
RE2 cannot compile within its 8 MiB program budget is refused as Go refuses an
oversized one (``expression too large``); Go's own budget is larger, so a few huge
patterns Go accepts (``\\pL{1000}``) are refused here rather than allowed to cost
hundreds of MiB each.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

import re2

T = TypeVar("T")

MAX_REPEAT = 1000
#: Go's ``maxHeight``: the deepest parse tree ``regexp/syntax`` accepts.
MAX_HEIGHT = 1000
#: A pattern that spells out more strings than this is not a literal set.
MAX_LITERALS = 32


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
NESTING_DEPTH = "expression nests too deeply"
TOO_LARGE = "expression too large"

Ranges = list[tuple[int, int]]


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

#: RE2's options for every pattern: errors are ours to report, not RE2's log lines.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
#: Matchers only ask whether there is a match: no capture bookkeeping.
_BOOL_OPTIONS = re2.Options()
_BOOL_OPTIONS.log_errors = False
_BOOL_OPTIONS.never_capture = True


@functools.lru_cache(maxsize=512)  # bounded: class names come from anyone who posts
def _unicode_class_known(name: str) -> bool:
    """Whether ``\\p{name}`` names a Unicode category or script (RE2's tables, as Go's)."""
    try:
        re2.compile(f"\\p{{{name}}}", _OPTIONS)
    except re2.error:
        return False
    return True


def _is_hex(c: str) -> bool:
    return c in "0123456789abcdefABCDEF"


def _fits(chain: tuple[int, ...], budget: int) -> bool:
    """Go's ``repeatIsValid`` along one path of nested counted repeats (outer first)."""
    for count in chain:
        if count > budget:
            return False
        budget //= count
    return True


class _Node:
    """What the checker knows of one parsed sub-expression (a node of Go's tree)."""

    __slots__ = ("chains", "fold", "height", "kind", "literals")

    def __init__(
        self,
        *,
        literals: tuple[str, ...] | None = None,
        height: int = 1,
        kind: str = "other",
        chains: frozenset[tuple[int, ...]] = frozenset(),
        fold: bool = False,
    ) -> None:
        #: Every string the node fullmatches, when that is a small finite set.
        self.literals = literals
        #: Height of Go's parse tree below and including this node.
        self.height = height
        #: ``char`` (one rune: Go merges runs into one node), ``concat``, ``alt``,
        #: ``repeat`` or ``other``; Go flattens a concat in a concat, an alt in an alt.
        self.kind = kind
        #: Counted-repeat paths below (counts >= 2, outer first), for Go's product rule.
        self.chains = chains
        #: A case-folded rune (a run of these shares Go's fold flag).
        self.fold = fold


def _product(parts: list[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """Every concatenation of one option per part, or None past :data:`MAX_LITERALS`."""
    count = 1
    for options in parts:
        if options is None:
            return None
        count *= len(options)
        if count > MAX_LITERALS:
            return None
    # Joined once per result: growing strings part by part would be quadratic.
    return tuple("".join(combo) for combo in itertools.product(*parts))  # type: ignore[arg-type]


def _concat(items: list[_Node]) -> _Node:
    """Go's concatenation node of one alternative's items."""
    nodes: list[_Node] = []
    for item in items:
        # Adjacent runes with the same fold flag become one literal node in Go.
        if item.kind == "char" and nodes and nodes[-1].kind == "char":
            if nodes[-1].fold == item.fold:
                continue
        nodes.append(item)
    literals = _product([i.literals for i in items])
    chains = frozenset(c for i in items for c in i.chains)
    if not nodes:
        return _Node(literals=("",))
    if len(nodes) == 1:
        n = nodes[0]
        return _Node(literals=literals, height=n.height, kind=n.kind, chains=chains, fold=n.fold)
    height = 1 + max(n.height - (n.kind == "concat") for n in nodes)
    return _Node(literals=literals, height=height, kind="concat", chains=chains)


def _alternate(branches: list[_Node]) -> _Node:
    if len(branches) == 1:
        return branches[0]
    literals: tuple[str, ...] | None = ()
    for b in branches:
        if b.literals is None or literals is None:
            literals = None
            break
        literals = literals + b.literals
        if len(literals) > MAX_LITERALS:
            literals = None
            break
    height = 1 + max(b.height - (b.kind == "alt") for b in branches)
    chains = frozenset(c for b in branches for c in b.chains)
    return _Node(literals=literals, height=height, kind="alt", chains=chains)


class _Checker:
    """Go's ``regexp/syntax`` parser (Perl flags), reduced to what tocsin needs to know.

    Iterative: ``frames`` holds one list of nodes per open group (``|`` markers
    between alternatives), so the Python stack never grows with the pattern's nesting.
    """

    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.pos = 0
        self.fold = False
        self.frames: list[list[_Node | str]] = [[]]
        #: (fold flag to restore, capturing?) per open group.
        self.opened: list[tuple[bool, bool]] = []
        #: Start of the previous repetition operator when it ended just before here.
        self.last_repeat_at = -1

    def _push(self, node: _Node) -> None:
        self.frames[-1].append(node)

    def _literal(self, ch: str) -> None:
        folds = self.fold and (ch.lower() != ch or ch.upper() != ch or ch.casefold() != ch)
        self._push(_Node(literals=None if folds else (ch,), kind="char", fold=folds))

    def _check_height(self, node: _Node) -> _Node:
        if node.height > MAX_HEIGHT:
            # Go names the whole expression for this one.
            raise GoRegexError(NESTING_DEPTH, self.s)
        return node

    def _close_frame(self) -> _Node:
        branches: list[list[_Node]] = [[]]
        for x in self.frames.pop():
            if isinstance(x, str):
                branches.append([])
            else:
                branches[-1].append(x)
        return self._check_height(_alternate([_concat(b) for b in branches]))

    # --- the main loop ------------------------------------------------------------

    def run(self) -> _Node:
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
            elif c in "^$.":
                self._push(_Node())
                self.pos += 1
            elif c == "[":
                self._parse_class()
            elif c in "*+?":
                self.pos += 1
                self._repeat(None, start)
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
                    self._repeat((low, high), start)
                    repeat_at = start
            elif c == "\\":
                self._parse_backslash()
            elif not self.fold and (run := _plain_run(s, self.pos)) > 1:
                # A run of plain characters is one literal node in Go's tree too; its
                # last character stays separate when a repetition operator follows.
                self._push(_Node(literals=(s[self.pos : self.pos + run],), kind="char"))
                self.pos += run
            else:
                self._literal(c)
                self.pos += 1
            self.last_repeat_at = repeat_at
        if self.opened:
            raise GoRegexError(MISSING_PAREN, s)
        return self._close_frame()

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
            self._begin_group(capturing=True)
            self.pos = end + 1
            return
        if s.startswith("(?", start):
            self._perl_flags()
            return
        self._begin_group(capturing=True)
        self.pos += 1

    def _begin_group(self, *, capturing: bool, saved_fold: bool | None = None) -> None:
        self.opened.append((self.fold if saved_fold is None else saved_fold, capturing))
        self.frames.append([])

    def _perl_flags(self) -> None:
        s, start = self.s, self.pos
        i = start + 2
        fold = self.fold
        sign = 1
        saw_flag = False
        while i < len(s):
            c = s[i]
            i += 1
            if c in "imsU":
                if c == "i":
                    fold = sign > 0
                saw_flag = True
            elif c == "-":
                if sign < 0:
                    break
                sign, saw_flag = -1, False
            elif c in ":)":
                if sign < 0 and not saw_flag:
                    break
                if c == ":":
                    self._begin_group(capturing=False, saved_fold=self.fold)
                self.fold = fold
                self.pos = i
                return
            else:
                break
        raise GoRegexError(INVALID_PERL_OP, s[start:i])

    def _close_paren(self) -> None:
        if not self.opened:
            raise GoRegexError(UNEXPECTED_PAREN, self.s)
        saved_fold, capturing = self.opened.pop()
        inner = self._close_frame()
        self.fold = saved_fold
        if capturing:
            inner = self._check_height(
                _Node(literals=inner.literals, height=inner.height + 1, chains=inner.chains)
            )
        self._push(inner)
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

    def _repeat(self, counted: tuple[int, int] | None, start: int) -> None:
        """Apply ``*``/``+``/``?`` (``counted`` None) or ``{min,max}`` to the last node."""
        s = self.s
        if self.pos < len(s) and s[self.pos] == "?":
            self.pos += 1
        if self.last_repeat_at >= 0:
            raise GoRegexError(INVALID_REPEAT_OP, s[self.last_repeat_at : self.pos])
        frame = self.frames[-1]
        if not frame or frame[-1] == "|":
            raise GoRegexError(MISSING_REPEAT_ARGUMENT, s[start : self.pos])
        sub = frame[-1]
        assert isinstance(sub, _Node)
        chains = sub.chains
        if counted is not None:
            low, high = counted
            count = low if high < 0 else high
            if count == 0:
                chains = frozenset()
            elif count >= 2:
                chains = frozenset({(count,)} | {(count, *c) for c in sub.chains})
                if not all(_fits(c, MAX_REPEAT) for c in chains):
                    raise GoRegexError(INVALID_REPEAT_SIZE, s[start : self.pos])
        frame[-1] = self._check_height(_Node(height=sub.height + 1, kind="repeat", chains=chains))

    # --- escapes ------------------------------------------------------------------

    def _parse_backslash(self) -> None:
        s, start = self.s, self.pos
        if start + 1 < len(s):
            c = s[start + 1]
            if c in "AbBz":
                self._push(_Node())
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
                self.pos = self._unicode_class(start)
                self._push(_Node())
                return
            if c.lower() in _PERL:
                self._push(_Node())
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
                    if value > 0x10FFFF:
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

    def _unicode_class(self, start: int) -> int:
        """``\\pX``, ``\\p{Name}``, ``\\p{^Name}`` (and ``\\P``) at ``start``: its end."""
        s = self.s
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
        name = name.removeprefix("^")
        if name != "Any" and not (name.isascii() and name.isalpha() and _unicode_class_known(name)):
            raise GoRegexError(INVALID_CHAR_RANGE, s[start:i])
        return i

    # --- classes ------------------------------------------------------------------

    def _parse_class(self) -> None:
        s, start = self.s, self.pos
        i = start + 1
        negated = False
        if i < len(s) and s[i] == "^":
            negated = True
            i += 1
        ranges: Ranges = []
        # A class holding \p, \d, [:alpha:] … is no small literal set.
        wide = negated or self.fold
        first = True
        while i >= len(s) or s[i] != "]" or first:
            if i >= len(s):
                raise GoRegexError(MISSING_BRACKET, s[start:])
            first = False
            if s.startswith("[:", i):
                end = s.find(":]", i + 2)
                if end >= 0:
                    name = s[i + 2 : end]
                    if _POSIX.get(name.removeprefix("^")) is None:
                        raise GoRegexError(INVALID_CHAR_RANGE, s[i : end + 2])
                    wide = True
                    i = end + 2
                    continue
            if s[i] == "\\" and i + 1 < len(s):
                c = s[i + 1]
                if c in "pP":
                    i = self._unicode_class(i)
                    wide = True
                    continue
                if c.lower() in _PERL:
                    wide = True
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
        literals = None
        if not wide and sum(hi - lo + 1 for lo, hi in ranges) <= MAX_LITERALS:
            literals = tuple(dict.fromkeys(chr(c) for lo, hi in ranges for c in range(lo, hi + 1)))
        self._push(_Node(literals=literals))

    def _class_char(self, i: int, class_start: int) -> tuple[int, int]:
        s = self.s
        if i >= len(s):
            raise GoRegexError(MISSING_BRACKET, s[class_start:])
        if s[i] == "\\":
            return self._escape(i)
        return ord(s[i]), i + 1


_REPEAT = re.compile(r"\{([0-9]+)(,)?([0-9]*)\}")
_PLAIN = re.compile(r"[^\\()|\[\]{}*+?.^$]+")


def _plain_run(s: str, pos: int) -> int:
    """How many characters from ``pos`` are plain text, less a last one that a
    repetition operator (``*``, ``+``, ``?``, ``{``) applies to."""
    m = _PLAIN.match(s, pos)
    if m is None:
        return 0
    end = m.end()
    if end < len(s) and s[end] in "*+?{":
        end -= 1
    return end - pos


def _go_int(text: str) -> int | None:
    """Go's ``parseInt`` for repeat counts: no leading zeros; huge counts read as -1."""
    if len(text) >= 2 and text[0] == "0":
        return None
    if len(text) > 8:
        return MAX_REPEAT + 1
    return int(text)


#: Longer patterns are not kept in the caches: a cache entry keeps its pattern text
#: alive, and thousands of distinct megabyte patterns must not pin gigabytes.
CACHED_PATTERN_LENGTH = 4096


def _bounded_cache(size: int) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """``functools.lru_cache(size)`` for patterns up to :data:`CACHED_PATTERN_LENGTH`."""

    def wrap(fn: Callable[[str], T]) -> Callable[[str], T]:
        cached = functools.lru_cache(maxsize=size)(fn)

        @functools.wraps(fn)
        def lookup(pattern: str) -> T:
            return cached(pattern) if len(pattern) <= CACHED_PATTERN_LENGTH else fn(pattern)

        return lookup

    return wrap


@_bounded_cache(16384)
def _parse(pattern: str) -> _Node:
    return _Checker(pattern).run()


def check(pattern: str) -> None:
    """Refuse ``pattern`` as Go's ``regexp.Compile`` would.

    Raises:
        GoRegexError: with Go's message.
    """
    _parse(pattern)


def literal_values(pattern: str) -> tuple[str, ...] | None:
    """Every string ``pattern`` matches whole, when it spells out a small finite set.

    ``web|db-[12]`` gives ``("web", "db-1", "db-2")``; case folding, classes such as
    ``\\d``, repeats and assertions give None, as does a pattern Go refuses.
    """
    try:
        return _parse(pattern).literals
    except GoRegexError:
        return None


def _utf8(text: str) -> bytes:
    # Lone surrogates (never valid label text) still reach RE2 as bytes, not an error;
    # RE2 reads invalid UTF-8 as Go does, one U+FFFD per bad byte.
    return text.encode("utf-8", "surrogatepass")


def _re2_compile(pattern: str, options: Any) -> Any:
    try:
        return re2.compile(pattern, options)
    except re2.error:
        # The checker accepted it, so RE2 ran out of its program budget.
        raise GoRegexError(TOO_LARGE, pattern) from None


_EXPAND = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


class GoRegexp:
    """A pattern compiled once with Go's meaning (RE2); matching is linear in the text."""

    __slots__ = ("_low", "_prefix", "_rx", "pattern")

    def __init__(self, pattern: str, *, starts_at_zero: bool = False) -> None:
        """Compile ``pattern``; ``starts_at_zero`` promises every match starts at offset 0.

        Raises:
            GoRegexError: as Go's regexp would.
        """
        check(pattern)
        self.pattern = pattern
        # The low-level RE2 object answers "is there a match" without building match
        # objects; the high-level one (with captures) serves replacement.
        self._low = _re2_compile(pattern, _BOOL_OPTIONS)._regexp
        self._rx: Any = None
        #: A prefix every match has: a ``startswith`` rules most values out at a
        #: fraction of an RE2 call (silences like ``instance=~"host-12-.*"``).
        self._prefix = _required_prefix(self._low) if starts_at_zero else ""

    def search(self, text: str) -> bool:
        """Go's ``MatchString``: is there a match anywhere in ``text``."""
        if self._prefix and not text.startswith(self._prefix):
            return False
        data = _utf8(text)
        spans = self._low.Match(_UNANCHORED, data, 0, len(data))
        return cast(bool, spans[0][0] >= 0)

    def replace_all(self, text: str, template: str) -> str:
        """Go's ``ReplaceAllString``: ``$1``, ``${1}``, ``$name`` expand, ``$$`` is ``$``.

        Go's loop exactly: an empty match right after the previous match is skipped
        (Python's ``re.sub`` would replace it), and the text is encoded once, so the
        cost stays linear in the text however many matches there are.
        """
        if self._rx is None:
            self._rx = _re2_compile(self.pattern, _OPTIONS)._regexp
        rx = self._rx
        names: dict[str, int] = {}
        for name, index in sorted(rx.NamedCapturingGroups(), key=lambda kv: kv[1]):
            names.setdefault(_text(name), index)
        data = _utf8(text)
        out: list[bytes] = []
        last_end = 0
        pos = 0
        while pos <= len(data):
            spans = rx.Match(_UNANCHORED, data, pos, len(data))
            start, end = spans[0]
            if start < 0:
                break
            out.append(data[last_end:start])
            if end > last_end or start == 0:
                out.append(_expand(template, data, spans, names))
            last_end = end
            width = _rune_width(data, pos)
            if pos + width > end:
                pos += width
            elif pos + 1 > end:
                pos += 1
            else:
                pos = end
        out.append(data[last_end:])
        return b"".join(out).decode("utf-8", "surrogatepass")


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _rune_width(data: bytes, pos: int) -> int:
    """Bytes of the UTF-8 sequence at ``pos`` (0 at the end; 1 for a stray byte)."""
    if pos >= len(data):
        return 0
    lead = data[pos]
    need = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    if need > 1 and not all(0x80 <= b < 0xC0 for b in data[pos + 1 : pos + need]):
        return 1
    return min(need, len(data) - pos)


def _group_index(name: str, names: dict[str, int]) -> int | None:
    """Go's ``extract``: digits without a leading zero are a group number, else a name."""
    if name.isascii() and name.isdigit() and (name == "0" or name[0] != "0") and len(name) < 9:
        return int(name)
    return names.get(name)


def _expand(template: str, data: bytes, spans: Any, names: dict[str, int]) -> bytes:
    """``template`` with each ``$`` reference replaced by its group's bytes."""
    out: list[bytes] = []
    last = 0
    for r in _EXPAND.finditer(template):
        out.append(_utf8(template[last : r.start()]))
        last = r.end()
        if r.group(0) == "$$":
            out.append(b"$")
            continue
        index = _group_index(r.group(1) or r.group(2), names)
        if index is not None and index < len(spans) and spans[index][0] >= 0:
            lo, hi = spans[index]
            out.append(data[lo:hi])
    out.append(_utf8(template[last:]))
    return b"".join(out)


_UNANCHORED = re2._Anchor.UNANCHORED


def _required_prefix(low: Any) -> str:
    """The text every match starting at offset 0 begins with (RE2's match range)."""
    ok, lo, hi = low.PossibleMatchRange(64)
    if not ok:
        return ""
    n = 0
    while n < min(len(lo), len(hi)) and lo[n] == hi[n]:
        n += 1
    # Cut back to a whole UTF-8 sequence.
    for cut in range(n, max(n - 4, -1), -1):
        try:
            return cast(str, lo[:cut].decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return ""


@_bounded_cache(4096)
def compile_go(pattern: str) -> GoRegexp:
    """``pattern`` as Go's ``regexp.MustCompile`` reads it (unanchored), cached.

    Raises:
        GoRegexError: Go's regexp would refuse ``pattern``; ``str()`` is Go's message.
    """
    return GoRegexp(pattern)


@_bounded_cache(16384)
def compile_anchored(pattern: str) -> GoRegexp:
    """Alertmanager's ``^(?:pattern)$``; its :meth:`GoRegexp.search` is the match, cached.

    Go parses the anchored text as one expression, so errors name it, and a pattern
    whose parentheses only balance inside it (``a)|(b``) is searched in that form.

    Raises:
        GoRegexError: as Go's regexp would, with the anchored text in the message.
    """
    try:
        check(pattern)
    except GoRegexError:
        # Balanced only with the wrapper (``a)|(b``): a match may start anywhere.
        return GoRegexp(f"^(?:{pattern})$")
    return GoRegexp(f"^(?:{pattern})$", starts_at_zero=True)


def anchored_union(patterns: list[str]) -> GoRegexp | None:
    """One program matching a text exactly when one of ``patterns`` matches it anchored
    (Alertmanager's ``^(?:p)$``), or None when it cannot be built faithfully.

    For prefilters only (the silence index): a union of many patterns is never shown to
    anyone, so it skips the checker, whose work grows faster than the pattern; each
    member must have passed :func:`check` on its own. ``\\Q`` without ``\\E`` would
    swallow the wrapper, so patterns holding ``\\Q`` give None, as does a union too large
    for RE2's budget.
    """
    if not patterns or any("\\Q" in p for p in patterns):
        return None
    union = GoRegexp.__new__(GoRegexp)
    union.pattern = "^(?:" + "|".join(f"(?:{p})" for p in patterns) + ")$"
    try:
        union._low = _re2_compile(union.pattern, _BOOL_OPTIONS)._regexp
    except GoRegexError:
        return None
    union._rx = None
    union._prefix = ""
    return union


#: Above every UTF-8 text: the top of an unbounded match range.
_TOP = b"\xff"


class RangeFilter:
    """Answers "no member can match this text" for a group of patterns from their
    possible-match ranges (RE2's ``PossibleMatchRange``: every text a pattern matches
    lies between two strings), with one bisect: the ranges are sorted by their low end,
    with the highest high end so far beside them. A text outside every range is
    :meth:`excludes`'d; one inside some range may or may not match.
    """

    __slots__ = ("_lows", "_reach", "ranges")

    def __init__(self, ranges: list[tuple[bytes, bytes]]) -> None:
        self.ranges = sorted(ranges)
        self._lows = [lo for lo, _ in self.ranges]
        #: _reach[i]: the highest high end among the first i + 1 ranges.
        self._reach = list(itertools.accumulate((hi for _, hi in self.ranges), max))

    def excludes_bytes(self, data: bytes) -> bool:
        """Whether no member can match the UTF-8 text ``data``."""
        # The ranges starting at or below the text; one of them must reach it.
        k = bisect.bisect_right(self._lows, data)
        return k == 0 or self._reach[k - 1] < data

    def excludes(self, text: str) -> bool:
        """Whether no member can match ``text``."""
        return self.excludes_bytes(_utf8(text))

    def bounds(self) -> tuple[list[bytes], list[bytes]]:
        """The sorted low ends and the highest high end so far beside each: what
        :meth:`excludes_bytes` bisects (the silence index hands them to its C loop)."""
        return self._lows, self._reach


class AnchoredSet:
    """Patterns matched together, each as Alertmanager's ``^(?:p)$``, in one pass of
    RE2's ``RE2::Set`` DFA: :meth:`matches` names every member a text matches.

    The members' possible-match ranges sit in a :class:`RangeFilter`, so a text outside
    every range is answered "none" without the call into RE2 (issue 15: a new
    ``instance`` value per alert against keys such as ``db-.*`` cost 1.1 us a set, the
    bisect 0.2 us).
    """

    __slots__ = ("_set", "filter")

    def __init__(self, low: Any, ranges: list[tuple[bytes, bytes]]) -> None:
        self._set = low
        self.filter = RangeFilter(ranges)

    def matches(self, text: str) -> list[int]:
        """The indices (in the order added) of the members matching all of ``text``."""
        data = _utf8(text)
        if self.filter.excludes_bytes(data):
            return []
        return cast(list[int], self._set.Match(data))


def match_range(pattern: str) -> tuple[bytes, bytes]:
    """Bounds on every text ``^(?:pattern)$`` matches, for a pattern :func:`check` passes
    (so every match starts at offset 0, which RE2's range assumes); ``(b"", _TOP)`` when
    RE2 gives none."""
    ok, lo, hi = compile_anchored(pattern)._low.PossibleMatchRange(64)
    return (lo, hi) if ok else (b"", _TOP)


def anchored_set(patterns: list[str]) -> AnchoredSet | None:
    """An :class:`AnchoredSet` of ``patterns``, or None when it cannot be built faithfully.

    Each member is added in Alertmanager's own wrapped form, so it means what
    :func:`compile_anchored` means; the rules on members are :func:`anchored_union`'s
    (checked alone, no ``\\Q``). A set's match cannot fail once built: RE2 refuses to
    compile a set whose DFA budget could run out, and its set DFA never gives up on a
    text (it has no NFA to fall back to), so an empty answer means "no member matches".
    """
    if not patterns or any("\\Q" in p for p in patterns):
        return None
    low = re2._re2.Set(_UNANCHORED, _BOOL_OPTIONS)
    for p in patterns:
        if low.Add(_utf8(f"^(?:{p})$")) < 0:
            return None
    if not low.Compile():
        return None
    return AnchoredSet(low, [match_range(p) for p in patterns])


def anchored_literals(pattern: str) -> frozenset[str] | None:
    """Every value Alertmanager's ``^(?:pattern)$`` matches, when a small finite set.

    ``\\Q`` without ``\\E`` swallows the wrapper's ``)$``, so such patterns are left out.
    """
    if "\\Q" in pattern:
        return None
    values = literal_values(pattern)
    return frozenset(values) if values is not None else None
