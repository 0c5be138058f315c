"""Crash-safe storage for a replicated state: an atomic snapshot plus an fsynced journal.

Alertmanager writes ``<storage.path>/silences`` and ``<storage.path>/nflog`` only every
``--data.maintenance-interval`` and at shutdown, so a crash loses every newer change.
tocsin keeps Alertmanager's snapshot file, byte for byte, and adds a journal beside it.
This module knows nothing about silences or the nflog: it stores opaque records (one
serialised ``MeshSilence`` or ``MeshEntry`` each) and the state decides what they mean.

Files, for a state called ``name`` in ``directory``:

* ``name`` — the snapshot, Alertmanager's format: each record prefixed by its varint
  length, no header, no checksum. Written to ``name.<hex>.tmp``, fsynced, renamed over
  ``name``, then the directory is fsynced; readers see the old or the new file, never
  a partial one. Alertmanager 0.25 can start from it.
* ``name.wal`` — the journal: the same framing plus, after each record, the CRC-32
  (zlib, little-endian) of the length prefix and the record, so a torn or damaged
  record is detected rather than misread.

Rules and invariants:

* Every change is appended to the journal after it is applied in memory; ``append``
  returns only once the bytes are written (and, with ``sync``, fdatasync'ed). An API
  that awaits it before answering survives ``kill -9`` right after its response.
* Loading yields the snapshot's records, then the journal's, in file order. The state
  applies them with its own merge rule (latest ``updated_at``/timestamp wins), so a
  journal record already contained in the snapshot is harmless: replay is idempotent.
* Compaction writes the whole current state as a new snapshot, then truncates the
  journal. A crash between the two only replays the journal once more (idempotent). The
  records must be taken from the state *while no append is in flight*, which is why the
  async :meth:`DurableState.compact` takes a callable and calls it under its lock.
* Damage found at start-up (a torn last record, a CRC mismatch, a snapshot record the
  state cannot decode, a length running past the end) is logged as ``state.corrupt``
  with file, offset and reason. Every readable record is kept, the damaged file is
  preserved as ``name.corrupt-<UTC time>`` (a hard link for the snapshot, a copy for the
  journal, which is truncated in place), and a clean snapshot is written at once, so the
  next start does not meet the same damage: tocsin never crash-loops on its own files.
* After a bad journal frame the reader resynchronises on the next offset where a whole
  frame with a valid CRC starts, looking at most :data:`RESYNC_WINDOW` bytes ahead. A
  false match needs a CRC-32 collision.

Durability choices:

* Silences: a local change is journaled first and applied after
  (:meth:`DurableState.commit`): it is fdatasync'ed before it is live, gossiped or
  acknowledged, and a failed write (the journal is cut back) changes nothing, so a
  client retrying after the 500 makes no duplicate. Concurrent requests share
  fsyncs: whoever takes the lock writes every waiting commit.
* While the disk refuses writes the queue is bounded (:data:`MAX_PENDING_BYTES`):
  new commits get :class:`JournalFull` (a 503), and records merged from peers stay
  in memory for the next compaction instead of piling up.
* nflog: entries are queued by a listener and written by :meth:`DurableState.serve`'s
  flusher, at once when idle and then at most once per ``flush_interval``, with
  fdatasync. A crash loses at most the last interval's entries, which only risks a
  repeated notification, never a missed one; notifications never wait for the disk.

* Silences and the nflog of one instance share a :class:`SyncRounds`: writes of both
  journals that wait at the same moment go to the writer thread together, one
  hand-off and one round of fdatasyncs (one per file) for both, as issue 15 asks.
  Each waiter is released once its own file's write and fsync returned, and a failure
  fails only the writes of the file that failed. That thread is the C
  ``JournalWriter`` (``daemon/_speedups.c``) while :meth:`SyncRounds.serve` runs: it
  never takes the GIL, so a round costs the event loop a submit and an eventfd wake-up.

The blocking class :class:`RecordJournal` does the file I/O; :class:`DurableState`
wraps it for trio, running every read, write and fsync in a worker thread (journal
appends on shared rounds in the C writer's thread, which does the same writes).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import attrs
import structlog
import trio

from cluster.errors import DecodeError
from cluster.protowire import decode_varint, encode_varint, iter_delimited
from daemon import thread_limits
from daemon.clock import NS_PER_SECOND, Clock, SystemClock

try:
    # daemon/_speedups.c (optional build, Linux only): journal writes on a thread that
    # never takes the GIL. Without it, SyncRounds hands its rounds to a Python thread.
    from daemon._speedups import JOURNAL_ROLLBACK, JOURNAL_SYNC, JournalWriter
except ImportError:  # pragma: no cover - the C build is there wherever the tests run
    JournalWriter = None  # type: ignore[assignment,misc]
    JOURNAL_SYNC, JOURNAL_ROLLBACK = 1, 2

T = TypeVar("T")

log = structlog.get_logger("tocsin.persist")

#: Suffix of the journal beside a snapshot.
JOURNAL_SUFFIX = ".wal"
#: Largest record the readers accept: far above any silence or nflog entry, and small
#: enough that a damaged length prefix cannot make us allocate gigabytes.
MAX_RECORD = 16 << 20
#: Seconds the final compaction at shutdown may take before it is abandoned (logged).
SHUTDOWN_TIMEOUT = 30.0

#: How far past a bad journal frame the reader looks for the next good one. Damage is
#: usually a torn tail or a bad block; a longer garbage span drops the rest of the file
#: (reported) rather than making start-up scan for minutes.
RESYNC_WINDOW = 64 << 10

#: Bytes a :class:`DurableState` may hold queued and unwritten. While the disk is full
#: the queue cannot drain; past this, commits are refused (:class:`JournalFull`) and
#: records queued by listeners are left to the next compaction, so memory stays bounded.
MAX_PENDING_BYTES = 32 << 20

_CRC_SIZE = 4
_NONZERO = re.compile(rb"[^\x00]")


# ---------------------------------------------------------------------------------------
# Pure framing


@attrs.frozen
class Problem:
    """One piece of damage found while loading: where it is and what is wrong."""

    file: str
    offset: int
    reason: str


@attrs.frozen
class LoadResult(Generic[T]):
    """Everything a load could read, in apply order, and what it could not."""

    records: tuple[T, ...]
    problems: tuple[Problem, ...] = ()
    #: Where each damaged file was preserved (empty when nothing was damaged).
    moved_aside: tuple[str, ...] = ()


def snapshot_frame(record: bytes) -> bytes:
    """One snapshot record: varint length, then the record (``pbutil.WriteDelimited``)."""
    return encode_varint(len(record)) + record


def journal_frame(record: bytes) -> bytes:
    """One journal record: the snapshot frame followed by its CRC-32, little-endian."""
    framed = snapshot_frame(record)
    return framed + zlib.crc32(framed).to_bytes(_CRC_SIZE, "little")


def journal_frames(records: Iterable[bytes]) -> bytes:
    """Records framed for the journal, as one write appends them."""
    return b"".join(journal_frame(r) for r in records)


@attrs.frozen
class _Parsed:
    """A file's readable records with their offsets, and its problems (pure result)."""

    records: list[tuple[int, bytes]]
    problems: list[Problem]


