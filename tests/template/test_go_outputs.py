"""Outputs and errors recorded from Go (amtool 0.25 ``template render``), and live checks."""

# Look-alike letters (Greek, dotless i, long s...) are the point of the case-mapping tests.
# ruff: noqa: RUF001

from __future__ import annotations

import shutil
import subprocess
import unicodedata
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
        'template: :1:3: executing "" at <.Foo>: can\'t evaluate field Foo in type template.Data',
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


# html templates and what amtool 0.25 (go1.19.8) printed for them.
RECORDED_HTML_CONTEXTS = [
    # Go escapes after a branch from the joined context, and a range body from the
    # context before the range, whatever the branch or iteration that ran.
    (
        '<p title={{ if false }}{{ "x" }}{{ end }} class={{ "y z" }}>',
        "<p title= class=y&#32;z>",
    ),
    (
        '<a href="{{ range .Alerts }}{{ "javascript:x" }}/{{ end }}">',
        '<a href="#ZgotmplZ/#ZgotmplZ/">',
    ),
    (
        '<a href="{{ "javascript:alert(1)" }}">x</a><a href="{{ "HTTP://ok/é %zz %41?x=<y>" }}">',
        '<a href="#ZgotmplZ">x</a><a href="HTTP://ok/%c3%a9%20%25zz%20%41?x=%3cy%3e">',
    ),
    (
        '<a href="/p?q={{ "a&b=c d/é" }}#{{ "f g" }}">x</a>',
        '<a href="/p?q=a%26b%3dc%20d%2f%c3%a9#f%20g">x</a>',
    ),
    ('<a href={{ "/a b" }}>x</a><a href={{ "" }}>y</a>', "<a href=/a%20b>x</a><a href=>y</a>"),
    (
        '<script>var s = "{{ "a\\"b</script>\\n" }}", t = \'{{ "x\'y" }}\', r = /{{ "a.b" }}/g, q = x / {{ 2 }} / /{{ "" }}/;</script>',
        "<script>var s = \"a\\u0022b\\u003c\\/script\\u003e\\n\", t = 'x\\u0027y', r = /a\\.b/g, q = x /  2  / /(?:)/;</script>",
    ),
    (
        '<script type="text/template">{{ "<b>" }}</script><script type="application/json">{{ .Status }}</script>',
        '<script type="text/template">&lt;b&gt;</script><script type="application/json">"alertstatus"</script>',
    ),
    (
        '<button onclick="go({{ .Receiver }}, &quot;{{ "q\\"" }}&quot;)">x</button>',
        '<button onclick="go(&#34;receiver&#34;, &quot;q\\u0022&quot;)">x</button>',
    ),
    (
        '<p style="color: {{ "red" }}; background: url({{ "/a b.png" }}); font-family: \'{{ "Times" }}\'">x</p>',
        "<p style=\"color: red; background: url(/a%20b.png); font-family: 'Times'\">x</p>",
    ),
    (
        '<p style="color: {{ "expression(alert(1))" }}">a</p><p style="width: {{ "10px;}" }}">b</p><p style="x: {{ "a\\\\3b" }}">',
        '<p style="color: ZgotmplZ">a</p><p style="width: ZgotmplZ">b</p><p style="x: ZgotmplZ">',
    ),
    (
        '<style>p { color: {{ "blue" }}; } a { background: url("{{ "x?a=b c" }}") } /* c {{ .Status }} */ q { content: "{{ "a\\"b:c" }}" }</style>',
        '<style>p { color: blue; } a { background: url("x?a=b%20c") }    q { content: "#ZgotmplZ" }</style>',
    ),
    (
        '<style>a{b:url({{ "javascript:x" }})}</style><div style=\'{{ "a b" }}\'>',
        "<style>a{b:url(#ZgotmplZ)}</style><div style='a b'>",
    ),
    (
        '<a {{ "title" }}="x" {{ "onclick" }}="y" {{ "" }}="z" {{ "Data-X" }}=w>',
        '<a title="x" ZgotmplZ="y" ZgotmplZ="z" ZgotmplZ=w>',
    ),
    ('<a title="{{ "x" }}" {{ "ok" }}>', '<a title="x" ok>'),
    (
        '<p>{{ .Alerts.Firing }}</p><p title="{{ .CommonLabels }}">{{ 1.5 }}</p>',
        '<p>[]</p><p title="map[commonlabelkey1:commonlabelvalue1 commonlabelkey2:commonlabelvalue2]">1.5</p>',
    ),
    (
        '<script>var x = {{ "\u2028" }}; var u = "{{ "\u2028<" }}";</script>',
        '<script>var x = "\\u2028"; var u = "\\u2028\\u003c";</script>',
    ),
]


