"""``silence add|query|update|expire|import`` (``silence`` alone is ``silence query``).

Flags, defaults, checks and messages are amtool 0.25's, so scripts written for amtool
keep working: ``tocsinctl silence expire $(tocsinctl silence query -q alertname=Disk)``,
and ``silence import`` reads what ``silence query -o json`` writes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pwd
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from daemon.clock import SystemClock
from daemon.ctl.client import Api, check
from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.errors import CtlError
from daemon.ctl.flags import Flag
from daemon.ctl.matchers import TimeArg, parse_matcher_args, parse_time_flag, with_alertname
from daemon.ctl.output import format_silences
from daemon.ctl.progress import ProgressBar
from daemon.gocompat.duration import DurationError, parse_duration, parse_go_duration
from daemon.gocompat.timestamp import format_millis, parse_rfc3339
from daemon.matcher import matcher_json


def username() -> str:
    """The login name, amtool's default author ("" if the uid has no passwd entry)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return ""


TIME_HELP = "RFC 3339 (2006-01-02T15:04:05-07:00)"

ADD_FLAGS = (
    Flag("author", "author of the silence (createdBy)", username(), short="a"),
    Flag(
        "require-comment",
        "refuse a silence without --comment (config key require-comment)",
        "true",
        kind="bool",
    ),
    Flag("duration", "how long the silence lasts (Prometheus duration)", "1h", short="d"),
    Flag("start", f"when the silence starts, {TIME_HELP}", shown="now"),
    Flag(
        "end",
        f"when the silence ends (overrides --duration), {TIME_HELP}",
        shown="start + duration",
    ),
    Flag("comment", "why the silence exists", short="c"),
)
QUERY_FLAGS = (
    Flag("expired", "show expired silences instead of active ones", "false", kind="bool"),
    Flag("quiet", "print only silence IDs, one a line", "false", short="q", kind="bool"),
    Flag("created-by", "show only silences by this author", metavar="AUTHOR", shown="anyone"),
    Flag(
        "within",
        "show silences that end (or, with --expired, ended) within this Go duration",
        metavar="DURATION",
        shown="any time",
    ),
)
UPDATE_FLAGS = (
    Flag("quiet", "print only silence IDs, one a line", "false", short="q", kind="bool"),
    Flag(
        "duration",
        "new length from the silence's start (Prometheus duration)",
        short="d",
        shown="unchanged",
    ),
    Flag("start", f"new start, {TIME_HELP}", shown="unchanged"),
    Flag("end", f"new end (overrides --duration), {TIME_HELP}", shown="unchanged"),
    Flag("comment", "new comment", short="c", shown="unchanged"),
)
IMPORT_FLAGS = (
    Flag("force", "create new silences even where the ID exists", "false", short="f", kind="bool"),
    Flag("worker", "number of concurrent requests", "8", short="w", kind="int"),
)


def _duration(text: str) -> int:
    try:
        ns = parse_duration(text)
    except DurationError as exc:
        raise CtlError(str(exc), hint="durations look like 90m, 2h, 1d or 1w") from None
    if ns == 0:
        raise CtlError("silence duration must be greater than 0")
    return ns


def add(inv: Invocation) -> int:
    """Create one silence from the matchers; print its ID."""
    v = inv.values
    matchers = parse_matcher_args(with_alertname(inv.args.matchers))
    if not matchers:
        raise CtlError("no matchers specified", hint="e.g. tocsinctl silence add alertname=Disk")
    if v["start"]:
        start = parse_time_flag(v["start"], "--start")
    else:
        now = SystemClock().now()
        start = TimeArg(now, format_millis(now))
    if v["end"]:
        end = parse_time_flag(v["end"], "--end")
    else:
        # amtool adds the duration to the start in UTC.
        ends = start.ns + _duration(v["duration"])
        end = TimeArg(ends, format_millis(ends))
    if start.ns > end.ns:
        raise CtlError("silence cannot start after it ends")
    if v["require_comment"] and not v["comment"]:
        raise CtlError(
            "comment required by config",
            hint="add -c 'why', or set require-comment: false in the config file",
        )
    silence = {
        "matchers": [matcher_json(m) for m in matchers],
        "startsAt": start.text,
        "endsAt": end.text,
        "createdBy": v["author"] or "",
        "comment": v["comment"] or "",
    }
    answer = inv.call("POST", "/silences", json=silence)
    inv.out.write(f"{answer['silenceID']}\n")
    return 0