def parse_snapshot(data: bytes, file: str = "") -> _Parsed:
    """Split a snapshot into records; stop at the first length that runs past the end.

    A snapshot has no checksums, so after a bad length there is no way to find the
    next record: everything before it is kept.
    """
    records: list[tuple[int, bytes]] = []
    pos = 0
    n = len(data)
    while pos < n:
        try:
            length, start = decode_varint(data, pos)
        except DecodeError:
            return _Parsed(records, [Problem(file, pos, "truncated or invalid length prefix")])
        if length > MAX_RECORD or length > n - start:
            reason = (
                f"record of {length} bytes runs past the end of the file ({n - start} left)"
                if length <= MAX_RECORD
                else f"record length {length} exceeds the {MAX_RECORD}-byte limit"
            )
            return _Parsed(records, [Problem(file, pos, reason)])
        records.append((pos, data[start : start + length]))
        pos = start + length
    return _Parsed(records, [])


def _journal_frame_at(data: bytes, pos: int) -> tuple[bytes, int] | str:
    """The record starting at ``pos`` and the offset after it, or why there is none."""
    try:
        length, start = decode_varint(data, pos)
    except DecodeError:
        return "truncated or invalid length prefix"
    if length > MAX_RECORD:
        return f"record length {length} exceeds the {MAX_RECORD}-byte limit"
    end = start + length
    if end + _CRC_SIZE > len(data):
        return "truncated record (torn write)"
    want = int.from_bytes(data[end : end + _CRC_SIZE], "little")
    if zlib.crc32(memoryview(data)[pos:end]) != want:
        return "checksum mismatch"
    return data[start:end], end + _CRC_SIZE


def _resync(data: bytes, start: int) -> int | None:
    """The first offset in the resync window where a whole valid frame starts, or None.

    Zero bytes are skipped at C speed: a crash can leave zero-filled blocks, and a
    frame starting with a zero byte would be an empty record, which no state writes.
    """
    limit = min(len(data), start + RESYNC_WINDOW)
    q = start
    while q < limit:
        match = _NONZERO.search(data, q, limit)
        if match is None:
            return None
        q = match.start()
        if not isinstance(_journal_frame_at(data, q), str):
            return q
        q += 1
    return None


