"""Side by side with the real Alertmanager 0.25: same verdicts, messages and status config."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.config.load import load_config_file
from daemon.ctl import check_config
from tests.integration.processes import run_alertmanager

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


def alertmanager_status_config(path: Path, tmp: Path) -> str:
    """config.original as Alertmanager 0.25 started on ``path`` reports it."""
    with run_alertmanager(tmp, path) as am, am.api() as api:
        original: str = api.get("/api/v2/status").json()["config"]["original"]
        return original


GOOD = sorted(CORPUS.glob("good/*.yml")) + sorted(CONFIGS.rglob("*.yml"))


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_original_matches_alertmanager_status(path: Path, tmp_path: Path) -> None:
    """Config.original is byte-for-byte what GET /api/v2/status shows as config.original."""
    theirs = alertmanager_status_config(path.resolve(), tmp_path)
    assert load_config_file(str(path.resolve())).original == theirs
