"""Notification Manager's CRDs as ``tocsinctl import notification-manager`` reads them.

Pure apart from reading the files it is given. It knows NM v2beta2's ``Receiver``,
``Config``, ``Router``, ``Silence`` and ``NotificationManager`` kinds, Kubernetes
``Secret`` (for credentials) and ``kind: List`` wrappers; everything else is reported.

NM's rules kept here (``pkg/controller/controller.go`` at v2.6):

* A CR's tenant comes from its labels: ``type: global`` makes it global, ``type: tenant``
  plus the tenant key label (``user`` unless the NotificationManager CR or the flag says
  otherwise) makes it that tenant's, ``type: default`` makes a Config usable by everyone;
  anything else is ignored by NM, and reported here.
* A credential is ``{value}`` or ``{valueFrom: {secretKeyRef: {namespace, name, key}}}``;
  a Secret without a namespace is looked up in the default secret namespace.
* Label selectors: ``matchLabels`` and ``matchExpressions`` with Kubernetes' operators
  plus NM's ``Match`` (an unanchored Go regexp on the label value, a missing label being
  ``""``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from daemon.matcher import Matcher, MatcherError, MatchType
from daemon.template.data import quote_meta

API_GROUP = "notification.kubesphere.io"
KINDS = ("Receiver", "Config", "Router", "Silence", "NotificationManager")
GLOBAL = "global"
DEFAULT = "default"


class Unmappable(Exception):
    """Something of a CR that has no faithful Alertmanager form; the text says why."""


@attrs.frozen
class Problem:
    """One item of the final report: what could not be carried over, and why."""

    kind: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.reason}"


@attrs.frozen
class Resource:
    """One Kubernetes object read from a file."""

    kind: str
    name: str
    namespace: str
    labels: Mapping[str, str]
    body: Mapping[str, Any]
    source: str

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a YAML mapping, else an empty one (absent or mistyped fields)."""
    return value if isinstance(value, dict) else {}


def _objects(doc: Any) -> Iterator[Any]:
    # ``kind: List`` and typed lists (``ReceiverList``) as kubectl writes them.
    if (
        isinstance(doc, dict)
        and str(doc.get("kind", "")).endswith("List")
        and isinstance(doc.get("items"), list)
    ):
        for item in doc.get("items") or []:
            yield from _objects(item)
    elif doc is not None:
        yield doc


def read_resources(paths: Sequence[str], problems: list[Problem]) -> list[Resource]:
    """Every object in ``paths`` (files, or directories whose ``*.yaml``/``*.yml`` are read).

    Raises OSError or yaml.YAMLError for a file that cannot be read or parsed; objects
    of other kinds are reported in ``problems``.
    """
    files: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml"))
        else:
            files.append(p)
    out: list[Resource] = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        for doc in yaml.safe_load_all(text):
            for obj in _objects(doc):
                if not isinstance(obj, dict):
                    problems.append(
                        Problem("?", str(file), "a YAML document that is not an object")
                    )
                    continue
                meta = mapping(obj.get("metadata"))
                kind = str(obj.get("kind", ""))
                name = str(meta.get("name", ""))
                api = str(obj.get("apiVersion", ""))
                if kind == "Secret" and api == "v1":
                    pass
                elif kind in KINDS and api.startswith(API_GROUP + "/"):
                    if api != f"{API_GROUP}/v2beta2":
                        problems.append(
                            Problem(kind, name, f"{api} is not read; convert it to v2beta2 first")
                        )
                        continue
                else:
                    problems.append(Problem(kind or "?", name, f"{api} {kind} is not an NM object"))
                    continue
                labels = mapping(meta.get("labels"))
                out.append(
                    Resource(
                        kind=kind,
                        name=name,
                        namespace=str(meta.get("namespace", "")),
                        labels={str(k): str(v) for k, v in labels.items()},
                        body=obj,
                        source=str(file),
                    )
                )
    return out


