"""Built-in templates and the Templates loader, checked against Alertmanager 0.25's amtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.notify.context import NotifyContext
from daemon.template.data import KV, Alerts, TemplateData
from daemon.template.errors import TemplateError
from daemon.template.render import Templates
from tests.template.amdata import amtool_example_data

T = TypeVar("T")
UPSTREAM_DIR = Path("/usr/share/prometheus/alertmanager")
SEPARATOR = "\n@@@@\n"

#: Every template name Alertmanager 0.25 ships (default.tmpl and email.tmpl).
AM_NAMES = [
    "__alertmanager",
    "__alertmanagerURL",
    "__subject",
    "__description",
    "__text_alert_list",
    "slack.default.title",
    "slack.default.username",
    "slack.default.fallback",
    "slack.default.callbackid",
    "slack.default.pretext",
    "slack.default.titlelink",
    "slack.default.iconemoji",
    "slack.default.iconurl",
    "slack.default.text",
    "slack.default.footer",
    "pagerduty.default.description",
    "pagerduty.default.client",
    "pagerduty.default.clientURL",
    "pagerduty.default.instances",
    "opsgenie.default.message",
    "opsgenie.default.description",
    "opsgenie.default.source",
    "wechat.default.message",
    "wechat.default.to_user",
    "wechat.default.to_party",
    "wechat.default.to_tag",
    "wechat.default.agent_id",
    "victorops.default.state_message",
    "victorops.default.entity_display_name",
    "victorops.default.monitoring_tool",
    "pushover.default.title",
    "pushover.default.message",
    "pushover.default.url",
    "sns.default.subject",
    "sns.default.message",
    "telegram.default.message",
    "discord.default.title",
    "discord.default.message",
    "webex.default.message",
    "email.default.subject",
    "email.default.html",
]


#: Templates whose ``.`` is a list of alerts rather than the notification data.
LIST_TEMPLATES = frozenset({"__text_alert_list", "pagerduty.default.instances"})


def _calls() -> str:
    return SEPARATOR.join(
        f'{{{{ template "{n}" {".Alerts" if n in LIST_TEMPLATES else "."} }}}}' for n in AM_NAMES
    )


def _data_variants() -> dict[str, TemplateData]:
    base = amtool_example_data()
    firing = [
        attrs_evolve(base.Alerts[0], Status="firing"),
        attrs_evolve(base.Alerts[1], Status="resolved"),
    ]
    return {
        "amtool": base,
        "mixed": attrs_evolve(base, Status="firing", Alerts=Alerts(firing)),
    }


def attrs_evolve(obj: T, **changes: Any) -> T:
    return attrs.evolve(obj, **changes)  # type: ignore[misc]


def _render_all(templates: Templates, data: TemplateData) -> list[str]:
    return templates.text.execute_text(_calls(), data).split(SEPARATOR)


def test_builtins_define_every_alertmanager_name() -> None:
    """Each name upstream's files define is defined by ours too."""
    upstream: set[str] = set()
    for name in ("default.tmpl", "email.tmpl"):
        path = UPSTREAM_DIR / name
        if not path.exists():
            pytest.skip("Alertmanager's template files are not installed")
        upstream |= set(re.findall(r'define "([^"]+)"', path.read_text()))
    ours = set(Templates.load().text.names())
    assert upstream <= ours
    assert set(AM_NAMES) <= upstream


