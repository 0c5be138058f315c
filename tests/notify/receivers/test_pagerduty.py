"""The PagerDuty integration: exact v2/v1 bodies, truncation, size limit, error classes."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx
import pytest
import trio

from daemon.notify.receivers import _http, pagerduty
from tests.notify.receivers.conftest import (
    DEDUP,
    GROUP_KEY,
    Kind,
    failing,
    firing,
    real_templates,
    recorder,
    resolved,
    side_by_side,
)

PAGERDUTY = Kind("pagerduty", pagerduty.build)


def test_key_hash_is_sha256_of_group_key() -> None:
    """The dedup key is the SHA-256 hex digest of the group key."""
    assert _http.key_hash(GROUP_KEY) == (
        "20f05103daaa538437128377aa3982ce38179cc5c6430f401eeba122f3f787c6"
    )


def test_truncate_in_runes_matches_go() -> None:
    """Rune truncation keeps n-1 runes plus the ellipsis, or n runes when n <= 3."""
    assert _http.truncate_in_runes("héllo", 5) == ("héllo", False)
    assert _http.truncate_in_runes("héllo!", 5) == ("héll…", True)
    assert _http.truncate_in_runes("héllo", 3) == ("hél", True)


def test_truncate_in_bytes_matches_go() -> None:
    """Byte truncation never splits a character and ends in the 3-byte ellipsis."""
    assert _http.truncate_in_bytes("abc", 3) == ("abc", False)
    assert _http.truncate_in_bytes("aéééé", 6) == ("aé…", True)
    assert _http.truncate_in_bytes("aéééé", 5) == ("a…", True)
    assert _http.truncate_in_bytes("abcdef", 3) == ("…", True)
    assert _http.truncate_in_bytes("abcdef", 2) == ("..", True)


async def test_v2_trigger_body_is_exact() -> None:
    """A firing group sends Go's v2 event bytes with rendered fields and default severity."""
    (request,) = await PAGERDUTY.sent(
        "{routing_key: '{{ rk }}', class: c, images: [{src: '{{ s }}', alt: a}, {src: ''}],"
        " links: [{href: 'http://l', text: t}], details: {extra: '{{ e }}'}}"
    )
    assert request.url == "https://events.pagerduty.com/v2/enqueue"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "Alertmanager/0.25.0"
    body = request.content.decode()
    assert body == (
        '{"routing_key":"\\u003crk\\u003e","dedup_key":"' + DEDUP + '","event_action":"trigger",'
        '"payload":{"summary":"\\u003ctemplate \\"pagerduty.default.description\\" .}}",'
        '"source":"\\u003ctemplate \\"pagerduty.default.client\\" .\\u003e","severity":"error",'
        '"class":"c","custom_details":{"extra":"\\u003ce\\u003e",'
        '"firing":"\\u003ctemplate \\"pagerduty.default.instances\\" .Alerts.Firing\\u003e",'
        '"num_firing":"\\u003c.Alerts.Firing | len\\u003e",'
        '"num_resolved":"\\u003c.Alerts.Resolved | len\\u003e",'
        '"resolved":"\\u003ctemplate \\"pagerduty.default.instances\\" .Alerts.Resolved\\u003e"}},'
        '"client":"\\u003ctemplate \\"pagerduty.default.client\\" .\\u003e",'
        '"client_url":"\\u003ctemplate \\"pagerduty.default.clientURL\\" .\\u003e",'
        '"images":[{"src":"\\u003cs\\u003e","alt":"a","href":""}],'
        '"links":[{"href":"http://l","text":"t"}]}\n'
    )


async def test_v1_resolve_body_has_null_payload_and_no_client() -> None:
    """A v1 resolve carries event_type, incident_key, details, empty event_action, null payload."""
    (request,) = await PAGERDUTY.sent(
        "{service_key: sk, details: {a: b}}", [resolved()], real_templates()
    )
    assert request.url == pagerduty.V1_URL
    parsed = json.loads(request.content)
    assert list(parsed) == [
        "service_key",
        "incident_key",
        "event_type",
        "description",
        "event_action",
        "payload",
        "details",
    ]
    assert parsed["event_type"] == "resolve"
    assert parsed["event_action"] == ""
    assert parsed["payload"] is None
    assert parsed["incident_key"] == DEDUP
    assert parsed["description"] == "[RESOLVED] Q "
    assert parsed["details"] == {
        "a": "b",
        "firing": "",
        "num_firing": "0",
        "num_resolved": "1",
        "resolved": "Labels:\n - alertname = Q\nAnnotations:\nSource: \n",
    }


async def test_summary_is_truncated_to_1024_runes() -> None:
    """The v2 summary is cut to 1024 runes ending in an ellipsis."""
    seen = await PAGERDUTY.sent("{routing_key: k, description: '" + "é" * 2000 + "'}")
    summary = json.loads(seen[0].content)["payload"]["summary"]
    assert summary == "é" * 1023 + "…"