def parse_journal(data: bytes, file: str = "") -> _Parsed:
    """Split a journal into records, skipping damaged spans (see the module notes)."""
    records: list[tuple[int, bytes]] = []
    problems: list[Problem] = []
    pos = 0
    n = len(data)
    while pos < n:
        got = _journal_frame_at(data, pos)
        if not isinstance(got, str):
            records.append((pos, got[0]))
            pos = got[1]
            continue
        resync = _resync(data, pos + 1)
        if resync is None:
            problems.append(Problem(file, pos, f"{got}; {n - pos} bytes to the end dropped"))
            break
        problems.append(Problem(file, pos, f"{got}; skipped {resync - pos} bytes"))
        pos = resync
    return _Parsed(records, problems)


def _decode_all(
    parsed: _Parsed, file: str, decode: Callable[[bytes], T]
) -> tuple[list[tuple[bytes, T]], list[Problem]]:
    """Decode each record; a record the state rejects becomes a problem and is dropped."""
    out: list[tuple[bytes, T]] = []
    problems = list(parsed.problems)
    for offset, raw in parsed.records:
        try:
            out.append((raw, decode(raw)))
        except ValueError as exc:  # DecodeError is a ValueError
            problems.append(Problem(file, offset, f"undecodable record: {exc}"))
    problems.sort(key=lambda p: p.offset)
    return out, problems


def corrupt_name(path: Path, now: int) -> Path:
    """``<file>.corrupt-<UTC time>``: where a damaged file is preserved."""
    seconds, nanos = divmod(now, NS_PER_SECOND)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y%m%dT%H%M%S")
    return path.with_name(f"{path.name}.corrupt-{stamp}.{nanos:09d}Z")


