"""POST /api/v2/alerts: defaults, merging, validation and framework errors (spec §1.6, §1.1)."""

import json

import pytest

from daemon import metrics
from daemon.api.app import DEFAULT_MAX_BODY_BYTES
from daemon.clock import ZERO_TIME
from tests.api.conftest import NOW, Api, FakeBackend, S

MIN = 60 * S


def _counter(name: str, labels: dict[str, str]) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


async def test_post_returns_empty_200_and_applies_defaults(api: Api) -> None:
    """No times: startsAt=now, endsAt=now+resolve_timeout with the timeout flag, updatedAt=now."""
    status, body = await api.post_alerts([{"labels": {"alertname": "A"}}])
    assert (status, body) == (200, b"")
    (alert,) = api.backend.store.list()
    assert (alert.starts_at, alert.ends_at, alert.updated_at) == (NOW, NOW + 5 * MIN, NOW)
    assert alert.timeout is True
    assert alert.annotations == {}


async def test_only_ends_at_sets_starts_at_to_it(api: Api) -> None:
    """A posted endsAt without startsAt becomes the startsAt too, and is not a timeout."""
    await api.post_alerts([{"labels": {"a": "b"}, "endsAt": "2026-01-01T01:00:00Z"}])
    (alert,) = api.backend.store.list()
    assert alert.starts_at == alert.ends_at == NOW + 60 * MIN
    assert alert.timeout is False


async def test_resolve_timeout_comes_from_config(backend: FakeBackend) -> None:
    """The defaulted endsAt uses the loaded config's resolve_timeout."""
    import attrs

    backend.config = attrs.evolve(
        backend.config, global_=attrs.evolve(backend.config.global_, resolve_timeout=42 * S)
    )
    await Api(backend).post_alerts([{"labels": {"a": "b"}}])
    assert backend.store.list()[0].ends_at == NOW + 42 * S


async def test_empty_labels_dropped_annotations_kept(api: Api) -> None:
    """Empty-valued labels are removed before validation; empty annotations stay."""
    await api.post_alerts([{"labels": {"a": "b", "c": ""}, "annotations": {"d": ""}}])
    (alert,) = api.backend.store.list()
    assert alert.labels == {"a": "b"}
    assert alert.annotations == {"d": ""}


async def test_times_with_offsets_and_fractions(api: Api) -> None:
    """RFC 3339 offsets are applied and nanoseconds kept."""
    await api.post_alerts(
        [
            {
                "labels": {"a": "b"},
                "startsAt": "2026-01-01T01:00:00.123456789+01:00",
                "endsAt": "2026-01-01 00:10:00",
            }
        ]
    )
    (alert,) = api.backend.store.list()
    assert alert.starts_at == NOW + 123456789
    assert alert.ends_at == NOW + 10 * MIN


async def test_repost_merges_through_the_store(api: Api) -> None:
    """A heartbeat re-post keeps startsAt; annotations follow the newest post."""
    await api.post_alerts([{"labels": {"a": "b"}, "annotations": {"v": "1"}}])
    api.backend.clock.advance(60)
    await api.post_alerts([{"labels": {"a": "b"}, "annotations": {"v": "2"}}])
    (alert,) = api.backend.store.list()
    assert alert.starts_at == NOW
    assert alert.ends_at == NOW + MIN + 5 * MIN
    assert alert.annotations == {"v": "2"}


async def test_posted_alerts_reach_the_intake(api: Api) -> None:
    """Every posted alert goes through the backend's one intake (the instance's put)."""
    await api.post_alerts([{"labels": {"a": "1"}}, {"labels": {"a": "2"}}])
    assert [a.labels["a"] for a in api.backend.ingested] == ["1", "2"]


