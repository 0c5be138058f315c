"""amtool's output formats (``-o simple|extended|json``) for alerts, silences, status.

Pure: API answers (decoded JSON) in, text out.

* ``simple`` and ``extended`` are tables laid out by Go's ``text/tabwriter`` with
  amtool's settings (padding 2, spaces, every cell tab-terminated, so rows carry
  trailing spaces). :func:`tabwrite` reproduces its column-block rules, so the text is
  byte-for-byte amtool's and scripts that cut columns keep working.
* Dates print with ``--date.format``, a Go time layout, in UTC as the API sends them.
* ``json`` is what amtool re-encodes from its Go models: keys in the models' order,
  times with milliseconds, ``<``, ``>`` and ``&`` escaped, one document and a newline.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from daemon.gocompat.timestamp import format_millis, parse_rfc3339
from daemon.matcher import Matcher, MatchType
from daemon.template.gotime import GoTime, format_layout

Format = Literal["simple", "extended", "json"]
FORMATS: tuple[Format, ...] = ("simple", "extended", "json")
DEFAULT_DATE_FORMAT = "2006-01-02 15:04:05 MST"

# --- Go's text/tabwriter -----------------------------------------------------------------


def tabwrite(text: str, padding: int = 2) -> str:
    """``text`` laid out as Go's tabwriter (minwidth 0, ``padding``, ' ', no flags) does.

    A cell is text terminated by a tab; the text after a line's last tab is not a cell
    and is never padded. A column's width is set per *block*: the run of adjacent lines
    that all have a cell in that column. A line without any tab ends everything before
    it, as Go's writer flushes there.
    """
    lines = text.split("\n")
    out: list[str] = []
    start = 0
    for i, line in enumerate(lines):
        if "\t" not in line and i < len(lines) - 1:
            out.append(_format_block([ln.split("\t") for ln in lines[start : i + 1]], padding))
            start = i + 1
    rest = [ln.split("\t") for ln in lines[start:]]
    tail = _format_block(rest, padding)
    return "\n".join([*out, tail]) if out else tail


def _format_block(rows: list[list[str]], padding: int) -> str:
    widths: list[int] = []
    rendered: list[str] = [""] * len(rows)

    def write(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            cells = rows[i]
            parts = []
            for j, cell in enumerate(cells):
                if j < len(cells) - 1 and j < len(widths):
                    parts.append(cell + " " * (widths[j] - len(cell)))
                else:
                    parts.append(cell)
            rendered[i] = "".join(parts)

    def layout(lo: int, hi: int) -> None:
        column = len(widths)
        line0 = lo
        this = lo
        while this < hi:
            if column >= len(rows[this]) - 1:
                this += 1
                continue
            write(line0, this)
            line0 = this
            width = 0
            while this < hi and column < len(rows[this]) - 1:
                width = max(width, len(rows[this][column]) + padding)
                this += 1
            widths.append(width)
            layout(line0, this)
            widths.pop()
            line0 = this
        write(line0, hi)

    layout(0, len(rows))
    return "\n".join(rendered)


# --- values --------------------------------------------------------------------------------


def _zone(value: str) -> tuple[dt.timezone | None, str]:
    """The fixed zone of an RFC 3339 text (None for UTC) and its offset as written."""
    offset = UTC_OFFSET.search(value)
    if offset is None:
        return None, "Z"
    sign, hours, minutes = offset.groups()
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    if not delta:
        return None, "Z"
    return dt.timezone(-delta if sign == "-" else delta, ""), offset.group(0)


def format_date(value: str, layout: str) -> str:
    """An API timestamp in the Go ``layout`` (``--date.format``), in the offset it has.

    Alertmanager returns a time in the offset it was posted with (``+02:00``); Go then
    prints it there, with the offset for a zone name. ``Z`` prints as UTC.
    """
    return format_layout(GoTime(parse_rfc3339(value), _zone(value)[0]), layout)


def api_time(value: str) -> str:
    """An RFC 3339 text in the API's millisecond form, keeping its offset, as Go's
    strfmt.DateTime writes it (``2030-01-01T05:00:00.000+02:00``)."""
    ns = parse_rfc3339(value)
    zone, written = _zone(value)
    if zone is None:
        return format_millis(ns)
    shift = zone.utcoffset(None) // dt.timedelta(microseconds=1) * 1000
    return format_millis(ns + shift)[:-1] + written


#: The numeric offset at the end of an RFC 3339 text.
UTC_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})$")


def api_matcher(raw: Mapping[str, Any]) -> Matcher:
    """A matcher from its API form (``isEqual`` missing means true, as in older servers)."""
    regex = bool(raw.get("isRegex"))
    equal = raw.get("isEqual", True) is not False
    if regex:
        kind = MatchType.REGEXP if equal else MatchType.NOT_REGEXP
    else:
        kind = MatchType.EQUAL if equal else MatchType.NOT_EQUAL
    # Matcher.create compiles regexes; printing needs none, and a server may hold one
    # that this client's regex engine would refuse.
    return Matcher(kind, str(raw["name"]), str(raw["value"]), None)


def _matcher_as_given(raw: Mapping[str, Any]) -> dict[str, Any]:
    # Go leaves out an isEqual the server did not send (an older server) and keeps
    # the others in its model's field order.
    out: dict[str, Any] = {}
    if raw.get("isEqual") is not None:
        out["isEqual"] = raw["isEqual"]
    return {
        **out,
        "isRegex": raw.get("isRegex"),
        "name": raw.get("name"),
        "value": raw.get("value"),
    }


def _pairs(labels: Mapping[str, str]) -> str:
    # amtool prints these with a plain "%s=\"%s\"": no escaping, sorted as whole strings.
    return " ".join(sorted(f'{name}="{value}"' for name, value in labels.items()))


def go_json(value: Any) -> str:
    """``value`` as Go's json.Encoder writes it: compact, HTML-safe, one trailing newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text + "\n"


