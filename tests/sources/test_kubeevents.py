"""Decoding the two intakes' bodies: every shape Kubernetes and the exporters send, and
refusals that name the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.sources.kubeevents import (
    STEP_VALUES,
    STEPPED_OBJECT_BYTES,
    DecodeError,
    audit_events_steps,
    decode_audit_events,
    decode_kube_events,
    kube_events_of,
    kube_events_steps,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_core_v1_list_from_kubectl_decodes_every_item() -> None:
    """``kubectl get events -o json`` (kind List, pretty-printed) gives its three Events."""
    events = decode_kube_events(fixture("core-v1-eventlist.json"))
    assert [e["reason"] for e in events] == ["BackOff", "NodeNotReady", "FailedScheduling"]
    assert events[0]["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert events[0]["count"] == 7


def test_event_list_kind_and_single_event_are_accepted() -> None:
    """An API ``EventList`` and a bare core/v1 ``Event`` decode alike."""
    items = json.loads(fixture("core-v1-eventlist.json"))["items"]
    as_list = {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items}
    assert decode_kube_events(json.dumps(as_list).encode()) == items
    assert decode_kube_events(json.dumps(items[1]).encode()) == [items[1]]


def test_events_k8s_io_v1_is_rewritten_to_core_v1() -> None:
    """``regarding``/``note``/``deprecated*`` become ``involvedObject``/``message``/...;
    managedFields are dropped."""
    (event,) = decode_kube_events(fixture("events-k8s-io-v1.json"))
    assert event["apiVersion"] == "v1"
    assert event["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert event["involvedObject"]["name"] == "data-db-0"
    assert event["message"] == 'storageclass.storage.k8s.io "fast" not found'
    assert event["count"] == 10
    assert event["source"] == {"component": "persistentvolume-controller"}
    assert event["firstTimestamp"] == "2024-03-05T10:25:44Z"
    assert event["lastTimestamp"] == "2024-03-05T10:27:59Z"
    assert event["reportingComponent"] == "persistentvolume-controller"
    assert "managedFields" not in event["metadata"]
    assert "regarding" not in event and "note" not in event


def test_series_count_wins_over_deprecated_count() -> None:
    """An events.k8s.io Event in a series counts by ``series.count``."""
    raw = json.loads(fixture("events-k8s-io-v1.json"))
    raw["series"] = {"count": 42, "lastObservedTime": "2024-03-05T10:29:00.000000Z"}
    (event,) = decode_kube_events(json.dumps(raw).encode())
    assert event["count"] == 42
    assert event["series"]["lastObservedTime"] == "2024-03-05T10:29:00.000000Z"


def test_exporter_wrapped_ndjson_lines_are_unwrapped() -> None:
    """kube-events exporter lines ``{"Event": {...}, "cluster": ...}`` give the inner Event."""
    events = decode_kube_events(fixture("kube-events-exporter.ndjson"))
    assert [e["reason"] for e in events] == ["BackOff", "NodeNotReady"]
    assert all("cluster" not in e and "Event" not in e for e in events)


def test_kubernetes_event_exporter_webhook_body_decodes() -> None:
    """kubernetes-event-exporter's webhook body (an enhanced core/v1 Event) is accepted."""
    (event,) = decode_kube_events(fixture("kubernetes-event-exporter.json"))
    assert event["involvedObject"]["kind"] == "Job"
    assert event["reason"] == "BackoffLimitExceeded"


def test_json_array_and_ndjson_give_the_same_events() -> None:
    """The same events posted as a JSON array and as NDJSON decode identically."""
    items = json.loads(fixture("core-v1-eventlist.json"))["items"]
    ndjson = b"\n".join(json.dumps(i).encode() for i in items) + b"\n"
    assert decode_kube_events(json.dumps(items).encode()) == items
    assert decode_kube_events(ndjson) == items
    assert decode_kube_events(b"[]") == []


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        (b"", 1, "empty body"),
        (b'{"kind":"Event","involvedObject":{}}\n{"kind":', 2, "invalid JSON"),
        (b'{"involvedObject":{}}\n\n[1]\n', 3, "expected a JSON object, got a number"),
        (b'{"involvedObject":{}}\n{"kind":"Pod"}\n', 2, "not a Kubernetes Event: kind 'Pod'"),
        (b'{"reason":"BackOff"}', 1, "involvedObject must be an object"),
        (b'{"involvedObject":{},"count":"7"}', 1, "count must be a non-negative integer"),
        (b'{"involvedObject":{},"message":5}', 1, "message must be a string"),
        (b'[{"involvedObject":{}},\n{"involvedObject":{}} {}]', 2, "expected ',' or ']'"),
        (b'{"kind":"EventList","items":[{"involvedObject":{}},{}]}', 1, "items[1]:"),
        (b'{"involvedObject":{}}\n\xff\n', 2, "invalid UTF-8"),
        (b"[\n", 2, "unterminated JSON array"),
    ],
)
def test_bad_bodies_are_refused_naming_line_and_problem(
    body: bytes, line: int, problem: str
) -> None:
    """A refusal says where the offending value starts and what is wrong with it."""
    with pytest.raises(DecodeError) as caught:
        decode_kube_events(body)
    assert caught.value.line == line
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"line {line}: ")