@pytest.mark.parametrize(("text", "want"), RECORDED_HTML_CONTEXTS)
def test_recorded_html_contexts(text: str, want: str) -> None:
    """Values in URL, JS, CSS, attribute-name and srcset contexts are escaped as Go did."""
    assert TemplateSet(html=True).execute_text(text, amtool_example_data()) == want


@pytest.mark.parametrize(("text", "want"), RECORDED)
def test_recorded_go_output(text: str, want: str) -> None:
    """Rendering matches what Go printed for the same template and data."""
    assert TemplateSet().execute_text(text, amtool_example_data()) == want


@pytest.mark.parametrize(("text", "want"), RECORDED_ERRORS)
def test_recorded_go_errors(text: str, want: str) -> None:
    """Execution errors carry Go's position, node text and message."""
    with pytest.raises(TemplateError) as info:
        TemplateSet().execute_text(text, amtool_example_data())
    assert str(info.value) == want


def test_recorded_html_output() -> None:
    """html/template escaping matches Go's for text, attributes, URLs and safeHtml."""
    text, want = RECORDED_HTML
    assert TemplateSet(html=True).execute_text(text, amtool_example_data()) == want


def _amtool(tmp_path: Path, text: str, kind: str = "text", *, errors: bool = False) -> str:
    """What amtool renders; on failure "ERROR", or "ERROR <Go's message>" with ``errors``."""
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
    if proc.returncode == 0:
        return proc.stdout
    return "ERROR " + proc.stderr.strip().removeprefix("amtool: error: ") if errors else "ERROR"


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


