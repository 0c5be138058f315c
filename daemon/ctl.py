"""``tocsinctl``: the operator's tool.

``tocsinctl check-config FILE...`` prints what ``amtool check-config`` prints, so
scripts that grep amtool's output keep working, plus one line after a failure that
says where in the file the problem is. Exit status: 0 if every file is valid, else 1.
Unlike amtool it accepts tocsin's extra receiver types (``dingtalk_configs`` …).

``tocsinctl template render`` is ``amtool template render``: same flags, same default
example data, same output.

``tocsinctl receiver test NAME`` asks a running tocsin to send a test notification
through every integration of receiver NAME (``POST /api/v1/receivers/NAME/test``).
Exit status: 0 if all succeeded, 1 if any failed, 2 if the server could not be asked
(unreachable, unknown receiver, unexpected answer).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import httpx

from daemon.clock import ZERO_TIME
from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file
from daemon.config.model import Config
from daemon.gocompat.timestamp import parse_rfc3339
from daemon.template.data import KV, Alert, Alerts, TemplateData
from daemon.template.errors import TemplateError
from daemon.template.render import Templates
from daemon.template.templateset import TemplateSet

PROG = "tocsinctl"

#: Parses a config's template globs; raises with the message to print. The default is
#: :func:`parse_templates`; tests and embedders may pass another.
TemplateCheck = Callable[[Sequence[str]], None]


def parse_templates(globs: Sequence[str]) -> None:
    """Parse every file the globs match into one template set, as amtool does.

    A glob matching nothing is fine; files are taken in sorted order per glob, like
    Go's ``filepath.Glob``.
    """
    templates = TemplateSet()
    for pattern in globs:
        templates.parse_files(sorted(glob.glob(pattern)))


def _summary(config: Config, out: TextIO) -> None:
    out.write("Found:\n")
    out.write(" - global config\n")
    out.write(" - route\n")
    out.write(f" - {len(config.inhibit_rules)} inhibit rules\n")
    out.write(f" - {len(config.receivers)} receivers\n")
    out.write(f" - {len(config.templates)} templates\n")


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        # Go's *PathError text: "open <path>: <reason>".
        reason = exc.strerror or str(exc)
        return f"open {exc.filename}: {reason[:1].lower()}{reason[1:]}"
    return str(exc)


def _where(err: ConfigError, file: str) -> str | None:
    if err.line is None and not err.key:
        return None
    at = file if err.line is None else f"{file}:{err.line}"
    return f"  at {at}" + (f", key {err.key}" if err.key else "")


def check_config(
    files: Sequence[str],
    out: TextIO,
    *,
    check_templates: TemplateCheck = parse_templates,
) -> int:
    """Check each file as amtool does; returns the number of files that failed."""
    failed = 0
    for path in files:
        out.write(f"Checking '{path}'")
        try:
            config = load_config_file(path)
        except ConfigError as err:
            out.write(f"  FAILED: {err.message}\n")
            where = _where(err, path)
            if where is not None:
                out.write(where + "\n")
            failed += 1
            out.write("\n")
            continue
        out.write("  SUCCESS\n")
        _summary(config, out)
        if config.templates:
            try:
                check_templates(config.templates)
            except (TemplateError, ValueError, OSError) as exc:
                out.write(f"  FAILED: {_describe(exc)}\n")
                failed += 1
            else:
                out.write("  SUCCESS\n")
        out.write("\n")
    return failed


def _cmd_check_config(args: argparse.Namespace) -> int:
    files: list[str] = args.files
    if not files:
        if sys.stdin.isatty():
            return _fatal("Failed to read from standard input")
        files = ["/dev/stdin"]
    for path in files:
        if not os.path.exists(path):
            return _fatal(f"path '{path}' does not exist")
    failed = check_config(files, sys.stdout)
    sys.stdout.flush()
    if failed:
        return _fatal(f"failed to validate {failed} file(s)")
    return 0


def _fatal(message: str) -> int:
    # kingpin's fatal format, which amtool uses: "<prog>: error: <msg>" and a blank line.
    sys.stderr.write(f"{PROG}: error: {message}\n\n")
    return 1


# --- template render ------------------------------------------------------------------------

_MINUTE = 60 * 1_000_000_000
_COMMON_LABELS = {"commonlabelkey1": "commonlabelvalue1", "commonlabelkey2": "commonlabelvalue2"}
_COMMON_ANNOTATIONS = {
    "commonannotationkey1": "commonannotationvalue1",
    "commonannotationkey2": "commonannotationvalue2",
}


def default_template_data(now: int) -> TemplateData:
    """amtool 0.25's built-in example data (``cli/template_render.go``) at wall time ``now``."""
    return TemplateData(
        Receiver="receiver",
        Status="alertstatus",
        Alerts=Alerts(
            [
                Alert(
                    Status="alertstatus",
                    Labels=KV(
                        label1="value1",
                        label2="value2",
                        instance="foo.bar:1234",
                        **_COMMON_LABELS,
                    ),
                    Annotations=KV(
                        annotation1="value1", annotation2="value2", **_COMMON_ANNOTATIONS
                    ),
                    StartsAt=now - 5 * _MINUTE,
                    EndsAt=now,
                    GeneratorURL="https://generatorurl.com",
                    Fingerprint="fingerprint1",
                ),
                Alert(
                    Status="alertstatus",
                    Labels=KV(foo="bar", baz="qux", **_COMMON_LABELS),
                    Annotations=KV(aaa="bbb", ccc="ddd", **_COMMON_ANNOTATIONS),
                    StartsAt=now - 10 * _MINUTE,
                    EndsAt=now,
                    GeneratorURL="https://generatorurl.com",
                    Fingerprint="fingerprint2",
                ),
            ]
        ),
        GroupLabels=KV(grouplabelkey1="grouplabelvalue1", grouplabelkey2="grouplabelvalue2"),
        CommonLabels=KV(_COMMON_LABELS),
        CommonAnnotations=KV(_COMMON_ANNOTATIONS),
        ExternalURL="https://example.com",
    )


