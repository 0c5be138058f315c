"""Pure computations in slices, as the sources write them.

A decoder or evaluator that has a lot to do is a generator that yields at safe points and
returns its result: :func:`daemon.api.cooperative.run_cooperatively` drives it on the
API's side, the watch's ``_run_sliced`` in its task, and :func:`finish` runs one to its
end at once (tools, tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")


def finish(steps: Generator[None, None, T]) -> T:
    """Run ``steps`` to its end without yielding; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


__all__ = ["finish"]
