"""html/template's static pass: the errors Go reports before a template runs.

Go escapes a whole template, every branch and every called template, before executing
it, and refuses it if any action stands in a context it cannot escape for. The output
itself is escaped by :class:`htmlescape.HtmlSink` as it is written; this pass only walks
the tree the way Go's escaper does, so that tocsin fails where Alertmanager fails:

* ``{{if}}``/``{{with}}``/``{{range}}`` branches must end in the same context. Contexts
  that differ only in the URL part or in what a JS ``/`` means join into an "unknown"
  one, which an action or a ``/`` met later refuses; a context joins its nudged form
  (``<p title={{if .C}}{{.}}{{end}}``).
* A range body must end where it began, counting ``{{break}}`` and ``{{continue}}``.
* A called template is walked in the caller's context (once per context).
* Everything :func:`htmlcontext.escape_text` and :func:`htmlescape.escapers` refuse,
  in an untaken branch too.

Pure. Raises :class:`~daemon.template.errors.TemplateExecError` with Go's wording.
"""

from __future__ import annotations

import attrs

from daemon.template.errors import TemplateExecError
from daemon.template.execute import Lookup, escape_error, misplaced_escaper, predefined_escaper
from daemon.template.htmlcontext import (
    TEXT,
    Context,
    Delim,
    EscapeError,
    JsCtx,
    State,
    UrlPart,
    escape_text,
    nudge,
)
from daemon.template.htmlescape import escapers
from daemon.template.nodes import (
    ActionNode,
    BranchNode,
    BreakNode,
    ContinueNode,
    ListNode,
    Node,
    TemplateNode,
    TextNode,
    Tree,
)

# Marks the end of a path cut short by {{break}} or {{continue}}.
_DEAD = Context(state=State.ERROR, err="dead")


@attrs.define(eq=False)
class _Problem:
    """Go's ``*html/template.Error``: shared, and annotated in place as Go does."""

    description: str
    where: str = ""  # "<name>:<line>:<col>" of the node, when there is one
    line: int = 0

    def message(self, name: str) -> str:
        if self.where:
            return f"html/template:{self.where}: {self.description}"
        if self.line:
            return f"html/template:{name}:{self.line}: {self.description}"
        return escape_error(name, EscapeError(self.description))


@attrs.frozen
class _Failed:
    """The error context: it flows on through the rest of the walk, as in Go."""

    problem: _Problem


_Ctx = Context | _Failed


@attrs.define
class _Range:
    breaks: list[tuple[_Ctx, Tree, Node]] = attrs.Factory(list)
    continues: list[tuple[_Ctx, Tree, Node]] = attrs.Factory(list)


