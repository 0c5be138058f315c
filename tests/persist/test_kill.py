"""Acknowledged appends survive the process being killed with SIGKILL right after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from daemon.persist import RecordJournal
from daemon.silence import codec as silencepb

ROOT = Path(__file__).resolve().parents[2]


def killed_after(child: str, directory: Path, count: int) -> list[str]:
    """Run ``child`` on ``directory``, SIGKILL it once it has printed ``count`` lines.

    Returns the lines read (stripped); the child must have died of that SIGKILL.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    acknowledged: list[str] = []
    try:
        for line in proc.stdout:
            acknowledged.append(line.strip())
            if len(acknowledged) == count:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return acknowledged


CHILD = textwrap.dedent(
    """
    import sys
    import trio
    from daemon.log import configure
    from daemon.persist import DurableState

    configure(stream=sys.stderr)

    async def main(directory: str) -> None:
        state = await DurableState.open(directory, "silences")
        await state.load()
        for i in range(1000):
            await state.append(f"silence-{i}".encode())
            # The acknowledgement: the parent kills us as soon as it reads this line.
            print(i, flush=True)
        await trio.sleep_forever()

    trio.run(main, sys.argv[1])
    """
)


def test_record_survives_sigkill_after_append(tmp_path: Path) -> None:
    """Every record whose append returned is loaded after kill -9, in order."""
    lines = killed_after(CHILD, tmp_path, 26)
    acknowledged = int(lines[-1])
    assert acknowledged == 25
    j = RecordJournal.open(tmp_path, "silences")
    loaded = j.load()
    j.close()
    # The child may have appended a few more before the signal landed, and at most the
    # very last frame may be torn; everything acknowledged is there.
    want = [f"silence-{i}".encode() for i in range(acknowledged + 1)]
    assert list(loaded.records[: len(want)]) == want
    assert all(p.reason.startswith("truncated") for p in loaded.problems)


SILENCE_CHILD = textwrap.dedent(
    """
    import sys
    import trio
    from daemon.silence import codec as silencepb
    from daemon.log import configure
    from daemon.matcher import parse_matcher
    from daemon.persist import DurableState
    from daemon.silence.model import Silence
    from daemon.silence.state import Silences

    configure(stream=sys.stderr)
    T0 = 1_763_937_000 * 10**9

    async def post(silences, state, i):
        plan = silences.plan_set(
            Silence("", (parse_matcher(f'job="{i}"'),), T0, T0 + 3600 * 10**9), T0
        )
        records = [silencepb.encode_mesh_silence(s, exp) for s, exp in plan.records]
        await state.commit(records, lambda: silences.apply(plan))
        return plan.silence_id

    async def main(directory):
        state = await DurableState.open(directory, "silences")
        silences = Silences()
        loaded = await state.load_decoded(silencepb.decode_mesh_silence)
        silences.load_snapshot(silencepb.encode_state(loaded.records))
        silences.subscribe(state.append_delimited_nowait, local_writes=False)
        for i in range(1000):
            print(await post(silences, state, i), flush=True)
        await trio.sleep_forever()

    trio.run(main, sys.argv[1])
    """
)


def test_silence_acknowledged_through_commit_survives_sigkill(tmp_path: Path) -> None:
    """Silence IDs acknowledged after DurableState.commit are all there after kill -9."""
    acknowledged = killed_after(SILENCE_CHILD, tmp_path, 10)
    j = RecordJournal.open(tmp_path, "silences")
    loaded = j.load_decoded(silencepb.decode_mesh_silence)
    j.close()
    stored = {s.id for s, _ in loaded.records}
    assert len(acknowledged) == 10
    assert set(acknowledged) <= stored
