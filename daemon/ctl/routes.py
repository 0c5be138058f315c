"""The routing tree drawn as amtool draws it (``config routes show`` and ``test --tree``).

Pure. amtool prints the tree with the treeprint library: a ``.`` root, ``├──`` and
``└──`` before each node, and ``│`` plus two no-break spaces (or four spaces under a
last child) for each level of indentation. Each node reads ``{matchers}`` (sorted, as in
the route key) or ``default-route``, then ``continue: true`` and ``receiver: NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from daemon.dispatch.route import RouteNode
from daemon.matcher import matchers_string

_SEPARATOR = "  "


@attrs.frozen
class Branch:
    text: str
    children: tuple[Branch, ...] = ()


def slug(node: RouteNode, *, show_continue: bool, show_receiver: bool) -> str:
    """One node's line: matchers, and optionally ``continue`` and the receiver."""
    text = matchers_string(node.route.matchers) if node.route.matchers else "default-route"
    if node.route.continue_ and show_continue:
        text += f"{_SEPARATOR}continue: true"
    if show_receiver:
        text += f"{_SEPARATOR}receiver: {node.receiver}"
    return text


def full_tree(node: RouteNode) -> Branch:
    """Every route, with ``continue`` and receivers (``config routes show``)."""
    return Branch(
        slug(node, show_continue=True, show_receiver=True),
        tuple(full_tree(child) for child in node.children),
    )


def matching_tree(node: RouteNode, labels: Mapping[str, str]) -> Branch:
    """The routes ``labels`` walk through; only the final ones name their receiver."""
    children = []
    for child in node.children:
        if child.matches(labels):
            children.append(matching_tree(child, labels))
            if not child.route.continue_:
                break
    final = not children
    return Branch(slug(node, show_continue=False, show_receiver=final), tuple(children))


def draw(top: Branch) -> str:
    """The tree under a ``.`` root, as treeprint's ``String()`` (ends with a newline)."""
    lines = ["."]

    def walk(branch: Branch, prefix: str, last: bool) -> None:
        lines.append(f"{prefix}{'└── ' if last else '├── '}{branch.text}")
        inner = prefix + ("    " if last else "│\u00a0\u00a0 ")
        for i, child in enumerate(branch.children):
            walk(child, inner, i == len(branch.children) - 1)

    walk(top, "", True)
    return "\n".join(lines) + "\n"
