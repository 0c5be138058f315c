"""The one error type configuration loading raises."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration that does not load.

    ``message`` is Alertmanager 0.25's exact text for the problem, so ``tocsinctl
    check-config`` and ``amtool check-config`` print the same verdict. ``file``, ``line``
    (1-based) and ``key`` (a dotted path such as ``route.routes[0].group_by``) are our
    own additions: they say where to look, and are None when unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.key = key

    def with_file(self, file: str) -> ConfigError:
        """A copy that names ``file``; the loader learns the file name last."""
        return ConfigError(self.message, file=file, line=self.line, key=self.key)

    @property
    def location(self) -> str:
        """``file:line: key`` with the unknown parts left out ("" if all are unknown)."""
        parts: list[str] = []
        if self.file is not None:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            parts.append(str(self.line))
        if self.key:
            parts.append(self.key)
        return ": ".join(parts)

    def __str__(self) -> str:
        where = self.location
        return f"{where}: {self.message}" if where else self.message
