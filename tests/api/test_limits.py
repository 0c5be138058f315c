"""--web.timeout, --web.get-concurrency and the per-handler HTTP metrics, over a real socket."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import trio
from quart import Response

from daemon import metrics
from daemon.api import create_app
from daemon.api.app import ApiHandler
from daemon.api.backend import ApiBackend
from daemon.api.server import serve_api
from tests.api.conftest import FakeBackend


def _slow_routes(release: trio.Event, entered: trio.Event) -> dict[str, dict[str, ApiHandler]]:
    async def slow(backend: ApiBackend, params: Mapping[str, str]) -> Response:
        entered.set()
        await release.wait()
        return Response(b"done", status=200)

    return {"api/v1/slow/{name}": {"GET": slow, "POST": slow}}


def _sample(name: str, labels: dict[str, str]) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


async def test_web_timeout_answers_503_and_lets_the_handler_finish(
    backend: FakeBackend,
) -> None:
    """Past --web.timeout the client gets Go's TimeoutHandler 503 at once; the handler
    still runs to its end (a write is never cut in half)."""
    release, entered = trio.Event(), trio.Event()
    app = create_app(backend, extra_routes=_slow_routes(release, entered), timeout_ns=300_000_000)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                started = trio.current_time()
                resp = await client.post("/api/v1/slow/x")
                assert trio.current_time() - started < 3
                assert resp.status_code == 503
                assert resp.text == "Exceeded configured timeout of 300ms.\n"
                assert resp.headers["content-type"] == "text/plain; charset=utf-8"
                assert entered.is_set()
                release.set()
                # A quick request is answered as usual.
                resp = await client.get("/api/v2/status")
                assert resp.status_code == 200
            nursery.cancel_scope.cancel()


async def test_get_concurrency_limits_gets_only(backend: FakeBackend) -> None:
    """With --web.get-concurrency=1 a second concurrent GET gets Alertmanager's 503 and
    is counted; POSTs are not limited."""
    release, entered = trio.Event(), trio.Event()
    app = create_app(backend, extra_routes=_slow_routes(release, entered), get_concurrency=1)
    exceeded = {"method": "get"}
    before = _sample("alertmanager_http_concurrency_limit_exceeded_total", exceeded) or 0
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answers: list[int] = []

                async def hold() -> None:
                    answers.append((await client.get("/api/v1/slow/x")).status_code)

                async with trio.open_nursery() as requests:
                    requests.start_soon(hold)
                    await entered.wait()
                    assert _sample("alertmanager_http_requests_in_flight", exceeded) == 1
                    resp = await client.get("/api/v2/status")
                    assert resp.status_code == 503
                    assert resp.text == (
                        "Limit of concurrent GET requests reached (1), try again later.\n\n"
                    )
                    post = await client.post(
                        "/api/v2/alerts",
                        content=b"[]",
                        headers={"Content-Type": "application/json"},
                    )
                    assert post.status_code == 200
                    release.set()
            nursery.cancel_scope.cancel()
    assert answers == [200]
    after = _sample("alertmanager_http_concurrency_limit_exceeded_total", exceeded)
    assert after == before + 1
    assert _sample("alertmanager_http_requests_in_flight", exceeded) == 0


async def test_router_handlers_are_observed_with_route_labels(backend: FakeBackend) -> None:
    """Duration and size are observed per route template and lower-case method; /api/v2
    and unknown paths are not (Alertmanager 0.25 observes its router only)."""
    release, entered = trio.Event(), trio.Event()
    release.set()
    backend.route_prefix = "/am"
    app = create_app(backend, extra_routes=_slow_routes(release, entered))

    def count(handler: str, method: str) -> float:
        labels = {"handler": handler, "method": method}
        return _sample("alertmanager_http_request_duration_seconds_count", labels) or 0

    before = {
        key: count(*key)
        for key in [("/-/healthy", "get"), ("/-/ready", "head"), ("/api/v1/slow/{name}", "post")]
    }
    size_before = (
        _sample(
            "alertmanager_http_response_size_bytes_sum", {"handler": "/-/healthy", "method": "get"}
        )
        or 0
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/am/-/healthy")).status_code == 200
                assert (await client.head("/am/-/ready")).status_code == 200
                assert (await client.post("/am/api/v1/slow/abc")).status_code == 200
                assert (await client.get("/am/api/v2/status")).status_code == 200
                assert (await client.get("/am/nope")).status_code == 404
            nursery.cancel_scope.cancel()
    assert {key: count(*key) - value for key, value in before.items()} == {
        ("/-/healthy", "get"): 1,
        ("/-/ready", "head"): 1,
        ("/api/v1/slow/{name}", "post"): 1,
    }
    size = _sample(
        "alertmanager_http_response_size_bytes_sum", {"handler": "/-/healthy", "method": "get"}
    )
    assert size == size_before + 2  # "OK"
    text = metrics.REGISTRY.get_sample_value
    assert (
        text(
            "alertmanager_http_request_duration_seconds_count",
            {"handler": "/api/v2/status", "method": "get"},
        )
        is None
    )
    assert (
        text(
            "alertmanager_http_request_duration_seconds_count",
            {"handler": "/nope", "method": "get"},
        )
        is None
    )


async def test_handler_label_is_worked_out_once_per_path_and_the_cache_is_bounded() -> None:
    """The router is asked once per (method, path), repeats are still observed, and a
    flood of distinct paths neither grows the cache past its bound nor loses the label."""
    from daemon.api.limits import _OBSERVER_CACHE, Message, instrument

    asked: list[tuple[str, str]] = []

    def label(method: str, path: str) -> str | None:
        asked.append((method, path))
        return "/-/cachetest" if path == "/-/cachetest" else None

    async def app(scope: object, receive: object, send: object) -> None:
        pass

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    wrapped = instrument(app, label)
    labels = {"handler": "/-/cachetest", "method": "post"}

    def count() -> float:
        return _sample("alertmanager_http_request_duration_seconds_count", labels) or 0

    before = count()
    for _ in range(3):
        await wrapped({"type": "http", "method": "POST", "path": "/-/cachetest"}, receive, send)
    assert asked == [("POST", "/-/cachetest")]
    assert count() == before + 3
    for i in range(_OBSERVER_CACHE + 5):
        await wrapped({"type": "http", "method": "GET", "path": f"/junk/{i}"}, receive, send)
    await wrapped({"type": "http", "method": "POST", "path": "/-/cachetest"}, receive, send)
    assert count() == before + 4
    # The flood filled the cache and it started over, so the route was asked again.
    assert asked.count(("POST", "/-/cachetest")) == 2
