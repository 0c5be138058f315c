"""The rule files behind the intakes: loaded at start-up and on every reload.

The rule language and files are :mod:`daemon.eventrules`'s; this module adapts them to
:class:`~daemon.sources.production.EventRules` and reads the flags' files
(``--events.rules-file``, ``--auditing.rules-file``, ``--events.workspaces-file``).
Loading is blocking (it reads files): the shell runs it in a thread. Any problem raises
:class:`RulesError` (a ``ValueError``, so the config reloader refuses the reload and
keeps the rules and config that run); its text names the file, line, rule and the
position in the condition, as the rule loaders give them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from daemon.clock import NS_PER_SECOND
from daemon.eventrules.auditing import AuditRuleSet, audit_alert, load_audit_rules
from daemon.eventrules.files import RuleFileError
from daemon.eventrules.kubeevents import (
    EventRuleSet,
    event_alert,
    load_event_rules,
    load_workspaces,
)
from daemon.sources import metrics as sm
from daemon.sources.intake import EventIntake, NoRules, RuleSets
from daemon.sources.production import EventRules, Outcome


class RulesError(ValueError):
    """Rule files (or the workspace map) that do not load; the text says where."""


class LoadedEventRules:
    """kube-events rules: the first enabled matching rule of each type."""

    def __init__(self, rules: EventRuleSet) -> None:
        self.rules = rules
        # Seconds as the rule files give them, nanoseconds as the resolve actor wants.
        self._resolve_after = {
            id(r): None if r.resolve_after is None else round(r.resolve_after * NS_PER_SECOND)
            for r in rules.rules
        }

    def outcomes(self, event: dict[str, Any]) -> list[Outcome]:
        out: list[Outcome] = []
        for match in self.rules.match(event):
            rule = match.rule
            if match.type == "alert":
                labels, annotations = event_alert(rule, event)
                out.append(
                    Outcome(rule.name, "alert", labels, annotations, self._resolve_after[id(rule)])
                )
            else:
                out.append(Outcome(rule.name, "notification"))
        return out

    def __len__(self) -> int:
        return len(self.rules.all_rules)


class LoadedAuditRules:
    """kube-auditing rules: every enabled matching rule at or above the priority."""

    def __init__(self, rules: AuditRuleSet, min_priority: str) -> None:
        self.rules = rules
        self.min_priority = min_priority

    def outcomes(self, event: dict[str, Any]) -> list[Outcome]:
        out: list[Outcome] = []
        for rule in self.rules.match(event, self.min_priority):
            labels, annotations = audit_alert(rule, event)
            out.append(Outcome(rule.name, "alert", labels, annotations))
        return out

    def __len__(self) -> int:
        return len(self.rules.rules)


@attrs.frozen
class RuleFiles:
    """Where the rules come from: the flags' values."""

    events: Sequence[str] = ()
    audit: Sequence[str] = ()
    workspaces_file: str = ""
    alerting_priority: str = "WARNING"

    def load(self) -> RuleSets:
        """Read every file and build both rule sets (blocking).

        Raises:
            RulesError: naming each problem's file, line, rule and condition position.
        """
        events: EventRules = NoRules()
        audit: EventRules = NoRules()
        try:
            workspaces = load_workspaces(self.workspaces_file) if self.workspaces_file else None
            if self.events:
                events = LoadedEventRules(load_event_rules(list(self.events), workspaces))
            if self.audit:
                audit = LoadedAuditRules(load_audit_rules(list(self.audit)), self.alerting_priority)
        except RuleFileError as exc:
            raise RulesError(str(exc)) from None
        return RuleSets(events=events, audit=audit)


@attrs.frozen
class RuleReload:
    """What the config reloader needs: load the files (blocking), then use the result."""

    files: RuleFiles
    intake: EventIntake

    def load(self) -> RuleSets:
        try:
            return self.files.load()
        except RulesError:
            sm.rules_last_reload_successful.set(0)
            raise

    def use(self, rules: RuleSets) -> None:
        self.intake.use(rules)


__all__ = [
    "LoadedAuditRules",
    "LoadedEventRules",
    "RuleFiles",
    "RuleReload",
    "RulesError",
]
