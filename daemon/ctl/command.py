"""What every command gets (:class:`Invocation`) and how commands are declared (:func:`leaf`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import attrs
import httpx

from daemon.ctl.client import Api, Connection
from daemon.ctl.flags import GLOBAL_FLAGS, Flag
from daemon.ctl.output import Format


@attrs.define
class Invocation:
    """One run of a command: resolved flag values, positional arguments and the streams."""

    values: dict[str, Any]
    args: argparse.Namespace
    out: TextIO = attrs.field(factory=lambda: sys.stdout)
    err: TextIO = attrs.field(factory=lambda: sys.stderr)
    stdin: TextIO = attrs.field(factory=lambda: sys.stdin)
    #: Replaces the network in tests (an ASGI or mock transport).
    transport: httpx.BaseTransport | None = None

    @property
    def format(self) -> Format:
        fmt: Format = self.values["output"]
        return fmt

    @property
    def date_format(self) -> str:
        return str(self.values["date_format"])

    def connection(self) -> Connection:
        return Connection.from_values(self.values)

    def api(self) -> Api:
        return Api.open(self.connection(), self.transport)


Run = Callable[[Invocation], int]


def leaf(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    run: Run,
    flags: Sequence[Flag] = (),
    description: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """A command that runs: the global flags, its own ``flags``; positionals added by caller."""
    parser = commands.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag in (*GLOBAL_FLAGS, *flags):
        flag.add_to(parser)
    parser.set_defaults(run=run, flags=(*GLOBAL_FLAGS, *flags))
    return parser


def group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    default: str,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command with subcommands; ``default`` runs when none is named, as in amtool."""
    parser = commands.add_parser(name, help=f"{help} (default: {name} {default})", description=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
