"""How long the event loop stalls: the metric that shows a blocking call before users do.

Every task shares one thread, so any synchronous stretch (decoding a huge body, walking
every alert) delays every timer, gossip packet and request. The probe sleeps
:data:`PROBE_INTERVAL` again and again and records how late each wake-up came: a pause
of ``p`` seconds shows as a wake-up between ``p - interval`` and ``p`` late, so the
figures are lower bounds, exact to within the interval.

Once the loop has been idle for :data:`IDLE_AFTER` (see :class:`ProbePace`), the
interval doubles at each idle wake-up up to :data:`PROBE_IDLE_INTERVAL`, and it is back
at :data:`PROBE_INTERVAL` at the first wake-up after any work: 200 wake-ups a second
(and the watch thread's 100) cost an idle daemon 3.1% of a core on this project's VMs,
against 0.01% without the probe. The first pause after an idle spell is then measured
to within :data:`PROBE_IDLE_INTERVAL`.
"""

from __future__ import annotations

import gc
import inspect
import sys
import threading
import time
from typing import Any

import structlog
import trio
from prometheus_client import Gauge, Histogram

from daemon.metrics import REGISTRY

PROBE_INTERVAL = 0.005
#: The longest interval of an idle loop's probe.
PROBE_IDLE_INTERVAL = 0.1
#: How long the loop must have been idle before the probe's interval grows.
IDLE_AFTER = 1.0
#: The share of the time between two wake-ups the loop thread may spend on the CPU and
#: still count as idle (the probe's own wake-up costs a few tens of microseconds).
IDLE_SHARE = 0.05
#: A pause this long is logged with the name of the task holding the loop: the culprit.
SLOW_STEP = 0.05
#: How often the watch thread looks at the loop, and how old the probe's last wake-up
#: must be for it to note the running task (4 probe intervals: the loop is held).
WATCH_INTERVAL = 0.01
SUSPECT_AFTER = 0.02

log = structlog.get_logger(__name__)