# html templates with actions in every context html/template tells apart (URL, query,
# unquoted and quoted attributes, attribute names, srcset, JS code/strings/regexps in script
# elements and on* attributes, CSS in style elements and attributes, comments, RCDATA,
# html/urlquery merged into the chain) and the errors Go 1.19.8 reports.
LIVE_HTML = [
    '<p title={{ if false }}{{ "x" }}{{ end }} class={{ "y z" }}>',
    '<a href="{{ range .Alerts }}{{ "javascript:x" }}/{{ end }}">',
    "<script>var a = [{{ range .Alerts }}{{ .Fingerprint }},{{ end }}];</script>",
    '{{ define "t" }}<a href="{{ . }}">{{ end }}{{ template "t" "javascript:x" }}{{ template "t" "/ok" }}',
    '<p title="{{ "<div title=\\"1>2\\">I <3 Ponies</div><!-- c -->x<script>a<b</script>" | safeHtml }}" alt={{ "<b>a b</b>" | safeHtml }}>',
    '<p title="{{ "no tags & stuff" | safeHtml }}"><textarea>{{ "<b>&amp;x</b>" | safeHtml }}</textarea>',
    '{{ if .Receiver }}<a href="{{ else }}<a href="/{{ end }}{{ .Receiver }}">',
    "{{ if false }}<script>`{{ .Receiver }}`</script>{{ end }}ok",
    '<input {{ if .Receiver }}checked{{ end }}{{ "x" }}>',
    '{{ range .Alerts }}<a href="{{ end }}',
    '{{ range .Alerts }}<a>{{ break }}{{ end }}x{{ template "nope" }}',
    "<script>{{ if .Receiver }}a{{ else }}b+{{ end }} /x/</script>",
    '<a href="{{ "javascript:alert(1)" }}">x</a><a href="{{ "HTTP://ok/é %zz %41?x=<y>" }}">',
    '<a href="/p?q={{ "a&b=c d/é" }}#{{ "f g" }}">x</a>',
    '<a href={{ "/a b" }}>x</a><a href={{ "" }}>y</a>',
    '<img src="{{ .ExternalURL }}/x.png" alt="{{ "<i>x</i>" | safeHtml }}" title={{ "a=b`c" }}>',
    '<a href="{{ "javascript:x" | urlquery }}">q</a><a href="/x?{{ "a b" | urlquery }}">r</a>',
    '<a href="{{ "<b>" | html }}">q</a><p>{{ "a+b" | html }}</p><p title="{{ "a+b" | html }}">',
    '<p>{{ html "<x>" 3 }}</p><p>{{ urlquery "a b" "c" }}</p>',
    "<script>var a = {{ .CommonLabels }}, b = {{ .GroupLabels.SortedPairs }};</script>",
    '<script>var s = "{{ "a\\"b</script>\\n" }}", t = \'{{ "x\'y" }}\', r = /{{ "a.b" }}/g, q = x / {{ 2 }} / /{{ "" }}/;</script>',
    '<script type="text/template">{{ "<b>" }}</script><script type="application/json">{{ .Status }}</script>',
    '<button onclick="go({{ .Receiver }}, &quot;{{ "q\\"" }}&quot;)">x</button>',
    '<p style="color: {{ "red" }}; background: url({{ "/a b.png" }}); font-family: \'{{ "Times" }}\'">x</p>',
    '<p style="color: {{ "expression(alert(1))" }}">a</p><p style="width: {{ "10px;}" }}">b</p><p style="x: {{ "a\\\\3b" }}">',
    '<style>p { color: {{ "blue" }}; } a { background: url("{{ "x?a=b c" }}") } /* c {{ .Status }} */ q { content: "{{ "a\\"b:c" }}" }</style>',
    '<style>a{b:url({{ "javascript:x" }})}</style><div style=\'{{ "a b" }}\'>',
    '<!-- note {{ .Status }} --><p>a < b <3 <!DOCTYPE html></p><title>{{ "<t>" }} a<b</title><textarea>{{ "&x" | safeHtml }} x<y</textarea>',
    '<a {{ "title" }}="x" {{ "onclick" }}="y" {{ "" }}="z" {{ "Data-X" }}=w>',
    '<a title="{{ "x" }}" {{ "ok" }}>',
    '<img srcset="{{ "/a.png 1x, javascript:x 2x, /b c.png 3x" }}">',
    '<p>{{ .Alerts.Firing }}</p><p title="{{ .CommonLabels }}">{{ 1.5 }}</p>',
    "<script>/* a\nb */ var x = 1; // {{ .Status }}\nvar y = {{ 1e-7 }}, z = {{ 1e21 }}, w = {{ 0.000001 }};</script>",
    '<script>var x = {{ "\u2028" }}; var u = "{{ "\u2028<" }}";</script>',
    '<a href="mailto:{{ "a@b.c" }}?subject={{ "hi there" }}">m</a><a href="{{ "mailto:x@y" }}">n</a>',
    '<a data-url="{{ "javascript:x" }}" data-foo="{{ "javascript:x" }}" srclang="{{ "javascript:x" }}">',
    '<script>var t = {{ "x" }}/2; var re = {{ "y" }} + /z/;</script>',
    "<p onmouseover='alert({{ \"it's\" }})'>x</p>",
    '{{ define "x" }}<b>{{ . }}</b>{{ end }}<a href="{{ template "x" "y z" }}">{{ template "x" "<q>" }}</a>',
    "<script>{{ range .Alerts }}{{ .Labels.alertname }};{{ end }}</script>",
    '<a href="{{ "%41%zz" }}">',
    '<p>{{ "\\x00" }}</p><p title={{ "\\x00\\ufdd0" }}>',
    '<a title={{ "x" | html }}>',
    '<a href="{{ "x" }}',
    '<a title=x"y>',
    '<script>var r = /[{{ "x" }}/</script>',
    '<script>var s = "a\\',
    '<p>{{ .Status | html | printf "%s" }}</p>',
    '<script>{{ if true }}var a = 1;{{ end }} var b = {{ "x" }};</script>',
    '{{ range .Alerts }}<a href="{{ .GeneratorURL }}?fp={{ .Fingerprint }}">{{ .Labels.instance }}</a>{{ end }}',
    '<table><tr style="color: {{ if eq .Status "firing" }}red{{ else }}green{{ end }}"><td>{{ .Status | toUpper }}</td></tr></table>',
    '<a onclick="f({{ .Alerts.Firing | len }})" href="https://x/{{ .Receiver }}/{{ "a/b c" }}">',
    '<p>{{ "x" | urlquery }}</p><script>var x = {{ "<y>" | html }};</script>',
    '<a href="{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}">',
    '<input value={{ "a b" }} checked {{ "dis abled" }}>',
    '<a href="x" title="{{ "\\u00e9\\u2028" }}" data-x=\'{{ "q\'" }}\'>',
    '<svg><a xlink:href="{{ "javascript:x" }}" xmlns:foo="{{ "javascript:y" }}"></a></svg>',
    '<script>var a = {{ 1.0 }}, b = {{ -0.5 }}, c = {{ true }}, d = {{ "" }}, e = {{ .CommonLabels.nope }};</script>',
    '<a href="  {{ "javascript:x" }}">x</a><a href="?{{ "javascript:x" }}">y</a>',
    '<p style="background: url(\'{{ "http://a/b c" }}\'); color: {{ "#fff" }}">',
]


