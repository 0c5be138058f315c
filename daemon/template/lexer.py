"""Go text/template lexer.

Theory of operation: the text alternates between plain text and actions delimited by
``{{`` and ``}}``. ``{{- `` trims the whitespace before the action and `` -}}`` the
whitespace after it (the marker must touch a space, so ``{{-3}}`` is the number -3).
``{{/* … */}}`` is a comment. Inside an action the lexer yields Go's item kinds.

Positions are ``str`` offsets into the whole text; lines count ``\\n`` before the
item's start, as Go's lexer does, so error messages name the same lines.
"""

from __future__ import annotations

import enum
import unicodedata

import attrs

LEFT_DELIM = "{{"
RIGHT_DELIM = "}}"
LEFT_COMMENT = "/*"
RIGHT_COMMENT = "*/"
_SPACE = " \t\r\n"


class Item(enum.Enum):
    ERROR = "error"
    BOOL = "bool"
    CHAR = "char"
    CHAR_CONSTANT = "char constant"
    COMPLEX = "complex"
    ASSIGN = "="
    DECLARE = ":="
    EOF = "EOF"
    FIELD = "field"
    IDENTIFIER = "identifier"
    LEFT_DELIM = "left delim"
    LEFT_PAREN = "("
    NUMBER = "number"
    PIPE = "|"
    RAW_STRING = "raw string"
    RIGHT_DELIM = "right delim"
    RIGHT_PAREN = ")"
    SPACE = "space"
    STRING = "string"
    TEXT = "text"
    VARIABLE = "variable"
    # Keywords.
    BLOCK = "block"
    BREAK = "break"
    CONTINUE = "continue"
    DOT = "."
    DEFINE = "define"
    ELSE = "else"
    END = "end"
    IF = "if"
    NIL = "nil"
    RANGE = "range"
    TEMPLATE = "template"
    WITH = "with"


KEYWORDS = {
    ".": Item.DOT,
    "block": Item.BLOCK,
    "break": Item.BREAK,
    "continue": Item.CONTINUE,
    "define": Item.DEFINE,
    "else": Item.ELSE,
    "end": Item.END,
    "if": Item.IF,
    "range": Item.RANGE,
    "nil": Item.NIL,
    "template": Item.TEMPLATE,
    "with": Item.WITH,
}
_KEYWORD_ITEMS = frozenset(KEYWORDS.values())


@attrs.frozen
class Token:
    typ: Item
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        # Go's item.String(): how tokens appear inside "unexpected …" messages.
        if self.typ is Item.EOF:
            return "EOF"
        if self.typ is Item.ERROR:
            return self.val
        if self.typ in _KEYWORD_ITEMS:
            return f"<{self.val}>"
        if len(self.val) > 10:
            from daemon.gocompat.strconv import go_quote

            return go_quote(self.val[:10]) + "..."
        from daemon.gocompat.strconv import go_quote

        return go_quote(self.val)


def is_alnum(ch: str) -> bool:
    """Go's isAlphaNumeric: underscore, Unicode letter or digit."""
    if ch == "_":
        return True
    if not ch:
        return False
    cat = unicodedata.category(ch)
    return cat.startswith("L") or cat == "Nd"


def _has_right_trim(s: str, pos: int) -> bool:
    return pos + 1 < len(s) and s[pos] in _SPACE and s[pos + 1] == "-"


