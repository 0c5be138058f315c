"""Real processes for end-to-end tests: tocsin, Alertmanager 0.25, and HTTP sinks.

Every process binds 127.0.0.1 only and is stopped by PID when its context exits.
tocsin listens on port 0 and reports the port in its ``web.listening`` log event;
Alertmanager cannot, so it gets a port probed free just before it starts, from below the
kernel's ephemeral range (:func:`free_port`).

Two sinks: :class:`WebhookSink` is a thread-served one for synchronous tests;
:class:`RecordingSink` (via :func:`start_sink`) runs in a trio nursery, records
method, target, headers and body, answers through a callback and can act as a
TLS-terminating CONNECT proxy. Both wait for a request *count* rather than the
first arrival: Alertmanager groups by wall time, so waiting for the expected
number of requests keeps the tests steady under load.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import queue
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


def free_port() -> int:
    """A loopback port free for TCP and UDP, for a child that must be told its port.

    It lies below the kernel's ephemeral range: a port the kernel picks itself (a bind to
    port 0, any outgoing connection) comes from that range, so no sink, client or other
    node of the test can take this one before the child binds it. A port still in
    TIME_WAIT fails the probe (no SO_REUSEADDR) and is skipped.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low > 10_000:
        for _ in range(100):
            port = random.randrange(low - 8_000, low)
            if _bindable(port):
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    """Whether both a TCP and a UDP socket can bind 127.0.0.1:``port`` right now."""
    try:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", port))
            udp.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


@attrs.define
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"

    def json(self) -> Any:
        return json.loads(self.body)


class _BurstServer(http.server.ThreadingHTTPServer):
    # socketserver's listen backlog of 5 overflows when a burst of notifications
    # connects at once: the kernel then drops handshakes, and the senders wait for
    # retransmissions (seconds) or time out. A receiver in service has a larger one.
    request_queue_size = 128


