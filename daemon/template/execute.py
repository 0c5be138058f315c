"""Executes parsed templates with Go's text/template semantics.

Rules kept from Go, in the order a reader meets them:

* ``.Name`` on a value first looks for a method ``Name`` (called, with any arguments the
  command supplies), then a map key, then an attribute. Missing map keys give the map's
  zero value (``missingkey=zero``, as Alertmanager configures): ``""`` for our string maps.
* A field of ``nil`` data is Go's invalid value and prints ``<no value>``.
* ``and``/``or`` evaluate lazily and return the deciding argument.
* ``range`` walks maps in sorted key order; ``$i, $v := range`` binds index then element.
* Errors name the node: ``template: <file>:<line>:<col>: executing "<tmpl>" at <node>: …``.

Output goes to a :class:`Sink`; the html sink escapes each value for its context.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from daemon.template.errors import FunctionError, TemplateExecError
from daemon.template.functions import NO_VALUE, eval_args, is_true
from daemon.template.gofmt import go_type_name, sort_keys, sprint_value
from daemon.template.htmlcontext import EscapeError
from daemon.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
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
)

MAX_EXEC_DEPTH = 100_000
_MISSING = object()


class Sink(Protocol):
    """Where execution output goes; a ``contextual`` sink escapes as html/template."""

    contextual: bool

    def text(self, s: str) -> None: ...

    def value(
        self, v: object, escaper: str | None = None, finish: Callable[[], object] | None = None
    ) -> None:
        """Write a value.

        When the pipeline ends in ``html``/``urlquery``, ``escaper`` names it, ``v`` is
        the value before it and ``finish()`` runs it (html/template may merge it with
        its own escapers instead).
        """
        ...

    def enter(self) -> object:
        """Before a branch or template call: a token of where the output stands."""
        ...

    def restart(self, token: object) -> None:
        """Back to ``token`` (each range iteration starts where the range did)."""
        ...

    def leave(self, node: Node, token: object) -> None:
        """After the branch or call ``node`` entered at ``token``."""
        ...


def printable(v: object) -> str:
    """How an action prints its value (Go's ``printValue``)."""
    if v is NO_VALUE:
        return "<no value>"
    return sprint_value(v)


class TextSink:
    """Plain text/template output."""

    contextual = False

    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, s: str) -> None:
        self.parts.append(s)

    def value(
        self, v: object, escaper: str | None = None, finish: Callable[[], object] | None = None
    ) -> None:
        self.parts.append(printable(finish() if finish is not None else v))

    def result(self) -> str:
        return "".join(self.parts)

    def enter(self) -> object:
        return None

    def restart(self, token: object) -> None:
        pass

    def leave(self, node: Node, token: object) -> None:
        pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_ARITY_CACHE: dict[Any, tuple[int, bool]] = {}


def arity(fn: Callable[..., Any]) -> tuple[int, bool]:
    """(number of fixed parameters, variadic?) of a function or bound method."""
    key = getattr(fn, "__func__", fn)
    bound = hasattr(fn, "__self__") and not inspect.isbuiltin(fn)
    cached = _ARITY_CACHE.get((key, bound))
    if cached is not None:
        return cached
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        result = (0, True)
    else:
        fixed = 0
        variadic = False
        for p in sig.parameters.values():
            if p.kind is p.VAR_POSITIONAL:
                variadic = True
            elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
                fixed += 1
        result = (fixed, variadic)
    _ARITY_CACHE[(key, bound)] = result
    return result


class Lookup(Protocol):
    """What the executor needs from a template set."""

    def lookup_tree(self, name: str) -> Tree | None: ...

    def function(self, name: str) -> Callable[..., Any] | None: ...