def _get(obj: Mapping[str, Any], key: str) -> Any:
    # encoding/json matches field names case-insensitively.
    for k, v in obj.items():
        if k.lower() == key.lower():
            return v
    return None


def _kv(value: Any) -> KV:
    return KV({str(k): str(v) for k, v in (value or {}).items()})


def _time(value: Any) -> int:
    return ZERO_TIME if not value else parse_rfc3339(str(value))


def template_data_from_json(text: str) -> TemplateData:
    """Template data from the JSON form of Alertmanager's ``template.Data``."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("json: cannot unmarshal into Go value of type template.Data")
    alerts = Alerts(
        Alert(
            Status=str(_get(a, "status") or ""),
            Labels=_kv(_get(a, "labels")),
            Annotations=_kv(_get(a, "annotations")),
            StartsAt=_time(_get(a, "startsAt")),
            EndsAt=_time(_get(a, "endsAt")),
            GeneratorURL=str(_get(a, "generatorURL") or ""),
            Fingerprint=str(_get(a, "fingerprint") or ""),
        )
        for a in _get(raw, "alerts") or ()
    )
    return TemplateData(
        Receiver=str(_get(raw, "receiver") or ""),
        Status=str(_get(raw, "status") or ""),
        Alerts=alerts,
        GroupLabels=_kv(_get(raw, "groupLabels")),
        CommonLabels=_kv(_get(raw, "commonLabels")),
        CommonAnnotations=_kv(_get(raw, "commonAnnotations")),
        ExternalURL=str(_get(raw, "externalURL") or ""),
    )


def render_template(
    globs: Sequence[str], text: str, data: TemplateData, now: int, *, html: bool = False
) -> str:
    """``text`` rendered with the built-in templates plus the globs' files, as amtool does."""
    return Templates.load(globs).render_data(text, data, now, html=html)