async def test_invalid_alerts_joined_and_valid_ones_stored(api: Api) -> None:
    """Validation errors are joined by '; ' as a JSON string; valid alerts are still stored."""
    invalid_before = _counter("alertmanager_alerts_invalid_total", {"version": "v2"})
    status, body = await api.post_alerts(
        [
            {"labels": {"a-b": "x", "1a": "y"}},
            {"labels": {"a": ""}},
            {"labels": {"ok": "1"}, "annotations": {"b-c": "x"}},
            {"labels": {"good": "yes"}},
            {"labels": {"a": "b"}, "startsAt": "2099-01-01T00:00:00Z"},
        ]
    )
    assert status == 400
    assert body == (
        b'"invalid label set: invalid name \\"1a\\"; at least one label pair required; '
        b'invalid annotations: invalid name \\"b-c\\"; start time must be before end time"\n'
    )
    assert [a.labels for a in api.backend.store.list()] == [{"good": "yes"}]
    after = _counter("alertmanager_alerts_invalid_total", {"version": "v2"})
    assert after - invalid_before == 4


async def test_received_metric_counts_firing_and_resolved(api: Api) -> None:
    """alerts_received_total counts every posted alert by firing/resolved, valid or not."""
    firing = {"version": "v2", "status": "firing"}
    resolved = {"version": "v2", "status": "resolved"}
    f0 = _counter("alertmanager_alerts_received_total", firing)
    r0 = _counter("alertmanager_alerts_received_total", resolved)
    await api.post_alerts(
        [
            {"labels": {"a": "1"}},
            {"labels": {"a": "2"}, "endsAt": "2025-01-01T00:00:00Z"},
            {"labels": {}},
        ]
    )
    assert _counter("alertmanager_alerts_received_total", firing) - f0 == 2
    assert _counter("alertmanager_alerts_received_total", resolved) - r0 == 1


async def test_past_ends_at_is_stored_resolved(api: Api) -> None:
    """An alert posted with endsAt in the past is stored (resolved) and hidden from GET."""
    status, _ = await api.post_alerts([{"labels": {"a": "b"}, "endsAt": "2025-01-01T00:00:00Z"}])
    assert status == 200
    assert len(api.backend.store) == 1
    assert await api.get_valid("/alerts") == []


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            "{}",
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because json: '
            'cannot unmarshal object into Go value of type models.PostableAlerts"}',
        ),
        (
            "[",
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because unexpected EOF"}',
        ),
        ("", 422, '{"code":602,"message":"alerts in body is required"}'),
        ("[{}]", 422, '{"code":602,"message":"0.labels in body is required"}'),
        ('[{"labels":null}]', 422, '{"code":602,"message":"0.labels in body is required"}'),
        (
            '[{"labels":{"a":"b"}},{"labels":{"a":"b"},"generatorURL":"x"},{}]',
            422,
            '{"code":601,"message":"1.generatorURL in body must be of type uri: \\"x\\""}',
        ),
        (
            '[{"labels":{"a":"b"},"generatorURL":"not a url"}]',
            422,
            '{"code":601,"message":"0.generatorURL in body must be of type uri: \\"not a url\\""}',
        ),
        (
            '[{"labels":{"a":1}}]',
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because json: '
            'cannot unmarshal number into Go struct field Alert.labels of type string"}',
        ),
        (
            '[{"labels":[]}]',
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because json: '
            'cannot unmarshal array into Go struct field Alert.labels of type models.LabelSet"}',
        ),
        (
            '[{"labels":{"a":1},"startsAt":5}]',
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because json: '
            'cannot unmarshal number into Go struct field .startsAt of type string"}',
        ),
        (
            '[{"labels":{"a":"b"},"annotations":{"x":1}}]',
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because json: '
            'cannot unmarshal number into Go struct field .annotations of type string"}',
        ),
        (
            '[{"labels":{"a":"b"},"startsAt":"nope"}]',
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because parsing time '
            '\\"nope\\" as \\"2006-01-02 15:04:05\\": cannot parse \\"nope\\" as \\"2006\\""}',
        ),
        (
            '[{"labels":{"a":"b"},"startsAt":"2020-01-01"}]',
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because parsing time '
            '\\"2020-01-01\\" as \\"2006-01-02 15:04:05\\": cannot parse \\"\\" as \\"15\\""}',
        ),
        (
            "[x]",
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because invalid '
            "character 'x' looking for beginning of value\"}",
        ),
        (
            "[1 2]",
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because invalid '
            "character '2' after array element\"}",
        ),
        (
            '[{"a":1 "b":2}]',
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because invalid '
            "character '\\\"' after object key:value pair\"}",
        ),
        (
            "[{a:1}]",
            400,
            '{"code":400,"message":"parsing alerts body from \\"\\" failed, because invalid '
            "character 'a' looking for beginning of object key string\"}",
        ),
    ],
)
async def test_framework_errors(api: Api, body: str, status: int, expected: str) -> None:
    """Schema-level errors carry go-openapi's status, code and message, and store nothing."""
    got_status, got, headers = await api.request("POST", "/api/v2/alerts", body)
    assert (got_status, got.decode()) == (status, expected)
    assert headers["Content-Type"] == "application/json"
    assert len(api.backend.store) == 0


