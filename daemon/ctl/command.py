"""What every command gets (:class:`Invocation`) and how commands are declared (:func:`leaf`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import attrs
import httpx

from daemon import __version__
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
    #: ``GET /api/v2/status`` as the version check read it; commands that want it reuse it.
    status: dict[str, Any] | None = None

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
        """A client for the server; warns first if its version does not fit (amtool does)."""
        api = Api.open(self.connection(), self.transport)
        if self.values["version_check"] and self.status is None:
            try:
                resp = api.request("GET", "/api/v2/status")
            except BaseException:
                api.close()
                raise
            try:
                status = resp.json() if resp.is_success else None
            except ValueError:
                status = None
            # Like amtool: a server that cannot say its version is no reason to stop.
            if isinstance(status, dict):
                self.status = status
                warning = version_warning(status)
                if warning:
                    self.err.write(warning + "\n")
        return api

    def call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
    ) -> Any:
        """One API v2 call on a client of its own: the decoded answer (see :meth:`Api.call`)."""
        api = self.api()
        try:
            if (method, path) == ("GET", "/status") and self.status is not None:
                return self.status
            return api.call(method, path, params=params, json=json)
        finally:
            api.close()


#: The API tocsinctl speaks is Alertmanager's of this release.
ALERTMANAGER_API = "0.25"


def _major_minor(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


def version_warning(status: Mapping[str, Any]) -> str | None:
    """A warning if the server's version does not match what this tocsinctl speaks.

    A tocsin must be tocsinctl's own major.minor; an Alertmanager must be 0.25, whose
    API and formats tocsinctl reproduces.
    """
    info = status.get("versionInfo")
    if not isinstance(info, dict) or not info.get("version"):
        return None
    version = str(info["version"])
    if info.get("buildUser") == "tocsin" and info.get("goVersion") == "python":
        if _major_minor(version) != _major_minor(__version__):
            return (
                f"Warning: tocsinctl version ({__version__}) and tocsin version "
                f"({version}) are different."
            )
        return None
    if _major_minor(version) != ALERTMANAGER_API:
        return (
            f"Warning: tocsinctl speaks Alertmanager {ALERTMANAGER_API}'s API; "
            f"the server is Alertmanager {version}."
        )
    return None


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