async def test_oversized_event_drops_details() -> None:
    """An event over 512000 bytes has its custom details replaced by an error note."""
    seen = await PAGERDUTY.sent("{routing_key: k, details: {big: '" + "x" * 600000 + "'}}")
    details = json.loads(seen[0].content)["payload"]["custom_details"]
    assert details == {
        "error": "Custom details have been removed because the original event exceeds "
        "the maximum size of 512KB"
    }


@pytest.mark.parametrize(
    ("entry", "status", "retryable"),
    [
        ("{routing_key: k}", 429, True),
        ("{routing_key: k}", 403, False),
        ("{routing_key: k}", 503, True),
        ("{routing_key: k}", 404, False),
        ("{service_key: k}", 403, True),
        ("{service_key: k}", 429, False),
    ],
)
async def test_status_classification(entry: str, status: int, retryable: bool) -> None:
    """5xx always retries; 429 retries on v2 and 403 on v1; other codes are permanent."""
    err = await PAGERDUTY.failure(entry, recorder([status])[1])
    assert err.retryable is retryable
    assert str(err).startswith(f"unexpected status code {status}")


async def test_bad_request_quotes_pagerduty_errors() -> None:
    """A 400 reply's message and errors make the error details."""
    body = b'{"status":"invalid event","message":"Event object is invalid","errors":["a","b"]}'
    err = await PAGERDUTY.failure("{routing_key: k}", recorder([400], body)[1])
    assert str(err) == "unexpected status code 400: Event object is invalid: a,b"
    assert not err.retryable


async def test_transport_errors_are_retryable_and_redacted() -> None:
    """Connection failures and timeouts retry and never show the URL."""
    for exc in (httpx.ConnectError("refused"), httpx.ReadTimeout("slow")):
        err = await PAGERDUTY.failure("{routing_key: k}", failing(exc))
        assert err.retryable
        assert "events.pagerduty.com" not in str(err)
        assert str(err).startswith('Post "<redacted>": ')


async def test_template_error_and_empty_key_are_permanent() -> None:
    """A failing template or a routing key rendering empty stops retries."""
    _, handler = recorder()
    err = await PAGERDUTY.failure("{routing_key: k, severity: '{{ FAIL }}'}", handler)
    assert not err.retryable
    err = await PAGERDUTY.failure("{routing_key: '{{ \"\" }}'}", handler, real_templates())
    assert (str(err), err.retryable) == ("routing key cannot be empty", False)


async def test_routing_key_file_is_read_and_trimmed(tmp_path: Any) -> None:
    """routing_key_file is read at send time and its whitespace trimmed."""
    path = tmp_path / "key"
    path.write_text("  from-file\n")
    seen = await PAGERDUTY.sent(f"{{routing_key_file: '{path}'}}")
    assert json.loads(seen[0].content)["routing_key"] == "from-file"


async def test_default_templates_render_summary() -> None:
    """With the built-in templates the summary is the default subject."""
    seen = await PAGERDUTY.sent(
        "{routing_key: k}", [firing(), firing(instance="a")], real_templates()
    )
    payload = json.loads(seen[0].content)["payload"]
    assert payload["summary"] == "[FIRING:2] Q "
    assert payload["source"] == "Alertmanager"
    assert payload["custom_details"]["num_firing"] == "2"


@pytest.mark.alertmanager
@pytest.mark.parametrize(
    "entry",
    [
        "routing_key: rk\n    url: {url}/v2/enqueue\n    severity: warning\n"
        "    images: [{{src: 'http://img', alt: '{{{{ .Status }}}}'}}]\n"
        "    links: [{{href: 'http://l', text: t}}]",
        "service_key: sk\n    http_config:\n      proxy_url: {url}\n"
        "      tls_config: {{insecure_skip_verify: true}}",
    ],
    ids=["v2", "v1"],
)
async def test_same_request_as_alertmanager(
    entry: str, tmp_path: pathlib.Path, nursery: trio.Nursery
) -> None:
    """Alertmanager 0.25 and tocsin send the same PagerDuty event for the same alerts."""
    mine_all, theirs_all = await side_by_side(
        tmp_path, nursery, lambda url: "  pagerduty_configs:\n  - " + entry.format(url=url) + "\n"
    )
    (theirs,) = theirs_all
    (mine,) = mine_all
    assert (mine.method, mine.target) == (theirs.method, theirs.target)
    assert mine.body.decode() == theirs.body.decode()
    assert b"summary" in theirs.body or b"description" in theirs.body
    assert mine.headers["content-type"] == theirs.headers["content-type"]
    assert mine.headers["user-agent"] == theirs.headers["user-agent"]
