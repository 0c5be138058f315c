"""The webhook payload bytes and the integration's HTTP behaviour."""

from __future__ import annotations

import base64
import json
import pathlib

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.config.model import HTTPConfig, WebhookConfig
from daemon.gocompat.timestamp import parse_rfc3339
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers import webhook
from daemon.notify.receivers.webhook import (
    WebhookIntegration,
    auth_headers,
    build_payload,
    encode_payload,
    truncate,
)
from daemon.notify.retry import NotifyError
from daemon.template.data import build_data

NOW = parse_rfc3339("2026-11-23T19:31:00Z")

OBSERVED = (
    r'{"receiver":"raw","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Q"},'
    r'"annotations":{"s":"\u003cb\u003e\u0026\"x\"é"},"startsAt":"2026-11-23T19:30:12.467062232Z",'
    r'"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://g/x?a=1\u0026b=2",'
    r'"fingerprint":"d290efc389b179b7"}],"groupLabels":{"alertname":"Q"},'
    r'"commonLabels":{"alertname":"Q"},"commonAnnotations":{"s":"\u003cb\u003e\u0026\"x\"é"},'
    r'"externalURL":"http://vm:19302","version":"4","groupKey":"{}:{alertname=\"Q\"}",'
    r'"truncatedAlerts":0}'
)


def ctx(receiver: str = "raw", group_key: str = '{}:{alertname="Q"}') -> NotifyContext:
    return NotifyContext(
        group_key=group_key,
        group_labels={"alertname": "Q"},
        receiver=receiver,
        repeat_interval=3600 * 10**9,
        route_id="{}",
        now=NOW,
    )


def test_payload_matches_observed_alertmanager_bytes() -> None:
    """The body equals the 0.25 binary's observed payload byte for byte, plus newline."""
    alert = Alert(
        {"alertname": "Q"},
        {"s": '<b>&"x"é'},
        parse_rfc3339("2026-11-23T19:30:12.467062232Z"),
        ZERO_TIME,
        generator_url="http://g/x?a=1&b=2",
    )
    body = build_payload(ctx(), [alert], 0, "http://vm:19302", NOW)
    assert body == (OBSERVED + "\n").encode()


def test_payload_resolved_truncated_and_quote_meta() -> None:
    """max_alerts keeps the first alerts, counts the rest, and quote-metas the receiver."""
    alerts = [Alert({"alertname": "T", "i": str(i)}, {}, NOW - 10**9, NOW - 1) for i in range(3)]
    body = build_payload(ctx(receiver="my.recv+x"), alerts, 2, "http://e", NOW)
    doc = json.loads(body)
    assert doc["receiver"] == r"my\.recv\+x"
    assert doc["status"] == "resolved"
    assert [a["labels"]["i"] for a in doc["alerts"]] == ["0", "1"]
    assert doc["truncatedAlerts"] == 1
    assert doc["commonLabels"] == {"alertname": "T"}
    assert doc["alerts"][0]["endsAt"] == "2026-11-23T19:30:59.999999999Z"
    assert doc["alerts"][0]["annotations"] == {}
    assert doc["alerts"][0]["generatorURL"] == ""
    assert list(doc) == [
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
    ]


def test_truncate_zero_means_all() -> None:
    """max_alerts 0 (or a larger limit) keeps every alert and drops none."""
    alerts = [Alert({"a": str(i)}, {}, 0, ZERO_TIME) for i in range(3)]
    assert truncate(alerts, 0) == (alerts, 0)
    assert truncate(alerts, 3) == (alerts, 0)


def test_gojson_escaping() -> None:
    """Strings are escaped like Go's encoding/json (HTML-safe, \\u00xx controls, raw UTF-8)."""
    assert gojson.string('a"\\\n\r\t\x08\x0c\x01<>&\u2028\u2029é☃') == (
        r'"a\"\\\n\r\t\u0008\u000c\u0001\u003c\u003e\u0026\u2028\u2029é☃"'
    )
    assert gojson.string("\ud800") == '"\ufffd"'
    assert gojson.string_map({"b": "1", "a": "2", "é": "3"}) == '{"a":"2","b":"1","é":"3"}'