def _cmd_template_render(args: argparse.Namespace) -> int:
    now = time.time_ns()
    try:
        if args.data is None:
            data = default_template_data(now)
        else:
            with open(args.data, encoding="utf-8") as f:
                data = template_data_from_json(f.read())
        rendered = render_template(args.globs, args.text, data, now, html=args.type == "html")
    except (TemplateError, ValueError, OSError) as exc:
        return _fatal(_describe(exc))
    sys.stdout.write(rendered)
    sys.stdout.flush()
    return 0


# --- receiver test ---------------------------------------------------------------------------

#: The server gives each integration 30 s; leave room for the answer itself.
RECEIVER_TEST_TIMEOUT = 60.0


def receiver_test(
    base_url: str,
    name: str,
    out: TextIO,
    *,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Ask the server at ``base_url`` to test receiver ``name``; print results; exit status."""
    url = f"{base_url.rstrip('/')}/api/v1/receivers/{urllib.parse.quote(name, safe='')}/test"
    try:
        with httpx.Client(timeout=RECEIVER_TEST_TIMEOUT, transport=transport) as client:
            resp = client.post(url)
    except httpx.HTTPError as exc:
        _fatal(f"cannot reach {base_url}: {exc}")
        return 2
    if resp.status_code == 404:
        _fatal(f"receiver {name!r} not found at {base_url}")
        return 2
    try:
        payload = resp.json()
        results = payload["results"] if resp.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        results = None
    if not isinstance(results, list):
        _fatal(f"unexpected answer from {url}: HTTP {resp.status_code}: {resp.text.strip()}")
        return 2
    out.write(f"Receiver {name}:\n")
    if not results:
        out.write("  (no integrations)\n")
    failed = 0
    for r in results:
        if r.get("ok"):
            out.write(f"  {r.get('integration')}: OK\n")
        else:
            failed += 1
            out.write(f"  {r.get('integration')}: FAILED: {r.get('error', '')}\n")
    return 1 if failed else 0


def _cmd_receiver_test(args: argparse.Namespace) -> int:
    status = receiver_test(args.url, args.name, sys.stdout)
    sys.stdout.flush()
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Operate a tocsin alert manager.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check-config",
        help="Validate Alertmanager-compatible config files.",
        description="Validate config files the way amtool check-config does.",
    )
    check.add_argument("files", nargs="*", metavar="FILE", help="config files to check")
    check.set_defaults(run=_cmd_check_config)

    template = commands.add_parser("template", help="Work with templates.")
    template_cmds = template.add_subparsers(dest="template_command", required=True)
    render = template_cmds.add_parser(
        "render", help="Render a template text to standard output, as amtool does."
    )
    render.add_argument(
        "--template.glob",
        dest="globs",
        action="append",
        required=True,
        help="glob of template files to load (repeatable)",
    )
    render.add_argument(
        "--template.text", dest="text", required=True, help="the template text to render"
    )
    render.add_argument(
        "--template.type",
        dest="type",
        choices=("text", "html"),
        default="text",
        help="text (default) or html escaping",
    )
    render.add_argument(
        "--template.data",
        dest="data",
        default=None,
        help="JSON file with the template data (default: amtool's example data)",
    )
    render.set_defaults(run=_cmd_template_render)

    receiver = commands.add_parser("receiver", help="Work with receivers.")
    receiver_cmds = receiver.add_subparsers(dest="receiver_command", required=True)
    test = receiver_cmds.add_parser(
        "test", help="Send a test notification through every integration of a receiver."
    )
    test.add_argument("name", metavar="NAME", help="receiver name")
    test.add_argument(
        "--alertmanager.url",
        dest="url",
        default="http://localhost:9093",
        help="tocsin's URL (default http://localhost:9093)",
    )
    test.set_defaults(run=_cmd_receiver_test)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