@attrs.frozen
class Secrets:
    """The Secrets given as files: ``(namespace, name) -> {key: value}``."""

    data: Mapping[tuple[str, str], Mapping[str, str]]
    default_namespace: str

    @classmethod
    def from_resources(
        cls, resources: Sequence[Resource], default_namespace: str, problems: list[Problem]
    ) -> Secrets:
        data: dict[tuple[str, str], dict[str, str]] = {}
        for r in resources:
            if r.kind != "Secret":
                continue
            values: dict[str, str] = {}
            for key, encoded in (r.body.get("data") or {}).items():
                try:
                    values[str(key)] = base64.b64decode(str(encoded), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    problems.append(Problem("Secret", r.name, f"data.{key} is not base64 text"))
            # stringData wins over data, as the API server merges them.
            for key, value in (r.body.get("stringData") or {}).items():
                values[str(key)] = str(value)
            data[(r.namespace or default_namespace, r.name)] = values
        return cls(data, default_namespace)

    def credential(self, value: Any, where: str) -> str:
        """A Credential's text (or a plain string); raises :class:`Unmappable`."""
        if isinstance(value, str):
            return value
        if not isinstance(value, dict):
            raise Unmappable(f"{where} is missing")
        if value.get("value"):
            return str(value["value"])
        ref = (value.get("valueFrom") or {}).get("secretKeyRef")
        if not isinstance(ref, dict):
            raise Unmappable(f"{where} has neither value nor valueFrom.secretKeyRef")
        namespace = str(ref.get("namespace") or self.default_namespace)
        name, key = str(ref.get("name", "")), str(ref.get("key", ""))
        secret = self.data.get((namespace, name))
        if secret is None:
            raise Unmappable(
                f"{where} reads Secret {namespace}/{name}, which is not among the files given"
            )
        if key not in secret:
            raise Unmappable(f"{where} reads key {key!r} of Secret {namespace}/{name}: no such key")
        return secret[key]


@attrs.frozen
class TenantRules:
    """NM's tenant rules (``getTenantID``): ``receivers.tenantKey``,
    ``receivers.globalReceiverSelector`` and ``tenantReceiverSelector`` (only their
    ``matchLabels``, any one pair of which is enough, as in NM) and
    ``defaultConfigSelector`` (a full selector), with the Helm chart's defaults."""

    tenant_key: str = "user"
    global_labels: Mapping[str, str] = attrs.field(factory=lambda: {"type": "global"})
    tenant_labels: Mapping[str, str] = attrs.field(factory=lambda: {"type": "tenant"})
    default_selector: Any = attrs.field(factory=lambda: {"matchLabels": {"type": "default"}})

    @classmethod
    def from_cr(cls, spec: Mapping[str, Any], tenant_key: str) -> TenantRules:
        """The rules a NotificationManager CR's ``spec`` sets (defaults where it is silent)."""
        receivers = mapping(spec.get("receivers"))
        default = cls(tenant_key)

        def labels(selector: str, fallback: Mapping[str, str]) -> Mapping[str, str]:
            found = mapping(mapping(receivers.get(selector)).get("matchLabels"))
            return {str(k): str(v) for k, v in found.items()} or fallback

        chosen = spec.get("defaultConfigSelector")
        return cls(
            tenant_key,
            labels("globalReceiverSelector", default.global_labels),
            labels("tenantReceiverSelector", default.tenant_labels),
            chosen if isinstance(chosen, dict) else default.default_selector,
        )

    def owner(self, r: Resource) -> str | None:
        """``GLOBAL``, ``DEFAULT`` (Configs only), a tenant id, or None (NM ignores it)."""
        if any(r.labels.get(k) == v for k, v in self.global_labels.items()):
            return GLOBAL
        tenant = r.labels.get(self.tenant_key)
        if tenant and any(r.labels.get(k) == v for k, v in self.tenant_labels.items()):
            return tenant
        if r.kind == "Config" and selector_matches(self.default_selector, r.labels):
            return DEFAULT
        return None


# --- label selectors ------------------------------------------------------------------


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector selects an object with ``labels`` (nil selects everything)."""
    if not isinstance(selector, dict):
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key = str(expr.get("key", ""))
        values = [str(v) for v in expr.get("values") or []]
        op = expr.get("operator")
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op == "Match" and not _expression(expr, "selector").matches(labels.get(key, "")):
            return False
    return True


def _alternatives(values: Sequence[str]) -> str:
    return "|".join(quote_meta(v) for v in values)


def selector_matchers(selector: Any, where: str) -> list[Matcher]:
    """An NM LabelSelector over alert labels as Alertmanager matchers (all must match).

    Faithful because an alert's absent label and empty label are the same in both
    (Prometheus drops empty labels): ``Exists`` is ``!=""``, ``DoesNotExist`` is ``=""``.
    A nil selector is no matchers (matches every alert), as in NM.
    """
    if selector is None:
        return []
    if not isinstance(selector, dict):
        raise Unmappable(f"{where} is not a label selector")
    out: list[Matcher] = []
    try:
        for key, value in sorted((selector.get("matchLabels") or {}).items()):
            out.append(Matcher.create(MatchType.EQUAL, str(key), str(value)))
        for expr in selector.get("matchExpressions") or []:
            out.append(_expression(expr, where))
    except MatcherError as exc:
        raise Unmappable(f"{where}: {exc}") from None
    return out


def _expression(expr: Any, where: str) -> Matcher:
    if not isinstance(expr, dict) or not expr.get("key"):
        raise Unmappable(f"{where}: a matchExpressions entry without a key")
    key = str(expr["key"])
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op in ("In", "NotIn"):
        if not values:
            raise Unmappable(f"{where}: {key} {op} needs values")
        if op == "In" and len(values) == 1:
            return Matcher.create(MatchType.EQUAL, key, values[0])
        if op == "NotIn" and len(values) == 1:
            return Matcher.create(MatchType.NOT_EQUAL, key, values[0])
        kind = MatchType.REGEXP if op == "In" else MatchType.NOT_REGEXP
        return Matcher.create(kind, key, _alternatives(values))
    if op == "Exists":
        return Matcher.create(MatchType.NOT_EQUAL, key, "")
    if op == "DoesNotExist":
        return Matcher.create(MatchType.EQUAL, key, "")
    if op == "Match":
        # NM searches unanchored; Alertmanager anchors, so let anything surround it.
        regex = str(expr.get("regexValue", ""))
        return Matcher.create(MatchType.REGEXP, key, f"(?s:.*)(?:{regex})(?s:.*)")
    raise Unmappable(f"{where}: unknown operator {op!r}")


__all__ = [
    "DEFAULT",
    "GLOBAL",
    "Problem",
    "Resource",
    "Secrets",
    "TenantRules",
    "Unmappable",
    "mapping",
    "read_resources",
    "selector_matchers",
    "selector_matches",
]