def select(
    silences: Sequence[Mapping[str, Any]],
    now: int,
    *,
    expired: bool,
    within: int = 0,
    created_by: str | None = None,
) -> list[Mapping[str, Any]]:
    """amtool's client-side filter: active or expired, ``--within`` and ``--created-by``."""
    chosen = []
    for s in silences:
        ends = parse_rfc3339(s["endsAt"])
        if not expired and ends < now:
            continue
        if expired and ends > now:
            continue
        if not expired and within > 0 and ends > now + within:
            continue
        if expired and within > 0 and ends < now - within:
            continue
        if created_by and s.get("createdBy") != created_by:
            continue
        chosen.append(s)
    return chosen


def query(inv: Invocation) -> int:
    """Print the silences that match, or just their IDs with ``-q``."""
    v = inv.values
    try:
        within = parse_go_duration(v["within"]) if v["within"] else 0
    except DurationError as exc:
        raise CtlError(f"invalid --within: {exc}", hint="e.g. --within=8h") from None
    params = [("filter", m) for m in with_alertname(inv.args.matchers)]
    silences = inv.call("GET", "/silences", params=params)
    shown = select(
        silences,
        SystemClock().now(),
        expired=v["expired"],
        within=within,
        created_by=v["created_by"],
    )
    if v["quiet"]:
        inv.out.write("".join(f"{s['id']}\n" for s in shown))
    else:
        inv.out.write(format_silences(shown, inv.format, inv.date_format))
    return 0


def _silence_path(silence_id: str) -> str:
    return "/silence/" + urllib.parse.quote(silence_id, safe="")


def _get_silence(api: Api, silence_id: str) -> dict[str, Any]:
    resp = api.request("GET", "/api/v2" + _silence_path(silence_id))
    if resp.status_code == 404:
        raise CtlError(
            f"silence {silence_id} not found",
            hint="list IDs with: tocsinctl silence query -q (add --expired for old ones)",
        )
    check(resp)
    found: dict[str, Any] = resp.json()
    return found


def update(inv: Invocation) -> int:
    """Change start, end or comment of each silence; print the results (new IDs)."""
    v = inv.values
    ids: list[str] = inv.args.ids
    if not ids:
        raise CtlError("no silence IDs specified", hint="tocsinctl silence update ID... -d 2h")
    updated = []
    api = inv.api()
    try:
        for silence_id in ids:
            s = _get_silence(api, silence_id)
            if v["start"]:
                s["startsAt"] = parse_time_flag(v["start"], "--start").text
            if v["end"]:
                s["endsAt"] = parse_time_flag(v["end"], "--end").text
            elif v["duration"]:
                s["endsAt"] = format_millis(parse_rfc3339(s["startsAt"]) + _duration(v["duration"]))
            if parse_rfc3339(s["startsAt"]) > parse_rfc3339(s["endsAt"]):
                raise CtlError("silence cannot start after it ends")
            if v["comment"]:
                s["comment"] = v["comment"]
            answer = api.call("POST", "/silences", json=_postable(s))
            s["id"] = answer["silenceID"]
            updated.append(s)
    finally:
        api.close()
    if v["quiet"]:
        # amtool 0.25 prints Go pointer addresses here; the IDs are what scripts need.
        inv.out.write("".join(f"{s['id']}\n" for s in updated))
    else:
        inv.out.write(format_silences(updated, inv.format, inv.date_format))
    return 0


