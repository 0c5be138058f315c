"""A set of named templates sharing functions, like Go's ``*template.Template``.

Alertmanager parses ``default.tmpl``, ``email.tmpl`` and the user's files into one set,
then renders each notification field by parsing the field text as an anonymous template
in a clone of the set. :meth:`TemplateSet.execute_text` does exactly that, and caches the
parse of each distinct field text, since the same fields render on every notification.

Pure: no I/O except :meth:`parse_files`, and time only through the ``now`` given to
:meth:`execute`/:meth:`execute_text` (used by ``since``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from daemon.template.errors import TemplateExecError
from daemon.template.execute import TextSink, escape_error, execute_tree
from daemon.template.functions import ALERTMANAGER_FUNCS, BUILTINS, make_since
from daemon.template.htmlcheck import HtmlChecker
from daemon.template.htmlcontext import Context, EscapeError
from daemon.template.htmlescape import HtmlSink
from daemon.template.nodes import Tree, is_empty_tree
from daemon.template.parser import parse

_TEXT_CACHE_LIMIT = 1024


class TemplateSet:
    """Named templates plus functions; ``html=True`` escapes output like html/template."""

    def __init__(
        self,
        funcs: Mapping[str, Callable[..., Any]] | None = None,
        *,
        html: bool = False,
    ) -> None:
        self.html = html
        self.trees: dict[str, Tree] = {}
        self.funcs: dict[str, Callable[..., Any]] = {**BUILTINS, **ALERTMANAGER_FUNCS}
        self.funcs["since"] = make_since(self._since_now)
        if funcs:
            self.funcs.update(funcs)
        self._now: int | None = None
        self._text_cache: dict[str, dict[str, Tree]] = {}
        # Trees html/template's static pass accepted, by identity (kept alive here).
        self._html_checked: dict[int, tuple[Tree, dict[tuple[int, Context], Context]]] = {}

    # -- building --------------------------------------------------------------------

    def has_function(self, name: str) -> bool:
        return name in self.funcs

    def parse(self, text: str, name: str = "") -> TemplateSet:
        """Parse ``text``; its top level is template ``name`` and its defines join the set.

        Later definitions replace earlier ones, except that an empty body never replaces
        a non-empty one (Go's rule, which lets a file of only defines leave its own name
        unset). Raises :class:`TemplateParseError`.
        """
        trees = parse(name, text, self.has_function)
        self._add(trees)
        self._text_cache.clear()
        self._html_checked.clear()
        return self

    def _add(self, trees: Mapping[str, Tree]) -> None:
        for tname, tree in trees.items():
            old = self.trees.get(tname)
            if old is not None and is_empty_tree(tree.root) and not is_empty_tree(old.root):
                continue
            self.trees[tname] = tree

    def parse_files(self, paths: Iterable[str | os.PathLike[str]]) -> TemplateSet:
        """Parse each file as a template named after its base name, in order."""
        for path in paths:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            self.parse(text, os.path.basename(os.fspath(path)))
        return self

    def clone(self) -> TemplateSet:
        """An independent copy: parsing into it leaves this set unchanged."""
        other = TemplateSet(html=self.html)
        other.funcs = dict(self.funcs)
        other.funcs["since"] = make_since(other._since_now)
        other.trees = dict(self.trees)
        return other

    def names(self) -> list[str]:
        return sorted(self.trees)

    # -- the executor's view ---------------------------------------------------------

    def lookup_tree(self, name: str) -> Tree | None:
        return self.trees.get(name)

    def function(self, name: str) -> Callable[..., Any] | None:
        return self.funcs.get(name)

    def _since_now(self) -> int:
        if self._now is None:
            from daemon.clock import SystemClock

            return SystemClock().now()
        return self._now

    # -- running ---------------------------------------------------------------------

    def execute(
        self, name: str, data: object, *, now: int | None = None, html: bool | None = None
    ) -> str:
        """Run template ``name`` on ``data``; ``now`` (Unix ns) is what ``since`` measures to."""
        tree = self.trees.get(name)
        if tree is None:
            from daemon.gocompat.strconv import go_quote

            raise TemplateExecError(
                f"template: no template {go_quote(name)} associated with template"
            )
        return self._run(tree, self, data, now, self.html if html is None else html)

    def _run(
        self, tree: Tree, lookup: TemplateSet, data: object, now: int | None, html: bool
    ) -> str:
        sink: TextSink | HtmlSink = TextSink()
        if html:
            checked = self._html_checked.get(id(tree))
            if checked is None:
                # Go refuses some html templates as a whole before running them; a tree
                # that passed stays valid until the set changes (parse() forgets them).
                checker = HtmlChecker(lookup)
                checker.check(tree)
                if len(self._html_checked) >= _TEXT_CACHE_LIMIT:
                    self._html_checked.clear()
                checked = self._html_checked[id(tree)] = (tree, checker.after)
            sink = HtmlSink(checked[1])
        lookup._now = now
        try:
            execute_tree(lookup, tree, data, sink)
        finally:
            lookup._now = None
        try:
            return sink.result()
        except EscapeError as e:
            raise TemplateExecError(escape_error(tree.name, e)) from None

    def execute_text(
        self, text: str, data: object, *, now: int | None = None, html: bool | None = None
    ) -> str:
        """Render a config field: ``text`` parsed as an anonymous template in a clone.

        Defines inside ``text`` are visible only to this rendering, as in Alertmanager.
        An empty ``text`` renders to ``""``.
        """
        if text == "":
            return ""
        trees = self._text_cache.get(text)
        if trees is None:
            trees = parse("", text, self.has_function)
            if len(self._text_cache) >= _TEXT_CACHE_LIMIT:
                self._text_cache.clear()
            self._text_cache[text] = trees
        lookup = self
        if len(trees) > 1 or "" in self.trees:
            lookup = self.clone()
            lookup._add(trees)
        tree = trees[""]
        return self._run(tree, lookup, data, now, self.html if html is None else html)