# --- silences ------------------------------------------------------------------------------


def silence_json(s: Mapping[str, Any]) -> dict[str, Any]:
    """A silence in the key order of amtool's ``GettableSilence``."""
    out: dict[str, Any] = {
        "id": s.get("id"),
        "status": {"state": (s.get("status") or {}).get("state")},
        "updatedAt": api_time(s["updatedAt"]) if s.get("updatedAt") else None,
        "comment": s.get("comment"),
        "createdBy": s.get("createdBy"),
        "endsAt": api_time(s["endsAt"]),
        "matchers": [_matcher_as_given(m) for m in s.get("matchers") or ()],
        "startsAt": api_time(s["startsAt"]),
    }
    return out


def _by_ends_at(silences: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(silences, key=lambda s: parse_rfc3339(s["endsAt"]))


def format_silences(
    silences: Sequence[Mapping[str, Any]], fmt: Format, date_format: str = DEFAULT_DATE_FORMAT
) -> str:
    """``silence query`` output: a table sorted by end time, or the JSON list as given."""
    if fmt == "json":
        return go_json([silence_json(s) for s in silences])
    if fmt == "simple":
        rows = ["ID\tMatchers\tEnds At\tCreated By\tComment\t"]
        for s in _by_ends_at(silences):
            matchers = " ".join(str(api_matcher(m)) for m in s.get("matchers") or ())
            rows.append(
                f"{s['id']}\t{matchers}\t{format_date(s['endsAt'], date_format)}"
                f"\t{s.get('createdBy', '')}\t{s.get('comment', '')}\t"
            )
    else:
        rows = ["ID\tMatchers\tStarts At\tEnds At\tUpdated At\tCreated By\tComment\t"]
        for s in _by_ends_at(silences):
            matchers = ",".join(str(api_matcher(m)) for m in s.get("matchers") or ())
            rows.append(
                f"{s['id']}\t{{{matchers}}}\t{format_date(s['startsAt'], date_format)}"
                f"\t{format_date(s['endsAt'], date_format)}"
                f"\t{format_date(s['updatedAt'], date_format)}"
                f"\t{s.get('createdBy', '')}\t{s.get('comment', '')}\t"
            )
    return tabwrite("\n".join(rows) + "\n")


# --- alerts --------------------------------------------------------------------------------


def alert_json(a: Mapping[str, Any]) -> dict[str, Any]:
    """An alert in the key order of amtool's ``GettableAlert``."""
    status = a.get("status") or {}
    out: dict[str, Any] = {
        "annotations": dict(sorted((a.get("annotations") or {}).items())),
        "endsAt": api_time(a["endsAt"]),
        "fingerprint": a.get("fingerprint"),
        "receivers": [{"name": r.get("name")} for r in a.get("receivers") or ()],
        "startsAt": api_time(a["startsAt"]),
        "status": {
            "inhibitedBy": list(status.get("inhibitedBy") or ()),
            "silencedBy": list(status.get("silencedBy") or ()),
            "state": status.get("state"),
        },
        "updatedAt": api_time(a["updatedAt"]),
    }
    if a.get("generatorURL"):
        out["generatorURL"] = a["generatorURL"]
    out["labels"] = dict(sorted((a.get("labels") or {}).items()))
    return out


def format_alerts(
    alerts: Sequence[Mapping[str, Any]], fmt: Format, date_format: str = DEFAULT_DATE_FORMAT
) -> str:
    """``alert query`` output: a table sorted by start time, or the JSON list as given."""
    if fmt == "json":
        return go_json([alert_json(a) for a in alerts])
    ordered = sorted(alerts, key=lambda a: parse_rfc3339(a["startsAt"]))
    if fmt == "simple":
        rows = ["Alertname\tStarts At\tSummary\tState\t"]
        for a in ordered:
            labels, annotations = a.get("labels") or {}, a.get("annotations") or {}
            rows.append(
                f"{labels.get('alertname', '')}\t{format_date(a['startsAt'], date_format)}"
                f"\t{annotations.get('summary', '')}\t{a['status']['state']}\t"
            )
    else:
        rows = ["Labels\tAnnotations\tStarts At\tEnds At\tGenerator URL\tState\t"]
        for a in ordered:
            rows.append(
                f"{_pairs(a.get('labels') or {})}\t{_pairs(a.get('annotations') or {})}"
                f"\t{format_date(a['startsAt'], date_format)}"
                f"\t{format_date(a['endsAt'], date_format)}"
                f"\t{a.get('generatorURL', '')}\t{a['status']['state']}\t"
            )
    return tabwrite("\n".join(rows) + "\n")


# --- status: config and cluster ------------------------------------------------------------

_VERSION_KEYS = ("branch", "buildDate", "buildUser", "goVersion", "revision", "version")


def cluster_json(c: Mapping[str, Any]) -> dict[str, Any]:
    """A cluster status in the key order of amtool's ``ClusterStatus``."""
    out: dict[str, Any] = {}
    if c.get("name"):
        out["name"] = c["name"]
    peers = c.get("peers")
    out["peers"] = (
        None
        if peers is None
        else [{"address": p.get("address"), "name": p.get("name")} for p in peers]
    )
    out["status"] = c.get("status")
    return out


def status_json(status: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /api/v2/status`` in the key order of amtool's ``AlertmanagerStatus``."""
    version = status.get("versionInfo") or {}
    return {
        "cluster": cluster_json(status.get("cluster") or {}),
        "config": {"original": (status.get("config") or {}).get("original")},
        "uptime": api_time(status["uptime"]),
        "versionInfo": {key: version.get(key) for key in _VERSION_KEYS},
    }


def format_config(status: Mapping[str, Any], fmt: Format) -> str:
    """``config show`` output.

    amtool 0.25's extended form prints Go pointer addresses instead of the config and
    version values; this prints the values, in amtool's layout.
    """
    if fmt == "json":
        return go_json(status_json(status))
    original = str((status.get("config") or {}).get("original", ""))
    if fmt == "simple":
        return original + "\n"
    version = status.get("versionInfo") or {}
    lines = [original]
    for key in ("buildUser", "goVersion", "revision", "version", "branch", "buildDate"):
        lines.append(f"{key} {version.get(key, '')}")
    lines.append(f"uptime {api_time(status['uptime'])}")
    return "\n".join(lines) + "\n"


def _peer_key(peer: Mapping[str, Any]) -> tuple[bytes, int]:
    # amtool orders peers by IP bytes, then by port as a number.
    host, _, port = str(peer.get("address", "")).rpartition(":")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host).packed
        # Go compares the 16-byte form; an IPv4 address sorts as ::ffff:a.b.c.d.
        if len(ip) == 4:
            ip = b"\x00" * 10 + b"\xff\xff" + ip
    except ValueError:
        ip = b""
    return ip, int(port) if port.isdigit() else 0


def format_cluster(cluster: Mapping[str, Any], fmt: Format) -> str:
    """``cluster show`` output: status and node name; extended adds the peers."""
    if fmt == "json":
        return go_json(cluster_json(cluster))
    head = f"Cluster Status:\t{cluster.get('status', '')}\nNode Name:\t{cluster.get('name', '')}\n"
    if fmt == "simple":
        return tabwrite(head)
    rows = [head, "Address\tName"]
    for peer in sorted(cluster.get("peers") or (), key=_peer_key):
        rows.append(f"{peer.get('address', '')}\t{peer.get('name', '')}\t")
    return tabwrite("\n".join(rows) + "\n")
