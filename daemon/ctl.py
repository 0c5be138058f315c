"""``tocsinctl``: the operator's tool, starting with ``check-config`` (amtool's twin).

``tocsinctl check-config FILE...`` prints what ``amtool check-config`` prints, so
scripts that grep amtool's output keep working, plus one line after a failure that
says where in the file the problem is. Exit status: 0 if every file is valid, else 1.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file
from daemon.config.model import Config
from daemon.template.errors import TemplateError
from daemon.template.templateset import TemplateSet

PROG = "tocsinctl"

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


def _describe(exc: Exception) -> str:
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
                out.write(f"  FAILED: {_describe(exc)}\n")
                failed += 1
            else:
                out.write("  SUCCESS\n")
        out.write("\n")
    return failed


def _cmd_check_config(args: argparse.Namespace) -> int:
    files: list[str] = args.files
    if not files:
        if sys.stdin.isatty():
            return _fatal("Failed to read from standard input")
        files = ["/dev/stdin"]
    for path in files:
        if not os.path.exists(path):
            return _fatal(f"path '{path}' does not exist")
    failed = check_config(files, sys.stdout)
    sys.stdout.flush()
    if failed:
        return _fatal(f"failed to validate {failed} file(s)")
    return 0


def _fatal(message: str) -> int:
    # kingpin's fatal format, which amtool uses: "<prog>: error: <msg>" and a blank line.
    sys.stderr.write(f"{PROG}: error: {message}\n\n")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Operate a tocsin alert manager.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check-config",
        help="Validate Alertmanager-compatible config files.",
        description="Validate config files the way amtool check-config does.",
    )
    check.add_argument("files", nargs="*", metavar="FILE", help="config files to check")
    check.set_defaults(run=_cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
