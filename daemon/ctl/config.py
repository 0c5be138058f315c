"""``check-config``, ``config show`` and ``config routes show|test``, as amtool 0.25.

``check-config FILE...`` prints what ``amtool check-config`` prints, so scripts that grep
amtool's output keep working, plus one line after a failure that says where in the file
the problem is. Exit status: 0 if every file is valid, else 1. Unlike amtool it accepts
tocsin's extra receiver types (``dingtalk_configs`` …).

``config routes`` reads the routing tree from ``--config.file`` or, without it, from the
running server's config (``GET /api/v2/status``).
"""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Callable, Sequence
from typing import TextIO

from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file, load_config_text
from daemon.config.model import Config
from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.errors import CtlError
from daemon.ctl.flags import Flag
from daemon.ctl.matchers import parse_label_args
from daemon.ctl.output import format_config
from daemon.ctl.routes import draw, full_tree, matching_tree
from daemon.dispatch.route import RouteNode
from daemon.template.errors import TemplateError
from daemon.template.templateset import TemplateSet

#: Parses a config's template globs; raises with the message to print. The default is
#: :func:`parse_templates`; tests and embedders may pass another.
TemplateCheck = Callable[[Sequence[str]], None]


def parse_templates(globs: Sequence[str]) -> None:
    """Parse every file the globs match into one template set, as amtool does.

    A glob matching nothing is fine; files are taken in sorted order per glob, like
    Go's ``filepath.Glob``.
    """
    templates = TemplateSet()
    for pattern in globs:
        templates.parse_files(sorted(glob.glob(pattern)))


def _summary(config: Config, out: TextIO) -> None:
    out.write("Found:\n")
    out.write(" - global config\n")
    out.write(" - route\n")
    out.write(f" - {len(config.inhibit_rules)} inhibit rules\n")
    out.write(f" - {len(config.receivers)} receivers\n")
    out.write(f" - {len(config.templates)} templates\n")


def describe(exc: Exception) -> str:
    """An exception's text; an OSError reads as Go's ``*PathError`` does."""
    if isinstance(exc, OSError) and exc.filename is not None:
        # Go's *PathError text: "open <path>: <reason>".
        reason = exc.strerror or str(exc)
        return f"open {exc.filename}: {reason[:1].lower()}{reason[1:]}"
    return str(exc)


def _where(err: ConfigError, file: str) -> str | None:
    if err.line is None and not err.key:
        return None
    at = file if err.line is None else f"{file}:{err.line}"
    return f"  at {at}" + (f", key {err.key}" if err.key else "")


def check_config(
    files: Sequence[str],
    out: TextIO,
    *,
    check_templates: TemplateCheck = parse_templates,
) -> int:
    """Check each file as amtool does; returns the number of files that failed."""
    failed = 0
    for path in files:
        out.write(f"Checking '{path}'")
        try:
            config = load_config_file(path)
        except ConfigError as err:
            out.write(f"  FAILED: {err.message}\n")
            where = _where(err, path)
            if where is not None:
                out.write(where + "\n")
            failed += 1
            out.write("\n")
            continue
        out.write("  SUCCESS\n")
        _summary(config, out)
        if config.templates:
            try:
                check_templates(config.templates)
            except (TemplateError, ValueError, OSError) as exc:
                out.write(f"  FAILED: {describe(exc)}\n")
                failed += 1
            else:
                out.write("  SUCCESS\n")
        out.write("\n")
    return failed


def _existing(path: str) -> None:
    if not os.path.exists(path):
        raise CtlError(f"path '{path}' does not exist")


def run_check_config(inv: Invocation) -> int:
    files: list[str] = inv.args.files
    if not files:
        if inv.stdin.isatty():
            raise CtlError(
                "Failed to read from standard input",
                hint="name the files: tocsinctl check-config alertmanager.yml",
            )
        files = ["/dev/stdin"]
    for path in files:
        _existing(path)
    failed = check_config(files, inv.out)
    if failed:
        raise CtlError(f"failed to validate {failed} file(s)")
    return 0


def show(inv: Invocation) -> int:
    """Print the running server's config (extended adds version and uptime)."""
    status = inv.call("GET", "/status")
    inv.out.write(format_config(status, inv.format))
    return 0


def _load(inv: Invocation) -> Config:
    """The config from ``--config.file``, else from the server."""
    path = inv.values["config_file"]
    if path:
        _existing(path)
        if "alertmanager_url" in vars(inv.args):
            inv.err.write("Warning: --config.file flag overrides the --alertmanager.url.\n")
        try:
            return load_config_file(path)
        except ConfigError as err:
            where = _where(err, path)
            raise CtlError(err.message, hint=where.strip() if where else None) from None
    status = inv.call("GET", "/status")
    try:
        return load_config_text(str(status["config"]["original"]))
    except ConfigError as err:
        raise CtlError(f"the server's config does not load here: {err.message}") from None


def routes_show(inv: Invocation) -> int:
    """Draw the whole routing tree."""
    root = RouteNode.build(_load(inv).route)
    inv.out.write("Routing tree:\n" + draw(full_tree(root)) + "\n")
    return 0


def routes_test(inv: Invocation) -> int:
    """Print the receivers a label set routes to; exit 1 if not ``--verify.receivers``."""
    root = RouteNode.build(_load(inv).route)
    try:
        labels = parse_label_args(inv.args.labels)
    except CtlError as err:
        raise CtlError(f"Failed to parse labels: {err.message}", hint=err.hint) from None
    if inv.values["tree"]:
        inv.out.write("Matching routes:\n" + draw(matching_tree(root, labels)) + "\n\n")
    receivers = ",".join(node.receiver for node in root.match(labels))
    inv.out.write(receivers + "\n")
    expected = inv.values["verify_receivers"]
    if expected and expected != receivers:
        inv.out.write("WARNING: Expected receivers did not match resolved receivers.\n")
        return 1
    return 0


CONFIG_FILE = Flag(
    "config.file",
    "config file to read the routes from",
    metavar="FILE",
    shown="the running server's config",
)
TEST_FLAGS = (
    CONFIG_FILE,
    Flag(
        "verify.receivers",
        "expected receivers, comma-separated in tree order; exit 1 if they differ",
        metavar="RECEIVERS",
        shown="no check",
    ),
    Flag("tree", "also draw the routes the labels walk through", "false", kind="bool"),
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = leaf(
        commands,
        "check-config",
        help="Validate Alertmanager-compatible config files.",
        description="Validate config files the way amtool check-config does.",
        run=run_check_config,
    )
    check.add_argument(
        "files", nargs="*", metavar="FILE", help="config files to check (default: stdin)"
    )

    config = group(
        commands, "config", help="View the running config and the routing tree.", default="show"
    )
    leaf(
        config,
        "show",
        help="Print the running config (-o extended adds version and uptime).",
        run=show,
    )
    routes = config.add_parser(
        "routes",
        help="Draw or test the routing tree (default: routes show).",
        description="Draw or test the routing tree.",
    ).add_subparsers(dest="routes_command", metavar="COMMAND")
    leaf(routes, "show", help="Draw the routing tree.", run=routes_show, flags=(CONFIG_FILE,))
    test = leaf(
        routes,
        "test",
        help="Print the receivers that a label set routes to.",
        run=routes_test,
        flags=TEST_FLAGS,
        epilog="Example: tocsinctl config routes test --config.file=am.yml --verify.receivers=db service=db\n",
    )
    test.add_argument("labels", nargs="*", metavar="LABEL", help="label NAME=VALUE")
