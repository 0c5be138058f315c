"""Tenant configs, Mimir's shape: validation, and the files that keep them across restarts.

A tenant config is ``{alertmanager_config: "<yaml>", template_files: {name: text}}``.
Rules:

* Validation is Alertmanager's (the config loader and the template parser) plus the
  tenant restrictions: nothing may read a local file, so no key ending in ``_file`` or
  ``_files`` anywhere (``password_file``, ``credentials_file``, TLS ``ca_file`` /
  ``cert_file`` / ``key_file`` …); ``templates:`` entries may only name files given in
  ``template_files`` (as in Mimir); template file names are plain names.
* The files live under ``<storage>/tenants/<id>/config/``: ``alertmanager.yml`` and one
  file per template. The tenant id is checked before it becomes a path
  (:func:`daemon.tenancy.tenants.check_tenant_id`), and so is every template name.
* A write goes to ``config.new/`` and is loaded from there (:func:`stage`), so what is
  stored is exactly what runs; only once the pipeline accepted it is it swapped in
  (:func:`commit`). A config that does not load leaves the old one untouched. Blocking: the shell runs these functions in a thread.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file
from daemon.config.model import Config
from daemon.template.errors import TemplateError
from daemon.template.render import Templates
from daemon.tenancy.tenants import check_tenant_id

CONFIG_NAME = "alertmanager.yml"
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
#: The folder, under ``--storage.path``, holding one folder per tenant.
TENANTS_DIR = "tenants"


class _BlockDumper(yaml.SafeDumper):
    """Dumps multi-line strings as ``|`` blocks (PyYAML falls back where it must)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


class TenantConfigError(ValueError):
    """A tenant config that is refused: the message is the 400's text and names the key."""


@attrs.frozen
class TenantConfigDoc:
    """A tenant's config as posted (and as ``GET /api/v1/alerts`` returns it)."""

    alertmanager_config: str
    template_files: Mapping[str, str] = attrs.field(factory=dict)

    def to_yaml(self) -> str:
        """Mimir's answer shape, multi-line texts as block scalars so they read as written."""
        return yaml.dump(
            {
                "template_files": dict(self.template_files),
                "alertmanager_config": self.alertmanager_config,
            },
            Dumper=_BlockDumper,
            sort_keys=False,
            allow_unicode=True,
        )


#: What a tenant's YAML may grow to once its aliases are followed, and how deep it may
#: nest. A billion-laughs body (nine levels of ten aliases, 1,300 bytes) expands to 10**9
#: nodes, and walking it stalled the thread for good; yaml.v2 refuses such a document as
#: "excessive aliasing" too. Real configs are orders of magnitude below both bounds.
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 200


def _load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load(text)``, refused (as ``what``) when malformed, self-referring,
    expanding past :data:`MAX_EXPANDED_NODES` or nesting past :data:`MAX_DEPTH`."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TenantConfigError(f"{what}: {exc}") from None
    except RecursionError:
        raise TenantConfigError(f"{what}: nested too deeply") from None
    _check_shape(raw, what)
    return raw


