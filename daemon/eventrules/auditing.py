"""kube-auditing ``Rule`` objects: rules, macros, lists and aliases, and audit alerts.

A Rule object's ``spec.rules`` mixes four types of entry (kube-auditing's
``auditing.kubesphere.io/v1alpha1``):

- ``rule``: ``condition``, ``enable`` (absent = disabled), ``priority`` (DEBUG, INFO,
  WARNING; absent = DEBUG) and an optional ``output`` for the alert's message;
- ``macro``: a condition fragment in ``macro``; used as ``${name}``, it expands in
  parentheses, so it cannot change the precedence around it;
- ``list``: literals in ``list``; ``Verb in ${writes}`` expands to ``Verb in ("create",
  ...)``, and a list may splice other lists;
- ``alias``: a field path in ``alias``; ``${user}`` expands to the path in conditions
  and to the event's value in ``output``.

``${name}`` names an entry of the same Rule object, ``${rulecr.name}`` one of another
object. Expansion is recursive; a cycle or an unknown name is an error naming the rule.

Audit rules are not first-match: every enabled rule that matches, at or above the
alerting priority, makes an alert. Field paths match case-insensitively, because the
Kubernetes API server sends ``user.username`` and KubeSphere sends ``User.Username``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.eventrules.condition import Condition, ConditionError, compile_condition, go_sprint
from daemon.eventrules.files import Problem, RuleFileError, problem_at, rule_objects
from daemon.gocompat.timestamp import TimestampError, format_nano, parse_rfc3339

__all__ = [
    "PRIORITIES",
    "AuditRule",
    "AuditRuleSet",
    "audit_alert",
    "load_audit_rules",
]

PRIORITIES = ("DEBUG", "INFO", "WARNING")
ENTRY_TYPES = ("rule", "macro", "list", "alias")
_REF = re.compile(r"\$\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class _OutputPart:
    text: str
    path: str | None = None  # an alias: the event's value at this path


@dataclass(frozen=True, slots=True, eq=False)
class AuditRule:
    """One ``type: rule`` entry, its references expanded."""

    name: str
    condition: Condition
    priority: str
    enable: bool
    #: The ``output`` template as written ("" when absent), and compiled.
    output: str
    cr_namespace: str
    cr_name: str
    file: str
    line: int
    _output_parts: tuple[_OutputPart, ...] = field(default=(), repr=False)
    #: The condition as written, before ``${...}`` expansion (``condition.text``).
    source: str = ""

    def message(self, event: Mapping[str, Any]) -> str | None:
        """``output`` rendered for ``event``, or None when the rule has none."""
        if not self.output:
            return None
        out = []
        for part in self._output_parts:
            if part.path is None:
                out.append(part.text)
            else:
                value = _field(event, part.path)
                out.append("" if value is None else go_sprint(value))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class Unused:
    """A macro or list no rule uses (``tocsinctl rules check`` warns about it)."""

    file: str
    line: int
    cr: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class AuditRuleSet:
    """Every audit rule, in a deterministic order; ``match`` returns all that hold."""

    rules: tuple[AuditRule, ...]
    unused: tuple[Unused, ...] = ()

    def match(self, event: Mapping[str, Any], min_priority: str = "WARNING") -> list[AuditRule]:
        """Every enabled rule at or above ``min_priority`` whose condition holds."""
        floor = PRIORITIES.index(min_priority)
        return [
            r
            for r in self.rules
            if r.enable and PRIORITIES.index(r.priority) >= floor and r.condition(event)
        ]


def _fold_get(obj: Any, key: str) -> Any:
    if not isinstance(obj, Mapping):
        return None
    if key in obj:
        return obj[key]
    low = key.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def _field(event: Mapping[str, Any], path: str) -> Any:
    value: Any = event
    for key in path.split("."):
        value = _fold_get(value, key)
        if value is None:
            return None
    return value


@dataclass
class _Entry:
    cr: str  # the Rule object's name
    name: str
    type: str
    body: Any  # condition text, macro text, list items or alias path
    raw: Mapping[str, Any]
    where: Problem
    ns: str = ""
    used: bool = False


class _Expander:
    """Expands ``${...}`` references against every Rule object's entries."""

    def __init__(self, entries: Sequence[_Entry]) -> None:
        self.by_key: dict[tuple[str, str], _Entry] = {}
        for e in entries:
            self.by_key.setdefault((e.cr, e.name), e)

    def find(self, cr: str, ref: str) -> _Entry:
        entry = self.by_key.get((cr, ref))
        if entry is None and "." in ref:
            other_cr, _, name = ref.rpartition(".")
            entry = self.by_key.get((other_cr, name))
        if entry is None:
            raise ValueError(f"${{{ref}}} names no macro, list or alias")
        if entry.type == "rule":
            raise ValueError(f"${{{ref}}} names a rule; only macros, lists and aliases expand")
        return entry

    def items(self, entry: _Entry, seen: tuple[str, ...]) -> list[str]:
        """A list's literals, other lists spliced in."""
        out: list[str] = []
        for item in entry.body:
            text = str(item)
            m = _REF.fullmatch(text)
            if m:
                inner = self.enter(entry.cr, m.group(1), seen)
                if inner.type != "list":
                    raise ValueError(f"${{{m.group(1)}}} in a list must name a list")
                out.extend(self.items(inner, (*seen, m.group(1))))
            else:
                out.append(text)
        return out

    def enter(self, cr: str, ref: str, seen: tuple[str, ...]) -> _Entry:
        entry = self.find(cr, ref)
        key = f"{entry.cr}.{entry.name}"
        if key in seen:
            raise ValueError(f"${{{ref}}} refers to itself through {' -> '.join(seen)}")
        entry.used = True
        return entry

    def condition(self, cr: str, text: str, seen: tuple[str, ...] = ()) -> str:
        def one(m: re.Match[str]) -> str:
            entry = self.enter(cr, m.group(1), seen)
            key = (*seen, f"{entry.cr}.{entry.name}")
            if entry.type == "macro":
                return "(" + self.condition(entry.cr, str(entry.body), key) + ")"
            if entry.type == "list":
                literals = self.items(entry, key)
                for lit in literals:
                    if '"' in lit or "\\" in lit:
                        raise ValueError(f"list {entry.name}: item {lit!r} cannot be quoted")
                return "(" + ", ".join(f'"{lit}"' for lit in literals) + ")"
            return str(entry.body)

        return _REF.sub(one, text)

    def output(self, cr: str, text: str) -> tuple[_OutputPart, ...]:
        parts: list[_OutputPart] = []
        last = 0
        for m in _REF.finditer(text):
            parts.append(_OutputPart(text[last : m.start()]))
            entry = self.enter(cr, m.group(1), ())
            if entry.type == "alias":
                parts.append(_OutputPart("", str(entry.body)))
            elif entry.type == "list":
                parts.append(_OutputPart(", ".join(self.items(entry, ()))))
            else:
                parts.append(_OutputPart(self.condition(entry.cr, str(entry.body))))
            last = m.end()
        parts.append(_OutputPart(text[last:]))
        return tuple(p for p in parts if p.text or p.path)


