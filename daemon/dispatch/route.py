"""The routing tree: which route nodes an alert goes to, and its group there (spec §3.1, §3.2).

Pure: no I/O, no trio.

Rules:

* Matching is depth-first, children left to right. A node that does not match yields
  nothing. A matching node yields its children's results; after a child that yielded
  something, the walk stops unless that child has ``continue``. Only when no child
  yielded anything is the node itself the result — a parent is a fallback, never an
  addition.
* A missing label reads as ``""`` in every matcher (done by :mod:`daemon.matcher`).
* The route *key* is the path of matcher sets from the root, ``{}/{team="b"}``. It is
  the prefix of every group key, and group keys are persisted in the nflog, so its
  exact text is part of our on-disk compatibility. Identical siblings share a key
  (as upstream); the route *id* appends the child index of every level so that it is
  unique, for internal bookkeeping only.
* Group keys quote label values the way Go's ``%q`` does, because that is what
  Alertmanager writes to the nflog.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping

import attrs

from daemon.config.model import Route
from daemon.gocompat.strconv import go_quote
from daemon.matcher import matchers_string


def labels_string(labels: Mapping[str, str]) -> str:
    """Prometheus' ``LabelSet.String``: ``{a="1", b="2"}``, names sorted, values Go-quoted."""
    return "{" + ", ".join(f"{name}={go_quote(labels[name])}" for name in sorted(labels)) + "}"


@attrs.frozen(eq=False)
class RouteNode:
    """One node of the routing tree, with its key and id precomputed."""

    route: Route
    #: Matcher sets from the root down to this node, joined by ``/``; prefix of group keys.
    key: str
    #: ``key`` plus the child index at every level below the root; unique in the tree.
    id: str
    children: tuple[RouteNode, ...]

    @classmethod
    def build(cls, route: Route) -> RouteNode:
        """The tree for a resolved root route."""
        return cls._build(route, parent_key=None, indexes=())

    @classmethod
    def _build(cls, route: Route, parent_key: str | None, indexes: tuple[int, ...]) -> RouteNode:
        own = matchers_string(route.matchers)
        key = own if parent_key is None else f"{parent_key}/{own}"
        node_id = key if not indexes else key + "/" + "/".join(str(i) for i in indexes)
        children = tuple(
            cls._build(child, key, (*indexes, i)) for i, child in enumerate(route.routes)
        )
        return cls(route=route, key=key, id=node_id, children=children)

    @property
    def receiver(self) -> str:
        return self.route.receiver

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True if this node's own matchers all match ``labels``."""
        return all(m.matches(labels.get(m.name, "")) for m in self.route.matchers)

    def match(self, labels: Mapping[str, str]) -> list[RouteNode]:
        """The nodes ``labels`` are routed to, in tree order (empty only if the root fails)."""
        if self.route.matchers and not self.matches(labels):
            return []
        if not self.children:
            return [self]
        found: list[RouteNode] = []
        for child in self.children:
            got = child.match(labels)
            found.extend(got)
            if got and not child.route.continue_:
                break
        if not found:
            found.append(self)
        return found

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that identify the alert's group on this route."""
        if self.route.group_by_all:
            return dict(labels)
        return {name: labels[name] for name in self.route.group_by if name in labels}

    def group_values(self, labels: Mapping[str, str]) -> Hashable:
        """A cheap stand-in for the group key: equal exactly when the group labels are.

        The values of the ``group_by`` labels in ``group_by`` order, ``None`` for a
        missing one (so that it differs from ``""``); every label pair with
        ``group_by: ['...']``. Actors look groups up by it so that the Go-quoted key
        is built only when a group is created.
        """
        if self.route.group_by_all:
            return tuple(sorted(labels.items()))
        return tuple(map(labels.get, self.route.group_by))

    def group_key(self, group_labels: Mapping[str, str]) -> str:
        """``<routeKey>:<groupLabelsString>``, exactly as Alertmanager persists it."""
        return f"{self.key}:{labels_string(group_labels)}"

    def walk(self) -> Iterator[RouteNode]:
        """Every node, depth-first, parents before children."""
        yield self
        for child in self.children:
            yield from child.walk()
