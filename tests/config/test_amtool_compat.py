"""Side by side with the real Alertmanager 0.25: same verdicts, messages and status config."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from daemon.config.load import load_config_file
from daemon.ctl import check_config

pytestmark = pytest.mark.alertmanager

CORPUS = Path(__file__).parent / "corpus"
CONFIGS = Path(__file__).parents[2] / "configs"
FILES = sorted(CORPUS.glob("*/*.yml")) + sorted(CONFIGS.rglob("*.yml"))


def amtool_output(path: Path) -> tuple[str, int]:
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool 0.25 must be installed for alertmanager tests"
    done = subprocess.run(
        [amtool, "check-config", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout, done.returncode


def our_output(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    monkeypatch.chdir(path.parent)
    out = io.StringIO()
    failed = check_config([path.name], out)
    # Our one extra line ("  at file:line, key …") is not part of amtool's format.
    lines = [
        line for line in out.getvalue().splitlines(keepends=True) if not line.startswith("  at ")
    ]
    return "".join(lines), 1 if failed else 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_check_config_matches_amtool(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tocsinctl check-config prints what amtool check-config prints, with its exit status."""
    theirs = amtool_output(path)
    ours = our_output(path, monkeypatch)
    assert ours == theirs
    # good/ and configs/ must pass; bad/ and templates/ must fail.
    assert theirs[1] == (0 if path.parent.name in ("good", "configs", "examples") else 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def alertmanager_status_config(path: Path, storage: Path) -> str:
    binary = shutil.which("prometheus-alertmanager")
    assert binary is not None, "prometheus-alertmanager 0.25 must be installed"
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.path={storage}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v2/status", timeout=2)
                original: str = response.json()["config"]["original"]
                return original
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


GOOD = sorted(CORPUS.glob("good/*.yml")) + sorted(CONFIGS.rglob("*.yml"))


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_original_matches_alertmanager_status(path: Path, tmp_path: Path) -> None:
    """Config.original is byte-for-byte what GET /api/v2/status shows as config.original."""
    theirs = alertmanager_status_config(path.resolve(), tmp_path)
    assert load_config_file(str(path.resolve())).original == theirs
