"""kube-events ``Rule`` objects: loading, scoping, first-match per type, and alerts.

Rules and choice follow kubesphere/kube-events (``pkg/ruler/types``), with the order
made deterministic: for each event, cluster-scoped rules come first, then workspace-,
then namespace-scoped ones; within a scope Rule objects are ordered by (namespace, name)
and a Rule's rules keep their order. The first enabled rule of each type (``alert``,
``notification``) whose condition holds wins.

Indexing: each rule's condition says which fields must equal one of a few strings
(``Condition.equalities``). Every rule is filed under one such field (the one with the
most distinct values in the set) and value, so an event is tested only against the
rules filed under its own values plus the rules that have no equality to file under.
The candidates are evaluated in rule order, so the index never changes which rule wins.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from daemon.eventrules.condition import (
    Condition,
    ConditionError,
    compile_condition,
    go_sprint,
)
from daemon.eventrules.files import (
    Problem,
    RuleFileError,
    problem_at,
    rule_objects,
)
from daemon.gocompat.duration import DurationError, parse_duration

__all__ = [
    "EventRule",
    "EventRuleMatch",
    "EventRuleSet",
    "event_alert",
    "load_event_rules",
]

SCOPE_LABEL = "kubesphere.io/rule-scope"
WORKSPACE_LABEL = "kubesphere.io/workspace"
SCOPES = ("cluster", "workspace", "namespace")
TYPES = ("alert", "notification")


@dataclass(frozen=True, slots=True, eq=False)
class EventRule:
    """One entry of a Rule object's ``spec.rules``, with where it came from."""

    name: str
    type: str
    condition: Condition
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    enable: bool
    #: tocsin's extension: seconds after the last occurrence to resolve; None = default.
    resolve_after: float | None
    cr_namespace: str
    cr_name: str
    scope: str
    #: The workspace of a workspace-scoped Rule object, else "".
    workspace: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class EventRuleMatch:
    """The rule that won for one type; ``type`` repeats ``rule.type`` for readers."""

    rule: EventRule
    type: str