class WebhookSink:
    """An HTTP server on 127.0.0.1:<ephemeral> recording every POST.

    ``requests`` is a queue that :meth:`next` consumes; ``received`` keeps every
    request for :meth:`wait_count`. Each answer is ``status`` with ``reply`` as body.
    """

    def __init__(
        self, status: int = 200, reply: bytes = b"", content_type: str | None = None
    ) -> None:
        self.status = status
        self.reply = reply
        self.content_type = content_type
        self.requests: queue.Queue[Request] = queue.Queue()
        self.received: list[Request] = []
        self._arrived = threading.Condition()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = Request(
                    self.path, dict(self.headers.items()), body, time.monotonic(), "POST"
                )
                sink.requests.put(request)
                with sink._arrived:
                    sink.received.append(request)
                    sink._arrived.notify_all()
                self.send_response(sink.status)
                if sink.content_type is not None:
                    self.send_header("Content-Type", sink.content_type)
                self.send_header("Content-Length", str(len(sink.reply)))
                self.end_headers()
                self.wfile.write(sink.reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _BurstServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
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

    def wait_count(self, count: int, timeout: float = 20.0) -> list[Request]:
        """Every request so far once at least ``count`` have arrived (AssertionError if not)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} of {count} requests in {timeout}s")
            return list(self.received)

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


def tocsin_argv(config: Path, storage: Path, *extra: str, listen: str = "127.0.0.1:0") -> list[str]:
    """tocsin's command line; ``--web.listen-address`` is repeatable, so a caller that
    wants another address passes ``listen`` rather than a second flag."""
    return [
        sys.executable,
        "-m",
        "daemon",
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address={listen}",
        "--cluster.listen-address=",
        "--log.format=json",
        *extra,
    ]


@contextlib.contextmanager
def run_tocsin(tmp: Path, config_text: str, *extra: str) -> Iterator[Proc]:
    """Start tocsin on 127.0.0.1:0 and yield once it listens; SIGTERM at the end."""
    config = tmp / "tocsin.yml"
    config.write_text(config_text)
    with spawn_tocsin(tocsin_argv(config, tmp / "tocsin-data", *extra), config) as proc:
        yield proc


@contextlib.contextmanager
def spawn_tocsin(argv: list[str], config: Path, host: str = "127.0.0.1") -> Iterator[Proc]:
    """Run ``argv`` (tocsin, perhaps behind a wrapper that execs it, so the PID is
    tocsin's) and yield once it logs ``web.listening``; SIGTERM by PID at the end."""
    proc = subprocess.Popen(
        argv,
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
            # Generous: start-up is imports plus binding, but a loaded 2-core machine
            # has been seen to take 20 s before the first log line.
            port = ready.get(timeout=60)
        except queue.Empty:
            raise RuntimeError(f"tocsin did not start: {logs}") from None
        yield Proc(proc, f"http://{host}:{port}", config, logs)
    finally:
        _stop(proc)
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()


@contextlib.contextmanager
def run_alertmanager(
    tmp: Path,
    config_text: str | Path,
    *extra: str,
    storage: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Proc]:
    """Start the real Alertmanager 0.25 on a free loopback port; SIGTERM at the end.

    ``config_text`` is written to ``tmp/alertmanager.yml``; a :class:`Path` is used where
    it is instead (so files it names resolve next to it). ``storage`` defaults to
    ``tmp/am-data``; ``env`` is added to this process's environment.
    """
    if isinstance(config_text, Path):
        config = config_text
    else:
        config = tmp / "alertmanager.yml"
        config.write_text(config_text)
    port = free_port()
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={storage or tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env} if env is not None else None,
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


@contextlib.contextmanager
def run_clustered_alertmanager(tmp: Path, config_text: str, *flags: str) -> Iterator[Proc]:
    """Alertmanager 0.25 with cluster flags (``run_alertmanager`` pins the listen address,
    and kingpin refuses a repeated flag); SIGTERM by PID at the end."""
    config = tmp / "alertmanager.yml"
    config.write_text(config_text)
    port = free_port()
    argv = [
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
    ]
    with (tmp / "am.log").open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: proc.poll() is not None or _answers(f"{url}/-/ready"), timeout=30)
        assert proc.poll() is None, (tmp / "am.log").read_text()
        yield Proc(proc, url, config)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _answers(url: str) -> bool:
    """Whether ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def open_alertmanager(
    tmp: Path, config_text: str, *extra: str
) -> AsyncIterator[AsyncAlertmanager]:
    """The trio form of :func:`run_alertmanager`: yields once ``/-/ready`` answers 200.

    ``extra`` are further command-line flags (e.g. ``--web.external-url=...``).
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
            *extra,
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


EXTERNAL_URL = "http://am.example:9093"

# --- one notification for a whole batch ----------------------------------------------------
#
# Alertmanager inserts a POSTed batch into its aggregation group one alert at a time, and a
# group flushes at once when an alert's startsAt + group_wait is already past (every test
# alert's is). So the first notification sometimes holds only the first alert: seen in 2 of
# 100 groups with one core busy. A silence over everything holds the flushes back until
# the dispatcher has every alert; once it is expired, the next group_interval tick sends
# the whole group. Routes posted to this way need a short group_interval (1s). Resolved
# alerts cannot be held so: a muted flush counts as sent, and Alertmanager then drops the
# resolved alerts from the group (tests/receivers/test_slack.py waits for the flush that
# holds every alert instead).

#: Mutes every alert; Alertmanager moves a start in the past to now.
HOLD_ALL_SILENCE = {
    "matchers": [{"name": "alertname", "value": ".+", "isRegex": True, "isEqual": True}],
    "startsAt": "2000-01-01T00:00:00Z",
    "endsAt": "2099-01-01T00:00:00Z",
    "createdBy": "tests",
    "comment": "hold the group until every alert is in",
}


def all_grouped(groups: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> bool:
    """Whether the groups API's answer ``groups`` lists every alert of ``alerts`` (by labels)."""
    listed = [a["labels"] for group in groups for a in group["alerts"]]
    return all(a["labels"] in listed for a in alerts)


async def post_as_one_batch(client: httpx.AsyncClient, alerts: list[dict[str, Any]]) -> None:
    """POST ``alerts`` so that Alertmanager's first notification of their group holds them all.

    The caller bounds the wait.
    """
    assert all("endsAt" not in a for a in alerts), "a resolved alert cannot be held back"
    held = await client.post("/api/v2/silences", json=HOLD_ALL_SILENCE)
    assert held.status_code == 200, held.text
    response = await client.post("/api/v2/alerts", json=alerts)
    assert response.status_code == 200, response.text
    while True:
        if all_grouped((await client.get("/api/v2/alerts/groups")).json(), alerts):
            break
        await trio.sleep(0.05)
    expired = await client.delete(f"/api/v2/silence/{held.json()['silenceID']}")
    assert expired.status_code == 200, expired.text


async def alertmanager_until(
    tmp: Path,
    config_text: str,
    alerts: list[dict[str, Any]],
    arrived: Callable[[], Awaitable[None]],
    *extra: str,
) -> AsyncAlertmanager:
    """Run Alertmanager 0.25 (external URL :data:`EXTERNAL_URL`), post ``alerts``, await ``arrived()``.

    The alerts go in with :func:`post_as_one_batch`, so the route's group_interval must be
    short. Posting and ``arrived`` have 30 s. Alertmanager has been stopped with SIGTERM (so its
    snapshots are in ``storage``) when this returns the stopped instance.
    """
    async with open_alertmanager(
        tmp, config_text, f"--web.external-url={EXTERNAL_URL}", *extra
    ) as am:
        with trio.fail_after(30):
            await post_as_one_batch(am.client, alerts)
            await arrived()
    return am


@attrs.frozen
class Recorded:
    """One request as :class:`RecordingSink` received it (target is the path and query)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Recorded], tuple[int, bytes]]


def _ok(_: Recorded) -> tuple[int, bytes]:
    return 200, b""


@attrs.define
class RecordingSink:
    """Records requests; answers each with ``respond`` (200 and no body by default).

    With ``tls`` set it also acts as an HTTPS proxy: a CONNECT is accepted and the
    tunnel is terminated here, so proxied requests are recorded like direct ones.
    Header names are lower-cased.
    """

    respond: Responder = _ok
    tls: ssl.SSLContext | None = None
    url: str = ""
    requests: list[Recorded] = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)

    async def handle(self, stream: trio.abc.Stream) -> None:
        buffer = bytearray()
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                if method == "CONNECT":
                    assert self.tls is not None, "CONNECT to a sink without TLS"
                    await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    stream = trio.SSLStream(stream, self.tls, server_side=True)
                    buffer = bytearray(rest)
                    continue
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(rest) < length:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    rest += chunk
                recorded = Recorded(method, target, headers, rest[:length])
                buffer = bytearray(rest[length:])
                self.requests.append(recorded)
                self.changed.set()
                self.changed = trio.Event()
                status, body = self.respond(recorded)
                await stream.send_all(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                    "Content-Type: application/json\r\n\r\n".encode()
                    + body
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError):
            return
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()

    async def wait_for(self, count: int) -> None:
        """Return once at least ``count`` requests have arrived."""
        await self.wait_until(lambda requests: len(requests) >= count)

    async def wait_until(self, done: Callable[[list[Recorded]], bool]) -> None:
        """Return once ``done(requests)`` holds, re-checked on every arrival."""
        while not done(self.requests):
            await self.changed.wait()


def write_self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=36500))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def start_sink(
    nursery: trio.Nursery, tmp: Path | None = None, respond: Responder | None = None
) -> RecordingSink:
    """A :class:`RecordingSink` on 127.0.0.1:<ephemeral> until the nursery is cancelled.

    With ``tmp`` it can terminate CONNECT tunnels, using a self-signed certificate
    written there.
    """
    sink = RecordingSink()
    if tmp is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*write_self_signed(tmp))
        sink.tls = context
    if respond is not None:
        sink.respond = respond
    listeners = await nursery.start(partial(trio.serve_tcp, sink.handle, 0, host="127.0.0.1"))
    sink.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    return sink


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
