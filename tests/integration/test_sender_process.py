"""The sender process end to end: a real daemon, its child, a burst of new groups.

``--notify.sender-process=auto`` (the default) exchanges a burst's webhook requests in
a child process; every notification still arrives exactly once, and the child never
outlives the daemon, whether the daemon stops or is killed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Proc, WebhookSink, run_tocsin, wait_for

CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
"""


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (from any of its threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return found


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def exchanged(daemon: Proc) -> float:
    with daemon.api() as c:
        text = c.get("/metrics").text
    found = re.search(r"^tocsin_notify_sender_process_requests_total (\S+)$", text, re.M)
    assert found is not None, "the sender process counter is not exposed"
    return float(found.group(1))


def burst(daemon: Proc, sink: WebhookSink, tag: str, groups: int = 150) -> None:
    """``groups`` new groups in one POST; each is notified exactly once."""
    before = len(sink.received)
    names = [f"Burst{tag}x{i}" for i in range(groups)]
    response = daemon.post_alerts([{"labels": {"alertname": n, "job": "j"}} for n in names])
    assert response.status_code == 200
    sink.wait_count(before + groups, timeout=30)
    time.sleep(0.2)  # anything extra would have come by now
    got = [r.json()["groupLabels"]["alertname"] for r in sink.received[before:]]
    assert sorted(got) == sorted(names)


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_burst_is_notified_once_per_group_with_and_without_the_child(
    tmp_path: Path, mode: str
) -> None:
    with (
        WebhookSink() as sink,
        run_tocsin(
            tmp_path, CONFIG.format(url=sink.url), f"--notify.sender-process={mode}"
        ) as daemon,
    ):
        if mode == "off":
            burst(daemon, sink, "off")
            assert children(daemon.pid) == []
            assert exchanged(daemon) == 0
            return
        child = wait_for(lambda: next(iter(children(daemon.pid)), None), timeout=30)
        # The child reports ready in the background; until then bursts go in-process.
        for round_ in range(20):
            burst(daemon, sink, str(round_))
            if exchanged(daemon) > 0:
                break
        assert exchanged(daemon) > 0
        assert children(daemon.pid) == [child]
    # run_tocsin stopped the daemon with SIGTERM: the child ended with it.
    wait_for(lambda: gone(child), timeout=10)


@contextlib.contextmanager
def daemon_with_child(tmp_path: Path) -> Iterator[tuple[WebhookSink, Proc, int]]:
    """A daemon (default flags) notifying a sink, and its sender process's PID."""
    with (
        WebhookSink() as sink,
        run_tocsin(tmp_path, CONFIG.format(url=sink.url)) as daemon,
    ):
        yield sink, daemon, wait_for(lambda: next(iter(children(daemon.pid)), None), timeout=30)


def test_the_child_ends_when_the_daemon_is_killed(tmp_path: Path) -> None:
    with daemon_with_child(tmp_path) as (_, daemon, child):
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.proc.wait(10)
        # Its input pipe reached end of file: it exits by itself.
        wait_for(lambda: gone(child), timeout=10)


def test_a_killed_child_is_replaced_and_the_daemon_keeps_notifying(tmp_path: Path) -> None:
    with daemon_with_child(tmp_path) as (sink, daemon, first):
        os.kill(first, signal.SIGKILL)
        second = wait_for(
            lambda: next((c for c in children(daemon.pid) if c != first), None), timeout=30
        )
        assert second != first
        burst(daemon, sink, "after")
        exits = [e for e in daemon.log_lines if e.get("event") == "notify.sender_process_exited"]
        assert exits and exits[0]["returncode"] == -signal.SIGKILL
