"""Start tocsin or Alertmanager 0.25 on loopback for side-by-side measurements.

Both get the same config file, their own temporary storage, and a free loopback port.
Processes are stopped by PID when the context exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, name: str, proc: subprocess.Popen[bytes], url: str) -> None:
        self.name = name
        self.proc = proc
        self.url = url

    def pids(self) -> list[int]:
        """The daemon and every process it runs (tocsin's sender process), so that
        CPU and memory figures count all of the daemon's work."""
        found = [self.proc.pid]
        for pid in found:  # grows while walked: children, then theirs
            try:
                tasks = list(Path(f"/proc/{pid}/task").iterdir())
            except FileNotFoundError:
                continue
            for task in tasks:
                try:
                    found.extend(int(c) for c in (task / "children").read_text().split())
                except (FileNotFoundError, ProcessLookupError):
                    continue
        return found

    def _proc_texts(self, name: str) -> Iterator[str]:
        """``/proc/<pid>/<name>`` of each of :meth:`pids`, skipping any that just ended."""
        for pid in self.pids():
            try:
                yield Path(f"/proc/{pid}/{name}").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue

    def cpu_seconds(self) -> float:
        """CPU time of every thread of the daemon's processes so far, in ns resolution.

        ``/proc/<pid>/stat`` counts clock ticks (10 ms): an idle window holds only a
        handful. The scheduler's own run time (first field of ``schedstat``, summed
        over the threads) is exact.
        """
        total = 0
        for pid in self.pids():
            try:
                tasks = list(Path(f"/proc/{pid}/task").iterdir())
            except FileNotFoundError:
                continue  # a child that just ended
            for task in tasks:
                try:
                    total += int((task / "schedstat").read_text().split()[0])
                except (FileNotFoundError, ProcessLookupError):
                    continue  # a thread that just ended
        return total / 1e9

    def cpu_seconds_ticks(self) -> float:
        """User+system CPU time in clock ticks (10 ms), exited threads included.

        A cross-check for :meth:`cpu_seconds`, which misses threads that end inside the
        window (trio's idle worker threads do).
        """
        ticks = 0
        for stat in self._proc_texts("stat"):
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / TICKS

    def rss_bytes(self) -> int:
        """Resident memory of the daemon's processes together."""
        return sum(
            int(line.split()[1]) * 1024
            for status in self._proc_texts("status")
            for line in status.splitlines()
            if line.startswith("VmRSS:")
        )


def _argv(kind: str, tmp: str, port: int, cluster_args: tuple[str, ...]) -> list[str]:
    common = [
        f"--config.file={tmp}/config.yml",
        f"--storage.path={tmp}/data",
        f"--web.listen-address=127.0.0.1:{port}",
        *cluster_args,
        "--log.level=warn",
    ]
    if kind == "alertmanager":
        return [ALERTMANAGER, *common]
    return [sys.executable, "-m", "daemon", *common]


def _spawn(
    kind: str,
    tmp: str,
    config_text: str,
    cluster_args: tuple[str, ...],
    extra_args: tuple[str, ...],
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    Path(tmp, "config.yml").write_text(config_text)
    # BENCH_DAEMON_LOG=<file>: keep the daemons' logs (warnings such as loop.slow_step).
    log_path = os.environ.get("BENCH_DAEMON_LOG")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [*_argv(kind, tmp, port, cluster_args), *extra_args],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    if log_path:
        out.close()  # type: ignore[union-attr]
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(kind: str, proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not become ready")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def start_module(name: str, module: str, *args: str) -> Iterator[Daemon]:
    """Run ``python -m module *args`` (a benchmark's own server, which answers
    ``GET /-/ready``), with ``{port}`` in ``args`` a free port, until the block ends."""
    port = free_port()
    argv = [arg.format(port=port) for arg in args]
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(name, proc, url)
        yield Daemon(name, proc, url)
    finally:
        _stop(proc)


@contextlib.contextmanager
def start(kind: str, config_text: str, extra_args: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """Run ``kind`` (``tocsin`` or ``alertmanager``) until the block ends."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        proc, url = _spawn(kind, tmp, config_text, ("--cluster.listen-address=",), extra_args)
        try:
            _wait_ready(kind, proc, url)
            yield Daemon(kind, proc, url)
        finally:
            _stop(proc)


@contextlib.contextmanager
def start_cluster(
    kind: str, config_text: str, size: int = 3, extra_args: tuple[str, ...] = ()
) -> Iterator[list[Daemon]]:
    """Run ``size`` clustered nodes of ``kind`` on loopback, each listing the others as
    peers, each with its own storage and web port; all started before any is awaited,
    and every one stopped by PID when the block ends."""
    ports = [free_port() for _ in range(size)]
    with contextlib.ExitStack() as stack:
        spawned: list[tuple[subprocess.Popen[bytes], str]] = []
        for i, port in enumerate(ports):
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{kind}{i}-"))
            cluster_args = (
                f"--cluster.listen-address=127.0.0.1:{port}",
                *(f"--cluster.peer=127.0.0.1:{p}" for p in ports if p != port),
            )
            proc, url = _spawn(kind, tmp, config_text, cluster_args, extra_args)
            # registered at once, so a failed start still stops what already runs
            stack.callback(_stop, proc)
            spawned.append((proc, url))
        for proc, url in spawned:
            _wait_ready(kind, proc, url)
        yield [Daemon(f"{kind}{i}", proc, url) for i, (proc, url) in enumerate(spawned)]
