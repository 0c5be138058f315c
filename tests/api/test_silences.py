"""API v2 silence handlers through quart's test client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daemon.clock import NS_PER_SECOND
from tests.api.conftest import SPEC, Api, SilenceFakeBackend, validate

S = NS_PER_SECOND
GETTABLE = {"$ref": "#/definitions/gettableSilences"}
ONE = {"$ref": "#/definitions/gettableSilence"}
# 2026-01-01T00:00:00Z is NOW in tests.api.conftest.
START = "2026-01-01T00:00:00Z"
END = "2026-01-01T01:00:00Z"


def body(matchers: Any = None, **extra: Any) -> str:
    doc = {
        "matchers": matchers
        if matchers is not None
        else [{"name": "a", "value": "b", "isRegex": False}],
        "startsAt": START,
        "endsAt": END,
        "createdBy": "me",
        "comment": "why",
        **extra,
    }
    return json.dumps(doc)


async def post(api: Api, text: str) -> tuple[int, bytes]:
    status, data, _ = await api.request("POST", "/api/v2/silences", text)
    return status, data


async def test_create_get_list_delete(sapi: Api, sbackend: SilenceFakeBackend) -> None:
    """A posted silence is returned by ID and in the list, valid per the spec, then expired."""
    status, data = await post(sapi, body())
    assert (status, data) == (200, b'{"silenceID":"00000000-0000-4000-8000-000000000001"}\n')
    sid = json.loads(data)["silenceID"]
    status, data, _ = await sapi.request("GET", f"/api/v2/silence/{sid}")
    assert status == 200
    doc = json.loads(data)
    validate(doc, ONE)
    assert list(doc) == [
        "id", "status", "updatedAt", "comment", "createdBy", "endsAt", "matchers", "startsAt",
    ]  # fmt: skip
    assert doc["status"] == {"state": "active"}
    assert doc["matchers"] == [{"isEqual": True, "isRegex": False, "name": "a", "value": "b"}]
    assert (doc["startsAt"], doc["endsAt"]) == (
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T01:00:00.000Z",
    )
    status, data, _ = await sapi.request("DELETE", f"/api/v2/silence/{sid}")
    assert (status, data) == (200, b"")
    sbackend.clock.advance(1)
    listed = await list_silences(sapi)
    assert [s["status"]["state"] for s in listed] == ["expired"]


async def list_silences(api: Api, query: list[tuple[str, str]] | None = None) -> Any:
    """GET /silences, asserting 200 and a spec-valid body."""
    status, data, _ = await api.request("GET", "/api/v2/silences", query=query)
    assert status == 200, data
    doc = json.loads(data)
    validate(doc, GETTABLE)
    return doc


async def test_matcher_types_and_is_equal_default(sapi: Api) -> None:
    """isEqual defaults to true; the four type combinations round-trip."""
    matchers = [
        {"name": "a", "value": "1", "isRegex": False},
        {"name": "b", "value": "2", "isRegex": False, "isEqual": False},
        {"name": "c", "value": "3.*", "isRegex": True, "isEqual": True},
        {"name": "d", "value": "4", "isRegex": True, "isEqual": False},
    ]
    status, _ = await post(sapi, body(matchers))
    assert status == 200
    [doc] = await list_silences(sapi)
    assert [(m["isEqual"], m["isRegex"]) for m in doc["matchers"]] == [
        (True, False),
        (False, False),
        (True, True),
        (False, True),
    ]


async def test_list_filter_and_bad_filter(sapi: Api) -> None:
    """Filters are syntactic; a malformed one is a 400 JSON string."""
    await post(sapi, body([{"name": "a", "value": "x.*", "isRegex": True}]))
    await post(sapi, body([{"name": "a", "value": "x.*", "isRegex": True, "isEqual": False}]))
    got = await list_silences(sapi, [("filter", 'a=~"x.*"')])
    assert [s["id"][-1] for s in got] == ["1"]
    status, data, _ = await sapi.request("GET", "/api/v2/silences", query=[("filter", "foo")])
    assert (status, data) == (400, b'"bad matcher format: foo"\n')


@pytest.mark.parametrize(
    ("text", "status", "message"),
    [
        ("", 422, {"code": 602, "message": "silence in body is required"}),
        ("{}", 422, {"code": 602, "message": "comment in body is required"}),
        (
            body([]),
            422,
            {"code": 612, "message": "matchers in body should have at least 1 items"},
        ),
        (
            body([{"name": "a", "value": "b"}]),
            422,
            {"code": 602, "message": "matchers.0.isRegex in body is required"},
        ),
        (
            body(id=5),
            400,
            {
                "code": 400,
                "message": 'parsing silence body from "" failed, because json: cannot '
                "unmarshal number into Go struct field .id of type string",
            },
        ),
        (
            body(startsAt="x", comment=1),
            400,
            {
                "code": 400,
                "message": 'parsing silence body from "" failed, because parsing time "x" as '
                '"2006-01-02 15:04:05": cannot parse "x" as "2006"',
            },
        ),
        (
            "[]",
            400,
            {
                "code": 400,
                "message": 'parsing silence body from "" failed, because json: cannot unmarshal '
                'array into Go value of type struct { ID string "json:\\"id,omitempty\\"" }',
            },
        ),
    ],
)
async def test_schema_errors(sapi: Api, text: str, status: int, message: Any) -> None:
    """Body errors answer go-swagger's status and {code, message}."""
    got_status, data = await post(sapi, text)
    assert (got_status, json.loads(data)) == (status, message)


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        ({"startsAt": END, "endsAt": START}, 400, "Failed to create silence: start time must be before end time"),
        ({"startsAt": "2025-01-01T00:00:00Z", "endsAt": "2025-01-02T00:00:00Z"}, 400, "Failed to create silence: end time can't be in the past"),
        ({"id": "00000000-0000-4000-8000-000000000099"}, 404, "silence not found"),
        ({"matchers": [{"name": "a", "value": "", "isRegex": False}]}, 400, "silence invalid: at least one matcher must not match the empty string"),
        ({"matchers": [{"name": "a", "value": "(", "isRegex": True}]}, 400, 'silence invalid: invalid label matcher 0: invalid regular expression "(": error parsing regexp: missing closing ): `(`'),
    ],
)  # fmt: skip
async def test_handler_errors(sapi: Api, extra: dict[str, Any], status: int, message: str) -> None:
    """Handler-level rejections are JSON strings with 400 or 404."""
    got_status, data = await post(sapi, body(**extra))
    assert (got_status, json.loads(data)) == (status, message)


