"""A progress bar for long imports, drawn on stderr only when a person watches it.

On a terminal the bar redraws one line in place (``\\r``), at most once per percent
so that thousands of items do not flood a slow terminal, and ends the line at the last
step; off one (a pipe, a log file, cron) it prints nothing, since a stream of redraws is
noise there and scripts read stderr for errors.
"""

from __future__ import annotations

from typing import TextIO

import attrs

_WIDTH = 30


def progress_line(what: str, done: int, total: int) -> str:
    """``importing silences [#####-----] 5/10``: a bar of fixed width and the count."""
    filled = _WIDTH * done // total if total else _WIDTH
    return f"importing {what} [{'#' * filled}{'-' * (_WIDTH - filled)}] {done}/{total}"


@attrs.define
class ProgressBar:
    """Counts the steps of an import of ``total`` items and shows them on ``stream``."""

    stream: TextIO
    what: str
    total: int
    done: int = 0
    shown: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.shown = self.stream.isatty() and self.total > 0

    def step(self) -> None:
        """One more item finished (imported or refused alike)."""
        self.done += 1
        if not self.shown:
            return
        last = self.done >= self.total
        if not last and 100 * self.done // self.total == 100 * (self.done - 1) // self.total:
            return  # the same percent as already drawn
        end = "\n" if last else ""
        self.stream.write(f"\r{progress_line(self.what, self.done, self.total)}{end}")
        self.stream.flush()
