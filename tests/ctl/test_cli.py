"""tocsinctl as a program: flags and config files, default commands, headers, errors,
--help, --version, a closed pipe and shell completion."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from daemon import __version__
from daemon.ctl import build_parser, main, with_default_subcommands
from daemon.ctl.command import version_warning
from daemon.ctl.completion import _walk, script
from daemon.ctl.flags import Flag
from daemon.ctl.progress import ProgressBar, progress_line

ROOT = Path(__file__).parents[2]

SILENCE = {
    "id": "0b7a8c2e-0000-4000-8000-000000000001",
    "status": {"state": "active"},
    "updatedAt": "2026-01-01T00:00:00.000Z",
    "comment": "c",
    "createdBy": "me",
    "startsAt": "2026-01-01T00:00:00.000Z",
    "endsAt": "2099-01-01T00:00:00.000Z",
    "matchers": [{"name": "alertname", "value": "Disk", "isRegex": False, "isEqual": True}],
}


class Server:
    """A mock transport: a tocsin of tocsinctl's version that records the command's
    requests (not the version check) and answers them from ``answer``."""

    def __init__(
        self,
        answer: Callable[[httpx.Request], httpx.Response] | None = None,
        version: str = __version__,
    ) -> None:
        self.requests: list[httpx.Request] = []
        self.version_checks = 0
        self.version = version
        self.answer = answer or (lambda request: httpx.Response(200, json=[SILENCE]))
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/status":
            self.version_checks += 1
            info = {"buildUser": "tocsin", "goVersion": "python", "version": self.version}
            status = {
                "cluster": {"status": "disabled"},
                "config": {"original": "route:\n  receiver: x\n"},
                "uptime": "2026-01-01T00:00:00.000Z",
                "versionInfo": info,
            }
            return httpx.Response(200, json=status)
        self.requests.append(request)
        return self.answer(request)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_config_files_first_one_wins_and_command_line_beats_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tocsinctl.yml beats amtool.yml key by key; flags on the command line beat both."""
    _write(tmp_path / ".config/tocsin/tocsinctl.yml", "output: json\n")
    _write(
        tmp_path / ".config/prometheus/amtool.yml",
        "output: extended\nalertmanager.url: http://from-amtool-yml:9093\n",
    )
    server = Server()
    assert main(["silence", "query"], home=str(tmp_path), transport=server.transport) == 0
    assert server.requests[0].url.host == "from-amtool-yml"
    assert json.loads(capsys.readouterr().out)[0]["id"] == SILENCE["id"]
    assert main(["-o", "simple", "silence"], home=str(tmp_path), transport=server.transport) == 0
    assert capsys.readouterr().out.startswith("ID  ")


def test_legacy_comment_required_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """amtool's old key comment_required: false lets silence add go without a comment."""
    _write(tmp_path / ".config/prometheus/amtool.yml", "comment_required: false\n")
    server = Server(lambda request: httpx.Response(200, json={"silenceID": "new-id"}))
    assert main(["silence", "add", "Disk"], home=str(tmp_path), transport=server.transport) == 0
    assert capsys.readouterr().out == "new-id\n"
    assert json.loads(server.requests[0].content)["comment"] == ""