_BODY_KEY = {"rule": "condition", "macro": "macro", "list": "list", "alias": "alias"}
_ENTRY_KEYS = {
    "name",
    "type",
    "desc",
    "condition",
    "macro",
    "list",
    "alias",
    "enable",
    "priority",
    "output",
}


def _read_entries(paths: Sequence[str], problems: list[Problem]) -> list[_Entry]:
    entries: list[_Entry] = []
    objects: list[tuple[str, str, list[_Entry]]] = []
    for doc in rule_objects(paths, "auditing.kubesphere.io", problems):
        obj = doc.value
        meta_value = obj.get("metadata")
        meta: Mapping[str, Any] = meta_value if isinstance(meta_value, Mapping) else {}
        cr = str(meta.get("name") or "")
        ns = str(meta.get("namespace") or "")
        if not cr:
            problems.append(Problem(doc.file, doc.line, "metadata.name is missing"))
            continue
        spec = obj.get("spec")
        raw_entries = spec.get("rules") if isinstance(spec, Mapping) else None
        if not isinstance(raw_entries, list):
            problems.append(Problem(doc.file, doc.line, "spec.rules must be a list", cr))
            continue
        mine: list[_Entry] = []
        for i, raw in enumerate(raw_entries):
            line = doc.rule_lines[i] if i < len(doc.rule_lines) else doc.line
            if not isinstance(raw, Mapping):
                problems.append(Problem(doc.file, line, f"spec.rules[{i}] must be an object", cr))
                continue
            name = raw.get("name")
            where = Problem(doc.file, line, "", f"{cr}/{name if name else f'rules[{i}]'}")
            entry = _check_entry(raw, where, cr, problems)
            if entry is not None:
                entry.ns = ns
                if any(e.name == entry.name for e in mine):
                    problems.append(problem_at(where, f"a second entry named {entry.name!r}"))
                    continue
                mine.append(entry)
        objects.append((ns, cr, mine))
    seen_crs: set[str] = set()
    for _, cr, mine in sorted(objects, key=lambda o: (o[0], o[1])):
        if cr in seen_crs and mine:
            problems.append(problem_at(mine[0].where, f"a second Rule object named {cr!r}"))
        seen_crs.add(cr)
        entries.extend(mine)
    return entries


