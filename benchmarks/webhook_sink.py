"""A webhook receiver in its own process, for benchmarks whose client runs beside it.

In one process the receiver and the benchmark's HTTP client share one GIL: every
webhook the daemon sends during an ingest run takes interpreter time from the client
posting the alerts, so the measured ingest rate fell with how early the daemon
notified (Alertmanager's rate rose 14% when 1,000 silences delayed its notifications
past the ingest window). A real receiver is another service; this one is another
process, with the same minimal HTTP/1.1 handling as :class:`benchmarks.silences.Sink`.

The parent talks to it over pipes, one line each way: ``reset N G`` (answered ``ok``)
starts counting distinct group keys until N have arrived, then the child writes
``done <perf_counter> <count> G`` (``time.perf_counter`` is the system's monotonic clock
on Linux, so the parent compares it with its own); ``count`` is answered
``count <distinct group keys so far>``.

Run by :class:`ProcessSink`; ``python -m benchmarks.webhook_sink`` prints ``port N`` first.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_OK_CLOSE = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
# Both daemons write the v4 payload's keys in Go's order: groupKey, then truncatedAlerts.
_GROUP_KEY = re.compile(rb'"groupKey":("(?:[^"\\]|\\.)*")')


class SinkConnection(asyncio.Protocol):
    """Minimal HTTP/1.1 server side: read head and Content-Length body, hand the body to
    ``record`` (called first, so a timestamp taken there is the request's arrival), then
    answer 200. With ``close_after`` the answer is HTTP/1.0's and the connection closes,
    so every request comes on a new one (:mod:`benchmarks.notify_latency`)."""

    def __init__(self, record: Callable[[bytes], None], *, close_after: bool = False) -> None:
        self.record = record
        self.close_after = close_after
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            m = _CONTENT_LENGTH.search(buf, 0, head_end)
            size = int(m.group(1)) if m else 0
            end = head_end + 4 + size
            if len(buf) < end:
                return
            body = bytes(buf[head_end + 4 : end])
            del buf[:end]
            self.record(body)
            assert self.transport is not None
            if self.close_after:
                self.transport.write(_OK_CLOSE)
                self.transport.close()
                return
            self.transport.write(_OK)


def group_key(body: bytes) -> bytes | None:
    m = _GROUP_KEY.search(body)
    return m.group(1) if m is not None else None


class _Counter:
    """The child's state: distinct group keys since the last reset."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self.expected = 0
        self.reported = True
        self.generation = ""

    def record(self, body: bytes) -> None:
        now = time.perf_counter()
        key = group_key(body)
        if key is not None:
            self.keys.add(key)
        if not self.reported and len(self.keys) >= self.expected:
            self.reported = True
            _say(f"done {now!r} {len(self.keys)} {self.generation}")

    def command(self, line: str) -> None:
        word, *args = line.split()
        if word == "reset":
            self.keys = set()
            self.expected = int(args[0])
            self.generation = args[1]
            self.reported = False
            _say("ok")
        elif word == "count":
            _say(f"count {len(self.keys)}")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    loop = asyncio.new_event_loop()
    counter = _Counter()
    server = loop.run_until_complete(
        loop.create_server(lambda: SinkConnection(counter.record), "127.0.0.1", 0)
    )
    _say(f"port {server.sockets[0].getsockname()[1]}")

    def read_commands() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(counter.command, line)
        loop.call_soon_threadsafe(loop.stop)  # the parent closed the pipe: done

    threading.Thread(target=read_commands, daemon=True).start()
    loop.run_forever()


def reap(proc: subprocess.Popen[str], reader: threading.Thread, stdout: IO[str]) -> None:
    """Wait for a sink process told to stop (killed after 5 s), then its reader thread,
    and close its output pipe."""
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    reader.join(5)
    stdout.close()


class ProcessSink:
    """The parent's handle: ``url``, ``reset``, ``done`` (an event), ``done_at``,
    ``count()`` and ``close()``, as :class:`benchmarks.silences.Sink` has them."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.webhook_sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin
        self._stdout = self.proc.stdout
        first = self._stdout.readline().split()
        if first[:1] != ["port"]:
            self.proc.kill()
            raise RuntimeError(f"webhook sink did not start: {first}")
        self.url = f"http://127.0.0.1:{first[1]}/"
        self.done = threading.Event()
        self.done_at = 0.0
        self._generation = 0
        self._answers: list[str] = []
        self._answered = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stdout:
            if line.startswith("done "):
                _, at, _count, generation = line.split()
                # A late report of an earlier reset must not end the current one.
                if int(generation) == self._generation:
                    self.done_at = float(at)
                    self.done.set()
            else:
                with self._answered:
                    self._answers.append(line.strip())
                    self._answered.notify_all()

    def _ask(self, line: str) -> str:
        with self._answered:
            self._answers.clear()
            self._stdin.write(line + "\n")
            self._stdin.flush()
            if not self._answered.wait_for(lambda: bool(self._answers), timeout=10):
                raise RuntimeError(f"webhook sink did not answer {line!r}")
            return self._answers.pop(0)

    def reset(self, expected: int) -> None:
        self._generation += 1
        self.done = threading.Event()
        self._ask(f"reset {expected} {self._generation}")

    def count(self) -> int:
        return int(self._ask("count").split()[1])

    def close(self) -> None:
        self._stdin.close()  # the sink's end of file: it stops
        reap(self.proc, self._reader, self._stdout)


if __name__ == "__main__":
    main()
