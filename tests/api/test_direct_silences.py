"""POST /api/v2/silences served beside quart (daemon.api.direct): case by case, the same
answers as quart's route and the same silences stored, journalled and gossiped; over a
real socket, the body limit, a client leaving mid-body or during the fsync, and the web
config's basic auth; with tenancy, the gate's refusals and each tenant's own store."""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import itertools
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import bcrypt
import pytest
import trio
from quart_trio import QuartTrio

from daemon.api import silences as silences_api
from daemon.api.app import create_app, default_api_routes
from daemon.api.server import serve_api
from daemon.api.silences import gettable_silence, silence_routes
from daemon.api.tenancy import RequestBackend, install_gate, tenant_silence_routes
from daemon.api.webconfig import open_web_config
from daemon.clock import FixedClock
from daemon.matcher import Matcher, MatchType
from daemon.persist import DurableState, run_inline
from daemon.silence.model import Silence
from daemon.silence.state import SilenceLimits, Silences
from daemon.store import AlertStore
from daemon.tenancy.tenants import TenancyConfig, parse_tenancy
from tests.api.conftest import NOW, Api, S, config
from tests.api.test_direct_routes import raw_exchange
from tests.api.test_silence_writes import DurableBackend, on_disk
from tests.api.test_silences import body

#: The silence every case starts with (the store's first id).
SEED = "00000000-0000-4000-8000-000000000001"
NIGHTLY = {"schedule": "0 22 * * *", "duration": "8h", "timeZone": "Asia/Shanghai"}


def _recurring(**extra: Any) -> str:
    doc = json.loads(body())
    del doc["startsAt"], doc["endsAt"]
    return json.dumps({**doc, "recurrence": NIGHTLY, **extra})


#: (body, content type, extra headers) of requests whose answers must not change.
CASES: list[tuple[bytes | str, str | None, dict[str, str]]] = [
    (body(), "application/json", {}),  # a new silence
    (body(), "application/json; charset=utf-8", {"Origin": "http://ui.example"}),  # CORS
    (body(id=SEED, comment="longer", endsAt="2026-01-01T02:00:00Z"), "application/json", {}),
    (body([{"name": "a", "value": "c", "isRegex": False}], id=SEED), "application/json", {}),
    (body(id="10000000-0000-4000-8000-000000000009"), "application/json", {}),  # unknown: 404
    (_recurring(), "application/json", {"Origin": "x"}),
    (_recurring().replace('"recurrence"', '"\\u0072ecurrence"'), "application/json", {}),
    (_recurring(id=SEED), "application/json", {}),
    (_recurring(recurrence={**NIGHTLY, "schedule": "nope"}), "application/json", {}),
    ("{", "application/json", {}),
    ("", "application/json", {}),
    ("[1]", "application/json", {}),
    (body(comment=5), "application/json", {}),
    (body(startsAt="yesterday"), "application/json", {}),
    (body([]), "application/json", {}),
    (body([{"name": "a", "value": "(", "isRegex": True}]), "application/json", {}),
    (body([{"name": "a", "value": "(", "isRegex": True}], id=SEED), "application/json", {}),
    (body(endsAt="2025-12-31T00:00:00Z", startsAt="2025-12-30T00:00:00Z"), None, {}),
    (body(endsAt="2025-12-31T00:00:00Z", startsAt="2025-12-30T00:00:00Z"), "application/json", {}),
    (body(endsAt="2026-01-01T00:00:00Z"), "application/json", {"Origin": "o"}),
    (body(), "text/plain", {"Origin": "o"}),
    (body(), "application/", {}),
    (body(), "application/json; x", {}),
    ("x" * 200, "application/json", {}),  # over the 100-byte limit below
]


def _pipeline() -> DurableBackend:
    """A silence backend whose ids count from SEED, holding the SEED silence."""
    clock = FixedClock(NOW)
    ids = itertools.count(1)
    store = Silences(new_id=lambda: f"00000000-0000-4000-8000-{next(ids):012d}")
    matchers = (Matcher.create(MatchType.EQUAL, "a", "b"),)
    seeded = Silence("", matchers, NOW, NOW + 3600 * S, created_by="me", comment="why")
    assert store.set(seeded, NOW) == SEED
    return DurableBackend(config("default"), AlertStore(clock), clock, silences=store)


@attrs.define
class World:
    """One app over one journalled pipeline, and what its silences were told."""

    api: Api
    backend: DurableBackend
    directory: Path
    gossiped: list[bytes]

    def outcome(self) -> tuple[Any, ...]:
        """What a request left behind: the silences as GET shows them, the ids on
        disk, and the records handed to the gossip."""
        store = self.backend.silences
        listed = [gettable_silence(s, NOW) for s in store.query([], NOW)]
        return listed, on_disk(self.directory), self.gossiped


