"""Outputs and errors recorded from Go (amtool 0.25 ``template render``), and live checks."""

# Look-alike letters (Greek, dotless i, long s...) are the point of the case-mapping tests.
# ruff: noqa: RUF001

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.template.errors import TemplateError
from daemon.template.templateset import TemplateSet
from tests.template.amdata import amtool_example_data

# (template text, Go's output) pairs recorded from amtool 0.25 on its example data.
RECORDED = [
    (
        '{{ 1234567.0 }}|{{ 0.000012 }}|{{ 1e6 }}|{{ 2.50 }}|{{ print 1 2 "a" 3 nil }}',
        "1.234567e+06|1.2e-05|1e+06|2.5|1 2a3 <nil>",
    ),
    (
        '{{ printf "%v|%s|%d|%5d|%-5d|%05.1f|%x|%X|%q|%t|%e|%g|%%|%c|%U" .Receiver 5 42 42 42'
        ' 3.14159 "hi" 255 "a\\tb" true 1234.5678 0.00001 65 65 }}',
        'receiver|%!s(int=5)|42|   42|42   |003.1|6869|FF|"a\\tb"|true|1.234568e+03|1e-05|%|A|U+0041',
    ),
    (
        '{{ printf "%d %s" "x" }}|{{ printf "%s" 1 2 }}',
        "%!d(string=x) %!s(MISSING)|%!s(int=1)%!(EXTRA int=2)",
    ),
    (
        '{{ title "hello wORLD they\'re 1st foo.bar_baz-qux" }}|{{ toUpper "straße" }}',
        "Hello World They're 1St Foo.bar_baz-Qux|STRAßE",
    ),
    ('{{ reReplaceAll "(a)(b)?" "[$1|${2}|$1x|$$]" "abac" }}', "[a|b||$][a|||$]c"),
    (
        '{{ "+<&>\\"\'" | html }}|{{ js "<a\'\\"=&\\\\\\n" }}|{{ urlquery "a b/c?d=é" }}',
        "+&lt;&amp;&gt;&#34;&#39;|\\u003Ca\\'\\\"\\u003D\\u0026\\\\\\u000A|a+b%2Fc%3Fd%3D%C3%A9",
    ),
    (
        '{{ len "é" }}|{{ index "abc" 1 }}|{{ slice "hello" 1 3 }}|{{ .Alerts.Firing | len }}'
        "|{{ .CommonLabels.Names }}",
        "2|98|el|0|[commonlabelkey1 commonlabelkey2]",
    ),
    (
        "{{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}"
        '|{{ .GroupLabels.Values | join "," }}|{{ eq .Status "alertstatus" "x" }}'
        '|{{ .Alerts.Resolved }}|{{ .CommonLabels.missing }}|{{ and 1 0 2 }}|{{ or 0 "" "x" }}'
        "|{{ not 0 }}",
        "grouplabelkey1=grouplabelvalue1 grouplabelkey2=grouplabelvalue2 "
        "|grouplabelvalue1,grouplabelvalue2|true|[]||0|x|true",
    ),
]


def test_printing_pairs_and_kv_like_go() -> None:
    """``{{ .CommonLabels }}`` and ``{{ .X.SortedPairs }}`` print as Go maps and structs."""
    out = TemplateSet().execute_text(
        "{{ .GroupLabels }}|{{ .GroupLabels.SortedPairs }}", amtool_example_data()
    )
    assert out == (
        "map[grouplabelkey1:grouplabelvalue1 grouplabelkey2:grouplabelvalue2]"
        "|[{grouplabelkey1 grouplabelvalue1} {grouplabelkey2 grouplabelvalue2}]"
    )


RECORDED_ERRORS = [
    (
        "{{ .Foo }}",
        'template: :1:3: executing "" at <.Foo>: can\'t evaluate field Foo in type TemplateData',
    ),
    (
        "{{ index .Alerts 7 }}",
        'template: :1:3: executing "" at <index .Alerts 7>: error calling index: '
        "index out of range: 7",
    ),
    ("{{ nil }}", 'template: :1:3: executing "" at <nil>: nil is not a command'),
    (
        "{{ .Receiver.X }}",
        'template: :1:12: executing "" at <.Receiver.X>: can\'t evaluate field X in type string',
    ),
]

RECORDED_HTML = (
    '{{ "<a+b>" }}<a href="{{ .ExternalURL }}/x?r={{ .Receiver | urlquery }}&y={{ "a b" }}"'
    ' title={{ "a b" }}>{{ "<b>" | safeHtml }}</a><img src="{{ "/p q(x)" }}"'
    ' alt="{{ "<i>x</i>" | safeHtml }}"><title>{{ "<t>" }}</title>',
    '&lt;a&#43;b&gt;<a href="https://example.com/x?r=receiver&y=a%20b" title=a&#32;b><b></a>'
    '<img src="/p%20q%28x%29" alt="x"><title>&lt;t&gt;</title>',
)


@pytest.mark.parametrize(("text", "want"), RECORDED)
def test_recorded_go_output(text: str, want: str) -> None:
    """Rendering matches what Go printed for the same template and data."""
    assert TemplateSet().execute_text(text, amtool_example_data()) == want


@pytest.mark.parametrize(("text", "want"), RECORDED_ERRORS)
def test_recorded_go_errors(text: str, want: str) -> None:
    """Execution errors carry Go's position, node text and message."""
    with pytest.raises(TemplateError) as info:
        TemplateSet().execute_text(text, amtool_example_data())
    # Go names its own type template.Data; ours is TemplateData.
    assert str(info.value) == want


