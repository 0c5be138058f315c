"""SyncRounds served by the C JournalWriter: the same group commit, per-file outcomes,
rollback and cancellation as with the Python worker thread, with no Python call in
the write, and the writer thread stopped when serve() ends."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import structlog
import trio
import trio.testing

from daemon.api import create_app
from daemon.api.app import default_api_routes
from daemon.api.silences import silence_routes
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.config.load import load_config_text
from daemon.instance import Instance, InstanceBackend, ProcessFacts, StorageSettings
from daemon.persist import DurableState, RecordJournal, SyncRounds, parse_journal
from tests.persist.test_journal_writer import full_pipe, writer_threads

NOW = 1_700_000_000 * NS_PER_SECOND

if not hasattr(pytest.importorskip("daemon._speedups"), "JournalWriter"):  # pragma: no cover
    pytest.skip("the C journal writer is Linux-only", allow_module_level=True)


@pytest.fixture
def no_python_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any write that goes through Python's os.fdatasync fails: the C path must not."""

    def refuse(fd: int) -> None:
        raise AssertionError("os.fdatasync called: the write did not go to the C writer")

    monkeypatch.setattr(os, "fdatasync", refuse)


@asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[tuple[SyncRounds, DurableState, DurableState]]:
    """Silences and nflog sharing rounds served by the C writer, closed afterwards."""
    rounds = SyncRounds()
    silences = await DurableState.open(tmp_path, "silences", rounds=rounds)
    nflog = await DurableState.open(tmp_path, "nflog", rounds=rounds)
    async with trio.open_nursery() as nursery:
        await nursery.start(rounds.serve)
        yield rounds, silences, nflog
        nursery.cancel_scope.cancel()
    for state in (silences, nflog):
        if not state.journal.closed:
            state.journal.close()