async def _world(
    tmp_path: Path, direct: bool, monkeypatch: pytest.MonkeyPatch, max_body_bytes: int = 2**20
) -> World:
    # A recurring silence's id is a fresh UUID: the same sequence for both routes.
    counter = itertools.count(1)
    ids = SimpleNamespace(uuid4=lambda: uuid.UUID(int=next(counter)))
    monkeypatch.setattr(silences_api, "uuid", ids)
    backend = _pipeline()
    directory = tmp_path / ("direct" if direct else "quart")
    state = await DurableState.open(directory, "silences", run_blocking=run_inline)
    backend.silence_state = state
    backend.silences.subscribe(state.append_delimited_nowait, local_writes=False)
    sent: list[bytes] = []
    backend.silences.subscribe(sent.append)
    routes = {**default_api_routes(), **silence_routes()}
    api = Api(backend, api_routes=routes, direct_routes=direct, max_body_bytes=max_body_bytes)
    return World(api, backend, directory, sent)


async def _answer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    direct: bool,
    text: bytes | str,
    ctype: str | None,
    headers: dict[str, str],
) -> Any:
    limit = 100 if len(text) == 200 else 2**20
    world = await _world(tmp_path, direct, monkeypatch, limit)
    with monkeypatch.context() as m:
        if direct:
            # So the comparison is surely with the direct route: quart may not answer.
            m.setattr(QuartTrio, "handle_request", _quart_must_not_answer)
        status, data, hdrs = await world.api.request(
            "POST", "/api/v2/silences", text, ctype, headers=headers
        )
    return status, data, sorted(hdrs.items()), world.outcome()


async def _quart_must_not_answer(self: QuartTrio, request: Any) -> Any:
    raise AssertionError("quart handled a request the direct route should have")


async def test_quart_never_sees_the_direct_silence_post(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With quart unable to answer, the silence POST is still a 200 (the direct route);
    without the direct routes quart's failure shows, so the check can fail."""
    monkeypatch.setattr(QuartTrio, "handle_request", _quart_must_not_answer)
    world = await _world(tmp_path, True, monkeypatch)
    assert (await world.api.request("POST", "/api/v2/silences", body()))[0] == 200
    world = await _world(tmp_path / "off", False, monkeypatch)
    with pytest.raises(ExceptionGroup) as caught:
        await world.api.request("POST", "/api/v2/silences", body())
    assert caught.group_contains(AssertionError, match="quart handled")


@pytest.mark.parametrize(("text", "ctype", "headers"), CASES)
async def test_direct_route_answers_and_stores_as_quart_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: bytes | str,
    ctype: str | None,
    headers: dict[str, str],
) -> None:
    """Status, headers, body, the silences stored, journalled and gossiped: as quart's route."""
    direct = await _answer(tmp_path, monkeypatch, True, text, ctype, headers)
    quart = await _answer(tmp_path, monkeypatch, False, text, ctype, headers)
    assert direct == quart


