"""``why [MATCHER...]`` / ``why --fingerprint=FP``: why an alert did or did not notify.

Not an amtool command: it reads tocsin's ``GET /api/v1/why``. The text answer walks
the same facts as the UI's why view: the alert, each route path it took with its group
and the group's next flush, the silences and inhibitions that mute it, and the newest
notification attempts of its groups. ``-o json`` prints the server's answer.
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

WHY_PATH = "/api/v1/why"

FLAGS = (Flag("fingerprint", "the alert's fingerprint (16 hex digits) instead of matchers"),)

#: Attempts listed per answer in the text formats (the JSON has them all).
HISTORY_SHOWN = 10


def query_params(fingerprint: str, matchers: Sequence[str]) -> list[tuple[str, str]]:
    """The API's parameters: the fingerprint, else one ``filter`` per matcher."""
    if fingerprint and matchers:
        raise CtlError("give either --fingerprint or matchers, not both")
    if fingerprint:
        return [("fingerprint", fingerprint)]
    if not matchers:
        raise CtlError("name the alert", hint="tocsinctl why alertname=DiskFull instance=db1")
    return [("filter", m) for m in matchers]


def fetch(api: Api, params: list[tuple[str, str]]) -> Any:
    resp = api.request("GET", WHY_PATH, params=params)
    if resp.status_code == 404:
        try:
            message = resp.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise CtlError(
                f"{api.base} cannot explain alerts", hint="Alertmanager has no why endpoint"
            ) from None
        raise CtlError(
            str(message),
            hint="'tocsinctl alert query' lists the alerts; with tenancy, an alert is found "
            "only in its tenant (an admin names it with --tenant)",
        )
    if resp.status_code == 400:
        raise CtlError(
            f"the server refused the query: {server_message(resp)}",
            hint="give matchers as label=value, label!=value, label=~regex or label!~regex",
        )
    check(resp)
    return resp.json()


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def _node(node: Mapping[str, Any]) -> str:
    matchers = ", ".join(node.get("matchers") or ()) or "default-route"
    return f"{{{matchers}}}" if node.get("matchers") else matchers


def _silence_matcher(m: Mapping[str, Any]) -> str:
    equal = m.get("isEqual", True)
    op = ("=~" if m["isRegex"] else "=") if equal else ("!~" if m["isRegex"] else "!=")
    return f'{m["name"]}{op}"{m["value"]}"'


def format_why(why: Mapping[str, Any], fmt: str, date_format: str) -> str:
    """The explanation as text, or the server's JSON (``json``)."""
    if fmt == "json":
        return go_json(why)
    alert = why["alert"]
    status = alert["status"]
    lines = [f"Alert {_labels(alert['labels'])}", f"  fingerprint {alert['fingerprint']}"]
    lines.append(
        f"  state {status['state']}, started {format_date(alert['startsAt'], date_format)}"
    )
    lines.append("")
    lines.append("Routes:")
    for route in why["routes"]:
        path = " -> ".join(_node(n) for n in route["path"])
        last = route["path"][-1]
        lines.append(f"  {route['receiver']}: {path}")
        lines.append(
            f"    group_by [{', '.join(last['groupBy'])}], wait {last['groupWait']},"
            f" interval {last['groupInterval']}, repeat {last['repeatInterval']}"
        )
        group = route.get("group")
        if group is None:
            lines.append("    not grouped yet")
        else:
            nxt = group.get("nextFlush")
            when = format_date(nxt, date_format) if nxt else "unknown"
            lines.append(
                f"    group {_labels(group['labels'])} ({group['alerts']} alerts), next flush {when}"
            )
    lines.append("")
    if not why["silences"] and not why["inhibitions"]:
        lines.append("Not muted: no silence or inhibition applies.")
    for s in why["silences"]:
        matchers = ", ".join(_silence_matcher(m) for m in s["matchers"])
        lines.append(
            f"Silenced by {s['id']} {{{matchers}}} by {s['createdBy']}: {s['comment']}"
            f" (until {format_date(s['endsAt'], date_format)})"
        )
    for inh in why["inhibitions"]:
        source = _labels(inh["labels"]) if inh.get("labels") else inh["fingerprint"]
        lines.append(f"Inhibited by {source}")
        for rule in inh.get("rules") or ():
            equal = f" equal [{', '.join(rule['equal'])}]" if rule["equal"] else ""
            lines.append(
                f"  rule: source {{{', '.join(rule['sourceMatchers'])}}}"
                f" target {{{', '.join(rule['targetMatchers'])}}}{equal}"
            )
    lines.append("")
    out = "\n".join(lines) + "\n"
    if not why.get("historyAvailable"):
        return out + "Notification history: off on this server.\n"
    items = why.get("history") or []
    if not items:
        return out + "Notification history: no attempt for its groups yet.\n"
    rows = ["Time\tReceiver\tIntegration\tOutcome\tReason\tError\t"]
    for item in items[:HISTORY_SHOWN]:
        integration = item.get("integration") or {}
        reason = str(item.get("reason") or "").removeprefix("NOTIFY_REASON_")
        rows.append(
            f"{format_date(item['time'], date_format)}\t{item['receiver']}"
            f"\t{integration.get('name', '')}[{integration.get('index', '')}]\t{item['outcome']}"
            f"\t{reason.lower().replace('_', ' ')}\t{item.get('error') or ''}\t"
        )
    more = len(items) - HISTORY_SHOWN
    tail = f"({more} older attempts: -o json shows them)\n" if more > 0 else ""
    return out + "Notification history:\n" + tabwrite("\n".join(rows) + "\n") + tail


def run(inv: Invocation) -> int:
    """Print why the named alert did or did not notify."""
    params = query_params(str(inv.values.get("fingerprint") or ""), inv.args.matchers)
    api = inv.api()
    try:
        why = fetch(api, params)
    finally:
        api.close()
    inv.out.write(format_why(why, inv.format, inv.date_format))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    why = leaf(
        commands,
        "why",
        help="Explain why an alert did or did not notify (tocsin only).",
        run=run,
        flags=FLAGS,
    )
    why.add_argument(
        "matchers",
        nargs="*",
        metavar="MATCHER",
        help="label matchers naming the alert (the lowest fingerprint among matches)",
    )