async def test_auth_headers_variants() -> None:
    """basic_auth, authorization and bearer_token each produce the Authorization header."""
    basic = HTTPConfig(raw={"basic_auth": {"username": "u", "password": "p"}})
    assert await auth_headers(basic) == {
        "Authorization": "Basic " + base64.b64encode(b"u:p").decode()
    }
    authz = HTTPConfig(raw={"authorization": {"credentials": "tok"}})
    assert await auth_headers(authz) == {"Authorization": "Bearer tok"}
    custom = HTTPConfig(raw={"authorization": {"type": "Token", "credentials": "t"}})
    assert await auth_headers(custom) == {"Authorization": "Token t"}
    assert await auth_headers(HTTPConfig(raw={"bearer_token": "b"})) == {
        "Authorization": "Bearer b"
    }
    assert await auth_headers(HTTPConfig()) == {}


async def test_auth_secret_file_is_read_and_trimmed(tmp_path: pathlib.Path) -> None:
    """A password_file is read at send time with surrounding whitespace trimmed."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = HTTPConfig(raw={"basic_auth": {"username": "u", "password_file": str(secret)}})
    assert await auth_headers(cfg) == {
        "Authorization": "Basic " + base64.b64encode(b"u:s3cret").decode()
    }


def integration(handler: httpx.MockTransport, url: str = "http://sink/hook") -> WebhookIntegration:
    client = httpx.AsyncClient(transport=handler)
    return WebhookIntegration(WebhookConfig(url=url), 0, client, "http://am")


async def test_notify_sends_headers_and_body() -> None:
    """A send POSTs JSON with Alertmanager's content type and user agent."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    alert = Alert({"alertname": "Q"}, {}, NOW - 10**9, ZERO_TIME)
    await integration(httpx.MockTransport(handler)).notify(ctx(), [alert])
    (request,) = seen
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Alertmanager/0.25.0"
    assert json.loads(request.content)["alerts"][0]["labels"] == {"alertname": "Q"}


@pytest.mark.parametrize(
    ("status", "retryable", "reason", "text"),
    [
        (500, True, "serverError", "unexpected status code 500: oops"),
        (404, False, "clientError", "unexpected status code 404: oops"),
    ],
)
async def test_notify_status_errors(status: int, retryable: bool, reason: str, text: str) -> None:
    """Non-2xx answers raise NotifyError classified by status class."""

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=b"oops")

    alert = Alert({"alertname": "Q"}, {}, NOW - 10**9, ZERO_TIME)
    with pytest.raises(NotifyError) as info:
        await integration(httpx.MockTransport(handler)).notify(ctx(), [alert])
    assert (info.value.retryable, info.value.reason, str(info.value)) == (retryable, reason, text)


async def test_notify_transport_error_is_retryable_and_redacted() -> None:
    """Connection failures are retryable and never leak the URL (it may hold a token)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    alert = Alert({"alertname": "Q"}, {}, NOW - 10**9, ZERO_TIME)
    with pytest.raises(NotifyError) as info:
        await integration(httpx.MockTransport(handler), url="http://sink/secret-token").notify(
            ctx(), [alert]
        )
    assert info.value.retryable
    assert "secret-token" not in str(info.value)
    assert str(info.value) == 'Post "<redacted>": connection refused'


_chars = list('ab<>&"\\\b\f\n\t\x01\x7fé\u2028\u2029 /')
_text = st.text(alphabet=st.sampled_from(_chars), max_size=6)
#: Lone surrogates cannot be hashed into a fingerprint, so only annotations get them.
_odd_text = st.text(alphabet=st.sampled_from([*_chars, "\ud800"]), max_size=6)


@given(
    st.lists(
        st.tuples(
            st.dictionaries(_text, _text, max_size=4),
            st.dictionaries(_odd_text, _odd_text, max_size=3),
        ),
        min_size=1,
        max_size=3,
    ),
    _odd_text,
)
def test_fast_payload_equals_gojson_payload(
    maps: list[tuple[dict[str, str], dict[str, str]]], receiver: str
) -> None:
    """The fast paths (maps written in one piece, cached alerts) write the same bytes as
    gojson's string-by-string escaping, escapes and all."""
    for labels, notes in maps:
        assert gojson.string_map(labels) == gojson.escaped_string_map(labels)
        assert gojson.string_map(notes) == gojson.escaped_string_map(notes)
    webhook._fragments.clear()
    alerts = [
        Alert(
            labels,
            notes,
            NOW - 10**9 * k,
            ZERO_TIME if k % 2 else NOW - 1,
            generator_url=receiver,
        )
        for k, (labels, notes) in enumerate(maps)
    ]
    group = ctx(receiver=receiver)
    expected = encode_payload(
        build_data(receiver, group.group_labels, alerts, "http://e", NOW), group.group_key, 0
    )
    assert build_payload(group, alerts, 0, "http://e", NOW) == expected
