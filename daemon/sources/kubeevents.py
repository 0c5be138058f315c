"""Request bodies of the two intakes, decoded into the events the rules see.

Pure: bytes in, a list of JSON objects or a :class:`DecodeError` out. Nothing here knows
HTTP, trio or the rules.

Event intake (``POST /api/v1/events``) accepts, auto-detected per JSON value:

* a stream of JSON values: newline-delimited JSON (what kube-events' exporter and
  ``kubernetes-event-exporter`` post), one pretty-printed value, or a JSON array;
* ``core/v1`` ``Event`` and ``EventList`` (``kubectl get events -o json``), and
  ``kind: List``;
* ``events.k8s.io/v1`` (and ``v1beta1``) ``Event``, which says ``regarding``/``note``
  where core/v1 says ``involvedObject``/``message``: it is rewritten into core/v1's
  shape, the shape kube-events' rules are written against;
* the exporter's wrapped line ``{"Event": {...}, "cluster": "..."}`` (kube-events since
  #171: Go does not flatten an ``,inline`` interface field).

Audit intake (``POST /audit/webhook/event``) accepts ``audit.k8s.io/v1`` ``EventList``
(the API server's audit webhook backend), KubeSphere's ``{"Items": [...]}`` with
Go-cased fields, a single audit ``Event``, and arrays or streams of these. Audit events
are kept as sent: the audit rules match field paths case-insensitively.

Invariants: either every value of a body decodes or the whole body is refused with a
:class:`DecodeError` naming the line (1-based, where the offending value starts) and the
problem; the caller applies nothing from a refused body. Decoding is a generator that
yields between values (:data:`Steps`) so a large body never stalls the event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator
from typing import Any

import attrs

from daemon.sources.steps import finish

#: Values decoded between two yields of a decoding generator.
STEP_VALUES = 64

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")

#: Appends the events in one JSON value to a list; ValueError names what is wrong.
Collect = Callable[[Any, list[dict[str, Any]], str], None]

#: Keys of core/v1 Event whose value must be a string when present.
_STRING_FIELDS = ("reason", "message", "type", "reportingComponent", "reportingInstance")


@attrs.frozen
class DecodeError(Exception):
    """A body the intake refuses: ``line`` is where the offending value starts."""

    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(body.count(b"\n", 0, exc.start) + 1, "invalid UTF-8") from None


#: A body this long whose first value is an object (an EventList, KubeSphere's
#: ``{"Items": [...]}``) has that object decoded member by member, its arrays element by
#: element, with yields: in one call a 32 MiB list held the event loop about 0.35 s.
STEPPED_OBJECT_BYTES = 1 << 20


def _stepped_object(text: str, pos: int) -> Generator[None, None, tuple[Any, int]]:
    """``raw_decode`` of the object at ``pos``, yielding every :data:`STEP_VALUES` elements
    of its array members; the same value and end position, the same JSONDecodeErrors."""
    decode = _DECODER.raw_decode
    ws = _WS.match
    out: dict[str, Any] = {}
    pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("}", pos):
        return out, pos + 1
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, pos
            )
        key, pos = decode(text, pos)
        pos = ws(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
        if text.startswith("[", pos):
            items: list[Any] = []
            pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
            if text.startswith("]", pos):
                pos += 1
            else:
                while True:
                    item, pos = decode(text, pos)
                    items.append(item)
                    if len(items) % STEP_VALUES == 0:
                        yield
                    pos = ws(text, pos).end()  # type: ignore[union-attr]
                    if text.startswith(",", pos):
                        pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
                        continue
                    if text.startswith("]", pos):
                        pos += 1
                        break
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            value: Any = items
        else:
            value, pos = decode(text, pos)
        out[key] = value
        pos = ws(text, pos).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
            continue
        if text.startswith("}", pos):
            return out, pos + 1
        raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)


def json_values(body: bytes) -> Generator[None, None, list[tuple[int, Any]]]:
    """Every top-level JSON value of ``body`` with the line it starts on; the elements of
    a top-level array count as values of their own (so errors name their line)."""
    text = _text(body)
    values: list[tuple[int, Any]] = []
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    end = len(text)
    if pos == end:
        raise DecodeError(1, "empty body")
    decode = _DECODER.raw_decode
    ws = _WS.match
    # Lines are counted incrementally (from the last value's start), so a body of many
    # values costs one pass over its newlines, not one per value.
    counted_to, line = 0, 1

    def take(start: int) -> int:
        """Decode the value at ``start``; the position after it and its white space."""
        nonlocal counted_to, line
        try:
            value, after = decode(text, start)
        except json.JSONDecodeError as exc:
            raise DecodeError(exc.lineno, f"invalid JSON: {exc.msg}") from None
        except RecursionError:
            # Python's decoder recurses once per level: a hostile body nested past the
            # interpreter's limit is a 400 like any bad JSON, not a 500.
            raise DecodeError(_line_at(text, start), "invalid JSON: nested too deeply") from None
        line += text.count("\n", counted_to, start)
        counted_to = start
        values.append((line, value))
        return ws(text, after).end()  # type: ignore[union-attr]

    if text[pos] == "{" and end > STEPPED_OBJECT_BYTES:
        try:
            value, after = yield from _stepped_object(text, pos)
        except json.JSONDecodeError as exc:
            raise DecodeError(exc.lineno, f"invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise DecodeError(_line_at(text, pos), "invalid JSON: nested too deeply") from None
        values.append((_line_at(text, pos), value))
        counted_to, line = pos, values[0][0]
        pos = ws(text, after).end()  # type: ignore[union-attr]
    while pos < end:
        if text[pos] != "[":
            pos = take(pos)
        else:
            pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
            if pos < end and text[pos] == "]":
                pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
                continue
            while True:
                if pos >= end:
                    raise DecodeError(_line_at(text, pos), "unterminated JSON array")
                pos = take(pos)
                if len(values) % STEP_VALUES == 0:
                    yield
                if pos < end and text[pos] == ",":
                    pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
                    continue
                if pos < end and text[pos] == "]":
                    pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
                    break
                raise DecodeError(_line_at(text, pos), "expected ',' or ']' in JSON array")
        if len(values) % STEP_VALUES == 0:
            yield
    return values


# --- Kubernetes events -------------------------------------------------------------------


def _events_v1_to_core(event: dict[str, Any]) -> dict[str, Any]:
    """An ``events.k8s.io`` Event in core/v1's shape (the conversion the API server
    itself applies between the two versions)."""
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "v1"}
    if "metadata" in event:
        out["metadata"] = event["metadata"]
    out["involvedObject"] = event.get("regarding", {})
    for key in ("reason", "type", "action", "eventTime", "related", "reportingInstance"):
        if key in event:
            out[key] = event[key]
    if "note" in event:
        out["message"] = event["note"]
    if "reportingController" in event:
        out["reportingComponent"] = event["reportingController"]
    if "deprecatedSource" in event:
        out["source"] = event["deprecatedSource"]
    if "deprecatedFirstTimestamp" in event:
        out["firstTimestamp"] = event["deprecatedFirstTimestamp"]
    if "deprecatedLastTimestamp" in event:
        out["lastTimestamp"] = event["deprecatedLastTimestamp"]
    series = event.get("series")
    if isinstance(series, dict):
        out["series"] = series
        if "count" in series:
            out["count"] = series["count"]
    if "count" not in out and "deprecatedCount" in event:
        out["count"] = event["deprecatedCount"]
    return out


def _checked_event(event: dict[str, Any], where: str) -> dict[str, Any]:
    """``event`` as the rules see it, or DecodeError-worthy text via ValueError."""
    involved = event.get("involvedObject")
    if not isinstance(involved, dict):
        raise ValueError(f"{where}not a Kubernetes Event: involvedObject must be an object")
    for key in _STRING_FIELDS:
        value = event.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}{key} must be a string")
    count = event.get("count")
    if count is not None and (type(count) is not int or count < 0):
        raise ValueError(f"{where}count must be a non-negative integer")
    metadata = event.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValueError(f"{where}metadata must be an object")
        if "managedFields" in metadata:
            # Large and never matched on; kube-events' exporter drops it too.
            event = {
                **event,
                "metadata": {k: v for k, v in metadata.items() if k != "managedFields"},
            }
    return event


def _kube_events_of(value: Any, into: list[dict[str, Any]], where: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where}expected a JSON object, got {_json_kind(value)}")
    kind = value.get("kind")
    api = value.get("apiVersion")
    if "Event" in value and isinstance(value["Event"], dict) and "involvedObject" not in value:
        # kube-events exporter's wrapped line; its "cluster" tag is not part of an Event.
        _kube_events_of(value["Event"], into, f"{where}Event: ")
        return
    if kind in ("EventList", "List"):
        _each_item(value, "items", _kube_events_of, into, where)
        return
    if kind is not None and kind != "Event":
        raise ValueError(f"{where}not a Kubernetes Event: kind {kind!r}")
    if (isinstance(api, str) and api.startswith("events.k8s.io/")) or (
        "regarding" in value and "involvedObject" not in value
    ):
        value = _events_v1_to_core(value)
    into.append(_checked_event(value, where))


def _each_item(
    value: dict[str, Any], key: str, collect: Collect, into: list[dict[str, Any]], where: str
) -> None:
    """``collect`` over a list object's ``value[key]`` (null: no items)."""
    items = value[key] if key in value else None
    if items is None:
        return
    if not isinstance(items, list):
        raise ValueError(f"{where}{key} must be an array")
    for i, item in enumerate(items):
        collect(item, into, f"{where}{key}[{i}]: ")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _events_steps(body: bytes, collect: Collect) -> Generator[None, None, list[dict[str, Any]]]:
    values = yield from json_values(body)
    events: list[dict[str, Any]] = []
    for n, (line, value) in enumerate(values):
        try:
            collect(value, events, "")
        except ValueError as exc:
            raise DecodeError(line, str(exc)) from None
        if n % STEP_VALUES == STEP_VALUES - 1:
            yield
    return events


