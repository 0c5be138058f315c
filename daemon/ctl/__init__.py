"""``tocsinctl``: the operator's tool, at parity with amtool 0.25.

Commands (one module each): ``alert query|add``, ``silence add|query|update|expire|
import``, ``check-config``, ``config show``, ``config routes show|test``, ``cluster
show``, ``template render``; and tocsin's own ``receiver test``, ``rules check|test``
and ``completion``.
A group named alone runs its default command, as in amtool (``alert`` is ``alert query``).

Error handling: a command raises :class:`~daemon.ctl.errors.CtlError`; :func:`main`
prints it in amtool's ``<prog>: error: <msg>`` form plus a hint, and returns its exit
status. A reader that goes away (``tocsinctl ... | head``) ends the run quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import httpx

from daemon import __version__
from daemon.ctl import (
    alert,
    cluster,
    completion,
    config,
    history,
    nm_import,
    receiver,
    silence,
    template,
    why,
)
from daemon.ctl import tenant as tenant_command
from daemon.ctl.command import Invocation
from daemon.ctl.config import check_config, parse_templates
from daemon.ctl.errors import PROG, CtlError, report
from daemon.ctl.flags import GLOBAL_FLAGS, config_files, read_config_files, resolve
from daemon.ctl.rules import register as register_rules
from daemon.ctl.template import default_template_data, render_template, template_data_from_json

__all__ = [
    "build_parser",
    "check_config",
    "default_template_data",
    "main",
    "parse_templates",
    "render_template",
    "template_data_from_json",
]

#: The command a group runs when it is named alone (amtool's kingpin ``Default()``).
DEFAULT_SUBCOMMANDS = {
    ("alert",): "query",
    ("silence",): "query",
    ("cluster",): "show",
    ("config",): "show",
    ("config", "routes"): "show",
    ("template",): "render",
    ("receiver",): "test",
    ("tenant",): "list",
    ("tenant", "config"): "get",
    ("rules",): "check",
    ("import",): "notification-manager",
}

_CONFIG_HELP = """\
Flags may also be set in a YAML file, one 'flag-name: value' per line (for example
'alertmanager.url: http://tocsin:9093' or 'output: extended'). The first file that
sets a flag wins: ~/.config/tocsin/tocsinctl.yml, then amtool's
~/.config/prometheus/amtool.yml and /etc/prometheus/amtool.yml. The command line
beats every file.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate a tocsin (or Alertmanager) server: alerts, silences, config, "
        "cluster, templates.",
        epilog=_CONFIG_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG}, version {__version__}")
    for flag in GLOBAL_FLAGS:
        flag.add_to(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    alert.register(commands)
    silence.register(commands)
    config.register(commands)
    cluster.register(commands)
    template.register(commands)
    receiver.register(commands)
    history.register(commands)
    tenant_command.register(commands)
    why.register(commands)
    register_rules(commands)
    nm_import.register(commands)
    completion.register(commands, parser)
    return parser


def _takes_value(token: str) -> bool:
    """Whether a global flag token (without ``=``) consumes the next argument."""
    for flag in GLOBAL_FLAGS:
        if token in (f"--{flag.name}", f"-{flag.short}") and flag.kind != "bool":
            return True
    return False


def with_default_subcommands(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with the default subcommand inserted where a group is named alone.

    It goes right after the group's name, so that the default command's own flags
    (``silence -q``) reach it.
    """
    args = list(argv)
    if "-h" in args or "--help" in args:
        return args
    path: tuple[str, ...] = ()
    after = 0
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            break
        if token.startswith("-"):
            i += 2 if "=" not in token and _takes_value(token) else 1
            continue
        if path and path not in DEFAULT_SUBCOMMANDS:
            return args
        if path and token not in _subcommands(parser, path):
            break
        path = (*path, token)
        after = i + 1
        i += 1
    if path in DEFAULT_SUBCOMMANDS:
        args.insert(after, DEFAULT_SUBCOMMANDS[path])
    return args


def _subparser(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> argparse.ArgumentParser | None:
    current = parser
    for name in path:
        found = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                found = action.choices[name]
        if found is None:
            return None
        current = found
    return current


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> set[str]:
    sub = _subparser(parser, path)
    if sub is None:
        return set()
    return {
        name
        for action in sub._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def main(
    argv: Sequence[str] | None = None,
    *,
    home: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Run tocsinctl; returns the exit status. ``home`` and ``transport`` are for tests."""
    parser = build_parser()
    try:
        args = parser.parse_args(
            with_default_subcommands(sys.argv[1:] if argv is None else argv, parser)
        )
        try:
            values = resolve(args, args.flags, read_config_files(config_files(home)))
            status: int = args.run(Invocation(values, args, transport=transport))
        except CtlError as err:
            # What the command printed before failing goes out before the error.
            sys.stdout.flush()
            return report(err)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader left (`tocsinctl ... | head`). Point stdout at /dev/null so the
        # interpreter's final flush does not fail again, and exit as a SIGPIPE death.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