@dataclass(slots=True)
class EventRuleSet:
    """The enabled rules in winning order, indexed; ``match`` is the per-event call."""

    rules: tuple[EventRule, ...]
    #: Every rule loaded, disabled ones too (``tocsinctl rules check`` counts them).
    all_rules: tuple[EventRule, ...] = ()
    workspaces: Mapping[str, Sequence[str]] = field(default_factory=dict)
    _index: dict[str, dict[str, list[int]]] = field(init=False, repr=False)
    _unindexed: list[int] = field(init=False, repr=False)
    _index_keys: list[tuple[tuple[str, ...], dict[str, list[int]]]] = field(init=False, repr=False)
    _workspaces_of: Callable[[str], frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # File each rule under its most selective field: the one with the most distinct
        # values across the set (``reason`` rather than ``type``), so buckets stay small.
        values: dict[str, set[str]] = {}
        for r in self.rules:
            for p, vs in r.condition.equalities.items():
                values.setdefault(p, set()).update(vs)
        share = Counter(p for r in self.rules for p in r.condition.equalities)
        self._index = {}
        self._unindexed = []
        for pos, rule in enumerate(self.rules):
            eq = rule.condition.equalities
            if not eq:
                self._unindexed.append(pos)
                continue
            path = max(eq, key=lambda p: (len(values[p]), share[p], p))
            by_value = self._index.setdefault(path, {})
            for value in eq[path]:
                by_value.setdefault(value, []).append(pos)
        self._index_keys = [(tuple(p.split(".")), v) for p, v in self._index.items()]
        self._workspaces_of = lru_cache(maxsize=4096)(self._compute_workspaces)

    def _compute_workspaces(self, namespace: str) -> frozenset[str]:
        return frozenset(
            ws
            for ws, globs in self.workspaces.items()
            if any(fnmatch.fnmatchcase(namespace, g) for g in globs)
        )

    def candidates(self, event: Mapping[str, Any]) -> list[int]:
        """Positions of the rules that can match ``event``, in rule order."""
        lists = [self._unindexed]
        for keys, by_value in self._index_keys:
            value: Any = event
            for key in keys:
                value = value.get(key) if isinstance(value, Mapping) else None
                if value is None:
                    break
            if value is not None:
                found = by_value.get(go_sprint(value))
                if found:
                    lists.append(found)
        if len(lists) == 1:
            return lists[0]
        if len(lists) == 2 and not lists[0]:
            return lists[1]
        # Disjoint sorted runs (a rule is filed under one field): timsort merges them in
        # linear time, several times faster than heapq.merge's generator.
        return sorted(itertools.chain.from_iterable(lists))

    def match(self, event: Mapping[str, Any]) -> list[EventRuleMatch]:
        """The first enabled matching rule of each type (alert first), for one event."""
        involved = event.get("involvedObject")
        namespace = ""
        if isinstance(involved, Mapping):
            namespace = str(involved.get("namespace") or "")
        out: list[EventRuleMatch] = []
        wanted = set(TYPES)
        rules = self.rules
        for pos in self.candidates(event):
            rule = rules[pos]
            if rule.type not in wanted:
                continue
            if rule.scope == "namespace" and rule.cr_namespace != namespace:
                continue
            if rule.scope == "workspace" and rule.workspace not in self._workspaces_of(namespace):
                continue
            if rule.condition(event):
                out.append(EventRuleMatch(rule, rule.type))
                wanted.discard(rule.type)
                if not wanted:
                    break
        out.sort(key=lambda m: TYPES.index(m.type))
        return out


def _str_map(value: Any, what: str, problems: list[Problem], where: Problem) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        problems.append(problem_at(where, f"{what} must map strings to strings"))
        return {}
    return dict(value)


def _resolve_after(value: Any, problems: list[Problem], where: Problem) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_duration(value) / 1e9
        except DurationError as err:
            problems.append(problem_at(where, f"resolve_after: {err}"))
            return None
    problems.append(problem_at(where, 'resolve_after must be a duration such as "30m"'))
    return None


def _scope_of(
    labels: Mapping[str, Any], namespace: str, where: Problem, problems: list[Problem]
) -> str | None:
    scope = labels.get(SCOPE_LABEL)
    if scope is None:
        if namespace and namespace != "kubesphere-logging-system":
            return "namespace"  # what kube-events' mutating webhook sets
        problems.append(
            problem_at(where, f"label {SCOPE_LABEL} is missing (cluster, workspace or namespace)")
        )
        return None
    if scope not in SCOPES:
        problems.append(
            problem_at(
                where, f"label {SCOPE_LABEL} is {scope!r}; want cluster, workspace or namespace"
            )
        )
        return None
    if scope == "namespace" and not namespace:
        problems.append(problem_at(where, "a namespace-scoped Rule needs metadata.namespace"))
        return None
    return str(scope)


def _load_rule_objects(
    paths: Sequence[str],
    workspaces: Mapping[str, Sequence[str]] | None,
    problems: list[Problem],
) -> list[EventRule]:
    loaded: list[EventRule] = []
    for doc in rule_objects(paths, "events.kubesphere.io", problems):
        obj = doc.value
        where = Problem(doc.file, doc.line, "")
        meta = obj.get("metadata") or {}
        if not isinstance(meta, Mapping):
            problems.append(problem_at(where, "metadata must be an object"))
            continue
        cr_name = str(meta.get("name") or "")
        cr_ns = str(meta.get("namespace") or "")
        labels = meta.get("labels") or {}
        where = Problem(doc.file, doc.line, "", f"{cr_ns}/{cr_name}".lstrip("/"))
        if not cr_name:
            problems.append(problem_at(where, "metadata.name is missing"))
        scope = _scope_of(labels if isinstance(labels, Mapping) else {}, cr_ns, where, problems)
        workspace = ""
        if scope == "workspace":
            workspace = str(labels.get(WORKSPACE_LABEL) or "")
            if not workspace:
                problems.append(
                    problem_at(where, f"a workspace-scoped Rule needs label {WORKSPACE_LABEL}")
                )
            elif workspaces is None:
                problems.append(
                    problem_at(
                        where,
                        "workspace-scoped rules need the workspace map (--events.workspaces-file)",
                    )
                )
            elif workspace not in workspaces:
                problems.append(
                    problem_at(where, f"workspace {workspace!r} is not in the workspace map")
                )
        spec = obj.get("spec") or {}
        entries = spec.get("rules") if isinstance(spec, Mapping) else None
        if not isinstance(entries, list):
            problems.append(problem_at(where, "spec.rules must be a list"))
            continue
        for i, entry in enumerate(entries):
            line = doc.rule_lines[i] if i < len(doc.rule_lines) else doc.line
            rule = _load_entry(entry, i, line, doc.file, cr_ns, cr_name, problems)
            if rule is not None and scope is not None:
                loaded.append(dataclasses.replace(rule, scope=scope, workspace=workspace))
    return loaded


_ENTRY_KEYS = {"name", "condition", "labels", "annotations", "enable", "type", "resolve_after"}


def _load_entry(
    entry: Any, i: int, line: int, file: str, cr_ns: str, cr_name: str, problems: list[Problem]
) -> EventRule | None:
    cr = f"{cr_ns}/{cr_name}".lstrip("/")
    if not isinstance(entry, Mapping):
        problems.append(Problem(file, line, f"spec.rules[{i}] must be an object", cr))
        return None
    name = entry.get("name")
    where = Problem(file, line, "", f"{cr}/{name if name else f'rules[{i}]'}")
    before = len(problems)
    unknown = sorted(str(k) for k in entry if k not in _ENTRY_KEYS)
    if unknown:
        problems.append(problem_at(where, f"unknown field(s) {', '.join(unknown)}"))
    if not isinstance(name, str) or not name:
        problems.append(problem_at(where, "name is missing"))
    rtype = entry.get("type")
    if rtype not in TYPES:
        problems.append(problem_at(where, f"type is {rtype!r}; want alert or notification"))
    enable = entry.get("enable", False)
    if not isinstance(enable, bool):
        problems.append(problem_at(where, "enable must be true or false"))
    text = entry.get("condition")
    condition: Condition | None = None
    if not isinstance(text, str) or not text.strip():
        problems.append(problem_at(where, "condition is missing"))
    else:
        try:
            condition = compile_condition(text)
        except ConditionError as err:
            problems.append(problem_at(where, f"{err.message} in {text!r}", err.position))
    labels = _str_map(entry.get("labels"), "labels", problems, where)
    annotations = _str_map(entry.get("annotations"), "annotations", problems, where)
    resolve_after = _resolve_after(entry.get("resolve_after"), problems, where)
    if len(problems) > before or condition is None:
        return None
    return EventRule(
        name=str(name),
        type=str(rtype),
        condition=condition,
        labels=labels,
        annotations=annotations,
        enable=bool(enable),
        resolve_after=resolve_after,
        cr_namespace=cr_ns,
        cr_name=cr_name,
        scope="",
        workspace="",
        file=file,
        line=line,
    )


def order_rules(rules: Sequence[EventRule]) -> list[EventRule]:
    """Winning order: scope, then (namespace, name) of the Rule object, then position."""
    indexed = list(enumerate(rules))
    indexed.sort(
        key=lambda ir: (SCOPES.index(ir[1].scope), ir[1].cr_namespace, ir[1].cr_name, ir[0])
    )
    return [r for _, r in indexed]


def load_event_rules(
    paths: Sequence[str], workspaces: Mapping[str, Sequence[str]] | None = None
) -> EventRuleSet:
    """Load kube-events Rule files; raises ``RuleFileError`` listing every problem."""
    problems: list[Problem] = []
    loaded = order_rules(_load_rule_objects(paths, workspaces, problems))
    if problems:
        raise RuleFileError(problems)
    return EventRuleSet(
        rules=tuple(r for r in loaded if r.enable),
        all_rules=tuple(loaded),
        workspaces=dict(workspaces or {}),
    )


# --- alerts -----------------------------------------------------------------------------

#: core/v1 Event string fields: Go's struct always has them, so kube-events renders an
#: absent one as "" (any other unknown key renders as ``<nil>``).
_EVENT_STRING_FIELDS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.resourceVersion",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "message",
        "source.component",
        "source.host",
        "type",
        "action",
        "reportingComponent",
        "reportingInstance",
    }
)
_KEY_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.")


