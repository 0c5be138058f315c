"""Parse-tree nodes of Go templates; ``str(node)`` is Go's ``Node.String()``.

Each node keeps its ``pos`` (offset into the parsed text) and the :class:`Tree` that
owns that text, so execution errors can name ``<file>:<line>:<col>`` as Go does.
"""

from __future__ import annotations

from typing import Union

import attrs

from daemon.gocompat.strconv import go_quote


@attrs.define(eq=False)
class Tree:
    """One named template: its body and where its text came from."""

    name: str
    parse_name: str
    text: str
    root: ListNode | None = None

    def location(self, pos: int) -> str:
        """``<parse name>:<line>:<byte column>`` of ``pos``, like Go's ErrorContext."""
        before = self.text[:pos]
        nl = before.rfind("\n")
        col = len(before[nl + 1 :].encode("utf-8", "surrogatepass"))
        return f"{self.parse_name}:{before.count(chr(10)) + 1}:{col}"


@attrs.define(eq=False)
class TextNode:
    pos: int
    text: str

    def __str__(self) -> str:
        return go_quote(self.text)


@attrs.define(eq=False)
class CommentNode:
    pos: int
    text: str

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


@attrs.define(eq=False)
class DotNode:
    pos: int

    def __str__(self) -> str:
        return "."


@attrs.define(eq=False)
class NilNode:
    pos: int

    def __str__(self) -> str:
        return "nil"


@attrs.define(eq=False)
class BoolNode:
    pos: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@attrs.define(eq=False)
class NumberNode:
    pos: int
    text: str
    #: The Go constant value: int for integers and runes, float otherwise, complex too.
    value: int | float | complex

    def __str__(self) -> str:
        return self.text


@attrs.define(eq=False)
class StringNode:
    pos: int
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@attrs.define(eq=False)
class FieldNode:
    pos: int
    ident: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@attrs.define(eq=False)
class VariableNode:
    pos: int
    ident: list[str]

    def __str__(self) -> str:
        return ".".join(self.ident)


@attrs.define(eq=False)
class IdentifierNode:
    pos: int
    ident: str

    def __str__(self) -> str:
        return self.ident


@attrs.define(eq=False)
class ChainNode:
    pos: int
    node: Node
    field: list[str]

    def __str__(self) -> str:
        inner = str(self.node)
        if isinstance(self.node, PipeNode):
            inner = "(" + inner + ")"
        return inner + "".join("." + f for f in self.field)


@attrs.define(eq=False)
class CommandNode:
    pos: int
    args: list[Node] = attrs.Factory(list)

    def __str__(self) -> str:
        parts = []
        for a in self.args:
            if isinstance(a, PipeNode):
                parts.append("(" + str(a) + ")")
            else:
                parts.append(str(a))
        return " ".join(parts)


@attrs.define(eq=False)
class PipeNode:
    pos: int
    line: int
    is_assign: bool = False
    decl: list[VariableNode] = attrs.Factory(list)
    cmds: list[CommandNode] = attrs.Factory(list)

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(d) for d in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


@attrs.define(eq=False)
class ActionNode:
    pos: int
    line: int
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@attrs.define(eq=False)
class ListNode:
    pos: int
    nodes: list[Node] = attrs.Factory(list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@attrs.define(eq=False)
class BranchNode:
    """``if``, ``with`` and ``range`` share this shape; ``kind`` tells them apart."""

    kind: str
    pos: int
    line: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None

    def __str__(self) -> str:
        s = "{{" + self.kind + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


@attrs.define(eq=False)
class BreakNode:
    pos: int
    line: int

    def __str__(self) -> str:
        return "{{break}}"


@attrs.define(eq=False)
class ContinueNode:
    pos: int
    line: int

    def __str__(self) -> str:
        return "{{continue}}"


@attrs.define(eq=False)
class TemplateNode:
    pos: int
    line: int
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        if self.pipe is None:
            return "{{template " + go_quote(self.name) + "}}"
        return "{{template " + go_quote(self.name) + " " + str(self.pipe) + "}}"


@attrs.define(eq=False)
class EndNode:
    pos: int

    def __str__(self) -> str:
        return "{{end}}"


@attrs.define(eq=False)
class ElseNode:
    pos: int
    line: int
    #: "if" or "with" when this is ``else if`` / ``else with`` (the keyword is consumed).
    chained: str | None = None

    def __str__(self) -> str:
        return "{{else}}"


Node = Union[  # noqa: UP007 - attrs string annotations resolve this alias at runtime
    TextNode,
    CommentNode,
    DotNode,
    NilNode,
    BoolNode,
    NumberNode,
    StringNode,
    FieldNode,
    VariableNode,
    IdentifierNode,
    ChainNode,
    CommandNode,
    PipeNode,
    ActionNode,
    ListNode,
    BranchNode,
    BreakNode,
    ContinueNode,
    TemplateNode,
    EndNode,
    ElseNode,
]


def is_empty_tree(node: Node | None) -> bool:
    """Go's ``IsEmptyTree``: only whitespace text, comments and empty lists."""
    if node is None:
        return True
    if isinstance(node, ListNode):
        return all(is_empty_tree(n) for n in node.nodes)
    if isinstance(node, TextNode):
        return node.text.strip(" \t\r\n") == ""
    return isinstance(node, CommentNode)
