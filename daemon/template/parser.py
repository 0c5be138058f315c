"""Go text/template parser: tokens → :class:`~daemon.template.nodes.Tree` objects.

It follows Go's ``text/template/parse`` closely so that the same texts are accepted and
the same errors are reported, worded ``template: <name>:<line>: <message>`` with the
line of the offending token. ``{{define}}`` and ``{{block}}`` produce extra trees;
:func:`parse` returns all trees of one text keyed by name.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.template.errors import TemplateParseError
from daemon.template.lexer import Item, Token, lex
from daemon.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    Tree,
    VariableNode,
    is_empty_tree,
)

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


class _SyntaxError(Exception):
    pass


def unquote(s: str) -> str:
    """Go's ``strconv.Unquote`` for "…", `…` and '…' literals; ``invalid syntax`` on error."""
    if len(s) < 2 or s[0] != s[-1] or s[0] not in "\"'`":
        raise _SyntaxError("invalid syntax")
    q = s[0]
    body = s[1:-1]
    if q == "`":
        if "`" in body:
            raise _SyntaxError("invalid syntax")
        return body.replace("\r", "")
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == q or ch == "\n":
            raise _SyntaxError("invalid syntax")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise _SyntaxError("invalid syntax")
        e = body[i]
        i += 1
        if e in _SIMPLE_ESCAPES:
            if (e == "'" and q == '"') or (e == '"' and q == "'"):
                raise _SyntaxError("invalid syntax")
            out.append(_SIMPLE_ESCAPES[e])
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            hexs = body[i : i + n]
            if len(hexs) != n or any(c not in "0123456789abcdefABCDEF" for c in hexs):
                raise _SyntaxError("invalid syntax")
            i += n
            v = int(hexs, 16)
            if e == "x":
                # A byte; bytes ≥ 0x80 make invalid UTF-8 in Go, rare in templates.
                out.append(chr(v))
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise _SyntaxError("invalid syntax")
                out.append(chr(v))
        elif e in "01234567":
            octs = body[i - 1 : i + 2]
            if len(octs) != 3 or any(c not in "01234567" for c in octs):
                raise _SyntaxError("invalid syntax")
            v = int(octs, 8)
            if v > 255:
                raise _SyntaxError("invalid syntax")
            i += 2
            out.append(chr(v))
        else:
            raise _SyntaxError("invalid syntax")
    result = "".join(out)
    if q == "'" and len(result) != 1:
        raise _SyntaxError("invalid syntax")
    return result


def parse_number(text: str, typ: Item) -> int | float | complex:
    """The value of a number, char or complex literal, as Go's ``newNumber`` reads it."""
    from daemon.gocompat.strconv import go_quote

    if typ is Item.CHAR_CONSTANT:
        try:
            return ord(unquote(text))
        except _SyntaxError:
            raise _SyntaxError(f"malformed character constant: {text}") from None
    if typ is Item.COMPLEX or text.endswith("i"):
        try:
            return complex(text.replace("i", "j").replace("_", ""))
        except ValueError:
            raise _SyntaxError(f"illegal number syntax: {go_quote(text)}") from None
    clean = text.replace("_", "")
    body = clean.lstrip("+-")
    neg = clean.startswith("-")
    low = body.lower()
    try:
        if low.startswith(("0x", "0o", "0b")):
            if "p" in low or "." in low:
                v: int | float = float.fromhex(clean)
            else:
                v = int(body, 0)
                v = -v if neg else v
            return v
        if "." in body or "e" in low:
            f = float(clean)
            return f
        if len(body) > 1 and body[0] == "0" and body.isdigit():
            v = int(body, 8)
            return -v if neg else v
        v = int(body, 10)
        return -v if neg else v
    except ValueError:
        raise _SyntaxError(f"illegal number syntax: {go_quote(text)}") from None