@pytest.mark.alertmanager
def test_every_default_template_matches_amtool(tmp_path: Path) -> None:
    """``amtool template render`` of every built-in name equals ours on amtool's data."""
    amtool = shutil.which("amtool")
    assert amtool is not None
    # A closing marker, so amtool's own line ending cannot be mistaken for output.
    text = _calls() + SEPARATOR
    result = subprocess.run(
        [
            amtool,
            "template",
            "render",
            f"--template.glob={UPSTREAM_DIR}/*.tmpl",
            f"--template.text={text}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = result.stdout.split(SEPARATOR)[:-1]
    ours = _render_all(Templates.load(), amtool_example_data())
    assert len(theirs) == len(AM_NAMES)
    for name, mine, upstream in zip(AM_NAMES, ours, theirs, strict=True):
        assert mine == upstream, name


@pytest.mark.alertmanager
def test_user_template_with_mixed_statuses_matches_amtool(tmp_path: Path) -> None:
    """A user file that overrides a built-in and uses range/if/with/printf renders as amtool does."""
    amtool = shutil.which("amtool")
    assert amtool is not None
    # amtool 0.25 renders only the files it is given: the upstream built-ins sort first.
    for name in ("default.tmpl", "email.tmpl"):
        shutil.copy(UPSTREAM_DIR / name, tmp_path / name)
    user = tmp_path / "user.tmpl"
    user.write_text(
        '{{ define "__alertmanager" }}AM-{{ .Receiver | toUpper }}{{ end }}\n'
        '{{ define "x" }}{{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}'
        '{{ printf "%d:%s" $i ($a.Labels.SortedPairs.Names | join "+") }}{{ end }}'
        "{{ with .CommonLabels }} {{ . }}{{ end }} {{ .GroupLabels.SortedPairs }}{{ end }}\n"
    )
    text = '{{ template "x" . }}|{{ template "slack.default.username" . }}|{{ template "__subject" . }}'
    result = subprocess.run(
        [
            amtool,
            "template",
            "render",
            f"--template.glob={tmp_path}/*.tmpl",
            f"--template.text={text}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ours = Templates.load([str(user)]).text.execute_text(text, amtool_example_data())
    assert ours == result.stdout.removesuffix("\n")


def test_subject_firing_and_resolved_forms() -> None:
    """``__subject`` counts firing alerts and adds non-group common values in parentheses."""
    t = Templates.load()
    data = _data_variants()["mixed"]
    assert t.text.execute_text('{{ template "__subject" . }}', data) == (
        "[FIRING:1] grouplabelvalue1 grouplabelvalue2 "
    )
    more = attrs_evolve(data, CommonLabels=KV({**data.CommonLabels, **data.GroupLabels}))
    assert t.text.execute_text('{{ template "__subject" . }}', more) == (
        "[FIRING:1] grouplabelvalue1 grouplabelvalue2 (commonlabelvalue1 commonlabelvalue2)"
    )
    resolved = attrs_evolve(data, Status="resolved", CommonLabels=KV(data.GroupLabels))
    assert t.text.execute_text('{{ template "__subject" . }}', resolved) == (
        "[RESOLVED] grouplabelvalue1 grouplabelvalue2 "
    )


def test_msteams_text_matches_alertmanager_026_layout() -> None:
    """The 0.26 Teams text: markdown headings, two-space label bullets, blank-line framing."""
    data = _data_variants()["mixed"]
    out = Templates.load().text.execute_text('{{ template "msteams.default.text" . }}', data)
    first = data.Alerts[0]
    labels = "".join(f"  - {p.Name} = {p.Value}\n" for p in first.Labels.SortedPairs())
    assert out.startswith("\n\n# Alerts Firing:\n\nLabels:\n" + labels + "\nAnnotations:\n")
    assert "\n# Alerts Resolved:\n\nLabels:\n" in out
    assert out.endswith("Source: https://generatorurl.com\n\n\n\n")


def test_render_uses_notification_data_and_times() -> None:
    """render() builds the data from ctx and alerts: receiver, external URL and Go time printing."""
    t = Templates.load().with_external_url("http://am.example")
    now = 1_700_000_000 * 10**9
    ctx = NotifyContext(
        group_key="{}:{}",
        group_labels={"alertname": "A"},
        receiver="team.x",
        repeat_interval=0,
        route_id="{}",
        now=now,
    )
    alert = Alert({"alertname": "A"}, {}, now, ZERO_TIME)
    out = t.render(
        '{{ .Receiver }} {{ template "__alertmanagerURL" . }} '
        "{{ (index .Alerts 0).StartsAt }} {{ (index .Alerts 0).EndsAt.IsZero }}",
        ctx,
        [alert],
    )
    assert out == (
        "team\\.x http://am.example/#/alerts?receiver=team%5C.x 2023-11-14 22:13:20 +0000 UTC true"
    )
    # Go writes a "<" that starts no tag as &lt; (amtool: "&lt;alertstatus>&amp;").
    assert t.render('<{{ .Status }}>{{ "&" }}', ctx, [alert], html=True) == "&lt;firing>&amp;"


def test_user_files_override_builtins_in_glob_order(tmp_path: Path) -> None:
    """User files parse after the built-ins; within a glob, matches apply in lexical order."""
    (tmp_path / "b.tmpl").write_text('{{ define "slack.default.title" }}B{{ end }}')
    (tmp_path / "a.tmpl").write_text('{{ define "slack.default.title" }}A{{ end }}')
    t = Templates.load([str(tmp_path / "*.tmpl"), str(tmp_path / "none-*.tmpl")])
    data = amtool_example_data()
    assert t.text.execute_text('{{ template "slack.default.title" . }}', data) == "B"
    assert t.html.execute_text('{{ template "slack.default.title" . }}', data) == "B"


def test_bad_template_names_file_and_line(tmp_path: Path) -> None:
    """A file that does not parse raises TemplateError naming its path and line."""
    bad = tmp_path / "bad.tmpl"
    bad.write_text('{{ define "x" }}\nok\n{{ if }}\n{{ end }}')
    with pytest.raises(TemplateError) as info:
        Templates.load([str(bad)])
    message = str(info.value)
    assert message.startswith(f"{bad}: template: bad.tmpl:3:")
