"""``tenant list`` and ``tenant config get|set|delete``: tocsin's multi-tenancy over HTTP.

Not amtool commands. ``tenant list`` is ``GET /api/v1/tenants`` (an admin token).
``tenant config`` is Mimir's config API on ``/api/v1/alerts``: the tenant is the one of
the bearer token, or the one ``--tenant`` names (``X-Scope-OrgID``, for an admin).
``config set`` takes either a Mimir-shaped file (``alertmanager_config:`` and
``template_files:``) or a plain Alertmanager config plus ``--template-file`` files,
which it sends under their base names.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import yaml

from daemon.ctl.client import check
from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.errors import CtlError
from daemon.ctl.output import go_json, tabwrite

TENANTS_PATH = "/api/v1/tenants"
CONFIG_PATH = "/api/v1/alerts"


def format_tenants(tenants: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """A table of the tenants (or the server's JSON with ``-o json``)."""
    if fmt == "json":
        return go_json(list(tenants))
    rows = ["ID\tAlerts\tSilences\tGroups\tConfig\t"]
    rows += [
        f"{t.get('id', '')}\t{t.get('alerts', 0)}\t{t.get('silences', 0)}"
        f"\t{t.get('groups', 0)}\t{t.get('config', '')}\t"
        for t in tenants
    ]
    return tabwrite("\n".join(rows) + "\n")


def config_body(config_text: str, templates: Mapping[str, str]) -> str:
    """The POST body: ``config_text`` as is when it is already Mimir-shaped (and no
    templates are added), else wrapped with ``templates``."""
    try:
        doc = yaml.safe_load(config_text)
    except yaml.YAMLError as exc:
        raise CtlError(f"the config file is not YAML: {exc}") from None
    if isinstance(doc, dict) and "alertmanager_config" in doc:
        if templates:
            raise CtlError(
                "the file already has alertmanager_config: put the templates in its "
                "template_files instead of --template-file"
            )
        return config_text
    return yaml.safe_dump(
        {"template_files": dict(templates), "alertmanager_config": config_text},
        sort_keys=False,
        allow_unicode=True,
    )


def _send(
    inv: Invocation, method: str, path: str, content: bytes | None = None
) -> tuple[str, httpx.Response]:
    """One request on a connection of its own; the server's base URL and the answer."""
    api = inv.api()
    try:
        return api.base, api.request(method, path, content=content)
    finally:
        api.close()


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CtlError(f"cannot read {what} {path}: {exc}") from None


def list_tenants(inv: Invocation) -> int:
    """Print every tenant with its counts and config status."""
    base, resp = _send(inv, "GET", TENANTS_PATH)
    if resp.status_code == 404:
        raise CtlError(f"{base} has no tenants", hint="is it started with --tenancy.config-file?")
    check(resp)
    inv.out.write(format_tenants(resp.json(), inv.format))
    return 0


def config_get(inv: Invocation) -> int:
    """Print the tenant's own config, Mimir-shaped."""
    _, resp = _send(inv, "GET", CONFIG_PATH)
    if resp.status_code == 404:
        raise CtlError(
            "the tenant has no config of its own",
            hint="it runs the tenancy file's fallback_config_file",
        )
    check(resp)
    inv.out.write(resp.text)
    return 0


def config_set(inv: Invocation) -> int:
    """Validate and store the tenant's config (the server answers 400 with the key)."""
    templates = {
        os.path.basename(path): _read(path, "template file")
        for path in inv.args.template_files or ()
    }
    body = config_body(_read(inv.args.config_file, "config file"), templates)
    check(_send(inv, "POST", CONFIG_PATH, body.encode())[1])
    return 0


def config_delete(inv: Invocation) -> int:
    """Drop the tenant's own config: it runs the fallback again."""
    check(_send(inv, "DELETE", CONFIG_PATH)[1])
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenant = group(commands, "tenant", help="tocsin's tenants (tocsin only).", default="list")
    leaf(tenant, "list", help="List the tenants with their counts (admin).", run=list_tenants)
    config = group(tenant, "config", help="A tenant's own Alertmanager config.", default="get")
    leaf(config, "get", help="Show the tenant's own config.", run=config_get)
    setter = leaf(config, "set", help="Validate and store the tenant's config.", run=config_set)
    setter.add_argument("config_file", metavar="FILE", help="Alertmanager or Mimir-shaped config")
    setter.add_argument(
        "--template-file",
        dest="template_files",
        action="append",
        metavar="PATH",
        help="a template file, sent under its base name (repeatable) (default: none)",
    )
    leaf(
        config, "delete", help="Drop the tenant's config (back to the fallback).", run=config_delete
    )


__all__ = ["config_body", "format_tenants", "register"]
