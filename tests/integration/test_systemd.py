"""tocsin under systemd's notify protocol and watchdog, and the unit files as systemd
reads them."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import ROOT, WebhookSink, run_tocsin, spawn_tocsin, tocsin_argv

CONFIG = """
route: {receiver: r}
receivers: [{name: r, webhook_configs: [{url: 'http://127.0.0.1:9/'}]}]
"""


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's, named in NOTIFY_SOCKET for the daemon."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def receive(sock: socket.socket, until: bytes, timeout: float = 20) -> list[tuple[float, bytes]]:
    """Datagrams (with arrival time) up to and including the first one holding ``until``."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(4096)
        got.append((time.monotonic(), data))
        if until in data:
            return got


def fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def test_ready_reloading_stopping(tmp_path: Path, notify_socket: socket.socket) -> None:
    """READY=1 comes after the API listens; SIGHUP is RELOADING=1 then READY=1; SIGTERM
    sends STOPPING=1."""
    with run_tocsin(tmp_path, CONFIG) as d:
        (_, ready), *_ = [m for m in receive(notify_socket, b"READY=1") if b"READY=1" in m[1]]
        assert re.fullmatch(r"0 alerts, 0 groups", fields(ready)["STATUS"])
        with d.api() as c:
            assert c.get("/-/ready").status_code == 200
        os.kill(d.pid, signal.SIGHUP)
        got = [data for _, data in receive(notify_socket, b"READY=1")]
        reloading = fields(got[0])
        assert reloading["RELOADING"] == "1"
        assert (
            int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )
        assert got[-1] == b"READY=1"
        d.proc.send_signal(signal.SIGTERM)
        assert [data for _, data in receive(notify_socket, b"STOPPING=1")][-1] == b"STOPPING=1"
        assert d.proc.wait(20) == 0


def test_watchdog_pings_stop_while_the_loop_stalls(
    tmp_path: Path, notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHDOG=1 arrives every half interval from the event loop; a stalled loop stops it."""
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # pings every 0.2 s
    with run_tocsin(tmp_path, CONFIG, "--debug.stall-endpoint") as d:
        receive(notify_socket, b"READY=1")
        before = [t for t, data in receive(notify_socket, b"WATCHDOG=1") if data == b"WATCHDOG=1"]
        with d.api() as c:
            stalled = c.post("/-/debug/stall", params={"seconds": "2"})
        assert stalled.status_code == 200
        after = [t for t, data in receive(notify_socket, b"WATCHDOG=1")]
    pings = [*before, *after]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # Nothing was sent while the loop slept, so one gap spans the stall.
    assert max(gaps) >= 1.8


def test_stall_endpoint_only_with_its_flag(tmp_path: Path) -> None:
    """Without --debug.stall-endpoint there is no way to stall the loop over HTTP."""
    with run_tocsin(tmp_path, CONFIG) as d, d.api() as c:
        assert c.post("/-/debug/stall", params={"seconds": "1"}).status_code == 404


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    unit = (ROOT / "systemd" / "tocsin.service").read_text()
    fake = tmp_path / "tocsin"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    path = tmp_path / "tocsin.service"
    path.write_text(unit.replace("/opt/tocsin/bin/tocsin", str(fake)))
    return path


@needs_systemd
def test_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify finds nothing wrong with the service unit."""
    assert SYSTEMD_ANALYZE is not None
    unit = installed_copy(tmp_path)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "tocsin.service" in line and "Unknown user" not in line
    ]
    assert done.returncode == 0 or not problems, done.stdout + done.stderr
    assert not problems, problems


@needs_systemd
def test_unit_security_score(tmp_path: Path) -> None:
    """systemd-analyze security scores the unit at 2.0 or lower ("OK" or better)."""
    assert SYSTEMD_ANALYZE is not None
    unit = installed_copy(tmp_path)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout


MDWE_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_daemon_works_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The unit's MemoryDenyWriteExecute=true holds: under the kernel's MDWE (what
    systemd sets up) tocsin starts, stores a silence and notifies."""
    probe = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, "/bin/true"], timeout=30)
    if probe.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    config = tmp_path / "tocsin.yml"
    with WebhookSink() as sink:
        config.write_text(
            "route: {receiver: r, group_wait: 0s}\n"
            f"receivers: [{{name: r, webhook_configs: [{{url: '{sink.url}'}}]}}]\n"
        )
        argv = [sys.executable, "-c", MDWE_WRAPPER, *tocsin_argv(config, tmp_path / "data")]
        with spawn_tocsin(argv, config) as d:
            d.post_alerts([{"labels": {"alertname": "UnderMDWE"}}])
            assert sink.next().json()["alerts"][0]["labels"]["alertname"] == "UnderMDWE"
            with d.api() as c:
                silence = {
                    "matchers": [{"name": "a", "value": "b", "isRegex": False}],
                    "startsAt": "2020-01-01T00:00:00Z",
                    "endsAt": "2099-01-01T00:00:00Z",
                    "createdBy": "t",
                    "comment": "t",
                }
                assert c.post("/api/v2/silences", json=silence).status_code == 200


@needs_systemd
def test_socket_unit_and_its_drop_in_verify(tmp_path: Path) -> None:
    """tocsin.socket with the service and its socket-activation drop-in pass verify."""
    assert SYSTEMD_ANALYZE is not None
    service = installed_copy(tmp_path)
    (tmp_path / "tocsin.socket").write_text((ROOT / "systemd" / "tocsin.socket").read_text())
    drop_in = tmp_path / "tocsin.service.d" / "socket.conf"
    drop_in.parent.mkdir()
    fake = str(tmp_path / "tocsin")
    drop_in.write_text(
        (ROOT / "systemd" / "socket-activation.conf")
        .read_text()
        .replace("/opt/tocsin/bin/tocsin", fake)
    )
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(tmp_path / "tocsin.socket"), str(service)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