class HtmlChecker:
    """One static pass over a template and the templates it calls."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.output: dict[tuple[str, Context], _Ctx] = {}
        self.ranges: list[_Range] = []
        #: The context after each branch and template call, by (id(node), context before).
        self.after: dict[tuple[int, Context], Context] = {}

    def check(self, tree: Tree) -> None:
        """Raise Go's error if html/template would refuse ``tree``."""
        end = self._body(TEXT, tree)
        if isinstance(end, _Failed):
            raise TemplateExecError(end.problem.message(tree.name))
        if end.state != State.TEXT:
            raise TemplateExecError(
                escape_error(tree.name, EscapeError(f"ends in a non-text context: {end}"))
            )

    def _body(self, c: Context, tree: Tree) -> _Ctx:
        """A template body walked from ``c``, as Go's computeOutCtx does it.

        When the walk fails, Go walks the body once more from the error context, in
        search of an output context. That second walk annotates the shared error at
        each range whose body a ``{{break}}``/``{{continue}}`` ends, so Go's message
        gains an "at range loop break: " for each; this keeps that wording.
        """
        saved, self.ranges = self.ranges, []
        try:
            end = self._list(c, tree, tree.root)
            if isinstance(end, _Failed):
                self.ranges = []
                self._list(end, tree, tree.root)
        finally:
            self.ranges = saved
        return end

    def _fail(self, tree: Tree, node: Node, description: str) -> _Failed:
        return _Failed(_Problem(description, tree.location(_pos(node)), _line(node)))

    def _list(self, c: _Ctx, tree: Tree, nodes: ListNode | None) -> _Ctx:
        if nodes is None:
            return c
        for n in nodes.nodes:
            c = self._node(c, tree, n)
            if c is _DEAD:
                break
        return c

    def _node(self, c: _Ctx, tree: Tree, n: Node) -> _Ctx:
        if isinstance(n, ActionNode):
            return self._action(c, tree, n)
        if isinstance(n, BranchNode):
            return self._branch(c, tree, n)
        if isinstance(n, BreakNode | ContinueNode):
            if self.ranges:
                exits = (
                    self.ranges[-1].breaks
                    if isinstance(n, BreakNode)
                    else self.ranges[-1].continues
                )
                exits.append((c, tree, n))
            return _DEAD
        if isinstance(c, _Failed):
            return c
        if isinstance(n, TextNode):
            try:
                return escape_text(c, n.text)[0]
            except EscapeError as e:
                return _Failed(_Problem(str(e)))
        if isinstance(n, TemplateNode):
            return self._template(c, tree, n)
        return c

    def _action(self, c: _Ctx, tree: Tree, n: ActionNode) -> _Ctx:
        if n.pipe.decl:
            return c
        # Go checks the predefined escapers before it looks at the context.
        misplaced = misplaced_escaper(n.pipe)
        nudged = nudge(c) if isinstance(c, Context) else None
        if misplaced or (
            nudged is not None
            and predefined_escaper(n.pipe) == "html"
            and nudged.state == State.ATTR
            and nudged.delim == Delim.SPACE_OR_TAG_END
        ):
            name = misplaced or "html"
            return self._fail(tree, n, f'predefined escaper "{name}" disallowed in template')
        if isinstance(c, _Failed):
            return c
        try:
            return escapers(c)[0]
        except EscapeError as e:
            return self._fail(tree, n, str(e).replace("{action}", str(n)))

    def _branch(self, c: _Ctx, tree: Tree, n: BranchNode) -> _Ctx:
        if n.kind == "range":
            self.ranges.append(_Range())
            body = self._list(c, tree, n.list)
            exits = self.ranges.pop()
            if not isinstance(body, _Failed):
                body = self._join_range(body, exits)
            if isinstance(body, _Failed):
                return body
            # The body may run again: from where it ended it must end the same way.
            self.ranges.append(_Range())
            again = self._list(body, tree, n.list)
            body = self._join(body, again, tree, n, n.kind)
            if isinstance(body, _Failed):
                self.ranges.pop()
                body.problem.line = _line(n)
                body.problem.description = "on range loop re-entry: " + body.problem.description
                return body
            body = self._join_range(body, self.ranges.pop())
            if isinstance(body, _Failed):
                return body
        else:
            body = self._list(c, tree, n.list)
        other = self._list(c, tree, n.else_list)
        end = self._join(body, other, tree, n, n.kind)
        if isinstance(c, Context) and isinstance(end, Context) and end is not _DEAD:
            self.after[(id(n), c)] = end
        return end

    def _join_range(self, c: _Ctx, exits: _Range) -> _Ctx:
        for kind, found in (("break", exits.breaks), ("continue", exits.continues)):
            for exit_ctx, tree, node in found:
                c = self._join(c, exit_ctx, tree, node, "range")
                if isinstance(c, _Failed):
                    c.problem.line = _line(node)
                    c.problem.description = f"at range loop {kind}: " + c.problem.description
                    return c
        return c

    def _join(self, a: _Ctx, b: _Ctx, tree: Tree, n: Node, kind: str) -> _Ctx:
        if isinstance(a, _Failed):
            return a
        if isinstance(b, _Failed):
            return b
        joined = _join(a, b)
        if joined is None:
            return self._fail(
                tree, n, f"{{{{{kind}}}}} branches end in different contexts: {a}, {b}"
            )
        return joined

    def _template(self, c: Context, tree: Tree, n: TemplateNode) -> _Ctx:
        key = (n.name, c)
        known = self.output.get(key)
        if known is not None:
            if isinstance(known, Context):
                self.after[(id(n), c)] = known
            return known
        called = self.lookup.lookup_tree(n.name)
        if called is None or called.root is None:
            from daemon.gocompat.strconv import go_quote

            if called is not None:
                return self._fail(tree, n, f"{go_quote(n.name)} is an incomplete or empty template")
            return self._fail(tree, n, f"no such template {go_quote(n.name)}")
        # A recursive call assumes the template ends where it began, as Go does first.
        self.output[key] = c
        end = self._body(c, called)
        self.output[key] = end
        if isinstance(end, Context):
            self.after[(id(n), c)] = end
        return end


def _join(a: Context, b: Context) -> Context | None:
    if a is _DEAD:
        return b
    if b is _DEAD:
        return a
    if a == b:
        return a
    if attrs.evolve(a, url_part=b.url_part) == b:
        return attrs.evolve(a, url_part=UrlPart.UNKNOWN)
    if attrs.evolve(a, js_ctx=b.js_ctx) == b:
        return attrs.evolve(a, js_ctx=JsCtx.UNKNOWN)
    na, nb = nudge(a), nudge(b)
    if na != a or nb != b:
        return _join(na, nb)
    return None


def _pos(n: Node) -> int:
    if isinstance(n, BranchNode):
        return n.pipe.pos
    return n.pos


def _line(n: Node) -> int:
    return getattr(n, "line", 0)
