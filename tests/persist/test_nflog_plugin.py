"""The nflog plugged into durable state: batched journal, GC'd snapshots, restart."""

from __future__ import annotations

import functools
from pathlib import Path

import trio

from daemon.clock import NS_PER_SECOND
from daemon.nflog import codec as nflogpb
from daemon.nflog.state import Nflog, ReceiverKey
from daemon.persist import DurableState, RecordJournal, run_inline

S = NS_PER_SECOND
H = 3600 * S
T0 = 1_763_937_000 * S
RECV = ReceiverKey("wh", "webhook", 0)


def restored(directory: Path) -> Nflog:
    j = RecordJournal.open(directory, "nflog")
    try:
        loaded = j.load_decoded(nflogpb.decode_mesh_entry)
    finally:
        j.close()
    nflog = Nflog()
    nflog.load_entries(loaded.records)
    return nflog


async def test_nflog_entries_reach_disk_within_one_flush_interval(
    tmp_path: Path, autojump_clock: object
) -> None:
    """Logged sends are journaled by the flusher and a fresh log restores them; GC runs at snapshot."""
    state = await DurableState.open(tmp_path, "nflog", run_blocking=run_inline)
    nflog = Nflog()
    nflog.subscribe(lambda e: state.append_nowait(nflogpb.encode_mesh_entry(e)))
    now = [T0]

    def snapshot() -> list[bytes]:
        nflog.gc(now[0])
        return nflogpb.snapshot_records(nflog)

    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(
                state.serve, snapshot=snapshot, maintenance_interval=900, flush_interval=1.0
            )
        )
        nflog.log(RECV, '{}:{a="1"}', [1], [], now=T0, expiry=2 * H)
        nflog.log(RECV, '{}:{a="2"}', [2], [], now=T0, expiry=2 * H)
        nflog.log(RECV, '{}:{a="1"}', [1, 3], [], now=T0 + S, expiry=2 * H)
        await trio.sleep(1.5)
        assert restored(tmp_path).entries == nflog.entries
        now[0] = T0 + 2 * H + S // 2  # the {a="2"} entry has expired, {a="1"} not yet
        nursery.cancel_scope.cancel()
    after = restored(tmp_path)
    assert list(after.entries) == [f'{{}}:{{a="1"}}:{RECV}']
    assert after.query('{}:{a="1"}', RECV) == nflog.query('{}:{a="1"}', RECV)
    assert (tmp_path / "nflog.wal").stat().st_size == 0
    await state.aclose()