def expire(inv: Invocation) -> int:
    """Expire each silence; prints nothing."""
    ids: list[str] = inv.args.ids
    if not ids:
        raise CtlError(
            "no silence IDs specified",
            hint="expire all that match with: tocsinctl silence expire $(tocsinctl silence query -q MATCHER...)",
        )
    api = inv.api()
    try:
        for silence_id in ids:
            resp = api.request("DELETE", "/api/v2" + _silence_path(silence_id))
            if resp.status_code == 404:
                raise CtlError(f"silence {silence_id} not found")
            check(resp)
    finally:
        api.close()
    return 0


def _postable(s: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a gettable silence that a POST takes."""
    out = {k: s[k] for k in ("matchers", "startsAt", "endsAt", "createdBy", "comment") if k in s}
    if s.get("id"):
        out["id"] = s["id"]
    return out


def _import_one(api: Api, silence: dict[str, Any]) -> str:
    """Post one silence; an ID the server does not know is created anew, as amtool does."""
    resp = api.request("POST", "/api/v2/silences", json=silence)
    if resp.status_code == 404 and silence.get("id"):
        resp = api.request("POST", "/api/v2/silences", json={**silence, "id": ""})
    check(resp)
    return str(resp.json()["silenceID"])


def _read_import(inv: Invocation) -> list[Any]:
    path: str | None = inv.args.file
    try:
        if path is None:
            text = inv.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise CtlError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CtlError(
            f"couldn't unmarshal input data, is it JSON?: {exc}",
            hint="import reads what 'tocsinctl silence query -o json' writes",
        ) from None
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        raise CtlError(
            "couldn't unmarshal input data: expected a JSON list of silences",
            hint="import reads what 'tocsinctl silence query -o json' writes",
        )
    return data


def import_(inv: Invocation) -> int:
    """Post every silence of a ``silence query -o json`` file; print the new IDs in order."""
    v = inv.values
    data = _read_import(inv)
    silences = [_postable({**s, "id": "" if v["force"] else s.get("id", "")}) for s in data]
    workers = max(1, v["worker"])
    bar = ProgressBar(inv.err, "silences", len(silences))
    failed = 0
    api = inv.api()
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        futures = [pool.submit(_import_one, api, s) for s in silences]
        for silence, future in zip(silences, futures, strict=True):
            try:
                bar.write(inv.out, f"{future.result()}\n")
            except CtlError as exc:
                failed += 1
                bar.write(
                    inv.err, f"Error adding silence id='{silence.get('id', '')}': {exc.message}\n"
                )
            bar.step()
    finally:
        # On Ctrl-C or a closed pipe, drop the posts not yet started instead of
        # sending thousands more before exiting.
        pool.shutdown(wait=True, cancel_futures=True)
        api.close()
    if failed:
        raise CtlError(f"couldn't import {failed} out of {len(silences)} silences")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silence = group(
        commands, "silence", help="Add, expire, update or view silences.", default="query"
    )
    a = leaf(
        silence,
        "add",
        help="Add a silence.",
        run=add,
        flags=ADD_FLAGS,
        epilog="Example: tocsinctl silence add alertname=Disk node=~'db.*' -d 2h -c 'disk swap'\n",
    )
    a.add_argument(
        "matchers", nargs="*", metavar="MATCHER", help="the first may be just the alertname"
    )
    q = leaf(silence, "query", help="Show silences.", run=query, flags=QUERY_FLAGS)
    q.add_argument("matchers", nargs="*", metavar="MATCHER", help="filter, e.g. alertname=Disk")
    u = leaf(
        silence,
        "update",
        help="Change silences (start, end, comment).",
        run=update,
        flags=UPDATE_FLAGS,
    )
    u.add_argument("ids", nargs="*", metavar="ID", help="silence IDs")
    e = leaf(silence, "expire", help="Expire silences.", run=expire)
    e.add_argument("ids", nargs="*", metavar="ID", help="silence IDs")
    i = leaf(
        silence,
        "import",
        help="Import silences from 'silence query -o json' output (file or stdin).",
        run=import_,
        flags=IMPORT_FLAGS,
    )
    i.add_argument("file", nargs="?", metavar="FILE", help="JSON file (default: standard input)")
