"""``import notification-manager FILE...``: move a Notification Manager setup to tocsin.

Reads NM v2beta2 ``Receiver``, ``Config``, ``Router``, ``Silence`` and
``NotificationManager`` objects, and ``Secret`` objects for their credentials, from the
files (or directories) given; plans with :mod:`daemon.ctl.nm_plan`; then

* posts each tenant's Alertmanager config to ``POST /api/v1/alerts`` (Mimir's config
  API: a YAML body ``{alertmanager_config: <yaml>}``) with ``X-Scope-OrgID: <tenant>``;
* writes the global pipeline's config (global receivers, Routers) to
  ``--global-config-out`` only, since the global config is a file the operator owns;
* posts each silence to ``POST /api/v2/silences``, with the tenant's ``X-Scope-OrgID``
  (global ones without it);
* prints, last, every item that could not be carried over, as ``Kind/name: why``.

``--dry-run`` prints what would be sent and written, and sends nothing. Exit status: 0
when everything was imported, 2 when it ran but some items could not be mapped, 1 on
an error (nothing is sent if the files cannot be read).

Error handling: an item the server refuses (400, 422) is reported with the server's
reason and the run goes on; any other HTTP failure stops the run with a
:class:`CtlError`. What was posted before stays (each post is whole on its own).
"""

from __future__ import annotations

import argparse
import json
import zoneinfo
from pathlib import Path
from typing import Any, TextIO

import yaml

from daemon.clock import SystemClock
from daemon.ctl.client import Api, check, server_message
from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.errors import CtlError
from daemon.ctl.flags import Flag
from daemon.ctl.nm_crds import Problem, read_resources
from daemon.ctl.nm_plan import Options, Plan, plan_import
from daemon.ctl.progress import ProgressBar

CONFIG_PATH = "/api/v1/alerts"
SILENCES_PATH = "/api/v2/silences"

FLAGS = (
    Flag(
        "tenant-key",
        "label naming a tenant CR's tenant (NM's receivers.tenantKey)",
        shown="the NotificationManager CR's, else user",
    ),
    Flag(
        "secret-namespace",
        "namespace of Secrets referenced without one (NM's defaultSecretNamespace)",
        shown="the NotificationManager CR's, else kubesphere-monitoring-system",
    ),
    Flag(
        "group-by",
        "labels to group by, comma-separated (NM's groupLabels)",
        shown="the NotificationManager CR's, else alertname,namespace",
    ),
    Flag(
        "time-zone",
        "IANA time zone of Silence schedules (NM uses its pod's TZ; KubeSphere's Helm "
        "chart sets Asia/Shanghai)",
        "UTC",
    ),
    Flag(
        "global-config-out",
        "write the global pipeline's config (global receivers, Routers) to this file",
        metavar="FILE",
    ),
    Flag("dry-run", "print what would be sent and written; send nothing", "false", kind="bool"),
)


class _NoAliases(yaml.SafeDumper):
    """Writes a value shared by several entries (an SNS sigv4 block) out each time."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def config_yaml(data: Any) -> str:
    """YAML as the import writes it: keys in the order built, no anchors."""
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=1000)


_yaml = config_yaml


def config_body(config: dict[str, Any]) -> str:
    """The body of Mimir's ``POST /api/v1/alerts``: the config as a YAML string field."""
    return _yaml({"alertmanager_config": _yaml(config), "template_files": {}})


def _post(api: Api, path: str, body: bytes, content_type: str, tenant: str | None) -> str | None:
    """POST one item; the server's reason if it refused the item (400, 422), else None.

    Error handling: any other failure (no connection, 401/403, 5xx) raises CtlError:
    going on would fail the same way for every item.
    """
    headers = {"Content-Type": content_type}
    if tenant is not None:
        headers["X-Scope-OrgID"] = tenant
    else:
        # A global item must not go to whatever tenant --tenant chose.
        api.http.headers.pop("X-Scope-OrgID", None)
    resp = api.request("POST", path, content=body, headers=headers)
    if resp.status_code in (400, 422):
        return f"refused by the server: HTTP {resp.status_code}: {server_message(resp)}"
    check(resp)
    return None


