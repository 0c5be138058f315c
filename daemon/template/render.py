"""The loaded template sets of one config and the integrations' :class:`Templater`.

Alertmanager parses its built-in ``default.tmpl`` and ``email.tmpl``, then every file
matched by the config's ``templates`` globs (each glob's matches in lexical order), into
one text set and one html set (spec §9.7). A config field renders as an anonymous
template in a clone of that set, executed with the notification's data (§10).

Pure except :meth:`Templates.load`, which reads the files.

Error handling: a file that does not parse raises :class:`TemplateError` naming the
file and line, so the config loader can report a bad template as a config error;
rendering errors propagate from :meth:`Templates.render` as ``TemplateError``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Protocol

import attrs

from daemon.alert import Alert
from daemon.template.data import TemplateData, build_data
from daemon.template.errors import TemplateError, TemplateParseError
from daemon.template.templateset import TemplateSet


class Notification(Protocol):
    """The facts of one notification that rendering needs, besides its alerts.

    The notifier's context has them; naming only these keeps templates free of the
    notification pipeline.
    """

    @property
    def receiver(self) -> str: ...

    @property
    def group_labels(self) -> Mapping[str, str]: ...

    @property
    def now(self) -> int: ...


#: The built-in files, parsed in this order before the user's.
BUILTIN_FILES = ("default.tmpl", "email.tmpl")


def builtin_text(name: str) -> str:
    """The text of one built-in template file."""
    return resources.files("daemon.template").joinpath(name).read_text(encoding="utf-8")


def expand_globs(globs: Sequence[str]) -> list[str]:
    """The files the globs match, glob by glob, each glob's matches sorted (Go's Glob)."""
    paths: list[str] = []
    for pattern in globs:
        paths.extend(sorted(glob.glob(pattern)))
    return paths


def _parse_into(sets: Sequence[TemplateSet], text: str, name: str, where: str) -> None:
    for tset in sets:
        try:
            tset.parse(text, name)
        except TemplateParseError as err:
            # The engine names the template by base name; the operator needs the path.
            raise TemplateError(f"{where}: {err}") from None


_BUILTIN_SETS: list[tuple[TemplateSet, TemplateSet]] = []


def _builtin_sets() -> tuple[TemplateSet, TemplateSet]:
    """The text and html sets of the built-in files alone, parsed on first use."""
    if not _BUILTIN_SETS:
        text, html = TemplateSet(), TemplateSet(html=True)
        for name in BUILTIN_FILES:
            _parse_into((text, html), builtin_text(name), name, name)
        _BUILTIN_SETS.append((text, html))
    return _BUILTIN_SETS[0]


@attrs.frozen
class Templates:
    """The text and html template sets of one config, bound to an external URL."""

    text: TemplateSet
    html: TemplateSet
    external_url: str = ""

    @classmethod
    def load(cls, globs: Sequence[str] = (), external_url: str = "") -> Templates:
        """Built-ins first, then the user's files; raises :class:`TemplateError`."""
        # The built-ins are parsed once per process and cloned (sharing their parsed
        # trees): with one config per tenant, parsing them per config cost ~50 ms
        # and ~300 KB per tenant (benchmarks/tenancy.py).
        text, html = (tset.clone() for tset in _builtin_sets())
        for path in expand_globs(globs):
            try:
                with open(path, encoding="utf-8") as f:
                    content = f.read()
            except OSError as err:
                raise TemplateError(f"{path}: {err.strerror or err}") from None
            _parse_into((text, html), content, os.path.basename(path), path)
        return cls(text, html, external_url)

    def with_external_url(self, external_url: str) -> Templates:
        """The same sets, rendering ``.ExternalURL`` as ``external_url``."""
        return attrs.evolve(self, external_url=external_url)

    def data(self, ctx: Notification, alerts: Sequence[Alert]) -> TemplateData:
        """The ``.`` of a notification of ``alerts`` at ``ctx.now``."""
        return build_data(ctx.receiver, ctx.group_labels, alerts, self.external_url, ctx.now)

    def render(
        self, text: str, ctx: Notification, alerts: Sequence[Alert], *, html: bool = False
    ) -> str:
        """One config field rendered as Alertmanager does; raises ``TemplateError``."""
        return self.render_data(text, self.data(ctx, alerts), ctx.now, html=html)

    def render_data(self, text: str, data: TemplateData, now: int, *, html: bool = False) -> str:
        """``text`` executed on prepared ``data`` (lets a caller render many fields once)."""
        tset = self.html if html else self.text
        return tset.execute_text(text, data, now=now)


__all__ = ["BUILTIN_FILES", "Notification", "Templates", "builtin_text", "expand_globs"]
