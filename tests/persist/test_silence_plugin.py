"""The silence store plugged into durable state: acknowledged writes survive a restart."""

from __future__ import annotations

import functools
from pathlib import Path

import trio

from cluster.protowire import iter_delimited
from daemon.clock import NS_PER_SECOND
from daemon.matcher import parse_matcher
from daemon.persist import DurableState, RecordJournal, flush_after, run_inline
from daemon.silence import codec as silencepb
from daemon.silence.model import Silence
from daemon.silence.state import Silences

S = NS_PER_SECOND
H = 3600 * S
T0 = 1_763_937_000 * S


def new_silence(name: str) -> Silence:
    return Silence("", (parse_matcher(f'alertname="{name}"'),), T0, T0 + H, comment=name)


async def start(directory: Path) -> tuple[Silences, DurableState]:
    """The wiring the composition root does, in the few lines the report gives."""
    state = await DurableState.open(directory, "silences")
    silences = Silences()
    loaded = await state.load_decoded(silencepb.decode_mesh_silence)
    silences.load_snapshot(silencepb.encode_state(loaded.records))
    silences.subscribe(state.append_delimited_nowait)
    return silences, state


def on_disk(directory: Path) -> dict[str, Silence]:
    j = RecordJournal.open(directory, "silences")
    try:
        loaded = j.load_decoded(silencepb.decode_mesh_silence)
    finally:
        j.close()
    return {s.id: s for s, _ in loaded.records}


async def test_flush_after_answers_only_once_the_change_is_on_disk(tmp_path: Path) -> None:
    """A wrapped handler's queued write is in the journal before the wrapper returns."""
    silences, state = await start(tmp_path)
    seen_inside: list[dict[str, Silence]] = []

    async def post(backend: Silences, params: dict[str, str]) -> str:
        sid = backend.set(new_silence(params["name"]), T0)
        seen_inside.append(on_disk(tmp_path))
        return sid

    wrapped = flush_after(post, lambda backend: state)
    sid = await wrapped(silences, {"name": "A"})
    assert seen_inside == [{}]
    assert on_disk(tmp_path)[sid].comment == "A"
    assert wrapped.__name__ == "post"
    await state.aclose()


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