class State:
    """One execution: the current template, the variable stack and the output."""

    def __init__(self, lookup: Lookup, tree: Tree, sink: Sink) -> None:
        self.lookup = lookup
        self.tree = tree
        self.sink = sink
        self.vars: list[tuple[str, object]] = []
        self.node: Node | None = None
        self.depth = 0

    # -- errors ---------------------------------------------------------------------

    def errorf(self, msg: str) -> TemplateExecError:
        name = self.tree.name
        if self.node is None:
            return TemplateExecError(f"template: {name}: {msg}")
        loc = self.tree.location(self.node.pos)
        ctx = _error_context(self.node)
        return TemplateExecError(f"template: {loc}: executing {_quote(name)} at <{ctx}>: {msg}")

    def at(self, node: Node) -> None:
        self.node = node

    # -- variables -------------------------------------------------------------------

    def var_value(self, name: str) -> object:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value: object) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.errorf(f"undefined variable: {name}")

    # -- walking ---------------------------------------------------------------------

    def walk(self, dot: object, node: Node) -> None:
        self.at(node)
        if isinstance(node, TextNode):
            try:
                self.sink.text(node.text)
            except EscapeError as e:
                raise TemplateExecError(escape_error(self.tree.name, e)) from None
        elif isinstance(node, ActionNode):
            escaper = predefined_escaper(node.pipe)
            if node.pipe.decl:
                self.eval_pipeline(dot, node.pipe)
            elif self.sink.contextual and (misplaced := misplaced_escaper(node.pipe)):
                loc = self.tree.location(node.pos)
                raise TemplateExecError(
                    f'html/template:{loc}: predefined escaper "{misplaced}" disallowed in template'
                )
            elif escaper is None:
                self.print_value(node, self.eval_pipeline(dot, node.pipe))
            else:
                self.print_escaped(dot, node, escaper)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, BranchNode):
            token = self.sink.enter()
            if node.kind == "range":
                self.walk_range(dot, node, token)
            else:
                self.walk_if_or_with(dot, node)
            self.sink.leave(node, token)
        elif isinstance(node, TemplateNode):
            token = self.sink.enter()
            self.walk_template(dot, node)
            self.sink.leave(node, token)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, CommentNode):
            pass
        else:
            raise self.errorf(f"unknown node: {node}")

    def print_value(
        self,
        node: ActionNode,
        val: object,
        escaper: str | None = None,
        finish: Callable[[], object] | None = None,
    ) -> None:
        self.at(node)
        if callable(val) and not isinstance(val, type) and not hasattr(val, "String"):
            raise self.errorf(f"can't print {node} of type func")
        try:
            self.sink.value(val, escaper, finish)
        except EscapeError as e:
            loc = self.tree.location(node.pos)
            msg = str(e).replace("{action}", str(node))
            raise TemplateExecError(f"html/template:{loc}: {msg}") from None

    def print_escaped(self, dot: object, node: ActionNode, escaper: str) -> None:
        """An action whose pipeline ends in ``html``/``urlquery``: the value before it.

        ``{{html .A .B}}`` becomes ``{{_eval_args_ .A .B | html}}`` as in html/template.
        """
        pipe = node.pipe
        last = pipe.cmds[-1]
        before: object
        if len(pipe.cmds) == 1:
            before = eval_args([self.eval_arg(dot, a) for a in last.args[1:]])
            self.at(node)

            def finish() -> object:
                return self.eval_command(dot, last, _MISSING)

        else:
            value: object = _MISSING
            for cmd in pipe.cmds[:-1]:
                value = self.eval_command(dot, cmd, value)
            before = value

            def finish() -> object:
                return self.eval_command(dot, last, before)

        self.print_value(node, before, escaper, finish)

    def walk_if_or_with(self, dot: object, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if is_true(val):
                self.walk(val if node.kind == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: object, node: BranchNode, token: object = None) -> None:
        self.at(node)
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            inner = len(self.vars)
            items: list[tuple[object, object]]
            if val is None or val is NO_VALUE:
                items = []
            elif isinstance(val, Mapping):
                items = [(k, val[k]) for k in sort_keys(list(val.keys()))]
            elif isinstance(val, list | tuple):
                items = list(enumerate(val))
            elif isinstance(val, str | int | float | bool) or not hasattr(val, "__iter__"):
                self.at(node)
                raise self.errorf(f"range can't iterate over {printable(val)}")
            else:
                items = list(enumerate(val))
            decl = node.pipe.decl
            for index, elem in items:
                if decl:
                    if node.pipe.is_assign:
                        if len(decl) > 1:
                            self.set_var(decl[0].ident[0], index)
                            self.set_var(decl[1].ident[0], elem)
                        else:
                            self.set_var(decl[0].ident[0], elem)
                    else:
                        self.vars[inner - 1] = (self.vars[inner - 1][0], elem)
                        if len(decl) > 1:
                            self.vars[inner - 2] = (self.vars[inner - 2][0], index)
                self.sink.restart(token)
                try:
                    self.walk(elem, node.list)
                except _Continue:
                    pass
                except _Break:
                    break
                finally:
                    del self.vars[inner:]
            else:
                if not items and node.else_list is not None:
                    self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_template(self, dot: object, node: TemplateNode) -> None:
        self.at(node)
        tree = self.lookup.lookup_tree(node.name)
        if tree is None or tree.root is None:
            raise self.errorf(f"template {_quote(node.name)} not defined")
        if self.depth >= MAX_EXEC_DEPTH:
            raise self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        new_dot = dot if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        sub = State(self.lookup, tree, self.sink)
        sub.depth = self.depth + 1
        sub.vars = [("$", new_dot)]
        sub.walk(new_dot, tree.root)

    # -- evaluation ------------------------------------------------------------------

    def eval_pipeline(self, dot: object, pipe: PipeNode) -> object:
        self.at(pipe)
        value: object = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append((var.ident[0], value))
        return value

    def not_a_function(self, args: Sequence[Node], final: object) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: object, cmd: CommandNode, final: object) -> object:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.at(first)
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            raise self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return first.value
        if isinstance(first, StringNode):
            return first.text
        raise self.errorf(f"can't evaluate command {first}")

    def eval_chain_node(
        self, dot: object, chain: ChainNode, args: Sequence[Node], final: object
    ) -> object:
        self.at(chain)
        if isinstance(chain.node, NilNode):
            raise self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final)

    def eval_variable_node(
        self, dot: object, var: VariableNode, args: Sequence[Node], final: object
    ) -> object:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(
        self,
        dot: object,
        receiver: object,
        node: Node,
        ident: Sequence[str],
        args: Sequence[Node],
        final: object,
    ) -> object:
        for name in ident[:-1]:
            receiver = self.eval_field(dot, name, node, [], _MISSING, receiver)
        return self.eval_field(dot, ident[-1], node, args, final, receiver)

    def eval_field(
        self,
        dot: object,
        name: str,
        node: Node,
        args: Sequence[Node],
        final: object,
        receiver: object,
    ) -> object:
        if receiver is NO_VALUE or receiver is None:
            return NO_VALUE
        method = _method(receiver, name)
        if method is not None:
            return self.eval_call(dot, method, node, name, args, final)
        has_args = len(args) > 1 or final is not _MISSING
        if isinstance(receiver, Mapping):
            if has_args:
                raise self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            return ""
        if not isinstance(
            receiver, str | int | float | bool | list | tuple
        ) and not name.startswith("_"):
            try:
                val = getattr(receiver, name)
            except AttributeError:
                pass
            else:
                if has_args:
                    raise self.errorf(f"{name} has arguments but cannot be invoked as function")
                return val
        raise self.errorf(f"can't evaluate field {name} in type {go_type_name(receiver)}")

    def eval_function(
        self,
        dot: object,
        node: IdentifierNode,
        cmd: Node,
        args: Sequence[Node],
        final: object,
    ) -> object:
        self.at(node)
        name = node.ident
        if name in ("and", "or"):
            return self.eval_and_or(dot, name, node, args, final)
        fn = self.lookup.function(name)
        if fn is None:
            raise self.errorf(f"{_quote(name)} is not a defined function")
        return self.eval_call(dot, fn, cmd, name, args, final)

    def eval_and_or(
        self, dot: object, name: str, node: Node, args: Sequence[Node], final: object
    ) -> object:
        operands: list[Node | None] = list(args[1:])
        if final is not _MISSING:
            operands.append(None)
        if not operands:
            raise self.errorf(f"wrong number of args for {name}: want at least 1 got 0")
        val: object = None
        for arg in operands:
            val = final if arg is None else self.eval_arg(dot, arg)
            truth = is_true(val)
            if (name == "and" and not truth) or (name == "or" and truth):
                return val
        return val

    def eval_call(
        self,
        dot: object,
        fn: Callable[..., Any],
        node: Node,
        name: str,
        args: Sequence[Node],
        final: object,
    ) -> object:
        call_args = args[1:] if args else []
        n = len(call_args) + (0 if final is _MISSING else 1)
        fixed, variadic = arity(fn)
        if variadic:
            if n < fixed:
                raise self.errorf(f"wrong number of args for {name}: want at least {fixed} got {n}")
        elif n != fixed:
            raise self.errorf(f"wrong number of args for {name}: want {fixed} got {n}")
        values = [self.eval_arg(dot, a) for a in call_args]
        if final is not _MISSING:
            values.append(final)
        self.at(node)
        try:
            result = fn(*values)
        except (FunctionError, ValueError, TypeError, KeyError, IndexError, ZeroDivisionError) as e:
            self.at(node)
            raise self.errorf(f"error calling {name}: {e}") from None
        return result

    def eval_arg(self, dot: object, node: Node) -> object:
        self.at(node)
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, FieldNode):
            return self.eval_field_chain(dot, dot, node, node.ident, [node], _MISSING)
        if isinstance(node, VariableNode):
            return self.eval_variable_node(dot, node, [node], _MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, node, [node], _MISSING)
        if isinstance(node, ChainNode):
            return self.eval_chain_node(dot, node, [node], _MISSING)
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return node.value
        if isinstance(node, StringNode):
            return node.text
        raise self.errorf(f"can't handle {node} for arg")


