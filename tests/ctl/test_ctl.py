"""tocsinctl check-config, template render and receiver test: output, exit status, arguments."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import attrs
import httpx
import pytest
import trio

from daemon.api import create_app
from daemon.api.receivers import receiver_test_routes
from daemon.clock import FixedClock
from daemon.ctl import check_config, default_template_data, main
from daemon.ctl.client import Api, Connection
from daemon.ctl.errors import CtlError
from daemon.ctl.receiver import receiver_test
from daemon.store import AlertStore
from daemon.template.render import builtin_text
from tests.api.conftest import NOW, FakeBackend, config

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
        cwd=Path(__file__).parents[2],
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
        cwd=Path(__file__).parents[2],
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


# --- template render ---------------------------------------------------------------------

RENDER_CASES = [
    '{{ template "slack.default.title" . }}',
    '{{ template "__subject" . }}',
    '{{ template "__text_alert_list" .Alerts }}',
    "{{ range .Alerts }}{{ .Fingerprint }} {{ .Labels.SortedPairs }}|{{ end }}"
    "{{ .CommonAnnotations }} {{ .ExternalURL }} {{ .Receiver }}",
    '{{ template "mine" . }}',
]


def _amtool_render(args: list[str]) -> str:
    done = subprocess.run(
        ["/usr/bin/amtool", "template", "render", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.alertmanager
@pytest.mark.parametrize("text", RENDER_CASES)
def test_template_render_matches_amtool(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """template render prints what amtool template render prints (default example data).

    amtool 0.25 does not load the built-in templates itself, so both get them as a file.
    """
    (tmp_path / "default.tmpl").write_text(builtin_text("default.tmpl"))
    (tmp_path / "mine.tmpl").write_text(
        '{{ define "mine" }}[{{ .Status }}:{{ .Receiver }}]{{ end }}'
    )
    args = [f"--template.glob={tmp_path}/*.tmpl", f"--template.text={text}"]
    assert main(["template", "render", *args]) == 0
    assert capsys.readouterr().out == _amtool_render(args)


@pytest.mark.alertmanager
def test_template_render_with_data_file_matches_amtool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --template.data, both tools render the same JSON data the same way."""
    data = {
        "receiver": "team-x",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Disk", "instance": "db1"},
                "annotations": {"summary": "disk full"},
                "startsAt": "2024-05-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom/graph",
                "fingerprint": "abc",
            }
        ],
        "groupLabels": {"alertname": "Disk"},
        "commonLabels": {"alertname": "Disk", "instance": "db1"},
        "commonAnnotations": {"summary": "disk full"},
        "externalURL": "http://am:9093",
    }
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    (tmp_path / "default.tmpl").write_text(builtin_text("default.tmpl"))
    for text in (
        '{{ template "slack.default.text" . }}',
        '{{ template "telegram.default.message" . }}',
        "{{ range .Alerts }}{{ .StartsAt }} {{ .EndsAt.IsZero }}{{ end }}",
    ):
        args = [
            f"--template.glob={tmp_path}/*.tmpl",
            f"--template.text={text}",
            f"--template.data={path}",
        ]
        assert main(["template", "render", *args]) == 0
        assert capsys.readouterr().out == _amtool_render(args), text


def test_template_render_default_data_is_amtools() -> None:
    """The default data has amtool's two example alerts, times relative to now."""
    data = default_template_data(10 * 60 * 1_000_000_000)
    assert [a.Fingerprint for a in data.Alerts] == ["fingerprint1", "fingerprint2"]
    assert [int(a.StartsAt) for a in data.Alerts] == [5 * 60 * 10**9, 0]
    assert data.Status == "alertstatus" and data.ExternalURL == "https://example.com"


