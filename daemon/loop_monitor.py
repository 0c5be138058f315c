"""How long the event loop stalls: the metric that shows a blocking call before users do.

Every task shares one thread, so any synchronous stretch (decoding a huge body, walking
every alert) delays every timer, gossip packet and request. The probe sleeps
:data:`PROBE_INTERVAL` again and again and records how late each wake-up came: a pause
of ``p`` seconds shows as a wake-up between ``p - PROBE_INTERVAL`` and ``p`` late, so the
figures are lower bounds, exact to within the interval. 200 wake-ups a second cost well
under 1% of a core.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import structlog
import trio
from prometheus_client import Gauge, Histogram

from daemon.metrics import REGISTRY

PROBE_INTERVAL = 0.005
#: A single task step this long is logged with the task's name: it names the culprit.
SLOW_STEP = 0.05

log = structlog.get_logger(__name__)

pauses = Histogram(
    "tocsin_event_loop_pause_seconds",
    "How late the event loop woke a task that slept 5 ms: how long other work held it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
max_pause = Gauge(
    "tocsin_event_loop_max_pause_seconds",
    "The longest event-loop pause since the daemon started serving.",
    registry=REGISTRY,
)


_worst = 0.0


def record_pause(seconds: float) -> None:
    """Count one wake-up that came ``seconds`` late (bookkeeping for the probe)."""
    global _worst
    pauses.observe(seconds)
    if seconds > _worst:
        _worst = seconds
        max_pause.set(seconds)


class SlowStepLogger(trio.abc.Instrument):
    """Logs ``loop.slow_step`` for every task step that holds the loop :data:`SLOW_STEP`.

    It runs around every task step (thousands a second), so it reads only the vDSO
    clock there. The thread's CPU clock is a system call (about 1 us, and a point where
    a loaded machine deschedules the thread): read twice a step, it was the largest
    single item in a profile of the paced-notification benchmark. The CPU figure of a
    slow step is taken against the probe's last reading instead.
    """

    def __init__(self) -> None:
        self._started = time.perf_counter()
        #: The loop thread's CPU time when the probe last ran (see :meth:`mark_cpu`).
        self._cpu_mark = time.thread_time()

    def mark_cpu(self) -> None:
        """Note the thread's CPU time now (the probe calls this every wake-up)."""
        self._cpu_mark = time.thread_time()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self._started
        if took >= SLOW_STEP:
            # CPU time well below wall time means the step waited for the CPU or the GIL
            # (another process, a worker thread), not that the task itself did too much.
            # An upper bound: it includes the other steps since the probe last ran.
            cpu = time.thread_time() - self._cpu_mark
            log.warning(
                "loop.slow_step", task=task.name, seconds=round(took, 3), cpu_seconds=round(cpu, 3)
            )


class _SlowCollections:
    """Logs ``gc.slow_collection`` for every cyclic-GC pass that takes :data:`SLOW_STEP`:
    a full pass walks every tracked object, which with a big store is the pause."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        if took >= SLOW_STEP:
            log.warning(
                "gc.slow_collection",
                generation=info["generation"],
                seconds=round(took, 3),
                tracked=len(gc.get_objects(info["generation"])),
            )


async def run_probe(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Measure event-loop pauses until cancelled.

    Cancellation: stops at its next sleep; nothing to clean up.
    """
    instrument = SlowStepLogger()
    collections = _SlowCollections()
    trio.lowlevel.add_instrument(instrument)
    gc.callbacks.append(collections)
    task_status.started()
    try:
        await _probe(instrument)
    finally:
        gc.callbacks.remove(collections)
        trio.lowlevel.remove_instrument(instrument)


async def _probe(instrument: SlowStepLogger) -> None:
    while True:
        woke = trio.current_time() + PROBE_INTERVAL
        await trio.sleep_until(woke)
        record_pause(max(0.0, trio.current_time() - woke))
        instrument.mark_cpu()
