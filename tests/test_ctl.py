"""tocsinctl's command line: check-config output, exit status and argument handling."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.ctl import check_config, main

GOOD = "route:\n  receiver: a\nreceivers:\n- name: a\n"
BAD = "route:\n  receiver: b\nreceivers:\n- name: a\n"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "bad.yml").write_text(BAD)
    (tmp_path / "tmpl.yml").write_text(GOOD + "templates: ['*.tmpl']\n")
    (tmp_path / "x.tmpl").write_text('{{ define "x" }}x{{ end }}')
    return tmp_path


def test_success_prints_amtool_summary(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file prints SUCCESS and amtool's summary, and exits 0."""
    assert main(["check-config", "good.yml"]) == 0
    out = capsys.readouterr()
    assert out.out == (
        "Checking 'good.yml'  SUCCESS\nFound:\n - global config\n - route\n"
        " - 0 inhibit rules\n - 1 receivers\n - 0 templates\n\n"
    )
    assert out.err == ""


def test_failure_prints_message_location_and_error(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid file prints FAILED, our location line, and amtool's final error; exit 1."""
    assert main(["check-config", "good.yml", "bad.yml"]) == 1
    out = capsys.readouterr()
    assert out.out.endswith(
        "Checking 'bad.yml'  FAILED: undefined receiver \"b\" used in route\n"
        "  at bad.yml:2, key route.receiver\n\n"
    )
    assert out.err == "tocsinctl: error: failed to validate 1 file(s)\n\n"


def test_templates_get_their_own_verdict(files: Path) -> None:
    """With templates, a second SUCCESS/FAILED line follows the summary, like amtool."""
    out = io.StringIO()
    assert check_config(["tmpl.yml"], out) == 0
    assert out.getvalue().endswith(" - 1 templates\n  SUCCESS\n\n")

    def broken(globs: object) -> None:
        raise ValueError("template: x.tmpl:1: unexpected EOF")

    out = io.StringIO()
    assert check_config(["tmpl.yml"], out, check_templates=broken) == 1
    assert out.getvalue().endswith(
        " - 1 templates\n  FAILED: template: x.tmpl:1: unexpected EOF\n\n"
    )


def test_missing_file_is_an_argument_error(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that does not exist stops before checking anything, as kingpin does for amtool."""
    assert main(["check-config", "nope.yml", "good.yml"]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == "tocsinctl: error: path 'nope.yml' does not exist\n\n"


def test_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a subcommand argparse exits with a usage error."""
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_reads_stdin_when_no_files_given(files: Path) -> None:
    """With no file arguments and piped input, the config is read from /dev/stdin."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon.ctl", "check-config"],
        input=GOOD,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 0
    assert done.stdout.startswith("Checking '/dev/stdin'  SUCCESS\n")


def test_exit_status_from_process(files: Path) -> None:
    """Run as a program, check-config exits 1 for an invalid file."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon.ctl", "check-config", str(files / "bad.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 1
    assert "FAILED: undefined receiver" in done.stdout


def test_template_parse_error_fails_after_summary(files: Path) -> None:
    """A template that does not parse prints the summary, then the parser's FAILED line (§9.6)."""
    (files / "bad.tmpl").write_text('{{ define "x" }}\n{{ .Foo \n')
    (files / "badtmpl.yml").write_text(GOOD + "templates: ['bad.tmpl']\n")
    out = io.StringIO()
    assert check_config(["badtmpl.yml"], out) == 1
    assert out.getvalue() == (
        "Checking 'badtmpl.yml'  SUCCESS\nFound:\n - global config\n - route\n"
        " - 0 inhibit rules\n - 1 receivers\n - 1 templates\n"
        "  FAILED: template: bad.tmpl:3: unclosed action started at bad.tmpl:2\n\n"
    )
