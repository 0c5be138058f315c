"""Flags, and the config files that set their defaults, as amtool reads them.

amtool (kingpin) takes a flag's value from, in order: the command line, the first
config file that names the flag (keys are flag names: ``alertmanager.url: ...``), and
the flag's built-in default. tocsinctl does the same with one more file in front:

1. ``$HOME/.config/tocsin/tocsinctl.yml`` (tocsinctl's own);
2. ``$HOME/.config/prometheus/amtool.yml`` and ``/etc/prometheus/amtool.yml`` (amtool's,
   as Debian's amtool 0.25 reads them), so an existing amtool setup works unchanged.

Every flag is declared once as a :class:`Flag`; argparse only collects what was typed
(its defaults are suppressed) and :func:`resolve` applies the files and defaults. Global
flags are accepted before and after the command, as kingpin accepts them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from daemon.ctl.errors import CtlError
from daemon.ctl.output import DEFAULT_DATE_FORMAT, FORMATS

Kind = Literal["str", "bool", "list", "int"]

#: amtool's renamed config keys: the old name counts unless the new one is also set.
LEGACY_KEYS = {"comment_required": "require-comment"}


@attrs.frozen
class Flag:
    """One command-line flag; ``default`` is in its textual (config-file) form."""

    name: str
    help: str
    default: str | None = None
    short: str | None = None
    kind: Kind = "str"
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    #: What the default means, for --help, when no value stands for it (``--start``: now).
    shown: str | None = None

    @property
    def dest(self) -> str:
        return self.name.replace(".", "_").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Declare this flag on ``parser``; the value is resolved later by :func:`resolve`."""
        names = [f"--{self.name}"] + ([f"-{self.short}"] if self.short else [])
        # Every flag states its default; an unset one says so rather than staying silent.
        default = self.shown or ("not set" if self.default is None else self.default or "''")
        shown = f" (default: {default})"
        kwargs: dict[str, Any] = {
            "dest": self.dest,
            "default": argparse.SUPPRESS,
            "help": self.help + shown,
        }
        if self.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            if self.kind == "list":
                kwargs["action"] = "append"
            if self.choices:
                kwargs["choices"] = self.choices
            kwargs["metavar"] = self.metavar or self.name.split(".")[-1].upper().replace("-", "_")
        parser.add_argument(*names, **kwargs)

    def convert(self, text: str | bool | list[str], origin: str) -> Any:
        """The typed value from a command-line or config-file value."""
        if self.kind == "bool":
            if isinstance(text, bool):
                return text
            lowered = str(text).lower()
            if lowered not in ("true", "false"):
                raise CtlError(f"{origin}: {self.name} must be true or false, not {text!r}")
            return lowered == "true"
        if self.kind == "list":
            return list(text) if isinstance(text, list) else [str(text)]
        if self.kind == "int":
            try:
                return int(str(text))
            except ValueError:
                raise CtlError(f"{origin}: {self.name} must be a number, not {text!r}") from None
        if self.choices and text not in self.choices:
            raise CtlError(
                f"{origin}: {self.name} must be one of {', '.join(self.choices)}, not {text!r}"
            )
        return text


DEFAULT_URL = "http://localhost:9093/"

GLOBAL_FLAGS: tuple[Flag, ...] = (
    Flag(
        "alertmanager.url",
        "URL of the tocsin (or Alertmanager) to talk to; user:password@ in it is sent as "
        "basic auth",
        DEFAULT_URL,
    ),
    Flag(
        "output",
        "output format: simple, extended or json",
        "simple",
        short="o",
        choices=FORMATS,
    ),
    Flag("timeout", "timeout of each request to the server (Go duration)", "30s"),
    Flag(
        "http.config.file",
        "HTTP client configuration file (Prometheus http_config: basic_auth, authorization, "
        "bearer_token(_file), tls_config, proxy_url)",
        metavar="FILENAME",
    ),
    Flag("date.format", "Go time layout of dates in tables", DEFAULT_DATE_FORMAT),
    Flag(
        "version-check",
        "warn when the server's version does not match this tocsinctl (one more request)",
        "true",
        kind="bool",
    ),
    Flag(
        "verbose",
        "accepted for amtool's scripts; it has no effect there either",
        "false",
        short="v",
        kind="bool",
    ),
    Flag("tenant", "tenant to act for: sent as the X-Scope-OrgID header", metavar="NAME"),
    Flag("bearer-token", "token sent as 'Authorization: Bearer <token>'", metavar="TOKEN"),
    Flag(
        "bearer-token-file",
        "file holding the token sent as 'Authorization: Bearer <token>'",
        metavar="FILE",
    ),
)


def config_files(home: str | None = None) -> list[Path]:
    """The config files, most important first."""
    base = Path(home if home is not None else os.path.expanduser("~"))
    return [
        base / ".config" / "tocsin" / "tocsinctl.yml",
        base / ".config" / "prometheus" / "amtool.yml",
        Path("/etc/prometheus/amtool.yml"),
    ]


@attrs.frozen
class FileValue:
    value: str
    path: Path


def read_config_files(paths: Sequence[Path]) -> dict[str, FileValue]:
    """Flag values from ``paths``; a key's first appearance wins, as in amtool."""
    found: dict[str, FileValue] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CtlError(f"could not load config file {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise CtlError(
                f"could not load config file {path}: {exc}",
                hint="the file must be a YAML mapping of flag names to values",
            ) from None
        if not isinstance(data, dict):
            raise CtlError(
                f"could not load config file {path}: not a mapping",
                hint="write it as 'alertmanager.url: http://host:9093', one flag per line",
            )
        for key, raw in data.items():
            name = str(key)
            if name in LEGACY_KEYS:
                if LEGACY_KEYS[name] in data:
                    continue
                name = LEGACY_KEYS[name]
            value = str(raw).lower() if isinstance(raw, bool) else str(raw)
            found.setdefault(name, FileValue(value, path))
    return found


def resolve(
    namespace: argparse.Namespace, flags: Sequence[Flag], files: Mapping[str, FileValue]
) -> dict[str, Any]:
    """Each flag's value: typed on the command line, else from a config file, else default."""
    values: dict[str, Any] = {}
    given = vars(namespace)
    for flag in flags:
        if flag.dest in given:
            values[flag.dest] = flag.convert(given[flag.dest], f"--{flag.name}")
        elif flag.name in files:
            entry = files[flag.name]
            values[flag.dest] = flag.convert(entry.value, str(entry.path))
        elif flag.default is not None:
            values[flag.dest] = flag.convert(flag.default, "default")
        else:
            values[flag.dest] = [] if flag.kind == "list" else None
    return values