def test_audit_event_list_from_the_api_server_decodes() -> None:
    """The audit webhook backend's ``audit.k8s.io/v1`` EventList gives its items as sent."""
    events = decode_audit_events(fixture("audit-eventlist.json"))
    assert [e["objectRef"]["subresource"] for e in events[:1]] == ["exec"]
    assert events[1]["requestObject"]["spec"]["type"] == "NodePort"


def test_kubesphere_items_with_go_cased_fields_decode() -> None:
    """KubeSphere's ``{"Items": [...]}`` with Go-cased fields is accepted unchanged."""
    (event,) = decode_audit_events(fixture("kubesphere-audit-items.json"))
    assert event["Verb"] == "delete"
    assert event["ObjectRef"]["Resource"] == "deployments"


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        (b'{"items":[{"verb":"get"}]}', 1, "items[0]: not an audit Event: no auditID"),
        (b'{"kind":"Policy"}', 1, "kind 'Policy'"),
        (b'{"Items":{}}', 1, "Items must be an array"),
        (b'{"auditID":"a"}\n"x"', 2, "got a string"),
    ],
)
def test_bad_audit_bodies_are_refused(body: bytes, line: int, problem: str) -> None:
    """Audit bodies that are not audit events are refused with line and problem."""
    with pytest.raises(DecodeError) as caught:
        decode_audit_events(body)
    assert (caught.value.line, problem in caught.value.problem) == (line, True)


def test_decoding_yields_between_values_of_one_array() -> None:
    """A body that is one large JSON array is decoded in slices too (the event loop gets
    a turn every STEP_VALUES values), not in one stretch."""
    body = json.dumps([{"involvedObject": {}, "reason": str(i)} for i in range(10 * STEP_VALUES)])
    steps = kube_events_steps(body.encode())
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            events = done.value
            break
        yields += 1
    assert len(events) == 10 * STEP_VALUES and yields >= 10


def _run(steps: Any) -> tuple[Any, int]:
    """Drive a decoding generator to the end; its result and how often it yielded."""
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, yields
        yields += 1


def _big_list(kind: str, key: str, count: int) -> bytes:
    item = {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "BackOff", "pad": "x" * 300}
    return json.dumps(
        {"apiVersion": "v1", "kind": kind, "metadata": {}, key: [item] * count}, indent=1
    ).encode()


def test_one_large_event_list_object_is_decoded_in_slices() -> None:
    """An EventList object over STEPPED_OBJECT_BYTES (one value, no top-level array) is
    decoded in slices too, to the same events as decoding it in one call."""
    body = _big_list("EventList", "items", 5000)
    assert len(body) > STEPPED_OBJECT_BYTES
    events, yields = _run(kube_events_steps(body))
    assert yields >= 5000 // STEP_VALUES
    assert events == kube_events_of(json.loads(body))


def test_one_large_kubesphere_audit_object_is_decoded_in_slices() -> None:
    """KubeSphere's ``{"Items": [...]}`` audit body over the threshold is sliced as well,
    to the same events as a small body of the same items gives."""
    doc = json.loads(fixture("kubesphere-audit-items.json"))
    doc["Items"] = doc["Items"] * 5000
    body = json.dumps(doc, indent=1).encode()
    assert len(body) > STEPPED_OBJECT_BYTES
    events, yields = _run(audit_events_steps(body))
    assert yields >= 5000 // STEP_VALUES
    assert events == decode_audit_events(fixture("kubesphere-audit-items.json")) * 5000


@pytest.mark.parametrize(
    ("tail", "problem"),
    [
        ('], "x" 1}', "invalid JSON: Expecting ':' delimiter"),
        ("] 1}", "invalid JSON: Expecting ',' delimiter"),
        ("}", "invalid JSON: Expecting ',' delimiter"),
        ("], 5: 1}", "invalid JSON: Expecting property name enclosed in double quotes"),
    ],
)
def test_a_large_malformed_object_is_refused_like_a_small_one(tail: str, problem: str) -> None:
    """Malformed JSON in a large object is a DecodeError with json's own wording."""
    body = _big_list("EventList", "items", 5000).decode().rstrip()
    assert body.endswith("]\n}") or body.endswith("]}")
    body = body[: body.rindex("]")] + tail
    with pytest.raises(DecodeError) as caught:
        _run(kube_events_steps(body.encode()))
    assert caught.value.problem == problem