def predefined_escaper(pipe: PipeNode) -> str | None:
    """``html`` or ``urlquery`` when a pipeline ends with it (html/template merges those)."""
    last = pipe.cmds[-1].args[0] if pipe.cmds else None
    if isinstance(last, IdentifierNode) and last.ident in ("html", "urlquery"):
        return last.ident
    return None


def misplaced_escaper(pipe: PipeNode) -> str:
    """``html``/``urlquery`` used before the end of a pipeline, which html/template refuses."""
    for cmd in pipe.cmds[:-1]:
        first = cmd.args[0]
        if isinstance(first, IdentifierNode) and first.ident in ("html", "urlquery"):
            return first.ident
    return ""


def escape_error(name: str, err: Exception) -> str:
    """Go's wording of an html/template error that names no node."""
    return f"html/template:{name}: {err}" if name else f"html/template: {err}"


_NOT_METHODS = frozenset(dir(dict)) | frozenset(dir(list)) | frozenset(dir(str))


def _method(receiver: object, name: str) -> Callable[..., Any] | None:
    """A Go-visible method: an exported (capitalised) callable defined on the type."""
    if not name[:1].isupper() or name in _NOT_METHODS:
        return None
    attr = getattr(type(receiver), name, None)
    if attr is None or not callable(attr) or isinstance(attr, type):
        return None
    bound = getattr(receiver, name)
    return bound if callable(bound) else None


def _quote(s: str) -> str:
    from daemon.gocompat.strconv import go_quote

    return go_quote(s)


def _error_context(node: Node) -> str:
    """Go's ErrorContext: the node's text (Go 1.19 does not shorten it)."""
    return str(node)


def execute_tree(lookup: Lookup, tree: Tree, data: object, sink: Sink) -> None:
    """Run ``tree`` with ``.`` and ``$`` bound to ``data``, writing to ``sink``."""
    if tree.root is None:
        raise TemplateExecError(
            f'template: {tree.name}: "{tree.name}" is an incomplete or empty template'
        )
    state = State(lookup, tree, sink)
    state.vars = [("$", data)]
    state.walk(data, tree.root)
