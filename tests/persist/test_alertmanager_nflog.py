"""Reading the ``nflog`` snapshot the real Alertmanager 0.25 writes at shutdown."""

from __future__ import annotations

import http.server
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cluster.protowire import iter_delimited
from daemon.nflog import Nflog, ReceiverKey, alert_hash
from daemon.nflogpb import decode_mesh_entry, decode_state, encode_mesh_entry
from daemon.persist import RecordJournal

AM_BINARY = "/usr/bin/prometheus-alertmanager"
pytestmark = pytest.mark.alertmanager

H = 3600 * 1_000_000_000
LABELS = {"alertname": "A1", "severity": "page"}

CONFIG = """
route:
  receiver: wh
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: wh
    webhook_configs:
      - url: http://127.0.0.1:{port}/hook
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[tuple[int, threading.Event]]:
    got = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.end_headers()
            got.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_alertmanager_once(tmp_path: Path, sink_port: int, notified: threading.Event) -> bytes:
    """Start AM, post one alert, wait for the webhook, SIGTERM it; return its nflog file."""
    (tmp_path / "am.yml").write_text(CONFIG.format(port=sink_port))
    storage = tmp_path / "data"
    port = free_port()
    proc = subprocess.Popen(
        [
            AM_BINARY,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v2"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/status", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("alertmanager did not start")
                time.sleep(0.1)
        body = [{"labels": LABELS}]
        httpx.post(f"{base}/alerts", json=body, timeout=5).raise_for_status()
        assert notified.wait(20), "alertmanager sent no notification"
        # The nflog entry is written after the webhook answers; give the pipeline a moment.
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return (storage / "nflog").read_bytes()


def test_decode_nflog_written_by_alertmanager(
    tmp_path: Path, sink: tuple[int, threading.Event]
) -> None:
    """AM 0.25's nflog snapshot decodes to the right group key, receiver and xxhash, byte-exactly."""
    sink_port, notified = sink
    before = time.time_ns()
    data = run_alertmanager_once(tmp_path, sink_port, notified)
    after = time.time_ns()
    [entry] = decode_state(data)
    assert entry.group_key == '{}:{alertname="A1"}'
    assert entry.receiver == ReceiverKey("wh", "webhook", 0)
    assert entry.firing_alerts == (alert_hash(LABELS),)
    assert entry.resolved_alerts == ()
    assert before <= entry.timestamp <= after
    assert entry.expires_at == entry.timestamp + 2 * H
    # Our encoder writes the very bytes Alertmanager wrote.
    assert [encode_mesh_entry(entry)] == list(iter_delimited(data))
    # And our store loads Alertmanager's file as its snapshot.
    journal = RecordJournal.open(tmp_path / "data", "nflog")
    nflog = Nflog()
    loaded = journal.load_decoded(decode_mesh_entry)
    journal.close()
    assert loaded.problems == ()
    nflog.load_entries(loaded.records)
    assert nflog.query('{}:{alertname="A1"}', ReceiverKey("wh", "webhook", 0)) == entry