def test_bad_config_file_says_which_and_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config file that is not a mapping is named in the error, with the expected form."""
    _write(tmp_path / ".config/tocsin/tocsinctl.yml", "- just\n- a list\n")
    assert main(["silence"], home=str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"could not load config file {tmp_path}/.config/tocsin/tocsinctl.yml" in err
    assert "hint: write it as 'alertmanager.url: http://host:9093'" in err


def test_tenant_and_bearer_token_headers(tmp_path: Path) -> None:
    """--tenant sends X-Scope-OrgID; --bearer-token(-file) sends Authorization: Bearer."""
    (tmp_path / "token").write_text("from-file\n")
    server = Server()
    args = ["silence", "-q", "--tenant=team-a", f"--bearer-token-file={tmp_path / 'token'}"]
    assert main(args, home=str(tmp_path), transport=server.transport) == 0
    headers = server.requests[0].headers
    assert headers["X-Scope-OrgID"] == "team-a"
    assert headers["Authorization"] == "Bearer from-file"
    assert (
        main(["--bearer-token=t0k", "silence"], home=str(tmp_path), transport=server.transport) == 0
    )
    assert server.requests[1].headers["Authorization"] == "Bearer t0k"
    assert "X-Scope-OrgID" not in server.requests[1].headers


def test_http_config_file_basic_auth_and_url_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """basic_auth from --http.config.file or the URL is sent; both at once are refused."""
    (tmp_path / "pw").write_text("s3cret")
    (tmp_path / "http.yml").write_text("basic_auth:\n  username: ops\n  password_file: pw\n")
    server = Server()
    home = str(tmp_path)
    args = [f"--http.config.file={tmp_path / 'http.yml'}", "silence"]
    assert main(args, home=home, transport=server.transport) == 0
    assert (
        server.requests[0].headers["Authorization"] == httpx.BasicAuth("ops", "s3cret")._auth_header
    )
    url = "--alertmanager.url=http://u%40x:p@am:9093"
    assert main([url, "silence"], home=home, transport=server.transport) == 0
    assert server.requests[1].headers["Authorization"] == httpx.BasicAuth("u@x", "p")._auth_header
    capsys.readouterr()
    assert main([url, *args], home=home, transport=server.transport) == 1
    assert (
        "basic authentication and http.config.file are mutually exclusive"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "set --bearer-token, --bearer-token-file or --http.config.file"),
        (404, "an Alertmanager API?"),
    ],
)
def test_http_errors_give_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int, hint: str
) -> None:
    """401 points at the credential flags; 404 on the API asks whether the URL is right."""
    server = Server(lambda request: httpx.Response(status, json="nope"))
    assert main(["alert"], home=str(tmp_path), transport=server.transport) == 1
    err = capsys.readouterr().err
    assert f"tocsinctl: error: GET /api/v2/alerts: HTTP {status}: nope\n" in err
    assert hint in err


@pytest.mark.parametrize(
    ("version", "flags", "warning"),
    [
        (__version__, [], ""),
        ("9.9.0", [], f"Warning: tocsinctl version ({__version__}) and tocsin version (9.9.0)"),
        ("9.9.0", ["--no-version-check"], ""),
    ],
)
def test_version_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    version: str,
    flags: list[str],
    warning: str,
) -> None:
    """A tocsin of another major.minor gets a warning on stderr; --no-version-check skips it."""
    server = Server(version=version)
    assert main([*flags, "silence", "-q"], home=str(tmp_path), transport=server.transport) == 0
    out = capsys.readouterr()
    assert out.out == f"{SILENCE['id']}\n"
    assert out.err.startswith(warning) and (warning or out.err == "")
    assert server.version_checks == (0 if flags else 1)


@pytest.mark.parametrize(
    ("command", "printed"),
    [
        (["config"], "route:\n  receiver: x\n\n"),
        (["cluster"], "Cluster Status:  disabled\nNode Name:       \n"),
    ],
)
def test_status_is_fetched_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], printed: str
) -> None:
    """config show and cluster show reuse the status the version check fetched."""
    server = Server(lambda request: httpx.Response(500))
    assert main(command, home=str(tmp_path), transport=server.transport) == 0
    assert capsys.readouterr().out == printed
    assert server.version_checks == 1 and server.requests == []


def test_version_warning_for_alertmanager() -> None:
    """An Alertmanager other than 0.25 is named; 0.25 itself passes quietly."""
    assert version_warning({"versionInfo": {"version": "0.25.1"}}) is None
    assert version_warning({"versionInfo": {"version": "0.27.0"}}) == (
        "Warning: tocsinctl speaks Alertmanager 0.25's API; the server is Alertmanager 0.27.0."
    )
    assert version_warning({"cluster": {}}) is None


def test_unknown_silence_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Expiring an unknown ID names it and stops with status 1."""
    server = Server(lambda request: httpx.Response(404))
    assert main(["silence", "expire", "abc"], home=str(tmp_path), transport=server.transport) == 1
    assert capsys.readouterr().err.startswith("tocsinctl: error: silence abc not found\n")


def test_alert_query_sends_amtools_parameters(tmp_path: Path) -> None:
    """alert query sends the state flags (active only by default), receiver and filters."""
    server = Server(lambda request: httpx.Response(200, json=[]))
    assert main(["alert", "Disk", "node=~a.*"], home=str(tmp_path), transport=server.transport) == 0
    assert main(["alert", "-s", "-r", "x"], home=str(tmp_path), transport=server.transport) == 0
    first, second = (dict(r.url.params.multi_items()) for r in server.requests)
    assert server.requests[0].url.params.get_list("filter") == ["alertname=Disk", "node=~a.*"]
    assert first == {
        "active": "true",
        "inhibited": "false",
        "silenced": "false",
        "unprocessed": "false",
        "filter": "node=~a.*",
    }
    assert second["active"] == "false" and second["silenced"] == "true"
    assert second["receiver"] == "x"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["alert"], ["alert", "query"]),
        (["-o", "json", "silence", "-q"], ["-o", "json", "silence", "query", "-q"]),
        (["silence", "Disk"], ["silence", "query", "Disk"]),
        (["silence", "add", "Disk"], ["silence", "add", "Disk"]),
        (["config", "routes", "--tree"], ["config", "routes", "show", "--tree"]),
        (["config"], ["config", "show"]),
        (["config", "routes", "test", "a=b"], ["config", "routes", "test", "a=b"]),
        (["alert", "--help"], ["alert", "--help"]),
        (["--output", "json", "cluster"], ["--output", "json", "cluster", "show"]),
    ],
)
def test_default_subcommands(argv: list[str], expected: list[str]) -> None:
    """A group named alone runs its default command, as amtool's kingpin does."""
    assert with_default_subcommands(argv, build_parser()) == expected


