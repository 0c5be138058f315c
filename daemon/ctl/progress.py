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
    """Counts the steps of an import of ``total`` items and shows them on ``stream``.

    Lines the command prints meanwhile go through :meth:`write`, so that on a terminal
    they appear above the bar rather than glued to its end.
    """

    stream: TextIO
    what: str
    total: int
    done: int = 0
    shown: bool = attrs.field(init=False)
    #: Whether an unfinished bar is on the terminal's current line.
    drawn: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self.shown = self.stream.isatty() and self.total > 0

    def step(self) -> None:
        """One more item finished (imported or refused alike)."""
        self.done += 1
        if not self.shown:
            return
        last = self.done >= self.total
        same = 100 * self.done // self.total == 100 * (self.done - 1) // self.total
        if self.drawn and same and not last:
            return  # the same percent as already drawn
        self._draw()

    def write(self, stream: TextIO, text: str) -> None:
        """Print whole lines of ``text`` to ``stream``; if they land on the bar's
        terminal, the bar's line is cleared first and the bar drawn again below them."""
        above = self.drawn and (stream is self.stream or stream.isatty())
        if above:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        stream.write(text)
        if above:
            stream.flush()
            self._draw()

    def _draw(self) -> None:
        last = self.done >= self.total
        self.stream.write(f"\r{progress_line(self.what, self.done, self.total)}")
        self.stream.write("\n" if last else "")
        self.stream.flush()
        self.drawn = not last
