"""Rule files: YAML with one or more documents, ``kind: List`` unwrapped, lines kept.

Errors are collected, not raised at the first one, so ``tocsinctl rules check`` shows
every problem at once; the loaders raise one ``RuleFileError`` carrying them all.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = [
    "Document",
    "Problem",
    "RuleFileError",
    "expand_paths",
    "problem_at",
    "read_objects",
    "rule_objects",
]

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml is in every supported install
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class Problem:
    """One error: the file, its line, the rule (``cr/rule``) and the condition position."""

    file: str
    line: int
    message: str
    rule: str = ""
    position: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        rule = f" rule {self.rule}:" if self.rule else ""
        pos = f" condition at position {self.position}:" if self.position is not None else ""
        return f"{where}:{rule}{pos} {self.message}"


class RuleFileError(ValueError):
    """Rule files that do not load; ``str`` lists every problem, one a line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class Document:
    """One Rule object: its decoded value, file, and the line of each ``spec.rules[i]``."""

    file: str
    line: int
    value: Mapping[str, Any]
    rule_lines: tuple[int, ...]


def expand_paths(paths: Sequence[str], problems: list[Problem]) -> list[str]:
    """Globs expanded (sorted, as flags take them); a plain path must exist."""
    out: list[str] = []
    for path in paths:
        if glob.has_magic(path):
            out.extend(sorted(glob.glob(path)))
        else:
            out.append(path)
    return out


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                found: yaml.Node = v
                return found
    return None


def _rule_lines(node: yaml.Node) -> tuple[int, ...]:
    rules = _child(_child(node, "spec") or yaml.MappingNode("", []), "rules")
    if isinstance(rules, yaml.SequenceNode):
        return tuple(n.start_mark.line + 1 for n in rules.value)
    return ()


def read_objects(path: str, problems: list[Problem]) -> Iterator[Document]:
    """Every object in ``path`` (``kind: List`` items one by one); problems appended."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        problems.append(Problem(path, 0, f"cannot read: {err}"))
        return
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            value = loader.construct_document(node)
            line = node.start_mark.line + 1
            if value is None:
                continue
            if not isinstance(value, Mapping):
                problems.append(Problem(path, line, "a document must be a Rule object"))
                continue
            if value.get("kind") == "List":
                items = value.get("items") or []
                item_nodes = _child(node, "items")
                if not isinstance(items, list) or not isinstance(item_nodes, yaml.SequenceNode):
                    problems.append(Problem(path, line, "kind: List needs a list of items"))
                    continue
                for item, item_node in zip(items, item_nodes.value, strict=True):
                    item_line = item_node.start_mark.line + 1
                    if not isinstance(item, Mapping):
                        problems.append(Problem(path, item_line, "a List item must be an object"))
                        continue
                    yield Document(path, item_line, item, _rule_lines(item_node))
                continue
            yield Document(path, line, value, _rule_lines(node))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problems.append(Problem(path, mark.line + 1 if mark else 0, f"bad YAML: {err}"))
    finally:
        loader.dispose()


def problem_at(where: Problem, message: str, position: int | None = None) -> Problem:
    """A problem at ``where``'s file, line and rule."""
    return Problem(where.file, where.line, message, where.rule, position)


def rule_objects(
    paths: Sequence[str], api_group: str, problems: list[Problem]
) -> Iterator[Document]:
    """Every ``kind: Rule`` object of ``api_group`` in the files; anything else a problem."""
    for path in expand_paths(paths, problems):
        for doc in read_objects(path, problems):
            kind, api = doc.value.get("kind"), str(doc.value.get("apiVersion", ""))
            if kind != "Rule" or (api and not api.startswith(api_group + "/")):
                problems.append(
                    Problem(
                        doc.file,
                        doc.line,
                        f"expected kind Rule of {api_group}, got {kind!r} {api!r}",
                    )
                )
                continue
            yield doc