# ---------------------------------------------------------------------------------------
# Blocking file I/O


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class RecordJournal:
    """A snapshot and its journal for one state (blocking; not thread-safe).

    Error handling: I/O errors (disk full, permissions) propagate as ``OSError``;
    damage in the files is never an error, it is reported by :meth:`load`.
    """

    def __init__(self, directory: Path, name: str, fd: int, clock: Clock) -> None:
        self.directory = directory
        self.name = name
        self.snapshot_path = directory / name
        self.journal_path = directory / (name + JOURNAL_SUFFIX)
        self._fd: int | None = fd
        self._clock = clock

    @classmethod
    def open(
        cls, directory: str | os.PathLike[str], name: str, *, clock: Clock | None = None
    ) -> RecordJournal:
        """Create the directory if needed, drop stale temp files, open the journal."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        stale = re.compile(re.escape(name) + r"\.[0-9a-f]+\.tmp")
        for leftover in path.iterdir():
            if stale.fullmatch(leftover.name):
                # A compaction that crashed before its rename; the old snapshot stands.
                leftover.unlink(missing_ok=True)
        journal = path / (name + JOURNAL_SUFFIX)
        created = not journal.exists()
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if created:
            # The journal's directory entry must be durable before the first acknowledged
            # append relies on it.
            _fsync_dir(path)
        return cls(path, name, fd, clock or SystemClock())

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"journal {self.journal_path} is closed")
        return self._fd

    def fileno(self) -> int:
        """The journal's file descriptor (for the C writer); ValueError once closed."""
        return self._require_fd()

    def close(self) -> None:
        """Close the journal file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, record: bytes, sync: bool = True) -> None:
        """Append one record; with ``sync`` it is on disk when this returns."""
        self.append_many([record], sync=sync)

    def append_many(self, records: Iterable[bytes], sync: bool = True) -> None:
        """Append records in one write (group commit); with ``sync``, fdatasync after."""
        fd = self._require_fd()
        data = journal_frames(records)
        if data:
            _write_all(fd, data)
        if sync:
            os.fdatasync(fd)

    def append_all_or_nothing(self, records: Iterable[bytes]) -> None:
        """Append and fdatasync ``records``; on failure cut the journal back to where it was.

        A record the caller was told failed must not come back at the next start (a
        client retrying after a 500 would then find two silences). If even the cut
        fails, the half-written frame fails its checksum at load and is skipped.

        Error handling: the ``OSError`` propagates after the cut.
        """
        fd = self._require_fd()
        before = os.fstat(fd).st_size
        try:
            self.append_many(records, sync=True)
        except OSError:
            try:
                os.ftruncate(fd, before)
                os.fdatasync(fd)
            except OSError as exc:
                log.error("state.rollback_failed", state=self.name, error=str(exc))
            raise

    def compact(self, records: Iterable[bytes]) -> None:
        """Atomically replace the snapshot with ``records``, then empty the journal."""
        fd = self._require_fd()
        self._write_snapshot(records)
        os.ftruncate(fd, 0)
        os.fsync(fd)

    def _write_snapshot(self, records: Iterable[bytes]) -> None:
        tmp = self.directory / f"{self.name}.{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "wb") as f:
                for r in records:
                    f.write(snapshot_frame(r))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.snapshot_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)

    def load(self) -> LoadResult[bytes]:
        """Every readable record (snapshot, then journal); damaged files are repaired."""
        return self.load_decoded(lambda raw: raw)

    def load_decoded(self, decode: Callable[[bytes], T]) -> LoadResult[T]:
        """As :meth:`load`, decoding each record; undecodable ones count as damage.

        ``decode`` raises ``ValueError`` (e.g. :class:`~cluster.errors.DecodeError`)
        for a record it cannot read.
        """
        self._require_fd()
        kept: list[tuple[bytes, T]] = []
        problems: list[Problem] = []
        damaged: list[Path] = []
        for path, parse in (
            (self.snapshot_path, parse_snapshot),
            (self.journal_path, parse_journal),
        ):
            data = _read(path)
            if data is None:
                continue
            records, found = _decode_all(parse(data, str(path)), str(path), decode)
            kept.extend(records)
            if found:
                problems.extend(found)
                damaged.append(path)
        moved: list[str] = []
        if damaged:
            now = self._clock.now()
            for path in damaged:
                aside = self._preserve(path, now)
                if aside is not None:
                    moved.append(str(aside))
                for p in problems:
                    if p.file == str(path):
                        log.error(
                            "state.corrupt",
                            file=p.file,
                            offset=p.offset,
                            reason=p.reason,
                            moved_to=str(aside) if aside is not None else None,
                        )
            # Rewrite at once from what could be read, so the damage is met only once.
            self.compact(raw for raw, _ in kept)
            log.warning(
                "state.repaired",
                state=self.name,
                records=len(kept),
                snapshot=str(self.snapshot_path),
            )
        log.info("state.loaded", state=self.name, records=len(kept), problems=len(problems))
        return LoadResult(tuple(v for _, v in kept), tuple(problems), tuple(moved))

    def _preserve(self, path: Path, now: int) -> Path | None:
        """Keep a damaged file as ``.corrupt-<time>``; None if even that failed."""
        aside = corrupt_name(path, now)
        n = 0
        while aside.exists():
            n += 1
            aside = corrupt_name(path, now + n)
        try:
            if path == self.snapshot_path:
                try:
                    # A hard link leaves the original in place until the repaired
                    # snapshot is renamed over it, so a crash here loses nothing.
                    os.link(path, aside)
                except OSError:
                    shutil.copy2(path, aside)
            else:
                # Never a link for the journal: it is truncated in place, which would
                # empty a link to the same inode.
                shutil.copy2(path, aside)
                with open(aside, "rb") as f:
                    os.fsync(f.fileno())
            _fsync_dir(self.directory)
        except OSError as exc:
            # Availability first: the repair goes ahead even if we cannot keep a copy.
            log.error("state.preserve_failed", file=str(path), error=str(exc))
            return None
        return aside


# ---------------------------------------------------------------------------------------
# trio shell


class BlockingRunner(Protocol):
    """Runs a blocking call off the event loop (the seam tests replace)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


async def run_in_thread(fn: Callable[[], T]) -> T:
    """The default :class:`BlockingRunner`: a disk worker thread (not abandoned on cancel).

    trio's own thread cache (``start_thread_soon``) with the :func:`thread_limits.disk`
    limiter, without the rest of ``trio.to_thread.run_sync``: that renames the OS
    thread before and after every job (two ``prctl`` calls), copies the context and
    checkpoints for the limiter even when a thread is free. Under silence POSTs one
    hand-off cost 100-125 us of CPU through ``to_thread`` and 70-80 us this way
    (a loop of hand-offs each doing write and fdatasync; inline the same work cost 25-33 us).

    Cancellation: honoured only before the job is handed over (and while waiting for
    a thread); once it runs, the caller waits for it and then sees the cancellation.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    limiter = thread_limits.disk()
    borrower = object()
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
    except trio.WouldBlock:
        await limiter.acquire_on_behalf_of(borrower)
    token = trio.lowlevel.current_trio_token()
    task = trio.lowlevel.current_task()

    def deliver(result: Any) -> None:
        # In the worker thread: hand the outcome (an ``outcome`` value, trio's own
        # dependency) to the waiting task on the loop.
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    # The job runs in this task's context, as to_thread's do: log lines written there
    # keep the fields bound to it (a tenant pipeline's ``tenant``). Copying is O(1).
    context = contextvars.copy_context()
    try:
        trio.lowlevel.start_thread_soon(functools.partial(context.run, fn), deliver)
        # The task resumes with the job's value, or its exception raised here.
        done: T = await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
    finally:
        limiter.release_on_behalf_of(borrower)
    return done


async def run_inline(fn: Callable[[], T]) -> T:
    """A :class:`BlockingRunner` that blocks the loop: for virtual-time tests, where a
    worker thread would let ``autojump_clock`` jump while the I/O is still running."""
    await trio.lowlevel.checkpoint()
    return fn()


class JournalFull(OSError):
    """The journal's queue is full (the disk has not accepted writes for a while)."""


