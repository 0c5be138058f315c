"""Silence writes through the API: a rejected or failed request changes nothing, and
regexes Go refuses get a 400 that says why."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import attrs
import pytest

from daemon.alert import Alert
from daemon.api.app import default_api_routes
from daemon.api.silences import silence_routes
from daemon.persist import DurableState, RecordJournal, run_inline
from daemon.silence import codec as silencepb
from tests.api.conftest import NOW, Api, S, SilenceFakeBackend
from tests.api.test_silences import body, list_silences, post


@attrs.define
class DurableBackend(SilenceFakeBackend):
    """The fake backend with a journal, as the instance backend has."""

    silence_state: DurableState | None = None


@pytest.fixture
async def durable(sbackend: SilenceFakeBackend, tmp_path: Path) -> DurableBackend:
    state = await DurableState.open(tmp_path, "silences", run_blocking=run_inline)
    backend = DurableBackend(
        sbackend.config, sbackend.store, sbackend.clock, silences=sbackend.silences
    )
    backend.silence_state = state
    backend.silences.subscribe(state.append_delimited_nowait, local_writes=False)
    return backend


def on_disk(directory: Path) -> set[str]:
    j = RecordJournal.open(directory, "silences")
    try:
        return {s.id for s, _ in j.load_decoded(silencepb.decode_mesh_silence).records}
    finally:
        j.close()


def gossiped(backend: SilenceFakeBackend) -> list[bytes]:
    """What the peer would broadcast from now on (it hears every stored record)."""
    sent: list[bytes] = []
    backend.silences.subscribe(sent.append)
    return sent


REFUSED = [
    ("(" * 1001 + ")" * 1001, "expression nests too deeply: `" + "(" * 1001 + ")" * 1001 + "`"),
    ("a{1001}", "invalid repeat count: `{1001}`"),
    ("(a{100}){100}", "invalid repeat count: `{100}`"),
    (r"\p{Klingon}", "invalid character class range: `\\p{Klingon}`"),
    (r"(?<n>x)", "invalid or unsupported Perl syntax: `(?<`"),
]


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
async def test_refused_patterns_answer_400_saying_why(sapi: Api, pattern: str, reason: str) -> None:
    """Each pattern Go refuses gets Alertmanager's 400 with Go's reason."""
    matchers = [{"name": "a", "value": pattern, "isRegex": True}]
    status, data = await post(sapi, body(matchers))
    quoted = json.dumps(pattern)
    assert status == 400
    assert json.loads(data) == (
        f"silence invalid: invalid label matcher 0: invalid regular expression {quoted}: "
        f"error parsing regexp: {reason}"
    )


async def test_rejected_update_keeps_the_old_silence(
    sapi: Api, sbackend: SilenceFakeBackend
) -> None:
    """A POST updating a silence with an invalid matcher gets 400 and changes nothing
    (Alertmanager 0.25 expires the old silence here)."""
    _, data = await post(sapi, body())
    sid = json.loads(data)["silenceID"]
    sent = gossiped(sbackend)
    bad = [{"name": "a", "value": "(", "isRegex": True}]
    status, _ = await post(sapi, body(bad, id=sid))
    assert status == 400
    listed = await list_silences(sapi)
    assert [(s["id"], s["status"]["state"]) for s in listed] == [(sid, "active")]
    assert sent == []


async def test_update_with_valid_pattern_still_replaces(
    sapi: Api, sbackend: SilenceFakeBackend
) -> None:
    """A valid update that needs a new ID still expires the old silence (0.25's rule)."""
    _, data = await post(sapi, body())
    sid = json.loads(data)["silenceID"]
    changed = [{"name": "a", "value": r"\p{Greek}+", "isRegex": True}]
    status, data = await post(sapi, body(changed, id=sid))
    assert status == 200
    sbackend.clock.advance(1)
    states = {s["id"]: s["status"]["state"] for s in await list_silences(sapi)}
    assert states == {sid: "expired", json.loads(data)["silenceID"]: "active"}


def _failing_fdatasync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def fail(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", fail)
    return calls


async def test_failed_write_leaves_the_silence_neither_live_nor_gossiped(
    durable: DurableBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync fails: 500, nothing live, nothing gossiped, nothing on disk; a retry makes one."""
    api = Api(durable, api_routes={**default_api_routes(), **silence_routes()})
    sent = gossiped(durable)
    real = os.fdatasync
    calls = _failing_fdatasync(monkeypatch)
    status, data = await post(api, body())
    assert calls and status == 500
    assert json.loads(data).startswith("Failed to create silence: write to disk failed:")
    assert await list_silences(api) == [] and sent == []
    monkeypatch.setattr(os, "fdatasync", real)
    assert on_disk(tmp_path) == set()  # the journal was cut back
    status, data = await post(api, body())
    assert status == 200
    sid = json.loads(data)["silenceID"]
    assert [s["id"] for s in await list_silences(api)] == [sid]
    assert len(sent) == 1 and on_disk(tmp_path) == {sid}


async def test_failed_expire_leaves_the_silence_active(
    durable: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE whose journal write fails answers 500 and the silence stays active."""
    api = Api(durable, api_routes={**default_api_routes(), **silence_routes()})
    _, data = await post(api, body())
    sid = json.loads(data)["silenceID"]
    _failing_fdatasync(monkeypatch)
    status, _, _ = await api.request("DELETE", f"/api/v2/silence/{sid}")
    assert status == 500
    durable.clock.advance(1)
    assert [s["status"]["state"] for s in await list_silences(api)] == ["active"]


async def test_full_disk_keeps_memory_bounded_and_refuses_with_503(
    durable: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While writes fail, the queue stops at its bound and new silences get a clear 503."""
    import daemon.persist as persist

    monkeypatch.setattr(persist, "MAX_PENDING_BYTES", 4096)
    api = Api(durable, api_routes={**default_api_routes(), **silence_routes()})
    _failing_fdatasync(monkeypatch)
    state = durable.silence_state
    assert state is not None
    # Peers keep gossiping while the disk is full: the queue stops growing at the bound.
    record = b"x" * 1024
    for _ in range(1000):
        state.append_nowait(record)
    assert state.pending == 4
    status, data = await post(api, body())
    assert status == 503
    assert "journal queue full" in json.loads(data)
    assert await list_silences(api) == []


async def test_hostile_filter_and_receiver_params_answer_at_once(api: Api) -> None:
    """GET /alerts with backtracking-bomb ``filter`` and ``receiver`` regexes on long
    values answers in milliseconds (RE2), with Go's verdicts."""
    long_value = "x" * 50_000
    api.backend.store.put([Alert({"instance": long_value}, {}, NOW - S, NOW + 300 * S, "", NOW)])
    start = time.perf_counter()
    hit = await api.get_valid("/alerts", [("filter", 'instance=~"(x+x+)+y"')])
    assert hit == []
    miss = await api.get_valid("/alerts", [("filter", 'instance!~"([a-z]+)*[0-9]"')])
    assert len(miss) == 1
    assert await api.get_valid("/alerts", [("receiver", "(d+d+)+z")]) == []
    assert time.perf_counter() - start < 1.0
