"""Shell completion in real interactive shells: bash and zsh on a pty, TAB pressed.

Each test starts the shell on a pseudo-terminal, loads ``tocsinctl completion <shell>``
the way the README says, types a partial command line and a TAB, then Enter. A shell
function named ``tocsinctl`` prints the words it was called with, so the line the
completion produced comes back as plain text to compare.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

#: What the ``tocsinctl`` stand-in prints: ``GOT<words>``.
_GOT = re.compile(rb"GOT<([^>]*)>")

#: The rc file each shell reads: load the completion, define the stand-in, say READY.
_RC = {
    "bash": """\
PS1='$ '
source <({python} -m daemon.ctl completion bash)
tocsinctl() {{ printf 'GOT<%s>\\n' "$*"; }}
echo READY
""",
    "zsh": """\
PS1='%% '
autoload -U compinit && compinit -u -D
source <({python} -m daemon.ctl completion zsh)
tocsinctl() {{ print -r -- "GOT<$*>"; }}
print READY
""",
}


class Shell:
    """An interactive shell on a pty, to type into and read from."""

    def __init__(self, shell: str, home: Path) -> None:
        rc = home / f"{shell}rc"
        rc.write_text(_RC[shell].format(python=sys.executable))
        argv = (
            ["bash", "--noprofile", "--rcfile", str(rc), "-i"]
            if shell == "bash"
            else ["zsh", "-f", "-i"]
        )
        env = {
            "HOME": str(home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TERM": "xterm",
            "PYTHONPATH": str(ROOT),
        }
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the shell, or die without running pytest on
            try:
                os.chdir(ROOT)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.seen = b""
        if shell == "zsh":
            self.type(f"source {rc}\n")
        self.read_until(re.compile(rb"READY\r?\n"))

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def read_until(self, pattern: re.Pattern[bytes], seconds: float = 60) -> re.Match[bytes]:
        """Read until ``pattern`` appears in what arrived since the last match."""
        deadline = time.monotonic() + seconds
        while True:
            found = pattern.search(self.seen)
            if found:
                self.seen = self.seen[found.end() :]
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern.pattern!r} in {self.seen[-2000:]!r}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:  # the shell is gone
                    raise AssertionError(f"shell exited: {self.seen[-2000:]!r}") from None

    def complete(self, partial: str) -> str:
        """The command line after TAB completes ``partial``, as the stand-in received it."""
        self.type(f"tocsinctl {partial}\t\n")
        return self.read_until(_GOT).group(1).decode()

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def _shell(name: str, home: Path) -> Iterator[Shell]:
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    shell = Shell(name, home)
    try:
        yield shell
    finally:
        shell.close()


@pytest.fixture(params=["bash", "zsh"])
def shell(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shell]:
    yield from _shell(request.param, tmp_path)


def test_tab_completes_a_command(shell: Shell) -> None:
    """`tocsinctl sil<TAB>` becomes `tocsinctl silence`, and a subcommand completes after it."""
    assert shell.complete("sil") == "silence"
    assert shell.complete("silence imp") == "silence import"
    assert shell.complete("tenant config del") == "tenant config delete"


def test_tab_completes_flags_and_their_values(shell: Shell) -> None:
    """A flag completes from its command's flags, a global one anywhere, and -o's values."""
    assert shell.complete("silence query --exp") == "silence query --expired"
    assert shell.complete("--alertmanager.u") == "--alertmanager.url"
    assert (
        shell.complete("config routes test --verify.r") == "config routes test --verify.receivers"
    )
    assert shell.complete("alert -o js") == "alert -o json"


def test_zsh_script_loads_without_complaint(tmp_path: Path) -> None:
    """The zsh script sources cleanly after compinit: nothing on stderr, status 0."""
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (.ci/run installs it)")
    done = subprocess.run(
        [
            "zsh",
            "-f",
            "-c",
            f"autoload -U compinit && compinit -u -D && "
            f"source <({sys.executable} -m daemon.ctl completion zsh) && "
            "print -r -- $_comps[tocsinctl]",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "_tocsinctl\n")
