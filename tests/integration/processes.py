"""Real processes for end-to-end tests: tocsin, Alertmanager 0.25, and a webhook sink.

Every process binds 127.0.0.1 only and is stopped by PID when its context exits.
tocsin listens on port 0 and reports the port in its ``web.listening`` log event;
Alertmanager cannot, so it gets a port probed free just before it starts.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookSink:
    """An HTTP server on 127.0.0.1:<ephemeral> recording every POST."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: queue.Queue[Request] = queue.Queue()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                sink.requests.put(
                    Request(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def next(self, timeout: float = 15.0) -> Request:
        return self.requests.get(timeout=timeout)

    def quiet_for(self, seconds: float) -> bool:
        """True if nothing arrives within ``seconds``."""
        try:
            self.requests.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@attrs.define
class Proc:
    proc: subprocess.Popen[str]
    url: str
    config_path: Path
    log_lines: list[dict[str, Any]] = attrs.field(factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> httpx.Response:
        with self.api() as c:
            return c.post("/api/v2/alerts", json=alerts)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_logs(
    proc: subprocess.Popen[str], into: list[dict[str, Any]], ready: queue.Queue[int]
) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        into.append(event)
        if event.get("event") == "web.listening":
            ready.put(int(event["address"].rsplit(":", 1)[1]))


def tocsin_argv(config: Path, storage: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "daemon",
        f"--config.file={config}",
        f"--storage.path={storage}",
        "--web.listen-address=127.0.0.1:0",
        "--cluster.listen-address=",
        "--log.format=json",
        *extra,
    ]


@contextlib.contextmanager
def run_tocsin(tmp: Path, config_text: str, *extra: str) -> Iterator[Proc]:
    """Start tocsin on 127.0.0.1:0 and yield once it listens; SIGTERM at the end."""
    config = tmp / "tocsin.yml"
    config.write_text(config_text)
    proc = subprocess.Popen(
        tocsin_argv(config, tmp / "tocsin-data", *extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    logs: list[dict[str, Any]] = []
    ready: queue.Queue[int] = queue.Queue()
    reader = threading.Thread(target=_read_logs, args=(proc, logs, ready), daemon=True)
    reader.start()
    try:
        try:
            port = ready.get(timeout=30)
        except queue.Empty:
            raise RuntimeError(f"tocsin did not start: {logs}") from None
        yield Proc(proc, f"http://127.0.0.1:{port}", config, logs)
    finally:
        _stop(proc)
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()


@contextlib.contextmanager
def run_alertmanager(tmp: Path, config_text: str, *extra: str) -> Iterator[Proc]:
    """Start the real Alertmanager 0.25 on a free loopback port; SIGTERM at the end."""
    config = tmp / "alertmanager.yml"
    config.write_text(config_text)
    port = free_port()
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
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
                raise RuntimeError("alertmanager did not start")
            time.sleep(0.05)
        yield Proc(proc, url, config)
    finally:
        _stop(proc)


@attrs.define
class AsyncAlertmanager:
    """A running Alertmanager 0.25 as :func:`open_alertmanager` yields it."""

    client: httpx.AsyncClient
    proc: trio.Process
    storage: Path


@contextlib.asynccontextmanager
async def open_alertmanager(tmp: Path, config_text: str) -> AsyncIterator[AsyncAlertmanager]:
    """The trio form of :func:`run_alertmanager`: yields once ``/-/ready`` answers 200.

    Skips the test when the binary is missing. At the end: SIGTERM (so Alertmanager
    writes its snapshots), then SIGKILL if it has not exited within 10 s.
    """
    if shutil.which(ALERTMANAGER) is None:
        pytest.skip("Alertmanager binary not installed")
    config = tmp / "am.yml"
    config.write_text(config_text)
    storage = tmp / "data"
    port = free_port()
    proc = await trio.lowlevel.open_process(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            with trio.fail_after(20):
                while True:
                    try:
                        if (await client.get("/-/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.1)
            yield AsyncAlertmanager(client, proc, storage)
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                with trio.move_on_after(5):
                    await proc.wait()


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
