"""``rules check`` and ``rules test``: kube-events and kube-auditing rule files, offline.

``check`` loads every file at once, as the daemon would (event files together, for
their order; audit files together, for their cross-object references), prints every
problem, and warns about each condition that mixes ``and`` and ``or`` without
parentheses (they have one precedence, left to right) and about unused macros and
lists. ``test`` says which rules an event matches and the alert each would make, as
JSON. Each file's kind comes from its first object's ``apiVersion``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import yaml

from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.errors import CtlError
from daemon.ctl.flags import Flag
from daemon.eventrules.auditing import PRIORITIES, AuditRuleSet, audit_alert, load_audit_rules
from daemon.eventrules.condition import mixed_and_or
from daemon.eventrules.files import Problem, RuleFileError, expand_paths
from daemon.eventrules.kubeevents import (
    EventRuleSet,
    event_alert,
    load_event_rules,
    load_workspaces,
)

EVENTS_API = "events.kubesphere.io/"
AUDITING_API = "auditing.kubesphere.io/"

WORKSPACES_FLAG = Flag(
    "events.workspaces-file",
    "YAML 'workspace: [namespace globs]' map for workspace-scoped event rules, as the daemon's flag",
    metavar="FILE",
)
TEST_FLAGS = (
    Flag(
        "rules",
        "kube-events or kube-auditing rule file or glob (repeatable)",
        kind="list",
        metavar="FILE",
    ),
    Flag(
        "event",
        "the event as JSON: a core/v1 Event or an audit.k8s.io/v1 Event (or a JSON array)",
        metavar="FILE",
    ),
    Flag(
        "auditing.alerting-priority",
        "lowest priority of audit rules that alert, as the daemon's flag",
        "WARNING",
        choices=PRIORITIES,
    ),
    WORKSPACES_FLAG,
)


def _first_api(path: str) -> str | None:
    """The ``apiVersion`` of the file's first object (inside ``kind: List`` too)."""
    try:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if isinstance(doc, Mapping) and doc.get("kind") == "List":
                    items = doc.get("items") or []
                    doc = items[0] if isinstance(items, list) and items else None
                if isinstance(doc, Mapping):
                    return str(doc.get("apiVersion", ""))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the loader reports it, with the line
    return ""


def _sort_files(paths: Sequence[str], problems: list[Problem]) -> tuple[list[str], list[str]]:
    events: list[str] = []
    audits: list[str] = []
    for path in expand_paths(paths, problems):
        api = _first_api(path)
        if api is None or api.startswith(EVENTS_API):
            events.append(path)
        elif api.startswith(AUDITING_API):
            audits.append(path)
        else:
            problems.append(
                Problem(
                    path, 0, f"not a kube-events or kube-auditing Rule file (apiVersion {api!r})"
                )
            )
    return events, audits


def _workspaces(inv: Invocation) -> dict[str, list[str]] | None:
    path = inv.values.get("events_workspaces_file")
    return load_workspaces(path) if path else None


def _load(
    paths: Sequence[str], workspaces: Mapping[str, Sequence[str]] | None
) -> tuple[EventRuleSet | None, AuditRuleSet | None, list[Problem]]:
    problems: list[Problem] = []
    event_files, audit_files = _sort_files(paths, problems)
    events = audits = None
    if event_files:
        try:
            events = load_event_rules(event_files, workspaces)
        except RuleFileError as err:
            problems.extend(err.problems)
    if audit_files:
        try:
            audits = load_audit_rules(audit_files)
        except RuleFileError as err:
            problems.extend(err.problems)
    return events, audits, problems


def _mixing_warning(text: str, out: TextIO, where: str, expanded_from: str | None = None) -> int:
    positions = mixed_and_or(text)
    for pos in positions:
        source = (
            f" (expanded from {expanded_from!r})" if expanded_from and expanded_from != text else ""
        )
        out.write(
            f"warning: {where}: condition mixes 'and' and 'or' without parentheses at position {pos}: "
            f"{text!r}{source}; they have one precedence, left to right "
            "('a or b and c' is '(a or b) and c'): add parentheses to say which you mean\n"
        )
    return len(positions)


def check(inv: Invocation) -> int:
    paths: list[str] = inv.args.files
    if not paths:
        raise CtlError("rules check needs at least one FILE")
    try:
        workspaces = _workspaces(inv)
    except RuleFileError as err:
        for p in err.problems:
            inv.out.write(f"error: {p}\n")
        return 1
    events, audits, problems = _load(paths, workspaces)
    for p in problems:
        inv.out.write(f"error: {p}\n")
    warnings = 0
    if events is not None:
        for rule in events.all_rules:
            where = f"{rule.file}:{rule.line}: rule {rule.cr_namespace}/{rule.cr_name}/{rule.name}".replace(
                ": rule /", ": rule "
            )
            warnings += _mixing_warning(rule.condition.text, inv.out, where)
        enabled = sum(1 for r in events.all_rules if r.enable)
        inv.out.write(f"kube-events rules: {len(events.all_rules)} ({enabled} enabled)\n")
    if audits is not None:
        for arule in audits.rules:
            where = f"{arule.file}:{arule.line}: rule {arule.cr_name}/{arule.name}"
            warnings += _mixing_warning(arule.condition.text, inv.out, where, arule.source)
        for unused in audits.unused:
            inv.out.write(
                f"warning: {unused.file}:{unused.line}: {unused.type} {unused.cr}/{unused.name} is never used\n"
            )
            warnings += 1
        enabled = sum(1 for r in audits.rules if r.enable)
        inv.out.write(f"kube-auditing rules: {len(audits.rules)} ({enabled} enabled)\n")
    if problems:
        inv.out.write(f"FAILED: {len(problems)} error(s), {warnings} warning(s)\n")
        return 1
    inv.out.write(f"SUCCESS: {warnings} warning(s)\n")
    return 0


