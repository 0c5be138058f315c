"""tocsin's recurring silences through API v2: POST with ``recurrence``, GET, DELETE."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daemon.clock import NS_PER_SECOND
from daemon.silence.recurring import window_silence_id
from daemon.silence.state import SilenceState
from tests.api.conftest import Api, SilenceFakeBackend, validate

S = NS_PER_SECOND
GETTABLE = {"$ref": "#/definitions/gettableSilences"}
# tests.api.conftest's NOW is 2026-01-01T00:00:00Z, 08:00 in Shanghai.
NIGHTLY = {"schedule": "0 22 * * *", "duration": "8h", "timeZone": "Asia/Shanghai"}


def body(recurrence: Any = NIGHTLY, **extra: Any) -> str:
    doc = {
        "matchers": [{"name": "severity", "value": "info", "isRegex": False}],
        "createdBy": "ops",
        "comment": "quiet nights",
        "recurrence": recurrence,
        **extra,
    }
    return json.dumps(doc)


async def post(api: Api, text: str) -> tuple[int, Any]:
    status, data, _ = await api.request("POST", "/api/v2/silences", text)
    return status, json.loads(data)


async def test_post_creates_the_next_window_as_an_ordinary_silence(
    sapi: Api, sbackend: SilenceFakeBackend
) -> None:
    """The answer names the first window; GET lists it as a valid silence plus ``recurrence``."""
    status, answer = await post(sapi, body())
    assert status == 200, answer
    rid = answer["recurrenceID"]
    # 2026-01-01 22:00 Shanghai is 14:00Z.
    first = "2026-01-01T14:00:00.000Z"
    assert answer["silenceID"] == window_silence_id(rid, 1_767_276_000 * S)
    status, data, _ = await sapi.request("GET", "/api/v2/silences")
    listed = json.loads(data)
    validate(listed, GETTABLE)  # Alertmanager's schema still holds
    [window] = listed
    assert window["id"] == answer["silenceID"]
    assert (window["startsAt"], window["endsAt"]) == (first, "2026-01-01T22:00:00.000Z")
    assert window["status"] == {"state": "pending"}
    assert window["recurrence"] == {
        "id": rid,
        "schedule": "0 22 * * *",
        "duration": "8h0m0s",
        "timeZone": "Asia/Shanghai",
        "startsAt": "2026-01-01T00:00:00.000Z",
    }
    status, data, _ = await sapi.request("GET", f"/api/v2/silence/{window['id']}")
    assert json.loads(data)["recurrence"]["id"] == rid


async def test_ends_at_bounds_the_recurrence(sapi: Api) -> None:
    """endsAt is the end of the recurring silence and shows in ``recurrence``."""
    status, answer = await post(sapi, body(endsAt="2026-02-01T00:00:00Z"))
    assert status == 200, answer
    status, data, _ = await sapi.request("GET", "/api/v2/silences")
    assert json.loads(data)[0]["recurrence"]["endsAt"] == "2026-02-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("recurrence", "extra", "message"),
    [
        ({**NIGHTLY, "schedule": "0 25 * * *"}, {}, "hour: 25 is out of range 0-23"),
        ({**NIGHTLY, "timeZone": "Moon/Base"}, {}, "unknown time zone 'Moon/Base'"),
        ({**NIGHTLY, "duration": "8x"}, {}, "recurrence.duration"),
        ({**NIGHTLY, "duration": "25h"}, {}, "windows would overlap"),
        ({**NIGHTLY, "duration": "0s"}, {}, "duration must be positive"),
        ({**NIGHTLY, "every": "day"}, {}, "unknown fields ['every']"),
        ("0 22 * * *", {}, "recurrence must be an object"),
        ({"schedule": "0 0 30 2 *", "duration": "1h"}, {}, "never fires"),
        (NIGHTLY, {"id": "00000000-0000-4000-8000-000000000001"}, "always new"),
        (NIGHTLY, {"endsAt": "2025-12-31T00:00:00Z"}, "end time must be after"),
        (
            NIGHTLY,
            {"matchers": [{"name": "a", "value": "", "isRegex": False}]},
            "at least one matcher must not match the empty string",
        ),
    ],
)
async def test_bad_recurring_silences_are_refused_and_change_nothing(
    sapi: Api, sbackend: SilenceFakeBackend, recurrence: Any, extra: dict[str, Any], message: str
) -> None:
    """A bad schedule, zone, duration or silence is a 400 naming the problem; nothing is stored."""
    status, answer = await post(sapi, body(recurrence, **extra))
    assert status == 400
    assert message in answer
    assert len(sbackend.silences) == 0


async def test_delete_of_a_window_ends_the_recurring_silence(
    sapi: Api, sbackend: SilenceFakeBackend
) -> None:
    """Expiring a window (amtool silence expire) ends the recurring silence everywhere."""
    status, answer = await post(sapi, body())
    sbackend.clock.advance(15 * 3600)  # 15:00Z: inside the first window
    status, _, _ = await sapi.request("DELETE", f"/api/v2/silence/{answer['silenceID']}")
    assert status == 200
    now = sbackend.clock.now()
    [window] = list(sbackend.silences)
    assert window.state(now + 1) is SilenceState.EXPIRED
    assert window.recurrence is not None and window.recurrence.until == now


async def test_ordinary_silence_mentioning_recurrence_is_ordinary(sapi: Api) -> None:
    """A plain silence whose text contains "recurrence" takes Alertmanager's path."""
    doc = {
        "matchers": [{"name": "a", "value": '"recurrence"', "isRegex": False}],
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2026-01-01T01:00:00Z",
        "createdBy": "me",
        "comment": "recurrence",
    }
    status, answer = await post(sapi, json.dumps(doc))
    assert status == 200 and "recurrenceID" not in answer


async def test_updating_a_window_keeps_it_in_the_recurring_silence(
    sapi: Api, sbackend: SilenceFakeBackend
) -> None:
    """An Alertmanager client's update of a window (no recurrence field) does not detach it."""
    status, answer = await post(sapi, body())
    status, data, _ = await sapi.request("GET", f"/api/v2/silence/{answer['silenceID']}")
    window = json.loads(data)
    update = {k: window[k] for k in ("id", "matchers", "startsAt", "endsAt", "createdBy")}
    status, data = await post(sapi, json.dumps({**update, "comment": "edited"}))
    assert status == 200, data
    [edited] = [s for s in sbackend.silences if s.comment == "edited"]
    assert edited.recurrence is not None
    assert edited.recurrence.id == answer["recurrenceID"]


async def test_recurrence_key_spelled_with_a_json_escape_is_not_ignored(sapi: Api) -> None:
    """``"recurr\\u0065nce"`` is the same key to JSON, so it makes a recurring silence too."""
    text = body().replace('"recurrence"', '"recurr\\u0065nce"')
    assert '"recurrence"' not in text
    status, answer = await post(sapi, text)
    assert status == 200 and "recurrenceID" in answer
