"""The silence store plugged into durable state: acknowledged writes survive a restart."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.testing

from cluster.protowire import encode_varint, iter_delimited
from daemon.clock import NS_PER_SECOND
from daemon.matcher import parse_matcher
from daemon.persist import DurableState, RecordJournal, run_inline
from daemon.silence import codec as silencepb
from daemon.silence.model import Silence
from daemon.silence.state import Silences

T = TypeVar("T")
S = NS_PER_SECOND
H = 3600 * S
T0 = 1_763_937_000 * S


def new_silence(name: str) -> Silence:
    return Silence("", (parse_matcher(f'alertname="{name}"'),), T0, T0 + H, comment=name)


async def start(directory: Path, local_writes: bool = True) -> tuple[Silences, DurableState]:
    """The wiring the composition root does, in the few lines the report gives.

    ``local_writes``: whether the journal also hears the store's own writes (tests that
    write with ``Silences.set`` and flush); the composition root commits those itself
    (False), as :func:`commit_set` does here.
    """
    state = await DurableState.open(directory, "silences")
    silences = Silences()
    loaded = await state.load_decoded(silencepb.decode_mesh_silence)
    silences.load_snapshot(silencepb.encode_state(loaded.records))
    silences.subscribe(state.append_delimited_nowait, local_writes=local_writes)
    return silences, state


async def commit_set(silences: Silences, state: DurableState, silence: Silence) -> str:
    """What the API does: plan, journal, then apply."""
    plan = silences.plan_set(silence, T0)
    records = [silencepb.encode_mesh_silence(s, exp) for s, exp in plan.records]
    await state.commit(records, lambda: silences.apply(plan))
    return plan.silence_id


def on_disk(directory: Path) -> dict[str, Silence]:
    j = RecordJournal.open(directory, "silences")
    try:
        loaded = j.load_decoded(silencepb.decode_mesh_silence)
    finally:
        j.close()
    return {s.id: s for s, _ in loaded.records}


async def test_commit_applies_only_once_the_change_is_on_disk(tmp_path: Path) -> None:
    """The store holds a committed silence only after its record is in the journal."""
    silences, state = await start(tmp_path)
    seen_when_applied: list[set[str]] = []
    plan = silences.plan_set(new_silence("A"), T0)
    records = [silencepb.encode_mesh_silence(s, exp) for s, exp in plan.records]

    def apply() -> None:
        seen_when_applied.append(set(on_disk(tmp_path)))
        silences.apply(plan)

    assert silences.get(plan.silence_id) is None
    await state.commit(records, apply)
    assert seen_when_applied == [{plan.silence_id}]
    assert silences.get(plan.silence_id) is not None
    await state.aclose()


async def test_concurrent_commits_share_one_fsync(tmp_path: Path) -> None:
    """Commits waiting on the lock are written together by whoever holds it."""
    silences, state = await start(tmp_path, local_writes=False)
    ids: list[str] = []
    writes: list[int] = []
    write = state.journal.append_all_or_nothing

    def counted(records: Iterable[bytes]) -> None:
        batch = list(records)
        writes.append(len(batch))
        write(batch)

    state.journal.append_all_or_nothing = counted  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        for name in "ABCDEFGH":
            nursery.start_soon(
                lambda n=name: _append(ids, commit_set(silences, state, new_silence(n)))
            )
    assert set(on_disk(tmp_path)) == set(ids) and len(ids) == 8
    # Commits queued while another holds the lock go out in the next single write.
    assert sum(writes) == 8 and len(writes) <= 2, writes
    assert {s.id for s in silences} == set(ids)
    await state.aclose()


async def _append(out: list[str], coro: Awaitable[str]) -> None:
    out.append(await coro)


async def test_set_update_expire_survive_restart_without_snapshot(tmp_path: Path) -> None:
    """Create, update and expire are replayed from the journal alone, as the API left them."""
    silences, state = await start(tmp_path)
    a = silences.set(new_silence("A"), T0)
    b = silences.set(new_silence("B"), T0)
    updated = silences.get(a)
    assert updated is not None
    silences.set(Silence(a, updated.matchers, T0, T0 + 2 * H, comment="longer"), T0 + S)
    silences.expire(b, T0 + 2 * S)
    await state.flush()
    assert not (tmp_path / "silences").exists()
    before = {s.id: s for s in silences}
    await state.aclose()

    again, state2 = await start(tmp_path)
    assert {s.id: s for s in again} == before
    assert again.get(a) is not None and again.get(a).comment == "longer"  # type: ignore[union-attr]
    assert again.expires_at(b) == silences.expires_at(b)
    await state2.aclose()


async def test_maintenance_snapshot_is_alertmanager_readable(
    tmp_path: Path, autojump_clock: object
) -> None:
    """The maintenance snapshot holds GC'd state in AM's format and empties the journal."""
    state = await DurableState.open(tmp_path, "silences", run_blocking=run_inline)
    silences = Silences()
    silences.subscribe(state.append_delimited_nowait)
    keep = silences.set(new_silence("keep"), T0)
    old = silences.set(new_silence("old"), T0)
    silences.expire(old, T0)
    now = [T0]

    def snapshot() -> list[bytes]:
        return list(iter_delimited(silences.maintenance(now[0])))

    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(state.serve, snapshot=snapshot, maintenance_interval=900)
        )
        await state.flush()
        now[0] = T0 + 120 * H + S  # past only the expired silence's retention
        await trio.sleep(901)
        nursery.cancel_scope.cancel()
    records = silencepb.decode_state((tmp_path / "silences").read_bytes())
    assert [s.id for s, _ in records] == [keep]
    assert (tmp_path / "silences.wal").stat().st_size == 0
    await state.aclose()


async def test_a_cancelled_commit_is_withdrawn_and_others_still_apply(tmp_path: Path) -> None:
    """A commit cancelled before its write changes nothing; one in the same batch applies."""
    gate = trio.Event()

    async def gated(fn: Callable[[], T]) -> T:
        # The runner's wait before the write is where a cancellation lands.
        await gate.wait()
        return fn()

    state = await DurableState.open(tmp_path, "silences", run_blocking=run_inline)
    state._run = gated
    applied: list[str] = []
    scope = trio.CancelScope()

    async def first() -> None:
        with scope:
            await state.commit([b"first"], lambda: applied.append("first"))

    async with trio.open_nursery() as nursery:
        async with state._lock:
            # Both wait for the lock, so the first to get it takes both into its batch.
            nursery.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(state.commit, [b"second"], lambda: applied.append("second"))
            await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()  # first holds the lock, at the gate
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    state._run = run_inline
    loaded = await state.load()
    assert applied == ["second"]
    assert list(loaded.records) == [b"second"]
    await state.aclose()


def test_apply_hands_listeners_the_journal_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local write applied with its journal encoding gives every listener that
    encoding, framed, without encoding the silence a second time."""
    silences = Silences()
    heard: list[bytes] = []
    silences.subscribe(heard.append)
    plan = silences.plan_set(new_silence("once"), T0)
    records = [silencepb.encode_mesh_silence(s, exp) for s, exp in plan.records]

    def no_second_encoding(s: Silence, expires_at: int) -> bytes:
        raise AssertionError("encoded twice")

    monkeypatch.setattr(silencepb, "encode_delimited", no_second_encoding)
    monkeypatch.setattr(silencepb, "encode_mesh_silence", no_second_encoding)
    silences.apply(plan, records)
    assert heard == [encode_varint(len(records[0])) + records[0]]
    assert silences.get(plan.silence_id) is not None