@attrs.define(eq=False)
class _Write:
    """One journal write (records appended, fsynced if ``sync``, cut back on failure if
    ``all_or_nothing``) and its outcome; waits for a :class:`SyncRounds` round."""

    journal: RecordJournal
    records: list[bytes]
    sync: bool = True
    all_or_nothing: bool = False
    #: Set when a round took it: from then on it runs whatever happens to its waiter.
    taken: bool = False
    #: Set once the records are written (and synced, if asked): they are in the journal.
    written: bool = False
    error: Exception | None = None
    finished: trio.Event = attrs.Factory(trio.Event)

    def perform(self) -> None:
        """Blocking: do the write in this thread; its ``OSError`` propagates."""
        if self.all_or_nothing:
            self.journal.append_all_or_nothing(self.records)
        else:
            self.journal.append_many(self.records, self.sync)
        self.written = True

    def job(self) -> tuple[int, bytes, int]:
        """The write as a :class:`JournalWriter` job, framed here (on the loop)."""
        data = journal_frames(self.records)
        flags = (JOURNAL_SYNC if self.sync else 0) | (
            JOURNAL_ROLLBACK if self.all_or_nothing else 0
        )
        return self.journal.fileno(), data, flags

    def settle(self, error: int, rollback_error: int) -> None:
        """Take the C writer's outcome: errno values, 0 for success."""
        if rollback_error:
            # As RecordJournal.append_all_or_nothing logs it: the torn frame fails its
            # checksum at load and is skipped.
            exc = OSError(rollback_error, os.strerror(rollback_error))
            log.error("state.rollback_failed", state=self.journal.name, error=str(exc))
        if error:
            # The OSError (subclass) os.write or os.fdatasync would have raised.
            self.error = OSError(error, os.strerror(error))
        else:
            self.written = True


