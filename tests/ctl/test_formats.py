"""Output formats on answers no live server gives easily, side by side with amtool 0.25.

A canned API server returns the same JSON to both tools: peers to sort, times in other
offsets, escapes, wide characters and HTML-unsafe text; the bytes printed must match.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from daemon.ctl.output import format_alerts, format_cluster, tabwrite
from tests.integration.processes import AMTOOL, ROOT, write_self_signed

STATUS: dict[str, Any] = {
    "cluster": {
        "name": "01HNODE",
        "status": "ready",
        "peers": [
            {"address": "10.0.0.10:9094", "name": "b"},
            {"address": "10.0.0.9:10000", "name": "c"},
            {"address": "10.0.0.9:9094", "name": "a-much-longer-name"},
            {"address": "192.168.1.1:1", "name": "d"},
        ],
    },
    "config": {"original": "route:\n  receiver: x <&>\n"},
    "uptime": "2026-01-01T10:00:00.123+01:00",
    "versionInfo": {
        "branch": "main",
        "buildDate": "d",
        "buildUser": "u",
        "goVersion": "go",
        "revision": "r",
        "version": "0.25.0",
    },
}

SILENCES = [
    {
        "id": "s-2",
        "status": {"state": "active"},
        "updatedAt": "2026-01-01T00:00:00.5Z",
        "comment": "ünïcode ☃ comment",
        "createdBy": "a person",
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2030-01-01T05:00:00.000+02:00",
        "matchers": [
            {"name": "msg", "value": 'say "hi"\\now\n', "isRegex": False, "isEqual": False},
            {"name": "job", "value": "a|b", "isRegex": True, "isEqual": False},
        ],
    },
    {
        "id": "s-1",
        "status": {"state": "pending"},
        "updatedAt": "2026-01-01T00:00:00Z",
        "comment": "<b>&</b>",
        "createdBy": "x",
        "startsAt": "2029-01-01T00:00:00Z",
        "endsAt": "2029-06-01T00:00:00Z",
        "matchers": [{"name": "alertname", "value": "Ü", "isRegex": True}],
    },
]

ALERTS = [
    {
        "annotations": {"summary": "größer > 10", "z": "1", "a": "2"},
        "endsAt": "2030-01-01T00:00:00.000-05:30",
        "fingerprint": "f1",
        "receivers": [{"name": "r1"}, {"name": "r2"}],
        "startsAt": "2026-01-02T00:00:00.000Z",
        "status": {"inhibitedBy": ["x"], "silencedBy": [], "state": "suppressed"},
        "updatedAt": "2026-01-02T00:00:00.000Z",
        "labels": {"alertname": "Dïsk", "zone": "eu", "b": 'q"uote'},
    },
    {
        "annotations": {},
        "endsAt": "2030-01-01T00:00:00.000Z",
        "fingerprint": "f2",
        "receivers": [],
        "startsAt": "2026-01-01T00:00:00.000Z",
        "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "generatorURL": "http://prom/graph?a=1&b=2",
        "labels": {"alertname": "CPU"},
    },
]


class _Canned(BaseHTTPRequestHandler):
    proxied: ClassVar[list[str]] = []
    answers: ClassVar[dict[str, Any]] = {
        "/api/v2/status": STATUS,
        "/api/v2/silences": SILENCES,
        "/api/v2/alerts": ALERTS,
    }

    def do_GET(self) -> None:
        """Answer from the table by path, ignoring the query.

        A proxied request names the whole URL (``GET http://host/path``): it is answered
        the same way, and the host is recorded.
        """
        target = urllib.parse.urlsplit(self.path)
        self.proxied.append(target.netloc)
        body = json.dumps(self.answers[target.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Keep test output quiet."""


@contextlib.contextmanager
def _serve(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def canned() -> Iterator[str]:
    with _serve() as url:
        yield url


def _both(url: str, args: list[str], home: Path) -> tuple[str, str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    ours = subprocess.run(
        [sys.executable, "-m", "daemon.ctl", f"--alertmanager.url={url}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
        env=env,
    )
    theirs = subprocess.run(
        [AMTOOL, f"--alertmanager.url={url}", "--no-version-check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return ours.stdout, theirs.stdout


@pytest.mark.alertmanager
@pytest.mark.parametrize("fmt", ["simple", "extended", "json"])
@pytest.mark.parametrize(
    "command",
    [
        ["cluster", "show"],
        ["silence", "query"],
        ["silence", "query", "--date.format=Mon Jan _2 3:04PM Z07:00"],
        ["alert", "query"],
        ["alert", "query", "--date.format=2006-01-02T15:04:05.000Z07:00"],
    ],
    ids=" ".join,
)
def test_canned_answers_print_as_amtool(
    canned: str, tmp_path: Path, fmt: str, command: list[str]
) -> None:
    """Peers sorted by IP then port, offsets, escapes, wide text: amtool's bytes."""
    ours, theirs = _both(canned, ["-o", fmt, *command], tmp_path)
    assert ours == theirs


@pytest.mark.alertmanager
def test_config_show_json_as_amtool(canned: str, tmp_path: Path) -> None:
    """config show -o json: amtool's key order, offsets kept, HTML characters escaped."""
    ours, theirs = _both(canned, ["-o", "json", "config", "show"], tmp_path)
    assert ours == theirs


@pytest.mark.alertmanager
def test_http_config_file_tls_and_proxy(canned: str, tmp_path: Path) -> None:
    """--http.config.file: a tls_config CA and a proxy_url work for both tools alike."""
    cert, key = write_self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    # An absolute path: amtool 0.25 resolves relative ones against the parent folder.
    (tmp_path / "tls.yml").write_text(f"tls_config:\n  ca_file: {cert}\n")
    with _serve(tls) as url:
        args = [f"--http.config.file={tmp_path / 'tls.yml'}", "silence", "query"]
        ours, theirs = _both(url, args, tmp_path)
        assert ours == theirs and "s-2" in ours
    (tmp_path / "proxy.yml").write_text(f"proxy_url: {canned}\n")
    _Canned.proxied.clear()
    args = [f"--http.config.file={tmp_path / 'proxy.yml'}", "-o", "json", "alert", "query"]
    ours, theirs = _both("http://am.invalid:9093", args, tmp_path)
    assert ours == theirs and json.loads(ours)[0]["fingerprint"] == "f1"
    assert set(_Canned.proxied) == {"am.invalid:9093"}


def test_tabwriter_blocks() -> None:
    """A column's width holds for adjacent lines with that cell; a tabless line resets all."""
    text = "a\tbb\t\nccc\td\t\nno tabs\nx\ty\t\n"
    assert tabwrite(text) == "a    bb  \nccc  d   \nno tabs\nx  y  \n"
    # A line with fewer cells ends the block of the column it lacks.
    assert tabwrite("a\tb\tc\t\nlong\t\nd\teeee\tf\t\n") == (
        "a     b  c  \nlong  \nd     eeee  f  \n"
    )


def test_tables_count_characters_not_bytes() -> None:
    """Column widths count characters, so non-ASCII text aligns as in Go (runes)."""
    out = format_alerts(ALERTS, "simple")
    lines = out.splitlines()
    assert lines[2].index("2026-01-02") == lines[0].index("Starts At")


def test_cluster_peers_sorted_by_ip_then_port() -> None:
    """Peers print in IP order, then by port as a number (10000 after 9094)."""
    out = format_cluster(STATUS["cluster"], "extended")
    order = [line.split()[0] for line in out.splitlines()[4:]]
    assert order == ["10.0.0.9:9094", "10.0.0.9:10000", "10.0.0.10:9094", "192.168.1.1:1"]
