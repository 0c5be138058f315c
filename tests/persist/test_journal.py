"""The blocking snapshot + journal store: framing, loading, damage and compaction."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from cluster.protowire import iter_delimited
from daemon import persist
from daemon.clock import NS_PER_SECOND, FixedClock
from daemon.persist import (
    MAX_RECORD,
    RecordJournal,
    corrupt_name,
    journal_frame,
    parse_journal,
    parse_snapshot,
    snapshot_frame,
)

T0 = 1_763_937_000 * NS_PER_SECOND
RECORDS = [b"alpha", b"", b"x" * 300, bytes(range(256))]


def open_journal(tmp_path: Path, name: str = "silences") -> RecordJournal:
    return RecordJournal.open(tmp_path, name, clock=FixedClock(T0))


def test_journal_frame_is_snapshot_frame_plus_crc32() -> None:
    """A journal frame is the delimited record followed by the little-endian CRC-32 of it."""
    framed = snapshot_frame(b"abc")
    assert framed == b"\x03abc"
    assert journal_frame(b"abc") == framed + zlib.crc32(framed).to_bytes(4, "little")


def test_parse_snapshot_round_trip_with_offsets() -> None:
    """Delimited records parse back with the offset of each length prefix."""
    data = b"".join(snapshot_frame(r) for r in RECORDS)
    parsed = parse_snapshot(data, "f")
    assert [r for _, r in parsed.records] == RECORDS
    assert [o for o, _ in parsed.records] == [0, 6, 7, 7 + 2 + 300]
    assert parsed.problems == []


def test_parse_snapshot_stops_at_length_past_end() -> None:
    """A truncated snapshot keeps every record before the damaged one and names its offset."""
    data = snapshot_frame(b"one") + snapshot_frame(b"two")[:-1]
    parsed = parse_snapshot(data, "f")
    assert [r for _, r in parsed.records] == [b"one"]
    [problem] = parsed.problems
    assert (problem.file, problem.offset) == ("f", 4)
    assert "runs past the end" in problem.reason


def test_parse_snapshot_rejects_huge_length() -> None:
    """A damaged length prefix above the record limit is reported, not allocated."""
    data = snapshot_frame(b"one") + b"\xff\xff\xff\xff\x7f"
    parsed = parse_snapshot(data)
    assert [r for _, r in parsed.records] == [b"one"]
    assert str(MAX_RECORD) in parsed.problems[0].reason


def test_parse_journal_torn_last_record() -> None:
    """A journal whose last frame was cut short keeps the earlier records and says torn."""
    data = journal_frame(b"one") + journal_frame(b"two") + journal_frame(b"three")[:-2]
    parsed = parse_journal(data, "j")
    assert [r for _, r in parsed.records] == [b"one", b"two"]
    [problem] = parsed.problems
    assert problem.offset == 2 * len(journal_frame(b"one"))
    assert problem.reason.startswith("truncated record (torn write)")


def test_parse_journal_skips_garbage_in_the_middle() -> None:
    """Garbage between frames is skipped by CRC resynchronisation; later records survive."""
    garbage = b"\x05\x00\x00junk!\x99\x13"
    data = journal_frame(b"one") + garbage + journal_frame(b"two") + journal_frame(b"three")
    parsed = parse_journal(data, "j")
    assert [r for _, r in parsed.records] == [b"one", b"two", b"three"]
    [problem] = parsed.problems
    assert problem.offset == len(journal_frame(b"one"))
    assert f"skipped {len(garbage)} bytes" in problem.reason


def test_parse_journal_flipped_byte_drops_only_that_record() -> None:
    """A bit flip inside one record fails its CRC; the records around it are kept."""
    frames = [journal_frame(r) for r in (b"one", b"two-two", b"three")]
    damaged = bytearray(frames[1])
    damaged[3] ^= 0x40
    data = frames[0] + bytes(damaged) + frames[2]
    parsed = parse_journal(data, "j")
    assert [r for _, r in parsed.records] == [b"one", b"three"]
    assert parsed.problems[0].reason.startswith("checksum mismatch")
    assert parsed.problems[0].offset == len(frames[0])


def test_append_load_compact_cycle(tmp_path: Path) -> None:
    """Appends are loaded after the snapshot; compaction moves them into the snapshot."""
    j = open_journal(tmp_path)
    assert j.load().records == ()
    j.append(b"a")
    j.append_many([b"b", b"c"], sync=False)
    assert j.load().records == (b"a", b"b", b"c")
    j.compact([b"s1", b"s2"])
    assert (tmp_path / "silences.wal").stat().st_size == 0
    assert list(iter_delimited((tmp_path / "silences").read_bytes())) == [b"s1", b"s2"]
    j.append(b"d")
    j.close()
    again = open_journal(tmp_path)
    assert again.load().records == (b"s1", b"s2", b"d")
    again.close()


def test_snapshot_is_alertmanager_format(tmp_path: Path) -> None:
    """The snapshot is bare varint-delimited records: no header, no checksum."""
    j = open_journal(tmp_path, "nflog")
    j.compact([b"\x0a\x01x", b"yz"])
    assert (tmp_path / "nflog").read_bytes() == b"\x03\x0a\x01x\x02yz"
    j.close()


def test_load_decoded_reports_undecodable_records(tmp_path: Path) -> None:
    """A record the state cannot decode is dropped, reported with its offset, and repaired away."""
    (tmp_path / "s").write_bytes(snapshot_frame(b"1") + snapshot_frame(b"x") + snapshot_frame(b"3"))
    j = open_journal(tmp_path, "s")
    with structlog.testing.capture_logs() as logs:
        got = j.load_decoded(int)
    assert got.records == (1, 3)
    assert [(p.offset, p.reason.split(":")[0]) for p in got.problems] == [(2, "undecodable record")]
    corrupt = [e for e in logs if e["event"] == "state.corrupt"]
    assert corrupt[0]["file"] == str(tmp_path / "s") and corrupt[0]["offset"] == 2
    assert list(iter_delimited((tmp_path / "s").read_bytes())) == [b"1", b"3"]
    j.close()


def test_corrupt_snapshot_moved_aside_rest_loaded(tmp_path: Path) -> None:
    """A truncated snapshot is preserved as .corrupt-<time>, logged, and replaced by a clean one."""
    bad = snapshot_frame(b"keep") + snapshot_frame(b"lost-record")[:-3]
    (tmp_path / "silences").write_bytes(bad)
    j = open_journal(tmp_path)
    j.append(b"journaled")
    with structlog.testing.capture_logs() as logs:
        got = j.load()
    assert got.records == (b"keep", b"journaled")
    aside = corrupt_name(tmp_path / "silences", T0)
    assert aside.name == "silences.corrupt-20251123T223000.000000000Z"
    assert got.moved_aside == (str(aside),)
    assert aside.read_bytes() == bad
    [event] = [e for e in logs if e["event"] == "state.corrupt"]
    assert event["file"] == str(tmp_path / "silences")
    assert event["offset"] == len(snapshot_frame(b"keep"))
    assert event["moved_to"] == str(aside)
    assert event["log_level"] == "error"
    # The repaired snapshot holds everything readable and the journal is empty, so the
    # next start sees no damage at all.
    assert (tmp_path / "silences.wal").stat().st_size == 0
    j.close()
    with structlog.testing.capture_logs() as logs:
        assert open_journal(tmp_path).load().records == (b"keep", b"journaled")
    assert not [e for e in logs if e["event"] == "state.corrupt"]


def test_torn_journal_moved_aside_and_truncated(tmp_path: Path) -> None:
    """A torn journal tail is reported, the journal preserved aside, and later appends load."""
    j = open_journal(tmp_path)
    j.append(b"one")
    j.close()
    with open(tmp_path / "silences.wal", "ab") as f:
        f.write(journal_frame(b"two")[:-1])
    damaged = (tmp_path / "silences.wal").read_bytes()
    j = open_journal(tmp_path)
    got = j.load()
    assert got.records == (b"one",)
    assert got.problems[0].reason.startswith("truncated record")
    aside = Path(got.moved_aside[0])
    assert aside.name.startswith("silences.wal.corrupt-")
    # The preserved copy survives the journal's truncation.
    assert aside.read_bytes() == damaged
    j.append(b"three")
    j.close()
    assert open_journal(tmp_path).load().records == (b"one", b"three")


def test_two_damaged_loads_keep_distinct_aside_files(tmp_path: Path) -> None:
    """Damage found twice at the same instant never overwrites the earlier preserved copy."""
    for payload in (b"\x05ab", b"\x07cd"):
        (tmp_path / "silences").write_bytes(payload)
        j = open_journal(tmp_path)
        j.load()
        j.close()
    kept = sorted(p.read_bytes() for p in tmp_path.glob("silences.corrupt-*"))
    assert kept == [b"\x05ab", b"\x07cd"]


def test_open_removes_stale_temp_files_only(tmp_path: Path) -> None:
    """A temp file left by a crashed compaction is removed; other files are untouched."""
    (tmp_path / "silences.0123abcd.tmp").write_bytes(b"partial")
    (tmp_path / "nflog.0123abcd.tmp").write_bytes(b"other state")
    (tmp_path / "silences").write_bytes(snapshot_frame(b"old"))
    j = open_journal(tmp_path)
    assert not (tmp_path / "silences.0123abcd.tmp").exists()
    assert (tmp_path / "nflog.0123abcd.tmp").exists()
    assert j.load().records == (b"old",)
    j.close()


def test_failed_snapshot_write_leaves_old_snapshot(tmp_path: Path) -> None:
    """If writing a snapshot fails midway, the old snapshot stays whole and no temp is left."""
    j = open_journal(tmp_path)
    j.compact([b"old"])
    j.append(b"journaled")

    def exploding() -> Iterator[bytes]:
        yield b"new-1"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        j.compact(exploding())
    assert (tmp_path / "silences").read_bytes() == snapshot_frame(b"old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silences", "silences.wal"]
    assert j.load().records == (b"old", b"journaled")
    j.close()


def test_snapshot_replacement_is_atomic(tmp_path: Path) -> None:
    """Readers racing a compaction only ever see a whole old or whole new snapshot."""
    import threading

    j = open_journal(tmp_path)
    old = [b"o" * 100] * 50
    new = [b"n" * 100] * 80
    j.compact(old)
    stop = threading.Event()
    seen: set[int] = set()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            data = (tmp_path / "silences").read_bytes()
            parsed = parse_snapshot(data)
            if parsed.problems:
                errors.append(parsed.problems[0].reason)
            seen.add(len(parsed.records))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(40):
            j.compact(new if i % 2 == 0 else old)
    finally:
        stop.set()
        t.join()
    j.close()
    assert errors == []
    assert seen <= {50, 80}


def test_closed_journal_refuses_appends(tmp_path: Path) -> None:
    """Appending to a closed journal is a programming error, not a silent no-op."""
    j = open_journal(tmp_path)
    j.close()
    j.close()
    with pytest.raises(ValueError, match="closed"):
        j.append(b"x")


def test_new_journal_file_mode_is_private(tmp_path: Path) -> None:
    """The journal is created readable by its owner only (silences name who created them)."""
    open_journal(tmp_path).close()
    assert os.stat(tmp_path / "silences.wal").st_mode & 0o777 == 0o600


def test_parse_journal_skips_zero_filled_block() -> None:
    """A zero-filled block (left by a crash) between frames is skipped; later records survive."""
    data = journal_frame(b"one") + bytes(4096) + journal_frame(b"two")
    parsed = parse_journal(data, "j")
    assert [r for _, r in parsed.records] == [b"one", b"two"]
    assert "skipped 4096 bytes" in parsed.problems[0].reason


def test_resync_looks_only_within_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage longer than the resync window drops the rest of the journal, and says so."""
    monkeypatch.setattr(persist, "RESYNC_WINDOW", 64)
    data = journal_frame(b"one") + b"\x01" * 100 + journal_frame(b"two")
    parsed = parse_journal(data, "j")
    assert [r for _, r in parsed.records] == [b"one"]
    assert parsed.problems[0].reason.endswith(
        f"{len(data) - len(journal_frame(b'one'))} bytes to the end dropped"
    )
