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

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def start(kind: str, config_text: str, extra_args: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """Run ``kind`` (``tocsin`` or ``alertmanager``) until the block ends."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        cfg = Path(tmp, "config.yml")
        cfg.write_text(config_text)
        common = [
            f"--config.file={cfg}",
            f"--storage.path={tmp}/data",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
            *extra_args,
        ]
        if kind == "alertmanager":
            argv = [ALERTMANAGER, *common]
        else:
            argv = [sys.executable, "-m", "daemon", *common]
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not become ready")
                time.sleep(0.05)
            yield Daemon(kind, proc, url)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