async def test_the_table_stores_what_each_kind_should(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the direct route: a create adds one silence, an in-place update keeps its id,
    a replace expires the old one, a recurring POST adds its window, and each answer
    waits for its record on disk."""
    expected = {
        0: (200, {"00000000-0000-4000-8000-000000000002"}),
        2: (200, {SEED}),
        3: (200, {SEED, "00000000-0000-4000-8000-000000000002"}),
        4: (404, set()),
        5: (200, None),
        20: (415, set()),
        23: (413, set()),
    }
    for index, (status, disk) in expected.items():
        text, ctype, headers = CASES[index]
        got, _, _, (listed, ids, sent) = await _answer(
            tmp_path / str(index), monkeypatch, True, text, ctype, headers
        )
        assert got == status, index
        if disk is not None:
            assert ids == (disk if status == 200 else set()), index
        assert bool(sent) == (status == 200), index
        if index == 3:
            states = {s["id"]: s["status"]["state"] for s in listed}
            assert states[SEED] == "expired"
        if index == 5:
            assert len(listed) == 2 and "recurrence" in listed[1]


async def test_write_failures_answer_as_quart_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync failing (500) and the journal queue full (503): the same answer on both
    routes, and nothing stored, gossiped or on disk."""
    import daemon.persist as persist

    def fail(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    answers = []
    for direct in (True, False):
        world = await _world(tmp_path / "500", direct, monkeypatch)
        with monkeypatch.context() as m:
            m.setattr(os, "fdatasync", fail)
            answer = await world.api.request("POST", "/api/v2/silences", body())
        answers.append((answer[0], answer[1], sorted(answer[2].items()), world.outcome()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 500 and len(answers[0][3][0]) == 1 and not answers[0][3][2]
    answers = []
    for direct in (True, False):
        world = await _world(tmp_path / "503", direct, monkeypatch)
        state = world.backend.silence_state
        assert state is not None
        with monkeypatch.context() as m:
            m.setattr(persist, "MAX_PENDING_BYTES", 4096)
            m.setattr(os, "fdatasync", fail)
            for _ in range(10):
                state.append_nowait(b"x" * 1024)
            answer = await world.api.request("POST", "/api/v2/silences", body())
        answers.append((answer[0], answer[1], sorted(answer[2].items()), world.outcome()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 503 and b"journal queue full" in answers[0][1]


async def test_a_silence_limit_refuses_as_quart_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline at its silence limits (a tenant's): the same 400 on both routes, the
    breach reported once per refusal, and nothing stored, journalled or gossiped."""
    answers = []
    for direct in (True, False):
        world = await _world(tmp_path, direct, monkeypatch)
        breaches: list[str] = []
        world.backend.silences.limits = SilenceLimits(
            max_silences_count=1, on_breach=breaches.append
        )
        status, data, hdrs = await world.api.request("POST", "/api/v2/silences", body())
        answers.append((status, data, sorted(hdrs.items()), world.outcome(), breaches))
    assert answers[0] == answers[1]
    status, _, _, (listed, ids, sent), breaches = answers[0]
    assert status == 400 and len(listed) == 1 and not ids and not sent
    assert breaches == ["max_silences_count"]


# --- over a real socket ------------------------------------------------------------------


HEAD = b"POST /api/v2/silences HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def _sized(payload: bytes, head: bytes = HEAD) -> bytes:
    return head + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload


async def test_over_hypercorn_limits_and_a_client_leaving_mid_body(tmp_path: Path) -> None:
    """Over a real socket: a body declared or sent (chunked) past the limit is a 413
    storing nothing, a client that leaves mid-body stores nothing, a good POST is stored."""
    backend = _pipeline()
    app = create_app(
        backend, api_routes={**default_api_routes(), **silence_routes()}, max_body_bytes=300
    )
    good = body().encode()
    big = body(comment="x" * 300).encode()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
            chunked += f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\n\r\n"
            for request in (chunked, _sized(big)):
                reply = await raw_exchange(port, request)
                assert reply.startswith(b"HTTP/1.1 413"), reply
                assert b"request body too large (limit 300 bytes)" in reply
            partial = HEAD + f"Content-Length: {len(good)}\r\n\r\n".encode() + good[:-5]
            await raw_exchange(port, partial, close_after=True)
            await trio.sleep(0.2)
            assert [s.id for s in backend.silences.query([], NOW)] == [SEED]
            reply = await raw_exchange(port, _sized(good))
            assert reply.startswith(b"HTTP/1.1 200"), reply
            assert len(backend.silences.query([], NOW)) == 2
            nursery.cancel_scope.cancel()


async def test_a_client_leaving_during_the_fsync_still_gets_its_silence_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client closes while its record is being fsynced: the write completes and the
    silence is applied (on disk and live), as it would have been had the client waited."""
    backend = _pipeline()
    state = await DurableState.open(tmp_path, "silences")  # fsync in a worker thread
    backend.silence_state = state
    applied = trio.Event()
    backend.silences.subscribe(lambda record: applied.set())
    in_fsync, release = threading.Event(), threading.Event()
    real = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        in_fsync.set()
        release.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    app = create_app(backend, api_routes={**default_api_routes(), **silence_routes()})
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(_sized(body().encode()))
            await trio.to_thread.run_sync(in_fsync.wait, 10)
            await stream.aclose()
            await trio.sleep(0.1)  # the server sees the close while fsync is held
            assert len(backend.silences.query([], NOW)) == 1
            release.set()
            await applied.wait()
            assert len(backend.silences.query([], NOW)) == 2
            nursery.cancel_scope.cancel()
    assert len(on_disk(tmp_path)) == 1


async def test_web_config_basic_auth_covers_the_direct_route(tmp_path: Path) -> None:
    """With basic_auth_users, a silence POST without the password is 401 and stores
    nothing; with it, it is stored."""
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  alice: {hashed}\n")
    source, _ = open_web_config(str(tmp_path / "web.yml"))
    backend = _pipeline()
    app = create_app(backend, api_routes={**default_api_routes(), **silence_routes()})
    good = body().encode()
    auth = b"Authorization: Basic " + base64.b64encode(b"alice:secret") + b"\r\n"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                functools.partial(serve_api, app, "127.0.0.1", 0, web_config=source)
            )
            reply = await raw_exchange(port, _sized(good))
            assert reply.startswith(b"HTTP/1.1 401"), reply
            assert len(backend.silences.query([], NOW)) == 1
            reply = await raw_exchange(port, _sized(good, HEAD + auth))
            assert reply.startswith(b"HTTP/1.1 200"), reply
            assert len(backend.silences.query([], NOW)) == 2
            nursery.cancel_scope.cancel()


# --- tenancy ------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TENANCY = parse_tenancy(
    f"admins: [{{name: ops, token_sha256: {_digest('admin')}}}]\n"
    f"ingest: [{{name: prom, token_sha256: {_digest('ingest')}}}]\n"
    f"tenants: {{team-a: {{tokens_sha256: [{_digest('a')}]}}, "
    f"team-b: {{tokens_sha256: [{_digest('b')}]}}}}\n"
)

#: identity -> headers, as tests/tenancy/test_isolation.py names them
IDENTITIES: dict[str, dict[str, str]] = {
    "admin": {"Authorization": "Bearer admin"},
    "admin-as-a": {"Authorization": "Bearer admin", "X-Scope-OrgID": "team-a"},
    "ingest": {"Authorization": "Bearer ingest"},
    "a": {"Authorization": "Bearer a"},
    "none": {},
    "bad": {"Authorization": "Bearer nope"},
    "mismatch": {"Authorization": "Bearer a", "X-Scope-OrgID": "team-b"},
    "unknown-org": {"Authorization": "Bearer admin", "X-Scope-OrgID": "team-z"},
}


@attrs.define
class Directory:
    """The daemon's tenants as the API sees them: pipelines and the tenancy file."""

    pipelines: dict[str | None, DurableBackend]
    tenancy: TenancyConfig = TENANCY

    def backend_for(self, tenant: str | None) -> DurableBackend | None:
        return self.pipelines.get(tenant)


def _tenanted(direct: bool) -> tuple[Any, Directory]:
    directory = Directory({None: _pipeline(), "team-a": _pipeline(), "team-b": _pipeline()})
    routes = tenant_silence_routes(
        {**default_api_routes(), **silence_routes()},
        directory,  # type: ignore[arg-type]
    )
    app = create_app(
        RequestBackend(directory),  # type: ignore[arg-type]
        api_routes=routes,
        direct_routes=direct,
    )
    install_gate(app, directory)  # type: ignore[arg-type]
    return app, directory


def _stored(directory: Directory) -> dict[str | None, list[str]]:
    return {
        tenant: sorted(s.id for s in p.silences.query([], NOW))
        for tenant, p in directory.pipelines.items()
    }


async def _tenant_post(direct: bool, who: str, mutate: Callable[[Directory], None]) -> Any:
    app, directory = _tenanted(direct)
    mutate(directory)
    resp = await app.test_client().open(
        "/api/v2/silences",
        method="POST",
        data=body().encode(),
        headers={"Content-Type": "application/json", **IDENTITIES[who]},
    )
    data = await resp.get_data(as_text=False)
    return resp.status_code, data, sorted(resp.headers.items()), _stored(directory)


@pytest.mark.parametrize("who", IDENTITIES)
async def test_each_identity_gets_quarts_answer_in_its_own_pipeline(who: str) -> None:
    """Behind the tenancy gate, each identity's silence POST gets the answer it got from
    quart's route and lands in the same pipeline (ingest, no or a bad token, and a
    tenant naming another tenant are refused and store nothing)."""
    direct = await _tenant_post(True, who, lambda d: None)
    assert direct == await _tenant_post(False, who, lambda d: None)
    status, _, _, stored = direct
    new = {t for t, ids in stored.items() if ids != [SEED]}
    if who in ("admin", "admin-as-a", "a"):
        assert status == 200 and new == {None if who == "admin" else "team-a"}
    else:
        assert status in (400, 401, 403, 404) and new == set()


async def test_a_tenant_gone_mid_request_is_quarts_404() -> None:
    """A tenant removed (tenancy reload) after the gate let its request in is a plain
    404 on both routes, and nothing is stored anywhere."""

    def drop_a(directory: Directory) -> None:
        # The gate still knows team-a; its pipeline is gone.
        del directory.pipelines["team-a"]

    direct = await _tenant_post(True, "a", drop_a)
    assert direct == await _tenant_post(False, "a", drop_a)
    assert direct[:2] == (404, b"404 page not found\n")
    assert all(ids == [SEED] for ids in direct[3].values())