class Parser:
    """Parses one text; ``trees`` collects every template it defines."""

    def __init__(
        self,
        name: str,
        text: str,
        has_function: Callable[[str], bool],
        parse_name: str | None = None,
    ) -> None:
        self.name = name
        self.parse_name = name if parse_name is None else parse_name
        self.text = text
        self.has_function = has_function
        self.tokens = lex(text)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.last: Token = self.tokens[0]
        self.trees: dict[str, Tree] = {}

    # -- token helpers ---------------------------------------------------------------

    def next(self) -> Token:
        tok = self.tokens[self.i] if self.i < len(self.tokens) else self.tokens[-1]
        self.i += 1
        self.last = tok
        return tok

    def backup(self, n: int = 1) -> None:
        self.i -= n

    def peek(self) -> Token:
        tok = self.tokens[self.i] if self.i < len(self.tokens) else self.tokens[-1]
        self.last = tok
        return tok

    def next_non_space(self) -> Token:
        while True:
            tok = self.next()
            if tok.typ is not Item.SPACE:
                return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    def errorf(self, msg: str) -> TemplateParseError:
        return TemplateParseError(f"template: {self.parse_name}:{self.last.line}: {msg}")

    def expect(self, typ: Item, context: str) -> Token:
        tok = self.next_non_space()
        if tok.typ is not typ:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> TemplateParseError:
        if tok.typ is Item.ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != tok.line:
                extra = f" in action started at {self.parse_name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            return self.errorf(f"{tok}{extra}")
        return self.errorf(f"unexpected {tok} in {context}")

    # -- top level -------------------------------------------------------------------

    def parse(self) -> dict[str, Tree]:
        tree = Tree(self.name, self.parse_name, self.text)
        root = ListNode(self.peek().pos)
        while self.peek().typ is not Item.EOF:
            if self.peek().typ is Item.LEFT_DELIM:
                at = self.i
                delim = self.next()
                if self.next_non_space().typ is Item.DEFINE:
                    self.action_line = delim.line
                    self.parse_definition()
                    self.action_line = 0
                    continue
                self.i = at
            n = self.text_or_action()
            if isinstance(n, EndNode | ElseNode):
                raise self.errorf(f"unexpected {n}")
            root.nodes.append(n)
        tree.root = root
        self.add(tree)
        return self.trees

    def add(self, tree: Tree) -> None:
        old = self.trees.get(tree.name)
        if old is None or is_empty_tree(old.root):
            self.trees[tree.name] = tree
            return
        if not is_empty_tree(tree.root):
            raise self.errorf(f"template: multiple definition of template {_q(tree.name)}")

    def parse_definition(self) -> None:
        tok = self.next_non_space()
        name = self.template_name(tok, "define clause")
        self.expect(Item.RIGHT_DELIM, "define clause")
        saved_vars = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in define clause")
        self.add(Tree(name, self.parse_name, self.text, body))

    def template_name(self, tok: Token, context: str) -> str:
        if tok.typ in (Item.STRING, Item.RAW_STRING):
            try:
                return unquote(tok.val)
            except _SyntaxError as e:
                raise self.errorf(str(e)) from None
        raise self.unexpected(tok, context)

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ is not Item.EOF:
            n = self.text_or_action()
            if isinstance(n, EndNode | ElseNode):
                return lst, n
            lst.nodes.append(n)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.typ is Item.TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.typ is Item.LEFT_DELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        raise self.unexpected(tok, "input")

    def action(self) -> Node:
        tok = self.next_non_space()
        t = tok.typ
        if t is Item.BLOCK:
            return self.block_control()
        if t is Item.BREAK:
            return self.break_control(tok)
        if t is Item.CONTINUE:
            return self.continue_control(tok)
        if t is Item.ELSE:
            return self.else_control()
        if t is Item.END:
            self.expect(Item.RIGHT_DELIM, "end")
            return EndNode(tok.pos)
        if t is Item.IF:
            return self.parse_control("if", tok)
        if t is Item.RANGE:
            return self.parse_control("range", tok)
        if t is Item.TEMPLATE:
            return self.template_control(tok)
        if t is Item.WITH:
            return self.parse_control("with", tok)
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, tok.line, self.pipeline("command", Item.RIGHT_DELIM))

    def break_control(self, tok: Token) -> Node:
        if self.range_depth == 0:
            raise self.errorf("{{break}} outside {{range}}")
        self.expect(Item.RIGHT_DELIM, "{{break}}")
        return BreakNode(tok.pos, tok.line)

    def continue_control(self, tok: Token) -> Node:
        if self.range_depth == 0:
            raise self.errorf("{{continue}} outside {{range}}")
        self.expect(Item.RIGHT_DELIM, "{{continue}}")
        return ContinueNode(tok.pos, tok.line)

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (Item.IF, Item.WITH):
            # "else if" / "else with": the caller parses the chained control.
            return ElseNode(peek.pos, peek.line, peek.val)
        tok = self.expect(Item.RIGHT_DELIM, "else")
        return ElseNode(tok.pos, tok.line)

    def parse_control(self, kind: str, start: Token) -> BranchNode:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(kind, Item.RIGHT_DELIM)
            if kind == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if kind == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, ElseNode):
                if nxt.chained is not None and nxt.chained == kind and kind != "range":
                    # {{else if …}} is {{else}}{{if …}}…{{end}}{{end}}, sharing one {{end}}.
                    kw = self.next_non_space()
                    else_list = ListNode(nxt.pos)
                    else_list.nodes.append(self.parse_control(kind, kw))
                else:
                    else_list, nxt2 = self.item_list()
                    if not isinstance(nxt2, EndNode):
                        raise self.errorf(f"expected end; found {nxt2}")
            return BranchNode(kind, start.pos, start.line, pipe, body, else_list)
        finally:
            del self.vars[mark:]

    def template_control(self, start: Token) -> Node:
        tok = self.next_non_space()
        name = self.template_name(tok, "template clause")
        pipe: PipeNode | None = None
        if self.next_non_space().typ is not Item.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline("template clause", Item.RIGHT_DELIM)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def block_control(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, Item.RIGHT_DELIM)
        saved_vars = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        self.add(Tree(name, self.parse_name, self.text, body))
        return TemplateNode(tok.pos, tok.line, name, pipe)

    # -- pipelines -------------------------------------------------------------------

    def pipeline(self, context: str, end: Item) -> PipeNode:
        tok = self.peek_non_space()
        pipe = PipeNode(tok.pos, tok.line)
        while True:
            v = self.peek_non_space()
            if v.typ is not Item.VARIABLE:
                break
            start = self.i
            self.next_non_space()
            after_var = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (Item.ASSIGN, Item.DECLARE):
                pipe.is_assign = nxt.typ is Item.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                break
            if nxt.typ is Item.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (
                        Item.VARIABLE,
                        Item.RIGHT_DELIM,
                        Item.RIGHT_PAREN,
                    ):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            del after_var
            self.i = start
            break
        while True:
            tok = self.next_non_space()
            if tok.typ is end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.typ in (
                Item.BOOL,
                Item.CHAR_CONSTANT,
                Item.COMPLEX,
                Item.DOT,
                Item.FIELD,
                Item.IDENTIFIER,
                Item.NUMBER,
                Item.NIL,
                Item.RAW_STRING,
                Item.STRING,
                Item.VARIABLE,
                Item.LEFT_PAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                raise self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ is Item.SPACE:
                continue
            if tok.typ in (Item.RIGHT_DELIM, Item.RIGHT_PAREN):
                self.backup()
            elif tok.typ is Item.PIPE:
                pass
            else:
                raise self.unexpected(tok, "operand")
            break
        if not cmd.args:
            raise self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ is Item.FIELD:
            fields: list[str] = []
            pos = self.peek().pos
            while self.peek().typ is Item.FIELD:
                fields.append(self.next().val[1:])
            # Go re-creates the node at the chain's position: the first trailing field.
            if isinstance(node, FieldNode):
                return FieldNode(pos, node.ident + fields)
            if isinstance(node, VariableNode):
                return VariableNode(pos, node.ident + fields)
            if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
                raise self.errorf(f"unexpected . after term {_q(str(node))}")
            return ChainNode(pos, node, fields)
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        t = tok.typ
        if t is Item.IDENTIFIER:
            if not self.has_function(tok.val):
                raise self.errorf(f"function {_q(tok.val)} not defined")
            return IdentifierNode(tok.pos, tok.val)
        if t is Item.DOT:
            return DotNode(tok.pos)
        if t is Item.NIL:
            return NilNode(tok.pos)
        if t is Item.VARIABLE:
            name = tok.val.split(".")[0]
            if name not in self.vars:
                raise self.errorf(f"undefined variable {_q(name)}")
            return VariableNode(tok.pos, tok.val.split("."))
        if t is Item.FIELD:
            return FieldNode(tok.pos, tok.val[1:].split("."))
        if t is Item.BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if t in (Item.CHAR_CONSTANT, Item.COMPLEX, Item.NUMBER):
            try:
                return NumberNode(tok.pos, tok.val, parse_number(tok.val, t))
            except _SyntaxError as e:
                raise self.errorf(str(e)) from None
        if t is Item.LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", Item.RIGHT_PAREN)
        if t in (Item.STRING, Item.RAW_STRING):
            try:
                return StringNode(tok.pos, tok.val, unquote(tok.val))
            except _SyntaxError as e:
                raise self.errorf(str(e)) from None
        self.backup()
        return None


def _q(s: str) -> str:
    from daemon.gocompat.strconv import go_quote

    return go_quote(s)


def parse(
    name: str, text: str, has_function: Callable[[str], bool], parse_name: str | None = None
) -> dict[str, Tree]:
    """Every template that ``text`` defines, its top level under ``name``."""
    return Parser(name, text, has_function, parse_name).parse()