@asynccontextmanager
async def running_instance(tmp_path: Path, tenant: str | None = None) -> AsyncIterator[Instance]:
    """An instance (a tenant's, given one) with storage under ``tmp_path``, running
    until the block ends."""
    config = load_config_text("route: {receiver: r}\nreceivers: [{name: r}]\n")
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(404))
    ) as http:
        instance = Instance(
            config,
            clock=TrioClock(NOW),
            http=http,
            external_url="http://t",
            retention=3600 * NS_PER_SECOND,
            storage=StorageSettings(tmp_path),
            tenant=tenant,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(instance.run)
            yield instance
            nursery.cancel_scope.cancel()


def reload(tmp_path: Path, name: str) -> list[bytes]:
    journal = RecordJournal.open(tmp_path, name)
    try:
        return list(journal.load().records)
    finally:
        journal.close()


@asynccontextmanager
async def held_round(rounds: SyncRounds, directory: Path) -> AsyncIterator[None]:
    """A third journal's write in a round the C thread cannot finish (its file is a full
    pipe) for the length of the block; it finishes when the block ends."""
    held = await DurableState.open(directory, "held", rounds=rounds)
    r, w = full_pipe()
    fd = held.journal.fileno()
    saved = os.dup(fd)
    os.dup2(w, fd)
    os.close(w)
    try:
        async with trio.open_nursery() as nursery:
            # Without fsync: a pipe cannot be synced.
            nursery.start_soon(held.append, b"held", False)
            await trio.testing.wait_all_tasks_blocked()
            try:
                yield
            finally:
                assert os.read(r, 1 << 20)  # room: the blocked write goes through
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(r)
        held.journal.close()


async def commit_beside_flush(
    rounds: SyncRounds,
    directory: Path,
    silences: DurableState,
    nflog: DurableState,
    applied: list[bytes],
    errors: list[OSError],
) -> None:
    """A silence commit and an nflog flush that arrive while another round is in the C
    thread: both wait for it, and the next round takes them together (a round starts
    as soon as a write finds none running)."""

    async def commit() -> None:
        try:
            await silences.commit([b"silence"], lambda: applied.append(b"silence"))
        except OSError as exc:
            errors.append(exc)

    async def flush() -> None:
        nflog.append_nowait(b"entry")
        await nflog.flush()

    async with trio.open_nursery() as nursery:
        async with held_round(rounds, directory):
            nursery.start_soon(commit)
            nursery.start_soon(flush)
            await trio.testing.wait_all_tasks_blocked()
            assert applied == []


async def test_commit_and_flush_share_one_c_round(tmp_path: Path, no_python_fsync: None) -> None:
    """A silence commit and an nflog flush waiting together are written in one round by
    the C thread (no Python fsync), and the silence applies only once it is durable."""
    applied: list[bytes] = []
    errors: list[OSError] = []
    with trio.fail_after(10):
        async with served(tmp_path) as (rounds, silences, nflog):
            await commit_beside_flush(rounds, tmp_path, silences, nflog, applied, errors)
            # The held round, then one round for both.
            assert rounds.rounds == 2
            assert applied == [b"silence"] and errors == []
            await silences.commit([b"second"], lambda: applied.append(b"second"))
            assert rounds.rounds == 3
    assert reload(tmp_path, "silences") == [b"silence", b"second"]
    assert reload(tmp_path, "nflog") == [b"entry"]


async def test_failed_write_fails_only_its_own_commit(tmp_path: Path) -> None:
    """When the silences' write fails in a C round, the commit raises the errno's
    OSError and is not applied, the failed cut back is logged, and the nflog entry of
    the same round is durable."""
    applied: list[bytes] = []
    errors: list[OSError] = []
    with trio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with served(tmp_path) as (rounds, silences, nflog):
            full = os.open("/dev/full", os.O_WRONLY)
            fd = silences.journal.fileno()
            saved = os.dup(fd)
            os.dup2(full, fd)
            os.close(full)
            await commit_beside_flush(rounds, tmp_path, silences, nflog, applied, errors)
            assert rounds.rounds == 2
            os.dup2(saved, fd)
            os.close(saved)
            assert applied == []
            [exc] = errors
            assert exc.errno == errno.ENOSPC and "No space left" in str(exc)
            # The disk is back: the next commit goes through.
            await silences.commit([b"kept"], lambda: applied.append(b"kept"))
    assert applied == [b"kept"]
    assert reload(tmp_path, "silences") == [b"kept"]
    assert reload(tmp_path, "nflog") == [b"entry"]
    [event] = [e for e in logs if e["event"] == "state.rollback_failed"]
    assert event["state"] == "silences"


async def test_cancelled_commit_waits_for_its_round_and_applies(tmp_path: Path) -> None:
    """A commit cancelled while its round is in the C thread does not return before the
    round ends, and its change applies, since it is on disk."""
    applied: list[bytes] = []
    returned: list[str] = []
    with trio.fail_after(10):
        async with served(tmp_path) as (rounds, silences, nflog):
            r, w = full_pipe()
            fd = nflog.journal.fileno()
            saved = os.dup(fd)
            # The nflog's write in the round blocks on the full pipe, holding the round.
            os.dup2(w, fd)
            os.close(w)

            caller = trio.CancelScope()

            async def commit() -> None:
                with caller:
                    try:
                        await silences.commit([b"silence"], lambda: applied.append(b"silence"))
                    finally:
                        returned.append("commit")

            async with trio.open_nursery() as nursery:
                # Both wait behind a held round, so the next round takes them together.
                async with held_round(rounds, tmp_path):
                    nursery.start_soon(nflog.append, b"entry", False)
                    nursery.start_soon(commit)
                    await trio.testing.wait_all_tasks_blocked()
                await trio.testing.wait_all_tasks_blocked()
                caller.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert returned == [] and applied == []
                assert os.read(r, 1 << 20)  # room: the blocked write goes through
            os.dup2(saved, fd)
            os.close(saved)
            os.close(r)
            assert returned == ["commit"] and applied == [b"silence"]
    assert reload(tmp_path, "silences") == [b"silence"]


async def test_serve_stops_the_thread_and_later_writes_use_a_python_thread(
    tmp_path: Path,
) -> None:
    """The writer thread runs only while serve() does; a commit after it stopped still
    goes to disk, through the Python worker thread."""
    before = writer_threads()
    rounds = SyncRounds()
    silences = await DurableState.open(tmp_path, "silences", rounds=rounds)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(rounds.serve)
            assert writer_threads() == before + 1
            await silences.commit([b"during"], lambda: None)
            nursery.cancel_scope.cancel()
        assert writer_threads() == before
        await silences.commit([b"after"], lambda: None)
    assert rounds.rounds == 2
    await silences.aclose()
    assert reload(tmp_path, "silences") == [b"during", b"after"]


async def test_an_instance_runs_one_writer_thread_and_stops_it(tmp_path: Path) -> None:
    """An instance with storage runs one writer thread for its two journals while it
    runs, and joins it when it stops: no thread outlives the instance."""
    before = writer_threads()
    with trio.fail_after(30):
        async with running_instance(tmp_path):
            assert writer_threads() == before + 1
    assert writer_threads() == before


async def test_a_silence_post_the_disk_refuses_answers_500_and_stores_nothing(
    tmp_path: Path, no_python_fsync: None
) -> None:
    """End to end through a running instance and its C writer: a POST whose journal write
    fails (ENOSPC) answers 500 and leaves the silence out of the store and off the disk;
    the POSTs around it are stored and durable."""

    async def no_reload() -> str | None:
        return None

    def silence(comment: str) -> dict[str, object]:
        return {
            "matchers": [{"name": "alertname", "value": "A", "isRegex": False}],
            "startsAt": "2023-11-14T22:13:20Z",
            "endsAt": "2033-11-14T22:13:20Z",
            "createdBy": "test",
            "comment": comment,
        }

    with trio.fail_after(30):
        async with running_instance(tmp_path) as instance:
            backend = InstanceBackend(instance, ProcessFacts("/", NOW, {}, dict, no_reload))
            client = create_app(
                backend, api_routes={**default_api_routes(), **silence_routes()}
            ).test_client()
            first = await client.post("/api/v2/silences", json=silence("first"))
            assert first.status_code == 200
            state = instance.silence_state
            assert state is not None
            fd = state.journal.fileno()
            saved, full = os.dup(fd), os.open("/dev/full", os.O_WRONLY)
            os.dup2(full, fd)
            os.close(full)
            try:
                refused = await client.post("/api/v2/silences", json=silence("refused"))
            finally:
                os.dup2(saved, fd)
                os.close(saved)
            assert refused.status_code == 500
            third = await client.post("/api/v2/silences", json=silence("third"))
            assert third.status_code == 200
            listed = await (await client.get("/api/v2/silences")).get_json()
            assert sorted(s["comment"] for s in listed) == ["first", "third"]
    on_disk = reload(tmp_path, "silences")
    assert len(on_disk) == 2
    assert not any(b"refused" in record for record in on_disk)


async def test_only_the_global_pipeline_runs_a_writer_thread(tmp_path: Path) -> None:
    """The global pipeline's journals get a C writer thread; a tenant pipeline's rounds
    go to the shared, bounded disk threads (1,000 tenants must not start 1,000
    threads), and its silence commits still reach the disk."""
    before = writer_threads()
    with trio.fail_after(10):
        async with running_instance(tmp_path / "global"):
            assert writer_threads() == before + 1
            async with running_instance(tmp_path / "tenant", tenant="team-a") as tenant:
                assert writer_threads() == before + 1
                state = tenant.silence_state
                assert state is not None
                await state.commit([b"kept"], lambda: None)
                written = (tmp_path / "tenant" / "silences.wal").read_bytes()
                assert [r for _, r in parse_journal(written).records] == [b"kept"]