def _read_events(path: str) -> tuple[list[Mapping[str, Any]], bool]:
    """The events, and whether the file held several (an array or one a line)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise CtlError(f"cannot read {path}: {err}") from None
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as err:
            raise CtlError(
                f"{path}: not JSON (one event, an array, or one event a line): {err}"
            ) from None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, Mapping) for i in items):
        raise CtlError(f"{path}: each event must be a JSON object")
    return items, isinstance(value, list)


def _is_audit(event: Mapping[str, Any]) -> bool:
    if str(event.get("apiVersion", "")).startswith("audit.k8s.io/"):
        return True
    return (
        any(k in event for k in ("auditID", "AuditID", "Verb", "verb"))
        and "involvedObject" not in event
    )


def _where(file: str, line: int) -> dict[str, Any]:
    return {"file": file, "line": line}


def test(inv: Invocation) -> int:
    rule_paths: list[str] = inv.values.get("rules") or []
    event_path = inv.values.get("event")
    if not rule_paths or not event_path:
        raise CtlError("rules test needs --rules FILE (one or more) and --event FILE")
    try:
        workspaces = _workspaces(inv)
    except RuleFileError as err:
        raise CtlError(str(err)) from None
    events, audits, problems = _load(rule_paths, workspaces)
    if problems:
        raise CtlError("the rule files do not load:\n" + "\n".join(str(p) for p in problems))
    results: list[dict[str, Any]] = []
    priority = str(inv.values.get("auditing_alerting_priority") or "WARNING")
    events_in, several = _read_events(str(event_path))
    for event in events_in:
        if _is_audit(event):
            results.append(_test_audit(audits, event, priority))
        else:
            results.append(_test_event(events, event))
    json.dump(results if several else results[0], inv.out, indent=2, ensure_ascii=False)
    inv.out.write("\n")
    return 0


def _test_event(rules: EventRuleSet | None, event: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "event", "matches": [], "errors": []}
    if rules is None:
        out["note"] = "no kube-events rule files given"
        return out
    for match in rules.match(event):
        rule = match.rule
        entry: dict[str, Any] = {
            "rule": rule.name,
            "type": rule.type,
            "object": f"{rule.cr_namespace}/{rule.cr_name}".lstrip("/"),
            "scope": rule.scope,
            **_where(rule.file, rule.line),
        }
        if rule.type == "alert":
            labels, annotations = event_alert(rule, event)
            entry["alert"] = {"labels": labels, "annotations": annotations}
            if rule.resolve_after is not None:
                entry["resolve_after_seconds"] = rule.resolve_after
        out["matches"].append(entry)
    for rule in rules.rules:
        why = rule.condition.explain(event)
        if why is not None:
            out["errors"].append({"rule": rule.name, "error": why, **_where(rule.file, rule.line)})
    return out


def _test_audit(
    rules: AuditRuleSet | None, event: Mapping[str, Any], priority: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "audit", "matches": [], "errors": []}
    if rules is None:
        out["note"] = "no kube-auditing rule files given"
        return out
    for rule in rules.match(event, priority):
        labels, annotations = audit_alert(rule, event)
        out["matches"].append(
            {
                "rule": rule.name,
                "priority": rule.priority,
                "object": rule.cr_name,
                **_where(rule.file, rule.line),
                "alert": {"labels": labels, "annotations": annotations},
            }
        )
    below = [
        r.name
        for r in rules.match(event, "DEBUG")
        if PRIORITIES.index(r.priority) < PRIORITIES.index(priority)
    ]
    if below:
        out["below_priority"] = below
    for rule in rules.rules:
        why = rule.condition.explain(event) if rule.enable else None
        if why is not None:
            out["errors"].append({"rule": rule.name, "error": why, **_where(rule.file, rule.line)})
    return out


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = group(
        commands,
        "rules",
        help="Check and try kube-events and kube-auditing rule files.",
        default="check",
    )
    checker = leaf(
        rules,
        "check",
        help="Validate rule files: every error at once, and/or warnings, unused macros and lists.",
        run=check,
        flags=(WORKSPACES_FLAG,),
    )
    checker.add_argument("files", nargs="*", metavar="FILE", help="rule files or globs")
    leaf(
        rules,
        "test",
        help="Show which rules an event matches and the alert each would produce, as JSON.",
        run=test,
        flags=TEST_FLAGS,
        epilog="Example: tocsinctl rules test --rules=events.yaml --event=event.json\n",
    )