@pytest.mark.alertmanager
@pytest.mark.parametrize("text", LIVE_HTML)
def test_html_escaping_against_amtool(tmp_path: Path, text: str) -> None:
    """html/template escaping (and its errors) match the installed amtool's, run now."""
    assert shutil.which("amtool") is not None
    want = _amtool(tmp_path, text, "html", errors=True)
    try:
        got = TemplateSet(html=True).execute_text(text, amtool_example_data())
    except TemplateError as e:
        got = f"ERROR {e}"
    assert got == want


@pytest.mark.alertmanager
@pytest.mark.parametrize("place", ["first", "inner"])
def test_title_of_every_code_point(tmp_path: Path, place: str) -> None:
    """title maps every code point as amtool 0.25 does, first in a word or inside one."""
    chars = [
        chr(i)
        for i in range(0x21, 0x30000)
        if chr(i) != "`"
        and unicodedata.category(chr(i)) not in ("Cn", "Co", "Cs", "Cc", "Zs", "Zl", "Zp")
    ]
    words = "\n".join(c if place == "first" else "a" + c for c in chars)
    (tmp_path / "all.tmpl").write_text(
        '{{ define "all" }}{{ `' + words + "` | title }}{{ end }}", encoding="utf-8"
    )
    want = _amtool(tmp_path, '{{ template "all" }}').split("\n")
    got = TemplateSet().execute_text("{{ `" + words + "` | title }}", None).split("\n")
    assert len(got) == len(want) == len(chars)
    assert [f"U+{ord(c):04X}" for c, g, w in zip(chars, got, want, strict=True) if g != w] == []


@pytest.mark.alertmanager
def test_title_word_breaks(tmp_path: Path) -> None:
    """Which runes end a word in title agrees with amtool for Latin, Greek, Cyrillic,
    punctuation, CJK and kana (x/text's word-break classes)."""
    chars = [
        chr(i)
        for lo, hi in ((0x21, 0x559), (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x4E40))
        for i in range(lo, hi + 1)
        if chr(i) != "`" and unicodedata.category(chr(i)) not in ("Cn", "Cc", "Zs", "Zl", "Zp")
    ]
    words = "\n".join("A" + c + "B" for c in chars)
    (tmp_path / "all.tmpl").write_text(
        '{{ define "all" }}{{ `' + words + "` | title }}{{ end }}", encoding="utf-8"
    )
    want = _amtool(tmp_path, '{{ template "all" }}').split("\n")
    got = TemplateSet().execute_text("{{ `" + words + "` | title }}", None).split("\n")
    assert [f"U+{ord(c):04X}" for c, g, w in zip(chars, got, want, strict=True) if g != w] == []