class Lexer:
    """Turns template text into tokens; call :meth:`tokens` once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.line = 1
        self.start_line = 1
        self.paren_depth = 0
        self.out: list[Token] = []

    def tokens(self) -> list[Token]:
        state = self._lex_text
        while state is not None:
            state = state()  # type: ignore[assignment]
        return self.out

    # -- primitives -------------------------------------------------------------------

    def _next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def _backup(self) -> None:
        self.pos -= 1
        if self.text[self.pos] == "\n":
            self.line -= 1

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _emit(self, typ: Item) -> None:
        self.out.append(Token(typ, self.start, self.text[self.start : self.pos], self.start_line))
        self.start = self.pos
        self.start_line = self.line

    def _ignore(self) -> None:
        self.line += self.text.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def _error(self, msg: str) -> object:
        """Emit an error token; returning None stops the state machine."""
        self.out.append(Token(Item.ERROR, self.start, msg, self.start_line))
        return None

    def _at_right_delim(self) -> tuple[bool, bool]:
        if self.text.startswith(RIGHT_DELIM, self.pos):
            return True, False
        if _has_right_trim(self.text, self.pos) and self.text.startswith(RIGHT_DELIM, self.pos + 2):
            return True, True
        return False, False

    def _at_terminator(self) -> bool:
        ch = self._peek()
        if ch == "" or ch in _SPACE or ch in ".,|:)(=":
            return True
        return ch == RIGHT_DELIM[0]

    # -- states -----------------------------------------------------------------------

    def _lex_text(self) -> object:
        i = self.text.find(LEFT_DELIM, self.pos)
        if i < 0:
            self.pos = len(self.text)
            self.line += self.text.count("\n", self.start, self.pos)
            if self.pos > self.start:
                self.out.append(
                    Token(Item.TEXT, self.start, self.text[self.start :], self.start_line)
                )
            self.start = self.pos
            self.start_line = self.line
            self._emit(Item.EOF)
            return None
        self.pos = i
        end = i
        after = i + len(LEFT_DELIM)
        if self.text.startswith("-", after) and after + 1 < len(self.text):
            if self.text[after + 1] in _SPACE:
                while end > self.start and self.text[end - 1] in _SPACE:
                    end -= 1
        if end > self.start:
            self.out.append(
                Token(Item.TEXT, self.start, self.text[self.start : end], self.start_line)
            )
        self.line += self.text.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line
        return self._lex_left_delim

    def _lex_left_delim(self) -> object:
        self.pos += len(LEFT_DELIM)
        trim = (
            self.text.startswith("-", self.pos)
            and self.pos + 1 < len(self.text)
            and self.text[self.pos + 1] in _SPACE
        )
        after = 2 if trim else 0
        if self.text.startswith(LEFT_COMMENT, self.pos + after):
            self.pos += after
            self._ignore()
            return self._lex_comment
        self._emit(Item.LEFT_DELIM)
        self.pos += after
        self._ignore()
        self.paren_depth = 0
        return self._lex_inside_action

    def _lex_comment(self) -> object:
        self.pos += len(LEFT_COMMENT)
        i = self.text.find(RIGHT_COMMENT, self.pos)
        if i < 0:
            return self._error("unclosed comment")
        self.pos = i + len(RIGHT_COMMENT)
        delim, trim = self._at_right_delim()
        if not delim:
            return self._error("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += len(RIGHT_DELIM)
        if trim:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
                self.pos += 1
        self._ignore()
        return self._lex_text

    def _lex_right_delim(self, trim: bool) -> object:
        if trim:
            self.pos += 2
            self._ignore()
        self.pos += len(RIGHT_DELIM)
        self._emit(Item.RIGHT_DELIM)
        if trim:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
                self.pos += 1
            self._ignore()
        return self._lex_text

    def _lex_inside_action(self) -> object:
        delim, trim = self._at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self._lex_right_delim(trim)
            return self._error("unclosed left paren")
        ch = self._next()
        if ch == "":
            return self._error("unclosed action")
        if ch in _SPACE:
            self._backup()
            return self._lex_space
        if ch == "=":
            self._emit(Item.ASSIGN)
        elif ch == ":":
            if self._next() != "=":
                return self._error("expected :=")
            self._emit(Item.DECLARE)
        elif ch == "|":
            self._emit(Item.PIPE)
        elif ch == '"':
            return self._lex_quote
        elif ch == "`":
            return self._lex_raw_quote
        elif ch == "$":
            return self._lex_variable
        elif ch == "'":
            return self._lex_char
        elif ch == "." and not ("0" <= self._peek() <= "9" and self._peek() != ""):
            return self._lex_field
        elif ch in "+-." or "0" <= ch <= "9":
            self._backup()
            return self._lex_number
        elif is_alnum(ch):
            self._backup()
            return self._lex_identifier
        elif ch == "(":
            self._emit(Item.LEFT_PAREN)
            self.paren_depth += 1
        elif ch == ")":
            self._emit(Item.RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self._error("unexpected right paren")
        elif ord(ch) < 0x7F and ch.isprintable():
            self._emit(Item.CHAR)
        else:
            return self._error(f"unrecognized character in action: U+{ord(ch):04X}")
        return self._lex_inside_action

    def _lex_space(self) -> object:
        spaces = 0
        while self._peek() != "" and self._peek() in _SPACE:
            self._next()
            spaces += 1
        # A trim-marked right delimiter starts with a space: leave that one for it.
        if _has_right_trim(self.text, self.pos - 1) and self.text.startswith(
            RIGHT_DELIM, self.pos + 1
        ):
            self._backup()
            if spaces == 1:
                return self._lex_right_delim(True)
        self._emit(Item.SPACE)
        return self._lex_inside_action

    def _lex_identifier(self) -> object:
        while is_alnum(self._peek()):
            self._next()
        if not self._at_terminator():
            ch = self._peek()
            return self._error(f"bad character U+{ord(ch):04X} '{ch}'")
        word = self.text[self.start : self.pos]
        if word in KEYWORDS:
            self._emit(KEYWORDS[word])
        elif word in ("true", "false"):
            self._emit(Item.BOOL)
        else:
            self._emit(Item.IDENTIFIER)
        return self._lex_inside_action

    def _lex_field(self) -> object:
        return self._lex_field_or_variable(Item.FIELD)

    def _lex_variable(self) -> object:
        if self._at_terminator():
            self._emit(Item.VARIABLE)
            return self._lex_inside_action
        return self._lex_field_or_variable(Item.VARIABLE)

    def _lex_field_or_variable(self, typ: Item) -> object:
        if self._at_terminator():
            self._emit(Item.VARIABLE if typ is Item.VARIABLE else Item.DOT)
            return self._lex_inside_action
        while is_alnum(self._peek()):
            self._next()
        if not self._at_terminator():
            ch = self._peek()
            return self._error(f"bad character U+{ord(ch):04X} '{ch}'")
        self._emit(typ)
        return self._lex_inside_action

    def _lex_char(self) -> object:
        return self._lex_escaped("'", Item.CHAR_CONSTANT, "unterminated character constant")

    def _lex_escaped(self, close: str, item: Item, unterminated: str) -> object:
        """A char constant or quoted string: backslash escapes, no newline inside."""
        while True:
            ch = self._next()
            if ch == "\\":
                if self._next() not in ("", "\n"):
                    continue
                return self._error(unterminated)
            if ch in ("", "\n"):
                return self._error(unterminated)
            if ch == close:
                break
        self._emit(item)
        return self._lex_inside_action

    def _scan_number(self) -> bool:
        if self._peek() in ("+", "-") and self._peek():
            self._next()
        digits = "0123456789_"
        if self._peek() == "0":
            self._next()
            nxt = self._peek()
            if nxt and nxt in "xX":
                self._next()
                digits = "0123456789abcdefABCDEF_"
            elif nxt and nxt in "oO":
                self._next()
                digits = "01234567_"
            elif nxt and nxt in "bB":
                self._next()
                digits = "01_"
        while self._peek() and self._peek() in digits:
            self._next()
        if self._peek() == ".":
            self._next()
            while self._peek() and self._peek() in digits:
                self._next()
        if len(digits) == 11 and self._peek() and self._peek() in "eE":
            self._next()
            if self._peek() and self._peek() in "+-":
                self._next()
            while self._peek() and self._peek() in "0123456789_":
                self._next()
        if len(digits) == 23 and self._peek() and self._peek() in "pP":
            self._next()
            if self._peek() and self._peek() in "+-":
                self._next()
            while self._peek() and self._peek() in "0123456789_":
                self._next()
        if self._peek() == "i":
            self._next()
        if is_alnum(self._peek()):
            self._next()
            return False
        return True

    def _lex_number(self) -> object:
        if not self._scan_number():
            from daemon.gocompat.strconv import go_quote

            return self._error(f"bad number syntax: {go_quote(self.text[self.start : self.pos])}")
        if self._peek() in ("+", "-") and self._peek():
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                from daemon.gocompat.strconv import go_quote

                text = self.text[self.start : self.pos]
                return self._error(f"bad number syntax: {go_quote(text)}")
            self._emit(Item.COMPLEX)
        else:
            self._emit(Item.NUMBER)
        return self._lex_inside_action

    def _lex_quote(self) -> object:
        return self._lex_escaped('"', Item.STRING, "unterminated quoted string")

    def _lex_raw_quote(self) -> object:
        while True:
            ch = self._next()
            if ch == "":
                return self._error("unterminated raw quoted string")
            if ch == "`":
                break
        self._emit(Item.RAW_STRING)
        return self._lex_inside_action


def lex(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an EOF or an ERROR token."""
    return Lexer(text).tokens()
