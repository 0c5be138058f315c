"""Side by side with the real Alertmanager 0.25: its snapshot file and its API answers."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from daemon.silence.codec import read_snapshot_file
from daemon.silence.state import Silences
from tests.api.conftest import Api, SilenceFakeBackend
from tests.api.test_against_alertmanager import MINIMAL_CONFIG
from tests.integration.processes import AsyncAlertmanager, open_alertmanager

pytestmark = pytest.mark.alertmanager


@pytest.fixture
async def real_am(tmp_path: Path) -> AsyncIterator[AsyncAlertmanager]:
    """A real Alertmanager 0.25 with a minimal config, stopped by PID afterwards."""
    async with open_alertmanager(tmp_path, MINIMAL_CONFIG) as am:
        yield am


def _silence(matchers: list[dict[str, Any]], starts: str, ends: str, **extra: Any) -> str:
    doc = {
        "matchers": matchers,
        "startsAt": starts,
        "endsAt": ends,
        "createdBy": "t",
        "comment": "c",
    }
    return json.dumps({**doc, **extra})


async def test_load_snapshot_written_by_alertmanager(real_am: AsyncAlertmanager) -> None:
    """Silences made through Alertmanager's API load from its shutdown snapshot intact."""
    client = real_am.client
    posted = [
        _silence([{"name": "a", "value": "b", "isRegex": False}], "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
        _silence([{"name": "c", "value": "d.*", "isRegex": True, "isEqual": False}, {"name": "e", "value": "f", "isRegex": False, "isEqual": False}], "2098-01-01T00:00:00Z", "2099-01-01T00:00:00.123Z"),
        _silence([{"name": "g", "value": "ü<&>", "isRegex": False}], "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
    ]  # fmt: skip
    with trio.fail_after(30):
        ids = []
        for text in posted:
            resp = await client.post(
                "/api/v2/silences", content=text, headers={"Content-Type": "application/json"}
            )
            assert resp.status_code == 200, resp.text
            ids.append(resp.json()["silenceID"])
        assert (await client.delete(f"/api/v2/silence/{ids[0]}")).status_code == 200
        theirs = {s["id"]: s for s in (await client.get("/api/v2/silences")).json()}
        real_am.proc.send_signal(signal.SIGTERM)
        await real_am.proc.wait()
    data = read_snapshot_file(real_am.storage / "silences")
    assert data is not None
    store = Silences()
    store.load_snapshot(data)
    assert sorted(s.id for s in store) == sorted(ids)
    backend_now = max(s.updated_at for s in store)
    from daemon.api.silences import gettable_silence

    for sid in ids:
        ours = gettable_silence(store.get(sid), backend_now)  # type: ignore[arg-type]
        want = dict(theirs[sid])
        want.pop("status")
        ours.pop("status")
        assert ours == want
        exp = store.expires_at(sid)
        got = store.get(sid)
        assert got is not None and exp == got.ends_at + 120 * 3600 * 10**9


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"20\d\d-\d\d-\d\dT[0-9:.]+Z")


def _normalise(text: str, ids: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        return ids.setdefault(match.group(), f"ID{len(ids)}")

    text = _UUID.sub(sub, text)
    # Past/now-relative times differ between the two servers; far-future ones are posted.
    return _TIME.sub(lambda m: m.group() if m.group().startswith("2099") else "T", text)


async def test_api_sequence_matches_alertmanager(
    real_am: AsyncAlertmanager, sbackend: SilenceFakeBackend
) -> None:
    """The same silence operations give the same statuses and (normalised) bodies."""
    from daemon.api.app import default_api_routes
    from daemon.api.silences import silence_routes
    from daemon.clock import SystemClock

    sbackend.clock = SystemClock()  # type: ignore[assignment]
    api = Api(sbackend, api_routes={**default_api_routes(), **silence_routes()})
    future = "2099-01-01T00:00:00Z"
    m_ab = [{"name": "a", "value": "b", "isRegex": False}]
    ops: list[tuple[str, str, str | None]] = [
        ("POST", "/api/v2/silences", _silence(m_ab, "2020-01-01T00:00:00Z", future)),
        ("POST", "/api/v2/silences", _silence(m_ab, "2098-01-01T00:00:00Z", future)),
        ("POST", "/api/v2/silences", _silence([{"name": "x", "value": "y|z", "isRegex": True}], "2020-01-01T00:00:00Z", "2099-06-01T00:00:00Z")),
        ("POST", "/api/v2/silences", _silence(m_ab, "2098-02-01T00:00:00Z", future, id="{ID1}")),
        ("POST", "/api/v2/silences", _silence(m_ab, "2097-02-01T00:00:00Z", future, id="{ID0}")),
        ("POST", "/api/v2/silences", _silence([{"name": "q", "value": ".*", "isRegex": True}], "2020-01-01T00:00:00Z", future)),
        ("POST", "/api/v2/silences", _silence(m_ab, "2020-01-01T00:00:00Z", future, id="6f6e8a2e-0000-4000-8000-000000000000")),
        ("DELETE", "/api/v2/silence/{ID2}", None),
        ("DELETE", "/api/v2/silence/{ID2}", None),
        ("DELETE", "/api/v2/silence/6f6e8a2e-0000-4000-8000-000000000000", None),
        ("GET", "/api/v2/silence/{ID1}", None),
        ("GET", "/api/v2/silence/6f6e8a2e-0000-4000-8000-000000000000", None),
        ("GET", "/api/v2/silence/not-a-uuid", None),
        ("GET", '/api/v2/silences?filter=a%3D"b"', None),
        ("GET", "/api/v2/silences", None),
    ]  # fmt: skip
    their_ids: dict[str, str] = {}
    our_ids: dict[str, str] = {}
    with trio.fail_after(60):
        for method, path, text in ops:
            real = {v: k for k, v in their_ids.items()}
            mine = {v: k for k, v in our_ids.items()}

            def fill(s: str, table: dict[str, str]) -> str:
                for name, value in table.items():
                    s = s.replace("{" + name + "}", value)
                return s

            resp = await real_am.client.request(
                method,
                fill(path, real),
                content=fill(text, real).encode() if text else None,
                headers={"Content-Type": "application/json"},
            )
            status, data, _ = await api.request(
                method, fill(path, mine), fill(text, mine) if text else None
            )
            theirs = (resp.status_code, _normalise(resp.text, their_ids))
            ours = (status, _normalise(data.decode(), our_ids))
            assert ours == theirs, (method, path, text)


_OK = '"comment":"c","createdBy":"x","startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z"'
BAD_BODIES = [
    "",
    "{}",
    "[]",
    "null",
    '{"matchers":[]}',
    '{"matchers":[],' + _OK + "}",
    '{"matchers":[{}],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"b"}],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"b","isRegex":false}],"comment":1,"createdBy":2,"startsAt":"x","endsAt":"2099-01-01T00:00:00Z"}',
    '{"matchers":[{"name":1,"value":"b","isRegex":false}],' + _OK + "}",
    '{"id":5,"matchers":[{"name":"a","value":"b","isRegex":false}],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"b","isRegex":"x"}],' + _OK + "}",
    '{"matchers":{},' + _OK + "}",
    '{"matchers":[1],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"b","isRegex":false}],"comment":"c","createdBy":"x","startsAt":5,"endsAt":"x"}',
    '{"matchers":[{"name":"a","value":"b","isRegex":false}],"comment":"c","createdBy":"x","endsAt":"2099-01-01T00:00:00Z"}',
    '{"matchers":[{"name":"a","value":"b","isRegex":false},{"isRegex":true}],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"","isRegex":false}],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"(","isRegex":true}],' + _OK + "}",
    '{"matchers":[{"name":"a-b","value":"x","isRegex":true}],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"x","isRegex":true}],"comment":"c","createdBy":"x","startsAt":"2099-01-01T00:00:00Z","endsAt":"2020-01-01T00:00:00Z"}',
    '{"matchers":[{"name":"a","value":"x","isRegex":true}],"comment":"c","createdBy":"x","startsAt":"2010-01-01T00:00:00Z","endsAt":"2020-01-01T00:00:00Z"}',
    '{"id":"nope","matchers":[{"name":"a","value":"x","isRegex":true}],' + _OK + "}",
    '{"matchers":[{"name":"a","value":"x","isRegex":true}],' + _OK,
]


async def test_post_errors_match_alertmanager(
    real_am: AsyncAlertmanager, sbackend: SilenceFakeBackend
) -> None:
    """Every bad POST /silences body gets the same status and body as from Alertmanager 0.25."""
    from daemon.api.app import default_api_routes
    from daemon.api.silences import silence_routes

    api = Api(sbackend, api_routes={**default_api_routes(), **silence_routes()})
    with trio.fail_after(60):
        for text in BAD_BODIES:
            resp = await real_am.client.post(
                "/api/v2/silences",
                content=text.encode(),
                headers={"Content-Type": "application/json"},
            )
            status, data, _ = await api.request("POST", "/api/v2/silences", text)
            assert (status, data.decode()) == (resp.status_code, resp.text), text
