"""Unit tests of the Go template engine: syntax, semantics, errors, functions, escaping."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from daemon.template.errors import TemplateExecError, TemplateParseError
from daemon.template.functions import humanize_duration
from daemon.template.gotime import GoDuration, GoTime, format_go_duration
from daemon.template.templateset import TemplateSet


def render(text: str, data: object = None, *, html: bool = False) -> str:
    return TemplateSet(html=html).execute_text(text, data)


@attrs.frozen
class Obj:
    A: str
    N: int

    def Greet(self, who: str) -> str:
        return f"hi {who} from {self.A}"


@pytest.mark.parametrize(
    ("text", "data", "want"),
    [
        ("a {{- ` b ` -}} c", None, "a b c"),
        ("a  {{- /* comment */ -}}  b", None, "ab"),
        ("{{-3}}", None, "-3"),
        ("{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ 0o17 }} {{ 1e3 }}", None, "97 31 1000 15 1000"),
        ('{{ "\\u00e9\\x41\\t" | printf "%q" }}', None, '"éA\\t"'),
        ('{{ .A }} {{ .N }} {{ .Greet "bob" }}', Obj("x", 2), "x 2 hi bob from x"),
        ('{{ "bob" | .Greet }}', Obj("x", 2), "hi bob from x"),
        ("{{ $o := . }}{{ $o.A }}{{ with $o }}{{ $.N }}{{ end }}", Obj("y", 3), "y3"),
        ('{{ .m.k }}|{{ .m.none }}|{{ index .m "k" }}', {"m": {"k": "v"}}, "v||v"),
        ("{{ (.m).k }}", {"m": {"k": "v"}}, "v"),
        ("{{ if .x }}a{{ else if .y }}b{{ else }}c{{ end }}", {"x": 0, "y": []}, "c"),
        ("{{ if .x }}a{{ else if .y }}b{{ else }}c{{ end }}", {"x": "", "y": [1]}, "b"),
        ("{{ with .x }}{{ . }}{{ else }}none{{ end }}", {"x": {}}, "none"),
        ("{{ range .l }}{{ . }}{{ else }}empty{{ end }}", {"l": []}, "empty"),
        ("{{ range $k, $v := .m }}{{ $k }}{{ $v }}{{ end }}", {"m": {"b": 2, "a": 1}}, "a1b2"),
        ("{{ range $v := .l }}{{ $v }}{{ end }}", {"l": [1, 2]}, "12"),
        (
            "{{ range .l }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}"
            "{{ end }}{{ . }}{{ end }}",
            {"l": [1, 2, 3, 4, 5]},
            "13",
        ),
        ("{{ $x := 1 }}{{ range .l }}{{ $x = . }}{{ end }}{{ $x }}", {"l": [7, 8]}, "8"),
        ('{{ define "t" }}<{{ . }}>{{ end }}{{ template "t" .v }}', {"v": 5}, "<5>"),
        ('{{ block "b" .v }}[{{ . }}]{{ end }}', {"v": 5}, "[5]"),
        ("{{ and 1 2 }} {{ and 0 .missing.x }} {{ or 0 0 }} {{ or 3 .bad.y }}", {}, "2 0 0 3"),
        (
            '{{ not .t }} {{ eq 1 2 3 1 }} {{ ne "a" "b" }} {{ le 2 2 }}',
            {"t": True},
            "false true true true",
        ),
        (
            "{{ len .l }} {{ index .n 1 0 }} {{ slice .l 1 }}",
            {"l": [1, 2, 3], "n": [[1], [2]]},
            "3 2 [2 3]",
        ),
        ("{{ .nil }}", {"nil": None}, "<nil>"),
        ("{{ .x.y }}", {"x": None}, "<no value>"),
        ('{{ println "a" 1 }}', None, "a 1\n"),
        ('{{ stringSlice "a" "b" | join "-" }}', None, "a-b"),
        ('{{ trimSpace "  x \\n" }}|{{ toLower "ABC" }}', None, "x|abc"),
    ],
)
def test_render(text: str, data: object, want: str) -> None:
    """Each construct renders as Go's text/template renders it."""
    assert render(text, data) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("{{ .A\n", "template: bad.tmpl:2: unclosed action started at bad.tmpl:1"),
        ("{{ foo }}", 'template: bad.tmpl:1: function "foo" not defined'),
        ("{{ if .A }}", "template: bad.tmpl:1: unexpected EOF"),
        ("{{ end }}", "template: bad.tmpl:1: unexpected {{end}}"),
        ("{{ $x }}", 'template: bad.tmpl:1: undefined variable "$x"'),
        ("{{ break }}", "template: bad.tmpl:1: {{break}} outside {{range}}"),
        ("{{ }}", "template: bad.tmpl:1: missing value for command"),
        ('{{ "a" | 1 }}', "template: bad.tmpl:1: non executable command in pipeline stage 2"),
        ("{{ /* x */ }}", 'template: bad.tmpl:1: unexpected "/" in command'),
        ("{{/* x", "template: bad.tmpl:1: unclosed comment"),
        ('{{ "abc }}', "template: bad.tmpl:1: unterminated quoted string"),
        ("{{ (1 }}", "template: bad.tmpl:1: unclosed left paren"),
        (
            '{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}',
            'template: bad.tmpl:1: template: multiple definition of template "a"',
        ),
        (
            "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
            "template: bad.tmpl:1: expected end; found {{else}}",
        ),
    ],
)
def test_parse_errors(text: str, want: str) -> None:
    """Parse errors are worded and positioned like Go's."""
    with pytest.raises(TemplateParseError) as info:
        TemplateSet().parse(text, "bad.tmpl")
    assert str(info.value) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (
            "a\n {{ .x.y }}",
            'template: :2:6: executing "" at <.x.y>: can\'t evaluate field y in type int',
        ),
        (
            "{{ len .x }}",
            'template: :1:3: executing "" at <len .x>: error calling len: len of type int',
        ),
        (
            "{{ .x 1 }}",
            'template: :1:3: executing "" at <.x>: x is not a method but has arguments',
        ),
        (
            '{{ lt 1 "a" }}',
            'template: :1:3: executing "" at <lt 1 "a">: error calling lt: incompatible types for comparison',
        ),
        (
            '{{ template "zz" }}',
            'template: :1:12: executing "" at <{{template "zz"}}>: template "zz" not defined',
        ),
        (
            "{{ range .x }}{{ end }}",
            'template: :1:3: executing "" at <{{range .x}}{{end}}>: range can\'t iterate over 1',
        ),
        (
            '{{ join "," }}',
            'template: :1:3: executing "" at <join>: wrong number of args for join: want 2 got 1',
        ),
    ],
)
def test_exec_errors(text: str, want: str) -> None:
    """Execution errors name the location, template and node like Go."""
    with pytest.raises(TemplateExecError) as info:
        render(text, {"x": 1})
    assert str(info.value) == want