def _check_entry(
    raw: Mapping[str, Any], where: Problem, cr: str, problems: list[Problem]
) -> _Entry | None:
    before = len(problems)
    unknown = sorted(str(k) for k in raw if k not in _ENTRY_KEYS)
    if unknown:
        problems.append(problem_at(where, f"unknown field(s) {', '.join(unknown)}"))
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(problem_at(where, "name is missing"))
    etype = raw.get("type")
    if etype not in ENTRY_TYPES:
        problems.append(problem_at(where, f"type is {etype!r}; want rule, macro, list or alias"))
        return None
    body = raw.get(_BODY_KEY[etype])
    if etype == "list":
        if not isinstance(body, list) or not all(isinstance(x, (str, int, float)) for x in body):
            problems.append(problem_at(where, "list must be a list of strings or numbers"))
    elif not isinstance(body, str) or not body.strip():
        problems.append(problem_at(where, f"{_BODY_KEY[etype]} is missing"))
    if etype == "rule":
        priority = raw.get("priority", "DEBUG")
        if priority not in PRIORITIES:
            problems.append(
                problem_at(where, f"priority is {priority!r}; want DEBUG, INFO or WARNING")
            )
        if not isinstance(raw.get("enable", False), bool):
            problems.append(problem_at(where, "enable must be true or false"))
        if not isinstance(raw.get("output", ""), str):
            problems.append(problem_at(where, "output must be a string"))
    if len(problems) > before:
        return None
    return _Entry(cr, str(name), str(etype), body, raw, where)


def _build(entries: list[_Entry], problems: list[Problem]) -> list[AuditRule]:
    expander = _Expander(entries)
    rules: list[AuditRule] = []
    for e in entries:
        if e.type != "rule":
            continue
        text = str(e.body)
        try:
            expanded = expander.condition(e.cr, text)
        except ValueError as err:
            problems.append(problem_at(e.where, str(err)))
            continue
        try:
            condition = compile_condition(expanded, case_insensitive_paths=True)
        except ConditionError as err:
            shown = repr(text) if expanded == text else f"{expanded!r} (expanded from {text!r})"
            problems.append(problem_at(e.where, f"{err.message} in {shown}", err.position))
            continue
        output = str(e.raw.get("output") or "")
        try:
            parts = expander.output(e.cr, output) if output else ()
        except ValueError as err:
            problems.append(problem_at(e.where, f"output: {err}"))
            continue
        rules.append(
            AuditRule(
                name=e.name,
                condition=condition,
                priority=str(e.raw.get("priority", "DEBUG")),
                enable=bool(e.raw.get("enable", False)),
                output=output,
                cr_namespace=e.ns,
                cr_name=e.cr,
                file=e.where.file,
                line=e.where.line,
                _output_parts=parts,
                source=text,
            )
        )
    return rules


def load_audit_rules(paths: Sequence[str]) -> AuditRuleSet:
    """Load kube-auditing Rule files; raises ``RuleFileError`` listing every problem."""
    problems: list[Problem] = []
    entries = _read_entries(paths, problems)
    rules = _build(entries, problems)
    if problems:
        raise RuleFileError(problems)
    unused = tuple(
        Unused(e.where.file, e.where.line, e.cr, e.name, e.type)
        for e in entries
        if e.type in ("macro", "list") and not e.used
    )
    return AuditRuleSet(tuple(rules), unused)


# --- alerts -----------------------------------------------------------------------------


def _go_time(value: Any) -> str:
    """Go's ``time.Time.String()`` in UTC, as KubeSphere's label carries it."""
    text = str(value)
    try:
        nano = format_nano(parse_rfc3339(text))
    except TimestampError:
        return text
    return nano.replace("T", " ").removesuffix("Z") + " +0000 UTC"


def audit_alert(rule: AuditRule, event: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations kube-auditing gives the alert ``rule`` raises."""
    user = _field(event, "user.username")
    verb = _field(event, "verb")
    resource = _field(event, "objectRef.resource")
    name = _field(event, "objectRef.name")
    labels = {"alertname": rule.name, "alerttype": "auditing"}
    for key, value in (
        ("user", user),
        ("verb", verb),
        ("resource", resource),
        ("name", name),
        ("namespace", _field(event, "objectRef.namespace")),
        ("workspace", _field(event, "workspace")),
    ):
        if value is not None and value != "":
            labels[key] = go_sprint(value)
    groups = _field(event, "user.groups")
    if groups is not None:
        # Go's json.Marshal of the []string: no spaces.
        labels["group"] = json.dumps(groups, separators=(",", ":"), ensure_ascii=False)
    received = _field(event, "requestReceivedTimestamp")
    if received:
        labels["requestReceivedTimestamp"] = _go_time(received)
    message = rule.message(event)
    if message is None:
        message = " ".join(go_sprint(v) if v is not None else "" for v in (user, verb, resource))
        message += f" '{go_sprint(name) if name is not None else ''}'"
    return labels, {"message": message}