def _report(problems: list[Problem], out: TextIO) -> None:
    if not problems:
        out.write("Everything was imported.\n")
        return
    out.write(f"Not imported or imported differently ({len(problems)}):\n")
    for p in problems:
        out.write(f"  {p}\n")


def _dry_run(plan: Plan, out: TextIO) -> None:
    for tenant, config in plan.tenants.items():
        out.write(f"# POST {CONFIG_PATH} X-Scope-OrgID: {tenant}\n{_yaml(config)}\n")
    if plan.global_config is not None:
        out.write(f"# global config file\n{_yaml(plan.global_config)}\n")
    for s in plan.silences:
        who = f" X-Scope-OrgID: {s.tenant}" if s.tenant else " (global)"
        out.write(f"# POST {SILENCES_PATH}{who}\n{json.dumps(s.body, indent=2)}\n")


def run(inv: Invocation) -> int:
    v = inv.values
    problems: list[Problem] = []
    try:
        resources = read_resources(inv.args.files, problems)
    except OSError as exc:
        raise CtlError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CtlError(f"cannot parse YAML: {exc}") from None
    if not any(r.kind != "Secret" for r in resources):
        raise CtlError(
            "no Notification Manager objects in " + " ".join(inv.args.files),
            hint="export them with: kubectl get receivers,configs,routers,silences,"
            "notificationmanagers -o yaml",
        )
    try:
        zoneinfo.ZoneInfo(v["time_zone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CtlError(
            f"unknown --time-zone {v['time_zone']!r}",
            hint="give an IANA name such as Asia/Shanghai",
        ) from None
    group_by = None
    if v["group_by"] is not None:
        group_by = tuple(label.strip() for label in v["group_by"].split(",") if label.strip())
    opts = Options(
        now=SystemClock().now(),
        tenant_key=v["tenant_key"],
        secret_namespace=v["secret_namespace"],
        group_by=group_by,
        time_zone=v["time_zone"],
        want_global=v["global_config_out"] is not None,
    )
    plan = plan_import(resources, opts)
    plan.problems[:0] = problems
    if v["dry_run"]:
        _dry_run(plan, inv.out)
    else:
        if plan.global_config is not None:
            try:
                Path(v["global_config_out"]).write_text(_yaml(plan.global_config), encoding="utf-8")
            except OSError as exc:
                raise CtlError(
                    f"cannot write --global-config-out {v['global_config_out']}: {exc.strerror}"
                ) from None
            inv.out.write(f"Wrote the global config to {v['global_config_out']}\n")
        if plan.tenants or plan.silences:
            api = inv.api()
            bar = ProgressBar(
                inv.err, "tenants and silences", len(plan.tenants) + len(plan.silences)
            )
            try:
                for tenant, config in plan.tenants.items():
                    body = config_body(config).encode()
                    refused = _post(api, CONFIG_PATH, body, "application/yaml", tenant)
                    bar.step()
                    if refused:
                        plan.problems.append(Problem("Tenant", tenant, f"config {refused}"))
                        continue
                    receivers = len(config["receivers"]) - 1
                    bar.write(inv.out, f"Tenant {tenant}: config with {receivers} receivers\n")
                for s in plan.silences:
                    body = json.dumps(s.body).encode()
                    refused = _post(api, SILENCES_PATH, body, "application/json", s.tenant)
                    bar.step()
                    if refused:
                        plan.problems.append(Problem("Silence", s.source, refused))
                        continue
                    who = f"tenant {s.tenant}" if s.tenant else "global"
                    bar.write(inv.out, f"Silence {s.source}: posted ({who})\n")
            finally:
                api.close()
    _report(plan.problems, inv.out)
    return 2 if plan.problems else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = group(
        commands,
        "import",
        help="Import settings from other systems",
        default="notification-manager",
    )
    cmd = leaf(
        sub,
        "notification-manager",
        help="Import KubeSphere Notification Manager CRDs: tenant configs, silences, the "
        "global config (tocsin only).",
        run=run,
        flags=FLAGS,
    )
    cmd.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="YAML files or directories of NM v2beta2 objects and the Secrets they use",
    )


__all__ = ["config_body", "config_yaml", "register", "run"]