def test_template_render_error_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A template that does not parse fails with tocsinctl: error and status 1."""
    status = main(
        ["template", "render", f"--template.glob={tmp_path}/*", "--template.text={{ if }"]
    )
    assert status == 1
    assert capsys.readouterr().err.startswith("tocsinctl: error: ")


# --- receiver test -----------------------------------------------------------------------


class _Answers(BaseHTTPRequestHandler):
    """A fake tocsin: canned answers to POST /api/v1/receivers/<name>/test."""

    answers: ClassVar[dict[str, tuple[int, Any]]] = {}
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        """Answer from the table by path."""
        self.paths.append(self.path)
        status, payload = self.answers.get(self.path, (404, {"error": "receiver not found"}))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def fake_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Answers.paths.clear()
    _Answers.answers = {
        "/api/v1/receivers/ok/test": (
            200,
            {"receiver": "ok", "results": [{"integration": "slack[0]", "ok": True}]},
        ),
        "/api/v1/receivers/team%20a/test": (
            200,
            {
                "receiver": "team a",
                "results": [
                    {"integration": "slack[0]", "ok": True},
                    {"integration": "email[0]", "ok": False, "error": "dial tcp: refused"},
                ],
            },
        ),
        "/api/v1/receivers/broken/test": (500, {"oops": 1}),
    }
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_receiver_test_all_ok_exits_0(fake_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """All integrations OK: each is printed and the exit status is 0."""
    assert main(["receiver", "test", "ok", f"--alertmanager.url={fake_server}"]) == 0
    assert capsys.readouterr().out == "Receiver ok:\n  slack[0]: OK\n"


def test_receiver_test_failure_exits_1(
    fake_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One failed integration: its error is printed, exit status 1; the name is escaped."""
    assert main(["receiver", "test", "team a", f"--alertmanager.url={fake_server}/"]) == 1
    assert capsys.readouterr().out == (
        "Receiver team a:\n  slack[0]: OK\n  email[0]: FAILED: dial tcp: refused\n"
    )
    assert _Answers.paths == ["/api/v1/receivers/team%20a/test"]


@pytest.mark.parametrize(("name", "message"), [("nope", "not found"), ("broken", "HTTP 500")])
def test_receiver_test_bad_answers_exit_2(
    fake_server: str, name: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown receiver or an unexpected answer exits 2 with a clear message."""
    assert main(["receiver", "test", name, f"--alertmanager.url={fake_server}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tocsinctl: error: ") and message in err


def test_receiver_test_unreachable_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening: exit 2, and the hint names the URL and the flag to set."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["receiver", "test", "x", f"--alertmanager.url=http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot connect to http://127.0.0.1:{port}" in err
    assert f"hint: is tocsin running at http://127.0.0.1:{port}? set --alertmanager.url" in err


def test_receiver_test_against_the_api_app() -> None:
    """Through the real API app (in process, via an ASGI transport): the 404 and a result."""
    clock = FixedClock(NOW)

    @attrs.define
    class Backend(FakeBackend):
        async def test_receiver(self, name: str) -> list[dict[str, Any]] | None:
            if name != "team":
                return None
            return [{"integration": "webhook[0]", "ok": False, "error": "status 503"}]

    app = create_app(
        Backend(config("team"), AlertStore(clock), clock), extra_routes=receiver_test_routes()
    )

    def transport_call(request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            client = app.test_client()
            # The request as tocsinctl built it: the endpoint takes JSON only.
            resp = await client.post(
                request.url.path, data=request.content, headers=dict(request.headers)
            )
            return httpx.Response(resp.status_code, content=await resp.get_data())

        return trio.run(go)

    out = io.StringIO()
    api = Api.open(Connection("http://am"), httpx.MockTransport(transport_call))
    assert receiver_test(api, "team", out) == 1
    assert out.getvalue() == "Receiver team:\n  webhook[0]: FAILED: status 503\n"
    with pytest.raises(CtlError) as info:
        receiver_test(api, "other", io.StringIO())
    assert info.value.status == 2 and "receiver 'other' not found" in info.value.message