def _lookup(event: Mapping[str, Any], key: str) -> str:
    value: Any = event
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            break
    if value is None:
        if key in _EVENT_STRING_FIELDS:
            return ""
        return "0" if key == "count" else "<nil>"
    return go_sprint(value)


def format_fields(template: str, event: Mapping[str, Any]) -> str:
    """kube-events' ``FormatMap``: ``%dotted.key`` becomes the event's field.

    A ``%`` not followed by a key character disappears, as upstream. Upstream looks up a
    key ending in ``.`` (``"failed: %message."``) and prints ``<nil>``; here the trailing
    dots are text after the key.
    """
    out: list[str] = []
    i, end = 0, len(template)
    while i < end:
        j = template.find("%", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        k = j + 1
        while k < end and template[k] in _KEY_CHARS:
            k += 1
        key = template[j + 1 : k]
        stripped = key.rstrip(".")
        if stripped:
            out.append(_lookup(event, stripped))
            out.append(key[len(stripped) :])
        else:
            out.append(key)
        i = k
    return "".join(out)


def event_alert(rule: EventRule, event: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations kube-events gives the alert ``rule`` raises for ``event``."""
    involved = event.get("involvedObject")
    obj: Mapping[str, Any] = involved if isinstance(involved, Mapping) else {}
    labels = {"alertname": rule.name, "alerttype": "event"}
    kind = str(obj.get("kind") or "").lower()
    if kind:
        # Upstream writes this label even for an empty kind (an empty label name, which
        # Alertmanager refuses); without a kind there is no such label here.
        labels[kind] = str(obj.get("name") or "")
    namespace = obj.get("namespace")
    if namespace:
        labels["namespace"] = str(namespace)
    field_path = str(obj.get("fieldPath") or "")
    if field_path.startswith("spec.containers"):
        labels["container"] = field_path.removeprefix("spec.containers{").removesuffix("}")
    elif field_path.startswith("spec.initContainers{"):
        labels["container"] = field_path.removeprefix("spec.initContainers{").removesuffix("}")
    labels.update(rule.labels)
    annotations = {k: format_fields(v, event) for k, v in rule.annotations.items()}
    return labels, annotations


def load_workspaces(path: str) -> dict[str, list[str]]:
    """``--events.workspaces-file``: YAML ``workspace: [namespace globs]``.

    Raises:
        RuleFileError: naming the file (and line for bad YAML) and the problem.
    """
    try:
        with open(path, encoding="utf-8") as f:
            value = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError) as err:
        raise RuleFileError([Problem(path, 0, f"cannot read: {err}")]) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise RuleFileError(
            [Problem(path, mark.line + 1 if mark else 0, f"bad YAML: {err}")]
        ) from err
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RuleFileError(
            [Problem(path, 1, "want a map of workspace names to lists of namespace globs")]
        )
    for ws, globs in value.items():
        if not isinstance(ws, str) or not isinstance(globs, list):
            raise RuleFileError(
                [Problem(path, 0, f"workspace {ws!r}: want a list of namespace globs")]
            )
        for glob in globs:
            if not isinstance(glob, str) or not glob:
                raise RuleFileError([Problem(path, 0, f"workspace {ws!r}: {glob!r} is not a glob")])
    return {str(ws): list(globs) for ws, globs in value.items()}
