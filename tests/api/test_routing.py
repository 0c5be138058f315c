"""Paths, methods, prefixes, CORS and the non-API endpoints (spec §1.1, §1.12)."""

from collections.abc import Mapping

import pytest
from quart import Response

from daemon import metrics
from daemon.api.app import default_api_routes
from tests.api.conftest import Api, FakeBackend


@pytest.mark.parametrize(
    ("method", "path", "allow", "message"),
    [
        ("PUT", "/api/v2/alerts", "POST,GET", "method PUT is not allowed, but [POST,GET] are"),
        ("DELETE", "/api/v2/receivers", "GET", "method DELETE is not allowed, but [GET] are"),
        ("POST", "/api/v2/status", "GET", "method POST is not allowed, but [GET] are"),
        (
            "OPTIONS",
            "/api/v2/alerts",
            "POST,GET",
            "method OPTIONS is not allowed, but [POST,GET] are",
        ),
    ],
)
async def test_wrong_method_is_405_json(
    api: Api, method: str, path: str, allow: str, message: str
) -> None:
    """Wrong methods on API paths answer go-swagger's 405 with an Allow header."""
    status, body, headers = await api.request(method, path, content_type=None)
    assert status == 405
    assert body.decode() == '{"code":405,"message":"' + message + '"}'
    assert headers["Allow"] == allow
    assert headers["Vary"] == "Origin"


@pytest.mark.parametrize("path", ["/api/v2/foo", "/api/v2/", "/api/v2/alerts/x/y"])
async def test_unknown_api_path_is_404_json(api: Api, path: str) -> None:
    """Unknown API paths answer go-swagger's 404 JSON, for any method."""
    for method in ("GET", "PUT"):
        status, body, _ = await api.request(method, path, content_type=None)
        assert (status, body.decode()) == (
            404,
            '{"code":404,"message":"path ' + path + ' was not found"}',
        )


async def test_api_without_slash_redirects(api: Api) -> None:
    """/api/v2 redirects permanently to /api/v2/."""
    status, _, headers = await api.request("GET", "/api/v2", content_type=None)
    assert (status, headers["Location"]) == (301, "/api/v2/")


async def test_cors(api: Api) -> None:
    """Requests with Origin get Access-Control-Allow-Origin: *; preflights answer 200."""
    _, _, headers = await api.request("GET", "/api/v2/receivers", headers={"Origin": "http://x"})
    assert headers["Access-Control-Allow-Origin"] == "*"
    _, _, headers = await api.request("GET", "/api/v2/receivers")
    assert "Access-Control-Allow-Origin" not in headers
    status, body, headers = await api.request(
        "OPTIONS",
        "/api/v2/alerts",
        content_type=None,
        headers={"Origin": "http://x", "Access-Control-Request-Method": "POST"},
    )
    assert (status, body, headers["Access-Control-Allow-Methods"]) == (200, b"", "POST")


async def test_no_cache_control_header(api: Api) -> None:
    """0.25 sets no Cache-Control on API responses."""
    _, _, headers = await api.request("GET", "/api/v2/alerts")
    assert "Cache-Control" not in headers


@pytest.mark.parametrize("path", ["/-/healthy", "/-/ready"])
async def test_health_endpoints(api: Api, path: str) -> None:
    """Health and readiness answer 200 OK in plain text; other methods get Go's 405."""
    status, body, headers = await api.request("GET", path, content_type=None)
    assert (status, body, headers["Content-Type"]) == (200, b"OK", "text/plain; charset=utf-8")
    assert (await api.request("HEAD", path, content_type=None))[0] == 200
    status, body, headers = await api.request("POST", path, content_type=None)
    assert (status, body, headers["Allow"]) == (405, b"Method Not Allowed\n", "GET, HEAD, OPTIONS")


async def test_not_ready(api: Api) -> None:
    """ready() False makes /-/ready answer 503."""
    api.backend.is_ready = False
    assert (await api.request("GET", "/-/ready", content_type=None))[0] == 503


async def test_reload_hook(api: Api) -> None:
    """POST /-/reload calls the hook: 200 empty on success, 500 text on failure."""
    assert (await api.request("POST", "/-/reload", content_type=None))[:2] == (200, b"")
    api.backend.reload_error = "bad yaml"
    status, body, _ = await api.request("POST", "/-/reload", content_type=None)
    assert (status, body) == (500, b"failed to reload config: bad yaml\n")


async def test_metrics(api: Api) -> None:
    """/metrics exposes the shared registry in the 0.0.4 text format."""
    await api.post_alerts([{"labels": {"a": "b"}}])
    status, body, headers = await api.request("GET", "/metrics", content_type=None)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'alertmanager_alerts_received_total{status="firing",version="v2"}' in body.decode()
    value = metrics.REGISTRY.get_sample_value(
        "alertmanager_alerts_received_total", {"version": "v2", "status": "firing"}
    )
    assert value is not None and value >= 1


async def test_other_paths_404_plain(api: Api) -> None:
    """Paths outside the API answer Go's plain 404 (v1 included, for now)."""
    for path in ("/nope", "/api/v1/alerts"):
        status, body, _ = await api.request("GET", path, content_type=None)
        assert (status, body) == (404, b"404 page not found\n")


async def test_route_prefix(backend: FakeBackend) -> None:
    """With a prefix everything moves under it, and / redirects (302) to the prefix."""
    backend.route_prefix = "/am"
    api = Api(backend)
    status, _, headers = await api.request("GET", "/", content_type=None)
    assert (status, headers["Location"]) == (302, "/am")
    status, _, _ = await api.request("GET", "/am/api/v2/receivers")
    assert status == 200
    assert (await api.request("GET", "/am/-/healthy", content_type=None))[0] == 200
    assert (await api.request("GET", "/am/metrics", content_type=None))[0] == 200
    assert (await api.request("GET", "/api/v2/receivers"))[0] == 404
    status, body, _ = await api.request("GET", "/am/api/v2/nope")
    assert body.decode() == '{"code":404,"message":"path /api/v2/nope was not found"}'


async def test_extra_routes_with_path_parameters(backend: FakeBackend) -> None:
    """Other domains plug in paths with {parameters}; 404/405 stay go-swagger's."""

    async def get_silence(_: object, params: Mapping[str, str]) -> Response:
        return Response(params["silenceID"], status=200)

    routes = default_api_routes()
    routes["silence/{silenceID}"] = {"GET": get_silence, "DELETE": get_silence}
    api = Api(backend, api_routes=routes)
    assert (await api.request("GET", "/api/v2/silence/abc-1"))[:2] == (200, b"abc-1")
    status, _, headers = await api.request("PUT", "/api/v2/silence/abc-1")
    assert (status, headers["Allow"]) == (405, "GET,DELETE")
    for path in ("/api/v2/silence/", "/api/v2/silence/a/b"):
        assert (await api.request("GET", path))[0] == 404
    assert (await api.request("GET", "/api/v2/receivers"))[0] == 200