class held:  # named as used: ``async with held(lock)``
    """``async with held(lock)``: ``lock`` held for the block, taken without a scheduler
    round when it is free.

    ``trio.Lock``'s own ``async with`` yields even when the lock is free. A group commit
    takes two locks (the journal's and the rounds'), each free but for a round in
    flight, and then waits for the writer thread anyway: two rounds a silence POST for
    nothing. Cancellation: as ``acquire`` when it waits; none when the lock was free.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: trio.Lock) -> None:
        self._lock = lock

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class SyncRounds:
    """Group commit across journals: every write waiting when a round starts runs in
    that round, in one hand-off, each write followed by its own fsync.

    A second journal's write thus costs one more fdatasync in a thread that is already
    running, not another hand-off and another wait (the hand-off was 11% of the loop's
    time under silence POSTs). Writes run in arrival order; each has its own outcome,
    so a failing file fails only the writes to that file.

    While :meth:`serve` runs, rounds go to the C :class:`JournalWriter` thread, which
    writes and fsyncs without the GIL and signals an eventfd the round's task waits on;
    otherwise (not served, stopped, or the C module not built) to a Python worker thread
    through ``run_blocking``. Both do the same writes with the same outcomes.

    A round starts as soon as a write finds none running, without a scheduler round to
    gather company first: the disk starts at once, and writes that arrive meanwhile wait
    and share the next round. Gathering (a yield before taking the batch, as the two
    ``trio.Lock`` acquisitions on the way here did) held each silence POST's fsync back
    behind the other requests' work of that scheduler batch: silence POSTs at 4
    connections went 2,319 -> 2,367/s with one yield left, 2,413 -> 2,747/s with none
    (medians of 9 alternating runs each).

    Cancellation: a write cancelled before a round took it is withdrawn and never runs;
    once taken it runs to the end and its waiter waits for that (shielded) before the
    cancellation propagates, so a caller never sees ``Cancelled`` for a write that
    happened without knowing it (see ``written`` in :meth:`DurableState._write_commits`).
    """

    def __init__(self, run_blocking: BlockingRunner = run_in_thread) -> None:
        self._run = run_blocking
        self._lock = trio.Lock()
        self._waiting: list[_Write] = []
        self._writer: JournalWriter | None = None
        #: Rounds run so far (hand-offs to the worker thread), for tests and metrics.
        self.rounds = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the C writer thread (when built) until cancelled; then stop and join it.

        Cancellation: the stop waits (shielded) for a round in flight, which its
        waiters wait for anyway; later rounds go to the Python worker thread.
        """
        if JournalWriter is None:  # pragma: no cover - the C build is there in tests
            task_status.started()
            return
        writer = JournalWriter()
        self._writer = writer
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                async with self._lock:
                    # Under the lock no round is in flight: the thread is idle, and
                    # joining it takes microseconds.
                    self._writer = None
            trio.lowlevel.notify_closing(writer.fileno())
            writer.close()

    async def run(self, write: _Write) -> None:
        """Run ``write`` in the next round; raise what it raised."""
        self._waiting.append(write)
        try:
            while not write.taken:
                async with held(self._lock):
                    if not write.taken:
                        await self._round()
        finally:
            if not write.taken:
                self._waiting.remove(write)
            elif not write.finished.is_set():
                with trio.CancelScope(shield=True):
                    await write.finished.wait()
        if write.error is not None:
            raise write.error
        if not write.written:  # pragma: no cover - only a bug in a round gets here
            raise RuntimeError("the journal round ended without running this write")

    async def _round(self) -> None:
        """Run every waiting write in one hand-off; the caller holds the lock."""
        batch, self._waiting = self._waiting, []
        for w in batch:
            w.taken = True
        if self._writer is not None:
            try:
                await self._native_round(self._writer, batch)
            finally:
                self.rounds += 1
                for w in batch:
                    w.finished.set()
            return
        started = False

        def work() -> None:
            nonlocal started
            started = True
            for w in batch:
                try:
                    w.perform()
                except Exception as exc:  # each write's own outcome, for its own waiter
                    w.error = exc

        try:
            await self._run(work)
        except BaseException:
            if not started:
                # Cancelled at the runner's checkpoint: nothing ran, everyone waits again.
                for w in batch:
                    w.taken = False
                self._waiting[:0] = batch
            raise
        finally:
            if started:
                self.rounds += 1
                for w in batch:
                    w.finished.set()

    @staticmethod
    async def _native_round(writer: JournalWriter, batch: list[_Write]) -> None:
        """Hand ``batch`` to the C thread and wait (shielded) for its eventfd."""
        sent: list[_Write] = []
        jobs: list[tuple[int, bytes, int]] = []
        for w in batch:
            try:
                jobs.append(w.job())
            except ValueError as exc:  # its journal is closed: that write fails alone
                w.error = exc
                continue
            sent.append(w)
        if not jobs:
            await trio.lowlevel.checkpoint()
            return
        writer.submit(jobs)
        # Submitted means running: the round cannot be withdrawn, so its end is awaited.
        with trio.CancelScope(shield=True):
            outcomes = writer.collect()
            while outcomes is None:
                await trio.lowlevel.wait_readable(writer.fileno())
                outcomes = writer.collect()
            for w, (error, rollback_error) in zip(sent, outcomes, strict=True):
                w.settle(error, rollback_error)


@attrs.define(eq=False)
class _Commit:
    """Records of one :meth:`DurableState.commit`, and what became of them."""

    records: list[bytes]
    on_durable: Callable[[], object]
    done: bool = False
    error: OSError | None = None

    @property
    def size(self) -> int:
        return sum(len(r) for r in self.records)