@pytest.mark.parametrize(
    "body",
    [
        "null",
        "[]",
        "[] trailing",
        '[{"labels":{"a":"b"},"startsAt":null,"annotations":null,"generatorURL":null}]',
        '[{"labels":{"a":"b"},"generatorURL":"mailto:x"}]',
        '[{"labels":{"a":"b"},"generatorURL":"/x#y"}]',
        '[{"labels":{"a":"b"},"unknown":1}]',
    ],
)
async def test_accepted_bodies(api: Api, body: str) -> None:
    """Bodies Alertmanager 0.25 accepts answer 200 with an empty body."""
    assert (await api.request("POST", "/api/v2/alerts", body))[:2] == (200, b"")


async def test_keys_match_case_insensitively(api: Api) -> None:
    """Like Go's decoder, JSON keys match fields regardless of case."""
    status, _, _ = await api.request("POST", "/api/v2/alerts", '[{"Labels":{"a":"b"}}]')
    assert status == 200
    assert api.backend.store.list()[0].labels == {"a": "b"}


async def test_lone_surrogates_become_replacement_chars(api: Api) -> None:
    """A lone surrogate escape decodes to U+FFFD (as in Go) instead of breaking hashing."""
    status, _, _ = await api.request("POST", "/api/v2/alerts", '[{"labels":{"a":"x\\ud800"}}]')
    assert status == 200
    assert api.backend.store.list()[0].labels == {"a": "x\ufffd"}


@pytest.mark.parametrize(
    ("content_type", "status", "expected"),
    [
        (
            "text/plain",
            415,
            '{"code":415,"message":"unsupported media type \\"text/plain\\", '
            'only [application/json] are allowed"}',
        ),
        (
            None,
            415,
            '{"code":415,"message":"unsupported media type \\"application/octet-stream\\", '
            'only [application/json] are allowed"}',
        ),
        (
            "garbage;;",
            400,
            '{"code":400,"message":"parsing Content-Type header from \\"garbage;;\\" failed, '
            'because mime: invalid media parameter"}',
        ),
    ],
)
async def test_content_type_errors(
    api: Api, content_type: str | None, status: int, expected: str
) -> None:
    """Only application/json bodies are accepted (415), bad headers are 400."""
    got = await api.request("POST", "/api/v2/alerts", "[]", content_type=content_type)
    assert (got[0], got[1].decode()) == (status, expected)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/JSON"])
async def test_content_type_variants_accepted(api: Api, content_type: str) -> None:
    """A charset parameter and any letter case of application/json are fine."""
    got = await api.request("POST", "/api/v2/alerts", "[]", content_type=content_type)
    assert got[:2] == (200, b"")


async def test_oversized_body_rejected_and_nothing_stored(backend: FakeBackend) -> None:
    """A body over the limit answers 413 with a JSON message and stores nothing."""
    api = Api(backend, max_body_bytes=1000)
    alerts = [{"labels": {"alertname": f"a{i}"}} for i in range(100)]
    status, body, _ = await api.request("POST", "/api/v2/alerts", json.dumps(alerts))
    assert status == 413
    assert json.loads(body) == {"code": 413, "message": "request body too large (limit 1000 bytes)"}
    assert len(backend.store) == 0
    assert DEFAULT_MAX_BODY_BYTES == 32 * 1024 * 1024


async def test_zero_time_counts_as_missing(api: Api) -> None:
    """Go's zero time posted explicitly is treated like an absent time."""
    await api.post_alerts(
        [
            {
                "labels": {"a": "b"},
                "startsAt": "0001-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ]
    )
    (alert,) = api.backend.store.list()
    assert alert.starts_at == NOW
    assert alert.ends_at != ZERO_TIME
    assert alert.timeout