async def test_update_in_place_and_replace(sapi: Api, sbackend: SilenceFakeBackend) -> None:
    """Same matchers and start keep the ID; a changed start makes a new one and expires the old."""
    _, data = await post(sapi, body())
    sid = json.loads(data)["silenceID"]
    sbackend.clock.advance(10)
    _, data = await post(sapi, body(id=sid, comment="more"))
    assert json.loads(data)["silenceID"] == sid
    _, data = await post(sapi, body(id=sid, startsAt="2026-01-01T00:00:05Z"))
    new_id = json.loads(data)["silenceID"]
    assert new_id != sid
    sbackend.clock.advance(1)
    listed = await list_silences(sapi)
    assert [(s["id"], s["status"]["state"]) for s in listed] == [
        (new_id, "active"),
        (sid, "expired"),
    ]


async def test_path_id_errors(sapi: Api) -> None:
    """Non-UUID IDs answer 422; unknown ones 404 (GET, empty body) and 500 (DELETE, 0.25)."""
    status, data, _ = await sapi.request("GET", "/api/v2/silence/abc")
    assert (status, json.loads(data)) == (
        422,
        {"code": 601, "message": 'silenceID in path must be of type uuid: "abc"'},
    )
    unknown = "/api/v2/silence/0A1B2C3D000040008000000000000000"
    status, data, _ = await sapi.request("GET", unknown)
    assert (status, data) == (404, b"")
    status, data, _ = await sapi.request("DELETE", unknown)
    assert (status, data) == (500, b'"silence not found"\n')
    status, data, headers = await sapi.request("PUT", unknown)
    assert status == 405 and headers["Allow"] == "DELETE,GET"


def test_spec_has_silence_definitions() -> None:
    """The schemas the tests validate against exist in the embedded spec."""
    assert {"gettableSilence", "gettableSilences", "postableSilence"} <= set(SPEC["definitions"])