def _check_shape(root: Any, what: str) -> None:
    """Size and depth of ``root`` with aliases expanded, computed once per distinct
    container (PyYAML shares one object per anchor), without recursion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if not children_done:
            if key in size:
                continue
            if key in open_:
                raise TenantConfigError(f"{what}: a YAML alias refers to itself")
            open_.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in items if isinstance(child, (dict, list)))
            continue
        open_.discard(key)
        kids = [c for c in items if isinstance(c, (dict, list))]
        size[key] = 1 + len(items) - len(kids) + sum(size[id(c)] for c in kids)
        depth[key] = 1 + max((depth[id(c)] for c in kids), default=0)
        if size[key] > MAX_EXPANDED_NODES:
            raise TenantConfigError(
                f"{what}: the YAML expands to over {MAX_EXPANDED_NODES} nodes (excessive aliasing)"
            )
        if depth[key] > MAX_DEPTH:
            raise TenantConfigError(f"{what}: nested deeper than {MAX_DEPTH} levels")


def parse_doc(text: str) -> TenantConfigDoc:
    """The posted body (YAML or JSON); raises :class:`TenantConfigError`."""
    raw = _load_yaml(text, "the body")
    if not isinstance(raw, dict):
        raise TenantConfigError(
            "the body must be a mapping with alertmanager_config and template_files"
        )
    unknown = sorted(set(raw) - {"alertmanager_config", "template_files"})
    if unknown:
        raise TenantConfigError(f"{unknown[0]}: unknown field")
    config = raw.get("alertmanager_config")
    if not isinstance(config, str) or not config.strip():
        raise TenantConfigError(
            "alertmanager_config: must be a non-empty string holding the YAML config"
        )
    templates = raw.get("template_files") or {}
    if not isinstance(templates, dict):
        raise TenantConfigError("template_files: must be a mapping of file name to template text")
    for name, body in templates.items():
        if not isinstance(name, str) or not isinstance(body, str):
            raise TenantConfigError("template_files: names and templates must be strings")
        check_template_name(name)
    return TenantConfigDoc(config, dict(templates))


def check_template_name(name: str) -> None:
    if (
        _TEMPLATE_NAME.fullmatch(name) is None
        or name in (".", "..", CONFIG_NAME)
        or len(name) > 255
    ):
        raise TenantConfigError(f"template_files.{name}: not a valid template file name")


def _file_keys(node: Any, path: str) -> str | None:
    """The dotted key of the first ``*_file``/``*_files`` key anywhere, or None."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (key.endswith("_file") or key.endswith("_files")):
                return where
            found = _file_keys(value, where)
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _file_keys(value, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def check_restrictions(doc: TenantConfigDoc) -> None:
    """The tenant restrictions on top of Alertmanager's validation."""
    raw = _load_yaml(doc.alertmanager_config, "alertmanager_config")
    if not isinstance(raw, dict):
        raise TenantConfigError("alertmanager_config: must be a YAML mapping")
    bad = _file_keys(raw, "")
    if bad is not None:
        raise TenantConfigError(f"{bad}: a tenant config may not read local files")
    for i, entry in enumerate(raw.get("templates") or []):
        if not isinstance(entry, str) or entry not in doc.template_files:
            raise TenantConfigError(
                f"templates[{i}]: {entry!r} is not a file given in template_files"
            )


def tenant_dir(storage: Path, tenant: str) -> Path:
    """``<storage>/tenants/<id>``: the id is checked first (Mimir's CVE-2021-36157)."""
    return storage / TENANTS_DIR / check_tenant_id(tenant)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def load_dir(folder: Path) -> tuple[Config, Templates]:
    """Load the config stored in ``folder`` (its templates resolve next to it)."""
    config = load_config_file(str(folder / CONFIG_NAME))
    return config, Templates.load(config.templates)


def stage(storage: Path, tenant: str, doc: TenantConfigDoc) -> tuple[Config, Templates]:
    """Validate ``doc`` and write it beside the current config (``config.new/``); what
    it loads to. :func:`commit` makes it the tenant's config, :func:`discard` drops it.

    Raises:
        TenantConfigError: refused; nothing stored changed.
        OSError: the disk failed; the old config is still in place.
    """
    check_restrictions(doc)
    base = tenant_dir(storage, tenant)
    base.mkdir(parents=True, exist_ok=True)
    staging = base / "config.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _write(staging / CONFIG_NAME, doc.alertmanager_config)
        for name, text in doc.template_files.items():
            _write(staging / name, text)
        try:
            return load_dir(staging)
        except ConfigError as exc:
            # The staging path means nothing to the tenant: name the field instead.
            exc.file = "alertmanager_config"
            raise TenantConfigError(str(exc)) from None
        except TemplateError as exc:
            where = str(exc).replace(str(staging) + os.sep, "")
            raise TenantConfigError(f"template_files: {where}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def commit(storage: Path, tenant: str) -> None:
    """Make the staged config the tenant's own (renames, then a directory fsync)."""
    base = tenant_dir(storage, tenant)
    staging, current, old = base / "config.new", base / "config", base / "config.old"
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        current.rename(old)
    staging.rename(current)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(base)


def discard(storage: Path, tenant: str) -> None:
    shutil.rmtree(tenant_dir(storage, tenant) / "config.new", ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(storage: Path, tenant: str) -> TenantConfigDoc | None:
    """The stored config of ``tenant``, or None if it has none of its own."""
    folder = tenant_dir(storage, tenant) / "config"
    try:
        config = (folder / CONFIG_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    templates = {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(folder.iterdir())
        if p.name != CONFIG_NAME and p.is_file()
    }
    return TenantConfigDoc(config, templates)


def has_own(storage: Path, tenant: str) -> bool:
    return (tenant_dir(storage, tenant) / "config" / CONFIG_NAME).is_file()


def delete(storage: Path, tenant: str) -> bool:
    """Remove the tenant's own config; False if it had none."""
    folder = tenant_dir(storage, tenant) / "config"
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


#: ``<tenant>/config.version``: when the tenant's config last changed (Unix ns) and
#: whether that change was a delete; HA peers keep the newest (last writer wins).
VERSION_NAME = "config.version"


def read_version(storage: Path, tenant: str) -> tuple[int, bool]:
    """(version, deleted) of the tenant's config; (0, False) if never set."""
    try:
        text = (tenant_dir(storage, tenant) / VERSION_NAME).read_text(encoding="ascii")
        version, deleted = text.split()
        return int(version), deleted == "1"
    except (OSError, ValueError):
        return 0, False


def write_version(storage: Path, tenant: str, version: int, deleted: bool) -> None:
    base = tenant_dir(storage, tenant)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / (VERSION_NAME + ".tmp")
    _write(tmp, f"{version} {int(deleted)}\n")
    tmp.rename(base / VERSION_NAME)
    _fsync_dir(base)


__all__ = [
    "TENANTS_DIR",
    "TenantConfigDoc",
    "TenantConfigError",
    "check_restrictions",
    "commit",
    "delete",
    "discard",
    "has_own",
    "load_dir",
    "parse_doc",
    "read",
    "read_version",
    "stage",
    "tenant_dir",
    "write_version",
]
