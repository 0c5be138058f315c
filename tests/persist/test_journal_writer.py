"""The C JournalWriter: each job's bytes appended and fdatasync'ed on its own thread,
each job's outcome as an errno, all-or-nothing jobs cut back on failure, and the
thread stopped and joined by close()."""

from __future__ import annotations

import errno
import gc
import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

speedups = pytest.importorskip("daemon._speedups")
if not hasattr(speedups, "JournalWriter"):  # pragma: no cover - non-Linux builds
    pytest.skip("the C journal writer is Linux-only", allow_module_level=True)

from daemon._speedups import JOURNAL_ROLLBACK, JOURNAL_SYNC, JournalWriter  # noqa: E402

BOTH = JOURNAL_SYNC | JOURNAL_ROLLBACK


def writer_threads() -> int:
    """How many of this process's threads are JournalWriter threads (named by it)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            comm = Path(f"/proc/self/task/{task}/comm").read_text().strip()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        count += comm == "tocsin-journal"
    return count


@pytest.fixture
def writer() -> Iterator[JournalWriter]:
    w = JournalWriter()
    yield w
    w.close()


def wait_collect(w: JournalWriter) -> list[tuple[int, int]]:
    """Block (at most 10 s) until the round finished; its outcomes."""
    ready, _, _ = select.select([w.fileno()], [], [], 10)
    assert ready, "the round did not finish"
    outcomes = w.collect()
    assert outcomes is not None
    return outcomes


def open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def full_pipe() -> tuple[int, int]:
    """A pipe whose (blocking) write end is full: the next write blocks until a read."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"\0" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    return r, w


def test_jobs_are_written_in_order_and_each_has_its_outcome(
    tmp_path: Path, writer: JournalWriter
) -> None:
    """A round's jobs are appended in order, to their own files, and each reports 0."""
    a, b = open_append(tmp_path / "a"), open_append(tmp_path / "b")
    assert writer.collect() is None
    writer.submit([(a, b"one", BOTH), (b, b"two", JOURNAL_SYNC), (a, b"three", 0)])
    assert wait_collect(writer) == [(0, 0), (0, 0), (0, 0)]
    assert (tmp_path / "a").read_bytes() == b"onethree"
    assert (tmp_path / "b").read_bytes() == b"two"
    # Collected: the eventfd is empty again and there is nothing more to collect.
    assert select.select([writer.fileno()], [], [], 0)[0] == []
    assert writer.collect() is None
    os.close(a)
    os.close(b)


def test_failed_write_reports_its_errno(writer: JournalWriter) -> None:
    """A write the device refuses reports its errno (ENOSPC for /dev/full), and a cut
    back that fails too reports that errno second."""
    full = os.open("/dev/full", os.O_WRONLY)
    writer.submit([(full, b"record", BOTH), (full, b"record", JOURNAL_SYNC)])
    [(err, cut), (plain, none)] = wait_collect(writer)
    assert err == errno.ENOSPC and cut != 0
    assert plain == errno.ENOSPC and none == 0
    os.close(full)


def test_failed_fdatasync_reports_its_errno(writer: JournalWriter) -> None:
    """A written job whose fdatasync fails (a pipe cannot be synced) reports EINVAL."""
    r, w = os.pipe()
    writer.submit([(w, b"record", JOURNAL_SYNC), (w, b"more", 0)])
    assert wait_collect(writer) == [(errno.EINVAL, 0), (0, 0)]
    assert os.read(r, 100) == b"recordmore"
    os.close(r)
    os.close(w)


