"""``history [MATCHER...]``: tocsin's notification history (``GET /api/v1/history``).

Not an amtool command: Alertmanager keeps no history. Rows are newest first. Without
``--all`` one page of ``--limit`` records is shown, and a hint says how to go on;
``--all`` follows the server's cursor to the end.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from daemon.ctl.client import Api, check, server_message
from daemon.ctl.command import Invocation, leaf
from daemon.ctl.errors import CtlError
from daemon.ctl.flags import Flag
from daemon.ctl.output import format_date, go_json, tabwrite

HISTORY_PATH = "/api/v1/history"

FLAGS = (
    Flag("receiver", "only this receiver's notifications", short="r"),
    Flag("integration", "only this integration: a type (webhook) or one entry (webhook[1])"),
    Flag("status", "firing or resolved notifications", choices=("firing", "resolved")),
    Flag(
        "outcome", "sent, failed or suppressed (deduped)", choices=("sent", "failed", "suppressed")
    ),
    Flag("from", "oldest time to show, RFC 3339", metavar="TIME"),
    Flag("to", "newest time to show, RFC 3339", metavar="TIME"),
    Flag("limit", "records per page (at most 1000)", "100", kind="int"),
    Flag("all", "follow the pages to the end instead of showing one", "false", kind="bool"),
)


def query_params(values: Mapping[str, Any], matchers: Sequence[str]) -> list[tuple[str, str]]:
    """The API's query parameters for these flag values and matchers."""
    params = [
        (name, str(values[name]))
        for name in ("receiver", "integration", "status", "outcome", "from", "to", "limit")
        if values.get(name) not in (None, "")
    ]
    params += [("filter", m) for m in matchers]
    return params


def fetch(api: Api, params: list[tuple[str, str]], follow: bool) -> tuple[list[Any], str | None]:
    """The records (newest first) and the cursor of the next page, if any."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page_params = params + ([("cursor", cursor)] if cursor else [])
        resp = api.request("GET", HISTORY_PATH, params=page_params)
        if resp.status_code == 404:
            raise CtlError(
                f"{api.base} keeps no notification history",
                hint="Alertmanager has none; a tocsin started with --history.retention=0 "
                "has it turned off",
            )
        if resp.status_code == 400:
            raise CtlError(f"the server refused the query: {server_message(resp)}")
        check(resp)
        page = resp.json()
        items += page.get("items") or []
        cursor = page.get("next_cursor")
        if not follow or not cursor:
            return items, cursor


def _integration(item: Mapping[str, Any]) -> str:
    integration = item.get("integration") or {}
    return f"{integration.get('name', '')}[{integration.get('index', '')}]"


def _reason(item: Mapping[str, Any]) -> str:
    reason = item.get("reason") or ""
    return str(reason).removeprefix("NOTIFY_REASON_").lower().replace("_", " ")


def format_history(items: Sequence[Mapping[str, Any]], fmt: str, date_format: str) -> str:
    """A table (``simple``, or ``extended`` with attempts, time taken, alerts and the
    error), or the records as the server gave them (``json``)."""
    if fmt == "json":
        return go_json(list(items))
    head = "Time\tReceiver\tIntegration\tGroup\tStatus\tOutcome\tReason\t"
    if fmt == "extended":
        head += "Attempts\tSeconds\tAlerts\tError\t"
    rows = [head]
    for item in items:
        row = (
            f"{format_date(item['time'], date_format)}\t{item.get('receiver', '')}"
            f"\t{_integration(item)}\t{item.get('groupKey', '')}\t{item.get('status', '')}"
            f"\t{item.get('outcome', '')}\t{_reason(item)}\t"
        )
        if fmt == "extended":
            row += (
                f"{item.get('attempts', 0)}\t{item.get('durationSeconds', 0):.3f}"
                f"\t{len(item.get('alerts') or ())}\t{item.get('error') or ''}\t"
            )
        rows.append(row)
    return tabwrite("\n".join(rows) + "\n")


def run(inv: Invocation) -> int:
    """Print the history records that match."""
    params = query_params(inv.values, inv.args.matchers)
    api = inv.api()
    try:
        items, cursor = fetch(api, params, bool(inv.values["all"]))
    finally:
        api.close()
    inv.out.write(format_history(items, inv.format, inv.date_format))
    if cursor and inv.format != "json":
        inv.err.write("(more records: add --all, or narrow with --from/--to)\n")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = leaf(
        commands,
        "history",
        help="Show tocsin's notification history, newest first (tocsin only).",
        run=run,
        flags=FLAGS,
    )
    history.add_argument(
        "matchers", nargs="*", metavar="MATCHER", help="label filter, e.g. alertname=DiskFull"
    )
