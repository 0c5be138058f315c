"""structlog set-up: JSON off a TTY (systemd, CI), console output on a TTY.

Only synchronous logger methods are used anywhere: structlog's async methods run in a
thread pool that trio does not provide.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

LEVELS = ("debug", "info", "warn", "error")


def configure(level: str = "info", fmt: str | None = None, stream: TextIO | None = None) -> None:
    """Set up structlog. ``fmt`` is ``json``, ``logfmt``, ``console`` or None (auto by TTY)."""
    out = stream or sys.stdout
    if fmt is None:
        fmt = "console" if out.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif fmt == "logfmt":
        renderer = structlog.processors.LogfmtRenderer(key_order=["ts", "level", "event"])
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    numeric = logging.WARNING if level == "warn" else getattr(logging, level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        # Each module's logger is built once, at its first call: without the cache every
        # call (two per notification, filtered out or not) built a bound logger and a
        # PrintLogger anew, 1.8% of the main thread in issue 15's ingest. Only the
        # daemon's start-up calls this; tests that capture logs run on structlog's
        # default, uncached set-up, which capture_logs can swap under loggers in use.
        cache_logger_on_first_use=True,
    )
