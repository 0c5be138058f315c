"""``alert query`` and ``alert add`` (``alert`` alone is ``alert query``), as amtool 0.25."""

from __future__ import annotations

import argparse

from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.flags import Flag
from daemon.ctl.matchers import parse_label_args, parse_time_flag, with_alertname
from daemon.ctl.output import format_alerts

QUERY_FLAGS = (
    Flag("inhibited", "show inhibited alerts", "false", short="i", kind="bool"),
    Flag("silenced", "show silenced alerts", "false", short="s", kind="bool"),
    Flag("active", "show active alerts", "false", short="a", kind="bool"),
    Flag("unprocessed", "show unprocessed alerts", "false", short="u", kind="bool"),
    Flag("receiver", "show alerts matching receiver (regex)", short="r", shown="any"),
)

ADD_FLAGS = (
    Flag("generator-url", "URL of the source that generated the alert", metavar="URL"),
    Flag("start", "when the alert starts, RFC 3339 (2006-01-02T15:04:05-07:00)", shown="now"),
    Flag(
        "end",
        "when the alert ends, RFC 3339 (2006-01-02T15:04:05-07:00)",
        shown="the server's resolve_timeout",
    ),
    Flag("annotation", "annotation NAME=VALUE (repeatable)", kind="list", metavar="NAME=VALUE"),
)

QUERY_HELP = """\
Matchers filter the alerts: name=value, name!=value, name=~regex, name!~regex.
A first argument that is not a matcher is the alertname: 'alert query Disk' is
'alert query alertname=Disk'. Without -i/-s/-a/-u only active alerts are shown.
"""


def query(inv: Invocation) -> int:
    """Print the alerts the server holds that match, in the chosen format."""
    v = inv.values
    states = {k: bool(v[k]) for k in ("active", "silenced", "inhibited", "unprocessed")}
    if not any(states.values()):
        states["active"] = True
    params = [
        (k, str(states[k]).lower()) for k in ("active", "inhibited", "silenced", "unprocessed")
    ]
    if v["receiver"]:
        params.append(("receiver", v["receiver"]))
    params += [("filter", m) for m in with_alertname(inv.args.matchers)]
    alerts = inv.call("GET", "/alerts", params=params)
    inv.out.write(format_alerts(alerts, inv.format, inv.date_format))
    return 0


def add(inv: Invocation) -> int:
    """Post one alert built from the arguments; prints nothing, like amtool."""
    v = inv.values
    labels = parse_label_args(with_alertname(inv.args.labels))
    alert: dict[str, object] = {
        "labels": labels,
        "annotations": parse_label_args(v["annotation"], "annotations"),
    }
    if v["generator_url"]:
        alert["generatorURL"] = v["generator_url"]
    if v["start"]:
        alert["startsAt"] = parse_time_flag(v["start"], "--start").text
    if v["end"]:
        alert["endsAt"] = parse_time_flag(v["end"], "--end").text
    inv.call("POST", "/alerts", json=[alert])
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alert = group(commands, "alert", help="Add or query alerts.", default="query")
    q = leaf(
        alert,
        "query",
        help="Show the current alerts.",
        run=query,
        flags=QUERY_FLAGS,
        epilog=QUERY_HELP,
    )
    q.add_argument("matchers", nargs="*", metavar="MATCHER", help="filter, e.g. severity=~crit")
    a = leaf(
        alert,
        "add",
        help="Add (post) an alert.",
        run=add,
        flags=ADD_FLAGS,
        epilog="Example: tocsinctl alert add Disk node=db1 --annotation=summary='disk full'\n",
    )
    a.add_argument(
        "labels",
        nargs="*",
        metavar="LABEL",
        help="label NAME=VALUE; the first may be just the alertname",
    )