def test_defines_and_files(tmp_path: Path) -> None:
    """Files are named by base name, later defines win, and empty bodies never replace."""
    a = tmp_path / "a.tmpl"
    b = tmp_path / "b.tmpl"
    a.write_text('{{ define "x" }}A{{ end }}{{ define "y" }}Y{{ end }}')
    b.write_text('{{ define "x" }}B{{ end }}\n')
    ts = TemplateSet().parse_files([a, b])
    assert ts.execute("x", None) == "B"
    assert ts.execute("y", None) == "Y"
    assert {"a.tmpl", "b.tmpl", "x", "y"} <= set(ts.names())


def test_execute_text_defines_stay_local() -> None:
    """A define inside a rendered field does not leak into the shared set."""
    ts = TemplateSet().parse('{{ define "x" }}base{{ end }}', "f")
    assert ts.execute_text('{{ define "x" }}local{{ end }}{{ template "x" }}', None) == "local"
    assert ts.execute_text('{{ template "x" }}', None) == "base"
    assert ts.execute_text("", None) == ""


def test_clone_is_independent() -> None:
    """Parsing into a clone leaves the original untouched."""
    ts = TemplateSet().parse('{{ define "x" }}1{{ end }}', "f")
    c = ts.clone().parse('{{ define "x" }}2{{ end }}', "g")
    assert (ts.execute("x", None), c.execute("x", None)) == ("1", "2")


@pytest.mark.parametrize(
    ("fmt", "args", "want"),
    [
        ("%s|%v|%d", ["a", [1, "b"], 7], "a|[1 b]|7"),
        ("%5s|%-5s|%.2s", ["ab", "ab", "abc"], "   ab|ab   |ab"),
        (
            "%.2f|%8.3f|%e|%g",
            [3.14159, 2.0, 1234.5678, 0.00001],
            "3.14|   2.000|1.234568e+03|1e-05",
        ),
        ("%x|%X|%#x|%o|%b|%05d|%+d", [255, 255, 255, 8, 5, -42, 5], "ff|FF|0xff|10|101|-0042|+5"),
        ("%q|%t|%c|%U|%%", ['a"b', True, 65, 65], '"a\\"b"|true|A|U+0041|%'),
        ("%d", ["x"], "%!d(string=x)"),
        ("%s %s", ["x"], "x %!s(MISSING)"),
        ("%s", ["x", 2], "x%!(EXTRA int=2)"),
        ("%v", [{"b": 1, "a": None}], "map[a:<nil> b:1]"),
    ],
)
def test_printf(fmt: str, args: list[object], want: str) -> None:
    """printf supports Go's verbs, flags, widths and bad-verb forms."""
    assert (
        render(
            "{{ printf .f " + " ".join(f"(index .a {i})" for i in range(len(args))) + " }}",
            {"f": fmt, "a": args},
        )
        == want
    )