pauses = Histogram(
    "tocsin_event_loop_pause_seconds",
    "How late the event loop woke a task that slept 5 ms (up to 100 ms while idle): "
    "how long other work held it.",
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


class StallWatch:
    """Logs ``loop.slow_step`` for every pause of :data:`SLOW_STEP` or more, naming the
    task that held the loop, with no hook on task steps.

    A trio instrument timing every task step named the culprit exactly, but its two
    calls per step (thousands a second) cost 4-5% of the daemon's throughput in issue
    15's ingest (alternating runs with and without it). Instead a thread looks at the
    loop every :data:`WATCH_INTERVAL`: once the probe's last wake-up is
    :data:`SUSPECT_AFTER` old, the loop is held, and the thread notes which task is
    running on it (from the loop thread's stack). When the probe next wakes it knows the
    pause, and logs it with that task's name, its wall time and the loop thread's CPU
    time since the previous wake-up (an upper bound of the step's own).

    The name is the task's holding the loop when the watch looked, after
    :data:`SUSPECT_AFTER` of the pause: a pause made of several shorter steps is
    reported too, under the task found then. ``trio scheduler`` means the scheduler
    itself was running (an I/O poll, a collector pass: see ``gc.slow_collection``).
    """

    def __init__(self) -> None:
        self._loop_thread = threading.get_ident()
        #: perf_counter of the probe's last wake-up, and the loop thread's CPU then.
        self._beat = time.perf_counter()
        self._cpu_mark = time.thread_time()
        #: perf_counter when the probe is next due to wake (its interval after the beat).
        self._due = self._beat + PROBE_INTERVAL
        #: (the beat it was noted after, the task's name), written by the watch thread.
        self._suspect: tuple[float, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tocsin-loop-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

    def beat(self, late: float) -> float:
        """The probe woke ``late`` seconds late (called on the loop thread); the loop
        thread's CPU seconds since the previous wake-up."""
        now_cpu = time.thread_time()
        cpu = now_cpu - self._cpu_mark
        if late >= SLOW_STEP:
            suspect = self._suspect
            task = suspect[1] if suspect is not None and suspect[0] == self._beat else "unknown"
            # CPU time well below wall time means the loop waited for the CPU or the GIL
            # (another process, a worker thread), not that the task itself did too much.
            log.warning(
                "loop.slow_step", task=task, seconds=round(late, 3), cpu_seconds=round(cpu, 3)
            )
        self._beat = time.perf_counter()
        self._cpu_mark = now_cpu
        return cpu

    def sleeping(self, interval: float) -> None:
        """The probe sleeps ``interval`` from its last wake-up (called on the loop thread)."""
        self._due = self._beat + interval

    def _watch(self) -> None:
        wait = WATCH_INTERVAL
        while not self._stop.wait(wait):
            beat, due = self._beat, self._due
            # The loop is held once the probe is SUSPECT_AFTER - PROBE_INTERVAL overdue;
            # the next look is then, not sooner (an idle loop's probe sleeps long).
            overdue = time.perf_counter() - due
            held_after = SUSPECT_AFTER - PROBE_INTERVAL
            wait = max(WATCH_INTERVAL, held_after - overdue)
            if overdue < held_after:
                continue
            suspect = self._suspect
            if suspect is None or suspect[0] != beat:
                self._suspect = (beat, running_task(self._loop_thread))


def running_task(thread_id: int) -> str:
    """The name of the trio task running on thread ``thread_id`` now (read from its stack;
    call from another thread), ``trio scheduler`` between tasks, or ``unknown``."""
    frame = sys._current_frames().get(thread_id)
    below = None
    while frame is not None:
        code = frame.f_code
        if code.co_name == "unrolled_run" and code.co_filename.endswith("_run.py"):
            if below is None or not below.f_code.co_flags & inspect.CO_COROUTINE:
                return "trio scheduler"
            # The scheduler's local ``task`` is the one it is running.
            name = getattr(frame.f_locals.get("task"), "name", None)
            if isinstance(name, str):
                return name
            return f"{below.f_globals.get('__name__', '?')}.{below.f_code.co_qualname}"
        below = frame
        frame = frame.f_back
    return "unknown"


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
    watch = StallWatch()
    collections = _SlowCollections()
    gc.callbacks.append(collections)
    watch.start()
    task_status.started()
    try:
        await _probe(watch)
    finally:
        gc.callbacks.remove(collections)
        watch.stop()


async def _probe(watch: StallWatch) -> None:
    pace = ProbePace(trio.current_time())
    while True:
        woke = trio.current_time() + pace.interval
        await trio.sleep_until(woke)
        now = trio.current_time()
        late = max(0.0, now - woke)
        record_pause(late)
        pace.woke(now, late, watch.beat(late))
        watch.sleeping(pace.interval)


class ProbePace:
    """The probe's interval (pure: told each wake-up's time, lateness and the loop
    thread's CPU since the previous one).

    Work is a wake-up :data:`SUSPECT_AFTER` late (the loop was held), or the loop thread
    on the CPU for :data:`IDLE_SHARE` of the time: of a long interval, or at 5 ms over
    :data:`IDLE_AFTER` (a gossip packet every 200 ms is not work; every wake-up's own
    share at 5 ms would say it is). At 5 ms the probe stays until a whole
    :data:`IDLE_AFTER` passes without work; then the interval doubles at each idle
    wake-up up to :data:`PROBE_IDLE_INTERVAL`, and any work brings it back to 5 ms.
    """

    def __init__(self, now: float) -> None:
        self.interval = PROBE_INTERVAL
        self._window_start = now
        self._window_cpu = 0.0

    def woke(self, now: float, late: float, cpu: float) -> None:
        if late >= SUSPECT_AFTER or (
            self.interval > PROBE_INTERVAL and cpu >= IDLE_SHARE * self.interval
        ):
            self._restart(now, PROBE_INTERVAL)
        elif self.interval > PROBE_INTERVAL:
            self.interval = min(2 * self.interval, PROBE_IDLE_INTERVAL)
        else:
            self._window_cpu += cpu
            spent = now - self._window_start
            if spent >= IDLE_AFTER:
                idle = self._window_cpu < IDLE_SHARE * spent
                self._restart(now, 2 * PROBE_INTERVAL if idle else PROBE_INTERVAL)

    def _restart(self, now: float, interval: float) -> None:
        self.interval = interval
        self._window_start = now
        self._window_cpu = 0.0
