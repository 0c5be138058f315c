"""Deeply nested bodies get a fast 400, and big bodies are decoded in slices (issue 9)."""

from __future__ import annotations

import json
import time

import pytest
import trio

from daemon.api.cooperative import run_cooperatively
from daemon.api.postable import (
    STEP_ITEMS,
    BodyError,
    decode_json,
    decode_json_steps,
    parse_alerts,
    parse_alerts_steps,
    run_steps,
)
from tests.api.conftest import Api

DEEP = 100_000
DEEP_BODIES = [
    b"[" * DEEP + b"]" * DEEP,
    b"{" + b'"a":{' * DEEP + b"}" * (DEEP + 1),
    b'[{"labels":' + b"[" * DEEP + b"]" * DEEP + b"}]",
]


@pytest.mark.parametrize("body", DEEP_BODIES, ids=["arrays", "objects", "inside-an-alert"])
async def test_deep_alerts_body_is_a_fast_400(api: Api, body: bytes) -> None:
    """100k nested arrays or objects: 400 with Go's "exceeded max depth", in well under 1 s."""
    started = time.perf_counter()
    status, data, _ = await api.request("POST", "/api/v2/alerts", body)
    assert time.perf_counter() - started < 1.0
    assert status == 400
    assert json.loads(data)["message"] == (
        'parsing alerts body from "" failed, because exceeded max depth'
    )
    assert api.backend.store.list() == []


async def test_deep_silence_body_is_a_400(sapi: Api) -> None:
    """A silence body nested 100k deep gets the same 400, with the silence prefix."""
    status, data, _ = await sapi.request("POST", "/api/v2/silences", DEEP_BODIES[1])
    assert status == 400
    assert json.loads(data)["message"] == (
        'parsing silence body from "" failed, because exceeded max depth'
    )


def test_moderate_nesting_still_decodes() -> None:
    """Nesting Go and Python both handle (200 levels) decodes as before."""
    assert decode_json(b"[" * 200 + b"]" * 200) is not None


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b" [ ] trailing",
        b'[{"labels":{"a":"b"}} , {"labels":{"a":"c"}}]',
        b'[{"labels":{"a":"\\ud800"}}]',
        b"[1,]",
        b"[1 2]",
        b'[{"labels":{"a":"b"}}] [',
        b"[NaN]",
        b'{"labels":{}}',
        b"null",
        b"   ",
        b"[" + b'{"labels":{"a":"b"}},' * (3 * STEP_ITEMS) + b"]",
        b"[" + b'{"labels":{"a":"b"}},' * (3 * STEP_ITEMS) + b"{}]",
        b"[" + b"1," * STEP_ITEMS + b"1]",
    ],
)
def test_sliced_decoder_agrees_with_the_one_shot_decoder(body: bytes) -> None:
    """decode_json_steps gives decode_json's value or the very same BodyError, any input."""
    try:
        expected: object = decode_json(body)
    except BodyError as exc:
        expected = (exc.status, exc.code, exc.message)
    try:
        got: object = run_steps(decode_json_steps(body))
    except BodyError as exc:
        got = (exc.status, exc.code, exc.message)
    assert got == expected


def test_large_array_is_decoded_in_slices() -> None:
    """An array of 10 * STEP_ITEMS alerts yields at least 10 times before its result."""
    body = json.dumps([{"labels": {"i": str(i)}} for i in range(10 * STEP_ITEMS)]).encode()
    steps = parse_alerts_steps(body)
    yields = 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as done:
            result = done.value
            break
    assert yields >= 10
    assert result == parse_alerts(body)


async def test_other_tasks_run_while_a_big_body_is_parsed() -> None:
    """run_cooperatively checkpoints between slices, so a ticking task keeps running."""
    body = json.dumps(
        [{"labels": {"alertname": f"A{i}", "instance": "x" * 50}} for i in range(60_000)]
    ).encode()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        await trio.lowlevel.checkpoint()
        before = ticks
        raws = await run_cooperatively(parse_alerts_steps(body), slice_seconds=0.001)
        nursery.cancel_scope.cancel()
    assert len(raws) == 60_000
    assert ticks - before >= 5