@pytest.mark.parametrize(
    ("text", "data", "want"),
    [
        ("<p>{{ .x }}</p>", {"x": "<b>&'\"+"}, "<p>&lt;b&gt;&amp;&#39;&#34;&#43;</p>"),
        ("<p>{{ .x | safeHtml }}</p>", {"x": "<b>ok</b>"}, "<p><b>ok</b></p>"),
        ('<a href="{{ .u }}">', {"u": "javascript:alert(1)"}, '<a href="#ZgotmplZ">'),
        (
            '<a href="{{ .u }}">',
            {"u": "HTTPS://h/a b?q=1&r=<x>"},
            # Go percent-encodes with lower-case hex digits.
            '<a href="HTTPS://h/a%20b?q=1&amp;r=%3cx%3e">',
        ),
        (
            '<a href="/s?q={{ .q }}">',
            {"q": "a b&c/d"},
            '<a href="/s?q=a%20b%26c%2fd">',
        ),
        ("<a title='{{ .q }}'>", {"q": "it's"}, "<a title='it&#39;s'>"),
        ("<a title={{ .q }}>", {"q": "a b"}, "<a title=a&#32;b>"),
        ("<!-- secret {{ .q }} -->x", {"q": "a"}, "x"),
        ("<title>{{ .q }}</title>", {"q": "<t>"}, "<title>&lt;t&gt;</title>"),
    ],
)
def test_html_escaping(text: str, data: object, want: str) -> None:
    """html mode escapes each value for its HTML context as html/template does."""
    assert render(text, data, html=True) == want


def test_html_escapes_script_context_as_json() -> None:
    """An action in a script element is written as Go's JSON, with HTML-safe escapes."""
    out = render(
        "<script>var x = {{ .q }}, n = {{ .n }};</script>", {"q": "</script>", "n": 5}, html=True
    )
    assert out == '<script>var x = "\\u003c/script\\u003e", n =  5 ;</script>'


def test_html_refuses_js_template_literal() -> None:
    """An action in a JS template literal is an error, as in Go 1.19.8."""
    with pytest.raises(TemplateExecError, match="appears in a JS template literal"):
        render("<script>var x = `{{ .q }}`</script>", {"q": "a"}, html=True)


def test_html_applies_to_called_templates() -> None:
    """Templates called from an html template are escaped in the caller's context."""
    ts = TemplateSet(html=True).parse(
        '{{ define "u" }}{{ .u }}/x?r={{ .r | urlquery }}{{ end }}', "f"
    )
    out = ts.execute_text(
        '<a href="{{ template "u" . }}">{{ .r }}</a>', {"u": "http://h", "r": "a&b"}
    )
    assert out == '<a href="http://h/x?r=a%26b">a&amp;b</a>'


def test_time_functions() -> None:
    """date formats Go layouts, tz converts zones, since measures to the given now."""
    t = GoTime(1_700_000_000_123_000_000)
    data = {"t": t}
    assert render('{{ .t | date "2006-01-02T15:04:05.000Z07:00 Mon Jan _2 3PM" }}', data) == (
        "2023-11-14T22:13:20.123Z Tue Nov 14 10PM"
    )
    assert (
        render('{{ .t | tz "Europe/Paris" | date "15:04 MST -0700" }}', data) == "23:13 CET +0100"
    )
    assert render("{{ .t }}", data) == "2023-11-14 22:13:20.123 +0000 UTC"
    ts = TemplateSet()
    assert ts.execute_text("{{ since .t }}", data, now=t.ns + 90 * 10**9) == "1m30s"
    with pytest.raises(TemplateExecError, match="unknown time zone Nowhere/X"):
        render('{{ tz "Nowhere/X" .t }}', data)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (0, "0s"),
        (4.5, "4.5s"),
        (64, "1m 4s"),
        (3723, "1h 2m 3s"),
        (93784, "1d 2h 3m 4s"),
        (0.0015, "1.5ms"),
        ("60", "1m 0s"),
        (-3723, "-1h 2m 3s"),
    ],
)
def test_humanize_duration(value: object, want: str) -> None:
    """humanizeDuration matches Prometheus' wording."""
    assert humanize_duration(value) == want


def test_go_duration_string() -> None:
    """Durations print as Go's Duration.String()."""
    assert [format_go_duration(n) for n in (0, 1500, 2_500_000, 90 * 10**9, 3_723_500_000_000)] == [
        "0s",
        "1.5µs",
        "2.5ms",
        "1m30s",
        "1h2m3.5s",
    ]


def test_js_value_of_stringer_and_time() -> None:
    """In JS a time.Duration (a fmt.Stringer) is written as its String(), a time as JSON."""
    data = {"d": GoDuration(3_600_000_000_000), "t": GoTime(1_700_000_000_123_000_000)}
    out = render("<script>var d = {{ .d }}, t = {{ .t }};</script>", data, html=True)
    assert out == '<script>var d = "1h0m0s", t = "2023-11-14T22:13:20.123Z";</script>'
