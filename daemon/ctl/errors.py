"""The one way tocsinctl fails: a message, a hint that says what to do, an exit status."""

from __future__ import annotations

import sys
from typing import TextIO

PROG = "tocsinctl"


class CtlError(Exception):
    """A failure reported as ``tocsinctl: error: <message>`` plus an optional hint line."""

    def __init__(self, message: str, hint: str | None = None, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status


def report(err: CtlError, out: TextIO | None = None) -> int:
    """Print ``err`` in kingpin's fatal format (the one amtool uses); return its status.

    kingpin writes ``<prog>: error: <msg>`` and a blank line; scripts that grep amtool's
    stderr keep working, and the hint comes after that line so it never breaks them.
    """
    stream = sys.stderr if out is None else out
    stream.write(f"{PROG}: error: {err.message}\n")
    if err.hint:
        stream.write(f"hint: {err.hint}\n")
    stream.write("\n")
    return err.status
