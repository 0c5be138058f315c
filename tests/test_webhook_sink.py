"""The benchmarks' out-of-process webhook sink counts group keys and reports the time."""

from __future__ import annotations

import time

import httpx

from benchmarks.webhook_sink import ProcessSink


def _post(url: str, key: str) -> None:
    body = f'{{"receiver":"r","groupKey":"{key}","truncatedAlerts":0}}\n'
    httpx.post(url, content=body, timeout=5).raise_for_status()


def test_done_when_every_expected_group_arrived_and_only_then() -> None:
    sink = ProcessSink()
    try:
        sink.reset(2)
        before = time.perf_counter()
        _post(sink.url, "{}:{a}")
        _post(sink.url, "{}:{a}")
        assert not sink.done.wait(0.3)
        assert sink.count() == 1
        _post(sink.url, "{}:{b}")
        assert sink.done.wait(5)
        # The child's clock is this process's monotonic clock.
        assert before < sink.done_at < time.perf_counter()
        # A new reset starts over; nothing left over from the last one ends it.
        sink.reset(1)
        assert sink.count() == 0
        assert not sink.done.is_set()
        _post(sink.url, "{}:{c}")
        assert sink.done.wait(5)
    finally:
        sink.close()
    assert sink.proc.returncode == 0
