"""Run a command with its stderr on a pseudo-terminal and keep what the terminal showed."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_on_tty(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdin: str = ""
) -> tuple[int, str, bytes]:
    """Run ``argv`` to the end with ``stdin`` fed, stdout captured and stderr on a pty;
    return its status, its stdout and the bytes the terminal received.

    The pty and stdout are read while the command runs: a pty buffer holds a few kB,
    and a command that fills it would block for ever on its next write. ``stdin`` is
    written whole first, which suits tocsinctl: it reads all its input before it writes.
    """
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=terminal,
        cwd=cwd,
        env=dict(env),
    )
    os.close(terminal)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
        deadline = time.monotonic() + 120
        received: dict[int, list[bytes]] = {controller: [], proc.stdout.fileno(): []}
        pending = list(received)
        while pending:
            left = deadline - time.monotonic()
            assert left > 0, f"{argv} did not finish: {b''.join(received[controller])!r}"
            ready, _, _ = select.select(pending, [], [], left)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the pty's last writer has gone
                    data = b""
                if data:
                    received[fd].append(data)
                else:
                    pending.remove(fd)
        status = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        stdout = b"".join(received[proc.stdout.fileno()]).decode()
        return status, stdout, b"".join(received[controller])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        os.close(controller)