class DurableState:
    """A :class:`RecordJournal` for code on the trio event loop.

    Two ways to write:

    * ``await commit(records, on_durable)`` — write and fsync, then apply: for changes
      the caller must acknowledge (silences). ``on_durable`` (which applies the change
      in memory) runs only once the records are on disk, so a failed write leaves the
      change neither live nor gossiped; concurrent commits share one fsync.
    * ``await append(record)`` — write and fsync now.
    * ``append_nowait(record)`` from synchronous code (a state's listener), then either
      ``await flush()`` before acknowledging, or let :meth:`serve`'s flusher write the
      batch (the nflog: at most one fsync per ``flush_interval``).

    All file I/O runs in a worker thread (appends on served :class:`SyncRounds` in the
    C writer's) under one lock, so appends, flushes and compactions never interleave
    and fsync never blocks the event loop.

    Cancellation: a write already handed to the worker thread runs to completion (the
    calling task waits for it); a cancelled caller's pending records stay queued and
    are written by the next flush or covered by the next compaction.
    """

    def __init__(
        self,
        journal: RecordJournal,
        run_blocking: BlockingRunner = run_in_thread,
        rounds: SyncRounds | None = None,
    ) -> None:
        self.journal = journal
        self._run = run_blocking
        # Shared with the instance's other journal, so their writes share hand-offs.
        self._rounds = rounds
        self._lock = trio.Lock()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._commits: list[_Commit] = []
        # Whether records were left out of the queue since it last drained.
        self._overflowing = False
        self._wake = trio.Event()
        # Whether a write made without fsync may still be only in the page cache.
        self._unsynced = False

    @classmethod
    async def open(
        cls,
        directory: str | os.PathLike[str],
        name: str,
        *,
        clock: Clock | None = None,
        run_blocking: BlockingRunner = run_in_thread,
        rounds: SyncRounds | None = None,
    ) -> DurableState:
        """Open (creating as needed) the snapshot and journal ``name`` in ``directory``;
        with ``rounds``, its writes share worker-thread rounds with other journals."""
        journal = await run_blocking(lambda: RecordJournal.open(directory, name, clock=clock))
        return cls(journal, run_blocking, rounds)

    @property
    def pending(self) -> int:
        """Records queued by :meth:`append_nowait` and not yet written."""
        return len(self._pending)

    async def load(self) -> LoadResult[bytes]:
        """Every readable record, snapshot first; see :meth:`RecordJournal.load`."""
        async with self._lock:
            return await self._run(self.journal.load)

    async def load_decoded(self, decode: Callable[[bytes], T]) -> LoadResult[T]:
        """As :meth:`load`, decoding in the worker thread; see :meth:`RecordJournal.load_decoded`."""
        async with self._lock:
            return await self._run(lambda: self.journal.load_decoded(decode))

    def append_nowait(self, record: bytes) -> None:
        """Queue a record for the next flush (safe from synchronous code).

        Past :data:`MAX_PENDING_BYTES` (the disk has been failing) the record is not
        queued: the state holds it in memory and the next compaction writes it.
        """
        if self._queued_bytes() + len(record) > MAX_PENDING_BYTES:
            if not self._overflowing:
                # Logged once per episode: a full disk must not also flood the log.
                log.error("state.queue_full", state=self.journal.name, limit=MAX_PENDING_BYTES)
                self._overflowing = True
            return
        self._pending.append(record)
        self._pending_bytes += len(record)
        self._wake.set()

    def _queued_bytes(self) -> int:
        return self._pending_bytes + sum(c.size for c in self._commits)

    def _take_pending(self) -> list[bytes]:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        self._overflowing = False
        return batch

    def _requeue(self, batch: list[bytes]) -> None:
        self._pending[:0] = batch
        self._pending_bytes += sum(len(r) for r in batch)

    async def commit(self, records: list[bytes], on_durable: Callable[[], object]) -> None:
        """Write and fsync ``records`` (after anything queued), then call ``on_durable``.

        Group commit: whoever holds the lock writes every commit waiting so far in one
        write and one fsync, and runs each one's ``on_durable`` right after it.

        Error handling: :class:`JournalFull` at once when the queue is full; an
        ``OSError`` from the write after cutting the journal back, so none of the
        batch's commits is on disk and no ``on_durable`` ran. Cancellation: a commit
        cancelled before its batch is written is withdrawn; once written, its
        ``on_durable`` runs whether or not the caller is still waiting.
        """
        size = sum(len(r) for r in records)
        if self._queued_bytes() + size > MAX_PENDING_BYTES:
            raise JournalFull(f"journal queue full ({MAX_PENDING_BYTES} bytes unwritten)")
        ticket = _Commit(records, on_durable)
        self._commits.append(ticket)
        try:
            while not ticket.done:
                async with held(self._lock):
                    if not ticket.done:
                        await self._write_commits()
        finally:
            if not ticket.done and ticket in self._commits:
                self._commits.remove(ticket)
        if ticket.error is not None:
            raise ticket.error

    async def _write(self, write: _Write) -> None:
        """Run a journal write: in a shared round if there is one, else on its own."""
        if self._rounds is None:
            await self._run(write.perform)
        else:
            await self._rounds.run(write)

    async def _write_commits(self) -> None:
        """Write every waiting commit and the queue; the caller holds the lock."""
        commits, self._commits = self._commits, []
        batch = self._take_pending()
        records = batch + [r for c in commits for r in c.records]
        write = _Write(self.journal, records, all_or_nothing=True)
        try:
            await self._write(write)
        except OSError as exc:
            self._requeue(batch)
            for c in commits:
                c.done, c.error = True, exc
            raise
        except BaseException:
            if write.written:
                # Cancelled while a shared round wrote it: it is on disk, so it applies.
                self._finish(commits)
                raise
            # Cancelled at the runner's checkpoint, before anything was written: every
            # commit waits again (its owner withdraws it if that owner is the one cancelled).
            self._requeue(batch)
            self._commits[:0] = commits
            raise
        self._finish(commits)

    def _finish(self, commits: list[_Commit]) -> None:
        self._unsynced = False
        for c in commits:
            c.done = True
            c.on_durable()

    def append_delimited_nowait(self, data: bytes) -> None:
        """Queue each record of a varint-delimited stream (a state's gossip broadcast).

        Error handling: :class:`~cluster.errors.DecodeError` if ``data`` is not a
        delimited stream; nothing is queued then.
        """
        records = list(iter_delimited(data))
        for record in records:
            self.append_nowait(record)

    async def flush(self, sync: bool = True) -> None:
        """Write (and with ``sync`` fsync) every queued record; when it returns, every
        record queued before the call is durable (written by this or an earlier flush,
        or contained in a compaction).

        Error handling: on ``OSError`` the batch is queued again (a partly written
        frame is skipped at load) and the error propagates.
        """
        async with held(self._lock):
            if self._commits and sync:
                await self._write_commits()
                return
            batch = self._take_pending()
            if not batch and not (sync and self._unsynced):
                # Nothing queued: an earlier flush (which we waited for) wrote it all.
                return
            write = _Write(self.journal, batch, sync)
            try:
                await self._write(write)
            except BaseException:
                if not write.written:
                    # Failed (a partly written frame is skipped at load) or cancelled
                    # before the write: the next flush writes the batch.
                    self._requeue(batch)
                raise
            self._unsynced = not sync

    async def append(self, record: bytes, sync: bool = True) -> None:
        """Append ``record`` (after anything queued) and return once it is written."""
        self.append_nowait(record)
        await self.flush(sync=sync)

    async def compact(self, snapshot: Callable[[], Iterable[bytes]]) -> int:
        """Write ``snapshot()`` as the new snapshot and empty the journal; returns the count.

        ``snapshot`` is called under the lock, on the event loop, so it sees every change
        whose record is queued or written: those records are dropped, the snapshot holds
        them. It may run the state's GC first, as Alertmanager's maintenance does. The
        iterable it returns is consumed in the worker thread, so a lazy one (over values
        that cannot change) keeps the encoding off the event loop.
        """
        async with self._lock:
            records = snapshot()
            covered = len(self._pending)

            def write() -> int:
                listed = list(records)
                self.journal.compact(listed)
                return len(listed)

            count = await self._run(write)
            # Records queued meanwhile (listeners run during the thread) are not covered.
            self._pending_bytes -= sum(len(r) for r in self._pending[:covered])
            del self._pending[:covered]
            self._unsynced = False
            return count

    async def aclose(self) -> None:
        """Flush what is queued (with fsync) and close the journal."""
        if self.journal.closed:
            return
        await self.flush()
        async with self._lock:
            self.journal.close()

    async def _run_flusher(self, interval: float) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.flush()
            except OSError as exc:
                # A full or failing disk must not take notifications down with it; the
                # records stay queued for the next try and the next compaction.
                log.error("state.write_failed", state=self.journal.name, error=str(exc))
                self._wake.set()
            # Batching: at most one write+fsync per interval, however busy the state is.
            await trio.sleep(interval)

    async def _run_maintenance(
        self,
        interval: float,
        snapshot: Callable[[], Iterable[bytes]],
        on_error: Callable[[OSError], None] | None,
    ) -> None:
        while True:
            await trio.sleep(interval)
            try:
                n = await self.compact(snapshot)
            except OSError as exc:
                # The journal still has every change; the next maintenance tries again.
                log.error("state.snapshot_failed", state=self.journal.name, error=str(exc))
                if on_error is not None:
                    on_error(exc)
                continue
            log.debug("state.snapshot", state=self.journal.name, records=n)

    async def serve(
        self,
        *,
        snapshot: Callable[[], Iterable[bytes]],
        maintenance_interval: float,
        flush_interval: float | None = None,
        on_maintenance_error: Callable[[OSError], None] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run maintenance (compaction every ``maintenance_interval`` seconds) and, if
        ``flush_interval`` is given, the batching flusher, until cancelled; then compact
        one last time, as Alertmanager snapshots at shutdown. ``on_maintenance_error``
        is told about each snapshot that could not be written (a metrics hook).

        Cancellation: the final compaction runs shielded, bounded by
        :data:`SHUTDOWN_TIMEOUT`. The journal stays open, so a change acknowledged
        after this returns is still journaled and replayed at the next start.
        """
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    self._run_maintenance, maintenance_interval, snapshot, on_maintenance_error
                )
                if flush_interval is not None:
                    nursery.start_soon(self._run_flusher, flush_interval)
                task_status.started()
        finally:
            with trio.move_on_after(SHUTDOWN_TIMEOUT, shield=True) as scope:
                try:
                    n = await self.compact(snapshot)
                except OSError as exc:
                    # The journal still holds every change: nothing is lost, start-up
                    # just replays more.
                    log.error("state.snapshot_failed", state=self.journal.name, error=str(exc))
                    if on_maintenance_error is not None:
                        on_maintenance_error(exc)
                else:
                    log.info("state.snapshot", state=self.journal.name, records=n, final=True)
            if scope.cancelled_caught:
                log.error("state.snapshot_timeout", state=self.journal.name)