def test_recorded_html_output() -> None:
    """html/template escaping matches Go's for text, attributes, URLs and safeHtml."""
    text, want = RECORDED_HTML
    assert TemplateSet(html=True).execute_text(text, amtool_example_data()) == want


def _amtool(tmp_path: Path, text: str, kind: str = "text") -> str:
    (tmp_path / "empty.tmpl").write_text("")
    proc = subprocess.run(
        [
            "amtool",
            "template",
            "render",
            f"--template.glob={tmp_path}/*.tmpl",
            f"--template.type={kind}",
            f"--template.text={text}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else "ERROR"


LIVE = [
    '{{ printf "%8.3f|%-8q|%+d|%x|%o|%b|%v" 2.0 "q" 5 -255 8 5 .Alerts.Resolved }}',
    "{{ range $k, $v := .CommonAnnotations }}{{ $k }}:{{ $v }};{{ end }}",
    "{{ with .CommonLabels.nope }}x{{ else }}{{ .Status | toUpper }}{{ end }}",
    "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
    "{{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.Labels.instance }}{{ end }}",
    '{{ range .Alerts }}{{ if eq .Fingerprint "fingerprint1" }}{{ continue }}{{ end }}'
    "{{ .Fingerprint }}{{ break }}{{ end }}",
    '{{ print 1.5 2 "x" }} {{ println 1 "a" }}',
    '{{ match "^rec" .Receiver }} {{ match "x" .Receiver }} {{ stringSlice "a" "b" }}',
    '{{ (index .Alerts 0).Labels.label1 }} {{ index .Alerts 1 "Labels" | printf "%T" }}',
    '{{ block "b" . }}[{{ .Status }}]{{ end }}',
    '{{ "a" | printf "%s-%s" "b" }} {{ lt 1 2 }} {{ ge "b" "a" }} {{ ne 1 2 }}',
]


@pytest.mark.alertmanager
@pytest.mark.parametrize("text", LIVE)
def test_live_against_amtool(tmp_path: Path, text: str) -> None:
    """Rendering matches the installed Go Alertmanager's amtool, run now."""
    assert shutil.which("amtool") is not None
    want = _amtool(tmp_path, text)
    try:
        got = TemplateSet().execute_text(text, amtool_example_data())
    except TemplateError:
        got = "ERROR"
    assert got == want


# Strings where Go's per-rune simple case mapping (toUpper/toLower) and x/text's Title
# (title) differ from Python's str methods: 'İ', 'ß', ligatures, final sigma, titlecase
# digraphs, Georgian, Greek with ypogegrammeni, and Unicode 14 letters Go 1.19 lacks.
CASE_CORPUS = [
    "1st foo.bar_baz İSTANBUL ǆemal ß ﬁx ΣΑΣ o'neil",
    "ΌΣΟΣ ΣΑΣ. ΑΣ-ΣΑ Σ ΑΣ1 ΑΣ'Σ",
    "straße STRASSE ŉ ǰ ΐ ᾳ ᾼ ᾀ ᾈ ǅ Ǉ ǈ",
    "ǉ ǌ ǳ ﬀ ﬃ ﬓ և ẞ İ ı I i",
    "x:y a.b c'd e\u2019f g·h _a __b 9lives 12ab a1b2",
    "ⴀ Ⴀ ა Ა ꞵ Ꞵ ǈa Ǉb ꟁ Ⱟ 𐕰",
]

RECORDED_CASES = [
    ("{{ toLower `İSTANBUL ΣΑΣ ẞ K Ω` }}", "istanbul σασ ß k ω"),
    ("{{ toUpper `ß ﬁ ǆ ŉ ı ſ ͅ ᾳ ᾀ` }}", "ß ﬁ Ǆ ŉ I S Ι ᾼ ᾈ"),
    ("{{ title `ΣΑΣ ß ﬁx İSTANBUL g·h ꟁ` }}", "Σας Ss Fix İstanbul G·h ꟁ"),
]


@pytest.mark.parametrize(("text", "want"), RECORDED_CASES)
def test_recorded_case_mapping(text: str, want: str) -> None:
    """toLower/toUpper map rune by rune (simple mappings); title uses x/text's full ones."""
    assert TemplateSet().execute_text(text, amtool_example_data()) == want


@pytest.mark.alertmanager
@pytest.mark.parametrize("func", ["title", "toUpper", "toLower"])
@pytest.mark.parametrize("subject", CASE_CORPUS)
def test_case_mapping_against_amtool(tmp_path: Path, func: str, subject: str) -> None:
    """title, toUpper and toLower print what amtool 0.25 prints for tricky letters."""
    text = "{{ " + f"`{subject}` | {func}" + " }}"
    assert TemplateSet().execute_text(text, amtool_example_data()) == _amtool(tmp_path, text)


@pytest.mark.alertmanager
@pytest.mark.parametrize("func", ["toUpper", "toLower"])
def test_case_mapping_of_every_code_point(tmp_path: Path, func: str) -> None:
    """toUpper/toLower agree with amtool 0.25 on every code point (Go 1.19's Unicode 13)."""
    every = "".join(
        chr(i) for i in range(0x20, 0x110000) if not 0xD800 <= i <= 0xDFFF and chr(i) != "`"
    )
    (tmp_path / "all.tmpl").write_text(
        '{{ define "all" }}{{ `' + every + "` | " + func + " }}{{ end }}", encoding="utf-8"
    )
    want = _amtool(tmp_path, '{{ template "all" }}')
    got = TemplateSet().execute_text("{{ `" + every + "` | " + func + " }}", None)
    assert len(got) == len(every)
    mismatched = [f"U+{ord(c):04X}" for c, g, w in zip(every, got, want, strict=False) if g != w]
    assert mismatched == []
    assert got == want