def test_all_or_nothing_job_is_cut_back_after_a_short_write(tmp_path: Path) -> None:
    """A job that is written only in part (the file-size limit stops it) fails with the
    write's errno and leaves the file as it was; without the flag the part stays."""
    script = textwrap.dedent(
        """
        import os, resource, select, sys
        from daemon._speedups import JOURNAL_ROLLBACK, JOURNAL_SYNC, JournalWriter

        path = sys.argv[1]
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, b"kept")
        resource.setrlimit(resource.RLIMIT_FSIZE, (10, resource.RLIM_INFINITY))
        w = JournalWriter()
        out = []
        for flags in (JOURNAL_SYNC | JOURNAL_ROLLBACK, JOURNAL_SYNC):
            w.submit([(fd, b"0123456789", flags)])
            select.select([w.fileno()], [], [], 10)
            out.append((w.collect(), os.fstat(fd).st_size))
        w.close()
        print(out)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "j")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    # EFBIG after the 6 bytes that fit: cut back to 4 bytes; without the flag, 10 stay.
    assert done.stdout.strip() == str([([(errno.EFBIG, 0)], 4), ([(errno.EFBIG, 0)], 10)])
    assert (tmp_path / "j").read_bytes() == b"kept012345"


def test_job_bytes_outlive_the_submitters_reference(writer: JournalWriter) -> None:
    """The round keeps each job's bytes alive: a job whose only reference was dropped
    while the thread waits to write it is still written whole."""
    r, w = full_pipe()
    writer.submit([(w, bytes(bytearray(b"x" * 1000)), 0)])
    gc.collect()
    assert writer.collect() is None
    drained = b""
    while len(drained) < 65536 + 1000:
        drained += os.read(r, 1 << 20)
    assert wait_collect(writer) == [(0, 0)]
    assert drained.endswith(b"x" * 1000) and len(drained) == 65536 + 1000
    os.close(r)
    os.close(w)


def test_second_round_is_refused_while_one_is_in_flight(writer: JournalWriter) -> None:
    """Rounds run one at a time: a submit while one is in flight is a RuntimeError, and
    the round in flight is unaffected."""
    r, w = full_pipe()
    writer.submit([(w, b"a", 0)])
    with pytest.raises(RuntimeError, match="in flight"):
        writer.submit([(w, b"b", 0)])
    os.read(r, 1 << 20)  # room again: the blocked write goes through
    assert wait_collect(writer) == [(0, 0)]
    os.close(r)
    os.close(w)


def test_close_stops_the_thread(writer: JournalWriter) -> None:
    """close() joins the writer thread (idempotently), and a closed writer refuses work."""
    before = writer_threads()
    other = JournalWriter()
    assert writer_threads() == before + 1
    other.close()
    other.close()
    assert writer_threads() == before
    with pytest.raises(ValueError, match="closed"):
        other.submit([])
    with pytest.raises(ValueError, match="closed"):
        other.fileno()


def test_bad_jobs_are_refused_before_anything_runs(writer: JournalWriter) -> None:
    """A job that is not (fd, bytes, flags) is a TypeError and the round is not started."""
    with pytest.raises(TypeError):
        writer.submit([(1, "text", 0)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        writer.submit(((1, b"x", 0),))  # type: ignore[arg-type]
    writer.submit([])
    assert wait_collect(writer) == []


def _run_isolated(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a child Python (a crash there is this test's failure, not pytest's)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_jobs_whose_fields_run_python_code_are_read_from_a_copy(tmp_path: Path) -> None:
    """A job's fd whose ``__index__`` empties the job list (or submits again) while the
    list is read: the round is the list as it was given; the nested submit is refused.
    The writer read the list in place and crashed on the emptied list."""
    done = _run_isolated(
        """
        import os, select, sys
        from daemon._speedups import JournalWriter

        w = JournalWriter()
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        jobs = []
        nested = []

        class Clearing:
            def __index__(self):
                jobs.clear()
                try:
                    w.submit([(fd, b"nested", 0)])
                except RuntimeError as exc:
                    nested.append(str(exc))
                return fd

        jobs += [(Clearing(), b"A" * 100, 0), (fd, b"B" * 10, 0)]
        w.submit(jobs)
        assert select.select([w.fileno()], [], [], 10)[0]
        print(w.collect(), nested)
        w.close()
        """,
        str(tmp_path / "j"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(0, 0), (0, 0)] ['a round is being submitted']"
    assert (tmp_path / "j").read_bytes() == b"A" * 100 + b"B" * 10


def test_close_from_two_threads_at_once_returns_in_both() -> None:
    """Two closes while the thread finishes a round (a write blocked on a full pipe):
    the second joined the same thread again and waited for ever."""
    done = _run_isolated(
        """
        import os, select, threading, time
        from daemon._speedups import JournalWriter
        from tests.persist.test_journal_writer import full_pipe

        r, w_fd = full_pipe()
        w = JournalWriter()
        w.submit([(w_fd, b"x" * 65536, 0)])
        closers = [threading.Thread(target=w.close) for _ in range(2)]
        for t in closers:
            t.start()
            # So the first close is inside its join (the round cannot end while the
            # pipe is full) when the second one comes.
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        while any(t.is_alive() for t in closers) and time.monotonic() < deadline:
            if select.select([r], [], [], 0.05)[0]:  # let the blocked write finish
                os.read(r, 1 << 20)
        print(sum(t.is_alive() for t in closers))
        os._exit(0)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
