"""The daemon's structlog set-up: its level and format, and loggers built once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from daemon.log import configure


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    """Other tests capture logs on structlog's default set-up: put it back."""
    yield
    structlog.reset_defaults()


def test_level_filters_and_json_lines() -> None:
    out = io.StringIO()
    configure("warn", "json", out)
    log = structlog.get_logger("tests.log")
    log.info("quiet", n=1)
    log.warning("loud", n=2)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["event"], r["level"], r["n"]) for r in lines] == [("loud", "warning", 2)]


def test_a_module_logger_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call on a module's logger used to build a bound logger and a PrintLogger
    (1.8% of the daemon's main thread in issue 15's ingest); the first call now keeps
    them, and later calls, bound or not, still write every line."""
    out = io.StringIO()
    configure("info", "json", out)
    built: list[object] = []
    real = structlog.PrintLoggerFactory.__call__

    def counting(self: structlog.PrintLoggerFactory, *args: object) -> structlog.PrintLogger:
        built.append(args)
        return real(self, *args)

    monkeypatch.setattr(structlog.PrintLoggerFactory, "__call__", counting)
    log = structlog.get_logger("tests.log.once")
    for k in range(5):
        log.info("plain", k=k)
        log.bind(group="g").info("bound", k=k)
    assert len(built) == 1
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["plain", "bound"] * 5
