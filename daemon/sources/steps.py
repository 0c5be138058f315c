"""Pure computations in slices, as the sources write them.

A decoder or evaluator that has a lot to do is a generator that yields at safe points and
returns its result (the shape :func:`daemon.api.cooperative.run_cooperatively` drives on
the API's side). :func:`finish` runs one to its end at once (tools, tests, benchmarks);
:func:`run_sliced` runs it in a task, letting the others run at every yield.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

import trio

T = TypeVar("T")


def finish(steps: Generator[None, None, T]) -> T:
    """Run ``steps`` to its end without yielding; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


async def run_sliced(steps: Generator[None, None, T]) -> T:
    """Run ``steps`` to its end with a trio checkpoint at every yield; its result.

    Cancellation: stops between two slices; the generator is closed.
    """
    try:
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: T = done.value
                return result
            await trio.lowlevel.checkpoint()
    finally:
        steps.close()


__all__ = ["finish", "run_sliced"]