def kube_events_steps(body: bytes) -> Generator[None, None, list[dict[str, Any]]]:
    """The core/v1 Events of an event-intake body, in body order (see module doc)."""
    return _events_steps(body, _kube_events_of)


def kube_events_of(value: Any) -> list[dict[str, Any]]:
    """The core/v1 Events in one already-decoded JSON value (a watch line's object, a
    list answer); DecodeError with line 1 if it holds something else."""
    events: list[dict[str, Any]] = []
    try:
        _kube_events_of(value, events, "")
    except ValueError as exc:
        raise DecodeError(1, str(exc)) from None
    return events


def decode_kube_events(body: bytes) -> list[dict[str, Any]]:
    """:func:`kube_events_steps` run to its end (for tests and tools)."""
    return finish(kube_events_steps(body))


# --- audit events ----------------------------------------------------------------------


def _is_audit_event(value: dict[str, Any]) -> bool:
    return "auditID" in value or "AuditID" in value


def _audit_events_of(value: Any, into: list[dict[str, Any]], where: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where}expected a JSON object, got {_json_kind(value)}")
    for key in ("items", "Items"):
        if key in value and not _is_audit_event(value):
            _each_item(value, key, _audit_events_of, into, where)
            return
    kind = value.get("kind")
    if kind is not None and kind != "Event":
        raise ValueError(f"{where}not an audit Event: kind {kind!r}")
    if not _is_audit_event(value):
        raise ValueError(f"{where}not an audit Event: no auditID")
    into.append(value)


def audit_events_steps(body: bytes) -> Generator[None, None, list[dict[str, Any]]]:
    """The audit events of an audit-intake body, in body order (see module doc)."""
    return _events_steps(body, _audit_events_of)


def decode_audit_events(body: bytes) -> list[dict[str, Any]]:
    """:func:`audit_events_steps` run to its end (for tests and tools)."""
    return finish(audit_events_steps(body))


__all__ = [
    "DecodeError",
    "audit_events_steps",
    "decode_audit_events",
    "decode_kube_events",
    "json_values",
    "kube_events_of",
    "kube_events_steps",
]
