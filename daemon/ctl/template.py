"""``template render``: amtool's flags, default example data and output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from daemon.clock import ZERO_TIME, SystemClock
from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.config import describe
from daemon.ctl.errors import CtlError
from daemon.ctl.flags import Flag
from daemon.gocompat.timestamp import parse_rfc3339
from daemon.template.data import KV, Alert, Alerts, TemplateData
from daemon.template.errors import TemplateError
from daemon.template.render import Templates

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


def render(inv: Invocation) -> int:
    v = inv.values
    for flag in ("template.glob", "template.text"):
        if not v[flag.replace(".", "_")]:
            raise CtlError(f"required flag --{flag} not provided")
    now = SystemClock().now()
    try:
        if v["template_data"] is None:
            data = default_template_data(now)
        else:
            with open(v["template_data"], encoding="utf-8") as f:
                data = template_data_from_json(f.read())
        rendered = render_template(
            v["template_glob"], v["template_text"], data, now, html=v["template_type"] == "html"
        )
    except (TemplateError, ValueError, OSError) as exc:
        raise CtlError(describe(exc)) from None
    inv.out.write(rendered)
    return 0


RENDER_FLAGS = (
    Flag("template.glob", "glob of template files to load (repeatable; required)", kind="list"),
    Flag("template.text", "the template text to render (required)", metavar="TEXT"),
    Flag("template.type", "text or html (html escapes)", "text", choices=("text", "html")),
    Flag(
        "template.data",
        "JSON file with the template data (Alertmanager's template.Data)",
        metavar="FILE",
        shown="amtool's example data",
    ),
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    template = group(commands, "template", help="Render templates.", default="render")
    leaf(
        template,
        "render",
        help="Render a template text to standard output, as amtool does.",
        run=render,
        flags=RENDER_FLAGS,
    )