def test_help_gives_every_flag_a_description_and_default() -> None:
    """Every option of every command has help text that states its default, and each
    command's rendered --help shows every flag with its description and default."""
    checked = 0
    for path, parser in _walk(build_parser()):
        flags: tuple[Flag, ...] = parser.get_default("flags") or ()
        by_dest = {a.dest: a for a in parser._actions}
        for flag in flags:
            action = by_dest[flag.dest]
            assert action.help and len(action.help) > 20, (path, flag.name)
            if flag.default not in (None, ""):
                assert action.help.endswith(f"(default: {flag.shown or flag.default})")
            checked += 1
        # Whitespace aside: argparse wraps lines, and breaks after hyphens.
        rendered = "".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (path, action.dest)
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if action.option_strings:
                # Options, declared through Flag or by hand, all say what they default to.
                assert "(default: " in action.help, (path, action.option_strings)
                assert "".join(action.help.split()) in rendered, (path, action.option_strings)
    assert checked > 100


def _run(
    *args: str, shell: str | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    argv = ["bash", "-c", shell] if shell else [sys.executable, "-m", "daemon.ctl", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def test_version() -> None:
    """--version prints the program and its version."""
    done = _run("--version")
    assert done.returncode == 0 and done.stdout == f"tocsinctl, version {__version__}\n"


def test_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """check-config into head: no traceback when the reader goes away, SIGPIPE's status."""
    (tmp_path / "ok.yml").write_text("route:\n  receiver: a\nreceivers:\n- name: a\n")
    # About 100 kB of output: more than a pipe holds, so the writer meets the closed end.
    files = " ".join(["ok.yml"] * 1000)
    done = _run(
        shell=f"{sys.executable} -m daemon.ctl check-config {files} | head -1; "
        "echo ${PIPESTATUS[0]} >&2",
        cwd=tmp_path,
    )
    assert done.stdout.startswith("Checking ")
    assert done.stderr == "141\n"


def _complete(*words: str) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    done = _run(
        shell=f"source <({sys.executable} -m daemon.ctl completion bash); "
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _tocsinctl; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion_offers_commands_flags_and_values() -> None:
    """Sourced in bash, the script completes commands, subcommands, flags and -o values."""
    assert _complete("tocsinctl", "si") == ["silence"]
    assert _complete("tocsinctl", "-o", "json", "silence", "") == [
        "add",
        "query",
        "update",
        "expire",
        "import",
    ]
    assert _complete("tocsinctl", "silence", "query", "--ex") == ["--expired"]
    assert _complete("tocsinctl", "config", "routes", "test", "--verif") == ["--verify.receivers"]
    assert _complete("tocsinctl", "alert", "-o", "") == ["simple", "extended", "json"]


def test_zsh_completion_shares_the_table() -> None:
    """The zsh script registers with compdef and carries the same command table as bash's."""
    parser = build_parser()
    bash, zsh = script(parser, "bash"), script(parser, "zsh")
    table = bash[bash.index("_tocsinctl_words() {") : bash.index("_tocsinctl() {")]
    assert table in zsh and '"silence query") echo "' in table
    assert zsh.startswith("#compdef tocsinctl\n") and "compdef _tocsinctl tocsinctl" in zsh


def test_progress_line_fills_with_the_count() -> None:
    """The import bar is empty at 0, half full half way, full at the end."""
    assert progress_line("silences", 0, 10) == f"importing silences [{'-' * 30}] 0/10"
    assert progress_line("silences", 5, 10) == f"importing silences [{'#' * 15}{'-' * 15}] 5/10"
    assert progress_line("silences", 10, 10).startswith(f"importing silences [{'#' * 30}]")


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _screen(written: str) -> list[str]:
    """The lines a terminal shows: each ends at \\n; \\r returns to the start and
    ESC [K clears the line, which here always follows a \\r."""
    return [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in written.split("\n")]


def test_lines_printed_during_a_bar_appear_above_it() -> None:
    """On a terminal, what the import prints (to the bar's stream or another terminal)
    gets lines of its own, the bar stays below them, and nothing is drawn off one."""
    screen = _Terminal()
    bar = ProgressBar(screen, "silences", 3)
    for n in range(3):
        bar.write(screen, f"id-{n}\n")
        bar.step()
    assert _screen(screen.getvalue()) == [
        "id-0",
        "id-1",
        "id-2",
        progress_line("silences", 3, 3),
        "",
    ]
    piped = io.StringIO()
    quiet = ProgressBar(piped, "silences", 3)
    quiet.write(piped, "id-0\n")
    quiet.step()
    assert piped.getvalue() == "id-0\n"


def test_a_bar_redraws_once_per_percent() -> None:
    """A thousand steps draw the bar at the first step and then once per percent (101
    times), the last drawing ending its line."""
    screen = _Terminal()
    bar = ProgressBar(screen, "x", 1000)
    for _ in range(1000):
        bar.step()
    assert screen.getvalue().count("\rimporting x [") == 101
    assert screen.getvalue().endswith(f"\r{progress_line('x', 1000, 1000)}\n")
