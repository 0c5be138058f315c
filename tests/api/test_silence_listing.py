"""GET /api/v2/silences reuses each silence's encoded text only while it is still true."""

from __future__ import annotations

import json

from daemon.clock import NS_PER_SECOND
from tests.api.conftest import Api, SilenceFakeBackend
from tests.api.test_silences import body, list_silences, post

S = NS_PER_SECOND


async def test_listing_follows_state_changes_updates_and_gc(
    sapi: Api, sbackend: SilenceFakeBackend
) -> None:
    """A listed silence shows its new state once time passes its end, its new fields once
    updated, and disappears once garbage-collected; the body stays byte-identical to an
    uncached encoding."""
    _, data = await post(sapi, body(endsAt="2026-01-01T00:00:10Z"))
    sid = json.loads(data)["silenceID"]
    first = await list_silences(sapi)
    assert [(s["id"], s["status"]["state"]) for s in first] == [(sid, "active")]
    assert await list_silences(sapi) == first
    sbackend.clock.advance(11)
    assert [s["status"]["state"] for s in await list_silences(sapi)] == ["expired"]

    _, data = await post(sapi, body(comment="first"))
    other = json.loads(data)["silenceID"]
    starts = {s["id"]: s["startsAt"] for s in await list_silences(sapi)}[other]
    _, data = await post(sapi, body(comment="second", id=other, startsAt=starts))
    assert json.loads(data)["silenceID"] == other
    listed = {s["id"]: s for s in await list_silences(sapi)}
    assert listed[other]["comment"] == "second"

    store = sbackend.silences
    store.gc(store.expires_at(sid) or 0)
    status, raw, _ = await sapi.request("GET", "/api/v2/silences")
    assert status == 200
    assert [s["id"] for s in json.loads(raw)] == [other]
    from daemon.api.encoding import body as encode
    from daemon.api.silences import gettable_silence

    now = sbackend.clock.now()
    assert raw == encode([gettable_silence(s, now) for s in store.query([], now)])
