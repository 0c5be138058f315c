"""Byte-for-byte comparison of error answers with the real Alertmanager 0.25 binary."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.api.conftest import Api
from tests.integration.processes import open_alertmanager

pytestmark = pytest.mark.alertmanager


POST_BODIES = [
    "{}",
    "[",
    "",
    "  ",
    "[{}]",
    '[{"labels":null}]',
    '[{"labels":{}}]',
    '[{"labels":{"a":1}}]',
    '[{"labels":[]}]',
    '[{"labels":{"a":"b"},"annotations":{"x":1}}]',
    '[{"labels":{"a":"b"},"annotations":[]}]',
    '[{"labels":{"a":"b"},"startsAt":"nope"}]',
    '[{"labels":{"a":"b"},"startsAt":5}]',
    '[{"labels":{"a":"b"},"startsAt":{}}]',
    '[{"labels":{"a":"b"},"startsAt":"2020-01-01"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-13-01 00:00:00"}]',
    '[{"labels":{"a":"b"},"endsAt":"2026-01-01T00:00:00+0100"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-02-30 00:00:00"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-01-01 00:00:00x"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020/01/01"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-01-01T1:00:00Z"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-01-01T10:00Z"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-01-01T10:00:00.123+0100"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-01-01T10:00:00z"}]',
    '[{"labels":{"a":"b"},"endsAt":"2020-01-01T24:00:00Z"}]',
    '[{"labels":{"a":"b"},"startsAt":"2020-01-01T10:00:00Z","endsAt":"2019-01-01T10:00:00Z"}]',
    '[{"labels":{"a":"b"},"generatorURL":"http://u ser@x/"}]',
    '[{"labels":{"a":"b"},"generatorURL":"http://x#y/"}]',
    '[{"labels":{"a":"b"},"generatorURL":"//x/y"}]',
    '[{"labels":{"a":"b"},"generatorURL":"http://x?a b"}]',
    '[{"labels":{"a":"b"},"annotations":{"a":"\\ud800"}}]',
    '[{"labels":{"":"b"}}]',
    '[{"labels":{"a":"b"}},{"labels":{"a":"b"},"startsAt":true}]',
    '[{"labels":{"a":"b"},"generatorURL":"not a url"}]',
    '[{"labels":{"a":"b"},"generatorURL":5}]',
    '[{"labels":{"a":"b"},"generatorURL":"http://x:abc/"}]',
    '[{"labels":{"a":"b"},"generatorURL":"http://x/%zz"}]',
    '[{"labels":{"a":"b"}},{"labels":{"a":"b"},"generatorURL":"x"},{}]',
    "[1]",
    '["x"]',
    "[x]",
    '[{"a" 1}]',
    '[{"a":1 "b":2}]',
    "[{a:1}]",
    "[1 2]",
    '[{"labels":{"a":"b"}},]',
    "[] x",
    "null",
    '[{"labels":{"a-b":"x"}},{"labels":{"a":""}},{"labels":{"ok":"1"},"annotations":{"b-c":"x"}}]',
    '[{"labels":{"a":"b"},"startsAt":"2099-01-01T00:00:00Z"}]',
]

GET_QUERIES = [
    ("/api/v2/alerts", [("filter", "foo")]),
    ("/api/v2/alerts", [("filter", '{a="b"}')]),
    ("/api/v2/alerts", [("filter", 'a="b')]),
    ("/api/v2/alerts", [("filter", "")]),
    ("/api/v2/alerts", [("receiver", "(")]),
    ("/api/v2/alerts/groups", [("receiver", "a(")]),
    ("/api/v2/alerts/groups", [("filter", "a=~(")]),
    ("/api/v2/foo", []),
    ("/api/v2/", []),
]


MINIMAL_CONFIG = "route:\n  receiver: default\nreceivers:\n  - name: default\n"


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A real Alertmanager 0.25 with a minimal config, stopped by PID afterwards."""
    async with open_alertmanager(tmp_path, MINIMAL_CONFIG) as am:
        yield am.client


async def test_post_errors_match_alertmanager(api: Api, alertmanager: httpx.AsyncClient) -> None:
    """Every bad POST body gets the same status and body from us as from Alertmanager 0.25."""
    with trio.fail_after(60):
        for body in POST_BODIES:
            theirs = await alertmanager.post(
                "/api/v2/alerts",
                content=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            status, ours, _ = await api.request("POST", "/api/v2/alerts", body)
            assert (status, ours.decode()) == (theirs.status_code, theirs.text), body


async def test_query_errors_match_alertmanager(api: Api, alertmanager: httpx.AsyncClient) -> None:
    """Bad query parameters and unknown paths answer like Alertmanager 0.25."""
    with trio.fail_after(60):
        for path, query in GET_QUERIES:
            theirs = await alertmanager.get(path, params=query)
            status, ours, _ = await api.request("GET", path, query=query)
            assert (status, ours.decode()) == (theirs.status_code, theirs.text), (path, query)


async def test_methods_match_alertmanager(api: Api, alertmanager: httpx.AsyncClient) -> None:
    """405 answers match Alertmanager 0.25 up to the method order, which Go randomises."""

    def methods(text: str) -> set[str]:
        return set(text.split("[", 1)[1].split("]", 1)[0].split(",")) if "[" in text else set()

    with trio.fail_after(60):
        for method, path in [("PUT", "/api/v2/alerts"), ("DELETE", "/api/v2/status")]:
            theirs = await alertmanager.request(method, path)
            status, ours, headers = await api.request(method, path, content_type=None)
            assert status == theirs.status_code == 405
            assert set(headers["Allow"].split(",")) == set(theirs.headers["Allow"].split(","))
            assert methods(ours.decode()) == methods(theirs.text)
            assert ours.decode().split(", but")[0] == theirs.text.split(", but")[0]


async def test_alert_listing_matches_alertmanager(
    api: Api, alertmanager: httpx.AsyncClient
) -> None:
    """GET /alerts bytes match Alertmanager 0.25 for the same posts (updatedAt aside).

    Times are posted in UTC: Alertmanager echoes a client's zone offset, we normalise to Z.
    """
    body = (
        '[{"labels":{"alertname":"x<y&z","sev":"crit"},"annotations":{"s":"<b>é","e":""},'
        '"generatorURL":"http://g/x?a=1&b=2","startsAt":"2025-06-01T08:00:00.123456Z",'
        '"endsAt":"2099-01-01T00:00:00Z"},'
        '{"labels":{"alertname":"b","empty":""},"startsAt":"2025-06-01T10:00:00Z",'
        '"endsAt":"2099-01-01T00:00:00.999Z"},'
        '{"labels":{"alertname":"gone"},"endsAt":"2020-01-01T00:00:00Z"}]'
    )
    with trio.fail_after(60):
        theirs = await alertmanager.post(
            "/api/v2/alerts", content=body.encode(), headers={"Content-Type": "application/json"}
        )
        assert (await api.request("POST", "/api/v2/alerts", body))[:2] == (theirs.status_code, b"")
        theirs = await alertmanager.get("/api/v2/alerts")
        _, ours, _ = await api.request("GET", "/api/v2/alerts")
    updated = re.compile(r'"updatedAt":"[^"]*"')
    assert updated.sub("U", ours.decode()) == updated.sub("U", theirs.text)
    assert theirs.text.count('"updatedAt"') == 2
